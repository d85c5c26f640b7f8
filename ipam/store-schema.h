/*
 * store-schema (private to ipam/): the store's schema as a list of forward
 * migrations, and the code that applies them.
 */
#pragma once

#include <stddef.h>
#include <sqlite3.h>

#include "errmsg.h"

struct store_migration {
        int version;            /* PRAGMA user_version once applied; 1, 2, 3, ... */
        const char *sql;        /* statements run in one transaction */
};

extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

/*
 * Bring db from its user_version to the last of migrations[0..n), each step
 * in its own transaction (a failed step leaves the previous version intact).
 * A database newer than the last migration is refused with -EPROTONOSUPPORT.
 */
int store_schema_migrate(sqlite3 *db, const struct store_migration *migrations, size_t n,
                         const char *path, struct errmsg *err);

/* An SQLite result code as a negative errno (0 for OK, ROW and DONE). */
int store_errno_from_sqlite(int rc);

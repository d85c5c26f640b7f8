/*
 * store-schema: the tables of the pool store and their forward migrations.
 *
 * Version 1 is the whole model: ENIs, blocks of either kind (a /32 secondary
 * IP or a /28 prefix), one row per usable address, intents, the instance-type
 * cache and metadata. Constraints live here rather than in C so that no code
 * path — not even a buggy one — can write an address twice, give an
 * attachment two addresses, put an address outside its block, or hand out an
 * address of an ENI that is not attached. A later change appends a migration;
 * existing ones are never edited.
 */
#include <errno.h>
#include <stdio.h>

#include "store-schema.h"

int store_errno_from_sqlite(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return 0;
        case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
        case SQLITE_NOMEM: return -ENOMEM;
        case SQLITE_FULL: return -ENOSPC;
        case SQLITE_READONLY: case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
        case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EBADMSG;
        case SQLITE_CONSTRAINT: return -EEXIST;
        case SQLITE_CANTOPEN: return -ENOENT;
        case SQLITE_TOOBIG: case SQLITE_RANGE: case SQLITE_MISMATCH: return -EINVAL;
        default: return -EIO;
        }
}

static const char schema_v1[] =
        "CREATE TABLE meta ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  value TEXT NOT NULL"
        ") STRICT;"

        "CREATE TABLE instance_types ("
        "  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 31),"
        "  max_enis INTEGER NOT NULL CHECK (max_enis >= 1),"
        "  ipv4_per_eni INTEGER NOT NULL CHECK (ipv4_per_eni >= 1),"
        "  prefix_supported INTEGER NOT NULL CHECK (prefix_supported IN (0, 1)),"
        "  network_cards INTEGER NOT NULL CHECK (network_cards >= 1),"
        "  fetched_ms INTEGER NOT NULL"
        ") STRICT;"

        "CREATE TABLE enis ("
        "  id TEXT PRIMARY KEY NOT NULL CHECK (id GLOB 'eni-[0-9a-z]*' AND length(id) < 32),"
        "  mac TEXT NOT NULL UNIQUE CHECK (length(mac) = 17),"
        "  device_index INTEGER NOT NULL CHECK (device_index >= 0),"
        "  network_card INTEGER NOT NULL CHECK (network_card >= 0),"
        "  subnet_id TEXT NOT NULL CHECK (length(subnet_id) < 32),"
        "  subnet_cidr TEXT NOT NULL CHECK (length(subnet_cidr) BETWEEN 9 AND 18),"
        "  primary_ip TEXT NOT NULL UNIQUE CHECK (length(primary_ip) BETWEEN 7 AND 15),"
        "  route_table INTEGER NOT NULL CHECK (route_table BETWEEN 1 AND 4294967295),"
        "  is_primary INTEGER NOT NULL CHECK (is_primary IN (0, 1)),"
        "  state TEXT NOT NULL CHECK (state IN ('attaching', 'attached', 'detaching')),"
        "  created_ms INTEGER NOT NULL,"
        "  UNIQUE (network_card, device_index)"
        ") STRICT;"
        "CREATE UNIQUE INDEX enis_one_primary ON enis(is_primary) WHERE is_primary = 1;"

        /* A block is what EC2 assigned: a /32 (kind ip) or an aligned /28 (kind prefix). */
        "CREATE TABLE blocks ("
        "  cidr TEXT PRIMARY KEY NOT NULL,"
        "  eni_id TEXT NOT NULL REFERENCES enis(id) ON DELETE CASCADE,"
        "  kind TEXT NOT NULL CHECK (kind IN ('ip', 'prefix')),"
        "  first INTEGER NOT NULL CHECK (first BETWEEN 0 AND 4294967295),"
        "  size INTEGER NOT NULL,"
        "  added_ms INTEGER NOT NULL,"
        "  CHECK ((kind = 'ip' AND size = 1) OR (kind = 'prefix' AND size = 16 AND first % 16 = 0))"
        ") STRICT;"
        "CREATE INDEX blocks_eni ON blocks(eni_id);"

        /*
         * One row per usable address. state: free (cooldown_until says when it
         * may be reused), assigned (the pod columns are set), releasing (EC2
         * is unassigning its block). free_since orders reuse: oldest first.
         */
        "CREATE TABLE addresses ("
        "  addr INTEGER PRIMARY KEY CHECK (addr BETWEEN 0 AND 4294967295),"
        "  block TEXT NOT NULL REFERENCES blocks(cidr) ON DELETE CASCADE,"
        "  state TEXT NOT NULL CHECK (state IN ('free', 'assigned', 'releasing')),"
        "  free_since INTEGER NOT NULL,"
        "  cooldown_until INTEGER NOT NULL DEFAULT 0,"
        "  container_id TEXT CHECK (length(container_id) BETWEEN 1 AND 256),"
        "  ifname TEXT CHECK (length(ifname) BETWEEN 1 AND 15),"
        "  netns TEXT CHECK (length(netns) <= 4096),"
        "  pod_namespace TEXT CHECK (length(pod_namespace) <= 253),"
        "  pod_name TEXT CHECK (length(pod_name) <= 253),"
        "  pod_uid TEXT CHECK (length(pod_uid) <= 253),"
        "  host_veth TEXT CHECK (length(host_veth) BETWEEN 1 AND 15),"
        "  assigned_ms INTEGER,"
        "  CHECK ((state = 'assigned') = (container_id IS NOT NULL AND ifname IS NOT NULL"
        "                                 AND assigned_ms IS NOT NULL)),"
        "  CHECK (state = 'assigned' OR (container_id IS NULL AND ifname IS NULL AND netns IS NULL"
        "         AND pod_namespace IS NULL AND pod_name IS NULL AND pod_uid IS NULL"
        "         AND host_veth IS NULL AND assigned_ms IS NULL)),"
        "  UNIQUE (container_id, ifname)"
        ") STRICT;"
        "CREATE INDEX addresses_pick ON addresses(state, free_since, addr);"
        "CREATE INDEX addresses_block ON addresses(block);"

        "CREATE TRIGGER addresses_inside_block BEFORE INSERT ON addresses"
        "  WHEN NOT EXISTS (SELECT 1 FROM blocks b WHERE b.cidr = NEW.block"
        "                   AND NEW.addr >= b.first AND NEW.addr < b.first + b.size)"
        "  BEGIN SELECT RAISE(ABORT, 'address outside its block'); END;"
        "CREATE TRIGGER addresses_assign_attached BEFORE UPDATE OF state ON addresses"
        "  WHEN NEW.state = 'assigned' AND (SELECT e.state FROM blocks b JOIN enis e ON e.id = b.eni_id"
        "                                   WHERE b.cidr = NEW.block) IS NOT 'attached'"
        "  BEGIN SELECT RAISE(ABORT, 'address is not on an attached ENI'); END;"
        "CREATE TRIGGER addresses_block_fixed BEFORE UPDATE OF addr, block ON addresses"
        "  BEGIN SELECT RAISE(ABORT, 'an address never moves between blocks'); END;"

        /* An EC2 mutation about to be made; resolved against EC2 after a crash. The
         * kinds map to enum store_intent_kind (store.c); set_delete_on_termination,
         * detach_eni and tag_eni are no longer written but stay legal, so that a
         * store an older daemon left keeps opening. */
        "CREATE TABLE intents ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  kind TEXT NOT NULL CHECK (kind IN ('create_eni', 'attach_eni', 'set_delete_on_termination',"
        "                            'assign_ips', 'unassign_ips', 'detach_eni', 'delete_eni', 'tag_eni')),"
        "  client_token TEXT UNIQUE CHECK (length(client_token) BETWEEN 1 AND 64),"
        "  eni_id TEXT,"
        "  params TEXT NOT NULL CHECK (json_valid(params) AND json_type(params) = 'object'),"
        "  state TEXT NOT NULL CHECK (state IN ('open', 'done', 'failed', 'undone')),"
        "  result TEXT CHECK (result IS NULL OR json_valid(result)),"
        "  created_ms INTEGER NOT NULL,"
        "  finished_ms INTEGER,"
        "  CHECK ((state = 'open') = (finished_ms IS NULL))"
        ") STRICT;"
        "CREATE INDEX intents_open ON intents(id) WHERE state = 'open';";

/* The dotted quad of an integer address, as enis.primary_ip spells it (|| binds tighter than >> and &). */
#define DOTTED(a) "(((" a ") >> 24) & 255) || '.' || (((" a ") >> 16) & 255) || '.' || (((" a ") >> 8) & 255)" \
                  " || '.' || ((" a ") & 255)"
#define IS_PRIMARY(a) "EXISTS (SELECT 1 FROM enis p WHERE p.primary_ip = " DOTTED(a) ")"

/*
 * Version 2: an ENI's primary address is never a pool address. EC2 clones
 * (moto, LocalStack) list it among the addresses an Assign gave, and a store
 * written before this version may hold it. Any ENI's primary is refused as a
 * new address; an ENI recorded with a primary the pool holds free takes it
 * out of the pool; one a pod holds stays until released and then leaves the
 * pool (its /32 block is deleted), and it is never assigned again. Existing
 * free ones are dropped here.
 */
static const char schema_v2[] =
        "DELETE FROM blocks WHERE kind = 'ip' AND cidr IN (SELECT primary_ip || '/32' FROM enis)"
        "  AND NOT EXISTS (SELECT 1 FROM addresses a WHERE a.block = blocks.cidr AND a.state = 'assigned');"
        "CREATE TRIGGER addresses_not_a_primary BEFORE INSERT ON addresses"
        "  WHEN " IS_PRIMARY("NEW.addr")
        "  BEGIN SELECT RAISE(ABORT, 'an ENI''s primary address is never a pool address'); END;"
        "CREATE TRIGGER addresses_primary_never_assigned BEFORE UPDATE OF state ON addresses"
        "  WHEN NEW.state = 'assigned' AND OLD.state != 'assigned' AND " IS_PRIMARY("NEW.addr")
        "  BEGIN SELECT RAISE(ABORT, 'an ENI''s primary address is never assigned to a pod'); END;"
        "CREATE TRIGGER addresses_primary_leaves_on_release AFTER UPDATE OF state ON addresses"
        "  WHEN NEW.state = 'free' AND " IS_PRIMARY("NEW.addr")
        "  BEGIN DELETE FROM blocks WHERE cidr = NEW.block AND kind = 'ip'; END;"
        "CREATE TRIGGER enis_primary_leaves_pool AFTER INSERT ON enis"
        "  BEGIN DELETE FROM blocks WHERE cidr = NEW.primary_ip || '/32' AND NOT EXISTS"
        "    (SELECT 1 FROM addresses a WHERE a.block = blocks.cidr AND a.state = 'assigned'); END;"
        "CREATE TRIGGER enis_new_primary_leaves_pool AFTER UPDATE OF primary_ip ON enis"
        "  BEGIN DELETE FROM blocks WHERE cidr = NEW.primary_ip || '/32' AND NOT EXISTS"
        "    (SELECT 1 FROM addresses a WHERE a.block = blocks.cidr AND a.state = 'assigned'); END;";

/*
 * Version 3: IPv6 mode. The node's /80 is a block of its own table (its
 * 2^48 addresses cannot each have a row): prefixes6 holds it with its first
 * 80 bits as 20 hex digits. addresses6 has a row per /128 handed out, made
 * on demand at its offset in the /80 and kept when released, so the cooldown
 * and "never twice" hold as for IPv4: (block, off) is the key, (container_id,
 * ifname) unique, here and against the IPv4 table (triggers both ways). A
 * pod's IPv4 egress address (169.254.172.0/22, kept as its offset 2..1022:
 * .0 is the network, .1 the gateway, .1023 the broadcast) is unique among
 * live pods and cleared with the pod; egress6 remembers each one released
 * (free_since, cooldown_until) so it cools down as a /128 does, and holds
 * the ones the kernel shows in use by pods the store does not know (aws-node's,
 * cooldown_until the largest integer) until they are gone. A /80 EC2 no
 * longer lists that still has pods is withdrawn: kept for them, never picked.
 * The intents table is rebuilt to admit
 * the kind assign_ipv6_prefix (a CHECK cannot be altered in place); IPv4
 * tables are untouched.
 */
static const char schema_v3[] =
        "CREATE TABLE prefixes6 ("
        "  cidr TEXT PRIMARY KEY NOT NULL CHECK (cidr GLOB '*:*/80' AND length(cidr) <= 43),"
        "  eni_id TEXT NOT NULL REFERENCES enis(id) ON DELETE CASCADE,"
        "  base TEXT NOT NULL UNIQUE CHECK (length(base) = 20 AND base NOT GLOB '*[^0-9a-f]*'),"
        "  added_ms INTEGER NOT NULL,"
        "  withdrawn INTEGER NOT NULL DEFAULT 0 CHECK (withdrawn IN (0, 1))"
        ") STRICT;"
        "CREATE INDEX prefixes6_eni ON prefixes6(eni_id);"

        "CREATE TABLE addresses6 ("
        "  block TEXT NOT NULL REFERENCES prefixes6(cidr) ON DELETE CASCADE,"
        "  off INTEGER NOT NULL CHECK (off BETWEEN 0 AND 281474976710655),"
        "  state TEXT NOT NULL CHECK (state IN ('free', 'assigned')),"
        "  free_since INTEGER NOT NULL,"
        "  cooldown_until INTEGER NOT NULL DEFAULT 0,"
        "  container_id TEXT CHECK (length(container_id) BETWEEN 1 AND 256),"
        "  ifname TEXT CHECK (length(ifname) BETWEEN 1 AND 15),"
        "  netns TEXT CHECK (length(netns) <= 4096),"
        "  pod_namespace TEXT CHECK (length(pod_namespace) <= 253),"
        "  pod_name TEXT CHECK (length(pod_name) <= 253),"
        "  pod_uid TEXT CHECK (length(pod_uid) <= 253),"
        "  host_veth TEXT CHECK (length(host_veth) BETWEEN 1 AND 15),"
        "  assigned_ms INTEGER,"
        "  egress INTEGER UNIQUE CHECK (egress BETWEEN 2 AND 1022),"
        "  CHECK ((state = 'assigned') = (container_id IS NOT NULL AND ifname IS NOT NULL"
        "                                 AND assigned_ms IS NOT NULL)),"
        "  CHECK (state = 'assigned' OR (container_id IS NULL AND ifname IS NULL AND netns IS NULL"
        "         AND pod_namespace IS NULL AND pod_name IS NULL AND pod_uid IS NULL"
        "         AND host_veth IS NULL AND assigned_ms IS NULL AND egress IS NULL)),"
        "  PRIMARY KEY (block, off),"
        "  UNIQUE (container_id, ifname)"
        ") STRICT;"
        "CREATE INDEX addresses6_pick ON addresses6(state, cooldown_until);"
        "CREATE TABLE egress6 ("
        "  off INTEGER PRIMARY KEY CHECK (off BETWEEN 2 AND 1022),"
        "  free_since INTEGER NOT NULL,"
        "  cooldown_until INTEGER NOT NULL"
        ") STRICT;"

        "CREATE TRIGGER addresses6_assign_attached BEFORE UPDATE OF state ON addresses6"
        "  WHEN NEW.state = 'assigned' AND (SELECT e.state FROM prefixes6 p JOIN enis e ON e.id = p.eni_id"
        "                                   WHERE p.cidr = NEW.block) IS NOT 'attached'"
        "  BEGIN SELECT RAISE(ABORT, 'address is not on an attached ENI'); END;"
        "CREATE TRIGGER addresses6_insert_attached BEFORE INSERT ON addresses6"
        "  WHEN NEW.state = 'assigned' AND (SELECT e.state FROM prefixes6 p JOIN enis e ON e.id = p.eni_id"
        "                                   WHERE p.cidr = NEW.block) IS NOT 'attached'"
        "  BEGIN SELECT RAISE(ABORT, 'address is not on an attached ENI'); END;"
        "CREATE TRIGGER addresses6_fixed BEFORE UPDATE OF block, off ON addresses6"
        "  BEGIN SELECT RAISE(ABORT, 'an address never moves between blocks'); END;"
        "CREATE TRIGGER addresses6_one_per_attachment BEFORE INSERT ON addresses6"
        "  WHEN EXISTS (SELECT 1 FROM addresses x WHERE x.container_id = NEW.container_id AND x.ifname = NEW.ifname)"
        "  BEGIN SELECT RAISE(ABORT, 'the attachment holds an IPv4 address'); END;"
        "CREATE TRIGGER addresses6_one_per_attachment_u BEFORE UPDATE OF container_id ON addresses6"
        "  WHEN EXISTS (SELECT 1 FROM addresses x WHERE x.container_id = NEW.container_id AND x.ifname = NEW.ifname)"
        "  BEGIN SELECT RAISE(ABORT, 'the attachment holds an IPv4 address'); END;"
        "CREATE TRIGGER addresses_one_per_attachment BEFORE UPDATE OF container_id ON addresses"
        "  WHEN EXISTS (SELECT 1 FROM addresses6 x WHERE x.container_id = NEW.container_id AND x.ifname = NEW.ifname)"
        "  BEGIN SELECT RAISE(ABORT, 'the attachment holds an IPv6 address'); END;"

        "CREATE TABLE intents_v3 ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  kind TEXT NOT NULL CHECK (kind IN ('create_eni', 'attach_eni', 'set_delete_on_termination',"
        "                            'assign_ips', 'unassign_ips', 'detach_eni', 'delete_eni', 'tag_eni',"
        "                            'assign_ipv6_prefix')),"
        "  client_token TEXT UNIQUE CHECK (length(client_token) BETWEEN 1 AND 64),"
        "  eni_id TEXT,"
        "  params TEXT NOT NULL CHECK (json_valid(params) AND json_type(params) = 'object'),"
        "  state TEXT NOT NULL CHECK (state IN ('open', 'done', 'failed', 'undone')),"
        "  result TEXT CHECK (result IS NULL OR json_valid(result)),"
        "  created_ms INTEGER NOT NULL,"
        "  finished_ms INTEGER,"
        "  CHECK ((state = 'open') = (finished_ms IS NULL))"
        ") STRICT;"
        "INSERT INTO intents_v3 SELECT * FROM intents;"
        "DROP TABLE intents;"
        "ALTER TABLE intents_v3 RENAME TO intents;"
        "CREATE INDEX intents_open ON intents(id) WHERE state = 'open';";

/*
 * Version 4: an ENI whose addresses are not the pods' (no_pods: custom
 * networking's primary, an ENI in a subnet tagged kubernetes.io/role/cni=0),
 * as the reconciler last judged it. Kept here, not only in the plan, so that
 * the pick skips it between passes and after a restart.
 */
static const char schema_v4[] =
        "ALTER TABLE enis ADD COLUMN no_pods INTEGER NOT NULL DEFAULT 0 CHECK (no_pods IN (0, 1));";

/*
 * Version 5: IPv6 egress of IPv4 pods (ENABLE_V6_EGRESS, aws-node's
 * egress-cni in an IPv4 cluster). A pod's ULA from fd00::ac:0/118 is kept
 * on its IPv4 row as its offset 2..1022, as addresses6.egress keeps an IPv6
 * pod's IPv4 one: unique among live pods, only on an assigned row, cleared
 * with the pod. egress4 is egress6's twin for these offsets (released ones
 * cooling down, ones the kernel shows in use by pods the store does not
 * know). A CHECK cannot name another column's table constraint through
 * ALTER TABLE, so uniqueness is a partial index.
 */
static const char schema_v5[] =
        "ALTER TABLE addresses ADD COLUMN egress INTEGER"
        "  CHECK (egress IS NULL OR (egress BETWEEN 2 AND 1022 AND state = 'assigned'));"
        "CREATE UNIQUE INDEX addresses_egress ON addresses(egress) WHERE egress IS NOT NULL;"
        "CREATE TABLE egress4 ("
        "  off INTEGER PRIMARY KEY CHECK (off BETWEEN 2 AND 1022),"
        "  free_since INTEGER NOT NULL,"
        "  cooldown_until INTEGER NOT NULL"
        ") STRICT;";

const struct store_migration store_migrations[] = {
        { 1, schema_v1 },
        { 2, schema_v2 },
        { 3, schema_v3 },
        { 4, schema_v4 },
        { 5, schema_v5 },
};
const size_t store_n_migrations = sizeof store_migrations / sizeof store_migrations[0];

static int user_version(sqlite3 *db, int *ret) {
        sqlite3_stmt *st = NULL;
        int r = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
        if (r == SQLITE_OK && (r = sqlite3_step(st)) == SQLITE_ROW) {
                *ret = sqlite3_column_int(st, 0);
                r = SQLITE_OK;
        }
        sqlite3_finalize(st);
        return r;
}

static int apply(sqlite3 *db, const struct store_migration *m, const char *path, struct errmsg *err) {
        char *msg = NULL;
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d;", m->version);
        int r = sqlite3_exec(db, "BEGIN IMMEDIATE;", NULL, NULL, &msg);
        if (r == SQLITE_OK)
                r = sqlite3_exec(db, m->sql, NULL, NULL, &msg);
        if (r == SQLITE_OK)
                r = sqlite3_exec(db, bump, NULL, NULL, &msg);
        if (r == SQLITE_OK)
                r = sqlite3_exec(db, "COMMIT;", NULL, NULL, &msg);
        if (r != SQLITE_OK) {
                int e = store_errno_from_sqlite(r);
                errmsg_set(err, e, "store %s: migration to schema %d failed: %s", path, m->version,
                           msg ? msg : sqlite3_errstr(r));
                sqlite3_free(msg);
                sqlite3_exec(db, "ROLLBACK;", NULL, NULL, NULL);
                return e;
        }
        return 0;
}

int store_schema_migrate(sqlite3 *db, const struct store_migration *migrations, size_t n,
                         const char *path, struct errmsg *err) {
        int version = 0;
        int r = user_version(db, &version);
        if (r != SQLITE_OK)
                return errmsg_set(err, store_errno_from_sqlite(r),
                                  "store %s: cannot read it: %s; leaving the file untouched", path,
                                  sqlite3_errstr(r));
        int latest = n ? migrations[n - 1].version : 0;
        if (version > latest)
                return errmsg_set(err, -EPROTONOSUPPORT,
                                  "store %s: schema version %d is newer than this build's %d "
                                  "(written by a newer vpc-ipam?); refusing to open it",
                                  path, version, latest);
        for (size_t i = 0; i < n; i++) {
                if (migrations[i].version <= version)
                        continue;
                r = apply(db, &migrations[i], path, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * store: the pool's operations over SQLite (see store.h for the model).
 *
 * Each public operation is one transaction: BEGIN IMMEDIATE takes the write
 * lock up front, so two handles never interleave a read-then-write. The hot
 * statements (assign, release, lookup) are prepared once per handle and kept
 * in a table indexed by enum stmt_id. Addresses are integers in the database
 * (host byte order), so range checks and ordering are plain comparisons; they
 * are turned into dotted quads only at this file's boundary. IPv6 /128s
 * (schema 3) are kept as their /80's first 80 bits (20 hex digits, in
 * prefixes6) and a 48-bit offset (in addresses6), for the same reason; the
 * IPv6 section below holds their operations, and lookup, release, leases and
 * gc answer for both families.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <pthread.h>
#include <sqlite3.h>

#include "store.h"
#include "store-schema.h"

enum stmt_id {
        ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
        ST_LEASE_BY_ATTACHMENT, ST_PICK_FREE, ST_ASSIGN, ST_RELEASE, ST_LEASE_BY_ADDR,
        ST_ASSIGNED_ALL,
        ST_ENI_PUT, ST_ENI_GET, ST_ENI_SET_STATE, ST_ENI_ALL, ST_ENI_DELETE, ST_ENI_ASSIGNED,
        ST_BLOCK_OWNER, ST_BLOCK_INSERT, ST_ADDR_INSERT, ST_BLOCK_ASSIGNED, ST_BLOCK_DELETE,
        ST_PICK_RELEASABLE, ST_MARK_RELEASING, ST_UNMARK_RELEASING, ST_BLOCKS_OF, ST_BLOCKS_ALL,
        ST_STATS, ST_PLAN_ENIS,
        ST_INTENT_BEGIN, ST_INTENT_END, ST_INTENT_OPEN, ST_INTENT_PRUNE,
        ST_ITYPE_PUT, ST_ITYPE_GET, ST_META_SET, ST_META_GET,
        ST_ADDR_EXISTS, ST_ENI_BUSY, ST_UNMARK_ALL, ST_BLOCK_ADDED, ST_PRIMARY_OWNER, ST_UNMARK_ADDR,
        ST_PICK_EMPTY_PREFIXES, ST_BLOCK_USE, ST_ENI_SET_NO_PODS,
        ST6_PREFIX_INSERT, ST6_PREFIX_OWNER, ST6_PREFIXES_OF, ST6_PREFIXES_ALL, ST6_LEASE_BY_ATTACHMENT,
        ST6_ASSIGNED_ALL, ST6_PICK_PREFIX, ST6_PICK_REUSE, ST6_LOWEST_UNUSED, ST6_INSERT, ST6_ASSIGN, ST6_RELEASE,
        ST6_EGRESS_PICK, ST6_STATS, ST6_V4_HELD, ST6_PREFIX_BY_BASE, ST6_ROW_STATE, ST6_EGRESS_HELD,
        ST6_EGRESS_REUSE, ST6_EGRESS_COOL, ST6_EGRESS_UNRESERVE, ST6_EGRESS_RESERVE, ST6_PREFIX_HELD,
        ST6_PREFIX_DROP, ST6_PREFIX_WITHDRAW,
        ST4_EGRESS_PICK, ST4_EGRESS_HELD, ST4_EGRESS_REUSE, ST4_EGRESS_COOL, ST4_EGRESS_UNRESERVE,
        ST4_EGRESS_RESERVE, ST4_EGRESS_SET, ST4_EGRESS_KEEP_ENI, ST4_EGRESS_KEEP_BLOCK,
        ST__MAX
};

#define LEASE_COLUMNS \
        "a.addr, e.id, e.device_index, e.route_table, e.subnet_cidr, a.container_id, a.ifname," \
        " a.netns, a.pod_namespace, a.pod_name, a.pod_uid, a.assigned_ms, a.host_veth, a.egress"
#define LEASE_FROM " FROM addresses a JOIN blocks b ON b.cidr = a.block JOIN enis e ON e.id = b.eni_id"
/* An IPv6 lease: the /80's base (20 hex digits) and offset make the /128. */
#define LEASE6_COLUMNS \
        "p.base, a.off, e.id, e.device_index, e.route_table, e.subnet_cidr, a.container_id, a.ifname," \
        " a.netns, a.pod_namespace, a.pod_name, a.pod_uid, a.assigned_ms, a.host_veth, a.egress"
#define LEASE6_FROM " FROM addresses6 a JOIN prefixes6 p ON p.cidr = a.block JOIN enis e ON e.id = p.eni_id"
#define ENI_COLUMNS \
        "id, mac, device_index, network_card, subnet_id, subnet_cidr, primary_ip, route_table," \
        " is_primary, state, created_ms"
/* Addresses of block b not usable now: assigned, releasing or cooling (?1 = now). */
#define BUSY_IN_BLOCK \
        "SELECT COUNT(*) FROM addresses x WHERE x.block = b.cidr AND (x.state != 'free' OR x.cooldown_until > ?1)"
/*
 * A pod's egress address of the other family, kept as an offset in its
 * range on the pod's row of table A (addresses6.egress: an IPv6 pod's IPv4
 * one; addresses.egress, schema 5: an IPv4 pod's IPv6 one), with the
 * released and reserved ones in table G (egress6, egress4). The same
 * statements serve both pairs.
 */
#define EGRESS_PICK(A, G) \
        "SELECT o FROM (SELECT 2 AS o UNION ALL SELECT egress + 1 FROM " A " WHERE egress IS NOT NULL" \
        " UNION ALL SELECT off + 1 FROM " G ") WHERE o <= 1022" \
        " AND NOT EXISTS (SELECT 1 FROM " A " x WHERE x.egress = o)" \
        " AND NOT EXISTS (SELECT 1 FROM " G " g WHERE g.off = o) ORDER BY o LIMIT 1"
#define EGRESS_HELD(A) "SELECT COUNT(*) FROM " A " WHERE egress = ?1"
#define EGRESS_REUSE(A, G) \
        "SELECT off FROM " G " g WHERE cooldown_until <= ?1" \
        " AND NOT EXISTS (SELECT 1 FROM " A " x WHERE x.egress = g.off) ORDER BY free_since, off LIMIT 1"
#define EGRESS_COOL(A, G) \
        "INSERT OR REPLACE INTO " G " (off, free_since, cooldown_until) SELECT egress, ?2, ?3 FROM " A \
        " WHERE container_id = ?1 AND ifname = ?4 AND state = 'assigned' AND egress IS NOT NULL"
#define EGRESS_UNRESERVE(G) \
        "UPDATE " G " SET free_since = ?1, cooldown_until = ?2 WHERE cooldown_until = 9223372036854775807"
#define EGRESS_RESERVE(A, G) \
        "INSERT OR REPLACE INTO " G " (off, free_since, cooldown_until)" \
        " SELECT ?1, ?2, 9223372036854775807 WHERE NOT EXISTS (SELECT 1 FROM " A " WHERE egress = ?1)"
#define EGRESS_COOLING(A, G) \
        "(SELECT COUNT(*) FROM " G " g WHERE g.cooldown_until > ?1" \
        "  AND NOT EXISTS (SELECT 1 FROM " A " x WHERE x.egress = g.off))"
#define ATTACHED_ADDRESSES \
        " FROM addresses a JOIN blocks b ON b.cidr = a.block JOIN enis e ON e.id = b.eni_id" \
        " WHERE e.state = 'attached'"

static const char *const stmt_sql[ST__MAX] = {
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_ROLLBACK] = "ROLLBACK",
        [ST_LEASE_BY_ATTACHMENT] = "SELECT " LEASE_COLUMNS LEASE_FROM " WHERE a.container_id = ?1 AND a.ifname = ?2",
        [ST_PICK_FREE] =
                "SELECT a.addr FROM addresses a JOIN blocks b ON b.cidr = a.block"
                " JOIN enis e ON e.id = b.eni_id"
                " WHERE a.state = 'free' AND a.cooldown_until <= ?1 AND e.state = 'attached'"
                " AND NOT (?3 AND e.is_primary) AND NOT e.no_pods"
                " ORDER BY (b.kind = 'prefix') = ?2 DESC,"
                " CASE WHEN b.kind = 'prefix' THEN (" BUSY_IN_BLOCK ") END DESC,"
                " CASE WHEN b.kind = 'prefix' THEN a.addr END, a.free_since, a.addr LIMIT 1",
        [ST_ASSIGN] =
                "UPDATE addresses SET state = 'assigned', container_id = ?2, ifname = ?3, netns = ?4,"
                " pod_namespace = ?5, pod_name = ?6, pod_uid = ?7, assigned_ms = ?8, host_veth = ?9"
                " WHERE addr = ?1 AND state = 'free'",
        [ST_RELEASE] =
                "UPDATE addresses SET state = 'free', container_id = NULL, ifname = NULL, netns = NULL,"
                " pod_namespace = NULL, pod_name = NULL, pod_uid = NULL, host_veth = NULL, assigned_ms = NULL,"
                " egress = NULL, free_since = ?2, cooldown_until = ?3 WHERE addr = ?1 AND state = 'assigned'",
        [ST_LEASE_BY_ADDR] = "SELECT " LEASE_COLUMNS LEASE_FROM " WHERE a.addr = ?1",
        [ST_ASSIGNED_ALL] = "SELECT " LEASE_COLUMNS LEASE_FROM " WHERE a.state = 'assigned' ORDER BY a.addr",
        [ST_ENI_PUT] =
                "INSERT INTO enis (" ENI_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                " ON CONFLICT (id) DO UPDATE SET mac = ?2, device_index = ?3, network_card = ?4,"
                " subnet_id = ?5, subnet_cidr = ?6, primary_ip = ?7, route_table = ?8, is_primary = ?9,"
                " state = ?10",
        [ST_ENI_GET] = "SELECT " ENI_COLUMNS ", no_pods FROM enis WHERE id = ?1",
        [ST_ENI_SET_STATE] = "UPDATE enis SET state = ?2 WHERE id = ?1",
        [ST_ENI_ALL] = "SELECT " ENI_COLUMNS ", no_pods FROM enis ORDER BY network_card, device_index",
        [ST_ENI_SET_NO_PODS] = "UPDATE enis SET no_pods = ?2 WHERE id = ?1",
        [ST_ENI_DELETE] = "DELETE FROM enis WHERE id = ?1",
        [ST_ENI_ASSIGNED] =
                "SELECT COUNT(*) FROM addresses a JOIN blocks b ON b.cidr = a.block"
                " WHERE b.eni_id = ?1 AND a.state = 'assigned'",
        [ST_BLOCK_OWNER] = "SELECT eni_id FROM blocks WHERE cidr = ?1",
        [ST_BLOCK_INSERT] =
                "INSERT INTO blocks (cidr, eni_id, kind, first, size, added_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [ST_ADDR_INSERT] =
                "INSERT INTO addresses (addr, block, state, free_since) VALUES (?1, ?2, 'free', ?3)",
        [ST_BLOCK_ASSIGNED] = "SELECT COUNT(*) FROM addresses WHERE block = ?1 AND state = 'assigned'",
        [ST_BLOCK_DELETE] = "DELETE FROM blocks WHERE cidr = ?1",
        [ST_PICK_RELEASABLE] =
                "SELECT b.cidr FROM blocks b JOIN addresses a ON a.block = b.cidr"
                " WHERE b.eni_id = ?1 AND b.kind = 'ip' AND a.state = 'free' AND a.cooldown_until <= ?2"
                " ORDER BY a.free_since, a.addr LIMIT ?3",
        [ST_MARK_RELEASING] = "UPDATE addresses SET state = 'releasing' WHERE block = ?1 AND state = 'free'",
        [ST_UNMARK_RELEASING] = "UPDATE addresses SET state = 'free' WHERE block = ?1 AND state = 'releasing'",
        [ST_BLOCKS_OF] = "SELECT cidr FROM blocks WHERE eni_id = ?1 ORDER BY first",
        [ST_BLOCKS_ALL] = "SELECT cidr FROM blocks ORDER BY first",
        [ST_STATS] =
                "SELECT COUNT(*), COALESCE(SUM(a.state = 'assigned'), 0),"
                " COALESCE(SUM(a.state = 'free' AND a.cooldown_until > ?1), 0),"
                " COALESCE(SUM(a.state = 'free' AND a.cooldown_until <= ?1), 0),"
                " COALESCE(SUM(a.state = 'releasing'), 0),"
                " (SELECT COUNT(*) FROM enis WHERE state = 'attached'),"
                " (SELECT COUNT(*) FROM blocks p JOIN enis q ON q.id = p.eni_id"
                "  WHERE p.kind = 'prefix' AND q.state = 'attached')" ATTACHED_ADDRESSES,
        [ST_PLAN_ENIS] =
                "SELECT e.id, e.device_index, e.is_primary, e.created_ms,"
                " COALESCE(SUM(a.state = 'free' AND a.cooldown_until <= ?1), 0),"
                " COALESCE(SUM(a.state = 'assigned'), 0),"
                " COALESCE(SUM(a.state = 'free' AND a.cooldown_until > ?1), 0),"
                " COALESCE(SUM(a.state = 'releasing'), 0),"
                " (SELECT COUNT(*) FROM blocks b WHERE b.eni_id = e.id AND b.kind = 'prefix'),"
                " (SELECT COUNT(*) FROM blocks b WHERE b.eni_id = e.id AND b.kind = 'prefix'"
                "  AND (" BUSY_IN_BLOCK ") = 0),"
                " COALESCE(SUM(b.kind = 'ip' AND a.state = 'free' AND a.cooldown_until <= ?1), 0), e.no_pods"
                " FROM enis e LEFT JOIN blocks b ON b.eni_id = e.id LEFT JOIN addresses a ON a.block = b.cidr"
                " WHERE e.state = 'attached' GROUP BY e.id ORDER BY e.network_card, e.device_index",
        [ST_INTENT_BEGIN] =
                "INSERT INTO intents (kind, client_token, eni_id, params, state, created_ms)"
                " VALUES (?1, ?2, ?3, ?4, 'open', ?5)",
        [ST_INTENT_END] =
                "UPDATE intents SET state = ?2, result = ?3, finished_ms = ?4 WHERE id = ?1 AND state = 'open'",
        [ST_INTENT_OPEN] =
                "SELECT id, kind, COALESCE(client_token, ''), COALESCE(eni_id, ''), params, created_ms"
                " FROM intents WHERE state = 'open' ORDER BY id",
        [ST_INTENT_PRUNE] =
                "DELETE FROM intents WHERE state != 'open' AND id < (SELECT MAX(id) FROM intents) - 1000",
        [ST_ITYPE_PUT] =
                "INSERT OR REPLACE INTO instance_types (name, max_enis, ipv4_per_eni, prefix_supported,"
                " network_cards, fetched_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        [ST_ITYPE_GET] =
                "SELECT name, max_enis, ipv4_per_eni, prefix_supported, network_cards, fetched_ms"
                " FROM instance_types WHERE name = ?1",
        [ST_META_SET] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
        [ST_ADDR_EXISTS] = "SELECT block FROM addresses WHERE addr = ?1",
        [ST_ENI_BUSY] =
                "SELECT COUNT(*) FROM addresses a JOIN blocks b ON b.cidr = a.block WHERE b.eni_id = ?1"
                " AND (a.state != 'free' OR a.cooldown_until > ?2)",
        [ST_UNMARK_ALL] = "UPDATE addresses SET state = 'free' WHERE state = 'releasing'",
        [ST_BLOCK_ADDED] =
                "SELECT b.added_ms, COALESCE(MAX(a.state = 'releasing'), 0) FROM blocks b"
                " LEFT JOIN addresses a ON a.block = b.cidr WHERE b.cidr = ?1 GROUP BY b.cidr",
        [ST_PRIMARY_OWNER] = "SELECT id FROM enis WHERE primary_ip = ?1",
        [ST_UNMARK_ADDR] = "UPDATE addresses SET state = 'free' WHERE addr = ?1 AND state = 'releasing'",
        [ST_PICK_EMPTY_PREFIXES] =
                "SELECT b.cidr FROM blocks b WHERE b.eni_id = ?1 AND b.kind = 'prefix'"
                " AND (SELECT COUNT(*) FROM addresses x WHERE x.block = b.cidr"
                "      AND (x.state != 'free' OR x.cooldown_until > ?2)) = 0"
                " ORDER BY b.first DESC LIMIT ?3",
        [ST_BLOCK_USE] =
                "SELECT b.cidr, b.kind = 'prefix', COUNT(a.addr), COALESCE(SUM(a.state = 'assigned'), 0),"
                " COALESCE(SUM(a.state = 'free' AND a.cooldown_until <= ?2), 0),"
                " COALESCE(SUM(a.state = 'free' AND a.cooldown_until > ?2), 0),"
                " COALESCE(SUM(a.state = 'releasing'), 0)"
                " FROM blocks b LEFT JOIN addresses a ON a.block = b.cidr WHERE b.eni_id = ?1"
                " GROUP BY b.cidr ORDER BY b.first",
        /* IPv6 (schema 3): prefixes6 and addresses6, see store-schema.c */
        [ST6_PREFIX_INSERT] = "INSERT INTO prefixes6 (cidr, eni_id, base, added_ms) VALUES (?1, ?2, ?3, ?4)",
        [ST6_PREFIX_OWNER] = "SELECT eni_id FROM prefixes6 WHERE cidr = ?1",
        [ST6_PREFIXES_OF] = "SELECT cidr FROM prefixes6 WHERE eni_id = ?1 ORDER BY base",
        [ST6_PREFIXES_ALL] = "SELECT cidr FROM prefixes6 ORDER BY base",
        [ST6_LEASE_BY_ATTACHMENT] = "SELECT " LEASE6_COLUMNS LEASE6_FROM " WHERE a.container_id = ?1 AND a.ifname = ?2",
        [ST6_ASSIGNED_ALL] = "SELECT " LEASE6_COLUMNS LEASE6_FROM " WHERE a.state = 'assigned' ORDER BY p.base, a.off",
        [ST6_PICK_PREFIX] =
                "SELECT p.cidr FROM prefixes6 p JOIN enis e ON e.id = p.eni_id WHERE e.state = 'attached'"
                " AND p.withdrawn = 0 ORDER BY p.base LIMIT 1",
        [ST6_PICK_REUSE] =
                "SELECT off FROM addresses6 WHERE block = ?1 AND state = 'free' AND cooldown_until <= ?2"
                " ORDER BY off LIMIT 1",
        [ST6_LOWEST_UNUSED] =
                "SELECT o FROM (SELECT 0 AS o UNION ALL SELECT off + 1 FROM addresses6 WHERE block = ?1)"
                " WHERE o <= 281474976710655 AND NOT EXISTS (SELECT 1 FROM addresses6 x WHERE x.block = ?1"
                " AND x.off = o) ORDER BY o LIMIT 1",
        [ST6_INSERT] =
                "INSERT INTO addresses6 (block, off, state, free_since, container_id, ifname, netns, pod_namespace,"
                " pod_name, pod_uid, assigned_ms, host_veth, egress)"
                " VALUES (?1, ?2, 'assigned', ?8, ?3, ?4, ?5, ?6, ?7, ?10, ?8, ?9, ?11)",
        [ST6_ASSIGN] =
                "UPDATE addresses6 SET state = 'assigned', container_id = ?3, ifname = ?4, netns = ?5,"
                " pod_namespace = ?6, pod_name = ?7, assigned_ms = ?8, host_veth = ?9, pod_uid = ?10, egress = ?11"
                " WHERE block = ?1 AND off = ?2 AND state = 'free'",
        [ST6_RELEASE] =
                "UPDATE addresses6 SET state = 'free', container_id = NULL, ifname = NULL, netns = NULL,"
                " pod_namespace = NULL, pod_name = NULL, pod_uid = NULL, host_veth = NULL, assigned_ms = NULL,"
                " egress = NULL, free_since = ?2, cooldown_until = ?3"
                " WHERE container_id = ?1 AND ifname = ?4 AND state = 'assigned'",
        [ST6_EGRESS_PICK] = EGRESS_PICK("addresses6", "egress6"),
        [ST6_STATS] =
                "SELECT (SELECT COUNT(*) FROM prefixes6), COALESCE(SUM(state = 'assigned'), 0),"
                " COALESCE(SUM(state = 'free' AND cooldown_until > ?1), 0), COUNT(egress),"
                " " EGRESS_COOLING("addresses6", "egress6") ","
                " (SELECT COUNT(egress) FROM addresses), " EGRESS_COOLING("addresses", "egress4") " FROM addresses6",
        [ST6_V4_HELD] = "SELECT COUNT(*) FROM addresses WHERE container_id = ?1 AND ifname = ?2",
        [ST6_PREFIX_BY_BASE] =
                "SELECT p.cidr, e.state = 'attached' FROM prefixes6 p JOIN enis e ON e.id = p.eni_id WHERE p.base = ?1",
        [ST6_ROW_STATE] = "SELECT state = 'assigned' FROM addresses6 WHERE block = ?1 AND off = ?2",
        [ST6_EGRESS_HELD] = EGRESS_HELD("addresses6"),
        [ST6_EGRESS_REUSE] = EGRESS_REUSE("addresses6", "egress6"),
        [ST6_EGRESS_COOL] = EGRESS_COOL("addresses6", "egress6"),
        [ST6_EGRESS_UNRESERVE] = EGRESS_UNRESERVE("egress6"),
        [ST6_EGRESS_RESERVE] = EGRESS_RESERVE("addresses6", "egress6"),
        [ST6_PREFIX_HELD] =
                "SELECT COUNT(*) FROM addresses6 WHERE block = ?1 AND state = 'assigned'",
        [ST6_PREFIX_DROP] = "DELETE FROM prefixes6 WHERE cidr = ?1",
        [ST6_PREFIX_WITHDRAW] = "UPDATE prefixes6 SET withdrawn = ?2 WHERE cidr = ?1",
        /* IPv6 egress of IPv4 pods (schema 5) */
        [ST4_EGRESS_PICK] = EGRESS_PICK("addresses", "egress4"),
        [ST4_EGRESS_HELD] = EGRESS_HELD("addresses"),
        [ST4_EGRESS_REUSE] = EGRESS_REUSE("addresses", "egress4"),
        [ST4_EGRESS_COOL] = EGRESS_COOL("addresses", "egress4"),
        [ST4_EGRESS_UNRESERVE] = EGRESS_UNRESERVE("egress4"),
        [ST4_EGRESS_RESERVE] = EGRESS_RESERVE("addresses", "egress4"),
        [ST4_EGRESS_SET] = "UPDATE addresses SET egress = ?2 WHERE addr = ?1 AND state = 'assigned'",
        /* A removed ENI's or block's pods may still run with their egress address: reserved, as one in use
         * by a pod the store does not know, until the next start looks at the kernel (EGRESS_UNRESERVE) */
        [ST4_EGRESS_KEEP_ENI] =
                "INSERT OR REPLACE INTO egress4 (off, free_since, cooldown_until)"
                " SELECT a.egress, 0, 9223372036854775807 FROM addresses a JOIN blocks b ON b.cidr = a.block"
                " WHERE b.eni_id = ?1 AND a.egress IS NOT NULL",
        [ST4_EGRESS_KEEP_BLOCK] =
                "INSERT OR REPLACE INTO egress4 (off, free_since, cooldown_until)"
                " SELECT egress, 0, 9223372036854775807 FROM addresses WHERE block = ?1 AND egress IS NOT NULL",
};

struct store {
        sqlite3 *db;
        char *path;
        sqlite3_stmt *stmts[ST__MAX];
        pthread_mutex_t clock_lock;
        bool clock_set;
        int64_t clock_in, clock_now;  /* the last wall reading, and the store's time then */
        dev_t dev;                      /* the file opened: a new one at path is another store */
        ino_t ino;
        bool has_identity;              /* false for a database that is no file (":memory:") */
        unsigned epoch;                 /* reopen_epoch when opened */
        bool ips_first;                 /* store_prefer_ips */
        bool skip_primary;              /* store_skip_primary */
        bool v6_egress;                 /* store_v6_egress */
        bool serving;                   /* store_set_serving(): commits unsynced, no checkpoints */
};

/* Process-wide: store_reopen_all() bumps it; a handle behind reopens before its next operation. */
static _Atomic unsigned reopen_epoch;
/* Process-wide: writes refused for want of space, permission or I/O, and the last one's errno. */
static _Atomic unsigned long write_failures;
static _Atomic int last_write_errno;

/*
 * The store's clock for cooldowns: the callers' wall-clock milliseconds with
 * backward steps taken out, so that while the process runs a cooldown lasts
 * its length of real time whatever the wall clock does. The wall clock is
 * trusted across restarts only: the first reading of a handle (a start)
 * bounds every stored cooldown by its own length (cooldown_until -
 * free_since, the period it was given), so a clock that went back while the
 * daemon was down never extends one either.
 */
static void bound_cooldowns(store *s, int64_t now_ms) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE addresses SET cooldown_until = MIN(cooldown_until, ?1 + cooldown_until - free_since)"
                               " WHERE state = 'free' AND cooldown_until > ?1",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_int64(st, 1, now_ms);
        (void)sqlite3_step(st);
        sqlite3_finalize(st);
        if (sqlite3_prepare_v2(s->db,
                               "UPDATE addresses6 SET cooldown_until = MIN(cooldown_until, ?1 + cooldown_until - free_since)"
                               " WHERE state = 'free' AND cooldown_until > ?1",
                               -1, &st, NULL) != SQLITE_OK)
                return;
        sqlite3_bind_int64(st, 1, now_ms);
        (void)sqlite3_step(st);
        sqlite3_finalize(st);
}

static int64_t store_now(store *s, int64_t now_ms) {
        if (!s)
                return now_ms;
        pthread_mutex_lock(&s->clock_lock);
        if (!s->clock_set) {
                s->clock_set = true;
                s->clock_in = s->clock_now = now_ms;
                bound_cooldowns(s, now_ms);
        } else {
                if (now_ms > s->clock_in)
                        s->clock_now += now_ms - s->clock_in;
                s->clock_in = now_ms;
        }
        int64_t r = s->clock_now;
        pthread_mutex_unlock(&s->clock_lock);
        return r;
}

static const char *const eni_state_names[] = {
        [STORE_ENI_ATTACHING] = "attaching", [STORE_ENI_ATTACHED] = "attached",
        [STORE_ENI_DETACHING] = "detaching",
};
static const char *const intent_state_names[] = {
        [STORE_INTENT_OPEN] = "open", [STORE_INTENT_DONE] = "done",
        [STORE_INTENT_FAILED] = "failed", [STORE_INTENT_UNDONE] = "undone",
};

/* The on-disk strings: existing stores hold them, so they never change. */
static const char *const intent_kind_names[] = {
        [STORE_INTENT_LEGACY] = "legacy", [STORE_INTENT_CREATE_ENI] = "create_eni",
        [STORE_INTENT_ATTACH_ENI] = "attach_eni", [STORE_INTENT_DELETE_ENI] = "delete_eni",
        [STORE_INTENT_ASSIGN_IPS] = "assign_ips", [STORE_INTENT_UNASSIGN_IPS] = "unassign_ips",
        [STORE_INTENT_ASSIGN_IPV6_PREFIX] = "assign_ipv6_prefix",
};

const char *store_eni_state_name(enum store_eni_state state) {
        return (unsigned)state <= STORE_ENI_DETACHING ? eni_state_names[state] : "?";
}

const char *store_intent_state_name(enum store_intent_state state) {
        return (unsigned)state <= STORE_INTENT_UNDONE ? intent_state_names[state] : "?";
}

const char *store_intent_kind_name(enum store_intent_kind kind) {
        return (unsigned)kind <= STORE_INTENT_ASSIGN_IPV6_PREFIX ? intent_kind_names[kind] : "?";
}

/* A kind this version does not write (an older daemon's) reads as STORE_INTENT_LEGACY. */
static enum store_intent_kind intent_kind_parse(const char *s) {
        for (unsigned k = STORE_INTENT_CREATE_ENI; k <= STORE_INTENT_ASSIGN_IPV6_PREFIX; k++)
                if (strcmp(s, intent_kind_names[k]) == 0)
                        return (enum store_intent_kind)k;
        return STORE_INTENT_LEGACY;
}

static int eni_state_parse(const char *s, enum store_eni_state *ret) {
        for (size_t i = 0; i < sizeof eni_state_names / sizeof eni_state_names[0]; i++)
                if (s && strcmp(s, eni_state_names[i]) == 0) {
                        *ret = (enum store_eni_state)i;
                        return 0;
                }
        return -EBADMSG;
}

/* --- SQLite plumbing --------------------------------------------------- */


/* A cached statement, reset and with bindings cleared. */
static sqlite3_stmt *stmt(store *s, enum stmt_id id) {
        sqlite3_stmt *st = s->stmts[id];
        if (!st) {
                if (sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
                        return NULL;
                s->stmts[id] = st;
        } else {
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
        }
        return st;
}

static bool is_write_fault(int rc) {
        switch (rc & 0xff) {
        case SQLITE_FULL: case SQLITE_IOERR: case SQLITE_READONLY: case SQLITE_CANTOPEN:
        case SQLITE_CORRUPT: case SQLITE_NOTADB: case SQLITE_PERM:
                return true;
        }
        return false;
}

/* Run a statement that returns no row. */
static int exec_done(sqlite3_stmt *st) {
        if (!st)
                return -ENOMEM;
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_DONE)
                return 0;
        int r = store_errno_from_sqlite(rc);
        if (is_write_fault(rc)) {
                atomic_store(&last_write_errno, r);
                atomic_fetch_add(&write_failures, 1);
        }
        return r;
}

unsigned long store_write_failures(int *ret_last_errno) {
        if (ret_last_errno)
                *ret_last_errno = atomic_load(&last_write_errno);
        return atomic_load(&write_failures);
}

static int store_reopen_locked(store *s, struct errmsg *err);

/* At each public operation: a handle behind store_reopen_all() reopens first (a failure keeps it, retried next time). */
static void follow(store *s) {
        if (s && s->epoch != atomic_load(&reopen_epoch) && sqlite3_get_autocommit(s->db))
                (void)store_reopen_locked(s, NULL);
}

static int tx_begin(store *s) {
        return exec_done(stmt(s, ST_BEGIN));
}

/* Commit when r >= 0, else roll back; returns r or the commit's error. */
static int tx_end(store *s, int r) {
        if (r >= 0) {
                int c = exec_done(stmt(s, ST_COMMIT));
                if (c == 0)
                        return r;
                r = c;
        }
        if (!sqlite3_get_autocommit(s->db))
                exec_done(stmt(s, ST_ROLLBACK));
        return r;
}

/* The single integer of a one-row, one-column query; -ENOENT when no row. */
static int query_int(sqlite3_stmt *st, int64_t *ret) {
        if (!st)
                return -ENOMEM;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

static void copy_col(char *dst, size_t len, sqlite3_stmt *st, int col) {
        const unsigned char *v = sqlite3_column_text(st, col);
        snprintf(dst, len, "%s", v ? (const char *)v : "");
}

/*
 * Run a row query and collect each row, converted by fill, into a malloc'd
 * array of elem-sized entries (grown by doubling). The statement is reset.
 */
static int collect_rows(sqlite3_stmt *st, size_t elem, void (*fill)(sqlite3_stmt *st, void *dst),
                        void **ret, size_t *ret_n) {
        char *v = NULL;
        size_t n = 0, cap = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        char *nv = realloc(v, cap * elem);
                        if (!nv) {
                                rc = SQLITE_NOMEM;
                                break;
                        }
                        v = nv;
                }
                fill(st, v + n++ * elem);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
                free(v);
                return store_errno_from_sqlite(rc);
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* realloc to n elements of size; the old block is freed on failure. */
static void *reallocarray_or_free(void *p, size_t n, size_t size) {
        void *q = reallocarray(p, n, size);
        if (!q)
                free(p);
        return q;
}

/* --- addresses -------------------------------------------------------- */

static int ip_parse(const char *s, uint32_t *ret) {
        struct in_addr a;
        if (!s || inet_pton(AF_INET, s, &a) != 1)
                return -EINVAL;
        *ret = ntohl(a.s_addr);
        return 0;
}

static void ip_format(uint32_t ip, char out[STORE_IP_MAX]) {
        struct in_addr a = { .s_addr = htonl(ip) };
        inet_ntop(AF_INET, &a, out, STORE_IP_MAX);
}

/* a.b.c.d/len with no host bits set. */
static int cidr_parse(const char *cidr, uint32_t *ret_first, int *ret_len) {
        char ip[STORE_IP_MAX];
        const char *slash = cidr ? strchr(cidr, '/') : NULL;
        if (!slash || (size_t)(slash - cidr) >= sizeof ip)
                return -EINVAL;
        memcpy(ip, cidr, (size_t)(slash - cidr));
        ip[slash - cidr] = '\0';
        char *end;
        long len = strtol(slash + 1, &end, 10);
        uint32_t first;
        if (*end || end == slash + 1 || len < 0 || len > 32 || ip_parse(ip, &first) < 0)
                return -EINVAL;
        uint32_t host = len == 32 ? 0 : (UINT32_MAX >> len);
        if (first & host)
                return -EINVAL;
        *ret_first = first;
        *ret_len = (int)len;
        return 0;
}

/* --- egress addresses of the other family ------------------------------------ */

/* One egress range (see EGRESS_PICK): its statements, and its family and first address (low 10 bits 0). */
struct egress_fam {
        enum stmt_id pick, held, reuse, cool, unreserve, reserve;
        int af;
        const char *first;
};
/* IPv6 pods' IPv4 egress (schema 3), IPv4 pods' IPv6 egress (schema 5) */
static const struct egress_fam eg_of_v6 = { ST6_EGRESS_PICK, ST6_EGRESS_HELD, ST6_EGRESS_REUSE, ST6_EGRESS_COOL,
                                            ST6_EGRESS_UNRESERVE, ST6_EGRESS_RESERVE, AF_INET, STORE_EGRESS4_FIRST };
static const struct egress_fam eg_of_v4 = { ST4_EGRESS_PICK, ST4_EGRESS_HELD, ST4_EGRESS_REUSE, ST4_EGRESS_COOL,
                                            ST4_EGRESS_UNRESERVE, ST4_EGRESS_RESERVE, AF_INET6, STORE_EGRESS6_FIRST };

static size_t egress_len(const struct egress_fam *g) {
        return g->af == AF_INET6 ? 16 : 4;
}

/* The address at off (0..1023) of g's range, as canonical text. */
static void egress_format(const struct egress_fam *g, int64_t off, char out[STORE_IP6_MAX]) {
        uint8_t a[16] = { 0 };
        size_t n = egress_len(g);
        (void)inet_pton(g->af, g->first, a);
        a[n - 2] = (uint8_t)(a[n - 2] | ((off >> 8) & 3));
        a[n - 1] = (uint8_t)(off & 255);
        inet_ntop(g->af, a, out, STORE_IP6_MAX);
}

/* The offset of text e in g's range when it is a pod's (2..1022), else -1. */
static int64_t egress_off(const struct egress_fam *g, const char *e) {
        uint8_t a[16], f[16];
        size_t n = egress_len(g);
        if (!e || inet_pton(g->af, e, a) != 1 || inet_pton(g->af, g->first, f) != 1 || memcmp(a, f, n - 2) ||
            (a[n - 2] & ~3) != f[n - 2])
                return -1;
        int64_t off = (int64_t)(a[n - 2] & 3) << 8 | a[n - 1];
        return off >= 2 && off <= 1022 ? off : -1;
}

static void lease_from_row(sqlite3_stmt *st, struct store_lease *l) {
        memset(l, 0, sizeof *l);
        ip_format((uint32_t)sqlite3_column_int64(st, 0), l->ip);
        copy_col(l->eni_id, sizeof l->eni_id, st, 1);
        l->device_index = sqlite3_column_int(st, 2);
        l->route_table = sqlite3_column_int(st, 3);
        copy_col(l->subnet_cidr, sizeof l->subnet_cidr, st, 4);
        copy_col(l->container_id, sizeof l->container_id, st, 5);
        copy_col(l->ifname, sizeof l->ifname, st, 6);
        copy_col(l->netns, sizeof l->netns, st, 7);
        copy_col(l->pod_namespace, sizeof l->pod_namespace, st, 8);
        copy_col(l->pod_name, sizeof l->pod_name, st, 9);
        copy_col(l->pod_uid, sizeof l->pod_uid, st, 10);
        l->assigned_ms = sqlite3_column_int64(st, 11);
        copy_col(l->host_veth, sizeof l->host_veth, st, 12);
        if (sqlite3_column_type(st, 13) != SQLITE_NULL)
                egress_format(&eg_of_v4, sqlite3_column_int64(st, 13), l->egress_ip);
}

static int lease_by_addr(store *s, int64_t addr, struct store_lease *ret) {
        sqlite3_stmt *st = stmt(s, ST_LEASE_BY_ADDR);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, addr);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && ret)
                lease_from_row(st, ret);
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

/* The lease of an attachment, and its address; -ENOENT when it holds none. */
static int lease_by_attachment(store *s, const char *container_id, const char *ifname, struct store_lease *ret,
                               int64_t *ret_addr) {
        sqlite3_stmt *st = stmt(s, ST_LEASE_BY_ATTACHMENT);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, container_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ifname, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                *ret_addr = sqlite3_column_int64(st, 0);
                if (ret)
                        lease_from_row(st, ret);
        }
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

static bool field_ok(const char *v, size_t max, bool required) {
        if (!v)
                return !required;
        size_t n = strnlen(v, max + 1);
        return n <= max && (n > 0 || !required);
}

static int attachment_check(const struct store_attachment *a) {
        if (!a || !field_ok(a->container_id, STORE_CONTAINER_ID_MAX, true) ||
            !field_ok(a->ifname, STORE_IFNAME_MAX, true) || !field_ok(a->netns, STORE_NETNS_MAX, false) ||
            !field_ok(a->pod_namespace, STORE_POD_FIELD_MAX, false) ||
            !field_ok(a->pod_name, STORE_POD_FIELD_MAX, false) ||
            !field_ok(a->pod_uid, STORE_POD_FIELD_MAX, false) ||
            !field_ok(a->host_veth, STORE_IFNAME_MAX, false))
                return -EINVAL;
        return 0;
}

static void bind_optional(sqlite3_stmt *st, int col, const char *v) {
        if (v && *v)
                sqlite3_bind_text(st, col, v, -1, SQLITE_STATIC);
        else
                sqlite3_bind_null(st, col);
}

/* Mark the free address addr assigned to a; -EBUSY when it is not free. */
static int assign_row(store *s, const struct store_attachment *a, int64_t addr, int64_t now_ms) {
        sqlite3_stmt *st = stmt(s, ST_ASSIGN);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, addr);
        sqlite3_bind_text(st, 2, a->container_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, a->ifname, -1, SQLITE_STATIC);
        bind_optional(st, 4, a->netns);
        bind_optional(st, 5, a->pod_namespace);
        bind_optional(st, 6, a->pod_name);
        bind_optional(st, 7, a->pod_uid);
        sqlite3_bind_int64(st, 8, now_ms);
        bind_optional(st, 9, a->host_veth);
        int r = exec_done(st);
        return r == 0 && sqlite3_changes(s->db) == 0 ? -EBUSY : r;
}

static int pick_egress(store *s, const struct egress_fam *g, int64_t now_ms, int64_t *ret);

/* With store_v6_egress: an IPv6 egress address for the lease of addr when it has none (*l, updated). */
static int give_egress(store *s, int64_t addr, int64_t now_ms, struct store_lease *l) {
        int64_t off;
        if (!s->v6_egress || l->egress_ip[0])
                return 0;
        int r = pick_egress(s, &eg_of_v4, now_ms, &off);
        sqlite3_stmt *st = r < 0 ? NULL : stmt(s, ST4_EGRESS_SET);
        if (r < 0 || !st)
                return r < 0 ? r : -ENOMEM;
        sqlite3_bind_int64(st, 1, addr);
        sqlite3_bind_int64(st, 2, off);
        return (r = exec_done(st)) < 0 ? r : lease_by_addr(s, addr, l);
}

static int assign_locked(store *s, const struct store_attachment *a, int64_t now_ms,
                         struct store_lease *ret, bool *ret_existing) {
        int64_t addr = 0;
        int r = lease_by_attachment(s, a->container_id, a->ifname, ret, &addr);
        if (r == 0) {
                if (ret_existing)
                        *ret_existing = true;
                return give_egress(s, addr, now_ms, ret);
        }
        if (r != -ENOENT)
                return r;
        sqlite3_stmt *st = stmt(s, ST_PICK_FREE);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int(st, 2, !s->ips_first);
        sqlite3_bind_int(st, 3, s->skip_primary);
        r = query_int(st, &addr);
        if (r < 0)
                return r == -ENOENT ? -EAGAIN : r;

        r = assign_row(s, a, addr, now_ms);
        if (r < 0)
                return r;
        if (ret_existing)
                *ret_existing = false;
        return (r = lease_by_addr(s, addr, ret)) < 0 ? r : give_egress(s, addr, now_ms, ret);
}

void store_prefer_ips(store *s, bool on) {
        if (s)
                s->ips_first = on;
}

void store_skip_primary(store *s, bool on) {
        if (s)
                s->skip_primary = on;
}

void store_v6_egress(store *s, bool on) {
        if (s)
                s->v6_egress = on;
}

int store_assign(store *s, const struct store_attachment *a, int64_t now_ms,
                 struct store_lease *ret, bool *ret_existing) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s || attachment_check(a) < 0)
                return -EINVAL;
        struct store_lease lease;
        bool existing = false;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, assign_locked(s, a, now_ms, &lease, &existing));
        if (r < 0)
                return r;
        if (ret)
                *ret = lease;
        if (ret_existing)
                *ret_existing = existing;
        return 0;
}

static int assign_addr_locked(store *s, const struct store_attachment *a, int64_t addr, int64_t now_ms,
                              struct store_lease *ret) {
        int64_t held = 0;
        int r = lease_by_attachment(s, a->container_id, a->ifname, ret, &held);
        if (r == 0)
                return held == addr ? 1 : -EEXIST;
        if (r != -ENOENT)
                return r;
        struct store_lease at;
        struct store_eni e;
        if ((r = lease_by_addr(s, addr, &at)) < 0)
                return r;
        if ((r = store_eni_get(s, at.eni_id, &e)) < 0)
                return r;
        if (e.state != STORE_ENI_ATTACHED)
                return -EAGAIN;
        /* A live pod's address marked for release (a crash mid-release) is kept, not returned to EC2. */
        sqlite3_stmt *st = stmt(s, ST_UNMARK_ADDR);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, addr);
        if ((r = exec_done(st)) < 0 || (r = assign_row(s, a, addr, now_ms)) < 0)
                return r;
        return lease_by_addr(s, addr, ret);
}

int store_assign_addr(store *s, const struct store_attachment *a, const char *ip, int64_t now_ms,
                      struct store_lease *ret) {
        uint32_t addr;
        if (!s || attachment_check(a) < 0 || !ip || ip_parse(ip, &addr) < 0)
                return -EINVAL;
        follow(s);
        struct store_lease lease;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, assign_addr_locked(s, a, (int64_t)addr, now_ms, &lease));
        if (r >= 0 && ret)
                *ret = lease;
        return r;
}

static int by_attachment_until(store *s, enum stmt_id id, const char *container_id, const char *ifname,
                               int64_t now_ms, int64_t cooldown_ms);

/* The attachment's address addr freed, and its IPv6 egress address (if any) remembered as released. */
static int release_addr(store *s, const char *container_id, const char *ifname, int64_t addr, int64_t now_ms,
                        int64_t cooldown_ms) {
        int r = by_attachment_until(s, eg_of_v4.cool, container_id, ifname, now_ms, cooldown_ms);
        sqlite3_stmt *st = r < 0 ? NULL : stmt(s, ST_RELEASE);
        if (r < 0)
                return r;
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, addr);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int64(st, 3, now_ms + (cooldown_ms > 0 ? cooldown_ms : 0));
        return exec_done(st);
}

static int lease6_by_attachment(store *s, const char *container_id, const char *ifname, struct store_lease *ret);
static int release6(store *s, const char *container_id, const char *ifname, int64_t now_ms, int64_t cooldown_ms);

/* An attachment's IPv4 address, else its IPv6 one (schema 3). */
static int release_locked(store *s, const char *container_id, const char *ifname, int64_t now_ms,
                          int64_t cooldown_ms, struct store_lease *ret) {
        int64_t addr = 0;
        int r = lease_by_attachment(s, container_id, ifname, ret, &addr);
        if (r == -ENOENT && (r = lease6_by_attachment(s, container_id, ifname, ret)) == 0)
                return (r = release6(s, container_id, ifname, now_ms, cooldown_ms)) < 0 ? r : 1;
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        r = release_addr(s, container_id, ifname, addr, now_ms, cooldown_ms);
        return r < 0 ? r : 1;
}

int store_release(store *s, const char *container_id, const char *ifname, int64_t now_ms,
                  int64_t cooldown_ms, struct store_lease *ret) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s || !field_ok(container_id, STORE_CONTAINER_ID_MAX, true) ||
            !field_ok(ifname, STORE_IFNAME_MAX, true))
                return -EINVAL;
        struct store_lease lease;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, release_locked(s, container_id, ifname, now_ms, cooldown_ms, &lease));
        if (r == 1 && ret)
                *ret = lease;
        return r;
}

int store_lookup(store *s, const char *container_id, const char *ifname, struct store_lease *ret) {
        follow(s);
        if (!s || !field_ok(container_id, STORE_CONTAINER_ID_MAX, true) ||
            !field_ok(ifname, STORE_IFNAME_MAX, true))
                return -EINVAL;
        int64_t addr = 0;
        int r = lease_by_attachment(s, container_id, ifname, ret, &addr);
        return r == -ENOENT ? lease6_by_attachment(s, container_id, ifname, ret) : r;
}

static void fill_lease(sqlite3_stmt *st, void *dst) {
        lease_from_row(st, dst);
}

static void fill_lease6(sqlite3_stmt *st, void *dst);

/* IPv4 leases by address, then IPv6 ones by address. */
int store_leases(store *s, struct store_lease **ret, size_t *ret_n) {
        follow(s);
        sqlite3_stmt *st = s && ret && ret_n ? stmt(s, ST_ASSIGNED_ALL) : NULL;
        struct store_lease *v4 = NULL, *v6 = NULL;
        size_t n4 = 0, n6 = 0;
        int r = st ? collect_rows(st, sizeof *v4, fill_lease, (void **)&v4, &n4) : -EINVAL;
        if (r < 0)
                return r;
        if ((r = collect_rows(stmt(s, ST6_ASSIGNED_ALL), sizeof *v6, fill_lease6, (void **)&v6, &n6)) < 0 ||
            (n6 && !(v4 = reallocarray_or_free(v4, n4 + n6, sizeof *v4)))) {
                free(v6);
                free(v4);
                return r < 0 ? r : -ENOMEM;
        }
        if (n6)
                memcpy(v4 + n4, v6, n6 * sizeof *v6);
        free(v6);
        *ret = v4;
        *ret_n = n4 + n6;
        return 0;
}

static int key_cmp(const void *a, const void *b) {
        const struct store_key *x = a, *y = b;
        int c = strcmp(x->container_id, y->container_id);
        return c ? c : strcmp(x->ifname, y->ifname);
}

/* Releases what valid does not name; the released leases are compacted to the front of *leases. */
static int gc_locked(store *s, struct store_key *valid, size_t n_valid, int64_t now_ms,
                     int64_t cooldown_ms, struct store_lease **leases, size_t *released) {
        size_t n = 0;
        int r = store_leases(s, leases, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                struct store_lease *l = &(*leases)[i];
                struct store_key k = { l->container_id, l->ifname };
                if (n_valid && bsearch(&k, valid, n_valid, sizeof *valid, key_cmp))
                        continue;
                uint32_t ip;
                if (strchr(l->ip, ':'))
                        r = release6(s, l->container_id, l->ifname, now_ms, cooldown_ms);
                else if ((r = ip_parse(l->ip, &ip)) >= 0)
                        r = release_addr(s, l->container_id, l->ifname, ip, now_ms, cooldown_ms);
                if (r >= 0 && *released != i)
                        (*leases)[*released] = *l;
                if (r >= 0)
                        (*released)++;
        }
        return r;
}

int store_gc(store *s, const struct store_key *valid, size_t n_valid, int64_t now_ms,
             int64_t cooldown_ms, struct store_lease **ret_released, size_t *ret_n) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s || (n_valid && !valid))
                return -EINVAL;
        for (size_t i = 0; i < n_valid; i++)
                if (!valid[i].container_id || !valid[i].ifname)
                        return -EINVAL;
        struct store_key *sorted = NULL;
        if (n_valid) {
                sorted = malloc(n_valid * sizeof *sorted);
                if (!sorted)
                        return -ENOMEM;
                memcpy(sorted, valid, n_valid * sizeof *sorted);
                qsort(sorted, n_valid, sizeof *sorted, key_cmp);
        }
        size_t released = 0;
        struct store_lease *leases = NULL;
        int r = tx_begin(s);
        if (r >= 0)
                r = tx_end(s, gc_locked(s, sorted, n_valid, now_ms, cooldown_ms, &leases, &released));
        free(sorted);
        if (r < 0 || !ret_released) {
                free(leases);
                leases = NULL;
        }
        if (r < 0)
                return r;
        if (ret_released)
                *ret_released = leases;
        if (ret_n)
                *ret_n = released;
        return 0;
}

/* --- ENIs ----------------------------------------------------------------- */

static int eni_check(const struct store_eni *e) {
        uint32_t ip, first;
        int len;
        if (strncmp(e->id, "eni-", 4) != 0 || strnlen(e->id, sizeof e->id) >= sizeof e->id ||
            strnlen(e->mac, sizeof e->mac) != 17 || e->device_index < 0 || e->network_card < 0 ||
            e->subnet_id[0] == '\0' || ip_parse(e->primary_ip, &ip) < 0 ||
            cidr_parse(e->subnet_cidr, &first, &len) < 0 || e->route_table < 1 ||
            (unsigned)e->state > STORE_ENI_DETACHING)
                return -EINVAL;
        return 0;
}

static void eni_from_row(sqlite3_stmt *st, struct store_eni *e) {
        memset(e, 0, sizeof *e);
        copy_col(e->id, sizeof e->id, st, 0);
        copy_col(e->mac, sizeof e->mac, st, 1);
        e->device_index = sqlite3_column_int(st, 2);
        e->network_card = sqlite3_column_int(st, 3);
        copy_col(e->subnet_id, sizeof e->subnet_id, st, 4);
        copy_col(e->subnet_cidr, sizeof e->subnet_cidr, st, 5);
        copy_col(e->primary_ip, sizeof e->primary_ip, st, 6);
        e->route_table = sqlite3_column_int(st, 7);
        e->is_primary = sqlite3_column_int(st, 8) != 0;
        if (eni_state_parse((const char *)sqlite3_column_text(st, 9), &e->state) < 0)
                e->state = STORE_ENI_DETACHING; /* the schema's CHECK makes this unreachable */
        e->created_ms = sqlite3_column_int64(st, 10);
        e->no_pods = sqlite3_column_int(st, 11) != 0;
}

int store_eni_put(store *s, const struct store_eni *e) {
        follow(s);
        if (!s || !e || eni_check(e) < 0)
                return -EINVAL;
        sqlite3_stmt *st = stmt(s, ST_ENI_PUT);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->mac, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, e->device_index);
        sqlite3_bind_int(st, 4, e->network_card);
        sqlite3_bind_text(st, 5, e->subnet_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, e->subnet_cidr, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, e->primary_ip, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 8, e->route_table);
        sqlite3_bind_int(st, 9, e->is_primary);
        sqlite3_bind_text(st, 10, store_eni_state_name(e->state), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 11, e->created_ms);
        return exec_done(st);
}

int store_eni_get(store *s, const char *id, struct store_eni *ret) {
        follow(s);
        sqlite3_stmt *st = s && id ? stmt(s, ST_ENI_GET) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && ret)
                eni_from_row(st, ret);
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

int store_eni_set_state(store *s, const char *id, enum store_eni_state state) {
        follow(s);
        sqlite3_stmt *st = s && id && (unsigned)state <= STORE_ENI_DETACHING ? stmt(s, ST_ENI_SET_STATE) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, store_eni_state_name(state), -1, SQLITE_STATIC);
        int r = exec_done(st);
        if (r == 0 && sqlite3_changes(s->db) == 0)
                return -ENOENT;
        return r;
}

int store_eni_set_no_pods(store *s, const char *id, bool on) {
        follow(s);
        sqlite3_stmt *st = s && id ? stmt(s, ST_ENI_SET_NO_PODS) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, on);
        int r = exec_done(st);
        if (r == 0 && sqlite3_changes(s->db) == 0)
                return -ENOENT;
        return r;
}

static void fill_eni(sqlite3_stmt *st, void *dst) {
        eni_from_row(st, dst);
}

int store_enis(store *s, struct store_eni **ret, size_t *ret_n) {
        follow(s);
        sqlite3_stmt *st = s && ret && ret_n ? stmt(s, ST_ENI_ALL) : NULL;
        return st ? collect_rows(st, sizeof **ret, fill_eni, (void **)ret, ret_n) : -EINVAL;
}

/* Count assigned addresses with a one-parameter query, for the -EBUSY checks. */
static int count_assigned(store *s, enum stmt_id id, const char *key, int64_t *ret) {
        sqlite3_stmt *st = stmt(s, id);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        return query_int(st, ret);
}

/* Delete by key after the busy check; shared by ENI and block removal. */
static int remove_locked(store *s, enum stmt_id count_id, enum stmt_id keep_id, enum stmt_id delete_id,
                         const char *key, bool force, size_t *lost) {
        int64_t assigned = 0;
        int r = count_assigned(s, count_id, key, &assigned);
        if (r < 0)
                return r;
        if (assigned > 0 && !force)
                return -EBUSY;
        sqlite3_stmt *st = assigned > 0 ? stmt(s, keep_id) : NULL;     /* forced: their egress addresses stay out */
        if (assigned > 0) {
                if (!st)
                        return -ENOMEM;
                sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
                if ((r = exec_done(st)) < 0)
                        return r;
        }
        st = stmt(s, delete_id);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        r = exec_done(st);
        if (r == 0 && sqlite3_changes(s->db) == 0)
                return -ENOENT;
        *lost = (size_t)assigned;
        return r;
}

int store_eni_remove(store *s, const char *id, bool force, size_t *ret_lost) {
        follow(s);
        if (!s || !id)
                return -EINVAL;
        size_t lost = 0;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, remove_locked(s, ST_ENI_ASSIGNED, ST4_EGRESS_KEEP_ENI, ST_ENI_DELETE, id, force, &lost));
        if (r >= 0 && ret_lost)
                *ret_lost = lost;
        return r;
}

/* An unknown ENI counts no busy address, and setting its state says -ENOENT. */
static int begin_detach_locked(store *s, const char *id, int64_t now_ms) {
        sqlite3_stmt *st = stmt(s, ST_ENI_BUSY);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        int64_t busy = 0;
        int r = query_int(st, &busy);
        if (r < 0)
                return r;
        if (busy)
                return -EBUSY;
        return store_eni_set_state(s, id, STORE_ENI_DETACHING);
}

int store_eni_begin_detach(store *s, const char *id, int64_t now_ms) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s || !id)
                return -EINVAL;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, begin_detach_locked(s, id, now_ms));
}

int store_unmark_all_releasing(store *s) {
        follow(s);
        return s ? exec_done(stmt(s, ST_UNMARK_ALL)) : -EINVAL;
}

/* --- blocks ---------------------------------------------------------------- */

static int block_owner(store *s, const char *cidr, char owner[STORE_ID_MAX]) {
        sqlite3_stmt *st = stmt(s, ST_BLOCK_OWNER);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, cidr, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                copy_col(owner, STORE_ID_MAX, st, 0);
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

/* Is addr some ENI's primary address? */
static bool is_primary(store *s, uint32_t addr) {
        char ip[STORE_IP_MAX];
        sqlite3_stmt *st = stmt(s, ST_PRIMARY_OWNER);
        if (!st)
                return false;
        ip_format(addr, ip);
        sqlite3_bind_text(st, 1, ip, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        return rc == SQLITE_ROW;
}

/*
 * Whether a block lies in its ENI's subnet and clear of the five addresses a
 * VPC reserves in every subnet (network, .1 router, .2 DNS, .3 future use,
 * broadcast). EC2 never assigns those; an engine that does (moto draws at
 * random) must not get them into a pod.
 */
static bool usable_in_subnet(const struct store_eni *eni, uint32_t first, int len) {
        uint32_t net;
        int plen;
        if (cidr_parse(eni->subnet_cidr, &net, &plen) < 0 || plen > 28)
                return false;
        uint32_t size = len == 32 ? 1 : 16, span = UINT32_C(1) << (32 - plen);
        uint32_t last = first + size - 1;
        return first >= net && last < net + span && first >= net + 4 && last < net + span - 1;
}

static int block_add_locked(store *s, const char *eni_id, const char *cidr, uint32_t first, int len,
                            int64_t now_ms) {
        char owner[STORE_ID_MAX];
        int r = block_owner(s, cidr, owner);
        if (r == 0)
                return strcmp(owner, eni_id) == 0 ? 0 : -EEXIST;
        if (r != -ENOENT)
                return r;
        struct store_eni eni;
        r = store_eni_get(s, eni_id, &eni);
        if (r < 0)
                return r;
        if (!usable_in_subnet(&eni, first, len))
                return -EADDRNOTAVAIL;
        sqlite3_stmt *st = stmt(s, ST_BLOCK_INSERT);
        if (!st)
                return -ENOMEM;
        uint32_t size = len == 32 ? 1 : 16;
        sqlite3_bind_text(st, 1, cidr, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, eni_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, len == 32 ? "ip" : "prefix", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, first);
        sqlite3_bind_int64(st, 5, size);
        sqlite3_bind_int64(st, 6, now_ms);
        r = exec_done(st);
        for (uint32_t i = 0; i < size && r >= 0; i++) {
                st = stmt(s, ST_ADDR_INSERT);
                if (!st)
                        return -ENOMEM;
                sqlite3_bind_int64(st, 1, (int64_t)first + i);
                sqlite3_bind_text(st, 2, cidr, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 3, now_ms);
                r = exec_done(st); /* an overlap with another block is a PRIMARY KEY clash: -EEXIST */
                if (r == -EEXIST && is_primary(s, first + i))
                        r = -EADDRNOTAVAIL; /* the schema's addresses_not_a_primary refused it */
        }
        return r;
}

int store_block_add(store *s, const char *eni_id, const char *cidr, int64_t now_ms) {
        follow(s);
        uint32_t first;
        int len;
        if (!s || !eni_id || cidr_parse(cidr, &first, &len) < 0 || (len != 32 && len != 28))
                return -EINVAL;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        return tx_end(s, block_add_locked(s, eni_id, cidr, first, len, now_ms));
}

/* One block of a batch under its own savepoint: one refused leaves the others. */
static int block_add_saved(store *s, const char *eni_id, const char *cidr, int64_t now_ms) {
        uint32_t first;
        int len;
        if (cidr_parse(cidr, &first, &len) < 0 || (len != 32 && len != 28))
                return -EINVAL;
        int rc = sqlite3_exec(s->db, "SAVEPOINT block", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
                return store_errno_from_sqlite(rc);
        int r = block_add_locked(s, eni_id, cidr, first, len, now_ms);
        if (r < 0)
                (void)sqlite3_exec(s->db, "ROLLBACK TO block", NULL, NULL, NULL);
        rc = sqlite3_exec(s->db, "RELEASE block", NULL, NULL, NULL);
        return r < 0 || rc == SQLITE_OK ? r : store_errno_from_sqlite(rc);
}

int store_blocks_add(store *s, const char *eni_id, const char *const *cidrs, size_t n, int64_t now_ms,
                     int *ret) {
        follow(s);
        if (!s || !eni_id || (n && (!cidrs || !ret)))
                return -EINVAL;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                ret[i] = block_add_saved(s, eni_id, cidrs[i], now_ms);
                if (ret[i] < 0 && ret[i] != -EEXIST && ret[i] != -EADDRNOTAVAIL && ret[i] != -EINVAL)
                        r = ret[i];
        }
        return tx_end(s, r);
}

int store_block_remove(store *s, const char *cidr, bool force, size_t *ret_lost) {
        follow(s);
        if (!s || !cidr)
                return -EINVAL;
        size_t lost = 0;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, remove_locked(s, ST_BLOCK_ASSIGNED, ST4_EGRESS_KEEP_BLOCK, ST_BLOCK_DELETE, cidr, force, &lost));
        if (r >= 0 && ret_lost)
                *ret_lost = lost;
        return r;
}

static int mark_locked(store *s, enum stmt_id pick, const char *eni_id, size_t max, int64_t now_ms,
                       char (*cidrs)[STORE_CIDR_MAX], size_t *n) {
        sqlite3_stmt *st = stmt(s, pick);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, eni_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int64(st, 3, (int64_t)max);
        int rc = SQLITE_DONE;
        while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
                copy_col(cidrs[(*n)++], STORE_CIDR_MAX, st, 0);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
                return store_errno_from_sqlite(rc);
        for (size_t i = 0; i < *n; i++) {
                sqlite3_stmt *m = stmt(s, ST_MARK_RELEASING);
                if (!m)
                        return -ENOMEM;
                sqlite3_bind_text(m, 1, cidrs[i], -1, SQLITE_STATIC);
                int r = exec_done(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int mark_releasing(store *s, enum stmt_id pick, const char *eni_id, size_t max, int64_t now_ms,
                          char (*ret_cidrs)[STORE_CIDR_MAX], size_t *ret_n) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s || !eni_id || !ret_cidrs || !ret_n)
                return -EINVAL;
        size_t n = 0;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, mark_locked(s, pick, eni_id, max, now_ms, ret_cidrs, &n));
        if (r >= 0)
                *ret_n = n;
        return r;
}

int store_blocks_mark_releasing(store *s, const char *eni_id, size_t max, int64_t now_ms,
                                char (*ret_cidrs)[STORE_CIDR_MAX], size_t *ret_n) {
        return mark_releasing(s, ST_PICK_RELEASABLE, eni_id, max, now_ms, ret_cidrs, ret_n);
}

int store_prefixes_mark_releasing(store *s, const char *eni_id, size_t max, int64_t now_ms,
                                  char (*ret_cidrs)[STORE_CIDR_MAX], size_t *ret_n) {
        return mark_releasing(s, ST_PICK_EMPTY_PREFIXES, eni_id, max, now_ms, ret_cidrs, ret_n);
}

int store_block_unmark_releasing(store *s, const char *cidr) {
        follow(s);
        sqlite3_stmt *st = s && cidr ? stmt(s, ST_UNMARK_RELEASING) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, cidr, -1, SQLITE_STATIC);
        return exec_done(st);
}

int store_block_info(store *s, const char *cidr, int64_t *ret_added_ms, bool *ret_releasing) {
        follow(s);
        sqlite3_stmt *st = s && cidr ? stmt(s, ST_BLOCK_ADDED) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, cidr, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                if (ret_added_ms)
                        *ret_added_ms = sqlite3_column_int64(st, 0);
                if (ret_releasing)
                        *ret_releasing = sqlite3_column_int(st, 1) != 0;
        }
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

static void fill_cidr(sqlite3_stmt *st, void *dst) {
        copy_col(dst, STORE_CIDR_MAX, st, 0);
}

int store_blocks(store *s, const char *eni_id, char (**ret)[STORE_CIDR_MAX], size_t *ret_n) {
        follow(s);
        sqlite3_stmt *st = s && ret && ret_n ? stmt(s, eni_id ? ST_BLOCKS_OF : ST_BLOCKS_ALL) : NULL;
        if (!st)
                return -EINVAL;
        if (eni_id)
                sqlite3_bind_text(st, 1, eni_id, -1, SQLITE_STATIC);
        return collect_rows(st, STORE_CIDR_MAX, fill_cidr, (void **)ret, ret_n);
}

/* --- IPv6 mode: one /80 per node, a row per /128 handed out (schema 3) ------------ */

static void hex_encode(const uint8_t *b, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[b[i] >> 4];
                out[2 * i + 1] = digits[b[i] & 15];
        }
        out[2 * n] = '\0';
}

static int hex_digit(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* An IPv6 /80 with no host bits: its 16 bytes, and its canonical text. */
static int prefix6_parse(const char *cidr, uint8_t ret[16], char canon[STORE_CIDR6_MAX]) {
        char ip[STORE_IP6_MAX];
        const char *slash = cidr ? strchr(cidr, '/') : NULL;
        if (!slash || (size_t)(slash - cidr) >= sizeof ip || strcmp(slash, "/80") != 0)
                return -EINVAL;
        memcpy(ip, cidr, (size_t)(slash - cidr));
        ip[slash - cidr] = '\0';
        struct in6_addr a;
        if (inet_pton(AF_INET6, ip, &a) != 1)
                return -EINVAL;
        for (int i = 10; i < 16; i++)
                if (a.s6_addr[i])
                        return -EINVAL;
        memcpy(ret, a.s6_addr, 16);
        inet_ntop(AF_INET6, &a, ip, sizeof ip);
        snprintf(canon, STORE_CIDR6_MAX, "%s/80", ip);
        return 0;
}

/* The /128 at off in the /80 whose first 80 bits base (20 hex digits) holds, as canonical text. */
static void ip6_format(const char *base, int64_t off, char out[STORE_IP6_MAX]) {
        struct in6_addr a = { 0 };
        for (int i = 0; i < 10 && base && strlen(base) == 20; i++)
                a.s6_addr[i] = (uint8_t)(hex_digit(base[2 * i]) << 4 | hex_digit(base[2 * i + 1]));
        for (int i = 15; i >= 10; i--, off >>= 8)
                a.s6_addr[i] = (uint8_t)(off & 255);
        inet_ntop(AF_INET6, &a, out, STORE_IP6_MAX);
}

static void lease6_from_row(sqlite3_stmt *st, struct store_lease *l) {
        memset(l, 0, sizeof *l);
        ip6_format((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), l->ip);
        copy_col(l->eni_id, sizeof l->eni_id, st, 2);
        l->device_index = sqlite3_column_int(st, 3);
        l->route_table = sqlite3_column_int(st, 4);
        copy_col(l->subnet_cidr, sizeof l->subnet_cidr, st, 5);
        copy_col(l->container_id, sizeof l->container_id, st, 6);
        copy_col(l->ifname, sizeof l->ifname, st, 7);
        copy_col(l->netns, sizeof l->netns, st, 8);
        copy_col(l->pod_namespace, sizeof l->pod_namespace, st, 9);
        copy_col(l->pod_name, sizeof l->pod_name, st, 10);
        copy_col(l->pod_uid, sizeof l->pod_uid, st, 11);
        l->assigned_ms = sqlite3_column_int64(st, 12);
        copy_col(l->host_veth, sizeof l->host_veth, st, 13);
        if (sqlite3_column_type(st, 14) != SQLITE_NULL)
                egress_format(&eg_of_v6, sqlite3_column_int64(st, 14), l->egress_ip);
}

static void fill_lease6(sqlite3_stmt *st, void *dst) {
        lease6_from_row(st, dst);
}

static int lease6_by_attachment(store *s, const char *container_id, const char *ifname, struct store_lease *ret) {
        sqlite3_stmt *st = stmt(s, ST6_LEASE_BY_ATTACHMENT);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, container_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ifname, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && ret)
                lease6_from_row(st, ret);
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

/* Run an EGRESS_COOL or ST6_RELEASE statement for the attachment. */
static int by_attachment_until(store *s, enum stmt_id id, const char *container_id, const char *ifname,
                               int64_t now_ms, int64_t cooldown_ms) {
        sqlite3_stmt *st = stmt(s, id);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, container_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        sqlite3_bind_int64(st, 3, now_ms + (cooldown_ms > 0 ? cooldown_ms : 0));
        sqlite3_bind_text(st, 4, ifname, -1, SQLITE_STATIC);
        return exec_done(st);
}

/* The attachment's /128 freed, and its egress address remembered as released: both cool down. */
static int release6(store *s, const char *container_id, const char *ifname, int64_t now_ms, int64_t cooldown_ms) {
        int r = by_attachment_until(s, eg_of_v6.cool, container_id, ifname, now_ms, cooldown_ms);
        return r < 0 ? r : by_attachment_until(s, ST6_RELEASE, container_id, ifname, now_ms, cooldown_ms);
}

static int prefix6_add_locked(store *s, const char *eni_id, const char *canon, const char *base, int64_t now_ms) {
        sqlite3_stmt *st = stmt(s, ST6_PREFIX_OWNER);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        bool mine = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), eni_id) == 0;
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
                return mine ? 0 : -EEXIST;
        if (rc != SQLITE_DONE)
                return store_errno_from_sqlite(rc);
        struct store_eni e;
        int r = store_eni_get(s, eni_id, &e);
        if (r < 0)
                return r;
        st = stmt(s, ST6_PREFIX_INSERT);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, eni_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, base, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now_ms);
        return exec_done(st);
}

int store_prefix6_add(store *s, const char *eni_id, const char *cidr, int64_t now_ms) {
        uint8_t b[16];
        char canon[STORE_CIDR6_MAX], base[21];
        if (!s || !eni_id || prefix6_parse(cidr, b, canon) < 0)
                return -EINVAL;
        follow(s);
        hex_encode(b, 10, base);
        int r = tx_begin(s);
        return r < 0 ? r : tx_end(s, prefix6_add_locked(s, eni_id, canon, base, now_ms));
}

static void fill_cidr6(sqlite3_stmt *st, void *dst) {
        copy_col(dst, STORE_CIDR6_MAX, st, 0);
}

int store_prefixes6(store *s, const char *eni_id, char (**ret)[STORE_CIDR6_MAX], size_t *ret_n) {
        follow(s);
        sqlite3_stmt *st = s && ret && ret_n ? stmt(s, eni_id ? ST6_PREFIXES_OF : ST6_PREFIXES_ALL) : NULL;
        if (!st)
                return -EINVAL;
        if (eni_id)
                sqlite3_bind_text(st, 1, eni_id, -1, SQLITE_STATIC);
        return collect_rows(st, STORE_CIDR6_MAX, fill_cidr6, (void **)ret, ret_n);
}

/* The one-integer answer of st bound with text a (and b when not NULL), else -ENOENT. */
static int query_int_text(sqlite3_stmt *st, const char *a, const char *b, int64_t *ret) {
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
        if (b)
                sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
        return query_int(st, ret);
}

/* The offset to hand out in block: the lowest free past cooldown, or the lowest never used, whichever is lower. */
static int pick6(store *s, const char *block, int64_t now_ms, int64_t *ret_off, bool *ret_reuse) {
        int64_t reuse = -1, fresh = -1;
        sqlite3_stmt *st = stmt(s, ST6_PICK_REUSE);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, block, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        int r = query_int(st, &reuse);
        if (r < 0 && r != -ENOENT)
                return r;
        r = query_int_text(stmt(s, ST6_LOWEST_UNUSED), block, NULL, &fresh);
        if (r < 0 && r != -ENOENT)
                return r;
        if (reuse < 0 && fresh < 0)
                return -EAGAIN;
        *ret_reuse = reuse >= 0 && (fresh < 0 || reuse < fresh);
        *ret_off = *ret_reuse ? reuse : fresh;
        return 0;
}

/*
 * An egress offset for a new pod: the lowest never handed out, else the one
 * released longest ago past its cooldown (so a pod never inherits conntrack or
 * SNAT state of one just deleted); -EAGAIN when none.
 */
static int pick_egress(store *s, const struct egress_fam *g, int64_t now_ms, int64_t *ret) {
        int r = query_int(stmt(s, g->pick), ret);
        if (r != -ENOENT)
                return r;
        sqlite3_stmt *st = stmt(s, g->reuse);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, now_ms);
        r = query_int(st, ret);
        return r == -ENOENT ? -EAGAIN : r;
}

static int put6(store *s, bool reuse, const char *block, int64_t off, const struct store_attachment *a,
                int64_t egress, int64_t now_ms) {
        sqlite3_stmt *st = stmt(s, reuse ? ST6_ASSIGN : ST6_INSERT);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, block, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, off);
        sqlite3_bind_text(st, 3, a->container_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, a->ifname, -1, SQLITE_STATIC);
        bind_optional(st, 5, a->netns);
        bind_optional(st, 6, a->pod_namespace);
        bind_optional(st, 7, a->pod_name);
        sqlite3_bind_int64(st, 8, now_ms);
        bind_optional(st, 9, a->host_veth);
        bind_optional(st, 10, a->pod_uid);
        if (egress >= 0)
                sqlite3_bind_int64(st, 11, egress);
        else
                sqlite3_bind_null(st, 11);
        int r = exec_done(st);
        return r == 0 && sqlite3_changes(s->db) == 0 ? -EBUSY : r;
}

static int assign6_locked(store *s, const struct store_attachment *a, bool egress, int64_t now_ms,
                          struct store_lease *ret, bool *ret_existing) {
        int r = lease6_by_attachment(s, a->container_id, a->ifname, ret);
        *ret_existing = r == 0;
        if (r != -ENOENT)
                return r;
        int64_t n4 = 0, off, eg = -1;
        char block[STORE_CIDR6_MAX];
        bool reuse;
        if ((r = query_int_text(stmt(s, ST6_V4_HELD), a->container_id, a->ifname, &n4)) < 0)
                return r;
        if (n4)
                return -EEXIST;
        sqlite3_stmt *st = stmt(s, ST6_PICK_PREFIX);
        if (!st)
                return -ENOMEM;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                copy_col(block, sizeof block, st, 0);
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -EAGAIN : store_errno_from_sqlite(rc);
        if ((r = pick6(s, block, now_ms, &off, &reuse)) < 0)
                return r;
        if (egress && (r = pick_egress(s, &eg_of_v6, now_ms, &eg)) < 0)
                return r;
        if ((r = put6(s, reuse, block, off, a, eg, now_ms)) < 0)
                return r;
        return lease6_by_attachment(s, a->container_id, a->ifname, ret);
}

int store_assign6(store *s, const struct store_attachment *a, bool egress, int64_t now_ms,
                  struct store_lease *ret, bool *ret_existing) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s || attachment_check(a) < 0)
                return -EINVAL;
        struct store_lease lease;
        bool existing = false;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, assign6_locked(s, a, egress, now_ms, &lease, &existing));
        if (r < 0)
                return r;
        if (ret)
                *ret = lease;
        if (ret_existing)
                *ret_existing = existing;
        return 0;
}

/* ip's /80 (its block, whether its ENI is attached) and offset; -ENOENT when the store has no such /80. */
static int locate6(store *s, const struct in6_addr *ip, char block[STORE_CIDR6_MAX], bool *ret_attached,
                   int64_t *ret_off) {
        char base[21];
        hex_encode(ip->s6_addr, 10, base);
        sqlite3_stmt *st = stmt(s, ST6_PREFIX_BY_BASE);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, base, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                copy_col(block, STORE_CIDR6_MAX, st, 0);
                *ret_attached = sqlite3_column_int(st, 1);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
        int64_t off = 0;
        for (int i = 10; i < 16; i++)
                off = off << 8 | ip->s6_addr[i];
        *ret_off = off;
        return 0;
}

/* The egress offset of text e in g's range, unless absent, malformed or held (then -1). */
static int64_t egress_offset(store *s, const struct egress_fam *g, const char *e) {
        int64_t off = egress_off(g, e), held = 1;
        sqlite3_stmt *st = off >= 0 ? stmt(s, g->held) : NULL;
        if (st) {
                sqlite3_bind_int64(st, 1, off);
                (void)query_int(st, &held);
        }
        return held ? -1 : off;
}

static int assign6_addr_locked(store *s, const struct store_attachment *a, const struct in6_addr *ip,
                               const char *egress, int64_t now_ms, struct store_lease *ret) {
        struct store_lease held;
        char want[STORE_IP6_MAX], block[STORE_CIDR6_MAX];
        inet_ntop(AF_INET6, ip, want, sizeof want);
        int r = lease6_by_attachment(s, a->container_id, a->ifname, &held);
        if (r == 0)
                return strcmp(held.ip, want) == 0 ? 1 : -EEXIST;
        int64_t n4 = 0, off, assigned = 0;
        bool attached = false;
        if (r != -ENOENT || (r = query_int_text(stmt(s, ST6_V4_HELD), a->container_id, a->ifname, &n4)) < 0)
                return r;
        if (n4)
                return -EEXIST;
        if ((r = locate6(s, ip, block, &attached, &off)) < 0)
                return r;
        if (!attached)
                return -EAGAIN;
        sqlite3_stmt *st = stmt(s, ST6_ROW_STATE);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, block, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, off);
        r = query_int(st, &assigned);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r == 0 && assigned)
                return -EBUSY;
        if ((r = put6(s, r == 0, block, off, a, egress_offset(s, &eg_of_v6, egress), now_ms)) < 0)
                return r;
        return lease6_by_attachment(s, a->container_id, a->ifname, ret);
}

int store_assign6_addr(store *s, const struct store_attachment *a, const char *ip, const char *egress_ip,
                       int64_t now_ms, struct store_lease *ret) {
        struct in6_addr addr;
        if (!s || attachment_check(a) < 0 || !ip || inet_pton(AF_INET6, ip, &addr) != 1)
                return -EINVAL;
        follow(s);
        now_ms = store_now(s, now_ms);
        struct store_lease lease;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = tx_end(s, assign6_addr_locked(s, a, &addr, egress_ip, now_ms, &lease));
        if (r == 0 && ret)
                *ret = lease;
        return r;
}

/* One range's reservations replaced by the addresses of ips[] in it. */
static int egress_reserve(store *s, const struct egress_fam *g, const char *const *ips, size_t n, int64_t now_ms,
                          int64_t cooldown_ms, size_t *ret_kept) {
        sqlite3_stmt *st = stmt(s, g->unreserve);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, now_ms + (cooldown_ms > 0 ? cooldown_ms : 0));
        int r = exec_done(st);
        for (size_t i = 0; r == 0 && i < n; i++) {
                int64_t off = egress_off(g, ips[i]);
                if (off < 0)
                        continue;
                if (!(st = stmt(s, g->reserve)))
                        return -ENOMEM;
                sqlite3_bind_int64(st, 1, off);
                sqlite3_bind_int64(st, 2, now_ms);
                if ((r = exec_done(st)) == 0)
                        *ret_kept += (size_t)sqlite3_changes(s->db);
        }
        return r;
}

static int egress_in_use_locked(store *s, const char *const *ips, size_t n, int64_t now_ms, int64_t cooldown_ms,
                                size_t *ret_kept) {
        int r = egress_reserve(s, &eg_of_v6, ips, n, now_ms, cooldown_ms, ret_kept);
        return r < 0 ? r : egress_reserve(s, &eg_of_v4, ips, n, now_ms, cooldown_ms, ret_kept);
}

int store_egress_in_use(store *s, const char *const *ips, size_t n, int64_t now_ms, int64_t cooldown_ms,
                        size_t *ret_kept) {
        if (!s || (n && !ips))
                return -EINVAL;
        follow(s);
        now_ms = store_now(s, now_ms);
        size_t kept = 0;
        int r = tx_begin(s);
        if (r < 0 || (r = tx_end(s, egress_in_use_locked(s, ips, n, now_ms, cooldown_ms, &kept))) < 0)
                return r;
        if (ret_kept)
                *ret_kept = kept;
        return 0;
}

static bool listed6(const char *cidr, const char (*listed)[STORE_CIDR6_MAX], size_t n) {
        uint8_t a[16], b[16];
        char canon[STORE_CIDR6_MAX];
        if (prefix6_parse(cidr, a, canon) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (prefix6_parse(listed[i], b, canon) == 0 && memcmp(a, b, 16) == 0)
                        return true;
        return false;
}

static int reconcile6_one(store *s, const char *cidr, bool listed, size_t *dropped, size_t *withdrawn) {
        int64_t held = 0;
        int r = listed ? 0 : query_int_text(stmt(s, ST6_PREFIX_HELD), cidr, NULL, &held);
        if (r < 0)
                return r;
        sqlite3_stmt *st = stmt(s, !listed && !held ? ST6_PREFIX_DROP : ST6_PREFIX_WITHDRAW);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_text(st, 1, cidr, -1, SQLITE_STATIC);
        if (listed || held)
                sqlite3_bind_int64(st, 2, !listed);
        if ((r = exec_done(st)) == 0 && !listed)
                *(held ? withdrawn : dropped) += 1;
        return r;
}

int store_prefixes6_reconcile(store *s, const char *eni_id, const char (*listed)[STORE_CIDR6_MAX], size_t n,
                              size_t *ret_dropped, size_t *ret_withdrawn) {
        char (*have)[STORE_CIDR6_MAX] = NULL;
        size_t n_have = 0, dropped = 0, withdrawn = 0;
        if (!s || !eni_id || (n && !listed))
                return -EINVAL;
        follow(s);
        int r = tx_begin(s);
        if (r < 0)
                return r;
        r = store_prefixes6(s, eni_id, &have, &n_have);
        for (size_t i = 0; r == 0 && i < n_have; i++)
                r = reconcile6_one(s, have[i], listed6(have[i], listed, n), &dropped, &withdrawn);
        free(have);
        if ((r = tx_end(s, r)) < 0)
                return r;
        if (ret_dropped)
                *ret_dropped = dropped;
        if (ret_withdrawn)
                *ret_withdrawn = withdrawn;
        return 0;
}

static int stats6(store *s, int64_t now_ms, struct store_stats *out) {
        sqlite3_stmt *st = stmt(s, ST6_STATS);
        if (!st)
                return -ENOMEM;
        sqlite3_bind_int64(st, 1, now_ms);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                out->ipv6_prefixes = sqlite3_column_int(st, 0);
                out->ipv6_assigned = sqlite3_column_int(st, 1);
                out->ipv6_cooldown = sqlite3_column_int(st, 2);
                /* IPv6 pods' IPv4 egress and IPv4 pods' IPv6 egress: a node has one or the other */
                out->egress_assigned = sqlite3_column_int(st, 3) + sqlite3_column_int(st, 5);
                out->egress_cooldown = sqlite3_column_int(st, 4) + sqlite3_column_int(st, 6);
                out->egress_available = STORE_EGRESS4_COUNT - out->egress_assigned - out->egress_cooldown;
        }
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : store_errno_from_sqlite(rc);
}

/* --- reading the pool -------------------------------------------------------- */

int store_stats(store *s, int64_t now_ms, struct store_stats *ret) {
        follow(s);
        now_ms = store_now(s, now_ms);
        sqlite3_stmt *st = s && ret ? stmt(s, ST_STATS) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_int64(st, 1, now_ms);
        int rc = sqlite3_step(st);
        struct store_stats out = { 0 };
        if (rc == SQLITE_ROW) {
                out.total = sqlite3_column_int(st, 0);
                out.assigned = sqlite3_column_int(st, 1);
                out.cooldown = sqlite3_column_int(st, 2);
                out.available = sqlite3_column_int(st, 3);
                out.releasing = sqlite3_column_int(st, 4);
                out.enis = sqlite3_column_int(st, 5);
                out.prefixes = sqlite3_column_int(st, 6);
        }
        sqlite3_reset(st);
        if (rc != SQLITE_ROW)
                return store_errno_from_sqlite(rc);
        if ((rc = stats6(s, now_ms, &out)) < 0)
                return rc;
        *ret = out;
        return 0;
}

static void fill_block_use(sqlite3_stmt *st, void *dst) {
        struct store_block_use *u = dst;
        copy_col(u->cidr, sizeof u->cidr, st, 0);
        u->prefix = sqlite3_column_int(st, 1) != 0;
        u->size = sqlite3_column_int(st, 2);
        u->assigned = sqlite3_column_int(st, 3);
        u->free = sqlite3_column_int(st, 4);
        u->cooldown = sqlite3_column_int(st, 5);
        u->releasing = sqlite3_column_int(st, 6);
}

int store_block_use(store *s, const char *eni_id, int64_t now_ms, struct store_block_use **ret, size_t *ret_n) {
        follow(s);
        now_ms = store_now(s, now_ms);
        sqlite3_stmt *st = s && eni_id && ret && ret_n ? stmt(s, ST_BLOCK_USE) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, eni_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_ms);
        return collect_rows(st, sizeof **ret, fill_block_use, (void **)ret, ret_n);
}

int store_plan_enis(store *s, int64_t now_ms, struct plan_eni *ret, size_t max, size_t *ret_n) {
        follow(s);
        now_ms = store_now(s, now_ms);
        sqlite3_stmt *st = s && ret_n ? stmt(s, ST_PLAN_ENIS) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_int64(st, 1, now_ms);
        size_t n = 0;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if (n == max) {
                        sqlite3_reset(st);
                        return -ENOBUFS;
                }
                struct plan_eni *e = &ret[n++];
                memset(e, 0, sizeof *e);
                copy_col(e->id, sizeof e->id, st, 0);
                e->device_index = sqlite3_column_int(st, 1);
                e->is_primary = sqlite3_column_int(st, 2) != 0;
                e->age_ms = now_ms - sqlite3_column_int64(st, 3);
                e->free = sqlite3_column_int(st, 4);
                e->assigned = sqlite3_column_int(st, 5);
                e->cooldown = sqlite3_column_int(st, 6);
                e->releasing = sqlite3_column_int(st, 7);
                e->prefixes = sqlite3_column_int(st, 8);
                e->empty_prefixes = sqlite3_column_int(st, 9);
                e->free_ips = sqlite3_column_int(st, 10);
                e->no_pods = sqlite3_column_int(st, 11) != 0;
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return store_errno_from_sqlite(rc);
        *ret_n = n;
        return 0;
}

/* --- intents --------------------------------------------------------------- */

int store_intent_begin(store *s, enum store_intent_kind kind, const char *client_token, const char *eni_id,
                       const char *params_json, int64_t now_ms, int64_t *ret_id) {
        follow(s);
        bool writable = kind > STORE_INTENT_LEGACY && kind <= STORE_INTENT_ASSIGN_IPV6_PREFIX;
        sqlite3_stmt *st = s && writable ? stmt(s, ST_INTENT_BEGIN) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, intent_kind_names[kind], -1, SQLITE_STATIC);
        bind_optional(st, 2, client_token);
        bind_optional(st, 3, eni_id);
        sqlite3_bind_text(st, 4, params_json ? params_json : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now_ms);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE)
                return (rc & 0xff) == SQLITE_CONSTRAINT ? -EINVAL : store_errno_from_sqlite(rc);
        if (ret_id)
                *ret_id = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_intent_end(store *s, int64_t id, enum store_intent_state state, const char *result_json,
                     int64_t now_ms) {
        follow(s);
        if (!s || state == STORE_INTENT_OPEN || (unsigned)state > STORE_INTENT_UNDONE)
                return -EINVAL;
        int r = tx_begin(s);
        if (r < 0)
                return r;
        sqlite3_stmt *st = stmt(s, ST_INTENT_END);
        if (!st)
                return tx_end(s, -ENOMEM);
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, store_intent_state_name(state), -1, SQLITE_STATIC);
        bind_optional(st, 3, result_json);
        sqlite3_bind_int64(st, 4, now_ms);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        r = rc == SQLITE_DONE ? 0 : (rc & 0xff) == SQLITE_CONSTRAINT ? -EINVAL : store_errno_from_sqlite(rc);
        if (r == 0 && sqlite3_changes(s->db) == 0)
                r = -ENOENT;
        if (r == 0)
                r = exec_done(stmt(s, ST_INTENT_PRUNE));
        return tx_end(s, r);
}

static void fill_intent(sqlite3_stmt *st, void *dst) {
        struct store_intent *it = dst;
        memset(it, 0, sizeof *it);
        it->id = sqlite3_column_int64(st, 0);
        const unsigned char *kind = sqlite3_column_text(st, 1);
        it->kind = intent_kind_parse(kind ? (const char *)kind : "");
        copy_col(it->client_token, sizeof it->client_token, st, 2);
        copy_col(it->eni_id, sizeof it->eni_id, st, 3);
        copy_col(it->params, sizeof it->params, st, 4);
        it->state = STORE_INTENT_OPEN;
        it->created_ms = sqlite3_column_int64(st, 5);
}

int store_intents_open(store *s, struct store_intent **ret, size_t *ret_n) {
        follow(s);
        sqlite3_stmt *st = s && ret && ret_n ? stmt(s, ST_INTENT_OPEN) : NULL;
        return st ? collect_rows(st, sizeof **ret, fill_intent, (void **)ret, ret_n) : -EINVAL;
}

/* --- instance types and metadata -------------------------------------------- */

int store_itype_put(store *s, const struct store_itype *t) {
        follow(s);
        sqlite3_stmt *st = s && t && t->name[0] ? stmt(s, ST_ITYPE_PUT) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, t->max_enis);
        sqlite3_bind_int(st, 3, t->ipv4_per_eni);
        sqlite3_bind_int(st, 4, t->prefix_supported);
        sqlite3_bind_int(st, 5, t->network_cards);
        sqlite3_bind_int64(st, 6, t->fetched_ms);
        int r = exec_done(st);
        return r == -EEXIST ? -EINVAL : r; /* a CHECK refused a value */
}

int store_itype_get(store *s, const char *name, struct store_itype *ret) {
        follow(s);
        sqlite3_stmt *st = s && name ? stmt(s, ST_ITYPE_GET) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && ret) {
                memset(ret, 0, sizeof *ret);
                copy_col(ret->name, sizeof ret->name, st, 0);
                ret->max_enis = sqlite3_column_int(st, 1);
                ret->ipv4_per_eni = sqlite3_column_int(st, 2);
                ret->prefix_supported = sqlite3_column_int(st, 3) != 0;
                ret->network_cards = sqlite3_column_int(st, 4);
                ret->fetched_ms = sqlite3_column_int64(st, 5);
        }
        sqlite3_reset(st);
        return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
}

int store_meta_set(store *s, const char *key, const char *value) {
        follow(s);
        sqlite3_stmt *st = s && key && value ? stmt(s, ST_META_SET) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        return exec_done(st);
}

int store_meta_get(store *s, const char *key, char *buf, size_t len) {
        follow(s);
        sqlite3_stmt *st = s && key && buf ? stmt(s, ST_META_GET) : NULL;
        if (!st)
                return -EINVAL;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        int r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : store_errno_from_sqlite(rc);
        if (r == 0) {
                const unsigned char *v = sqlite3_column_text(st, 0);
                size_t n = (size_t)sqlite3_column_bytes(st, 0);
                if (n >= len)
                        r = -ENOBUFS;
                else
                        memcpy(buf, v, n + 1);
        }
        sqlite3_reset(st);
        return r;
}

/* --- invariants ------------------------------------------------------------- */

/* Each query counts violations of one invariant; the message says which. */
static const struct {
        const char *sql;
        const char *what;
} checks[] = {
        { "SELECT COUNT(*) FROM addresses a JOIN blocks b ON b.cidr = a.block"
          " WHERE a.addr < b.first OR a.addr >= b.first + b.size",
          "address(es) outside their block" },
        { "SELECT COUNT(*) FROM (SELECT b.cidr FROM blocks b LEFT JOIN addresses a ON a.block = b.cidr"
          " GROUP BY b.cidr HAVING COUNT(a.addr) != MAX(b.size))",
          "block(s) missing addresses" },
        { "SELECT COUNT(*) FROM blocks x JOIN blocks y ON x.cidr < y.cidr"
          " AND x.first < y.first + y.size AND y.first < x.first + x.size",
          "overlapping block pair(s)" },
        { "SELECT COUNT(*) FROM addresses a JOIN blocks b ON b.cidr = a.block JOIN enis e ON e.id = b.eni_id"
          " WHERE a.state = 'assigned' AND e.state != 'attached'",
          "assigned address(es) on an ENI that is not attached" },
        { "SELECT COUNT(*) FROM addresses WHERE (state = 'assigned') !="
          " (container_id IS NOT NULL AND ifname IS NOT NULL)",
          "address(es) whose state and holder disagree" },
        { "SELECT COUNT(*) FROM (SELECT container_id, ifname FROM addresses WHERE container_id IS NOT NULL"
          " GROUP BY container_id, ifname HAVING COUNT(*) > 1)",
          "attachment(s) holding more than one address" },
        { "SELECT COUNT(*) FROM pragma_foreign_key_check", "foreign key violation(s)" },
};

static int check_query(store *s, const char *sql, int64_t *ret) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return store_errno_from_sqlite(rc);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? 0 : store_errno_from_sqlite(rc);
}

static int check_integrity(store *s, struct errmsg *err) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        int r = v && strcmp((const char *)v, "ok") == 0 ? 0
                : errmsg_set(err, -EUCLEAN, "store %s: integrity check failed: %s", s->path,
                             v ? (const char *)v : sqlite3_errstr(rc));
        sqlite3_finalize(st);
        return r;
}

/* No ENI's primary address may also sit in the pool. */
static int check_primaries(store *s, struct errmsg *err) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        int r = store_enis(s, &enis, &n);
        for (size_t i = 0; i < n && r >= 0; i++) {
                uint32_t ip;
                int64_t dummy;
                sqlite3_stmt *st = stmt(s, ST_ADDR_EXISTS);
                if (!st || ip_parse(enis[i].primary_ip, &ip) < 0) {
                        r = -EIO;
                        break;
                }
                sqlite3_bind_int64(st, 1, ip);
                int q = query_int(st, &dummy);
                if (q == 0)
                        r = errmsg_set(err, -EUCLEAN, "store %s: primary address %s of %s is also in the pool",
                                       s->path, enis[i].primary_ip, enis[i].id);
                else if (q != -ENOENT)
                        r = errmsg_set(err, q, "store %s: cannot look up address %s: %s", s->path,
                                       enis[i].primary_ip, strerror(-q));
        }
        free(enis);
        return r;
}

int store_check(store *s, int64_t now_ms, struct errmsg *err) {
        follow(s);
        now_ms = store_now(s, now_ms);
        if (!s)
                return -EINVAL;
        int r = check_integrity(s, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
                int64_t bad = 0;
                r = check_query(s, checks[i].sql, &bad);
                if (r < 0)
                        return errmsg_set(err, r, "store %s: invariant query failed", s->path);
                if (bad)
                        return errmsg_set(err, -EUCLEAN, "store %s: %" PRId64 " %s", s->path, bad, checks[i].what);
        }
        r = check_primaries(s, err);
        if (r < 0)
                return r;
        /* The pool's totals must equal the sum of the per-ENI counts. */
        struct store_stats st;
        struct plan_eni enis[256];
        size_t n = 0;
        r = store_stats(s, now_ms, &st);
        if (r >= 0)
                r = store_plan_enis(s, now_ms, enis, sizeof enis / sizeof enis[0], &n);
        if (r < 0)
                return errmsg_set(err, r, "store %s: cannot count the pool", s->path);
        int sum = 0, assigned = 0;
        for (size_t i = 0; i < n; i++) {
                sum += enis[i].free + enis[i].assigned + enis[i].cooldown + enis[i].releasing;
                assigned += enis[i].assigned;
        }
        if (sum != st.total || assigned != st.assigned ||
            st.total != st.assigned + st.cooldown + st.available + st.releasing || (int)n != st.enis)
                return errmsg_set(err, -EUCLEAN, "store %s: pool counts disagree (total %d, per-ENI %d)",
                                  s->path, st.total, sum);
        return 0;
}

/* --- open and close ------------------------------------------------------------ */

static int pragma(store *s, const char *sql, const char *expect, struct errmsg *err) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
        if (ok && expect && rc == SQLITE_ROW)
                ok = strcmp((const char *)sqlite3_column_text(st, 0), expect) == 0;
        sqlite3_finalize(st);
        if (ok)
                return 0;
        int r = store_errno_from_sqlite(rc);
        if (r == 0)
                r = -EIO;
        return errmsg_set(err, r, "store %s: %s failed: %s%s", s->path, sql,
                          rc == SQLITE_ROW ? "unexpected answer" : sqlite3_errstr(rc),
                          r == -EBADMSG ? "; the file is not a usable database and was left untouched" : "");
}

#define BUSY_FINE_US 100                /* how often another handle's write lock is tried at first */
#define BUSY_FINE_TRIES 200             /* ... for 20 ms, then */
#define BUSY_COARSE_US 2000             /* every 2 ms */
#define BUSY_TIMEOUT_US (5000 * 1000)   /* until 5 s have passed: then SQLITE_BUSY */

/*
 * Waiting for another handle's write lock. SQLite's own handler (busy_timeout)
 * sleeps 1, 2, 5, 10 ms... between tries, so an ADD that meets one of the
 * reconciler's transactions (a block added: a fraction of a millisecond)
 * waited for the next step of that ladder rather than for the lock: the ADD
 * tail while the pool refills. Tried every 100 µs for 20 ms instead, then
 * every 2 ms, 5 s in all as before.
 */
static int busy_wait(void *unused, int tries) {
        (void)unused;
        int64_t fine = tries < BUSY_FINE_TRIES ? tries : BUSY_FINE_TRIES;
        int64_t waited = fine * BUSY_FINE_US + (int64_t)(tries - fine) * BUSY_COARSE_US;
        if (waited >= BUSY_TIMEOUT_US)
                return 0;
        long us = tries < BUSY_FINE_TRIES ? BUSY_FINE_US : BUSY_COARSE_US;
        struct timespec ts = { 0, us * 1000L };
        nanosleep(&ts, NULL);
        return 1;
}

static int configure(store *s, struct errmsg *err) {
        static const struct { const char *sql, *expect; } pragmas[] = {
                { "PRAGMA journal_mode = WAL", "wal" },
                { "PRAGMA synchronous = FULL", NULL },
                { "PRAGMA foreign_keys = ON", NULL },
        };
        sqlite3_busy_handler(s->db, busy_wait, NULL);
        /* Read first: a corrupt or foreign file fails here, before anything is written. */
        int r = pragma(s, "PRAGMA schema_version", NULL, err);
        for (size_t i = 0; r >= 0 && i < sizeof pragmas / sizeof pragmas[0]; i++)
                r = pragma(s, pragmas[i].sql, pragmas[i].expect, err);
        if (r >= 0)
                r = store_schema_migrate(s->db, store_migrations, store_n_migrations, s->path, err);
        if (r >= 0)
                r = check_integrity(s, err);
        /* Prepared now, so ending a transaction never has to prepare (and fail) */
        for (enum stmt_id id = ST_BEGIN; r >= 0 && id <= ST_ROLLBACK; id++)
                if (!stmt(s, id))
                        r = errmsg_set(err, -EIO, "store %s: cannot prepare %s: %s", s->path, stmt_sql[id],
                                       sqlite3_errmsg(s->db));
        return r;
}

int store_open(const char *path, store **ret, struct errmsg *err) {
        if (!path || !*path || !ret)
                return errmsg_set(err, -EINVAL, "store: no path given");
        store *s = calloc(1, sizeof *s);
        if (!s || !(s->path = strdup(path))) {
                free(s);
                return errmsg_set(err, -ENOMEM, "store %s: out of memory", path);
        }
        pthread_mutex_init(&s->clock_lock, NULL);
        s->epoch = atomic_load(&reopen_epoch);
        int rc = sqlite3_open_v2(path, &s->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        int r = 0;
        struct stat st;
        if (rc != SQLITE_OK)
                r = errmsg_set(err, store_errno_from_sqlite(rc), "store %s: cannot open: %s", path,
                               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        else if ((r = configure(s, err)) >= 0 && stat(path, &st) == 0)
                s->dev = st.st_dev, s->ino = st.st_ino, s->has_identity = true;
        if (r < 0) {
                store_close(s);
                return r;
        }
        *ret = s;
        return 0;
}

store *store_close(store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < ST__MAX; i++)
                sqlite3_finalize(s->stmts[i]);
        sqlite3_close(s->db);
        pthread_mutex_destroy(&s->clock_lock);
        free(s->path);
        free(s);
        return NULL;
}


/* --- identity and reopening ---------------------------------------------------- */

int store_identity_check(store *s) {
        struct stat st;
        if (!s)
                return -EINVAL;
        if (!s->has_identity)
                return 0;
        if (stat(s->path, &st) < 0)
                return -errno;
        return st.st_dev == s->dev && st.st_ino == s->ino ? 0 : -ESTALE;
}

void store_reopen_all(void) {
        atomic_fetch_add(&reopen_epoch, 1);
}

/* Open path afresh and move the new connection into s; s is unchanged on failure. */
static int store_reopen_locked(store *s, struct errmsg *err) {
        store *fresh = NULL;
        int r = store_open(s->path, &fresh, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ST__MAX; i++)
                sqlite3_finalize(s->stmts[i]);
        sqlite3_close(s->db);
        memcpy(s->stmts, fresh->stmts, sizeof s->stmts);
        s->db = fresh->db;
        s->dev = fresh->dev;
        s->ino = fresh->ino;
        s->has_identity = fresh->has_identity;
        s->epoch = fresh->epoch;
        if (s->serving)
                (void)store_set_serving(s);
        free(fresh->path);
        pthread_mutex_destroy(&fresh->clock_lock);
        free(fresh);
        return 0;
}

int store_set_serving(store *s) {
        if (!s)
                return -EINVAL;
        int rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_wal_autocheckpoint(s->db, 0);
        if (rc != SQLITE_OK)
                return store_errno_from_sqlite(rc);
        s->serving = true;
        return 0;
}

int store_reopen(store *s, struct errmsg *err) {
        if (!s)
                return errmsg_set(err, -EINVAL, "store: no handle");
        if (!sqlite3_get_autocommit(s->db))
                return errmsg_set(err, -EBUSY, "store %s: a transaction is open", s->path);
        return store_reopen_locked(s, err);
}


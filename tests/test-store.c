/*
 * test-store: the pool store's operations, idempotency, cooldown across
 * reopen, migrations, the constraints the database itself enforces, the
 * invariant check, and refusal of corrupt or newer stores.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "../ipam/store-schema.h"
#include "testlib.h"

#define T0 1700000000000LL
#define COOLDOWN 30000

static store *fresh(void) {
        store *s = NULL;
        struct errmsg e;
        int r = store_open(testlib_path("pool.db"), &s, &e);
        ck_assert_msg(r == 0, "store_open: %s", e.text);
        return s;
}

static void add_eni(store *s, const char *id, int dev, const char *primary_ip, enum store_eni_state st) {
        struct store_eni e = { .device_index = dev, .route_table = dev == 0 ? 254 : dev + 1,
                               .is_primary = dev == 0, .state = st, .created_ms = T0 };
        snprintf(e.id, sizeof e.id, "%s", id);
        snprintf(e.mac, sizeof e.mac, "02:00:00:00:00:%02x", dev);
        snprintf(e.subnet_id, sizeof e.subnet_id, "subnet-1");
        snprintf(e.subnet_cidr, sizeof e.subnet_cidr, "10.0.0.0/16");
        snprintf(e.primary_ip, sizeof e.primary_ip, "%s", primary_ip);
        ck_assert_int_eq(store_eni_put(s, &e), 0);
}

/* Secondary /32s 10.0.<third>.<from..to> on eni. */
static void add_ips(store *s, const char *eni, int third, int from, int to, int64_t now) {
        for (int i = from; i <= to; i++) {
                char cidr[STORE_CIDR_MAX];
                snprintf(cidr, sizeof cidr, "10.0.%d.%d/32", third, i);
                ck_assert_int_eq(store_block_add(s, eni, cidr, now), 0);
        }
}

/* A node with its primary ENI attached holding n secondary IPs 10.0.0.10... */
static store *node_with(int n) {
        store *s = fresh();
        add_eni(s, "eni-p", 0, "10.0.0.5", STORE_ENI_ATTACHED);
        add_ips(s, "eni-p", 0, 10, 10 + n - 1, T0);
        return s;
}

static struct store_attachment att(const char *cid) {
        return (struct store_attachment){ .container_id = cid, .ifname = "eth0", .netns = "/var/run/netns/x",
                                          .pod_namespace = "default", .pod_name = cid, .pod_uid = "uid-1",
                                          .host_veth = "eni0123456789a" };
}

static void healthy(store *s, int64_t now) {
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_msg(store_check(s, now, &e) == 0, "store_check: %s", e.text);
}

START_TEST(test_assign_is_idempotent) {
        store *s = node_with(3);
        struct store_attachment a = att("c1");
        struct store_lease l1, l2;
        bool existing = true;
        ck_assert_int_eq(store_assign(s, &a, T0, &l1, &existing), 0);
        ck_assert(!existing);
        ck_assert_str_eq(l1.eni_id, "eni-p");
        ck_assert_int_eq(l1.route_table, 254);
        ck_assert_str_eq(l1.pod_name, "c1");
        ck_assert_int_eq(store_assign(s, &a, T0 + 5, &l2, &existing), 0);
        ck_assert(existing);
        ck_assert_str_eq(l1.ip, l2.ip);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.assigned, 1);
        ck_assert_int_eq(st.available, 2);
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_distinct_addresses_then_empty) {
        store *s = node_with(3);
        char seen[3][STORE_IP_MAX];
        for (int i = 0; i < 3; i++) {
                char cid[16];
                snprintf(cid, sizeof cid, "c%d", i);
                struct store_attachment a = att(cid);
                struct store_lease l;
                ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
                for (int j = 0; j < i; j++)
                        ck_assert_str_ne(seen[j], l.ip);
                memcpy(seen[i], l.ip, sizeof seen[i]);
        }
        struct store_attachment a = att("c9");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EAGAIN);
        /* Same container, another interface, is another attachment. */
        a = att("c0");
        a.ifname = "eth1";
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EAGAIN);
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_release_idempotent_and_cooldown) {
        store *s = node_with(1);
        struct store_attachment a = att("c1"), b = att("c2");
        struct store_lease l, r;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1000, COOLDOWN, &r), 1);
        ck_assert_str_eq(r.ip, l.ip);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1000, COOLDOWN, NULL), 0);
        /* (T0 + 1000, not earlier: an earlier time is a backward clock step to the store) */
        ck_assert_int_eq(store_release(s, "never", "eth0", T0 + 1000, COOLDOWN, NULL), 0);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0 + 2000, &st), 0);
        ck_assert_int_eq(st.cooldown, 1);
        ck_assert_int_eq(st.available, 0);
        /* The only address is cooling: nothing to hand out until it ends. */
        ck_assert_int_eq(store_assign(s, &b, T0 + 1000 + COOLDOWN - 1, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_assign(s, &b, T0 + 1000 + COOLDOWN, &r, NULL), 0);
        ck_assert_str_eq(r.ip, l.ip);
        healthy(s, T0 + 1000 + COOLDOWN);
        store_close(s);
}
END_TEST

START_TEST(test_free_longest_is_chosen) {
        store *s = node_with(3); /* 10.0.0.10-12 all free since T0 */
        struct store_attachment a = att("a"), b = att("b"), c = att("c"), d = att("d");
        struct store_lease la, lb, lc, ld;
        ck_assert_int_eq(store_assign(s, &a, T0, &la, NULL), 0);
        ck_assert_int_eq(store_assign(s, &b, T0, &lb, NULL), 0);
        ck_assert_int_eq(store_assign(s, &c, T0, &lc, NULL), 0);
        ck_assert_int_eq(store_release(s, "b", "eth0", T0 + 100, 0, NULL), 1);
        ck_assert_int_eq(store_release(s, "a", "eth0", T0 + 200, 0, NULL), 1);
        ck_assert_int_eq(store_assign(s, &d, T0 + 300, &ld, NULL), 0);
        ck_assert_str_eq(ld.ip, lb.ip); /* freed first, so reused first */
        store_close(s);
}
END_TEST

START_TEST(test_cooldown_survives_reopen) {
        store *s = node_with(1);
        struct store_attachment a = att("c1"), b = att("c2");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, COOLDOWN, NULL), 1);
        store_close(s);
        s = fresh();
        ck_assert_int_eq(store_assign(s, &b, T0 + 1000, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_assign(s, &b, T0 + COOLDOWN, NULL, NULL), 0);
        store_close(s);
}
END_TEST

START_TEST(test_gc_releases_the_rest) {
        store *s = node_with(4);
        const char *ids[] = { "k1", "k2", "k3" };
        for (int i = 0; i < 3; i++) {
                struct store_attachment a = att(ids[i]);
                ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0);
        }
        struct store_key valid[] = { { "k2", "eth0" }, { "k9", "eth0" } };
        size_t released = 0;
        struct store_lease *gone = NULL;
        ck_assert_int_eq(store_gc(s, valid, 2, T0 + 10, COOLDOWN, &gone, &released), 0);
        ck_assert_uint_eq(released, 2);
        ck_assert_str_eq(gone[0].container_id, "k1");
        ck_assert_str_eq(gone[1].container_id, "k3");
        free(gone);
        struct store_lease l;
        ck_assert_int_eq(store_lookup(s, "k2", "eth0", &l), 0);
        ck_assert_int_eq(store_lookup(s, "k1", "eth0", &l), -ENOENT);
        ck_assert_int_eq(store_gc(s, NULL, 0, T0 + 20, COOLDOWN, NULL, &released), 0);
        ck_assert_uint_eq(released, 1);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0 + 20, &st), 0);
        ck_assert_int_eq(st.assigned, 0);
        ck_assert_int_eq(st.cooldown, 3);
        healthy(s, T0 + 20);
        store_close(s);
}
END_TEST

START_TEST(test_only_attached_enis_serve) {
        store *s = fresh();
        add_eni(s, "eni-p", 0, "10.0.0.5", STORE_ENI_ATTACHED);
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHING);
        add_ips(s, "eni-2", 1, 1, 2, T0);
        struct store_attachment a = att("c1");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_eni_set_state(s, "eni-2", STORE_ENI_ATTACHED), 0);
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.eni_id, "eni-2");
        ck_assert_int_eq(l.device_index, 1);
        ck_assert_int_eq(l.route_table, 2);
        ck_assert_int_eq(store_eni_set_state(s, "eni-9", STORE_ENI_ATTACHED), -ENOENT);
        store_close(s);
}
END_TEST

/* Many blocks in one transaction: each refused one leaves the others; an unknown ENI adds none. */
START_TEST(test_blocks_add_batch) {
        store *s = fresh();
        add_eni(s, "eni-p", 0, "10.0.0.5", STORE_ENI_ATTACHED);
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHED);
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.1.16/28", T0), 0);
        const char *cidrs[] = { "10.0.2.1/32", "10.0.1.20/32", "10.0.0.6/32", "10.0.2.1", "10.0.2.2/32" };
        int res[5];
        ck_assert_int_eq(store_blocks_add(s, "eni-p", cidrs, 5, T0, res), 0);
        ck_assert_int_eq(res[0], 0);
        ck_assert_int_eq(res[1], -EEXIST);              /* inside eni-2's /28 */
        ck_assert_int_eq(res[2], -EADDRNOTAVAIL);       /* eni-2's primary */
        ck_assert_int_eq(res[3], -EINVAL);
        ck_assert_int_eq(res[4], 0);
        char (*have)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_blocks(s, "eni-p", &have, &n), 0);
        ck_assert_uint_eq(n, 2);
        free(have);
        ck_assert_int_lt(store_blocks_add(s, "eni-9", (const char *[]){ "10.0.3.1/32" }, 1, T0, res), 0);
        ck_assert_int_eq(store_blocks(s, NULL, &have, &n), 0);
        ck_assert_uint_eq(n, 3);                        /* the /28 and the two above */
        free(have);
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_blocks) {
        store *s = fresh();
        add_eni(s, "eni-p", 0, "10.0.0.5", STORE_ENI_ATTACHED);
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHED);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.16/28", T0), 0);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.16/28", T0), 0);        /* again: no-op */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.1.16/28", T0), -EEXIST);  /* another ENI's */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.1.20/32", T0), -EEXIST);  /* inside the /28 */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.1.8/28", T0), -EINVAL);   /* misaligned */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.2.0/24", T0), -EINVAL);   /* neither kind */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.2.300/32", T0), -EINVAL);
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.2.1", T0), -EINVAL);
        ck_assert_int_eq(store_block_add(s, "eni-9", "10.0.2.1/32", T0), -ENOENT);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.total, 16);
        ck_assert_int_eq(st.enis, 2);
        char (*cidrs)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_blocks(s, "eni-p", &cidrs, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(cidrs[0], "10.0.1.16/28");
        free(cidrs);
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_remove_busy_and_forced) {
        store *s = node_with(2);
        struct store_attachment a = att("c1");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        char cidr[STORE_CIDR_MAX];
        snprintf(cidr, sizeof cidr, "%s/32", l.ip);
        size_t lost = 99;
        ck_assert_int_eq(store_block_remove(s, cidr, false, &lost), -EBUSY);
        ck_assert_int_eq(store_eni_remove(s, "eni-p", false, &lost), -EBUSY);
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", NULL), 0);
        ck_assert_int_eq(store_block_remove(s, cidr, true, &lost), 0);
        ck_assert_uint_eq(lost, 1);
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", NULL), -ENOENT);
        ck_assert_int_eq(store_block_remove(s, cidr, true, &lost), -ENOENT);
        ck_assert_int_eq(store_eni_remove(s, "eni-p", false, &lost), 0);
        ck_assert_uint_eq(lost, 0);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.total, 0);
        ck_assert_int_eq(st.enis, 0);
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_mark_releasing) {
        store *s = node_with(4);
        struct store_attachment a = att("c1"), b = att("c2");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_assign(s, &b, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_release(s, "c2", "eth0", T0, COOLDOWN, NULL), 1);
        /* 4 addresses: 1 assigned, 1 cooling, 2 free. Only the 2 free may be released. */
        char cidrs[8][STORE_CIDR_MAX];
        size_t n = 0;
        ck_assert_int_eq(store_blocks_mark_releasing(s, "eni-p", 8, T0 + 1, cidrs, &n), 0);
        ck_assert_uint_eq(n, 2);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0 + 1, &st), 0);
        ck_assert_int_eq(st.releasing, 2);
        ck_assert_int_eq(st.available, 0);
        struct store_attachment c = att("c3");
        ck_assert_int_eq(store_assign(s, &c, T0 + 1, NULL, NULL), -EAGAIN);
        struct plan_eni pe[4];
        size_t np = 0;
        ck_assert_int_eq(store_plan_enis(s, T0 + 1, pe, 4, &np), 0);
        ck_assert_uint_eq(np, 1);
        ck_assert_int_eq(pe[0].assigned, 1);
        ck_assert_int_eq(pe[0].cooldown, 1);
        ck_assert_int_eq(pe[0].releasing, 2);
        ck_assert_int_eq(pe[0].free, 0);
        ck_assert(pe[0].is_primary);
        /* EC2 refused one: it is free again; the other went. */
        ck_assert_int_eq(store_block_unmark_releasing(s, cidrs[0]), 0);
        ck_assert_int_eq(store_block_remove(s, cidrs[1], false, NULL), 0);
        ck_assert_int_eq(store_assign(s, &c, T0 + 1, NULL, NULL), 0);
        healthy(s, T0 + 1);
        store_close(s);
}
END_TEST

START_TEST(test_begin_detach) {
        store *s = fresh();
        add_eni(s, "eni-p", 0, "10.0.0.5", STORE_ENI_ATTACHED);
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHED);
        add_ips(s, "eni-2", 1, 1, 2, T0);
        struct store_attachment a = att("c1");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_int_eq(store_eni_begin_detach(s, "eni-2", T0), -EBUSY);       /* a pod holds one */
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, COOLDOWN, NULL), 1);
        ck_assert_int_eq(store_eni_begin_detach(s, "eni-2", T0 + 1), -EBUSY);   /* cooling */
        char cidrs[2][STORE_CIDR_MAX];
        size_t n;
        ck_assert_int_eq(store_blocks_mark_releasing(s, "eni-2", 1, T0 + COOLDOWN, cidrs, &n), 0);
        ck_assert_int_eq(store_eni_begin_detach(s, "eni-2", T0 + COOLDOWN), -EBUSY); /* releasing */
        int64_t added;
        bool releasing;
        ck_assert_int_eq(store_block_info(s, cidrs[0], &added, &releasing), 0);
        ck_assert(releasing);
        ck_assert_int_eq(added, T0);
        ck_assert_int_eq(store_unmark_all_releasing(s), 0);
        ck_assert_int_eq(store_block_info(s, cidrs[0], NULL, &releasing), 0);
        ck_assert(!releasing);
        ck_assert_int_eq(store_block_info(s, "10.9.9.9/32", NULL, NULL), -ENOENT);
        ck_assert_int_eq(store_eni_begin_detach(s, "eni-2", T0 + COOLDOWN), 0);
        struct store_eni e;
        ck_assert_int_eq(store_eni_get(s, "eni-2", &e), 0);
        ck_assert_int_eq(e.state, STORE_ENI_DETACHING);
        a = att("c2");
        ck_assert_int_eq(store_assign(s, &a, T0 + COOLDOWN, NULL, NULL), -EAGAIN); /* nothing from it now */
        ck_assert_int_eq(store_eni_begin_detach(s, "eni-9", T0), -ENOENT);
        store_close(s);
}
END_TEST

START_TEST(test_plan_enis_counts) {
        store *s = fresh();
        add_eni(s, "eni-p", 0, "10.0.0.5", STORE_ENI_ATTACHED);
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHED);
        add_eni(s, "eni-3", 2, "10.0.0.7", STORE_ENI_DETACHING);
        add_ips(s, "eni-p", 0, 10, 12, T0);
        add_ips(s, "eni-2", 1, 1, 4, T0);
        struct plan_eni pe[4];
        size_t n = 0;
        ck_assert_int_eq(store_plan_enis(s, T0 + 90000, pe, 4, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(pe[0].id, "eni-p");
        ck_assert_int_eq(pe[0].free, 3);
        ck_assert_str_eq(pe[1].id, "eni-2");
        ck_assert_int_eq(pe[1].free, 4);
        ck_assert_int_eq(pe[1].device_index, 1);
        ck_assert_int_eq(pe[1].age_ms, 90000);
        ck_assert_int_eq(store_plan_enis(s, T0, pe, 1, &n), -ENOBUFS);
        store_close(s);
}
END_TEST

START_TEST(test_bad_input_refused) {
        store *s = node_with(1);
        char big[300];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        struct store_attachment a = att("c1");
        a.ifname = "eth0-much-too-long";
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EINVAL);
        a = att("");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EINVAL);
        a = att(big);
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(store_assign(s, NULL, T0, NULL, NULL), -EINVAL);
        ck_assert_int_eq(store_release(s, NULL, "eth0", T0, 0, NULL), -EINVAL);
        struct store_eni e = { .device_index = 1, .route_table = 2, .state = STORE_ENI_ATTACHED };
        snprintf(e.id, sizeof e.id, "vol-123");
        ck_assert_int_eq(store_eni_put(s, &e), -EINVAL);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.assigned, 0); /* nothing changed */
        store_close(s);
}
END_TEST

/* The database refuses what must never happen, even from raw SQL. */
START_TEST(test_database_constraints) {
        store *s = node_with(2);
        struct store_attachment a = att("c1");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        store_close(s);

        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        static const char *const refused[] = {
                /* an address held twice */
                "INSERT INTO addresses (addr, block, state, free_since) VALUES (167772170, '10.0.0.10/32', 'free', 0)",
                /* one attachment, two addresses */
                "UPDATE addresses SET state = 'assigned', container_id = 'c1', ifname = 'eth0', assigned_ms = 1"
                " WHERE state = 'free'",
                /* an address outside its block */
                "INSERT INTO blocks (cidr, eni_id, kind, first, size, added_ms)"
                " VALUES ('10.0.9.9/32', 'eni-p', 'ip', 167774473, 1, 0)",
                "INSERT INTO addresses (addr, block, state, free_since) VALUES (167774474, '10.0.9.9/32', 'free', 0)",
                /* assigned without a holder */
                "UPDATE addresses SET state = 'assigned' WHERE state = 'free'",
                /* a prefix that is not aligned */
                "INSERT INTO blocks (cidr, eni_id, kind, first, size, added_ms)"
                " VALUES ('10.0.8.8/28', 'eni-p', 'prefix', 167774216, 16, 0)",
                /* a block of an unknown ENI */
                "INSERT INTO blocks (cidr, eni_id, kind, first, size, added_ms)"
                " VALUES ('10.0.7.7/32', 'eni-x', 'ip', 167773959, 1, 0)",
                /* an intent with broken params */
                "INSERT INTO intents (kind, params, state, created_ms) VALUES ('create_eni', '{bad', 'open', 0)",
        };
        for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
                int rc = sqlite3_exec(db, refused[i], NULL, NULL, NULL);
                if (i == 2) { /* the block itself is fine; its stray address is not */
                        ck_assert_int_eq(rc, SQLITE_OK);
                        continue;
                }
                ck_assert_msg(rc != SQLITE_OK, "accepted: %s", refused[i]);
        }
        /* Assignment on an ENI that is not attached, through raw SQL. */
        ck_assert_int_eq(sqlite3_exec(db, "UPDATE enis SET state = 'detaching'", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_ne(sqlite3_exec(db, "UPDATE addresses SET state = 'assigned', container_id = 'c2',"
                                          " ifname = 'eth0', assigned_ms = 1 WHERE addr = 167772171",
                                      NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}
END_TEST

START_TEST(test_check_finds_damage) {
        store *s = node_with(2);
        healthy(s, T0);
        store_close(s);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        /* Lose an address of a block behind the store's back. */
        ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM addresses WHERE addr = 167772170", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        s = fresh();
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_int_eq(store_check(s, T0, &e), -EUCLEAN);
        ck_assert_ptr_nonnull(strstr(e.text, "missing addresses"));
        ck_assert_ptr_nonnull(strstr(e.text, "pool.db"));
        store_close(s);
}
END_TEST

START_TEST(test_check_finds_primary_in_pool) {
        store *s = node_with(1);
        struct store_attachment a = att("c1");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0); /* held, so it stays in the pool */
        add_eni(s, "eni-2", 1, "10.0.0.10", STORE_ENI_ATTACHED); /* its primary is a pool address */
        struct errmsg e;
        ck_assert_int_eq(store_check(s, T0, &e), -EUCLEAN);
        ck_assert_ptr_nonnull(strstr(e.text, "10.0.0.10"));
        store_close(s);
}
END_TEST

static void write_file(const char *path, const char *data, size_t n) {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, n, f), n);
        fclose(f);
}

START_TEST(test_corrupt_file_refused_untouched) {
        const char *path = testlib_path("pool.db");
        char junk[8192];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (char)(i * 7 + 3);
        write_file(path, junk, sizeof junk);
        store *s = NULL;
        struct errmsg e;
        errmsg_clear(&e);
        int r = store_open(path, &s, &e);
        ck_assert_int_eq(r, -EBADMSG);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(strstr(e.text, path));
        FILE *f = fopen(path, "rb");
        char back[sizeof junk + 1];
        size_t n = fread(back, 1, sizeof back, f);
        fclose(f);
        ck_assert_uint_eq(n, sizeof junk);
        ck_assert_int_eq(memcmp(back, junk, sizeof junk), 0);
}
END_TEST

START_TEST(test_unopenable_path) {
        store *s = NULL;
        struct errmsg e;
        ck_assert_int_lt(store_open("/nonexistent-dir/pool.db", &s, &e), 0);
        ck_assert_ptr_nonnull(strstr(e.text, "/nonexistent-dir/pool.db"));
        ck_assert_int_eq(store_open("", &s, &e), -EINVAL);
}
END_TEST

START_TEST(test_newer_schema_refused) {
        store *s = fresh();
        store_close(s);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        struct errmsg e;
        ck_assert_int_eq(store_open(testlib_path("pool.db"), &s, &e), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(e.text, "schema version 99"));
        ck_assert_ptr_nonnull(strstr(e.text, "pool.db"));
}
END_TEST

static int user_version(sqlite3 *db) {
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        int v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return v;
}

/* The migration mechanism, with a test-only list: in order, kept data, atomic steps. */
START_TEST(test_migrations_forward) {
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("m.db"), &db), SQLITE_OK);
        const struct store_migration v1[] = { { 1, "CREATE TABLE t (a INTEGER);" } };
        const struct store_migration v3[] = {
                { 1, "CREATE TABLE t (a INTEGER);" },
                { 2, "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 7;" },
                { 3, "CREATE TABLE u (x INTEGER); INSERT INTO nonexistent VALUES (1);" },
        };
        struct errmsg e;
        ck_assert_int_eq(store_schema_migrate(db, v1, 1, "m.db", &e), 0);
        ck_assert_int_eq(user_version(db), 1);
        ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO t (a) VALUES (42)", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(store_schema_migrate(db, v3, 3, "m.db", &e), -EIO);
        ck_assert_ptr_nonnull(strstr(e.text, "schema 3"));
        ck_assert_int_eq(user_version(db), 2); /* step 2 stayed, step 3 rolled back whole */
        ck_assert_int_ne(sqlite3_exec(db, "SELECT * FROM u", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT a, b FROM t", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 42);
        ck_assert_int_eq(sqlite3_column_int(st, 1), 7);
        sqlite3_finalize(st);
        /* Already current: nothing to do. */
        ck_assert_int_eq(store_schema_migrate(db, v3, 2, "m.db", &e), 0);
        sqlite3_close(db);
}
END_TEST

START_TEST(test_fresh_store_is_current) {
        store *s = fresh();
        store_close(s);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        ck_assert_int_eq(user_version(db), STORE_SCHEMA_VERSION);
        sqlite3_close(db);
}
END_TEST

START_TEST(test_intents) {
        store *s = fresh();
        int64_t a, b;
        ck_assert_int_eq(store_intent_begin(s, STORE_INTENT_CREATE_ENI, "tok-1", NULL, "{\"ips\":9}", T0, &a), 0);
        ck_assert_int_eq(store_intent_begin(s, STORE_INTENT_ASSIGN_IPS, NULL, "eni-1", NULL, T0 + 1, &b), 0);
        ck_assert_int_eq(store_intent_begin(s, STORE_INTENT_CREATE_ENI, "tok-1", NULL, "{}", T0, NULL), -EINVAL);
        ck_assert_int_eq(store_intent_begin(s, STORE_INTENT_CREATE_ENI, "tok-2", NULL, "[1]", T0, NULL), -EINVAL);
        ck_assert_int_eq(store_intent_begin(s, STORE_INTENT_LEGACY, NULL, NULL, "{}", T0, NULL), -EINVAL);
        ck_assert_int_eq(store_intent_begin(s, (enum store_intent_kind)99, NULL, NULL, "{}", T0, NULL), -EINVAL);
        struct store_intent *open = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_intents_open(s, &open, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(open[0].kind, STORE_INTENT_CREATE_ENI);
        ck_assert_int_eq(open[1].kind, STORE_INTENT_ASSIGN_IPS);
        ck_assert_str_eq(open[0].client_token, "tok-1");
        ck_assert_str_eq(open[0].params, "{\"ips\":9}");
        ck_assert_str_eq(open[1].eni_id, "eni-1");
        free(open);
        ck_assert_int_eq(store_intent_end(s, a, STORE_INTENT_DONE, "{\"eni\":\"eni-9\"}", T0 + 5), 0);
        ck_assert_int_eq(store_intent_end(s, a, STORE_INTENT_DONE, NULL, T0 + 6), -ENOENT);
        ck_assert_int_eq(store_intent_end(s, b, STORE_INTENT_OPEN, NULL, T0 + 6), -EINVAL);
        ck_assert_int_eq(store_intents_open(s, &open, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(open[0].id, b);
        free(open);
        store_close(s);
}
END_TEST

/* The kinds are stored as the strings older stores hold; a kind only an older
 * daemon wrote reads back as STORE_INTENT_LEGACY, still open, so it gets closed. */
START_TEST(test_intent_kinds_on_disk) {
        store *s = fresh();
        const enum store_intent_kind kinds[] = { STORE_INTENT_CREATE_ENI, STORE_INTENT_ATTACH_ENI,
                                                 STORE_INTENT_DELETE_ENI, STORE_INTENT_ASSIGN_IPS,
                                                 STORE_INTENT_UNASSIGN_IPS };
        const char *names[] = { "create_eni", "attach_eni", "delete_eni", "assign_ips", "unassign_ips" };
        for (size_t i = 0; i < 5; i++) {
                ck_assert_int_eq(store_intent_begin(s, kinds[i], NULL, "eni-1", NULL, T0, NULL), 0);
                ck_assert_str_eq(store_intent_kind_name(kinds[i]), names[i]);
        }
        store_close(s);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        sqlite3_stmt *st;
        ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT kind FROM intents ORDER BY id", -1, &st, NULL), SQLITE_OK);
        for (size_t i = 0; i < 5; i++) {
                ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
                ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), names[i]);
        }
        sqlite3_finalize(st);
        ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO intents (kind, eni_id, params, state, created_ms)"
                                          " VALUES ('detach_eni', 'eni-old', '{}', 'open', 0)", NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
        s = fresh();
        struct store_intent *open = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_intents_open(s, &open, &n), 0);
        ck_assert_uint_eq(n, 6);
        for (size_t i = 0; i < 5; i++)
                ck_assert_int_eq(open[i].kind, kinds[i]);
        ck_assert_int_eq(open[5].kind, STORE_INTENT_LEGACY);
        ck_assert_str_eq(open[5].eni_id, "eni-old");
        ck_assert_str_eq(store_intent_kind_name(open[5].kind), "legacy");
        ck_assert_int_eq(store_intent_end(s, open[5].id, STORE_INTENT_DONE, NULL, T0 + 1), 0);
        free(open);
        store_close(s);
}
END_TEST

START_TEST(test_itype_and_meta) {
        store *s = fresh();
        struct store_itype t = { .name = "m5.large", .max_enis = 3, .ipv4_per_eni = 10,
                                 .prefix_supported = true, .network_cards = 1, .fetched_ms = T0 };
        ck_assert_int_eq(store_itype_put(s, &t), 0);
        struct store_itype got;
        ck_assert_int_eq(store_itype_get(s, "m5.large", &got), 0);
        ck_assert_int_eq(got.max_enis, 3);
        ck_assert_int_eq(got.ipv4_per_eni, 10);
        ck_assert(got.prefix_supported);
        ck_assert_int_eq(store_itype_get(s, "t9.huge", &got), -ENOENT);
        t.max_enis = 0;
        ck_assert_int_eq(store_itype_put(s, &t), -EINVAL);
        char buf[8];
        ck_assert_int_eq(store_meta_set(s, "instance_id", "i-0123"), 0);
        ck_assert_int_eq(store_meta_get(s, "instance_id", buf, sizeof buf), 0);
        ck_assert_str_eq(buf, "i-0123");
        ck_assert_int_eq(store_meta_set(s, "long", "0123456789"), 0);
        ck_assert_int_eq(store_meta_get(s, "long", buf, sizeof buf), -ENOBUFS);
        ck_assert_int_eq(store_meta_get(s, "nope", buf, sizeof buf), -ENOENT);
        store_close(s);
}
END_TEST

START_TEST(test_leases_and_enis_listed) {
        store *s = node_with(3);
        const char *ids[] = { "z", "y" };
        for (int i = 0; i < 2; i++) {
                struct store_attachment a = att(ids[i]);
                ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0);
        }
        struct store_lease *ls = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_leases(s, &ls, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(ls[0].ip, "10.0.0.10");
        ck_assert_str_eq(ls[0].container_id, "z");
        ck_assert_str_eq(ls[0].netns, "/var/run/netns/x");
        ck_assert_str_eq(ls[0].host_veth, "eni0123456789a");
        free(ls);
        struct store_eni *es = NULL;
        ck_assert_int_eq(store_enis(s, &es, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(es[0].mac, "02:00:00:00:00:00");
        ck_assert(es[0].is_primary);
        ck_assert_int_eq(es[0].state, STORE_ENI_ATTACHED);
        free(es);
        store_close(s);
}
END_TEST

/* --- an ENI's primary address is never a pool address (schema 2) ----------- */

static size_t n_blocks(store *s, const char *eni) {
        char (*cidrs)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_blocks(s, eni, &cidrs, &n), 0);
        free(cidrs);
        return n;
}

static bool has_block(store *s, const char *cidr) {
        return store_block_info(s, cidr, NULL, NULL) == 0;
}

START_TEST(test_primary_refused_as_block) {
        store *s = node_with(1);                                /* eni-p: primary 10.0.0.5, 10.0.0.10 */
        add_eni(s, "eni-2", 1, "10.0.0.40", STORE_ENI_ATTACHED);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.0.5/32", T0), -EADDRNOTAVAIL);   /* its own */
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.0.40/32", T0), -EADDRNOTAVAIL);  /* another's */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.0.32/28", T0), -EADDRNOTAVAIL);  /* inside a /28 */
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.0.11/32", T0), 0);
        ck_assert_uint_eq(n_blocks(s, "eni-p"), 1);
        ck_assert_uint_eq(n_blocks(s, "eni-2"), 1);              /* nothing of the refused /28 stayed */
        healthy(s, T0);
        store_close(s);
        /* Raw SQL cannot slip it in either, and says why. */
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO blocks (cidr, eni_id, kind, first, size, added_ms)"
                                          " VALUES ('10.0.0.5/32', 'eni-p', 'ip', 167772165, 1, 0)",
                                      NULL, NULL, NULL), SQLITE_OK);
        char *msg = NULL;
        ck_assert_int_ne(sqlite3_exec(db, "INSERT INTO addresses (addr, block, state, free_since)"
                                          " VALUES (167772165, '10.0.0.5/32', 'free', 0)", NULL, NULL, &msg),
                         SQLITE_OK);
        ck_assert_ptr_nonnull(msg);
        ck_assert_ptr_nonnull(strstr(msg, "primary address is never a pool address"));
        sqlite3_free(msg);
        sqlite3_close(db);
}
END_TEST

/* The VPC's reserved addresses and off-subnet blocks never enter the pool (moto draws them). */
START_TEST(test_reserved_and_off_subnet_refused) {
        store *s = node_with(1);                                /* eni-p in 10.0.0.0/16 */
        const char *refused[] = { "10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32",
                                  "10.0.255.255/32", "10.1.0.9/32", "10.0.0.0/28", "10.0.255.240/28" };
        for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
                ck_assert_msg(store_block_add(s, "eni-p", refused[i], T0) == -EADDRNOTAVAIL, "%s", refused[i]);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.0.4/32", T0), 0);        /* first usable */
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.255.254/32", T0), 0);    /* last usable */
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.0.16/28", T0), 0);
        ck_assert_uint_eq(n_blocks(s, "eni-p"), 4);              /* 10.0.0.10 from node_with, and these 3 */
        healthy(s, T0);
        store_close(s);
}
END_TEST

/* The store notices its file removed or replaced, and a reopen starts afresh at the path. */
START_TEST(test_identity_and_reopen) {
        store *s = node_with(2);
        ck_assert_int_eq(store_identity_check(s), 0);
        ck_assert_int_eq(unlink(testlib_path("pool.db")), 0);
        ck_assert_int_eq(store_identity_check(s), -ENOENT);
        store *other = fresh();                                 /* another file takes the path */
        store_close(other);
        ck_assert_int_eq(store_identity_check(s), -ESTALE);
        struct errmsg e;
        ck_assert_msg(store_reopen(s, &e) == 0, "%s", e.text);
        ck_assert_int_eq(store_identity_check(s), 0);
        struct store_lease l;
        struct store_attachment a = att("c1");
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), -EAGAIN); /* the new file holds no pool */
        store_close(s);
}
END_TEST

/* A live pod's address marked releasing (a crash mid-release) is kept for it, never unassigned. */
START_TEST(test_assign_addr_keeps_a_releasing_address) {
        store *s = node_with(1);                                /* 10.0.0.10 */
        char cidrs[1][STORE_CIDR_MAX];
        size_t n = 0;
        ck_assert_int_eq(store_blocks_mark_releasing(s, "eni-p", 1, T0 + 3600 * 1000, cidrs, &n), 0);
        ck_assert_uint_eq(n, 1);
        struct store_attachment a = att("c1");
        struct store_lease l;
        ck_assert_int_eq(store_assign_addr(s, &a, "10.0.0.10", T0, &l), 0);
        ck_assert_str_eq(l.ip, "10.0.0.10");
        bool releasing = true;
        ck_assert_int_eq(store_block_info(s, "10.0.0.10/32", NULL, &releasing), 0);
        ck_assert(!releasing);
        ck_assert_int_eq(store_assign_addr(s, &a, "10.0.0.10", T0, &l), 1);   /* already held */
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_new_primary_leaves_the_pool) {
        store *s = node_with(2);                                /* 10.0.0.10, 10.0.0.11 free */
        add_eni(s, "eni-3", 3, "10.0.0.11", STORE_ENI_ATTACHED);  /* EC2 made one of them a primary */
        ck_assert(!has_block(s, "10.0.0.11/32"));
        ck_assert(has_block(s, "10.0.0.10/32"));
        /* The same through an update of an ENI's primary. */
        add_eni(s, "eni-3", 3, "10.0.0.10", STORE_ENI_ATTACHED);
        ck_assert(!has_block(s, "10.0.0.10/32"));
        struct store_attachment a = att("c1");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), -EAGAIN);
        healthy(s, T0);
        store_close(s);
}
END_TEST

START_TEST(test_held_primary_leaves_at_release) {
        store *s = node_with(2);
        struct store_attachment a = att("c1");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.10");
        add_eni(s, "eni-2", 1, "10.0.0.10", STORE_ENI_ATTACHED); /* held by c1: kept until released */
        ck_assert(has_block(s, "10.0.0.10/32"));
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", &l), 0);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, 0, NULL), 1);
        ck_assert(!has_block(s, "10.0.0.10/32"));               /* gone, never handed out again */
        struct store_attachment b = att("c2");
        ck_assert_int_eq(store_assign(s, &b, T0 + 1, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.11");
        struct store_attachment c = att("c3");
        ck_assert_int_eq(store_assign(s, &c, T0 + 1, NULL, NULL), -EAGAIN);
        healthy(s, T0 + 1);
        store_close(s);
}
END_TEST

/* A store written at schema 1 that holds two primaries: a free one (dropped) and one a pod holds. */
START_TEST(test_migration_drops_free_primaries) {
        sqlite3 *db;
        struct errmsg e;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        ck_assert_int_eq(store_schema_migrate(db, store_migrations, 1, "pool.db", &e), 0);
        ck_assert_int_eq(user_version(db), 1);
        static const char v1_data[] =
                "INSERT INTO enis VALUES ('eni-p', '02:00:00:00:00:00', 0, 0, 'subnet-1', '10.0.0.0/16',"
                " '10.0.0.5', 254, 1, 'attached', 0);"
                "INSERT INTO enis VALUES ('eni-2', '02:00:00:00:00:01', 1, 0, 'subnet-1', '10.0.0.0/16',"
                " '10.0.0.20', 2, 0, 'attached', 0);"
                "INSERT INTO blocks VALUES ('10.0.0.5/32', 'eni-p', 'ip', 167772165, 1, 0);"
                "INSERT INTO blocks VALUES ('10.0.0.10/32', 'eni-p', 'ip', 167772170, 1, 0);"
                "INSERT INTO blocks VALUES ('10.0.0.20/32', 'eni-2', 'ip', 167772180, 1, 0);"
                "INSERT INTO addresses (addr, block, state, free_since) VALUES (167772165, '10.0.0.5/32', 'free', 0);"
                "INSERT INTO addresses (addr, block, state, free_since) VALUES (167772170, '10.0.0.10/32', 'free', 0);"
                "INSERT INTO addresses (addr, block, state, free_since, container_id, ifname, assigned_ms)"
                " VALUES (167772180, '10.0.0.20/32', 'assigned', 0, 'held', 'eth0', 1);";
        char *msg = NULL;
        ck_assert_msg(sqlite3_exec(db, v1_data, NULL, NULL, &msg) == SQLITE_OK, "%s", msg);
        sqlite3_close(db);

        store *s = fresh();                                     /* migrates to the current schema */
        ck_assert(!has_block(s, "10.0.0.5/32"));                /* free primary: dropped */
        ck_assert(has_block(s, "10.0.0.20/32"));                /* held by a pod: kept */
        ck_assert(has_block(s, "10.0.0.10/32"));
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.0.5/32", T0), -EADDRNOTAVAIL);
        struct store_lease l;
        struct store_attachment a = att("c1");
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.10");
        ck_assert_int_eq(store_release(s, "held", "eth0", T0, 0, NULL), 1);
        ck_assert(!has_block(s, "10.0.0.20/32"));               /* released: out of the pool for good */
        struct store_attachment b = att("c2");
        ck_assert_int_eq(store_assign(s, &b, T0, NULL, NULL), -EAGAIN);
        healthy(s, T0);
        store_close(s);
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        ck_assert_int_eq(user_version(db), STORE_SCHEMA_VERSION);
        sqlite3_close(db);
}
END_TEST

/* --- cooldown and the clock ---------------------------------------------------- */

#define HOUR (3600 * 1000LL)

/* A backward wall-clock step while running does not lengthen a cooldown: it ends COOLDOWN of
 * elapsed time after the release, as it would have without the step. */
START_TEST(test_cooldown_ignores_a_backward_step) {
        store *s = node_with(1);
        struct store_attachment a = att("c1"), b = att("c2");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1000, COOLDOWN, NULL), 1);
        int64_t back = T0 + 1000 - HOUR;                        /* the clock steps back an hour */
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, back, &st), 0);
        ck_assert_int_eq(st.cooldown, 1);
        ck_assert_int_eq(store_assign(s, &b, back + COOLDOWN - 1, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_assign(s, &b, back + COOLDOWN, NULL, NULL), 0);
        store_close(s);
}
END_TEST

/* Across a restart the wall clock is trusted, bounded: the rest of a cooldown is what the store
 * says (10 s gone of 30 s: 20 s more), but never more than the period after a clock gone back. */
START_TEST(test_cooldown_after_restart_is_bounded) {
        store *s = node_with(2);
        struct store_attachment a = att("c1"), b = att("c2"), c = att("c3"), d = att("c4");
        ck_assert_int_eq(store_assign(s, &a, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_assign(s, &b, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1000, COOLDOWN, NULL), 1);
        store_close(s);
        /* restarted 10 s later: 20 s left */
        s = fresh();
        ck_assert_int_eq(store_assign(s, &c, T0 + 11000, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_assign(s, &c, T0 + 1000 + COOLDOWN - 1, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_assign(s, &c, T0 + 1000 + COOLDOWN, NULL, NULL), 0);
        ck_assert_int_eq(store_release(s, "c2", "eth0", T0 + 1000 + COOLDOWN, COOLDOWN, NULL), 1);
        store_close(s);
        /* restarted with the clock a day back: at most the period from now, not a day more */
        s = fresh();
        int64_t back = T0 - 24 * HOUR;
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, back, &st), 0);
        ck_assert_int_eq(st.cooldown, 1);
        ck_assert_int_eq(store_assign(s, &d, back + COOLDOWN - 1, NULL, NULL), -EAGAIN);
        ck_assert_int_eq(store_assign(s, &d, back + COOLDOWN, NULL, NULL), 0);
        store_close(s);
}
END_TEST

/* --- prefix delegation ---------------------------------------------------------- */

static int addr_host(const char *ip) {
        return atoi(strrchr(ip, '.') + 1);
}

/* Pod addresses come from prefixes before /32s: the lowest free of the fullest prefix, so
 * the others empty out; the planner sees prefixes, and empty ones only when all 16 are
 * free and past cooldown. */
START_TEST(test_prefix_pick_fullest_lowest) {
        store *s = node_with(2);                        /* /32s 10.0.0.10-11 */
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.32/28", T0), 0);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.16/28", T0), 0);
        struct plan_eni pe[2];
        size_t n = 0;
        ck_assert_int_eq(store_plan_enis(s, T0, pe, 2, &n), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(pe[0].prefixes, 2);
        ck_assert_int_eq(pe[0].empty_prefixes, 2);
        ck_assert_int_eq(pe[0].free, 34);
        ck_assert_int_eq(pe[0].free_ips, 2);
        struct store_stats ss;
        ck_assert_int_eq(store_stats(s, T0, &ss), 0);
        ck_assert_int_eq(ss.prefixes, 2);
        ck_assert_int_eq(ss.total, 34);
        /* equally empty: the lowest address of the lowest prefix */
        struct store_attachment a = att("c1"), b = att("c2"), c = att("c3");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.16");
        ck_assert_int_eq(store_assign(s, &b, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.17");
        ck_assert_int_eq(store_plan_enis(s, T0, pe, 2, &n), 0);
        ck_assert_int_eq(pe[0].prefixes, 2);
        ck_assert_int_eq(pe[0].empty_prefixes, 1);
        /* .16 freed and cooling: .17 keeps the first prefix the fullest, the next is .18 */
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1, COOLDOWN, NULL), 1);
        ck_assert_int_eq(store_assign(s, &c, T0 + 2, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.18");
        /* past cooldown, .16 is the lowest free of the fullest prefix again */
        struct store_attachment d = att("c4");
        ck_assert_int_eq(store_assign(s, &d, T0 + COOLDOWN + 10, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.16");
        /* fill the first prefix: the next comes from the second, before any /32 */
        for (int i = 0; i < 13; i++) {
                char cid[16];
                snprintf(cid, sizeof cid, "f%d", i);
                struct store_attachment f = att(cid);
                ck_assert_int_eq(store_assign(s, &f, T0 + COOLDOWN + 10, &l, NULL), 0);
                ck_assert_int_eq(addr_host(l.ip), 19 + i);
        }
        struct store_attachment g = att("g");
        ck_assert_int_eq(store_assign(s, &g, T0 + COOLDOWN + 10, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.32");
        ck_assert_int_eq(store_plan_enis(s, T0 + COOLDOWN + 10, pe, 2, &n), 0);
        ck_assert_int_eq(pe[0].empty_prefixes, 0);
        healthy(s, T0 + COOLDOWN + 10);
        store_close(s);
}
END_TEST

/* Secondary-IP mode (store_prefer_ips): /32s first, then the fullest leftover prefix; a cooling
 * /32 is not a free one for the planner. */
START_TEST(test_prefer_ips_after_prefix_delegation) {
        store *s = node_with(2);                        /* /32s 10.0.0.10-11 */
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.16/28", T0), 0);
        store_prefer_ips(s, true);
        struct store_attachment a = att("c1"), b = att("c2"), c = att("c3");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.10");
        ck_assert_int_eq(store_assign(s, &b, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.11");
        ck_assert_int_eq(store_assign(s, &c, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.16");            /* no /32 left */
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1, COOLDOWN, NULL), 1);
        struct plan_eni pe[1];
        size_t n = 0;
        ck_assert_int_eq(store_plan_enis(s, T0 + 2, pe, 1, &n), 0);
        ck_assert_int_eq(pe[0].free_ips, 0);            /* .10 cools */
        ck_assert_int_eq(pe[0].free, 15);
        ck_assert_int_eq(store_plan_enis(s, T0 + COOLDOWN + 10, pe, 1, &n), 0);
        ck_assert_int_eq(pe[0].free_ips, 1);
        store_prefer_ips(s, false);
        struct store_attachment d = att("c4");
        ck_assert_int_eq(store_assign(s, &d, T0 + COOLDOWN + 10, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.17");            /* prefixes first again */
        healthy(s, T0 + COOLDOWN + 10);
        store_close(s);
}
END_TEST

/* Custom networking (store_skip_primary): the primary ENI's free addresses are never handed out;
 * one already held stays held and is found again; off again, they are. */
START_TEST(test_skip_primary) {
        store *s = node_with(2);                        /* primary eni-p: 10.0.0.10-11 */
        struct store_attachment a = att("c1"), b = att("c2"), c = att("c3");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.eni_id, "eni-p");            /* held before the switch */
        store_skip_primary(s, true);
        ck_assert_int_eq(store_assign(s, &b, T0, &l, NULL), -EAGAIN);   /* only the primary has free ones */
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHED);
        add_ips(s, "eni-2", 1, 1, 1, T0);
        ck_assert_int_eq(store_assign(s, &b, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.1");
        bool existing = false;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, &existing), 0);
        ck_assert(existing);
        ck_assert_str_eq(l.ip, "10.0.0.10");            /* the held one is still the pod's */
        ck_assert_int_eq(store_assign(s, &c, T0, &l, NULL), -EAGAIN);
        store_skip_primary(s, false);
        ck_assert_int_eq(store_assign(s, &c, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.11");
        healthy(s, T0);
        store_close(s);
}
END_TEST

/* An ENI marked no_pods (an excluded subnet): none of its free addresses or prefix addresses is handed
 * out, also after a reopen (a restart) and after a cooldown; held ones stay held; unmarked, they are. */
START_TEST(test_no_pods_eni_skipped) {
        store *s = node_with(1);                        /* eni-p: 10.0.0.10 */
        add_eni(s, "eni-2", 1, "10.0.0.6", STORE_ENI_ATTACHED);
        add_ips(s, "eni-2", 1, 1, 2, T0);
        ck_assert_int_eq(store_block_add(s, "eni-2", "10.0.2.16/28", T0), 0);
        struct store_attachment a = att("c1"), b = att("c2"), c = att("c3");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.eni_id, "eni-2");            /* the prefix, held before the mark */
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1, COOLDOWN, NULL), 1);
        ck_assert_int_eq(store_assign(s, &a, T0 + 2, &l, NULL), 0);
        ck_assert_str_eq(l.eni_id, "eni-2");
        ck_assert_int_eq(store_eni_set_no_pods(s, "eni-2", true), 0);
        ck_assert_int_eq(store_eni_set_no_pods(s, "eni-x", true), -ENOENT);
        store_close(s);
        s = fresh();                                    /* the mark outlives a restart */
        struct store_eni e;
        ck_assert_int_eq(store_eni_get(s, "eni-2", &e), 0);
        ck_assert(e.no_pods);
        struct plan_eni pe[2];
        size_t n = 0;
        ck_assert_int_eq(store_plan_enis(s, T0 + COOLDOWN + 10, pe, 2, &n), 0);
        ck_assert_int_eq(n, 2);
        ck_assert(!pe[0].no_pods);
        ck_assert(pe[1].no_pods);
        ck_assert_int_eq(store_assign(s, &b, T0 + COOLDOWN + 10, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.0.10");            /* the primary's, not eni-2's cooled-off ones */
        ck_assert_int_eq(store_assign(s, &c, T0 + COOLDOWN + 10, &l, NULL), -EAGAIN);
        bool existing = false;
        ck_assert_int_eq(store_assign(s, &a, T0 + COOLDOWN + 10, &l, &existing), 0);
        ck_assert(existing);
        ck_assert_str_eq(l.eni_id, "eni-2");            /* the held one is still the pod's */
        ck_assert_int_eq(store_eni_set_no_pods(s, "eni-2", false), 0);
        ck_assert_int_eq(store_assign(s, &c, T0 + COOLDOWN + 10, &l, NULL), 0);
        ck_assert_str_eq(l.eni_id, "eni-2");
        healthy(s, T0 + COOLDOWN + 10);
        store_close(s);
}
END_TEST

/* Only a prefix none of whose addresses is assigned, cooling or releasing is marked for release. */
START_TEST(test_prefix_mark_releasing_only_empty) {
        store *s = node_with(1);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.16/28", T0), 0);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.32/28", T0), 0);
        ck_assert_int_eq(store_block_add(s, "eni-p", "10.0.1.48/28", T0), 0);
        struct store_attachment a = att("c1"), b = att("c2");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.16");
        /* c2 takes .17 and gives it back: that prefix cools */
        ck_assert_int_eq(store_assign(s, &b, T0, &l, NULL), 0);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 1, COOLDOWN, NULL), 1);
        ck_assert_int_eq(store_release(s, "c2", "eth0", T0 + 1, COOLDOWN, NULL), 1);
        char cidrs[4][STORE_CIDR_MAX];
        size_t n = 0;
        ck_assert_int_eq(store_prefixes_mark_releasing(s, "eni-p", 4, T0 + 2, cidrs, &n), 0);
        ck_assert_int_eq(n, 2);                  /* .32/28 and .48/28, never the /32 */
        ck_assert_str_eq(cidrs[0], "10.0.1.48/28");
        ck_assert_str_eq(cidrs[1], "10.0.1.32/28");
        /* releasing: not handed out, not counted empty, not marked twice */
        struct plan_eni pe[1];
        size_t np = 0;
        ck_assert_int_eq(store_plan_enis(s, T0 + 2, pe, 1, &np), 0);
        ck_assert_int_eq(pe[0].prefixes, 3);
        ck_assert_int_eq(pe[0].empty_prefixes, 0);
        ck_assert_int_eq(pe[0].releasing, 32);
        ck_assert_int_eq(store_prefixes_mark_releasing(s, "eni-p", 4, T0 + 2, cidrs, &n), 0);
        ck_assert_int_eq(n, 0);
        struct store_attachment c = att("c3");
        ck_assert_int_eq(store_assign(s, &c, T0 + 2, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "10.0.1.18");     /* the cooling prefix is the fullest; the releasing ones are out */
        ck_assert_int_eq(store_release(s, "c3", "eth0", T0 + 3, COOLDOWN, NULL), 1);
        ck_assert_int_eq(store_prefixes_mark_releasing(s, "eni-p", 4, T0 + 2 + COOLDOWN, cidrs, &n), 0);
        ck_assert_int_eq(n, 0);                  /* .18 cools for 1 ms more */
        /* past every cooldown the first is empty too */
        ck_assert_int_eq(store_prefixes_mark_releasing(s, "eni-p", 4, T0 + 3 + COOLDOWN, cidrs, &n), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(cidrs[0], "10.0.1.16/28");
        healthy(s, T0 + 3 + COOLDOWN);
        store_close(s);
}
END_TEST

/* --- IPv6 mode (schema 3) --------------------------------------------------------- */

#define P80 "2600:1f14:abc:de00:1234::/80"

/* A node whose primary ENI holds P80 (and, to show they live side by side, one IPv4 /32). */
static store *node6(void) {
        store *s = node_with(1);
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", P80, T0), 0);
        return s;
}

static void assign6(store *s, const char *cid, bool egress, int64_t now, const char *want_ip, const char *want_eg) {
        struct store_attachment a = att(cid);
        struct store_lease l;
        bool existing = true;
        ck_assert_int_eq(store_assign6(s, &a, egress, now, &l, &existing), 0);
        ck_assert(!existing);
        ck_assert_str_eq(l.ip, want_ip);
        ck_assert_str_eq(l.egress_ip, want_eg);
        ck_assert_str_eq(l.eni_id, "eni-p");
        ck_assert_int_eq(l.route_table, 254);
        ck_assert_int_eq(l.device_index, 0);
        ck_assert_str_eq(l.subnet_cidr, "10.0.0.0/16");
}

/* aws-node's order (the base first, then up), no reuse within the cooldown, egress unique among live pods. */
START_TEST(test_v6_order_cooldown_egress) {
        store *s = node6();
        assign6(s, "c1", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        assign6(s, "c2", true, T0, "2600:1f14:abc:de00:1234::1", "169.254.172.3");
        assign6(s, "c3", false, T0, "2600:1f14:abc:de00:1234::2", "");
        struct store_attachment a = att("c1");
        struct store_lease l;
        bool existing = false;
        ck_assert_int_eq(store_assign6(s, &a, true, T0 + 1, &l, &existing), 0);      /* idempotent */
        ck_assert(existing);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1234::");
        ck_assert_str_eq(l.egress_ip, "169.254.172.2");
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 10, COOLDOWN, &l), 1);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1234::");
        ck_assert_str_eq(l.egress_ip, "169.254.172.2");
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0 + 11, COOLDOWN, NULL), 0);
        /* the base and its egress address cool down: a fresh egress address is handed out */
        assign6(s, "c4", true, T0 + 20, "2600:1f14:abc:de00:1234::3", "169.254.172.4");
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0 + 20, &st), 0);
        ck_assert_int_eq(st.ipv6_prefixes, 1);
        ck_assert_int_eq(st.ipv6_assigned, 3);
        ck_assert_int_eq(st.ipv6_cooldown, 1);
        ck_assert_int_eq(st.egress_assigned, 2);
        ck_assert_int_eq(st.egress_cooldown, 1);
        ck_assert_int_eq(st.egress_available, STORE_EGRESS4_COUNT - 3);
        ck_assert_int_eq(st.assigned, 0);                       /* the IPv4 pool is apart */
        ck_assert_int_eq(st.available, 1);
        /* past the cooldown the lowest comes back */
        assign6(s, "c5", true, T0 + 10 + COOLDOWN, "2600:1f14:abc:de00:1234::", "169.254.172.5");
        healthy(s, T0 + 10 + COOLDOWN);
        store_close(s);
}
END_TEST

/* IPv6 leases come back from lookup and leases beside IPv4 ones; gc releases both kinds. */
START_TEST(test_v6_lookup_leases_gc) {
        store *s = node6();
        struct store_attachment v4 = att("v4pod");
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &v4, T0, &l, NULL), 0);
        assign6(s, "a", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        assign6(s, "b", true, T0, "2600:1f14:abc:de00:1234::1", "169.254.172.3");
        ck_assert_int_eq(store_lookup(s, "b", "eth0", &l), 0);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1234::1");
        ck_assert_str_eq(l.pod_name, "b");
        ck_assert_str_eq(l.host_veth, "eni0123456789a");
        ck_assert_str_eq(l.netns, "/var/run/netns/x");
        struct store_lease *all = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_leases(s, &all, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_str_eq(all[0].ip, "10.0.0.10");
        ck_assert_str_eq(all[0].egress_ip, "");
        ck_assert_str_eq(all[2].ip, "2600:1f14:abc:de00:1234::1");
        free(all);
        struct store_key keep[] = { { "a", "eth0" } };
        struct store_lease *rel = NULL;
        ck_assert_int_eq(store_gc(s, keep, 1, T0 + 5, COOLDOWN, &rel, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(rel[0].ip, "10.0.0.10");
        ck_assert_str_eq(rel[1].ip, "2600:1f14:abc:de00:1234::1");
        ck_assert_str_eq(rel[1].egress_ip, "169.254.172.3");
        free(rel);
        ck_assert_int_eq(store_lookup(s, "b", "eth0", &l), -ENOENT);
        ck_assert_int_eq(store_lookup(s, "a", "eth0", &l), 0);
        assign6(s, "c", true, T0 + 6, "2600:1f14:abc:de00:1234::2", "169.254.172.4");  /* .3 cools down */
        healthy(s, T0 + 6);
        store_close(s);
}
END_TEST

START_TEST(test_v6_refusals) {
        store *s = node_with(1);
        struct store_attachment a = att("c1");
        ck_assert_int_eq(store_assign6(s, &a, true, T0, NULL, NULL), -EAGAIN);       /* no /80 yet */
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", "2600:1f14:abc:de00::/64", T0), -EINVAL);
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", "2600:1f14:abc:de00:1234::1/80", T0), -EINVAL);
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", "10.0.0.0/80", T0), -EINVAL);
        ck_assert_int_eq(store_prefix6_add(s, "eni-x", P80, T0), -ENOENT);
        /* any spelling inet_pton reads is kept canonical */
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", "2600:1F14:0abc:de00:1234:0:0:0/80", T0), 0);
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", P80, T0), 0);                 /* again: a no-op */
        char (*cidrs)[STORE_CIDR6_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_prefixes6(s, NULL, &cidrs, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(cidrs[0], P80);
        free(cidrs);
        add_eni(s, "eni-2", 1, "10.0.0.20", STORE_ENI_ATTACHING);
        ck_assert_int_eq(store_prefix6_add(s, "eni-2", P80, T0), -EEXIST);
        /* an attachment holds one address, of either family */
        struct store_attachment v4 = att("v4pod");
        ck_assert_int_eq(store_assign(s, &v4, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_assign6(s, &v4, false, T0, NULL, NULL), -EEXIST);
        ck_assert_int_eq(store_assign6(s, &a, false, T0, NULL, NULL), 0);
        ck_assert_int_eq(store_release(s, "v4pod", "eth0", T0, 0, NULL), 1);
        ck_assert_int_ne(store_assign(s, &a, T0, NULL, NULL), 0);
        /* an ENI not attached hands nothing out */
        ck_assert_int_eq(store_eni_set_state(s, "eni-p", STORE_ENI_DETACHING), 0);
        struct store_attachment b = att("c2");
        ck_assert_int_eq(store_assign6(s, &b, false, T0, NULL, NULL), -EAGAIN);
        store_close(s);
}
END_TEST

static int exec_sql(store *s, const char *sql) {
        (void)s;
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_close(db);
        return rc;
}

/* What the database refuses whatever the C code does: a second live holder of an egress address or a /128. */
START_TEST(test_v6_database_constraints) {
        store *s = node6();
        assign6(s, "c1", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        ck_assert_int_ne(exec_sql(s, "INSERT INTO addresses6 (block, off, state, free_since, container_id, ifname,"
                                     " assigned_ms, egress) VALUES ('" P80 "', 7, 'assigned', 0, 'x', 'eth0', 1, 2)"),
                         SQLITE_OK);
        ck_assert_int_ne(exec_sql(s, "INSERT INTO addresses6 (block, off, state, free_since, container_id, ifname,"
                                     " assigned_ms) VALUES ('" P80 "', 0, 'assigned', 0, 'x', 'eth0', 1)"),
                         SQLITE_OK);
        ck_assert_int_ne(exec_sql(s, "INSERT INTO addresses6 (block, off, state, free_since, container_id, ifname,"
                                     " assigned_ms, egress) VALUES ('" P80 "', 9, 'assigned', 0, 'x', 'eth0', 1, 1)"),
                         SQLITE_OK);                            /* .1 is the gateway */
        ck_assert_int_ne(exec_sql(s, "UPDATE addresses6 SET off = 5"), SQLITE_OK);
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, COOLDOWN, NULL), 1);
        ck_assert_int_ne(exec_sql(s, "UPDATE addresses6 SET egress = 3 WHERE state = 'free'"), SQLITE_OK);
        ck_assert_int_eq(exec_sql(s, "INSERT INTO addresses6 (block, off, state, free_since, container_id, ifname,"
                                     " assigned_ms, egress) VALUES ('" P80 "', 7, 'assigned', 0, 'x', 'eth0', 1, 2)"),
                         SQLITE_OK);                            /* the control: a legal row passes */
        /* the ENI's removal takes its /80 and rows with it */
        ck_assert_int_eq(store_eni_remove(s, "eni-p", true, NULL), 0);
        ck_assert_int_eq(exec_sql(s, "INSERT INTO prefixes6 VALUES ('x', 'eni-p', 'zz', 0, 0)"), SQLITE_CONSTRAINT);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.ipv6_prefixes + st.ipv6_assigned, 0);
        store_close(s);
}
END_TEST

/* A pod the kernel shows after the store was lost gets exactly its /128 and egress address back. */
START_TEST(test_v6_assign_addr) {
        store *s = node6();
        struct store_attachment a = att("seen"), b = att("other");
        struct store_lease l;
        ck_assert_int_eq(store_assign6_addr(s, &a, "2600:1f14:abc:de00:1234::7", "169.254.172.9", T0, &l), 0);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1234::7");
        ck_assert_str_eq(l.egress_ip, "169.254.172.9");
        ck_assert_int_eq(store_assign6_addr(s, &a, "2600:1f14:abc:de00:1234::7", NULL, T0, NULL), 1);
        ck_assert_int_eq(store_assign6_addr(s, &a, "2600:1f14:abc:de00:1234::8", NULL, T0, NULL), -EEXIST);
        ck_assert_int_eq(store_assign6_addr(s, &b, "2600:1f14:abc:de00:1234::7", NULL, T0, NULL), -EBUSY);
        ck_assert_int_eq(store_assign6_addr(s, &b, "2600:1f14:abc:de00:9999::7", NULL, T0, NULL), -ENOENT);
        ck_assert_int_eq(store_assign6_addr(s, &b, "10.0.0.10", NULL, T0, NULL), -EINVAL);
        /* its egress address taken: the pod keeps its /128 without one */
        ck_assert_int_eq(store_assign6_addr(s, &b, "2600:1f14:abc:de00:1234::3", "169.254.172.9", T0, &l), 0);
        ck_assert_str_eq(l.egress_ip, "");
        /* what assign6 hands out next skips both */
        assign6(s, "n1", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        for (int i = 1; i <= 2; i++) {
                char cid[8], want[64];
                snprintf(cid, sizeof cid, "m%d", i);
                snprintf(want, sizeof want, "2600:1f14:abc:de00:1234::%d", i);
                assign6(s, cid, false, T0, want, "");
        }
        assign6(s, "m4", false, T0, "2600:1f14:abc:de00:1234::4", "");
        /* a released one in cooldown may still be claimed by its witness */
        ck_assert_int_eq(store_release(s, "m4", "eth0", T0, COOLDOWN, NULL), 1);
        struct store_attachment c = att("back");
        ck_assert_int_eq(store_assign6_addr(s, &c, "2600:1f14:abc:de00:1234::4", NULL, T0 + 1, NULL), 0);
        healthy(s, T0 + 1);
        store_close(s);
}
END_TEST

/* Egress addresses, none left unused: the one released longest ago past its cooldown comes back first. */
START_TEST(test_v6_egress_cooldown_lru) {
        store *s = node6();
        static char text[STORE_EGRESS4_COUNT][16];
        const char *rest[STORE_EGRESS4_COUNT];
        size_t n = 0;
        assign6(s, "p0", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        assign6(s, "p1", true, T0, "2600:1f14:abc:de00:1234::1", "169.254.172.3");
        assign6(s, "p2", true, T0, "2600:1f14:abc:de00:1234::2", "169.254.172.4");
        assign6(s, "p3", true, T0, "2600:1f14:abc:de00:1234::3", "169.254.172.5");
        for (int off = 6; off <= 1022; off++, n++) {     /* the rest held by pods the store does not know */
                snprintf(text[n], sizeof text[n], "169.254.%d.%d", 172 + off / 256, off % 256);
                rest[n] = text[n];
        }
        ck_assert_int_eq(store_egress_in_use(s, rest, n, T0, COOLDOWN, NULL), 0);
        struct store_attachment a = att("late");
        struct store_lease l;
        ck_assert_int_eq(store_assign6(s, &a, true, T0, &l, NULL), -EAGAIN);     /* none left */
        ck_assert_int_eq(store_release(s, "p3", "eth0", T0 + 1, COOLDOWN, NULL), 1);      /* .5 */
        ck_assert_int_eq(store_release(s, "p1", "eth0", T0 + 2, COOLDOWN, NULL), 1);      /* .3 */
        ck_assert_int_eq(store_assign6(s, &a, true, T0 + 1 + COOLDOWN - 1, &l, NULL), -EAGAIN);  /* both cool */
        assign6(s, "late", true, T0 + 1 + COOLDOWN, "2600:1f14:abc:de00:1234::3", "169.254.172.5");
        a = att("later");
        ck_assert_int_eq(store_assign6(s, &a, true, T0 + 1 + COOLDOWN, &l, NULL), -EAGAIN);      /* .3 cools */
        assign6(s, "later", true, T0 + 2 + COOLDOWN, "2600:1f14:abc:de00:1234::1", "169.254.172.3");
        healthy(s, T0 + 2 + COOLDOWN);
        store_close(s);
}
END_TEST

/* Egress addresses the kernel shows in use by pods the store does not know are never handed out. */
START_TEST(test_v6_egress_in_use) {
        store *s = node6();
        assign6(s, "c1", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        const char *seen[] = { "169.254.172.2", "169.254.172.3", "169.254.172.4", "10.0.0.1", "bogus" };
        size_t kept = 9;
        ck_assert_int_eq(store_egress_in_use(s, seen, 5, T0, COOLDOWN, &kept), 0);
        ck_assert_int_eq(kept, 2);                       /* .2 is c1's */
        assign6(s, "c2", true, T0, "2600:1f14:abc:de00:1234::1", "169.254.172.5");
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.egress_cooldown, 2);
        ck_assert_int_eq(st.egress_available, STORE_EGRESS4_COUNT - 4);
        store_close(s);
        s = fresh();                                     /* durable */
        assign6(s, "c3", true, T0, "2600:1f14:abc:de00:1234::2", "169.254.172.6");
        /* .3's pod is gone at the next start: .3 cools down, .4 stays kept */
        ck_assert_int_eq(store_egress_in_use(s, seen + 2, 1, T0 + 5, COOLDOWN, &kept), 0);
        ck_assert_int_eq(kept, 1);
        ck_assert_int_eq(store_stats(s, T0 + 5 + COOLDOWN, &st), 0);
        ck_assert_int_eq(st.egress_cooldown, 1);
        healthy(s, T0 + 5);
        store_close(s);
}
END_TEST

static void assign4(store *s, const char *cid, int64_t now, const char *want_ip, const char *want_eg) {
        struct store_attachment a = att(cid);
        struct store_lease l;
        ck_assert_int_eq(store_assign(s, &a, now, &l, NULL), 0);
        ck_assert_str_eq(l.ip, want_ip);
        ck_assert_str_eq(l.egress_ip, want_eg);
}

/* EC2 took a pod's address away (a forced removal): the pod may still run with its ULA, so no new pod gets it
 * until a start has looked at the kernel. */
START_TEST(test_v6_egress_kept_after_forced_removal) {
        store *s = node_with(3);
        store_v6_egress(s, true);
        assign4(s, "c0", T0, "10.0.0.10", "fd00::ac:2");
        size_t lost = 0;
        ck_assert_int_eq(store_block_remove(s, "10.0.0.10/32", true, &lost), 0);
        ck_assert_int_eq(lost, 1);
        assign4(s, "c1", T0, "10.0.0.11", "fd00::ac:3");
        add_eni(s, "eni-2", 1, "10.0.1.5", STORE_ENI_ATTACHED);
        add_ips(s, "eni-2", 1, 10, 10, T0);
        ck_assert_int_eq(store_eni_remove(s, "eni-p", true, &lost), 0);    /* c1's ENI, forced */
        ck_assert_int_eq(lost, 1);
        assign4(s, "c2", T0, "10.0.1.10", "fd00::ac:4");
        /* the next start finds neither in the kernel: both cool down, then serve again */
        size_t kept = 0;
        ck_assert_int_eq(store_egress_in_use(s, NULL, 0, T0 + 1, COOLDOWN, &kept), 0);
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0 + 1, &st), 0);
        ck_assert_int_eq(st.egress_cooldown, 2);
        healthy(s, T0 + 1);
        store_close(s);
}
END_TEST

/* ENABLE_V6_EGRESS: IPv4 pods get ULAs from fd00::ac:0/118, unique, cooling down, released with the pod. */
START_TEST(test_v4_pods_v6_egress) {
        store *s = node_with(4);
        assign4(s, "c0", T0, "10.0.0.10", "");                  /* off: none */
        store_v6_egress(s, true);
        assign4(s, "c0", T0, "10.0.0.10", "fd00::ac:2");        /* a held lease without one gets one */
        assign4(s, "c1", T0, "10.0.0.11", "fd00::ac:3");
        assign4(s, "c1", T0, "10.0.0.11", "fd00::ac:3");        /* idempotent */
        struct store_lease l;
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", &l), 0);
        ck_assert_str_eq(l.egress_ip, "fd00::ac:3");
        ck_assert_int_eq(store_release(s, "c0", "eth0", T0, COOLDOWN, &l), 1);
        ck_assert_str_eq(l.egress_ip, "fd00::ac:2");
        assign4(s, "c2", T0 + 1, "10.0.0.12", "fd00::ac:4");    /* .2 cools down */
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0 + 1, &st), 0);
        ck_assert_int_eq(st.egress_assigned, 2);
        ck_assert_int_eq(st.egress_cooldown, 1);
        ck_assert_int_eq(st.egress_available, STORE_EGRESS6_COUNT - 3);
        /* what the database refuses: a second live holder, one on a free row, one outside the range */
        ck_assert_int_ne(exec_sql(s, "UPDATE addresses SET egress = 3 WHERE addr = (SELECT addr FROM addresses"
                                     " WHERE egress = 4)"), SQLITE_OK);
        ck_assert_int_ne(exec_sql(s, "UPDATE addresses SET egress = 9 WHERE state = 'free'"), SQLITE_OK);
        ck_assert_int_ne(exec_sql(s, "UPDATE addresses SET egress = 1023 WHERE egress = 4"), SQLITE_OK);
        /* the kernel shows fd00::ac:5 routed to a pod the store does not know: kept from new pods */
        const char *seen[] = { "fd00::ac:5", "fd00::ac:100", "169.254.172.9" };
        size_t kept = 0;
        ck_assert_int_eq(store_egress_in_use(s, seen, 3, T0 + 1, COOLDOWN, &kept), 0);
        ck_assert_int_eq(kept, 3);                               /* ::ac:100 is offset 256; the IPv4 one too */
        assign4(s, "c3", T0 + 2, "10.0.0.13", "fd00::ac:6");
        /* gc releases c1: its ULA cools down with its address; the durable store keeps all of it */
        store_close(s);
        s = fresh();
        store_v6_egress(s, true);
        struct store_key valid[] = { { "c2", "eth0" }, { "c3", "eth0" } };
        struct store_lease *rel = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_gc(s, valid, 2, T0 + 3, COOLDOWN, &rel, &n), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(rel[0].egress_ip, "fd00::ac:3");
        free(rel);
        ck_assert_int_eq(store_stats(s, T0 + 3, &st), 0);
        ck_assert_int_eq(st.egress_assigned, 2);
        ck_assert_int_eq(st.egress_cooldown, 2 + 3);
        healthy(s, T0 + 3);
        store_close(s);
}
END_TEST

/* /80s EC2 no longer lists: dropped when empty, withdrawn (never picked) while pods hold them. */
START_TEST(test_v6_prefix_reconcile) {
        store *s = node6();
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", "2600:1f14:abc:de00:1::/80", T0), 0);
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", "2600:1f14:abc:de00:2::/80", T0), 0);
        assign6(s, "c1", false, T0, "2600:1f14:abc:de00:1::", "");      /* the lowest /80 first */
        const char listed[][STORE_CIDR6_MAX] = { "2600:1f14:abc:de00:1234:0:0:0/80" };
        size_t dropped = 9, withdrawn = 9;
        ck_assert_int_eq(store_prefixes6_reconcile(s, "eni-p", listed, 1, &dropped, &withdrawn), 0);
        ck_assert_int_eq(dropped, 1);                    /* :2::/80 */
        ck_assert_int_eq(withdrawn, 1);                  /* :1::/80 keeps c1 */
        char (*have)[STORE_CIDR6_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_prefixes6(s, "eni-p", &have, &n), 0);
        ck_assert_int_eq(n, 2);
        free(have);
        assign6(s, "c2", false, T0, "2600:1f14:abc:de00:1234::", "");    /* never the withdrawn one */
        struct store_lease l;
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", &l), 0);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1::");
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, COOLDOWN, NULL), 1);
        ck_assert_int_eq(store_prefixes6_reconcile(s, "eni-p", listed, 1, &dropped, &withdrawn), 0);
        ck_assert_int_eq(dropped, 1);
        ck_assert_int_eq(withdrawn, 0);
        ck_assert_int_eq(store_prefixes6(s, NULL, &have, &n), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(have[0], P80);
        free(have);
        healthy(s, T0);
        store_close(s);
}
END_TEST

/* A cooldown survives a restart (a new handle), as for IPv4. */
START_TEST(test_v6_cooldown_across_reopen) {
        store *s = node6();
        assign6(s, "c1", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, COOLDOWN, NULL), 1);
        store_close(s);
        s = fresh();
        assign6(s, "c2", true, T0 + COOLDOWN - 1, "2600:1f14:abc:de00:1234::1", "169.254.172.3");
        assign6(s, "c3", true, T0 + COOLDOWN, "2600:1f14:abc:de00:1234::", "169.254.172.4");
        store_close(s);
}
END_TEST

/* A store at schema 2 with a pod and an open intent: schema 3 keeps both, and takes the IPv6 kind. */
START_TEST(test_migration_from_schema_2) {
        sqlite3 *db;
        struct errmsg e;
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        ck_assert_int_eq(store_schema_migrate(db, store_migrations, 2, "pool.db", &e), 0);
        ck_assert_int_eq(user_version(db), 2);
        static const char v2_data[] =
                "INSERT INTO enis VALUES ('eni-p', '02:00:00:00:00:00', 0, 0, 'subnet-1', '10.0.0.0/16',"
                " '10.0.0.5', 254, 1, 'attached', 0);"
                "INSERT INTO blocks VALUES ('10.0.0.10/32', 'eni-p', 'ip', 167772170, 1, 0);"
                "INSERT INTO blocks VALUES ('10.0.0.11/32', 'eni-p', 'ip', 167772171, 1, 0);"
                "INSERT INTO addresses (addr, block, state, free_since, container_id, ifname, assigned_ms)"
                " VALUES (167772170, '10.0.0.10/32', 'assigned', 0, 'held', 'eth0', 1);"
                "INSERT INTO addresses (addr, block, state, free_since, cooldown_until)"
                " VALUES (167772171, '10.0.0.11/32', 'free', 0, 9999999999999);"
                "INSERT INTO intents (kind, eni_id, params, state, created_ms)"
                " VALUES ('assign_ips', 'eni-p', '{\"count\":1}', 'open', 5);"
                "INSERT INTO intents (kind, eni_id, params, state, created_ms, finished_ms)"
                " VALUES ('create_eni', NULL, '{}', 'done', 3, 4);";
        char *msg = NULL;
        ck_assert_msg(sqlite3_exec(db, v2_data, NULL, NULL, &msg) == SQLITE_OK, "%s", msg);
        ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO intents (kind, params, state, created_ms) VALUES"
                                          " ('assign_ipv6_prefix', '{}', 'open', 6)", NULL, NULL, NULL),
                         SQLITE_CONSTRAINT);                   /* schema 2 does not know it */
        sqlite3_close(db);

        store *s = fresh();
        struct store_lease l;
        ck_assert_int_eq(store_lookup(s, "held", "eth0", &l), 0);
        ck_assert_str_eq(l.ip, "10.0.0.10");
        struct store_stats st;
        ck_assert_int_eq(store_stats(s, T0, &st), 0);
        ck_assert_int_eq(st.assigned, 1);
        ck_assert_int_eq(st.cooldown, 1);                       /* the cooldown kept (bounded, not dropped) */
        struct store_intent *its = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_intents_open(s, &its, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(its[0].kind, STORE_INTENT_ASSIGN_IPS);
        ck_assert_str_eq(its[0].params, "{\"count\":1}");
        int64_t id0 = its[0].id, id1;
        free(its);
        ck_assert_int_eq(store_intent_begin(s, STORE_INTENT_ASSIGN_IPV6_PREFIX, NULL, "eni-p",
                                            "{\"Ipv6PrefixCount\":1}", T0, &id1), 0);
        ck_assert_int_gt(id1, id0);
        ck_assert_int_eq(store_intents_open(s, &its, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(its[1].kind, STORE_INTENT_ASSIGN_IPV6_PREFIX);
        free(its);
        ck_assert_int_eq(store_prefix6_add(s, "eni-p", P80, T0), 0);
        assign6(s, "c1", true, T0, "2600:1f14:abc:de00:1234::", "169.254.172.2");
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, COOLDOWN, NULL), 1);
        assign6(s, "c2", true, T0, "2600:1f14:abc:de00:1234::1", "169.254.172.3");     /* egress cooldown */
        const char listed[][STORE_CIDR6_MAX] = { P80 };
        ck_assert_int_eq(store_prefixes6_reconcile(s, "eni-p", listed, 1, NULL, NULL), 0);
        healthy(s, T0);
        store_close(s);
        ck_assert_int_eq(sqlite3_open(testlib_path("pool.db"), &db), SQLITE_OK);
        ck_assert_int_eq(user_version(db), STORE_SCHEMA_VERSION);
        sqlite3_close(db);
}
END_TEST

int main(void) {
        Suite *s = suite_create("store");
        TCase *pods = tcase_create("pods");
        tcase_add_test(pods, test_assign_is_idempotent);
        tcase_add_test(pods, test_distinct_addresses_then_empty);
        tcase_add_test(pods, test_release_idempotent_and_cooldown);
        tcase_add_test(pods, test_free_longest_is_chosen);
        tcase_add_test(pods, test_cooldown_survives_reopen);
        tcase_add_test(pods, test_gc_releases_the_rest);
        tcase_add_test(pods, test_only_attached_enis_serve);
        tcase_add_test(pods, test_bad_input_refused);
        tcase_add_test(pods, test_leases_and_enis_listed);
        suite_add_tcase(s, pods);
        TCase *pool = tcase_create("pool");
        tcase_add_test(pool, test_blocks);
        tcase_add_test(pool, test_blocks_add_batch);
        tcase_add_test(pool, test_remove_busy_and_forced);
        tcase_add_test(pool, test_mark_releasing);
        tcase_add_test(pool, test_plan_enis_counts);
        tcase_add_test(pool, test_begin_detach);
        tcase_add_test(pool, test_intents);
        tcase_add_test(pool, test_intent_kinds_on_disk);
        tcase_add_test(pool, test_itype_and_meta);
        suite_add_tcase(s, pool);
        TCase *safety = tcase_create("safety");
        tcase_add_test(safety, test_database_constraints);
        tcase_add_test(safety, test_check_finds_damage);
        tcase_add_test(safety, test_check_finds_primary_in_pool);
        tcase_add_test(safety, test_corrupt_file_refused_untouched);
        tcase_add_test(safety, test_unopenable_path);
        tcase_add_test(safety, test_newer_schema_refused);
        tcase_add_test(safety, test_migrations_forward);
        tcase_add_test(safety, test_fresh_store_is_current);
        tcase_add_test(safety, test_primary_refused_as_block);
        tcase_add_test(safety, test_reserved_and_off_subnet_refused);
        tcase_add_test(safety, test_identity_and_reopen);
        tcase_add_test(safety, test_assign_addr_keeps_a_releasing_address);
        tcase_add_test(safety, test_new_primary_leaves_the_pool);
        tcase_add_test(safety, test_held_primary_leaves_at_release);
        tcase_add_test(safety, test_migration_drops_free_primaries);
        suite_add_tcase(s, safety);
        TCase *clock = tcase_create("clock");
        tcase_add_test(clock, test_cooldown_ignores_a_backward_step);
        tcase_add_test(clock, test_cooldown_after_restart_is_bounded);
        suite_add_tcase(s, clock);
        TCase *pd = tcase_create("prefixes");
        tcase_add_test(pd, test_prefix_pick_fullest_lowest);
        tcase_add_test(pd, test_prefer_ips_after_prefix_delegation);
        tcase_add_test(pd, test_skip_primary);
        tcase_add_test(pd, test_no_pods_eni_skipped);
        tcase_add_test(pd, test_prefix_mark_releasing_only_empty);
        suite_add_tcase(s, pd);
        TCase *v6 = tcase_create("ipv6");
        tcase_add_test(v6, test_v6_order_cooldown_egress);
        tcase_add_test(v6, test_v6_lookup_leases_gc);
        tcase_add_test(v6, test_v6_refusals);
        tcase_add_test(v6, test_v6_database_constraints);
        tcase_add_test(v6, test_v6_cooldown_across_reopen);
        tcase_add_test(v6, test_v6_egress_cooldown_lru);
        tcase_add_test(v6, test_v6_egress_in_use);
        tcase_add_test(v6, test_v4_pods_v6_egress);
        tcase_add_test(v6, test_v6_egress_kept_after_forced_removal);
        tcase_add_test(v6, test_v6_prefix_reconcile);
        tcase_add_test(v6, test_v6_assign_addr);
        tcase_add_test(v6, test_migration_from_schema_2);
        suite_add_tcase(s, v6);
        return testlib_run(s);
}

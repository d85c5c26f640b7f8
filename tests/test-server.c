/*
 * test-server: vpc-ipamd's socket against real clients — every op, an ADD
 * that waits for an address and is served the moment it arrives, timeouts
 * with the reason, and hostile peers (non-root, oversized, garbage, unknown
 * op, silent) each refused while others are served.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "server.h"
#include "store.h"
#include "testlib.h"

struct fixture {
        store *store, *side;         /* the server's handle, and the test's own */
        server *srv;
        metrics *m;
        pthread_t thread;
        char sock[100];
        _Atomic int wakes, last_waiting;
};

static struct fixture fx;

static int64_t wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void hook_wake(void *ud, int waiting) {
        struct fixture *f = ud;
        atomic_fetch_add(&f->wakes, 1);
        atomic_store(&f->last_waiting, waiting);
}

static void hook_status(void *ud, struct server_pool_status *ret) {
        (void)ud;
        ret->ready = true;
        snprintf(ret->reason, sizeof ret->reason, "subnet subnet-1 has no free addresses (InsufficientFreeAddressesInSubnet)");
}

static void *run(void *arg) {
        server_run(arg);
        return NULL;
}

static void add_ips(store *s, int first, int n) {
        for (int i = 0; i < n; i++) {
                char cidr[32];
                snprintf(cidr, sizeof cidr, "10.0.1.%d/32", first + i);
                ck_assert_int_eq(store_block_add(s, "eni-p", cidr, wall_ms()), 0);
        }
}

static int64_t fixture_cooldown_ms = 30000;
static bool fixture_ipv6, fixture_egress;       /* IPv6 mode: the node's /80 and its options */
static bool fixture_v6_egress;                  /* IPv4 mode: ENABLE_V6_EGRESS */

static void start(int n_ips, int add_wait_ms, int idle_ms) {
        memset(&fx, 0, sizeof fx);
        const char *db = testlib_path("pool.db");
        ck_assert_int_lt(snprintf(fx.sock, sizeof fx.sock, "%s/run/ipamd.sock", testlib_tmpdir()), (int)sizeof fx.sock);
        struct errmsg e;
        ck_assert_msg(store_open(db, &fx.store, &e) == 0, "%s", e.text);
        ck_assert_int_eq(store_open(db, &fx.side, &e), 0);
        struct store_eni eni = { .id = "eni-p", .mac = "02:00:00:00:00:01", .subnet_id = "subnet-1",
                                 .subnet_cidr = "10.0.0.0/16", .primary_ip = "10.0.0.5", .route_table = 254,
                                 .is_primary = true, .state = STORE_ENI_ATTACHED, .created_ms = wall_ms() };
        ck_assert_int_eq(store_eni_put(fx.side, &eni), 0);
        ck_assert_int_eq(store_meta_set(fx.side, "vpc_cidrs", "10.0.0.0/16,100.64.0.0/16"), 0);
        add_ips(fx.side, 10, n_ips);
        if (fixture_ipv6) {
                ck_assert_int_eq(store_prefix6_add(fx.side, "eni-p", "2600:1f14:abc:de00:1234::/80", wall_ms()), 0);
                ck_assert_int_eq(store_meta_set(fx.side, "vpc_cidrs6", "2600:1f14:abc:de00::/56"), 0);
        }
        ck_assert_int_eq(metrics_new(&fx.m), 0);
        struct server_options o = { .socket_path = fx.sock, .store = fx.store, .metrics = fx.m,
                                    .add_wait_ms = add_wait_ms, .idle_ms = idle_ms, .pod_mtu = 9001,
                                    .cooldown_ms = fixture_cooldown_ms,
                                    .ipv6 = fixture_ipv6, .v4_egress = fixture_egress, .instance_type = "m5.large",
                                    .v6_egress = fixture_v6_egress,
                                    .hooks = { hook_wake, hook_status, &fx } };
        ck_assert_msg(server_new(&o, &fx.srv, &e) == 0, "%s", e.text);
        ck_assert_int_eq(pthread_create(&fx.thread, NULL, run, fx.srv), 0);
}

static void stop(void) {
        server_stop(fx.srv);
        pthread_join(fx.thread, NULL);
        server_free(fx.srv);
        struct errmsg e;
        ck_assert_msg(store_check(fx.side, wall_ms(), &e) == 0, "%s", e.text);
        store_close(fx.store);
        store_close(fx.side);
        metrics_free(fx.m);
}

static struct proto_request add_req(const char *cid) {
        struct proto_request r = { .op = PROTO_OP_ADD };
        snprintf(r.att.container_id, sizeof r.att.container_id, "%s", cid);
        snprintf(r.att.ifname, sizeof r.att.ifname, "eth0");
        snprintf(r.netns, sizeof r.netns, "/var/run/netns/%s", cid);
        snprintf(r.pod_namespace, sizeof r.pod_namespace, "default");
        snprintf(r.pod_name, sizeof r.pod_name, "pod-%s", cid);
        return r;
}

static int call(struct proto_request *req, struct proto_reply *rep, int deadline_ms) {
        struct errmsg e;
        memset(rep, 0, sizeof *rep);
        int r = proto_call(fx.sock, req, deadline_ms, rep, &e);
        ck_assert_msg(r == 0, "proto_call %s: %s", proto_op_name(req->op), e.text);
        return r;
}

START_TEST(test_ops) {
        start(3, 1000, 5000);
        struct stat st;
        ck_assert_int_eq(stat(fx.sock, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        char dir[300];
        snprintf(dir, sizeof dir, "%s/run", testlib_tmpdir());
        ck_assert_int_eq(stat(dir, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0700);

        struct proto_request req = add_req("c1");
        struct proto_reply rep, rep2;
        call(&req, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_str_eq(rep.addr.ip, "10.0.1.10");
        ck_assert_str_eq(rep.addr.eni_id, "eni-p");
        ck_assert_uint_eq(rep.addr.route_table, 254);
        ck_assert_str_eq(rep.addr.gateway, "169.254.1.1");
        ck_assert_str_eq(rep.addr.subnet_gateway, "10.0.0.1");
        ck_assert_uint_eq(rep.addr.mtu, 9001);
        ck_assert_uint_eq(rep.addr.n_vpc_cidrs, 2);
        ck_assert_str_eq(rep.addr.vpc_cidrs[1], "100.64.0.0/16");
        call(&req, &rep2, 2000); /* idempotent */
        ck_assert_str_eq(rep2.addr.ip, rep.addr.ip);
        proto_reply_done(&rep);
        proto_reply_done(&rep2);

        struct proto_request chk = { .op = PROTO_OP_CHECK, .att = req.att };
        call(&chk, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_str_eq(rep.addr.ip, "10.0.1.10");
        proto_reply_done(&rep);

        struct proto_request status = { .op = PROTO_OP_STATUS };
        call(&status, &rep, 2000);
        ck_assert(rep.ok && rep.ready);
        ck_assert_uint_eq(rep.available, 2);
        proto_reply_done(&rep);

        struct proto_request pods = { .op = PROTO_OP_PODS };
        call(&pods, &rep, 2000);
        ck_assert(rep.ok);
        cJSON *list = cJSON_GetObjectItem(rep.result, "pods");
        ck_assert_int_eq(cJSON_GetArraySize(list), 1);
        ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "pod_name")->valuestring, "pod-c1");
        proto_reply_done(&rep);

        struct proto_request enis = { .op = PROTO_OP_ENIS };
        call(&enis, &rep, 2000);
        cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(rep.result, "enis"), 0);
        ck_assert_str_eq(cJSON_GetObjectItem(e0, "id")->valuestring, "eni-p");
        ck_assert_int_eq(cJSON_GetObjectItem(e0, "assigned")->valueint, 1);
        ck_assert_int_eq(cJSON_GetObjectItem(e0, "free")->valueint, 2);
        proto_reply_done(&rep);

        struct proto_request pool = { .op = PROTO_OP_POOL };
        call(&pool, &rep, 2000);
        cJSON *p = cJSON_GetObjectItem(rep.result, "pool");
        ck_assert_int_eq(cJSON_GetObjectItem(p, "total")->valueint, 3);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "assigned")->valueint, 1);
        ck_assert_str_eq(cJSON_GetObjectItem(p, "instance_type")->valuestring, "m5.large");   /* max-pods' */
        proto_reply_done(&rep);

        struct proto_request intents = { .op = PROTO_OP_INTENTS };
        call(&intents, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(rep.result, "intents")), 0);
        proto_reply_done(&rep);

        struct proto_request del = { .op = PROTO_OP_DEL, .att = req.att };
        snprintf(del.reason, sizeof del.reason, "PodDeleted");
        call(&del, &rep, 2000);
        ck_assert(rep.ok && rep.addr.has_ip);
        ck_assert_str_eq(rep.addr.ip, "10.0.1.10");
        proto_reply_done(&rep);
        call(&del, &rep, 2000); /* again: nothing held, still ok */
        ck_assert(rep.ok && !rep.addr.has_ip);
        proto_reply_done(&rep);
        call(&chk, &rep, 2000);
        ck_assert(!rep.ok);
        ck_assert_str_eq(rep.error.code, PROTO_E_UNKNOWN_CONTAINER);
        proto_reply_done(&rep);

        struct metrics_snapshot ms;
        metrics_snapshot(fx.m, &ms);
        ck_assert_uint_eq(ms.counters[METRICS_ADD_REQUESTS], 2);
        ck_assert_uint_eq(ms.counters[METRICS_DEL_REQUESTS], 2);
        ck_assert_int_gt(atomic_load(&fx.wakes), 0);
        stop();
}
END_TEST

START_TEST(test_gc) {
        start(4, 1000, 5000);
        const char *ids[] = { "a", "b", "c" };
        struct proto_reply rep;
        for (int i = 0; i < 3; i++) {
                struct proto_request r = add_req(ids[i]);
                call(&r, &rep, 2000);
                proto_reply_done(&rep);
        }
        struct proto_attachment keep = { .container_id = "b", .ifname = "eth0" };
        struct proto_request gc = { .op = PROTO_OP_GC, .valid = &keep, .n_valid = 1 };
        call(&gc, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_uint_eq(rep.n_released, 2);
        proto_reply_done(&rep);
        ck_assert_int_eq(store_lookup(fx.side, "b", "eth0", NULL), 0);
        ck_assert_int_eq(store_lookup(fx.side, "a", "eth0", NULL), -ENOENT);
        stop();
}
END_TEST

/* An ADD answered with ip and egress_ip. */
static void add_expect(const char *cid, const char *ip, const char *egress_ip) {
        struct proto_request req = add_req(cid);
        struct proto_reply rep;
        call(&req, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_str_eq(rep.addr.ip, ip);
        ck_assert_str_eq(rep.addr.egress_ip, egress_ip);
        proto_reply_done(&rep);
}

/* Every egress address of the range (IPv4 pods' ULAs when v6) in use by pods the store does not
 * know: STATUS is not ready and says why (the caller releases them). */
static void status_without_egress(bool v6, const char *why) {
        static char text[1021][STORE_IP6_MAX];
        const char *ips[1021];
        for (int off = 2; off <= 1022; off++) {
                if (v6)
                        snprintf(text[off - 2], sizeof text[0], "fd00::ac:%x", off);
                else
                        snprintf(text[off - 2], sizeof text[0], "169.254.%d.%d", 172 + off / 256, off % 256);
                ips[off - 2] = text[off - 2];
        }
        ck_assert_int_eq(store_egress_in_use(fx.side, ips, 1021, wall_ms(), 30000, NULL), 0);
        struct proto_request status = { .op = PROTO_OP_STATUS };
        struct proto_reply rep;
        call(&status, &rep, 2000);
        ck_assert(rep.ok && !rep.ready);
        ck_assert_uint_eq(rep.available, 0);
        ck_assert_ptr_nonnull(strstr(rep.reason, why));
        proto_reply_done(&rep);
}

/* ENABLE_V6_EGRESS: IPv4 pods' ULAs in ADD, CHECK and DEL replies; STATUS counts them. */
START_TEST(test_ops_v6_egress) {
        fixture_v6_egress = true;
        start(3, 300, 5000);
        struct proto_request req = add_req("c1");
        struct proto_reply rep;
        add_expect("c1", "10.0.1.10", "fd00::ac:2");
        struct proto_request chk = { .op = PROTO_OP_CHECK, .att = req.att };
        call(&chk, &rep, 2000);
        ck_assert_str_eq(rep.addr.egress_ip, "fd00::ac:2");
        proto_reply_done(&rep);
        struct proto_request del = { .op = PROTO_OP_DEL, .att = req.att };
        call(&del, &rep, 2000);
        ck_assert(rep.ok && rep.addr.has_ip);
        ck_assert_str_eq(rep.addr.egress_ip, "fd00::ac:2");     /* the plugin removes v6if0's veth */
        proto_reply_done(&rep);
        add_expect("c2", "10.0.1.11", "fd00::ac:3");            /* c1's cools down */
        struct proto_request status = { .op = PROTO_OP_STATUS };
        call(&status, &rep, 2000);
        ck_assert(rep.ok && rep.ready);
        ck_assert_uint_eq(rep.available, 1);                    /* the pool's one free address is the bound */
        proto_reply_done(&rep);
        status_without_egress(true, "no IPv6 egress address is free");
        struct proto_request req3 = add_req("c3");
        call(&req3, &rep, 2000);
        ck_assert(!rep.ok);
        ck_assert_str_eq(rep.error.code, PROTO_E_NO_ADDRESS);
        proto_reply_done(&rep);
        ck_assert_int_eq(store_egress_in_use(fx.side, NULL, 0, wall_ms(), 30000, NULL), 0);
        stop();
}
END_TEST

/* IPv6 mode: ADD, CHECK, DEL and GC with /128s from the node's /80 and the IPv4 egress address. */
START_TEST(test_ops_ipv6) {
        fixture_ipv6 = true;
        fixture_egress = _i == 0;
        start(2, 1000, 5000);
        struct proto_request req = add_req("c1"), req2 = add_req("c2");
        struct proto_reply rep;
        call(&req, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_str_eq(rep.addr.ip, "2600:1f14:abc:de00:1234::");
        ck_assert_str_eq(rep.addr.gateway, "fe80::1");
        ck_assert_str_eq(rep.addr.subnet_gateway, "10.0.0.1");
        ck_assert_str_eq(rep.addr.eni_id, "eni-p");
        ck_assert_uint_eq(rep.addr.device_index, 0);
        ck_assert_uint_eq(rep.addr.route_table, 254);
        ck_assert_str_eq(rep.addr.egress_ip, fixture_egress ? "169.254.172.2" : "");
        ck_assert_uint_eq(rep.addr.n_vpc_cidrs, 3);     /* IPv6 first, then IPv4 */
        ck_assert_str_eq(rep.addr.vpc_cidrs[0], "2600:1f14:abc:de00::/56");
        ck_assert_str_eq(rep.addr.vpc_cidrs[1], "10.0.0.0/16");
        proto_reply_done(&rep);
        call(&req2, &rep, 2000);
        ck_assert_str_eq(rep.addr.ip, "2600:1f14:abc:de00:1234::1");
        ck_assert_str_eq(rep.addr.egress_ip, fixture_egress ? "169.254.172.3" : "");
        proto_reply_done(&rep);
        struct proto_request chk = { .op = PROTO_OP_CHECK, .att = req.att };
        call(&chk, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_str_eq(rep.addr.ip, "2600:1f14:abc:de00:1234::");
        ck_assert_str_eq(rep.addr.gateway, "fe80::1");
        ck_assert_str_eq(rep.addr.egress_ip, fixture_egress ? "169.254.172.2" : "");
        proto_reply_done(&rep);
        struct proto_request del = { .op = PROTO_OP_DEL, .att = req.att };
        call(&del, &rep, 2000);
        ck_assert(rep.ok && rep.addr.has_ip);
        ck_assert_str_eq(rep.addr.ip, "2600:1f14:abc:de00:1234::");
        ck_assert(!rep.unwired && !rep.veth_queued);
        proto_reply_done(&rep);
        struct proto_request req3 = add_req("c3");     /* the base and its egress address cool down */
        call(&req3, &rep, 2000);
        ck_assert_str_eq(rep.addr.ip, "2600:1f14:abc:de00:1234::2");
        ck_assert_str_eq(rep.addr.egress_ip, fixture_egress ? "169.254.172.4" : "");
        proto_reply_done(&rep);
        struct proto_attachment keep = { .container_id = "c3", .ifname = "eth0" };
        struct proto_request gc = { .op = PROTO_OP_GC, .valid = &keep, .n_valid = 1 };
        call(&gc, &rep, 2000);
        ck_assert_uint_eq(rep.n_released, 1);
        ck_assert_str_eq(rep.released[0], "2600:1f14:abc:de00:1234::1");
        proto_reply_done(&rep);
        struct proto_request status = { .op = PROTO_OP_STATUS };
        call(&status, &rep, 2000);                      /* the /80 never runs dry: no "empty pool" */
        ck_assert(rep.ok && rep.ready);
        /* with egress, an ADD needs an egress address: 1021, less c3's and the two cooling */
        ck_assert_uint_eq(rep.available, fixture_egress ? 1018 : UINT32_MAX);
        proto_reply_done(&rep);
        if (fixture_egress) {                           /* none left: not ready, and why */
                status_without_egress(false, "no IPv4 egress address is free");
                ck_assert_int_eq(store_egress_in_use(fx.side, NULL, 0, wall_ms(), 30000, NULL), 0);
        }
        struct proto_request pool = { .op = PROTO_OP_POOL }, pods = { .op = PROTO_OP_PODS },
                             enis = { .op = PROTO_OP_ENIS };
        call(&pool, &rep, 2000);                        /* what vpc-ipamctl and /v1 show */
        cJSON *p = cJSON_GetObjectItem(rep.result, "pool");
        ck_assert_int_eq(cJSON_GetObjectItem(p, "ipv6_prefixes")->valueint, 1);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "ipv6_assigned")->valueint, 1);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "ipv6_cooldown")->valueint, 2);
        ck_assert_int_eq(cJSON_GetObjectItem(p, "egress_assigned")->valueint, fixture_egress ? 1 : 0);
        proto_reply_done(&rep);
        call(&pods, &rep, 2000);
        cJSON *pod = cJSON_GetArrayItem(cJSON_GetObjectItem(rep.result, "pods"), 0);
        ck_assert_str_eq(cJSON_GetObjectItem(pod, "ip")->valuestring, "2600:1f14:abc:de00:1234::2");
        ck_assert_int_eq(cJSON_GetObjectItem(pod, "egress_ip") != NULL, fixture_egress);
        proto_reply_done(&rep);
        call(&enis, &rep, 2000);
        cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(rep.result, "enis"), 0);
        ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(e0, "ipv6_prefixes"), 0)->valuestring,
                         "2600:1f14:abc:de00:1234::/80");
        proto_reply_done(&rep);
        struct store_stats st;
        ck_assert_int_eq(store_stats(fx.side, wall_ms(), &st), 0);
        ck_assert_int_eq(st.ipv6_assigned, 1);
        ck_assert_int_eq(st.assigned, 0);               /* no IPv4 address handed out */
        stop();
        fixture_ipv6 = fixture_egress = false;
}
END_TEST

struct waiter {
        struct proto_request req;
        struct proto_reply rep;
        int64_t took_ms;
};

static void *wait_add(void *arg) {
        struct waiter *w = arg;
        int64_t t0 = wall_ms();
        struct errmsg e;
        int r = proto_call(fx.sock, &w->req, 10000, &w->rep, &e);
        w->took_ms = r == 0 ? wall_ms() - t0 : -1;
        return NULL;
}

/* Wait (bounded) until the server holds n waiting ADDs (it counts a served
 * one out just after answering it) and has told the reconciler so. */
static void await_waiting(int n) {
        for (int i = 0; i < 400 && (server_waiting(fx.srv) != n || atomic_load(&fx.last_waiting) != n); i++)
                usleep(5000);
        ck_assert_int_eq(server_waiting(fx.srv), n);
}

/* One request through the server's loop: whatever it would do on its own
 * with what it held before has had its turn once this is answered. */
static void round_trip(void) {
        struct proto_request status = { .op = PROTO_OP_STATUS };
        struct proto_reply rep;
        call(&status, &rep, 2000);
        ck_assert(rep.ok);
        proto_reply_done(&rep);
}

/* The pool is empty: the ADD waits, and is served as soon as an address arrives. */
START_TEST(test_add_waits_then_served) {
        start(0, 5000, 5000);
        struct waiter w = { .req = add_req("late") };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, wait_add, &w), 0);
        await_waiting(1);
        ck_assert_int_eq(atomic_load(&fx.last_waiting), 1); /* the reconciler heard of it */
        round_trip();
        ck_assert_int_eq(server_waiting(fx.srv), 1);         /* the loop ran again: still no answer */
        add_ips(fx.side, 50, 1);                             /* the reconciler got an address */
        int64_t arrived = wall_ms();
        ck_assert_int_eq(server_pool_changed(fx.srv), 0);
        pthread_join(t, NULL);
        ck_assert(w.rep.ok);
        ck_assert_str_eq(w.rep.addr.ip, "10.0.1.50");
        ck_assert_int_lt(wall_ms() - arrived, 1000);
        await_waiting(0);      /* counted out just after the answer */
        proto_reply_done(&w.rep);
        struct metrics_snapshot ms;
        metrics_snapshot(fx.m, &ms);
        ck_assert_uint_eq(ms.counters[METRICS_ADD_WAITED], 1);
        ck_assert_uint_eq(ms.wait_count, 1);
        stop();
}
END_TEST

/* A DEL for an attachment whose ADD waits answers that ADD; the address that arrives later stays free. */
START_TEST(test_del_cancels_a_waiting_add) {
        start(0, 5000, 5000);
        struct waiter w = { .req = add_req("gone") };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, wait_add, &w), 0);
        await_waiting(1);
        struct proto_request del = { .op = PROTO_OP_DEL, .att = w.req.att };
        struct proto_reply rep;
        call(&del, &rep, 2000);
        ck_assert(rep.ok && !rep.addr.has_ip);
        proto_reply_done(&rep);
        ck_assert_int_eq(server_waiting(fx.srv), 0);
        pthread_join(t, NULL);
        ck_assert(!w.rep.ok);
        ck_assert_str_eq(w.rep.error.code, PROTO_E_NO_ADDRESS);
        ck_assert_ptr_nonnull(strstr(w.rep.error.msg, "deleted"));
        proto_reply_done(&w.rep);
        /* A witness waits behind where the cancelled ADD stood: the address that
         * arrives goes to the first waiter, so the witness getting it shows the
         * server served its queue and the cancelled ADD was not in it. */
        struct waiter witness = { .req = add_req("witness") };
        ck_assert_int_eq(pthread_create(&t, NULL, wait_add, &witness), 0);
        await_waiting(1);
        add_ips(fx.side, 60, 1);
        ck_assert_int_eq(server_pool_changed(fx.srv), 0);
        pthread_join(t, NULL);
        ck_assert_msg(witness.rep.ok, "the witness was not served: %s", witness.rep.error.msg);
        ck_assert_str_eq(witness.rep.addr.ip, "10.0.1.60");
        proto_reply_done(&witness.rep);
        ck_assert_int_eq(store_lookup(fx.side, "gone", "eth0", NULL), -ENOENT);
        await_waiting(0);
        stop();
}
END_TEST

START_TEST(test_add_wait_times_out_with_reason) {
        start(0, 300, 5000);
        struct waiter w = { .req = add_req("nope") };
        wait_add(&w);
        ck_assert_int_ge(w.took_ms, 280);
        ck_assert(!w.rep.ok);
        ck_assert_str_eq(w.rep.error.code, PROTO_E_NO_ADDRESS);
        ck_assert(w.rep.error.retry);
        ck_assert_ptr_nonnull(strstr(w.rep.error.msg, "InsufficientFreeAddressesInSubnet"));
        proto_reply_done(&w.rep);
        ck_assert_int_eq(store_lookup(fx.side, "nope", "eth0", NULL), -ENOENT);
        stop();
}
END_TEST

START_TEST(test_add_without_wait_fails_at_once) {
        start(0, 0, 5000);
        struct waiter w = { .req = add_req("nope") };
        wait_add(&w);
        ck_assert(!w.rep.ok);
        ck_assert_str_eq(w.rep.error.code, PROTO_E_NO_ADDRESS);
        ck_assert_int_lt(w.took_ms, 200);
        proto_reply_done(&w.rep);
        stop();
}
END_TEST

/* Raw datagram exchange for the hostile cases. */
static int raw_connect(void) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fx.sock);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        struct timeval tv = { .tv_sec = 5 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
}

static cJSON *raw_exchange(int fd, const void *msg, size_t len) {
        static char buf[PROTO_MSG_MAX + 1];
        if (msg)
                ck_assert_int_eq(send(fd, msg, len, 0), (ssize_t)len);
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        return cJSON_Parse(buf);
}

static const char *err_code(cJSON *j) {
        return cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valuestring;
}

START_TEST(test_hostile_messages) {
        start(2, 1000, 5000);
        static const struct { const char *msg; const char *code; } cases[] = {
                { "{not json", PROTO_E_BAD_REQUEST },
                { "[1,2,3]", PROTO_E_BAD_REQUEST },
                { "{\"v\":2,\"op\":\"status\"}", PROTO_E_UNSUPPORTED_VERSION },
                { "{\"v\":1,\"op\":\"reboot\"}", PROTO_E_UNKNOWN_OP },
                { "{\"v\":1,\"op\":\"add\",\"container_id\":\"x\",\"ifname\":\"bad/name\",\"netns\":\"/x\"}",
                  PROTO_E_BAD_REQUEST },
        };
        int fd = raw_connect();
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                cJSON *j = raw_exchange(fd, cases[i].msg, strlen(cases[i].msg));
                ck_assert_ptr_nonnull(j);
                ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "ok")));
                ck_assert_msg(strcmp(err_code(j), cases[i].code) == 0, "case %zu: %s", i, err_code(j));
                cJSON_Delete(j);
        }
        /* Oversized: 70 KB in one datagram. */
        size_t big = 70000;
        char *msg = malloc(big);
        memset(msg, ' ', big);
        msg[0] = '{';
        msg[big - 1] = '}';
        cJSON *j = raw_exchange(fd, msg, big);
        free(msg);
        ck_assert_str_eq(err_code(j), PROTO_E_BAD_REQUEST);
        ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "msg")->valuestring,
                                     "70000 bytes"));
        cJSON_Delete(j);
        /* The same connection still serves a good request afterwards. */
        const char *good = "{\"v\":1,\"op\":\"status\"}";
        j = raw_exchange(fd, good, strlen(good));
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
        cJSON_Delete(j);
        close(fd);
        struct metrics_snapshot ms;
        metrics_snapshot(fx.m, &ms);
        ck_assert_uint_eq(ms.counters[METRICS_BAD_REQUESTS], 6);
        stop();
}
END_TEST

/* A client that never sends is closed at its deadline; others are served meanwhile. */
START_TEST(test_silent_client_does_not_block) {
        start(2, 1000, 400);
        int silent = raw_connect();
        struct proto_request st = { .op = PROTO_OP_STATUS };
        struct proto_reply rep;
        int64_t t0 = wall_ms();
        call(&st, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_int_lt(wall_ms() - t0, 300);
        proto_reply_done(&rep);
        cJSON *j = raw_exchange(silent, NULL, 0); /* the refusal arrives at the deadline */
        ck_assert_str_eq(err_code(j), PROTO_E_BAD_REQUEST);
        ck_assert_int_ge(wall_ms() - t0, 350);
        cJSON_Delete(j);
        char c;
        ck_assert_int_eq(recv(silent, &c, 1, 0), 0); /* then closed */
        close(silent);
        stop();
}
END_TEST

/*
 * A STATUS call as uid 65534, forked before the server's thread exists (a child
 * forked from a threaded, sanitized process can deadlock in malloc). It calls
 * once the parent writes to *ret_go and reports "r ok code" on *ret_out.
 */
static pid_t fork_nobody_client(const char *sock, int *ret_go, int *ret_out) {
        int go[2], out[2];
        ck_assert_int_eq(pipe(go), 0);
        ck_assert_int_eq(pipe(out), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(go[1]);
                close(out[0]);
                char c;
                if (read(go[0], &c, 1) != 1 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(2);
                struct proto_request st = { .op = PROTO_OP_STATUS };
                struct proto_reply rep = { 0 };
                struct errmsg e;
                int r = proto_call(sock, &st, 2000, &rep, &e);
                char text[128];
                int n = snprintf(text, sizeof text, "%d %d %s", r, rep.ok, rep.error.code);
                _exit(write(out[1], text, (size_t)n) == n ? 0 : 3);
        }
        close(go[0]);
        close(out[1]);
        *ret_go = go[1];
        *ret_out = out[0];
        return pid;
}

START_TEST(test_non_root_refused) {
        char sock[sizeof fx.sock];
        snprintf(sock, sizeof sock, "%s/run/ipamd.sock", testlib_tmpdir());  /* the path start() uses */
        int go, from_child;
        pid_t pid = fork_nobody_client(sock, &go, &from_child);
        start(2, 1000, 5000);
        ck_assert_str_eq(fx.sock, sock);
        /* Let another uid reach the socket at all: the check under test is SO_PEERCRED. */
        char dir[300];
        snprintf(dir, sizeof dir, "%s/run", testlib_tmpdir());
        ck_assert_int_eq(chmod(testlib_tmpdir(), 0755), 0);
        ck_assert_int_eq(chmod(dir, 0755), 0);
        ck_assert_int_eq(chmod(fx.sock, 0666), 0);
        ck_assert_int_eq(write(go, "g", 1), 1);
        close(go);
        char out[128] = { 0 };
        ck_assert_int_gt(read(from_child, out, sizeof out - 1), 0);
        int status;
        waitpid(pid, &status, 0);
        close(from_child);
        ck_assert_msg(strcmp(out, "0 0 permission_denied") == 0, "non-root got: %s", out);
        /* Root is still served. */
        struct proto_request st = { .op = PROTO_OP_STATUS };
        struct proto_reply rep;
        call(&st, &rep, 2000);
        ck_assert(rep.ok);
        proto_reply_done(&rep);
        struct metrics_snapshot ms;
        metrics_snapshot(fx.m, &ms);
        ck_assert_uint_eq(ms.counters[METRICS_PEERS_REFUSED], 1);
        stop();
}
END_TEST

struct churner {
        int id;
        int ok;
};

static void *churn(void *arg) {
        struct churner *c = arg;
        char cid[32];
        for (int i = 0; i < 20; i++) {
                snprintf(cid, sizeof cid, "w%d-%d", c->id, i);
                struct proto_request a = add_req(cid);
                struct proto_reply rep = { 0 };
                struct errmsg e;
                if (proto_call(fx.sock, &a, 5000, &rep, &e) == 0 && rep.ok)
                        c->ok++;

                proto_reply_done(&rep);
                struct proto_request d = { .op = PROTO_OP_DEL, .att = a.att };
                memset(&rep, 0, sizeof rep);
                if (proto_call(fx.sock, &d, 5000, &rep, &e) == 0 && rep.ok && rep.addr.has_ip)
                        c->ok++;
                proto_reply_done(&rep);
        }
        return NULL;
}

/* Many clients at once: every ADD and DEL answered, no address given twice. */
START_TEST(test_many_clients) {
        fixture_cooldown_ms = 0; /* 320 ADDs over 64 addresses: reuse must be immediate */
        start(64, 1000, 5000);
        pthread_t t[16];
        struct churner c[16];
        for (int i = 0; i < 16; i++) {
                c[i] = (struct churner){ .id = i };
                ck_assert_int_eq(pthread_create(&t[i], NULL, churn, &c[i]), 0);
        }
        for (int i = 0; i < 16; i++) {
                pthread_join(t[i], NULL);
                ck_assert_int_eq(c[i].ok, 40);
        }
        struct store_stats st;
        ck_assert_int_eq(store_stats(fx.side, wall_ms(), &st), 0);
        ck_assert_int_eq(st.assigned, 0);
        ck_assert_int_eq(st.cooldown + st.available, 64);
        stop();
}
END_TEST

START_TEST(test_shutdown_answers_waiting) {
        start(0, 10000, 10000);
        struct waiter w = { .req = add_req("w") };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, wait_add, &w), 0);
        await_waiting(1);      /* the shutdown has a waiting ADD to answer */
        stop();
        pthread_join(t, NULL);
        ck_assert(!w.rep.ok);
        ck_assert_str_eq(w.rep.error.code, PROTO_E_SHUTTING_DOWN);
        ck_assert(w.rep.error.retry);
        proto_reply_done(&w.rep);
}
END_TEST

/* --- connection floods -------------------------------------------------------- */

/* Has the server closed this connection (EOF or hang-up pending)? */
static bool closed_by_server(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
        return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP | POLLRDHUP));
}

/* More idle connections than the server takes, all from this peer: an ADD is still served at once,
 * and the peer keeps only its newest SERVER_PEER_IDLE_MAX idle ones. */
START_TEST(test_idle_flood_does_not_block_add) {
        start(2, 1000, 30000);
        enum { N = SERVER_MAX_CONNS + 100 };
        static int fds[N];
        for (int i = 0; i < N; i++)
                fds[i] = raw_connect();
        struct proto_request req = add_req("flooded");
        struct proto_reply rep;
        int64_t t0 = wall_ms();
        call(&req, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_int_lt(wall_ms() - t0, 1000);
        proto_reply_done(&rep);
        int open_ = 0;
        for (int i = 0; i < N; i++)
                open_ += !closed_by_server(fds[i]);
        ck_assert_int_le(open_, SERVER_PEER_IDLE_MAX);
        ck_assert(closed_by_server(fds[0]));                    /* the oldest went first */
        ck_assert(!closed_by_server(fds[N - 1]));               /* the newest stays */
        for (int i = 0; i < N; i++)
                close(fds[i]);
        stop();
}
END_TEST

/* One peer's flood does not close another peer's idle connection: that one still serves a request. */
START_TEST(test_flood_spares_other_peers) {
        start(2, 1000, 30000);
        int go[2], done[2];
        ck_assert_int_eq(pipe(go), 0);
        ck_assert_int_eq(pipe(done), 0);
        pid_t pid = fork();
        if (pid == 0) {
                int fd = raw_connect();
                char c = 'r';
                if (write(done[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
                        _exit(2);
                const char *st = "{\"v\":1,\"op\":\"status\"}";
                char buf[4096];
                ssize_t n = send(fd, st, strlen(st), 0) < 0 ? -1 : recv(fd, buf, sizeof buf - 1, 0);
                c = n > 0 && strstr((buf[n] = '\0', buf), "\"ok\":true") ? 'y' : 'n';
                _exit(write(done[1], &c, 1) == 1 ? 0 : 3);
        }
        char c = 0;
        ck_assert_int_eq(read(done[0], &c, 1), 1);              /* the child is connected */
        enum { N = 3 * SERVER_PEER_IDLE_MAX };
        int fds[N];
        for (int i = 0; i < N; i++)
                fds[i] = raw_connect();
        struct proto_request st = { .op = PROTO_OP_STATUS };
        struct proto_reply rep;
        call(&st, &rep, 2000);                                  /* every flood connection accepted by now */
        proto_reply_done(&rep);
        ck_assert(closed_by_server(fds[0]));
        ck_assert_int_eq(write(go[1], "g", 1), 1);
        ck_assert_int_eq(read(done[0], &c, 1), 1);
        int status;
        waitpid(pid, &status, 0);
        ck_assert_int_eq(c, 'y');
        for (int i = 0; i < N; i++)
                close(fds[i]);
        close(go[0]), close(go[1]), close(done[0]), close(done[1]);
        stop();
}
END_TEST

/* Many peers, each under its own bound, fill the server: the oldest idle connections make room. */
START_TEST(test_many_peers_flood_keeps_a_reserve) {
        start(2, 1000, 30000);
        enum { PEERS = SERVER_MAX_CONNS / (SERVER_PEER_IDLE_MAX - 2) + 2 };
        int ready[2], go[2];
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(go), 0);
        pid_t pids[PEERS];
        for (int p = 0; p < PEERS; p++) {
                pids[p] = fork();
                if (pids[p] == 0) {
                        close(go[1]);
                        for (int i = 0; i < SERVER_PEER_IDLE_MAX - 2; i++)
                                (void)raw_connect();
                        char c = 'r';
                        if (write(ready[1], &c, 1) != 1)
                                _exit(2);
                        _exit(read(go[0], &c, 1) < 0 ? 3 : 0); /* hold them until the parent is done */
                }
        }
        close(go[0]);
        for (int p = 0; p < PEERS; p++) {
                char c;
                ck_assert_int_eq(read(ready[0], &c, 1), 1);
        }
        struct proto_request req = add_req("after-many");
        struct proto_reply rep;
        int64_t t0 = wall_ms();
        call(&req, &rep, 2000);
        ck_assert(rep.ok);
        ck_assert_int_lt(wall_ms() - t0, 1000);
        proto_reply_done(&rep);
        close(go[1]); /* the children exit */
        for (int p = 0; p < PEERS; p++) {
                int status;
                waitpid(pids[p], &status, 0);
        }
        close(ready[0]), close(ready[1]);
        stop();
}
END_TEST

int main(void) {
        Suite *s = suite_create("server");
        TCase *tc = tcase_create("socket");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_ops);
        tcase_add_test(tc, test_gc);
        tcase_add_loop_test(tc, test_ops_ipv6, 0, 2);   /* with and without ENABLE_V4_EGRESS */
        tcase_add_test(tc, test_ops_v6_egress);
        tcase_add_test(tc, test_add_waits_then_served);
        tcase_add_test(tc, test_add_wait_times_out_with_reason);
        tcase_add_test(tc, test_del_cancels_a_waiting_add);
        tcase_add_test(tc, test_add_without_wait_fails_at_once);
        tcase_add_test(tc, test_hostile_messages);
        tcase_add_test(tc, test_silent_client_does_not_block);
        tcase_add_test(tc, test_non_root_refused);
        tcase_add_test(tc, test_many_clients);
        tcase_add_test(tc, test_shutdown_answers_waiting);
        tcase_add_test(tc, test_idle_flood_does_not_block_add);
        tcase_add_test(tc, test_flood_spares_other_peers);
        tcase_add_test(tc, test_many_peers_flood_keeps_a_reserve);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

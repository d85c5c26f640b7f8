/*
 * test-podnet: what vpc-ipamd undoes at a pod's DEL, against the real kernel.
 *
 * Each case runs in Check's forked child, which unshares a fresh "node"
 * namespace first; a pod is a namespace held by a descriptor with the peer
 * end of a veth in it, made with `ip` as vpc-cni would make it (alias, /32
 * route, the two rules). The kernel state is read back with `ip`, sharing no
 * code with podnet. The last cases drive the server's DEL (server.c) with a
 * podnet: answered first, then undone, or answered after.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "podnet.h"
#include "server.h"
#include "store.h"
#include "testlib.h"

static void enter_node(void) {
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
        ck_assert_int_eq(testlib_sh("ip link set lo up"), 0);
}

/* A pod: namespace (held open), veth `veth` with its peer eth0 inside, the
 * alias of (cid, eth0), the host route and rules of ip (table 3). */
static int make_pod(const char *veth, const char *cid, const char *ip) {
        int node = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        int fd = open("/proc/thread-self/ns/net", O_RDONLY);
        ck_assert_int_eq(setns(node, CLONE_NEWNET), 0);
        close(node);
        char alias[PROTO_VETH_ALIAS_MAX];
        proto_veth_alias(cid, "eth0", alias);
        ck_assert_int_eq(testlib_sh("ip link add %s type veth peer name eth0 netns /proc/%d/fd/%d && "
                                    "ip link set %s alias '%s' up && ip route add %s/32 dev %s scope link && "
                                    "ip rule add to %s lookup main prio 512 && ip rule add from %s lookup 3 prio 1536",
                                    veth, getpid(), fd, veth, alias, ip, veth, ip, ip),
                         0);
        ck_assert_int_eq(testlib_sh("nsenter --net=/proc/%d/fd/%d ip link set eth0 up", getpid(), fd), 0);
        ck_assert_int_eq(testlib_sh("ip link show %s | grep -q 'state UP'", veth), 0);
        return fd;
}

static bool gone(const char *veth) {
        for (int i = 0; i < 500; i++) {
                if (testlib_sh("ip link show %s >/dev/null 2>&1", veth) != 0)
                        return true;
                usleep(10000);
        }
        return false;
}

static struct proto_attachment att(const char *cid) {
        struct proto_attachment a = { 0 };
        snprintf(a.container_id, sizeof a.container_id, "%s", cid);
        snprintf(a.ifname, sizeof a.ifname, "eth0");
        return a;
}

START_TEST(test_unwire_removes_rules_and_deletes_veth) {
        podnet *p = NULL;
        struct errmsg err = { 0 };
        bool queued = false;
        metrics *m = NULL;
        enter_node();
        make_pod("enipod1", "c1", "10.0.1.21");
        ck_assert_int_eq(metrics_new(&m), 0);
        ck_assert_int_eq(podnet_new(m, &p, &err), 0);
        struct proto_attachment a = att("c1");
        ck_assert_msg(podnet_unwire(p, &a, "10.0.1.21", 3, "enipod1", &queued, &err) == 0, "%s", err.text);
        ck_assert(queued);
        /* at return: rules and route gone, the veth down or already deleted */
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 10.0.1.21"), 1);
        ck_assert_int_eq(testlib_sh("ip route show | grep -q 10.0.1.21"), 1);
        ck_assert_int_eq(testlib_sh("ip link show enipod1 2>/dev/null | grep -q 'state UP'"), 1);
        ck_assert(gone("enipod1"));
        podnet_free(p);
        struct metrics_snapshot snap;
        metrics_snapshot(m, &snap);
        ck_assert_uint_eq(snap.counters[METRICS_POD_VETHS_DELETED], 1);
        ck_assert_uint_eq(snap.counters[METRICS_POD_VETH_DELETE_ERRORS], 0);
        metrics_free(m);
}
END_TEST

/* Another attachment's veth, a link that is not a pod's, a missing one:
 * nothing is touched and nothing queued; the rules of the address still go. */
START_TEST(test_unwire_touches_only_this_attachment) {
        podnet *p = NULL;
        struct errmsg err = { 0 };
        bool queued = true;
        enter_node();
        make_pod("enipod2", "c2", "10.0.1.22");
        ck_assert_int_eq(podnet_new(NULL, &p, &err), 0);
        struct proto_attachment other = att("someone-else");
        ck_assert_int_eq(podnet_unwire(p, &other, NULL, 0, "enipod2", &queued, &err), 0);
        ck_assert(!queued);
        ck_assert_int_eq(testlib_sh("ip link show enipod2 | grep -q 'state UP'"), 0);
        ck_assert_int_eq(podnet_unwire(p, &other, NULL, 0, "lo", &queued, &err), 0);
        ck_assert(!queued);
        ck_assert_int_eq(testlib_sh("ip link show lo | grep -q 'UP'"), 0);
        struct proto_attachment a = att("c2");
        ck_assert_int_eq(podnet_unwire(p, &a, "10.0.1.22", 0, "enipod9", &queued, &err), 0);
        ck_assert(!queued);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 10.0.1.22"), 1);      /* table 0: any */
        ck_assert_int_eq(testlib_sh("ip link show enipod2 | grep -q 'state UP'"), 0);
        ck_assert_int_eq(podnet_unwire(p, &a, "10.0.1", 0, NULL, &queued, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.text, "10.0.1"));
        podnet_free(p);
}
END_TEST

/* Rules that cannot be removed are an error (the server then keeps the
 * address); the veth is left untouched and not queued. */
START_TEST(test_unwire_fails_when_rules_cannot_go) {
        podnet *p = NULL;
        struct errmsg err = { 0 };
        bool queued = true;
        enter_node();
        make_pod("enipod3", "c3", "10.0.1.23");
        ck_assert_int_eq(podnet_new(NULL, &p, &err), 0);
        struct proto_attachment a = att("c3");
        testlib_net_admin(false);
        int r = podnet_unwire(p, &a, "10.0.1.23", 3, "enipod3", &queued, &err);
        testlib_net_admin(true);
        ck_assert_int_eq(r, -EPERM);
        ck_assert(!queued);
        ck_assert_ptr_nonnull(strstr(err.text, "10.0.1.23"));
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 'to 10.0.1.23 lookup main'"), 0);
        ck_assert_int_eq(testlib_sh("ip link show enipod3 | grep -q 'state UP'"), 0);
        podnet_free(p);
}
END_TEST

/* The DEL answered first: claim reads without touching (another
 * attachment's veth, a missing one: not claimed); a claimed veth stays up
 * until dropped, which takes it down and has it deleted; unroute takes the
 * rules and route. */
START_TEST(test_claim_drop_unroute) {
        podnet *p = NULL;
        struct errmsg err = { 0 };
        int ifindex = 0;
        metrics *m = NULL;
        enter_node();
        make_pod("enipod7", "c7", "10.0.1.27");
        ck_assert_int_eq(metrics_new(&m), 0);
        ck_assert_int_eq(podnet_new(m, &p, &err), 0);
        struct proto_attachment a = att("c7"), other = att("someone-else");
        ck_assert(!podnet_claim_veth(p, &other, "enipod7", &ifindex));
        ck_assert(!podnet_claim_veth(p, &a, "enipod9", &ifindex));
        ck_assert(!podnet_claim_veth(p, &a, "", &ifindex));
        ck_assert(podnet_claim_veth(p, &a, "enipod7", &ifindex));
        ck_assert_int_gt(ifindex, 0);
        ck_assert_int_eq(testlib_sh("ip link show enipod7 | grep -q 'state UP'"), 0);
        podnet_drop_veth(p, ifindex, "enipod7");
        ck_assert_int_eq(testlib_sh("ip link show enipod7 2>/dev/null | grep -q 'state UP'"), 1);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 10.0.1.27"), 0);     /* the rules are unroute's */
        ck_assert_msg(podnet_unroute(p, "10.0.1.27", 3, &err) == 0, "%s", err.text);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 10.0.1.27"), 1);
        ck_assert_int_eq(testlib_sh("ip route show | grep -q 10.0.1.27"), 1);
        ck_assert_int_eq(podnet_unroute(p, NULL, 0, &err), 0);
        ck_assert(gone("enipod7"));
        podnet_drop_veth(p, ifindex, "enipod7");        /* gone already: nothing queued, nothing counted */
        podnet_free(p);
        struct metrics_snapshot snap;
        metrics_snapshot(m, &snap);
        ck_assert_uint_eq(snap.counters[METRICS_POD_VETHS_DELETED], 1);
        ck_assert_uint_eq(snap.counters[METRICS_POD_VETH_DELETE_ERRORS], 0);
        metrics_free(m);
}
END_TEST

/* podnet_free() deletes what is still queued before it returns. */
START_TEST(test_free_deletes_what_is_queued) {
        enum { N = 6 };
        podnet *p = NULL;
        struct errmsg err = { 0 };
        char veth[N][16], cid[N][8], ip[N][16];
        enter_node();
        for (int i = 0; i < N; i++) {
                snprintf(veth[i], sizeof veth[i], "enifree%d", i);
                snprintf(cid[i], sizeof cid[i], "f%d", i);
                snprintf(ip[i], sizeof ip[i], "10.0.1.%d", 30 + i);
                make_pod(veth[i], cid[i], ip[i]);
        }
        ck_assert_int_eq(podnet_new(NULL, &p, &err), 0);
        for (int i = 0; i < N; i++) {
                bool queued = false;
                struct proto_attachment a = att(cid[i]);
                ck_assert_int_eq(podnet_unwire(p, &a, ip[i], 3, veth[i], &queued, &err), 0);
                ck_assert(queued);
        }
        podnet_free(p);
        ck_assert_int_eq(testlib_sh("test $(ip -o link show | wc -l) -eq 1"), 0);
}
END_TEST

static int leased_c5(void *userdata, const struct proto_attachment *att) {
        (*(int *)userdata)++;
        return strcmp(att->container_id, "c5") == 0 && strcmp(att->ifname, "eth0") == 0;
}

/* What a killed vpc-ipamd left: down veths with a vpc-cni alias. Only those
 * whose attachment holds no address go; up ones and leased ones stay. */
START_TEST(test_sweep_deletes_what_a_dead_daemon_left) {
        podnet *p = NULL;
        struct errmsg err = { 0 };
        unsigned queued = 0;
        int asked = 0;
        enter_node();
        make_pod("enidown4", "c4", "10.0.1.44");
        make_pod("enidown5", "c5", "10.0.1.45");
        make_pod("enilive6", "c6", "10.0.1.46");
        ck_assert_int_eq(testlib_sh("ip link set enidown4 down && ip link set enidown5 down"), 0);
        ck_assert_int_eq(testlib_sh("ip link add dummyx type veth peer name dummyy && "
                                    "ip link set dummyx alias 'vpc-cni:' && ip link set dummyy alias 'vpc-cni:eth0'"), 0);
        ck_assert_int_eq(podnet_new(NULL, &p, &err), 0);
        ck_assert_msg(podnet_sweep(p, leased_c5, &asked, &queued, &err) == 0, "%s", err.text);
        ck_assert_uint_eq(queued, 1);
        ck_assert_int_eq(asked, 2);
        ck_assert(gone("enidown4"));
        ck_assert_int_eq(testlib_sh("ip link show enidown5 >/dev/null && ip link show enilive6 >/dev/null && "
                                    "ip link show dummyx >/dev/null"), 0);
        podnet_free(p);
}
END_TEST

/* --- the server's DEL with podnet (server.c) --------------------------------------------- */

struct del_fixture {
        store *st, *side;
        podnet *p;
        server *srv;
        pthread_t thread;
        bool ready;
        char sock[128];
        char ip[STORE_IP6_MAX];
};

static void del_status(void *ud, struct server_pool_status *ret) {
        ret->ready = ((struct del_fixture *)ud)->ready;
}

static void *del_serve(void *srv) {
        server_run(srv);
        return NULL;
}

/* A store with one address leased to d1 (table 3), pod d1 wired with it on
 * veth enidel1, and a server with podnet whose thread has CAP_NET_ADMIN
 * only when net_admin (podnet's own thread always has it). */
static void del_start(struct del_fixture *f, bool ready, bool net_admin) {
        struct errmsg e = { 0 };
        struct store_lease lease;
        memset(f, 0, sizeof *f);
        f->ready = ready;
        const char *db = testlib_path("pool.db");
        snprintf(f->sock, sizeof f->sock, "%s/run/ipamd.sock", testlib_tmpdir());
        ck_assert_msg(store_open(db, &f->st, &e) == 0, "%s", e.text);
        ck_assert_int_eq(store_open(db, &f->side, &e), 0);
        struct store_eni eni = { .id = "eni-s", .mac = "02:00:00:00:00:02", .subnet_id = "subnet-1",
                                 .subnet_cidr = "10.0.0.0/16", .primary_ip = "10.0.1.5", .route_table = 3,
                                 .device_index = 1, .state = STORE_ENI_ATTACHED, .created_ms = 1 };
        ck_assert_int_eq(store_eni_put(f->side, &eni), 0);
        ck_assert_int_eq(store_block_add(f->side, "eni-s", "10.0.1.51/32", 1), 0);
        struct store_attachment a = { .container_id = "d1", .ifname = "eth0", .netns = "/var/run/netns/d1" };
        ck_assert_int_eq(store_assign(f->side, &a, 2, &lease, NULL), 0);
        snprintf(f->ip, sizeof f->ip, "%s", lease.ip);
        make_pod("enidel1", "d1", f->ip);
        ck_assert_int_eq(podnet_new(NULL, &f->p, &e), 0);
        struct server_options o = { .socket_path = f->sock, .store = f->st, .podnet = f->p, .idle_ms = 5000,
                                    .pod_mtu = 9001, .hooks = { .status = del_status, .userdata = f } };
        ck_assert_msg(server_new(&o, &f->srv, &e) == 0, "%s", e.text);
        testlib_net_admin(net_admin);
        ck_assert_int_eq(pthread_create(&f->thread, NULL, del_serve, f->srv), 0);
        testlib_net_admin(true);
}

static void del_stop(struct del_fixture *f) {
        server_stop(f->srv);
        pthread_join(f->thread, NULL);
        server_free(f->srv);
        podnet_free(f->p);
        store_close(f->st);
        store_close(f->side);
}

/* DEL of d1 naming its veth, then STATUS: whatever the DEL left for after
 * its answer is done before the server answers anything else. */
static void del_then_status(struct del_fixture *f, struct proto_reply *rep) {
        struct errmsg e = { 0 };
        struct proto_request del = { .op = PROTO_OP_DEL, .att = att("d1") };
        struct proto_request status = { .op = PROTO_OP_STATUS };
        struct proto_reply st = { 0 };
        snprintf(del.host_veth, sizeof del.host_veth, "enidel1");
        ck_assert_msg(proto_call(f->sock, &del, 5000, rep, &e) == 0, "%s", e.text);
        ck_assert_msg(proto_call(f->sock, &status, 5000, &st, &e) == 0, "%s", e.text);
        proto_reply_done(&st);
}

/* Answered first: unwired and the veth taken, with the address; by the next
 * answer the veth is down, the rules and route gone, the address free. */
START_TEST(test_server_del_answers_first) {
        struct del_fixture f;
        struct proto_reply rep = { 0 };
        enter_node();
        del_start(&f, true, true);
        del_then_status(&f, &rep);
        ck_assert(rep.ok && rep.unwired && rep.veth_queued && rep.addr.has_ip);
        ck_assert_str_eq(rep.addr.ip, f.ip);
        ck_assert_int_eq(store_lookup(f.side, "d1", "eth0", NULL), -ENOENT);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q %s", f.ip), 1);
        ck_assert_int_eq(testlib_sh("ip route show | grep -q %s", f.ip), 1);
        ck_assert_int_eq(testlib_sh("ip link show enidel1 2>/dev/null | grep -q 'state UP'"), 1);
        ck_assert(gone("enidel1"));
        proto_reply_done(&rep);
        del_stop(&f);
}
END_TEST

/* Answered first, but the rules cannot go (the serving thread lacks
 * CAP_NET_ADMIN): the address stays held, never free with its rules still
 * there; the claimed veth, which could not be taken down, is deleted all the
 * same by podnet's thread. */
START_TEST(test_server_del_keeps_the_address_when_rules_stay) {
        struct del_fixture f;
        struct proto_reply rep = { 0 };
        enter_node();
        del_start(&f, true, false);
        del_then_status(&f, &rep);
        ck_assert(rep.ok && rep.unwired && rep.veth_queued);
        ck_assert_int_eq(store_lookup(f.side, "d1", "eth0", NULL), 0);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 'to %s lookup main'", f.ip), 0);
        ck_assert(gone("enidel1"));
        proto_reply_done(&rep);
        del_stop(&f);
}
END_TEST

/* Not ready (say the store failed a write): the DEL is answered after the
 * unwiring and the release, so it can say they failed ("try again") and
 * leave the veth to the plugin. */
START_TEST(test_server_del_not_ready_answers_after) {
        struct del_fixture f;
        struct proto_reply rep = { 0 };
        enter_node();
        del_start(&f, false, false);
        del_then_status(&f, &rep);
        ck_assert(!rep.ok && rep.error.retry);
        ck_assert_str_eq(rep.error.code, PROTO_E_INTERNAL);
        ck_assert_int_eq(store_lookup(f.side, "d1", "eth0", NULL), 0);
        ck_assert_int_eq(testlib_sh("ip link show enidel1 | grep -q 'state UP'"), 0);
        proto_reply_done(&rep);
        del_stop(&f);
}
END_TEST

int main(void) {
        Suite *s = suite_create("podnet");
        TCase *tc = tcase_create("netns");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_unwire_removes_rules_and_deletes_veth);
        tcase_add_test(tc, test_unwire_touches_only_this_attachment);
        tcase_add_test(tc, test_unwire_fails_when_rules_cannot_go);
        tcase_add_test(tc, test_claim_drop_unroute);
        tcase_add_test(tc, test_free_deletes_what_is_queued);
        tcase_add_test(tc, test_sweep_deletes_what_a_dead_daemon_left);
        tcase_add_test(tc, test_server_del_answers_first);
        tcase_add_test(tc, test_server_del_keeps_the_address_when_rules_stay);
        tcase_add_test(tc, test_server_del_not_ready_answers_after);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

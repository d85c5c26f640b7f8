/*
 * test-dataplane: dp_add/dp_del/dp_check/dp_gc against the real kernel.
 *
 * Every case runs in Check's forked child, which first unshares a fresh
 * network namespace — the "host" (node) side — so the machine's own
 * namespace is never touched. Pod namespaces are made inside the case with
 * unshare() as well and held only by a file descriptor, addressed as
 * /proc/<pid>/fd/<n>; they vanish when the case's process exits, whatever
 * happens. The kernel state is read back with `ip -j` (the tests may exec
 * ip; the plugin never does) so the checks do not share code with what they
 * check.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <netlink/socket.h>

#include "dataplane.h"
#include "netns.h"
#include "testlib.h"

static int host_fd = -1;

/* Make the calling process's namespace a fresh one, with lo up. */
static void enter_fresh_host(void) {
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
        host_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(host_fd, 0);
        ck_assert_int_eq(system("ip link set lo up"), 0);
}

/* A new pod namespace, held by a descriptor; path receives its name. */
static int make_pod(char path[static 64]) {
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        int fd = open("/proc/thread-self/ns/net", O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setns(host_fd, CLONE_NEWNET), 0);
        snprintf(path, 64, "/proc/%d/fd/%d", getpid(), fd);
        return fd;
}

/* The calling thread is in the "host" namespace (never left in a pod's). */
static void assert_home(void) {
        struct stat a, b;
        ck_assert_int_eq(fstat(host_fd, &a), 0);
        ck_assert_int_eq(stat("/proc/thread-self/ns/net", &b), 0);
        ck_assert_msg(a.st_ino == b.st_ino && a.st_dev == b.st_dev, "the thread was left in another namespace");
}

static const char *jstr(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItem(o, k);
        return cJSON_IsString(v) ? v->valuestring : "";
}

static int jint(const cJSON *o, const char *k) {
        const cJSON *v = cJSON_GetObjectItem(o, k);
        return cJSON_IsNumber(v) ? v->valueint : -1;
}

static bool has_flag(const cJSON *link, const char *flag) {
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(link, "flags"))
                if (strcmp(f->valuestring, flag) == 0)
                        return true;
        return false;
}

static struct dp_pod pod_cfg(const char *id, const char *ip, uint32_t table) {
        return (struct dp_pod){ .container_id = id, .ifname = "eth0", .veth_prefix = "eni", .ip = ip,
                                .route_table = table, .mtu = 1400 };
}

/* Nothing of ours anywhere: host has only lo, no pod routes or rules. */
static void assert_clean(const char *pod_ns) {
        int links = testlib_ipj_size(NULL, "link show");
        ck_assert_msg(links == 1, "host has %d links", links);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 3);        /* local, main, default */
        ck_assert_int_eq(testlib_ipj_size(NULL, "route show table main"), 0);
        if (pod_ns) {
                int pl = testlib_ipj_size(pod_ns, "link show");
                ck_assert_msg(pl == 1, "pod has %d links", pl);
        }
}

static long usec_since(const struct timespec *t0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (t.tv_sec - t0->tv_sec) * 1000000L + (t.tv_nsec - t0->tv_nsec) / 1000;
}

START_TEST(test_add_makes_every_object) {
        char ns[64], alias[256];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee01", "10.0.1.5", 2);
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "dp_add: %s", err.text);

        cJSON *hl = testlib_ipj(NULL, "-d link show %s", l.host_ifname);
        const cJSON *h = cJSON_GetArrayItem(hl, 0);
        ck_assert_ptr_nonnull(h);
        ck_assert(has_flag(h, "UP"));
        ck_assert_int_eq(jint(h, "mtu"), 1400);
        ck_assert_str_eq(jstr(h, "address"), l.host_mac);
        ck_assert_int_eq(strtol(l.host_mac, NULL, 16) & 0x03, 0x02);   /* unicast, locally administered */
        proto_veth_alias("c0ffee01", "eth0", alias);
        ck_assert_str_eq(jstr(h, "ifalias"), alias);
        cJSON_Delete(hl);

        cJSON *routes = testlib_ipj(NULL, "route show table main");
        ck_assert_int_eq(testlib_json_count(routes, 3, "dst", "10.0.1.5", "dev", l.host_ifname, "scope", "link"), 1);
        cJSON_Delete(routes);
        cJSON *rules = testlib_ipj(NULL, "rule show");
        ck_assert_int_eq(testlib_json_count(rules, 3, "priority", "512", "dst", "10.0.1.5", "table", "main"), 1);
        ck_assert_int_eq(testlib_json_count(rules, 3, "priority", "1536", "src", "10.0.1.5", "table", "2"), 1);
        cJSON_Delete(rules);

        cJSON *pl = testlib_ipj(ns, "link show eth0");
        const cJSON *pe = cJSON_GetArrayItem(pl, 0);
        ck_assert(has_flag(pe, "UP"));
        ck_assert_int_eq(jint(pe, "mtu"), 1400);
        ck_assert_str_eq(jstr(pe, "address"), l.pod_mac);
        cJSON_Delete(pl);
        cJSON *pa = testlib_ipj(ns, "-4 addr show dev eth0");
        const cJSON *ai = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(pa, 0), "addr_info"), 0);
        ck_assert_str_eq(jstr(ai, "local"), "10.0.1.5");
        ck_assert_int_eq(jint(ai, "prefixlen"), 32);
        cJSON_Delete(pa);
        cJSON *pr = testlib_ipj(ns, "route show");
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "default", "gateway", "169.254.1.1", "dev", "eth0"), 1);
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "169.254.1.1", "dev", "eth0", "scope", "link"), 1);
        cJSON_Delete(pr);
        cJSON *pn = testlib_ipj(ns, "neigh show");
        ck_assert_int_eq(testlib_json_count(pn, 3, "dst", "169.254.1.1", "dev", "eth0", "lladdr", l.host_mac), 1);
        char *printed = cJSON_PrintUnformatted(pn);
        ck_assert_ptr_nonnull(strstr(printed, "PERMANENT"));
        free(printed);
        cJSON_Delete(pn);
        ck_assert_msg(dp_check(ns, &p, &err) == 0, "dp_check after add: %s", err.text);
        assert_home();
}
END_TEST

START_TEST(test_netns_refusals_stay_home) {
        struct nl_sock *sk = NULL;
        int fd = -1;
        enter_fresh_host();
        ck_assert_int_eq(netns_open("/nonexistent/netns", &fd), -ENOENT);
        ck_assert_int_eq(netns_open("/proc/self/ns/uts", &fd), -EINVAL);    /* a namespace, not a network one */
        int uts = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC), file = open("/proc/self/stat", O_RDONLY);
        ck_assert_int_lt(netns_nl_socket(uts, &sk), 0);
        ck_assert_int_lt(netns_nl_socket(file, &sk), 0);
        ck_assert_ptr_null(sk);
        assert_home();
        char ns[64];
        make_pod(ns);
        ck_assert_int_eq(netns_open(ns, &fd), 0);
        ck_assert_int_eq(netns_nl_socket(fd, &sk), 0);
        assert_home();
        nl_socket_free(sk);
        close(fd);
        close(uts);
        close(file);
}
END_TEST

START_TEST(test_main_table_has_no_from_rule) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee02", "10.0.0.9", 254);
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "dp_add: %s", err.text);
        cJSON *rules = testlib_ipj(NULL, "rule show");
        ck_assert_int_eq(testlib_json_count(rules, 1, "priority", "1536"), 0);
        ck_assert_int_eq(testlib_json_count(rules, 2, "priority", "512", "dst", "10.0.0.9"), 1);
        cJSON_Delete(rules);
        ck_assert_int_eq(dp_check(ns, &p, &err), 0);
}
END_TEST

START_TEST(test_del_removes_everything_and_is_idempotent) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee03", "10.0.1.7", 3);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        ck_assert_msg(dp_del(&p, NULL, &err) == 0, "dp_del: %s", err.text);
        assert_clean(ns);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);                    /* twice */
        ck_assert_int_eq(dp_del(&p, l.host_ifname, &err), 0);           /* with a stale hint */
        struct dp_pod unknown = pod_cfg("never-added", "", 0);
        ck_assert_int_eq(dp_del(&unknown, NULL, &err), 0);
        assert_clean(ns);
}
END_TEST

START_TEST(test_del_after_netns_is_gone) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        int fd = make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee04", "10.0.1.8", 2);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        close(fd);                              /* the pod namespace dies, and its veth with it */
        for (int i = 0; i < 200 && testlib_sh("ip link show %s >/dev/null 2>&1", l.host_ifname) == 0; i++)
                usleep(10000);
        ck_assert_msg(dp_del(&p, l.host_ifname, &err) == 0, "dp_del: %s", err.text);
        assert_clean(NULL);
        /* and the add path reports a vanished namespace plainly */
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err.text, ns));
}
END_TEST

/* After DEL, vpc-ipamd takes the host veth down and deletes it a moment
 * later. Meanwhile: dp_host_veth() still names it, GC collects it, and an
 * ADD of the same attachment replaces it — while the same ADD against the
 * live (up) attachment is refused. The namespace's teardown takes it too. */
START_TEST(test_veth_taken_down_by_del) {
        char ns[64], name[PROTO_IFNAME_MAX + 1];
        struct dp_links l, l2;
        struct errmsg err = { 0 };
        unsigned removed = 0;
        enter_fresh_host();
        int fd = make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee0a", "10.0.1.40", 3);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        ck_assert_int_eq(dp_add(ns, &p, &l2, &err), -EEXIST);          /* live: refused */
        ck_assert_int_eq(dp_host_veth(&p, NULL, name, &err), 0);
        ck_assert_str_eq(name, l.host_ifname);
        ck_assert_int_eq(testlib_sh("ip link set %s down", l.host_ifname), 0);
        /* GC collects a downed veth whose namespace lives on ... */
        char released[1][PROTO_IP_MAX] = { "10.0.1.40" };
        ck_assert_int_eq(dp_gc("eni", NULL, 0, released, 1, &removed, &err), 0);
        ck_assert_uint_eq(removed, 3);                                  /* the veth and two rules */
        ck_assert_int_eq(dp_host_veth(&p, NULL, name, &err), -ENOENT);
        assert_clean(ns);
        /* ... an ADD of the same attachment replaces one ... */
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        ck_assert_int_eq(testlib_sh("ip link set %s down", l.host_ifname), 0);
        ck_assert_msg(dp_add(ns, &p, &l2, &err) == 0, "ADD over a downed veth: %s", err.text);
        cJSON *hl = testlib_ipj(NULL, "link show %s", l2.host_ifname);
        ck_assert(has_flag(cJSON_GetArrayItem(hl, 0), "UP"));
        cJSON_Delete(hl);
        ck_assert_int_eq(dp_check(ns, &p, &err), 0);
        /* ... and the namespace's teardown takes one with it */
        ck_assert_int_eq(testlib_sh("ip link set %s down", l2.host_ifname), 0);
        ck_assert_int_eq(testlib_sh("ip rule del to 10.0.1.40 lookup main prio 512 && "
                                    "ip rule del from 10.0.1.40 lookup 3 prio 1536"), 0);
        close(fd);
        for (int i = 0; i < 300 && testlib_sh("ip link show %s >/dev/null 2>&1", l2.host_ifname) == 0; i++)
                usleep(10000);
        assert_clean(NULL);
}
END_TEST

struct fault { int at; int calls; };

static int fault_at(enum dp_step step, void *userdata) {
        struct fault *f = userdata;
        f->calls++;
        return (int)step == f->at ? -EIO : 0;
}

START_TEST(test_rollback_at_every_step) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        for (int step = 0; step < DP_STEP_HOST_SYSCTL6; step++) {     /* an IPv4 pod's steps */
                struct fault f = { .at = step };
                struct dp_pod p = pod_cfg("c0ffee05", "10.0.1.9", 5);
                p.fault = fault_at;
                p.fault_data = &f;
                errmsg_clear(&err);
                ck_assert_int_eq(dp_add(ns, &p, &l, &err), -EIO);
                ck_assert_msg(strstr(err.text, dp_step_name((enum dp_step)step)), "step %d: %s", step, err.text);
                assert_home();
                assert_clean(ns);
                /* an ADD after the failed one succeeds, and DEL leaves nothing */
                p.fault = NULL;
                ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "add after failure at %d: %s", step, err.text);
                ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
                assert_clean(ns);
        }
}
END_TEST

/* ADD in parts, as the plugin runs it while the daemon answers: the veth is
 * made before the address and MTU are known; the MTU reaches both ends;
 * abandoning after the veth, or failing in the second part, leaves nothing. */
START_TEST(test_wiring_in_parts) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        dp_wiring *w = NULL;
        enter_fresh_host();
        make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee0a", NULL, 3);
        p.mtu = 0;
        /* abandoned after the veth: the daemon refused */
        ck_assert_msg(dp_wiring_open(ns, &p, &w, &err) == 0, "open: %s", err.text);
        ck_assert_msg(dp_wiring_veth(w, &err) == 0, "veth: %s", err.text);
        ck_assert_int_eq(testlib_ipj_size(NULL, "link show"), 2);
        /* already marked as this attachment's, before any address: were the
         * plugin killed now, DEL, GC and vpc-ipamd would know the veth */
        char name[PROTO_IFNAME_MAX + 1];
        ck_assert_msg(dp_host_veth(&p, NULL, name, &err) == 0, "dp_host_veth: %s", err.text);
        w = dp_wiring_free(w);
        assert_home();
        assert_clean(ns);
        /* a late MTU reaches both ends */
        ck_assert_int_eq(dp_wiring_open(ns, &p, &w, &err), 0);
        ck_assert_int_eq(dp_wiring_veth(w, &err), 0);
        ck_assert_msg(dp_wiring_finish(w, "10.0.1.40", NULL, 3, 1300, &l, &err) == 0, "finish: %s", err.text);
        w = dp_wiring_free(w);
        cJSON *h = testlib_ipj(NULL, "link show dev %s", l.host_ifname);
        ck_assert_int_eq(jint(cJSON_GetArrayItem(h, 0), "mtu"), 1300);
        cJSON_Delete(h);
        cJSON *pe = testlib_ipj(ns, "link show dev eth0");
        ck_assert_int_eq(jint(cJSON_GetArrayItem(pe, 0), "mtu"), 1300);
        cJSON_Delete(pe);
        p.ip = "10.0.1.40";
        ck_assert_int_eq(dp_check(ns, &p, &err), 0);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        assert_clean(ns);
        /* a failure in the second part undoes the first */
        struct fault f = { .at = DP_STEP_HOST_ROUTE };
        p.fault = fault_at;
        p.fault_data = &f;
        ck_assert_int_eq(dp_wiring_open(ns, &p, &w, &err), 0);
        ck_assert_int_eq(dp_wiring_veth(w, &err), 0);
        ck_assert_int_eq(dp_wiring_finish(w, "10.0.1.40", NULL, 3, 0, &l, &err), -EIO);
        w = dp_wiring_free(w);
        assert_clean(ns);
        /* an address that is not one is refused and undoes the veth */
        p.fault = NULL;
        ck_assert_int_eq(dp_wiring_open(ns, &p, &w, &err), 0);
        ck_assert_int_eq(dp_wiring_veth(w, &err), 0);
        ck_assert_int_eq(dp_wiring_finish(w, "10.0.1", NULL, 3, 0, &l, &err), -EINVAL);
        w = dp_wiring_free(w);
        assert_clean(ns);
}
END_TEST

START_TEST(test_interface_already_in_pod) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip link add eth0 type veth peer name other0", ns), 0);
        struct dp_pod p = pod_cfg("c0ffee06", "10.0.1.10", 2);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), -EEXIST);
        ck_assert_ptr_nonnull(strstr(err.text, "eth0"));
        assert_home();
        ck_assert_int_eq(testlib_ipj_size(NULL, "link show"), 1);       /* no host veth left */
        ck_assert_int_eq(testlib_ipj_size(ns, "link show"), 3);         /* theirs untouched */
}
END_TEST

START_TEST(test_name_clash_takes_alternate) {
        char ns[64], taken[16];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        struct dp_pod p = pod_cfg("c0ffee07", "10.0.1.11", 2);
        dp_veth_name("eni", "c0ffee07", "eth0", 0, taken);
        ck_assert_int_eq(testlib_sh("ip link add %s type veth peer name foreign0", taken), 0);
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "dp_add: %s", err.text);
        ck_assert_str_ne(l.host_ifname, taken);
        ck_assert_int_eq(dp_check(ns, &p, &err), 0);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        ck_assert_int_eq(testlib_sh("ip link show %s >/dev/null", taken), 0);   /* the other one stays */
        ck_assert_int_ne(testlib_sh("ip link show %s >/dev/null 2>&1", l.host_ifname), 0);
}
END_TEST

START_TEST(test_stale_own_veth_is_replaced) {
        char ns[64], ns2[64];
        struct dp_links l, l2;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        make_pod(ns2);
        struct dp_pod p = pod_cfg("c0ffee08", "10.0.1.12", 2);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        /* the same attachment again into a new namespace (the old ADD was
         * interrupted): our stale veth must not block it */
        ck_assert_msg(dp_add(ns2, &p, &l2, &err) == 0, "dp_add: %s", err.text);
        ck_assert_str_eq(l.host_ifname, l2.host_ifname);
        ck_assert_int_eq(dp_check(ns2, &p, &err), 0);
}
END_TEST

struct drift { const char *ns_side; const char *cmd; const char *expect; };

START_TEST(test_check_names_each_drift) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(ns);
        const struct drift drifts[] = {
                { "pod", "ip addr del 10.0.1.13/32 dev eth0", "pod address" },
                { "pod", "ip route del default", "pod default route" },
                { "pod", "ip route del 169.254.1.1 dev eth0", "scope link is missing" },
                { "pod", "ip neigh del 169.254.1.1 dev eth0", "pod neighbour" },
                { "pod", "ip neigh replace 169.254.1.1 dev eth0 lladdr 02:11:22:33:44:55 nud permanent",
                  "pod neighbour" },
                { "pod", "ip link set eth0 down", "pod interface is down" },
                { "host", "ip route del 10.0.1.13/32", "host route" },
                { "host", "ip rule del prio 512", "prio 512" },
                { "host", "ip rule del prio 1536", "prio 1536" },
                { "host", "ip rule del prio 1536 && ip rule add from 10.0.1.13 lookup 9 prio 1536", "prio 1536" },
                { "hostveth", "ip link set HOSTVETH down", "host veth is down" },
                { "hostveth", "ip link del HOSTVETH", "host veth" },
        };
        for (size_t i = 0; i < sizeof drifts / sizeof drifts[0]; i++) {
                const struct drift *d = &drifts[i];
                struct dp_pod p = pod_cfg("c0ffee09", "10.0.1.13", 4);
                ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
                ck_assert_int_eq(dp_check(ns, &p, &err), 0);
                char cmd[256];
                const char *mark = strstr(d->cmd, "HOSTVETH");
                if (mark)
                        snprintf(cmd, sizeof cmd, "%.*s%s%s", (int)(mark - d->cmd), d->cmd, l.host_ifname, mark + 8);
                else
                        snprintf(cmd, sizeof cmd, "%s", d->cmd);
                if (strcmp(d->ns_side, "pod") == 0)
                        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c '%s'", ns, cmd), 0);
                else
                        ck_assert_int_eq(testlib_sh("%s", cmd), 0);
                errmsg_clear(&err);
                ck_assert_int_eq(dp_check(ns, &p, &err), -EUCLEAN);
                ck_assert_msg(strstr(err.text, d->expect), "after \"%s\": \"%s\" lacks \"%s\"", cmd, err.text,
                              d->expect);
                ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
                testlib_sh("ip rule del prio 1536 2>/dev/null");
                assert_clean(ns);
        }
}
END_TEST

START_TEST(test_gc_removes_only_the_released) {
        char ns1[64], ns2[64];
        struct dp_links l1, l2;
        struct errmsg err = { 0 };
        unsigned removed = 0;
        enter_fresh_host();
        make_pod(ns1);
        make_pod(ns2);
        struct dp_pod p1 = pod_cfg("keep-me", "10.0.1.20", 2), p2 = pod_cfg("drop-me", "10.0.1.21", 2);
        ck_assert_int_eq(dp_add(ns1, &p1, &l1, &err), 0);
        ck_assert_int_eq(dp_add(ns2, &p2, &l2, &err), 0);
        ck_assert_int_eq(testlib_sh("ip link add eniforeign type veth peer name x0"), 0);   /* not ours: no alias */
        struct proto_attachment valid[] = { { "keep-me", "eth0" } };
        char released[1][PROTO_IP_MAX] = { "10.0.1.21" };
        ck_assert_msg(dp_gc("eni", valid, 1, released, 1, &removed, &err) == 0, "dp_gc: %s", err.text);
        ck_assert_uint_eq(removed, 3);          /* one veth, two rules */
        ck_assert_int_eq(dp_check(ns1, &p1, &err), 0);
        ck_assert_int_ne(testlib_sh("ip link show %s >/dev/null 2>&1", l2.host_ifname), 0);
        ck_assert_int_eq(testlib_sh("ip link show eniforeign >/dev/null"), 0);
        cJSON *rules = testlib_ipj(NULL, "rule show");
        ck_assert_int_eq(testlib_json_count(rules, 1, "dst", "10.0.1.21"), 0);
        ck_assert_int_eq(testlib_json_count(rules, 1, "src", "10.0.1.21"), 0);
        cJSON_Delete(rules);
}
END_TEST

START_TEST(test_two_pods_ping_each_other) {
        char ns1[64], ns2[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ck_assert_int_eq(testlib_sh("command -v ping >/dev/null"), 0);
        ck_assert_int_eq(testlib_sh("echo 0 > /proc/sys/net/ipv4/ip_forward"), 0);   /* this namespace's own */
        make_pod(ns1);
        make_pod(ns2);
        struct dp_pod p1 = pod_cfg("pinger", "10.0.1.30", 254), p2 = pod_cfg("pingee", "10.0.1.31", 254);
        ck_assert_int_eq(dp_add(ns1, &p1, &l, &err), 0);
        ck_assert_int_eq(dp_add(ns2, &p2, &l, &err), 0);
        ck_assert_int_eq(testlib_sh("grep -qx 1 /proc/sys/net/ipv4/ip_forward"), 0);   /* ADD turned it on */
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -c 2 -i 0.2 -W 2 -q 10.0.1.31 >/dev/null", ns1), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -c 1 -W 2 -q 10.0.1.30 >/dev/null", ns2), 0);
}
END_TEST

/* Packets received by link dev (in namespace ns, or the host when NULL). */
static long rx_packets(const char *ns, const char *dev) {
        cJSON *l = testlib_ipj(ns, "-s link show %s", dev);
        const cJSON *rx = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "stats64"), "rx");
        long n = cJSON_IsObject(rx) ? (long)cJSON_GetObjectItem(rx, "packets")->valuedouble : -1;
        cJSON_Delete(l);
        return n;
}

/*
 * A node with two "ENIs" (veths to an "outside" namespace): ens5 in the main
 * table, ens6 with table 2. A pod whose address belongs to ens6's ENI must
 * send through ens6 (the VPC drops it otherwise); a main-table pod through
 * ens5. Replies come back to both pods.
 */
START_TEST(test_pod_traffic_leaves_through_its_eni) {
        char out[64], ns1[64], ns2[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        make_pod(out);
        ck_assert_int_eq(testlib_sh("command -v ping >/dev/null"), 0);
        ck_assert_int_eq(testlib_sh("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && "
                            "nsenter --net=%s sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6'", out), 0);
        ck_assert_int_eq(testlib_sh("ip link add ens5 type veth peer name o5 netns %s && "
                            "ip link add ens6 type veth peer name o6 netns %s && "
                            "ip addr add 10.0.0.10/24 dev ens5 && ip addr add 10.0.1.10/24 dev ens6 && "
                            "ip link set ens5 up && ip link set ens6 up && "
                            "ip route add default via 10.0.0.1 dev ens5 && "
                            "ip route add default via 10.0.1.1 dev ens6 table 2 && "
                            "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter", out, out), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c 'ip link set lo up && ip addr add 192.0.2.1/32 dev lo && "
                            "ip addr add 10.0.0.1/24 dev o5 && ip addr add 10.0.1.1/24 dev o6 && "
                            "ip link set o5 up && ip link set o6 up && "
                            "ip route add 10.0.1.50/32 via 10.0.1.10 dev o6 && "
                            "ip route add 10.0.0.60/32 via 10.0.0.10 dev o5 && "
                            "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter'", out), 0);
        make_pod(ns1);
        make_pod(ns2);
        struct dp_pod on_eni1 = pod_cfg("eni1-pod", "10.0.1.50", 2), on_eni0 = pod_cfg("eni0-pod", "10.0.0.60", 254);
        ck_assert_msg(dp_add(ns1, &on_eni1, &l, &err) == 0, "%s", err.text);
        ck_assert_msg(dp_add(ns2, &on_eni0, &l, &err) == 0, "%s", err.text);

        long o5 = rx_packets(out, "o5"), o6 = rx_packets(out, "o6");
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -c 3 -i 0.2 -W 2 -q 192.0.2.1 >/dev/null", ns1), 0);
        ck_assert_int_ge(rx_packets(out, "o6") - o6, 3);
        ck_assert_int_lt(rx_packets(out, "o5") - o5, 3);    /* neighbour probes, never the pings */

        o5 = rx_packets(out, "o5"), o6 = rx_packets(out, "o6");
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -c 3 -i 0.2 -W 2 -q 192.0.2.1 >/dev/null", ns2), 0);
        ck_assert_int_ge(rx_packets(out, "o5") - o5, 3);
        ck_assert_int_lt(rx_packets(out, "o6") - o6, 3);
}
END_TEST

START_TEST(test_latency) {
        enum { N = 40 };
        char ns[N][64];
        long add_us[N], del_us[N];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        for (int i = 0; i < N; i++)
                make_pod(ns[i]);
        for (int i = 0; i < N; i++) {
                char id[32], ip[16];
                snprintf(id, sizeof id, "lat-%d", i);
                snprintf(ip, sizeof ip, "10.0.2.%d", i + 1);
                struct dp_pod p = pod_cfg(id, ip, 2);
                struct timespec t0;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                ck_assert_msg(dp_add(ns[i], &p, &l, &err) == 0, "%s", err.text);
                add_us[i] = usec_since(&t0);
        }
        for (int i = 0; i < N; i++) {
                char id[32], ip[16];
                snprintf(id, sizeof id, "lat-%d", i);
                snprintf(ip, sizeof ip, "10.0.2.%d", i + 1);
                struct dp_pod p = pod_cfg(id, ip, 2);
                struct timespec t0;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
                del_us[i] = usec_since(&t0);
        }
        assert_clean(NULL);
        testlib_sort_longs(add_us, N);
        testlib_sort_longs(del_us, N);
        fprintf(stderr, "# dataplane only, %d pods: dp_add median %ld us, max %ld us; dp_del median %ld us, max %ld us\n",
                N, add_us[N / 2], add_us[N - 1], del_us[N / 2], del_us[N - 1]);
}
END_TEST


/* --- IPv6 pods and their IPv4 egress ------------------------------------------------ */

#define V6_IP "2600:1f14:abc:de00::5"
#define V6_EGRESS "169.254.172.9"

static struct dp_pod pod6_cfg(const char *id, const char *ip, const char *egress) {
        struct dp_pod p = pod_cfg(id, ip, 254);
        p.egress_ip = egress;
        return p;
}

/* The node of an IPv6 cluster as vpc-ipamd sets it up (IPv6 on, forwarding). */
static void ipv6_node(void) {
        ck_assert_int_eq(testlib_sh("echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                                    "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"), 0);
}

/* A sysctl under /proc/sys/net/ipv6/conf/<dev>/ of ns (NULL: here) equals want. */
static bool conf6_is(const char *ns, const char *dev, const char *key, const char *want) {
        char pre[128] = "";
        if (ns)
                snprintf(pre, sizeof pre, "nsenter --net=%s ", ns);
        return testlib_sh("test \"$(%scat /proc/sys/net/ipv6/conf/%s/%s)\" = %s", pre, dev, key, want) == 0;
}

/* Nothing of ours in either family: assert_clean() plus no IPv6 rule, host
 * route or neighbour of a pod. */
static void assert_clean6(const char *pod_ns) {
        assert_clean(pod_ns);
        ck_assert_int_eq(testlib_ipj_size(NULL, "-6 rule show"), 2);     /* local, main */
        int routes = testlib_ipj_size(NULL, "-6 route show table main");
        ck_assert_msg(routes == 0, "host has %d IPv6 main routes", routes);
        ck_assert_int_eq(testlib_ipj_size(NULL, "-6 neigh show"), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "-4 addr show scope link"), 0);  /* no 169.254.172.1 left */
}

/* The "addr_info" entry of local on dev in ns, or NULL. */
static const cJSON *addr_info(const cJSON *list, const char *local) {
        const cJSON *ai, *l = cJSON_GetArrayItem(list, 0);
        cJSON_ArrayForEach(ai, cJSON_GetObjectItem(l, "addr_info"))
                if (strcmp(jstr(ai, "local"), local) == 0)
                        return ai;
        return NULL;
}

/* Short DAD on dev of ns (NULL: here) while ADD ran, and its own
 * retrans_time_ms put back afterwards (lo's: both came from the
 * namespace's default). */
static void assert_dad_settings(const char *ns, const char *dev) {
        char pre[128] = "";
        if (ns)
                snprintf(pre, sizeof pre, "nsenter --net=%s ", ns);
        ck_assert(conf6_is(ns, dev, "router_solicitation_delay", "0"));
        ck_assert_int_eq(testlib_sh("test \"$(%scat /proc/sys/net/ipv6/neigh/%s/retrans_time_ms)\" = "
                                    "\"$(%scat /proc/sys/net/ipv6/neigh/lo/retrans_time_ms)\"", pre, dev, pre), 0);
}

static void assert_v6_pod(const char *ns, const struct dp_links *l) {
        ck_assert(conf6_is(ns, "eth0", "disable_ipv6", "0"));
        ck_assert(conf6_is(ns, "lo", "disable_ipv6", "0"));
        assert_dad_settings(ns, "eth0");
        cJSON *pa = testlib_ipj(ns, "-6 addr show dev eth0");
        const cJSON *ai = addr_info(pa, V6_IP);
        ck_assert_ptr_nonnull(ai);
        ck_assert_int_eq(jint(ai, "prefixlen"), 128);
        ck_assert_msg(!cJSON_HasObjectItem(ai, "nodad"), "DAD must be kept");
        char *printed = cJSON_PrintUnformatted(pa);
        /* ADD returned only once DAD was done, for every address of eth0 */
        ck_assert_msg(!strstr(printed, "tentative") && !strstr(printed, "dadfailed"), "%s", printed);
        free(printed);
        cJSON_Delete(pa);
        cJSON *pr = testlib_ipj(ns, "-6 route show");
        ck_assert_int_eq(testlib_json_count(pr, 2, "dst", "fe80::1", "dev", "eth0"), 1);
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "default", "gateway", "fe80::1", "dev", "eth0"), 1);
        cJSON_Delete(pr);
        cJSON *pn = testlib_ipj(ns, "-6 neigh show");
        ck_assert_int_eq(testlib_json_count(pn, 3, "dst", "fe80::1", "dev", "eth0", "lladdr", l->host_mac), 1);
        printed = cJSON_PrintUnformatted(pn);
        ck_assert_ptr_nonnull(strstr(printed, "PERMANENT"));
        free(printed);
        cJSON_Delete(pn);
}

static void assert_v6_host(const struct dp_links *l) {
        ck_assert(conf6_is(NULL, l->host_ifname, "accept_ra", "0"));
        ck_assert(conf6_is(NULL, l->host_ifname, "accept_redirects", "1"));
        ck_assert(conf6_is(NULL, l->host_ifname, "forwarding", "0"));
        assert_dad_settings(NULL, l->host_ifname);
        /* the host veth's link-local, from which the node resolves the pod, is valid */
        cJSON *ha = testlib_ipj(NULL, "-6 addr show dev %s", l->host_ifname);
        char *printed = cJSON_PrintUnformatted(ha);
        ck_assert_msg(strstr(printed, "fe80::") && !strstr(printed, "tentative"), "%s", printed);
        free(printed);
        cJSON_Delete(ha);
        cJSON *routes = testlib_ipj(NULL, "-6 route show table main");
        ck_assert_int_eq(testlib_json_count(routes, 2, "dst", V6_IP, "dev", l->host_ifname), 1);
        cJSON_Delete(routes);
        cJSON *rules = testlib_ipj(NULL, "-6 rule show");
        ck_assert_int_eq(testlib_json_count(rules, 3, "priority", "512", "dst", V6_IP, "table", "main"), 1);
        ck_assert_int_eq(testlib_json_count(rules, 1, "priority", "1536"), 0);   /* no from-rule */
        ck_assert_int_eq(testlib_ipj_size(NULL, "-6 rule show"), 3);
        cJSON_Delete(rules);
}

static void assert_egress(const char *ns, const char *id, const struct dp_links *l) {
        char alias[PROTO_VETH_ALIAS_MAX];
        cJSON *hl = testlib_ipj(NULL, "-d link show %s", l->egress_host_ifname);
        const cJSON *h = cJSON_GetArrayItem(hl, 0);
        ck_assert_ptr_nonnull(h);
        ck_assert(has_flag(h, "UP"));
        ck_assert_str_eq(jstr(h, "address"), l->egress_host_mac);
        dp_egress_alias(id, "eth0", alias);
        ck_assert_str_eq(jstr(h, "ifalias"), alias);
        cJSON_Delete(hl);
        cJSON *ha = testlib_ipj(NULL, "-4 addr show dev %s", l->egress_host_ifname);
        const cJSON *gw = addr_info(ha, "169.254.172.1");
        ck_assert_ptr_nonnull(gw);
        ck_assert_int_eq(jint(gw, "prefixlen"), 32);
        ck_assert_str_eq(jstr(gw, "scope"), "link");
        cJSON_Delete(ha);
        cJSON *hr = testlib_ipj(NULL, "-4 route show table main");
        ck_assert_int_eq(testlib_json_count(hr, 3, "dst", V6_EGRESS, "dev", l->egress_host_ifname, "scope", "link"), 1);
        cJSON_Delete(hr);
        cJSON *pl = testlib_ipj(ns, "link show v4if0");
        ck_assert(has_flag(cJSON_GetArrayItem(pl, 0), "UP"));
        ck_assert_str_eq(jstr(cJSON_GetArrayItem(pl, 0), "address"), l->egress_pod_mac);
        cJSON_Delete(pl);
        cJSON *pa = testlib_ipj(ns, "-4 addr show dev v4if0");
        const cJSON *x = addr_info(pa, V6_EGRESS);
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(jint(x, "prefixlen"), 22);
        cJSON_Delete(pa);
        cJSON *pr = testlib_ipj(ns, "-4 route show");
        ck_assert_int_eq(testlib_json_count(pr, 4, "dst", "169.254.172.1", "dev", "v4if0", "scope", "link",
                                            "prefsrc", V6_EGRESS), 1);
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "169.254.172.0/22", "gateway", "169.254.172.1", "dev",
                                            "v4if0"), 1);
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "default", "gateway", "169.254.172.1", "dev", "v4if0"), 1);
        ck_assert_int_eq(cJSON_GetArraySize(pr), 3);            /* the connected /22 route is replaced */
        cJSON_Delete(pr);
}

START_TEST(test_v6_add_makes_every_object) {
        char ns[64], alias[PROTO_VETH_ALIAS_MAX];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        /* a pod namespace whose IPv6 is off: ADD turns it on for eth0 and lo */
        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c 'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && "
                                    "echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6'", ns), 0);
        ck_assert_int_eq(testlib_sh("echo 1 > /proc/sys/net/ipv6/conf/lo/disable_ipv6"), 0);  /* the host's stays */
        struct dp_pod p = pod6_cfg("c0ffee61", V6_IP, V6_EGRESS);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "dp_add: %s", err.text);
        long us = usec_since(&t0);
        fprintf(stderr, "# IPv6 dp_add with egress, DAD included: %ld us\n", us);
        /* usable at once: the node reaches the pod with its first echo request */
        ck_assert_int_eq(testlib_sh("ping -6 -c 1 -W 2 -q %s >/dev/null", V6_IP), 0);
        ck_assert(conf6_is(NULL, "lo", "disable_ipv6", "1"));

        cJSON *hl = testlib_ipj(NULL, "-d link show %s", l.host_ifname);
        const cJSON *h = cJSON_GetArrayItem(hl, 0);
        ck_assert(has_flag(h, "UP"));
        ck_assert_int_eq(jint(h, "mtu"), 1400);
        ck_assert_str_eq(jstr(h, "address"), l.host_mac);
        proto_veth_alias("c0ffee61", "eth0", alias);
        ck_assert_str_eq(jstr(h, "ifalias"), alias);
        cJSON_Delete(hl);
        assert_v6_host(&l);
        assert_v6_pod(ns, &l);
        assert_egress(ns, "c0ffee61", &l);
        ck_assert_str_ne(l.egress_host_ifname, l.host_ifname);
        ck_assert_int_eq(strncmp(l.egress_host_ifname, "eniv", 4), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "-4 rule show"), 3);    /* no IPv4 rule for an IPv6 pod */
        ck_assert_msg(dp_check(ns, &p, &err) == 0, "dp_check after add: %s", err.text);
        assert_home();
}
END_TEST

/* An outside host (namespace out) behind the node's ens5, and a masquerade
 * of the egress range of one family through ens5 (vpc-ipamd's SNAT, played
 * by nft): IPv4, 192.0.2.1 behind 10.0.0.1; IPv6, 2001:db8::1 on the link. */
static void outside_host(char out[static 64], bool v6) {
        const char *fam = v6 ? "ip6" : "ip", *range = v6 ? "fd00::ac:0/118" : "169.254.172.0/22";
        make_pod(out);
        ck_assert_int_eq(testlib_sh("ip link add ens5 type veth peer name o5 netns %s && ip addr add %s dev ens5 && "
                                    "ip link set ens5 up && %s nft add table %s t && "
                                    "nft 'add chain %s t post { type nat hook postrouting priority 100; }' && "
                                    "nft add rule %s t post %s saddr %s oifname ens5 masquerade", out,
                                    v6 ? "2001:db8::10/64 nodad" : "10.0.0.10/24",
                                    v6 ? "" : "ip route add default via 10.0.0.1 dev ens5 &&", fam, fam, fam, fam, range),
                         0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c 'ip link set lo up && %s && ip link set o5 up'", out,
                                    v6 ? "ip addr add 2001:db8::1/64 dev o5 nodad"
                                       : "ip addr add 192.0.2.1/32 dev lo && ip addr add 10.0.0.1/24 dev o5"), 0);
}

/* Two IPv6 pods reach each other through the node (fe80::1 is only a MAC),
 * and one reaches an IPv4-only outside host through its egress veth and a
 * masquerade of 169.254.172.0/22 (vpc-ipamd's SNAT, played by nft here). */
START_TEST(test_v6_pods_traffic) {
        char out[64], ns1[64], ns2[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        ck_assert_int_eq(testlib_sh("command -v ping >/dev/null && command -v nft >/dev/null"), 0);
        outside_host(out, false);
        make_pod(ns1);
        make_pod(ns2);
        struct dp_pod p1 = pod6_cfg("v6a", "2600:1f14:abc:de00::a", "169.254.172.10");
        struct dp_pod p2 = pod6_cfg("v6b", "2600:1f14:abc:de00::b", NULL);
        ck_assert_msg(dp_add(ns1, &p1, &l, &err) == 0, "%s", err.text);
        ck_assert_msg(dp_add(ns2, &p2, &l, &err) == 0, "%s", err.text);
        ck_assert_str_eq(l.egress_host_ifname, "");                     /* none without an egress address */
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip link show v4if0 >/dev/null 2>&1", ns2), 1);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -6 -c 2 -i 0.2 -W 2 -q 2600:1f14:abc:de00::b >/dev/null",
                                    ns1), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -6 -c 1 -W 2 -q 2600:1f14:abc:de00::a >/dev/null", ns2), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -4 -c 2 -i 0.2 -W 2 -q 192.0.2.1 >/dev/null", ns1), 0);
        long rx = rx_packets(out, "o5");
        ck_assert_int_ge(rx, 2);
}
END_TEST

/* A fault hook that runs a shell command before one step (and fails none). */
struct before { enum dp_step at; char cmd[512]; int status; };

static int run_before(enum dp_step step, void *userdata) {
        struct before *b = userdata;
        if (step == b->at)
                b->status = testlib_sh("%s", b->cmd);
        return 0;
}

/* DAD is kept: a duplicate fails ADD at once (the host veth answers for the
 * address), and an address still tentative at the deadline fails it too;
 * both leave nothing behind. */
START_TEST(test_v6_dad_failures) {
        char ns[64], veth[PROTO_IFNAME_MAX + 1];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        struct dp_pod p = pod6_cfg("c0ffee62", V6_IP, V6_EGRESS);
        dp_veth_name("eni", "c0ffee62", "eth0", 0, veth);
        struct before b = { .at = DP_STEP_POD_ADDR, .status = -1 };
        snprintf(b.cmd, sizeof b.cmd, "ip -6 addr add %s/128 dev %s nodad", V6_IP, veth);
        p.fault = run_before;
        p.fault_data = &b;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), -EADDRINUSE);
        ck_assert_int_eq(b.status, 0);
        ck_assert_msg(strstr(err.text, "duplicate"), "%s", err.text);
        ck_assert_int_lt(usec_since(&t0), 8 * 1000 * 1000);           /* not the whole timeout */
        assert_home();
        assert_clean6(ns);
        /* slow DAD (100 probes, DP_DAD_RETRANS_MS apart) against a 300 ms deadline */
        snprintf(b.cmd, sizeof b.cmd, "nsenter --net=%s sh -c 'echo 100 > /proc/sys/net/ipv6/conf/eth0/dad_transmits'",
                 ns);
        p.dad_timeout_ms = 300;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), -ETIMEDOUT);
        long us = usec_since(&t0);
        ck_assert_int_eq(b.status, 0);
        ck_assert_msg(strstr(err.text, "tentative"), "%s", err.text);
        ck_assert_int_ge(us, 300 * 1000);
        /* No upper bound on the time: 100 probes 20 ms apart would have ended DAD in
         * 2 s and ADD would have succeeded, so -ETIMEDOUT alone shows the deadline held. */
        assert_clean6(ns);
        /* and with the default DAD, ADD waits for it and succeeds */
        p.fault = NULL;
        p.dad_timeout_ms = 0;
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "%s", err.text);
        assert_v6_pod(ns, &l);
}
END_TEST

/* The node resolves the pod from the host veth's link-local address, so ADD
 * waits for that one's DAD too, and a duplicate of it fails ADD as well:
 * the pod end gets the host veth's EUI-64 link-local (nodad) while still
 * down, and answers the host veth's probes (three, so that the pod has
 * joined the solicited-node group before the last). */
START_TEST(test_v6_host_link_local_duplicate) {
        char ns[64], veth[PROTO_IFNAME_MAX + 1];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        struct dp_pod p = pod6_cfg("c0ffee64", V6_IP, NULL);
        dp_veth_name("eni", "c0ffee64", "eth0", 0, veth);
        struct before b = { .at = DP_STEP_POD_LINK, .status = -1 };
        snprintf(b.cmd, sizeof b.cmd,
                 "set -e; set -- $(ip -j link show dev %s | sed 's/.*\"address\":\"\\([^\"]*\\)\".*/\\1/' | tr : ' '); "
                 "ll=$(printf 'fe80::%%x:%%02xff:fe%%02x:%%x' $(( (0x$1 ^ 2) << 8 | 0x$2 )) $((0x$3)) $((0x$4)) "
                 "$(( 0x$5 << 8 | 0x$6 ))); nsenter --net=%s ip -6 addr add $ll/64 dev eth0 nodad; "
                 "echo 3 > /proc/sys/net/ipv6/conf/%s/dad_transmits",
                 veth, ns, veth);
        p.fault = run_before;
        p.fault_data = &b;
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), -EADDRINUSE);
        ck_assert_int_eq(b.status, 0);
        ck_assert_msg(strstr(err.text, "duplicate") && strstr(err.text, veth) && strstr(err.text, "fe80::"), "%s",
                      err.text);
        assert_home();
        assert_clean6(ns);
}
END_TEST

/* The pod namespace of the tests below does without DAD (dad_transmits 0):
 * it is tested above, and its wait (the kernel's DAD worker, shared by the
 * whole machine) would slow the many ADDs below under load. */
static void pod_without_dad(const char *ns) {
        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c 'echo 0 > /proc/sys/net/ipv6/conf/default/dad_transmits'",
                                    ns), 0);
}

START_TEST(test_v6_rollback_at_every_step) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        pod_without_dad(ns);
        int failed = 0;
        for (int step = 0; step < _DP_STEP_MAX; step++) {
                struct fault f = { .at = step };
                struct dp_pod p = pod6_cfg("c0ffee63", V6_IP, V6_EGRESS);
                p.fault = fault_at;
                p.fault_data = &f;
                errmsg_clear(&err);
                int r = dp_add(ns, &p, &l, &err);
                if (step == DP_STEP_RULE_FROM) {                /* an IPv6 pod has none */
                        ck_assert_msg(r == 0, "%s", err.text);
                        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
                        assert_clean6(ns);
                        continue;
                }
                ck_assert_int_eq(r, -EIO);
                ck_assert_msg(strstr(err.text, dp_step_name((enum dp_step)step)), "step %d: %s", step, err.text);
                failed++;
                assert_home();
                assert_clean6(ns);
        }
        ck_assert_int_eq(failed, _DP_STEP_MAX - 1);
        struct dp_pod p = pod6_cfg("c0ffee63", V6_IP, V6_EGRESS);
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "add after the failures: %s", err.text);
        ck_assert_int_eq(dp_check(ns, &p, &err), 0);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        assert_clean6(ns);
}
END_TEST

/* The veth is made before the daemon says the pod is IPv6; an egress
 * address for an IPv4 pod, or outside 169.254.172.0/22, is refused. */
START_TEST(test_v6_wiring_in_parts) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        dp_wiring *w = NULL;
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        pod_without_dad(ns);
        struct dp_pod p = pod6_cfg("c0ffee64", NULL, NULL);
        p.mtu = 0;
        ck_assert_int_eq(dp_wiring_open(ns, &p, &w, &err), 0);
        ck_assert_int_eq(dp_wiring_veth(w, &err), 0);
        /* "before up": the host end is up but without carrier until the pod
         * end is, and IPv6 has not touched it (no link-local address yet) */
        char name[PROTO_IFNAME_MAX + 1];
        ck_assert_int_eq(dp_host_veth(&p, NULL, name, &err), 0);
        cJSON *hl = testlib_ipj(NULL, "link show %s", name);
        ck_assert(has_flag(cJSON_GetArrayItem(hl, 0), "NO-CARRIER"));
        cJSON_Delete(hl);
        ck_assert_int_eq(testlib_ipj_size(NULL, "-6 addr show scope link"), 0);
        ck_assert_msg(dp_wiring_finish(w, V6_IP, V6_EGRESS, 254, 9001, &l, &err) == 0, "%s", err.text);
        w = dp_wiring_free(w);
        ck_assert_int_eq(testlib_sh("ip link show %s | grep -q ' mtu 9001 '", l.egress_host_ifname), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip link show v4if0 | grep -q ' mtu 9001 '", ns), 0);
        assert_v6_host(&l);
        p.ip = V6_IP;
        p.egress_ip = V6_EGRESS;
        ck_assert_int_eq(dp_check(ns, &p, &err), 0);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        assert_clean6(ns);
        const char *bad[][2] = { { "10.0.1.5", V6_EGRESS }, { V6_IP, "169.254.171.9" }, { V6_IP, "10.0.0.1" },
                                 { V6_IP, "fd00::1" }, { "2600:1f14:abc:de00:0::5", NULL } };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ck_assert_int_eq(dp_wiring_open(ns, &p, &w, &err), 0);
                ck_assert_int_eq(dp_wiring_veth(w, &err), 0);
                ck_assert_int_eq(dp_wiring_finish(w, bad[i][0], bad[i][1], 254, 0, &l, &err), -EINVAL);
                w = dp_wiring_free(w);
                assert_clean6(ns);
        }
}
END_TEST

START_TEST(test_v6_check_names_each_drift) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        pod_without_dad(ns);
        const struct drift drifts[] = {
                { "pod", "ip -6 addr del " V6_IP "/128 dev eth0", "pod address" },
                { "pod", "ip -6 route del default", "pod default route" },
                { "pod", "ip -6 route del fe80::1 dev eth0", "fe80::1 scope link is missing" },
                { "pod", "ip -6 neigh del fe80::1 dev eth0", "pod neighbour" },
                { "pod", "ip -6 neigh replace fe80::1 dev eth0 lladdr 02:11:22:33:44:55 nud permanent", "pod neighbour" },
                { "host", "ip -6 route del " V6_IP "/128", "host route" },
                { "host", "ip -6 rule del prio 512", "prio 512" },
                { "host", "echo 1 > /proc/sys/net/ipv6/conf/HOSTVETH/accept_ra", "accept_ra" },
                { "host", "echo 1 > /proc/sys/net/ipv6/conf/HOSTVETH/forwarding", "forwarding" },
                { "pod", "ip route del default dev v4if0", "egress default route" },
                { "pod", "ip route del 169.254.172.0/22", "egress route 169.254.172.0/22" },
                { "pod", "ip route del 169.254.172.1 dev v4if0", "egress route 169.254.172.1 scope link" },
                { "pod", "ip addr del " V6_EGRESS "/22 dev v4if0", "egress address" },
                { "pod", "ip link set v4if0 down", "pod interface is down (v4if0)" },
                { "host", "ip addr del 169.254.172.1/32 dev EGRESSVETH", "egress gateway address" },
                { "host", "ip route del " V6_EGRESS "/32", "via the egress veth is missing" },
                { "host", "ip link set EGRESSVETH down", "egress veth is down" },
                { "host", "ip link del EGRESSVETH", "egress veth of" },
        };
        for (size_t i = 0; i < sizeof drifts / sizeof drifts[0]; i++) {
                const struct drift *d = &drifts[i];
                struct dp_pod p = pod6_cfg("c0ffee65", V6_IP, V6_EGRESS);
                ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
                ck_assert_int_eq(dp_check(ns, &p, &err), 0);
                char cmd[256];
                const char *mark = strstr(d->cmd, "HOSTVETH"), *emark = strstr(d->cmd, "EGRESSVETH");
                if (mark)
                        snprintf(cmd, sizeof cmd, "%.*s%s%s", (int)(mark - d->cmd), d->cmd, l.host_ifname, mark + 8);
                else if (emark)
                        snprintf(cmd, sizeof cmd, "%.*s%s%s", (int)(emark - d->cmd), d->cmd, l.egress_host_ifname,
                                 emark + 10);
                else
                        snprintf(cmd, sizeof cmd, "%s", d->cmd);
                if (strcmp(d->ns_side, "pod") == 0)
                        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c '%s'", ns, cmd), 0);
                else
                        ck_assert_int_eq(testlib_sh("%s", cmd), 0);
                errmsg_clear(&err);
                ck_assert_int_eq(dp_check(ns, &p, &err), -EUCLEAN);
                ck_assert_msg(strstr(err.text, d->expect), "after \"%s\": \"%s\" lacks \"%s\"", cmd, err.text,
                              d->expect);
                ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
                assert_clean6(ns);
        }
}
END_TEST

/* DEL takes both veths and the rule; without the address (no daemon, no
 * prevResult) it still takes both veths; after the namespace is gone it
 * takes the rule; and it is idempotent. */
START_TEST(test_v6_del_leaves_nothing) {
        char ns[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        int fd = make_pod(ns);
        pod_without_dad(ns);
        struct dp_pod p = pod6_cfg("c0ffee66", V6_IP, V6_EGRESS);
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        ck_assert_msg(dp_del(&p, NULL, &err) == 0, "%s", err.text);
        assert_clean6(ns);
        ck_assert_int_eq(dp_del(&p, l.host_ifname, &err), 0);
        /* no address known: the veths go, the rule waits for GC */
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        struct dp_pod noip = pod6_cfg("c0ffee66", "", NULL);
        ck_assert_int_eq(dp_del(&noip, NULL, &err), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "link show"), 1);
        ck_assert_int_eq(testlib_ipj_size(ns, "link show"), 1);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        assert_clean6(ns);
        /* the namespace is gone (and both veths with it): the rule goes */
        ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
        close(fd);
        for (int i = 0; i < 300 && testlib_ipj_size(NULL, "link show") > 1; i++)
                usleep(10000);
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        assert_clean6(NULL);
}
END_TEST

START_TEST(test_v6_gc) {
        char ns1[64], ns2[64], foreign[PROTO_IFNAME_MAX + 1];
        struct dp_links l1, l2;
        struct errmsg err = { 0 };
        unsigned removed = 0;
        enter_fresh_host();
        ipv6_node();
        make_pod(ns1);
        make_pod(ns2);
        pod_without_dad(ns1);
        pod_without_dad(ns2);
        struct dp_pod keep = pod6_cfg("keep6", "2600:1f14:abc:de00::20", "169.254.172.20");
        struct dp_pod drop = pod6_cfg("drop6", "2600:1f14:abc:de00::21", "169.254.172.21");
        ck_assert_int_eq(dp_add(ns1, &keep, &l1, &err), 0);
        ck_assert_int_eq(dp_add(ns2, &drop, &l2, &err), 0);
        dp_egress_veth_name("eni", "other", "eth0", 0, foreign);
        ck_assert_int_eq(testlib_sh("ip link add %s type veth peer name x0", foreign), 0);   /* no alias: not ours */
        struct proto_attachment valid[] = { { "keep6", "eth0" } };
        char released[1][PROTO_IP_MAX] = { "2600:1f14:abc:de00::21" };
        ck_assert_msg(dp_gc("eni", valid, 1, released, 1, &removed, &err) == 0, "dp_gc: %s", err.text);
        ck_assert_uint_eq(removed, 3);          /* two veths, one rule */
        ck_assert_int_eq(dp_check(ns1, &keep, &err), 0);
        ck_assert_int_eq(testlib_ipj_size(ns2, "link show"), 1);
        ck_assert_int_eq(testlib_sh("ip link show %s >/dev/null", foreign), 0);
        cJSON *rules = testlib_ipj(NULL, "-6 rule show");
        ck_assert_int_eq(testlib_json_count(rules, 1, "dst", "2600:1f14:abc:de00::21"), 0);
        ck_assert_int_eq(testlib_json_count(rules, 1, "dst", "2600:1f14:abc:de00::20"), 1);
        cJSON_Delete(rules);
        /* nothing listed: keep6's two go as well */
        ck_assert_int_eq(dp_gc("eni", NULL, 0, NULL, 0, &removed, &err), 0);
        ck_assert_uint_eq(removed, 2);
        ck_assert_int_eq(testlib_ipj_size(ns1, "link show"), 1);
}
END_TEST

/* --- IPv4 pods and their IPv6 egress (ENABLE_V6_EGRESS) ------------------------------ */

#define V4_IP "10.0.1.5"
#define V4_EGRESS6 "fd00::ac:9"

/* v6if0 as aws-node's egress-cni wires it: the ULA (no DAD), routes via the host end's link-local. */
static void assert_v6_egress(const char *ns, const struct dp_links *l) {
        ck_assert_str_eq(l->egress_pod_ifname, "v6if0");
        ck_assert_int_eq(strncmp(l->egress_gateway, "fe80::", 6), 0);
        ck_assert(conf6_is(ns, "eth0", "disable_ipv6", "1"));           /* aws-node: IPv6 off on eth0 */
        cJSON *ha = testlib_ipj(NULL, "-6 addr show dev %s", l->egress_host_ifname);
        const cJSON *ll = addr_info(ha, l->egress_gateway);
        ck_assert_msg(ll && !cJSON_HasObjectItem(ll, "tentative"), "host end's link-local %s", l->egress_gateway);
        cJSON_Delete(ha);
        cJSON *hr = testlib_ipj(NULL, "-6 route show table main");
        ck_assert_int_eq(testlib_json_count(hr, 2, "dst", V4_EGRESS6, "dev", l->egress_host_ifname), 1);
        cJSON_Delete(hr);
        cJSON *pa = testlib_ipj(ns, "-6 addr show dev v6if0");
        const cJSON *x = addr_info(pa, V4_EGRESS6);
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(jint(x, "prefixlen"), 118);
        char *printed = cJSON_PrintUnformatted(pa);
        ck_assert_msg(!strstr(printed, "tentative"), "%s", printed);
        free(printed);
        cJSON_Delete(pa);
        cJSON *pr = testlib_ipj(ns, "-6 route show");
        ck_assert_int_eq(testlib_json_count(pr, 2, "dst", l->egress_gateway, "dev", "v6if0"), 1);
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "fd00::ac:0/118", "gateway", l->egress_gateway, "dev",
                                            "v6if0"), 1);
        ck_assert_int_eq(testlib_json_count(pr, 3, "dst", "default", "gateway", l->egress_gateway, "dev", "v6if0"), 1);
        cJSON_Delete(pr);
}

/* ADD wires v6if0 and the pod reaches an IPv6 host at once through the
 * node (ip6 masquerade of the range, vpc-ipamd's SNAT played by nft here);
 * CHECK names each drift; DEL leaves no link, address or route. */
START_TEST(test_v4_pod_v6_egress) {
        char ns[64], out[64];
        struct dp_links l;
        struct errmsg err = { 0 };
        enter_fresh_host();
        ipv6_node();
        outside_host(out, true);
        make_pod(ns);
        struct dp_pod p = pod6_cfg("c0ffee71", V4_IP, V4_EGRESS6);
        ck_assert_msg(dp_add(ns, &p, &l, &err) == 0, "dp_add: %s", err.text);
        assert_v6_egress(ns, &l);
        ck_assert_msg(dp_check(ns, &p, &err) == 0, "dp_check after add: %s", err.text);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ping -6 -c 2 -i 0.2 -W 2 -q 2001:db8::1 >/dev/null", ns), 0);
        ck_assert_int_ge(rx_packets(out, "o5"), 2);
        /* an egress address of the pod's own family, or outside the range, is refused */
        char ns2[64];
        make_pod(ns2);
        struct dp_pod bad = pod6_cfg("c0ffee72", "10.0.1.6", "fd00::ad:9");
        ck_assert_int_eq(dp_add(ns2, &bad, &l, &err), -EINVAL);
        bad.egress_ip = "169.254.172.9";
        ck_assert_int_eq(dp_add(ns2, &bad, &l, &err), -EINVAL);
        ck_assert_int_eq(testlib_ipj_size(ns2, "link show"), 1);                /* rolled back */
        const struct drift drifts[] = {
                { "pod", "ip -6 addr del " V4_EGRESS6 "/118 dev v6if0", "egress address" },
                { "pod", "ip -6 route del default dev v6if0", "egress default route" },
                { "pod", "ip -6 route del fd00::ac:0/118", "egress route fd00::ac:0/118" },
                { "pod", "ip link set v6if0 down", "pod interface is down (v6if0)" },
                { "host", "ip -6 route del " V4_EGRESS6 "/128", "via the egress veth is missing" },
                { "host", "ip link del EGRESSVETH", "egress veth of" },
        };
        ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
        for (size_t i = 0; i < sizeof drifts / sizeof drifts[0]; i++) {
                const struct drift *d = &drifts[i];
                char cmd[256];
                ck_assert_int_eq(dp_add(ns, &p, &l, &err), 0);
                const char *mark = strstr(d->cmd, "EGRESSVETH");
                if (mark)
                        snprintf(cmd, sizeof cmd, "%.*s%s%s", (int)(mark - d->cmd), d->cmd, l.egress_host_ifname,
                                 mark + 10);
                else
                        snprintf(cmd, sizeof cmd, "%s", d->cmd);
                ck_assert_int_eq(testlib_sh(strcmp(d->ns_side, "pod") == 0 ? "nsenter --net=%s sh -c '%s'" : "%.0s%s",
                                            ns, cmd), 0);
                errmsg_clear(&err);
                ck_assert_int_eq(dp_check(ns, &p, &err), -EUCLEAN);
                ck_assert_msg(strstr(err.text, d->expect), "after \"%s\": \"%s\" lacks \"%s\"", cmd, err.text,
                              d->expect);
                ck_assert_int_eq(dp_del(&p, NULL, &err), 0);
                ck_assert_int_eq(testlib_ipj_size(ns, "link show"), 1);         /* lo */
                ck_assert_int_eq(testlib_ipj_size(NULL, "link show"), 2);       /* lo, ens5 */
                cJSON *hr = testlib_ipj(NULL, "-6 route show table main");
                ck_assert_int_eq(testlib_json_count(hr, 1, "dst", V4_EGRESS6), 0);
                cJSON_Delete(hr);
        }
        assert_home();
}
END_TEST

int main(void) {
        Suite *s = suite_create("dataplane");
        TCase *tc = tcase_create("netns");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_add_makes_every_object);
        tcase_add_test(tc, test_netns_refusals_stay_home);
        tcase_add_test(tc, test_main_table_has_no_from_rule);
        tcase_add_test(tc, test_del_removes_everything_and_is_idempotent);
        tcase_add_test(tc, test_del_after_netns_is_gone);
        tcase_add_test(tc, test_veth_taken_down_by_del);
        tcase_add_test(tc, test_rollback_at_every_step);
        tcase_add_test(tc, test_wiring_in_parts);
        tcase_add_test(tc, test_interface_already_in_pod);
        tcase_add_test(tc, test_name_clash_takes_alternate);
        tcase_add_test(tc, test_stale_own_veth_is_replaced);
        tcase_add_test(tc, test_check_names_each_drift);
        tcase_add_test(tc, test_gc_removes_only_the_released);
        tcase_add_test(tc, test_two_pods_ping_each_other);
        tcase_add_test(tc, test_pod_traffic_leaves_through_its_eni);
        tcase_add_test(tc, test_latency);
        tcase_add_test(tc, test_v6_add_makes_every_object);
        tcase_add_test(tc, test_v6_pods_traffic);
        tcase_add_test(tc, test_v6_dad_failures);
        tcase_add_test(tc, test_v6_host_link_local_duplicate);
        tcase_add_test(tc, test_v6_rollback_at_every_step);
        tcase_add_test(tc, test_v6_wiring_in_parts);
        tcase_add_test(tc, test_v6_check_names_each_drift);
        tcase_add_test(tc, test_v6_del_leaves_nothing);
        tcase_add_test(tc, test_v6_gc);
        tcase_add_test(tc, test_v4_pod_v6_egress);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

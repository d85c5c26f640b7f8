/*
 * test-hostnet: the daemon's host-side ENI setup against the real kernel.
 *
 * Every case runs in Check's forked child, which first unshares a fresh
 * network namespace — the "node" — so the machine's own namespace is never
 * touched. ENIs are veth pairs whose peer ends sit in a second namespace, the
 * "VPC", made with unshare() too and held only by a file descriptor
 * (addressed as /proc/<pid>/fd/<n>): both vanish when the case's process
 * exits, whatever happens, so nothing needs tearing down and `ip netns list`
 * never sees them. IPv6 is disabled in the node so that no address
 * autoconfiguration changes state behind the tests' back.
 *
 * The kernel state is read back with `ip -j` (tests may exec ip; hostnet
 * never does), so the checks share no code with what they check.
 * Idempotency is checked twice over: the text of `ip` dumps before and after
 * a second run, and a netlink monitor that must see no event during it.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cjson/cJSON.h>

#include "hostnet.h"
#include "testlib.h"

#define MAC0 "0a:00:00:00:00:10"        /* the primary ENI, eth0 */
#define MAC1 "0a:00:00:00:01:10"        /* a secondary ENI, eth1, device 1 */
#define MAC2 "0a:00:00:00:02:10"        /* another, eth2, device 2 */

static char vpc[64];                    /* the VPC namespace, as a path */

/* --- namespaces and commands ------------------------------------------------------- */

static void write_sysctl(const char *path, const char *value) {
        FILE *f = fopen(path, "w");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        fputs(value, f);
        ck_assert_int_eq(fclose(f), 0);
}

/* The calling process moves into a fresh "node" namespace (lo up, no IPv6)
 * and creates the "VPC" namespace beside it. */
static void enter_node(void) {
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
        int node = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(node, 0);
        write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
        write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
        ck_assert_int_eq(testlib_sh("ip link set lo up"), 0);
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        int fd = open("/proc/thread-self/ns/net", O_RDONLY);    /* kept open: it holds the VPC */
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setns(node, CLONE_NEWNET), 0);
        close(node);
        snprintf(vpc, sizeof vpc, "/proc/%d/fd/%d", getpid(), fd);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip link set lo up", vpc), 0);
}

/* An ENI: node link name with mac, its peer `peer` in the VPC, both up unless told. */
static void add_eni(const char *name, const char *mac, const char *peer) {
        ck_assert_int_eq(testlib_sh("ip link add %s address %s type veth peer name %s netns %s", name, mac, peer, vpc), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip link set %s up", vpc, peer), 0);
}

static hostnet *open_h(void) {
        hostnet *h = NULL;
        struct errmsg err = { 0 };
        int r = hostnet_open(&h, &err);
        ck_assert_msg(r == 0, "hostnet_open: %s", errmsg_text(&err, r));
        return h;
}

/* testlib_json_count() over the output of `ip -j <args>`. */
static int ipj_count(const char *args, int npairs, ...) {
        cJSON *o = testlib_ipj(NULL, "%s", args);
        va_list ap;
        va_start(ap, npairs);
        int n = testlib_json_vcount(o, npairs, ap);
        va_end(ap);
        cJSON_Delete(o);
        return n;
}

static cJSON *link_json(const char *name) {
        cJSON *l = testlib_ipj(NULL, "link show dev %s", name);
        ck_assert_int_eq(cJSON_GetArraySize(l), 1);
        return l;
}

static int link_mtu(const char *name) {
        cJSON *l = link_json(name);
        int mtu = cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "mtu")->valueint;
        cJSON_Delete(l);
        return mtu;
}

static bool link_up(const char *name) {
        cJSON *l = link_json(name);
        bool up = false;
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "flags"))
                up = up || strcmp(f->valuestring, "UP") == 0;
        cJSON_Delete(l);
        return up;
}

static long tx_packets(const char *name) {
        cJSON *l = testlib_ipj(NULL, "-s link show dev %s", name);
        const cJSON *tx = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "stats64"), "tx");
        long n = (long)cJSON_GetObjectItem(tx, "packets")->valuedouble;
        cJSON_Delete(l);
        return n;
}

/* --- the ENIs of the cases ------------------------------------------------------------ */

static struct hostnet_eni primary(void) {
        return (struct hostnet_eni){ .mac = MAC0, .is_primary = true, .route_table = hostnet_route_table(0, 0),
                                     .mtu = 9001 };
}

/* route_table left 0: derived from the device index (card 0: device + 1). */
static struct hostnet_eni secondary(const char *mac, unsigned device, const char *ip, const char *cidr) {
        return (struct hostnet_eni){ .mac = mac, .device_index = device, .primary_ip = ip, .subnet_cidr = cidr,
                                     .mtu = 9001 };
}

static void setup_ok(hostnet *h, const struct hostnet_eni *e) {
        struct errmsg err = { 0 };
        int r = hostnet_setup_eni(h, e, &err);
        ck_assert_msg(r == 0, "setup %s: %s", e->mac, errmsg_text(&err, r));
}

/* What a secondary ENI eth1 at 10.0.1.10 in 10.0.1.0/24, table 2 must show. */
static void assert_secondary(const char *dev, const char *ip, const char *subnet, const char *gw, const char *table) {
        char args[128];
        ck_assert(link_up(dev));
        ck_assert_int_eq(link_mtu(dev), 9001);
        snprintf(args, sizeof args, "-4 addr show dev %s scope global", dev);
        cJSON *a = testlib_ipj(NULL, "%s", args);
        const cJSON *info = cJSON_GetObjectItem(cJSON_GetArrayItem(a, 0), "addr_info");
        ck_assert_int_eq(cJSON_GetArraySize(info), 1);
        ck_assert_int_eq(testlib_json_count(info, 2, "local", ip, "prefixlen", strchr(subnet, '/') + 1), 1);
        cJSON_Delete(a);
        snprintf(args, sizeof args, "route show table %s", table);
        ck_assert_int_eq(testlib_ipj_size(NULL, args), 2);
        ck_assert_int_eq(ipj_count(args, 3, "dst", gw, "dev", dev, "scope", "link"), 1);
        ck_assert_int_eq(ipj_count(args, 3, "dst", "default", "gateway", gw, "dev", dev), 1);
        ck_assert_int_eq(ipj_count("route show table main", 1, "dst", subnet), 0);
        ck_assert_int_eq(ipj_count("rule show", 4, "priority", "32765", "src", ip, "table", table, "fwmark", ""), 1);
}

/* --- cases ------------------------------------------------------------------------------ */

START_TEST(test_route_table_formula) {
        ck_assert_uint_eq(hostnet_route_table(0, 0), 254);
        ck_assert_uint_eq(hostnet_route_table(0, 1), 2);
        ck_assert_uint_eq(hostnet_route_table(0, 14), 15);
        ck_assert_uint_eq(hostnet_route_table(1, 0), 10100);
        ck_assert_uint_eq(hostnet_route_table(2, 3), 10203);
}
END_TEST

START_TEST(test_find_link_by_mac) {
        enter_node();
        /* a bridge that copies the ENI's MAC, listed before it: not the ENI */
        ck_assert_int_eq(testlib_sh("ip link add br0 address %s type bridge", MAC1), 0);
        add_eni("eth1", MAC1, "vpc1");
        add_eni("eth2", MAC2, "vpc2");
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        int ifindex = -1;
        char name[HOSTNET_IFNAMSIZ] = "";
        ck_assert_int_eq(hostnet_find_link_by_mac(h, MAC2, &ifindex, name, &err), 0);
        ck_assert_str_eq(name, "eth2");
        cJSON *l = link_json("eth2");
        ck_assert_int_eq(ifindex, cJSON_GetObjectItem(cJSON_GetArrayItem(l, 0), "ifindex")->valueint);
        cJSON_Delete(l);
        ck_assert_int_eq(hostnet_find_link_by_mac(h, "0A:00:00:00:01:10", &ifindex, name, &err), 0);
        ck_assert_str_eq(name, "eth1");
        hostnet_free(h);
}
END_TEST

/* Whether a process is blocked in poll(2) now (its first thread, as /proc says). */
static bool in_poll(pid_t pid) {
        char path[64];
        long nr = -1;
        snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return false;
        bool got = fscanf(f, "%ld", &nr) == 1;
        fclose(f);
#ifdef SYS_poll
        if (got && nr == SYS_poll)
                return true;
#endif
        return got && nr == SYS_ppoll;
}

/* A link that appears while we wait (an attach completing) is found as soon
 * as the kernel announces it; one that never comes times out, named. */
START_TEST(test_wait_link_by_mac) {
        enter_node();
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        int ifindex = -1;
        char name[HOSTNET_IFNAMSIZ] = "";
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                /* the link comes once the parent waits for it (blocked in poll), not before */
                int i = 0;
                for (; i < 2000 && !in_poll(getppid()); i++)
                        usleep(5000);
                if (i == 2000)
                        _exit(2);
                _exit(testlib_sh("ip link add eth1 address %s type veth peer name vpc1 netns %s", MAC1, vpc) == 0 ? 0 : 1);
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = hostnet_wait_link_by_mac(h, MAC1, 20000, &ifindex, name, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_msg(t1.tv_sec - t0.tv_sec < 15, "woken by the timeout, not by the link's arrival");
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 2, "the wait never blocked in poll(2)");
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ck_assert_msg(r == 0, "%s", errmsg_text(&err, r));
        ck_assert_str_eq(name, "eth1");
        ck_assert_int_eq(hostnet_wait_link_by_mac(h, MAC1, 0, &ifindex, name, &err), 0);    /* already there */
        ck_assert_int_eq(hostnet_wait_link_by_mac(h, MAC2, 200, &ifindex, name, &err), -ETIMEDOUT);
        ck_assert_msg(strstr(err.text, MAC2) && strstr(err.text, "200 ms"), "message: %s", err.text);
        ck_assert_int_eq(hostnet_wait_link_by_mac(h, "nonsense", 200, &ifindex, name, &err), -EINVAL);
        hostnet_free(h);
}
END_TEST

START_TEST(test_unknown_and_bad_mac) {
        enter_node();
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        int ifindex = 77;
        char name[HOSTNET_IFNAMSIZ] = "untouched";
        ck_assert_int_eq(hostnet_find_link_by_mac(h, MAC1, &ifindex, name, &err), -ENOENT);
        ck_assert_msg(strstr(err.text, MAC1) && strstr(err.text, "attached"), "message: %s", err.text);
        ck_assert_int_eq(ifindex, 77);
        ck_assert_str_eq(name, "untouched");
        struct hostnet_eni e = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        ck_assert_int_eq(hostnet_setup_eni(h, &e, &err), -ENOENT);
        ck_assert_msg(strstr(err.text, MAC1) != NULL, "message: %s", err.text);
        const char *bad[] = { "0a:00:00:00:01", "0a-00-00-00-01-10", "0a:00:00:00:01:1g", "0a:00:00:00:01:10:", "" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                ck_assert_int_eq(hostnet_find_link_by_mac(h, bad[i], &ifindex, name, &err), -EINVAL);
                ck_assert_msg(strstr(err.text, "is not of the form") != NULL, "message: %s", err.text);
        }
        hostnet_free(h);
}
END_TEST

START_TEST(test_invalid_descriptions_change_nothing) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        struct { const char *ip, *cidr; uint32_t table; unsigned mtu; const char *says; } bad[] = {
                { "10.0.1", "10.0.1.0/24", 2, 9001, "not an IPv4 address" },
                { "10.0.2.10", "10.0.1.0/24", 2, 9001, "not a host address" },
                { "10.0.1.1", "10.0.1.0/24", 2, 9001, "not a host address" },
                { "10.0.1.0", "10.0.1.0/24", 2, 9001, "not a host address" },
                { "10.0.1.10", "10.0.1.7/24", 2, 9001, "without host bits" },
                { "10.0.1.10", "10.0.1.0/31", 2, 9001, "without host bits" },
                { "10.0.1.10", "10.0.1.0", 2, 9001, "without host bits" },
                { "10.0.1.10", "10.0.1.0/24", 254, 9001, "reserved" },
                { "10.0.1.10", "10.0.1.0/24", 255, 9001, "reserved" },
                { "10.0.1.10", "10.0.1.0/24", 2, 40, "MTU" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct hostnet_eni e = secondary(MAC1, 1, bad[i].ip, bad[i].cidr);
                e.route_table = bad[i].table;
                e.mtu = bad[i].mtu;
                ck_assert_int_eq(hostnet_setup_eni(h, &e, &err), -EINVAL);
                ck_assert_msg(strstr(err.text, bad[i].says) && strstr(err.text, MAC1), "case %zu: %s", i, err.text);
        }
        struct hostnet_eni dev0 = secondary(MAC1, 0, "10.0.1.10", "10.0.1.0/24");     /* derives main */
        ck_assert_int_eq(hostnet_setup_eni(h, &dev0, &err), -EINVAL);
        ck_assert_msg(strstr(err.text, "route table 254 (card 0, device 0) is reserved"), "message: %s", err.text);
        ck_assert_int_eq(hostnet_teardown_eni(h, &dev0, &err), -EINVAL);
        ck_assert(!link_up("eth1"));
        ck_assert_int_eq(link_mtu("eth1"), 1500);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 3);
        ck_assert_int_eq(testlib_ipj_size(NULL, "-4 addr show dev eth1"), 0);
        ck_assert_int_eq(hostnet_remove_pod_routing(h, "10.0.1.300", 2, &err), -EINVAL);
        ck_assert_msg(strstr(err.text, "10.0.1.300") != NULL, "message: %s", err.text);
        hostnet_free(h);
}
END_TEST

START_TEST(test_primary_gets_up_and_mtu_only) {
        enter_node();
        add_eni("eth0", MAC0, "vpc0");
        ck_assert_int_eq(testlib_sh("ip addr add 10.0.0.10/24 dev eth0"), 0);
        hostnet *h = open_h();
        struct hostnet_eni e = primary();
        setup_ok(h, &e);
        ck_assert(link_up("eth0"));
        ck_assert_int_eq(link_mtu("eth0"), 9001);
        ck_assert_int_eq(ipj_count("-4 addr show dev eth0", 1, "ifname", "eth0"), 1);
        ck_assert_int_eq(ipj_count("route show table main", 2, "dst", "10.0.0.0/24", "dev", "eth0"), 1);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 3);
        ck_assert_int_eq(testlib_ipj_size(NULL, "route show table all") - testlib_ipj_size(NULL, "route show table local") -
                                 testlib_ipj_size(NULL, "route show table main"),
                         0);
        hostnet_free(h);
}
END_TEST

START_TEST(test_set_link_mtu) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        int ifindex;
        char name[HOSTNET_IFNAMSIZ];
        ck_assert_int_eq(hostnet_find_link_by_mac(h, MAC1, &ifindex, name, &err), 0);
        ck_assert_int_eq(hostnet_set_link_mtu(h, ifindex, 1400, &err), 0);
        ck_assert_int_eq(link_mtu("eth1"), 1400);
        ck_assert_int_eq(hostnet_set_link_mtu(h, ifindex, 20, &err), -EINVAL);
        ck_assert_int_eq(hostnet_set_link_mtu(h, 9999, 1400, &err), -ENODEV);
        ck_assert_msg(strstr(err.text, "9999") != NULL, "message: %s", err.text);
        ck_assert_int_eq(link_mtu("eth1"), 1400);
        hostnet_free(h);
}
END_TEST

START_TEST(test_secondary_setup) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        add_eni("c1eth0", MAC2, "vpc2");
        hostnet *h = open_h();
        struct hostnet_eni e = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        setup_ok(h, &e);
        assert_secondary("eth1", "10.0.1.10", "10.0.1.0/24", "10.0.1.1", "2");
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 4);
        struct hostnet_eni card1 = secondary(MAC2, 0, "10.0.2.20", "10.0.2.0/24");  /* card 1, device 0 */
        card1.network_card = 1;
        setup_ok(h, &card1);
        assert_secondary("c1eth0", "10.0.2.20", "10.0.2.0/24", "10.0.2.1", "10100");
        assert_secondary("eth1", "10.0.1.10", "10.0.1.0/24", "10.0.1.1", "2");
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 5);
        hostnet_free(h);
}
END_TEST

/* What the OS, a crashed earlier run or a previous owner of the device index
 * left: an address without NOPREFIXROUTE (so a main-table subnet route), a
 * stray global address, a rule of an older ENI into table 2. */
START_TEST(test_secondary_setup_cleans_leftovers) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        ck_assert_int_eq(testlib_sh("ip addr add 10.0.1.10/24 dev eth1 && ip addr add 192.168.5.5/24 dev eth1 && "
                            "ip link set eth1 up && ip rule add from 10.0.1.99 lookup 2 prio 32765 && "
                            "ip rule add from 10.0.1.99 lookup 3 prio 32765 && "
                            "ip rule add from 10.0.1.10 lookup 2 prio 32765 fwmark 0x80"),
                         0);
        ck_assert_int_eq(ipj_count("route show table main", 1, "dst", "10.0.1.0/24"), 1);
        hostnet *h = open_h();
        struct hostnet_eni e = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        setup_ok(h, &e);
        assert_secondary("eth1", "10.0.1.10", "10.0.1.0/24", "10.0.1.1", "2");
        ck_assert_int_eq(ipj_count("route show table main", 1, "dst", "192.168.5.0/24"), 0);
        ck_assert_int_eq(ipj_count("rule show", 2, "src", "10.0.1.99", "table", "2"), 0);
        ck_assert_int_eq(ipj_count("rule show", 2, "src", "10.0.1.99", "table", "3"), 1);
        ck_assert_int_eq(ipj_count("rule show", 2, "src", "10.0.1.10", "fwmark", "0x80"), 1);
        hostnet_free(h);
}
END_TEST

/* The wanted address as a secondary of another address of the subnet: the
 * kernel deletes it with that primary (promote_secondaries off), and setup
 * must notice and add it back. Also the right IP with the wrong mask. */
START_TEST(test_secondary_setup_fixes_addresses) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        add_eni("eth2", MAC2, "vpc2");
        write_sysctl("/proc/sys/net/ipv4/conf/eth1/promote_secondaries", "0");
        ck_assert_int_eq(testlib_sh("ip addr add 10.0.1.5/24 dev eth1 && ip addr add 10.0.1.10/24 dev eth1 && "
                            "ip addr add 10.0.2.20/32 dev eth2"),
                         0);
        hostnet *h = open_h();
        struct hostnet_eni e1 = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        struct hostnet_eni e2 = secondary(MAC2, 2, "10.0.2.20", "10.0.2.0/24");
        setup_ok(h, &e1);
        setup_ok(h, &e2);
        assert_secondary("eth1", "10.0.1.10", "10.0.1.0/24", "10.0.1.1", "2");
        assert_secondary("eth2", "10.0.2.20", "10.0.2.0/24", "10.0.2.1", "3");
        hostnet_free(h);
}
END_TEST

/* A netlink listener on the link, IPv4 address, route and rule groups. */
static int monitor_open(void) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        ck_assert_int_ge(fd, 0);
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
                                  .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE |
                                               RTMGRP_IPV4_RULE };
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        return fd;
}

/* A rule nothing else uses: added and deleted after the run under test, its
 * deletion is the last notification the monitor can get for that run. */
#define SENTINEL_PRIO 31999

static bool is_sentinel(const struct nlmsghdr *m, int type) {
        if (m->nlmsg_type != type || m->nlmsg_len < NLMSG_LENGTH(sizeof(struct fib_rule_hdr)))
                return false;
        int len = (int)m->nlmsg_len - NLMSG_LENGTH(sizeof(struct fib_rule_hdr));
        for (struct rtattr *a = (struct rtattr *)((char *)NLMSG_DATA(m) + NLMSG_ALIGN(sizeof(struct fib_rule_hdr)));
             RTA_OK(a, len); a = RTA_NEXT(a, len))
                if (a->rta_type == FRA_PRIORITY && RTA_PAYLOAD(a) >= sizeof(uint32_t))
                        return *(uint32_t *)RTA_DATA(a) == SENTINEL_PRIO;
        return false;
}

/* The notifications before the sentinel's, counted (types of the first few
 * in what): netlink delivers in order, so once the sentinel's deletion is
 * read, every event of the run before it has been read too. */
static int monitor_drain(int fd, char what[static 128]) {
        ck_assert_int_eq(testlib_sh("ip rule add prio %d lookup %d && ip rule del prio %d", SENTINEL_PRIO,
                                    SENTINEL_PRIO, SENTINEL_PRIO), 0);
        char buf[1 << 16];
        int n = 0;
        size_t len = 0;
        what[0] = '\0';
        for (int i = 0; i < 1000; i++) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ck_assert_msg(poll(&p, 1, 5000) == 1, "no sentinel rule event within 5 s");
                ssize_t got = recv(fd, buf, sizeof buf, 0);
                ck_assert_int_gt(got, 0);
                for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, (size_t)got); m = NLMSG_NEXT(m, got)) {
                        if (is_sentinel(m, RTM_DELRULE))
                                return n;
                        if (is_sentinel(m, RTM_NEWRULE))
                                continue;
                        if (len < 100)
                                len += (size_t)snprintf(what + len, 128 - len, " type=%u", m->nlmsg_type);
                        n++;
                }
        }
        ck_abort_msg("the sentinel rule's deletion never came");
        return -1;
}

/* The node's state as `ip` prints it, with the asynchronous operstate cut out. */
static char *state_dump(void) {
        FILE *p = popen("{ ip -d link show; ip -4 addr show; ip -4 route show table all; ip -4 rule show; } "
                        "| sed -e 's/ state [A-Z]* / /'",
                        "r");
        ck_assert_ptr_nonnull(p);
        size_t cap = 1 << 16;
        char *buf = malloc(cap);
        ck_assert_ptr_nonnull(buf);
        size_t n = fread(buf, 1, cap - 1, p);
        buf[n] = '\0';
        pclose(p);
        ck_assert_uint_gt(n, 0);
        return buf;
}

/* Wait (bounded) until every link's operstate has settled, so that linkwatch
 * does not send a link event during the monitored run. */
static void settle_links(void) {
        for (int i = 0; i < 40; i++) {
                if (testlib_sh("ip -o link show | grep -q 'state \\(UNKNOWN\\|DOWN\\|LOWERLAYERDOWN\\).*link/ether'") != 0)
                        return;
                usleep(50 * 1000);
        }
        ck_abort_msg("links did not come up");
}

START_TEST(test_setup_is_idempotent) {
        enter_node();
        add_eni("eth0", MAC0, "vpc0");
        add_eni("eth1", MAC1, "vpc1");
        add_eni("eth2", MAC2, "vpc2");
        hostnet *h = open_h();
        struct hostnet_eni e[] = { primary(), secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24"),
                                   secondary(MAC2, 2, "10.0.2.20", "10.0.2.0/24") };
        for (size_t i = 0; i < 3; i++)
                setup_ok(h, &e[i]);
        settle_links();
        char *before = state_dump();
        int mon = monitor_open();
        for (size_t i = 0; i < 3; i++)
                setup_ok(h, &e[i]);
        char events[128];
        int n = monitor_drain(mon, events);
        ck_assert_msg(n == 0, "the second run made %d netlink events:%s", n, events);
        char *after = state_dump();
        ck_assert_str_eq(before, after);
        assert_secondary("eth2", "10.0.2.20", "10.0.2.0/24", "10.0.2.1", "3");
        close(mon);
        free(before);
        free(after);
        hostnet_free(h);
}
END_TEST

/* The kernel drops a link's routes when it goes down; a re-run restores
 * them, and thanks to NOPREFIXROUTE no main-table subnet route came back. */
START_TEST(test_setup_repairs_after_link_bounce) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        hostnet *h = open_h();
        struct hostnet_eni e = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        setup_ok(h, &e);
        ck_assert_int_eq(testlib_sh("ip link set eth1 down && ip link set eth1 up"), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "route show table 2"), 0);
        ck_assert_int_eq(ipj_count("route show table main", 1, "dst", "10.0.1.0/24"), 0);
        setup_ok(h, &e);
        assert_secondary("eth1", "10.0.1.10", "10.0.1.0/24", "10.0.1.1", "2");
        hostnet_free(h);
}
END_TEST

/* Lower or raise CAP_NET_ADMIN in this process's effective set (it stays
 * permitted, and `ip` run by system() gets it back: it runs as root). */
/* Setup without CAP_NET_ADMIN: -EPERM, and the message names the first
 * object that needed a change. */
static void setup_fails_at(hostnet *h, const struct hostnet_eni *e, const char *object) {
        struct errmsg err = { 0 };
        testlib_net_admin(false);
        int r = hostnet_setup_eni(h, e, &err);
        testlib_net_admin(true);
        ck_assert_int_eq(r, -EPERM);
        ck_assert_msg(strstr(err.text, e->mac) && strstr(err.text, "(eth1)") && strstr(err.text, object),
                      "wanted \"%s\" in: %s", object, err.text);
}

/* Unprivileged, a run with nothing to change succeeds (so it sends no
 * change at all); each missing piece is named when it cannot be made. */
START_TEST(test_failures_name_the_object) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        struct hostnet_eni e = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        setup_fails_at(h, &e, "cannot bring the link up with MTU 9001: Operation not permitted");
        setup_ok(h, &e);
        testlib_net_admin(false);
        setup_ok(h, &e);
        testlib_net_admin(true);
        struct { const char *breaks, *named; } cases[] = {
                { "ip rule del prio 32765", "cannot add rule from 10.0.1.10/32 lookup 2 prio 32765" },
                { "ip route flush table 2", "cannot add route 10.0.1.1/32 scope link table 2" },
                { "ip route del default table 2", "cannot add route default via 10.0.1.1 table 2" },
                { "ip route add 10.0.1.0/24 dev eth1", "cannot remove the main-table route to its subnet 10.0.1.0/24" },
                { "ip addr flush dev eth1", "cannot make 10.0.1.10/24 its only global address" },
                { "ip link set eth1 mtu 1500", "cannot bring the link up with MTU 9001" },
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                ck_assert_int_eq(testlib_sh("%s", cases[i].breaks), 0);
                setup_fails_at(h, &e, cases[i].named);
                setup_ok(h, &e);
        }
        testlib_net_admin(false);
        int r = hostnet_teardown_eni(h, &e, &err);
        ck_assert_int_eq(r, -EPERM);
        ck_assert_msg(strstr(err.text, "rules lookup 2 prio 32765"), "message: %s", err.text);
        /* deleted without a dump: the kernel refuses before it looks */
        ck_assert_int_eq(hostnet_remove_pod_routing(h, "10.0.1.10", 2, &err), -EPERM);
        ck_assert_msg(strstr(err.text, "pod 10.0.1.10: cannot remove host route 10.0.1.10/32"), "message: %s", err.text);
        testlib_net_admin(true);
        hostnet_free(h);
}
END_TEST

START_TEST(test_teardown) {
        enter_node();
        add_eni("eth1", MAC1, "vpc1");
        add_eni("eth2", MAC2, "vpc2");
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        struct hostnet_eni e1 = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        struct hostnet_eni e2 = secondary(MAC2, 2, "10.0.2.20", "10.0.2.0/24");
        setup_ok(h, &e1);
        setup_ok(h, &e2);
        ck_assert_int_eq(hostnet_teardown_eni(h, &e1, &err), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "route show table 2"), 0);
        ck_assert_int_eq(ipj_count("rule show", 1, "table", "2"), 0);
        assert_secondary("eth2", "10.0.2.20", "10.0.2.0/24", "10.0.2.1", "3");
        ck_assert_int_eq(hostnet_teardown_eni(h, &e1, &err), 0);          /* again: nothing to do */
        ck_assert_int_eq(testlib_sh("ip link del eth2"), 0);                        /* detached first */
        ck_assert_int_eq(hostnet_teardown_eni(h, &e2, &err), 0);
        ck_assert_int_eq(ipj_count("rule show", 1, "table", "3"), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "route show table 3"), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 3);
        struct hostnet_eni p = primary();
        ck_assert_int_eq(hostnet_teardown_eni(h, &p, &err), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 3);
        hostnet_free(h);
}
END_TEST

START_TEST(test_list_links) {
        enter_node();
        add_eni("enia1", "0a:00:00:00:0a:01", "pa1");
        add_eni("enib2", "0a:00:00:00:0a:02", "pa2");
        add_eni("other", "0a:00:00:00:0a:03", "pa3");
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        char (*names)[HOSTNET_IFNAMSIZ] = NULL;
        size_t n = 99;
        ck_assert_int_eq(hostnet_list_links(h, "eni", &names, &n, &err), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(names[0], "enia1");
        ck_assert_str_eq(names[1], "enib2");
        free(names);
        ck_assert_int_eq(hostnet_list_links(h, "", &names, &n, &err), 0);
        ck_assert_uint_eq(n, 4);
        ck_assert_str_eq(names[0], "lo");
        free(names);
        ck_assert_int_eq(hostnet_list_links(h, "zzz", &names, &n, &err), 0);
        ck_assert_uint_eq(n, 0);
        free(names);
        hostnet_free(h);
}
END_TEST

/* Two pods' host routing as the plugin leaves it; one is removed. */
START_TEST(test_remove_pod_routing) {
        enter_node();
        add_eni("enipod1", "0a:00:00:00:0b:01", "p1");
        add_eni("enipod2", "0a:00:00:00:0b:02", "p2");
        ck_assert_int_eq(testlib_sh("ip link set enipod1 up && ip link set enipod2 up && "
                            "ip route add 10.0.1.20/32 dev enipod1 scope link && "
                            "ip route add 10.0.1.20/32 dev enipod2 metric 7 scope global && "
                            "ip route add 10.0.1.21/32 dev enipod2 scope link && "
                            "ip rule add to 10.0.1.20 lookup main prio 512 && "
                            "ip rule add from 10.0.1.20 lookup 2 prio 1536 && "
                            "ip rule add to 10.0.1.21 lookup main prio 512 && "
                            "ip rule add from 10.0.1.21 lookup 3 prio 1536"),
                         0);
        hostnet *h = open_h();
        struct errmsg err = { 0 };
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 7);
        int r = hostnet_remove_pod_routing(h, "10.0.1.20", 2, &err);
        ck_assert_msg(r == 0, "%s", errmsg_text(&err, r));
        ck_assert_int_eq(ipj_count("route show table main", 1, "dst", "10.0.1.20"), 0);
        ck_assert_int_eq(ipj_count("rule show", 1, "dst", "10.0.1.20"), 0);
        ck_assert_int_eq(ipj_count("rule show", 1, "src", "10.0.1.20"), 0);
        ck_assert_int_eq(ipj_count("route show table main", 1, "dst", "10.0.1.21"), 1);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 5);
        ck_assert_int_eq(hostnet_remove_pod_routing(h, "10.0.1.20", 2, &err), 0);     /* again: nothing left */
        ck_assert_int_eq(hostnet_remove_pod_routing(h, "10.0.1.21", 0, &err), 0);     /* any table */
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), 3);
        ck_assert_int_eq(testlib_ipj_size(NULL, "route show table main"), 0);
        hostnet_free(h);
}
END_TEST

/*
 * Traffic: the node has a primary ENI eth0 (10.0.0.10, main default via
 * 10.0.0.1) and a secondary eth1 (10.0.1.10, table 2). The VPC namespace
 * plays the gateways .1 of both subnets and another VPC host 10.0.9.9.
 * Packets from 10.0.1.10 must leave through eth1 — to its gateway and beyond
 * it — while packets from 10.0.0.10 keep using eth0.
 */
static void make_vpc_for_traffic(hostnet *h) {
        add_eni("eth0", MAC0, "vpc0");
        add_eni("eth1", MAC1, "vpc1");
        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c 'ip addr add 10.0.0.1/24 dev vpc0 && "
                            "ip addr add 10.0.1.1/24 dev vpc1 && ip addr add 10.0.9.9/32 dev lo'",
                            vpc),
                         0);
        ck_assert_int_eq(testlib_sh("ip addr add 10.0.0.10/24 dev eth0 && ip link set eth0 up && "
                            "ip route add default via 10.0.0.1"),
                         0);
        struct hostnet_eni p = primary(), e = secondary(MAC1, 1, "10.0.1.10", "10.0.1.0/24");
        setup_ok(h, &p);
        setup_ok(h, &e);
}

static void ping_via(const char *src, const char *dst, const char *through, const char *not_through) {
        long t0 = tx_packets(through), n0 = tx_packets(not_through);
        ck_assert_msg(testlib_sh("ping -n -q -c 2 -i 0.2 -W 2 -I %s %s >/dev/null", src, dst) == 0, "ping -I %s %s failed", src,
                      dst);
        ck_assert_msg(tx_packets(through) - t0 >= 2, "ping -I %s %s did not leave through %s", src, dst, through);
        ck_assert_msg(tx_packets(not_through) == n0, "ping -I %s %s used %s", src, dst, not_through);
}

START_TEST(test_traffic_leaves_through_its_eni) {
        enter_node();
        ck_assert_msg(testlib_sh("command -v ping >/dev/null") == 0, "ping is missing: install iputils-ping (scripts/deps)");
        hostnet *h = open_h();
        make_vpc_for_traffic(h);
        ping_via("10.0.1.10", "10.0.1.1", "eth1", "eth0");
        ping_via("10.0.1.10", "10.0.9.9", "eth1", "eth0");
        ping_via("10.0.0.10", "10.0.9.9", "eth0", "eth1");
        hostnet_free(h);
}
END_TEST

/* --- AWS_EXTERNAL_SERVICE_CIDRS: "to CIDR lookup main" at 1535 ------------------------- */

static int service_rules(hostnet *h, int n, ...) {
        const char *cidrs[8];
        va_list ap;
        va_start(ap, n);
        for (int i = 0; i < n; i++)
                cidrs[i] = va_arg(ap, const char *);
        va_end(ap);
        struct errmsg err = { 0 };
        int r = hostnet_sync_service_rules(h, cidrs, (size_t)n, &err);
        ck_assert_msg(r == 0 || r == -EINVAL, "%s", errmsg_text(&err, r));
        return r;
}

/* How many plain "to dst lookup main" rules at 1535. */
static int service_rule_count(const char *dst) {
        return ipj_count("rule show", 3, "priority", "1535", "dst", dst, "table", "main");
}

START_TEST(test_service_rules_follow_the_list) {
        enter_node();
        /* someone else's at the priority: another table, and a fwmark */
        ck_assert_int_eq(testlib_sh("ip rule add to 10.50.0.0/16 lookup 5 prio 1535 && "
                                    "ip rule add to 10.51.0.0/16 fwmark 0x4 lookup main prio 1535 && "
                                    "ip rule add to 10.99.0.0/16 lookup main prio 1535"), 0);
        hostnet *h = open_h();
        int before = testlib_ipj_size(NULL, "rule show");
        ck_assert_int_eq(service_rules(h, 2, "10.100.0.0/16", "172.20.0.0/14"), 0);
        ck_assert_int_eq(service_rule_count("10.100.0.0"), 1);
        ck_assert_int_eq(service_rule_count("172.20.0.0"), 1);
        ck_assert_int_eq(service_rule_count("10.99.0.0"), 0);      /* dropped from the list: gone */
        ck_assert_int_eq(ipj_count("rule show", 2, "priority", "1535", "dst", "10.50.0.0"), 1);
        ck_assert_int_eq(ipj_count("rule show", 2, "priority", "1535", "dst", "10.51.0.0"), 1);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), before + 1);
        /* again: nothing added twice */
        ck_assert_int_eq(service_rules(h, 2, "10.100.0.0/16", "172.20.0.0/14"), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), before + 1);
        /* a bad CIDR: refused before any change */
        ck_assert_int_eq(service_rules(h, 2, "10.7.0.0/16", "10.100.0.1/16"), -EINVAL);
        ck_assert_int_eq(service_rule_count("10.7.0.0"), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), before + 1);
        /* none: ours go, the others' stay */
        ck_assert_int_eq(service_rules(h, 0), 0);
        ck_assert_int_eq(testlib_ipj_size(NULL, "rule show"), before - 1);
        ck_assert_int_eq(ipj_count("rule show", 1, "priority", "1535"), 2);
        hostnet_free(h);
}
END_TEST

/* The output device the kernel picks for dst from src. */
static char *route_dev(const char *dst, const char *src) {
        static char dev[32];
        cJSON *o = testlib_ipj(NULL, "route get %s from %s", dst, src);
        const cJSON *d = cJSON_GetObjectItem(cJSON_GetArrayItem(o, 0), "dev");
        snprintf(dev, sizeof dev, "%s", cJSON_IsString(d) ? d->valuestring : "?");
        cJSON_Delete(o);
        return dev;
}

/* From a secondary ENI's address, a service CIDR is reached through the main table (eth0). */
START_TEST(test_service_rules_route_through_main) {
        enter_node();
        hostnet *h = open_h();
        make_vpc_for_traffic(h);
        ck_assert_str_eq(route_dev("10.0.9.9", "10.0.1.10"), "eth1");
        ck_assert_int_eq(service_rules(h, 1, "10.0.9.0/24"), 0);
        ck_assert_str_eq(route_dev("10.0.9.9", "10.0.1.10"), "eth0");
        ck_assert_str_eq(route_dev("10.0.1.1", "10.0.1.10"), "eth1");     /* the rest as before */
        ck_assert_int_eq(service_rules(h, 0), 0);
        ck_assert_str_eq(route_dev("10.0.9.9", "10.0.1.10"), "eth1");
        hostnet_free(h);
}
END_TEST

int main(void) {
        Suite *s = suite_create("hostnet");
        TCase *tc = tcase_create("netns");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_route_table_formula);
        tcase_add_test(tc, test_find_link_by_mac);
        tcase_add_test(tc, test_wait_link_by_mac);
        tcase_add_test(tc, test_unknown_and_bad_mac);
        tcase_add_test(tc, test_invalid_descriptions_change_nothing);
        tcase_add_test(tc, test_primary_gets_up_and_mtu_only);
        tcase_add_test(tc, test_set_link_mtu);
        tcase_add_test(tc, test_secondary_setup);
        tcase_add_test(tc, test_secondary_setup_cleans_leftovers);
        tcase_add_test(tc, test_secondary_setup_fixes_addresses);
        tcase_add_test(tc, test_setup_is_idempotent);
        tcase_add_test(tc, test_setup_repairs_after_link_bounce);
        tcase_add_test(tc, test_failures_name_the_object);
        tcase_add_test(tc, test_teardown);
        tcase_add_test(tc, test_list_links);
        tcase_add_test(tc, test_remove_pod_routing);
        tcase_add_test(tc, test_traffic_leaves_through_its_eni);
        tcase_add_test(tc, test_service_rules_follow_the_list);
        tcase_add_test(tc, test_service_rules_route_through_main);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

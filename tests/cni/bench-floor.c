/*
 * bench-floor: the floor for scripts/bench-cni — the kernel operations that
 * vpc-cni's ADD and DEL make for one pod, with nothing else: no daemon, no
 * JSON, no result, no checks, no rollback. Exec'd once per pod like a plugin,
 * so its time is exec + libnl + the kernel, the least any plugin can cost.
 *
 *   bench-floor add NETNS_PATH IFNAME HOST_VETH IP   veth pair (peer into the
 *       netns, host end up with a set MAC), pod end up, IP/32,
 *       169.254.1.1 scope link, default via it, permanent neighbour
 *       169.254.1.1 -> host MAC; host route IP/32 dev HOST_VETH; rule
 *       "to IP lookup main" priority 512
 *   bench-floor del HOST_VETH IP                      the rule, then the veth
 *
 * Exit 0, or 1 with the failing step on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <netlink/addr.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#define GW "169.254.1.1"
#define HOST_MAC "02:42:ac:11:00:01"

static int fail(const char *step, int nlerr) {
        fprintf(stderr, "bench-floor: %s: %s\n", step, nl_geterror(nlerr));
        return 1;
}

static struct nl_sock *nl_open(void) {
        struct nl_sock *sk = nl_socket_alloc();
        if (sk && nl_connect(sk, NETLINK_ROUTE) < 0) {
                nl_socket_free(sk);
                return NULL;
        }
        return sk;
}

/* A socket in the namespace of nsfd; the thread returns home afterwards. */
static struct nl_sock *nl_open_in(int nsfd) {
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        struct nl_sock *sk = NULL;
        if (home >= 0 && setns(nsfd, CLONE_NEWNET) == 0)
                sk = nl_open();
        if (home < 0 || setns(home, CLONE_NEWNET) < 0)
                _exit(2);       /* never go on in the wrong namespace */
        close(home);
        return sk;
}

static struct nl_addr *addr(const char *s) {
        struct nl_addr *a = NULL;
        return nl_addr_parse(s, AF_INET, &a) == 0 ? a : NULL;
}

static int route(struct nl_sock *sk, const char *dst, const char *gw, int ifindex, int scope) {
        struct rtnl_route *rt = rtnl_route_alloc();
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        struct nl_addr *d = addr(dst), *g = gw ? addr(gw) : NULL;
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_dst(rt, d);
        rtnl_route_set_table(rt, RT_TABLE_MAIN);
        rtnl_route_set_scope(rt, scope);
        rtnl_route_set_protocol(rt, RTPROT_BOOT);
        rtnl_route_nh_set_ifindex(nh, ifindex);
        if (g)
                rtnl_route_nh_set_gateway(nh, g);
        rtnl_route_add_nexthop(rt, nh);
        int r = rtnl_route_add(sk, rt, NLM_F_EXCL);
        rtnl_route_put(rt);
        nl_addr_put(d);
        if (g)
                nl_addr_put(g);
        return r;
}

static int rule(struct nl_sock *sk, const char *ip, bool add) {
        struct rtnl_rule *ru = rtnl_rule_alloc();
        char dst[32];
        snprintf(dst, sizeof dst, "%s/32", ip);
        struct nl_addr *a = addr(dst);
        rtnl_rule_set_family(ru, AF_INET);
        rtnl_rule_set_prio(ru, 512);
        rtnl_rule_set_dst(ru, a);
        rtnl_rule_set_table(ru, RT_TABLE_MAIN);
        rtnl_rule_set_action(ru, FR_ACT_TO_TBL);
        int r = add ? rtnl_rule_add(sk, ru, NLM_F_EXCL) : rtnl_rule_delete(sk, ru, 0);
        rtnl_rule_put(ru);
        nl_addr_put(a);
        return r;
}

static int veth(struct nl_sock *host, int nsfd, const char *ifname, const char *name) {
        struct rtnl_link *l = rtnl_link_veth_alloc();
        struct rtnl_link *peer = rtnl_link_veth_get_peer(l);
        struct nl_addr *mac = NULL;
        nl_addr_parse(HOST_MAC, AF_LLC, &mac);
        rtnl_link_set_name(l, name);
        rtnl_link_set_addr(l, mac);
        rtnl_link_set_flags(l, IFF_UP);
        rtnl_link_set_name(peer, ifname);
        rtnl_link_set_ns_fd(peer, nsfd);
        int r = rtnl_link_add(host, l, NLM_F_CREATE | NLM_F_EXCL);
        rtnl_link_put(peer);
        rtnl_link_veth_release(l);
        nl_addr_put(mac);
        return r;
}

static int pod_side(struct nl_sock *pod, const char *ifname, const char *ip) {
        struct rtnl_link *pl = NULL, *up = rtnl_link_alloc();
        int r = rtnl_link_get_kernel(pod, 0, ifname, &pl);
        if (r < 0)
                return fail("pod link", r);
        int idx = rtnl_link_get_ifindex(pl);
        rtnl_link_set_flags(up, IFF_UP);
        if ((r = rtnl_link_change(pod, pl, up, 0)) < 0)
                return fail("pod link up", r);
        struct rtnl_addr *a = rtnl_addr_alloc();
        char cidr[32];
        snprintf(cidr, sizeof cidr, "%s/32", ip);
        struct nl_addr *local = addr(cidr), *gw = addr(GW), *ll = NULL;
        rtnl_addr_set_ifindex(a, idx);
        rtnl_addr_set_local(a, local);
        if ((r = rtnl_addr_add(pod, a, NLM_F_EXCL)) < 0)
                return fail("pod address", r);
        if ((r = route(pod, GW "/32", NULL, idx, RT_SCOPE_LINK)) < 0)
                return fail("pod gateway route", r);
        if ((r = route(pod, "0.0.0.0/0", GW, idx, RT_SCOPE_UNIVERSE)) < 0)
                return fail("pod default route", r);
        struct rtnl_neigh *n = rtnl_neigh_alloc();
        nl_addr_parse(HOST_MAC, AF_LLC, &ll);
        rtnl_neigh_set_ifindex(n, idx);
        rtnl_neigh_set_dst(n, gw);
        rtnl_neigh_set_lladdr(n, ll);
        rtnl_neigh_set_state(n, NUD_PERMANENT);
        if ((r = rtnl_neigh_add(pod, n, NLM_F_CREATE | NLM_F_REPLACE)) < 0)
                return fail("pod neighbour", r);
        rtnl_neigh_put(n);
        rtnl_addr_put(a);
        rtnl_link_put(pl);
        rtnl_link_put(up);
        nl_addr_put(local);
        nl_addr_put(gw);
        nl_addr_put(ll);
        return 0;
}

static int cmd_add(const char *netns, const char *ifname, const char *name, const char *ip) {
        int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
        struct nl_sock *host = nl_open(), *pod = nsfd >= 0 ? nl_open_in(nsfd) : NULL;
        if (!host || !pod)
                return fail("netlink sockets", -NLE_FAILURE);
        int r = veth(host, nsfd, ifname, name);
        if (r < 0)
                return fail("veth", r);
        if (pod_side(pod, ifname, ip))
                return 1;
        char dst[32];
        snprintf(dst, sizeof dst, "%s/32", ip);
        if ((r = route(host, dst, NULL, (int)if_nametoindex(name), RT_SCOPE_LINK)) < 0)
                return fail("host route", r);
        if ((r = rule(host, ip, true)) < 0)
                return fail("rule", r);
        return 0;
}

static int cmd_del(const char *name, const char *ip) {
        struct nl_sock *host = nl_open();
        if (!host)
                return fail("netlink socket", -NLE_FAILURE);
        int r = rule(host, ip, false);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND)
                return fail("rule", r);
        struct rtnl_link *l = rtnl_link_alloc();
        rtnl_link_set_name(l, name);
        r = rtnl_link_delete(host, l);
        rtnl_link_put(l);
        return r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NODEV ? fail("veth delete", r) : 0;
}

int main(int argc, char **argv) {
        if (argc == 6 && strcmp(argv[1], "add") == 0)
                return cmd_add(argv[2], argv[3], argv[4], argv[5]);
        if (argc == 4 && strcmp(argv[1], "del") == 0)
                return cmd_del(argv[2], argv[3]);
        fprintf(stderr, "usage: bench-floor add NETNS IFNAME HOST_VETH IP | del HOST_VETH IP\n");
        return 2;
}

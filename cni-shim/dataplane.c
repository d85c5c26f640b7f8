/*
 * dataplane: veth, addresses, routes, neighbour and rules of one pod, with
 * libnl-route-3 (see dataplane.h for the objects).
 *
 * ADD is a list of steps run in order against two netlink sockets, one bound
 * to the host namespace and one to the pod's (netns.h); each completed step
 * sets a bit in ctx->made and rollback() undoes exactly those bits, newest
 * first. Only two kinds of undo exist: rules are deleted one by one (they do
 * not belong to a device) and the veth is deleted, which removes its peer
 * and with them every pod-side object and the host route.
 *
 * The veth is created in one message with both ends' names and MTU and the
 * host end's IFF_UP, the peer placed straight into the pod namespace
 * (IFLA_NET_NS_FD), so the pod side never exists under a host name. The
 * host end's name is a hash of (container id, ifname); on a clash with
 * another pod's veth a salted alternate is tried, and the alias
 * "vpc-cni:<ifname>:<container id>" tells ours from theirs. The kernel
 * ignores IFLA_IFALIAS at creation, so it is the very next message, sent
 * while the daemon still chooses the address: an ADD killed in that wait
 * leaves a veth that DEL and GC recognise (and the namespace takes along).
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>

#include "dataplane.h"
#include "netns.h"
#include "nlerr.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

static void sock_freep(struct nl_sock **p) { if (*p) nl_socket_free(*p); }
static void link_putp(struct rtnl_link **p) { if (*p) rtnl_link_put(*p); }
static void addr_putp(struct nl_addr **p) { if (*p) nl_addr_put(*p); }
static void cache_freep(struct nl_cache **p) { if (*p) nl_cache_free(*p); }
static void closep(int *fd) { if (*fd >= 0) close(*fd); }
static void rtaddr_putp(struct rtnl_addr **p) { if (*p) rtnl_addr_put(*p); }
static void route_putp(struct rtnl_route **p) { if (*p) rtnl_route_put(*p); }
static void neigh_putp(struct rtnl_neigh **p) { if (*p) rtnl_neigh_put(*p); }
static void rule_putp(struct rtnl_rule **p) { if (*p) rtnl_rule_put(*p); }

static const char *const step_names[_DP_STEP_MAX] = {
        [DP_STEP_VETH] = "create veth",
        [DP_STEP_HOST_ALIAS] = "mark host veth",
        [DP_STEP_POD_LINK] = "bring pod interface up",
        [DP_STEP_POD_ADDR] = "add pod address",
        [DP_STEP_POD_GW_ROUTE] = "add pod gateway route",
        [DP_STEP_POD_DEFAULT_ROUTE] = "add pod default route",
        [DP_STEP_POD_NEIGH] = "add pod gateway neighbour",
        [DP_STEP_HOST_ROUTE] = "add host route",
        [DP_STEP_RULE_TO] = "add rule to pod",
        [DP_STEP_RULE_FROM] = "add rule from pod",
};

const char *dp_step_name(enum dp_step step) {
        return (unsigned)step < _DP_STEP_MAX ? step_names[step] : "?";
}

/* --- names ------------------------------------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
        const unsigned char *p = data;
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

int dp_veth_name(const char *prefix, const char *container_id, const char *ifname, unsigned salt,
                 char ret[static PROTO_IFNAME_MAX + 1]) {
        size_t plen = strlen(prefix);
        if (plen == 0 || plen > 4)
                return -EINVAL;
        uint64_t h = 0xcbf29ce484222325ULL;
        h = fnv1a(h, container_id, strlen(container_id) + 1);
        h = fnv1a(h, ifname, strlen(ifname) + 1);
        if (salt)
                h = fnv1a(h, &salt, sizeof salt);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
        snprintf(ret, PROTO_IFNAME_MAX + 1, "%s%.*s", prefix, (int)(PROTO_IFNAME_MAX - plen), hex);
        return 0;
}

/* --- small libnl helpers -------------------------------------------------------- */

static struct nl_addr *ip4(const char *ip, unsigned plen) {
        struct in_addr in;
        if (inet_pton(AF_INET, ip, &in) != 1)
                return NULL;
        struct nl_addr *a = nl_addr_build(AF_INET, &in, sizeof in);
        if (a)
                nl_addr_set_prefixlen(a, (int)plen);
        return a;
}

static bool addr_is(struct nl_addr *a, const char *ip, unsigned plen) {
        struct in_addr in;
        if (!a)
                return plen == 0;
        if (nl_addr_get_family(a) != AF_INET || (unsigned)nl_addr_get_prefixlen(a) != plen)
                return false;
        if (plen == 0)
                return true;
        return inet_pton(AF_INET, ip, &in) == 1 && nl_addr_get_len(a) == 4 &&
               memcmp(nl_addr_get_binary_addr(a), &in, 4) == 0;
}

static void mac_bytes_str(const unsigned char m[static 6], char buf[static 18]) {
        snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static void mac_str(struct nl_addr *a, char buf[static 18]) {
        buf[0] = '\0';
        if (a && nl_addr_get_len(a) == 6)
                mac_bytes_str(nl_addr_get_binary_addr(a), buf);
}

static int link_get(struct nl_sock *sk, const char *name, struct rtnl_link **ret) {
        int r = rtnl_link_get_kernel(sk, 0, name, ret);
        return r < 0 ? nlerr_errno(r) : 0;
}

/* The host veth of this attachment: hint first, then the salted names; it
 * must carry our alias. -ENOENT when there is none; a failure to read a link
 * is returned as is (not taken for "none"). */
static int find_host_veth(struct nl_sock *sk, const struct dp_pod *pod, const char *hint, struct rtnl_link **ret) {
        char alias[PROTO_VETH_ALIAS_MAX], name[PROTO_IFNAME_MAX + 1];
        proto_veth_alias(pod->container_id, pod->ifname, alias);
        for (int i = -1; i < DP_NAME_SALTS; i++) {
                if (i < 0 && (!hint || !*hint))
                        continue;
                if (i < 0)
                        snprintf(name, sizeof name, "%s", hint);
                else
                        dp_veth_name(pod->veth_prefix, pod->container_id, pod->ifname, (unsigned)i, name);
                struct rtnl_link *l = NULL;
                int r = link_get(sk, name, &l);
                if (r == -ENOENT || r == -ENODEV)
                        continue;
                if (r < 0)
                        return r;
                const char *a = rtnl_link_get_ifalias(l);
                if (a && strcmp(a, alias) == 0) {
                        *ret = l;
                        return 0;
                }
                rtnl_link_put(l);
        }
        return -ENOENT;
}

/* --- ADD ------------------------------------------------------------------------------ */

struct dp_wiring {
        struct dp_pod pod;      /* the caller's, with ip, route_table and mtu set by dp_wiring_finish() */
        char ip[PROTO_IP_MAX];
        struct nl_sock *host, *podsk;
        int nsfd;
        int host_index, pod_index;
        unsigned char host_mac[6];
        unsigned veth_mtu;      /* the MTU the veth was created with (0: the kernel's) */
        char name[PROTO_IFNAME_MAX + 1];
        unsigned made;          /* bit per enum dp_step that left something behind */
        bool finished;          /* dp_wiring_finish() succeeded: keep everything */
        struct dp_links links;
};

static int create_veth(struct dp_wiring *c) {
        _cleanup_(addr_putp) struct nl_addr *mac = nl_addr_build(AF_LLC, c->host_mac, 6);
        struct rtnl_link *link = rtnl_link_veth_alloc();
        if (!link || !mac) {
                if (link)
                        rtnl_link_veth_release(link);
                return -ENOMEM;
        }
        struct rtnl_link *peer = rtnl_link_veth_get_peer(link);
        rtnl_link_set_name(link, c->name);
        rtnl_link_set_addr(link, mac);
        rtnl_link_set_flags(link, IFF_UP);
        rtnl_link_set_name(peer, c->pod.ifname);
        rtnl_link_set_ns_fd(peer, c->nsfd);     /* (libnl cannot send the peer's IFF_UP) */
        if (c->pod.mtu) {
                rtnl_link_set_mtu(link, c->pod.mtu);
                rtnl_link_set_mtu(peer, c->pod.mtu);
        }
        c->veth_mtu = c->pod.mtu;
        int r = rtnl_link_add(c->host, link, NLM_F_CREATE | NLM_F_EXCL);
        rtnl_link_put(peer);
        rtnl_link_veth_release(link);
        return r < 0 ? nlerr_errno(r) : 0;
}

/*
 * The name is taken. Our own veth of this attachment is stale when it is
 * down (a DEL took it down and vpc-ipamd has not deleted it yet) or its pod
 * end is not in this namespace (an earlier ADD into another one): remove it
 * and retry. Up and wired, it is the
 * attachment itself: -EEXIST. Anyone else's: leave it, -EADDRINUSE (the
 * caller tries the next name).
 */
static int resolve_clash(struct dp_wiring *c, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *l = NULL, *pl = NULL;
        char alias[PROTO_VETH_ALIAS_MAX];
        bool pod_end = link_get(c->podsk, c->pod.ifname, &pl) == 0;
        if (link_get(c->host, c->name, &l) < 0)
                return pod_end ? errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace",
                                            c->pod.ifname)
                               : 0;     /* gone meanwhile: retry the name */
        proto_veth_alias(c->pod.container_id, c->pod.ifname, alias);
        const char *a = rtnl_link_get_ifalias(l);
        bool ours = a && strcmp(a, alias) == 0;
        if (ours && pod_end && (rtnl_link_get_flags(l) & IFF_UP))
                return errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace", c->pod.ifname);
        if (!ours)
                return pod_end ? errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace",
                                            c->pod.ifname)
                               : -EADDRINUSE;
        int r = nlerr_errno(rtnl_link_delete(c->host, l));
        if (r == -ENODEV || r == -ENOENT)
                return 0;               /* vpc-ipamd deleted it meanwhile: retry the name */
        return r < 0 ? errmsg_set(err, r, "cannot remove stale veth %s", c->name) : 0;
}

static int make_veth(struct dp_wiring *c, struct errmsg *err) {
        for (unsigned salt = 0, tries = 0; salt < DP_NAME_SALTS && tries < 2 * DP_NAME_SALTS; tries++) {
                dp_veth_name(c->pod.veth_prefix, c->pod.container_id, c->pod.ifname, salt, c->name);
                int r = create_veth(c);
                if (r != -EEXIST)
                        return r < 0 ? errmsg_set(err, r, "cannot create veth %s/%s: %s", c->name, c->pod.ifname,
                                                  strerror(-r))
                                     : 0;
                r = resolve_clash(c, err);
                if (r == -EADDRINUSE)
                        salt++;
                else if (r < 0)
                        return r;
        }
        return errmsg_set(err, -EEXIST, "every host veth name for this pod is taken");
}

/* The MTU became known only after the veth was made (it came from the
 * daemon's reply): the pod end's change that brings it up carries it, and
 * the host end gets one message more. */
static bool mtu_pending(const struct dp_wiring *c) {
        return c->pod.mtu && c->pod.mtu != c->veth_mtu;
}

/* Learn both ends from the pod end alone: a veth's IFLA_LINK is its peer's
 * ifindex (in the peer's namespace), and the host MAC is the one we chose. */
static int pod_link(struct dp_wiring *c, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *pl = NULL;
        int r = link_get(c->podsk, c->pod.ifname, &pl);
        if (r < 0)
                return errmsg_set(err, r, "veth %s/%s vanished after creation", c->name, c->pod.ifname);
        c->pod_index = rtnl_link_get_ifindex(pl);
        c->host_index = rtnl_link_get_link(pl);
        mac_str(rtnl_link_get_addr(pl), c->links.pod_mac);
        mac_bytes_str(c->host_mac, c->links.host_mac);
        _cleanup_(link_putp) struct rtnl_link *up = rtnl_link_alloc();
        if (!up)
                return -ENOMEM;
        rtnl_link_set_flags(up, IFF_UP);
        if (mtu_pending(c))
                rtnl_link_set_mtu(up, c->pod.mtu);
        r = nlerr_errno(rtnl_link_change(c->podsk, pl, up, 0));
        if (r < 0)
                return errmsg_set(err, r, "cannot bring %s up: %s", c->pod.ifname, strerror(-r));
        if (!mtu_pending(c))
                return 0;
        _cleanup_(link_putp) struct rtnl_link *host = rtnl_link_alloc(), *mtu = rtnl_link_alloc();
        if (!host || !mtu)
                return -ENOMEM;
        rtnl_link_set_ifindex(host, c->host_index);
        rtnl_link_set_mtu(mtu, c->pod.mtu);
        r = nlerr_errno(rtnl_link_change(c->host, host, mtu, 0));
        return r < 0 ? errmsg_set(err, r, "cannot set the MTU of %s to %u: %s", c->name, c->pod.mtu, strerror(-r)) : 0;
}

static int pod_addr(struct dp_wiring *c) {
        _cleanup_(addr_putp) struct nl_addr *local = ip4(c->pod.ip, 32);
        _cleanup_(rtaddr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
        if (!a || !local)
                return -ENOMEM;
        rtnl_addr_set_ifindex(a, c->pod_index);
        rtnl_addr_set_local(a, local);
        return nlerr_errno(rtnl_addr_add(c->podsk, a, NLM_F_EXCL));
}

/* dst/plen via gw (may be NULL) dev ifindex, in table, with scope. */
static int route_change(struct nl_sock *sk, bool add, const char *dst, unsigned plen, const char *gw, int ifindex,
                        uint8_t scope, uint32_t table, int flags) {
        _cleanup_(addr_putp) struct nl_addr *d = ip4(dst, plen), *g = gw ? ip4(gw, 32) : NULL;
        _cleanup_(route_putp) struct rtnl_route *rt = rtnl_route_alloc();
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();  /* the route owns it once added */
        if (!rt || !nh || !d || (gw && !g)) {
                if (nh)
                        rtnl_route_nh_free(nh);
                return -ENOMEM;
        }
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_dst(rt, d);
        rtnl_route_set_table(rt, table);
        rtnl_route_set_scope(rt, scope);
        rtnl_route_set_protocol(rt, RTPROT_BOOT);
        rtnl_route_nh_set_ifindex(nh, ifindex);
        if (g)
                rtnl_route_nh_set_gateway(nh, g);
        rtnl_route_add_nexthop(rt, nh);
        return nlerr_errno(add ? rtnl_route_add(sk, rt, flags) : rtnl_route_delete(sk, rt, 0));
}

static int pod_neigh(struct dp_wiring *c) {
        _cleanup_(addr_putp) struct nl_addr *dst = ip4(PROTO_POD_GATEWAY, 32);
        _cleanup_(addr_putp) struct nl_addr *ll = nl_addr_build(AF_LLC, c->host_mac, 6);
        _cleanup_(neigh_putp) struct rtnl_neigh *n = rtnl_neigh_alloc();
        if (!n || !dst || !ll)
                return -ENOMEM;
        rtnl_neigh_set_ifindex(n, c->pod_index);
        rtnl_neigh_set_dst(n, dst);
        rtnl_neigh_set_lladdr(n, ll);
        rtnl_neigh_set_state(n, NUD_PERMANENT);
        return nlerr_errno(rtnl_neigh_add(c->podsk, n, NLM_F_CREATE | NLM_F_REPLACE));
}

static int host_alias(struct dp_wiring *c) {
        char alias[PROTO_VETH_ALIAS_MAX];
        _cleanup_(link_putp) struct rtnl_link *orig = rtnl_link_alloc(), *change = rtnl_link_alloc();
        if (!orig || !change)
                return -ENOMEM;
        proto_veth_alias(c->pod.container_id, c->pod.ifname, alias);
        /* its index is learned later, from the pod end: the kernel finds it by name */
        rtnl_link_set_name(orig, c->name);
        rtnl_link_set_name(change, c->name);
        rtnl_link_set_ifalias(change, alias);
        return nlerr_errno(rtnl_link_change(c->host, orig, change, 0));
}

/* Rule "to ip" (from == false) or "from ip" lookup table, at prio. */
static int rule_change(struct nl_sock *sk, bool add, bool from, const char *ip, uint32_t table, uint32_t prio) {
        _cleanup_(addr_putp) struct nl_addr *a = ip4(ip, 32);
        _cleanup_(rule_putp) struct rtnl_rule *rule = rtnl_rule_alloc();
        if (!rule || !a)
                return -ENOMEM;
        rtnl_rule_set_family(rule, AF_INET);
        rtnl_rule_set_prio(rule, prio);
        if (from)
                rtnl_rule_set_src(rule, a);
        else
                rtnl_rule_set_dst(rule, a);
        if (table)
                rtnl_rule_set_table(rule, table);
        rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
        return nlerr_errno(add ? rtnl_rule_add(sk, rule, NLM_F_EXCL) : rtnl_rule_delete(sk, rule, 0));
}

/* Delete every copy of a rule (bounded); missing is fine. */
static int rule_remove_all(struct nl_sock *sk, bool from, const char *ip, uint32_t prio, unsigned *removed) {
        for (int i = 0; i < 16; i++) {
                int r = rule_change(sk, false, from, ip, 0, prio);
                if (r == -ENOENT || r == -ESRCH)
                        return 0;
                if (r < 0)
                        return r;
                if (removed)
                        (*removed)++;
        }
        return 0;
}

static void rollback(struct dp_wiring *c) {
        if (c->made & (1u << DP_STEP_RULE_FROM))
                (void)rule_change(c->host, false, true, c->pod.ip, c->pod.route_table, DP_RULE_PRIO_FROM);
        if (c->made & (1u << DP_STEP_RULE_TO))
                (void)rule_change(c->host, false, false, c->pod.ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO);
        if (c->made & (1u << DP_STEP_VETH)) {
                _cleanup_(link_putp) struct rtnl_link *l = rtnl_link_alloc();
                if (l) {
                        rtnl_link_set_name(l, c->name);
                        (void)rtnl_link_delete(c->host, l);
                }
        }
        c->made = 0;
}

/* One step of ADD; a rule that already exists (a leftover for this very
 * address) is kept and not marked as ours. */
static int run_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err) {
        const struct dp_pod *p = &c->pod;
        int r = p->fault ? p->fault(step, p->fault_data) : 0;
        if (r < 0)
                return errmsg_set(err, r, "%s: injected failure", dp_step_name(step));
        switch (step) {
        case DP_STEP_VETH: return make_veth(c, err);
        case DP_STEP_POD_LINK: return pod_link(c, err);
        case DP_STEP_POD_ADDR: r = pod_addr(c); break;
        case DP_STEP_POD_GW_ROUTE:
                r = route_change(c->podsk, true, PROTO_POD_GATEWAY, 32, NULL, c->pod_index, RT_SCOPE_LINK,
                                 RT_TABLE_MAIN, NLM_F_EXCL);
                break;
        case DP_STEP_POD_DEFAULT_ROUTE:
                r = route_change(c->podsk, true, "0.0.0.0", 0, PROTO_POD_GATEWAY, c->pod_index, RT_SCOPE_UNIVERSE,
                                 RT_TABLE_MAIN, NLM_F_EXCL);
                break;
        case DP_STEP_POD_NEIGH: r = pod_neigh(c); break;
        case DP_STEP_HOST_ALIAS: r = host_alias(c); break;
        case DP_STEP_HOST_ROUTE:
                r = route_change(c->host, true, p->ip, 32, NULL, c->host_index, RT_SCOPE_LINK, RT_TABLE_MAIN,
                                 NLM_F_REPLACE);
                break;
        case DP_STEP_RULE_TO:
                r = rule_change(c->host, true, false, p->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO);
                return r == -EEXIST ? 1 : r < 0 ? errmsg_set(err, r, "%s: %s", dp_step_name(step), strerror(-r)) : 0;
        case DP_STEP_RULE_FROM:
                if (p->route_table == RT_TABLE_MAIN)
                        return 1;
                r = rule_change(c->host, true, true, p->ip, p->route_table, DP_RULE_PRIO_FROM);
                return r == -EEXIST ? 1 : r < 0 ? errmsg_set(err, r, "%s: %s", dp_step_name(step), strerror(-r)) : 0;
        default: return -EINVAL;
        }
        return r < 0 ? errmsg_set(err, r, "%s: %s", dp_step_name(step), strerror(-r)) : 0;
}

/* Pods reach each other and the VPC through the host's forwarding; turn it
 * on if it is off (as ptp does), and never off again: other pods need it. */
static int ensure_forwarding(struct errmsg *err) {
        char v = '0';
        _cleanup_(closep) int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return errmsg_set(err, -errno, "cannot open /proc/sys/net/ipv4/ip_forward: %s", strerror(errno));
        int r = read(fd, &v, 1) == 1 && v == '1' ? 0 : (pwrite(fd, "1\n", 2, 0) == 2 ? 0 : -errno);
        return r < 0 ? errmsg_set(err, r, "cannot enable IPv4 forwarding: %s", strerror(-r)) : 0;
}

static int open_pod(const char *netns, int *ret_fd, struct nl_sock **ret_sk, struct errmsg *err) {
        int r = netns_open(netns, ret_fd);
        if (r < 0)
                return errmsg_set(err, r, "netns %s: %s", netns,
                                  r == -EINVAL ? "not a network namespace" : strerror(-r));
        r = netns_nl_socket(*ret_fd, ret_sk);
        if (r < 0)
                return errmsg_set(err, r, "netns %s: cannot open a netlink socket in it: %s", netns, strerror(-r));
        return 0;
}

int dp_wiring_open(const char *netns, const struct dp_pod *pod, dp_wiring **ret, struct errmsg *err) {
        dp_wiring *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->pod = *pod;
        c->pod.ip = c->ip;
        c->nsfd = -1;
        int r = open_pod(netns, &c->nsfd, &c->podsk, err);
        if (r >= 0 && (r = netns_nl_socket_here(&c->host)) < 0)
                errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if (r >= 0 && getrandom(c->host_mac, sizeof c->host_mac, 0) != sizeof c->host_mac)
                r = errmsg_set(err, -EIO, "getrandom failed");
        if (r < 0) {
                dp_wiring_free(c);
                return r;
        }
        c->host_mac[0] = (unsigned char)((c->host_mac[0] & 0xfe) | 0x02);   /* unicast, locally administered */
        *ret = c;
        return 0;
}

/* Run steps [from, to) in order; the first failure undoes every step made. */
static int run_steps(dp_wiring *c, enum dp_step from, enum dp_step to, struct errmsg *err) {
        for (int s = (int)from; s < (int)to; s++) {
                int r = run_step(c, (enum dp_step)s, err);
                if (r < 0) {
                        rollback(c);
                        return r;
                }
                if (r == 0)
                        c->made |= 1u << s;
        }
        return 0;
}

int dp_wiring_veth(dp_wiring *c, struct errmsg *err) {
        if (c->made)
                return errmsg_set(err, -EALREADY, "the veth of this pod is already made");
        int r = ensure_forwarding(err);
        return r < 0 ? r : run_steps(c, DP_STEP_VETH, DP_STEP_POD_LINK, err);
}

int dp_wiring_finish(dp_wiring *c, const char *ip, uint32_t route_table, unsigned mtu, struct dp_links *ret,
                     struct errmsg *err) {
        if (!(c->made & (1u << DP_STEP_VETH)))
                return errmsg_set(err, -EINVAL, "no veth made for this pod");
        if (!ip || !proto_valid_ipv4(ip)) {
                rollback(c);
                return errmsg_set(err, -EINVAL, "no valid pod address");
        }
        snprintf(c->ip, sizeof c->ip, "%s", ip);
        c->pod.route_table = route_table;
        if (mtu)
                c->pod.mtu = mtu;
        int r = run_steps(c, DP_STEP_POD_LINK, _DP_STEP_MAX, err);
        if (r < 0)
                return r;
        snprintf(c->links.host_ifname, sizeof c->links.host_ifname, "%s", c->name);
        *ret = c->links;
        c->finished = true;
        return 0;
}

dp_wiring *dp_wiring_free(dp_wiring *c) {
        if (!c)
                return NULL;
        if (!c->finished)
                rollback(c);
        if (c->host)
                nl_socket_free(c->host);
        if (c->podsk)
                nl_socket_free(c->podsk);
        if (c->nsfd >= 0)
                close(c->nsfd);
        free(c);
        return NULL;
}

int dp_add(const char *netns, const struct dp_pod *pod, struct dp_links *ret, struct errmsg *err) {
        if (!pod->ip || !proto_valid_ipv4(pod->ip))
                return errmsg_set(err, -EINVAL, "no valid pod address");
        dp_wiring *w = NULL;
        int r = dp_wiring_open(netns, pod, &w, err);
        if (r >= 0)
                r = dp_wiring_veth(w, err);
        if (r >= 0)
                r = dp_wiring_finish(w, pod->ip, pod->route_table, pod->mtu, ret, err);
        dp_wiring_free(w);
        return r;
}

/* --- DEL ------------------------------------------------------------------------------ */

int dp_host_veth(const struct dp_pod *pod, const char *host_ifname_hint, char ret[static PROTO_IFNAME_MAX + 1],
                 struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if ((r = find_host_veth(host, pod, host_ifname_hint, &veth)) < 0)
                return r == -ENOENT ? r : errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        snprintf(ret, PROTO_IFNAME_MAX + 1, "%s", rtnl_link_get_name(veth));
        return 0;
}

int dp_del(const struct dp_pod *pod, const char *host_ifname_hint, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if (pod->ip && *pod->ip) {
                r = rule_remove_all(host, false, pod->ip, DP_RULE_PRIO_TO, NULL);
                if (r >= 0)
                        r = rule_remove_all(host, true, pod->ip, DP_RULE_PRIO_FROM, NULL);
                if (r < 0)
                        return errmsg_set(err, r, "cannot remove the rules of %s: %s", pod->ip, strerror(-r));
        }
        r = find_host_veth(host, pod, host_ifname_hint, &veth);
        if (r == -ENOENT)
                return 0;               /* gone with its namespace, or never made */
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        r = nlerr_errno(rtnl_link_delete(host, veth));
        if (r < 0 && r != -ENODEV && r != -ENOENT)
                return errmsg_set(err, r, "cannot delete veth %s: %s", rtnl_link_get_name(veth), strerror(-r));
        return 0;
}

/* --- CHECK ---------------------------------------------------------------------------- */

struct diff {
        char text[ERRMSG_MAX];
        size_t len;
        unsigned n;
};

static void differ(struct diff *d, const char *what) {
        int n = snprintf(d->text + d->len, sizeof d->text - d->len, "%s%s", d->n ? "; " : "", what);
        if (n > 0)
                d->len = d->len + (size_t)n < sizeof d->text ? d->len + (size_t)n : sizeof d->text - 1;
        d->n++;
}

static bool has_addr(struct nl_cache *cache, int ifindex, const char *ip) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_addr *a = (struct rtnl_addr *)o;
                if (rtnl_addr_get_ifindex(a) == ifindex && addr_is(rtnl_addr_get_local(a), ip, 32))
                        return true;
        }
        return false;
}

/* A route dst/plen in table via gw (NULL: none) out of ifindex with scope. */
static bool has_route(struct nl_cache *cache, const char *dst, unsigned plen, const char *gw, int ifindex,
                      uint8_t scope, uint32_t table) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *)o;
                if (rtnl_route_get_table(rt) != table || rtnl_route_get_scope(rt) != scope ||
                    !addr_is(rtnl_route_get_dst(rt), dst, plen) || rtnl_route_get_nnexthops(rt) != 1)
                        continue;
                struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, 0);
                struct nl_addr *g = rtnl_route_nh_get_gateway(nh);
                if (rtnl_route_nh_get_ifindex(nh) == ifindex && (gw ? g && addr_is(g, gw, 32) : !g))
                        return true;
        }
        return false;
}

static bool has_neigh(struct nl_cache *cache, int ifindex, const char *mac) {
        char got[18];
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_neigh *n = (struct rtnl_neigh *)o;
                if (rtnl_neigh_get_ifindex(n) != ifindex || !addr_is(rtnl_neigh_get_dst(n), PROTO_POD_GATEWAY, 32))
                        continue;
                mac_str(rtnl_neigh_get_lladdr(n), got);
                return strcmp(got, mac) == 0 && (rtnl_neigh_get_state(n) & NUD_PERMANENT);
        }
        return false;
}

static bool has_rule(struct nl_cache *cache, bool from, const char *ip, uint32_t table, uint32_t prio) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_rule *r = (struct rtnl_rule *)o;
                if (rtnl_rule_get_prio(r) == prio && rtnl_rule_get_table(r) == table &&
                    rtnl_rule_get_action(r) == FR_ACT_TO_TBL &&
                    addr_is(from ? rtnl_rule_get_src(r) : rtnl_rule_get_dst(r), ip, 32) &&
                    (from ? !rtnl_rule_get_dst(r) || !nl_addr_get_prefixlen(rtnl_rule_get_dst(r))
                          : !rtnl_rule_get_src(r) || !nl_addr_get_prefixlen(rtnl_rule_get_src(r))))
                        return true;
        }
        return false;
}

/* What differs is added to d; a failure to read the kernel is returned
 * (it says nothing about drift). */
static int check_pod(struct nl_sock *sk, const struct dp_pod *pod, const char *host_mac, struct diff *d,
                     struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *pl = NULL;
        _cleanup_(cache_freep) struct nl_cache *addrs = NULL, *routes = NULL, *neighs = NULL;
        char what[128];
        int r = link_get(sk, pod->ifname, &pl);
        if (r == -ENOENT || r == -ENODEV) {
                snprintf(what, sizeof what, "pod interface %s is missing", pod->ifname);
                differ(d, what);
                return 0;
        }
        if (r < 0)
                return errmsg_set(err, r, "cannot read pod interface %s: %s", pod->ifname, strerror(-r));
        int idx = rtnl_link_get_ifindex(pl);
        if (!(rtnl_link_get_flags(pl) & IFF_UP))
                differ(d, "pod interface is down");
        if ((r = nlerr_errno(rtnl_addr_alloc_cache(sk, &addrs))) < 0 ||
            (r = nlerr_errno(rtnl_route_alloc_cache(sk, AF_INET, 0, &routes))) < 0 ||
            (r = nlerr_errno(rtnl_neigh_alloc_cache(sk, &neighs))) < 0)
                return errmsg_set(err, r, "cannot read the pod namespace's addresses, routes or neighbours: %s",
                                  strerror(-r));
        if (!has_addr(addrs, idx, pod->ip)) {
                snprintf(what, sizeof what, "pod address %s/32 is missing on %s", pod->ip, pod->ifname);
                differ(d, what);
        }
        if (!has_route(routes, PROTO_POD_GATEWAY, 32, NULL, idx, RT_SCOPE_LINK, RT_TABLE_MAIN))
                differ(d, "pod route " PROTO_POD_GATEWAY " scope link is missing");
        if (!has_route(routes, "0.0.0.0", 0, PROTO_POD_GATEWAY, idx, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN))
                differ(d, "pod default route via " PROTO_POD_GATEWAY " is missing");
        if (!has_neigh(neighs, idx, host_mac))
                differ(d, "pod neighbour " PROTO_POD_GATEWAY " is missing, not permanent or not the host veth's MAC");
        return 0;
}

static int check_host(struct nl_sock *sk, const struct dp_pod *pod, int host_index, struct diff *d,
                      struct errmsg *err) {
        _cleanup_(cache_freep) struct nl_cache *routes = NULL, *rules = NULL;
        char what[128];
        int r;
        if ((r = nlerr_errno(rtnl_route_alloc_cache(sk, AF_INET, 0, &routes))) < 0 ||
            (r = nlerr_errno(rtnl_rule_alloc_cache(sk, AF_INET, &rules))) < 0)
                return errmsg_set(err, r, "cannot read the host routes or rules: %s", strerror(-r));
        if (!has_route(routes, pod->ip, 32, NULL, host_index, RT_SCOPE_LINK, RT_TABLE_MAIN)) {
                snprintf(what, sizeof what, "host route %s/32 via the veth is missing", pod->ip);
                differ(d, what);
        }
        if (!has_rule(rules, false, pod->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO)) {
                snprintf(what, sizeof what, "rule \"to %s lookup main\" prio %d is missing", pod->ip, DP_RULE_PRIO_TO);
                differ(d, what);
        }
        if (pod->route_table != RT_TABLE_MAIN &&
            !has_rule(rules, true, pod->ip, pod->route_table, DP_RULE_PRIO_FROM)) {
                snprintf(what, sizeof what, "rule \"from %s lookup %u\" prio %d is missing", pod->ip,
                         pod->route_table, DP_RULE_PRIO_FROM);
                differ(d, what);
        }
        return 0;
}

int dp_check(const char *netns, const struct dp_pod *pod, struct errmsg *err) {
        _cleanup_(closep) int nsfd = -1;
        _cleanup_(sock_freep) struct nl_sock *host = NULL, *podsk = NULL;
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        struct diff d = { .len = 0 };
        char mac[18];
        int r = open_pod(netns, &nsfd, &podsk, err);
        if (r < 0)
                return r;
        if ((r = netns_nl_socket_here(&host)) < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        r = find_host_veth(host, pod, NULL, &veth);
        if (r == -ENOENT)
                return errmsg_set(err, -EUCLEAN, "host veth of %s/%s is missing", pod->container_id, pod->ifname);
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        if (!(rtnl_link_get_flags(veth) & IFF_UP))
                differ(&d, "host veth is down");
        mac_str(rtnl_link_get_addr(veth), mac);
        if ((r = check_pod(podsk, pod, mac, &d, err)) < 0 ||
            (r = check_host(host, pod, rtnl_link_get_ifindex(veth), &d, err)) < 0)
                return r;
        if (d.n)
                return errmsg_set(err, -EUCLEAN, "%s", d.text);
        return 0;
}

/* --- GC ------------------------------------------------------------------------------- */

static bool alias_valid(const char *alias, const struct proto_attachment *valid, size_t n_valid) {
        char want[256];
        for (size_t i = 0; i < n_valid; i++) {
                proto_veth_alias(valid[i].container_id, valid[i].ifname, want);
                if (strcmp(alias, want) == 0)
                        return true;
        }
        return false;
}

static int gc_veths(struct nl_sock *sk, const char *prefix, const struct proto_attachment *valid, size_t n_valid,
                    unsigned *removed) {
        _cleanup_(cache_freep) struct nl_cache *links = NULL;
        int r = nlerr_errno(rtnl_link_alloc_cache(sk, AF_UNSPEC, &links));
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
                struct rtnl_link *l = (struct rtnl_link *)o;
                const char *name = rtnl_link_get_name(l), *alias = rtnl_link_get_ifalias(l);
                if (!name || strncmp(name, prefix, strlen(prefix)) != 0 || !alias ||
                    strncmp(alias, PROTO_VETH_ALIAS_PREFIX, strlen(PROTO_VETH_ALIAS_PREFIX)) != 0 || alias_valid(alias, valid, n_valid))
                        continue;
                r = nlerr_errno(rtnl_link_delete(sk, l));
                if (r < 0 && r != -ENODEV)
                        return r;
                (*removed)++;
        }
        return 0;
}

int dp_gc(const char *veth_prefix, const struct proto_attachment *valid, size_t n_valid,
          char (*released)[PROTO_IP_MAX], size_t n_released, unsigned *ret_removed, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        unsigned removed = 0;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        /* The rules first: the released addresses rest only a few seconds
         * (PODNET_RELEASE_REST_MS), and each veth deletion waits ~20 ms. */
        for (size_t i = 0; i < n_released; i++) {
                r = rule_remove_all(host, false, released[i], DP_RULE_PRIO_TO, &removed);
                if (r >= 0)
                        r = rule_remove_all(host, true, released[i], DP_RULE_PRIO_FROM, &removed);
                if (r < 0)
                        return errmsg_set(err, r, "cannot remove the rules of %s: %s", released[i], strerror(-r));
        }
        r = gc_veths(host, veth_prefix, valid, n_valid, &removed);
        *ret_removed = removed;
        return r < 0 ? errmsg_set(err, r, "cannot remove leftover veths: %s", strerror(-r)) : 0;
}

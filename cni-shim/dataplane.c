/*
 * dataplane: veths, addresses, routes, neighbours and rules of one pod, with
 * libnl-route-3 (see dataplane.h for the objects).
 *
 * ADD is a list of steps (the table "order" below) run against two netlink
 * sockets, one bound to the host namespace and one to the pod's (netns.h);
 * a step that does not apply to the pod (the IPv6 ones for an IPv4 pod, the
 * egress ones without an egress address) is skipped. Each completed step
 * sets a bit in ctx->made and rollback() undoes exactly those bits. Only two
 * kinds of undo exist: rules are deleted one by one (they do not belong to
 * a device) and the veths are deleted, which removes their peers and with
 * them every pod-side object and the host routes.
 *
 * A veth is created in one message with both ends' names and MTU and the
 * host end's IFF_UP, the peer placed straight into the pod namespace
 * (IFLA_NET_NS_FD), so the pod side never exists under a host name. The
 * host end's name is a hash of (container id, ifname); on a clash with
 * another pod's veth a salted alternate is tried, and the alias
 * "vpc-cni:<ifname>:<container id>" tells ours from theirs. The kernel
 * ignores IFLA_IFALIAS at creation, so it is the very next message, sent
 * while the daemon still chooses the address: an ADD killed in that wait
 * leaves a veth that DEL and GC recognise (and the namespace takes along).
 *
 * IPv6 (aws-node's): the host veth's IPv6 sysctls are set "before up". The
 * veth is made (up) before the daemon says which family the pod is, but a
 * veth has no carrier until both ends are up, and IPv6 does nothing on a
 * link without carrier (no link-local address, no RS, no RA accepted): the
 * sysctls written before the pod end comes up are in place before IPv6
 * ever sees the link. DAD is kept, and made short on both ends of the veth
 * while ADD runs: no random start delay (router_solicitation_delay 0, up to
 * 1 s otherwise) and DP_DAD_RETRANS_MS instead of 1 s after the probe. The
 * only node that can answer a probe on this point-to-point link is the
 * node's own kernel (an address or proxy entry on the host veth), which
 * answers within microseconds, so a duplicate is still found. The last
 * step polls every DP_DAD_POLL_MS until no address of the pod interface,
 * then of the host veth, is tentative (a duplicate fails at once), then
 * puts both links' retrans_time_ms back (it also paces their neighbour
 * probes). Both ends matter: the node resolves the pod from the host
 * veth's link-local address, so until that one is valid the pod is
 * unreachable. ADD thus returns with the pod usable both ways. Optimistic
 * DAD (RFC 4429) does not do it: the address is usable at once inside the
 * pod, but the node still cannot reach it, and a duplicate is found only
 * after ADD returned (docs/vpc-cni.md has the figures).
 *
 * The IPv4 egress veth (aws-node's egress-cni) is made after the daemon's
 * reply, like the rest of an IPv6 pod; its alias has its own prefix so that
 * vpc-ipamd, which reads "vpc-cni:" aliases as pods holding VPC addresses,
 * never takes it for one.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
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
        [DP_STEP_HOST_SYSCTL6] = "set host veth IPv6 sysctls",
        [DP_STEP_POD_SYSCTL6] = "enable IPv6 in the pod",
        [DP_STEP_POD_DAD] = "wait for duplicate address detection",
        [DP_STEP_EGRESS_VETH] = "create egress veth",
        [DP_STEP_EGRESS_ALIAS] = "mark egress veth",
        [DP_STEP_EGRESS_POD_LINK] = "bring egress interface up",
        [DP_STEP_EGRESS_POD_ADDR] = "add egress address",
        [DP_STEP_EGRESS_POD_GW_ROUTE] = "add egress gateway route",
        [DP_STEP_EGRESS_POD_NET_ROUTE] = "add egress network route",
        [DP_STEP_EGRESS_POD_DEFAULT_ROUTE] = "add egress default route",
        [DP_STEP_EGRESS_HOST_ADDR] = "add egress gateway address",
        [DP_STEP_EGRESS_HOST_ROUTE] = "add egress host route",
};

/* The order ADD runs the steps in; the first VETH_STEPS are dp_wiring_veth()'s. */
static const enum dp_step order[] = {
        DP_STEP_VETH, DP_STEP_HOST_ALIAS,
        DP_STEP_HOST_SYSCTL6, DP_STEP_POD_SYSCTL6, DP_STEP_POD_LINK, DP_STEP_POD_ADDR, DP_STEP_POD_GW_ROUTE,
        DP_STEP_POD_DEFAULT_ROUTE, DP_STEP_POD_NEIGH, DP_STEP_HOST_ROUTE, DP_STEP_RULE_TO, DP_STEP_RULE_FROM,
        DP_STEP_EGRESS_VETH, DP_STEP_EGRESS_ALIAS, DP_STEP_EGRESS_POD_LINK, DP_STEP_EGRESS_POD_ADDR,
        DP_STEP_EGRESS_POD_GW_ROUTE, DP_STEP_EGRESS_POD_NET_ROUTE, DP_STEP_EGRESS_POD_DEFAULT_ROUTE,
        DP_STEP_EGRESS_HOST_ADDR, DP_STEP_EGRESS_HOST_ROUTE,
        DP_STEP_POD_DAD,
};
enum { VETH_STEPS = 2, N_STEPS = sizeof order / sizeof order[0] };
_Static_assert((int)N_STEPS == (int)_DP_STEP_MAX, "every step has its place in order[]");

/* PROTO_EGRESS4_CIDR in parts */
#define EGRESS_NET "169.254.172.0"
#define EGRESS_PLEN 22

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

/* <prefix><mark><hash>, cut to the kernel's 15 characters. */
static int veth_name(const char *prefix, const char *mark, const char *container_id, const char *ifname,
                     unsigned salt, char ret[static PROTO_IFNAME_MAX + 1]) {
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
        snprintf(ret, PROTO_IFNAME_MAX + 1, "%s%s%.*s", prefix, mark, (int)(PROTO_IFNAME_MAX - plen - strlen(mark)),
                 hex);
        return 0;
}

int dp_veth_name(const char *prefix, const char *container_id, const char *ifname, unsigned salt,
                 char ret[static PROTO_IFNAME_MAX + 1]) {
        return veth_name(prefix, "", container_id, ifname, salt, ret);
}

int dp_egress_veth_name(const char *prefix, const char *container_id, const char *ifname, unsigned salt,
                        char ret[static PROTO_IFNAME_MAX + 1]) {
        return veth_name(prefix, "v", container_id, ifname, salt, ret);
}

void dp_egress_alias(const char *container_id, const char *ifname, char ret[static PROTO_VETH_ALIAS_MAX]) {
        snprintf(ret, PROTO_VETH_ALIAS_MAX, DP_EGRESS_ALIAS_PREFIX "%s:%s", ifname, container_id);
}

/* The alias of the main (egress false) or the egress host veth. */
static void alias_of(const char *container_id, const char *ifname, bool egress, char ret[static PROTO_VETH_ALIAS_MAX]) {
        if (egress)
                dp_egress_alias(container_id, ifname, ret);
        else
                proto_veth_alias(container_id, ifname, ret);
}

static int name_of(const struct dp_pod *pod, bool egress, unsigned salt, char ret[static PROTO_IFNAME_MAX + 1]) {
        return egress ? dp_egress_veth_name(pod->veth_prefix, pod->container_id, pod->ifname, salt, ret)
                      : dp_veth_name(pod->veth_prefix, pod->container_id, pod->ifname, salt, ret);
}

/* --- small libnl helpers -------------------------------------------------------- */

static bool is_v6(const char *ip) {
        return ip && strchr(ip, ':');
}

static unsigned host_len(const char *ip) {
        return is_v6(ip) ? 128 : 32;
}

static const char *pod_gateway(const char *ip) {
        return is_v6(ip) ? PROTO_POD_GATEWAY6 : PROTO_POD_GATEWAY;
}

/* ip (either family) as an nl_addr of prefix length plen. */
static struct nl_addr *ipaddr(const char *ip, unsigned plen) {
        unsigned char bin[16];
        int family = is_v6(ip) ? AF_INET6 : AF_INET;
        if (inet_pton(family, ip, bin) != 1)
                return NULL;
        struct nl_addr *a = nl_addr_build(family, bin, family == AF_INET6 ? 16 : 4);
        if (a)
                nl_addr_set_prefixlen(a, (int)plen);
        return a;
}

static bool addr_is(struct nl_addr *a, const char *ip, unsigned plen) {
        unsigned char bin[16];
        int family = is_v6(ip) ? AF_INET6 : AF_INET;
        unsigned len = family == AF_INET6 ? 16 : 4;
        if (!a)
                return plen == 0;
        if (nl_addr_get_family(a) != family || (unsigned)nl_addr_get_prefixlen(a) != plen)
                return false;
        if (plen == 0)
                return true;
        return inet_pton(family, ip, bin) == 1 && nl_addr_get_len(a) == len &&
               memcmp(nl_addr_get_binary_addr(a), bin, len) == 0;
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

/* The host veth of this attachment (the main one, or the egress one): hint
 * first, then the salted names; it must carry our alias. -ENOENT when there
 * is none; a failure to read a link is returned as is (not taken for
 * "none"). */
static int find_host_veth(struct nl_sock *sk, const struct dp_pod *pod, const char *hint, bool egress,
                          struct rtnl_link **ret) {
        char alias[PROTO_VETH_ALIAS_MAX], name[PROTO_IFNAME_MAX + 1];
        alias_of(pod->container_id, pod->ifname, egress, alias);
        for (int i = -1; i < DP_NAME_SALTS; i++) {
                if (i < 0 && (!hint || !*hint))
                        continue;
                if (i < 0)
                        snprintf(name, sizeof name, "%s", hint);
                else
                        name_of(pod, egress, (unsigned)i, name);
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

static long now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* --- ADD ------------------------------------------------------------------------------ */

/* One veth pair: the main one (pod end I) or the egress one (v4if0). */
struct veth {
        bool egress;
        const char *pod_ifname;
        char name[PROTO_IFNAME_MAX + 1];        /* the host end */
        unsigned char mac[6];                   /* the host end's, chosen by us */
        int host_index, pod_index;
        char pod_mac[18];
};

struct dp_wiring {
        struct dp_pod pod;      /* the caller's, with ip, egress_ip, route_table and mtu set by dp_wiring_finish() */
        char ip[PROTO_IP_MAX];
        char egress_ip[PROTO_IP_MAX];
        struct nl_sock *host, *podsk;
        int nsfd;
        struct veth main, eg;
        unsigned veth_mtu;      /* the MTU the main veth was created with (0: the kernel's) */
        unsigned made;          /* bit per enum dp_step that left something behind */
        char pod_retrans[16], host_retrans[16];        /* the links' retrans_time_ms before dad_fast() */
        bool finished;          /* dp_wiring_finish() succeeded: keep everything */
};

static int create_veth(struct dp_wiring *c, const struct veth *v) {
        _cleanup_(addr_putp) struct nl_addr *mac = nl_addr_build(AF_LLC, v->mac, 6);
        struct rtnl_link *link = rtnl_link_veth_alloc();
        if (!link || !mac) {
                if (link)
                        rtnl_link_veth_release(link);
                return -ENOMEM;
        }
        struct rtnl_link *peer = rtnl_link_veth_get_peer(link);
        rtnl_link_set_name(link, v->name);
        rtnl_link_set_addr(link, mac);
        rtnl_link_set_flags(link, IFF_UP);
        rtnl_link_set_name(peer, v->pod_ifname);
        rtnl_link_set_ns_fd(peer, c->nsfd);     /* (libnl cannot send the peer's IFF_UP) */
        if (c->pod.mtu) {
                rtnl_link_set_mtu(link, c->pod.mtu);
                rtnl_link_set_mtu(peer, c->pod.mtu);
        }
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
static int resolve_clash(struct dp_wiring *c, const struct veth *v, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *l = NULL, *pl = NULL;
        char alias[PROTO_VETH_ALIAS_MAX];
        bool pod_end = link_get(c->podsk, v->pod_ifname, &pl) == 0;
        if (link_get(c->host, v->name, &l) < 0)
                return pod_end ? errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace",
                                            v->pod_ifname)
                               : 0;     /* gone meanwhile: retry the name */
        alias_of(c->pod.container_id, c->pod.ifname, v->egress, alias);
        const char *a = rtnl_link_get_ifalias(l);
        bool ours = a && strcmp(a, alias) == 0;
        if (ours && pod_end && (rtnl_link_get_flags(l) & IFF_UP))
                return errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace", v->pod_ifname);
        if (!ours)
                return pod_end ? errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace",
                                            v->pod_ifname)
                               : -EADDRINUSE;
        int r = nlerr_errno(rtnl_link_delete(c->host, l));
        if (r == -ENODEV || r == -ENOENT)
                return 0;               /* vpc-ipamd deleted it meanwhile: retry the name */
        return r < 0 ? errmsg_set(err, r, "cannot remove stale veth %s", v->name) : 0;
}

static int make_veth(struct dp_wiring *c, struct veth *v, struct errmsg *err) {
        for (unsigned salt = 0, tries = 0; salt < DP_NAME_SALTS && tries < 2 * DP_NAME_SALTS; tries++) {
                name_of(&c->pod, v->egress, salt, v->name);
                int r = create_veth(c, v);
                if (r != -EEXIST)
                        return r < 0 ? errmsg_set(err, r, "cannot create veth %s/%s: %s", v->name, v->pod_ifname,
                                                  strerror(-r))
                                     : 0;
                r = resolve_clash(c, v, err);
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

/* Learn both ends of v from the pod end alone (a veth's IFLA_LINK is its
 * peer's ifindex, in the peer's namespace; the host MAC is the one we
 * chose), and bring the pod end up, with mtu when non-zero. */
static int pod_end_up(struct dp_wiring *c, struct veth *v, unsigned mtu, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *pl = NULL, *up = NULL;
        int r = link_get(c->podsk, v->pod_ifname, &pl);
        if (r < 0)
                return errmsg_set(err, r, "veth %s/%s vanished after creation", v->name, v->pod_ifname);
        v->pod_index = rtnl_link_get_ifindex(pl);
        v->host_index = rtnl_link_get_link(pl);
        mac_str(rtnl_link_get_addr(pl), v->pod_mac);
        if (!(up = rtnl_link_alloc()))
                return -ENOMEM;
        rtnl_link_set_flags(up, IFF_UP);
        if (mtu)
                rtnl_link_set_mtu(up, mtu);
        r = nlerr_errno(rtnl_link_change(c->podsk, pl, up, 0));
        return r < 0 ? errmsg_set(err, r, "cannot bring %s up: %s", v->pod_ifname, strerror(-r)) : 0;
}

static int pod_link(struct dp_wiring *c, struct errmsg *err) {
        int r = pod_end_up(c, &c->main, mtu_pending(c) ? c->pod.mtu : 0, err);
        if (r < 0 || !mtu_pending(c))
                return r;
        _cleanup_(link_putp) struct rtnl_link *host = rtnl_link_alloc(), *mtu = rtnl_link_alloc();
        if (!host || !mtu)
                return -ENOMEM;
        rtnl_link_set_ifindex(host, c->main.host_index);
        rtnl_link_set_mtu(mtu, c->pod.mtu);
        r = nlerr_errno(rtnl_link_change(c->host, host, mtu, 0));
        return r < 0 ? errmsg_set(err, r, "cannot set the MTU of %s to %u: %s", c->main.name, c->pod.mtu,
                                  strerror(-r))
                     : 0;
}

/* ip/plen on ifindex, with scope (IPv4) and IFA_F_* flags. */
static int addr_add(struct nl_sock *sk, int ifindex, const char *ip, unsigned plen, int scope, unsigned flags) {
        _cleanup_(addr_putp) struct nl_addr *local = ipaddr(ip, plen);
        _cleanup_(rtaddr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
        if (!a || !local)
                return -ENOMEM;
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_local(a, local);
        if (scope >= 0)
                rtnl_addr_set_scope(a, scope);
        if (flags)
                rtnl_addr_set_flags(a, flags);
        return nlerr_errno(rtnl_addr_add(sk, a, NLM_F_EXCL));
}

/* A route: dst/plen [via gw] [src src] dev ifindex [scope] (IPv6 routes
 * have no scope: the kernel keeps universe). */
struct rt {
        const char *dst;
        unsigned plen;
        const char *gw;
        const char *src;
        int ifindex;
        uint8_t scope;
};

static uint8_t rt_scope(const struct rt *rt) {
        return is_v6(rt->dst) ? RT_SCOPE_UNIVERSE : rt->scope;
}

static int route_change(struct nl_sock *sk, bool add, const struct rt *rt, uint32_t table, int flags) {
        _cleanup_(addr_putp) struct nl_addr *d = ipaddr(rt->dst, rt->plen);
        _cleanup_(addr_putp) struct nl_addr *g = rt->gw ? ipaddr(rt->gw, host_len(rt->gw)) : NULL;
        _cleanup_(addr_putp) struct nl_addr *src = rt->src ? ipaddr(rt->src, host_len(rt->src)) : NULL;
        _cleanup_(route_putp) struct rtnl_route *r = rtnl_route_alloc();
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();  /* the route owns it once added */
        if (!r || !nh || !d || (rt->gw && !g) || (rt->src && !src)) {
                if (nh)
                        rtnl_route_nh_free(nh);
                return -ENOMEM;
        }
        rtnl_route_set_family(r, is_v6(rt->dst) ? AF_INET6 : AF_INET);
        rtnl_route_set_dst(r, d);
        rtnl_route_set_table(r, table);
        rtnl_route_set_scope(r, rt_scope(rt));
        rtnl_route_set_protocol(r, RTPROT_BOOT);
        if (src)
                rtnl_route_set_pref_src(r, src);
        rtnl_route_nh_set_ifindex(nh, rt->ifindex);
        if (g)
                rtnl_route_nh_set_gateway(nh, g);
        rtnl_route_add_nexthop(r, nh);
        return nlerr_errno(add ? rtnl_route_add(sk, r, flags) : rtnl_route_delete(sk, r, 0));
}

static int pod_neigh(struct dp_wiring *c) {
        const char *gw = pod_gateway(c->ip);
        _cleanup_(addr_putp) struct nl_addr *dst = ipaddr(gw, host_len(gw));
        _cleanup_(addr_putp) struct nl_addr *ll = nl_addr_build(AF_LLC, c->main.mac, 6);
        _cleanup_(neigh_putp) struct rtnl_neigh *n = rtnl_neigh_alloc();
        if (!n || !dst || !ll)
                return -ENOMEM;
        rtnl_neigh_set_ifindex(n, c->main.pod_index);
        rtnl_neigh_set_dst(n, dst);
        rtnl_neigh_set_lladdr(n, ll);
        rtnl_neigh_set_state(n, NUD_PERMANENT);
        return nlerr_errno(rtnl_neigh_add(c->podsk, n, NLM_F_CREATE | NLM_F_REPLACE));
}

static int host_alias(struct dp_wiring *c, const struct veth *v) {
        char alias[PROTO_VETH_ALIAS_MAX];
        _cleanup_(link_putp) struct rtnl_link *orig = rtnl_link_alloc(), *change = rtnl_link_alloc();
        if (!orig || !change)
                return -ENOMEM;
        alias_of(c->pod.container_id, c->pod.ifname, v->egress, alias);
        /* its index is learned later, from the pod end: the kernel finds it by name */
        rtnl_link_set_name(orig, v->name);
        rtnl_link_set_name(change, v->name);
        rtnl_link_set_ifalias(change, alias);
        return nlerr_errno(rtnl_link_change(c->host, orig, change, 0));
}

/* Rule "to ip" (from == false) or "from ip" lookup table, at prio (either family). */
static int rule_change(struct nl_sock *sk, bool add, bool from, const char *ip, uint32_t table, uint32_t prio) {
        _cleanup_(addr_putp) struct nl_addr *a = ipaddr(ip, host_len(ip));
        _cleanup_(rule_putp) struct rtnl_rule *rule = rtnl_rule_alloc();
        if (!rule || !a)
                return -ENOMEM;
        rtnl_rule_set_family(rule, is_v6(ip) ? AF_INET6 : AF_INET);
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

/* The rules of a pod address: "to" always, "from" for IPv4 only. */
static int rules_remove(struct nl_sock *sk, const char *ip, unsigned *removed) {
        int r = rule_remove_all(sk, false, ip, DP_RULE_PRIO_TO, removed);
        if (r >= 0 && !is_v6(ip))
                r = rule_remove_all(sk, true, ip, DP_RULE_PRIO_FROM, removed);
        return r;
}

/*
 * Short DAD on dev (see the top): no random start delay
 * (router_solicitation_delay 0) and DP_DAD_RETRANS_MS after each probe;
 * the link's own retrans_time_ms is kept in saved, and wait_dad() puts it
 * back once DAD is done. nsfd < 0: the node's namespace.
 */
static int dad_fast(int nsfd, const char *dev, char saved[static 16], enum dp_step step, struct errmsg *err) {
        char conf[96], neigh[96], ms[16];
        snprintf(conf, sizeof conf, "net/ipv6/conf/%s/router_solicitation_delay", dev);
        snprintf(neigh, sizeof neigh, "net/ipv6/neigh/%s/retrans_time_ms", dev);
        snprintf(ms, sizeof ms, "%d", DP_DAD_RETRANS_MS);
        const char *path = neigh;
        int r = netns_sysctl_read(nsfd, neigh, saved, 16);
        if (r >= 0 && (r = netns_sysctl_write(nsfd, neigh, ms)) >= 0) {
                path = conf;
                r = netns_sysctl_write(nsfd, conf, "0");
        }
        return r < 0 ? errmsg_set(err, r, "%s: cannot set %s: %s", dp_step_name(step), path, strerror(-r)) : 0;
}

/* Put back the retrans_time_ms dad_fast() found on both links. */
static int dad_restore(struct dp_wiring *c, struct errmsg *err) {
        char path[96];
        snprintf(path, sizeof path, "net/ipv6/neigh/%s/retrans_time_ms", c->pod.ifname);
        int r = netns_sysctl_write(c->nsfd, path, c->pod_retrans);
        if (r >= 0) {
                snprintf(path, sizeof path, "net/ipv6/neigh/%s/retrans_time_ms", c->main.name);
                r = netns_sysctl_write(-1, path, c->host_retrans);
        }
        return r < 0 ? errmsg_set(err, r, "%s: cannot restore %s: %s", dp_step_name(DP_STEP_POD_DAD), path,
                                  strerror(-r))
                     : 0;
}

/* The IPv6 sysctls of the host veth, as aws-node sets them (see the top), and short DAD for its link-local. */
static int host_sysctls(struct dp_wiring *c, struct errmsg *err) {
        static const char *const set[][2] = { { "accept_ra", "0" }, { "accept_redirects", "1" }, { "forwarding", "0" } };
        char path[96];
        for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
                snprintf(path, sizeof path, "net/ipv6/conf/%s/%s", c->main.name, set[i][0]);
                int r = netns_sysctl_write(-1, path, set[i][1]);
                if (r < 0)
                        return errmsg_set(err, r, "%s: cannot set %s to %s: %s", dp_step_name(DP_STEP_HOST_SYSCTL6),
                                          path, set[i][1], strerror(-r));
        }
        return dad_fast(-1, c->main.name, c->host_retrans, DP_STEP_HOST_SYSCTL6, err);
}

static int pod_sysctls(struct dp_wiring *c, struct errmsg *err) {
        const char *ifs[] = { "lo", c->pod.ifname };
        char path[96];
        for (size_t i = 0; i < 2; i++) {
                snprintf(path, sizeof path, "net/ipv6/conf/%s/disable_ipv6", ifs[i]);
                int r = netns_sysctl_write(c->nsfd, path, "0");
                if (r < 0)
                        return errmsg_set(err, r, "%s: cannot set %s to 0 in the pod: %s",
                                          dp_step_name(DP_STEP_POD_SYSCTL6), path, strerror(-r));
        }
        return dad_fast(c->nsfd, c->pod.ifname, c->pod_retrans, DP_STEP_POD_SYSCTL6, err);
}

/* 1 while an IPv6 address of link ifindex (sk's namespace) is tentative, 0
 * when none is, -EADDRINUSE (named in what) when one failed DAD. */
static int dad_state(struct nl_sock *sk, int ifindex, char what[static 64]) {
        _cleanup_(cache_freep) struct nl_cache *addrs = NULL;
        int r = nlerr_errno(rtnl_addr_alloc_cache(sk, &addrs)), pending = 0;
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
                struct rtnl_addr *a = (struct rtnl_addr *)o;
                unsigned flags = (unsigned)rtnl_addr_get_flags(a);
                if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET6 ||
                    !(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)))
                        continue;
                nl_addr2str(rtnl_addr_get_local(a), what, 64);
                if (flags & IFA_F_DADFAILED)
                        return -EADDRINUSE;
                pending = 1;
        }
        return pending;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* dad_state() of the pod interface, then of the host veth (whose link-local
 * the node needs to resolve the pod); *where names the link. */
static int dad_pending(struct dp_wiring *c, char what[static 64], const char **where) {
        *where = c->pod.ifname;
        int r = dad_state(c->podsk, c->main.pod_index, what);
        if (r != 0)
                return r;
        *where = c->main.name;
        return dad_state(c->host, c->main.host_index, what);
}

static int wait_dad(struct dp_wiring *c, struct errmsg *err) {
        long t0 = now_ms(), limit = c->pod.dad_timeout_ms ? c->pod.dad_timeout_ms : DP_DAD_TIMEOUT_MS;
        const char *where;
        char what[64] = "";
        for (;;) {
                int r = dad_pending(c, what, &where);
                if (r == -EADDRINUSE)
                        return errmsg_set(err, r, "%s: %s on %s is a duplicate (DAD failed)",
                                          dp_step_name(DP_STEP_POD_DAD), what, where);
                if (r < 0)
                        return errmsg_set(err, r, "%s: cannot read the addresses of %s: %s",
                                          dp_step_name(DP_STEP_POD_DAD), where, strerror(-r));
                if (r == 0)
                        return dad_restore(c, err);
                if (now_ms() - t0 >= limit)
                        return errmsg_set(err, -ETIMEDOUT, "%s: %s on %s still tentative after %ld ms",
                                          dp_step_name(DP_STEP_POD_DAD), what, where, limit);
                sleep_ms(DP_DAD_POLL_MS);
        }
}

static int link_delete_name(struct nl_sock *sk, const char *name) {
        _cleanup_(link_putp) struct rtnl_link *l = rtnl_link_alloc();
        if (!l)
                return -ENOMEM;
        rtnl_link_set_name(l, name);
        return nlerr_errno(rtnl_link_delete(sk, l));
}

static void rollback(struct dp_wiring *c) {
        if (c->made & (1u << DP_STEP_RULE_FROM))
                (void)rule_change(c->host, false, true, c->ip, c->pod.route_table, DP_RULE_PRIO_FROM);
        if (c->made & (1u << DP_STEP_RULE_TO))
                (void)rule_change(c->host, false, false, c->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO);
        if (c->made & (1u << DP_STEP_EGRESS_VETH))
                (void)link_delete_name(c->host, c->eg.name);
        if (c->made & (1u << DP_STEP_VETH))
                (void)link_delete_name(c->host, c->main.name);
        c->made = 0;
}

static bool applies(const struct dp_wiring *c, enum dp_step step) {
        if (step >= DP_STEP_EGRESS_VETH)
                return c->egress_ip[0] != '\0';
        if (step >= DP_STEP_HOST_SYSCTL6)
                return is_v6(c->ip);
        return step != DP_STEP_RULE_FROM || !is_v6(c->ip);
}

/* The pod's own steps (the main veth); 1: nothing made (kept a rule that was there). */
static int pod_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err) {
        const struct dp_pod *p = &c->pod;
        const char *gw = pod_gateway(c->ip), *any = is_v6(c->ip) ? "::" : "0.0.0.0";
        int pi = c->main.pod_index, r;
        switch (step) {
        case DP_STEP_VETH: return make_veth(c, &c->main, err);
        case DP_STEP_HOST_ALIAS: return host_alias(c, &c->main);
        case DP_STEP_HOST_SYSCTL6: return host_sysctls(c, err);
        case DP_STEP_POD_SYSCTL6: return pod_sysctls(c, err);
        case DP_STEP_POD_LINK: return pod_link(c, err);
        case DP_STEP_POD_DAD: return wait_dad(c, err);
        case DP_STEP_POD_ADDR: return addr_add(c->podsk, pi, c->ip, host_len(c->ip), -1, 0);
        case DP_STEP_POD_GW_ROUTE:
                return route_change(c->podsk, true, &(struct rt){ gw, host_len(gw), NULL, NULL, pi, RT_SCOPE_LINK },
                                    RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_POD_DEFAULT_ROUTE:
                return route_change(c->podsk, true, &(struct rt){ any, 0, gw, NULL, pi, RT_SCOPE_UNIVERSE },
                                    RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_POD_NEIGH: return pod_neigh(c);
        case DP_STEP_HOST_ROUTE:
                return route_change(c->host, true,
                                    &(struct rt){ c->ip, host_len(c->ip), NULL, NULL, c->main.host_index, RT_SCOPE_LINK },
                                    RT_TABLE_MAIN, NLM_F_REPLACE);
        case DP_STEP_RULE_TO:
                r = rule_change(c->host, true, false, c->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO);
                return r == -EEXIST ? 1 : r;
        case DP_STEP_RULE_FROM:
                if (p->route_table == RT_TABLE_MAIN)
                        return 1;
                r = rule_change(c->host, true, true, c->ip, p->route_table, DP_RULE_PRIO_FROM);
                return r == -EEXIST ? 1 : r;
        default: return -EINVAL;
        }
}

/* The egress veth's steps. */
static int egress_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err) {
        const char *x = c->egress_ip, *gw = PROTO_EGRESS4_GATEWAY;
        int pi = c->eg.pod_index;
        switch (step) {
        case DP_STEP_EGRESS_VETH: return make_veth(c, &c->eg, err);
        case DP_STEP_EGRESS_ALIAS: return host_alias(c, &c->eg);
        case DP_STEP_EGRESS_POD_LINK: return pod_end_up(c, &c->eg, 0, err);
        case DP_STEP_EGRESS_POD_ADDR:
                /* X/22 without the connected route, which the next two replace */
                return addr_add(c->podsk, pi, x, EGRESS_PLEN, -1, IFA_F_NOPREFIXROUTE);
        case DP_STEP_EGRESS_POD_GW_ROUTE:
                return route_change(c->podsk, true, &(struct rt){ gw, 32, NULL, x, pi, RT_SCOPE_LINK }, RT_TABLE_MAIN,
                                    NLM_F_EXCL);
        case DP_STEP_EGRESS_POD_NET_ROUTE:
                return route_change(c->podsk, true, &(struct rt){ EGRESS_NET, EGRESS_PLEN, gw, NULL, pi, RT_SCOPE_UNIVERSE },
                                    RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_EGRESS_POD_DEFAULT_ROUTE:
                return route_change(c->podsk, true, &(struct rt){ "0.0.0.0", 0, gw, NULL, pi, RT_SCOPE_UNIVERSE },
                                    RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_EGRESS_HOST_ADDR: return addr_add(c->host, c->eg.host_index, gw, 32, RT_SCOPE_LINK, 0);
        case DP_STEP_EGRESS_HOST_ROUTE:
                return route_change(c->host, true, &(struct rt){ x, 32, NULL, NULL, c->eg.host_index, RT_SCOPE_LINK },
                                    RT_TABLE_MAIN, NLM_F_REPLACE);
        default: return -EINVAL;
        }
}

/* One step of ADD; a rule that already exists (a leftover for this very
 * address) is kept and not marked as ours (1). */
static int run_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err) {
        const struct dp_pod *p = &c->pod;
        int r = p->fault ? p->fault(step, p->fault_data) : 0;
        if (r < 0)
                return errmsg_set(err, r, "%s: injected failure", dp_step_name(step));
        errmsg_clear(err);
        r = step >= DP_STEP_EGRESS_VETH ? egress_step(c, step, err) : pod_step(c, step, err);
        if (r < 0 && (!err || !err->code))
                errmsg_set(err, r, "%s: %s", dp_step_name(step), strerror(-r));
        return r;
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

static int random_mac(unsigned char mac[static 6]) {
        if (getrandom(mac, 6, 0) != 6)
                return -EIO;
        mac[0] = (unsigned char)((mac[0] & 0xfe) | 0x02);   /* unicast, locally administered */
        return 0;
}

int dp_wiring_open(const char *netns, const struct dp_pod *pod, dp_wiring **ret, struct errmsg *err) {
        dp_wiring *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->pod = *pod;
        c->pod.ip = c->ip;
        c->pod.egress_ip = c->egress_ip;
        c->nsfd = -1;
        c->main = (struct veth){ .egress = false, .pod_ifname = c->pod.ifname };
        c->eg = (struct veth){ .egress = true, .pod_ifname = DP_EGRESS_IFNAME };
        int r = open_pod(netns, &c->nsfd, &c->podsk, err);
        if (r >= 0 && (r = netns_nl_socket_here(&c->host)) < 0)
                errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if (r >= 0 && (random_mac(c->main.mac) < 0 || random_mac(c->eg.mac) < 0))
                r = errmsg_set(err, -EIO, "getrandom failed");
        if (r < 0) {
                dp_wiring_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

/* Run order[from, to) (the steps that apply); the first failure undoes every step made. */
static int run_steps(dp_wiring *c, size_t from, size_t to, struct errmsg *err) {
        for (size_t i = from; i < to; i++) {
                if (!applies(c, order[i]))
                        continue;
                int r = run_step(c, order[i], err);
                if (r < 0) {
                        rollback(c);
                        return r;
                }
                if (r == 0)
                        c->made |= 1u << order[i];
        }
        return 0;
}

int dp_wiring_veth(dp_wiring *c, struct errmsg *err) {
        if (c->made)
                return errmsg_set(err, -EALREADY, "the veth of this pod is already made");
        int r = ensure_forwarding(err);
        if (r < 0)
                return r;
        c->veth_mtu = c->pod.mtu;
        return run_steps(c, 0, VETH_STEPS, err);
}

/* An egress address is an IPv4 one in PROTO_EGRESS4_CIDR, for IPv6 pods only. */
static bool valid_egress(const char *ip, const char *egress_ip) {
        _cleanup_(addr_putp) struct nl_addr *net = ipaddr(EGRESS_NET, EGRESS_PLEN), *x = NULL;
        if (!egress_ip || !*egress_ip)
                return true;
        if (!is_v6(ip) || !proto_valid_ipv4(egress_ip) || !net || !(x = ipaddr(egress_ip, 32)))
                return false;
        return nl_addr_cmp_prefix(net, x) == 0;
}

static void links_of(const dp_wiring *c, struct dp_links *ret) {
        *ret = (struct dp_links){ 0 };
        snprintf(ret->host_ifname, sizeof ret->host_ifname, "%s", c->main.name);
        mac_bytes_str(c->main.mac, ret->host_mac);
        snprintf(ret->pod_mac, sizeof ret->pod_mac, "%s", c->main.pod_mac);
        if (!c->egress_ip[0])
                return;
        snprintf(ret->egress_host_ifname, sizeof ret->egress_host_ifname, "%s", c->eg.name);
        mac_bytes_str(c->eg.mac, ret->egress_host_mac);
        snprintf(ret->egress_pod_mac, sizeof ret->egress_pod_mac, "%s", c->eg.pod_mac);
}

int dp_wiring_finish(dp_wiring *c, const char *ip, const char *egress_ip, uint32_t route_table, unsigned mtu,
                     struct dp_links *ret, struct errmsg *err) {
        if (!(c->made & (1u << DP_STEP_VETH)))
                return errmsg_set(err, -EINVAL, "no veth made for this pod");
        if (!ip || !proto_valid_ip(ip) || !valid_egress(ip, egress_ip)) {
                rollback(c);
                return errmsg_set(err, -EINVAL, ip && proto_valid_ip(ip) ? "no valid egress address for this pod"
                                                                           : "no valid pod address");
        }
        snprintf(c->ip, sizeof c->ip, "%s", ip);
        snprintf(c->egress_ip, sizeof c->egress_ip, "%s", egress_ip ? egress_ip : "");
        c->pod.route_table = route_table;
        if (mtu)
                c->pod.mtu = mtu;
        int r = run_steps(c, VETH_STEPS, N_STEPS, err);
        if (r < 0)
                return r;
        links_of(c, ret);
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
        if (!pod->ip || !proto_valid_ip(pod->ip))
                return errmsg_set(err, -EINVAL, "no valid pod address");
        dp_wiring *w = NULL;
        int r = dp_wiring_open(netns, pod, &w, err);
        if (r >= 0)
                r = dp_wiring_veth(w, err);
        if (r >= 0)
                r = dp_wiring_finish(w, pod->ip, pod->egress_ip, pod->route_table, pod->mtu, ret, err);
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
        if ((r = find_host_veth(host, pod, host_ifname_hint, false, &veth)) < 0)
                return r == -ENOENT ? r : errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        snprintf(ret, PROTO_IFNAME_MAX + 1, "%s", rtnl_link_get_name(veth));
        return 0;
}

/* Delete the attachment's main or egress veth when there is one. */
static int del_veth(struct nl_sock *host, const struct dp_pod *pod, const char *hint, bool egress,
                    struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        int r = find_host_veth(host, pod, hint, egress, &veth);
        if (r == -ENOENT)
                return 0;               /* gone with its namespace, or never made */
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the host %sveth: %s", egress ? "egress " : "",
                                  strerror(-r));
        r = nlerr_errno(rtnl_link_delete(host, veth));
        if (r < 0 && r != -ENODEV && r != -ENOENT)
                return errmsg_set(err, r, "cannot delete veth %s: %s", rtnl_link_get_name(veth), strerror(-r));
        return 0;
}

int dp_del(const struct dp_pod *pod, const char *host_ifname_hint, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if (pod->ip && *pod->ip && (r = rules_remove(host, pod->ip, NULL)) < 0)
                return errmsg_set(err, r, "cannot remove the rules of %s: %s", pod->ip, strerror(-r));
        r = del_veth(host, pod, host_ifname_hint, false, err);
        return r < 0 ? r : del_veth(host, pod, NULL, true, err);
}

int dp_del_egress(const struct dp_pod *pod, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        return del_veth(host, pod, NULL, true, err);
}

/* --- CHECK ---------------------------------------------------------------------------- */

struct diff {
        char text[ERRMSG_MAX];
        size_t len;
        unsigned n;
};

static void differ(struct diff *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void differ(struct diff *d, const char *fmt, ...) {
        char what[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        int n = snprintf(d->text + d->len, sizeof d->text - d->len, "%s%s", d->n ? "; " : "", what);
        if (n > 0)
                d->len = d->len + (size_t)n < sizeof d->text ? d->len + (size_t)n : sizeof d->text - 1;
        d->n++;
}

/* The address ip/plen on ifindex: NULL when absent. */
static struct rtnl_addr *find_addr(struct nl_cache *cache, int ifindex, const char *ip, unsigned plen) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_addr *a = (struct rtnl_addr *)o;
                if (rtnl_addr_get_ifindex(a) == ifindex && addr_is(rtnl_addr_get_local(a), ip, plen))
                        return a;
        }
        return NULL;
}

/* The route rt in table, with exactly its gateway (or none). */
static bool has_route(struct nl_cache *cache, const struct rt *rt, uint32_t table) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *r = (struct rtnl_route *)o;
                if (rtnl_route_get_table(r) != table || rtnl_route_get_scope(r) != rt_scope(rt) ||
                    !addr_is(rtnl_route_get_dst(r), rt->dst, rt->plen) || rtnl_route_get_nnexthops(r) != 1)
                        continue;
                struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
                struct nl_addr *g = rtnl_route_nh_get_gateway(nh);
                if (rtnl_route_nh_get_ifindex(nh) == rt->ifindex &&
                    (rt->gw ? g && addr_is(g, rt->gw, host_len(rt->gw)) : !g))
                        return true;
        }
        return false;
}

static bool has_neigh(struct nl_cache *cache, int ifindex, const char *ip, const char *mac) {
        char got[18];
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_neigh *n = (struct rtnl_neigh *)o;
                if (rtnl_neigh_get_ifindex(n) != ifindex || !addr_is(rtnl_neigh_get_dst(n), ip, host_len(ip)))
                        continue;
                mac_str(rtnl_neigh_get_lladdr(n), got);
                return strcmp(got, mac) == 0 && (rtnl_neigh_get_state(n) & NUD_PERMANENT);
        }
        return false;
}

static bool has_rule(struct nl_cache *cache, bool from, const char *ip, uint32_t table, uint32_t prio) {
        unsigned len = host_len(ip);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_rule *r = (struct rtnl_rule *)o;
                if (rtnl_rule_get_prio(r) == prio && rtnl_rule_get_table(r) == table &&
                    rtnl_rule_get_action(r) == FR_ACT_TO_TBL &&
                    addr_is(from ? rtnl_rule_get_src(r) : rtnl_rule_get_dst(r), ip, len) &&
                    (from ? !rtnl_rule_get_dst(r) || !nl_addr_get_prefixlen(rtnl_rule_get_dst(r))
                          : !rtnl_rule_get_src(r) || !nl_addr_get_prefixlen(rtnl_rule_get_src(r))))
                        return true;
        }
        return false;
}

/* The caches of one namespace that CHECK compares with; family of the routes and rules. */
struct view {
        struct nl_cache *addrs, *routes, *neighs, *rules;
};

static void view_free(struct view *v) {
        nl_cache_free(v->addrs);
        nl_cache_free(v->routes);
        nl_cache_free(v->neighs);
        nl_cache_free(v->rules);
}

static int view_read(struct nl_sock *sk, int family, bool rules, struct view *v) {
        int r;
        *v = (struct view){ 0 };
        if ((r = nlerr_errno(rtnl_addr_alloc_cache(sk, &v->addrs))) < 0 ||
            (r = nlerr_errno(rtnl_route_alloc_cache(sk, family, 0, &v->routes))) < 0 ||
            (r = nlerr_errno(rtnl_neigh_alloc_cache(sk, &v->neighs))) < 0 ||
            (rules && (r = nlerr_errno(rtnl_rule_alloc_cache(sk, family, &v->rules))) < 0)) {
                view_free(v);
                return r;
        }
        return 0;
}

/* The pod interface ifname: its index, or 0 with the difference noted. */
static int check_link(struct nl_sock *sk, const char *ifname, struct diff *d, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *pl = NULL;
        int r = link_get(sk, ifname, &pl);
        if (r == -ENOENT || r == -ENODEV) {
                differ(d, "pod interface %s is missing", ifname);
                return 0;
        }
        if (r < 0)
                return errmsg_set(err, r, "cannot read pod interface %s: %s", ifname, strerror(-r));
        if (!(rtnl_link_get_flags(pl) & IFF_UP))
                differ(d, "pod interface is down (%s)", ifname);
        return rtnl_link_get_ifindex(pl);
}

/* What differs is added to d; a failure to read the kernel is returned
 * (it says nothing about drift). */
static int check_pod(struct nl_sock *sk, const struct dp_pod *pod, const char *host_mac, struct diff *d,
                     struct errmsg *err) {
        const char *gw = pod_gateway(pod->ip), *any = is_v6(pod->ip) ? "::" : "0.0.0.0";
        unsigned len = host_len(pod->ip);
        int idx = check_link(sk, pod->ifname, d, err);
        if (idx <= 0)
                return idx;
        struct view v;
        int r = view_read(sk, is_v6(pod->ip) ? AF_INET6 : AF_INET, false, &v);
        if (r < 0)
                return errmsg_set(err, r, "cannot read the pod namespace's addresses, routes or neighbours: %s",
                                  strerror(-r));
        struct rtnl_addr *a = find_addr(v.addrs, idx, pod->ip, len);
        if (!a)
                differ(d, "pod address %s/%u is missing on %s", pod->ip, len, pod->ifname);
        else if (rtnl_addr_get_flags(a) & (IFA_F_DADFAILED | IFA_F_TENTATIVE))
                differ(d, "pod address %s/%u on %s is %s", pod->ip, len, pod->ifname,
                       rtnl_addr_get_flags(a) & IFA_F_DADFAILED ? "a duplicate (DAD failed)" : "tentative");
        if (!has_route(v.routes, &(struct rt){ gw, host_len(gw), NULL, NULL, idx, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "pod route %s scope link is missing", gw);
        if (!has_route(v.routes, &(struct rt){ any, 0, gw, NULL, idx, RT_SCOPE_UNIVERSE }, RT_TABLE_MAIN))
                differ(d, "pod default route via %s is missing", gw);
        if (!has_neigh(v.neighs, idx, gw, host_mac))
                differ(d, "pod neighbour %s is missing, not permanent or not the host veth's MAC", gw);
        view_free(&v);
        return 0;
}

/* The IPv6 sysctls host_sysctls() sets. */
static void check_host_sysctls(const char *veth, struct diff *d) {
        static const char *const want[][2] = { { "accept_ra", "0" }, { "accept_redirects", "1" }, { "forwarding", "0" } };
        char path[96], got[16];
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                snprintf(path, sizeof path, "net/ipv6/conf/%s/%s", veth, want[i][0]);
                if (netns_sysctl_read_here(path, got, sizeof got) < 0 || strcmp(got, want[i][1]) != 0)
                        differ(d, "host veth sysctl %s is not %s", path, want[i][1]);
        }
}

static int check_host(struct nl_sock *sk, const struct dp_pod *pod, int host_index, const char *veth, struct diff *d,
                      struct errmsg *err) {
        struct view v;
        unsigned len = host_len(pod->ip);
        int r = view_read(sk, is_v6(pod->ip) ? AF_INET6 : AF_INET, true, &v);
        if (r < 0)
                return errmsg_set(err, r, "cannot read the host routes or rules: %s", strerror(-r));
        if (!has_route(v.routes, &(struct rt){ pod->ip, len, NULL, NULL, host_index, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "host route %s/%u via the veth is missing", pod->ip, len);
        if (!has_rule(v.rules, false, pod->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO))
                differ(d, "rule \"to %s lookup main\" prio %d is missing", pod->ip, DP_RULE_PRIO_TO);
        if (!is_v6(pod->ip) && pod->route_table != RT_TABLE_MAIN &&
            !has_rule(v.rules, true, pod->ip, pod->route_table, DP_RULE_PRIO_FROM))
                differ(d, "rule \"from %s lookup %u\" prio %d is missing", pod->ip, pod->route_table,
                       DP_RULE_PRIO_FROM);
        view_free(&v);
        if (is_v6(pod->ip))
                check_host_sysctls(veth, d);
        return 0;
}

/* The egress pair of an IPv6 pod: host end, its address and route, the pod end's address and routes. */
static int check_egress(struct nl_sock *host, struct nl_sock *podsk, const struct dp_pod *pod, struct diff *d,
                        struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        const char *x = pod->egress_ip, *gw = PROTO_EGRESS4_GATEWAY;
        struct view hv, pv;
        int r = find_host_veth(host, pod, NULL, true, &veth);
        if (r == -ENOENT) {
                differ(d, "egress veth of %s/%s is missing", pod->container_id, pod->ifname);
                return 0;
        }
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the egress veth: %s", strerror(-r));
        int hi = rtnl_link_get_ifindex(veth);
        if (!(rtnl_link_get_flags(veth) & IFF_UP))
                differ(d, "egress veth is down");
        int pi = check_link(podsk, DP_EGRESS_IFNAME, d, err);
        if (pi < 0)
                return pi;
        if ((r = view_read(host, AF_INET, false, &hv)) < 0)
                return errmsg_set(err, r, "cannot read the host's addresses or routes: %s", strerror(-r));
        if (!find_addr(hv.addrs, hi, gw, 32))
                differ(d, "egress gateway address %s/32 is missing on the egress veth", gw);
        if (!has_route(hv.routes, &(struct rt){ x, 32, NULL, NULL, hi, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "host route %s/32 via the egress veth is missing", x);
        view_free(&hv);
        if (pi == 0)
                return 0;
        if ((r = view_read(podsk, AF_INET, false, &pv)) < 0)
                return errmsg_set(err, r, "cannot read the pod's addresses or routes: %s", strerror(-r));
        if (!find_addr(pv.addrs, pi, x, EGRESS_PLEN))
                differ(d, "egress address %s/%d is missing on %s", x, EGRESS_PLEN, DP_EGRESS_IFNAME);
        if (!has_route(pv.routes, &(struct rt){ gw, 32, NULL, NULL, pi, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "egress route %s scope link is missing", gw);
        if (!has_route(pv.routes, &(struct rt){ EGRESS_NET, EGRESS_PLEN, gw, NULL, pi, RT_SCOPE_UNIVERSE }, RT_TABLE_MAIN))
                differ(d, "egress route %s/%d via %s is missing", EGRESS_NET, EGRESS_PLEN, gw);
        if (!has_route(pv.routes, &(struct rt){ "0.0.0.0", 0, gw, NULL, pi, RT_SCOPE_UNIVERSE }, RT_TABLE_MAIN))
                differ(d, "egress default route via %s is missing", gw);
        view_free(&pv);
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
        r = find_host_veth(host, pod, NULL, false, &veth);
        if (r == -ENOENT)
                return errmsg_set(err, -EUCLEAN, "host veth of %s/%s is missing", pod->container_id, pod->ifname);
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        if (!(rtnl_link_get_flags(veth) & IFF_UP))
                differ(&d, "host veth is down");
        mac_str(rtnl_link_get_addr(veth), mac);
        if ((r = check_pod(podsk, pod, mac, &d, err)) < 0 ||
            (r = check_host(host, pod, rtnl_link_get_ifindex(veth), rtnl_link_get_name(veth), &d, err)) < 0 ||
            (pod->egress_ip && *pod->egress_ip && (r = check_egress(host, podsk, pod, &d, err)) < 0))
                return r;
        if (d.n)
                return errmsg_set(err, -EUCLEAN, "%s", d.text);
        return 0;
}

/* --- GC ------------------------------------------------------------------------------- */

/* One of our aliases (main or egress) of an attachment listed in valid[]. */
static bool alias_valid(const char *alias, bool egress, const struct proto_attachment *valid, size_t n_valid) {
        char want[PROTO_VETH_ALIAS_MAX];
        for (size_t i = 0; i < n_valid; i++) {
                alias_of(valid[i].container_id, valid[i].ifname, egress, want);
                if (strcmp(alias, want) == 0)
                        return true;
        }
        return false;
}

static bool starts_with(const char *s, const char *prefix) {
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A veth of ours (by name and alias) whose attachment is not in valid[]. */
static bool gc_candidate(struct rtnl_link *l, const char *prefix, const struct proto_attachment *valid,
                         size_t n_valid) {
        const char *name = rtnl_link_get_name(l), *alias = rtnl_link_get_ifalias(l);
        if (!starts_with(name, prefix))
                return false;
        if (starts_with(alias, PROTO_VETH_ALIAS_PREFIX))
                return !alias_valid(alias, false, valid, n_valid);
        if (starts_with(alias, DP_EGRESS_ALIAS_PREFIX))
                return !alias_valid(alias, true, valid, n_valid);
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
                if (!gc_candidate(l, prefix, valid, n_valid))
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
                r = rules_remove(host, released[i], &removed);
                if (r < 0)
                        return errmsg_set(err, r, "cannot remove the rules of %s: %s", released[i], strerror(-r));
        }
        r = gc_veths(host, veth_prefix, valid, n_valid, &removed);
        *ret_removed = removed;
        return r < 0 ? errmsg_set(err, r, "cannot remove leftover veths: %s", strerror(-r)) : 0;
}

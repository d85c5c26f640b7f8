/*
 * dataplane-check: CHECK compares the kernel with what ADD makes (for the
 * pod address's family, and the egress veth when there is an egress
 * address), reading each namespace's addresses, routes, neighbours and
 * rules once into caches, and names every difference it finds; a failure
 * to read the kernel is an error of its own, never taken for drift.
 */
#include "dataplane-internal.h"

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
                if (rtnl_addr_get_ifindex(a) == ifindex && dpi_addr_is(rtnl_addr_get_local(a), ip, plen))
                        return a;
        }
        return NULL;
}

/* The route rt in table, with exactly its gateway (or none). */
static bool has_route(struct nl_cache *cache, const struct rt *rt, uint32_t table) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *r = (struct rtnl_route *)o;
                if (rtnl_route_get_table(r) != table || rtnl_route_get_scope(r) != dpi_rt_scope(rt) ||
                    !dpi_addr_is(rtnl_route_get_dst(r), rt->dst, rt->plen) || rtnl_route_get_nnexthops(r) != 1)
                        continue;
                struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, 0);
                struct nl_addr *g = rtnl_route_nh_get_gateway(nh);
                if (rtnl_route_nh_get_ifindex(nh) == rt->ifindex &&
                    (rt->gw ? g && dpi_addr_is(g, rt->gw, dpi_host_len(rt->gw)) : !g))
                        return true;
        }
        return false;
}

static bool has_neigh(struct nl_cache *cache, int ifindex, const char *ip, const char *mac) {
        char got[18];
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_neigh *n = (struct rtnl_neigh *)o;
                if (rtnl_neigh_get_ifindex(n) != ifindex || !dpi_addr_is(rtnl_neigh_get_dst(n), ip, dpi_host_len(ip)))
                        continue;
                dpi_mac_str(rtnl_neigh_get_lladdr(n), got);
                return strcmp(got, mac) == 0 && (rtnl_neigh_get_state(n) & NUD_PERMANENT);
        }
        return false;
}

static bool has_rule(struct nl_cache *cache, bool from, const char *ip, uint32_t table, uint32_t prio) {
        unsigned len = dpi_host_len(ip);
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
                struct rtnl_rule *r = (struct rtnl_rule *)o;
                if (rtnl_rule_get_prio(r) == prio && rtnl_rule_get_table(r) == table &&
                    rtnl_rule_get_action(r) == FR_ACT_TO_TBL &&
                    dpi_addr_is(from ? rtnl_rule_get_src(r) : rtnl_rule_get_dst(r), ip, len) &&
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
        int r = dpi_link_get(sk, ifname, &pl);
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
        const char *gw = dpi_pod_gateway(pod->ip), *any = dpi_is_v6(pod->ip) ? "::" : "0.0.0.0";
        unsigned len = dpi_host_len(pod->ip);
        int idx = check_link(sk, pod->ifname, d, err);
        if (idx <= 0)
                return idx;
        struct view v;
        int r = view_read(sk, dpi_is_v6(pod->ip) ? AF_INET6 : AF_INET, false, &v);
        if (r < 0)
                return errmsg_set(err, r, "cannot read the pod namespace's addresses, routes or neighbours: %s",
                                  strerror(-r));
        struct rtnl_addr *a = find_addr(v.addrs, idx, pod->ip, len);
        if (!a)
                differ(d, "pod address %s/%u is missing on %s", pod->ip, len, pod->ifname);
        else if (rtnl_addr_get_flags(a) & (IFA_F_DADFAILED | IFA_F_TENTATIVE))
                differ(d, "pod address %s/%u on %s is %s", pod->ip, len, pod->ifname,
                       rtnl_addr_get_flags(a) & IFA_F_DADFAILED ? "a duplicate (DAD failed)" : "tentative");
        if (!has_route(v.routes, &(struct rt){ gw, dpi_host_len(gw), NULL, NULL, idx, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "pod route %s scope link is missing", gw);
        if (!has_route(v.routes, &(struct rt){ any, 0, gw, NULL, idx, RT_SCOPE_UNIVERSE }, RT_TABLE_MAIN))
                differ(d, "pod default route via %s is missing", gw);
        if (!has_neigh(v.neighs, idx, gw, host_mac))
                differ(d, "pod neighbour %s is missing, not permanent or not the host veth's MAC", gw);
        view_free(&v);
        return 0;
}

/* The IPv6 sysctls dpi_host_sysctls() sets. */
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
        unsigned len = dpi_host_len(pod->ip);
        int r = view_read(sk, dpi_is_v6(pod->ip) ? AF_INET6 : AF_INET, true, &v);
        if (r < 0)
                return errmsg_set(err, r, "cannot read the host routes or rules: %s", strerror(-r));
        if (!has_route(v.routes, &(struct rt){ pod->ip, len, NULL, NULL, host_index, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "host route %s/%u via the veth is missing", pod->ip, len);
        if (!has_rule(v.rules, false, pod->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO))
                differ(d, "rule \"to %s lookup main\" prio %d is missing", pod->ip, DP_RULE_PRIO_TO);
        if (!dpi_is_v6(pod->ip) && pod->route_table != RT_TABLE_MAIN &&
            !has_rule(v.rules, true, pod->ip, pod->route_table, DP_RULE_PRIO_FROM))
                differ(d, "rule \"from %s lookup %u\" prio %d is missing", pod->ip, pod->route_table,
                       DP_RULE_PRIO_FROM);
        view_free(&v);
        if (dpi_is_v6(pod->ip))
                check_host_sysctls(veth, d);
        return 0;
}

/* The egress pair (either direction, struct egress_shape): host end, its
 * gateway address and route, the pod end's address and routes. */
static int check_egress(struct nl_sock *host, struct nl_sock *podsk, const struct dp_pod *pod, struct diff *d,
                        struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        const struct egress_shape *sh = dpi_egress_shape(pod->egress_ip);
        const char *x = pod->egress_ip;
        char gw[PROTO_IP_MAX] = "";
        unsigned xlen = dpi_host_len(x);
        struct view hv, pv;
        int r = dpi_find_host_veth(host, pod, NULL, true, &veth);
        if (r == -ENOENT) {
                differ(d, "egress veth of %s/%s is missing", pod->container_id, pod->ifname);
                return 0;
        }
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the egress veth: %s", strerror(-r));
        int hi = rtnl_link_get_ifindex(veth);
        struct nl_addr *mac = rtnl_link_get_addr(veth);
        if (mac && nl_addr_get_len(mac) == 6)
                dpi_egress_gateway(sh, nl_addr_get_binary_addr(mac), gw);
        if (!(rtnl_link_get_flags(veth) & IFF_UP))
                differ(d, "egress veth is down");
        int pi = check_link(podsk, sh->pod_ifname, d, err);
        if (pi < 0)
                return pi;
        if ((r = view_read(host, sh->af, false, &hv)) < 0)
                return errmsg_set(err, r, "cannot read the host's addresses or routes: %s", strerror(-r));
        if (!find_addr(hv.addrs, hi, gw, sh->gw_plen))
                differ(d, "egress gateway address %s/%u is missing on the egress veth", gw, sh->gw_plen);
        if (!has_route(hv.routes, &(struct rt){ x, xlen, NULL, NULL, hi, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "host route %s/%u via the egress veth is missing", x, xlen);
        view_free(&hv);
        if (pi == 0)
                return 0;
        if ((r = view_read(podsk, sh->af, false, &pv)) < 0)
                return errmsg_set(err, r, "cannot read the pod's addresses or routes: %s", strerror(-r));
        if (!find_addr(pv.addrs, pi, x, sh->plen))
                differ(d, "egress address %s/%u is missing on %s", x, sh->plen, sh->pod_ifname);
        if (!has_route(pv.routes, &(struct rt){ gw, dpi_host_len(gw), NULL, NULL, pi, RT_SCOPE_LINK }, RT_TABLE_MAIN))
                differ(d, "egress route %s scope link is missing", gw);
        if (!has_route(pv.routes, &(struct rt){ sh->net, sh->plen, gw, NULL, pi, RT_SCOPE_UNIVERSE }, RT_TABLE_MAIN))
                differ(d, "egress route %s/%u via %s is missing", sh->net, sh->plen, gw);
        if (!has_route(pv.routes, &(struct rt){ sh->any, 0, gw, NULL, pi, RT_SCOPE_UNIVERSE }, RT_TABLE_MAIN))
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
        int r = dpi_open_pod(netns, &nsfd, &podsk, err);
        if (r < 0)
                return r;
        if ((r = netns_nl_socket_here(&host)) < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        r = dpi_find_host_veth(host, pod, NULL, false, &veth);
        if (r == -ENOENT)
                return errmsg_set(err, -EUCLEAN, "host veth of %s/%s is missing", pod->container_id, pod->ifname);
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        if (!(rtnl_link_get_flags(veth) & IFF_UP))
                differ(&d, "host veth is down");
        dpi_mac_str(rtnl_link_get_addr(veth), mac);
        if ((r = check_pod(podsk, pod, mac, &d, err)) < 0 ||
            (r = check_host(host, pod, rtnl_link_get_ifindex(veth), rtnl_link_get_name(veth), &d, err)) < 0 ||
            (pod->egress_ip && *pod->egress_ip && (r = check_egress(host, podsk, pod, &d, err)) < 0))
                return r;
        if (d.n)
                return errmsg_set(err, -EUCLEAN, "%s", d.text);
        return 0;
}

/*
 * hostnet-route: IPv4 routes of the ENI tables and the main table.
 *
 * "ensure" dumps the routes and adds (NLM_F_CREATE|NLM_F_REPLACE, so a
 * stale route to the same destination in the table is overwritten) only when
 * no route of the table has the wanted destination, scope, device and
 * gateway; the metric is not compared, so a route someone added with another
 * metric is accepted rather than duplicated. Removal deletes the dumped
 * objects themselves, which carries every attribute the kernel matches on
 * (scope, protocol, metric, prefsrc, nexthop): rebuilding a route for
 * deletion would make libnl guess a scope and miss routes it did not guess.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/rtnetlink.h>

#include <netlink/route/route.h>

#include "hostnet-internal.h"

static void route_putp(struct rtnl_route **p) {
        if (*p)
                rtnl_route_put(*p);
}

static bool nh_is(struct rtnl_nexthop *nh, int ifindex, uint32_t gw) {
        struct nl_addr *g = rtnl_route_nh_get_gateway(nh);
        if (rtnl_route_nh_get_ifindex(nh) != ifindex)
                return false;
        return gw ? hn_nladdr_is(g, gw, 32) : !g || nl_addr_get_len(g) == 0;
}

static bool route_is(struct rtnl_route *rt, const struct hn_route *w) {
        return rtnl_route_get_family(rt) == AF_INET && rtnl_route_get_table(rt) == w->table &&
               rtnl_route_get_type(rt) == RTN_UNICAST && rtnl_route_get_scope(rt) == w->scope &&
               rtnl_route_get_tos(rt) == 0 && hn_nladdr_is(rtnl_route_get_dst(rt), w->dst, w->plen) &&
               rtnl_route_get_nnexthops(rt) == 1 && nh_is(rtnl_route_nexthop_n(rt, 0), w->ifindex, w->gw);
}

static int route_add(hostnet *h, const struct hn_route *w) {
        _cleanup_(route_putp) struct rtnl_route *rt = rtnl_route_alloc();
        _cleanup_(hn_addr_putp) struct nl_addr *dst = hn_nladdr(w->dst, w->plen);
        _cleanup_(hn_addr_putp) struct nl_addr *gw = w->gw ? hn_nladdr(w->gw, 32) : NULL;
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
        if (!rt || !dst || !nh || (w->gw && !gw)) {
                if (nh)
                        rtnl_route_nh_free(nh);
                return -ENOMEM;
        }
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_table(rt, w->table);
        rtnl_route_set_dst(rt, dst);
        rtnl_route_set_scope(rt, w->scope);
        rtnl_route_set_type(rt, RTN_UNICAST);
        rtnl_route_set_protocol(rt, RTPROT_BOOT);
        rtnl_route_nh_set_ifindex(nh, w->ifindex);
        if (gw)
                rtnl_route_nh_set_gateway(nh, gw);
        rtnl_route_add_nexthop(rt, nh);         /* rt owns nh now */
        return nlerr_errno(rtnl_route_add(h->sk, rt, NLM_F_REPLACE));
}

int hn_route_ensure(hostnet *h, const struct hn_route *want) {
        _cleanup_(hn_cache_freep) struct nl_cache *routes = NULL;
        int r = nlerr_errno(rtnl_route_alloc_cache(h->sk, AF_INET, 0, &routes));
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o))
                if (route_is((struct rtnl_route *)o, want))
                        return 0;
        return route_add(h, want);
}

static bool route_uses(struct rtnl_route *rt, int ifindex) {
        for (int i = 0; i < rtnl_route_get_nnexthops(rt); i++)
                if (rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, i)) == ifindex)
                        return true;
        return false;
}

/* Delete the routes of table (to dst/plen when match_dst; via ifindex when > 0). */
static int route_remove_where(hostnet *h, uint32_t table, bool match_dst, uint32_t dst, unsigned plen, int ifindex) {
        _cleanup_(hn_cache_freep) struct nl_cache *routes = NULL;
        int r = nlerr_errno(rtnl_route_alloc_cache(h->sk, AF_INET, 0, &routes));
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *)o;
                if (rtnl_route_get_family(rt) != AF_INET || rtnl_route_get_table(rt) != table ||
                    (match_dst && !hn_nladdr_is(rtnl_route_get_dst(rt), dst, plen)) ||
                    (ifindex > 0 && !route_uses(rt, ifindex)))
                        continue;
                r = nlerr_errno(rtnl_route_delete(h->sk, rt, 0));
                if (r < 0 && r != -ENOENT && r != -ESRCH)
                        return r;
        }
        return 0;
}

int hn_route_remove(hostnet *h, uint32_t table, uint32_t dst, unsigned plen, int ifindex) {
        return route_remove_where(h, table, true, dst, plen, ifindex);
}

int hn_route_flush_table(hostnet *h, uint32_t table) {
        return route_remove_where(h, table, false, 0, 0, 0);
}

int hn_route_delete_each(hostnet *h, uint32_t table, uint32_t dst, unsigned plen) {
        _cleanup_(route_putp) struct rtnl_route *rt = rtnl_route_alloc();
        _cleanup_(hn_addr_putp) struct nl_addr *d = hn_nladdr(dst, plen);
        if (!rt || !d)
                return -ENOMEM;
        rtnl_route_set_family(rt, AF_INET);
        rtnl_route_set_table(rt, table);
        rtnl_route_set_dst(rt, d);
        rtnl_route_set_protocol(rt, RTPROT_UNSPEC);     /* libnl's default, static, would match only static routes */
        rtnl_route_set_scope(rt, RT_SCOPE_NOWHERE);     /* any scope; libnl would guess "link" for a route without a gateway */
        for (int i = 0; i < HN_DELETE_EACH_MAX; i++) {
                int r = nlerr_errno(rtnl_route_delete(h->sk, rt, 0));
                if (r == -ENOENT || r == -ESRCH)
                        return 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

const char *hn_route_str(const struct hn_route *r, char buf[static 128]) {
        char dst[32], ip[16], via[24] = "";
        if (r->plen == 0)
                snprintf(dst, sizeof dst, "default");
        else
                snprintf(dst, sizeof dst, "%s/%u", hn_ip4_str(r->dst, ip), r->plen);
        if (r->gw)
                snprintf(via, sizeof via, " via %s", hn_ip4_str(r->gw, ip));
        snprintf(buf, 128, "%s%s%s table %u", dst, via, r->scope == RT_SCOPE_LINK ? " scope link" : "", r->table);
        return buf;
}

int hostnet_host_routes(hostnet *h, struct hostnet_host_route **ret, size_t *ret_n, struct errmsg *err) {
        _cleanup_(hn_cache_freep) struct nl_cache *routes = NULL;
        int r = nlerr_errno(rtnl_route_alloc_cache(h->sk, AF_INET, 0, &routes));
        if (r < 0)
                return errmsg_set(err, r, "cannot list the routes: %s", strerror(-r));
        size_t n = 0, cap = (size_t)nl_cache_nitems(routes);
        struct hostnet_host_route *v = calloc(cap ? cap : 1, sizeof *v);
        if (!v)
                return errmsg_set(err, -ENOMEM, "out of memory listing the routes");
        for (struct nl_object *o = nl_cache_get_first(routes); o && n < cap; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *)o;
                struct nl_addr *dst = rtnl_route_get_dst(rt);
                if (rtnl_route_get_table(rt) != RT_TABLE_MAIN || rtnl_route_get_type(rt) != RTN_UNICAST || !dst ||
                    nl_addr_get_prefixlen(dst) != 32 || nl_addr_get_len(dst) != 4 || rtnl_route_get_nnexthops(rt) != 1)
                        continue;
                uint32_t ip;
                memcpy(&ip, nl_addr_get_binary_addr(dst), 4);
                v[n].ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, 0));
                hn_ip4_str(ip, v[n].ip);
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int hostnet_host_routes6(hostnet *h, struct hostnet_host_route6 **ret, size_t *ret_n, struct errmsg *err) {
        _cleanup_(hn_cache_freep) struct nl_cache *routes = NULL;
        int r = nlerr_errno(rtnl_route_alloc_cache(h->sk, AF_INET6, 0, &routes));
        if (r < 0)
                return errmsg_set(err, r, "cannot list the IPv6 routes: %s", strerror(-r));
        size_t n = 0, cap = (size_t)nl_cache_nitems(routes);
        struct hostnet_host_route6 *v = calloc(cap ? cap : 1, sizeof *v);
        if (!v)
                return errmsg_set(err, -ENOMEM, "out of memory listing the routes");
        for (struct nl_object *o = nl_cache_get_first(routes); o && n < cap; o = nl_cache_get_next(o)) {
                struct rtnl_route *rt = (struct rtnl_route *)o;
                struct nl_addr *dst = rtnl_route_get_dst(rt);
                if (rtnl_route_get_table(rt) != RT_TABLE_MAIN || rtnl_route_get_type(rt) != RTN_UNICAST || !dst ||
                    nl_addr_get_prefixlen(dst) != 128 || nl_addr_get_len(dst) != 16 ||
                    rtnl_route_get_nnexthops(rt) != 1)
                        continue;
                v[n].ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, 0));
                inet_ntop(AF_INET6, nl_addr_get_binary_addr(dst), v[n].ip, sizeof v[n].ip);
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/*
 * dataplane: what the dataplane-*.c files share (dataplane-internal.h): the
 * host veth names and aliases of an attachment, finding its host veth, and
 * the libnl messages for one address, route or rule in either family.
 * ADD is dataplane-add.c (IPv6 and egress steps in dataplane-ipv6.c), DEL
 * and GC dataplane-del.c, CHECK dataplane-check.c; dataplane.h has the
 * objects they make.
 */
#include "dataplane-internal.h"

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

const char *dp_step_name(enum dp_step step) {
        return (unsigned)step < _DP_STEP_MAX ? step_names[step] : "?";
}

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
void dpi_alias_of(const char *container_id, const char *ifname, bool egress, char ret[static PROTO_VETH_ALIAS_MAX]) {
        if (egress)
                dp_egress_alias(container_id, ifname, ret);
        else
                proto_veth_alias(container_id, ifname, ret);
}

int dpi_name_of(const struct dp_pod *pod, bool egress, unsigned salt, char ret[static PROTO_IFNAME_MAX + 1]) {
        return egress ? dp_egress_veth_name(pod->veth_prefix, pod->container_id, pod->ifname, salt, ret)
                      : dp_veth_name(pod->veth_prefix, pod->container_id, pod->ifname, salt, ret);
}

/* ip (either family) as an nl_addr of prefix length plen. */
struct nl_addr *dpi_ipaddr(const char *ip, unsigned plen) {
        unsigned char bin[16];
        int family = dpi_is_v6(ip) ? AF_INET6 : AF_INET;
        if (inet_pton(family, ip, bin) != 1)
                return NULL;
        struct nl_addr *a = nl_addr_build(family, bin, family == AF_INET6 ? 16 : 4);
        if (a)
                nl_addr_set_prefixlen(a, (int)plen);
        return a;
}

bool dpi_addr_is(struct nl_addr *a, const char *ip, unsigned plen) {
        unsigned char bin[16];
        int family = dpi_is_v6(ip) ? AF_INET6 : AF_INET;
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

void dpi_mac_bytes_str(const unsigned char m[static 6], char buf[static 18]) {
        snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

void dpi_mac_str(struct nl_addr *a, char buf[static 18]) {
        buf[0] = '\0';
        if (a && nl_addr_get_len(a) == 6)
                dpi_mac_bytes_str(nl_addr_get_binary_addr(a), buf);
}

int dpi_link_get(struct nl_sock *sk, const char *name, struct rtnl_link **ret) {
        int r = rtnl_link_get_kernel(sk, 0, name, ret);
        return r < 0 ? nlerr_errno(r) : 0;
}

/* The host veth of this attachment (the main one, or the egress one): hint
 * first, then the salted names; it must carry our alias. -ENOENT when there
 * is none; a failure to read a link is returned as is (not taken for
 * "none"). */
int dpi_find_host_veth(struct nl_sock *sk, const struct dp_pod *pod, const char *hint, bool egress,
                       struct rtnl_link **ret) {
        char alias[PROTO_VETH_ALIAS_MAX], name[PROTO_IFNAME_MAX + 1];
        dpi_alias_of(pod->container_id, pod->ifname, egress, alias);
        for (int i = -1; i < DP_NAME_SALTS; i++) {
                if (i < 0 && (!hint || !*hint))
                        continue;
                if (i < 0)
                        snprintf(name, sizeof name, "%s", hint);
                else
                        dpi_name_of(pod, egress, (unsigned)i, name);
                struct rtnl_link *l = NULL;
                int r = dpi_link_get(sk, name, &l);
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

/* ip/plen on ifindex, with scope (IPv4) and IFA_F_* flags. */
int dpi_addr_add(struct nl_sock *sk, int ifindex, const char *ip, unsigned plen, int scope, unsigned flags) {
        _cleanup_(addr_putp) struct nl_addr *local = dpi_ipaddr(ip, plen);
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

uint8_t dpi_rt_scope(const struct rt *rt) {
        return dpi_is_v6(rt->dst) ? RT_SCOPE_UNIVERSE : rt->scope;
}

int dpi_route_change(struct nl_sock *sk, bool add, const struct rt *rt, uint32_t table, int flags) {
        _cleanup_(addr_putp) struct nl_addr *d = dpi_ipaddr(rt->dst, rt->plen);
        _cleanup_(addr_putp) struct nl_addr *g = rt->gw ? dpi_ipaddr(rt->gw, dpi_host_len(rt->gw)) : NULL;
        _cleanup_(addr_putp) struct nl_addr *src = rt->src ? dpi_ipaddr(rt->src, dpi_host_len(rt->src)) : NULL;
        _cleanup_(route_putp) struct rtnl_route *r = rtnl_route_alloc();
        struct rtnl_nexthop *nh = rtnl_route_nh_alloc();  /* the route owns it once added */
        if (!r || !nh || !d || (rt->gw && !g) || (rt->src && !src)) {
                if (nh)
                        rtnl_route_nh_free(nh);
                return -ENOMEM;
        }
        rtnl_route_set_family(r, dpi_is_v6(rt->dst) ? AF_INET6 : AF_INET);
        rtnl_route_set_dst(r, d);
        rtnl_route_set_table(r, table);
        rtnl_route_set_scope(r, dpi_rt_scope(rt));
        rtnl_route_set_protocol(r, RTPROT_BOOT);
        if (src)
                rtnl_route_set_pref_src(r, src);
        rtnl_route_nh_set_ifindex(nh, rt->ifindex);
        if (g)
                rtnl_route_nh_set_gateway(nh, g);
        rtnl_route_add_nexthop(r, nh);
        return nlerr_errno(add ? rtnl_route_add(sk, r, flags) : rtnl_route_delete(sk, r, 0));
}

/* Rule "to ip" (from == false) or "from ip" lookup table, at prio (either family). */
int dpi_rule_change(struct nl_sock *sk, bool add, bool from, const char *ip, uint32_t table, uint32_t prio) {
        _cleanup_(addr_putp) struct nl_addr *a = dpi_ipaddr(ip, dpi_host_len(ip));
        _cleanup_(rule_putp) struct rtnl_rule *rule = rtnl_rule_alloc();
        if (!rule || !a)
                return -ENOMEM;
        rtnl_rule_set_family(rule, dpi_is_v6(ip) ? AF_INET6 : AF_INET);
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
                int r = dpi_rule_change(sk, false, from, ip, 0, prio);
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
int dpi_rules_remove(struct nl_sock *sk, const char *ip, unsigned *removed) {
        int r = rule_remove_all(sk, false, ip, DP_RULE_PRIO_TO, removed);
        if (r >= 0 && !dpi_is_v6(ip))
                r = rule_remove_all(sk, true, ip, DP_RULE_PRIO_FROM, removed);
        return r;
}

int dpi_open_pod(const char *netns, int *ret_fd, struct nl_sock **ret_sk, struct errmsg *err) {
        int r = netns_open(netns, ret_fd);
        if (r < 0)
                return errmsg_set(err, r, "netns %s: %s", netns,
                                  r == -EINVAL ? "not a network namespace" : strerror(-r));
        r = netns_nl_socket(*ret_fd, ret_sk);
        if (r < 0)
                return errmsg_set(err, r, "netns %s: cannot open a netlink socket in it: %s", netns, strerror(-r));
        return 0;
}

/*
 * dataplane-add: ADD, a list of steps (the table "order" below) run against
 * two netlink sockets, one bound to the host namespace and one to the
 * pod's (netns.h); a step that does not apply to the pod (the IPv6 ones for
 * an IPv4 pod, the egress ones without an egress address, of either
 * family) is skipped. Each
 * completed step sets a bit in ctx->made and rollback() undoes exactly
 * those bits. Only two kinds of undo exist: rules are deleted one by one
 * (they do not belong to a device) and the veths are deleted, which
 * removes their peers and with them every pod-side object and the host
 * routes. The IPv6 steps and the egress veth's are in dataplane-ipv6.c.
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
 */
#include "dataplane-internal.h"

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
        bool pod_end = dpi_link_get(c->podsk, v->pod_ifname, &pl) == 0;
        if (dpi_link_get(c->host, v->name, &l) < 0)
                return pod_end ? errmsg_set(err, -EEXIST, "interface %s already exists in the pod namespace",
                                            v->pod_ifname)
                               : 0;     /* gone meanwhile: retry the name */
        dpi_alias_of(c->pod.container_id, c->pod.ifname, v->egress, alias);
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

int dpi_make_veth(struct dp_wiring *c, struct veth *v, struct errmsg *err) {
        for (unsigned salt = 0, tries = 0; salt < DP_NAME_SALTS && tries < 2 * DP_NAME_SALTS; tries++) {
                dpi_name_of(&c->pod, v->egress, salt, v->name);
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
int dpi_pod_end_up(struct dp_wiring *c, struct veth *v, unsigned mtu, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *pl = NULL, *up = NULL;
        int r = dpi_link_get(c->podsk, v->pod_ifname, &pl);
        if (r < 0)
                return errmsg_set(err, r, "veth %s/%s vanished after creation", v->name, v->pod_ifname);
        v->pod_index = rtnl_link_get_ifindex(pl);
        v->host_index = rtnl_link_get_link(pl);
        dpi_mac_str(rtnl_link_get_addr(pl), v->pod_mac);
        if (!(up = rtnl_link_alloc()))
                return -ENOMEM;
        rtnl_link_set_flags(up, IFF_UP);
        if (mtu)
                rtnl_link_set_mtu(up, mtu);
        r = nlerr_errno(rtnl_link_change(c->podsk, pl, up, 0));
        return r < 0 ? errmsg_set(err, r, "cannot bring %s up: %s", v->pod_ifname, strerror(-r)) : 0;
}

static int pod_link(struct dp_wiring *c, struct errmsg *err) {
        int r = dpi_pod_end_up(c, &c->main, mtu_pending(c) ? c->pod.mtu : 0, err);
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

static int pod_neigh(struct dp_wiring *c) {
        const char *gw = dpi_pod_gateway(c->ip);
        _cleanup_(addr_putp) struct nl_addr *dst = dpi_ipaddr(gw, dpi_host_len(gw));
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

int dpi_host_alias(struct dp_wiring *c, const struct veth *v) {
        char alias[PROTO_VETH_ALIAS_MAX];
        _cleanup_(link_putp) struct rtnl_link *orig = rtnl_link_alloc(), *change = rtnl_link_alloc();
        if (!orig || !change)
                return -ENOMEM;
        dpi_alias_of(c->pod.container_id, c->pod.ifname, v->egress, alias);
        /* its index is learned later, from the pod end: the kernel finds it by name */
        rtnl_link_set_name(orig, v->name);
        rtnl_link_set_name(change, v->name);
        rtnl_link_set_ifalias(change, alias);
        return nlerr_errno(rtnl_link_change(c->host, orig, change, 0));
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
                (void)dpi_rule_change(c->host, false, true, c->ip, c->pod.route_table, DP_RULE_PRIO_FROM);
        if (c->made & (1u << DP_STEP_RULE_TO))
                (void)dpi_rule_change(c->host, false, false, c->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO);
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
                return dpi_is_v6(c->ip);
        return step != DP_STEP_RULE_FROM || !dpi_is_v6(c->ip);
}

/* The pod's own steps (the main veth); 1: nothing made (kept a rule that was there). */
static int pod_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err) {
        const struct dp_pod *p = &c->pod;
        const char *gw = dpi_pod_gateway(c->ip), *any = dpi_is_v6(c->ip) ? "::" : "0.0.0.0";
        int pi = c->main.pod_index, r;
        switch (step) {
        case DP_STEP_VETH: return dpi_make_veth(c, &c->main, err);
        case DP_STEP_HOST_ALIAS: return dpi_host_alias(c, &c->main);
        case DP_STEP_HOST_SYSCTL6: return dpi_host_sysctls(c, err);
        case DP_STEP_POD_SYSCTL6: return dpi_pod_sysctls(c, err);
        case DP_STEP_POD_LINK: return pod_link(c, err);
        case DP_STEP_POD_DAD: return dpi_wait_dad(c, err);
        case DP_STEP_POD_ADDR: return dpi_addr_add(c->podsk, pi, c->ip, dpi_host_len(c->ip), -1, 0);
        case DP_STEP_POD_GW_ROUTE:
                return dpi_route_change(c->podsk, true,
                                        &(struct rt){ gw, dpi_host_len(gw), NULL, NULL, pi, RT_SCOPE_LINK },
                                        RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_POD_DEFAULT_ROUTE:
                return dpi_route_change(c->podsk, true, &(struct rt){ any, 0, gw, NULL, pi, RT_SCOPE_UNIVERSE },
                                        RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_POD_NEIGH: return pod_neigh(c);
        case DP_STEP_HOST_ROUTE:
                return dpi_route_change(c->host, true,
                                        &(struct rt){ c->ip, dpi_host_len(c->ip), NULL, NULL, c->main.host_index,
                                                      RT_SCOPE_LINK },
                                        RT_TABLE_MAIN, NLM_F_REPLACE);
        case DP_STEP_RULE_TO:
                r = dpi_rule_change(c->host, true, false, c->ip, RT_TABLE_MAIN, DP_RULE_PRIO_TO);
                return r == -EEXIST ? 1 : r;
        case DP_STEP_RULE_FROM:
                if (p->route_table == RT_TABLE_MAIN)
                        return 1;
                r = dpi_rule_change(c->host, true, true, c->ip, p->route_table, DP_RULE_PRIO_FROM);
                return r == -EEXIST ? 1 : r;
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
        r = step >= DP_STEP_EGRESS_VETH ? dpi_egress_step(c, step, err) : pod_step(c, step, err);
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
        int r = dpi_open_pod(netns, &c->nsfd, &c->podsk, err);
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

static void links_of(const dp_wiring *c, struct dp_links *ret) {
        *ret = (struct dp_links){ 0 };
        snprintf(ret->host_ifname, sizeof ret->host_ifname, "%s", c->main.name);
        dpi_mac_bytes_str(c->main.mac, ret->host_mac);
        snprintf(ret->pod_mac, sizeof ret->pod_mac, "%s", c->main.pod_mac);
        if (!c->egress_ip[0])
                return;
        snprintf(ret->egress_host_ifname, sizeof ret->egress_host_ifname, "%s", c->eg.name);
        dpi_mac_bytes_str(c->eg.mac, ret->egress_host_mac);
        snprintf(ret->egress_pod_mac, sizeof ret->egress_pod_mac, "%s", c->eg.pod_mac);
        snprintf(ret->egress_pod_ifname, sizeof ret->egress_pod_ifname, "%s", c->eg.pod_ifname);
        dpi_egress_gateway(dpi_egress_shape(c->egress_ip), c->eg.mac, ret->egress_gateway);
}

int dp_wiring_finish(dp_wiring *c, const char *ip, const char *egress_ip, uint32_t route_table, unsigned mtu,
                     struct dp_links *ret, struct errmsg *err) {
        if (!(c->made & (1u << DP_STEP_VETH)))
                return errmsg_set(err, -EINVAL, "no veth made for this pod");
        if (!ip || !proto_valid_ip(ip) || !dpi_valid_egress(ip, egress_ip)) {
                rollback(c);
                return errmsg_set(err, -EINVAL, ip && proto_valid_ip(ip) ? "no valid egress address for this pod"
                                                                           : "no valid pod address");
        }
        snprintf(c->ip, sizeof c->ip, "%s", ip);
        snprintf(c->egress_ip, sizeof c->egress_ip, "%s", egress_ip ? egress_ip : "");
        c->eg.pod_ifname = dpi_egress_shape(c->egress_ip)->pod_ifname;
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

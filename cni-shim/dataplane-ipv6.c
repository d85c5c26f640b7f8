/*
 * dataplane-ipv6: the steps of ADD that only an IPv6 pod has — the IPv6
 * sysctls of both veth ends, the wait for duplicate address detection —
 * and those of its IPv4 egress veth.
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
 * The egress veth (aws-node's egress-cni: an IPv6 pod's IPv4 one, an IPv4
 * pod's IPv6 one with ENABLE_V6_EGRESS) is made after the daemon's reply,
 * like the rest of the pod's wiring; its alias has its own prefix so that
 * vpc-ipamd, which reads "vpc-cni:" aliases as pods holding VPC addresses,
 * never takes it for one.
 */
#include "dataplane-internal.h"

static long now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/*
 * Short DAD on dev (see the top): no random start delay
 * (router_solicitation_delay 0) and DP_DAD_RETRANS_MS after each probe;
 * the link's own retrans_time_ms is kept in saved, and dpi_wait_dad() puts it
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
int dpi_host_sysctls(struct dp_wiring *c, struct errmsg *err) {
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

int dpi_pod_sysctls(struct dp_wiring *c, struct errmsg *err) {
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

int dpi_wait_dad(struct dp_wiring *c, struct errmsg *err) {
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

static const struct egress_shape egress4 = { AF_INET, DP_EGRESS_IFNAME, DPI_EGRESS_NET, "0.0.0.0",
                                             DPI_EGRESS_PLEN, 32 };
static const struct egress_shape egress6 = { AF_INET6, DP_EGRESS6_IFNAME, DPI_EGRESS6_NET, "::",
                                             DPI_EGRESS6_PLEN, 64 };

const struct egress_shape *dpi_egress_shape(const char *x) {
        return dpi_is_v6(x) ? &egress6 : &egress4;
}

/* IPv4: the /22's .1. IPv6: the EUI-64 link-local address the kernel gives the host end (addr_gen_mode 0). */
void dpi_egress_gateway(const struct egress_shape *sh, const unsigned char mac[static 6],
                        char ret[static PROTO_IP_MAX]) {
        if (sh->af == AF_INET) {
                snprintf(ret, PROTO_IP_MAX, "%s", PROTO_EGRESS4_GATEWAY);
                return;
        }
        struct in6_addr a = { .s6_addr = { 0xfe, 0x80, [8] = (unsigned char)(mac[0] ^ 2), mac[1], mac[2], 0xff, 0xfe,
                                           mac[3], mac[4], mac[5] } };
        inet_ntop(AF_INET6, &a, ret, PROTO_IP_MAX);
}

/*
 * An IPv4 pod's IPv6 egress veth, before its pod end comes up (so before
 * IPv6 sees carrier): IPv6 on at both ends without DAD (the range is the
 * node's own and the store hands each address to one pod; the host end's
 * link-local is the pod's gateway and must be valid when ADD returns), the
 * host end's link-local from its MAC (EUI-64), no router advertisements; the
 * pod's main interface keeps IPv6 off (aws-node's disable_ipv6=1 on eth0).
 */
static int egress6_sysctls(struct dp_wiring *c, struct errmsg *err) {
        static const char *const both[][2] = { { "disable_ipv6", "0" }, { "accept_dad", "0" }, { "accept_ra", "0" },
                                               { "addr_gen_mode", "0" } };
        const struct { int nsfd; const char *dev; } ends[] = { { -1, c->eg.name }, { c->nsfd, c->eg.pod_ifname } };
        char path[96];
        int r = 0;
        for (size_t e = 0; e < 2 && r >= 0; e++)
                for (size_t i = 0; i < sizeof both / sizeof both[0] && r >= 0; i++) {
                        snprintf(path, sizeof path, "net/ipv6/conf/%s/%s", ends[e].dev, both[i][0]);
                        r = netns_sysctl_write(ends[e].nsfd, path, both[i][1]);
                }
        if (r >= 0) {
                snprintf(path, sizeof path, "net/ipv6/conf/%s/disable_ipv6", c->pod.ifname);
                r = netns_sysctl_write(c->nsfd, path, "1");
        }
        return r < 0 ? errmsg_set(err, r, "%s: cannot set %s: %s", dp_step_name(DP_STEP_EGRESS_POD_LINK), path,
                                  strerror(-r))
                     : 0;
}

/* The egress veth's steps, the same for both directions (struct egress_shape). */
int dpi_egress_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err) {
        const struct egress_shape *sh = dpi_egress_shape(c->egress_ip);
        const char *x = c->egress_ip;
        char gw[PROTO_IP_MAX];
        int pi = c->eg.pod_index, r;
        unsigned xlen = dpi_host_len(x), nodad = sh->af == AF_INET6 ? IFA_F_NODAD : 0;
        dpi_egress_gateway(sh, c->eg.mac, gw);
        switch (step) {
        case DP_STEP_EGRESS_VETH: return dpi_make_veth(c, &c->eg, err);
        case DP_STEP_EGRESS_ALIAS: return dpi_host_alias(c, &c->eg);
        case DP_STEP_EGRESS_POD_LINK:
                if (sh->af == AF_INET6 && (r = egress6_sysctls(c, err)) < 0)
                        return r;
                return dpi_pod_end_up(c, &c->eg, 0, err);
        case DP_STEP_EGRESS_POD_ADDR:
                /* X/plen without the connected route, which the next two replace */
                return dpi_addr_add(c->podsk, pi, x, sh->plen, -1, IFA_F_NOPREFIXROUTE | nodad);
        case DP_STEP_EGRESS_POD_GW_ROUTE:
                return dpi_route_change(c->podsk, true,
                                        &(struct rt){ gw, dpi_host_len(gw), NULL, x, pi, RT_SCOPE_LINK },
                                        RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_EGRESS_POD_NET_ROUTE:
                return dpi_route_change(c->podsk, true,
                                        &(struct rt){ sh->net, sh->plen, gw, NULL, pi, RT_SCOPE_UNIVERSE },
                                        RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_EGRESS_POD_DEFAULT_ROUTE:
                return dpi_route_change(c->podsk, true, &(struct rt){ sh->any, 0, gw, NULL, pi, RT_SCOPE_UNIVERSE },
                                        RT_TABLE_MAIN, NLM_F_EXCL);
        case DP_STEP_EGRESS_HOST_ADDR:  /* IPv6: the kernel's own link-local (nothing made) */
                return sh->af == AF_INET6 ? 1 : dpi_addr_add(c->host, c->eg.host_index, gw, 32, RT_SCOPE_LINK, 0);
        case DP_STEP_EGRESS_HOST_ROUTE:
                return dpi_route_change(c->host, true,
                                        &(struct rt){ x, xlen, NULL, NULL, c->eg.host_index, RT_SCOPE_LINK },
                                        RT_TABLE_MAIN, NLM_F_REPLACE);
        default: return -EINVAL;
        }
}

/* An egress address is of the other family than the pod's, in its egress range. */
bool dpi_valid_egress(const char *ip, const char *egress_ip) {
        if (!egress_ip || !*egress_ip)
                return true;
        return dpi_is_v6(ip) != dpi_is_v6(egress_ip) && proto_valid_egress_ip(egress_ip);
}

/*
 * dataplane: the kernel objects that wire one pod, made and removed with
 * libnl-route-3 (never by running `ip`).
 *
 * For a pod with IPv4 address P on interface I in namespace N:
 *   host:  veth <prefix><hash> (up, random locally administered MAC, alias
 *          "vpc-cni:<I>:<container id>"), route P/32 dev veth scope link in
 *          main, rule "to P lookup main" prio 512, and when the address's ENI
 *          has its own table T: rule "from P lookup T" prio 1536;
 *   pod:   I (the veth peer, up), P/32, 169.254.1.1/32 dev I scope link,
 *          default via 169.254.1.1 dev I, permanent neighbour 169.254.1.1 ->
 *          host veth MAC.
 * For an IPv6 pod (aws-node's IPv6 mode) with address P6:
 *   host:  the same veth, its IPv6 accept_ra=0, accept_redirects=1 and
 *          forwarding=0 set before the pod end comes up; route P6/128 dev
 *          veth in main, rule "to P6/128 lookup main" prio 512, no from-rule;
 *   pod:   disable_ipv6=0 on I and lo, P6/128 with duplicate address
 *          detection kept (ADD waits until no address of I or of the host
 *          veth is tentative, and fails on a duplicate), fe80::1 dev I,
 *          default via fe80::1 dev I, permanent neighbour fe80::1 -> host
 *          veth MAC;
 *   both ends: router_solicitation_delay=0 (DAD starts at once), and
 *          retrans_time_ms=DP_DAD_RETRANS_MS while DAD runs, then the
 *          link's own value again.
 * With an IPv4 egress address X (IPv6 pods, 169.254.172.0/22, aws-node's
 * egress-cni), a second veth pair:
 *   host:  <prefix>v<hash> (up, alias "vpc-cni-egress:<I>:<container id>"),
 *          169.254.172.1/32 scope link on it, route X/32 dev it in main;
 *   pod:   v4if0 (up), X/22 without its connected route, 169.254.172.1/32
 *          dev v4if0 scope link src X, 169.254.172.0/22 via 169.254.172.1,
 *          default via 169.254.172.1 dev v4if0.
 * The calling thread's namespace is "host"; the pod namespace is reached
 * through netns.h without entering it.
 *
 * dp_add() is all or nothing: on any failure it removes the rules it added
 * and the veths (which take the pod-side objects and the host routes with
 * them; pod lo's disable_ipv6=0 stays, as in aws-node). It also turns on the
 * host's IPv4 forwarding when it is off (as ptp does), which is never
 * undone: every pod needs it. dp_del() never fails for missing things.
 * dp_check() names every difference it finds.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "protocol.h"

#define DP_RULE_PRIO_TO 512
#define DP_RULE_PRIO_FROM 1536
#define DP_NAME_SALTS 4         /* alternate host names tried on a clash */
#define DP_EGRESS_IFNAME "v4if0"        /* the pod end of the IPv4 egress veth */
#define DP_EGRESS6_IFNAME "v6if0"       /* the pod end of the IPv6 egress veth (IPv4 pods) */
#define DP_EGRESS_ALIAS_PREFIX "vpc-cni-egress:"
#define DP_DAD_TIMEOUT_MS 10000         /* IPv6 ADD waits at most this long for DAD */
#define DP_DAD_POLL_MS 5
#define DP_DAD_RETRANS_MS 20            /* the DAD probe's wait on both veth ends during ADD */

/* The steps of dp_add(), in order; the fault hook is called before each. */
enum dp_step {
        DP_STEP_VETH,
        DP_STEP_HOST_ALIAS,
        DP_STEP_POD_LINK,
        DP_STEP_POD_ADDR,
        DP_STEP_POD_GW_ROUTE,
        DP_STEP_POD_DEFAULT_ROUTE,
        DP_STEP_POD_NEIGH,
        DP_STEP_HOST_ROUTE,
        DP_STEP_RULE_TO,
        DP_STEP_RULE_FROM,
        /* IPv6 pods (run in the order of dataplane-add.c's step table, the
         * sysctls before the pod interface comes up, DAD last) */
        DP_STEP_HOST_SYSCTL6,
        DP_STEP_POD_SYSCTL6,
        DP_STEP_POD_DAD,
        /* the egress veth: an IPv6 pod's IPv4 one, an IPv4 pod's IPv6 one */
        DP_STEP_EGRESS_VETH,
        DP_STEP_EGRESS_ALIAS,
        DP_STEP_EGRESS_POD_LINK,
        DP_STEP_EGRESS_POD_ADDR,
        DP_STEP_EGRESS_POD_GW_ROUTE,
        DP_STEP_EGRESS_POD_NET_ROUTE,
        DP_STEP_EGRESS_POD_DEFAULT_ROUTE,
        DP_STEP_EGRESS_HOST_ADDR,
        DP_STEP_EGRESS_HOST_ROUTE,
        _DP_STEP_MAX,
};

/* Test-only: return a negative errno to make dp_add() fail at that step.
 * It is called before each step that applies to the pod: for an IPv4 pod
 * the first ten (RULE_FROM too, which makes nothing in the main table), for
 * an IPv6 pod those but RULE_FROM and the IPv6 ones, and the egress ones
 * when there is an egress address. */
typedef int (*dp_fault_hook)(enum dp_step step, void *userdata);

struct dp_pod {
        const char *container_id;
        const char *ifname;
        const char *veth_prefix;
        const char *ip;                 /* IPv4 or IPv6 (canonical); may be NULL or "" for dp_del() */
        const char *egress_ip;          /* the egress address of the other family (an IPv6 pod's IPv4
                                           one, an IPv4 pod's IPv6 one), or NULL/"" (none) */
        uint32_t route_table;           /* 254 = main: no "from" rule (never one for IPv6) */
        unsigned mtu;                   /* 0: leave the kernel default */
        unsigned dad_timeout_ms;        /* 0: DP_DAD_TIMEOUT_MS */
        dp_fault_hook fault;
        void *fault_data;
};

struct dp_links {
        char host_ifname[PROTO_IFNAME_MAX + 1];
        char host_mac[18];
        char pod_mac[18];
        char egress_host_ifname[PROTO_IFNAME_MAX + 1];  /* "" without an egress address */
        char egress_host_mac[18];
        char egress_pod_mac[18];
        char egress_pod_ifname[PROTO_IFNAME_MAX + 1];   /* v4if0 or v6if0 */
        char egress_gateway[PROTO_IP_MAX];              /* the pod's egress gateway: .1, or the host end's fe80 */
};

const char *dp_step_name(enum dp_step step);

/* The host veth name for (container id, ifname) and salt (0 first). */
int dp_veth_name(const char *prefix, const char *container_id, const char *ifname, unsigned salt,
                 char ret[static PROTO_IFNAME_MAX + 1]);

/* The host name of the attachment's IPv4 egress veth: <prefix>v<hash> (the
 * same hash; "v" is no hex digit, so it never equals a main veth's name). */
int dp_egress_veth_name(const char *prefix, const char *container_id, const char *ifname, unsigned salt,
                        char ret[static PROTO_IFNAME_MAX + 1]);

/* "vpc-cni-egress:<ifname>:<container id>": the alias of the egress veth
 * (not vpc-ipamd's "vpc-cni:" mark: the daemon has nothing to do with it). */
void dp_egress_alias(const char *container_id, const char *ifname, char ret[static PROTO_VETH_ALIAS_MAX]);

/*
 * ADD in three parts, so the veth (which needs no address) is made while the
 * daemon is still choosing the address:
 *   dp_wiring_open()    opens the pod namespace and both netlink sockets
 *                       (-ENOENT: no such namespace, -EINVAL: not one); pod->ip,
 *                       route_table and mtu may still be unset;
 *   dp_wiring_veth()    makes the veth pair (DP_STEP_VETH) with pod->mtu when set,
 *                       and marks it with the attachment's alias at once, so
 *                       even an ADD killed while the daemon answers leaves a
 *                       veth that DEL and GC recognise; -EEXIST: I already
 *                       exists in the pod namespace;
 *   dp_wiring_finish()  every later step for address ip (IPv4 or IPv6) in
 *                       route_table, and the egress veth when egress_ip is
 *                       set (IPv6 pods only); a non-zero mtu differing from
 *                       the veth's is applied to both ends (the pod end's
 *                       within the change that brings it up). An IPv6 pod
 *                       returns only once DAD is done (at most the pod's
 *                       dad_timeout_ms; -EADDRINUSE on a duplicate).
 * dp_wiring_free() undoes everything made unless dp_wiring_finish() succeeded;
 * a failing part has already undone it all. pod's strings are borrowed until free.
 */
typedef struct dp_wiring dp_wiring;
int dp_wiring_open(const char *netns, const struct dp_pod *pod, dp_wiring **ret, struct errmsg *err);
int dp_wiring_veth(dp_wiring *w, struct errmsg *err);
int dp_wiring_finish(dp_wiring *w, const char *ip, const char *egress_ip, uint32_t route_table, unsigned mtu,
                     struct dp_links *ret, struct errmsg *err);
dp_wiring *dp_wiring_free(dp_wiring *w);

/* All three at once. -EEXIST: I already exists in the pod namespace; -ENOENT: no such namespace. */
int dp_add(const char *netns, const struct dp_pod *pod, struct dp_links *ret, struct errmsg *err);

/* Unwire: rules for pod->ip (when given), the host veth of the attachment,
 * found by name and alias (host_ifname_hint, e.g. from prevResult, first),
 * and its egress veth, each deleted before returning (the kernel's RCU
 * wait, ~20 ms).
 * Missing objects are not errors. */
int dp_del(const struct dp_pod *pod, const char *host_ifname_hint, struct errmsg *err);

/* Only the attachment's egress veth (when vpc-ipamd unwired the rest). */
int dp_del_egress(const struct dp_pod *pod, struct errmsg *err);

/* The name of the attachment's host veth (found as dp_del() finds it);
 * -ENOENT when there is none. */
int dp_host_veth(const struct dp_pod *pod, const char *host_ifname_hint, char ret[static PROTO_IFNAME_MAX + 1],
                 struct errmsg *err);

/* Compare the kernel with what dp_add() makes (for pod->ip's family, and
 * the egress veth when pod->egress_ip is set); -EUCLEAN with every
 * difference named in err when they differ. */
int dp_check(const char *netns, const struct dp_pod *pod, struct errmsg *err);

/*
 * Garbage-collect: delete host veths named <prefix>... carrying a vpc-cni
 * or vpc-cni-egress alias that belongs to no attachment in valid[], and the
 * prio 512/1536 rules of each released address (either family). *ret_removed counts the objects removed.
 */
int dp_gc(const char *veth_prefix, const struct proto_attachment *valid, size_t n_valid,
          char (*released)[PROTO_IP_MAX], size_t n_released, unsigned *ret_removed, struct errmsg *err);

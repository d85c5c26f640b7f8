/*
 * dataplane: the kernel objects that wire one pod, made and removed with
 * libnl-route-3 (never by running `ip`).
 *
 * For a pod with address P on interface I in namespace N:
 *   host:  veth <prefix><hash> (up, random locally administered MAC, alias
 *          "vpc-cni:<I>:<container id>"), route P/32 dev veth scope link in
 *          main, rule "to P lookup main" prio 512, and when the address's ENI
 *          has its own table T: rule "from P lookup T" prio 1536;
 *   pod:   I (the veth peer, up), P/32, 169.254.1.1/32 dev I scope link,
 *          default via 169.254.1.1 dev I, permanent neighbour 169.254.1.1 ->
 *          host veth MAC.
 * The calling thread's namespace is "host"; the pod namespace is reached
 * through netns.h without entering it.
 *
 * dp_add() is all or nothing: on any failure it removes the rules it added
 * and the veth (which takes the pod-side objects and the host route with
 * it). It also turns on the host's IPv4 forwarding when it is off (as ptp
 * does), which is never undone: every pod needs it. dp_del() never fails for missing things. dp_check() names every
 * difference it finds.
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
        _DP_STEP_MAX,
};

/* Test-only: return a negative errno to make dp_add() fail at that step. */
typedef int (*dp_fault_hook)(enum dp_step step, void *userdata);

struct dp_pod {
        const char *container_id;
        const char *ifname;
        const char *veth_prefix;
        const char *ip;                 /* dotted quad; may be NULL or "" for dp_del() */
        uint32_t route_table;           /* 254 = main: no "from" rule */
        unsigned mtu;                   /* 0: leave the kernel default */
        dp_fault_hook fault;
        void *fault_data;
};

struct dp_links {
        char host_ifname[PROTO_IFNAME_MAX + 1];
        char host_mac[18];
        char pod_mac[18];
};

const char *dp_step_name(enum dp_step step);

/* The host veth name for (container id, ifname) and salt (0 first). */
int dp_veth_name(const char *prefix, const char *container_id, const char *ifname, unsigned salt,
                 char ret[static PROTO_IFNAME_MAX + 1]);

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
 *   dp_wiring_finish()  every later step for address ip in route_table; a
 *                       non-zero mtu differing from the veth's is applied to both
 *                       ends (the pod end's within the change that brings it up).
 * dp_wiring_free() undoes everything made unless dp_wiring_finish() succeeded;
 * a failing part has already undone it all. pod's strings are borrowed until free.
 */
typedef struct dp_wiring dp_wiring;
int dp_wiring_open(const char *netns, const struct dp_pod *pod, dp_wiring **ret, struct errmsg *err);
int dp_wiring_veth(dp_wiring *w, struct errmsg *err);
int dp_wiring_finish(dp_wiring *w, const char *ip, uint32_t route_table, unsigned mtu, struct dp_links *ret,
                     struct errmsg *err);
dp_wiring *dp_wiring_free(dp_wiring *w);

/* All three at once. -EEXIST: I already exists in the pod namespace; -ENOENT: no such namespace. */
int dp_add(const char *netns, const struct dp_pod *pod, struct dp_links *ret, struct errmsg *err);

/* Unwire: rules for pod->ip (when given) and the host veth of the attachment,
 * found by name and alias (host_ifname_hint, e.g. from prevResult, first),
 * deleted before returning (the kernel's RCU wait, ~20 ms).
 * Missing objects are not errors. */
int dp_del(const struct dp_pod *pod, const char *host_ifname_hint, struct errmsg *err);

/* The name of the attachment's host veth (found as dp_del() finds it);
 * -ENOENT when there is none. */
int dp_host_veth(const struct dp_pod *pod, const char *host_ifname_hint, char ret[static PROTO_IFNAME_MAX + 1],
                 struct errmsg *err);

/* Compare the kernel with what dp_add() makes; -EUCLEAN with every
 * difference named in err when they differ. */
int dp_check(const char *netns, const struct dp_pod *pod, struct errmsg *err);

/*
 * Garbage-collect: delete host veths named <prefix>... carrying a vpc-cni
 * alias that belongs to no attachment in valid[], and the prio 512/1536 rules
 * of each released address. *ret_removed counts the objects removed.
 */
int dp_gc(const char *veth_prefix, const struct proto_attachment *valid, size_t n_valid,
          char (*released)[PROTO_IP_MAX], size_t n_released, unsigned *ret_removed, struct errmsg *err);

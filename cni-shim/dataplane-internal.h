/*
 * dataplane-internal: what the dataplane-*.c files share (one file per
 * job: dataplane.c the names and the libnl messages for one object,
 * dataplane-add.c ADD, dataplane-ipv6.c its IPv6 and egress steps,
 * dataplane-del.c DEL and GC, dataplane-check.c CHECK; include/dataplane.h
 * is the API). The helpers return 0 or a negative errno and fill no
 * errmsg unless they take one.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
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

static inline void sock_freep(struct nl_sock **p) { if (*p) nl_socket_free(*p); }
static inline void link_putp(struct rtnl_link **p) { if (*p) rtnl_link_put(*p); }
static inline void addr_putp(struct nl_addr **p) { if (*p) nl_addr_put(*p); }
static inline void cache_freep(struct nl_cache **p) { if (*p) nl_cache_free(*p); }
static inline void closep(int *fd) { if (*fd >= 0) close(*fd); }
static inline void rtaddr_putp(struct rtnl_addr **p) { if (*p) rtnl_addr_put(*p); }
static inline void route_putp(struct rtnl_route **p) { if (*p) rtnl_route_put(*p); }
static inline void neigh_putp(struct rtnl_neigh **p) { if (*p) rtnl_neigh_put(*p); }
static inline void rule_putp(struct rtnl_rule **p) { if (*p) rtnl_rule_put(*p); }

/* PROTO_EGRESS4_CIDR in parts */
#define DPI_EGRESS_NET "169.254.172.0"
#define DPI_EGRESS_PLEN 22
/* PROTO_EGRESS6_CIDR in parts */
#define DPI_EGRESS6_NET "fd00::ac:0"
#define DPI_EGRESS6_PLEN 118

/*
 * The egress veth of each direction (aws-node's egress-cni): an IPv6 pod's
 * IPv4 egress (v4if0, 169.254.172.0/22, the gateway .1 on the host end) or
 * an IPv4 pod's IPv6 egress (v6if0, fd00::ac:0/118, the gateway the host
 * end's own link-local address). The steps and CHECK are the same for both.
 */
struct egress_shape {
        int af;
        const char *pod_ifname, *net, *any;
        unsigned plen;          /* the range's */
        unsigned gw_plen;       /* the gateway address's on the host end */
};
/* The shape of egress address x's family. */
const struct egress_shape *dpi_egress_shape(const char *x);
/* The gateway of an egress veth whose host end has MAC mac. */
void dpi_egress_gateway(const struct egress_shape *sh, const unsigned char mac[static 6],
                        char ret[static PROTO_IP_MAX]);

/* One veth pair: the main one (pod end I) or the egress one (v4if0 or v6if0). */
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

static inline bool dpi_is_v6(const char *ip) {
        return ip && strchr(ip, ':');
}

static inline unsigned dpi_host_len(const char *ip) {
        return dpi_is_v6(ip) ? 128 : 32;
}

static inline const char *dpi_pod_gateway(const char *ip) {
        return dpi_is_v6(ip) ? PROTO_POD_GATEWAY6 : PROTO_POD_GATEWAY;
}

/* --- dataplane.c: names and one-object messages ------------------------------- */

/* The alias of the main (egress false) or the egress host veth. */
void dpi_alias_of(const char *container_id, const char *ifname, bool egress, char ret[static PROTO_VETH_ALIAS_MAX]);
/* The host name of the main or egress veth with salt. */
int dpi_name_of(const struct dp_pod *pod, bool egress, unsigned salt, char ret[static PROTO_IFNAME_MAX + 1]);
/* ip (either family) as an nl_addr of prefix length plen; NULL on a bad ip or ENOMEM. */
struct nl_addr *dpi_ipaddr(const char *ip, unsigned plen);
/* a is ip/plen (a NULL a is the zero-length prefix). */
bool dpi_addr_is(struct nl_addr *a, const char *ip, unsigned plen);
void dpi_mac_bytes_str(const unsigned char m[static 6], char buf[static 18]);
/* A link-layer nl_addr as "xx:..:xx" ("" when it is none). */
void dpi_mac_str(struct nl_addr *a, char buf[static 18]);
int dpi_link_get(struct nl_sock *sk, const char *name, struct rtnl_link **ret);
/* The attachment's main or egress host veth (hint first); -ENOENT: none. */
int dpi_find_host_veth(struct nl_sock *sk, const struct dp_pod *pod, const char *hint, bool egress,
                       struct rtnl_link **ret);
/* ip/plen on ifindex, with scope (IPv4; < 0: the kernel's) and IFA_F_* flags. */
int dpi_addr_add(struct nl_sock *sk, int ifindex, const char *ip, unsigned plen, int scope, unsigned flags);
uint8_t dpi_rt_scope(const struct rt *rt);
int dpi_route_change(struct nl_sock *sk, bool add, const struct rt *rt, uint32_t table, int flags);
/* Rule "to ip" (from false) or "from ip" lookup table at prio. */
int dpi_rule_change(struct nl_sock *sk, bool add, bool from, const char *ip, uint32_t table, uint32_t prio);
/* Every rule of a pod address (both priorities); *removed counts them (may be NULL). */
int dpi_rules_remove(struct nl_sock *sk, const char *ip, unsigned *removed);
/* The pod namespace's descriptor and a netlink socket in it (err names the failure). */
int dpi_open_pod(const char *netns, int *ret_fd, struct nl_sock **ret_sk, struct errmsg *err);

/* --- dataplane-add.c: the veth steps the egress veth shares ------------------- */

int dpi_make_veth(struct dp_wiring *c, struct veth *v, struct errmsg *err);
int dpi_host_alias(struct dp_wiring *c, const struct veth *v);
int dpi_pod_end_up(struct dp_wiring *c, struct veth *v, unsigned mtu, struct errmsg *err);

/* --- dataplane-ipv6.c: the IPv6 and egress steps ------------------------------ */

int dpi_host_sysctls(struct dp_wiring *c, struct errmsg *err);
int dpi_pod_sysctls(struct dp_wiring *c, struct errmsg *err);
int dpi_wait_dad(struct dp_wiring *c, struct errmsg *err);
int dpi_egress_step(struct dp_wiring *c, enum dp_step step, struct errmsg *err);
/* An egress address is of the other family than ip, in its egress range (none is valid too). */
bool dpi_valid_egress(const char *ip, const char *egress_ip);

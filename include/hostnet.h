/*
 * hostnet: vpc-ipamd's host-side networking — the ENI links of the node,
 * their route tables and rules, and the host leftovers of pods that are gone —
 * made and removed with libnl-route-3 (never by running `ip`).
 *
 * A hostnet handle is one NETLINK_ROUTE socket bound to the network namespace
 * of the thread that opened it (the daemon runs in the node's namespace).
 * It is not thread-safe: one handle per thread.
 *
 * What an ENI gets (aws-node's layout, so an operator finds what they know):
 *   primary ENI (network card 0, device 0): link up and MTU, nothing else —
 *     the OS configured its address and main-table routes;
 *   secondary ENI, route table T: link up and MTU; exactly one global IPv4
 *     address, its primary IP with the subnet's mask (added with
 *     IFA_F_NOPREFIXROUTE, and any main-table route to the subnet through the
 *     link removed, so traffic to the subnet never leaves through the wrong
 *     ENI); in table T "<gw>/32 dev ethN scope link" and "default via <gw> dev
 *     ethN" (gw = subnet base + 1); rule "from <primary IP> lookup T" at
 *     priority HOSTNET_ENI_RULE_PRIO.
 * Every function reads the kernel state first and changes only what differs,
 * so running hostnet_setup_eni() again changes nothing.
 *
 * All functions return 0 or a negative errno and, on failure, fill err (may
 * be NULL) with one sentence naming the link, address, route or rule.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define HOSTNET_IFNAMSIZ 16             /* IFNAMSIZ, with the NUL */
#define HOSTNET_TABLE_MAIN 254

/*
 * Rule priorities. The pod rules are the CNI plugin's (dataplane.h), listed
 * here because hostnet_remove_pod_routing() removes them. The ENI rule sits at
 * 32765, as aws-node's: after every pod rule (512 "to pod lookup main" must
 * win so that host traffic to a local pod goes to its veth, 1024 is aws-node's
 * connmark rule, 1536 "from pod lookup T") and just before "lookup main"
 * (32766), so only traffic sourced from the ENI's own address that nothing
 * more specific claimed is steered into the ENI's table.
 */
#define HOSTNET_POD_RULE_PRIO_TO 512
#define HOSTNET_SERVICE_RULE_PRIO 1535      /* "to <AWS_EXTERNAL_SERVICE_CIDRS> lookup main", as aws-node */
#define HOSTNET_POD_RULE_PRIO_FROM 1536
#define HOSTNET_ENI_RULE_PRIO 32765

typedef struct hostnet hostnet;

struct hostnet_eni {
        const char *mac;                /* "0a:1b:2c:3d:4e:5f", either case */
        unsigned device_index;
        unsigned network_card;
        bool is_primary;                /* the instance's primary ENI: link up and MTU only */
        uint32_t route_table;           /* 0: hostnet_route_table(network_card, device_index);
                                         * ignored for the primary ENI */
        const char *primary_ip;         /* dotted quad; secondary ENIs only */
        const char *subnet_cidr;        /* "10.0.1.0/24", no host bits; secondary ENIs only */
        unsigned mtu;                   /* 0: leave the link's MTU alone */
};

/* aws-node's table for an ENI: card 0 device 0 -> main (254); card 0 device
 * N -> N + 1; card C > 0 -> 10000 + device + 100 * C. */
uint32_t hostnet_route_table(unsigned network_card, unsigned device_index);

/* A route socket in the calling thread's current network namespace. */
int hostnet_open(hostnet **ret, struct errmsg *err);
hostnet *hostnet_free(hostnet *h);

/* The link whose MAC is mac (a device, or a veth as the emulated VPC makes;
 * never a vlan, bridge or bond that copies the MAC). -ENOENT when there is
 * none (yet: an attached ENI's link appears asynchronously; the caller
 * polls). */
int hostnet_find_link_by_mac(hostnet *h, const char *mac, int *ret_ifindex,
                             char ret_name[static HOSTNET_IFNAMSIZ], struct errmsg *err);

/* hostnet_find_link_by_mac(), waiting up to timeout_ms for the link to
 * appear; woken by the kernel's link notifications, not by a timer. Call it
 * from the namespace the handle was opened in. -ETIMEDOUT when it did not. */
int hostnet_wait_link_by_mac(hostnet *h, const char *mac, unsigned timeout_ms, int *ret_ifindex,
                             char ret_name[static HOSTNET_IFNAMSIZ], struct errmsg *err);

/* Set the MTU of a link (by index); no message is sent when it already is.
 * -ENODEV when there is no such link. */
int hostnet_set_link_mtu(hostnet *h, int ifindex, unsigned mtu, struct errmsg *err);

/* Bring the ENI's link to the state described above; idempotent. -ENOENT
 * when its link is absent, -EINVAL for an inconsistent description. */
int hostnet_setup_eni(hostnet *h, const struct hostnet_eni *e, struct errmsg *err);

/* Remove what setup added outside the link: every rule at
 * HOSTNET_ENI_RULE_PRIO that looks up the ENI's table and every route of that
 * table (the link and its address go away with the detach). Missing things
 * are not errors; a primary ENI has nothing to remove. */
int hostnet_teardown_eni(hostnet *h, const struct hostnet_eni *e, struct errmsg *err);

/* Names of the links whose name starts with prefix ("" = all), in the
 * kernel's (ifindex) order; *ret is one malloc'd array for free(). */
int hostnet_list_links(hostnet *h, const char *prefix, char (**ret)[HOSTNET_IFNAMSIZ], size_t *ret_n,
                       struct errmsg *err);

/* A pod's host veth at DEL: when link name exists and carries exactly alias
 * (the plugin's mark, proto_veth_alias()), take it down — its routes go, its
 * traffic stops — and return its ifindex. -ENOENT when there is no such
 * link or it is not this attachment's (then nothing is changed). */
int hostnet_pod_veth_down(hostnet *h, const char *name, const char *alias, int *ret_ifindex, struct errmsg *err);
/* Its two halves: is link name this attachment's (alias)? Its ifindex, or
 * -ENOENT. And take link ifindex down (-ENOENT when it is gone). */
int hostnet_pod_veth_find(hostnet *h, const char *name, const char *alias, int *ret_ifindex, struct errmsg *err);
int hostnet_link_down(hostnet *h, int ifindex, struct errmsg *err);

/* Give a pod veth another CNI made (aws-node's) this attachment's alias,
 * so the DEL path above recognises it: 1 when set, 0 when it already had
 * it, -ENOENT when there is no such link, -EEXIST when it carries another
 * alias (then it is left alone), -EMEDIUMTYPE when it is not a veth. */
int hostnet_adopt_pod_veth(hostnet *h, const char *name, const char *alias, struct errmsg *err);

/* The links whose alias starts with alias_prefix, in ifindex order; *ret is
 * one malloc'd array for free(). */
struct hostnet_link {
        int ifindex;
        bool up;
        char name[HOSTNET_IFNAMSIZ];
        char alias[256];
};
int hostnet_list_aliased(hostnet *h, const char *alias_prefix, struct hostnet_link **ret, size_t *ret_n,
                         struct errmsg *err);

/* The main table's /32 routes through one device (a pod's host route): one
 * malloc'd array for free(). */
struct hostnet_host_route {
        int ifindex;
        char ip[16];
};
int hostnet_host_routes(hostnet *h, struct hostnet_host_route **ret, size_t *ret_n, struct errmsg *err);
/* The same for the main table's IPv6 /128 routes (IPv6 pods' host routes). */
struct hostnet_host_route6 {
        int ifindex;
        char ip[46];
};
int hostnet_host_routes6(hostnet *h, struct hostnet_host_route6 **ret, size_t *ret_n, struct errmsg *err);

/* Delete link ifindex if it is still named name: 1 when deleted, 0 when
 * there was none (not an error). For a veth this waits for the kernel's RCU
 * grace periods, ~20 ms. */
int hostnet_delete_link(hostnet *h, int ifindex, const char *name, struct errmsg *err);

/* Remove a pod's host routing: main-table routes to <pod_ip>/32 (any
 * device), rule "to pod_ip lookup main" prio 512 and rule "from pod_ip lookup
 * route_table" prio 1536 (route_table 0: whatever table). Each is deleted by
 * asking the kernel for that route or rule (no dump: DEL runs it on a node
 * with hundreds of pods), which also takes one carrying extra selectors at
 * these priorities; nothing else puts rules there. Missing things are not
 * errors. Call it before the address is released: once reassigned, the new
 * pod's identical rules would go too. */
int hostnet_remove_pod_routing(hostnet *h, const char *pod_ip, uint32_t route_table, struct errmsg *err);

/*
 * AWS_EXTERNAL_SERVICE_CIDRS: make the plain rules "to <cidr> lookup main" at
 * HOSTNET_SERVICE_RULE_PRIO exactly those of cidrs (IPv4 CIDRs without host
 * bits): each added unless present, and any other plain "to X lookup main"
 * at that priority (a CIDR since dropped from the variable) deleted. Just
 * before the pods' "from pod lookup T" rules, they send a pod's traffic to
 * these destinations out through the main table (the primary ENI), as
 * aws-node's. n == 0 removes them all. -EINVAL naming a bad CIDR before any
 * change.
 */
int hostnet_sync_service_rules(hostnet *h, const char *const *cidrs, size_t n, struct errmsg *err);

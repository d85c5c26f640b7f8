/*
 * ipv6node: what IPv6 mode (ENABLE_IPv6=true) sets up on a node before it
 * serves, as aws-node does (aws-vpc-cni-modes.md §2): the primary ENI in the
 * store, its one /80 prefix, the VPC's IPv6 CIDRs for the replies, the
 * node's sysctls. Pods then get /128s from the /80 (store_assign6); there is
 * no warm pool, no reconciler and no ENI beyond the primary.
 *
 * The /80 is adopted when EC2 (or, without provisioning, IMDS) lists one on
 * the primary ENI — the first, as aws-node — else assigned with
 * AssignIpv6Addresses(Ipv6PrefixCount=1) under an intent. A daemon killed
 * around that call leaves the intent open; the next setup reads EC2's list
 * first, so a /80 the call did make is adopted (intent done) and one it did
 * not is asked for again (intent failed): never two, never none. An open
 * intent younger than IPV6NODE_SETTLE_MS is not failed yet (EC2's list
 * lags a call that timed out): the setup returns -EAGAIN meanwhile. /80s the
 * store has and the ENI no longer lists are dropped (withdrawn while pods
 * hold them), never handed out.
 */
#pragma once

#include "errmsg.h"
#include "ipamd-ctx.h"
#include "store.h"

#define IPV6NODE_SETTLE_MS 30000

/*
 * The primary ENI recorded, its /80 adopted or assigned, and the VPC's IPv6
 * CIDRs kept in the store's metadata ("vpc_cidrs6") for the add replies.
 * The /80 in ret (may be NULL). -errno with err saying what failed; safe to
 * call again (each step is idempotent).
 */
int ipv6node_setup(struct ipamd_ctx *o, char ret[STORE_CIDR6_MAX], struct errmsg *err);

/*
 * After the store was lost (a new one at this start): the pods the kernel
 * shows get their addresses back before anything is handed out — each
 * link aliased "vpc-cni:<ifname>:<container id>" (the plugin's) with a main
 * table /128 route is that attachment's /128, and a /32 route in
 * 169.254.172.0/22 on the link aliased "vpc-cni-egress:<ifname>:<container
 * id>" (the plugin's egress veth) its egress address. o->net
 * must be open. The number restored in *ret_n.
 */
int ipv6node_witness(struct ipamd_ctx *o, size_t *ret_n, struct errmsg *err);

/*
 * The egress addresses in use on the node: every main-table /32 route in
 * 169.254.172.0/22 through a device (a pod's egress host veth, ours or
 * aws-node's at a takeover), and every /128 route in fd00::ac:0/118 (IPv4
 * pods' IPv6 egress, ENABLE_V6_EGRESS), goes to store_egress_in_use, so an
 * address a pod the store does not know holds is never handed out. Also
 * called in IPv4 mode with ENABLE_V6_EGRESS. Call it at every start
 * before serving (after the witness and the import). o->net must be open.
 * The number of addresses kept for unknown pods in *ret_kept.
 */
int ipv6node_egress_in_use(struct ipamd_ctx *o, int64_t cooldown_ms, size_t *ret_kept, struct errmsg *err);

/*
 * The node's IPv6 sysctls under procsys ("/proc/sys"; a directory in tests):
 * net/ipv6/conf/all/disable_ipv6=0, net/ipv6/conf/all/forwarding=1,
 * net/ipv4/ip_forward=1, net/ipv6/conf/<primary_if>/accept_ra=2 (forwarding
 * would otherwise stop the node accepting its default route's RAs). Each is
 * written only when it reads otherwise: "all" keys propagate to every link,
 * and a restart must not undo the live pods' host veth settings.
 */
int ipv6node_sysctls(const char *procsys, const char *primary_if, struct errmsg *err);

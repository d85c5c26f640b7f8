/*
 * node: who this node is — from IMDS — and what its instance type allows.
 *
 * Filled once at start-up (the VPC CIDRs are refreshed later by the
 * reconciler). The limits come from the store's instance-type cache when
 * present, else from DescribeInstanceTypes, which is then cached.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "ec2.h"
#include "errmsg.h"
#include "imds.h"
#include "planner.h"
#include "store.h"

#define NODE_MAX_SGS 16
#define NODE_MAX_VPC_CIDRS 8

struct node {
        char instance_id[IMDS_ID_MAX];
        char instance_type[IMDS_ID_MAX];
        char region[IMDS_ID_MAX];
        char availability_zone[IMDS_ID_MAX];
        char primary_mac[IMDS_MAC_LEN];
        char primary_eni_id[IMDS_ID_MAX];
        char primary_ip[16];
        char subnet_id[IMDS_ID_MAX];
        char subnet_cidr[19];
        char security_groups[NODE_MAX_SGS][IMDS_ID_MAX];
        size_t n_security_groups;
        char vpc_cidrs[NODE_MAX_VPC_CIDRS][19];
        size_t n_vpc_cidrs;
        struct plan_limits limits;
        bool prefix_supported;
        char egress6_ip[46];    /* ENABLE_V6_EGRESS: the primary ENI's IPv6 (IMDS ipv6) IPv4 pods' egress is
                                   SNATed to; "" when off */
};

/* Read identity, primary ENI, subnet, security groups and VPC CIDRs from IMDS. */
int node_discover(imds *m, struct node *ret, struct errmsg *err);

/* Fill n->limits: from the store's cache, else DescribeInstanceTypes (then cached). */
int node_limits(struct node *n, store *s, ec2_client *ec2, int64_t now_ms, struct errmsg *err);

/*
 * kubelet's max-pods as EKS's max-pods-calculator gives it for this node
 * (max_eni: MAX_ENI, <= 0 none), in secondary-IP mode or, with
 * prefix_delegation on a type that supports prefixes, in prefix delegation's
 * (IPv6 mode's figure, and the bound of IPv4 prefix delegation's growth).
 * The vCPUs decide the 110/250 cap; a type the built-in table does not know
 * gets 250 (a bound too high costs addresses, one too low pods). 0 when the
 * limits are unusable.
 */
int node_max_pods(const struct node *n, int max_eni, bool custom_networking, bool prefix_delegation);

/* Refresh the VPC CIDRs from IMDS; *ret_changed tells whether they differ. */
int node_refresh_vpc_cidrs(struct node *n, imds *m, bool *ret_changed, struct errmsg *err);

/* "a/b,c/d": the form the store's metadata keeps for the socket server. */
void node_vpc_cidrs_string(const struct node *n, char *buf, size_t len);

/*
 * subnets: where new ENIs go — aws-node's subnet discovery as pure functions
 * over DescribeSubnets' answer — and the per-subnet back-off after a subnet
 * ran out of addresses. No EC2 calls here (ipamd-ctx.c makes them).
 *
 * Candidates (aws-node's createENI and isSubnetValidForENICreation): the
 * subnets of the node's VPC and AZ, most available addresses first; the
 * primary (node's) subnet always, other subnets only when tagged
 * kubernetes.io/role/cni with a value other than "0"; any subnet tagged
 * kubernetes.io/role/cni=0 never (the primary included); with CLUSTER_NAME
 * set, a subnet carrying cni.networking.k8s.aws/cluster/<name> keys for other
 * clusters only, never.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ec2.h"

#define SUBNETS_TAG_CNI "kubernetes.io/role/cni"
#define SUBNETS_TAG_CLUSTER_PREFIX "cni.networking.k8s.aws/cluster/"
#define SUBNETS_MAX 16
#define SUBNETS_ID_MAX 64

/* Tagged kubernetes.io/role/cni=0: no new ENI there, no new pod address from it. */
bool subnets_excluded(const struct ec2_subnet *s);

/*
 * The candidates for a new ENI among subnets (pointers into it) in out, best
 * first (most available addresses; ties keep EC2's order), at most max;
 * their number. cluster_name "" or NULL: no cluster check.
 */
size_t subnets_candidates(const struct ec2_subnet *subnets, size_t n, const char *primary_id,
                          const char *cluster_name, const struct ec2_subnet **out, size_t max);

/* Subnets that ran out of addresses, each with when to try it again. */
struct subnets_backoff {
        struct {
                char id[SUBNETS_ID_MAX];
                int64_t until_ms;
        } slot[SUBNETS_MAX];
};

/* Skip subnet id until until_ms (the slot of the earliest expiry is reused when full). */
void subnets_backoff_set(struct subnets_backoff *b, const char *id, int64_t until_ms);
/* Is subnet id still backing off at now_ms? */
bool subnets_backoff_active(const struct subnets_backoff *b, const char *id, int64_t now_ms);

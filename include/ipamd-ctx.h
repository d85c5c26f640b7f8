/*
 * ipamd-ctx: what vpc-ipamd's EC2-facing modules share — borrowed handles
 * (EC2, IMDS, store, kernel, metrics), the node, the configuration, the
 * clock and callbacks into the daemon, and why growing failed last — plus the
 * helpers that sync.c and eniops.c both use. Owned by the daemon's top-level
 * context; used by one thread at a time (the reconciler's, or main's during
 * start-up).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "customnet.h"
#include "ec2.h"
#include "hostnet.h"
#include "imds.h"
#include "ipamd-config.h"
#include "metrics.h"
#include "node.h"
#include "store.h"
#include "subnets.h"

#define CTX_REASON_MAX 256
/* aws-node's pause after a subnet ran out of addresses. */
#define CTX_SUBNET_BACKOFF_MS (120 * 1000)
#define CTX_TAG_INSTANCE "node.k8s.amazonaws.com/instance_id"
#define CTX_TAG_CREATED "node.k8s.amazonaws.com/createdAt"
#define CTX_TAG_CLUSTER "cluster.k8s.amazonaws.com/name"
#define CTX_AWSNODE_DESCRIPTION_PREFIX "aws-K8S-"   /* + instance id: an ENI aws-node created */
#define CTX_TAG_TOKEN "vpc-ipam/client-token"
/* Helper threads that create and attach the ENIs of one batch beside the reconciler's own. */
#define CTX_HELPERS 2

struct ipamd_ctx {
        ec2_client *ec2;
        imds *imds;
        store *store;
        hostnet *net;                 /* NULL: no kernel setup (tests of EC2 logic only) */
        metrics *metrics;
        const struct ipamd_config *cfg;
        struct node *node;
        int64_t (*now_ms)(void);      /* wall clock ms, passed to the store (which takes backward steps out for cooldowns) */
        void (*pool_changed)(void *userdata);  /* addresses became usable */
        bool (*stopping)(void *userdata);      /* the daemon is stopping: end long waits */
        void *userdata;
        uint64_t foreign_devices;     /* card-0 device indexes held by ENIs vpc-ipamd does not manage */
        /* Written by the operations: why growing failed last, and until when not to retry. */
        char reason[CTX_REASON_MAX];
        int64_t grow_blocked_until;
        /* Subnet discovery: subnets that ran out, the last candidates, the CIDRs EC2 gave. */
        struct subnets_backoff backoff;
        char vpc_id[SUBNETS_ID_MAX];  /* the node subnet's VPC, once DescribeSubnets told it */
        char candidates[SUBNETS_MAX][SUBNETS_ID_MAX];
        size_t n_candidates;
        struct ctx_subnet {
                char id[SUBNETS_ID_MAX];
                char cidr[19];
                long available;
        } known[SUBNETS_MAX];
        size_t n_known;
        /* Discovery's last answer (the subnets not backing off then, best first), reused for
         * CTX_CHOICES_TTL_MS: the ENIs of one plan, made side by side, ask EC2 once. */
        struct ctx_subnet choices[SUBNETS_MAX];
        size_t n_choices;
        int64_t choices_until;
        int64_t prefix_fallback_until;  /* PD: no free /28 in the subnet; /32s until then (eniops.c) */
        /* Custom networking (NULL: off): the Kubernetes reader, why no ENI can be made per the
         * ENIConfig ("" when one can), and the security groups the last choice gave new ENIs. */
        customnet *cnet;
        char cn_reason[CTX_REASON_MAX];
        struct ctx_verdict {
                char id[SUBNETS_ID_MAX];
                bool excluded;          /* tagged kubernetes.io/role/cni=0 when first asked */
                int64_t retry_at;       /* not 0: the read failed; not asked again before then */
        } verdicts[SUBNETS_MAX];
        size_t n_verdicts;
        char eni_groups[CUSTOMNET_MAX_SGS][CUSTOMNET_ID_MAX];
        size_t n_eni_groups;
        /* Borrowed handles for eniops' helper threads, one EC2 client and one store handle
         * each (both single-threaded); ec2 NULL: that helper is absent, ENIs go one by one. */
        struct ctx_helper {
                ec2_client *ec2;
                store *store;
        } helpers[CTX_HELPERS];
};

/* Set o->reason from an EC2 failure; subnet exhaustion also blocks growth for a while. */
void ctx_note_failure(struct ipamd_ctx *o, const char *what, int r, const struct ec2_error *e);

/*
 * A create in subnet_id failed: o->reason from it. Exhaustion backs that
 * subnet off for CTX_SUBNET_BACKOFF_MS, and blocks growth as a whole only
 * when no other candidate subnet is open; true then (try the next subnet).
 */
bool ctx_note_create_failure(struct ipamd_ctx *o, const char *subnet_id, int r, const struct ec2_error *e);

/*
 * The subnets the next ENI may go in, best first, without those backing off:
 * with custom networking, the ENIConfig's subnet alone, once EC2 confirms it
 * is in the node's AZ and VPC and not tagged kubernetes.io/role/cni=0 (else
 * none, o->cn_reason says why, logged once; o->eni_groups gets its security
 * groups); with ENABLE_SUBNET_DISCOVERY, aws-node's candidates (subnets.h) among
 * DescribeSubnets' answer for the node's AZ and VPC (reused a few seconds,
 * below); without it, or when DescribeSubnets fails (logged), the node's
 * subnet. Their number (0: all backing off or excluded).
 */
size_t ctx_subnet_choices(struct ipamd_ctx *o, struct ctx_subnet *out, size_t max);

/*
 * With discovery, an answer of DescribeSubnets is reused this long (a subnet
 * backing off since is left out): a fleet's scale-up asked once per ENI, and
 * the candidates, their tags and their order do not change in seconds.
 */
#define CTX_CHOICES_TTL_MS 5000

/* With custom networking, no choice is retried this soon (the ENIConfig may appear any time). */
#define CTX_CUSTOMNET_RETRY_MS 5000

/*
 * Is the subnet tagged kubernetes.io/role/cni=0 (its ENIs carry no pods, as
 * aws-node's IsExcludedForPodIPs)? 1 yes, 0 no, asked of EC2 once per subnet
 * and process (aws-node: tag changes apply at restart); -EAGAIN when
 * DescribeSubnets failed (logged), for CTX_SUBNET_RETRY_MS: the caller keeps
 * what it knew.
 */
#define CTX_SUBNET_RETRY_MS 30000
int ctx_subnet_excluded(struct ipamd_ctx *o, const char *subnet_id);

/*
 * An Assign to an ENI in subnet_id failed: o->reason from it. Exhaustion
 * backs that subnet off (its ENIs are not grown meanwhile) and blocks growth
 * as a whole only when no other candidate subnet is open, as a create's.
 */
void ctx_note_assign_failure(struct ipamd_ctx *o, const char *subnet_id, int r, const struct ec2_error *e);

/* The CIDR of a subnet, from EC2 (DescribeSubnets, remembered): 0, or a negative errno (logged). */
int ctx_subnet_cidr(struct ipamd_ctx *o, const char *subnet_id, char out[19]);

/* Remember a subnet's CIDR told by another source (IMDS in IMDS-only mode). */
void ctx_subnet_remember(struct ipamd_ctx *o, const char *id, const char *cidr, long available);

/* Forget an ENI that EC2 no longer has (or that was just deleted) with its
 * addresses. One the store never held is already forgotten (0, logged at
 * debug); a store failure is logged (the next EC2 pass forgets it again) and
 * returned. */
int ctx_forget_eni(struct ipamd_ctx *o, const char *eni_id);

/* The ENI as EC2 sees it now (one ENI in *ret); -ENOENT when EC2 no longer knows it. */
int ctx_describe_eni(struct ipamd_ctx *o, const char *eni_id, struct ec2_result **ret, struct ec2_error *e);

/* The value of an ENI's tag, or NULL. */
const char *ctx_eni_tag(const struct ec2_eni *e, const char *key);

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

#include "ec2.h"
#include "hostnet.h"
#include "imds.h"
#include "ipamd-config.h"
#include "metrics.h"
#include "node.h"
#include "store.h"

#define CTX_REASON_MAX 256
/* aws-node's pause after a subnet ran out of addresses. */
#define CTX_SUBNET_BACKOFF_MS (120 * 1000)
#define CTX_TAG_INSTANCE "node.k8s.amazonaws.com/instance_id"
#define CTX_TAG_CREATED "node.k8s.amazonaws.com/createdAt"
#define CTX_TAG_CLUSTER "cluster.k8s.amazonaws.com/name"
#define CTX_AWSNODE_DESCRIPTION_PREFIX "aws-K8S-"   /* + instance id: an ENI aws-node created */
#define CTX_TAG_TOKEN "vpc-ipam/client-token"

struct ipamd_ctx {
        ec2_client *ec2;
        imds *imds;
        store *store;
        hostnet *net;                 /* NULL: no kernel setup (tests of EC2 logic only) */
        metrics *metrics;
        const struct ipamd_config *cfg;
        struct node *node;
        int64_t (*now_ms)(void);      /* wall clock, the store's time */
        void (*pool_changed)(void *userdata);  /* addresses became usable */
        bool (*stopping)(void *userdata);      /* the daemon is stopping: end long waits */
        void *userdata;
        uint64_t foreign_devices;     /* card-0 device indexes held by ENIs vpc-ipamd does not manage */
        /* Written by the operations: why growing failed last, and until when not to retry. */
        char reason[CTX_REASON_MAX];
        int64_t grow_blocked_until;
        int64_t prefix_fallback_until;  /* PD: no free /28 in the subnet; /32s until then (eniops.c) */
};

/* Set o->reason from an EC2 failure; subnet exhaustion also blocks growth for a while. */
void ctx_note_failure(struct ipamd_ctx *o, const char *what, int r, const struct ec2_error *e);

/* Forget an ENI that EC2 no longer has (or that was just deleted) with its
 * addresses. One the store never held is already forgotten (0, logged at
 * debug); a store failure is logged (the next EC2 pass forgets it again) and
 * returned. */
int ctx_forget_eni(struct ipamd_ctx *o, const char *eni_id);

/* The ENI as EC2 sees it now (one ENI in *ret); -ENOENT when EC2 no longer knows it. */
int ctx_describe_eni(struct ipamd_ctx *o, const char *eni_id, struct ec2_result **ret, struct ec2_error *e);

/* The value of an ENI's tag, or NULL. */
const char *ctx_eni_tag(const struct ec2_eni *e, const char *key);

/*
 * eniops: every EC2 mutation of the node's pool, made crash-safe.
 *
 * Before each mutation an intent is written to the store (with the
 * ClientToken where the call takes one); after it, the outcome. A SIGKILL
 * between the two leaves an open intent that sync.c resolves against EC2 on
 * the next start. The store is changed only to match what EC2 answered, so
 * no address is handed out that EC2 has not given, and none that it took.
 *
 * All handles are borrowed; an eniops context belongs to one thread (the
 * reconciler's, or main's during start-up).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ec2.h"
#include "hostnet.h"
#include "imds.h"
#include "ipamd-config.h"
#include "metrics.h"
#include "node.h"
#include "store.h"

#define ENIOPS_REASON_MAX 256
/* aws-node's pause after a subnet ran out of addresses. */
#define ENIOPS_SUBNET_BACKOFF_MS (120 * 1000)
#define ENIOPS_LINK_WAIT_MS 60000       /* bound on waiting for an attached ENI's link */
#define ENIOPS_IMDS_WAIT_MS 10000       /* bound on waiting for IMDS to list a new ENI's addresses */
#define ENIOPS_TAG_INSTANCE "node.k8s.amazonaws.com/instance_id"
#define ENIOPS_TAG_CREATED "node.k8s.amazonaws.com/createdAt"
#define ENIOPS_TAG_CLUSTER "cluster.k8s.amazonaws.com/name"
#define ENIOPS_TAG_TOKEN "vpc-ipam/client-token"
#define ENIOPS_DESCRIPTION_PREFIX "vpc-ipam-"

struct eniops {
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
        char reason[ENIOPS_REASON_MAX];
        int64_t grow_blocked_until;
};

/* Assign count secondary IPs to an attached ENI. */
int eniops_assign(struct eniops *o, const char *eni_id, int count);

/*
 * Create n ENIs at once, with counts[i] secondary IPs each (in the same
 * CreateNetworkInterface call), attach them at free device indexes, set
 * DeleteOnTermination, wait for their links and IMDS, set them up and open
 * them to pods. Returns how many became usable, or a negative errno when none.
 */
int eniops_create(struct eniops *o, const int *counts, size_t n);

/* Return count free secondary IPs of an ENI to EC2. */
int eniops_release(struct eniops *o, const char *eni_id, int count);

/* Detach and delete an ENI that holds no pod; -EBUSY if one got an address meanwhile. */
int eniops_delete(struct eniops *o, const char *eni_id);

/* Carry on deleting ENIs left `detaching` (a failed or interrupted delete). */
int eniops_finish_detaching(struct eniops *o);

/*
 * Delete this node's ENIs that have been `available` (created, never or no
 * longer attached) for more than five minutes. *ret_deleted counts them.
 */
int eniops_leak_cleanup(struct eniops *o, size_t *ret_deleted);

/* The ENI as EC2 sees it now (one ENI in *ret); -ENOENT when EC2 no longer knows it. */
int eniops_describe(struct eniops *o, const char *eni_id, struct ec2_result **ret, struct ec2_error *e);

/* The value of an ENI's tag, or NULL. */
const char *eniops_tag(const struct ec2_eni *e, const char *key);

/* Set o->reason from an EC2 failure; subnet exhaustion also blocks growth for a while. */
void eniops_note_failure(struct eniops *o, const char *what, int r, const struct ec2_error *e);

/* Forget an ENI that EC2 no longer has (or that was just deleted) with its
 * addresses; a store failure is logged (the next EC2 pass forgets it again)
 * and returned. */
int eniops_forget_eni(struct eniops *o, const char *eni_id);

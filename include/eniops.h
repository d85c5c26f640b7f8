/*
 * eniops: every EC2 mutation of the node's pool, made crash-safe.
 *
 * Before each mutation an intent is written to the store (with the
 * ClientToken where the call takes one); after it, the outcome. A SIGKILL
 * between the two leaves an open intent that sync.c resolves against EC2 on
 * the next start. The store is changed only to match what EC2 answered, so
 * no address is handed out that EC2 has not given, and none that it took.
 *
 * Each takes the daemon's shared context (ipamd-ctx.h); an uncertain outcome
 * is settled by re-reading the ENI through sync.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipamd-ctx.h"
#include "sync.h"

#define ENIOPS_LINK_WAIT_MS 60000       /* bound on waiting for an attached ENI's link */
#define ENIOPS_IMDS_WAIT_MS 10000       /* bound on waiting for IMDS to list a new ENI (its check, after it opened) */
#define ENIOPS_DESCRIPTION_PREFIX "vpc-ipam-"
#define ENIOPS_CREATE_REISSUES 3         /* re-issues of a create whose outcome is unknown */
#define ENIOPS_PREFIX_RETRY_MS 60000     /* after InsufficientCidrBlocks, /32s this long, then prefixes again */

/* Assign count secondary IPs to an attached ENI. */
int eniops_assign(struct ipamd_ctx *o, const char *eni_id, int count);

/*
 * Create n ENIs at once, with counts[i] secondary IPs each (in the same
 * CreateNetworkInterface call), attach them at free device indexes, set
 * DeleteOnTermination — side by side on the context's helpers, when it has
 * them — wait for their links, set them up and open them to pods with the
 * addresses of EC2's reply, then check them against IMDS (which can only
 * take away what EC2 no longer lists). Returns how many became usable, or a
 * negative errno when none.
 */
int eniops_create(struct ipamd_ctx *o, const int *counts, size_t n);

/* Return count free secondary IPs of an ENI to EC2. */
int eniops_release(struct ipamd_ctx *o, const char *eni_id, int count);

/*
 * Prefix delegation: the same with /28 prefixes (Ipv4PrefixCount,
 * Ipv4Prefix.N). Assign returns how many prefixes the store gained; create
 * takes prefix counts (the IMDS check covers the prefixes too); release
 * returns only prefixes none of whose 16 addresses is assigned, cooling or
 * being released, and how many it returned. When the subnet has no free /28
 * (InsufficientCidrBlocks), assign and create fall back to /32s (see
 * eniops.c) and return what those gave; without `fallback` (prefixes that
 * replace free /32s, plan_action.replace) they start the fallback's back-off
 * and return -ENOSPC instead.
 */
int eniops_assign_prefixes(struct ipamd_ctx *o, const char *eni_id, int count, bool fallback);
int eniops_create_prefixes(struct ipamd_ctx *o, const int *counts, size_t n, bool fallback);
int eniops_release_prefixes(struct ipamd_ctx *o, const char *eni_id, int count);

/* Detach and delete an ENI that holds no pod; -EBUSY if one got an address meanwhile. */
int eniops_delete(struct ipamd_ctx *o, const char *eni_id);

/* Carry on deleting ENIs left `detaching` (a failed or interrupted delete). */
int eniops_finish_detaching(struct ipamd_ctx *o);

/*
 * Delete ENIs that have been `available` (created, never or no longer
 * attached) for more than five minutes and that a node made — description
 * vpc-ipam-… or aws-node's aws-K8S-… (a node taken over): this instance's
 * (its instance_id tag), and with CLUSTER_NAME the cluster's (its cluster
 * tag and any instance_id tag: terminated nodes'). *ret_deleted counts them.
 */
int eniops_leak_cleanup(struct ipamd_ctx *o, size_t *ret_deleted);

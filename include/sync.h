/*
 * sync: make the store agree with the world — EC2 (which addresses each ENI
 * holds), the kernel (ENI links set up) and the pods (gone pods' addresses
 * released) — and resolve the intents a crash left open.
 *
 * Run at start-up before serving, and periodically by the reconciler.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ipamd-ctx.h"

/* How long a pod's netns must be gone before its address is released. */
#define SYNC_POD_GRACE_MS (30 * 1000)
/* How long a pod must have no host veth before its address is released (longer than an ADD's wiring). */
#define SYNC_POD_VETH_GRACE_MS (60 * 1000)

struct sync_report {
        size_t enis_added, enis_removed, blocks_added, blocks_removed, leases_lost;
        size_t links_set_up, intents_resolved, enis_deleted, pods_released, leases_witnessed;
        size_t enis_unrecorded;         /* attached ENIs the pass could not record (their subnet unknown) */
        size_t witness_pending;         /* pods' addresses the witness could not record yet (ENI not set up) */
};

/*
 * EC2 is the truth for which ENIs are attached to this instance and which
 * addresses each holds: the store follows it (an address EC2 took from a pod
 * is force-removed, counted and logged), and each attached ENI's link is set
 * up when present. ENIs are managed when they are the primary ENI, carry
 * this instance's tag, or (MANAGE_UNTAGGED_ENI, default true) carry no tag
 * of ours at all; one tagged node.k8s.amazonaws.com/no_manage=true never is.
 * Others are left alone (their device indexes noted).
 */
int sync_with_ec2(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err);

/*
 * The same pass from IMDS alone, for DISABLE_NETWORK_RESOURCE_PROVISIONING:
 * every ENI IMDS lists is used, and no EC2 call is made.
 */
int sync_with_imds(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err);

/*
 * Re-read one ENI from EC2 and make its blocks in the store match: used after
 * a mutation whose outcome is uncertain (a lost response, a retried call).
 */
int sync_eni(struct ipamd_ctx *o, const char *eni_id, struct sync_report *rep);

/* Resolve every open intent against EC2 (after sync_with_ec2). */
int sync_intents(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err);

/* Settle the create intents left open by a create whose outcome stayed unknown (while running). */
int sync_open_creates(struct ipamd_ctx *o, struct sync_report *rep);

/*
 * CreateNetworkInterface as a create intent's params hold it (subnet, groups,
 * description, tags, count) with its ClientToken: the first call and every
 * re-issue send the same request, so EC2 makes one ENI for them all.
 * -ENODATA for params too old to re-issue; -EBADMSG unless one ENI comes back.
 */
int sync_create_eni(struct ipamd_ctx *o, const char *token, const char *params, struct ec2_result **ret,
                    struct ec2_error *e);

/* A definite refusal of a create by EC2 (a 4xx, not throttling): with its ClientToken, nothing was made. */
bool sync_refused(int r, const struct ec2_error *e);

/* Pods whose netns has been gone for SYNC_POD_GRACE_MS, or whose host veth for SYNC_POD_VETH_GRACE_MS, lose their address. */
typedef struct sync_pods sync_pods;
/* The host links a pass judges pods by: all names, and those vpc-cni marked with its alias. */
struct sync_pod_links {
        char (*names)[HOSTNET_IFNAMSIZ];
        size_t n_names;
        bool have_names;                /* the names were read */
        struct hostnet_link *marked;
        size_t n_marked;
        bool have_marked;               /* the marked links were read */
};
/* How long this lease's pod must have looked gone before its address goes; 0 while it is present. */
int64_t sync_pod_gone_grace(const struct store_lease *l, const struct sync_pod_links *k);
int sync_pods_new(sync_pods **ret);
sync_pods *sync_pods_free(sync_pods *p);
int sync_pods_run(sync_pods *p, struct ipamd_ctx *o, struct sync_report *rep);

/*
 * The kernel as a second witness of which pod holds which address: every
 * address a main-table /32 route sends to an up host veth carrying the
 * plugin's alias (protocol.h) becomes that attachment's lease (container id
 * and interface from the alias, the veth as its host side), never a free
 * one. Run after the EC2 pass at start-up and after the store was rebuilt.
 * -EAGAIN while it is incomplete (an attached ENI the pass could not record,
 * a pod's address on an ENI not set up yet): the caller retries the pass and
 * serves no ADD meanwhile.
 */
int sync_kernel_witness(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err);

/* "vpc-cni:<ifname>:<container id>" (a pod veth's alias) into its parts; false if it is not one. */
bool sync_witness_alias(const char *alias, char ifname[STORE_IFNAME_MAX + 1],
                        char container_id[STORE_CONTAINER_ID_MAX + 1]);

/* Set up links of ENIs still attaching (their link appeared later); opens them to pods. */
int sync_links(struct ipamd_ctx *o, struct sync_report *rep);

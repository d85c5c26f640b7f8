/*
 * awsnode-import: taking over the pods of a node aws-node ran.
 *
 * aws-node (Amazon VPC CNI) keeps its assignments in a JSON checkpoint,
 * /var/run/aws-node/ipam.json:
 *   {"version":"vpc-cni-ipam/1","allocations":[{"networkName":"aws-cni",
 *    "containerID":"3f9c…","ifName":"eth0","ipv4":"10.0.3.37",
 *    "allocationTimestamp":<unix ns>,"metadata":{"k8sPodNamespace":"default",
 *    "k8sPodName":"web-0","interfacesCount":1}}]}
 * (ipv4, ipv6 and metadata may be absent). awsnode_checkpoint_parse() reads
 * it without I/O; awsnode_import() turns each IPv4 allocation into a lease
 * of the store — same address, container id, interface and pod — so the
 * address is never handed out again and the runtime's later DEL (by
 * container id and ifname) releases it as any other.
 *
 * The pod's host veth is named as aws-node names it, <prefix> + the first 11
 * hex digits of sha1("<namespace>.<pod>"); the lease records that name, and
 * the veth (when present and unaliased) gets vpc-cni's alias for the
 * attachment, so the DEL path (podnet.h) takes it down and deletes it like
 * one of ours, and the vanished-pod pass (sync.h) sees when it is gone.
 *
 * The import happens once per store: AWSNODE_IMPORTED_META records it, so a
 * restart after pods were deleted never brings back their stale entries.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "hostnet.h"
#include "store.h"

#define AWSNODE_CHECKPOINT_VERSION "vpc-cni-ipam/1"
#define AWSNODE_CHECKPOINT_MAX (16u << 20)      /* far above 250 pods' worth */
#define AWSNODE_IMPORTED_META "awsnode_imported"
#define AWSNODE_VETH_HASH_LEN 11

struct awsnode_alloc {
        char network_name[64];
        char container_id[STORE_CONTAINER_ID_MAX + 1];
        char ifname[STORE_IFNAME_MAX + 1];
        char ipv4[STORE_IP_MAX];                /* "" when the allocation is IPv6 only */
        char ipv6[STORE_IP6_MAX];               /* "" when absent (an IPv4 cluster) */
        char pod_namespace[STORE_POD_FIELD_MAX + 1];
        char pod_name[STORE_POD_FIELD_MAX + 1];
        int64_t allocated_ns;                   /* 0 when absent */
};

struct awsnode_checkpoint {
        struct awsnode_alloc *allocs;
        size_t n;
};

/*
 * Parse a checkpoint's text. -EPROTONOSUPPORT for a version other than
 * AWSNODE_CHECKPOINT_VERSION (err names it), -EINVAL for text that is not
 * one (err says where). An allocation lacking containerID or ifName, or
 * with a field too long for the store, is refused as a whole: a checkpoint
 * aws-node wrote never has one.
 */
int awsnode_checkpoint_parse(const char *text, size_t len, struct awsnode_checkpoint *ret, struct errmsg *err);

/* Read and parse path: -ENOENT when there is no file (a fresh node); other
 * errors as awsnode_checkpoint_parse(), err naming path. */
int awsnode_checkpoint_read(const char *path, struct awsnode_checkpoint *ret, struct errmsg *err);

void awsnode_checkpoint_done(struct awsnode_checkpoint *c);

/* aws-node's host veth name for a pod: prefix + sha1("ns.pod")[:11]. */
int awsnode_veth_name(const char *prefix, const char *pod_namespace, const char *pod_name,
                      char ret[static STORE_IFNAME_MAX + 1]);

struct awsnode_import_report {
        size_t imported;        /* leases made (or already there, same address) */
        size_t skipped;         /* not of the mode's family, address on no ENI, or held by another attachment */
        size_t veths_adopted;   /* host veths given vpc-cni's alias */
};

/* Told about each allocation left out, with why (for the caller to log). */
typedef void (*awsnode_skip_fn)(void *userdata, const struct awsnode_alloc *a, const char *why);

/*
 * Make a lease of every IPv4 allocation whose address the store holds (call
 * it after the EC2 pass), or with ipv6 (IPv6 mode, after ipv6node_setup) of
 * every IPv6 one as that /128 (store_assign6_addr), then record
 * AWSNODE_IMPORTED_META. In IPv6 mode an allocation whose /128 no /80 of the
 * store holds, its veth present or unknown, cannot be imported: its pod may
 * be live and the address handed out again, so the import stops with
 * -EADDRNOTAVAIL (err names it) before the record. net may be NULL
 * (no veth is then adopted). A store failure, or -EAGAIN for an address on
 * an ENI whose link is not set up (its pod may be live: its address must not
 * be handed out), stops the import before the record, so the next start
 * imports again (leases already made are kept: importing is idempotent).
 */
int awsnode_import(store *s, hostnet *net, const struct awsnode_checkpoint *c, const char *veth_prefix, bool ipv6,
                   int64_t now_ms, awsnode_skip_fn skipped, void *userdata, struct awsnode_import_report *ret,
                   struct errmsg *err);

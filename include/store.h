/*
 * store: the durable truth of a node's address pool, in SQLite.
 *
 * What it holds: the node's ENIs; the address blocks EC2 gave them (a /32
 * secondary IP or a /28 prefix — both kinds from the first schema, so prefix
 * delegation needs no redesign); one row per usable address with its state
 * (free, assigned to a pod, or being released to EC2), when it became free
 * and until when it cools down; the intents of EC2 mutations in flight; the
 * instance-type limits; and small metadata. In IPv6 mode (schema 3) also
 * the node's /80 prefix, a row per /128 handed out from it (the /80's 2^48
 * addresses cannot each have one), and each IPv6 pod's IPv4 egress address.
 *
 * The database enforces what must never happen: an address is a primary key,
 * so it cannot be held twice; (container id, ifname) is unique, so a pod
 * attachment cannot hold two addresses; triggers refuse an address outside
 * its block, an assignment on an ENI that is not attached, and any ENI's
 * primary address as a pool address (one a pod already held when the
 * store was migrated leaves the pool at its release). Every operation
 * is one transaction (WAL, synchronous=FULL), so a SIGKILL at any instant
 * leaves either all of it or none of it.
 *
 * Time is passed in (milliseconds since the epoch), never read here, so tests
 * and the planner see one clock. A handle is not thread-safe: open one per
 * thread; SQLite serialises writers between them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "planner.h"

typedef struct store store;

#define STORE_ID_MAX 32          /* eni-…, subnet-…, i-… */
#define STORE_IP_MAX 16          /* dotted quad + NUL */
#define STORE_IP6_MAX 46         /* an IPv6 address's text + NUL (INET6_ADDRSTRLEN) */
#define STORE_CIDR6_MAX 44       /* an IPv6 /80's text + NUL */
#define STORE_CIDR_MAX 19        /* a.b.c.d/nn + NUL */
#define STORE_MAC_MAX 18
#define STORE_CONTAINER_ID_MAX 256
#define STORE_IFNAME_MAX 15
#define STORE_NETNS_MAX 4096
#define STORE_POD_FIELD_MAX 253
#define STORE_ROUTE_TABLE_MAIN 254

/* The schema this build writes; an older store is migrated, a newer one refused. */
#define STORE_SCHEMA_VERSION 5

enum store_eni_state {
        STORE_ENI_ATTACHING,     /* created in EC2, attach requested, link not yet set up */
        STORE_ENI_ATTACHED,      /* its addresses may be handed out */
        STORE_ENI_DETACHING,     /* on its way out: nothing more is handed out */
};

struct store_eni {
        char id[STORE_ID_MAX];
        char mac[STORE_MAC_MAX];
        int device_index;
        int network_card;
        char subnet_id[STORE_ID_MAX];
        char subnet_cidr[STORE_CIDR_MAX];
        char primary_ip[STORE_IP_MAX];
        int route_table;         /* 254 (main) for the primary ENI, device index + 1 otherwise */
        bool is_primary;
        enum store_eni_state state;
        int64_t created_ms;
        bool no_pods;            /* read only: store_eni_set_no_pods */
};

/* Who asks for an address: the CNI attachment and, for people, the pod. */
struct store_attachment {
        const char *container_id;       /* required, 1..256 bytes */
        const char *ifname;             /* required, 1..15 bytes */
        const char *netns;              /* optional */
        const char *pod_namespace;      /* optional */
        const char *pod_name;           /* optional */
        const char *pod_uid;            /* optional */
        const char *host_veth;          /* optional: the pod's host-side link, to tell when it is gone */
};

/* An address held by a pod, with what the plugin needs to wire it. */
struct store_lease {
        char ip[STORE_IP6_MAX];         /* a dotted quad, or an IPv6 /128's canonical text */
        char egress_ip[STORE_IP6_MAX];  /* the egress address of the other family, "" when none: an IPv6
                                           pod's IPv4 one, an IPv4 pod's IPv6 one (ENABLE_V6_EGRESS) */
        char eni_id[STORE_ID_MAX];
        int device_index;
        int route_table;
        char subnet_cidr[STORE_CIDR_MAX];
        char container_id[STORE_CONTAINER_ID_MAX + 1];
        char ifname[STORE_IFNAME_MAX + 1];
        char netns[STORE_NETNS_MAX + 1];
        char pod_namespace[STORE_POD_FIELD_MAX + 1];
        char pod_name[STORE_POD_FIELD_MAX + 1];
        char pod_uid[STORE_POD_FIELD_MAX + 1];
        char host_veth[STORE_IFNAME_MAX + 1];
        int64_t assigned_ms;
};

struct store_key {
        const char *container_id;
        const char *ifname;
};

struct store_stats {
        int enis;                /* attached */
        int total;               /* addresses on attached ENIs, any state */
        int assigned;
        int cooldown;            /* free but released less than the cooldown ago */
        int available;           /* free and past cooldown: what an ADD can get */
        int releasing;
        int prefixes;            /* /28 prefixes on attached ENIs (their addresses are in total) */
        int ipv6_prefixes;       /* IPv6 /80s (IPv6 mode); their /128s are counted apart: */
        int ipv6_assigned;       /* /128s held by pods */
        int ipv6_cooldown;       /* /128s released less than the cooldown ago */
        int egress_assigned;     /* egress addresses held: IPv4 ones by IPv6 pods, IPv6 ones by IPv4 pods */
        int egress_cooldown;     /* egress addresses released less than the cooldown ago, or in use by a pod the
                                    store does not know (store_egress_in_use) */
        int egress_available;    /* egress addresses an ADD can get: STORE_EGRESS4_COUNT less the two above */
};

/* One block of an ENI and the use of its addresses (introspection). */
struct store_block_use {
        char cidr[STORE_CIDR_MAX];
        bool prefix;             /* a /28 prefix, else a /32 secondary address */
        int size, assigned, free, cooldown, releasing;  /* free: past cooldown */
};

struct store_itype {
        char name[STORE_ID_MAX];
        int max_enis;
        int ipv4_per_eni;
        bool prefix_supported;
        int network_cards;
        int64_t fetched_ms;
};

enum store_intent_state { STORE_INTENT_OPEN, STORE_INTENT_DONE, STORE_INTENT_FAILED, STORE_INTENT_UNDONE };

/*
 * What an intent is about to do. The store persists each kind as a fixed
 * string (create_eni, attach_eni, delete_eni, assign_ips, unassign_ips);
 * STORE_INTENT_LEGACY stands for a kind only an older daemon wrote
 * (detach_eni, set_delete_on_termination, tag_eni), read back but never
 * written.
 */
enum store_intent_kind {
        STORE_INTENT_LEGACY,
        STORE_INTENT_CREATE_ENI,
        STORE_INTENT_ATTACH_ENI,
        STORE_INTENT_DELETE_ENI,
        STORE_INTENT_ASSIGN_IPS,
        STORE_INTENT_UNASSIGN_IPS,
        STORE_INTENT_ASSIGN_IPV6_PREFIX,        /* schema 3: the node's /80 (AssignIpv6Addresses) */
};

#define STORE_TOKEN_MAX 65
#define STORE_JSON_MAX 4096

struct store_intent {
        int64_t id;
        enum store_intent_kind kind;
        char client_token[STORE_TOKEN_MAX]; /* empty when the call takes none */
        char eni_id[STORE_ID_MAX];
        char params[STORE_JSON_MAX];        /* JSON object */
        enum store_intent_state state;
        int64_t created_ms;
};

/*
 * Open (creating if absent) the store at path and migrate it to
 * STORE_SCHEMA_VERSION. A newer schema, a corrupt file or one that is not a
 * database is refused with err naming the path; the file is never rewritten.
 */
int store_open(const char *path, store **ret, struct errmsg *err);
store *store_close(store *s);

/*
 * The store's health, for a daemon that must notice losing it: whether the
 * file at the handle's path is still the one it opened (0; -ENOENT when it
 * was removed, -ESTALE when another file took its place, else stat's error).
 * SQLite keeps writing to an unlinked file without a word, so only this
 * tells.
 */
int store_identity_check(store *s);
/*
 * Reopen the file at the handle's path (creating it), the same as
 * store_open; the handle is unchanged on failure. store_reopen_all() asks
 * every handle of the process to do so before its next operation (outside
 * a transaction), each on its own thread.
 */
int store_reopen(store *s, struct errmsg *err);
void store_reopen_all(void);
/*
 * Make this handle the one that serves ADD and DEL: its commits are written
 * to the WAL but not fsynced (SQLite's synchronous=NORMAL), and it leaves WAL
 * checkpoints (each with its fsyncs) to the other handles. Such a commit
 * survives the process being killed; only the machine losing power can undo
 * it, and then every pod whose lease it recorded is gone too (the start-up
 * sync rebuilds the leases from the kernel). The next commit of any other
 * handle (synchronous=FULL) fsyncs the shared WAL, this handle's commits
 * with it. Kept across store_reopen.
 */
int store_set_serving(store *s);
/*
 * Process-wide count of writes refused for want of space, permission or
 * I/O (disk full, read-only file, a vanished directory), any handle; the
 * last one's errno in *ret_last_errno when not NULL.
 */
unsigned long store_write_failures(int *ret_last_errno);

/* --- pods --------------------------------------------------------------- */

/*
 * Give the attachment an address: from a /28 prefix when the pool has one
 * with a free address — the lowest free address of the fullest prefix, so
 * prefixes empty out and can be released — else the /32 free longest;
 * never one in cooldown, only on an attached ENI. Idempotent: asking again returns the
 * same lease (*ret_existing set). -EAGAIN when nothing is available; -EINVAL
 * for a bad attachment.
 */
int store_assign(store *s, const struct store_attachment *a, int64_t now_ms,
                 struct store_lease *ret, bool *ret_existing);

/*
 * Secondary-IP mode (on): hand out /32s before the addresses of prefixes
 * left from prefix delegation, so those empty out and go back. Off (the
 * default): prefixes first, so /32s left from the fallback empty out.
 */
void store_prefer_ips(store *s, bool on);

/*
 * Custom networking (on): never hand out a free address of the primary ENI,
 * whose subnet is the node's, not the pods'. The reconciler releases such
 * addresses; this keeps a pod off them in the meantime (after a restart that
 * switched custom networking on, before its first pass). Held ones stay held.
 */
void store_skip_primary(store *s, bool on);

/*
 * IPv6 egress of IPv4 pods (on; ENABLE_V6_EGRESS, schema 5): store_assign
 * also gives the attachment an egress address from STORE_EGRESS6_FIRST's
 * /118 (in the lease's egress_ip), picked as store_assign6 picks an IPv4
 * one, and gives one to a held lease that has none; -EAGAIN when none is
 * free. Release, gc and the cooldown treat it as an IPv6 pod's.
 */
void store_v6_egress(store *s, bool on);

/*
 * Mark (on) an ENI whose addresses are not the pods' (an ENI in a subnet
 * tagged kubernetes.io/role/cni=0, custom networking's primary): no free
 * address of it is handed out, now or after a restart, until unmarked; held
 * ones stay held. store_plan_enis reports the mark. -ENOENT: no such ENI.
 */
int store_eni_set_no_pods(store *s, const char *id, bool on);

/*
 * Give the attachment exactly ip: a pod another IPAM wired (aws-node's
 * checkpoint), or one the kernel shows after the store was lost. The cooldown
 * is not consulted, and an address marked for release is kept. 0 when
 * assigned, 1 when the attachment already held it; -ENOENT when the store
 * holds no such address, -EBUSY when it is not free, -EEXIST when the
 * attachment holds another address, -EAGAIN when its ENI is not attached
 * (yet), -EINVAL for a bad attachment or address.
 */
int store_assign_addr(store *s, const struct store_attachment *a, const char *ip, int64_t now_ms,
                      struct store_lease *ret);

/*
 * Release what the attachment holds; its cooldown ends at now + cooldown_ms.
 * Returns 1 when an address was released (its lease in *ret if not NULL), 0
 * when the attachment held nothing (release is idempotent), or a negative errno.
 */
int store_release(store *s, const char *container_id, const char *ifname, int64_t now_ms,
                  int64_t cooldown_ms, struct store_lease *ret);

/* The lease of an attachment; -ENOENT when it holds none. */
int store_lookup(store *s, const char *container_id, const char *ifname, struct store_lease *ret);

/*
 * Release every assignment not in valid[0..n_valid). When ret_released is
 * not NULL it receives the released leases (malloc'd; free()), *ret_n their
 * number.
 */
int store_gc(store *s, const struct store_key *valid, size_t n_valid, int64_t now_ms,
             int64_t cooldown_ms, struct store_lease **ret_released, size_t *ret_n);

/* All leases, ordered by address. *ret is malloc'd; free() it. */
int store_leases(store *s, struct store_lease **ret, size_t *ret_n);

/* --- ENIs and blocks (as the daemon learns them from EC2) --------------- */

/* Insert or update an ENI by id; a free /32 block equal to its primary address leaves the pool. */
int store_eni_put(store *s, const struct store_eni *e);
int store_eni_get(store *s, const char *id, struct store_eni *ret);
int store_eni_set_state(store *s, const char *id, enum store_eni_state state);
/* All ENIs, by device index. *ret is malloc'd; free() it. */
int store_enis(store *s, struct store_eni **ret, size_t *ret_n);

/*
 * Mark an ENI detaching — so nothing more is handed out from it — only if
 * none of its addresses is assigned, cooling or being released: one
 * transaction, so no ADD can slip in between the check and the mark.
 * -EBUSY otherwise, -ENOENT for an unknown ENI.
 */
int store_eni_begin_detach(store *s, const char *id, int64_t now_ms);

/* Every block marked releasing (a crash interrupted its release) is free again. */
int store_unmark_all_releasing(store *s);

/*
 * Forget an ENI with its blocks. -EBUSY while any of its addresses is
 * assigned, unless force (EC2 says the ENI is gone: its pods have lost their
 * addresses, and *ret_lost, if not NULL, counts them).
 */
int store_eni_remove(store *s, const char *id, bool force, size_t *ret_lost);

/*
 * Add a block (a.b.c.d/32, or an aligned /28) to an ENI; all its addresses
 * start free. Adding a block the ENI already has is a no-op (0); a block held
 * by another ENI, or overlapping one, is -EEXIST; a block holding the primary
 * address of an ENI (its own or another's), or outside the ENI's subnet, or
 * on one of the five addresses the VPC reserves in it (network, .1-.3,
 * broadcast), is -EADDRNOTAVAIL: those are never pod addresses, whatever EC2
 * listed.
 */
int store_block_add(store *s, const char *eni_id, const char *cidr, int64_t now_ms);
/*
 * The same for n blocks in one transaction (one commit, one hold of the write
 * lock, however many addresses an Assign gave): ret[i] is each block's
 * answer as store_block_add's (a block refused with -EEXIST, -EADDRNOTAVAIL
 * or -EINVAL leaves the others). Any other failure rolls back all: returned.
 */
int store_blocks_add(store *s, const char *eni_id, const char *const *cidrs, size_t n, int64_t now_ms,
                     int *ret);

/* Remove a block. -EBUSY when an address in it is assigned, unless force. */
int store_block_remove(store *s, const char *cidr, bool force, size_t *ret_lost);

/*
 * Choose up to max free /32 blocks of eni_id that are past cooldown — the
 * ones free longest — and mark them releasing, so nothing hands them out
 * while EC2 unassigns them. ret_cidrs receives max entries at most.
 */
int store_blocks_mark_releasing(store *s, const char *eni_id, size_t max, int64_t now_ms,
                                char (*ret_cidrs)[STORE_CIDR_MAX], size_t *ret_n);
/*
 * The same for /28 prefixes: up to max prefixes of eni_id none of whose 16
 * addresses is assigned, cooling or being released, marked releasing in one
 * transaction (so no ADD takes one of their addresses meanwhile).
 */
int store_prefixes_mark_releasing(store *s, const char *eni_id, size_t max, int64_t now_ms,
                                  char (*ret_cidrs)[STORE_CIDR_MAX], size_t *ret_n);
/* EC2 refused the release: the block's addresses are free again. */
int store_block_unmark_releasing(store *s, const char *cidr);

/* When a block was added (ms) and whether it is being released; -ENOENT when unknown. */
int store_block_info(store *s, const char *cidr, int64_t *ret_added_ms, bool *ret_releasing);

/* Blocks of an ENI (or of every ENI when eni_id is NULL). *ret is malloc'd. */
int store_blocks(store *s, const char *eni_id, char (**ret)[STORE_CIDR_MAX], size_t *ret_n);

/* --- IPv6 mode: one /80, pods on /128s ------------------------------------ */

/*
 * The IPv4 egress range of IPv6 pods (aws-node's egress-cni): 169.254.172.0/22,
 * the gateway .1; pods get 169.254.172.2 to 169.254.175.254.
 */
#define STORE_EGRESS4_FIRST "169.254.172.0"
#define STORE_EGRESS4_COUNT 1021        /* .2 to .1022 of the /22 */
/* The IPv6 egress range of IPv4 pods (store_v6_egress): fd00::ac:0/118, pods get ::ac:2 to ::ac:3fe alike. */
#define STORE_EGRESS6_FIRST "fd00::ac:0"
#define STORE_EGRESS6_COUNT 1021

/*
 * Add an IPv6 /80 (canonical or any text inet_pton reads, host bits zero) to
 * an ENI. Adding one the ENI has is a no-op (0); one another ENI holds is
 * -EEXIST; not a /80 is -EINVAL; an unknown ENI -ENOENT.
 */
int store_prefix6_add(store *s, const char *eni_id, const char *cidr, int64_t now_ms);

/* The /80s of an ENI (of every ENI when eni_id is NULL), lowest first, canonical text. *ret is malloc'd. */
int store_prefixes6(store *s, const char *eni_id, char (**ret)[STORE_CIDR6_MAX], size_t *ret_n);

/*
 * Give the attachment a /128 from a /80 of an attached ENI: the lowest one
 * neither held nor cooling (aws-node's order: the first pod gets the /80's
 * base), and with egress an IPv4 egress address no live pod holds (the
 * lowest never handed out, else the one released longest ago past its
 * cooldown, as for a /128). Idempotent as store_assign. -EAGAIN when no /80 is attached
 * or (with egress) no egress address is free; -EEXIST when the attachment
 * holds an IPv4 address; -EINVAL for a bad attachment. The lease comes back
 * by store_lookup, store_leases, store_release and store_gc like an IPv4 one.
 */
int store_assign6(store *s, const struct store_attachment *a, bool egress, int64_t now_ms,
                  struct store_lease *ret, bool *ret_existing);

/*
 * Give the attachment exactly the /128 ip (and, when egress_ip is not NULL,
 * that egress address): a pod the kernel shows after the store was lost.
 * The cooldown is not consulted. 0 when assigned, 1 when the attachment
 * already held ip; -ENOENT when no /80 of the store holds ip, -EBUSY when
 * another attachment holds it, -EEXIST when the attachment holds another
 * address, -EAGAIN when its ENI is not attached, -EINVAL for a bad argument.
 * An egress address another pod holds is left out (the pod keeps its /128;
 * *ret's egress_ip tells).
 */
int store_assign6_addr(store *s, const struct store_attachment *a, const char *ip, const char *egress_ip,
                       int64_t now_ms, struct store_lease *ret);

/*
 * The egress addresses (169.254.172.0/22 text, or fd00::ac:0/118 text for
 * IPv4 pods' IPv6 egress) the kernel shows routed to
 * pods' host veths: those no lease holds belong to pods the store does not
 * know (aws-node's, at a takeover) and are kept from new pods until a
 * later call no longer lists them; from then they cool down for cooldown_ms
 * as a released one. Text outside the egress range is ignored. The number
 * kept in *ret_kept (may be NULL).
 */
int store_egress_in_use(store *s, const char *const *ips, size_t n, int64_t now_ms, int64_t cooldown_ms,
                        size_t *ret_kept);

/*
 * Reconcile the ENI's /80s with the n EC2 lists: one it lists is used; one it
 * does not is dropped when no pod holds a /128 of it, else withdrawn (kept
 * for its pods, never picked by store_assign6). Counts in *ret_dropped and
 * *ret_withdrawn (may be NULL). A listed /80 is not added (store_prefix6_add).
 */
int store_prefixes6_reconcile(store *s, const char *eni_id, const char (*listed)[STORE_CIDR6_MAX], size_t n,
                              size_t *ret_dropped, size_t *ret_withdrawn);

/* --- what the planner and people read ------------------------------------ */

int store_stats(store *s, int64_t now_ms, struct store_stats *ret);

/* The ENI's blocks, lowest first, each with its kind and its addresses' states (*ret malloc'd). */
int store_block_use(store *s, const char *eni_id, int64_t now_ms, struct store_block_use **ret, size_t *ret_n);

/*
 * Per attached ENI counts, in the planner's shape (pending is left 0),
 * prefixes included: empty_prefixes counts those whose 16 addresses are all
 * free and past cooldown.
 */
int store_plan_enis(store *s, int64_t now_ms, struct plan_eni *ret, size_t max, size_t *ret_n);

/*
 * The invariants, checked from scratch: database integrity, foreign keys, no
 * address outside or missing from its block, every assigned address on an
 * attached ENI, counts consistent. 0, or -EUCLEAN with err saying which broke.
 */
int store_check(store *s, int64_t now_ms, struct errmsg *err);

/* --- intents of EC2 mutations ------------------------------------------ */

/* Record a mutation about to be made. client_token may be NULL; -EINVAL for STORE_INTENT_LEGACY. */
int store_intent_begin(store *s, enum store_intent_kind kind, const char *client_token, const char *eni_id,
                       const char *params_json, int64_t now_ms, int64_t *ret_id);
/* Record its outcome (DONE, FAILED or UNDONE) with an optional JSON result. */
int store_intent_end(store *s, int64_t id, enum store_intent_state state, const char *result_json,
                     int64_t now_ms);
/* Intents still open (a crash came between begin and end), oldest first. */
int store_intents_open(store *s, struct store_intent **ret, size_t *ret_n);
const char *store_intent_state_name(enum store_intent_state state);
/* The string the store persists for kind ("legacy" for STORE_INTENT_LEGACY). */
const char *store_intent_kind_name(enum store_intent_kind kind);

/* --- instance types and metadata ---------------------------------------- */

int store_itype_put(store *s, const struct store_itype *t);
int store_itype_get(store *s, const char *name, struct store_itype *ret);

int store_meta_set(store *s, const char *key, const char *value);
/* -ENOENT when absent; -ENOBUFS when it does not fit in len. */
int store_meta_get(store *s, const char *key, char *buf, size_t len);

const char *store_eni_state_name(enum store_eni_state state);

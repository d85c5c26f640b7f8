/*
 * podnet: the host side of a pod that vpc-ipamd undoes when the plugin's DEL
 * reaches it — the pod's policy rules and its host veth.
 *
 * podnet_unwire() runs on the caller's thread (the server's), before the
 * address is released in the store, so a pod given the address next never
 * loses its own rules to a late DEL: the rules "to IP lookup main" (512) and
 * "from IP lookup T" (1536) and every main-table route to IP/32 go at once.
 * The host veth the plugin names is checked to be this attachment's (its
 * alias, protocol.h), taken down at once — its routes go and its traffic
 * stops — and handed to podnet's own thread, which deletes it: deleting a
 * veth costs the kernel ~20 ms of RCU grace periods, which no DEL should
 * wait for.
 *
 * podnet_free() deletes whatever is still queued, for at most
 * PODNET_DRAIN_MS (a stopping daemon must not outlive its grace period over
 * a burst of DELs). A veth left queued then, or when the process dies, stays
 * down until its pod namespace goes (the runtime removes it right after
 * DEL), the next vpc-ipamd's podnet_sweep(), the plugin's GC, or an ADD of
 * the same attachment (dataplane.h) removes it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "errmsg.h"
#include "metrics.h"
#include "protocol.h"

#define PODNET_QUEUE_MAX 1024
/* Where a pod's rules can only be removed after its address was released
 * (the reconciler's release of a vanished pod; CNI GC, whose rules the plugin
 * removes), the address rests at least this long whatever IP_COOLDOWN_PERIOD
 * says, so no new pod can get it, and its rules, before they go. */
#define PODNET_RELEASE_REST_MS 5000
#define PODNET_DRAIN_MS 2000

typedef struct podnet podnet;

/* Opens two netlink sockets (the caller's thread and podnet's) in the
 * calling thread's namespace and starts the thread. Deletions are counted
 * in m (borrowed; may be NULL). */
int podnet_new(metrics *m, podnet **ret, struct errmsg *err);
/* Deletes what is queued (for at most PODNET_DRAIN_MS), stops the thread. */
podnet *podnet_free(podnet *p);

/*
 * Undo the host side of att: rules and routes of pod_ip (NULL: none known)
 * looking up route_table (0: any), then host_veth (NULL or "": none named).
 * A negative return means the rules or routes could not all be removed (err
 * names which): the address must not be released then. *ret_veth_queued
 * says whether podnet took the veth (it was this attachment's and is now
 * down, deleted shortly); when false the caller may delete it itself (none
 * there, not this attachment's, the queue is full, or it could not be taken
 * down — logged, not an error). Only one thread may call it.
 */
int podnet_unwire(podnet *p, const struct proto_attachment *att, const char *pod_ip, uint32_t route_table,
                  const char *host_veth, bool *ret_veth_queued, struct errmsg *err);

/*
 * podnet_unwire() in parts, for a caller that answers in between (the
 * server's DEL): podnet_claim_veth() reads host_veth (one netlink request)
 * and is true when it is this attachment's and the queue has room for it
 * (ifindex in *ret_ifindex); podnet_drop_veth() then takes it down and
 * queues it — queued even when it cannot be taken down, so a claimed veth is
 * always deleted (unless it is gone already). podnet_unroute() removes the
 * rules and routes of pod_ip (a negative return means the same as
 * podnet_unwire()'s). Same thread rule.
 */
bool podnet_claim_veth(podnet *p, const struct proto_attachment *att, const char *host_veth, int *ret_ifindex);
void podnet_drop_veth(podnet *p, int ifindex, const char *host_veth);
int podnet_unroute(podnet *p, const char *pod_ip, uint32_t route_table, struct errmsg *err);

/*
 * At start-up: queue for deletion every host veth that a DEL took down (down,
 * with a vpc-cni alias) whose attachment holds no address — what a vpc-ipamd
 * killed between a DEL and the deletion left. leased() returns 1 when the
 * attachment still holds an address, 0 when not, or a negative errno (the
 * sweep stops). Same thread rule as podnet_unwire().
 */
typedef int (*podnet_leased_fn)(void *userdata, const struct proto_attachment *att);
int podnet_sweep(podnet *p, podnet_leased_fn leased, void *userdata, unsigned *ret_queued, struct errmsg *err);

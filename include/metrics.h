/*
 * metrics: the daemon's counters and the ADD wait histogram.
 *
 * Lock-free (atomics), so the socket server and the reconciler count without
 * contending; the introspection server reads a snapshot and renders it in
 * Prometheus text with aws-node's metric names where the meaning is the same.
 * Gauges that the store already knows (addresses, ENIs, intents) are not kept
 * here: they are read from the store at scrape time.
 */
#pragma once

#include <stdint.h>

typedef struct metrics metrics;

enum metrics_counter {
        METRICS_ADD_REQUESTS,           /* awscni_add_ip_req_count */
        METRICS_DEL_REQUESTS,           /* awscni_del_ip_req_count */
        METRICS_NO_ADDRESS,             /* awscni_no_available_ip_addresses: ADDs answered "no address" */
        METRICS_ADD_WAITED,             /* ADDs that found the pool empty and waited */
        METRICS_BAD_REQUESTS,           /* refused messages (malformed, oversized, unknown op) */
        METRICS_PEERS_REFUSED,          /* connections from a uid other than 0 */
        METRICS_RECONCILES,             /* planner passes */
        METRICS_ENIS_CREATED,
        METRICS_ENIS_DELETED,
        METRICS_IPS_ASSIGNED,           /* secondary addresses obtained from EC2 */
        METRICS_IPS_RELEASED,           /* secondary addresses returned to EC2 */
        METRICS_FORCE_REMOVED_IPS,      /* awscni_force_removed_ips: EC2 took an address a pod held */
        METRICS_FORCE_REMOVED_ENIS,     /* awscni_force_removed_enis */
        METRICS_LEAKED_ENIS_DELETED,
        METRICS_PODS_GONE_RELEASED,     /* addresses freed because the pod's veth disappeared */
        METRICS_POD_VETHS_DELETED,      /* host veths deleted for the plugin after DEL (podnet.h) */
        METRICS_POD_VETH_DELETE_ERRORS, /* ...and deletions that failed (the veth stays down) */
        METRICS_PREFIX_FALLBACKS,       /* /32s assigned because EC2 gave no prefix (InsufficientCidrBlocks, or none) */
        _METRICS_COUNTER_MAX,
};

/* Upper bounds (ms) of the ADD wait histogram buckets; +Inf is implied. */
#define METRICS_WAIT_BUCKETS { 1, 10, 100, 500, 1000, 2000, 5000, 10000, 30000 }
#define METRICS_N_WAIT_BUCKETS 9

struct metrics_snapshot {
        uint64_t counters[_METRICS_COUNTER_MAX];
        uint64_t wait_buckets[METRICS_N_WAIT_BUCKETS + 1];   /* cumulative, last = +Inf */
        uint64_t wait_count;
        uint64_t wait_sum_ms;
};

int metrics_new(metrics **ret);
metrics *metrics_free(metrics *m);

void metrics_add(metrics *m, enum metrics_counter c, uint64_t n);
static inline void metrics_inc(metrics *m, enum metrics_counter c) {
        metrics_add(m, c, 1);
}
/* Record how long an ADD waited for an address (0 when served at once). */
void metrics_observe_add_wait(metrics *m, uint64_t ms);
void metrics_snapshot(metrics *m, struct metrics_snapshot *ret);
const uint64_t *metrics_wait_bounds(void);

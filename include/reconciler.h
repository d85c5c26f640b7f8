/*
 * reconciler: the thread that keeps the pool at its targets.
 *
 * It runs the planner whenever it is woken (an ADD took an address, ADDs are
 * waiting, a pod was released) and on a timer, and carries the plan out
 * through eniops — so an EC2 call never blocks the socket server. It also
 * re-reads EC2 and IMDS periodically, releases addresses of pods that are
 * gone, sets up ENI links that appear late, and cleans up leaked ENIs.
 */
#pragma once

#include "eniops.h"
#include "server.h"
#include "sync.h"

#define RECONCILER_TICK_MS 5000             /* a planner pass without being woken */
#define RECONCILER_EC2_RESYNC_MS 300000     /* a full EC2 pass */

typedef struct reconciler reconciler;

struct reconciler_options {
        struct ipamd_ctx ctx;           /* copied; its handles stay borrowed and are used on the thread only */
        int imds_refresh_ms;         /* VPC CIDRs from IMDS; 0: 60000 */
        bool store_new;              /* created at this start: hold ADDs and DELs until the pods' leases are known */
};

int reconciler_start(const struct reconciler_options *opts, reconciler **ret, struct errmsg *err);

/* Stop the thread (finishing the action in progress) and free it. */
reconciler *reconciler_stop(reconciler *r);

/* Thread-safe: plan again now; waiting_adds is how many ADDs wait for an address. */
void reconciler_wake(reconciler *r, int waiting_adds);

/* Thread-safe: whether the pool can serve, and why not / why it is empty. */
void reconciler_status(reconciler *r, struct server_pool_status *ret);

/*
 * ratelimit: client-side token buckets, one per EC2 throttling category,
 * shaped like EC2's own (capacity and refill per second from the EC2 API
 * throttling page) and scaled by a share, because every node of an account
 * draws from the same account-wide buckets. One ratelimit is shared by all
 * threads' EC2 clients (it is thread-safe) and also keeps the per-category
 * counters that the daemon's metrics read.
 *
 * The refill rate adapts, like the AWS SDKs' "adaptive" retry mode: a
 * throttled attempt halves its category's rate as it is then (floor 1/10
 * of the configured one) and drops the tokens saved up; the rate then climbs
 * back with time alone (linearly), to the configured one 20 s after the last
 * cut (throttles of attempts sent before
 * the last cut count once). So nodes that together oversubscribe the account
 * slow down instead of retrying into the throttle, and a lone node is slow
 * for 20 s at most after a burst of throttles.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cloudclock.h"

enum ratelimit_category {
        RATELIMIT_NON_MUTATING,         /* Describe* with filters/pagination: 100, 20/s */
        RATELIMIT_UNFILTERED_DESCRIBE,  /* DescribeInstances/NetworkInterfaces without: 50, 10/s */
        RATELIMIT_MUTATING,             /* generic mutating incl. Attach/Detach: 50, 5/s */
        RATELIMIT_ENI_ADDRESS,          /* Create/Delete ENI, Assign/Unassign, Modify: 100, 5/s */
        RATELIMIT_CREATE_TAGS,          /* CreateTags: 100, 10/s */
        _RATELIMIT_CATEGORY_MAX,
};

typedef struct ratelimit ratelimit;

struct ratelimit_options {
        double share;                   /* fraction of the account bucket, 0 < share <= 1; 0: 0.1 */
        uint64_t max_wait_ns;           /* refuse (-EAGAIN) rather than wait longer; 0: 60 s */
        const struct cloud_clock *clock;  /* NULL: the system clock */
};

struct ratelimit_stats {
        uint64_t calls;                 /* requests sent (each attempt) */
        uint64_t errors;                /* attempts that failed (any cause) */
        uint64_t throttled;             /* attempts EC2 throttled (RequestLimitExceeded) */
        uint64_t waits;                 /* times a caller waited for a token */
        uint64_t wait_ns;               /* total time waited for tokens */
        uint64_t latency_ns;            /* total time of attempts */
        uint64_t latency_max_ns;
        double rate_per_s;              /* the refill rate now (adaptive) */
        double max_rate_per_s;          /* configured: the shape's refill times the share */
};

int ratelimit_new(const struct ratelimit_options *opts, ratelimit **ret);
ratelimit *ratelimit_free(ratelimit *rl);

/* The bucket shape of a category at share 1 (EC2's published numbers). */
void ratelimit_shape(enum ratelimit_category c, double *ret_capacity, double *ret_refill_per_s);

/*
 * Take a token, sleeping (through the clock) until one is due. Callers queue
 * fairly: a token is reserved before sleeping. -EAGAIN if the wait would
 * exceed max_wait_ns (nothing is taken then).
 */
int ratelimit_take(ratelimit *rl, enum ratelimit_category c);

/* Record one finished attempt; a throttled one cuts the rate (time restores it). */
void ratelimit_record(ratelimit *rl, enum ratelimit_category c, uint64_t latency_ns,
                      bool failed, bool throttled);

void ratelimit_stats(ratelimit *rl, enum ratelimit_category c, struct ratelimit_stats *ret);
const char *ratelimit_category_name(enum ratelimit_category c);

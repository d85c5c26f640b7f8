/*
 * ratelimit: token buckets with reservation (see ratelimit.h).
 *
 * take() refills the bucket from the elapsed monotonic time, then takes a
 * token even if that drives the level negative; the caller sleeps until the
 * level it left behind would have refilled to zero. So concurrent callers
 * queue in arrival order without holding the lock while they sleep, and the
 * long-run rate never exceeds refill_per_s. A refusal (wait too long) takes
 * nothing.
 *
 * Adaptive rate (AIMD): record() of a throttled attempt refills at the old
 * rate up to now, then halves refill_per_s (not below max_rate / 20) and
 * clamps the level to zero, so the next take waits a full new interval
 * rather than spending a saved burst; callers already queued keep the wait
 * they reserved. Any other attempt adds max_rate / 20, capped at max_rate.
 * A throttled attempt that started before the last cut (sent concurrently,
 * at the old rate) does not cut again, so a handful of calls in flight
 * together count as one signal rather than driving the rate to the floor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "ratelimit.h"

#define RATE_CUT 0.5             /* multiplicative decrease on a throttle */
#define RATE_STEPS 20.0          /* floor and additive step: max_rate / RATE_STEPS */

struct bucket {
        double capacity, refill_per_s, max_rate, level;
        uint64_t last_ns, cut_ns;       /* cut_ns: when the rate was last cut */
        struct ratelimit_stats stats;
};

struct ratelimit {
        pthread_mutex_t lock;
        const struct cloud_clock *clock;
        uint64_t max_wait_ns;
        struct bucket b[_RATELIMIT_CATEGORY_MAX];
};

/* EC2's published shapes (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html). */
static const struct { const char *name; double capacity, refill; } shapes[_RATELIMIT_CATEGORY_MAX] = {
        [RATELIMIT_NON_MUTATING] = { "non_mutating", 100, 20 },
        [RATELIMIT_UNFILTERED_DESCRIBE] = { "unfiltered_describe", 50, 10 },
        [RATELIMIT_MUTATING] = { "mutating", 50, 5 },
        [RATELIMIT_ENI_ADDRESS] = { "eni_address", 100, 5 },
        [RATELIMIT_CREATE_TAGS] = { "create_tags", 100, 10 },
};

void ratelimit_shape(enum ratelimit_category c, double *ret_capacity, double *ret_refill_per_s) {
        *ret_capacity = shapes[c].capacity;
        *ret_refill_per_s = shapes[c].refill;
}

const char *ratelimit_category_name(enum ratelimit_category c) {
        return (unsigned)c < _RATELIMIT_CATEGORY_MAX ? shapes[c].name : "?";
}

int ratelimit_new(const struct ratelimit_options *opts, ratelimit **ret) {
        double share = opts && opts->share > 0 ? opts->share : 0.1;
        if (share > 1)
                return -EINVAL;
        struct ratelimit *rl = calloc(1, sizeof *rl);
        if (!rl)
                return -ENOMEM;
        pthread_mutex_init(&rl->lock, NULL);
        rl->clock = opts && opts->clock ? opts->clock : cloud_clock_system();
        rl->max_wait_ns = opts && opts->max_wait_ns ? opts->max_wait_ns : 60ull * 1000000000ull;
        uint64_t now = cloud_clock_mono(rl->clock);
        for (int i = 0; i < _RATELIMIT_CATEGORY_MAX; i++) {
                struct bucket *b = &rl->b[i];
                b->capacity = shapes[i].capacity * share;
                if (b->capacity < 1)
                        b->capacity = 1;        /* a bucket must hold at least one call */
                b->refill_per_s = b->max_rate = shapes[i].refill * share;
                b->level = b->capacity;
                b->last_ns = now;
        }
        *ret = rl;
        return 0;
}

ratelimit *ratelimit_free(ratelimit *rl) {
        if (rl) {
                pthread_mutex_destroy(&rl->lock);
                free(rl);
        }
        return NULL;
}

static void refill(struct bucket *b, uint64_t now) {
        if (now > b->last_ns) {
                b->level += (double)(now - b->last_ns) / 1e9 * b->refill_per_s;
                if (b->level > b->capacity)
                        b->level = b->capacity;
        }
        b->last_ns = now;
}

int ratelimit_take(ratelimit *rl, enum ratelimit_category c) {
        if (!rl || (unsigned)c >= _RATELIMIT_CATEGORY_MAX)
                return -EINVAL;
        uint64_t wait = 0;
        pthread_mutex_lock(&rl->lock);
        struct bucket *b = &rl->b[c];
        refill(b, cloud_clock_mono(rl->clock));
        if (b->level < 1)
                wait = (uint64_t)((1 - b->level) / b->refill_per_s * 1e9);
        if (wait <= rl->max_wait_ns) {
                b->level -= 1;
                if (wait) {
                        b->stats.waits++;
                        b->stats.wait_ns += wait;
                }
        }
        pthread_mutex_unlock(&rl->lock);
        if (wait > rl->max_wait_ns)
                return -EAGAIN;
        if (wait)
                cloud_clock_sleep(rl->clock, wait);
        return 0;
}

/* AIMD on the refill rate; the caller holds the lock. */
static void adapt(struct bucket *b, uint64_t now, uint64_t latency_ns, bool throttled) {
        double floor = b->max_rate / RATE_STEPS;
        refill(b, now);         /* the time so far counts at the old rate */
        if (throttled && b->cut_ns && now - latency_ns < b->cut_ns)
                return;         /* sent before the last cut: already counted */
        if (throttled) {
                b->cut_ns = now;
                b->refill_per_s *= RATE_CUT;
                if (b->refill_per_s < floor)
                        b->refill_per_s = floor;
                if (b->level > 0)
                        b->level = 0;
        } else if (b->refill_per_s < b->max_rate) {
                b->refill_per_s += floor;
                if (b->refill_per_s > b->max_rate)
                        b->refill_per_s = b->max_rate;
        }
}

void ratelimit_record(ratelimit *rl, enum ratelimit_category c, uint64_t latency_ns,
                      bool failed, bool throttled) {
        if (!rl || (unsigned)c >= _RATELIMIT_CATEGORY_MAX)
                return;
        pthread_mutex_lock(&rl->lock);
        uint64_t now = cloud_clock_mono(rl->clock);
        adapt(&rl->b[c], now, latency_ns < now ? latency_ns : now, throttled);
        struct ratelimit_stats *s = &rl->b[c].stats;
        s->calls++;
        s->errors += failed;
        s->throttled += throttled;
        s->latency_ns += latency_ns;
        if (latency_ns > s->latency_max_ns)
                s->latency_max_ns = latency_ns;
        pthread_mutex_unlock(&rl->lock);
}

void ratelimit_stats(ratelimit *rl, enum ratelimit_category c, struct ratelimit_stats *ret) {
        if (!rl || (unsigned)c >= _RATELIMIT_CATEGORY_MAX)
                return;
        pthread_mutex_lock(&rl->lock);
        *ret = rl->b[c].stats;
        ret->rate_per_s = rl->b[c].refill_per_s;
        ret->max_rate_per_s = rl->b[c].max_rate;
        pthread_mutex_unlock(&rl->lock);
}

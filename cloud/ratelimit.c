/*
 * ratelimit: token buckets with reservation (see ratelimit.h).
 *
 * take() refills the bucket from the elapsed monotonic time, then takes a
 * token even if that drives the level negative; the caller sleeps until the
 * level it left behind would have refilled to zero. So concurrent callers
 * queue in arrival order without holding the lock while they sleep, and the
 * long-run rate never exceeds the bucket's rate. A refusal (wait too long) takes
 * nothing.
 *
 * Adaptive rate: record() of a throttled attempt cuts the category's rate
 * to RATE_CUT of what it is at that moment (not below max_rate / RATE_FLOOR)
 * and clamps the level to zero, so the next take waits for a token at the
 * new rate rather than spending a saved burst; callers already queued keep
 * the wait they reserved. The rate then climbs back with time alone,
 * linearly, r(s) = cut + (max - cut) * s / T, and is back at max_rate after
 * T = RATE_RECOVER_S whatever the answers were. The refill is the integral
 * of r over the elapsed time, and a wait is found by inverting that integral
 * (bisection, deterministic). A throttled attempt
 * sent before the last cut (concurrently, at the old rate) does not cut
 * again, so calls in flight together count as one signal.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "ratelimit.h"

/*
 * The constants, for a fleet of 50 nodes at the default share 0.1 sharing
 * EC2's eni_address bucket (100, 5/s): a node's 0.5/s is 5x its fair 0.1/s,
 * so two or three cuts bring a throttled fleet to the account's refill, and
 * the floor (1/10: 0.05/s a node) keeps 100 nodes at it (5/s). 20 s is the
 * time the account's burst of 100 takes to refill at 5/s; it also bounds how
 * long a lone node runs slow after a few throttles that were not about its
 * rate (the chaos run's forced ones): the first token after a cut comes in
 * about 1/rate, 4 s at the share's 0.5/s cut to 0.25/s. A slower start (a
 * cubic) kept a 50-node fleet lower but held a lone node as long as one step
 * per answer did, which the bounded chaos run cannot afford. Staying down
 * after a streak of cuts (a climb of 40-80 s of use, a burst shrunk with the
 * rate, a start at half) cut the throttles by a third to a half in a model
 * of the fleet (tests/daemon/limiter_model.py) but not in two real 50-node
 * runs, which it made 10 s slower (docs/benchmarks.md, "Staying down after
 * a streak"); a share of 1/N for N nodes did away with them.
 */
#define RATE_CUT 0.5             /* multiplicative decrease on a throttle */
#define RATE_FLOOR 10.0          /* the rate never goes below max_rate / RATE_FLOOR */
#define RATE_RECOVER_S 20.0      /* back at max_rate this long after the last cut */

struct bucket {
        double capacity, max_rate, level;
        double cut_rate;                /* the rate right after the last cut */
        uint64_t last_ns, cut_ns;       /* cut_ns: when the rate was last cut */
        bool cut;                       /* ever cut (else the rate is max_rate) */
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
                b->max_rate = shapes[i].refill * share;
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

/* Seconds since the last cut at now, or -1 when the rate is back at max_rate. */
static double recovering_s(const struct bucket *b, uint64_t now) {
        if (!b->cut)
                return -1;
        double s = now > b->cut_ns ? (double)(now - b->cut_ns) / 1e9 : 0;
        return s < RATE_RECOVER_S ? s : -1;
}

static double rate_at(const struct bucket *b, uint64_t now) {
        double s = recovering_s(b, now);
        return s < 0 ? b->max_rate : b->cut_rate + (b->max_rate - b->cut_rate) * s / RATE_RECOVER_S;
}

/* Tokens earned from the last cut to s seconds after it: the integral of rate_at(). */
static double earned_since_cut(const struct bucket *b, double s) {
        double T = RATE_RECOVER_S, d = b->max_rate - b->cut_rate;
        if (s >= T)
                return b->cut_rate * T + d * T / 2 + (s - T) * b->max_rate;
        return b->cut_rate * s + d * s * s / (2 * T);
}

/* Tokens earned from `from` to `to` (ns), at the rate of the time. */
static double earned(const struct bucket *b, uint64_t from, uint64_t to) {
        if (to <= from)
                return 0;
        if (!b->cut || from >= b->cut_ns + (uint64_t)(RATE_RECOVER_S * 1e9))
                return (double)(to - from) / 1e9 * b->max_rate;
        double a = from > b->cut_ns ? (double)(from - b->cut_ns) / 1e9 : 0;
        double z = to > b->cut_ns ? (double)(to - b->cut_ns) / 1e9 : 0;
        return earned_since_cut(b, z) - earned_since_cut(b, a);
}

/* Nanoseconds from now until `tokens` more are earned (the rate only rises, so bisect). */
static uint64_t time_to_earn(const struct bucket *b, uint64_t now, double tokens) {
        double r = rate_at(b, now);
        uint64_t hi = (uint64_t)(tokens / r * 1e9) + 1;      /* at the rate of now: an upper bound */
        if (recovering_s(b, now) < 0)
                return hi - 1;
        uint64_t lo = 0;
        while (hi - lo > 1000) {        /* to a microsecond */
                uint64_t mid = lo + (hi - lo) / 2;
                if (earned(b, now, now + mid) >= tokens)
                        hi = mid;
                else
                        lo = mid;
        }
        return hi;
}

static void refill(struct bucket *b, uint64_t now) {
        if (now > b->last_ns) {
                b->level += earned(b, b->last_ns, now);
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
        uint64_t now = cloud_clock_mono(rl->clock);
        refill(b, now);
        if (b->level < 1)
                wait = time_to_earn(b, now, 1 - b->level);
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

/* A throttled attempt cuts the rate (see the top); the caller holds the lock. */
static void cut_rate(struct bucket *b, uint64_t now, uint64_t latency_ns) {
        refill(b, now);         /* the time so far counts at the rate of the time */
        if (b->cut && now - latency_ns < b->cut_ns)
                return;         /* sent before the last cut: already counted */
        double r = rate_at(b, now) * RATE_CUT, floor = b->max_rate / RATE_FLOOR;
        b->cut_rate = r > floor ? r : floor;
        b->cut_ns = now;
        b->cut = true;
        if (b->level > 0)
                b->level = 0;
}

void ratelimit_record(ratelimit *rl, enum ratelimit_category c, uint64_t latency_ns,
                      bool failed, bool throttled) {
        if (!rl || (unsigned)c >= _RATELIMIT_CATEGORY_MAX)
                return;
        pthread_mutex_lock(&rl->lock);
        uint64_t now = cloud_clock_mono(rl->clock);
        if (throttled)
                cut_rate(&rl->b[c], now, latency_ns < now ? latency_ns : now);
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
        ret->rate_per_s = rate_at(&rl->b[c], cloud_clock_mono(rl->clock));
        ret->max_rate_per_s = rl->b[c].max_rate;
        pthread_mutex_unlock(&rl->lock);
}

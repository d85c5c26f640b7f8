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
 * the wait they reserved. The rate then climbs back linearly,
 * r(p) = cut + (max - cut) * p / T, where p is the time the category has
 * been in use since the cut: a take within the last IN_USE_S, or a wait
 * reserved. Idle time refills tokens at the rate of the moment but does not
 * raise the rate, so a node that learnt how much of the account it can have
 * still knows when its next scale-up comes. While recovering the bucket holds
 * at most capacity * r / max (at least one token): no saved full burst at a
 * cut rate. T is RATE_RECOVER_S, doubled for each cut in a row beyond
 * STREAK_FREE (a cut made before the previous recovery ended), up to
 * STREAK_MAX; from the third cut in a row the level is also left one token
 * in debt. A new bucket starts as if just cut once, without the debt or the
 * streak: half the burst, half the rate, climbing over RATE_RECOVER_S of use.
 * The refill is the integral of r over the time in use plus the rate of the
 * time over the idle part, and a wait (all in use) is found by inverting that
 * integral (bisection, deterministic). A throttled attempt sent before the
 * last cut (concurrently, at the old rate) does not cut again, so calls in
 * flight together count as one signal.
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
 * long a lone node runs slow after a throttle or two that were not about its
 * rate (the chaos run forces two in a row after each restart): the first
 * token after a cut comes in about 1/rate, 4 s at the share's 0.5/s cut to
 * 0.25/s. A fleet is throttled again and again while it climbs back all at
 * once, so from the third cut in a row the climb takes 40 s, and a token of
 * debt spreads the retries (a further step to 80 s threw fewer throttles in
 * the model but kept the fleet's last nodes waiting 10 s longer: the real
 * 50-node run took 70 s instead of 55-60). The start at half the burst still
 * covers a cold node's first plan (m5.large to 20 addresses: one Assign, two
 * Creates, two Modifies), while 50 nodes starting together hold 250 tokens
 * against the account's 100, not 500. A slower start (a cubic) and a
 * recovery per answer were tried before and held a lone node too long for
 * the bounded chaos run; these were tuned in a virtual-time model of the
 * fleet bench (tests/daemon/limiter_model.py), then measured with
 * scripts/bench-fleet (docs/benchmarks.md, Fleet).
 */
#define RATE_CUT 0.5             /* multiplicative decrease on a throttle */
#define RATE_FLOOR 10.0          /* the rate never goes below max_rate / RATE_FLOOR */
#define RATE_RECOVER_S 20.0      /* back at max_rate after this long in use (isolated cuts) */
#define STREAK_FREE 1            /* cuts in a row that keep RATE_RECOVER_S */
#define STREAK_MAX 2             /* so the longest climb is RATE_RECOVER_S * 2 */
#define STREAK_DEBT 2            /* from this streak on, a cut leaves one token of debt */
#define IN_USE_NS 5000000000ull  /* a take keeps the category in use this long */

struct bucket {
        double capacity, max_rate, level;
        double cut_rate;                /* the rate right after the last cut (or at the start) */
        double recover_s;               /* in-use seconds from cut_rate back to max_rate */
        double progress_s;              /* in-use seconds since the last cut, as of last_ns */
        unsigned streak;                /* cuts in a row, each before the previous recovery ended */
        uint64_t last_ns, cut_ns;       /* cut_ns: when the rate was last cut */
        uint64_t busy_until_ns;         /* in use until then */
        bool cut;                       /* ever cut (the start's ramp is not a cut) */
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
                b->cut_rate = b->max_rate * RATE_CUT;           /* the start: see the top */
                b->recover_s = RATE_RECOVER_S;
                b->level = b->capacity * RATE_CUT;
                if (b->level < 1)
                        b->level = 1;
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

/* The rate p in-use seconds after the last cut (or the start). */
static double rate_after(const struct bucket *b, double p) {
        if (p >= b->recover_s)
                return b->max_rate;
        return b->cut_rate + (b->max_rate - b->cut_rate) * p / b->recover_s;
}

/* Tokens earned over the first p in-use seconds after the cut: the integral of rate_after(). */
static double earned_after(const struct bucket *b, double p) {
        double T = b->recover_s, d = b->max_rate - b->cut_rate;
        if (p >= T)
                return b->cut_rate * T + d * T / 2 + (p - T) * b->max_rate;
        return b->cut_rate * p + d * p * p / (2 * T);
}

/* What the bucket may hold p in-use seconds after the cut: the burst shrinks with the rate. */
static double capacity_after(const struct bucket *b, double p) {
        double c = b->capacity * rate_after(b, p) / b->max_rate;
        return c > 1 ? c : 1;
}

/* In-use seconds in (last_ns, now]. */
static double in_use_s(const struct bucket *b, uint64_t now) {
        uint64_t end = now < b->busy_until_ns ? now : b->busy_until_ns;
        return end > b->last_ns ? (double)(end - b->last_ns) / 1e9 : 0;
}

/* Bring the bucket to now: tokens at the rate of the time, the climb only while in use. */
static void refill(struct bucket *b, uint64_t now) {
        if (now <= b->last_ns)
                return;
        double p0 = b->progress_s, p1 = p0 + in_use_s(b, now);
        double idle = (double)(now - b->last_ns) / 1e9 - (p1 - p0);
        double gain = earned_after(b, p1) - earned_after(b, p0) + idle * rate_after(b, p1);
        double cap = capacity_after(b, p1);
        if (b->level < cap)
                b->level = b->level + gain < cap ? b->level + gain : cap;
        b->progress_s = p1;
        b->last_ns = now;
}

/* Nanoseconds from now (refilled) until `tokens` more are earned, in use all along (the rate only rises: bisect). */
static uint64_t time_to_earn(const struct bucket *b, double tokens) {
        double p = b->progress_s, base = earned_after(b, p);
        uint64_t hi = (uint64_t)(tokens / rate_after(b, p) * 1e9) + 1;  /* at the rate of now: an upper bound */
        if (p >= b->recover_s)
                return hi - 1;
        uint64_t lo = 0;
        while (hi - lo > 1000) {        /* to a microsecond */
                uint64_t mid = lo + (hi - lo) / 2;
                if (earned_after(b, p + (double)mid / 1e9) - base >= tokens)
                        hi = mid;
                else
                        lo = mid;
        }
        return hi;
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
                wait = time_to_earn(b, 1 - b->level);
        if (wait <= rl->max_wait_ns) {
                b->level -= 1;
                if (b->busy_until_ns < now + wait + IN_USE_NS)
                        b->busy_until_ns = now + wait + IN_USE_NS;
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
        bool in_a_row = b->cut && b->progress_s < b->recover_s;
        b->streak = !in_a_row ? 0 : b->streak < STREAK_MAX ? b->streak + 1 : STREAK_MAX;
        double r = rate_after(b, b->progress_s) * RATE_CUT, floor = b->max_rate / RATE_FLOOR;
        b->cut_rate = r > floor ? r : floor;
        b->recover_s = RATE_RECOVER_S;
        for (unsigned i = STREAK_FREE; i < b->streak; i++)
                b->recover_s *= 2;
        b->progress_s = 0;
        b->cut_ns = now;
        b->cut = true;
        if (b->level > 0)
                b->level = 0;
        if (b->streak >= STREAK_DEBT && b->level > -1)
                b->level = -1;
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
        struct bucket *b = &rl->b[c];
        refill(b, cloud_clock_mono(rl->clock));
        *ret = b->stats;
        ret->rate_per_s = rate_after(b, b->progress_s);
        ret->max_rate_per_s = b->max_rate;
        pthread_mutex_unlock(&rl->lock);
}

/*
 * test-ratelimit: the bucket shapes are EC2's, the share scales them, callers
 * queue in order with the fake clock, waits beyond the bound are refused, and
 * under real threads the long-run rate never exceeds the refill rate. A new
 * bucket starts at half its burst and rate and climbs as it is used. The
 * adaptive rate: a throttle halves it, down to a floor, and drops saved
 * tokens; time in use restores it, within 20 s for one or two throttles in a
 * row, 40 s (and a token of debt) for longer streaks; idle time
 * refills tokens but does not raise the rate; while the rate is cut the
 * bucket holds a burst cut alike; without throttles nothing changes.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "fakeclock.h"
#include "ratelimit.h"
#include "testlib.h"

#define S 1000000000ull

static double rate_of(ratelimit *rl, enum ratelimit_category c) {
        struct ratelimit_stats st;
        ratelimit_stats(rl, c, &st);
        return st.rate_per_s;
}

/* Use category c flat out until its rate is the share's (the start is over),
 * then leave it idle until its burst is full again, and forget the sleeps. */
static void warm(ratelimit *rl, struct fakeclock *fc, enum ratelimit_category c) {
        struct ratelimit_stats st;
        ratelimit_stats(rl, c, &st);
        while (rate_of(rl, c) < st.max_rate_per_s)
                ck_assert_int_eq(ratelimit_take(rl, c), 0);
        fc->now_ns += 200 * S;          /* any bucket's capacity / rate is 20 s at most */
        fc->sleeps = 0;
        fc->slept_ns = 0;
}

START_TEST(test_shapes_are_ec2s) {
        double cap, refill;
        ratelimit_shape(RATELIMIT_NON_MUTATING, &cap, &refill);
        ck_assert(cap == 100 && refill == 20);
        ratelimit_shape(RATELIMIT_UNFILTERED_DESCRIBE, &cap, &refill);
        ck_assert(cap == 50 && refill == 10);
        ratelimit_shape(RATELIMIT_MUTATING, &cap, &refill);
        ck_assert(cap == 50 && refill == 5);
        ratelimit_shape(RATELIMIT_ENI_ADDRESS, &cap, &refill);
        ck_assert(cap == 100 && refill == 5);
        ratelimit_shape(RATELIMIT_CREATE_TAGS, &cap, &refill);
        ck_assert(cap == 100 && refill == 10);
}
END_TEST

START_TEST(test_burst_then_refill_rate) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 0.5, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_NON_MUTATING);
        /* non-mutating at 0.5, past its start: 50 at once, then 10/s */
        struct ratelimit_stats st0;
        ratelimit_stats(rl, RATELIMIT_NON_MUTATING, &st0);
        for (int i = 0; i < 50; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_NON_MUTATING), 0);
        ck_assert_uint_eq(fc.sleeps, 0);
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_NON_MUTATING), 0);
        ck_assert_uint_eq(fc.sleeps, 100);
        ck_assert_uint_ge(fc.slept_ns, 9999000000ull);
        ck_assert_uint_le(fc.slept_ns, 10001000000ull);
        /* other categories are independent */
        unsigned before = fc.sleeps;
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_CREATE_TAGS), 0);
        ck_assert_uint_eq(fc.sleeps, before);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_NON_MUTATING, &st);
        ck_assert_uint_eq(st.waits - st0.waits, 100);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_tiny_share_keeps_one_token_and_refuses_long_waits) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 0.001, .clock = &fc.clock,
                                                                    .max_wait_ns = 1000000000ull }, &rl), 0);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_MUTATING), 0);   /* capacity floor of 1 */
        /* the next token is minutes away (0.005/s, and half that at the start):
         * refused, nothing taken, no sleep */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_MUTATING), -EAGAIN);
        ck_assert_uint_eq(fc.sleeps, 0);
        fc.now_ns += 400ull * 1000000000ull;
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_MUTATING), 0);
        ratelimit_free(rl);
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 2 }, &rl), -EINVAL);
}
END_TEST

/* The last sleep, within 1 ms of want_ns. */
static void assert_last_sleep(const struct fakeclock *fc, uint64_t want_ns) {
        ck_assert_uint_ge(fc->sleeps, 1);
        uint64_t got = fc->sleep_log[fc->sleeps - 1];
        ck_assert_msg(got + 1000000 >= want_ns && got <= want_ns + 1000000, "slept %llu ns, want %llu",
                      (unsigned long long)got, (unsigned long long)want_ns);
}

/* The expected figures below are r(s) = cut + (max - cut) * s / 20 and its integral, worked out by hand. */

START_TEST(test_throttle_cuts_rate_and_drops_saved_tokens) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        /* eni_address at share 1, past its start: 100 tokens, 5/s */
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_ENI_ADDRESS);
        warm(rl, &fc, RATELIMIT_MUTATING);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert(st.rate_per_s == 5 && st.max_rate_per_s == 5);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, 0);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 2.5);
        /* the 99 saved tokens are gone: the next take waits a token at 2.5/s,
         * rising by 0.125/s each second: 0.39608 s rather than 0.4 */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, 1);
        assert_last_sleep(&fc, 396078000ull);
        /* a second cut in a row halves the rate of then, 2.5495 / 2 (in use: taken 0.396 s ago) */
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 1.274755, 0.000001);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 744022000ull);
        /* other categories keep their rate and burst */
        ck_assert(rate_of(rl, RATELIMIT_MUTATING) == 5);
        unsigned before = fc.sleeps;
        for (int i = 0; i < 50; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_MUTATING), 0);
        ck_assert_uint_eq(fc.sleeps, before);
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert_uint_eq(st.throttled, 2);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_concurrent_throttles_cut_once) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_ENI_ADDRESS);
        /* three attempts in flight together, all throttled: one cut */
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);  /* in use for 5 s */
        fc.now_ns += S;
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        fc.now_ns += S / 10;
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 2.5125, 1e-9);
        /* one sent after that cut and throttled cuts again, 10 s after the
         * first, of which 4 s in use (the takes' 5 s began 1 s before the
         * cut): half of 2.5 + 2.5 * 4 / 20 */
        fc.now_ns += 9 * S + 9 * S / 10;
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 1.5, 1e-9);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert_uint_eq(st.throttled, 4);
        ratelimit_free(rl);
}
END_TEST

/* In-use seconds for category c, used flat out, to climb back to the share's rate. */
static double climb_s(ratelimit *rl, struct fakeclock *fc, enum ratelimit_category c) {
        struct ratelimit_stats st;
        ratelimit_stats(rl, c, &st);
        uint64_t t0 = fc->now_ns;
        while (rate_of(rl, c) < st.max_rate_per_s)
                ck_assert_int_eq(ratelimit_take(rl, c), 0);
        return (double)(fc->now_ns - t0) / 1e9;
}

START_TEST(test_start_is_half_burst_half_rate) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        /* non-mutating at 0.5 (50, 10/s): a new bucket holds 25 and refills at 5/s */
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 0.5, .clock = &fc.clock }, &rl), 0);
        ck_assert(rate_of(rl, RATELIMIT_NON_MUTATING) == 5);
        for (int i = 0; i < 25; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_NON_MUTATING), 0);
        ck_assert_uint_eq(fc.sleeps, 0);
        /* 100 s idle: the takes kept it in use 5 s, so the rate is 5 + 5 * 5 / 20
         * and the bucket holds what that rate allows, 50 * 6.25 / 10 = 31.25 */
        fc.now_ns += 100 * S;
        ck_assert(rate_of(rl, RATELIMIT_NON_MUTATING) == 6.25);
        for (int i = 0; i < 31; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_NON_MUTATING), 0);
        ck_assert_uint_eq(fc.sleeps, 0);
        /* used flat out, the rest of the 20 s climb takes 15 s (and one token's wait) */
        double s = climb_s(rl, &fc, RATELIMIT_NON_MUTATING);
        ck_assert_msg(s >= 15 && s < 15.2, "climbed in %g s", s);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_idle_keeps_the_cut_rate_and_a_cut_burst) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_ENI_ADDRESS);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        /* idle for 1,000 s after 5 s in use: 2.5 + 2.5 * 5 / 20, not 5; and
         * 100 * 3.125 / 5 = 62.5 tokens saved, not 100 */
        fc.now_ns += 1000 * S;
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 3.125);
        for (int i = 0; i < 62; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, 0);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, 1);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_streak_lengthens_the_climb) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_ENI_ADDRESS);
        /* isolated throttles (each after the climb back ended): 20 s each */
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
                double s = climb_s(rl, &fc, RATELIMIT_ENI_ADDRESS);
                ck_assert_msg(s >= 20 && s < 20.3, "isolated: climbed in %g s", s);
        }
        /* a streak, each attempt sent when its token came: the first two cuts
         * (5 -> 2.5, then 2.5495 -> 1.2748) leave the level at 0 ... */
        fc.sleeps = 0;                  /* the log holds the first 64 */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 396078000ull);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 1.274755, 0.000001);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 744022000ull);
        /* ... the third halves 1.4133 and, climbing over 40 s now, leaves a
         * token of debt: two tokens to wait for, 0.70667 t + 0.05367 t^2 = 2 */
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 0.706669, 0.000001);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 2394683000ull);
        /* the fourth: the floor (0.5), still 40 s to climb back */
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 0.5);
        double s = climb_s(rl, &fc, RATELIMIT_ENI_ADDRESS);
        ck_assert_msg(s >= 40 && s < 40.3, "after a streak: climbed in %g s", s);
        /* once back, an isolated throttle is 20 s again */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        s = climb_s(rl, &fc, RATELIMIT_ENI_ADDRESS);
        ck_assert_msg(s >= 20 && s < 20.3, "isolated again: climbed in %g s", s);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_floor_then_use_restores_the_rate) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_ENI_ADDRESS);
        for (int i = 0; i < 30; i++) {
                fc.now_ns += S;         /* each attempt sent after the previous cut */
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        }
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 0.5);           /* 5 / 10, not 5 / 2^30 */
        /* answers do not move it (failed or not) */
        for (int i = 0; i < 40; i++)
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, i % 3 == 0, false);
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 0.5);
        /* the first token from the floor, in debt after a streak: two tokens at
         * 0.5 + 4.5 t / 40, 0.5 t + 0.05625 t^2 = 2: 2.9925 s */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 2992534000ull);
        /* idle time past the take's wait and 5 s (7.9925 s in use) does not
         * raise the rate, 0.5 + 4.5 * 7.9925 / 40, and refills only the burst
         * that rate allows: 100 * 1.39916 / 5 = 27.98 tokens */
        fc.now_ns += 100 * S;
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 1.399160, 0.000001);
        unsigned before = fc.sleeps;
        for (int i = 0; i < 27; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, before);
        /* used flat out, 40 s of use after the cut it is back: 32.01 s more */
        double s = climb_s(rl, &fc, RATELIMIT_ENI_ADDRESS);
        ck_assert_msg(s >= 32 && s < 32.3, "climbed in %g s", s);
        fc.now_ns += 100 * S;
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 5);
        /* refilled, the full burst is back (100 tokens), then 5/s */
        fc.sleeps = 0;
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, 0);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 200000000ull);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_lone_node_recovers_in_bounded_time) {
        /* The chaos run's case: a new daemon at the default share (eni_address
         * 10, 0.5/s, starting at 5 and 0.25/s) is throttled twice in a row (the
         * run forces two after each restart), each sent when its token came,
         * then calls flat out. Two cuts in a row keep the 20 s climb: back at
         * the share 20 s of use after the last cut, whatever the answers. */
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .clock = &fc.clock }, &rl), 0);
        uint64_t start = fc.now_ns;
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 0, true, true);
        }
        ck_assert_msg(fc.now_ns - start < 6 * S, "two throttled calls took %llu ns",
                      (unsigned long long)(fc.now_ns - start));
        double r = rate_of(rl, RATELIMIT_ENI_ADDRESS);
        ck_assert_msg(r >= 0.11 && r < 0.12, "rate %g", r);     /* 0.125 cut again after 5.6 s of climbing */
        uint64_t t0 = fc.now_ns;
        int calls = 0;
        while (fc.now_ns - t0 <= 60 * S) {
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 0, false, false);
                if (calls++ == 0)
                        ck_assert_msg(fc.now_ns - t0 > 5 * S && fc.now_ns - t0 < 7 * S, "first after %llu ns",
                                      (unsigned long long)(fc.now_ns - t0));
                if (fc.now_ns - t0 >= 20 * S)
                        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 0.5);
        }
        ck_assert_int_eq(calls, 27);    /* 26 within 60 s, and the one past it that ended the loop */
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_no_throttle_no_change) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 0.5, .clock = &fc.clock }, &rl), 0);
        warm(rl, &fc, RATELIMIT_NON_MUTATING);
        /* the same 150 takes as test_burst_then_refill_rate, each recorded
         * as answered or failed but never throttled: same waits, same rate */
        for (int i = 0; i < 150; i++) {
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_NON_MUTATING), 0);
                ratelimit_record(rl, RATELIMIT_NON_MUTATING, 1000, i % 2 == 0, false);
        }
        ck_assert_uint_eq(fc.sleeps, 100);
        ck_assert_uint_ge(fc.slept_ns, 9999000000ull);
        ck_assert_uint_le(fc.slept_ns, 10001000000ull);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_NON_MUTATING, &st);
        ck_assert(st.rate_per_s == 10 && st.max_rate_per_s == 10);
        ck_assert_uint_eq(st.throttled, 0);
        ck_assert_uint_eq(st.errors, 75);
        ratelimit_free(rl);
}
END_TEST

struct worker {
        ratelimit *rl;
        int n;
};

static void *work(void *ud) {
        struct worker *w = ud;
        for (int i = 0; i < w->n; i++)
                ck_assert_int_eq(ratelimit_take(w->rl, RATELIMIT_MUTATING), 0);
        return NULL;
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_threads_share_the_bucket) {
        /* mutating at share 1 (50, 5/s), new: its start holds 25 and refills
         * at 2.5/s rising by 0.125/s each second. 35 takes from 4 threads: the
         * 10 past the burst must take 3.66 s (2.5 t + t^2 / 16 = 10). */
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1 }, &rl), 0);
        pthread_t t[5];
        struct worker w = { rl, 7 };
        double t0 = now_s();
        for (int i = 0; i < 5; i++)
                pthread_create(&t[i], NULL, work, &w);
        for (int i = 0; i < 5; i++)
                pthread_join(t[i], NULL);
        double took = now_s() - t0;
        ck_assert_msg(took >= 3.6 && took < 6.0, "35 takes from a new bucket of 25 took %.2f s", took);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_MUTATING, &st);
        ck_assert_uint_eq(st.waits, 10);
        ratelimit_free(rl);
}
END_TEST

int main(void) {
        Suite *s = suite_create("ratelimit");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, test_shapes_are_ec2s);
        tcase_add_test(tc, test_burst_then_refill_rate);
        tcase_add_test(tc, test_tiny_share_keeps_one_token_and_refuses_long_waits);
        tcase_add_test(tc, test_threads_share_the_bucket);
        tcase_add_test(tc, test_throttle_cuts_rate_and_drops_saved_tokens);
        tcase_add_test(tc, test_concurrent_throttles_cut_once);
        tcase_add_test(tc, test_start_is_half_burst_half_rate);
        tcase_add_test(tc, test_idle_keeps_the_cut_rate_and_a_cut_burst);
        tcase_add_test(tc, test_streak_lengthens_the_climb);
        tcase_add_test(tc, test_floor_then_use_restores_the_rate);
        tcase_add_test(tc, test_lone_node_recovers_in_bounded_time);
        tcase_add_test(tc, test_no_throttle_no_change);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

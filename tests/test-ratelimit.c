/*
 * test-ratelimit: the bucket shapes are EC2's, the share scales them, callers
 * queue in order with the fake clock, waits beyond the bound are refused, and
 * under real threads the long-run rate never exceeds the refill rate. The
 * adaptive rate: a throttle halves it, down to a floor, and drops saved
 * tokens; time alone restores it, within 20 s; without throttles
 * nothing changes.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "fakeclock.h"
#include "ratelimit.h"
#include "testlib.h"

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
        /* non-mutating at 0.5: 50 at once, then 10/s */
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
        ck_assert_uint_eq(st.waits, 100);
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
        /* the next token is 200 s away (0.005/s): refused, nothing taken, no sleep */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_MUTATING), -EAGAIN);
        ck_assert_uint_eq(fc.sleeps, 0);
        fc.now_ns += 200ull * 1000000000ull;
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_MUTATING), 0);
        ratelimit_free(rl);
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 2 }, &rl), -EINVAL);
}
END_TEST

#define S 1000000000ull

/* The last sleep, within 1 ms of want_ns. */
static void assert_last_sleep(const struct fakeclock *fc, uint64_t want_ns) {
        ck_assert_uint_ge(fc->sleeps, 1);
        uint64_t got = fc->sleep_log[fc->sleeps - 1];
        ck_assert_msg(got + 1000000 >= want_ns && got <= want_ns + 1000000, "slept %llu ns, want %llu",
                      (unsigned long long)got, (unsigned long long)want_ns);
}

static double rate_of(ratelimit *rl, enum ratelimit_category c) {
        struct ratelimit_stats st;
        ratelimit_stats(rl, c, &st);
        return st.rate_per_s;
}

/* The expected figures below are r(s) = cut + (max - cut) * s / 20 and its integral, worked out by hand. */

START_TEST(test_throttle_cuts_rate_and_drops_saved_tokens) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        /* eni_address at share 1: 100 tokens, 5/s */
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
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
        /* a second cut halves the rate of then: 2.5495 / 2 */
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
        /* three attempts in flight together, all throttled: one cut */
        fc.now_ns += S;
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        fc.now_ns += S / 10;
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 2.5125, 1e-9);
        /* one sent after that cut and throttled cuts again, 10 s after the
         * first: half of 2.5 + 2.5 / 2 */
        fc.now_ns += 9 * S + 9 * S / 10;
        ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, S / 2, true, true);
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 1.875, 1e-9);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert_uint_eq(st.throttled, 4);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_floor_then_time_restores_the_rate) {
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1, .clock = &fc.clock }, &rl), 0);
        for (int i = 0; i < 30; i++) {
                fc.now_ns += S;         /* each attempt sent after the previous cut */
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, true, true);
        }
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 0.5);           /* 5 / 10, not 5 / 2^30 */
        /* answers do not move it (failed or not): time does */
        for (int i = 0; i < 40; i++)
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 1000, i % 3 == 0, false);
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 0.5);
        /* the first token from the floor: 1.4963 s, not 2 (the rate rises meanwhile) */
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 1496267000ull);
        /* 10 s after the cut half way back, at 20 s all the way, then no higher */
        fc.now_ns += 10 * S - fc.slept_ns;
        ck_assert_double_eq_tol(rate_of(rl, RATELIMIT_ENI_ADDRESS), 2.75, 1e-9);
        fc.now_ns += 10 * S;
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 5);
        fc.now_ns += 100 * S;
        ck_assert(rate_of(rl, RATELIMIT_ENI_ADDRESS) == 5);
        /* refilled, the full burst is back (100 tokens), then 5/s */
        unsigned before = fc.sleeps;
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        ck_assert_uint_eq(fc.sleeps, before);
        ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
        assert_last_sleep(&fc, 200000000ull);
        ratelimit_free(rl);
}
END_TEST

START_TEST(test_lone_node_recovers_in_bounded_time) {
        /* The chaos run's case: a node at the default share (eni_address 10,
         * 0.5/s) is throttled on seven calls in a row, each sent when its
         * token came, then calls flat out. Each cut halves the rate of the
         * time (0.25, then about 0.11/s: the rate rose while the retry waited
         * ~5 s for its token); 20 s after the last cut the rate is the
         * share's again whatever the answers were. */
        struct fakeclock fc;
        fakeclock_init(&fc, 0);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .clock = &fc.clock }, &rl), 0);
        uint64_t start = fc.now_ns;
        for (int i = 0; i < 7; i++) {
                ck_assert_int_eq(ratelimit_take(rl, RATELIMIT_ENI_ADDRESS), 0);
                ratelimit_record(rl, RATELIMIT_ENI_ADDRESS, 0, true, true);
        }
        ck_assert_msg(fc.now_ns - start < 33 * S, "seven throttled calls took %llu ns",
                      (unsigned long long)(fc.now_ns - start));
        double r = rate_of(rl, RATELIMIT_ENI_ADDRESS);
        ck_assert_msg(r >= 0.05 && r < 0.12, "rate %g", r);
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
        /* share 1 of (50, 5/s) with a shortened shape: use share 1 and take
         * 50 (burst) + 10 more from 4 threads: the 10 must take >= ~2 s. */
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1 }, &rl), 0);
        pthread_t t[4];
        struct worker w = { rl, 15 };
        double t0 = now_s();
        for (int i = 0; i < 4; i++)
                pthread_create(&t[i], NULL, work, &w);
        for (int i = 0; i < 4; i++)
                pthread_join(t[i], NULL);
        double took = now_s() - t0;
        ck_assert_msg(took >= 1.9 && took < 4.0, "60 takes at 50 + 5/s took %.2f s", took);
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
        tcase_add_test(tc, test_floor_then_time_restores_the_rate);
        tcase_add_test(tc, test_lone_node_recovers_in_bounded_time);
        tcase_add_test(tc, test_no_throttle_no_change);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

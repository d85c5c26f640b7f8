/*
 * test-reconciler: the reconciler's thread against the fake EC2 model, no
 * kernel (ctx.net == NULL). A cold node's first pass must take the pool to
 * what the planner asks for (computed here from the same input), through
 * EC2, with store and EC2 agreeing; and the start-up pass must resolve what a
 * crash left before it grows. The cases wait for the store to show the
 * outcome, within a deadline, then stop the thread.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eniops.h"
#include "planner.h"
#include "reconciler.h"
#include "testctx.h"
#include "testlib.h"
#include "vtime.h"

#define DEADLINE_MS 30000

struct target {
        int ips;                /* secondary addresses on attached ENIs */
        int enis;               /* attached ENIs, the primary included */
        unsigned creates, assigns;
};

/* What the planner asks for on this cold node: the primary ENI with nothing free. */
static struct target plan_for_cold_node(struct testctx *t) {
        struct plan_eni primary = { .device_index = 0, .is_primary = true, .age_ms = 3600 * 1000 };
        snprintf(primary.id, sizeof primary.id, "%s", TESTCTX_PRIMARY_ENI);
        struct plan_input in = { .cfg = t->cfg.pool, .limits = t->node.limits, .enis = &primary, .n_enis = 1,
                                 .since_grow_ms = INT64_MAX };
        struct plan p;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        struct target want = { .enis = 1 };
        for (size_t i = 0; i < p.n_actions; i++) {
                want.ips += p.actions[i].count;
                want.enis += p.actions[i].kind == PLAN_CREATE_ENI;
                want.creates += p.actions[i].kind == PLAN_CREATE_ENI;
                want.assigns += p.actions[i].kind == PLAN_ASSIGN_IPS;
        }
        return want;
}

struct running {
        reconciler *r;
        store *st;
        ec2_client *ec2;
        imds *imds;
};

/* The reconciler on its own store handle and clients, as the daemon runs it. */
static struct running start(struct testctx *t) {
        struct running run = { 0 };
        struct errmsg err = { 0 };
        ck_assert_msg(store_open(t->db, &run.st, &err) == 0, "%s", err.text);
        run.ec2 = fakeec2_client(&t->f);
        run.imds = fakeec2_imds(&t->f);
        struct reconciler_options ro = { .ctx = testctx_ctx_for(t, run.st, run.ec2, run.imds) };
        ck_assert_msg(reconciler_start(&ro, &run.r, &err) == 0, "%s", err.text);
        return run;
}

static void stop(struct running *run) {
        reconciler_stop(run->r);
        store_close(run->st);
        ec2_client_free(run->ec2);
        imds_free(run->imds);
}

/* Wait until the store shows want's addresses on want's attached ENIs (or the deadline passes). */
static bool wait_for(struct testctx *t, const struct target *want) {
        int64_t until = vtime_mono_ms() + DEADLINE_MS;
        struct store_stats s = { 0 };
        while (vtime_mono_ms() < until) {
                ck_assert_int_eq(store_stats(t->st, testctx_now, &s), 0);
                if (s.available >= want->ips && s.enis >= want->enis)
                        return s.available == want->ips && s.enis == want->enis;
                struct timespec poll = { 0, 20 * 1000000L };
                nanosleep(&poll, NULL);
        }
        return false;
}

static void assert_at_target(struct testctx *t, const struct target *want) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(t->st, &enis, &n), 0);
        ck_assert_uint_eq(n, (size_t)want->enis);
        ck_assert_uint_eq(testctx_ec2_enis(t), (size_t)want->enis);
        for (size_t i = 0; i < n; i++) {
                ck_assert_int_eq(enis[i].state, STORE_ENI_ATTACHED);
                testctx_assert_store_is_ec2(t, enis[i].id);
                if (!enis[i].is_primary)
                        ck_assert(fakeec2_find(&t->f, enis[i].id)->delete_on_termination);
        }
        free(enis);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), want->creates);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES), want->assigns);
        struct errmsg err = { 0 };
        ck_assert_msg(store_check(t->st, testctx_now, &err) == 0, "store_check: %s", err.text);
        ck_assert_uint_eq(testctx_open_intents(t), 0);
}

/* WARM_ENI_TARGET=2 on a cold m5.large: fill the primary ENI and create one more, in one pass. */
START_TEST(test_cold_node_grows_to_plan) {
        struct testctx *t = testctx_new(0);
        t->cfg.pool.warm_eni_target = 2;
        struct target want = plan_for_cold_node(t);
        ck_assert_int_eq(want.ips, 18);         /* the planner's answer the case is about */
        ck_assert_int_eq(want.enis, 2);
        struct running run = start(t);
        bool reached = wait_for(t, &want);
        struct server_pool_status st;
        reconciler_status(run.r, &st);
        stop(&run);
        ck_assert_msg(reached, "the pool did not reach %d addresses on %d ENIs within %d ms", want.ips, want.enis,
                      DEADLINE_MS);
        ck_assert(st.ready);
        ck_assert_str_eq(st.reason, "");
        assert_at_target(t, &want);
        testctx_free(t);
}
END_TEST

static void op_create(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        eniops_create(o, (int[]){ 9 }, 1);
}

/* A crash left an ENI EC2 made and nobody attached: the start-up pass deletes it, then the pool grows. */
START_TEST(test_start_resolves_crash_then_grows) {
        struct testctx *t = testctx_new(0);
        testctx_crash(t, EC2_CREATE_NETWORK_INTERFACE, true, op_create, NULL);
        char leaked[STORE_ID_MAX];
        snprintf(leaked, sizeof leaked, "%s", t->f.enis[1].id);
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        struct target want = plan_for_cold_node(t);
        want.creates += 2;                      /* the child's, and the start's re-issue of it (same token) */
        struct running run = start(t);
        bool reached = wait_for(t, &want);
        stop(&run);
        ck_assert_msg(reached, "the pool did not reach %d addresses on %d ENIs within %d ms", want.ips, want.enis,
                      DEADLINE_MS);
        ck_assert(!testctx_ec2_has(t, leaked));
        assert_at_target(t, &want);
        testctx_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("reconciler");
        TCase *tc = tcase_create("reconciler");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_cold_node_grows_to_plan);
        tcase_add_test(tc, test_start_resolves_crash_then_grows);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

/*
 * test-planner: table-driven cases for the warm-pool arithmetic — aws-node's
 * formulas (../shared/reference/aws-vpc-cni.md §2), the published max-pods
 * figures, and each of our deliberate differences (cooldown, waiting ADDs,
 * several ENIs at once, shrink hysteresis).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "planner.h"
#include "testlib.h"

#define M5_LARGE  { .max_enis = 3, .ipv4_per_eni = 10 }
#define T3_MEDIUM { .max_enis = 3, .ipv4_per_eni = 6 }
#define OLD (5 * 60 * 1000)      /* an ENI old enough to delete */
#define YOUNG (10 * 1000)
#define LONG_AGO INT64_MAX

/* Config in the shape the tests write it: -2 means "leave the default". */
struct cfg {
        int warm_eni, warm_ip, min_ip, max_eni;
};

struct expect {
        enum plan_kind kind;
        const char *eni;         /* NULL for create */
        int count;
};

struct scenario {
        const char *name;
        struct cfg cfg;
        struct plan_limits limits;
        struct plan_eni enis[8];
        size_t n_enis;
        int waiting, pending_enis, pending_eni_ips;
        int64_t since_grow;
        struct expect actions[8];
        size_t n_actions;
        bool at_capacity;
        int peak_assigned;
};

#define PRIMARY(free_, assigned_, cooldown_) \
        { .id = "eni-p", .device_index = 0, .is_primary = true, .free = (free_), \
          .assigned = (assigned_), .cooldown = (cooldown_), .age_ms = OLD }
#define SECONDARY(id_, dev_, free_, assigned_, cooldown_, age_) \
        { .id = (id_), .device_index = (dev_), .free = (free_), .assigned = (assigned_), \
          .cooldown = (cooldown_), .age_ms = (age_) }
#define DEFAULTS { -2, -2, -2, -2 }

static const struct scenario scenarios[] = {
        /* --- WARM_ENI_TARGET (the default mode) --- */
        { "cold node, defaults: fill the primary ENI", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 9 } }, 1, false },
        { "one ENI's worth free: nothing to do", DEFAULTS, M5_LARGE,
          { PRIMARY(9, 0, 0) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false },
        { "first pod: primary full, a whole new ENI", DEFAULTS, M5_LARGE,
          { PRIMARY(8, 1, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_CREATE_ENI, NULL, 9 } }, 1, false },
        { "warm ENI present", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD) }, 2, 0, 0, 0, LONG_AGO,
          { { 0 } }, 0, false },
        { "WARM_ENI_TARGET=2 on a cold node plans two ENIs at once", { 2, -2, -2, -2 }, M5_LARGE,
          { PRIMARY(0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 9 }, { PLAN_CREATE_ENI, NULL, 9 } }, 2, false },
        { "WARM_ENI_TARGET=0 refills only at zero", { 0, -2, -2, -2 }, M5_LARGE,
          { PRIMARY(0, 3, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 6 } }, 1, false },
        { "WARM_ENI_TARGET=0 with one free does nothing", { 0, -2, -2, -2 }, M5_LARGE,
          { PRIMARY(1, 3, 0) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false },
        { "an ENI on its way counts as supply", DEFAULTS, M5_LARGE,
          { PRIMARY(8, 1, 0) }, 1, 0, 1, 9, LONG_AGO, { { 0 } }, 0, false },
        { "MAX_ENI=1 stops at the primary ENI", { -2, -2, -2, 1 }, M5_LARGE,
          { PRIMARY(0, 9, 0) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, true },
        { "instance ENI limit reached with ADDs waiting", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 0, 9, 0, OLD), SECONDARY("eni-3", 2, 0, 9, 0, OLD) }, 3,
          2, 0, 0, LONG_AGO, { { 0 } }, 0, true },
        { "a burst of 30 ADDs on a cold node takes every ENI at once", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 0, 0) }, 1, 30, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 9 }, { PLAN_CREATE_ENI, NULL, 9 }, { PLAN_CREATE_ENI, NULL, 9 } }, 3,
          true },
        { "partly filled primary is topped up to full (aws-node fills whole)", DEFAULTS, M5_LARGE,
          { PRIMARY(2, 3, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 4 }, { PLAN_CREATE_ENI, NULL, 9 } }, 2, false },

        /* --- WARM_IP_TARGET / MINIMUM_IP_TARGET --- */
        { "WARM_IP_TARGET=5 on a cold node", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 5 } }, 1, false },
        { "MINIMUM_IP_TARGET=10 spills onto a new ENI", { -2, 5, 10, -2 }, M5_LARGE,
          { PRIMARY(0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 9 }, { PLAN_CREATE_ENI, NULL, 1 } }, 2, false },
        { "MINIMUM_IP_TARGET alone", { -2, -2, 4, -2 }, T3_MEDIUM,
          { PRIMARY(0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 4 } }, 1, false },
        { "primary full of pods: new ENI with the shortfall and half a band", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(0, 9, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_CREATE_ENI, NULL, 6 } }, 1, false },
        { "waiting ADDs are demand on top of the warm target", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(5, 0, 0) }, 1, 3, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 3 } }, 1, false },
        { "cooldown is not available (aws-node would see 5 and do nothing)", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(2, 0, 3) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 3 } }, 1, false },
        { "under churn, a grow also covers the addresses cooling down", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(2, 2, 3) }, 1, 0, 0, 0, LONG_AGO,   /* short 3 + 3 cooling = 6 */
          { { PLAN_ASSIGN_IPS, "eni-p", 2 }, { PLAN_CREATE_ENI, NULL, 4 } }, 2, false },
        { "fills the ENI with room before creating one", { -2, 6, -2, -2 }, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 1, 5, 0, OLD) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-2", 3 }, { PLAN_CREATE_ENI, NULL, 3 } }, 2, false },

        /* --- shrinking --- */
        { "ENI mode: two warm ENIs' worth free deletes the newest empty ENI", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD), SECONDARY("eni-3", 2, 9, 0, 0, OLD) }, 3,
          0, 0, 0, LONG_AGO, { { PLAN_DELETE_ENI, "eni-3", 9 } }, 1, false },
        { "ENI mode: an ENI younger than a minute stays, an older one goes", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD), SECONDARY("eni-3", 2, 9, 0, 0, YOUNG) }, 3,
          0, 0, 0, LONG_AGO, { { PLAN_DELETE_ENI, "eni-2", 9 } }, 1, false },
        { "ENI mode: an ENI with an address in cooldown stays", { 0, -2, -2, -2 }, M5_LARGE,
          { PRIMARY(9, 0, 0), SECONDARY("eni-2", 1, 8, 0, 1, OLD) }, 2,
          0, 0, 0, LONG_AGO, { { 0 } }, 0, false },
        { "ENI mode: never the primary ENI", DEFAULTS, M5_LARGE,
          { PRIMARY(9, 0, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD) }, 2,
          0, 0, 0, LONG_AGO, { { PLAN_DELETE_ENI, "eni-2", 9 } }, 1, false },
        { "ENI mode: room is kept for the recent peak of pods", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD), SECONDARY("eni-3", 2, 9, 0, 0, OLD) }, 3,
          0, 0, 0, LONG_AGO, { { 0 } }, 0, false, 12 },
        { "IP mode: room is kept for the recent peak of pods", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(9, 0, 0) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false, 4 },
        { "no shrink within a minute of a grow", DEFAULTS, M5_LARGE,
          { PRIMARY(0, 9, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD), SECONDARY("eni-3", 2, 9, 0, 0, OLD) }, 3,
          0, 0, 0, 10 * 1000, { { 0 } }, 0, false },
        { "no shrink while ADDs wait", { -2, 2, -2, -2 }, M5_LARGE,
          { PRIMARY(9, 0, 0) }, 1, 0, 1, 3, LONG_AGO, { { 0 } }, 0, false },
        { "IP mode: surplus within the band is kept", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(7, 2, 0) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false },
        { "IP mode: above the band, release keeping half the band", { -2, 5, -2, -2 }, M5_LARGE,
          { PRIMARY(9, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 3 } }, 1, false },
        { "IP mode: cooling addresses are never released", { -2, 1, -2, -2 }, M5_LARGE,
          { PRIMARY(1, 0, 8) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false },
        { "IP mode: MINIMUM_IP_TARGET holds the floor", { -2, 2, 9, -2 }, M5_LARGE,
          { PRIMARY(9, 0, 0) }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false },
        { "IP mode: an empty old ENI goes whole, the rest as addresses", { -2, 2, -2, -2 }, M5_LARGE,
          { PRIMARY(3, 5, 0), SECONDARY("eni-2", 1, 9, 0, 0, OLD) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_DELETE_ENI, "eni-2", 9 }, { PLAN_RELEASE_IPS, "eni-p", 1 } }, 2, false },
        { "IP mode: releases from the ENI with fewest pods first", { -2, 2, -2, -2 }, M5_LARGE,
          { PRIMARY(4, 5, 0), SECONDARY("eni-2", 1, 4, 1, 0, OLD) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-2", 4 }, { PLAN_RELEASE_IPS, "eni-p", 2 } }, 2, false },
};

static void to_input(const struct scenario *sc, struct plan_input *in) {
        memset(in, 0, sizeof *in);
        poolconfig_defaults(&in->cfg);
        if (sc->cfg.warm_eni != -2)
                in->cfg.warm_eni_target = sc->cfg.warm_eni;
        if (sc->cfg.warm_ip != -2)
                in->cfg.warm_ip_target = sc->cfg.warm_ip;
        if (sc->cfg.min_ip != -2)
                in->cfg.minimum_ip_target = sc->cfg.min_ip;
        if (sc->cfg.max_eni != -2)
                in->cfg.max_eni = sc->cfg.max_eni;
        in->limits = sc->limits;
        in->enis = sc->enis;
        in->n_enis = sc->n_enis;
        in->waiting_adds = sc->waiting;
        in->pending_enis = sc->pending_enis;
        in->pending_eni_ips = sc->pending_eni_ips;
        in->since_grow_ms = sc->since_grow;
        in->peak_assigned = sc->peak_assigned;
}

static void describe(const struct plan *p, char *buf, size_t len) {
        size_t off = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < p->n_actions && off < len; i++)
                off += (size_t)snprintf(buf + off, len - off, "[%s %s %d] ", plan_kind_name(p->actions[i].kind),
                                        p->actions[i].eni_id, p->actions[i].count);
}

START_TEST(test_scenario) {
        const struct scenario *sc = &scenarios[_i];
        struct plan_input in;
        struct plan p;
        char got[512];
        to_input(sc, &in);
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        describe(&p, got, sizeof got);
        ck_assert_msg(p.n_actions == sc->n_actions, "%s: expected %zu actions, got %s", sc->name,
                      sc->n_actions, got);
        for (size_t i = 0; i < sc->n_actions; i++) {
                const struct plan_action *a = &p.actions[i];
                ck_assert_msg(a->kind == sc->actions[i].kind && a->count == sc->actions[i].count &&
                              strcmp(a->eni_id, sc->actions[i].eni ? sc->actions[i].eni : "") == 0,
                              "%s: action %zu differs; got %s", sc->name, i, got);
        }
        ck_assert_msg(p.summary.at_capacity == sc->at_capacity, "%s: at_capacity", sc->name);
}
END_TEST

START_TEST(test_max_pods_published) {
        static const struct { const char *type; struct plan_limits l; int pods; } types[] = {
                { "m5.large", { 3, 10 }, 29 }, { "t3.medium", { 3, 6 }, 17 },
                { "m5.4xlarge", { 8, 30 }, 234 }, { "t3.nano", { 2, 2 }, 4 },
                { "m5.xlarge", { 4, 15 }, 58 }, { "c5.18xlarge", { 15, 50 }, 737 },
                { "t3.large", { 3, 12 }, 35 },
        };
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
                ck_assert_msg(plan_max_pods(&types[i].l) == types[i].pods, "%s", types[i].type);
}
END_TEST

START_TEST(test_max_enis_clamped) {
        struct plan_limits l = M5_LARGE;
        struct poolconfig c;
        poolconfig_defaults(&c);
        ck_assert_int_eq(plan_max_enis(&l, &c), 3);
        c.max_eni = 2;
        ck_assert_int_eq(plan_max_enis(&l, &c), 2);
        c.max_eni = 10;
        ck_assert_int_eq(plan_max_enis(&l, &c), 3);
        ck_assert_int_eq(plan_ips_per_eni(&l), 9);
}
END_TEST

START_TEST(test_summary_counts) {
        struct plan_input in;
        struct plan p;
        struct scenario sc = { "s", { -2, 5, -2, -2 }, M5_LARGE,
                               { PRIMARY(2, 4, 3) }, 1, 1, 0, 0, LONG_AGO, { { 0 } }, 0, false };
        to_input(&sc, &in);
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert(p.summary.ip_targets);
        ck_assert_int_eq(p.summary.total, 9);
        ck_assert_int_eq(p.summary.free, 2);
        ck_assert_int_eq(p.summary.assigned, 4);
        ck_assert_int_eq(p.summary.cooldown, 3);
        ck_assert_int_eq(p.summary.capacity, 27);
        ck_assert_int_eq(p.summary.shortfall, 4); /* 5 warm + 1 waiting - 2 free */
}
END_TEST

START_TEST(test_bad_input) {
        struct plan_input in;
        struct plan p;
        struct scenario sc = { "s", DEFAULTS, M5_LARGE, { PRIMARY(0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
                               { { 0 } }, 0, false };
        to_input(&sc, &in);
        in.limits.max_enis = 0;
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        to_input(&sc, &in);
        in.waiting_adds = -1;
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        struct plan_eni bad = PRIMARY(-1, 0, 0);
        to_input(&sc, &in);
        in.enis = &bad;
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        ck_assert_int_eq(plan_compute(NULL, &p), -EINVAL);
}
END_TEST

/*
 * Steady churn must not make the planner flap: simulate a pool at
 * WARM_IP_TARGET=5 where 4 pods come and go 100 times, one operation per
 * planner pass (the worst case: no coalescing), and count the EC2 actions.
 */
START_TEST(test_churn_does_not_flap) {
        struct plan_eni eni = PRIMARY(5, 0, 0);
        struct poolconfig c;
        poolconfig_defaults(&c);
        c.warm_ip_target = 5;
        int actions = 0, pods = 0, peak = 0;
        for (int step = 0; step < 400; step++) {
                /* Pods alternate: grow to 4, then shrink to 0, repeatedly (no cooldown here). */
                bool add = (step / 4) % 2 == 0;
                if (add && eni.free > 0) {
                        eni.free--, eni.assigned++, pods++;
                        peak = pods > peak ? pods : peak;
                } else if (!add && eni.assigned > 0) {
                        eni.assigned--, eni.free++, pods--;
                }
                struct plan_input in = { .cfg = c, .limits = M5_LARGE, .enis = &eni, .n_enis = 1,
                                         .since_grow_ms = LONG_AGO, .peak_assigned = peak };
                struct plan p;
                ck_assert_int_eq(plan_compute(&in, &p), 0);
                for (size_t i = 0; i < p.n_actions; i++) {
                        actions++;
                        if (p.actions[i].kind == PLAN_ASSIGN_IPS)
                                eni.free += p.actions[i].count;
                        else if (p.actions[i].kind == PLAN_RELEASE_IPS)
                                eni.free -= p.actions[i].count;
                }
        }
        /* Two grows while the first wave arrives; the peak and the band absorb the other 99 cycles. */
        ck_assert_msg(actions <= 2, "%d EC2 actions for 400 pod operations", actions);
        ck_assert_int_ge(eni.free, 5);
}
END_TEST

int main(void) {
        Suite *s = suite_create("planner");
        TCase *tc = tcase_create("scenarios");
        tcase_add_loop_test(tc, test_scenario, 0, sizeof scenarios / sizeof scenarios[0]);
        tcase_add_test(tc, test_max_pods_published);
        tcase_add_test(tc, test_max_enis_clamped);
        tcase_add_test(tc, test_summary_counts);
        tcase_add_test(tc, test_bad_input);
        tcase_add_test(tc, test_churn_does_not_flap);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

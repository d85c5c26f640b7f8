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
                off += (size_t)snprintf(buf + off, len - off, "[%s %s %d %s%s] ", plan_kind_name(p->actions[i].kind),
                                        p->actions[i].eni_id, p->actions[i].count, plan_unit_name(p->actions[i].unit),
                                        p->actions[i].replace ? " replace" : "");
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

/* no_pods (custom networking's primary): never filled, its free addresses no supply, capacity one ENI less. */
START_TEST(test_custom_networking) {
        struct plan_input in;
        struct plan p;
        struct scenario sc = { "cn", { -2, 5, -2, -2 }, M5_LARGE, { PRIMARY(3, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
                               { { 0 } }, 0, false };
        sc.enis[0].no_pods = true;
        to_input(&sc, &in);
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert_int_eq(p.summary.free, 0);
        ck_assert_int_eq(p.summary.shortfall, 5);
        ck_assert_int_eq(p.summary.capacity, 18);
        ck_assert_uint_eq(p.n_actions, 1);
        ck_assert_int_eq(p.actions[0].kind, PLAN_CREATE_ENI);
        ck_assert_int_eq(p.actions[0].count, 5);
        /* two ENIs of three at most: the third (the primary's slot) is never planned */
        struct plan_eni two[] = { PRIMARY(0, 0, 0), SECONDARY("eni-a", 1, 0, 9, 0, OLD),
                                  SECONDARY("eni-b", 2, 0, 9, 0, OLD) };
        two[0].no_pods = true;
        in.enis = two;
        in.n_enis = 3;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert_uint_eq(p.n_actions, 0);
        ck_assert(p.summary.at_capacity);
        /* no_grow (its subnet ran out): its free addresses serve, but the shortfall goes to a new ENI */
        struct plan_eni out[] = { PRIMARY(0, 9, 0), SECONDARY("eni-a", 1, 2, 3, 0, OLD) };
        out[1].no_grow = true;
        in.enis = out;
        in.n_enis = 2;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert_int_eq(p.summary.free, 2);
        ck_assert_uint_eq(p.n_actions, 1);
        ck_assert_int_eq(p.actions[0].kind, PLAN_CREATE_ENI);
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

/* --- prefix delegation (../shared/reference/aws-vpc-cni-modes.md §1, aws-vpc-cni.md §2) --- */

#define T3_SMALL  { .max_enis = 3, .ipv4_per_eni = 4 }   /* 3 prefix slots per ENI */

/* WARM_PREFIX, WARM_IP, MINIMUM_IP; -2 leaves the default. */
struct pdcfg {
        int warm_prefix, warm_ip, min_ip;
};

struct pd_scenario {
        const char *name;
        struct pdcfg cfg;
        struct plan_limits limits;
        struct plan_eni enis[4];
        size_t n_enis;
        int waiting, peak_assigned, max_pods;
        int64_t since_grow;
        struct expect actions[4];
        size_t n_actions;
        bool at_capacity, at_max_pods;
        bool refused;           /* EC2 refuses prefixes lately (plan_input.prefixes_refused) */
        bool replace;           /* the grow actions replace free /32s */
        enum plan_unit units[4];        /* release units, when not the mode's (PLAN_UNIT_IP is 0) */
        bool explicit_units;
};

/* An ENI holding `pfx` prefixes, `empty` of them empty, and `ips` /32 blocks (free). */
#define PD_ENI(id_, dev_, pfx, empty, ips, assigned_, cooldown_) \
        { .id = (id_), .device_index = (dev_), .is_primary = (dev_) == 0, .prefixes = (pfx), \
          .empty_prefixes = (empty), .free = 16 * (pfx) + (ips) - (assigned_) - (cooldown_), \
          .free_ips = (ips), .assigned = (assigned_), .cooldown = (cooldown_), .age_ms = OLD }

static const struct pd_scenario pd_scenarios[] = {
        /* WARM_PREFIX_TARGET: docs/prefix-and-ip-target.md's t3.small cases, one pass each. */
        { "W=1, cold: one prefix", { 1, -2, -2 }, T3_SMALL, { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1,
          0, 0, 0, LONG_AGO, { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "W=1, 5 pods on one prefix: 11 free < 16, add one", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 0, 5, 0) }, 1, 0, 5, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "W=1, 16 pods on two prefixes: one empty, nothing to do", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 2, 1, 0, 16, 0) }, 1, 0, 16, 0, LONG_AGO, { { 0 } }, 0, false, false },
        { "W=1, 17 pods on two prefixes: add a third", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 2, 0, 0, 17, 0) }, 1, 0, 17, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "W=0 is defined under PD: refill at zero", { 0, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 0, 16, 0) }, 1, 0, 16, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "W=0 with one free does nothing", { 0, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 0, 15, 0) }, 1, 0, 15, 0, LONG_AGO, { { 0 } }, 0, false, false },
        { "W=2, cold: two prefixes", { 2, -2, -2 }, T3_SMALL, { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1,
          0, 0, 0, LONG_AGO, { { PLAN_ASSIGN_IPS, "eni-p", 2 } }, 1, false, false },
        { "W=3, three prefixes with a pod each: aws-node adds W − empty = 3", { 3, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 3, 0, 0, 3, 0) }, 1, 0, 3, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 3 } }, 1, false, false },
        { "a full ENI: the prefix goes on a new ENI", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 0, 0, 48, 0) }, 1, 0, 48, 0, LONG_AGO,
          { { PLAN_CREATE_ENI, NULL, 1 } }, 1, false, false },
        { "leftover /32s eat prefix slots", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 2, 16, 0) }, 1, 0, 16, 0, LONG_AGO,
          { { PLAN_CREATE_ENI, NULL, 1 } }, 1, false, false },
        { "every prefix slot taken: at capacity", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 0, 0, 48, 0), PD_ENI("eni-2", 1, 3, 0, 0, 48, 0),
            PD_ENI("eni-3", 2, 3, 0, 0, 48, 0) }, 3, 0, 144, 0, LONG_AGO, { { 0 } }, 0, true, false },

        /* WARM_IP_TARGET / MINIMUM_IP_TARGET rounded to prefixes. */
        { "WARM_IP=5, cold: ceil(5/16) = one prefix", { 1, 5, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "WARM_IP=5, 11 pods: 5 free, enough", { 1, 5, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 0, 11, 0) }, 1, 0, 11, 0, LONG_AGO, { { 0 } }, 0, false, false },
        { "WARM_IP=5, 12 pods: short 1, one prefix", { 1, 5, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 0, 12, 0) }, 1, 0, 12, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "MINIMUM_IP=20 acts as 32: two prefixes", { 1, -2, 20 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 2 } }, 1, false, false },
        { "MINIMUM_IP=20 alone never grows past two prefixes", { 1, -2, 20 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 2, 0, 0, 32, 0) }, 1, 0, 32, 0, LONG_AGO, { { 0 } }, 0, false, false },
        { "WARM_IP=2 + MINIMUM_IP=20, cold: the minimum wins, two prefixes", { 1, 2, 20 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 2 } }, 1, false, false },
        { "WARM_IP=2 + MINIMUM_IP=20, 31 pods: warm wins, one more", { 1, 2, 20 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 2, 0, 0, 31, 0) }, 1, 0, 31, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "IP targets: overP frees empty prefixes above ceil((assigned+WARM_IP)/16)", { 1, 5, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 2, 0, 3, 0) }, 1, 0, 3, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 2 } }, 1, false, false },
        { "IP targets: MINIMUM_IP keeps ceil(MIN/16) prefixes", { 1, 5, 40 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 2, 0, 3, 0) }, 1, 0, 3, 0, LONG_AGO, { { 0 } }, 0, false, false },

        /* Shrink: empty prefixes above W; whole ENIs when they hold nothing else. */
        { "W=1, all pods gone: keep one prefix, free two", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 3, 0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 2 } }, 1, false, false },
        { "W=1, an ENI of empty prefixes goes whole", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 2, 1, 0, 16, 0), PD_ENI("eni-2", 1, 2, 2, 0, 0, 0) }, 2, 0, 16, 0, LONG_AGO,
          { { PLAN_DELETE_ENI, "eni-2", 32 } }, 1, false, false },

        /* vpc-ipam's four differences, under PD. */
        { "1. cooling addresses are not free: all 16 cooling, add a prefix", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 1, 0, 0, 0, 16) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "1. a prefix with a cooling address is not released", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 2, 0, 0, 5) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 1 } }, 1, false, false },
        { "1. IP targets on a serving pool ask for the cooling addresses too: ceil((4+14)/16)", { 1, 4, -2 },
          M5_LARGE, { PD_ENI("eni-p", 0, 2, 0, 0, 18, 14) }, 1, 0, 18, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 2 } }, 1, false, false },
        { "1. ... but a cold pool gets aws-node's exact count", { 1, 4, -2 },
          M5_LARGE, { PD_ENI("eni-p", 0, 2, 0, 0, 0, 32) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "2. waiting ADDs are demand: 20 waiting + W=1 on a full pool, ceil(36/16) = 3", { 1, -2, -2 },
          T3_SMALL, { PD_ENI("eni-p", 0, 1, 0, 0, 16, 0) }, 1, 20, 16, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 2 }, { PLAN_CREATE_ENI, NULL, 1 } }, 2, false, false },
        { "2. MINIMUM_IP alone: an ADD waiting on a full pool still grows it", { 1, -2, 20 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 2, 0, 0, 32, 0) }, 1, 1, 32, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "3. a cold node fills the primary and creates ENIs in one pass", { 1, -2, 100 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 3 }, { PLAN_CREATE_ENI, NULL, 3 }, { PLAN_CREATE_ENI, NULL, 1 } }, 3,
          false, false },
        { "4. nothing released within the shrink delay", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 3, 0, 0, 0) }, 1, 0, 0, 0, 1000, { { 0 } }, 0, false, false },
        { "4. room kept for the recent peak of 10 pods: one prefix freed, not two", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 3, 0, 0, 0) }, 1, 0, 10, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 1 } }, 1, false, false },
        { "4. a peak of 20 pods + W=1 keeps all three", { 1, -2, -2 }, T3_SMALL,
          { PD_ENI("eni-p", 0, 3, 3, 0, 0, 0) }, 1, 0, 20, 0, LONG_AGO, { { 0 } }, 0, false, false },

        /* max-pods: never past what max-pods pods need plus the warm target. */
        { "max-pods 110, W=1, 110 pods on 7 prefixes: an eighth for the warm prefix", { 1, -2, -2 },
          M5_LARGE, { PD_ENI("eni-p", 0, 7, 0, 0, 110, 0) }, 1, 0, 110, 110, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false },
        { "max-pods 110, W=1, 8 prefixes, ADDs waiting: no ninth", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 8, 0, 0, 110, 18) }, 1, 3, 110, 110, LONG_AGO, { { 0 } }, 0, false, true },
        { "max-pods 20 caps MINIMUM_IP=100 at two prefixes", { 1, -2, 100 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 0, 0, 0) }, 1, 0, 0, 20, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 2 } }, 1, false, true },

        /* A mixed pool (/32s from the fallback or from secondary-IP mode) shrinks back to prefixes. */
        { "mixed: 16 free /32s meet W=1, but a prefix is added to replace them", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 7, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false, false, true },
        { "mixed: ... even within the shrink delay (it is a grow)", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 7, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, 1000,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false, false, true },
        { "mixed: no slot left, a new ENI takes the replacing prefix", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 9, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_CREATE_ENI, NULL, 1 } }, 1, false, false, false, true },
        { "mixed, prefixes refused: the /32s are the supply, nothing to do", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 7, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, LONG_AGO,
          { { 0 } }, 0, false, false, true },
        { "mixed, prefixes refused: /32s above W=1 go back, 16 stay", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 9, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-2", 2 } }, 1, false, false, true, false, { PLAN_UNIT_IP }, true },
        { "mixed, the prefix came: every free /32 goes back, an ENI of only /32s whole", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 1, 1, 7, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, LONG_AGO,
          { { PLAN_DELETE_ENI, "eni-2", 9 }, { PLAN_RELEASE_IPS, "eni-p", 7 } }, 2, false, false, false, false,
          { PLAN_UNIT_IP, PLAN_UNIT_IP }, true },
        { "mixed, the prefix came: nothing goes back within the shrink delay", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 1, 1, 7, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0) }, 2, 0, 0, 0, 1000,
          { { 0 } }, 0, false, false },
        { "mixed: pods on /32s keep them, only the 2 free /32s go back", { 1, -2, -2 }, M5_LARGE,
          { { .id = "eni-p", .is_primary = true, .prefixes = 1, .empty_prefixes = 1, .free = 18, .free_ips = 2,
              .assigned = 3, .age_ms = OLD } }, 1, 0, 3, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 2 } }, 1, false, false, false, false, { PLAN_UNIT_IP }, true },
        { "mixed: cooling /32s are never released", { 1, -2, -2 }, M5_LARGE,
          { { .id = "eni-p", .is_primary = true, .prefixes = 1, .empty_prefixes = 1, .free = 16, .cooldown = 4,
              .age_ms = OLD } }, 1, 0, 0, 0, LONG_AGO, { { 0 } }, 0, false, false },
        { "mixed: the recent peak keeps the /32s it needs", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 1, 1, 7, 0, 0) }, 1, 0, 5, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 2 } }, 1, false, false, false, false, { PLAN_UNIT_IP }, true },
        { "mixed, every slot a /32: one goes back to make room for a prefix", { 1, -2, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 0, 0, 9, 0, 0), PD_ENI("eni-2", 1, 0, 0, 9, 0, 0),
            PD_ENI("eni-3", 2, 0, 0, 9, 0, 0) }, 3, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-3", 1 } }, 1, false, false, false, false, { PLAN_UNIT_IP }, true },
        { "mixed, IP targets: WARM_IP=4 keeps no /32 once a prefix has 16 free", { 1, 4, -2 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 1, 1, 5, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 5 } }, 1, false, false, false, false, { PLAN_UNIT_IP }, true },
        { "mixed, IP targets: MINIMUM_IP=20 acts as 32, a second prefix replaces /32s", { 1, 4, 20 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 1, 1, 7, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_ASSIGN_IPS, "eni-p", 1 } }, 1, false, false, false, true },
        { "mixed, prefixes refused, MINIMUM_IP=20: the total stays at 20", { 1, 4, 20 }, M5_LARGE,
          { PD_ENI("eni-p", 0, 1, 1, 7, 0, 0) }, 1, 0, 0, 0, LONG_AGO,
          { { PLAN_RELEASE_IPS, "eni-p", 3 } }, 1, false, false, true, false, { PLAN_UNIT_IP }, true },
};

static void pd_input(const struct pd_scenario *sc, struct plan_input *in) {
        memset(in, 0, sizeof *in);
        poolconfig_defaults(&in->cfg);
        in->prefix_delegation = true;
        if (sc->cfg.warm_prefix != -2)
                in->cfg.warm_prefix_target = sc->cfg.warm_prefix;
        if (sc->cfg.warm_ip != -2)
                in->cfg.warm_ip_target = sc->cfg.warm_ip;
        if (sc->cfg.min_ip != -2)
                in->cfg.minimum_ip_target = sc->cfg.min_ip;
        in->limits = sc->limits;
        in->enis = sc->enis;
        in->n_enis = sc->n_enis;
        in->waiting_adds = sc->waiting;
        in->peak_assigned = sc->peak_assigned;
        in->max_pods = sc->max_pods;
        in->since_grow_ms = sc->since_grow;
        in->prefixes_refused = sc->refused;
}

START_TEST(test_pd_scenario) {
        const struct pd_scenario *sc = &pd_scenarios[_i];
        struct plan_input in;
        struct plan p;
        char got[512];
        pd_input(sc, &in);
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        describe(&p, got, sizeof got);
        ck_assert_msg(p.n_actions == sc->n_actions, "%s: expected %zu actions, got %s", sc->name,
                      sc->n_actions, got);
        for (size_t i = 0; i < sc->n_actions; i++) {
                const struct plan_action *a = &p.actions[i];
                enum plan_unit unit = a->kind == PLAN_DELETE_ENI ? PLAN_UNIT_IP : PLAN_UNIT_PREFIX;
                if (sc->explicit_units)
                        unit = sc->units[i];
                bool grow = a->kind == PLAN_ASSIGN_IPS || a->kind == PLAN_CREATE_ENI;
                ck_assert_msg(a->replace == (grow && sc->replace), "%s: action %zu replace", sc->name, i);
                ck_assert_msg(a->kind == sc->actions[i].kind && a->count == sc->actions[i].count &&
                              a->unit == unit &&
                              strcmp(a->eni_id, sc->actions[i].eni ? sc->actions[i].eni : "") == 0,
                              "%s: action %zu differs; got %s", sc->name, i, got);
        }
        ck_assert_msg(p.summary.at_capacity == sc->at_capacity, "%s: at_capacity", sc->name);
        ck_assert_msg(p.summary.at_max_pods == sc->at_max_pods, "%s: at_max_pods", sc->name);
}
END_TEST

/*
 * A small node simulator: pods arrive one by one into the fullest prefix with
 * room, and the planner runs until it has nothing more to do. Returns the
 * prefixes the node holds in the end.
 */
struct sim {
        int pfx[3][16];          /* assigned addresses per prefix, per ENI */
        int n_pfx[3];
        int n_enis;
};

static void sim_input(const struct sim *m, struct plan_eni *enis) {
        for (int e = 0; e < m->n_enis; e++) {
                struct plan_eni *pe = &enis[e];
                *pe = (struct plan_eni){ .device_index = e, .is_primary = e == 0, .age_ms = OLD };
                snprintf(pe->id, sizeof pe->id, "eni-%d", e);
                pe->prefixes = m->n_pfx[e];
                for (int i = 0; i < m->n_pfx[e]; i++) {
                        pe->assigned += m->pfx[e][i];
                        pe->free += 16 - m->pfx[e][i];
                        pe->empty_prefixes += m->pfx[e][i] == 0;
                }
        }
}

static void sim_apply(struct sim *m, const struct plan_action *a) {
        ck_assert_int_eq(a->unit, PLAN_UNIT_PREFIX);
        int e = a->kind == PLAN_CREATE_ENI ? m->n_enis++ : a->eni_id[4] - '0';
        ck_assert_int_le(m->n_enis, 3);
        ck_assert_int_eq(a->kind == PLAN_ASSIGN_IPS || a->kind == PLAN_CREATE_ENI, 1);
        m->n_pfx[e] += a->count;
        ck_assert_int_le(m->n_pfx[e], 3);
}

static void sim_add_pod(struct sim *m) {
        int be = -1, bi = -1;
        for (int e = 0; e < m->n_enis; e++)
                for (int i = 0; i < m->n_pfx[e]; i++)
                        if (m->pfx[e][i] < 16 && (be < 0 || m->pfx[e][i] > m->pfx[be][bi]))
                                be = e, bi = i;
        ck_assert_msg(be >= 0, "no free address for a pod");
        m->pfx[be][bi]++;
}

static int sim_settle(struct sim *m, struct poolconfig *c, int pods) {
        struct plan_limits l = T3_SMALL;
        for (int pod = 0; pod <= pods; pod++) {
                for (int pass = 0;; pass++) {
                        ck_assert_int_lt(pass, 5);
                        struct plan_eni enis[3];
                        sim_input(m, enis);
                        struct plan_input in = { .cfg = *c, .limits = l, .enis = enis, .n_enis = (size_t)m->n_enis,
                                                 .prefix_delegation = true, .since_grow_ms = 0 };
                        struct plan p;
                        ck_assert_int_eq(plan_compute(&in, &p), 0);
                        if (p.n_actions == 0)
                                break;
                        for (size_t i = 0; i < p.n_actions; i++)
                                sim_apply(m, &p.actions[i]);
                }
                if (pod < pods)
                        sim_add_pod(m);
        }
        int n = 0;
        for (int e = 0; e < m->n_enis; e++)
                n += m->n_pfx[e];
        return n;
}

/* docs/prefix-and-ip-target.md, t3.small, WARM_PREFIX_TARGET=1: 0/5/16/17 pods → 1/2/2/3 prefixes. */
START_TEST(test_pd_t3_small_published) {
        static const int pods[] = { 0, 5, 16, 17 }, prefixes[] = { 1, 2, 2, 3 };
        for (size_t i = 0; i < 4; i++) {
                struct poolconfig c;
                poolconfig_defaults(&c);
                c.warm_prefix_target = 1;
                struct sim m = { .n_enis = 1 };
                ck_assert_msg(sim_settle(&m, &c, pods[i]) == prefixes[i], "%d pods", pods[i]);
        }
}
END_TEST

/* Off by default: the same input without the flag plans /32s, never a prefix action. */
START_TEST(test_pd_off_plans_ips) {
        struct plan_eni e = PD_ENI("eni-p", 0, 1, 0, 0, 16, 0);
        struct plan_input in = { .limits = T3_SMALL, .enis = &e, .n_enis = 1, .since_grow_ms = LONG_AGO };
        poolconfig_defaults(&in.cfg);
        struct plan p;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert_uint_gt(p.n_actions, 0);
        for (size_t i = 0; i < p.n_actions; i++)
                ck_assert_int_eq(p.actions[i].unit, PLAN_UNIT_IP);
        /* The prefix takes one slot, not 16: two slots left on the primary. */
        ck_assert_int_eq(p.actions[0].kind, PLAN_ASSIGN_IPS);
        ck_assert_int_eq(p.actions[0].count, 2);
        ck_assert_str_eq(plan_unit_name(PLAN_UNIT_PREFIX), "prefixes");
}
END_TEST

/*
 * Secondary-IP mode after prefix delegation: the leftover prefixes' addresses
 * are not supply (they are handed out last), so /32s are added, and the
 * prefixes emptied of pods go back, all at once, past the shrink delay.
 */
START_TEST(test_ip_mode_leftover_prefixes) {
        struct plan_eni e[2] = { { .id = "eni-p", .is_primary = true, .prefixes = 2, .empty_prefixes = 1,
                                   .free = 29, .assigned = 3, .age_ms = OLD } };
        struct plan_input in = { .limits = M5_LARGE, .enis = e, .n_enis = 1, .since_grow_ms = LONG_AGO };
        poolconfig_defaults(&in.cfg);
        struct plan p;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        /* WARM_ENI_TARGET=1 wants 9 free /32s: 7 slots left on the primary, a new ENI for the rest */
        ck_assert_uint_eq(p.n_actions, 2);
        ck_assert(p.actions[0].kind == PLAN_ASSIGN_IPS && p.actions[0].unit == PLAN_UNIT_IP && p.actions[0].count == 7);
        ck_assert(p.actions[1].kind == PLAN_CREATE_ENI && p.actions[1].unit == PLAN_UNIT_IP);

        /* the /32s came: the empty prefix goes back, the one holding pods stays */
        e[0].free = 36, e[0].free_ips = 7;
        e[1] = (struct plan_eni){ .id = "eni-2", .device_index = 1, .free = 9, .age_ms = OLD };
        in.n_enis = 2;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert_uint_eq(p.n_actions, 1);
        ck_assert(p.actions[0].kind == PLAN_RELEASE_IPS && p.actions[0].unit == PLAN_UNIT_PREFIX &&
                  p.actions[0].count == 1 && strcmp(p.actions[0].eni_id, "eni-p") == 0);
        in.since_grow_ms = 1000;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        ck_assert_uint_eq(p.n_actions, 0);
}
END_TEST

START_TEST(test_pd_bad_input) {
        struct plan_eni e = PD_ENI("eni-p", 0, 1, 0, 0, 0, 0);
        struct plan_input in = { .limits = T3_SMALL, .enis = &e, .n_enis = 1, .prefix_delegation = true };
        poolconfig_defaults(&in.cfg);
        struct plan p;
        e.empty_prefixes = 2;                   /* more empty than held */
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        e.empty_prefixes = 1, e.free = 10, e.assigned = 6;      /* "empty" with pods in it */
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        e.empty_prefixes = 0, e.free = 10, e.assigned = 0;      /* fewer addresses than 16 per prefix */
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        e.free = 16;
        in.max_pods = -1;
        ck_assert_int_eq(plan_compute(&in, &p), -EINVAL);
        in.max_pods = 0;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
}
END_TEST

/* The /32 mode honours max-pods too. */
START_TEST(test_max_pods_bound_ips) {
        struct plan_eni e = PRIMARY(0, 0, 0);
        struct plan_input in = { .limits = M5_LARGE, .enis = &e, .n_enis = 1, .since_grow_ms = LONG_AGO,
                                 .max_pods = 11 };
        poolconfig_defaults(&in.cfg);
        in.cfg.minimum_ip_target = 25;
        struct plan p;
        ck_assert_int_eq(plan_compute(&in, &p), 0);
        int total = 0;
        for (size_t i = 0; i < p.n_actions; i++)
                total += p.actions[i].count;
        ck_assert_int_eq(total, 11);
        ck_assert(p.summary.at_max_pods);
        ck_assert(!p.summary.at_capacity);
}
END_TEST

/*
 * EKS's max-pods-calculator (aws-vpc-cni-modes.md §5), its worked table, and
 * the formula directly: enis·(ips−1)[·16]+2, capped at 110 (≤ 30 vCPUs) or 250.
 */
START_TEST(test_max_pods_calculator) {
        static const struct { const char *type; int enis, ips, vcpus, sec, pd, cn, cnpd; } rows[] = {
                { "t3.medium", 3, 6, 2, 17, 110, 12, 110 },
                { "m5.large", 3, 10, 2, 29, 110, 20, 110 },
                { "m5.4xlarge", 8, 30, 16, 110, 110, 110, 110 },
                { "c5.18xlarge", 15, 50, 72, 250, 250, 250, 250 },
                { "t3.small", 3, 4, 2, 11, 110, 8, 98 },
                { "t3.nano", 2, 2, 2, 4, 34, 3, 18 },
        };
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
                struct plan_maxpods_in m = { .max_enis = rows[i].enis, .ipv4_per_eni = rows[i].ips,
                                             .vcpus = rows[i].vcpus, .nitro = true };
                int raw = rows[i].enis * (rows[i].ips - 1) + 2;
                int cap = rows[i].vcpus <= 30 ? 110 : 250;
                ck_assert_int_eq(rows[i].sec, raw < cap ? raw : cap);
                ck_assert_msg(plan_max_pods_for(&m) == rows[i].sec, "%s", rows[i].type);
                m.prefix_delegation = true;
                ck_assert_msg(plan_max_pods_for(&m) == rows[i].pd, "%s PD", rows[i].type);
                m.custom_networking = true;
                ck_assert_msg(plan_max_pods_for(&m) == rows[i].cnpd, "%s CN+PD", rows[i].type);
                m.prefix_delegation = false;
                ck_assert_msg(plan_max_pods_for(&m) == rows[i].cn, "%s CN", rows[i].type);
        }
        /* PD needs nitro and CNI >= 1.9; MAX_ENI caps the ENIs first. */
        struct plan_maxpods_in m = { .max_enis = 3, .ipv4_per_eni = 10, .vcpus = 2, .prefix_delegation = true };
        ck_assert_int_eq(plan_max_pods_for(&m), 29);
        m.nitro = true, m.cni_before_1_9 = true;
        ck_assert_int_eq(plan_max_pods_for(&m), 29);
        m.cni_before_1_9 = false, m.prefix_delegation = false, m.max_eni = 2;
        ck_assert_int_eq(plan_max_pods_for(&m), 20);
        m.custom_networking = true;
        ck_assert_int_eq(plan_max_pods_for(&m), 11);
        m.max_eni = 9;
        ck_assert_int_eq(plan_max_pods_for(&m), 20);
        m.vcpus = 0;
        ck_assert_int_eq(plan_max_pods_for(&m), -EINVAL);
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
        tcase_add_test(tc, test_custom_networking);
        tcase_add_test(tc, test_churn_does_not_flap);
        tcase_add_loop_test(tc, test_pd_scenario, 0, sizeof pd_scenarios / sizeof pd_scenarios[0]);
        tcase_add_test(tc, test_pd_t3_small_published);
        tcase_add_test(tc, test_pd_off_plans_ips);
        tcase_add_test(tc, test_pd_bad_input);
        tcase_add_test(tc, test_ip_mode_leftover_prefixes);
        tcase_add_test(tc, test_max_pods_bound_ips);
        tcase_add_test(tc, test_max_pods_calculator);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

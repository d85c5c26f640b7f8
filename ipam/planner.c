/*
 * planner: aws-node's warm-pool arithmetic, with our differences (see
 * planner.h), as a pure function from counts to actions.
 *
 * Grow: the shortfall is what the targets want free (plus one free address
 * per waiting ADD) minus what is free or already on its way. It is covered by
 * filling ENIs that have room — primary first, then by device index — and
 * then by creating as many ENIs as still needed, each with its addresses in
 * the same call. In WARM_ENI mode every request is a whole ENI's worth, as in
 * aws-node. Shrink runs only when nothing is short or pending and the last
 * grow is older than the configured shrink delay.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "planner.h"

static int max_i(int a, int b) { return a > b ? a : b; }
static int min_i(int a, int b) { return a < b ? a : b; }

int plan_ips_per_eni(const struct plan_limits *l) {
        return max_i(l->ipv4_per_eni - 1, 0);
}

int plan_max_enis(const struct plan_limits *l, const struct poolconfig *cfg) {
        if (cfg->max_eni > 0)
                return min_i(cfg->max_eni, l->max_enis);
        return l->max_enis;
}

int plan_max_pods(const struct plan_limits *l) {
        return l->max_enis * plan_ips_per_eni(l) + 2;
}

const char *plan_kind_name(enum plan_kind kind) {
        static const char *const names[] = {
                [PLAN_ASSIGN_IPS] = "assign-ips", [PLAN_CREATE_ENI] = "create-eni",
                [PLAN_RELEASE_IPS] = "release-ips", [PLAN_DELETE_ENI] = "delete-eni",
        };
        return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

/* Secondary-address slots the ENI uses in EC2 right now. */
static int eni_slots(const struct plan_eni *e) {
        return e->free + e->assigned + e->cooldown + e->releasing;
}

static int validate(const struct plan_input *in) {
        if (in->limits.max_enis < 1 || in->limits.ipv4_per_eni < 1)
                return -EINVAL;
        if (in->waiting_adds < 0 || in->pending_enis < 0 || in->pending_eni_ips < 0 ||
            (in->n_enis > 0 && !in->enis))
                return -EINVAL;
        for (size_t i = 0; i < in->n_enis; i++) {
                const struct plan_eni *e = &in->enis[i];
                if (e->free < 0 || e->assigned < 0 || e->cooldown < 0 || e->releasing < 0 || e->pending < 0)
                        return -EINVAL;
        }
        return 0;
}

static void summarize(const struct plan_input *in, struct plan_summary *s) {
        *s = (struct plan_summary){ .ip_targets = poolconfig_ip_targets(&in->cfg) };
        for (size_t i = 0; i < in->n_enis; i++) {
                s->free += in->enis[i].free;
                s->assigned += in->enis[i].assigned;
                s->cooldown += in->enis[i].cooldown;
                s->pending += in->enis[i].pending;
                s->releasing += in->enis[i].releasing;
        }
        s->pending += in->pending_eni_ips;
        s->total = s->free + s->assigned + s->cooldown;
        s->max_enis = plan_max_enis(&in->limits, &in->cfg);
        s->capacity = s->max_enis * plan_ips_per_eni(&in->limits);
}

/* WARM_ENI mode: W ENIs' worth free; with W=0, aws-node still refills at zero. */
static int warm_eni_keep(const struct plan_input *in) {
        return max_i(in->cfg.warm_eni_target * plan_ips_per_eni(&in->limits), 1);
}

/* Addresses the targets want free right now, waiting ADDs included. */
static int shortfall(const struct plan_input *in, const struct plan_summary *s) {
        const struct poolconfig *c = &in->cfg;
        int supply = s->free + s->pending;
        if (s->ip_targets)
                return max_i(max_i(c->warm_ip_target + in->waiting_adds - supply,
                                   c->minimum_ip_target - (s->total + s->pending)), 0);
        return max_i(warm_eni_keep(in) + in->waiting_adds - supply, 0);
}

static bool add_action(struct plan *p, enum plan_kind kind, const char *eni_id, int count) {
        if (p->n_actions >= PLAN_MAX_ACTIONS || count <= 0)
                return false;
        struct plan_action *a = &p->actions[p->n_actions++];
        *a = (struct plan_action){ .kind = kind, .count = count };
        if (eni_id)
                snprintf(a->eni_id, sizeof a->eni_id, "%s", eni_id);
        return true;
}

/* Fill order: primary ENI first, then by device index. */
static int cmp_fill(const void *a, const void *b) {
        const struct plan_eni *x = *(const struct plan_eni *const *)a, *y = *(const struct plan_eni *const *)b;
        if (x->is_primary != y->is_primary)
                return x->is_primary ? -1 : 1;
        return x->device_index - y->device_index;
}

/* Release order: ENIs with fewest pods first (they may empty out), newest device first. */
static int cmp_release(const void *a, const void *b) {
        const struct plan_eni *x = *(const struct plan_eni *const *)a, *y = *(const struct plan_eni *const *)b;
        if (x->assigned != y->assigned)
                return x->assigned - y->assigned;
        return y->device_index - x->device_index;
}

static size_t sorted(const struct plan_input *in, const struct plan_eni **out,
                     int (*cmp)(const void *, const void *)) {
        for (size_t i = 0; i < in->n_enis; i++)
                out[i] = &in->enis[i];
        qsort(out, in->n_enis, sizeof *out, cmp);
        return in->n_enis;
}

static void plan_grow(const struct plan_input *in, struct plan *p, int need) {
        const int per_eni = plan_ips_per_eni(&in->limits);
        const bool whole = !p->summary.ip_targets;
        const struct plan_eni *order[PLAN_MAX_ACTIONS * 2];
        size_t n = sorted(in, order, cmp_fill);

        for (size_t i = 0; i < n && need > 0; i++) {
                int room = per_eni - eni_slots(order[i]) - order[i]->pending;
                if (room <= 0)
                        continue;
                int count = whole ? room : min_i(room, need);
                if (add_action(p, PLAN_ASSIGN_IPS, order[i]->id, count))
                        need -= count;
        }
        int slots = p->summary.max_enis - (int)in->n_enis - in->pending_enis;
        for (; need > 0 && slots > 0; slots--) {
                int count = whole ? per_eni : min_i(per_eni, need);
                if (!add_action(p, PLAN_CREATE_ENI, NULL, count))
                        break;
                need -= count;
        }
}

static bool deletable(const struct plan_eni *e) {
        return !e->is_primary && e->assigned == 0 && e->cooldown == 0 && e->pending == 0 &&
               e->releasing == 0 &&
               e->age_ms >= PLAN_MIN_ENI_AGE_MS;
}

/* WARM_ENI mode: whole ENIs only, while W ENIs' worth stays free (aws-node). */
static void plan_shrink_enis(const struct plan_input *in, struct plan *p) {
        const int per_eni = plan_ips_per_eni(&in->limits);
        const int keep = warm_eni_keep(in) + max_i(in->peak_assigned - p->summary.assigned, 0);
        int free = p->summary.free;
        if (free < keep + per_eni)
                return;
        const struct plan_eni *order[PLAN_MAX_ACTIONS * 2];
        size_t n = sorted(in, order, cmp_release);
        for (size_t i = 0; i < n; i++)
                if (deletable(order[i]) && free - order[i]->free >= keep &&
                    add_action(p, PLAN_DELETE_ENI, order[i]->id, order[i]->free))
                        free -= order[i]->free;
}

/* The hysteresis band of IP-target mode: half the warm target, at least 1. */
static int band(const struct poolconfig *c) {
        return max_i(1, (c->warm_ip_target + 1) / 2);
}

/* IP-target mode: release the surplus above the band; empty ENIs go whole. */
static void plan_shrink_ips(const struct plan_input *in, struct plan *p) {
        const struct plan_summary *s = &p->summary;
        int band_ = band(&in->cfg);
        if (s->surplus <= band_)
                return;
        int release = s->surplus - band_ / 2;
        const struct plan_eni *order[PLAN_MAX_ACTIONS * 2];
        size_t n = sorted(in, order, cmp_release);
        for (size_t i = 0; i < n && release > 0; i++)
                if (deletable(order[i]) && order[i]->free <= release &&
                    add_action(p, PLAN_DELETE_ENI, order[i]->id, order[i]->free))
                        release -= order[i]->free;
        for (size_t i = 0; i < n && release > 0; i++) {
                const struct plan_eni *e = order[i];
                bool taken = false;
                for (size_t j = 0; j < p->n_actions; j++)
                        taken |= strcmp(p->actions[j].eni_id, e->id) == 0;
                int count = min_i(e->free, release);
                if (!taken && add_action(p, PLAN_RELEASE_IPS, e->id, count))
                        release -= count;
        }
}

/*
 * Free addresses above the targets. Cooling addresses are neither free nor
 * released: they return to free on their own, and a later pass sees them.
 */
static int surplus(const struct plan_input *in, const struct plan_summary *s) {
        const struct poolconfig *c = &in->cfg;
        int returning = max_i(in->peak_assigned - s->assigned, 0);
        if (!s->ip_targets)
                return max_i(s->free - returning - warm_eni_keep(in), 0);
        return max_i(min_i(s->free - returning - c->warm_ip_target, s->total - c->minimum_ip_target), 0);
}

int plan_compute(const struct plan_input *in, struct plan *ret) {
        if (!in || !ret || validate(in) < 0 || in->n_enis > PLAN_MAX_ACTIONS * 2)
                return -EINVAL;
        struct plan p = { 0 };
        summarize(in, &p.summary);
        p.summary.shortfall = shortfall(in, &p.summary);
        int room = p.summary.capacity - p.summary.total - p.summary.releasing - p.summary.pending;

        if (p.summary.shortfall > 0) {
                /*
                 * A pool serving pods asks for more than the exact shortfall, since the call
                 * costs the same: half a band, or as many as are cooling down when more —
                 * under churn those are the standing demand (release rate × cooldown) that a
                 * grow of the bare shortfall would meet one EC2 call at a time.
                 */
                int extra = 0;
                if (p.summary.ip_targets && p.summary.assigned > 0)
                        extra = max_i(band(&in->cfg) / 2, p.summary.cooldown);
                int need = min_i(p.summary.shortfall + extra, max_i(room, 0));
                p.summary.at_capacity = need < p.summary.shortfall;     /* extra >= 0 */
                if (need > 0)
                        plan_grow(in, &p, need);
        } else if (in->waiting_adds == 0 && p.summary.pending == 0 && in->pending_enis == 0) {
                p.summary.surplus = surplus(in, &p.summary);
                if (in->since_grow_ms >= (int64_t)in->cfg.shrink_delay_s * 1000) {
                        if (p.summary.ip_targets)
                                plan_shrink_ips(in, &p);
                        else
                                plan_shrink_enis(in, &p);
                }
        }
        *ret = p;
        return 0;
}

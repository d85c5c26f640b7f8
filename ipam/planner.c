/*
 * planner: aws-node's warm-pool arithmetic, with our differences (see
 * planner.h), as a pure function from counts to actions.
 *
 * Grow: the shortfall is what the targets want free (plus one free address
 * per waiting ADD) minus what is free or already on its way. It is covered by
 * filling ENIs that have room — primary first, then by device index — and
 * then by creating as many ENIs as still needed (an ENI marked no_grow or
 * no_pods is never filled, and a no_pods one's free addresses are no supply), each with its addresses in
 * the same call. In WARM_ENI mode every request is a whole ENI's worth, as in
 * aws-node. Shrink runs only when nothing is short or pending and the last
 * grow is older than the configured shrink delay.
 *
 * Prefix delegation counts the same way in /28 prefixes (16 addresses, one
 * slot each): the shortfall and the surplus are prefixes, ENIs are filled
 * with prefixes, and only empty prefixes go back. With no shortfall, a pool
 * holding free /32s is converted (plan_convert) and its unneeded /32s go
 * back (plan_shrink_pd); secondary-IP mode gives back empty prefixes first.
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

int plan_max_pods_for(const struct plan_maxpods_in *in) {
        if (!in || in->max_enis < 1 || in->ipv4_per_eni < 1 || in->vcpus < 1)
                return -EINVAL;
        int enis = in->max_eni > 0 ? min_i(in->max_eni, in->max_enis) : in->max_enis;
        if (in->custom_networking)
                enis--;
        int per_eni = in->ipv4_per_eni - 1;
        if (in->prefix_delegation && in->nitro && !in->cni_before_1_9)
                per_eni *= PLAN_PREFIX_IPS;
        int n = max_i(enis, 0) * per_eni + 2;
        return min_i(n, in->vcpus <= 30 ? 110 : 250);
}

const char *plan_kind_name(enum plan_kind kind) {
        static const char *const names[] = {
                [PLAN_ASSIGN_IPS] = "assign-ips", [PLAN_CREATE_ENI] = "create-eni",
                [PLAN_RELEASE_IPS] = "release-ips", [PLAN_DELETE_ENI] = "delete-eni",
        };
        return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

const char *plan_unit_name(enum plan_unit unit) {
        return unit == PLAN_UNIT_PREFIX ? "prefixes" : unit == PLAN_UNIT_IP ? "ips" : "?";
}

static int ceil16(int n) {
        return n > 0 ? (n + PLAN_PREFIX_IPS - 1) / PLAN_PREFIX_IPS : 0;
}

static int eni_addresses(const struct plan_eni *e) {
        return e->free + e->assigned + e->cooldown + e->releasing;
}

/* Its free /32 secondaries (an ENI with no prefix has nothing else). */
static int eni_free_ips(const struct plan_eni *e) {
        return e->prefixes ? e->free_ips : e->free;
}

/* Secondary-address slots the ENI uses in EC2 right now: one per /32, one per /28. */
static int eni_slots(const struct plan_eni *e) {
        return eni_addresses(e) - (PLAN_PREFIX_IPS - 1) * e->prefixes;
}

/* Slots of the ENI that neither hold a block nor have one on its way. */
static int eni_room(const struct plan_input *in, const struct plan_eni *e) {
        return plan_ips_per_eni(&in->limits) - eni_slots(e) - e->pending - e->pending_prefixes;
}

static int validate(const struct plan_input *in) {
        if (in->limits.max_enis < 1 || in->limits.ipv4_per_eni < 1)
                return -EINVAL;
        if (in->waiting_adds < 0 || in->pending_enis < 0 || in->pending_eni_ips < 0 ||
            in->pending_eni_prefixes < 0 || in->max_pods < 0 || (in->n_enis > 0 && !in->enis))
                return -EINVAL;
        for (size_t i = 0; i < in->n_enis; i++) {
                const struct plan_eni *e = &in->enis[i];
                if (e->free < 0 || e->assigned < 0 || e->cooldown < 0 || e->releasing < 0 || e->pending < 0)
                        return -EINVAL;
                /* A prefix's 16 addresses are among the ENI's; an empty one's are all free. */
                if (e->free_ips < 0 || PLAN_PREFIX_IPS * e->empty_prefixes + e->free_ips > e->free)
                        return -EINVAL;
                if (e->prefixes < 0 || e->pending_prefixes < 0 || e->empty_prefixes < 0 ||
                    e->empty_prefixes > e->prefixes || PLAN_PREFIX_IPS * e->prefixes > eni_addresses(e) ||
                    PLAN_PREFIX_IPS * e->empty_prefixes > e->free)
                        return -EINVAL;
        }
        return 0;
}

static void summarize(const struct plan_input *in, struct plan_summary *s) {
        *s = (struct plan_summary){ .ip_targets = poolconfig_ip_targets(&in->cfg),
                                    .prefix_delegation = in->prefix_delegation };
        for (size_t i = 0; i < in->n_enis; i++) {
                const struct plan_eni *e = &in->enis[i];
                /* An ENI whose addresses are not the pods' (released by the daemon): no supply. */
                s->free += e->no_pods ? 0 : e->free;
                s->assigned += e->assigned;
                s->cooldown += e->cooldown;
                s->pending += e->pending + PLAN_PREFIX_IPS * e->pending_prefixes;
                s->releasing += e->releasing;
                s->prefixes += e->prefixes;
                s->empty_prefixes += e->empty_prefixes;
                s->free_ips += e->no_pods ? 0 : eni_free_ips(e);
        }
        s->pending += in->pending_eni_ips + PLAN_PREFIX_IPS * in->pending_eni_prefixes;
        s->total = s->free + s->assigned + s->cooldown;
        s->max_enis = plan_max_enis(&in->limits, &in->cfg);
        int no_pods = 0;
        for (size_t i = 0; i < in->n_enis; i++)
                no_pods += in->enis[i].no_pods;
        s->capacity = (s->max_enis - no_pods) * plan_ips_per_eni(&in->limits) * (in->prefix_delegation ? PLAN_PREFIX_IPS : 1);
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

static bool add_unit(struct plan *p, enum plan_kind kind, enum plan_unit unit, const char *eni_id, int count) {
        if (p->n_actions >= PLAN_MAX_ACTIONS || count < 0 || (count == 0 && kind != PLAN_DELETE_ENI))
                return false;
        struct plan_action *a = &p->actions[p->n_actions++];
        *a = (struct plan_action){ .kind = kind, .unit = unit, .count = count };
        if (eni_id)
                snprintf(a->eni_id, sizeof a->eni_id, "%s", eni_id);
        return true;
}

/* An action in the mode's unit: prefixes under prefix delegation (a delete counts addresses). */
static bool add_action(struct plan *p, enum plan_kind kind, const char *eni_id, int count) {
        enum plan_unit unit = p->summary.prefix_delegation && kind != PLAN_DELETE_ENI ? PLAN_UNIT_PREFIX : PLAN_UNIT_IP;
        return count > 0 && add_unit(p, kind, unit, eni_id, count);
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
        const bool whole = !p->summary.ip_targets && !p->summary.prefix_delegation;
        const struct plan_eni *order[PLAN_MAX_ACTIONS * 2];
        size_t n = sorted(in, order, cmp_fill);

        for (size_t i = 0; i < n && need > 0; i++) {
                int room = eni_room(in, order[i]);
                if (room <= 0 || order[i]->no_grow || order[i]->no_pods)
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
               e->releasing == 0 && e->pending_prefixes == 0 &&
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

/* --- prefix delegation: the same arithmetic in /28 prefixes --------------------- */

/* Prefixes on their way (on attached ENIs and on ENIs being created). */
static int pending_prefixes(const struct plan_input *in) {
        int n = in->pending_eni_prefixes;
        for (size_t i = 0; i < in->n_enis; i++)
                n += in->enis[i].pending_prefixes;
        return n;
}

/* WARM_PREFIX_TARGET mode: W prefixes' worth free; with W=0, refill at zero (aws-node). */
static int warm_prefix_keep(const struct poolconfig *c) {
        return max_i(c->warm_prefix_target * PLAN_PREFIX_IPS, 1);
}

/*
 * Prefixes the targets want added. IP targets: aws-node's short rounded up to
 * prefixes (plus, on a pool serving pods, the addresses cooling down: the
 * standing demand under churn). WARM_PREFIX_TARGET: when fewer than W
 * prefixes' worth are free, max(1, W − empty prefixes), or more for waiting ADDs.
 */
static int shortfall_prefixes(const struct plan_input *in, const struct plan_summary *s) {
        const struct poolconfig *c = &in->cfg;
        int supply = s->free + s->pending;
        if (s->ip_targets) {
                int short_ = max_i(max_i(c->warm_ip_target + in->waiting_adds - supply,
                                         c->minimum_ip_target - (s->total + s->pending)), 0);
                if (short_ > 0 && s->assigned > 0)
                        short_ += s->cooldown;
                return ceil16(short_);
        }
        int short_ = warm_prefix_keep(c) + in->waiting_adds - supply;
        if (short_ <= 0)
                return 0;
        int empty = s->empty_prefixes + pending_prefixes(in);
        return max_i(max_i(ceil16(short_), c->warm_prefix_target - empty), 1);
}

/*
 * Empty prefixes above the targets. aws-node: IP targets free
 * min(empty, total − ceil((assigned + WARM_IP)/16), total − ceil(MIN_IP/16));
 * WARM_PREFIX_TARGET frees empty − W. Ours also keeps the recent peak's
 * addresses and never leaves fewer free than the grow side wants (cooling
 * addresses are not free), so a release never triggers the next grow.
 */
static int surplus_prefixes(const struct plan_input *in, const struct plan_summary *s, int free) {
        const struct poolconfig *c = &in->cfg;
        int peak = max_i(in->peak_assigned, s->assigned), returning = peak - s->assigned;
        int over;
        if (s->ip_targets) {
                over = min_i(s->empty_prefixes, s->prefixes - ceil16(peak + c->warm_ip_target));
                over = min_i(over, s->prefixes - ceil16(c->minimum_ip_target));
                over = min_i(over, (free - returning - c->warm_ip_target) / PLAN_PREFIX_IPS);
        } else {
                over = s->empty_prefixes - c->warm_prefix_target;
                over = min_i(over, (free - returning - warm_prefix_keep(c)) / PLAN_PREFIX_IPS);
        }
        return max_i(over, 0);
}

/*
 * Free /32s of a PD pool that its prefixes make unneeded: all but those the
 * targets and the recent peak still want beyond the prefixes' free addresses
 * (and, with MINIMUM_IP, never below it in total).
 */
static int surplus_ips(const struct plan_input *in, const struct plan_summary *s) {
        const struct poolconfig *c = &in->cfg;
        int returning = max_i(in->peak_assigned - s->assigned, 0);
        int want = s->ip_targets ? c->warm_ip_target : warm_prefix_keep(c);
        int over = s->free_ips - max_i(want + returning - (s->free - s->free_ips), 0);
        if (s->ip_targets)
                over = min_i(over, s->total - c->minimum_ip_target);
        return max_i(over, 0);
}

/*
 * Prefixes a mixed pool lacks when its free /32s are left out: what it takes
 * to replace them. 0 while EC2 refuses prefixes (the /32s are the supply then).
 */
static int convert_prefixes(const struct plan_input *in, const struct plan_summary *s) {
        if (in->prefixes_refused || s->free_ips == 0)
                return 0;
        struct plan_summary t = *s;
        t.free -= s->free_ips;
        t.total -= s->free_ips;
        return shortfall_prefixes(in, &t);
}

static bool taken(const struct plan *p, const char *eni_id) {
        for (size_t j = 0; j < p->n_actions; j++)
                if (strcmp(p->actions[j].eni_id, eni_id) == 0)
                        return true;
        return false;
}

/*
 * Release `surplus` empty prefixes and `surplus_ips` free /32s; an ENI holding
 * nothing but such blocks (or nothing at all) goes whole.
 */
static void plan_shrink_pd(const struct plan_input *in, struct plan *p) {
        int pfx = p->summary.surplus, ips = p->summary.surplus_ips;
        if (pfx <= 0 && ips <= 0)       /* the usual pass: nothing to give back, no ENI to sort */
                return;
        const struct plan_eni *order[PLAN_MAX_ACTIONS * 2];
        size_t n = sorted(in, order, cmp_release);
        for (size_t i = 0; i < n; i++) {
                const struct plan_eni *e = order[i];
                bool all_free = e->empty_prefixes == e->prefixes &&
                                eni_addresses(e) == PLAN_PREFIX_IPS * e->prefixes + eni_free_ips(e);
                if (deletable(e) && all_free && e->prefixes <= pfx && eni_free_ips(e) <= ips &&
                    add_unit(p, PLAN_DELETE_ENI, PLAN_UNIT_IP, e->id, e->free))
                        pfx -= e->prefixes, ips -= eni_free_ips(e);
        }
        for (size_t i = 0; i < n && (pfx > 0 || ips > 0); i++) {
                const struct plan_eni *e = order[i];
                if (taken(p, e->id))
                        continue;
                int count = min_i(e->empty_prefixes, pfx);
                if (add_action(p, PLAN_RELEASE_IPS, e->id, count))
                        pfx -= count;
                count = min_i(eni_free_ips(e), ips);
                if (count > 0 && add_unit(p, PLAN_RELEASE_IPS, PLAN_UNIT_IP, e->id, count))
                        ips -= count;
        }
}

/*
 * Replace a mixed pool's free /32s by `need` prefixes: added where there is
 * room (marked `replace`), else, past the shrink delay, as many /32s given
 * back as prefixes are wanted, so their slots take prefixes the next pass.
 */
static void plan_convert(const struct plan_input *in, struct plan *p, int need, int room) {
        size_t first = p->n_actions;
        if (room > 0) {
                plan_grow(in, p, min_i(need, room));
                for (size_t i = first; i < p->n_actions; i++)
                        p->actions[i].replace = true;
                return;
        }
        if (in->since_grow_ms < (int64_t)in->cfg.shrink_delay_s * 1000)
                return;
        const struct plan_eni *order[PLAN_MAX_ACTIONS * 2];
        size_t n = sorted(in, order, cmp_release);
        for (size_t i = 0; i < n && need > 0; i++) {
                int count = min_i(eni_free_ips(order[i]), need);
                if (count > 0 && add_unit(p, PLAN_RELEASE_IPS, PLAN_UNIT_IP, order[i]->id, count))
                        need -= count;
        }
}

/* Secondary-IP mode: leftover prefixes emptied of pods go back to EC2, all at once. */
static void plan_release_prefixes(const struct plan_input *in, struct plan *p) {
        for (size_t i = 0; i < in->n_enis; i++)
                add_unit(p, PLAN_RELEASE_IPS, PLAN_UNIT_PREFIX, in->enis[i].id, in->enis[i].empty_prefixes);
}

/* --- the pass ------------------------------------------------------------------------ */

/* Addresses the warm target keeps free on top of the pods (the max-pods bound's margin). */
static int warm_addresses(const struct plan_input *in) {
        const struct poolconfig *c = &in->cfg;
        if (poolconfig_ip_targets(c))
                return c->warm_ip_target;
        return in->prefix_delegation ? c->warm_prefix_target * PLAN_PREFIX_IPS : warm_eni_keep(in);
}

/*
 * Blocks (addresses, or prefixes under PD) the pool may still grow by: the
 * ENI slots left, and with max_pods set what max-pods pods plus the warm
 * target need (rounded up to a prefix, as aws-node stops at 16·n ≥ max-pods).
 */
static int grow_room(const struct plan_input *in, const struct plan_summary *s, int *ret_slots) {
        int slots = s->max_enis * plan_ips_per_eni(&in->limits) - in->pending_eni_ips - in->pending_eni_prefixes;
        for (size_t i = 0; i < in->n_enis; i++) {
                const struct plan_eni *e = &in->enis[i];
                if (e->no_grow || e->no_pods)
                        slots -= plan_ips_per_eni(&in->limits);  /* never grown: none of its slots is room */
                else
                        slots -= eni_slots(e) + e->pending + e->pending_prefixes;
        }
        *ret_slots = max_i(slots, 0);
        if (in->max_pods <= 0)
                return *ret_slots;
        int pods_room = in->max_pods + warm_addresses(in) - (s->total + s->releasing + s->pending);
        if (in->prefix_delegation)
                pods_room = ceil16(pods_room);
        return max_i(min_i(slots, pods_room), 0);
}

/*
 * Nothing short, nothing on its way: a mixed PD pool is converted (prefixes
 * for its free /32s), else the surplus goes back once the shrink delay passed.
 */
static void plan_idle(const struct plan_input *in, struct plan *p, int room) {
        const bool pd = in->prefix_delegation;
        int convert = pd ? convert_prefixes(in, &p->summary) : 0;
        if (convert > 0) {
                plan_convert(in, p, convert, room);
                return;
        }
        if (pd) {
                p->summary.surplus_ips = surplus_ips(in, &p->summary);
                p->summary.surplus = surplus_prefixes(in, &p->summary, p->summary.free - p->summary.surplus_ips);
        } else
                p->summary.surplus = surplus(in, &p->summary);
        if (in->since_grow_ms < (int64_t)in->cfg.shrink_delay_s * 1000)
                return;
        if (pd)
                plan_shrink_pd(in, p);
        else if (p->summary.empty_prefixes > 0)
                plan_release_prefixes(in, p);
        else if (p->summary.ip_targets)
                plan_shrink_ips(in, p);
        else
                plan_shrink_enis(in, p);
}

int plan_compute(const struct plan_input *in, struct plan *ret) {
        if (!in || !ret || validate(in) < 0 || in->n_enis > PLAN_MAX_ACTIONS * 2)
                return -EINVAL;
        struct plan p = { 0 };
        summarize(in, &p.summary);
        const bool pd = in->prefix_delegation;
        if (!pd)        /* leftover prefixes' addresses are handed out last, not supply: the prefixes empty out */
                p.summary.free = p.summary.free_ips;
        p.summary.shortfall = pd ? shortfall_prefixes(in, &p.summary) : shortfall(in, &p.summary);
        int slots;
        int room = grow_room(in, &p.summary, &slots);

        if (p.summary.shortfall > 0) {
                /*
                 * A pool serving pods asks for more than the exact shortfall, since the call
                 * costs the same: half a band, or as many as are cooling down when more —
                 * under churn those are the standing demand (release rate × cooldown) that a
                 * grow of the bare shortfall would meet one EC2 call at a time. (Prefix
                 * delegation counted the cooling addresses in its shortfall already.)
                 */
                int extra = 0;
                if (!pd && p.summary.ip_targets && p.summary.assigned > 0)
                        extra = max_i(band(&in->cfg) / 2, p.summary.cooldown);
                int need = min_i(p.summary.shortfall + extra, room);
                p.summary.at_capacity = slots < p.summary.shortfall;
                p.summary.at_max_pods = room < slots && need < p.summary.shortfall;
                if (need > 0)
                        plan_grow(in, &p, need);
        } else if (in->waiting_adds == 0 && p.summary.pending == 0 && in->pending_enis == 0) {
                plan_idle(in, &p, room);
        }
        *ret = p;
        return 0;
}

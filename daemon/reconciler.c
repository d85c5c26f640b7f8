/*
 * reconciler: planner → actions, on its own thread (see reconciler.h).
 *
 * A pass reads the per-ENI counts from the store, adds the waiting ADDs and
 * the recent peak of assigned addresses (kept here: a ring of PEAK_SLOTS
 * maxima, each over a tenth of VPC_IPAM_SHRINK_DELAY, so the ring spans the
 * delay — 12 s slots over 120 s by default), asks the planner, and runs grows
 * before shrinks.
 * Growth is skipped while EC2 said the subnet is exhausted (eniops sets the
 * back-off). Under prefix delegation (configured, on a nitro type) the
 * planner gets the flag, kubelet's max-pods and whether EC2 refuses
 * prefixes lately, and prefix actions go to eniops' prefix operations (those
 * that only replace free /32s without the /32 fallback). The status the
 * server reports is derived here: the last failure, or the ENI limit when the
 * planner says the node is at capacity.
 *
 * The store is checked before every pass. SQLite keeps writing to a file
 * that was unlinked, so a store removed or replaced while running is found by
 * its identity (store_identity_check): the server then holds ADDs and DELs,
 * every handle reopens a fresh store at the configured path, and the
 * start-up sync runs again (EC2, the kernel as witness of the pods' leases,
 * open intents) before serving resumes. A store that cannot commit (a
 * probe write fails, or any handle's write failed since the last pass) makes
 * the node not ready, is reopened with back-off, and once it commits again
 * the start-up sync settles what could not be recorded meanwhile. Each
 * healthy check is progress, which the liveness probe reads (stalled_ms).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "mkdirs.h"
#include "vtime.h"
#include "reconciler.h"
#include "snat.h"

#define PEAK_SLOTS 10
#define STORE_PROBE_MS 1000
#define EC2_SLOW_MS 3000                /* an EC2 step running longer is reported while it runs */
#define EC2_RECHECK_MS 5000             /* with a failure reported, EC2 is asked this often whether it passed */

struct reconciler {
        struct reconciler_options o;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        _Atomic bool stop;           /* read by the thread's long loops without the lock */
        bool woken;
        int waiting_adds;
        struct server_pool_status status;       /* under lock */
        sync_pods *pods;
        snat *snat;                             /* the egress table (snat.h), used on the thread only */
        int64_t last_grow, last_ec2_sync, last_imds, last_leak_cleanup, last_pods;
        int peak[PEAK_SLOTS];
        int64_t peak_slot;
        /* The store's health (see the top): trouble and hold under lock, the rest on the thread. */
        char store_trouble[SERVER_REASON_MAX];
        bool hold;
        _Atomic int64_t progress_ms;            /* monotonic: the last check that found the store healthy */
        unsigned long write_failures_seen;
        int64_t next_reopen_ms;
        int reopen_backoff_ms;
        bool resync_needed;                     /* the store could not record something: sync again once it can */
        int64_t last_probe_ms;                  /* monotonic: the last probe write */
        /* The EC2 step in progress, for a status that tells of EC2 trouble while it lasts. */
        _Atomic int64_t ec2_since_ms;           /* monotonic; 0: none */
        const char *_Atomic ec2_what;
        int64_t last_ec2_recheck;
        unsigned cn_ticket;                     /* custom networking: the refresh a create waits on (0: none) */
        int64_t cn_asked_ms;                    /* monotonic: when it was asked */
};

void reconciler_wake(reconciler *r, int waiting_adds) {
        pthread_mutex_lock(&r->lock);
        r->woken = true;
        r->waiting_adds = waiting_adds;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
}

void reconciler_status(reconciler *r, struct server_pool_status *ret) {
        pthread_mutex_lock(&r->lock);
        *ret = r->status;
        if (r->store_trouble[0]) {
                ret->ready = false;
                snprintf(ret->reason, sizeof ret->reason, "%s", r->store_trouble);
        }
        ret->hold = r->hold;
        bool store_trouble = r->store_trouble[0] != '\0';
        pthread_mutex_unlock(&r->lock);
        int64_t now = vtime_mono_ms(), since = atomic_load(&r->ec2_since_ms);
        ret->stalled_ms = now - atomic_load(&r->progress_ms);
        if (since && now - since >= EC2_SLOW_MS && !store_trouble)
                snprintf(ret->reason, sizeof ret->reason, "EC2 is not answering: %s has waited %lld s for it",
                         atomic_load(&r->ec2_what), (long long)((now - since) / 1000));
}

/* An EC2 step begins (what: a short phrase) or, with NULL, ends. */
static void ec2_step(reconciler *r, const char *what) {
        if (what)
                atomic_store(&r->ec2_what, what);
        atomic_store(&r->ec2_since_ms, what ? vtime_mono_ms() : 0);
}

/*
 * Report the store's trouble ("" when healthy). A hold (the server must not
 * hand out addresses until the leases are known again) is lifted only with
 * the trouble cleared, after a successful sync: a write failure in the middle
 * of a rebuild must not let an ADD take a live pod's address.
 */
static void set_store_trouble(reconciler *r, const char *trouble, bool hold) {
        pthread_mutex_lock(&r->lock);
        snprintf(r->store_trouble, sizeof r->store_trouble, "%s", trouble);
        r->hold = hold || (r->hold && trouble[0]);
        pthread_mutex_unlock(&r->lock);
}

static void set_status(reconciler *r, bool ready, const char *reason) {
        pthread_mutex_lock(&r->lock);
        r->status.ready = ready;
        snprintf(r->status.reason, sizeof r->status.reason, "%s", reason);
        pthread_mutex_unlock(&r->lock);
}

/* Highest assigned count over the last shrink delay (PEAK_SLOTS slots of a tenth of it). */
static int track_peak(reconciler *r, int assigned) {
        int64_t slot_ms = r->o.ctx.cfg->pool.shrink_delay_s * 100LL;
        int64_t slot = vtime_mono_ms() / (slot_ms > 0 ? slot_ms : 1);
        if (slot != r->peak_slot) {
                for (int64_t s = r->peak_slot + 1; s <= slot && s - r->peak_slot <= PEAK_SLOTS; s++)
                        r->peak[s % PEAK_SLOTS] = 0;
                r->peak_slot = slot;
        }
        int *cur = &r->peak[slot % PEAK_SLOTS];
        if (assigned > *cur)
                *cur = assigned;
        int peak = 0;
        for (int i = 0; i < PEAK_SLOTS; i++)
                peak = r->peak[i] > peak ? r->peak[i] : peak;
        return peak;
}

/*
 * Prefix delegation is in effect when configured and the instance type is
 * nitro (or bare metal); otherwise aws-node falls back to secondary IPs with
 * a warning, and so does vpc-ipamd (warned once, at start).
 */
static bool prefix_mode(const struct ipamd_ctx *o) {
        return o->cfg->prefix_delegation && o->node->prefix_supported;
}

/* kubelet's max-pods, bounding growth under prefix delegation (aws-node stops at 16·prefixes ≥ max-pods).
 * Secondary-IP mode keeps no bound: its pool cannot outgrow the ENIs. */
static int pd_max_pods(const struct ipamd_ctx *o) {
        if (!prefix_mode(o))
                return 0;
        return node_max_pods(o->node, o->cfg->pool.max_eni, o->cfg->custom_networking, true);
}

static void run_grow(reconciler *r, const struct plan *p) {
        struct ipamd_ctx *o = &r->o.ctx;
        int creates[PLAN_MAX_ACTIONS];
        size_t n_creates = 0;
        bool grew = false, prefixes = false, replace = false;
        for (size_t i = 0; i < p->n_actions; i++) {
                const struct plan_action *a = &p->actions[i];
                bool pd = a->unit == PLAN_UNIT_PREFIX;
                if (a->kind == PLAN_ASSIGN_IPS)
                        grew |= (pd ? eniops_assign_prefixes(o, a->eni_id, a->count, !a->replace)
                                    : eniops_assign(o, a->eni_id, a->count)) > 0;
                else if (a->kind == PLAN_CREATE_ENI) {
                        creates[n_creates++] = a->count;
                        prefixes |= pd;         /* one plan is in one unit */
                        replace |= a->replace;
                }
        }
        if (n_creates)
                grew |= (prefixes ? eniops_create_prefixes(o, creates, n_creates, !replace)
                                  : eniops_create(o, creates, n_creates)) > 0;
        if (grew)
                r->last_grow = vtime_mono_ms();
}

static void run_shrink(reconciler *r, const struct plan *p) {
        for (size_t i = 0; i < p->n_actions; i++) {
                const struct plan_action *a = &p->actions[i];
                if (a->kind == PLAN_RELEASE_IPS && a->unit == PLAN_UNIT_PREFIX)
                        eniops_release_prefixes(&r->o.ctx, a->eni_id, a->count);
                else if (a->kind == PLAN_RELEASE_IPS)
                        eniops_release(&r->o.ctx, a->eni_id, a->count);
                else if (a->kind == PLAN_DELETE_ENI)
                        eniops_delete(&r->o.ctx, a->eni_id);
        }
}

static bool is_grow(const struct plan *p) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind == PLAN_ASSIGN_IPS || p->actions[i].kind == PLAN_CREATE_ENI)
                        return true;
        return false;
}

/*
 * aws-node's rule: no ENI attached or detached while the node carries the
 * unschedulable taint. Until the first read of the Node has ended, nothing
 * is attached or detached (a node started cordoned gets no ENI); that wait
 * is bounded by the reader's timeouts (its end wakes a pass). If the reads
 * keep failing (the API server away: two failures and FIRST_READ_GRACE_MS
 * since the reader started, so one slow or refused call under load does not
 * count), creates go on, since pods must not wait on the API server for
 * long, but deletes wait (they can).
 */
enum eni_gate { ENIS_FREE, ENIS_NO_DELETE, ENIS_NOT_YET, ENIS_FROZEN };

#define FIRST_READ_GRACE_MS 10000

static enum eni_gate eni_gate(const struct ipamd_ctx *o) {
        struct customnet_view v;
        if (!o->cnet || o->cfg->manage_non_schedulable || !o->cfg->node_name[0])
                return ENIS_FREE;
        customnet_view(o->cnet, &v);
        if (!v.node_read)
                return v.failures >= 2 && vtime_mono_ms() - v.started_ms >= FIRST_READ_GRACE_MS ? ENIS_NO_DELETE
                                                                                               : ENIS_NOT_YET;
        return v.unschedulable ? ENIS_FROZEN : ENIS_FREE;
}

static bool unschedulable(const struct ipamd_ctx *o) {
        return eni_gate(o) == ENIS_FROZEN;
}

/* The plan without the ENI creates (frozen, or the first read pending) and deletes (unless free) the gate forbids. */
static void drop_eni_actions(struct plan *p, enum eni_gate g) {
        size_t k = 0;
        for (size_t i = 0; i < p->n_actions; i++)
                if (!(p->actions[i].kind == PLAN_CREATE_ENI && (g == ENIS_FROZEN || g == ENIS_NOT_YET)) &&
                    !(p->actions[i].kind == PLAN_DELETE_ENI && g != ENIS_FREE))
                        p->actions[k++] = p->actions[i];
        if (k != p->n_actions)
                log_debug("the node is unschedulable (or not read yet): ENI actions left out",
                          LF_INT("dropped", (int)(p->n_actions - k)));
        p->n_actions = k;
}

/*
 * Custom networking: a new ENI goes in the subnet the ENIConfig names now,
 * not as last read (up to CUSTOMNET_REFRESH_MS ago). A plan that creates one
 * asks for a read (customnet_refresh) and its creates wait, over the passes
 * that keep wanting them, until that read is in (its end wakes a pass) or
 * CN_REFRESH_WAIT_MS passed: the API server away or slow never holds the pool
 * up longer, and the thread itself never waits.
 */
#define CN_REFRESH_WAIT_MS 2000

static bool cn_view_fresh(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        if (!o->cnet || !o->cfg->custom_networking)
                return true;
        int64_t now = vtime_mono_ms();
        if (!r->cn_ticket) {
                r->cn_ticket = customnet_refresh(o->cnet);
                r->cn_asked_ms = now;
                return false;
        }
        struct customnet_view v;
        customnet_view(o->cnet, &v);
        if (v.served < r->cn_ticket && now - r->cn_asked_ms < CN_REFRESH_WAIT_MS)
                return false;
        if (v.served < r->cn_ticket)
                log_info("custom networking: the ENIConfig could not be read again in time; a new ENI goes in "
                         "the subnet last read", LF_STR("subnet", v.subnet), LF_STR("error", v.error));
        r->cn_ticket = 0;
        return true;
}

/* The plan without its ENI creates. */
static void drop_creates(struct plan *p) {
        size_t k = 0;
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind != PLAN_CREATE_ENI)
                        p->actions[k++] = p->actions[i];
        p->n_actions = k;
}

static bool has_create(const struct plan *p) {
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind == PLAN_CREATE_ENI)
                        return true;
        return false;
}

/*
 * ENIs whose addresses are not the pods' (no_pods: custom networking's
 * primary, an ENI in a subnet tagged kubernetes.io/role/cni=0, as aws-node's
 * IsExcludedForPodIPs): their free /32s and their empty /28 prefixes go back
 * to EC2; pods holding an address keep it until they end (its prefix goes
 * back once it is empty and cooled).
 */
static void release_no_pods(reconciler *r, const struct plan_eni *enis, size_t n) {
        struct ipamd_ctx *o = &r->o.ctx;
        for (size_t i = 0; i < n; i++) {
                const struct plan_eni *e = &enis[i];
                if (!e->no_pods || (e->free_ips == 0 && e->empty_prefixes == 0))
                        continue;
                int rc = e->free_ips > 0 ? eniops_release(o, e->id, e->free_ips) : 0;
                int rp = e->empty_prefixes > 0 ? eniops_release_prefixes(o, e->id, e->empty_prefixes) : 0;
                log_info("returned the free addresses of an ENI that carries no pods to EC2",
                         LF_STR("eni", e->id), LF_BOOL("primary", e->is_primary), LF_INT("count", e->free_ips),
                         LF_INT("prefixes", e->empty_prefixes), LF_INT("error", rc < 0 ? rc : rp < 0 ? rp : 0));
        }
}

/* The pick (store.c) skips an ENI marked no_pods, between passes and after a restart too. */
static void persist_no_pods(struct ipamd_ctx *o, const char *eni_id, bool on) {
        int rc = store_eni_set_no_pods(o->store, eni_id, on);
        if (rc < 0 && rc != -ENOENT)
                log_warn_errno(rc, "could not record whether an ENI carries pods; the next pass retries",
                               LF_STR("eni", eni_id), LF_BOOL("no_pods", on));
}

/*
 * The planner's marks: no_pods for custom networking's primary and for ENIs
 * in excluded subnets; no_grow for ENIs whose subnet ran out a moment ago
 * (the shortfall then goes to a new ENI in another candidate subnet).
 */
static void mark_enis(struct ipamd_ctx *o, struct plan_eni *enis, size_t n) {
        struct store_eni *all = NULL;
        size_t n_all = 0;
        if (store_enis(o->store, &all, &n_all) < 0)
                return;
        int64_t now = o->now_ms();
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n_all; j++) {
                        if (strcmp(all[j].id, enis[i].id) != 0)
                                continue;
                        bool cn_primary = enis[i].is_primary && o->cfg->custom_networking;
                        int ex = o->cfg->no_provisioning ? 0 : ctx_subnet_excluded(o, all[j].subnet_id);
                        if (cn_primary || ex >= 0)      /* else (unknown) the store's mark stands */
                                enis[i].no_pods = cn_primary || ex > 0;
                        enis[i].no_grow = subnets_backoff_active(&o->backoff, all[j].subnet_id, now);
                        if (enis[i].no_pods != all[j].no_pods)
                                persist_no_pods(o, enis[i].id, enis[i].no_pods);
                }
        free(all);
}

static void update_status(reconciler *r, const struct plan *p) {
        struct ipamd_ctx *o = &r->o.ctx;
        char reason[SERVER_REASON_MAX] = "";
        if (o->cn_reason[0] && (p->summary.shortfall > 0 || o->reason[0]))
                snprintf(reason, sizeof reason, "custom networking: %s", o->cn_reason);
        else if (unschedulable(o) && p->summary.shortfall > 0)
                snprintf(reason, sizeof reason, "the node is unschedulable (" CUSTOMNET_UNSCHEDULABLE_TAINT
                         ":NoSchedule): no ENI is attached or detached (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false)");
        else if (eni_gate(o) == ENIS_NOT_YET && p->summary.shortfall > 0)
                snprintf(reason, sizeof reason, "waiting for the first read of the Node (AWS_MANAGE_ENIS_NON_SCHEDULABLE"
                         "=false): no ENI is attached before its taints are known");
        else if (o->reason[0])
                snprintf(reason, sizeof reason, "%s", o->reason);
        else if (p->summary.at_capacity)
                snprintf(reason, sizeof reason, "ENI limit reached: %d ENIs of %s (MAX_ENI %d) hold %d addresses, all in use or cooling",
                         p->summary.max_enis, o->node->instance_type, o->cfg->pool.max_eni, p->summary.capacity);
        set_status(r, true, reason);
}

/*
 * ENIs not attached yet (their addresses are on their way) or on their way out
 * still hold an ENI slot and a device index: the planner must count them.
 */
static void count_pending(store *st, struct plan_input *in) {
        /* Blocks of an attaching ENI: /28 prefixes, or /32 addresses. */
        struct store_eni *enis = NULL;
        size_t n = 0;
        if (store_enis(st, &enis, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                if (enis[i].state == STORE_ENI_ATTACHED)
                        continue;
                in->pending_enis++;
                char (*blocks)[STORE_CIDR_MAX] = NULL;
                size_t nb = 0;
                if (enis[i].state == STORE_ENI_ATTACHING && store_blocks(st, enis[i].id, &blocks, &nb) == 0)
                        for (size_t k = 0; k < nb; k++) {
                                if (strstr(blocks[k], "/28"))
                                        in->pending_eni_prefixes++;
                                else
                                        in->pending_eni_ips++;
                        }
                free(blocks);
        }
        free(enis);
}

static void plan_pass(reconciler *r, int waiting) {
        struct ipamd_ctx *o = &r->o.ctx;
        struct plan_eni enis[PLAN_MAX_ACTIONS * 2];
        size_t n = 0;
        int64_t now = o->now_ms();
        if (store_plan_enis(o->store, now, enis, sizeof enis / sizeof enis[0], &n) < 0)
                return;
        struct plan_input in = { .cfg = o->cfg->pool, .limits = o->node->limits, .enis = enis, .n_enis = n,
                                 .waiting_adds = waiting,
                                 .since_grow_ms = r->last_grow ? vtime_mono_ms() - r->last_grow : INT64_MAX,
                                 .prefix_delegation = prefix_mode(o), .max_pods = pd_max_pods(o),
                                 .prefixes_refused = now < o->prefix_fallback_until };
        mark_enis(o, enis, n);
        count_pending(o->store, &in);
        int assigned = 0;
        for (size_t i = 0; i < n; i++)
                assigned += enis[i].assigned;
        in.peak_assigned = track_peak(r, assigned);
        struct plan p;
        int rc = plan_compute(&in, &p);
        if (rc < 0) {
                log_error_errno(rc, "the planner refused the pool's counts", LF_INT("enis", n),
                                LF_INT("max_enis", in.limits.max_enis), LF_INT("ipv4_per_eni", in.limits.ipv4_per_eni));
                return;
        }
        metrics_inc(o->metrics, METRICS_RECONCILES);
        if (o->cfg->no_provisioning) {
                set_status(r, true, p.summary.shortfall ? "DISABLE_NETWORK_RESOURCE_PROVISIONING is set: the pool does not grow" : "");
                return;
        }
        release_no_pods(r, enis, n);
        enum eni_gate gate = eni_gate(o);
        if (gate != ENIS_FREE)
                drop_eni_actions(&p, gate);
        if (!has_create(&p))
                r->cn_ticket = 0;       /* a later create asks for a read of its own */
        else if (!cn_view_fresh(r))
                drop_creates(&p);       /* a later pass, once the ENIConfig was read again */
        if (is_grow(&p) && now < o->grow_blocked_until) {
                update_status(r, &p);
                return;
        }
        if (p.n_actions)
                log_debug("planned", LF_INT("actions", p.n_actions), LF_INT("shortfall", p.summary.shortfall),
                          LF_INT("surplus", p.summary.surplus), LF_INT("waiting", waiting));
        ec2_step(r, is_grow(&p) ? "growing the pool" : "shrinking the pool");
        if (is_grow(&p))
                run_grow(r, &p);
        else
                run_shrink(r, &p);
        ec2_step(r, NULL);
        update_status(r, &p);
}

static bool due(int64_t *last, int every_ms) {
        int64_t now = vtime_mono_ms();
        if (*last && now - *last < every_ms)
                return false;
        *last = now;
        return true;
}

/* Egress (snat.h): the table follows the config, the primary IP and the VPC
 * CIDRs; snat_apply sends nothing while they are unchanged, and a failure is
 * retried on the next pass. */
static void egress_sync(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        struct snat_input in = { .cfg = o->cfg->snat, .n_vpc_cidrs = o->node->n_vpc_cidrs };
        snprintf(in.primary_ip, sizeof in.primary_ip, "%s", o->node->primary_ip);
        snprintf(in.egress6_ip, sizeof in.egress6_ip, "%s", o->node->egress6_ip);
        for (size_t i = 0; i < in.n_vpc_cidrs && i < SNAT_MAX_VPC_CIDRS; i++)
                snprintf(in.vpc_cidrs[i], SNAT_CIDR_LEN, "%s", o->node->vpc_cidrs[i]);
        struct errmsg err = { 0 };
        int ifindex, rc = 0;
        bool changed = false;
        if (!r->snat || !o->net)
                return;
        if (!in.cfg.external)
                rc = hostnet_find_link_by_mac(o->net, o->node->primary_mac, &ifindex, in.primary_if, &err);
        if (rc == 0)
                rc = snat_apply(r->snat, &in, &changed, &err);
        if (rc < 0)
                log_warn_errno(rc, "could not program egress SNAT; retrying", LF_STR("detail", err.text));
        else if (changed)
                log_info(in.cfg.external ? "egress SNAT removed (AWS_VPC_K8S_CNI_EXTERNALSNAT)" : "egress SNAT programmed",
                         LF_STR("table", "ip " SNAT_TABLE), LF_STR("to", in.primary_ip), LF_STR("primary_if", in.primary_if),
                         LF_INT("vpc_cidrs", (int)in.n_vpc_cidrs), LF_INT("excluded", (int)in.cfg.n_exclude),
                         LF_STR("egress6_to", in.egress6_ip));
}

/* The VPC's CIDRs (egress needs them) as IMDS lists them now, recorded when they changed. */
static void refresh_vpc_cidrs(struct ipamd_ctx *o) {
        struct errmsg err = { 0 };
        bool changed = false;
        int rc = node_refresh_vpc_cidrs(o->node, o->imds, &changed, &err);
        if (rc < 0) {
                log_warn("could not refresh the VPC's CIDRs from IMDS", LF_STR("detail", errmsg_text(&err, rc)));
                return;
        }
        if (!changed)
                return;
        char buf[512];
        node_vpc_cidrs_string(o->node, buf, sizeof buf);
        rc = store_meta_set(o->store, "vpc_cidrs", buf);
        if (rc < 0)
                log_error_errno(rc, "could not record the VPC's CIDRs", LF_STR("vpc_cidrs", buf));
        log_info("the VPC's CIDRs changed", LF_STR("vpc_cidrs", buf));
}

/*
 * A failure reason outlives the failure when nothing needs EC2 afterwards
 * (a full pool): while one is shown, ask EC2 now and then (the primary ENI),
 * and clear it once EC2 answers. Subnet exhaustion clears with its back-off.
 */
static void recheck_ec2(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        if (!o->reason[0] || o->cfg->no_provisioning || o->now_ms() < o->grow_blocked_until ||
            !due(&r->last_ec2_recheck, EC2_RECHECK_MS))
                return;
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        ec2_step(r, "checking that EC2 answers");
        int rc = ctx_describe_eni(o, o->node->primary_eni_id, &res, &e);
        ec2_step(r, NULL);
        if (rc < 0 && rc != -ENOENT)
                return;
        if (rc == 0)
                ec2_result_free(res);
        log_info("EC2 answers again", LF_STR("was", o->reason));
        o->reason[0] = '\0';
}

static void housekeeping(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        sync_links(o, &rep);
        eniops_finish_detaching(o);
        if (due(&r->last_pods, 5000))
                sync_pods_run(r->pods, o, &rep);
        if (due(&r->last_imds, r->o.imds_refresh_ms > 0 ? r->o.imds_refresh_ms : 60000) && o->imds)
                refresh_vpc_cidrs(o);
        egress_sync(r);
        recheck_ec2(r);
        if (o->cfg->no_provisioning) {
                /* IMDS is free of EC2's rate limits: follow it closely. */
                int rc = due(&r->last_ec2_sync, 5000) ? sync_with_imds(o, &rep, &err) : 0;
                if (rc < 0)
                        log_warn("IMDS resync failed", LF_STR("detail", errmsg_text(&err, rc)));
        } else if (due(&r->last_ec2_sync, RECONCILER_EC2_RESYNC_MS)) {
                ec2_step(r, "the periodic EC2 resync");
                int rc = sync_with_ec2(o, &rep, &err);
                ec2_step(r, NULL);
                if (rc < 0)
                        log_warn("periodic EC2 resync failed", LF_STR("detail", errmsg_text(&err, rc)));
        }
        if (!o->cfg->no_leak_cleanup && !o->cfg->no_provisioning &&
            due(&r->last_leak_cleanup, o->cfg->leak_cleanup_interval_s * 1000))
                eniops_leak_cleanup(o, NULL);
}


/* --- the store's health --------------------------------------------------------- */

/* Reopen this thread's handle (and, through the epoch, every other) at most every back-off. */
static void reopen_store(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        int64_t now = vtime_mono_ms();
        if (now < r->next_reopen_ms)
                return;
        r->reopen_backoff_ms = r->reopen_backoff_ms ? r->reopen_backoff_ms * 2 : 1000;
        if (r->reopen_backoff_ms > 60000)
                r->reopen_backoff_ms = 60000;
        r->next_reopen_ms = now + r->reopen_backoff_ms;
        struct errmsg err = { 0 };
        (void)mkdirs_parent(o->cfg->db_path, NULL);     /* store_reopen says what is wrong */
        store_reopen_all();
        int rc = store_reopen(o->store, &err);
        if (rc < 0)
                log_error_errno(rc, "could not reopen the pool store; retrying", LF_STR("detail", err.text),
                                LF_INT("retry_ms", r->reopen_backoff_ms));
        else
                log_info("reopened the pool store", LF_STR("path", o->cfg->db_path));
}

/* A fresh store belongs to this instance and knows the VPC's CIDRs, as at start-up. */
static int stamp_store(struct ipamd_ctx *o) {
        char buf[512];
        int rc = store_meta_set(o->store, "instance_id", o->node->instance_id);
        node_vpc_cidrs_string(o->node, buf, sizeof buf);
        if (rc >= 0)
                rc = store_meta_set(o->store, "vpc_cidrs", buf);
        return rc;
}

/*
 * Still the file at the configured path, and committing? A healthy store is
 * progress; a sick one is reported (not ready), reopened with back-off, and
 * synced again once it commits.
 */
static bool store_healthy(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        char trouble[SERVER_REASON_MAX], now[32];
        int id = store_identity_check(o->store);
        if (id == -ENOENT || id == -ESTALE) {
                snprintf(trouble, sizeof trouble, "the pool store %s was %s while running; rebuilding it from EC2 and the kernel",
                         o->cfg->db_path, id == -ENOENT ? "removed" : "replaced by another file");
                pthread_mutex_lock(&r->lock);
                bool first = !r->hold;
                pthread_mutex_unlock(&r->lock);
                if (first) {            /* once; reopening is then retried with back-off */
                        log_error(trouble, LF_STR("path", o->cfg->db_path));
                        set_store_trouble(r, trouble, true);
                        r->next_reopen_ms = 0;
                }
                reopen_store(r);
                if (store_identity_check(o->store) < 0 || stamp_store(o) < 0)
                        return false;
                r->resync_needed = true;
                return true;
        }
        /* A probe write at most every second while healthy (passes come with every burst
         * of ADDs), at every check while not. */
        int w = 0;
        if (r->resync_needed || vtime_mono_ms() - r->last_probe_ms >= STORE_PROBE_MS) {
                r->last_probe_ms = vtime_mono_ms();
                snprintf(now, sizeof now, "%lld", (long long)o->now_ms());
                w = store_meta_set(o->store, "health_probe", now);
                if (w == -EBUSY || w == -EAGAIN)
                        w = 0;  /* another thread held the write lock: contention, not a sick store */
        }
        int last = 0;
        unsigned long failures = store_write_failures(&last);
        bool failed_meanwhile = failures != r->write_failures_seen;
        r->write_failures_seen = failures;
        if (w < 0 || failed_meanwhile) {
                int e = w < 0 ? w : last;
                snprintf(trouble, sizeof trouble, "the pool store %s cannot commit: %s", o->cfg->db_path,
                         strerror(e < 0 ? -e : EIO));
                bool was_sick = false;
                pthread_mutex_lock(&r->lock);
                was_sick = r->store_trouble[0] != '\0';
                pthread_mutex_unlock(&r->lock);
                if (!was_sick)
                        log_error(trouble, LF_STR("path", o->cfg->db_path));
                set_store_trouble(r, trouble, false);
                r->resync_needed = true;
                if (w < 0)
                        reopen_store(r);
                return false;
        }
        r->reopen_backoff_ms = 0;
        r->next_reopen_ms = 0;
        atomic_store(&r->progress_ms, vtime_mono_ms());
        return true;
}

/* Start-up: EC2's truth into the store, the kernel's witness and open intents resolved, retried until it works. */
static void initial_sync(reconciler *r) {
        struct ipamd_ctx *o = &r->o.ctx;
        for (int attempt = 0; !r->stop; attempt++) {
                struct sync_report rep = { 0 };
                struct errmsg err = { 0 };
                int64_t t0 = vtime_mono_ms();
                if (!store_healthy(r)) {
                        struct timespec ts = { 1, 0 };
                        nanosleep(&ts, NULL);
                        continue;
                }
                ec2_step(r, "the start-up EC2 pass");
                int rc = o->cfg->no_provisioning ? sync_with_imds(o, &rep, &err) : sync_with_ec2(o, &rep, &err);
                ec2_step(r, NULL);
                if (rc >= 0)
                        rc = sync_kernel_witness(o, &rep, &err);
                if (rc >= 0 && !o->cfg->no_provisioning)
                        rc = sync_intents(o, &rep, &err);
                if (rc >= 0) {
                        log_info("reconciled with EC2", LF_INT("ms", vtime_mono_ms() - t0), LF_INT("enis_added", rep.enis_added),
                                 LF_INT("enis_removed", rep.enis_removed), LF_INT("blocks_added", rep.blocks_added),
                                 LF_INT("blocks_removed", rep.blocks_removed), LF_INT("leases_lost", rep.leases_lost),
                                 LF_INT("intents_resolved", rep.intents_resolved),
                                 LF_INT("enis_deleted", rep.enis_deleted), LF_INT("links_set_up", rep.links_set_up),
                                 LF_INT("leases_witnessed", rep.leases_witnessed));
                        r->resync_needed = false;
                        if (o->pool_changed)
                                o->pool_changed(o->userdata);
                        return;
                }
                set_status(r, false, errmsg_text(&err, rc));
                log_error_errno(rc, "start-up EC2 pass failed; retrying", LF_STR("detail", errmsg_text(&err, rc)),
                                LF_INT("attempt", attempt + 1));
                struct timespec ts = { attempt < 5 ? 1 : 5, 0 };
                nanosleep(&ts, NULL);
        }
}

/* Before the first pass: egress, EC2's truth and open intents, and a first leak cleanup. */
static void start_up(reconciler *r) {
        struct errmsg err = { 0 };
        const struct ipamd_ctx *o = &r->o.ctx;
        if (o->cfg->prefix_delegation && !o->node->prefix_supported)
                log_warn("ENABLE_PREFIX_DELEGATION=true, but this instance type is not nitro: prefix delegation is "
                         "off and the pool uses secondary IPs (as aws-node does)",
                         LF_STR("instance_type", o->node->instance_type));
        else if (o->cfg->prefix_delegation)
                log_info("prefix delegation: the pool grows and shrinks in /28 prefixes",
                         LF_INT("warm_prefix_target", o->cfg->pool.warm_prefix_target),
                         LF_INT("max_pods", pd_max_pods(o)));
        if (snat_new(&r->snat, &err) < 0)
                log_error("egress SNAT unavailable", LF_STR("detail", err.text));
        egress_sync(r);                         /* before the EC2 pass: it needs only IMDS's answers */
        initial_sync(r);
        set_store_trouble(r, "", false);        /* a new store held the server until its leases were known */
        if (r->o.ctx.pool_changed)
                r->o.ctx.pool_changed(r->o.ctx.userdata);       /* ADDs that waited on the hold */
        r->last_ec2_sync = r->last_imds = vtime_mono_ms();
        /* A restart is when leaks are likeliest (a crash between create and attach an
         * intent could not cover, an older daemon): look once now, then every interval,
         * the schedule jittered by 0-300 s as aws-node's so nodes do not ask together. */
        const struct ipamd_config *cfg = r->o.ctx.cfg;
        if (!cfg->no_leak_cleanup && !cfg->no_provisioning)
                eniops_leak_cleanup(&r->o.ctx, NULL);
        r->last_leak_cleanup = vtime_mono_ms() + 1000LL * (rand() % 300);
}

/* Under the lock: sleep until woken, stopped, or RECONCILER_TICK_MS has passed. */
static void wait_for_work(reconciler *r) {
        if (r->woken || r->stop)
                return;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += RECONCILER_TICK_MS / 1000;
        until.tv_nsec += (long)(RECONCILER_TICK_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
                until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&r->cond, &r->lock, &until);
}

/* Under the lock: how many ADDs wait, once a burst of wake-ups has gathered. */
static int take_wakeup(reconciler *r) {
        if (r->woken) {
                /* A burst of ADDs wakes us once per ADD: let it gather for a moment so
                 * one pass plans for all of it (a pass can hold the thread for an ENI's
                 * whole attach). */
                pthread_mutex_unlock(&r->lock);
                struct timespec gather = { 0, 20 * 1000000L };
                nanosleep(&gather, NULL);
                pthread_mutex_lock(&r->lock);
        }
        r->woken = false;
        return r->waiting_adds;
}

/* Before each pass: a healthy store, synced again after trouble (then serving resumes). */
static bool check_store(reconciler *r) {
        if (!store_healthy(r))
                return false;
        if (r->resync_needed) {
                log_info("the pool store commits again; running the start-up sync", LF_STR("path", r->o.ctx.cfg->db_path));
                initial_sync(r);
                if (r->stop || r->resync_needed)
                        return false;
        }
        bool was = false;
        pthread_mutex_lock(&r->lock);
        was = r->store_trouble[0] || r->hold;
        pthread_mutex_unlock(&r->lock);
        if (was) {
                set_store_trouble(r, "", false);
                log_info("the pool store is healthy again", LF_STR("path", r->o.ctx.cfg->db_path));
                if (r->o.ctx.pool_changed)
                        r->o.ctx.pool_changed(r->o.ctx.userdata);
        }
        return true;
}

static void *loop(void *arg) {
        reconciler *r = arg;
        start_up(r);
        pthread_mutex_lock(&r->lock);
        while (!r->stop) {
                int waiting = take_wakeup(r);
                pthread_mutex_unlock(&r->lock);
                if (check_store(r)) {
                        plan_pass(r, waiting);
                        housekeeping(r);
                }
                pthread_mutex_lock(&r->lock);
                wait_for_work(r);
        }
        pthread_mutex_unlock(&r->lock);
        r->snat = snat_free(r->snat);           /* the table stays: pods keep their way out across restarts */
        return NULL;
}

int reconciler_start(const struct reconciler_options *opts, reconciler **ret, struct errmsg *err) {
        reconciler *r = calloc(1, sizeof *r);
        if (!r)
                return errmsg_set(err, -ENOMEM, "reconciler: out of memory");
        r->o = *opts;
        r->status.ready = true;
        atomic_store(&r->progress_ms, vtime_mono_ms());
        if (opts->store_new)
                set_store_trouble(r, "the pool store is new: learning from EC2 and the kernel which pod holds which address", true);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&r->lock, NULL);
        int rc = sync_pods_new(&r->pods);
        if (rc == 0)
                rc = -pthread_create(&r->thread, NULL, loop, r);
        if (rc < 0) {
                sync_pods_free(r->pods);
                free(r);
                return errmsg_set(err, rc, "reconciler: cannot start its thread");
        }
        *ret = r;
        return 0;
}

reconciler *reconciler_stop(reconciler *r) {
        if (!r)
                return NULL;
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
        sync_pods_free(r->pods);
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
}

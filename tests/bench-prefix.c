/*
 * bench-prefix: what a pod costs the pool store and the planner at 250 pods,
 * under prefix delegation beside secondary-IP mode, in the same run.
 *
 * Pools with 250 of their addresses held by pods: 17 /28 prefixes on two ENIs
 * (9 + 8, m5.large's slots) and 258 /32 secondaries on six ENIs (43 each),
 * both at their warm target (WARM_PREFIX_TARGET=1, WARM_IP_TARGET=5), so the
 * planner decides the same (nothing to do) in both; and, apart, 16 prefixes
 * (9 + 7): one short of the warm prefix, so that planner plans a grow (the
 * other modes' grow costs the same steps: a sort of the ENIs, an action).
 * For each it times ITER rounds of: an assign + release cycle through the
 * real store (WAL, synchronous=FULL), store_plan_enis (the reconciler's read
 * of the pool) and plan_compute on what that read returned (100 times over,
 * the mean taken: one call is near the clock's resolution), the pools'
 * rounds alternating (so the machine's load weighs on all alike), and prints
 * median and p99 of each and the plan's actions. "Flat" means PD at target
 * costs about what /32s at target cost.
 *
 * usage: bench-prefix DIR [ITER]   (DIR on the disk the daemon would use)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "planner.h"
#include "store.h"

#define PODS 250
#define PLAN_REPS 100     /* a plan takes well under a microsecond: timed 100 at a time */

static double now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int64_t wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void die(const char *what, int r) {
        fprintf(stderr, "bench-prefix: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

static void add_eni(store *s, int dev) {
        struct store_eni eni = { .device_index = dev, .subnet_id = "subnet-1", .subnet_cidr = "10.0.0.0/8",
                                 .route_table = dev ? 2 + dev : 254, .is_primary = dev == 0,
                                 .state = STORE_ENI_ATTACHED, .created_ms = wall_ms() };
        snprintf(eni.id, sizeof eni.id, "eni-%d", dev);
        snprintf(eni.mac, sizeof eni.mac, "02:00:00:00:00:%02x", dev + 1);
        snprintf(eni.primary_ip, sizeof eni.primary_ip, "10.0.0.%d", 5 + dev);
        int r = store_eni_put(s, &eni);
        if (r < 0)
                die("eni", r);
}

/* blocks_per_eni[i] blocks of 2^(32-len) addresses on ENI i, then PODS of the addresses assigned. */
static store *make_pool(const char *path, const int *blocks_per_eni, size_t n_enis, int len) {
        unlink(path);
        store *s = NULL;
        struct errmsg e;
        int r = store_open(path, &s, &e);
        if (r < 0)
                die(e.text, r);
        int step = 1 << (32 - len), k = 0;
        for (size_t i = 0; i < n_enis; i++) {
                add_eni(s, (int)i);
                char id[16];
                snprintf(id, sizeof id, "eni-%zu", i);
                for (int b = 0; b < blocks_per_eni[i]; b++, k++) {
                        char cidr[32];
                        int first = 4096 + k * step;    /* 10.1.16.0 upwards: clear of the primaries */
                        snprintf(cidr, sizeof cidr, "10.1.%d.%d/%d", first / 256, first % 256, len);
                        if ((r = store_block_add(s, id, cidr, wall_ms())) < 0)
                                die("block", r);
                }
        }
        for (int i = 0; i < PODS; i++) {
                char cid[32];
                snprintf(cid, sizeof cid, "held-%d", i);
                struct store_attachment a = { .container_id = cid, .ifname = "eth0" };
                if ((r = store_assign(s, &a, wall_ms(), NULL, NULL)) < 0)
                        die("prefill", r);
        }
        return s;
}

struct pool {
        store *s;
        bool pd;
        struct plan_eni enis[16];
        struct plan_input in;
        double *cycle, *read, *plan;
        const char *name;
        size_t n_actions;             /* the last plan's */
};

static void pool_init(struct pool *p, const char *name, store *s, bool pd, int iter) {
        *p = (struct pool){ .s = s, .pd = pd, .name = name };
        p->in = (struct plan_input){ .limits = { .max_enis = pd ? 3 : 15, .ipv4_per_eni = pd ? 10 : 50 },
                                     .enis = p->enis, .since_grow_ms = INT64_MAX, .prefix_delegation = pd,
                                     .peak_assigned = PODS, .max_pods = pd ? 250 : 0 };
        poolconfig_defaults(&p->in.cfg);
        p->in.cfg.warm_ip_target = pd ? 0 : 5;  /* /32s at WARM_IP_TARGET=5; PD at WARM_PREFIX_TARGET=1 */
        p->in.cfg.warm_prefix_target = pd ? 1 : 0;
        p->cycle = calloc((size_t)iter, sizeof *p->cycle);
        p->read = calloc((size_t)iter, sizeof *p->read);
        p->plan = calloc((size_t)iter, sizeof *p->plan);
}

/* One round: an assign + release cycle, the reconciler's read, the plan; recorded at i >= 0. */
static void round_of(struct pool *p, int i) {
        struct store_attachment at = { .container_id = "bench", .ifname = "eth0" };
        double t0 = now_us();
        int r = store_assign(p->s, &at, wall_ms(), NULL, NULL);
        if (r < 0)
                die("assign", r);
        r = store_release(p->s, "bench", "eth0", wall_ms(), 0, NULL);
        if (r != 1)
                die("release", r < 0 ? r : -EIO);
        double t1 = now_us();
        if ((r = store_plan_enis(p->s, wall_ms(), p->enis, 16, &p->in.n_enis)) < 0)
                die("plan_enis", r);
        double t2 = now_us();
        struct plan pl;
        for (int k = 0; k < PLAN_REPS; k++)
                if ((r = plan_compute(&p->in, &pl)) < 0)
                        die("plan", r);
        double t3 = now_us();
        t3 = t2 + (t3 - t2) / PLAN_REPS;
        p->n_actions = pl.n_actions;
        if (i >= 0)
                p->cycle[i] = t1 - t0, p->read[i] = t2 - t1, p->plan[i] = t3 - t2;
}

static void p50_p99(double *v, int n, double out[2]) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        out[0] = v[n / 2];
        out[1] = v[(int)(n * 0.99)];
}

static void remove_db(const char *path) {
        char f[600];
        unlink(path);
        snprintf(f, sizeof f, "%s-wal", path);
        unlink(f);
        snprintf(f, sizeof f, "%s-shm", path);
        unlink(f);
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s DIR [ITER]\n", argv[0]);
                return 2;
        }
        int iter = argc > 2 ? atoi(argv[2]) : 2000;
        if (iter < 1)
                iter = 1;
        enum { IP, PD, PD_SHORT, N };
        static const char *const files[N] = { "ip", "pd", "pd-short" };
        char paths[N][512];
        for (int k = 0; k < N; k++)
                snprintf(paths[k], sizeof paths[k], "%s/bench-prefix-%s.db", argv[1], files[k]);
        static const int ip_blocks[] = { 43, 43, 43, 43, 43, 43 }, pd_blocks[] = { 9, 8 }, short_blocks[] = { 9, 7 };
        struct pool pools[N];
        pool_init(&pools[IP], "/32: 258 secondaries on 6 ENIs", make_pool(paths[IP], ip_blocks, 6, 32), false, iter);
        pool_init(&pools[PD], "PD: 17 /28 prefixes on 2 ENIs", make_pool(paths[PD], pd_blocks, 2, 28), true, iter);
        pool_init(&pools[PD_SHORT], "PD, one short: 16 prefixes", make_pool(paths[PD_SHORT], short_blocks, 2, 28),
                  true, iter);
        /* Rounds alternate between the pools, so load on the machine weighs on all alike. */
        for (int i = -100; i < iter; i++)       /* 100 warm-up rounds, not recorded */
                for (int k = 0; k < N; k++)
                        round_of(&pools[k], i);
        printf("%d pods held; %d rounds each of assign+release, store_plan_enis, plan_compute, alternating;"
               " WAL + synchronous=FULL\n", PODS, iter);
        printf("%-34s %-19s %-19s %-19s %s\n", "pool", "cycle p50/p99 us", "read p50/p99 us", "plan p50/p99 us",
               "plan's actions");
        double med[N][3];
        for (int k = 0; k < N; k++) {
                double c[2], rd[2], pl[2];
                p50_p99(pools[k].cycle, iter, c);
                p50_p99(pools[k].read, iter, rd);
                p50_p99(pools[k].plan, iter, pl);
                med[k][0] = c[0], med[k][1] = rd[0], med[k][2] = pl[0];
                printf("%-34s %7.0f / %-9.0f %7.0f / %-9.0f %7.2f / %-9.2f %zu\n", pools[k].name, c[0], c[1], rd[0],
                       rd[1], pl[0], pl[1], pools[k].n_actions);
                store_close(pools[k].s);
                remove_db(paths[k]);
                free(pools[k].cycle), free(pools[k].read), free(pools[k].plan);
        }
        printf("PD / /32 medians, both at target: cycle %.2fx, read %.2fx, plan %.2fx\n", med[PD][0] / med[IP][0],
               med[PD][1] / med[IP][1], med[PD][2] / med[IP][2]);
        return 0;
}

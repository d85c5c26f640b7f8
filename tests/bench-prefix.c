/*
 * bench-prefix: what a pod costs the pool store and the planner at 250 pods,
 * under prefix delegation beside secondary-IP mode, in the same run.
 *
 * Two pools with 250 of their addresses held by pods: 16 /28 prefixes on two
 * ENIs (9 + 7, m5.large's slots), and 258 /32 secondaries on six ENIs (43
 * each). For each it times ITER rounds of: an assign + release cycle through
 * the real store (WAL, synchronous=FULL), store_plan_enis (the reconciler's
 * read of the pool) and plan_compute on what that read returned, the two
 * pools' rounds alternating (so the machine's load weighs on both alike), and
 * prints median and p99 of each. "Flat" means PD costs about what /32s cost.
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
};

static void pool_init(struct pool *p, store *s, bool pd, int iter) {
        *p = (struct pool){ .s = s, .pd = pd };
        p->in = (struct plan_input){ .limits = { .max_enis = pd ? 3 : 15, .ipv4_per_eni = pd ? 10 : 50 },
                                     .enis = p->enis, .since_grow_ms = INT64_MAX, .prefix_delegation = pd,
                                     .peak_assigned = PODS, .max_pods = pd ? 250 : 0 };
        poolconfig_defaults(&p->in.cfg);
        p->in.cfg.warm_ip_target = pd ? 0 : 5;  /* /32s at WARM_IP_TARGET=5; PD at WARM_PREFIX_TARGET=1 */
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
        if ((r = plan_compute(&p->in, &pl)) < 0)
                die("plan", r);
        double t3 = now_us();
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
        char paths[2][512];
        snprintf(paths[0], sizeof paths[0], "%s/bench-prefix-ip.db", argv[1]);
        snprintf(paths[1], sizeof paths[1], "%s/bench-prefix-pd.db", argv[1]);
        static const int pd_blocks[] = { 9, 7 }, ip_blocks[] = { 43, 43, 43, 43, 43, 43 };
        struct pool pools[2];
        pool_init(&pools[0], make_pool(paths[0], ip_blocks, 6, 32), false, iter);
        pool_init(&pools[1], make_pool(paths[1], pd_blocks, 2, 28), true, iter);
        /* Rounds alternate between the pools, so load on the machine weighs on both alike. */
        for (int i = -100; i < iter; i++)       /* 100 warm-up rounds, not recorded */
                for (int k = 0; k < 2; k++)
                        round_of(&pools[k], i);
        printf("%d pods held; %d rounds each of assign+release, store_plan_enis, plan_compute, alternating;"
               " WAL + synchronous=FULL\n", PODS, iter);
        printf("%-34s %-19s %-19s %-19s\n", "pool", "cycle p50/p99 us", "read p50/p99 us", "plan p50/p99 us");
        double med[2][3];
        for (int k = 1; k >= 0; k--) {
                double c[2], rd[2], pl[2];
                p50_p99(pools[k].cycle, iter, c);
                p50_p99(pools[k].read, iter, rd);
                p50_p99(pools[k].plan, iter, pl);
                med[k][0] = c[0], med[k][1] = rd[0], med[k][2] = pl[0];
                printf("%-34s %7.0f / %-9.0f %7.0f / %-9.0f %7.1f / %-9.1f\n",
                       k ? "PD: 16 /28 prefixes on 2 ENIs" : "/32: 258 secondaries on 6 ENIs", c[0], c[1], rd[0],
                       rd[1], pl[0], pl[1]);
                store_close(pools[k].s);
                remove_db(paths[k]);
                free(pools[k].cycle), free(pools[k].read), free(pools[k].plan);
        }
        printf("PD / /32 medians: cycle %.2fx, read %.2fx, plan %.2fx\n", med[1][0] / med[0][0],
               med[1][1] / med[0][1], med[1][2] / med[0][2]);
        return 0;
}

/*
 * bench-store: how the pool store's assign and release cost grows with the
 * pool, beside a baseline in the same run.
 *
 * For pools of 1, 1,000 and 10,000 addresses (half of them held by pods, so
 * the indexes look like a busy node), it times ITER assign+release cycles
 * through the real store (WAL, synchronous=FULL: every operation is durable)
 * and prints median and p99 of each. The baseline is aws-node's way of making
 * an assignment durable: rewrite the whole checkpoint (one JSON line per
 * allocation) to a temporary file, fsync it, rename it over the old one.
 *
 * usage: bench-store DIR [ITER]   (DIR on the disk the daemon would use)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

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

struct dist {
        double p50, p99;
};

static struct dist dist_of(double *v, int n) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        return (struct dist){ v[n / 2], v[(int)(n * 0.99)] };
}

static void die(const char *what, int r) {
        fprintf(stderr, "bench-store: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(1);
}

/* A store with `size` addresses on one attached ENI, half of them assigned. */
static store *make_pool(const char *path, int size) {
        unlink(path);
        char wal[600];
        snprintf(wal, sizeof wal, "%s-wal", path);
        unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", path);
        unlink(wal);
        store *s = NULL;
        struct errmsg e;
        int r = store_open(path, &s, &e);
        if (r < 0)
                die(e.text, r);
        struct store_eni eni = { .id = "eni-bench", .mac = "02:00:00:00:00:01", .subnet_id = "subnet-1",
                                 .subnet_cidr = "10.0.0.0/8", .primary_ip = "10.0.0.5", .route_table = 254,
                                 .is_primary = true, .state = STORE_ENI_ATTACHED, .created_ms = wall_ms() };
        if ((r = store_eni_put(s, &eni)) < 0)
                die("eni", r);
        for (int i = 0; i < size; i++) {
                char cidr[32], id[32];
                snprintf(cidr, sizeof cidr, "10.%d.%d.%d/32", 1 + i / 65536, (i / 256) % 256, i % 256);
                if ((r = store_block_add(s, "eni-bench", cidr, wall_ms())) < 0)
                        die("block", r);
                if (i % 2 == 1) {
                        snprintf(id, sizeof id, "held-%d", i);
                        struct store_attachment a = { .container_id = id, .ifname = "eth0" };
                        if ((r = store_assign(s, &a, wall_ms(), NULL, NULL)) < 0)
                                die("prefill", r);
                }
        }
        return s;
}

/* aws-node's checkpoint: the whole allocation list rewritten, fsync'd and renamed. */
static void checkpoint(const char *dir, int allocations) {
        char tmp[600], final[600];
        snprintf(tmp, sizeof tmp, "%s/ipam.json.tmp", dir);
        snprintf(final, sizeof final, "%s/ipam.json", dir);
        FILE *f = fopen(tmp, "w");
        if (!f)
                die("checkpoint", errno);
        fputs("{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[", f);
        for (int i = 0; i < allocations; i++)
                fprintf(f, "%s{\"networkName\":\"aws-cni\",\"containerID\":\"%064d\",\"ifName\":\"eth0\","
                           "\"ipv4\":\"10.%d.%d.%d\",\"allocationTimestamp\":1700000000000000000,"
                           "\"metadata\":{\"k8sPodNamespace\":\"default\",\"k8sPodName\":\"pod-%d\"}}",
                        i ? "," : "", i, 1 + i / 65536, (i / 256) % 256, i % 256, i);
        fputs("]}", f);
        fflush(f);
        if (fsync(fileno(f)) < 0)
                die("fsync", errno);
        fclose(f);
        if (rename(tmp, final) < 0)
                die("rename", errno);
}

int main(int argc, char **argv) {
        if (argc < 2) {
                fprintf(stderr, "usage: %s DIR [ITER]\n", argv[0]);
                return 2;
        }
        const char *dir = argv[1];
        int iter = argc > 2 ? atoi(argv[2]) : 2000;
        static const int sizes[] = { 1, 1000, 10000 };
        double *a = calloc((size_t)iter, sizeof *a), *r = calloc((size_t)iter, sizeof *r),
               *ar = calloc((size_t)iter, sizeof *ar), *b = calloc((size_t)iter, sizeof *b);
        struct dist first = { 0 };
        char path[512];
        snprintf(path, sizeof path, "%s/bench-pool.db", dir);

        printf("store: %d assign+release cycles per pool size, WAL + synchronous=FULL, dir %s\n", iter, dir);
        printf("%-10s %-21s %-21s %-21s %-21s\n", "pool", "assign p50/p99 us", "release p50/p99 us",
               "cycle p50/p99 us", "baseline p50/p99 us");
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                store *s = make_pool(path, sizes[k]);
                for (int i = -100; i < iter; i++) { /* 100 warm-up cycles, not recorded */
                        struct store_attachment at = { .container_id = "bench", .ifname = "eth0" };
                        double t0 = now_us();
                        int rc = store_assign(s, &at, wall_ms(), NULL, NULL);
                        double t1 = now_us();
                        if (rc < 0)
                                die("assign", rc);
                        rc = store_release(s, "bench", "eth0", wall_ms(), 0, NULL);
                        double t2 = now_us();
                        if (rc != 1)
                                die("release", rc < 0 ? rc : -EIO);
                        if (i >= 0) {
                                a[i] = t1 - t0;
                                r[i] = t2 - t1;
                                ar[i] = t2 - t0;
                        }
                }
                int held = sizes[k] / 2 + 1;
                for (int i = 0; i < iter; i++) {
                        double t0 = now_us();
                        checkpoint(dir, held);
                        b[i] = now_us() - t0;
                }
                struct dist da = dist_of(a, iter), dr = dist_of(r, iter), dc = dist_of(ar, iter),
                            db = dist_of(b, iter);
                if (k == 0)
                        first = dc;
                printf("%-10d %8.0f / %-10.0f %8.0f / %-10.0f %8.0f / %-10.0f %8.0f / %-10.0f\n", sizes[k],
                       da.p50, da.p99, dr.p50, dr.p99, dc.p50, dc.p99, db.p50, db.p99);
                if (k == sizeof sizes / sizeof sizes[0] - 1)
                        printf("cycle median at 10,000 vs 1: %.2fx (target <= 1.2x); median cycle %.3f ms "
                               "(target < 1 ms); baseline/store at 10,000: %.1fx\n",
                               dc.p50 / first.p50, dc.p50 / 1000.0, db.p50 / dc.p50);
                store_close(s);
        }
        char f[600];
        snprintf(f, sizeof f, "%s/ipam.json", dir);
        unlink(f);
        unlink(path);
        free(a), free(r), free(ar), free(b);
        return 0;
}

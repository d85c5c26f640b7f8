/*
 * bench-snat: what one replacement of the `ip vpc-ipam` nft table costs.
 *
 * In a private network namespace (unshare(CLONE_NEWNET), so nothing reaches
 * the machine's and nothing outlives the process) it applies the table once,
 * then ITER times with an input that alternates between two VPC CIDR sets,
 * so every snat_apply sends a replacement transaction; it prints the first
 * apply and the median, p99 and mean of the replacements. It fails only when
 * an apply fails or sends nothing; a figure, not a bound: no time is asserted.
 *
 * usage: bench-snat [ITER]   (root; scripts/bench-snat)
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snat.h"

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static struct snat_input base_input(void) {
        struct snat_input in = { .primary_ip = "10.0.0.4", .primary_if = "eth0",
                                 .vpc_cidrs = { "10.0.0.0/16" }, .n_vpc_cidrs = 1 };
        snat_config_defaults(&in.cfg);
        return in;
}

/* Time one apply of in; negative when it failed (the message is printed). */
static double timed_apply(snat *s, const struct snat_input *in) {
        struct errmsg e;
        errmsg_clear(&e);
        bool changed = false;
        double t0 = now_ms();
        if (snat_apply(s, in, &changed, &e) < 0) {
                fprintf(stderr, "bench-snat: snat_apply: %s\n", e.text);
                return -1;
        }
        double ms = now_ms() - t0;
        if (!changed) {
                fprintf(stderr, "bench-snat: an input that changed sent nothing\n");
                return -1;
        }
        return ms;
}

int main(int argc, char **argv) {
        int iter = argc > 1 ? atoi(argv[1]) : 200;
        if (iter < 2) {
                fprintf(stderr, "usage: bench-snat [ITER >= 2]\n");
                return 2;
        }
        if (unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "bench-snat: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(errno));
                return 1;
        }
        snat *s = NULL;
        struct errmsg e;
        errmsg_clear(&e);
        if (snat_new(&s, &e) < 0) {
                fprintf(stderr, "bench-snat: snat_new: %s\n", e.text);
                return 1;
        }
        struct snat_input a = base_input(), b = base_input();
        snat_parse_cidrs("V", "192.168.0.0/16,172.16.0.0/12", &b.cfg, NULL);
        double *ms = calloc((size_t)iter, sizeof *ms);
        double first = ms ? timed_apply(s, &a) : -1;
        int rc = first < 0;
        double sum = 0;
        for (int i = 0; i < iter && !rc; i++) {
                ms[i] = timed_apply(s, i % 2 ? &a : &b);
                rc = ms[i] < 0;
                sum += ms[i];
        }
        if (!rc) {
                qsort(ms, (size_t)iter, sizeof *ms, cmp_double);
                printf("snat_apply, first table: %.2f ms\n", first);
                printf("snat_apply, table replaced (%d runs): median %.2f ms, p99 %.2f ms, mean %.2f ms\n", iter,
                       ms[iter / 2], ms[(iter * 99) / 100], sum / iter);
        }
        free(ms);
        snat_free(s);
        return rc;
}

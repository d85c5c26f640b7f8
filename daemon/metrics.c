/*
 * metrics: relaxed atomic counters and a fixed-bucket histogram.
 * A NULL metrics is accepted everywhere, so tests and tools can pass none.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "metrics.h"

static const uint64_t wait_bounds[METRICS_N_WAIT_BUCKETS] = METRICS_WAIT_BUCKETS;

struct metrics {
        _Atomic uint64_t counters[_METRICS_COUNTER_MAX];
        _Atomic uint64_t wait_buckets[METRICS_N_WAIT_BUCKETS + 1];   /* not cumulative here */
        _Atomic uint64_t wait_count;
        _Atomic uint64_t wait_sum_ms;
};

int metrics_new(metrics **ret) {
        metrics *m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        *ret = m;
        return 0;
}

metrics *metrics_free(metrics *m) {
        free(m);
        return NULL;
}

void metrics_add(metrics *m, enum metrics_counter c, uint64_t n) {
        if (m && (unsigned)c < _METRICS_COUNTER_MAX)
                atomic_fetch_add_explicit(&m->counters[c], n, memory_order_relaxed);
}

void metrics_observe_add_wait(metrics *m, uint64_t ms) {
        if (!m)
                return;
        size_t b = 0;
        while (b < METRICS_N_WAIT_BUCKETS && ms > wait_bounds[b])
                b++;
        atomic_fetch_add_explicit(&m->wait_buckets[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->wait_count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m->wait_sum_ms, ms, memory_order_relaxed);
}

void metrics_snapshot(metrics *m, struct metrics_snapshot *ret) {
        *ret = (struct metrics_snapshot){ 0 };
        if (!m)
                return;
        for (size_t i = 0; i < _METRICS_COUNTER_MAX; i++)
                ret->counters[i] = atomic_load_explicit(&m->counters[i], memory_order_relaxed);
        uint64_t cum = 0;
        for (size_t b = 0; b <= METRICS_N_WAIT_BUCKETS; b++) {
                cum += atomic_load_explicit(&m->wait_buckets[b], memory_order_relaxed);
                ret->wait_buckets[b] = cum;
        }
        ret->wait_count = atomic_load_explicit(&m->wait_count, memory_order_relaxed);
        ret->wait_sum_ms = atomic_load_explicit(&m->wait_sum_ms, memory_order_relaxed);
}

const uint64_t *metrics_wait_bounds(void) {
        return wait_bounds;
}

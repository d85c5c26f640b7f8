/*
 * fakeclock: a struct cloud_clock whose sleeps only advance its own time, so
 * backoff and rate-limit tests run instantly and can assert on the delays.
 */
#pragma once

#include <stdint.h>
#include <time.h>

#include "cloudclock.h"

struct fakeclock {
        struct cloud_clock clock;
        uint64_t now_ns;
        time_t wall;
        uint64_t slept_ns;
        unsigned sleeps;
        uint64_t sleep_log[64];
};

static inline uint64_t fakeclock_mono_(void *ud) { return ((struct fakeclock *)ud)->now_ns; }
static inline time_t fakeclock_wall_(void *ud) {
        struct fakeclock *f = ud;
        return f->wall + (time_t)(f->now_ns / 1000000000ull);
}
static inline void fakeclock_sleep_(void *ud, uint64_t ns) {
        struct fakeclock *f = ud;
        if (f->sleeps < 64)
                f->sleep_log[f->sleeps] = ns;
        f->sleeps++;
        f->slept_ns += ns;
        f->now_ns += ns;
}

static inline void fakeclock_init(struct fakeclock *f, time_t wall) {
        *f = (struct fakeclock){ .wall = wall, .now_ns = 1000000000ull };
        f->clock = (struct cloud_clock){ fakeclock_mono_, fakeclock_wall_, fakeclock_sleep_, f };
}

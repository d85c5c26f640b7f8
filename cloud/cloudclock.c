/*
 * cloudclock: the system implementation of struct cloud_clock. It is a
 * constant table of function pointers (no mutable state), so sharing it
 * between threads is safe.
 */
#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "cloudclock.h"

static uint64_t sys_mono_ns(void *ud) {
        (void)ud;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static time_t sys_wall(void *ud) {
        (void)ud;
        return time(NULL);
}

static void sys_sleep_ns(void *ud, uint64_t ns) {
        (void)ud;
        struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static const struct cloud_clock system_clock = {
        .mono_ns = sys_mono_ns,
        .wall = sys_wall,
        .sleep_ns = sys_sleep_ns,
};

const struct cloud_clock *cloud_clock_system(void) {
        return &system_clock;
}

uint64_t cloud_random64(void) {
        uint64_t v = 0;
        /* getrandom of 8 bytes from the urandom pool does not block after boot
         * and is not interrupted for requests this small. */
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
                v = sys_mono_ns(NULL) * 0x9E3779B97F4A7C15ull;
        return v;
}

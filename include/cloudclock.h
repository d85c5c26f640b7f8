/*
 * cloudclock: the time source, sleeper and random source of cloud/.
 *
 * Retries, rate limits, token expiry and signing all ask this struct instead of
 * the system, so tests can run hours of backoff in microseconds and sign with a
 * fixed date. cloud_clock_system() returns the real one.
 */
#pragma once

#include <stdint.h>
#include <time.h>

struct cloud_clock {
        uint64_t (*mono_ns)(void *ud);          /* monotonic nanoseconds */
        time_t (*wall)(void *ud);               /* seconds since the epoch (UTC) */
        void (*sleep_ns)(void *ud, uint64_t ns);
        void *ud;
};

/* The process's real clock (CLOCK_MONOTONIC, time(), nanosleep). */
const struct cloud_clock *cloud_clock_system(void);

static inline uint64_t cloud_clock_mono(const struct cloud_clock *c) { return c->mono_ns(c->ud); }
static inline time_t cloud_clock_wall(const struct cloud_clock *c) { return c->wall(c->ud); }
static inline void cloud_clock_sleep(const struct cloud_clock *c, uint64_t ns) { c->sleep_ns(c->ud, ns); }

/* A 64-bit random value from getrandom(2), for seeds, jitter and ClientTokens. */
uint64_t cloud_random64(void);

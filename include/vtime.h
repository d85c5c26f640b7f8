/*
 * vtime: the two clocks vpc-ipam reads, in milliseconds.
 *
 * Wall time is what the store records (cooldown ends, assignment times) and
 * must survive a restart; monotonic time measures waits and deadlines inside
 * one process and never jumps.
 */
#pragma once

#include <stdint.h>

/* CLOCK_REALTIME in ms since the epoch. */
int64_t vtime_wall_ms(void);

/* CLOCK_MONOTONIC in ms. */
int64_t vtime_mono_ms(void);

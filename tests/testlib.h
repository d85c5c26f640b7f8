/*
 * testlib: what every Check-based suite under tests/ shares.
 *
 * Suites report in TAP on stdout (scripts/test counts the cases across all
 * suites) and run each case in a forked child, so a crash fails one case and
 * not the run. testlib_tmpdir() gives each case a private directory, inside
 * one of the run's that is removed when the suite ends, even after failures.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#include <check.h>
#include <cjson/cJSON.h>

/* Run the suite with TAP output on stdout; returns the process exit status. */
int testlib_run(Suite *s);

/* A fresh directory under $TMPDIR (or /tmp), created 0700, for this process. */
const char *testlib_tmpdir(void);

/* Join testlib_tmpdir() and name into a static buffer (valid until next call). */
const char *testlib_path(const char *name);

/* Run a shell command built from fmt (for `ip` state checks); its exit status, or -1. */
int testlib_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Sort ascending (timings, for their median and maximum). */
void testlib_sort_longs(long *v, size_t n);

/* Raise or drop CAP_NET_ADMIN from the calling thread's effective set (it
 * stays permitted, so it can come back): how a case sees the kernel refuse. */
void testlib_net_admin(bool on);

/*
 * Whether the fields of e equal the npairs key/value string pairs in ap
 * (numbers compared as decimal text; a missing field equals "").
 */
bool testlib_json_matches(const cJSON *e, int npairs, va_list ap);

/* Entries of a JSON array matching the key/value pairs in ap. */
int testlib_json_vcount(const cJSON *list, int npairs, va_list ap);

/* The same with the pairs as arguments: testlib_json_count(list, 2, "dst", "default", "table", "2"). */
int testlib_json_count(const cJSON *list, int npairs, ...);

/*
 * The JSON output of `ip -j <args>`, run inside the network namespace at
 * netns_path (nsenter), or where the test stands when it is NULL. Delete it.
 */
cJSON *testlib_ipj(const char *netns_path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* How many objects `ip -j <args>` lists (links, rules, routes, ...). */
int testlib_ipj_size(const char *netns_path, const char *args);

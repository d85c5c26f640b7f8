/*
 * testlib: what every Check-based suite under tests/ shares.
 *
 * Suites report in TAP on stdout (scripts/test counts the cases across all
 * suites) and run each case in a forked child, so a crash fails one case and
 * not the run. testlib_tmpdir() gives each case a private directory that is
 * removed when the suite ends.
 */
#pragma once

#include <check.h>

/* Run the suite with TAP output on stdout; returns the process exit status. */
int testlib_run(Suite *s);

/* A fresh directory under $TMPDIR (or /tmp), created 0700, for this process. */
const char *testlib_tmpdir(void);

/* Join testlib_tmpdir() and name into a static buffer (valid until next call). */
const char *testlib_path(const char *name);

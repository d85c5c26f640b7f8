/*
 * testlib: TAP runner and per-process scratch directories for the suites.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static char tmp_dir[256];
static pid_t tmp_owner;

static void remove_tmpdir(void) {
        if (tmp_dir[0] && tmp_owner == getpid()) {
                char cmd[300];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "testlib: could not remove %s\n", tmp_dir);
        }
}

const char *testlib_tmpdir(void) {
        if (tmp_dir[0] && tmp_owner == getpid())
                return tmp_dir;
        const char *base = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/vpc-ipam-test.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp_dir)) {
                perror("mkdtemp");
                abort();
        }
        tmp_owner = getpid();
        atexit(remove_tmpdir);
        return tmp_dir;
}

const char *testlib_path(const char *name) {
        static char path[512];
        snprintf(path, sizeof path, "%s/%s", testlib_tmpdir(), name);
        return path;
}

int testlib_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

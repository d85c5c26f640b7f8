/*
 * testlib: TAP runner and per-process scratch directories for the suites.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

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

/*
 * The cases' directories are made inside one directory of the run's (through
 * TMPDIR), which the runner removes at the end: a case that fails ends its
 * child without the atexit() that removes its own directory.
 */
int testlib_run(Suite *s) {
        const char *base = getenv("TMPDIR");
        char run_dir[256];
        snprintf(run_dir, sizeof run_dir, "%s/vpc-ipam-test.XXXXXX", base && *base ? base : "/tmp");
        /* 0755: a case may let an unprivileged process reach into its own (0700) directory */
        bool own_dir = mkdtemp(run_dir) && chmod(run_dir, 0755) == 0 && setenv("TMPDIR", run_dir, 1) == 0;
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        if (own_dir) {
                char cmd[300];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", run_dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "testlib: could not remove %s\n", run_dir);
        }
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int cmp_long(const void *a, const void *b) {
        long x = *(const long *)a, y = *(const long *)b;
        return (x > y) - (x < y);
}

void testlib_sort_longs(long *v, size_t n) {
        qsort(v, n, sizeof *v, cmp_long);
}

void testlib_net_admin(bool on) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2];
        ck_assert_int_eq(syscall(SYS_capget, &hdr, data), 0);
        uint32_t bit = 1u << (CAP_NET_ADMIN % 32);
        data[CAP_NET_ADMIN / 32].effective = on ? data[CAP_NET_ADMIN / 32].effective | bit
                                                : data[CAP_NET_ADMIN / 32].effective & ~bit;
        ck_assert_int_eq(syscall(SYS_capset, &hdr, data), 0);
}

int testlib_sh(const char *fmt, ...) {
        char cmd[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        int r = system(cmd);
        return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

bool testlib_json_matches(const cJSON *e, int npairs, va_list ap) {
        bool all = true;
        for (int i = 0; i < npairs; i++) {
                const char *k = va_arg(ap, const char *), *v = va_arg(ap, const char *);
                const cJSON *x = cJSON_GetObjectItem(e, k);
                char num[32];
                const char *have = cJSON_IsString(x) ? x->valuestring : "";
                if (cJSON_IsNumber(x)) {
                        snprintf(num, sizeof num, "%d", x->valueint);
                        have = num;
                }
                all = all && strcmp(have, v) == 0;
        }
        return all;
}

int testlib_json_vcount(const cJSON *list, int npairs, va_list ap) {
        int n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
                va_list each;
                va_copy(each, ap);
                n += testlib_json_matches(e, npairs, each);
                va_end(each);
        }
        return n;
}

int testlib_json_count(const cJSON *list, int npairs, ...) {
        va_list ap;
        va_start(ap, npairs);
        int n = testlib_json_vcount(list, npairs, ap);
        va_end(ap);
        return n;
}

cJSON *testlib_ipj(const char *netns_path, const char *fmt, ...) {
        char args[512], cmd[700];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(args, sizeof args, fmt, ap);
        va_end(ap);
        snprintf(cmd, sizeof cmd, "%s%s ip -j %s", netns_path ? "nsenter --net=" : "", netns_path ? netns_path : "",
                 args);
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        static char buf[1 << 17];
        size_t n = fread(buf, 1, sizeof buf - 1, p);
        buf[n] = '\0';
        pclose(p);
        cJSON *o = cJSON_Parse(n ? buf : "[]");
        ck_assert_msg(o != NULL, "%s: not JSON: %.200s", cmd, buf);
        return o;
}

int testlib_ipj_size(const char *netns_path, const char *args) {
        cJSON *o = testlib_ipj(netns_path, "%s", args);
        int n = cJSON_GetArraySize(o);
        cJSON_Delete(o);
        return n;
}

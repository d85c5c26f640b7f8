/*
 * test-log: lines are whole, valid JSON (or logfmt), filtered by level, and
 * never carry a secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "testlib.h"

/* Capture what the logger writes through a pipe. */
static int cap_fds[2];

static void capture(enum log_level level, enum log_format format) {
        ck_assert_int_eq(pipe(cap_fds), 0);
        struct log_options o = { .level = level, .format = format, .fd = cap_fds[1] };
        ck_assert_int_eq(log_setup(&o), 0);
}

static char *captured(void) {
        static char buf[16384];
        close(cap_fds[1]);
        ssize_t n = read(cap_fds[0], buf, sizeof buf - 1);
        close(cap_fds[0]);
        buf[n > 0 ? n : 0] = '\0';
        log_shutdown();
        return buf;
}

START_TEST(test_json_line_has_fields) {
        capture(LOG_DEBUG, LOG_FORMAT_JSON);
        log_info("assigned address", LF_STR("ip", "10.0.0.7"), LF_INT("device", 2), LF_BOOL("warm", true));
        char *out = captured();
        ck_assert_ptr_nonnull(strchr(out, '\n'));
        ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1); /* exactly one line */
        cJSON *j = cJSON_Parse(out);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(cJSON_GetObjectItem(j, "level")->valuestring, "info");
        ck_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "assigned address");
        ck_assert_str_eq(cJSON_GetObjectItem(j, "ip")->valuestring, "10.0.0.7");
        ck_assert_int_eq(cJSON_GetObjectItem(j, "device")->valueint, 2);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "warm")));
        ck_assert_ptr_nonnull(cJSON_GetObjectItem(j, "time"));
        cJSON_Delete(j);
}
END_TEST

START_TEST(test_level_filter) {
        capture(LOG_WARN, LOG_FORMAT_JSON);
        log_info("hidden");
        log_debug("hidden too");
        log_warn("shown");
        char *out = captured();
        ck_assert_ptr_null(strstr(out, "hidden"));
        ck_assert_ptr_nonnull(strstr(out, "shown"));
}
END_TEST

START_TEST(test_errno_field_and_escaping) {
        capture(LOG_DEBUG, LOG_FORMAT_JSON);
        log_error_errno(-ENOENT, "could not open", LF_STR("path", "/a \"b\"\n\\c"));
        char *out = captured();
        cJSON *j = cJSON_Parse(out);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/a \"b\"\n\\c");
        ck_assert_str_eq(cJSON_GetObjectItem(j, "error")->valuestring, strerror(ENOENT));
        cJSON_Delete(j);
}
END_TEST

START_TEST(test_secrets_are_redacted) {
        capture(LOG_DEBUG, LOG_FORMAT_TEXT);
        log_info("credentials refreshed", LF_STR("aws_secret_access_key", "wJalrXUtnFEMI"),
                 LF_STR("session_token", "FQoGZXIvYXdzE"), LF_STR("Authorization", "AWS4-HMAC"),
                 LF_STR("source", "env"));
        char *out = captured();
        ck_assert_ptr_null(strstr(out, "wJalr"));
        ck_assert_ptr_null(strstr(out, "FQoG"));
        ck_assert_ptr_null(strstr(out, "AWS4"));
        ck_assert_ptr_nonnull(strstr(out, "source=env"));
        ck_assert_ptr_nonnull(strstr(out, "[redacted]"));
}
END_TEST

START_TEST(test_text_format_quotes_when_needed) {
        capture(LOG_DEBUG, LOG_FORMAT_TEXT);
        log_warn("pool low", LF_STR("reason", "subnet exhausted"), LF_STR("eni", "eni-1"));
        char *out = captured();
        ck_assert_ptr_nonnull(strstr(out, "level=warn"));
        ck_assert_ptr_nonnull(strstr(out, "msg=\"pool low\""));
        ck_assert_ptr_nonnull(strstr(out, "reason=\"subnet exhausted\""));
        ck_assert_ptr_nonnull(strstr(out, "eni=eni-1"));
}
END_TEST

START_TEST(test_overlong_line_stays_valid_json) {
        static char big[10000];
        memset(big, 'a', sizeof big - 1);
        capture(LOG_DEBUG, LOG_FORMAT_JSON);
        log_info("big", LF_STR("first", "kept"), LF_STR("blob", big));
        char *out = captured();
        cJSON *j = cJSON_Parse(out);
        ck_assert_ptr_nonnull(j);
        ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "truncated")));
        ck_assert_str_eq(cJSON_GetObjectItem(j, "first")->valuestring, "kept");
        ck_assert_ptr_null(cJSON_GetObjectItem(j, "blob"));
        cJSON_Delete(j);
}
END_TEST

START_TEST(test_level_parse) {
        enum log_level l;
        ck_assert_int_eq(log_level_parse("DEBUG", &l), 0);
        ck_assert_int_eq(l, LOG_DEBUG);
        ck_assert_int_eq(log_level_parse("Warning", &l), 0);
        ck_assert_int_eq(l, LOG_WARN);
        ck_assert_int_eq(log_level_parse("loud", &l), -EINVAL);
        ck_assert_int_eq(log_level_parse(NULL, &l), -EINVAL);
}
END_TEST

START_TEST(test_log_file_destination) {
        const char *path = testlib_path("x.log");
        ck_assert_int_eq(pipe(cap_fds), 0);
        struct log_options o = { .level = LOG_INFO, .format = LOG_FORMAT_JSON, .fd = cap_fds[1], .file = path };
        ck_assert_int_eq(log_setup(&o), 0);
        log_info("to both");
        captured();
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        char line[512];
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        fclose(f);
        ck_assert_ptr_nonnull(strstr(line, "to both"));
        struct log_options bad = { .file = "/nonexistent-dir/x.log" };
        ck_assert_int_eq(log_setup(&bad), -ENOENT);
}
END_TEST

/* --- AWS_VPC_K8S_CNI_LOG_FILE rotation ------------------------------------------------ */

static long file_size(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The n of the "n" field of every line of path, in order; returns how many. */
static int line_numbers(const char *path, int *ret, int max) {
        FILE *f = fopen(path, "r");
        if (!f)
                return -1;
        char line[8192];
        int n = 0;
        while (n < max && fgets(line, sizeof line, f)) {
                cJSON *j = cJSON_Parse(line);
                ck_assert_msg(j != NULL, "%s: not a whole JSON line: %s", path, line);
                ret[n++] = cJSON_GetObjectItem(j, "n")->valueint;
                cJSON_Delete(j);
        }
        fclose(f);
        return n;
}

/* Size-based, as aws-node's lumberjack: whole lines, newest in the file, the oldest backups dropped. */
START_TEST(test_log_file_rotates_by_size) {
        char path[512], b1[520], b2[520], b3[520];
        snprintf(path, sizeof path, "%s", testlib_path("ipamd.log"));
        snprintf(b1, sizeof b1, "%s.1", path);
        snprintf(b2, sizeof b2, "%s.2", path);
        snprintf(b3, sizeof b3, "%s.3", path);
        int null = open("/dev/null", O_WRONLY);
        struct log_options o = { .level = LOG_INFO, .format = LOG_FORMAT_JSON, .fd = null, .file = path,
                                 .file_max_bytes = 1000, .file_backups = 2 };
        ck_assert_int_eq(log_setup(&o), 0);
        for (int i = 0; i < 60; i++)
                log_info("a line of about a hundred bytes", LF_INT("n", i), LF_STR("pad", "xxxxxxxxxxxxxxxx"));
        log_shutdown();
        close(null);
        ck_assert(file_size(path) > 0 && file_size(path) <= 1000);
        ck_assert(file_size(b1) > 900 && file_size(b1) <= 1000);
        ck_assert(file_size(b2) > 900 && file_size(b2) <= 1000);
        ck_assert_int_eq(file_size(b3), -1);                     /* two backups kept, no more */
        int a[64], b[64], c[64];
        int na = line_numbers(b2, a, 64), nb = line_numbers(b1, b, 64), nc = line_numbers(path, c, 64);
        ck_assert(na > 0 && nb > 0 && nc > 0);
        /* consecutive across the files, oldest backup first, ending with the last line */
        ck_assert_int_eq(b[0], a[na - 1] + 1);
        ck_assert_int_eq(c[0], b[nb - 1] + 1);
        ck_assert_int_eq(c[nc - 1], 59);
}
END_TEST

/* A restart appends to what is there and counts it; no backups kept: the file starts afresh. */
START_TEST(test_log_file_rotation_counts_existing) {
        char path[512], b1[520];
        snprintf(path, sizeof path, "%s", testlib_path("ipamd.log"));
        snprintf(b1, sizeof b1, "%s.1", path);
        FILE *f = fopen(path, "w");
        for (int i = 0; i < 9; i++)
                fprintf(f, "%0100d\n", i);                       /* 909 bytes from an earlier run */
        fclose(f);
        int null = open("/dev/null", O_WRONLY);
        struct log_options o = { .level = LOG_INFO, .format = LOG_FORMAT_JSON, .fd = null, .file = path,
                                 .file_max_bytes = 1000, .file_backups = 0 };
        ck_assert_int_eq(log_setup(&o), 0);
        log_info("a line of about a hundred bytes", LF_INT("n", 0), LF_STR("pad", "xxxxxxxxxxxxxxxx"));
        log_shutdown();
        close(null);
        int n[4];
        ck_assert_int_eq(line_numbers(path, n, 4), 1);           /* only the new line */
        ck_assert_int_eq(file_size(b1), -1);
}
END_TEST

int main(void) {
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_json_line_has_fields);
        tcase_add_test(tc, test_level_filter);
        tcase_add_test(tc, test_errno_field_and_escaping);
        tcase_add_test(tc, test_secrets_are_redacted);
        tcase_add_test(tc, test_text_format_quotes_when_needed);
        tcase_add_test(tc, test_overlong_line_stays_valid_json);
        tcase_add_test(tc, test_level_parse);
        tcase_add_test(tc, test_log_file_destination);
        tcase_add_test(tc, test_log_file_rotates_by_size);
        tcase_add_test(tc, test_log_file_rotation_counts_existing);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

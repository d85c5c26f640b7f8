/*
 * test-errmsg: the error-detail helpers return the code and keep the sentence.
 */
#include <errno.h>
#include <string.h>

#include "errmsg.h"
#include "testlib.h"

START_TEST(test_set_returns_code_and_text) {
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_int_eq(errmsg_set(&e, -EINVAL, "MAX_ENI=%s: not an integer", "abc"), -EINVAL);
        ck_assert_int_eq(e.code, -EINVAL);
        ck_assert_str_eq(errmsg_text(&e, -EINVAL), "MAX_ENI=abc: not an integer");
}
END_TEST

START_TEST(test_null_is_allowed) {
        ck_assert_int_eq(errmsg_set(NULL, -ENOENT, "x"), -ENOENT);
        ck_assert_str_eq(errmsg_text(NULL, -ENOENT), strerror(ENOENT));
}
END_TEST

START_TEST(test_prefix) {
        struct errmsg e;
        errmsg_clear(&e);
        errmsg_set(&e, -EIO, "disk I/O error");
        ck_assert_int_eq(errmsg_prefix(&e, "store %s", "/tmp/p.db"), -EIO);
        ck_assert_str_eq(e.text, "store /tmp/p.db: disk I/O error");
        errmsg_clear(&e);
        e.code = -ENOENT;
        errmsg_prefix(&e, "open");
        ck_assert_str_eq(e.text, "open: No such file or directory");
}
END_TEST

START_TEST(test_long_text_is_cut_not_overflowed) {
        struct errmsg e;
        char big[2000];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        errmsg_set(&e, -E2BIG, "%s", big);
        ck_assert_uint_eq(strlen(e.text), ERRMSG_MAX - 1);
}
END_TEST

int main(void) {
        Suite *s = suite_create("errmsg");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_set_returns_code_and_text);
        tcase_add_test(tc, test_null_is_allowed);
        tcase_add_test(tc, test_prefix);
        tcase_add_test(tc, test_long_text_is_cut_not_overflowed);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

/*
 * test-poolconfig: aws-node's defaults, every variable accepted in range, and
 * every bad value refused with a message naming variable, value and range —
 * without touching the caller's config.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "poolconfig.h"
#include "testlib.h"

START_TEST(test_defaults_are_aws_nodes) {
        const char *env[] = { "PATH=/bin", NULL };
        struct poolconfig c;
        ck_assert_int_eq(poolconfig_from_env(env, &c, NULL), 0);
        ck_assert_int_eq(c.warm_eni_target, 1);
        ck_assert_int_eq(c.warm_ip_target, 0);
        ck_assert_int_eq(c.minimum_ip_target, 0);
        ck_assert_int_eq(c.warm_prefix_target, 0);
        ck_assert_int_eq(c.max_eni, -1);
        ck_assert_int_eq(c.ip_cooldown_s, 30);
        ck_assert_int_eq(c.shrink_delay_s, 120);
        ck_assert_uint_eq(c.has, 0);
        ck_assert(!poolconfig_ip_targets(&c));
}
END_TEST

START_TEST(test_all_set) {
        const char *env[] = { "WARM_ENI_TARGET=0", "WARM_IP_TARGET=5", "MINIMUM_IP_TARGET=10",
                              "WARM_PREFIX_TARGET=1", "MAX_ENI=2", "IP_COOLDOWN_PERIOD=120",
                              "VPC_IPAM_SHRINK_DELAY=0", NULL };
        struct poolconfig c;
        ck_assert_int_eq(poolconfig_from_env(env, &c, NULL), 0);
        ck_assert_int_eq(c.warm_eni_target, 0);
        ck_assert_int_eq(c.warm_ip_target, 5);
        ck_assert_int_eq(c.minimum_ip_target, 10);
        ck_assert_int_eq(c.warm_prefix_target, 1);
        ck_assert_int_eq(c.max_eni, 2);
        ck_assert_int_eq(c.ip_cooldown_s, 120);
        ck_assert_int_eq(c.shrink_delay_s, 0);
        ck_assert_uint_eq(c.has, POOLCONFIG_HAS_WARM_ENI | POOLCONFIG_HAS_WARM_IP | POOLCONFIG_HAS_MINIMUM_IP |
                                 POOLCONFIG_HAS_WARM_PREFIX | POOLCONFIG_HAS_MAX_ENI |
                                 POOLCONFIG_HAS_COOLDOWN | POOLCONFIG_HAS_SHRINK_DELAY);
        ck_assert(poolconfig_ip_targets(&c));
}
END_TEST

START_TEST(test_empty_means_unset) {
        const char *env[] = { "WARM_IP_TARGET=", "MAX_ENI=", NULL };
        struct poolconfig c;
        ck_assert_int_eq(poolconfig_from_env(env, &c, NULL), 0);
        ck_assert_int_eq(c.warm_ip_target, 0);
        ck_assert_int_eq(c.max_eni, -1);
        ck_assert_uint_eq(c.has, 0);
}
END_TEST

START_TEST(test_max_eni_minus_one_is_instance_limit) {
        const char *env[] = { "MAX_ENI=-1", NULL };
        struct poolconfig c;
        ck_assert_int_eq(poolconfig_from_env(env, &c, NULL), 0);
        ck_assert_int_eq(c.max_eni, -1);
}
END_TEST

START_TEST(test_bools_as_go_parses_them) {
        static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True" };
        static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False" };
        for (size_t i = 0; i < 6; i++) {
                bool b = false;
                ck_assert_int_eq(poolconfig_parse_bool("X", yes[i], &b, NULL), 0);
                ck_assert(b);
                ck_assert_int_eq(poolconfig_parse_bool("X", no[i], &b, NULL), 0);
                ck_assert(!b);
        }
        bool b = true;
        ck_assert_int_eq(poolconfig_parse_bool("X", "yes", &b, NULL), -EINVAL);
        ck_assert(b);
}
END_TEST

/* ENABLE_PREFIX_DELEGATION is the daemon's (which refuses it): the pool table does not read it. */
START_TEST(test_prefix_delegation_not_ours) {
        const char *env[] = { "ENABLE_PREFIX_DELEGATION=yes", NULL };
        struct poolconfig c;
        ck_assert_int_eq(poolconfig_from_env(env, &c, NULL), 0);
        ck_assert_uint_eq(c.has, 0);
        for (size_t i = 0; poolconfig_var(i); i++)
                ck_assert_str_ne(poolconfig_var(i)->name, "ENABLE_PREFIX_DELEGATION");
}
END_TEST

/* Every row: documented, and its effective value shown as the environment spells it. */
START_TEST(test_vars_and_values) {
        const char *env[] = { "WARM_IP_TARGET=7", "MAX_ENI=-1", NULL };
        struct poolconfig c, d;
        ck_assert_int_eq(poolconfig_from_env(env, &c, NULL), 0);
        poolconfig_defaults(&d);
        size_t n = 0;
        for (const struct poolconfig_var *v; (v = poolconfig_var(n)); n++) {
                ck_assert(v->name && v->default_value && v->accepted);
                char buf[32];
                bool set;
                ck_assert_int_eq(poolconfig_var_value(&d, n, &set, buf, sizeof buf), 0);
                ck_assert_msg(!set && strcmp(buf, v->default_value) == 0, "%s: default %s, documented %s",
                              v->name, buf, v->default_value);
                ck_assert_int_eq(poolconfig_var_value(&c, n, &set, buf, sizeof buf), 0);
                if (strcmp(v->name, "WARM_IP_TARGET") == 0)
                        ck_assert(set && strcmp(buf, "7") == 0);
                else
                        ck_assert(set == (strcmp(v->name, "MAX_ENI") == 0));
        }
        ck_assert_uint_eq(n, 7);
        bool set = true;
        char buf[8] = "x";
        ck_assert_int_eq(poolconfig_var_value(&c, n, &set, buf, sizeof buf), -ENOENT);
        ck_assert(set && strcmp(buf, "x") == 0);
}
END_TEST

/* Each bad value: the error, the message's parts, and the output left alone. */
static const struct {
        const char *var;
        int code;
        const char *must_say;
} bad[] = {
        { "WARM_ENI_TARGET=abc", -EINVAL, "WARM_ENI_TARGET=abc: not an integer; accepted: an integer from 0 to 128" },
        { "WARM_ENI_TARGET=-1", -ERANGE, "WARM_ENI_TARGET=-1: out of range" },
        { "WARM_ENI_TARGET=1.5", -EINVAL, "not an integer" },
        { "WARM_ENI_TARGET= 1", -EINVAL, "not an integer" },
        { "WARM_IP_TARGET=-5", -ERANGE, "WARM_IP_TARGET=-5: out of range; accepted: an integer from 0 to 65535" },
        { "WARM_IP_TARGET=99999999999999999999", -ERANGE, "out of range" },
        { "MINIMUM_IP_TARGET=ten", -EINVAL, "MINIMUM_IP_TARGET=ten" },
        { "MAX_ENI=0", -ERANGE, "MAX_ENI=0: out of range; accepted: -1 (the instance type's limit) or an integer from 1 to 128" },
        { "MAX_ENI=-2", -ERANGE, "MAX_ENI=-2" },
        { "MAX_ENI=200", -ERANGE, "MAX_ENI=200" },
        { "IP_COOLDOWN_PERIOD=30s", -EINVAL, "IP_COOLDOWN_PERIOD=30s: not an integer; accepted: whole seconds" },
        { "IP_COOLDOWN_PERIOD=-1", -ERANGE, "IP_COOLDOWN_PERIOD=-1" },
        { "WARM_PREFIX_TARGET=x", -EINVAL, "WARM_PREFIX_TARGET=x" },
        { "VPC_IPAM_SHRINK_DELAY=3601", -ERANGE, "VPC_IPAM_SHRINK_DELAY=3601: out of range" },
};

START_TEST(test_bad_values_refused) {
        const char *env[] = { bad[_i].var, NULL };
        struct poolconfig c;
        memset(&c, 0x5a, sizeof c);
        struct poolconfig before = c;
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_int_eq(poolconfig_from_env(env, &c, &e), bad[_i].code);
        ck_assert_msg(strstr(e.text, bad[_i].must_say), "for %s got: %s", bad[_i].var, e.text);
        ck_assert_int_eq(memcmp(&c, &before, sizeof c), 0);
}
END_TEST

START_TEST(test_first_bad_of_many_is_named) {
        const char *env[] = { "WARM_IP_TARGET=3", "MAX_ENI=zero", NULL };
        struct errmsg e;
        struct poolconfig c;
        ck_assert_int_eq(poolconfig_from_env(env, &c, &e), -EINVAL);
        ck_assert_ptr_nonnull(strstr(e.text, "MAX_ENI=zero"));
}
END_TEST

START_TEST(test_shared_parsers) {
        long v = 7;
        struct errmsg e;
        ck_assert_int_eq(poolconfig_parse_int("AWS_VPC_ENI_MTU", "9001", 576, 9001, &v, &e), 0);
        ck_assert_int_eq(v, 9001);
        ck_assert_int_eq(poolconfig_parse_int("AWS_VPC_ENI_MTU", "9002", 576, 9001, &v, &e), -ERANGE);
        ck_assert_int_eq(v, 9001);
        ck_assert_str_eq(e.text, "AWS_VPC_ENI_MTU=9002: out of range; accepted: 576 to 9001");
        ck_assert_int_eq(poolconfig_parse_int("X", "", 0, 1, &v, &e), -EINVAL);
        ck_assert_int_eq(poolconfig_parse_int("X", "-", 0, 1, &v, &e), -EINVAL);
        bool b = true;
        ck_assert_int_eq(poolconfig_parse_bool("X", "0", &b, &e), 0);
        ck_assert(!b);
        ck_assert_int_eq(poolconfig_parse_bool("X", "", &b, &e), -EINVAL);
        ck_assert_ptr_null(poolconfig_getenv((const char *[]){ "WARM=1", NULL }, "WARM_IP_TARGET"));
        ck_assert_str_eq(poolconfig_getenv((const char *[]){ "WARM_IP_TARGETX=1", "WARM_IP_TARGET=2", NULL },
                                           "WARM_IP_TARGET"), "2");
}
END_TEST

int main(void) {
        Suite *s = suite_create("poolconfig");
        TCase *tc = tcase_create("env");
        tcase_add_test(tc, test_defaults_are_aws_nodes);
        tcase_add_test(tc, test_all_set);
        tcase_add_test(tc, test_empty_means_unset);
        tcase_add_test(tc, test_max_eni_minus_one_is_instance_limit);
        tcase_add_test(tc, test_bools_as_go_parses_them);
        tcase_add_test(tc, test_prefix_delegation_not_ours);
        tcase_add_test(tc, test_vars_and_values);
        tcase_add_loop_test(tc, test_bad_values_refused, 0, sizeof bad / sizeof bad[0]);
        tcase_add_test(tc, test_first_bad_of_many_is_named);
        tcase_add_test(tc, test_shared_parsers);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

/*
 * test-sigv4: AWS's published vectors, and (with --random N SEED) a generator
 * of random signed requests that tests/cloud/sigv4_botocore.py signs again
 * with botocore's SigV4Auth and compares line by line.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cloud/buf.h"
#include "sigv4.h"
#include "testlib.h"

static const struct sigv4_key example_key = {
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

/* 2015-08-30T12:36:00Z, the date of the aws-sig-v4-test-suite. */
#define SUITE_TIME ((time_t)1440938160)

START_TEST(test_signing_key_vector) {
        uint8_t k[32];
        char hex[65];
        ck_assert_int_eq(sigv4_signing_key(example_key.secret_access_key, "20120215", "us-east-1", "iam", k), 0);
        for (int i = 0; i < 32; i++)
                sprintf(hex + 2 * i, "%02x", k[i]);
        ck_assert_str_eq(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}
END_TEST

START_TEST(test_iam_list_users_get) {
        const struct sigv4_param q[] = { { "Version", "2010-05-08" }, { "Action", "ListUsers" } };
        struct sigv4_request req = {
                .method = "GET", .host = "iam.amazonaws.com", .path = "/", .query = q, .n_query = 2,
                .content_type = "application/x-www-form-urlencoded; charset=utf-8",
                .region = "us-east-1", .service = "iam", .when = SUITE_TIME,
        };
        struct sigv4_signature s;
        ck_assert_int_eq(sigv4_sign(&req, &example_key, &s), 0);
        ck_assert_str_eq(s.amz_date, "20150830T123600Z");
        ck_assert_str_eq(s.authorization,
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, "
                "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}
END_TEST

START_TEST(test_suite_get_vanilla) {
        struct sigv4_request req = {
                .method = "GET", .host = "example.amazonaws.com", .path = "/",
                .region = "us-east-1", .service = "service", .when = SUITE_TIME,
        };
        struct sigv4_signature s;
        ck_assert_int_eq(sigv4_sign(&req, &example_key, &s), 0);
        ck_assert_str_eq(s.authorization,
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                "SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}
END_TEST

START_TEST(test_suite_post_form) {
        struct sigv4_request req = {
                .method = "POST", .host = "example.amazonaws.com", .path = "/",
                .content_type = "application/x-www-form-urlencoded",
                .payload = "Param1=value1", .payload_len = 13,
                .region = "us-east-1", .service = "service", .when = SUITE_TIME,
        };
        struct sigv4_signature s;
        ck_assert_int_eq(sigv4_sign(&req, &example_key, &s), 0);
        ck_assert_str_eq(s.authorization,
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-date, "
                "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}
END_TEST

START_TEST(test_session_token_is_signed) {
        struct sigv4_key k = example_key;
        k.session_token = "FQoGZXIvYXdzEXAMPLE";
        struct sigv4_request req = {
                .method = "POST", .host = "ec2.us-west-2.amazonaws.com", .path = "/",
                .content_type = "application/x-www-form-urlencoded; charset=utf-8",
                .payload = "Action=DescribeSubnets&Version=2016-11-15", .payload_len = 41,
                .region = "us-west-2", .service = "ec2", .when = SUITE_TIME,
        };
        struct sigv4_signature a, b;
        ck_assert_int_eq(sigv4_sign(&req, &k, &a), 0);
        ck_assert_ptr_nonnull(strstr(a.authorization, "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"));
        ck_assert_int_eq(sigv4_sign(&req, &example_key, &b), 0);
        ck_assert_str_ne(a.authorization, b.authorization);
}
END_TEST

START_TEST(test_bad_arguments) {
        struct sigv4_request req = { .method = "GET", .path = "/", .region = "r", .service = "s" };
        struct sigv4_signature s;
        memset(&s, 0x5a, sizeof s);
        ck_assert_int_eq(sigv4_sign(&req, &example_key, &s), -EINVAL);      /* no host */
        ck_assert_int_eq((unsigned char)s.amz_date[0], 0x5a);               /* untouched */
        char big[300];
        memset(big, 'k', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        uint8_t k[32];
        ck_assert_int_eq(sigv4_signing_key(big, "20200101", "r", "s", k), -E2BIG);
}
END_TEST

/* --- random requests for the botocore cross-check ------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* A random string drawn from an alphabet that includes everything that must be
 * percent-encoded (space, '+', '=', '&', '/', '%', UTF-8). */
static void rnd_str(char *out, size_t max) {
        static const char *pieces[] = { "a", "Z", "0", "9", "-", "_", ".", "~", " ", "+", "=", "&", "/",
                                        "%", "*", "?", "#", ":", "@", "!", "\xc3\xa9", "\xe2\x82\xac", "'", "\"" };
        size_t n = rnd() % (max / 4), len = 0;
        for (size_t i = 0; i < n; i++) {
                const char *p = pieces[rnd() % (sizeof pieces / sizeof *pieces)];
                size_t pl = strlen(p);
                memcpy(out + len, p, pl);
                len += pl;
        }
        out[len] = '\0';
}

static void print_hex(const char *name, const char *s) {
        printf("\"%s\":\"", name);
        for (; *s; s++)
                printf("%02x", (unsigned char)*s);
        printf("\",");
}

static void random_case(void) {
        static const char *regions[] = { "us-east-1", "eu-west-3", "ap-southeast-2", "us-gov-west-1", "cn-north-1" };
        static const char *hosts[] = { "ec2.us-east-1.amazonaws.com", "127.0.0.1:5000", "localhost:4566", "sts.amazonaws.com" };
        char keys[8][64], vals[8][64], ak[32], sk[64], tok[256], body[512];
        struct sigv4_param q[8];
        bool post = rnd() % 2;
        size_t n = rnd() % 8;
        for (size_t i = 0; i < n; i++) {
                rnd_str(keys[i], sizeof keys[i]);
                if (!keys[i][0])
                        strcpy(keys[i], "K");
                rnd_str(vals[i], sizeof vals[i]);
                q[i] = (struct sigv4_param){ keys[i], vals[i] };
        }
        snprintf(ak, sizeof ak, "AKIA%016llX", (unsigned long long)rnd());
        rnd_str(sk, sizeof sk);
        snprintf(sk + strlen(sk), sizeof sk - strlen(sk), "%llx", (unsigned long long)rnd());
        tok[0] = '\0';
        if (rnd() % 2)
                snprintf(tok, sizeof tok, "IQoJb3JpZ2luX2VjE%llx/+=", (unsigned long long)rnd());
        /* A POST body is either a form the way cloud/ec2.c builds one (unique keys, so
         * botocore can be handed the same parameters as a dict) or arbitrary bytes. */
        bool form = post && rnd() % 2;
        rnd_str(body, sizeof body);
        if (form) {
                struct buf b = { 0 };
                for (size_t i = 0; i < n; i++) {
                        snprintf(keys[i] + strlen(keys[i]), 8, ".%zu", i);
                        if (i)
                                buf_append(&b, "&", 1);
                        buf_form_encode(&b, keys[i], strlen(keys[i]));
                        buf_append(&b, "=", 1);
                        buf_form_encode(&b, vals[i], strlen(vals[i]));
                }
                snprintf(body, sizeof body, "%s", b.p ? b.p : "");
                buf_free(&b);
        }
        struct sigv4_key key = { ak, sk, tok };
        struct sigv4_request req = {
                .method = post ? "POST" : "GET", .host = hosts[rnd() % 4], .path = "/",
                .query = post ? NULL : q, .n_query = post ? 0 : n,
                .content_type = post ? "application/x-www-form-urlencoded; charset=utf-8" : NULL,
                .payload = post ? body : NULL, .payload_len = post ? strlen(body) : 0,
                .region = regions[rnd() % 5], .service = rnd() % 3 ? "ec2" : "sts",
                .when = (time_t)(946684800 + rnd() % 1600000000),
        };
        struct sigv4_signature s;
        if (sigv4_sign(&req, &key, &s) < 0) {
                printf("{\"error\":true}\n");
                return;
        }
        printf("{\"method\":\"%s\",\"host\":\"%s\",\"region\":\"%s\",\"service\":\"%s\",\"when\":%lld,",
               req.method, req.host, req.region, req.service, (long long)req.when);
        print_hex("ak", ak);
        print_hex("sk", sk);
        print_hex("token", tok);
        print_hex("content_type", req.content_type ? req.content_type : "");
        print_hex("body", post ? body : "");
        printf("\"query\":[");
        for (size_t i = 0; i < req.n_query; i++) {
                printf("%s{", i ? "," : "");
                print_hex("k", keys[i]);
                print_hex("v", vals[i]);
                printf("\"_\":0}");
        }
        printf("],\"form\":[");
        for (size_t i = 0; form && i < n; i++) {
                printf("%s{", i ? "," : "");
                print_hex("k", keys[i]);
                print_hex("v", vals[i]);
                printf("\"_\":0}");
        }
        printf("],\"amz_date\":\"%s\",\"authorization\":\"%s\"}\n", s.amz_date, s.authorization);
}

int main(int argc, char **argv) {
        if (argc == 4 && strcmp(argv[1], "--random") == 0) {
                long n = strtol(argv[2], NULL, 10);
                rng_state = strtoull(argv[3], NULL, 10) | 1;
                for (long i = 0; i < n; i++)
                        random_case();
                return 0;
        }
        Suite *s = suite_create("sigv4");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_signing_key_vector);
        tcase_add_test(tc, test_iam_list_users_get);
        tcase_add_test(tc, test_suite_get_vanilla);
        tcase_add_test(tc, test_suite_post_form);
        tcase_add_test(tc, test_session_token_is_signed);
        tcase_add_test(tc, test_bad_arguments);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

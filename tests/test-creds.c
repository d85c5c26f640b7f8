/*
 * test-creds: each source of the credentials chain against a local fake (STS,
 * the container endpoint and IMDS are one scripted server on 127.0.0.1), the
 * order of the chain, refresh before expiry, serving still-valid credentials
 * when a refresh fails, and the "every source and why" failure message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "fakeclock.h"
#include "fakesrv.h"
#include "testlib.h"

#define T0 ((time_t)1764172800)         /* 2025-11-26T16:00:00Z */

struct fake {
        int sts_calls, container_calls, imds_calls;
        bool sts_fail, container_fail;
        char expiration[32];            /* for every document */
        char sts_body[16384];            /* the last STS form */
        char container_auth[4096];
};

#define STS_OK \
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">" \
        "<AssumeRoleWithWebIdentityResult><SubjectFromWebIdentityToken>system:serviceaccount:kube-system:aws-node" \
        "</SubjectFromWebIdentityToken><Credentials><AccessKeyId>ASIASTS%d</AccessKeyId>" \
        "<SecretAccessKey>stsSecret</SecretAccessKey><SessionToken>stsToken</SessionToken>" \
        "<Expiration>%s</Expiration></Credentials></AssumeRoleWithWebIdentityResult>" \
        "<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"

static void handler(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        struct fake *f = ud;
        static __thread char body[4096];
        if (strcmp(req->method, "POST") == 0 && strcmp(req->url, "/") == 0) {
                f->sts_calls++;
                snprintf(f->sts_body, sizeof f->sts_body, "%s", req->body);
                if (f->sts_fail) {
                        rep->status = 403;
                        rep->body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                                    "<Message>No OpenIDConnect provider found</Message></Error></ErrorResponse>";
                        return;
                }
                snprintf(body, sizeof body, STS_OK, f->sts_calls, f->expiration);
        } else if (strcmp(req->url, "/creds") == 0) {
                f->container_calls++;
                snprintf(f->container_auth, sizeof f->container_auth, "%s", req->authorization);
                rep->content_type = "application/json";
                if (f->container_fail || strcmp(req->authorization, "pod-identity-token") != 0) {
                        rep->status = 401;
                        return;
                }
                snprintf(body, sizeof body, "{\"AccessKeyId\":\"ASIACONT\",\"SecretAccessKey\":\"contSecret\","
                         "\"Token\":\"contToken\",\"AccountId\":\"123456789012\",\"Expiration\":\"%s\"}", f->expiration);
        } else if (strcmp(req->url, "/latest/api/token") == 0) {
                rep->body = "imds-token";
                rep->content_type = "text/plain";
                return;
        } else if (strcmp(req->url, "/latest/meta-data/iam/security-credentials/") == 0) {
                rep->body = "node-role";
                rep->content_type = "text/plain";
                return;
        } else if (strcmp(req->url, "/latest/meta-data/iam/security-credentials/node-role") == 0) {
                f->imds_calls++;
                snprintf(body, sizeof body, "{\"Code\":\"Success\",\"LastUpdated\":\"2025-11-26T15:00:00Z\","
                         "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\",\"SecretAccessKey\":\"imdsSecret\","
                         "\"Token\":\"imdsToken\",\"Expiration\":\"%s\"}", f->expiration);
                rep->content_type = "text/plain";
        } else {
                rep->status = 404;
                return;
        }
        rep->body = body;
}

static void clear_env(void) {
        static const char *vars[] = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                      "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
                                      "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                      "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                      "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_EC2_METADATA_SERVICE_ENDPOINT" };
        for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
                unsetenv(vars[i]);
}

struct env {
        struct fake f;
        struct fakesrv *srv;
        struct fakeclock fc;
        creds_provider *p;
};

/* A fake server, a fake clock at T0, documents expiring at T0 + 1 h, IMDS pointed at the fake. */
static void setup(struct env *e) {
        clear_env();
        memset(&e->f, 0, sizeof e->f);
        snprintf(e->f.expiration, sizeof e->f.expiration, "2025-11-26T17:00:00Z");
        e->srv = fakesrv_start(handler, &e->f);
        setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakesrv_url(e->srv), 1);
        fakeclock_init(&e->fc, T0 - 1);         /* fakeclock adds its 1 s start */
        struct creds_options o = { .region = "us-west-2", .clock = &e->fc.clock };
        ck_assert_int_eq(creds_provider_new(&o, &e->p, NULL), 0);
}

static void teardown_env(struct env *e) {
        creds_provider_free(e->p);
        fakesrv_stop(e->srv);
}

START_TEST(test_env_first) {
        struct env e;
        setup(&e);
        setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "envSecret", 1);
        setenv("AWS_SESSION_TOKEN", "envToken", 1);
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds", 1);   /* never asked */
        struct creds_value v;
        ck_assert_int_eq(creds_get(e.p, &v, NULL), 0);
        ck_assert_str_eq(v.source, "env");
        ck_assert_str_eq(v.access_key_id, "AKIAENV");
        ck_assert_str_eq(v.session_token, "envToken");
        ck_assert_int_eq(v.expiration, 0);
        ck_assert_int_eq(e.f.container_calls + e.f.sts_calls + e.f.imds_calls, 0);
        teardown_env(&e);
}
END_TEST

static void web_identity_env(struct env *e) {
        const char *path = testlib_path("token");
        FILE *f = fopen(path, "w");
        fputs("eyJhbGciOiJSUzI1NiJ9.payload.sig\n", f);
        fclose(f);
        setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path, 1);
        setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/vpc-ipam", 1);
        setenv("AWS_ROLE_SESSION_NAME", "node-1", 1);
        char url[96];
        snprintf(url, sizeof url, "%s/", fakesrv_url(e->srv));
        setenv("AWS_ENDPOINT_URL_STS", url, 1);
}

START_TEST(test_web_identity_and_refresh) {
        struct env e;
        setup(&e);
        web_identity_env(&e);
        struct creds_value v;
        struct errmsg err = { 0 };
        ck_assert_msg(creds_get(e.p, &v, &err) == 0, "%s", err.text);
        ck_assert_str_eq(v.source, "web-identity");
        ck_assert_str_eq(v.access_key_id, "ASIASTS1");
        ck_assert_str_eq(v.session_token, "stsToken");
        ck_assert_int_eq(v.expiration, T0 + 3600);
        ck_assert_str_eq(e.f.sts_body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                         "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fvpc-ipam&RoleSessionName=node-1"
                         "&WebIdentityToken=eyJhbGciOiJSUzI1NiJ9.payload.sig");
        /* cached until 5 minutes before expiry */
        e.fc.now_ns += 3000ull * 1000000000ull;
        ck_assert_int_eq(creds_get(e.p, &v, NULL), 0);
        ck_assert_int_eq(e.f.sts_calls, 1);
        e.fc.now_ns += 400ull * 1000000000ull;
        snprintf(e.f.expiration, sizeof e.f.expiration, "2025-11-26T18:00:00Z");
        ck_assert_int_eq(creds_get(e.p, &v, NULL), 0);
        ck_assert_int_eq(e.f.sts_calls, 2);
        ck_assert_str_eq(v.access_key_id, "ASIASTS2");
        /* a failing refresh keeps serving the still-valid credentials */
        e.fc.now_ns += 3600ull * 1000000000ull;        /* 200 s before expiry */
        e.f.sts_fail = true;
        ck_assert_int_eq(creds_get(e.p, &v, NULL), 0);
        ck_assert_str_eq(v.access_key_id, "ASIASTS2");
        /* ...but not expired ones: then the chain goes on (to IMDS here) */
        e.fc.now_ns += 201ull * 1000000000ull;
        ck_assert_int_eq(creds_get(e.p, &v, NULL), 0);
        ck_assert_str_eq(v.source, "imds");
        teardown_env(&e);
}
END_TEST

START_TEST(test_container_token_env_and_file) {
        struct env e;
        setup(&e);
        char url[96];
        snprintf(url, sizeof url, "%s/creds", fakesrv_url(e.srv));
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
        setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token", 1);
        struct creds_value v;
        struct errmsg err = { 0 };
        ck_assert_msg(creds_get(e.p, &v, &err) == 0, "%s", err.text);
        ck_assert_str_eq(v.source, "container");
        ck_assert_str_eq(v.access_key_id, "ASIACONT");
        ck_assert_str_eq(v.session_token, "contToken");
        ck_assert_str_eq(e.f.container_auth, "pod-identity-token");
        creds_provider_free(e.p);
        /* The _FILE variant wins over the variable, and is re-read on each fetch. */
        const char *path = testlib_path("pod-token");
        FILE *f = fopen(path, "w");
        fputs("pod-identity-token\n", f);
        fclose(f);
        setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong", 1);
        setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", path, 1);
        ck_assert_int_eq(creds_provider_new(&(struct creds_options){ .clock = &e.fc.clock }, &e.p, NULL), 0);
        ck_assert_int_eq(creds_get(e.p, &v, NULL), 0);
        ck_assert_str_eq(v.source, "container");
        ck_assert_int_eq(e.f.container_calls, 2);
        teardown_env(&e);
}
END_TEST

START_TEST(test_container_refuses_remote_http) {
        struct env e;
        setup(&e);
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds", 1);
        struct creds_value v;
        struct errmsg err = { 0 };
        ck_assert_int_eq(creds_get(e.p, &v, &err), 0);          /* falls through to IMDS */
        ck_assert_str_eq(v.source, "imds");
        ck_assert_str_eq(v.access_key_id, "ASIAIMDS");
        ck_assert_str_eq(v.session_token, "imdsToken");
        teardown_env(&e);
}
END_TEST

START_TEST(test_all_sources_fail_names_each) {
        struct env e;
        setup(&e);
        setenv("AWS_ACCESS_KEY_ID", "AKIAONLY", 1);     /* no secret */
        web_identity_env(&e);
        e.f.sts_fail = true;
        char url[96];
        snprintf(url, sizeof url, "%s/creds", fakesrv_url(e.srv));
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
        setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "bad", 1);
        /* IMDS: a port where nothing listens */
        struct fakesrv *dead = fakesrv_start(handler, &e.f);
        setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fakesrv_url(dead), 1);
        fakesrv_stop(dead);
        struct creds_value v;
        memset(&v, 0x5a, sizeof v);
        struct errmsg err = { 0 };
        ck_assert_int_eq(creds_get(e.p, &v, &err), -ENOKEY);
        ck_assert_int_eq((unsigned char)v.access_key_id[0], 0x5a);
        ck_assert_msg(strstr(err.text, "env: AWS_ACCESS_KEY_ID set without AWS_SECRET_ACCESS_KEY"), "%s", err.text);
        ck_assert_msg(strstr(err.text, "web-identity: HTTP 403 from http://127.0.0.1:") && strstr(err.text, "STS error InvalidIdentityToken"), "%s", err.text);
        ck_assert_msg(strstr(err.text, "container: GET "), "%s", err.text);
        ck_assert_msg(strstr(err.text, "HTTP 401"), "%s", err.text);
        ck_assert_msg(strstr(err.text, "imds: IMDS token"), "%s", err.text);
        ck_assert_ptr_null(strstr(err.text, "bad"));            /* no secret in the message */
        ck_assert_ptr_null(strstr(err.text, "eyJhbGci"));
        teardown_env(&e);
}
END_TEST

START_TEST(test_nothing_configured) {
        struct env e;
        setup(&e);
        setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
        struct creds_value v;
        struct errmsg err = { 0 };
        ck_assert_int_eq(creds_get(e.p, &v, &err), -ENOKEY);
        ck_assert_msg(strstr(err.text, "env: AWS_ACCESS_KEY_ID not set; web-identity: AWS_WEB_IDENTITY_TOKEN_FILE not set; "
                                       "container: AWS_CONTAINER_CREDENTIALS_FULL_URI not set; imds: "), "%s", err.text);
        teardown_env(&e);
}
END_TEST

START_TEST(test_documents) {
        struct creds_value v;
        struct errmsg err = { 0 };
        time_t t;
        ck_assert_int_eq(creds_parse_time("2025-11-26T16:00:00Z", &t), 0);
        ck_assert_int_eq(t, T0);
        ck_assert_int_eq(creds_parse_time("2025-11-26T16:00:00.123Z", &t), 0);
        ck_assert_int_eq(creds_parse_time("2025-11-26T16:00:00+00:00", &t), 0);
        ck_assert_int_eq(creds_parse_time("2025-11-26 16:00:00Z", &t), -EBADMSG);
        ck_assert_int_eq(creds_parse_time("2025-13-26T16:00:00Z", &t), -EBADMSG);
        ck_assert_int_eq(creds_parse_time("2025-11-26T16:00:00+02:00", &t), -EBADMSG);
        const char *bad[] = { "", "[]", "{\"AccessKeyId\":1}", "{\"Code\":\"Failure\",\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\"}",
                              "{\"AccessKeyId\":\"a b\",\"SecretAccessKey\":\"b\"}",
                              "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\",\"Expiration\":\"soon\"}", "{\"AccessKeyId\":\"a\"" };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                ck_assert_msg(creds_parse_json(bad[i], strlen(bad[i]), &v, &err) < 0, "%s", bad[i]);
        const char *ok = "{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"b\"}";
        ck_assert_int_eq(creds_parse_json(ok, strlen(ok), &v, &err), 0);
        ck_assert_int_eq(v.expiration, 0);
        const char *sts_bad[] = { "<AssumeRoleWithWebIdentityResponse/>", "<x", "<!DOCTYPE a><a/>" };
        for (size_t i = 0; i < sizeof sts_bad / sizeof *sts_bad; i++)
                ck_assert_int_lt(creds_parse_sts(sts_bad[i], strlen(sts_bad[i]), &v, &err), 0);
}
END_TEST

int main(void) {
        Suite *s = suite_create("creds");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_env_first);
        tcase_add_test(tc, test_web_identity_and_refresh);
        tcase_add_test(tc, test_container_token_env_and_file);
        tcase_add_test(tc, test_container_refuses_remote_http);
        tcase_add_test(tc, test_all_sources_fail_names_each);
        tcase_add_test(tc, test_nothing_configured);
        tcase_add_test(tc, test_documents);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

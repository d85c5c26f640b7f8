/*
 * test-k8s: the Kubernetes client (cloud/k8s.c) against a scripted HTTPS API
 * server (fakesrv with tests/cloud/tls): in-cluster configuration from the
 * environment and the service-account files, the CA verified, the token
 * re-read after rotation (401) and by age, 404/403 named, 5xx/429 and
 * transport errors retried with back-off, oversized bodies refused, and the
 * decoders on API-shaped fixtures (tests/cloud/k8s/) and malformed ones.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fakeclock.h"
#include "fakesrv.h"
#include "k8s.h"
#include "testlib.h"

#define NODE "ip-10-0-1-23.us-west-2.compute.internal"

static char *slurp(const char *dir, const char *name) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "r");
        ck_assert_msg(f, "cannot open %s", path);
        char *buf = calloc(1, 65536);
        size_t n = fread(buf, 1, 65535, f);
        ck_assert(n > 0 && n < 65535);
        fclose(f);
        return buf;
}

/* tests/cloud/<sub>/<name> */
static char *fixture(const char *sub, const char *name) {
        char dir[1024];
        const char *x = getenv("CLOUD_FIXTURES");
        snprintf(dir, sizeof dir, "%s/../%s", x ? x : "tests/cloud/xml", sub);
        return slurp(dir, name);
}

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        ck_assert_msg(f, "cannot write %s", path);
        fputs(text, f);
        fclose(f);
}

/* A service-account directory with this token and CA (a tls/ file name). */
static const char *sa_dir(const char *token, const char *ca) {
        static char dir[1024];
        snprintf(dir, sizeof dir, "%s", testlib_path("sa"));
        mkdir(dir, 0700);
        char path[1100];
        snprintf(path, sizeof path, "%s/token", dir);
        write_file(path, token);
        snprintf(path, sizeof path, "%s/ca.crt", dir);
        char *pem = fixture("tls", ca);
        write_file(path, pem);
        free(pem);
        return dir;
}

static void rotate_token(const char *dir, const char *token) {
        char path[1100], tmp[1100];
        snprintf(path, sizeof path, "%s/token", dir);
        snprintf(tmp, sizeof tmp, "%s/.token.new", dir);
        write_file(tmp, token);
        ck_assert_int_eq(rename(tmp, path), 0);          /* as kubelet's atomic writer swaps it */
}

/* --- a scripted API server ---------------------------------------------------- */

struct api {
        const char *valid_token;        /* the one Bearer token accepted */
        int fail_first;                 /* answer this many requests with fail_status */
        int fail_status;
        const char *fail_body;
        char *node, *eniconfig, *not_found, *forbidden, *unauthorized;
        size_t pad;                     /* extra bytes appended to a Node body */
        unsigned delay_ms;              /* every reply this late */
        char big[1 << 16];
};

static void api_fn(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        struct api *a = ud;
        rep->content_type = "application/json";
        rep->delay_ms = a->delay_ms;
        char want[256];
        snprintf(want, sizeof want, "Bearer %s", a->valid_token);
        if (strcmp(req->authorization, want) != 0) {
                rep->status = 401;
                rep->body = a->unauthorized;
        } else if (a->fail_first > 0) {
                a->fail_first--;
                rep->status = a->fail_status;
                rep->body = a->fail_body ? a->fail_body : "";
        } else if (strcmp(req->url, "/api/v1/nodes/" NODE) == 0) {
                rep->body = a->node;
                if (a->pad) {
                        snprintf(a->big, sizeof a->big, "%s%*s", a->node, (int)a->pad, "");
                        rep->body = a->big;
                }
        } else if (strcmp(req->url, "/api/v1/nodes/forbidden-node") == 0) {
                rep->status = 403;
                rep->body = a->forbidden;
        } else if (strcmp(req->url, "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/us-west-2a") == 0) {
                rep->body = a->eniconfig;
        } else {
                rep->status = 404;
                rep->body = a->not_found;
        }
}

static void api_init(struct api *a, const char *token) {
        *a = (struct api){ .valid_token = token };
        a->node = fixture("k8s", "node.json");
        a->eniconfig = fixture("k8s", "eniconfig.json");
        a->not_found = fixture("k8s", "eniconfig-not-found.json");
        a->forbidden = fixture("k8s", "node-forbidden.json");
        a->unauthorized = fixture("k8s", "unauthorized.json");
}

static void api_done(struct api *a) {
        free(a->node), free(a->eniconfig), free(a->not_found), free(a->forbidden), free(a->unauthorized);
}

static struct fakesrv *start_api(struct api *a) {
        char *cert = fixture("tls", "loopback.pem"), *key = fixture("tls", "loopback.key");
        struct fakesrv *s = fakesrv_start_tls(api_fn, a, cert, key);
        free(cert), free(key);
        return s;
}

/* Point the service variables at the server (https://127.0.0.1:PORT). */
static void env_for(struct fakesrv *s) {
        const char *port = strrchr(fakesrv_url(s), ':') + 1;
        setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", port, 1);
        unsetenv("CLUSTER_ENDPOINT");
        setenv("MY_NODE_NAME", NODE, 1);
}

static k8s_client *client(const char *dir, struct fakeclock *fc, size_t max_body) {
        struct k8s_options o = { .sa_dir = dir, .clock = fc ? &fc->clock : NULL, .http = { .max_body = max_body } };
        k8s_client *c = NULL;
        struct errmsg err = { 0 };
        int r = k8s_new(&o, &c, &err);
        ck_assert_msg(r == 0, "k8s_new: %d %s", r, err.text);
        return c;
}

/* --- configuration ---------------------------------------------------------------- */

static int try_new(const char *dir, struct errmsg *err, k8s_client **ret) {
        errmsg_clear(err);
        return k8s_new(&(struct k8s_options){ .sa_dir = dir }, ret, err);
}

START_TEST(test_config_from_env_and_files) {
        const char *dir = sa_dir("tok-1\n", "loopback.pem");
        struct errmsg err;
        k8s_client *c = NULL;
        unsetenv("CLUSTER_ENDPOINT");
        unsetenv("MY_NODE_NAME");
        unsetenv("KUBERNETES_SERVICE_HOST");
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), -ENXIO);
        ck_assert_ptr_nonnull(strstr(err.text, "KUBERNETES_SERVICE_HOST"));
        setenv("KUBERNETES_SERVICE_HOST", "10.100.0.1", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), 0);
        ck_assert_str_eq(k8s_server(c), "https://10.100.0.1:443");
        ck_assert_ptr_null(k8s_node_name(c));
        ck_assert_uint_eq(k8s_token_reads(c), 1);
        struct k8s_node *n = NULL;
        ck_assert_int_eq(k8s_get_node(c, NULL, &n, &err), -EINVAL);        /* no MY_NODE_NAME */
        ck_assert_ptr_nonnull(strstr(err.text, "MY_NODE_NAME"));
        c = k8s_free(c);
        /* IPv6 service address in brackets; the node's name from the downward API */
        setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
        setenv("MY_NODE_NAME", NODE, 1);
        ck_assert_int_eq(try_new(dir, &err, &c), 0);
        ck_assert_str_eq(k8s_server(c), "https://[fd00:10:96::1]:443");
        ck_assert_str_eq(k8s_node_name(c), NODE);
        c = k8s_free(c);
        /* CLUSTER_ENDPOINT overrides the service variables, as aws-node */
        setenv("CLUSTER_ENDPOINT", "https://ABCDEF0123.gr7.us-west-2.eks.amazonaws.com/", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), 0);
        ck_assert_str_eq(k8s_server(c), "https://ABCDEF0123.gr7.us-west-2.eks.amazonaws.com");
        c = k8s_free(c);
        setenv("CLUSTER_ENDPOINT", "http://plain.example", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.text, "CLUSTER_ENDPOINT"));
        unsetenv("CLUSTER_ENDPOINT");
        /* bad port and host */
        setenv("KUBERNETES_SERVICE_PORT", "44x", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), -EINVAL);
        setenv("KUBERNETES_SERVICE_PORT", "70000", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), -EINVAL);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1/evil?x", 1);
        ck_assert_int_eq(try_new(dir, &err, &c), -EINVAL);
        setenv("KUBERNETES_SERVICE_HOST", "10.100.0.1", 1);
        /* the files: missing token, empty token, missing CA */
        char path[1100];
        snprintf(path, sizeof path, "%s/token", dir);
        write_file(path, " \n");
        ck_assert_int_eq(try_new(dir, &err, &c), -EBADMSG);
        unlink(path);
        ck_assert_int_eq(try_new(dir, &err, &c), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err.text, "token"));
        write_file(path, "tok-1");
        snprintf(path, sizeof path, "%s/ca.crt", dir);
        unlink(path);
        ck_assert_int_eq(try_new(dir, &err, &c), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err.text, "ca.crt"));
        ck_assert_int_eq(try_new("/nonexistent/sa", &err, &c), -ENOENT);
        ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_default_sa_dir_is_the_standard_path) {
        /* Without the option the standard path is used: found in a pod with a
         * service account, named in the error elsewhere. */
        setenv("KUBERNETES_SERVICE_HOST", "10.100.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", "443", 1);
        unsetenv("CLUSTER_ENDPOINT");
        struct errmsg err = { 0 };
        k8s_client *c = NULL;
        bool in_pod = access("/var/run/secrets/kubernetes.io/serviceaccount/token", R_OK) == 0 &&
                      access("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", R_OK) == 0;
        int r = k8s_new(NULL, &c, &err);
        ck_assert_int_eq(r, in_pod ? 0 : -ENOENT);
        if (!in_pod)
                ck_assert_ptr_nonnull(strstr(err.text, "/var/run/secrets/kubernetes.io/serviceaccount/"));
        k8s_free(c);
}
END_TEST

/* --- TLS ------------------------------------------------------------------------------ */

START_TEST(test_tls_ca_verified_and_bearer_sent) {
        struct api a;
        api_init(&a, "tok-1");
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct errmsg err = { 0 };
        /* the right CA: the Node arrives, with the token as a Bearer */
        k8s_client *c = client(sa_dir("tok-1\n", "loopback.pem"), NULL, 0);
        struct k8s_node *n = NULL;
        ck_assert_msg(k8s_get_node(c, NULL, &n, &err) == 0, "%s", err.text);
        ck_assert_str_eq(n->name, NODE);
        struct fakesrv_req req;
        fakesrv_request(s, 0, &req);
        ck_assert_str_eq(req.method, "GET");
        ck_assert_str_eq(req.url, "/api/v1/nodes/" NODE);
        ck_assert_str_eq(req.authorization, "Bearer tok-1");
        n = k8s_node_free(n);
        c = k8s_free(c);
        /* a CA that did not sign the server's certificate: refused, nothing sent, no retry */
        c = client(sa_dir("tok-1\n", "wrongname.pem"), NULL, 0);
        ck_assert_int_eq(k8s_get_node(c, NULL, &n, &err), -EPROTO);
        ck_assert_ptr_nonnull(strstr(err.text, "node " NODE));
        ck_assert_uint_eq(fakesrv_count(s), 1);
        ck_assert_ptr_null(n);
        k8s_free(c);
        fakesrv_stop(s);
        api_done(&a);
}
END_TEST

/* --- the token ------------------------------------------------------------------------ */

START_TEST(test_token_reread_after_rotation_on_401) {
        struct api a;
        api_init(&a, "tok-1");
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        const char *dir = sa_dir("tok-1", "loopback.pem");
        k8s_client *c = client(dir, &fc, 0);
        struct errmsg err = { 0 };
        struct k8s_eniconfig *e = NULL;
        ck_assert_int_eq(k8s_get_eniconfig(c, "us-west-2a", &e, &err), 0);
        e = k8s_eniconfig_free(e);
        /* kubelet rotates the bound token; the server stops accepting the old one */
        rotate_token(dir, "tok-2\n");
        a.valid_token = "tok-2";
        ck_assert_msg(k8s_get_eniconfig(c, "us-west-2a", &e, &err) == 0, "%s", err.text);
        ck_assert_uint_eq(k8s_token_reads(c), 2);
        ck_assert_uint_eq(fakesrv_count(s), 3);         /* ok, 401, ok */
        struct fakesrv_req req;
        fakesrv_request(s, 1, &req);
        ck_assert_str_eq(req.authorization, "Bearer tok-1");
        fakesrv_request(s, 2, &req);
        ck_assert_str_eq(req.authorization, "Bearer tok-2");
        e = k8s_eniconfig_free(e);
        /* a token the server never accepts: one re-read, then -EACCES naming the object */
        a.valid_token = "tok-3";
        ck_assert_int_eq(k8s_get_eniconfig(c, "us-west-2a", &e, &err), -EACCES);
        ck_assert_ptr_nonnull(strstr(err.text, "eniconfig us-west-2a: HTTP 401: Unauthorized"));
        ck_assert_uint_eq(k8s_token_reads(c), 3);
        ck_assert_uint_eq(fakesrv_count(s), 5);
        k8s_free(c);
        fakesrv_stop(s);
        api_done(&a);
}
END_TEST

START_TEST(test_token_reread_by_age) {
        struct api a;
        api_init(&a, "tok-1");
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        const char *dir = sa_dir("tok-1", "loopback.pem");
        k8s_client *c = client(dir, &fc, 0);
        struct errmsg err = { 0 };
        struct k8s_eniconfig *e = NULL;
        rotate_token(dir, "tok-2");     /* the old one still works: no 401 to tell */
        fc.now_ns += 30ull * 1000000000ull;
        ck_assert_int_eq(k8s_get_eniconfig(c, "us-west-2a", &e, &err), 0);
        e = k8s_eniconfig_free(e);
        ck_assert_uint_eq(k8s_token_reads(c), 1);       /* under a minute: not re-read */
        fc.now_ns += 31ull * 1000000000ull;
        a.valid_token = "tok-2";
        ck_assert_int_eq(k8s_get_eniconfig(c, "us-west-2a", &e, &err), 0);
        e = k8s_eniconfig_free(e);
        ck_assert_uint_eq(k8s_token_reads(c), 2);       /* a minute old: re-read before sending */
        ck_assert_uint_eq(fakesrv_count(s), 2);         /* and no 401 round trip */
        /* the file unreadable when due (mid-swap, say): the token in hand is kept */
        char path[1100];
        snprintf(path, sizeof path, "%s/token", dir);
        ck_assert_int_eq(unlink(path), 0);
        fc.now_ns += 61ull * 1000000000ull;
        ck_assert_msg(k8s_get_eniconfig(c, "us-west-2a", &e, &err) == 0, "%s", err.text);
        e = k8s_eniconfig_free(e);
        ck_assert_uint_eq(k8s_token_reads(c), 2);
        rotate_token(dir, "tok-2");
        ck_assert_int_eq(k8s_get_eniconfig(c, "us-west-2a", &e, &err), 0);
        e = k8s_eniconfig_free(e);
        ck_assert_uint_eq(k8s_token_reads(c), 3);       /* read again as soon as it is back */
        k8s_free(c);
        fakesrv_stop(s);
        api_done(&a);
}
END_TEST

/* --- statuses, retries, bounds ---------------------------------------------------- */

START_TEST(test_not_found_and_forbidden_are_named) {
        struct api a;
        api_init(&a, "tok-1");
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        k8s_client *c = client(sa_dir("tok-1", "loopback.pem"), &fc, 0);
        struct errmsg err = { 0 };
        struct k8s_eniconfig *e = NULL;
        ck_assert_int_eq(k8s_get_eniconfig(c, "us-west-2c", &e, &err), -ENOENT);
        ck_assert_str_eq(err.text, "eniconfig us-west-2c not found (HTTP 404)");
        ck_assert_ptr_null(e);
        struct k8s_node *n = NULL;
        ck_assert_int_eq(k8s_get_node(c, "forbidden-node", &n, &err), -EACCES);
        ck_assert_ptr_nonnull(strstr(err.text, "node forbidden-node: HTTP 403: nodes "));
        ck_assert_ptr_nonnull(strstr(err.text, "cannot get resource"));
        ck_assert_uint_eq(fakesrv_count(s), 2);         /* no retry of either */
        ck_assert_uint_eq(fc.sleeps, 0);
        /* a name that is not an object name never reaches the wire */
        ck_assert_int_eq(k8s_get_eniconfig(c, "../../api/v1/secrets", &e, &err), -EINVAL);
        ck_assert_int_eq(k8s_get_eniconfig(c, "Upper", &e, &err), -EINVAL);
        ck_assert_int_eq(k8s_get_eniconfig(c, "", &e, &err), -EINVAL);
        ck_assert_uint_eq(fakesrv_count(s), 2);
        k8s_free(c);
        fakesrv_stop(s);
        api_done(&a);
}
END_TEST

START_TEST(test_server_errors_retried_with_backoff) {
        struct api a;
        api_init(&a, "tok-1");
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        k8s_client *c = client(sa_dir("tok-1", "loopback.pem"), &fc, 0);
        struct errmsg err = { 0 };
        struct k8s_node *n = NULL;
        /* two 500s, then the Node */
        a.fail_first = 2;
        a.fail_status = 500;
        a.fail_body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"etcdserver: leader changed\",\"code\":500}";
        ck_assert_msg(k8s_get_node(c, NULL, &n, &err) == 0, "%s", err.text);
        n = k8s_node_free(n);
        ck_assert_uint_eq(fakesrv_count(s), 3);
        ck_assert_uint_eq(fc.sleeps, 2);
        ck_assert(fc.sleep_log[0] >= 200000000ull && fc.sleep_log[0] <= 300000000ull);
        ck_assert(fc.sleep_log[1] >= 400000000ull && fc.sleep_log[1] <= 600000000ull);
        /* 429 forever: bounded by the attempts, then -EIO with the status and message */
        a.fail_first = 100;
        a.fail_status = 429;
        a.fail_body = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"Too many requests, please try again later.\",\"reason\":\"TooManyRequests\",\"code\":429}";
        ck_assert_int_eq(k8s_get_node(c, NULL, &n, &err), -EIO);
        ck_assert_ptr_nonnull(strstr(err.text, "node " NODE ": HTTP 429: Too many requests"));
        ck_assert_uint_eq(fakesrv_count(s), 3 + 4);
        ck_assert_uint_eq(fc.sleeps, 2 + 3);
        k8s_free(c);
        fakesrv_stop(s);
        /* nothing listening: connection refused is retried too, then returned */
        fakeclock_init(&fc, 1700000000);
        c = client(sa_dir("tok-1", "loopback.pem"), &fc, 0);
        ck_assert_int_eq(k8s_get_node(c, NULL, &n, &err), -ECONNREFUSED);
        ck_assert_ptr_nonnull(strstr(err.text, "node " NODE));
        ck_assert_uint_eq(fc.sleeps, 3);
        k8s_free(c);
        api_done(&a);
}
END_TEST

START_TEST(test_oversize_body_refused) {
        struct api a;
        api_init(&a, "tok-1");
        a.pad = 20000;
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        k8s_client *c = client(sa_dir("tok-1", "loopback.pem"), &fc, 16384);
        struct errmsg err = { 0 };
        struct k8s_node *n = NULL;
        ck_assert_int_eq(k8s_get_node(c, NULL, &n, &err), -EFBIG);
        ck_assert_ptr_nonnull(strstr(err.text, "larger than 16384 bytes"));
        ck_assert_uint_eq(fakesrv_count(s), 1);         /* not retried */
        ck_assert_ptr_null(n);
        k8s_free(c);
        c = client(sa_dir("tok-1", "loopback.pem"), &fc, 0);
        ck_assert_msg(k8s_get_node(c, NULL, &n, &err) == 0, "%s", err.text);   /* the default cap takes it */
        k8s_node_free(n);
        k8s_free(c);
        fakesrv_stop(s);
        api_done(&a);
}
END_TEST

START_TEST(test_timeout_is_bounded_and_retried) {
        struct api a;
        api_init(&a, "tok-1");
        a.fail_first = 100;
        a.fail_status = 200;            /* never reached in time: every reply is late */
        a.delay_ms = 700;
        struct fakesrv *s = start_api(&a);
        env_for(s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        struct k8s_options o = { .sa_dir = sa_dir("tok-1", "loopback.pem"), .clock = &fc.clock, .max_attempts = 2,
                                 .http = { .total_timeout_ms = 250 } };
        k8s_client *c = NULL;
        ck_assert_int_eq(k8s_new(&o, &c, NULL), 0);
        struct errmsg err = { 0 };
        struct k8s_node *n = NULL;
        ck_assert_int_eq(k8s_get_node(c, NULL, &n, &err), -ETIMEDOUT);
        ck_assert_ptr_nonnull(strstr(err.text, "node " NODE));
        ck_assert_uint_eq(fc.sleeps, 1);                /* two attempts, one back-off */
        ck_assert_uint_eq(fakesrv_count(s), 2);
        k8s_free(c);
        fakesrv_stop(s);
        api_done(&a);
}
END_TEST

/* --- decoders --------------------------------------------------------------------------- */

START_TEST(test_decode_node) {
        char *body = fixture("k8s", "node.json");
        struct k8s_node *n = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(k8s_parse_node(body, strlen(body), &n, &err) == 0, "%s", err.text);
        ck_assert_str_eq(n->name, NODE);
        ck_assert_uint_eq(n->n_labels, 14);
        ck_assert_str_eq(k8s_node_label(n, "k8s.amazonaws.com/eniConfig"), "us-west-2a-pods");
        ck_assert_str_eq(k8s_node_label(n, "topology.kubernetes.io/zone"), "us-west-2a");
        ck_assert_ptr_null(k8s_node_label(n, "nope"));
        ck_assert_uint_eq(n->n_annotations, 3);
        ck_assert_str_eq(k8s_node_annotation(n, "alpha.kubernetes.io/provided-node-ip"), "10.0.1.23");
        ck_assert(n->unschedulable);
        ck_assert_uint_eq(n->n_taints, 2);
        ck_assert(k8s_node_has_taint(n, "node.kubernetes.io/unschedulable", "NoSchedule"));
        ck_assert(!k8s_node_has_taint(n, "node.kubernetes.io/unschedulable", "NoExecute"));
        ck_assert(k8s_node_has_taint(n, "dedicated", NULL));
        ck_assert_str_eq(n->taints[1].value, "gpu");
        ck_assert_str_eq(n->taints[0].value, "");
        ck_assert_int_eq(n->capacity_pods, 29);
        k8s_node_free(n);
        free(body);
        body = fixture("k8s", "node-minimal.json");
        ck_assert_int_eq(k8s_parse_node(body, strlen(body), &n, &err), 0);
        ck_assert_str_eq(n->name, "node0");
        ck_assert(!n->unschedulable);
        ck_assert_uint_eq(n->n_labels + n->n_annotations + n->n_taints, 0);
        ck_assert_int_eq(n->capacity_pods, -1);
        ck_assert_ptr_null(k8s_node_label(n, "x"));
        k8s_node_free(n);
        free(body);
}
END_TEST

START_TEST(test_decode_eniconfig) {
        char *body = fixture("k8s", "eniconfig.json");
        struct k8s_eniconfig *e = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(k8s_parse_eniconfig(body, strlen(body), &e, &err) == 0, "%s", err.text);
        ck_assert_str_eq(e->name, "us-west-2a");
        ck_assert_str_eq(e->subnet, "subnet-0a1b2c3d4e5f60718");
        ck_assert_uint_eq(e->n_security_groups, 2);
        ck_assert_str_eq(e->security_groups[0], "sg-0a1b2c3d4e5f60718");
        ck_assert_str_eq(e->security_groups[1], "sg-0f1e2d3c4b5a69788");
        k8s_eniconfig_free(e);
        /* a Node is not an ENIConfig, nor the other way round */
        struct k8s_node *n = NULL;
        ck_assert_int_eq(k8s_parse_node(body, strlen(body), &n, &err), -EBADMSG);
        free(body);
        /* no securityGroups: the subnet alone (the ENI then gets the node's groups) */
        const char *only_subnet = "{\"apiVersion\":\"crd.k8s.amazonaws.com/v1alpha1\",\"kind\":\"ENIConfig\","
                                  "\"metadata\":{\"name\":\"az1\"},\"spec\":{\"subnet\":\"subnet-1\"}}";
        ck_assert_int_eq(k8s_parse_eniconfig(only_subnet, strlen(only_subnet), &e, &err), 0);
        ck_assert_str_eq(e->subnet, "subnet-1");
        ck_assert_uint_eq(e->n_security_groups, 0);
        k8s_eniconfig_free(e);
}
END_TEST

START_TEST(test_decode_malformed) {
        static const char *const bad_nodes[] = {
                "",
                "[]",
                "{\"kind\":\"Node\"}",
                "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\"}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"Bad_Name\"}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":1}}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\",\"labels\":[]}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"unschedulable\":\"true\"}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"taints\":{}}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"taints\":[{\"effect\":\"NoSchedule\"}]}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"},\"status\":{\"capacity\":{\"pods\":\"1k\"}}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"},\"status\":{\"capacity\":{\"pods\":110}}}",
                "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"a\"},\"status\":{\"capacity\":{\"pods\":\"99999999999\"}}}",
        };
        struct errmsg err;
        for (size_t i = 0; i < sizeof bad_nodes / sizeof *bad_nodes; i++) {
                struct k8s_node *n = NULL;
                int r = k8s_parse_node(bad_nodes[i], strlen(bad_nodes[i]), &n, &err);
                ck_assert_msg(r == -EBADMSG, "node %zu: %d", i, r);
                ck_assert_ptr_null(n);
        }
        static const char *const bad_eniconfigs[] = {
                "{\"apiVersion\":\"crd.k8s.amazonaws.com/v1\",\"kind\":\"ENIConfig\",\"metadata\":{\"name\":\"a\"}}",
                "{\"apiVersion\":\"crd.k8s.amazonaws.com/v1alpha1\",\"kind\":\"ENIConfig\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"subnet\":7}}",
                "{\"apiVersion\":\"crd.k8s.amazonaws.com/v1alpha1\",\"kind\":\"ENIConfig\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"securityGroups\":\"sg-1\"}}",
                "{\"apiVersion\":\"crd.k8s.amazonaws.com/v1alpha1\",\"kind\":\"ENIConfig\",\"metadata\":{\"name\":\"a\"},\"spec\":{\"securityGroups\":[\"\"]}}",
                "{\"apiVersion\":\"crd.k8s.amazonaws.com/v1alpha1\",\"kind\":\"ENIConfig\",\"metadata\":{\"name\":\"a\"},\"spec\":[]}",
        };
        for (size_t i = 0; i < sizeof bad_eniconfigs / sizeof *bad_eniconfigs; i++) {
                struct k8s_eniconfig *e = NULL;
                int r = k8s_parse_eniconfig(bad_eniconfigs[i], strlen(bad_eniconfigs[i]), &e, &err);
                ck_assert_msg(r == -EBADMSG, "eniconfig %zu: %d", i, r);
                ck_assert_ptr_null(e);
        }
        char msg[32];
        const char *st = "{\"kind\":\"Status\",\"message\":\"a\\nvery long message that will be cut here\"}";
        k8s_parse_status(st, strlen(st), msg, sizeof msg);
        ck_assert_str_eq(msg, "a?very long message that will b");
        k8s_parse_status("{\"kind\":\"Node\",\"message\":\"x\"}", 30, msg, sizeof msg);
        ck_assert_str_eq(msg, "");
        k8s_parse_status("garbage", 7, msg, sizeof msg);
        ck_assert_str_eq(msg, "");
}
END_TEST

int main(void) {
        Suite *s = suite_create("k8s");
        TCase *tc = tcase_create("decode");
        tcase_add_test(tc, test_decode_node);
        tcase_add_test(tc, test_decode_eniconfig);
        tcase_add_test(tc, test_decode_malformed);
        suite_add_tcase(s, tc);
        tc = tcase_create("client");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_config_from_env_and_files);
        tcase_add_test(tc, test_default_sa_dir_is_the_standard_path);
        tcase_add_test(tc, test_tls_ca_verified_and_bearer_sent);
        tcase_add_test(tc, test_token_reread_after_rotation_on_401);
        tcase_add_test(tc, test_token_reread_by_age);
        tcase_add_test(tc, test_not_found_and_forbidden_are_named);
        tcase_add_test(tc, test_server_errors_retried_with_backoff);
        tcase_add_test(tc, test_oversize_body_refused);
        tcase_add_test(tc, test_timeout_is_bounded_and_retried);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

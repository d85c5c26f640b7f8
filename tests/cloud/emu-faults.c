/*
 * emu-faults: the cloud client against the project's emulated VPC
 * (tests/emulator), for what moto cannot do: real throttling, injected 5xx,
 * lost responses and timeouts, EC2's limits and prefix delegation. Run by
 * tests/cloud/test_emulator.py, which brings a world up and down; this
 * program talks to the world's EC2 API and control API on host loopback
 * only. Each step prints one TAP line.
 *
 * usage: emu-faults EC2_ENDPOINT CONTROL_ENDPOINT REGION SUBNET INSTANCE
 * (credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awshttp.h"
#include "ec2.h"

struct run {
        const char *ec2, *control, *region, *subnet, *instance;
        awshttp *ctl;
        ratelimit *rl;
        ec2_client *c;
        unsigned step, failed;
        char enis[8][64];
        unsigned n_enis;
};

__attribute__((format(printf, 3, 4)))
static void report(struct run *x, bool ok, const char *fmt, ...) {
        char name[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(name, sizeof name, fmt, ap);
        va_end(ap);
        printf("%s %u - %s\n", ok ? "ok" : "not ok", ++x->step, name);
        fflush(stdout);
        x->failed += !ok;
}

/* One control API call; the body is JSON. */
static bool control(struct run *x, const char *method, const char *path, const char *json) {
        char url[512];
        snprintf(url, sizeof url, "%s%s", x->control, path + (x->control[strlen(x->control) - 1] == '/'));
        struct awshttp_header h = { "Content-Type", "application/json" };
        struct awshttp_response resp;
        struct errmsg err = { 0 };
        if (awshttp_request(x->ctl, method, url, &h, 1, json, json ? strlen(json) : 0, &resp, &err) < 0) {
                fprintf(stderr, "control %s %s: %s\n", method, path, err.text);
                return false;
        }
        bool ok = resp.status == 200;
        awshttp_response_done(&resp);
        return ok;
}

static int create(struct run *x, const char *token, struct ec2_error *e) {
        struct ec2_result *r = NULL;
        struct ec2_create_eni q = { .subnet_id = x->subnet, .description = "emu-faults",
                                    .secondary_ip_count = 1, .client_token = token };
        int k = ec2_create_eni(x->c, &q, &r, e);
        if (k == 0 && x->n_enis < 8)
                snprintf(x->enis[x->n_enis++], sizeof x->enis[0], "%s", r->enis[0].id);
        ec2_result_free(r);
        return k;
}

static void throttled_create_is_retried(struct run *x) {
        struct ec2_error e = { 0 };
        bool set = control(x, "POST", "/throttle", "{\"force\": {\"ip-eni\": 3}}");
        int k = create(x, NULL, &e);
        struct ratelimit_stats st;
        ratelimit_stats(x->rl, RATELIMIT_ENI_ADDRESS, &st);
        report(x, set && k == 0 && e.attempts == 4 && st.throttled == 3,
               "3 x RequestLimitExceeded: CreateNetworkInterface retried, succeeds on attempt %u (throttled %llu)",
               e.attempts, (unsigned long long)st.throttled);
        control(x, "POST", "/throttle", "{\"force\": {\"ip-eni\": 0}}");
}

static unsigned count_enis(struct run *x) {
        const char *d[] = { "emu-faults" };
        struct ec2_filter f = { "description", d, 1 };
        struct ec2_result *r = NULL;
        unsigned n = ec2_describe_enis_page(x->c, &f, 1, 0, NULL, &r, NULL) == 0 ? (unsigned)r->n_enis : 999;
        ec2_result_free(r);
        return n;
}

static void lost_create_is_idempotent(struct run *x) {
        struct ec2_error e = { 0 };
        unsigned before = count_enis(x);
        bool set = control(x, "POST", "/faults",
                           "{\"action\": \"CreateNetworkInterface\", \"kind\": \"lost\", \"count\": 1}");
        int k = create(x, NULL, &e);
        unsigned after = count_enis(x);
        /* On a reused connection that dies unanswered libcurl itself resends once, so the
         * resend may be curl's (attempts 1) or ours (2): both carry the same ClientToken. */
        report(x, set && k == 0 && after == before + 1,
               "lost response: CreateNetworkInterface resent with the same ClientToken makes one ENI "
               "(attempts %u, ENIs %u -> %u)", e.attempts, before, after);
        control(x, "DELETE", "/faults", NULL);
        /* A fresh connection per call: curl cannot resend, our retry loop must. */
        ec2_client *keep = x->c, *fresh = NULL;
        struct ec2_options o = { .region = x->region, .endpoint = x->ec2, .limits = x->rl,
                                 .http = { .total_timeout_ms = 1000, .fresh_connection = true },
                                 .backoff_base_ns = 20000000ull };
        if (ec2_client_new(&o, &fresh, NULL) < 0)
                return report(x, false, "fresh-connection client");
        x->c = fresh;
        before = count_enis(x);
        set = control(x, "POST", "/faults", "{\"action\": \"CreateNetworkInterface\", \"kind\": \"lost\", \"count\": 1}");
        k = create(x, NULL, &e);
        after = count_enis(x);
        report(x, set && k == 0 && e.attempts == 2 && after == before + 1,
               "lost response, no connection reuse: our retry resends the same ClientToken, one ENI "
               "(attempts %u, ENIs %u -> %u)", e.attempts, before, after);
        control(x, "DELETE", "/faults", NULL);
        x->c = keep;
        ec2_client_free(fresh);
}

static void timeout_then_5xx_retried(struct run *x) {
        struct ec2_error e = { 0 };
        bool set = control(x, "POST", "/faults", "{\"action\": \"DescribeSubnets\", \"kind\": \"timeout\", "
                                                 "\"seconds\": 3, \"count\": 1}");
        const char *ids[] = { x->subnet };
        struct ec2_result *r = NULL;
        int k = ec2_describe_subnets(x->c, ids, 1, NULL, 0, &r, &e);
        report(x, set && k == 0 && e.attempts == 2, "timeout: DescribeSubnets retried after the 1 s client timeout "
               "(attempts %u)", e.attempts);
        r = ec2_result_free(r);
        control(x, "DELETE", "/faults", NULL);
        set = control(x, "POST", "/faults", "{\"action\": \"DescribeSubnets\", \"kind\": \"error\", \"status\": 500, "
                                            "\"code\": \"InternalError\", \"count\": 2}");
        k = ec2_describe_subnets(x->c, ids, 1, NULL, 0, &r, &e);
        report(x, set && k == 0 && e.attempts == 3, "2 x HTTP 500 InternalError: retried (attempts %u)", e.attempts);
        ec2_result_free(r);
        control(x, "DELETE", "/faults", NULL);
}

static void client_error_not_retried(struct run *x) {
        struct ec2_error e = { 0 };
        bool set = control(x, "POST", "/faults", "{\"action\": \"DeleteNetworkInterface\", \"kind\": \"error\", "
                                                 "\"status\": 400, \"code\": \"InvalidParameterValue\", \"count\": 5}");
        int k = ec2_delete_eni(x->c, x->enis[0], &e);
        report(x, set && k == -EINVAL && e.attempts == 1 && strcmp(e.code, "InvalidParameterValue") == 0 &&
                  e.http_status == 400 && !e.retryable,
               "HTTP 400 InvalidParameterValue: typed, not retried (attempts %u)", e.attempts);
        control(x, "DELETE", "/faults", NULL);
}

static void attach_limit(struct run *x) {
        /* m5.large takes 3 ENIs: the primary plus two; a third secondary must be refused. */
        struct ec2_error e = { 0 };
        struct ec2_result *r = NULL;
        int k = 0, attached = 0;
        for (unsigned i = 0; i < x->n_enis && i < 3 && k == 0; i++) {
                k = ec2_attach_eni(x->c, x->enis[i], x->instance, (int)i + 1, 0, &r, &e);
                r = ec2_result_free(r);
                attached += k == 0;
        }
        report(x, attached == 2 && k == -ENOSPC && strcmp(e.code, "AttachmentLimitExceeded") == 0 && e.attempts == 1,
               "third secondary ENI on an m5.large: -ENOSPC AttachmentLimitExceeded, not retried (attached %d)",
               attached);
}

static void prefix_and_address_limit(struct run *x) {
        struct ec2_error e = { 0 };
        struct ec2_result *r = NULL;
        int k = ec2_assign_private_ips(x->c, x->enis[0], 0, 1, &r, &e);
        bool prefix = k == 0 && r->n_prefixes == 1 && strstr(r->prefixes[0], "/28");
        report(x, prefix, "Ipv4PrefixCount=1 assigns one /28 (%s)", prefix ? r->prefixes[0] : e.msg.text);
        r = ec2_result_free(r);
        /* attached to an m5.large: 10 slots per ENI, a /28 takes one */
        k = ec2_assign_private_ips(x->c, x->enis[0], 20, 0, &r, &e);
        report(x, k == -ENOSPC && strcmp(e.code, "PrivateIpAddressLimitExceeded") == 0 && e.attempts == 1,
               "over the per-ENI limit: -ENOSPC PrivateIpAddressLimitExceeded, not retried (%s)", e.code);
        r = ec2_result_free(r);
}

static void cleanup(struct run *x) {
        struct ec2_result *r = NULL;
        const char *d[] = { "emu-faults" };
        struct ec2_filter f = { "description", d, 1 };
        bool ok = ec2_describe_enis_page(x->c, &f, 1, 0, NULL, &r, NULL) == 0;
        for (size_t i = 0; ok && i < r->n_enis; i++) {
                if (r->enis[i].attached)
                        ok &= ec2_detach_eni(x->c, r->enis[i].attachment.id, true, NULL) == 0;
        }
        /* Delete once each is detached (a few ms in a --fast world); NotFound means done. */
        bool done[64] = { false };
        for (int tries = 0; ok && r && tries < 100; tries++) {
                unsigned left = 0;
                for (size_t i = 0; i < r->n_enis && i < 64; i++) {
                        if (done[i])
                                continue;
                        int k = ec2_delete_eni(x->c, r->enis[i].id, NULL);
                        done[i] = k == 0 || k == -ENOENT;
                        left += !done[i];
                }
                if (left == 0)
                        break;
                struct timespec ts = { 0, 50000000 };
                nanosleep(&ts, NULL);
        }
        ec2_result_free(r);
        report(x, ok && count_enis(x) == 0, "every ENI made here is detached and deleted");
}

int main(int argc, char **argv) {
        if (argc != 6) {
                fprintf(stderr, "usage: emu-faults EC2_ENDPOINT CONTROL_ENDPOINT REGION SUBNET INSTANCE\n");
                return 2;
        }
        struct run x = { argv[1], argv[2], argv[3], argv[4], argv[5] };
        struct errmsg err = { 0 };
        if (awshttp_new(NULL, &x.ctl, &err) < 0 ||
            ratelimit_new(&(struct ratelimit_options){ .share = 1 }, &x.rl) < 0)
                return 1;
        struct ec2_options o = { .region = x.region, .endpoint = x.ec2, .limits = x.rl,
                                 .http = { .total_timeout_ms = 1000 }, .backoff_base_ns = 20000000ull };
        if (ec2_client_new(&o, &x.c, &err) < 0) {
                printf("not ok 1 - client: %s\n1..1\n", err.text);
                return 1;
        }
        throttled_create_is_retried(&x);
        lost_create_is_idempotent(&x);
        timeout_then_5xx_retried(&x);
        client_error_not_retried(&x);
        attach_limit(&x);
        prefix_and_address_limit(&x);
        cleanup(&x);
        printf("1..%u\n", x.step);
        ec2_client_free(x.c);
        ratelimit_free(x.rl);
        awshttp_free(x.ctl);
        return x.failed ? 1 : 0;
}

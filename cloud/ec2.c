/*
 * ec2: the EC2 client — endpoint and region choice, one request pipeline
 * (rate limit -> credentials -> SigV4 -> HTTP -> decode, with retries), and a
 * thin builder per action that only writes its form parameters.
 *
 * Retries: throttling codes, HTTP 5xx and transient transport errors are
 * retried up to max_attempts with full-jitter exponential backoff
 * (sleep = random(0, min(cap, base * 2^n))); everything else (4xx, bad
 * bodies, missing credentials) returns at once. The form body, and with it
 * CreateNetworkInterface's ClientToken, is built once and resent unchanged;
 * only the signature is recomputed per attempt.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ec2.h"
#include "sigv4.h"

struct ec2_client {
        awshttp *http;
        char region[64];
        char *endpoint;
        char host[256];
        unsigned max_attempts;
        uint64_t base_ns, cap_ns;
        ratelimit *limits;
        creds_provider *creds;
        bool own_creds;
        imds *imds;
        bool own_imds;
        const struct cloud_clock *clock;
        uint64_t rng;
        int64_t skew_s;                 /* EC2's clock minus ours, learnt from a Date header */
};

static const char *env(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

static bool valid_region(const char *r) {
        size_t n = strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-");
        return n > 0 && n < 64 && r[n] == '\0';
}

static int pick_region(ec2_client *c, const struct ec2_options *o, struct errmsg *err) {
        const char *r = o->region ? o->region : env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
        char from_imds[IMDS_ID_MAX];
        if (!r) {
                if (!c->imds) {
                        int k = imds_new(NULL, &c->imds, err);
                        if (k < 0)
                                return k;
                        c->own_imds = true;
                }
                int k = imds_region(c->imds, from_imds, err);
                if (k < 0) {
                        errmsg_prefix(err, "no AWS_REGION or AWS_DEFAULT_REGION, and IMDS");
                        return k;
                }
                r = from_imds;
        }
        if (!valid_region(r))
                return errmsg_set(err, -EINVAL, "region '%s' is not a region name", r);
        snprintf(c->region, sizeof c->region, "%s", r);
        return 0;
}

static int pick_endpoint(ec2_client *c, const struct ec2_options *o, struct errmsg *err) {
        const char *e = o->endpoint ? o->endpoint : env("AWS_ENDPOINT_URL_EC2") ? env("AWS_ENDPOINT_URL_EC2")
                                                                               : env("AWS_ENDPOINT_URL");
        struct buf b = { 0 };
        if (e)
                buf_puts(&b, e);
        else
                buf_printf(&b, "https://ec2.%s.amazonaws.com%s/", c->region,
                           strncmp(c->region, "cn-", 3) == 0 ? ".cn" : "");
        if (!(c->endpoint = buf_steal(&b)))
                return errmsg_set(err, -ENOMEM, "out of memory");
        if (awshttp_url_host(c->endpoint, c->host, sizeof c->host) < 0)
                return errmsg_set(err, -EINVAL, "EC2 endpoint '%s' is not an http(s) URL", c->endpoint);
        /* SigV4 signs the path; the Query API lives at "/". */
        const char *path = strchr(strstr(c->endpoint, "://") + 3, '/');
        if (path && strcmp(path, "/") != 0)
                return errmsg_set(err, -EINVAL, "EC2 endpoint '%s': only the path / is supported", c->endpoint);
        return 0;
}

static int setup_creds(ec2_client *c, const struct ec2_options *o, struct errmsg *err) {
        if (o->creds) {
                c->creds = o->creds;
                return 0;
        }
        /* Only an imds handle this client owns is lent: a caller's handle may be in
         * use by another thread, and imds handles are single-threaded. */
        struct creds_options co = { .imds = c->own_imds ? c->imds : NULL, .region = c->region,
                                    .http = o->http, .clock = c->clock };
        int r = creds_provider_new(&co, &c->creds, err);
        c->own_creds = r == 0;
        return r;
}

int ec2_client_new(const struct ec2_options *opts, ec2_client **ret, struct errmsg *err) {
        static const struct ec2_options none;
        const struct ec2_options *o = opts ? opts : &none;
        ec2_client *c = calloc(1, sizeof *c);
        if (!c)
                return errmsg_set(err, -ENOMEM, "out of memory");
        c->clock = o->clock ? o->clock : cloud_clock_system();
        c->max_attempts = o->max_attempts ? o->max_attempts : 5;
        c->base_ns = o->backoff_base_ns ? o->backoff_base_ns : 100000000ull;
        c->cap_ns = o->backoff_cap_ns ? o->backoff_cap_ns : 5000000000ull;
        c->limits = o->limits;
        c->imds = o->imds;
        c->rng = o->seed ? o->seed : cloud_random64() | 1;
        int r = pick_region(c, o, err);
        if (r == 0)
                r = pick_endpoint(c, o, err);
        if (r == 0)
                r = awshttp_new(&o->http, &c->http, err);
        if (r == 0)
                r = setup_creds(c, o, err);
        if (r < 0) {
                ec2_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

ec2_client *ec2_client_free(ec2_client *c) {
        if (!c)
                return NULL;
        if (c->own_creds)
                creds_provider_free(c->creds);
        if (c->own_imds)
                imds_free(c->imds);
        awshttp_free(c->http);
        free(c->endpoint);
        free(c);
        return NULL;
}

const char *ec2_client_region(const ec2_client *c) {
        return c->region;
}

const char *ec2_client_endpoint(const ec2_client *c) {
        return c->endpoint;
}

unsigned long ec2_client_connections(const ec2_client *c) {
        return awshttp_connections(c->http);
}

/* --- the pipeline --------------------------------------------------------- */

static uint64_t next_random(ec2_client *c) {
        c->rng ^= c->rng << 13;
        c->rng ^= c->rng >> 7;
        c->rng ^= c->rng << 17;
        return c->rng;
}

static uint64_t backoff_ns(ec2_client *c, unsigned retry) {
        uint64_t ceiling = c->base_ns;
        for (unsigned i = 0; i < retry && ceiling < c->cap_ns; i++)
                ceiling *= 2;
        if (ceiling > c->cap_ns)
                ceiling = c->cap_ns;
        return next_random(c) % (ceiling + 1);
}

static int send_signed(ec2_client *c, const struct buf *form, const struct creds_value *cv,
                       struct awshttp_response *resp, struct errmsg *err) {
        static const char ctype[] = "application/x-www-form-urlencoded; charset=utf-8";
        struct sigv4_key key = { cv->access_key_id, cv->secret_access_key, cv->session_token };
        struct sigv4_request sr = {
                .method = "POST", .host = c->host, .path = "/", .content_type = ctype,
                .payload = form->p, .payload_len = form->len, .region = c->region, .service = "ec2",
                .when = cloud_clock_wall(c->clock) + (time_t)c->skew_s,
        };
        struct sigv4_signature sig;
        int r = sigv4_sign(&sr, &key, &sig);
        if (r < 0)
                return errmsg_set(err, r, "could not sign the request");
        struct awshttp_header h[] = {
                { "Content-Type", ctype },
                { "X-Amz-Date", sig.amz_date },
                { "Authorization", sig.authorization },
                { "X-Amz-Security-Token", cv->session_token },
        };
        return awshttp_request(c->http, "POST", c->endpoint, h, cv->session_token[0] ? 4 : 3,
                               form->p, form->len, resp, err);
}

/* The codes EC2/STS use for a request signed at the wrong time. */
static bool skew_code(const char *code) {
        static const char *const codes[] = { "RequestExpired", "RequestTimeTooSkewed", "RequestInTheFuture",
                                             "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure" };
        for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
                if (strcmp(code, codes[i]) == 0)
                        return true;
        return false;
}

/*
 * A node whose clock is off by more than EC2's 5 minutes gets every request
 * refused. As the SDKs do, learn the offset from the response's Date header
 * and retry at once; only a large measured skew counts, so a real auth
 * failure on a synchronized node is still final.
 */
static bool correct_skew(ec2_client *c, const struct awshttp_response *resp, const struct ec2_error *err) {
        if (!resp->date || !skew_code(err->code))
                return false;
        int64_t skew = (int64_t)resp->date - (int64_t)cloud_clock_wall(c->clock);
        if (skew - c->skew_s < 240 && skew - c->skew_s > -240)
                return false;
        c->skew_s = skew;
        return true;
}

/* A failure with no EC2 answer: forget the previous attempt's answer (code,
 * HTTP status, request id), keep the sentence and the attempt count. */
static void error_no_answer(struct ec2_error *err) {
        struct ec2_error kept = { .msg = err->msg, .attempts = err->attempts };
        *err = kept;
}

/* One attempt: 0, or a negative errno with err filled and err->retryable set. */
static int attempt(ec2_client *c, enum ec2_action a, const struct buf *form, struct creds_value *cv,
                   struct ec2_result **ret, struct ec2_error *err, bool *ret_skewed) {
        struct awshttp_response resp;
        int r = send_signed(c, form, cv, &resp, &err->msg);
        if (r < 0) {
                error_no_answer(err);
                err->retryable = awshttp_error_is_transient(r);
                errmsg_prefix(&err->msg, "%s", ec2_action_name(a));
                return r;
        }
        r = ec2_parse_response(a, resp.status, resp.content_type, resp.body, resp.len, ret, err);
        if (r < 0 && correct_skew(c, &resp, err)) {
                err->retryable = true;
                *ret_skewed = true;
        }
        awshttp_response_done(&resp);
        return r;
}

static int ec2_call(ec2_client *c, enum ec2_action a, enum ratelimit_category cat, const struct buf *form,
                    struct ec2_result **ret, struct ec2_error *err_out) {
        struct ec2_error local, *err = err_out ? err_out : &local;
        *err = (struct ec2_error){ 0 };
        int r = buf_done(form);
        if (r < 0)
                return errmsg_set(&err->msg, r, "%s: out of memory", ec2_action_name(a));
        struct creds_value *cv = malloc(sizeof *cv);
        if (!cv)
                return errmsg_set(&err->msg, -ENOMEM, "%s: out of memory", ec2_action_name(a));
        bool skewed = false;
        for (unsigned n = 0; n < c->max_attempts; n++) {
                if (n > 0 && !skewed)           /* a corrected clock is retried at once */
                        cloud_clock_sleep(c->clock, backoff_ns(c, n - 1));
                skewed = false;
                if (c->limits && (r = ratelimit_take(c->limits, cat)) < 0) {
                        error_no_answer(err);
                        errmsg_set(&err->msg, r, "%s: client-side rate limit (%s) would wait too long",
                                   ec2_action_name(a), ratelimit_category_name(cat));
                        break;
                }
                if ((r = creds_get(c->creds, cv, &err->msg)) < 0) {
                        error_no_answer(err);
                        errmsg_prefix(&err->msg, "%s", ec2_action_name(a));
                        break;
                }
                err->attempts = n + 1;
                uint64_t t0 = cloud_clock_mono(c->clock);
                r = attempt(c, a, form, cv, ret, err, &skewed);
                ratelimit_record(c->limits, cat, cloud_clock_mono(c->clock) - t0, r < 0,
                                 r < 0 && ec2_code_is_throttling(err->code));
                if (r == 0 || !err->retryable)
                        break;
        }
        creds_value_wipe(cv);
        free(cv);
        return r;
}

/* --- forms ---------------------------------------------------------------- */

static void form_add(struct buf *f, const char *key, const char *value) {
        if (f->len)
                buf_append(f, "&", 1);
        buf_form_encode(f, key, strlen(key));
        buf_append(f, "=", 1);
        buf_form_encode(f, value, strlen(value));
}

__attribute__((format(printf, 3, 4)))
static void form_addf(struct buf *f, const char *key, const char *fmt, ...) {
        char v[128];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v, sizeof v, fmt, ap);
        va_end(ap);
        form_add(f, key, v);
}

static void form_start(struct buf *f, enum ec2_action a) {
        *f = (struct buf){ 0 };
        form_add(f, "Action", ec2_action_name(a));
        form_add(f, "Version", EC2_API_VERSION);
}

/* Prefix.1, Prefix.2, ... */
static void form_list(struct buf *f, const char *prefix, const char *const *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char key[96];
                snprintf(key, sizeof key, "%s.%zu", prefix, i + 1);
                form_add(f, key, v[i]);
        }
}

static void form_filters(struct buf *f, const struct ec2_filter *flt, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char key[64];
                snprintf(key, sizeof key, "Filter.%zu.Name", i + 1);
                form_add(f, key, flt[i].name);
                snprintf(key, sizeof key, "Filter.%zu.Value", i + 1);
                form_list(f, key, flt[i].values, flt[i].n_values);
        }
}

static void form_tags(struct buf *f, const char *prefix, const struct ec2_tag *tags, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char key[96];
                snprintf(key, sizeof key, "%s.%zu.Key", prefix, i + 1);
                form_add(f, key, tags[i].key);
                snprintf(key, sizeof key, "%s.%zu.Value", prefix, i + 1);
                form_add(f, key, tags[i].value ? tags[i].value : "");
        }
}

static int run(ec2_client *c, enum ec2_action a, enum ratelimit_category cat, struct buf *f,
               struct ec2_result **ret, struct ec2_error *err) {
        struct ec2_result *res = NULL;
        int r = ec2_call(c, a, cat, f, &res, err);
        buf_free(f);
        if (r < 0)
                return r;
        if (ret)
                *ret = res;
        else
                ec2_result_free(res);
        return 0;
}

static int invalid(struct ec2_error *err, enum ec2_action a, const char *why) {
        if (err) {
                *err = (struct ec2_error){ 0 };
                errmsg_set(&err->msg, -EINVAL, "%s: %s", ec2_action_name(a), why);
        }
        return -EINVAL;
}

/* --- the actions ---------------------------------------------------------- */

int ec2_describe_instance(ec2_client *c, const char *instance_id, struct ec2_result **ret, struct ec2_error *err) {
        if (!c || !instance_id || !*instance_id)
                return invalid(err, EC2_DESCRIBE_INSTANCES, "an instance id is required");
        struct buf f;
        form_start(&f, EC2_DESCRIBE_INSTANCES);
        form_add(&f, "InstanceId.1", instance_id);
        /* No filter, no pagination: EC2 counts it in the smaller "unfiltered" bucket. */
        return run(c, EC2_DESCRIBE_INSTANCES, RATELIMIT_UNFILTERED_DESCRIBE, &f, ret, err);
}

int ec2_describe_instance_types(ec2_client *c, const char *const *types, size_t n,
                                struct ec2_result **ret, struct ec2_error *err) {
        if (!c || n == 0 || !types)
                return invalid(err, EC2_DESCRIBE_INSTANCE_TYPES, "at least one instance type is required");
        struct buf f;
        form_start(&f, EC2_DESCRIBE_INSTANCE_TYPES);
        form_list(&f, "InstanceType", types, n);
        return run(c, EC2_DESCRIBE_INSTANCE_TYPES, RATELIMIT_NON_MUTATING, &f, ret, err);
}

int ec2_describe_subnets(ec2_client *c, const char *const *ids, size_t n_ids,
                         const struct ec2_filter *filters, size_t n_filters,
                         struct ec2_result **ret, struct ec2_error *err) {
        if (!c || (n_ids && !ids) || (n_filters && !filters))
                return invalid(err, EC2_DESCRIBE_SUBNETS, "bad arguments");
        struct buf f;
        form_start(&f, EC2_DESCRIBE_SUBNETS);
        form_list(&f, "SubnetId", ids, n_ids);
        form_filters(&f, filters, n_filters);
        return run(c, EC2_DESCRIBE_SUBNETS, RATELIMIT_NON_MUTATING, &f, ret, err);
}

int ec2_describe_enis(ec2_client *c, const char *const *ids, size_t n,
                      struct ec2_result **ret, struct ec2_error *err) {
        if (!c || n == 0 || !ids)
                return invalid(err, EC2_DESCRIBE_NETWORK_INTERFACES, "at least one ENI id is required");
        struct buf f;
        form_start(&f, EC2_DESCRIBE_NETWORK_INTERFACES);
        form_list(&f, "NetworkInterfaceId", ids, n);
        return run(c, EC2_DESCRIBE_NETWORK_INTERFACES, RATELIMIT_UNFILTERED_DESCRIBE, &f, ret, err);
}

int ec2_describe_enis_page(ec2_client *c, const struct ec2_filter *filters, size_t n_filters,
                           unsigned max_results, const char *next_token,
                           struct ec2_result **ret, struct ec2_error *err) {
        if (!c || (n_filters && !filters) || (max_results && (max_results < 5 || max_results > 1000)))
                return invalid(err, EC2_DESCRIBE_NETWORK_INTERFACES, "MaxResults must be 5..1000");
        struct buf f;
        form_start(&f, EC2_DESCRIBE_NETWORK_INTERFACES);
        form_filters(&f, filters, n_filters);
        if (max_results)
                form_addf(&f, "MaxResults", "%u", max_results);
        if (next_token && *next_token)
                form_add(&f, "NextToken", next_token);
        bool unfiltered = n_filters == 0 && max_results == 0;
        return run(c, EC2_DESCRIBE_NETWORK_INTERFACES,
                   unfiltered ? RATELIMIT_UNFILTERED_DESCRIBE : RATELIMIT_NON_MUTATING, &f, ret, err);
}

static void client_token(char out[static 33]) {
        snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, cloud_random64(), cloud_random64());
}

int ec2_create_eni(ec2_client *c, const struct ec2_create_eni *q, struct ec2_result **ret, struct ec2_error *err) {
        if (!c || !q || !q->subnet_id || (q->secondary_ip_count && q->prefix_count) ||
            (q->n_security_groups && !q->security_groups) || (q->n_tags && !q->tags))
                return invalid(err, EC2_CREATE_NETWORK_INTERFACE, "a subnet and at most one of IP count and prefix count");
        char token[33];
        client_token(token);
        struct buf f;
        form_start(&f, EC2_CREATE_NETWORK_INTERFACE);
        form_add(&f, "SubnetId", q->subnet_id);
        form_list(&f, "SecurityGroupId", q->security_groups, q->n_security_groups);
        if (q->description)
                form_add(&f, "Description", q->description);
        if (q->n_tags) {
                form_add(&f, "TagSpecification.1.ResourceType", "network-interface");
                form_tags(&f, "TagSpecification.1.Tag", q->tags, q->n_tags);
        }
        if (q->secondary_ip_count)
                form_addf(&f, "SecondaryPrivateIpAddressCount", "%u", q->secondary_ip_count);
        if (q->prefix_count)
                form_addf(&f, "Ipv4PrefixCount", "%u", q->prefix_count);
        form_add(&f, "ClientToken", q->client_token ? q->client_token : token);
        return run(c, EC2_CREATE_NETWORK_INTERFACE, RATELIMIT_ENI_ADDRESS, &f, ret, err);
}

int ec2_attach_eni(ec2_client *c, const char *eni_id, const char *instance_id, int device_index,
                   int network_card, struct ec2_result **ret, struct ec2_error *err) {
        if (!c || !eni_id || !instance_id || device_index < 0 || network_card < 0)
                return invalid(err, EC2_ATTACH_NETWORK_INTERFACE, "bad arguments");
        struct buf f;
        form_start(&f, EC2_ATTACH_NETWORK_INTERFACE);
        form_add(&f, "NetworkInterfaceId", eni_id);
        form_add(&f, "InstanceId", instance_id);
        form_addf(&f, "DeviceIndex", "%d", device_index);
        form_addf(&f, "NetworkCardIndex", "%d", network_card);
        return run(c, EC2_ATTACH_NETWORK_INTERFACE, RATELIMIT_MUTATING, &f, ret, err);
}

int ec2_set_delete_on_termination(ec2_client *c, const char *eni_id, const char *attachment_id,
                                  bool delete_on_termination, struct ec2_error *err) {
        if (!c || !eni_id || !attachment_id)
                return invalid(err, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, "bad arguments");
        struct buf f;
        form_start(&f, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE);
        form_add(&f, "NetworkInterfaceId", eni_id);
        form_add(&f, "Attachment.AttachmentId", attachment_id);
        form_add(&f, "Attachment.DeleteOnTermination", delete_on_termination ? "true" : "false");
        return run(c, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, RATELIMIT_ENI_ADDRESS, &f, NULL, err);
}

int ec2_set_security_groups(ec2_client *c, const char *eni_id, const char *const *groups, size_t n,
                            struct ec2_error *err) {
        if (!c || !eni_id || n == 0 || !groups)
                return invalid(err, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, "at least one security group");
        struct buf f;
        form_start(&f, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE);
        form_add(&f, "NetworkInterfaceId", eni_id);
        form_list(&f, "SecurityGroupId", groups, n);
        return run(c, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, RATELIMIT_ENI_ADDRESS, &f, NULL, err);
}

int ec2_assign_private_ips(ec2_client *c, const char *eni_id, unsigned ip_count, unsigned prefix_count,
                           struct ec2_result **ret, struct ec2_error *err) {
        if (!c || !eni_id || !ip_count == !prefix_count)
                return invalid(err, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, "exactly one of IP count and prefix count");
        struct buf f;
        form_start(&f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES);
        form_add(&f, "NetworkInterfaceId", eni_id);
        if (ip_count)
                form_addf(&f, "SecondaryPrivateIpAddressCount", "%u", ip_count);
        else
                form_addf(&f, "Ipv4PrefixCount", "%u", prefix_count);
        return run(c, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, RATELIMIT_ENI_ADDRESS, &f, ret, err);
}

int ec2_unassign_private_ips(ec2_client *c, const char *eni_id, const char *const *items, size_t n,
                             bool prefixes, struct ec2_error *err) {
        if (!c || !eni_id || n == 0 || !items)
                return invalid(err, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES, "at least one address or prefix");
        struct buf f;
        form_start(&f, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES);
        form_add(&f, "NetworkInterfaceId", eni_id);
        form_list(&f, prefixes ? "Ipv4Prefix" : "PrivateIpAddress", items, n);
        return run(c, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES, RATELIMIT_ENI_ADDRESS, &f, NULL, err);
}

int ec2_assign_ipv6(ec2_client *c, const char *eni_id, unsigned address_count, unsigned prefix_count,
                    struct ec2_result **ret, struct ec2_error *err) {
        if (!c || !eni_id || !address_count == !prefix_count)
                return invalid(err, EC2_ASSIGN_IPV6_ADDRESSES, "exactly one of address count and prefix count");
        struct buf f;
        form_start(&f, EC2_ASSIGN_IPV6_ADDRESSES);
        form_add(&f, "NetworkInterfaceId", eni_id);
        if (address_count)
                form_addf(&f, "Ipv6AddressCount", "%u", address_count);
        else
                form_addf(&f, "Ipv6PrefixCount", "%u", prefix_count);
        return run(c, EC2_ASSIGN_IPV6_ADDRESSES, RATELIMIT_ENI_ADDRESS, &f, ret, err);
}

/* Assign or Unassign IPv6 items: Ipv6Addresses.N or Ipv6Prefix.N (the botocore model's serialized names). */
static int ipv6_items(ec2_client *c, enum ec2_action a, const char *eni_id, const char *const *items, size_t n,
                      bool prefixes, struct ec2_result **ret, struct ec2_error *err) {
        if (!c || !eni_id || n == 0 || !items)
                return invalid(err, a, "at least one address or prefix");
        struct buf f;
        form_start(&f, a);
        form_add(&f, "NetworkInterfaceId", eni_id);
        form_list(&f, prefixes ? "Ipv6Prefix" : "Ipv6Addresses", items, n);
        return run(c, a, RATELIMIT_ENI_ADDRESS, &f, ret, err);
}

int ec2_assign_ipv6_items(ec2_client *c, const char *eni_id, const char *const *items, size_t n, bool prefixes,
                          struct ec2_result **ret, struct ec2_error *err) {
        return ipv6_items(c, EC2_ASSIGN_IPV6_ADDRESSES, eni_id, items, n, prefixes, ret, err);
}

int ec2_unassign_ipv6(ec2_client *c, const char *eni_id, const char *const *items, size_t n, bool prefixes,
                      struct ec2_result **ret, struct ec2_error *err) {
        return ipv6_items(c, EC2_UNASSIGN_IPV6_ADDRESSES, eni_id, items, n, prefixes, ret, err);
}

int ec2_detach_eni(ec2_client *c, const char *attachment_id, bool force, struct ec2_error *err) {
        if (!c || !attachment_id)
                return invalid(err, EC2_DETACH_NETWORK_INTERFACE, "an attachment id is required");
        struct buf f;
        form_start(&f, EC2_DETACH_NETWORK_INTERFACE);
        form_add(&f, "AttachmentId", attachment_id);
        if (force)
                form_add(&f, "Force", "true");
        return run(c, EC2_DETACH_NETWORK_INTERFACE, RATELIMIT_MUTATING, &f, NULL, err);
}

int ec2_delete_eni(ec2_client *c, const char *eni_id, struct ec2_error *err) {
        if (!c || !eni_id)
                return invalid(err, EC2_DELETE_NETWORK_INTERFACE, "an ENI id is required");
        struct buf f;
        form_start(&f, EC2_DELETE_NETWORK_INTERFACE);
        form_add(&f, "NetworkInterfaceId", eni_id);
        return run(c, EC2_DELETE_NETWORK_INTERFACE, RATELIMIT_ENI_ADDRESS, &f, NULL, err);
}

int ec2_create_tags(ec2_client *c, const char *const *resource_ids, size_t n_ids,
                    const struct ec2_tag *tags, size_t n_tags, struct ec2_error *err) {
        if (!c || !n_ids || !resource_ids || !n_tags || !tags)
                return invalid(err, EC2_CREATE_TAGS, "resources and tags are required");
        struct buf f;
        form_start(&f, EC2_CREATE_TAGS);
        form_list(&f, "ResourceId", resource_ids, n_ids);
        form_tags(&f, "Tag", tags, n_tags);
        return run(c, EC2_CREATE_TAGS, RATELIMIT_CREATE_TAGS, &f, NULL, err);
}

/*
 * introspect: the HTTP endpoints (see introspect.h) on libmicrohttpd.
 *
 * Each listener is a socket made here (TCP on an IPv4 address, or a Unix
 * socket for "unix:/path") and handed to its own MHD daemon with an internal
 * polling thread. Both daemons read the same store handle, so reads take the
 * module's lock. Bodies are rendered fresh on each request from the store,
 * the metrics counters and the EC2 rate limiter; nothing is cached.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "introspect.h"
#include "log.h"
#include "poolview.h"
#include "vtime.h"

struct introspect {
        struct introspect_options o;
        pthread_mutex_t lock;
        struct MHD_Daemon *json_d, *metrics_d;
};

/* --- a growable text buffer for the Prometheus body ------------------------------- */

struct text {
        char *buf;
        size_t len, cap;
        bool oom;
};

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(struct text *t, const char *fmt, ...) {
        for (;;) {
                if (t->oom)
                        return;
                va_list ap;
                va_start(ap, fmt);
                int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return;
                if (t->buf && t->len + (size_t)n < t->cap) {
                        t->len += (size_t)n;
                        return;
                }
                size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
                char *nb = realloc(t->buf, cap);
                if (!nb) {
                        t->oom = true;
                        return;
                }
                t->buf = nb;
                t->cap = cap;
        }
}

static void metric(struct text *t, const char *name, const char *type, const char *help, double v) {
        tprintf(t, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void render_ec2(struct text *t, ratelimit *rl) {
        static const char *const heads[][2] = {
                { "awscni_ec2api_req_count", "EC2 API requests sent, by throttling category" },
                { "awscni_ec2api_error_count", "EC2 API requests that failed, by throttling category" },
                { "vpcipam_ec2_throttled_total", "EC2 API requests answered RequestLimitExceeded" },
                { "vpcipam_ec2_throttle_waits_total", "times a call waited for the client-side token bucket" },
                { "vpcipam_ec2_throttle_wait_seconds_total", "time spent waiting for the client-side token bucket" },
                { "awscni_aws_api_latency_ms_sum", "total EC2 API latency in ms" },
        };
        for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++) {
                tprintf(t, "# HELP %s %s\n# TYPE %s counter\n", heads[h][0], heads[h][1], heads[h][0]);
                for (int c = 0; rl && c < _RATELIMIT_CATEGORY_MAX; c++) {
                        struct ratelimit_stats st;
                        ratelimit_stats(rl, (enum ratelimit_category)c, &st);
                        double v = h == 0 ? st.calls : h == 1 ? st.errors : h == 2 ? st.throttled : h == 3 ? st.waits
                                   : h == 4 ? st.wait_ns / 1e9 : st.latency_ns / 1e6;
                        tprintf(t, "%s{category=\"%s\"} %.17g\n", heads[h][0],
                                ratelimit_category_name((enum ratelimit_category)c), v);
                }
        }
        const char *g = "vpcipam_ec2_rate_per_second";
        tprintf(t, "# HELP %s client-side refill rate now (cut on throttling, back to the share within 20 s)\n"
                   "# TYPE %s gauge\n", g, g);
        for (int c = 0; rl && c < _RATELIMIT_CATEGORY_MAX; c++) {
                struct ratelimit_stats st;
                ratelimit_stats(rl, (enum ratelimit_category)c, &st);
                tprintf(t, "%s{category=\"%s\"} %.17g\n", g, ratelimit_category_name((enum ratelimit_category)c),
                        st.rate_per_s);
        }
}

/* IPv6 mode: the node's /80s, the /128s pods hold or that cool, the IPv4 egress addresses held. */
static void render_ipv6(struct text *t, const struct store_stats *st) {
        metric(t, "vpcipam_ipv6_prefixes", "gauge", "IPv6 /80 prefixes pods get their addresses from",
               st->ipv6_prefixes);
        metric(t, "vpcipam_assigned_ipv6_addresses", "gauge", "IPv6 /128s held by pods", st->ipv6_assigned);
        metric(t, "vpcipam_cooldown_ipv6_addresses", "gauge", "released IPv6 /128s still cooling", st->ipv6_cooldown);
        metric(t, "vpcipam_egress_ipv4_addresses", "gauge", "IPv4 egress addresses (169.254.172.0/22) held by pods",
               st->egress_assigned);
}

static void render_wait_histogram(struct text *t, const struct metrics_snapshot *ms) {
        const uint64_t *bounds = metrics_wait_bounds();
        const char *n = "vpcipam_add_wait_seconds";
        tprintf(t, "# HELP %s how long ADDs waited for an address\n# TYPE %s histogram\n", n, n);
        for (int b = 0; b < METRICS_N_WAIT_BUCKETS; b++)
                tprintf(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", n, bounds[b] / 1000.0, ms->wait_buckets[b]);
        tprintf(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %g\n%s_count %" PRIu64 "\n", n,
                ms->wait_buckets[METRICS_N_WAIT_BUCKETS], n, ms->wait_sum_ms / 1000.0, n, ms->wait_count);
}

/* The counters /metrics exposes: aws-node's name where the meaning is the same. */
static const struct {
        const char *name, *help;
        enum metrics_counter which;
} counters[] = {
        { "awscni_add_ip_req_count", "ADD requests", METRICS_ADD_REQUESTS },
        { "awscni_del_ip_req_count", "DEL requests", METRICS_DEL_REQUESTS },
        { "awscni_no_available_ip_addresses", "ADDs answered without an address", METRICS_NO_ADDRESS },
        { "awscni_force_removed_ips", "addresses EC2 took while a pod held them", METRICS_FORCE_REMOVED_IPS },
        { "awscni_force_removed_enis", "ENIs that disappeared while known", METRICS_FORCE_REMOVED_ENIS },
        { "vpcipam_add_waited_total", "ADDs that found the pool empty and waited", METRICS_ADD_WAITED },
        { "vpcipam_reconciles_total", "planner passes", METRICS_RECONCILES },
        { "vpcipam_enis_created_total", "ENIs created", METRICS_ENIS_CREATED },
        { "vpcipam_enis_deleted_total", "ENIs deleted", METRICS_ENIS_DELETED },
        { "vpcipam_leaked_enis_deleted_total", "leaked ENIs cleaned up", METRICS_LEAKED_ENIS_DELETED },
        { "vpcipam_ips_assigned_total", "addresses obtained from EC2", METRICS_IPS_ASSIGNED },
        { "vpcipam_ips_released_total", "addresses returned to EC2", METRICS_IPS_RELEASED },
        { "vpcipam_gone_pods_released_total", "addresses of vanished pods released", METRICS_PODS_GONE_RELEASED },
        { "vpcipam_pod_veths_deleted_total", "host veths of deleted pods deleted", METRICS_POD_VETHS_DELETED },
        { "vpcipam_pod_veth_delete_errors_total", "host veths of deleted pods that could not be deleted",
          METRICS_POD_VETH_DELETE_ERRORS },
        { "vpcipam_bad_requests_total", "refused socket messages", METRICS_BAD_REQUESTS },
        { "vpcipam_refused_peers_total", "socket clients refused for their uid", METRICS_PEERS_REFUSED },
        { "vpcipam_prefix_fallbacks_total", "times /32s were assigned because the subnet had no free /28",
          METRICS_PREFIX_FALLBACKS },
};

int introspect_render_metrics(introspect *h, char **ret) {
        struct text t = { 0 };
        struct store_stats st = { 0 };
        struct store_intent *its = NULL;
        size_t n_open = 0;
        pthread_mutex_lock(&h->lock);
        int r = store_stats(h->o.store, vtime_wall_ms(), &st);
        if (r >= 0 && (r = store_intents_open(h->o.store, &its, &n_open)) >= 0)
                free(its);
        pthread_mutex_unlock(&h->lock);
        if (r < 0)
                return r;
        struct metrics_snapshot ms;
        metrics_snapshot(h->o.metrics, &ms);
        int max_enis = plan_max_enis(&h->o.node->limits, &h->o.cfg->pool);
        metric(&t, "awscni_total_ip_addresses", "gauge", "addresses in the pool", st.total);
        metric(&t, "awscni_assigned_ip_addresses", "gauge", "addresses held by pods (IPv6 /128s included)",
               st.assigned + st.ipv6_assigned);
        metric(&t, "awscni_total_ipv4_prefixes", "gauge", "/28 prefixes in the pool (prefix delegation)", st.prefixes);
        metric(&t, "vpcipam_available_ip_addresses", "gauge", "addresses an ADD can get now", st.available);
        metric(&t, "vpcipam_cooldown_ip_addresses", "gauge", "released addresses still cooling", st.cooldown);
        metric(&t, "awscni_eni_allocated", "gauge", "ENIs attached and serving", st.enis);
        metric(&t, "awscni_eni_max", "gauge", "ENIs this node may attach", max_enis);
        bool pd = h->o.cfg->prefix_delegation && h->o.node->prefix_supported;     /* a slot holds a /28 */
        metric(&t, "awscni_ip_max", "gauge", "addresses those ENIs can hold",
               max_enis * plan_ips_per_eni(&h->o.node->limits) * (pd ? PLAN_PREFIX_IPS : 1));
        for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
                metric(&t, counters[i].name, "counter", counters[i].help, ms.counters[counters[i].which]);
        metric(&t, "vpcipam_pending_intents", "gauge", "EC2 mutations begun and not yet settled", (double)n_open);
        if (h->o.cfg->ipv6)
                render_ipv6(&t, &st);
        render_wait_histogram(&t, &ms);
        render_ec2(&t, h->o.limits);
        if (t.oom) {
                free(t.buf);
                return -ENOMEM;
        }
        *ret = t.buf;
        return 0;
}

/* --- JSON ----------------------------------------------------------------------- */

/* /v1/pool: poolview's counts plus the instance's limits. */
static cJSON *json_pool(introspect *h) {
        cJSON *o = poolview_pool(h->o.store, vtime_wall_ms(), 0, true, "");
        if (!o)
                return NULL;
        cJSON_DeleteItemFromObject(o, "waiting_adds");
        cJSON_DeleteItemFromObject(o, "ready");
        cJSON_DeleteItemFromObject(o, "reason");
        cJSON_AddStringToObject(o, "instance_type", h->o.node->instance_type);
        cJSON_AddNumberToObject(o, "max_enis", plan_max_enis(&h->o.node->limits, &h->o.cfg->pool));
        cJSON_AddNumberToObject(o, "ipv4_per_eni", h->o.node->limits.ipv4_per_eni);
        struct plan_limits l = h->o.node->limits;
        if (h->o.cfg->custom_networking && l.max_enis > 1)
                l.max_enis--;           /* the primary ENI carries no pods */
        cJSON_AddNumberToObject(o, "max_pods", plan_max_pods(&l));
        return o;
}

static cJSON *json_env(introspect *h) {
        cJSON *o = cJSON_CreateObject();
        const struct poolconfig *p = &h->o.cfg->pool;
        cJSON_AddNumberToObject(o, "WARM_ENI_TARGET", p->warm_eni_target);
        cJSON_AddNumberToObject(o, "WARM_IP_TARGET", p->warm_ip_target);
        cJSON_AddNumberToObject(o, "MINIMUM_IP_TARGET", p->minimum_ip_target);
        cJSON_AddNumberToObject(o, "WARM_PREFIX_TARGET", p->warm_prefix_target);
        cJSON_AddNumberToObject(o, "MAX_ENI", p->max_eni);
        cJSON_AddNumberToObject(o, "IP_COOLDOWN_PERIOD", p->ip_cooldown_s);
        for (size_t i = 0; ipamd_config_var(i); i++) {
                const char *v = getenv(ipamd_config_var(i)->name);
                cJSON_AddStringToObject(o, ipamd_config_var(i)->name, v ? v : ipamd_config_var(i)->default_value);
        }
        return o;
}

int introspect_render_json(introspect *h, const char *path, char **ret) {
        cJSON *body = NULL;
        pthread_mutex_lock(&h->lock);
        if (strcmp(path, "/v1/enis") == 0)
                body = poolview_enis(h->o.store, vtime_wall_ms());
        else if (strcmp(path, "/v1/pods") == 0)
                body = poolview_pods(h->o.store);
        else if (strcmp(path, "/v1/pool") == 0)
                body = json_pool(h);
        else if (strcmp(path, "/v1/ipamd-env-settings") == 0)
                body = json_env(h);
        pthread_mutex_unlock(&h->lock);
        if (strcmp(path, "/") == 0) {
                body = cJSON_CreateObject();
                const char *paths[] = { "/v1/enis", "/v1/pods", "/v1/pool", "/v1/ipamd-env-settings" };
                cJSON_AddItemToObject(body, "AvailableCommands", cJSON_CreateStringArray(paths, 4));
        }
        if (!body)
                return -ENOENT;
        *ret = cJSON_Print(body);
        cJSON_Delete(body);
        return *ret ? 0 : -ENOMEM;
}

/* --- HTTP plumbing ----------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, char *body, const char *type) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", type);
        enum MHD_Result r = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result on_json(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **state) {
        (void)version, (void)data, (void)size, (void)state;
        char *body = NULL;
        if (strcmp(method, "GET") != 0)
                return respond(conn, 405, strdup("{\"error\":\"only GET\"}"), "application/json");
        int r = introspect_render_json(cls, url, &body);
        if (r == -ENOENT)
                return respond(conn, 404, strdup("{\"error\":\"no such path; see /\"}"), "application/json");
        if (r < 0)
                return respond(conn, 500, strdup("{\"error\":\"the pool store failed\"}"), "application/json");
        return respond(conn, 200, body, "application/json");
}

static enum MHD_Result on_metrics(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state) {
        (void)version, (void)data, (void)size, (void)state, (void)method;
        char *body = NULL;
        if (strcmp(url, "/metrics") != 0)
                return respond(conn, 404, strdup("see /metrics\n"), "text/plain");
        if (introspect_render_metrics(cls, &body) < 0)
                return respond(conn, 500, strdup("the pool store failed\n"), "text/plain");
        return respond(conn, 200, body, "text/plain; version=0.0.4");
}

/* A listening socket for "HOST:PORT", ":PORT" or "unix:/path". */
static int listen_on(const char *bind_addr, int *ret_fd, struct errmsg *err) {
        int fd;
        if (strncmp(bind_addr, "unix:", 5) == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", bind_addr + 5);
                unlink(sa.sun_path);    /* before socket(): a failing socket() keeps its errno */
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0)
                        goto fail;
        } else {
                const char *colon = strrchr(bind_addr, ':');
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
                char host[64];
                snprintf(host, sizeof host, "%.*s", (int)(colon - bind_addr), bind_addr);
                if (host[0] && inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                        return errmsg_set(err, -EINVAL, "%s: not an IPv4 address", bind_addr);
                int one = 1;
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd >= 0)
                        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0)
                        goto fail;
        }
        *ret_fd = fd;
        return 0;
fail:;
        int r = -errno;
        if (fd >= 0)
                close(fd);
        return errmsg_set(err, r, "cannot listen on %s: %s", bind_addr, strerror(-r));
}

static struct MHD_Daemon *serve(const char *bind_addr, MHD_AccessHandlerCallback cb, introspect *h,
                                struct errmsg *err) {
        int fd = -1;
        if (listen_on(bind_addr, &fd, err) < 0)
                return NULL;
        struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
                                                cb, h, MHD_OPTION_LISTEN_SOCKET, fd,
                                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
                                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
        if (!d) {
                close(fd);
                errmsg_set(err, -EIO, "libmicrohttpd could not serve %s", bind_addr);
        }
        return d;
}

int introspect_start(const struct introspect_options *opts, introspect **ret, struct errmsg *err) {
        introspect *h = calloc(1, sizeof *h);
        if (!h)
                return errmsg_set(err, -ENOMEM, "introspect: out of memory");
        h->o = *opts;
        pthread_mutex_init(&h->lock, NULL);
        if (!opts->cfg->no_introspection && !(h->json_d = serve(opts->cfg->introspection_bind, on_json, h, err))) {
                introspect_stop(h);
                return err ? err->code : -EIO;
        }
        if (!opts->cfg->no_metrics && !(h->metrics_d = serve(opts->cfg->metrics_bind, on_metrics, h, err))) {
                introspect_stop(h);
                return err ? err->code : -EIO;
        }
        *ret = h;
        return 0;
}

introspect *introspect_stop(introspect *h) {
        if (!h)
                return NULL;
        if (h->json_d)
                MHD_stop_daemon(h->json_d);
        if (h->metrics_d)
                MHD_stop_daemon(h->metrics_d);
        pthread_mutex_destroy(&h->lock);
        free(h);
        return NULL;
}

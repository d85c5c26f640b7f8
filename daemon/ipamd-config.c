/*
 * ipamd-config: the daemon's environment, one table row per variable.
 *
 * Each row names a variable, its default and accepted values (for errors and
 * documentation) and a parser that writes one field of a scratch config.
 * The scratch copy reaches the caller only when every row parsed and the
 * rules across variables hold (no two files at one path, no two servers on
 * one port). The pool variables are poolconfig's, in its own table; no name
 * is in both. Each row also says how its effective value is shown, and which
 * rows the environment set is recorded, for `vpc-ipamd -n`; the paths are
 * checked there and at start without creating anything.
 *
 * A third table lists aws-node's variables that do not apply here, each with
 * a check of its value and the reason; the ones set are recorded so that a
 * start warns once about each. Between the tables, and poolconfig's, every
 * variable of aws-node's manifest and code is answered (tests/test-awsvars.c
 * holds the list).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "customnet.h"
#include "ipamd-config.h"

typedef int (*parse_fn)(const char *name, const char *value, struct ipamd_config *c, struct errmsg *err);

static int parse_int_field(const char *name, const char *value, long min, long max, int *field,
                           struct errmsg *err) {
        long v;
        int r = poolconfig_parse_int(name, value, min, max, &v, err);
        if (r == 0)
                *field = (int)v;
        return r;
}

static int parse_bool_field(const char *name, const char *value, bool *field, struct errmsg *err) {
        return poolconfig_parse_bool(name, value, field, err);
}

static int parse_string(const char *name, const char *value, char *field, size_t size, struct errmsg *err) {
        if (strlen(value) >= size)
                return errmsg_set(err, -ERANGE, "%s: %zu characters, more than the %zu accepted", name,
                                  strlen(value), size - 1);
        memcpy(field, value, strlen(value) + 1);
        return 0;
}

static int parse_abs_path(const char *name, const char *value, char *field, size_t size, struct errmsg *err) {
        if (value[0] != '/')
                return errmsg_set(err, -EINVAL, "%s=%s: not an absolute path", name, value);
        return parse_string(name, value, field, size, err);
}

/* --- one parser per variable ------------------------------------------------ */

static int p_eni_mtu(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_int_field(n, v, 576, 9001, &c->eni_mtu, e);
}

static int p_pod_mtu(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_int_field(n, v, 576, 9001, &c->pod_mtu, e);
}

static int p_cluster(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        for (const char *p = v; *p; p++)
                if ((unsigned char)*p < 0x20)
                        return errmsg_set(e, -EINVAL, "%s: contains a control character", n);
        return parse_string(n, v, c->cluster_name, sizeof c->cluster_name, e);
}

static int add_tag(const char *n, const cJSON *item, struct ipamd_config *c, struct errmsg *e) {
        const char *k = item->string;
        if (!cJSON_IsString(item))
                return errmsg_set(e, -EINVAL, "%s: the value of \"%s\" is not a string", n, k);
        if (strstr(k, "k8s.amazonaws.com"))
                return errmsg_set(e, -EINVAL, "%s: key \"%s\" is reserved (it contains k8s.amazonaws.com)", n, k);
        if (strncmp(k, "aws:", 4) == 0)
                return errmsg_set(e, -EINVAL, "%s: key \"%s\" is reserved by AWS (aws: prefix)", n, k);
        if (!*k || strlen(k) > IPAMD_TAG_KEY_MAX || strlen(item->valuestring) > IPAMD_TAG_VALUE_MAX)
                return errmsg_set(e, -ERANGE, "%s: tag \"%.40s\" has a key of 1-%d or a value of 0-%d characters",
                                  n, k, IPAMD_TAG_KEY_MAX, IPAMD_TAG_VALUE_MAX);
        if (c->n_tags == IPAMD_TAGS_MAX)
                return errmsg_set(e, -ERANGE, "%s: more than %d tags", n, IPAMD_TAGS_MAX);
        struct ipamd_tag *t = &c->tags[c->n_tags++];
        snprintf(t->key, sizeof t->key, "%s", k);
        snprintf(t->value, sizeof t->value, "%s", item->valuestring);
        return 0;
}

static int p_tags(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        cJSON *j = cJSON_Parse(v);
        if (!j || !cJSON_IsObject(j)) {
                cJSON_Delete(j);
                return errmsg_set(e, -EINVAL, "%s=%s: not a JSON object of string values, e.g. {\"team\":\"net\"}",
                                  n, v);
        }
        int r = 0;
        c->n_tags = 0;
        for (const cJSON *item = j->child; item && r == 0; item = item->next)
                r = add_tag(n, item, c, e);
        cJSON_Delete(j);
        return r;
}

static int p_no_provisioning(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->no_provisioning, e);
}

static int p_no_leak_cleanup(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->no_leak_cleanup, e);
}

static int p_log_level(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        /* aws-node's levels include FATAL; here it means "errors only". */
        if (strcasecmp(v, "fatal") == 0) {
                c->log_level = LOG_ERROR;
                return 0;
        }
        if (log_level_parse(v, &c->log_level) < 0)
                return errmsg_set(e, -EINVAL, "%s=%s: not a log level; accepted: debug, info, warn, error, fatal",
                                  n, v);
        return 0;
}

static int p_log_format(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        if (log_format_parse(v, &c->log_format) < 0)
                return errmsg_set(e, -EINVAL, "%s=%s: not a log format; accepted: json, text", n, v);
        return 0;
}

static int p_log_file(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        if (strcmp(v, "stderr") == 0) {
                c->log_file[0] = '\0';
                return 0;
        }
        if (strcmp(v, "stdout") == 0)
                return errmsg_set(e, -EINVAL, "%s=stdout: not accepted (as aws-node); use stderr or a path", n);
        return parse_abs_path(n, v, c->log_file, sizeof c->log_file, e);
}

int ipamd_config_parse_bind(const char *name, const char *value, struct errmsg *err) {
        if (strncmp(value, "unix:", 5) == 0) {
                if (value[5] != '/' || strlen(value + 5) > IPAMD_SOCKET_PATH_MAX)
                        return errmsg_set(err, -EINVAL, "%s=%s: unix: needs an absolute path of at most %d bytes",
                                          name, value, IPAMD_SOCKET_PATH_MAX);
                return 0;
        }
        const char *colon = strrchr(value, ':');
        char host[64];
        long port;
        if (!colon || (size_t)(colon - value) >= sizeof host ||
            poolconfig_parse_int(name, colon + 1, 1, 65535, &port, NULL) < 0)
                return errmsg_set(err, -EINVAL, "%s=%s: not an address; accepted: HOST:PORT with an IPv4 "
                                  "host (or none, for any), or unix:/path", name, value);
        memcpy(host, value, (size_t)(colon - value));
        host[colon - value] = '\0';
        struct in_addr a;
        if (host[0] && inet_pton(AF_INET, host, &a) != 1)
                return errmsg_set(err, -EINVAL, "%s=%s: \"%s\" is not an IPv4 address", name, value, host);
        return 0;
}

static int p_introspection_bind(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        int r = ipamd_config_parse_bind(n, v, e);
        return r < 0 ? r : parse_string(n, v, c->introspection_bind, sizeof c->introspection_bind, e);
}

static int p_metrics_bind(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        int r = ipamd_config_parse_bind(n, v, e);
        return r < 0 ? r : parse_string(n, v, c->metrics_bind, sizeof c->metrics_bind, e);
}

static int p_no_introspection(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->no_introspection, e);
}

static int p_no_metrics(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->no_metrics, e);
}

static int p_socket(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_abs_path(n, v, c->socket_path, sizeof c->socket_path, e);
}

static int p_db(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_abs_path(n, v, c->db_path, sizeof c->db_path, e);
}

static int p_awsnode_checkpoint(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_abs_path(n, v, c->awsnode_checkpoint, sizeof c->awsnode_checkpoint, e);
}

static int p_add_wait(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        int s;
        int r = parse_int_field(n, v, 0, 25, &s, e);
        if (r == 0)
                c->add_wait_ms = s * 1000;
        return r;
}

static int p_imds_start_wait(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_int_field(n, v, 0, 600, &c->imds_start_wait_s, e);
}

static int p_rate_share(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        char *end;
        double d = strtod(v, &end);
        if (*end || end == v || !isfinite(d) || d <= 0 || d > 1)
                return errmsg_set(e, -EINVAL, "%s=%s: accepted: a fraction above 0 and at most 1, e.g. 0.1", n, v);
        c->ec2_rate_share = d;
        return 0;
}

static int p_leak_interval(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_int_field(n, v, 60, 86400, &c->leak_cleanup_interval_s, e);
}

static int p_cidr_refresh(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_int_field(n, v, 1, 3600, &c->vpc_cidr_refresh_s, e);
}

static int p_external_snat(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->snat.external, e);
}

static int p_randomize_snat(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return snat_parse_random(n, v, &c->snat.random, e);
}

static int p_exclude_snat(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return snat_parse_cidrs(n, v, &c->snat, e);
}

static int p_node_port(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->snat.node_port, e);
}

static int p_connmark(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return snat_parse_mark(n, v, &c->snat.mark, e);
}

static int p_veth_prefix(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return snat_parse_veth_prefix(n, v, c->snat.veth_prefix, e);
}

/* Features aws-node has that vpc-ipamd does not yet: refused when switched on. */
static int p_not_yet(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        (void)c;
        bool on;
        int r = poolconfig_parse_bool(n, v, &on, e);
        if (r < 0)
                return r;
        if (on)
                return errmsg_set(e, -EOPNOTSUPP, "%s=%s: not supported yet by vpc-ipamd; unset it or set false",
                                  n, v);
        return 0;
}

static int p_custom_networking(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->custom_networking, e);
}

static int p_manage_non_schedulable(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->manage_non_schedulable, e);
}

/* A label or annotation key: [prefix/]name, printable, no spaces. */
static int parse_k8s_key(const char *n, const char *v, char *field, size_t size, struct errmsg *e) {
        for (const char *p = v; *p; p++)
                if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                        return errmsg_set(e, -EINVAL, "%s=%s: not a label or annotation key", n, v);
        return parse_string(n, v, field, size, e);
}

static int p_eniconfig_annotation(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_k8s_key(n, v, c->eniconfig_annotation, sizeof c->eniconfig_annotation, e);
}

static int p_eniconfig_label(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_k8s_key(n, v, c->eniconfig_label, sizeof c->eniconfig_label, e);
}

static int p_node_name(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        if (!k8s_name_ok(v))
                return errmsg_set(e, -EINVAL, "%s=%s: not a Node name (a DNS subdomain)", n, v);
        return parse_string(n, v, c->node_name, sizeof c->node_name, e);
}

static int p_cluster_endpoint(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        if (strncmp(v, "https://", 8) != 0 || !v[8] || strcspn(v, " \t\r\n?#") != strlen(v))
                return errmsg_set(e, -EINVAL, "%s=%s: not an https:// URL", n, v);
        return parse_string(n, v, c->cluster_endpoint, sizeof c->cluster_endpoint, e);
}

/* /28 prefixes; a non-nitro instance type falls back to secondary IPs at start (reconciler.c). */
static int p_prefix_delegation(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->prefix_delegation, e);
}

static int p_ipv4(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->ipv4, e);
}

/* IPv6 mode (aws-vpc-cni-modes.md §2); the combinations are checked in verify_ipv6. */
static int p_ipv6(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->ipv6, e);
}

static int p_v4_egress(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->v4_egress, e);
}

static int p_v6_egress(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->v6_egress, e);
}

static int p_imds_only(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->imds_only, e);
}

static int p_subnet_discovery(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->subnet_discovery, e);
}

static int p_manage_untagged(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_bool_field(n, v, &c->manage_untagged, e);
}

static int p_service_cidrs(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        struct snat_config tmp;
        snat_config_defaults(&tmp);
        int r = snat_parse_cidrs(n, v, &tmp, e);
        if (r < 0)
                return r;
        _Static_assert(SNAT_MAX_EXCLUDE <= IPAMD_SERVICE_CIDRS_MAX && SNAT_CIDR_LEN <= IPAMD_CIDR_LEN, "sizes");
        for (size_t i = 0; i < tmp.n_exclude; i++)
                snprintf(c->service_cidrs[i], IPAMD_CIDR_LEN, "%s", tmp.exclude[i]);
        c->n_service_cidrs = tmp.n_exclude;
        return 0;
}

/* An http(s) URL of a host, an optional port and at most the path "/" (SigV4 signs "/"). */
static int p_ec2_endpoint(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        const char *host = strncmp(v, "https://", 8) == 0 ? v + 8 : strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
        size_t len = host ? strcspn(host, "/") : 0;
        bool clean = host && len > 0 && host[0] != ':' && strcspn(host, " \t\r\n?#@") == strlen(host);
        if (!clean || (host[len] && strcmp(host + len, "/") != 0))
                return errmsg_set(e, -EINVAL, "%s=%s: accepted: an http(s) URL of a host and optional port, "
                                  "e.g. https://ec2.us-east-1.amazonaws.com (no path but /)", n, v);
        return parse_string(n, v, c->ec2_endpoint, sizeof c->ec2_endpoint, e);
}

static int p_http_timeout(const char *n, const char *v, struct ipamd_config *c, struct errmsg *e) {
        return parse_int_field(n, v, 10, 600, &c->http_timeout_s, e);
}

/* --- how each effective value is shown (vpc-ipamd -n) ---------------------------- */

static void show_log_level(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "%s", log_level_name(c->log_level));
}

static void show_log_format(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "%s", c->log_format == LOG_FORMAT_TEXT ? "text" : "json");
}

static void show_log_file(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "%s", c->log_file[0] ? c->log_file : "stderr");
}

static void show_tags(const struct ipamd_config *c, char *buf, size_t size) {
        cJSON *o = cJSON_CreateObject();
        /* What the variable said: not the owner tag CLUSTER_NAME implies (always last). */
        size_t n = c->n_tags - (c->owner_tag_implied ? 1 : 0);
        for (size_t i = 0; o && i < n; i++)
                cJSON_AddStringToObject(o, c->tags[i].key, c->tags[i].value);
        char *text = o ? cJSON_PrintUnformatted(o) : NULL;
        snprintf(buf, size, "%s", text ? text : "?");
        cJSON_free(text);
        cJSON_Delete(o);
}

static void show_add_wait(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "%d", c->add_wait_ms / 1000);
}

static void show_rate_share(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "%g", c->ec2_rate_share);
}

static void show_randomize(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "%s", snat_random_name(c->snat.random));
}

static void show_exclude(const struct ipamd_config *c, char *buf, size_t size) {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < c->snat.n_exclude && used < size; i++)
                used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", c->snat.exclude[i]);
}

static void show_connmark(const struct ipamd_config *c, char *buf, size_t size) {
        snprintf(buf, size, "0x%x", (unsigned)c->snat.mark);
}

static void show_service_cidrs(const struct ipamd_config *c, char *buf, size_t size) {
        size_t used = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < c->n_service_cidrs && used < size; i++)
                used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", c->service_cidrs[i]);
}

/* A row: the variable, its parser, and how its effective value is shown: an
 * int, bool or string field at off, the documented default (the features not
 * supported yet, whose only accepted value is it), or a function. */
enum show { SHOW_INT, SHOW_BOOL, SHOW_STR, SHOW_DEFAULT, SHOW_FN };
typedef void (*show_fn)(const struct ipamd_config *c, char *buf, size_t size);

struct row {
        struct ipamd_config_var var;
        parse_fn parse;
        enum show show;
        size_t off;
        show_fn fn;
};

#define INT(f) SHOW_INT, offsetof(struct ipamd_config, f), NULL
#define BOOL(f) SHOW_BOOL, offsetof(struct ipamd_config, f), NULL
#define STR(f) SHOW_STR, offsetof(struct ipamd_config, f), NULL
#define FN(fn) SHOW_FN, 0, fn
#define DEFAULT SHOW_DEFAULT, 0, NULL

static const struct row rows[] = {
        { { "AWS_VPC_ENI_MTU", "9001", "576 to 9001" }, p_eni_mtu, INT(eni_mtu) },
        { { "POD_MTU", "AWS_VPC_ENI_MTU", "576 to 9001" }, p_pod_mtu, INT(pod_mtu) },
        { { "CLUSTER_NAME", "", "up to 255 characters" }, p_cluster, STR(cluster_name) },
        { { "ADDITIONAL_ENI_TAGS", "{}", "a JSON object of string values; no k8s.amazonaws.com or aws: keys" },
          p_tags, FN(show_tags) },
        { { "DISABLE_NETWORK_RESOURCE_PROVISIONING", "false", "true or false" }, p_no_provisioning,
          BOOL(no_provisioning) },
        { { "DISABLE_LEAKED_ENI_CLEANUP", "false", "true or false" }, p_no_leak_cleanup, BOOL(no_leak_cleanup) },
        { { "ENABLE_IMDS_ONLY_MODE", "false", "true or false" }, p_imds_only, BOOL(imds_only) },
        { { "MANAGE_UNTAGGED_ENI", "true", "true or false" }, p_manage_untagged, BOOL(manage_untagged) },
        { { "ENABLE_SUBNET_DISCOVERY", "true", "true or false" }, p_subnet_discovery, BOOL(subnet_discovery) },
        { { "AWS_EC2_ENDPOINT", "", "an http(s) URL: scheme, host, optional port, no path but /" },
          p_ec2_endpoint, STR(ec2_endpoint) },
        { { "HTTP_TIMEOUT", "10", "whole seconds from 10 to 600 (aws-node raises lower values to 10)" },
          p_http_timeout, INT(http_timeout_s) },
        { { "AWS_VPC_K8S_CNI_LOGLEVEL", "info", "debug, info, warn, error, fatal" }, p_log_level,
          FN(show_log_level) },
        { { "VPC_IPAM_LOG_FORMAT", "json", "json or text" }, p_log_format, FN(show_log_format) },
        { { "AWS_VPC_K8S_CNI_LOG_FILE", "stderr", "stderr or an absolute path" }, p_log_file, FN(show_log_file) },
        { { "INTROSPECTION_BIND_ADDRESS", "127.0.0.1:61679", "HOST:PORT or unix:/path" }, p_introspection_bind,
          STR(introspection_bind) },
        { { "METRICS_BIND_ADDRESS", ":61678", "HOST:PORT or unix:/path" }, p_metrics_bind, STR(metrics_bind) },
        { { "DISABLE_INTROSPECTION", "false", "true or false" }, p_no_introspection, BOOL(no_introspection) },
        { { "DISABLE_METRICS", "false", "true or false" }, p_no_metrics, BOOL(no_metrics) },
        { { "VPC_IPAM_SOCKET", "/run/vpc-ipam/ipamd.sock", "an absolute path of at most 107 bytes" }, p_socket,
          STR(socket_path) },
        { { "VPC_IPAM_DB", "/var/lib/vpc-ipam/pool.db", "an absolute path" }, p_db, STR(db_path) },
        { { "VPC_IPAM_AWS_NODE_CHECKPOINT", IPAMD_AWSNODE_CHECKPOINT_DEFAULT, "an absolute path" }, p_awsnode_checkpoint,
          STR(awsnode_checkpoint) },
        { { "VPC_IPAM_ADD_WAIT", "10", "whole seconds from 0 to 25 (the plugin waits 30 s at most)" }, p_add_wait,
          FN(show_add_wait) },
        { { "VPC_IPAM_IMDS_START_WAIT", "60", "whole seconds from 0 to 600" }, p_imds_start_wait,
          INT(imds_start_wait_s) },
        { { "VPC_IPAM_EC2_RATE_SHARE", "0.1", "a fraction above 0 and at most 1" }, p_rate_share,
          FN(show_rate_share) },
        { { "VPC_IPAM_LEAK_CLEANUP_INTERVAL", "3600", "whole seconds from 60 to 86400" }, p_leak_interval,
          INT(leak_cleanup_interval_s) },
        { { "VPC_IPAM_VPC_CIDR_REFRESH", "60", "whole seconds from 1 to 3600" }, p_cidr_refresh,
          INT(vpc_cidr_refresh_s) },
        { { "AWS_VPC_K8S_CNI_EXTERNALSNAT", "false", "true or false" }, p_external_snat, BOOL(snat.external) },
        { { "AWS_VPC_K8S_CNI_RANDOMIZESNAT", "prng", "prng, hashrandom, none" }, p_randomize_snat,
          FN(show_randomize) },
        { { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "", "a comma-separated list of IPv4 CIDRs" }, p_exclude_snat,
          FN(show_exclude) },
        { { "AWS_VPC_CNI_NODE_PORT_SUPPORT", "true", "true or false" }, p_node_port, BOOL(snat.node_port) },
        { { "AWS_VPC_K8S_CNI_CONNMARK", "0x80", "a non-zero 32-bit mark, hex or decimal" }, p_connmark,
          FN(show_connmark) },
        { { "AWS_EXTERNAL_SERVICE_CIDRS", "", "a comma-separated list of IPv4 CIDRs" }, p_service_cidrs,
          FN(show_service_cidrs) },
        { { "AWS_VPC_K8S_CNI_VETHPREFIX", "eni", "1-4 letters or digits, a letter first; not eth, lo, vlan" },
          p_veth_prefix, STR(snat.veth_prefix) },
        { { "ENABLE_IPv4", "true", "true, or false with ENABLE_IPv6=true" }, p_ipv4, BOOL(ipv4) },
        { { "ENABLE_IPv6", "false", "true (with ENABLE_IPv4=false and ENABLE_PREFIX_DELEGATION=true) or false" },
          p_ipv6, BOOL(ipv6) },
        { { "ENABLE_V4_EGRESS", "true", "true or false (IPv6 mode: an IPv4 egress address per pod)" }, p_v4_egress,
          BOOL(v4_egress) },
        { { "ENABLE_V6_EGRESS", "false", "true or false (IPv4 mode: an IPv6 egress address per pod from "
            "fd00::ac:0/118, SNATed to the node's IPv6; off when the node has none)" }, p_v6_egress,
          BOOL(v6_egress) },
        { { "ENABLE_PREFIX_DELEGATION", "false", "true or false" }, p_prefix_delegation,
          BOOL(prefix_delegation) },
        { { "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "false", "true or false (true needs MY_NODE_NAME and the "
            "in-cluster API: KUBERNETES_SERVICE_HOST or CLUSTER_ENDPOINT)" }, p_custom_networking,
          BOOL(custom_networking) },
        { { "ENI_CONFIG_ANNOTATION_DEF", CUSTOMNET_DEFAULT_KEY, "a Node annotation key" }, p_eniconfig_annotation,
          STR(eniconfig_annotation) },
        { { "ENI_CONFIG_LABEL_DEF", CUSTOMNET_DEFAULT_KEY, "a Node label key, e.g. topology.kubernetes.io/zone" },
          p_eniconfig_label, STR(eniconfig_label) },
        { { "AWS_MANAGE_ENIS_NON_SCHEDULABLE", "false", "true or false (false reads the Node when MY_NODE_NAME "
            "and the in-cluster API are there)" }, p_manage_non_schedulable, BOOL(manage_non_schedulable) },
        { { "MY_NODE_NAME", "", "the Node's name (the downward API's spec.nodeName)" }, p_node_name,
          STR(node_name) },
        { { "CLUSTER_ENDPOINT", "", "an https:// URL of the API server (instead of KUBERNETES_SERVICE_HOST)" },
          p_cluster_endpoint, STR(cluster_endpoint) },
        { { "ENABLE_POD_ENI", "false", "false (not supported yet)" }, p_not_yet, DEFAULT },
};

#define N_ROWS (sizeof rows / sizeof rows[0])
_Static_assert(N_ROWS <= 64, "ipamd_config.has has one bit per row");

/* --- aws-node variables that do not apply: checked, then warned about at start ------------- */

typedef int (*check_fn)(const char *name, const char *value, struct errmsg *err);

static int c_any(const char *n, const char *v, struct errmsg *e) {
        (void)n, (void)v, (void)e;
        return 0;
}

static int c_bool(const char *n, const char *v, struct errmsg *e) {
        bool b;
        return poolconfig_parse_bool(n, v, &b, e);
}

/* A feature switch whose "true" vpc-ipamd cannot honour: refused, as p_not_yet. */
static int c_false(const char *n, const char *v, struct errmsg *e) {
        return p_not_yet(n, v, NULL, e);
}

static int c_one_of(const char *n, const char *v, const char *const *ok, const char *accepted, struct errmsg *e) {
        for (; *ok; ok++)
                if (strcasecmp(v, *ok) == 0)
                        return 0;
        return errmsg_set(e, -EINVAL, "%s=%s: accepted: %s", n, v, accepted);
}

static int c_sg_mode(const char *n, const char *v, struct errmsg *e) {
        return c_one_of(n, v, (const char *const[]){ "strict", "standard", NULL }, "strict or standard", e);
}

static int c_plugin_level(const char *n, const char *v, struct errmsg *e) {
        return c_one_of(n, v, (const char *const[]){ "debug", "info", "warn", "error", "fatal", NULL },
                        "debug, info, warn, error, fatal", e);
}

static int c_plugin_file(const char *n, const char *v, struct errmsg *e) {
        if (strcmp(v, "stdout") == 0)
                return errmsg_set(e, -EINVAL, "%s=stdout: not accepted (as aws-node)", n);
        return 0;
}

/* Strict enforcement would promise pods a default-deny vpc-ipamd cannot give. */
static int c_np_mode(const char *n, const char *v, struct errmsg *e) {
        if (strcasecmp(v, "strict") == 0)
                return errmsg_set(e, -EOPNOTSUPP, "%s=strict: not supported: vpc-ipamd does not serve the network "
                                  "policy agent, so pods would start without the default-deny strict promises; "
                                  "unset it or set standard", n);
        return c_one_of(n, v, (const char *const[]){ "standard", NULL }, "standard", e);
}

struct ignored_row {
        struct ipamd_ignored_var var;
        check_fn check;
};

#define NO_K8S "vpc-ipamd's Kubernetes client is read-only (the Node and ENIConfigs)"
#define NOT_YET_ON(x) "only used with " x ", which vpc-ipamd does not support yet (refused when on)"

static const struct ignored_row ignored[] = {
        { { "POD_SECURITY_GROUP_ENFORCING_MODE", "strict or standard", NOT_YET_ON("ENABLE_POD_ENI") }, c_sg_mode },
        { { "DISABLE_TCP_EARLY_DEMUX", "true or false",
            "aws-node's init container sets tcp_early_demux for pod ENIs (ENABLE_POD_ENI, not supported yet); "
            "vpc-ipamd sets no sysctl" }, c_bool },
        { { "DISABLE_POD_V6", "true or false",
            "aws-node's plugin setting for IPv6 inside IPv4 pods; vpc-cni leaves an IPv4 pod's IPv6 as the "
            "runtime made it" }, c_bool },
        { { "ENABLE_MULTI_NIC", "false", "vpc-ipamd uses network card 0 only; pods asking for an address on "
            "every card cannot be served" }, c_false },
        { { "ANNOTATE_POD_IP", "true or false", NO_K8S ", so pods are not annotated with their address" },
          c_bool },
        { { "NETWORK_POLICY_ENFORCING_MODE", "standard", "network policy is the policy agent's; vpc-ipamd does "
            "not serve aws-node's gRPC it talks to" }, c_np_mode },
        { { "ENABLE_BANDWIDTH_PLUGIN", "true or false", "the conflist is installed as a file "
            "(scripts/deploy/10-vpc-cni.conflist); add the bandwidth plugin there" }, c_bool },
        { { "AWS_VPC_K8S_PLUGIN_LOG_FILE", "a path (not stdout)", "the plugin's log, set in aws-node's conflist; "
            "vpc-cni logs to the runtime's stderr" }, c_plugin_file },
        { { "AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "debug, info, warn, error, fatal", "the plugin's log level, set in "
            "aws-node's conflist; vpc-cni logs failures only" }, c_plugin_level },
        { { "AWS_VPC_K8S_CNI_BACKING_STORE", "any", "aws-node's checkpoint file; vpc-ipamd keeps its pool in "
            "VPC_IPAM_DB" }, c_any },
        { { "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER", "any", "deprecated by aws-node itself; no effect there either" },
          c_any },
        { { "ENABLE_NFTABLES", "any", "deprecated by aws-node itself; vpc-ipamd always uses nftables" }, c_any },
        { { "MY_POD_NAME", "any", "the pod's own name is not needed (the Node's is MY_NODE_NAME)" }, c_any },
        { { "VPC_CNI_VERSION", "any", "aws-node's version, informational" }, c_any },
        { { "VPC_ID", "any", "the VPC is learnt from IMDS" }, c_any },
        { { "HOST_CNI_BIN_PATH", "any", "aws-node's installer's; vpc-cni is installed by the DaemonSet's "
            "entrypoint (scripts/deploy)" }, c_any },
        { { "HOST_CNI_CONFDIR_PATH", "any", "aws-node's installer's; the conflist is installed by the DaemonSet's "
            "entrypoint (scripts/deploy)" }, c_any },
};

#define N_IGNORED (sizeof ignored / sizeof ignored[0])
_Static_assert(N_IGNORED <= 64, "ipamd_config.ignored has one bit per row");

const struct ipamd_ignored_var *ipamd_config_ignored_var(size_t i) {
        return i < N_IGNORED ? &ignored[i].var : NULL;
}

static int check_ignored(const char *const *env, struct ipamd_config *c, struct errmsg *err) {
        for (size_t i = 0; i < N_IGNORED; i++) {
                const char *v = poolconfig_getenv(env, ignored[i].var.name);
                if (!v || !*v)
                        continue;
                int r = ignored[i].check(ignored[i].var.name, v, err);
                if (r < 0)
                        return r;
                c->ignored |= UINT64_C(1) << i;
        }
        return 0;
}

/* --- rules across variables ----------------------------------------------------------- */

/* A file the daemon creates or opens: the variable, and its path ("" = none). */
struct path_use {
        const char *name;
        const char *path;
};

/* The paths the daemon will create or open, in start-up order; returns how many. */
static size_t paths_used(const struct ipamd_config *c, struct path_use ret[5]) {
        size_t n = 0;
        ret[n++] = (struct path_use){ "AWS_VPC_K8S_CNI_LOG_FILE", c->log_file };
        ret[n++] = (struct path_use){ "VPC_IPAM_DB", c->db_path };
        ret[n++] = (struct path_use){ "VPC_IPAM_SOCKET", c->socket_path };
        if (!c->no_introspection && strncmp(c->introspection_bind, "unix:", 5) == 0)
                ret[n++] = (struct path_use){ "INTROSPECTION_BIND_ADDRESS", c->introspection_bind + 5 };
        if (!c->no_metrics && strncmp(c->metrics_bind, "unix:", 5) == 0)
                ret[n++] = (struct path_use){ "METRICS_BIND_ADDRESS", c->metrics_bind + 5 };
        return n;
}

static int verify_paths(const struct ipamd_config *c, struct errmsg *err) {
        struct path_use u[5];
        size_t n = paths_used(c, u);
        for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < i; j++)
                        if (u[i].path[0] && strcmp(u[i].path, u[j].path) == 0)
                                return errmsg_set(err, -EINVAL, "%s=%s: the same path as %s; each needs its own",
                                                  u[i].name, u[i].path, u[j].name);
        return 0;
}

/* Two TCP binds collide on the same port unless both name different hosts. */
static int verify_binds(const struct ipamd_config *c, struct errmsg *err) {
        const char *a = c->introspection_bind, *b = c->metrics_bind;
        if (c->no_introspection || c->no_metrics || strncmp(a, "unix:", 5) == 0 || strncmp(b, "unix:", 5) == 0)
                return 0;
        const char *pa = strrchr(a, ':'), *pb = strrchr(b, ':');
        if (strcmp(pa, pb) != 0)
                return 0;
        if (pa != a && pb != b && (pa - a != pb - b || strncmp(a, b, (size_t)(pa - a)) != 0))
                return 0;
        return errmsg_set(err, -EADDRINUSE, "METRICS_BIND_ADDRESS=%s: the same port as INTROSPECTION_BIND_ADDRESS=%s;"
                          " give one another port, or set DISABLE_METRICS or DISABLE_INTROSPECTION", b, a);
}

/* The row index of a variable of our table (for "was it set"). */
static bool was_set(const struct ipamd_config *c, const char *name) {
        for (size_t i = 0; i < N_ROWS; i++)
                if (strcmp(rows[i].var.name, name) == 0)
                        return (c->has >> i) & 1;
        return false;
}

/*
 * ENABLE_IMDS_ONLY_MODE implies no provisioning and no leak cleanup (as
 * aws-node); either explicitly false beside it is a contradiction, refused.
 * MANAGE_UNTAGGED_ENI=false needs the ENIs' tags, which only EC2 shows.
 */
static int verify_imds_only(struct ipamd_config *c, struct errmsg *err) {
        if (c->imds_only) {
                if (was_set(c, "DISABLE_NETWORK_RESOURCE_PROVISIONING") && !c->no_provisioning)
                        return errmsg_set(err, -EINVAL, "DISABLE_NETWORK_RESOURCE_PROVISIONING=false: "
                                          "ENABLE_IMDS_ONLY_MODE=true implies true; unset one");
                if (was_set(c, "DISABLE_LEAKED_ENI_CLEANUP") && !c->no_leak_cleanup)
                        return errmsg_set(err, -EINVAL, "DISABLE_LEAKED_ENI_CLEANUP=false: "
                                          "ENABLE_IMDS_ONLY_MODE=true implies true; unset one");
                c->no_provisioning = c->no_leak_cleanup = true;
        }
        if (c->no_provisioning && !c->manage_untagged)
                return errmsg_set(err, -EINVAL, "MANAGE_UNTAGGED_ENI=false: it needs the ENIs' tags, which vpc-ipamd "
                                  "reads from EC2, but with %s it reads IMDS only (every ENI IMDS lists is used); "
                                  "unset one", c->imds_only ? "ENABLE_IMDS_ONLY_MODE" :
                                  "DISABLE_NETWORK_RESOURCE_PROVISIONING");
        return 0;
}

static bool has_tag(const struct ipamd_config *c, const char *key) {
        for (size_t i = 0; i < c->n_tags; i++)
                if (strcmp(c->tags[i].key, key) == 0)
                        return true;
        return false;
}

/* With CLUSTER_NAME, created ENIs also carry eks:eni:owner=amazon-vpc-cni, as aws-node's. */
static int add_owner_tag(struct ipamd_config *c, struct errmsg *err) {
        if (!c->cluster_name[0] || has_tag(c, IPAMD_OWNER_TAG_KEY))
                return 0;
        if (c->n_tags == IPAMD_TAGS_MAX)
                return errmsg_set(err, -ERANGE, "ADDITIONAL_ENI_TAGS: more than %d tags with CLUSTER_NAME set "
                                  "(which adds " IPAMD_OWNER_TAG_KEY ")", IPAMD_TAGS_MAX - 1);
        struct ipamd_tag *t = &c->tags[c->n_tags++];
        c->owner_tag_implied = true;
        snprintf(t->key, sizeof t->key, "%s", IPAMD_OWNER_TAG_KEY);
        snprintf(t->value, sizeof t->value, "%s", IPAMD_OWNER_TAG_VALUE);
        return 0;
}

/*
 * aws-node's entrypoint refuses prefix delegation with no warm or minimum
 * target at all. Not in IPv6 mode, which ignores those targets (one /80
 * serves every pod): aws-node's manifest always sets WARM_PREFIX_TARGET=1,
 * so only a bare environment would meet that refusal there.
 */
static int verify_prefix_delegation(const struct ipamd_config *c, struct errmsg *err) {
        if (c->prefix_delegation && !c->ipv6 && c->pool.warm_prefix_target <= 0 && c->pool.warm_ip_target <= 0 &&
            c->pool.minimum_ip_target <= 0)
                return errmsg_set(err, -EINVAL, "ENABLE_PREFIX_DELEGATION=true: needs WARM_PREFIX_TARGET, "
                                  "WARM_IP_TARGET or MINIMUM_IP_TARGET above 0 (as aws-node); "
                                  "WARM_PREFIX_TARGET=1 is aws-node's manifest default");
        return 0;
}

/* Custom networking reads the Node and its ENIConfig: it needs the node's name and an API server. */
static int verify_custom_networking(const struct ipamd_config *c, struct errmsg *err) {
        if (c->custom_networking && !c->node_name[0])
                return errmsg_set(err, -EINVAL, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true: needs MY_NODE_NAME "
                                  "(the downward API's spec.nodeName) to find the node's ENIConfig");
        if (c->custom_networking && !c->in_cluster)
                return errmsg_set(err, -EINVAL, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true: needs the Kubernetes API: "
                                  "KUBERNETES_SERVICE_HOST (in a pod) or CLUSTER_ENDPOINT");
        return 0;
}

/*
 * aws-node's rules for the address family (ipamd isConfigValid, its
 * entrypoint's MTU range), in its words: one family, IPv6 only with prefix
 * delegation and without custom networking. IPv6 mode implies no leaked-ENI
 * cleanup (aws-node's, and no ENI is created to leak).
 */
static int verify_ipv6(struct ipamd_config *c, struct errmsg *err) {
        if (c->ipv4 && c->ipv6)
                return errmsg_set(err, -EINVAL, "ENABLE_IPv6=true: IPv4 and IPv6 are both enabled; VPC CNI does not "
                                  "support dual stack mode (as aws-node); set ENABLE_IPv4=false");
        if (!c->ipv4 && !c->ipv6)
                return errmsg_set(err, -EINVAL, "ENABLE_IPv4=false: IPv4 and IPv6 are both disabled; one of them "
                                  "has to be enabled (as aws-node)");
        if (c->ipv6 && !c->prefix_delegation)
                return errmsg_set(err, -EINVAL, "ENABLE_IPv6=true: IPv6 is supported only in prefix delegation "
                                  "mode (as aws-node); set ENABLE_PREFIX_DELEGATION=true");
        if (c->ipv6 && c->custom_networking)
                return errmsg_set(err, -EINVAL, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true: custom networking is not "
                                  "supported in IPv6 mode (as aws-node); unset it to enable IPv6");
        if (c->ipv6 && (c->eni_mtu < 1280 || c->pod_mtu < 1280))
                return errmsg_set(err, -ERANGE, "%s=%d: IPv6 needs at least 1280 (as aws-node)",
                                  c->eni_mtu < 1280 ? "AWS_VPC_ENI_MTU" : "POD_MTU",
                                  c->eni_mtu < 1280 ? c->eni_mtu : c->pod_mtu);
        if (c->ipv6)
                c->no_leak_cleanup = true;
        return 0;
}

static int verify(struct ipamd_config *c, struct errmsg *err) {
        int r = verify_ipv6(c, err);
        if (r == 0)
                r = verify_paths(c, err);
        if (r == 0)
                r = verify_custom_networking(c, err);
        if (r == 0)
                r = verify_prefix_delegation(c, err);
        if (r == 0)
                r = verify_binds(c, err);
        if (r == 0)
                r = verify_imds_only(c, err);
        return r < 0 ? r : add_owner_tag(c, err);
}

void ipamd_config_defaults(struct ipamd_config *ret) {
        *ret = (struct ipamd_config){
                .eni_mtu = 9001,
                .pod_mtu = 0,
                .log_level = LOG_INFO,
                .log_format = LOG_FORMAT_JSON,
                .introspection_bind = "127.0.0.1:61679",
                .metrics_bind = ":61678",
                .socket_path = "/run/vpc-ipam/ipamd.sock",
                .db_path = "/var/lib/vpc-ipam/pool.db",
                .awsnode_checkpoint = IPAMD_AWSNODE_CHECKPOINT_DEFAULT,
                .add_wait_ms = 10000,
                .imds_start_wait_s = 60,
                .ec2_rate_share = 0.1,
                .leak_cleanup_interval_s = 3600,
                .vpc_cidr_refresh_s = 60,
                .manage_untagged = true,
                .subnet_discovery = true,
                .http_timeout_s = 10,
                .eniconfig_annotation = CUSTOMNET_DEFAULT_KEY,
                .eniconfig_label = CUSTOMNET_DEFAULT_KEY,
                .ipv4 = true,
                .v4_egress = true,
        };
        poolconfig_defaults(&ret->pool);
        snat_config_defaults(&ret->snat);
}

/* The pool's variables IPv6 mode has no use for: one /80 serves every pod, no ENI is added. */
static const unsigned v6_ignored_pool = POOLCONFIG_HAS_WARM_ENI | POOLCONFIG_HAS_WARM_IP |
        POOLCONFIG_HAS_MINIMUM_IP | POOLCONFIG_HAS_WARM_PREFIX | POOLCONFIG_HAS_MAX_ENI |
        POOLCONFIG_HAS_SHRINK_DELAY;

/* Row k of the pool's table is flagged by bit k of poolconfig.has (poolconfig.h's order). */
const char *ipamd_config_v6_ignored(const struct ipamd_config *c, size_t i) {
        if (!c->ipv6)
                return NULL;
        const struct poolconfig_var *v;
        for (size_t k = 0; (v = poolconfig_var(k)); k++) {
                unsigned bit = 1u << k;
                if (!(c->pool.has & bit & v6_ignored_pool))
                        continue;
                if (i-- == 0)
                        return v->name;
        }
        return NULL;
}

const struct ipamd_config_var *ipamd_config_var(size_t i) {
        return i < N_ROWS ? &rows[i].var : NULL;
}

int ipamd_config_from_env(const char *const *env, struct ipamd_config *ret, struct errmsg *err) {
        struct ipamd_config c;
        ipamd_config_defaults(&c);
        /* Ours, then the pool's: no variable is in both tables. */
        for (size_t i = 0; i < N_ROWS; i++) {
                const char *v = poolconfig_getenv(env, rows[i].var.name);
                if (!v || !*v)
                        continue;
                int r = rows[i].parse(rows[i].var.name, v, &c, err);
                if (r < 0)
                        return r;
                c.has |= UINT64_C(1) << i;
        }
        int r = check_ignored(env, &c, err);
        if (r < 0)
                return r;
        const char *host = poolconfig_getenv(env, "KUBERNETES_SERVICE_HOST");
        c.in_cluster = (host && *host) || c.cluster_endpoint[0];
        if ((r = poolconfig_from_env(env, &c.pool, err)) < 0)
                return r;
        if (c.pod_mtu == 0)
                c.pod_mtu = c.eni_mtu;
        if ((r = verify(&c, err)) < 0)
                return r;
        *ret = c;
        return 0;
}

/*
 * Where a path would be created, the nearest part that exists must be a
 * directory, and the path itself must not be one. Read-only: stat() only.
 */
static int check_path(const char *name, const char *path, struct errmsg *err) {
        struct stat st;
        if (stat(path, &st) == 0)
                return S_ISDIR(st.st_mode) ? errmsg_set(err, -EISDIR, "%s=%s: is a directory", name, path) : 0;
        char dir[IPAMD_PATH_MAX + 1];
        snprintf(dir, sizeof dir, "%s", path);
        for (char *slash; (slash = strrchr(dir, '/')) && slash != dir;) {
                *slash = '\0';
                if (stat(dir, &st) < 0)
                        continue;
                if (!S_ISDIR(st.st_mode))
                        return errmsg_set(err, -ENOTDIR, "%s=%s: %s is not a directory", name, path, dir);
                return 0;
        }
        return 0;
}

int ipamd_config_check_paths(const struct ipamd_config *c, struct errmsg *err) {
        struct path_use u[5];
        size_t n = paths_used(c, u);
        for (size_t i = 0; i < n; i++) {
                int r = u[i].path[0] ? check_path(u[i].name, u[i].path, err) : 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

static void show_row(const struct row *row, const struct ipamd_config *c, char *buf, size_t size) {
        const char *field = (const char *)c + row->off;
        switch (row->show) {
        case SHOW_INT:
                snprintf(buf, size, "%d", *(const int *)field);
                break;
        case SHOW_BOOL:
                snprintf(buf, size, "%s", *(const bool *)field ? "true" : "false");
                break;
        case SHOW_STR:
                snprintf(buf, size, "%s", field);
                break;
        case SHOW_DEFAULT:
                snprintf(buf, size, "%s", row->var.default_value);
                break;
        case SHOW_FN:
                row->fn(c, buf, size);
                break;
        }
}

int ipamd_config_setting(const struct ipamd_config *c, size_t i, const char **ret_name, bool *ret_set,
                         char *buf, size_t size) {
        if (i < N_ROWS) {
                show_row(&rows[i], c, buf, size);
                *ret_set = (c->has >> i) & 1;
                *ret_name = rows[i].var.name;
                return 0;
        }
        const struct poolconfig_var *v = poolconfig_var(i - N_ROWS);
        if (!v)
                return -ENOENT;
        *ret_name = v->name;
        return poolconfig_var_value(&c->pool, i - N_ROWS, ret_set, buf, size);
}

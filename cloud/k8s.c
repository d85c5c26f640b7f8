/*
 * k8s: the in-cluster Kubernetes client and its JSON decoders (see k8s.h).
 *
 * Marshalling is kept apart from the transport: k8s_parse_*() turn one body
 * into a struct living in an arena (so one free releases it), and get_object()
 * does the HTTP: token freshness, the 401 re-read, the retry loop and the
 * mapping of HTTP statuses to errno values with the object's name.
 *
 * The token is read from a file that kubelet rewrites as the bound token
 * rotates (about hourly); client-go re-reads it at most once a minute, and so
 * do we, plus at once on a 401 (the server no longer accepts the old one).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "k8s.h"

#define TOKEN_MAX 16384
#define NAME_MAX_LEN 253

struct k8s_client {
        awshttp *http;
        char server[320];               /* https://host:port */
        char *sa_dir;
        char *node_name;
        unsigned max_attempts;
        uint64_t reread_ns;
        const struct cloud_clock *clock;
        char token[TOKEN_MAX];
        uint64_t token_read_ns;
        unsigned token_reads;
};

/* --- configuration --------------------------------------------------------- */

static int read_token(k8s_client *c, struct errmsg *err) {
        char path[4096];
        snprintf(path, sizeof path, "%s/token", c->sa_dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errmsg_set(err, -errno, "Kubernetes token %s: %s", path, strerror(errno));
        char tok[TOKEN_MAX];
        ssize_t n = read(fd, tok, sizeof tok);
        int e = errno;
        close(fd);
        if (n < 0)
                return errmsg_set(err, -e, "Kubernetes token %s: %s", path, strerror(e));
        if ((size_t)n >= sizeof tok)
                return errmsg_set(err, -EFBIG, "Kubernetes token %s: over %zu bytes", path, sizeof tok - 1);
        while (n > 0 && isspace((unsigned char)tok[n - 1]))
                n--;
        for (ssize_t i = 0; i < n; i++)
                if (tok[i] <= 0x20 || tok[i] >= 0x7f) {
                        explicit_bzero(tok, sizeof tok);
                        return errmsg_set(err, -EBADMSG, "Kubernetes token %s: not a printable token", path);
                }
        if (n == 0)
                return errmsg_set(err, -EBADMSG, "Kubernetes token %s: empty", path);
        memcpy(c->token, tok, (size_t)n);
        c->token[n] = '\0';
        explicit_bzero(tok, sizeof tok);
        c->token_read_ns = cloud_clock_mono(c->clock);
        c->token_reads++;
        return 0;
}

static bool port_ok(const char *p) {
        size_t n = strlen(p);
        if (n == 0 || n > 5 || strspn(p, "0123456789") != n)
                return false;
        long v = strtol(p, NULL, 10);
        return v > 0 && v < 65536;
}

/* https://host:port from the service variables, or CLUSTER_ENDPOINT. */
static int server_url(char *ret, size_t size, struct errmsg *err) {
        const char *ep = getenv("CLUSTER_ENDPOINT");
        if (ep && *ep) {
                size_t n = strlen(ep);
                while (n && ep[n - 1] == '/')
                        n--;
                if (strncmp(ep, "https://", 8) != 0 || n <= 8 || strcspn(ep, " \t\r\n?#") < n)
                        return errmsg_set(err, -EINVAL, "CLUSTER_ENDPOINT=%s: not an https:// URL", ep);
                if (n >= size)
                        return errmsg_set(err, -EINVAL, "CLUSTER_ENDPOINT=%s: too long", ep);
                snprintf(ret, size, "%.*s", (int)n, ep);
                return 0;
        }
        const char *host = getenv("KUBERNETES_SERVICE_HOST");
        const char *port = getenv("KUBERNETES_SERVICE_PORT");
        if (!host || !*host)
                return errmsg_set(err, -ENXIO, "not in a Kubernetes cluster: KUBERNETES_SERVICE_HOST is unset");
        if (!port || !port_ok(port))
                return errmsg_set(err, -EINVAL, "KUBERNETES_SERVICE_PORT=%s: not a port", port ? port : "");
        static const char host_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-";
        if (strlen(host) > 255 || strspn(host, host_chars) != strlen(host))
                return errmsg_set(err, -EINVAL, "KUBERNETES_SERVICE_HOST=%s: not an address or name", host);
        bool v6 = strchr(host, ':') != NULL;
        snprintf(ret, size, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
        return 0;
}

static int setup(k8s_client *c, const struct k8s_options *o, struct errmsg *err) {
        int r = server_url(c->server, sizeof c->server, err);
        if (r < 0)
                return r;
        const char *name = getenv("MY_NODE_NAME");
        if (!(c->sa_dir = strdup(o->sa_dir ? o->sa_dir : K8S_SA_DIR)) ||
            (name && *name && !(c->node_name = strdup(name))))
                return errmsg_set(err, -ENOMEM, "out of memory");
        char ca[4096];
        snprintf(ca, sizeof ca, "%s/ca.crt", c->sa_dir);
        if (access(ca, R_OK) < 0)
                return errmsg_set(err, -errno, "Kubernetes CA %s: %s", ca, strerror(errno));
        r = read_token(c, err);
        if (r < 0)
                return r;
        struct awshttp_options ho = o->http;
        ho.connect_timeout_ms = ho.connect_timeout_ms ? ho.connect_timeout_ms : 2000;
        ho.total_timeout_ms = ho.total_timeout_ms ? ho.total_timeout_ms : 10000;
        ho.max_body = ho.max_body ? ho.max_body : 2u << 20;
        ho.ca_bundle = ca;
        return awshttp_new(&ho, &c->http, err);
}

int k8s_new(const struct k8s_options *opts, k8s_client **ret, struct errmsg *err) {
        static const struct k8s_options none;
        const struct k8s_options *o = opts ? opts : &none;
        if (!ret)
                return errmsg_set(err, -EINVAL, "k8s_new: bad arguments");
        k8s_client *c = calloc(1, sizeof *c);
        if (!c)
                return errmsg_set(err, -ENOMEM, "out of memory");
        c->clock = o->clock ? o->clock : cloud_clock_system();
        c->max_attempts = o->max_attempts ? o->max_attempts : 4;
        c->reread_ns = (uint64_t)(o->token_reread_s ? o->token_reread_s : 60) * 1000000000ull;
        int r = setup(c, o, err);
        if (r < 0) {
                k8s_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

k8s_client *k8s_free(k8s_client *c) {
        if (!c)
                return NULL;
        awshttp_free(c->http);
        free(c->sa_dir);
        free(c->node_name);
        explicit_bzero(c->token, sizeof c->token);
        free(c);
        return NULL;
}

const char *k8s_server(const k8s_client *c) {
        return c->server;
}

const char *k8s_node_name(const k8s_client *c) {
        return c->node_name;
}

unsigned k8s_token_reads(const k8s_client *c) {
        return c->token_reads;
}

bool k8s_name_ok(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > NAME_MAX_LEN || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n)
                return false;
        return isalnum((unsigned char)name[0]) && isalnum((unsigned char)name[n - 1]);
}

/* --- transport ------------------------------------------------------------- */

static bool retryable_status(long st) {
        return st == 429 || st >= 500;
}

/* 200 ms, 400 ms, 800 ms ... capped at 5 s, each with up to 50% jitter added. */
static void back_off(k8s_client *c, unsigned attempt) {
        uint64_t ns = 200000000ull << (attempt < 5 ? attempt : 5);
        if (ns > 5000000000ull)
                ns = 5000000000ull;
        cloud_clock_sleep(c->clock, ns + cloud_random64() % (ns / 2 + 1));
}

/* One GET with the current token, retried on 5xx/429/transport errors; resp on 0. */
static int get_retrying(k8s_client *c, const char *url, struct awshttp_response *resp, struct errmsg *err) {
        char bearer[TOKEN_MAX + 8];
        snprintf(bearer, sizeof bearer, "Bearer %s", c->token);
        const struct awshttp_header h[] = { { "Authorization", bearer }, { "Accept", "application/json" } };
        int r = 0;
        for (unsigned i = 0; i < c->max_attempts; i++) {
                if (i)
                        back_off(c, i - 1);
                r = awshttp_request(c->http, "GET", url, h, 2, NULL, 0, resp, err);
                if (r == 0 && (!retryable_status(resp->status) || i + 1 == c->max_attempts))
                        break;
                if (r == 0)
                        awshttp_response_done(resp);
                else if (!awshttp_error_is_transient(r))
                        break;
        }
        explicit_bzero(bearer, sizeof bearer);
        return r;
}

/* The GET with the token kept fresh: re-read when a minute old (keeping the
 * old one if the file cannot be read just now, as client-go does), and at
 * once on a 401, after which the call is tried once more. */
static int get_fresh(k8s_client *c, const char *url, struct awshttp_response *resp, struct errmsg *err) {
        if (cloud_clock_mono(c->clock) - c->token_read_ns >= c->reread_ns && read_token(c, err) < 0)
                errmsg_clear(err);
        int r = get_retrying(c, url, resp, err);
        if (r < 0 || resp->status != 401)
                return r;
        awshttp_response_done(resp);
        r = read_token(c, err);
        return r < 0 ? r : get_retrying(c, url, resp, err);
}

static int status_errno(long st) {
        if (st == 404)
                return -ENOENT;
        if (st == 401 || st == 403)
                return -EACCES;
        return retryable_status(st) ? -EIO : -EREMOTEIO;
}

/* GET path; on 200 *ret holds the body (free it). what/name name the object in errors. */
static int get_object(k8s_client *c, const char *path, const char *what, const char *name,
                      struct awshttp_response *ret, struct errmsg *err) {
        if (!k8s_name_ok(name))
                return errmsg_set(err, -EINVAL, "%s '%.64s': not a valid object name", what, name ? name : "");
        char url[1024];
        snprintf(url, sizeof url, "%s%s/%s", c->server, path, name);
        struct awshttp_response resp;
        int r = get_fresh(c, url, &resp, err);
        if (r < 0) {
                errmsg_prefix(err, "%s %s", what, name);
                return r;
        }
        if (resp.status == 200 && awshttp_content_type_is(resp.content_type, "application/json", NULL)) {
                *ret = resp;
                return 0;
        }
        char msg[200];
        k8s_parse_status(resp.body, resp.len, msg, sizeof msg);
        long st = resp.status;
        awshttp_response_done(&resp);
        if (st == 200)
                return errmsg_set(err, -EBADMSG, "%s %s: HTTP 200 with content type '%s', not JSON", what, name,
                                  resp.content_type);
        if (st == 404)
                return errmsg_set(err, -ENOENT, "%s %s not found (HTTP 404)", what, name);
        return errmsg_set(err, status_errno(st), "%s %s: HTTP %ld%s%s", what, name, st, msg[0] ? ": " : "", msg);
}

int k8s_get_node(k8s_client *c, const char *name, struct k8s_node **ret, struct errmsg *err) {
        if (!c || !ret)
                return errmsg_set(err, -EINVAL, "k8s_get_node: bad arguments");
        name = name ? name : c->node_name;
        if (!name)
                return errmsg_set(err, -EINVAL, "node: MY_NODE_NAME is unset (the downward API's spec.nodeName)");
        struct awshttp_response resp;
        int r = get_object(c, "/api/v1/nodes", "node", name, &resp, err);
        if (r < 0)
                return r;
        r = k8s_parse_node(resp.body, resp.len, ret, err);
        awshttp_response_done(&resp);
        if (r < 0)
                errmsg_prefix(err, "node %s", name);
        return r;
}

int k8s_get_eniconfig(k8s_client *c, const char *name, struct k8s_eniconfig **ret, struct errmsg *err) {
        if (!c || !ret)
                return errmsg_set(err, -EINVAL, "k8s_get_eniconfig: bad arguments");
        struct awshttp_response resp;
        int r = get_object(c, "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs", "eniconfig", name, &resp, err);
        if (r < 0)
                return r;
        r = k8s_parse_eniconfig(resp.body, resp.len, ret, err);
        awshttp_response_done(&resp);
        if (r < 0)
                errmsg_prefix(err, "eniconfig %s", name);
        return r;
}

/* --- decoders -------------------------------------------------------------- */

/* Strings and their copies: a field of the wrong type is an error, absence is not. */
static int opt_string(struct arena *a, const cJSON *o, const char *key, const char **ret) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v || cJSON_IsNull(v)) {
                *ret = "";
                return 0;
        }
        if (!cJSON_IsString(v))
                return -EBADMSG;
        *ret = arena_strndup(a, v->valuestring, strlen(v->valuestring));
        return *ret ? 0 : -ENOMEM;
}

static const cJSON *opt_object(const cJSON *o, const char *key, int *r) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (v && !cJSON_IsObject(v) && !cJSON_IsNull(v))
                *r = -EBADMSG;
        return cJSON_IsObject(v) ? v : NULL;
}

static const cJSON *opt_array(const cJSON *o, const char *key, int *r) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (v && !cJSON_IsArray(v) && !cJSON_IsNull(v))
                *r = -EBADMSG;
        return cJSON_IsArray(v) ? v : NULL;
}

/* A map of strings (labels, annotations) into an array of pairs. */
static int string_map(struct arena *a, const cJSON *m, const struct k8s_kv **ret, size_t *ret_n) {
        int n = cJSON_GetArraySize(m);
        struct k8s_kv *kv = n > 0 ? arena_alloc(a, (size_t)n * sizeof *kv) : NULL;
        if (n > 0 && !kv)
                return -ENOMEM;
        size_t i = 0;
        for (const cJSON *e = m ? m->child : NULL; e; e = e->next, i++) {
                if (!cJSON_IsString(e) || !e->string)
                        return -EBADMSG;
                kv[i].key = arena_strndup(a, e->string, strlen(e->string));
                kv[i].value = arena_strndup(a, e->valuestring, strlen(e->valuestring));
                if (!kv[i].key || !kv[i].value)
                        return -ENOMEM;
        }
        *ret = kv;
        *ret_n = i;
        return 0;
}

/* The whole document, with apiVersion and kind checked. */
static int open_doc(const char *body, size_t len, const char *api_version, const char *kind,
                    cJSON **ret, struct errmsg *err) {
        cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(doc, "apiVersion");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(doc, "kind");
        if (!cJSON_IsObject(doc)) {
                cJSON_Delete(doc);
                return errmsg_set(err, -EBADMSG, "not a JSON object");
        }
        if (!cJSON_IsString(av) || strcmp(av->valuestring, api_version) != 0 ||
            !cJSON_IsString(k) || strcmp(k->valuestring, kind) != 0) {
                cJSON_Delete(doc);
                return errmsg_set(err, -EBADMSG, "not a %s %s object", api_version, kind);
        }
        *ret = doc;
        return 0;
}

static int object_name(struct arena *a, const cJSON *doc, const char **ret) {
        int r = 0;
        const cJSON *meta = opt_object(doc, "metadata", &r);
        if (r == 0 && meta)
                r = opt_string(a, meta, "name", ret);
        if (r == 0 && (!meta || !k8s_name_ok(*ret)))
                r = -EBADMSG;
        return r;
}

static int parse_taints(struct arena *a, const cJSON *list, struct k8s_node *n) {
        int count = cJSON_GetArraySize(list);
        struct k8s_taint *t = count > 0 ? arena_alloc(a, (size_t)count * sizeof *t) : NULL;
        if (count > 0 && !t)
                return -ENOMEM;
        size_t i = 0;
        int r = 0;
        for (const cJSON *e = list ? list->child : NULL; e && r == 0; e = e->next, i++) {
                if (!cJSON_IsObject(e))
                        return -EBADMSG;
                r = opt_string(a, e, "key", &t[i].key);
                if (r == 0)
                        r = opt_string(a, e, "value", &t[i].value);
                if (r == 0)
                        r = opt_string(a, e, "effect", &t[i].effect);
                if (r == 0 && !t[i].key[0])
                        r = -EBADMSG;
        }
        n->taints = t;
        n->n_taints = i;
        return r;
}

/* status.capacity.pods: a Quantity; for pods always a plain integer. */
static int parse_capacity(const cJSON *status, long *ret) {
        int r = 0;
        const cJSON *cap = status ? opt_object(status, "capacity", &r) : NULL;
        const cJSON *v = cap ? cJSON_GetObjectItemCaseSensitive(cap, "pods") : NULL;
        *ret = -1;
        if (r < 0 || !v)
                return r;
        size_t len = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
        if (len == 0 || len > 9 || strspn(v->valuestring, "0123456789") != len)
                return -EBADMSG;
        *ret = strtol(v->valuestring, NULL, 10);
        return 0;
}

static int node_fields(struct arena *a, const cJSON *doc, struct k8s_node *n) {
        int r = object_name(a, doc, &n->name);
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(doc, "metadata");
        const cJSON *spec = opt_object(doc, "spec", &r), *status = opt_object(doc, "status", &r);
        const cJSON *labels = opt_object(meta, "labels", &r), *ann = opt_object(meta, "annotations", &r);
        const cJSON *taints = spec ? opt_array(spec, "taints", &r) : NULL;
        const cJSON *unsched = spec ? cJSON_GetObjectItemCaseSensitive(spec, "unschedulable") : NULL;
        if (r == 0 && unsched && !cJSON_IsBool(unsched))
                r = -EBADMSG;
        n->unschedulable = cJSON_IsTrue(unsched);
        if (r == 0)
                r = string_map(a, labels, &n->labels, &n->n_labels);
        if (r == 0)
                r = string_map(a, ann, &n->annotations, &n->n_annotations);
        if (r == 0)
                r = parse_taints(a, taints, n);
        if (r == 0)
                r = parse_capacity(status, &n->capacity_pods);
        return r;
}

int k8s_parse_node(const char *body, size_t len, struct k8s_node **ret, struct errmsg *err) {
        cJSON *doc = NULL;
        int r = open_doc(body, len, "v1", "Node", &doc, err);
        if (r < 0)
                return r;
        struct arena *a = arena_new();
        struct k8s_node *n = a ? arena_alloc(a, sizeof *n) : NULL;
        r = n ? node_fields(a, doc, n) : -ENOMEM;
        cJSON_Delete(doc);
        if (r < 0) {
                arena_free(a);
                return errmsg_set(err, r, r == -ENOMEM ? "out of memory" : "a Node with a malformed field");
        }
        n->arena_ = a;
        *ret = n;
        return 0;
}

struct k8s_node *k8s_node_free(struct k8s_node *n) {
        if (n)
                arena_free(n->arena_);
        return NULL;
}

static const char *kv_find(const struct k8s_kv *kv, size_t n, const char *key) {
        for (size_t i = 0; key && i < n; i++)
                if (strcmp(kv[i].key, key) == 0)
                        return kv[i].value;
        return NULL;
}

const char *k8s_node_label(const struct k8s_node *n, const char *key) {
        return kv_find(n->labels, n->n_labels, key);
}

const char *k8s_node_annotation(const struct k8s_node *n, const char *key) {
        return kv_find(n->annotations, n->n_annotations, key);
}

bool k8s_node_has_taint(const struct k8s_node *n, const char *key, const char *effect) {
        for (size_t i = 0; i < n->n_taints; i++)
                if (strcmp(n->taints[i].key, key) == 0 && (!effect || strcmp(n->taints[i].effect, effect) == 0))
                        return true;
        return false;
}

static int security_groups(struct arena *a, const cJSON *list, struct k8s_eniconfig *e) {
        int count = cJSON_GetArraySize(list);
        const char **sg = count > 0 ? arena_alloc(a, (size_t)count * sizeof *sg) : NULL;
        if (count > 0 && !sg)
                return -ENOMEM;
        size_t i = 0;
        for (const cJSON *v = list ? list->child : NULL; v; v = v->next, i++) {
                if (!cJSON_IsString(v) || !v->valuestring[0])
                        return -EBADMSG;
                if (!(sg[i] = arena_strndup(a, v->valuestring, strlen(v->valuestring))))
                        return -ENOMEM;
        }
        e->security_groups = sg;
        e->n_security_groups = i;
        return 0;
}

static int eniconfig_fields(struct arena *a, const cJSON *doc, struct k8s_eniconfig *e) {
        int r = object_name(a, doc, &e->name);
        const cJSON *spec = opt_object(doc, "spec", &r);
        const cJSON *sgs = spec ? opt_array(spec, "securityGroups", &r) : NULL;
        e->subnet = "";
        if (r == 0 && spec)
                r = opt_string(a, spec, "subnet", &e->subnet);
        if (r == 0)
                r = security_groups(a, sgs, e);
        return r;
}

int k8s_parse_eniconfig(const char *body, size_t len, struct k8s_eniconfig **ret, struct errmsg *err) {
        cJSON *doc = NULL;
        int r = open_doc(body, len, "crd.k8s.amazonaws.com/v1alpha1", "ENIConfig", &doc, err);
        if (r < 0)
                return r;
        struct arena *a = arena_new();
        struct k8s_eniconfig *e = a ? arena_alloc(a, sizeof *e) : NULL;
        r = e ? eniconfig_fields(a, doc, e) : -ENOMEM;
        cJSON_Delete(doc);
        if (r < 0) {
                arena_free(a);
                return errmsg_set(err, r, r == -ENOMEM ? "out of memory" : "an ENIConfig with a malformed field");
        }
        e->arena_ = a;
        *ret = e;
        return 0;
}

struct k8s_eniconfig *k8s_eniconfig_free(struct k8s_eniconfig *e) {
        if (e)
                arena_free(e->arena_);
        return NULL;
}

void k8s_parse_status(const char *body, size_t len, char *ret, size_t size) {
        if (!size)
                return;
        ret[0] = '\0';
        cJSON *doc = body && len ? cJSON_ParseWithLength(body, len) : NULL;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, "message");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(doc, "kind");
        if (cJSON_IsString(k) && strcmp(k->valuestring, "Status") == 0 && cJSON_IsString(m)) {
                size_t i = 0;
                for (const char *p = m->valuestring; *p && i + 1 < size; p++)
                        ret[i++] = (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f ? *p : '?';
                ret[i] = '\0';
        }
        cJSON_Delete(doc);
}

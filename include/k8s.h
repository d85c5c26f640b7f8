/*
 * k8s: a small, read-only Kubernetes API client, configured in-cluster.
 *
 * Only what vpc-ipam's features read: its own Node (labels, annotations,
 * spec.unschedulable, taints, status.capacity.pods), for custom networking's
 * ENIConfig choice and the unschedulable rule, and ENIConfig objects
 * (crd.k8s.amazonaws.com/v1alpha1: subnet and security groups). Nothing here
 * runs unless a feature creates a client: a node that needs none makes no API
 * call (and k8s_new() makes none either; the first call is the first GET).
 *
 * Configuration, as client-go's rest.InClusterConfig and aws-node:
 *   - the API server is https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 *     (an IPv6 host goes in brackets), or $CLUSTER_ENDPOINT (an https:// URL)
 *     when set, as aws-node does;
 *   - the service account token and CA are <dir>/token and <dir>/ca.crt, with
 *     <dir> /var/run/secrets/kubernetes.io/serviceaccount (only the options
 *     struct can move it, for tests: the daemon reads no variable for it);
 *   - TLS always verifies the server against ca.crt, never the system store;
 *   - the token is re-read at most once a minute, and at once after a 401
 *     (bound tokens rotate; kubelet rewrites the file), then the call is
 *     retried once with the new token;
 *   - the node's name is $MY_NODE_NAME (the downward API, as aws-node).
 *
 * Every call: a bounded body (k8s_options.max_body), connect and total
 * timeouts, up to max_attempts tries with exponential back-off and jitter on
 * 5xx, 429 and transient transport errors. Errors name the object and the HTTP
 * status: 404 is -ENOENT ("eniconfig us-west-2a not found"), 401/403 -EACCES,
 * other 4xx -EREMOTEIO, 5xx/429 after the last attempt -EIO, a body that is
 * not the object -EBADMSG, an oversized one -EFBIG.
 *
 * One client per thread (it owns an awshttp handle). Results are plain
 * structs owned by one allocation each; cJSON stays inside k8s.c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "awshttp.h"
#include "cloudclock.h"
#include "errmsg.h"

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

typedef struct k8s_client k8s_client;
struct arena;

struct k8s_options {
        const char *sa_dir;             /* NULL: K8S_SA_DIR (tests only move it) */
        unsigned max_attempts;          /* 0: 4 (tries per call on 5xx/429/transport errors) */
        unsigned token_reread_s;        /* 0: 60 */
        struct awshttp_options http;    /* 0: 2 s connect, 10 s total, 2 MiB body; ca_bundle is ignored */
        const struct cloud_clock *clock;  /* NULL: the system clock (back-off, token age) */
};

/*
 * The (verb, resource) pairs this client can request; the DaemonSet's RBAC
 * grants exactly these (tests/deploy/test_deploy.py parses this table).
 *   K8S_RBAC: get nodes ""
 *   K8S_RBAC: get eniconfigs crd.k8s.amazonaws.com
 */

struct k8s_kv {
        const char *key;
        const char *value;
};

struct k8s_taint {
        const char *key;
        const char *value;              /* "" when absent */
        const char *effect;             /* NoSchedule, PreferNoSchedule, NoExecute */
};

struct k8s_node {
        const char *name;
        const struct k8s_kv *labels;
        size_t n_labels;
        const struct k8s_kv *annotations;
        size_t n_annotations;
        bool unschedulable;             /* spec.unschedulable (cordoned) */
        const struct k8s_taint *taints;
        size_t n_taints;
        long capacity_pods;             /* status.capacity.pods; -1 when absent */
        struct arena *arena_;           /* owns everything above */
};

struct k8s_eniconfig {
        const char *name;
        const char *subnet;             /* spec.subnet; "" when absent */
        const char *const *security_groups;  /* spec.securityGroups */
        size_t n_security_groups;
        struct arena *arena_;
};

/* -ENXIO when not in a cluster (no KUBERNETES_SERVICE_HOST nor CLUSTER_ENDPOINT),
 * -EINVAL for a malformed host, port or endpoint, -ENOENT when the token or CA
 * file is missing. Reads the token; sends nothing. */
int k8s_new(const struct k8s_options *opts, k8s_client **ret, struct errmsg *err);
k8s_client *k8s_free(k8s_client *c);

/* "https://host:port" (no trailing slash). */
const char *k8s_server(const k8s_client *c);
/* $MY_NODE_NAME at k8s_new(), or NULL when unset. */
const char *k8s_node_name(const k8s_client *c);
/* Token file reads so far (1 after k8s_new()). */
unsigned k8s_token_reads(const k8s_client *c);

/* GET /api/v1/nodes/<name>; name NULL: k8s_node_name() (-EINVAL when unset). */
int k8s_get_node(k8s_client *c, const char *name, struct k8s_node **ret, struct errmsg *err);
struct k8s_node *k8s_node_free(struct k8s_node *n);
/* A label's or annotation's value, or NULL. */
const char *k8s_node_label(const struct k8s_node *n, const char *key);
const char *k8s_node_annotation(const struct k8s_node *n, const char *key);
/* Whether the node has a taint with this key (and this effect, unless NULL). */
bool k8s_node_has_taint(const struct k8s_node *n, const char *key, const char *effect);

/* GET /apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/<name> (cluster-scoped). */
int k8s_get_eniconfig(k8s_client *c, const char *name, struct k8s_eniconfig **ret, struct errmsg *err);
struct k8s_eniconfig *k8s_eniconfig_free(struct k8s_eniconfig *e);

/* The decoders (pure; fuzzed by tests/fuzz/fuzz-k8s.c): the JSON of one
 * object, checked for its apiVersion and kind; -EBADMSG otherwise. */
int k8s_parse_node(const char *body, size_t len, struct k8s_node **ret, struct errmsg *err);
int k8s_parse_eniconfig(const char *body, size_t len, struct k8s_eniconfig **ret, struct errmsg *err);
/* The message of a metav1.Status body, printable and cut to size-1 bytes; "" if none. */
void k8s_parse_status(const char *body, size_t len, char *ret, size_t size);

/* Whether name is a valid object name (a DNS subdomain: [a-z0-9.-], <= 253). */
bool k8s_name_ok(const char *name);

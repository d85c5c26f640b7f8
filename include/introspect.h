/*
 * introspect: vpc-ipamd over HTTP (libmicrohttpd) for people and Prometheus.
 *
 * At INTROSPECTION_BIND_ADDRESS (default 127.0.0.1:61679), JSON:
 *   /                        the available paths
 *   /v1/enis                 ENIs with their counts and addresses
 *   /v1/pods                 the addresses held by pods
 *   /v1/pool                 the pool's counts and the instance's limits
 *   /v1/ipamd-env-settings   every variable the daemon reads, with its value
 * At METRICS_BIND_ADDRESS (default :61678), /metrics in Prometheus text with
 * aws-node's metric names where the meaning is the same, plus vpcipam_* ones.
 * Either server can be disabled (DISABLE_INTROSPECTION, DISABLE_METRICS).
 */
#pragma once

#include "errmsg.h"
#include "ipamd-config.h"
#include "metrics.h"
#include "node.h"
#include "ratelimit.h"
#include "store.h"

typedef struct introspect introspect;

struct introspect_options {
        const struct ipamd_config *cfg;
        const struct node *node;
        store *store;                /* borrowed; used only under the module's lock */
        metrics *metrics;            /* borrowed */
        ratelimit *limits;           /* borrowed; EC2 call statistics */
};

int introspect_start(const struct introspect_options *opts, introspect **ret, struct errmsg *err);
introspect *introspect_stop(introspect *h);

/* The bodies, for tests and for vpc-ipamctl-like tools: malloc'd strings. */
int introspect_render_metrics(introspect *h, char **ret);
int introspect_render_json(introspect *h, const char *path, char **ret);

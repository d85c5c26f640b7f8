/*
 * customnet: what vpc-ipamd reads from the Kubernetes API, on a thread of its
 * own so that the API server being away or slow never holds up serving
 * addresses or growing the pool from what is already known.
 *
 * Two features use it, and a node that needs neither makes no API call:
 *   - custom networking (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG): the ENIConfig
 *     the Node names gives the subnet and security groups of every new ENI;
 *   - the unschedulable rule (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false): with
 *     the Node tainted node.kubernetes.io/unschedulable:NoSchedule, no ENI is
 *     attached or detached.
 *
 * The thread reads the Node (GET, MY_NODE_NAME) and, for custom networking,
 * the ENIConfig it names, every CUSTOMNET_REFRESH_MS, sooner when asked
 * (customnet_refresh), and after a failure again with back-off (1 s doubling
 * to 30 s). Each read publishes a view; a failed read keeps the last good
 * one (stale but true once) and records the error. A definite answer that
 * the ENIConfig does not exist (404) or names no subnet clears the subnet:
 * no new ENI then, rather than one in the wrong subnet.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "k8s.h"

#define CUSTOMNET_REFRESH_MS 15000
#define CUSTOMNET_MAX_SGS 16
#define CUSTOMNET_ID_MAX 64
#define CUSTOMNET_NAME_MAX 254
#define CUSTOMNET_ERROR_MAX 240
/* The label that names a node's ENIConfig ahead of everything (aws-node). */
#define CUSTOMNET_EXTERNAL_LABEL "vpc.amazonaws.com/externalEniConfig"
#define CUSTOMNET_DEFAULT_KEY "k8s.amazonaws.com/eniConfig"
#define CUSTOMNET_UNSCHEDULABLE_TAINT "node.kubernetes.io/unschedulable"

typedef struct customnet customnet;

struct customnet_options {
        bool eniconfig;                 /* custom networking: read the ENIConfig the Node names */
        const char *annotation_key;     /* ENI_CONFIG_ANNOTATION_DEF */
        const char *label_key;          /* ENI_CONFIG_LABEL_DEF */
        int refresh_ms;                 /* 0: CUSTOMNET_REFRESH_MS */
        void (*changed)(void *userdata);        /* the view changed (called on the thread) */
        void *userdata;
        struct k8s_options k8s;         /* 0: 2 s connect, 5 s total, 2 attempts per call */
};

struct customnet_view {
        bool node_read;                 /* the Node was read at least once */
        bool unschedulable;             /* its NoSchedule unschedulable taint, at the last read */
        char name[CUSTOMNET_NAME_MAX];  /* the ENIConfig the Node names */
        char subnet[CUSTOMNET_ID_MAX];  /* its spec.subnet; "" when unknown or missing */
        char groups[CUSTOMNET_MAX_SGS][CUSTOMNET_ID_MAX];  /* spec.securityGroups */
        size_t n_groups;
        char error[CUSTOMNET_ERROR_MAX];  /* the last read's failure; "" when it worked */
        unsigned reads, failures;       /* counters, for tests and logs */
        unsigned served;                /* the last customnet_refresh ticket this view answers (0: none) */
        int64_t started_ms;             /* vtime_mono_ms() when the reader started */
};

/* Start the thread; nothing is read before it runs. */
int customnet_start(const struct customnet_options *o, customnet **ret, struct errmsg *err);
/* Thread-safe: options.changed is not called any more once this returns (before freeing what it uses). */
void customnet_mute(customnet *c);
/* Stop the thread (a call in flight finishes first, within its timeouts) and free. */
customnet *customnet_stop(customnet *c);

/* Thread-safe: a copy of what the last reads told. */
void customnet_view(customnet *c, struct customnet_view *ret);
/*
 * Thread-safe: read again now (ENIs are about to be created). Returns a
 * ticket (never 0): the view is as new as the request once its served is at
 * least the ticket; a read that fails serves nothing. The read's end calls
 * options.changed, changed or not, so the caller may look again.
 */
unsigned customnet_refresh(customnet *c);

/*
 * The ENIConfig a Node names (aws-node's order): the label
 * vpc.amazonaws.com/externalEniConfig, the annotation annotation_key, the
 * label label_key, else "default". NULL keys: CUSTOMNET_DEFAULT_KEY.
 */
const char *customnet_config_name(const struct k8s_node *n, const char *annotation_key, const char *label_key);

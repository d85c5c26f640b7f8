/*
 * ipamd-config: everything vpc-ipamd reads from its environment, strictly.
 *
 * aws-node's names, defaults and meanings, plus vpc-ipamd's own VPC_IPAM_*
 * variables. Any invalid value — or a feature vpc-ipamd does not implement
 * yet, switched on — is an error naming the variable, the value and what is
 * accepted; the daemon exits with it before touching anything. The pool's own
 * variables are parsed by poolconfig (ipam/) and carried here as `pool`; each
 * variable is in one of the two tables only. aws-node's variables that do not
 * apply here are in a third list (ipamd_config_ignored_var): checked, and
 * warned about at start when set. `vpc-ipamd -n` runs the same parse and path
 * check, then lists every setting (ipamd_config_setting).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"
#include "log.h"
#include "poolconfig.h"
#include "snat.h"

#define IPAMD_PATH_MAX 4096
#define IPAMD_SOCKET_PATH_MAX 107       /* sun_path less the NUL */
#define IPAMD_BIND_MAX 128
#define IPAMD_CLUSTER_NAME_MAX 255
#define IPAMD_TAGS_MAX 40               /* EC2 allows 50 per resource; 10 are ours at most */
#define IPAMD_TAG_KEY_MAX 128
#define IPAMD_TAG_VALUE_MAX 256
#define IPAMD_SERVICE_CIDRS_MAX 32
#define IPAMD_CIDR_LEN 19                /* "255.255.255.255/32" and the NUL */
#define IPAMD_ENDPOINT_MAX 512
/* aws-node (since v1.19.4) tags the ENIs it creates with this when CLUSTER_NAME is
 * set, so that EKS's VPC resource controller can delete them if they leak. */
#define IPAMD_OWNER_TAG_KEY "eks:eni:owner"
#define IPAMD_OWNER_TAG_VALUE "amazon-vpc-cni"
/* AWS_VPC_K8S_CNI_LOG_FILE rotation, as aws-node's lumberjack: 100 MiB, 5 backups. */
#define IPAMD_LOG_FILE_MAX_BYTES (100LL * 1024 * 1024)
#define IPAMD_LOG_FILE_BACKUPS 5

struct ipamd_tag {
        char key[IPAMD_TAG_KEY_MAX + 1];
        char value[IPAMD_TAG_VALUE_MAX + 1];
};

/* aws-node's checkpoint, imported once when vpc-ipamd takes over a node (awsnode-import.h). */
#define IPAMD_AWSNODE_CHECKPOINT_DEFAULT "/var/run/aws-node/ipam.json"

struct ipamd_config {
        struct poolconfig pool;
        int eni_mtu;                            /* AWS_VPC_ENI_MTU, 9001 */
        int pod_mtu;                            /* POD_MTU, = eni_mtu */
        char cluster_name[IPAMD_CLUSTER_NAME_MAX + 1];
        struct ipamd_tag tags[IPAMD_TAGS_MAX];  /* ADDITIONAL_ENI_TAGS, plus IPAMD_OWNER_TAG_KEY with CLUSTER_NAME */
        size_t n_tags;
        bool owner_tag_implied;                 /* the last tag is the one CLUSTER_NAME implies */
        bool no_provisioning;                   /* DISABLE_NETWORK_RESOURCE_PROVISIONING (or ENABLE_IMDS_ONLY_MODE) */
        bool no_leak_cleanup;                   /* DISABLE_LEAKED_ENI_CLEANUP (or ENABLE_IMDS_ONLY_MODE) */
        bool imds_only;                         /* ENABLE_IMDS_ONLY_MODE */
        bool manage_untagged;                   /* MANAGE_UNTAGGED_ENI, true */
        bool subnet_discovery;                  /* ENABLE_SUBNET_DISCOVERY, true: new ENIs in tagged subnets too */
        bool prefix_delegation;                 /* ENABLE_PREFIX_DELEGATION: /28 prefixes (nitro only) */
        bool custom_networking;                 /* AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: new ENIs per the ENIConfig */
        char eniconfig_annotation[254];         /* ENI_CONFIG_ANNOTATION_DEF */
        char eniconfig_label[254];              /* ENI_CONFIG_LABEL_DEF */
        bool manage_non_schedulable;            /* AWS_MANAGE_ENIS_NON_SCHEDULABLE */
        char node_name[254];                    /* MY_NODE_NAME */
        char cluster_endpoint[IPAMD_ENDPOINT_MAX + 1];  /* CLUSTER_ENDPOINT */
        bool in_cluster;                        /* KUBERNETES_SERVICE_HOST or CLUSTER_ENDPOINT set */
        bool ipv4;                              /* ENABLE_IPv4, true */
        bool ipv6;                              /* ENABLE_IPv6: pods on /128s from one /80 (needs !ipv4, PD) */
        bool v4_egress;                         /* ENABLE_V4_EGRESS, true: IPv6 pods get a 169.254.172.0/22 address */
        bool v6_egress;                         /* ENABLE_V6_EGRESS, false: IPv4 pods get an fd00::ac:0/118 address
                                                   (IPv4 mode, a node with an IPv6 address); ignored in IPv6 mode */
        char service_cidrs[IPAMD_SERVICE_CIDRS_MAX][IPAMD_CIDR_LEN];   /* AWS_EXTERNAL_SERVICE_CIDRS */
        size_t n_service_cidrs;
        char ec2_endpoint[IPAMD_ENDPOINT_MAX + 1];     /* AWS_EC2_ENDPOINT; "" = the SDK variables' */
        int http_timeout_s;                     /* HTTP_TIMEOUT, 10 */
        enum log_level log_level;               /* AWS_VPC_K8S_CNI_LOGLEVEL */
        enum log_format log_format;             /* VPC_IPAM_LOG_FORMAT */
        char log_file[IPAMD_PATH_MAX + 1];      /* AWS_VPC_K8S_CNI_LOG_FILE; "" = stderr only */
        char introspection_bind[IPAMD_BIND_MAX + 1];   /* INTROSPECTION_BIND_ADDRESS */
        char metrics_bind[IPAMD_BIND_MAX + 1];  /* METRICS_BIND_ADDRESS */
        bool no_introspection;                  /* DISABLE_INTROSPECTION */
        bool no_metrics;                        /* DISABLE_METRICS */
        char socket_path[IPAMD_SOCKET_PATH_MAX + 1];   /* VPC_IPAM_SOCKET */
        char db_path[IPAMD_PATH_MAX + 1];       /* VPC_IPAM_DB */
        char awsnode_checkpoint[IPAMD_PATH_MAX + 1]; /* VPC_IPAM_AWS_NODE_CHECKPOINT: aws-node's ipam.json */
        int add_wait_ms;                        /* VPC_IPAM_ADD_WAIT (seconds in the env) */
        int imds_start_wait_s;                  /* VPC_IPAM_IMDS_START_WAIT: IMDS retried at start this long */
        double ec2_rate_share;                  /* VPC_IPAM_EC2_RATE_SHARE */
        int leak_cleanup_interval_s;            /* VPC_IPAM_LEAK_CLEANUP_INTERVAL */
        int vpc_cidr_refresh_s;                 /* VPC_IPAM_VPC_CIDR_REFRESH */
        struct snat_config snat;                /* egress: AWS_VPC_K8S_CNI_EXTERNALSNAT and the rest (snat.h) */
        uint64_t has;                           /* bit i: the environment set ipamd_config_var(i) */
        uint64_t ignored;                       /* bit i: the environment set ipamd_config_ignored_var(i) */
};

/* One row of the documented variable table (README, /v1/ipamd-env-settings). */
struct ipamd_config_var {
        const char *name;
        const char *default_value;
        const char *accepted;
};

/*
 * An aws-node variable that does not apply to vpc-ipamd: its value is
 * checked all the same (accepted says what passes: a value that would switch
 * on a feature vpc-ipamd lacks is refused, exit 2), and a start with it set
 * logs one warning naming it and the reason (vpc-ipamd -n prints it too).
 */
struct ipamd_ignored_var {
        const char *name;
        const char *accepted;
        const char *reason;
};

/* The i-th aws-node variable vpc-ipamd ignores; NULL past the end. */
const struct ipamd_ignored_var *ipamd_config_ignored_var(size_t i);

/* The defaults, as aws-node's where it has the variable. */
void ipamd_config_defaults(struct ipamd_config *ret);

/*
 * Read the configuration from env, a NULL-terminated "NAME=value" array, then
 * check the rules across variables (no two of the socket, the store, the log
 * file and unix: binds at one path; introspection and metrics not on one
 * port; ENABLE_IMDS_ONLY_MODE not contradicted; MANAGE_UNTAGGED_ENI=false
 * only where EC2's tags are read), and add the tag CLUSTER_NAME implies.
 * -EINVAL (or -ERANGE, -EOPNOTSUPP for a feature not supported yet,
 * -EADDRINUSE) with err naming the variable on the first bad value; *ret
 * untouched then.
 */
int ipamd_config_from_env(const char *const *env, struct ipamd_config *ret, struct errmsg *err);

/*
 * Check the paths c would create or open, without creating or opening
 * anything: none may be a directory, and the nearest existing parent of each
 * must be one. -EISDIR or -ENOTDIR with err naming the variable.
 */
int ipamd_config_check_paths(const struct ipamd_config *c, struct errmsg *err);

/*
 * The i-th pool variable (WARM_*, MINIMUM_IP_TARGET, MAX_ENI,
 * VPC_IPAM_SHRINK_DELAY) the environment set that IPv6 mode ignores (one /80
 * serves every pod; no ENI is added); NULL past the end, and always NULL
 * outside IPv6 mode. The daemon warns once at start for each.
 */
const char *ipamd_config_v6_ignored(const struct ipamd_config *c, size_t i);

/* The i-th variable the daemon reads besides the pool's, in documentation order; NULL past the end. */
const struct ipamd_config_var *ipamd_config_var(size_t i);

/*
 * The i-th of every variable vpc-ipamd reads (its own, then the pool's): its
 * name, whether the environment set it, and its effective value written into
 * buf as the environment would spell it (POD_MTU as a number, the log file
 * "stderr" when none). -ENOENT past the end, nothing written then.
 */
int ipamd_config_setting(const struct ipamd_config *c, size_t i, const char **ret_name, bool *ret_set,
                         char *buf, size_t size);

/*
 * Parse "host:port" (IPv4 or "" for any address), ":port", or "unix:/path".
 * Used for the introspection and metrics addresses.
 */
int ipamd_config_parse_bind(const char *name, const char *value, struct errmsg *err);

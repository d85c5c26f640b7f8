/*
 * cni-config: what the runtime hands the vpc-cni plugin — the CNI_*
 * environment and the network configuration on stdin — parsed and checked.
 *
 * Every failure comes back as a negative errno, a sentence in errmsg, and the
 * CNI error code the plugin must answer with (4 bad environment, 6 decode,
 * 7 invalid configuration, 1 incompatible version), so main() only prints.
 * Nothing here touches the network or the file system.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "errmsg.h"
#include "protocol.h"

/* CNI error codes of the spec, and ours (100+). */
enum cni_code {
        CNI_ERR_INCOMPATIBLE_VERSION = 1,
        CNI_ERR_UNSUPPORTED_FIELD = 2,
        CNI_ERR_UNKNOWN_CONTAINER = 3,
        CNI_ERR_INVALID_ENV = 4,
        CNI_ERR_IO = 5,
        CNI_ERR_DECODE = 6,
        CNI_ERR_INVALID_CONFIG = 7,
        CNI_ERR_TRY_AGAIN_LATER = 11,
        CNI_ERR_UNAVAILABLE = 50,
        CNI_ERR_UNAVAILABLE_DEGRADED = 51,
        CNI_ERR_DATAPLANE = 100,        /* a netlink operation failed */
        CNI_ERR_DAEMON = 101,           /* the daemon refused (non-retryable) */
        CNI_ERR_PROTOCOL = 102,         /* the daemon's reply made no sense */
        CNI_ERR_INTERFACE_EXISTS = 103, /* ADD: CNI_IFNAME already exists in the netns */
        CNI_ERR_DRIFT = 104,            /* CHECK: the dataplane differs from what ADD made */
};

enum cni_command {
        CNI_CMD_ADD,
        CNI_CMD_DEL,
        CNI_CMD_CHECK,
        CNI_CMD_VERSION,
        CNI_CMD_GC,
        CNI_CMD_STATUS,
        _CNI_CMD_MAX,
};

#define CNI_VETH_PREFIX_MAX 4
#define CNI_VETH_PREFIX_DEFAULT "eni"
#define CNI_STDIN_MAX (1 << 20)

/* The versions this plugin speaks, oldest first (NULL-terminated). */
extern const char *const cni_supported_versions[];

struct cni_env {
        enum cni_command command;
        char container_id[PROTO_CONTAINER_ID_MAX + 1];
        char netns[PROTO_NETNS_MAX + 1];        /* may be empty for DEL */
        char ifname[PROTO_IFNAME_MAX + 1];
        const char *path;                       /* CNI_PATH, points into the environment */
        char pod_namespace[PROTO_POD_FIELD_MAX + 1];
        char pod_name[PROTO_POD_FIELD_MAX + 1];
        char pod_uid[PROTO_POD_FIELD_MAX + 1];
        char pod_infra_container_id[PROTO_CONTAINER_ID_MAX + 1];
};

struct cni_config {
        char *name;
        char *cni_version;
        char *socket;           /* default PROTO_SOCKET_DEFAULT */
        unsigned mtu;           /* 0: the daemon's */
        char veth_prefix[CNI_VETH_PREFIX_MAX + 1];
        bool veth_delete_sync;          /* "vethDelete": "sync" (default "async": vpc-ipamd deletes it) */
        char *log_file;
        char *log_level;
        cJSON *prev_result;     /* owned copy, or NULL */
        struct proto_attachment *valid; /* GC: cni.dev/valid-attachments */
        size_t n_valid;
};

int cni_command_from_name(const char *name, enum cni_command *ret);
const char *cni_command_name(enum cni_command cmd);

/* Does the plugin speak this cniVersion? */
bool cni_version_supported(const char *v);
/* Compare two dotted versions ("0.4.0" < "1.0.0"); unparsable compares lowest. */
int cni_version_cmp(const char *a, const char *b);

/*
 * Read CNI_COMMAND and then what that command needs from envp (a NULL
 * terminated "K=V" array, e.g. environ). CNI_ARGS' K8S_POD_* keys are kept;
 * other keys are refused unless IgnoreUnknown is set. On failure *ret_code is
 * CNI_ERR_INVALID_ENV and *ret is untouched.
 */
int cni_env_parse(char *const *envp, struct cni_env *ret, int *ret_code, struct errmsg *err);

/*
 * Parse the network configuration (len bytes, need not be NUL-terminated) for
 * cmd. On failure *ret_code is 6 (not JSON), 7 (invalid) or 1 (version).
 */
int cni_config_parse(const char *json, size_t len, enum cni_command cmd, struct cni_config *ret,
                     int *ret_code, struct errmsg *err);
void cni_config_done(struct cni_config *c);

/*
 * config: the CNI environment and the network configuration of vpc-cni.
 *
 * The environment is read from an envp array rather than getenv() so tests
 * and the fuzzer can hand in any set of variables. Which variables a command
 * needs comes from one table (cmd_needs), as the spec lists them. CNI_ARGS is
 * "K=V;K=V": the four K8S_POD_* keys are kept, IgnoreUnknown relaxes the
 * refusal of the others.
 *
 * The configuration is parsed with cJSON and checked field by field; unknown
 * fields are ignored (the runtime adds its own), a field of the wrong type or
 * out of range is refused with code 7 and a sentence naming it.
 */
#include <errno.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cni-config.h"
#include "log.h"

const char *const cni_supported_versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", NULL };

static const char *const command_names[_CNI_CMD_MAX] = {
        [CNI_CMD_ADD] = "ADD", [CNI_CMD_DEL] = "DEL", [CNI_CMD_CHECK] = "CHECK",
        [CNI_CMD_VERSION] = "VERSION", [CNI_CMD_GC] = "GC", [CNI_CMD_STATUS] = "STATUS",
};

enum {
        NEED_ID = 1 << 0,
        NEED_NETNS = 1 << 1,
        NEED_IFNAME = 1 << 2,
        NEED_PATH = 1 << 3,
};

/* What each command requires (the CNI spec's "required environment"). */
static const unsigned cmd_needs[_CNI_CMD_MAX] = {
        [CNI_CMD_ADD] = NEED_ID | NEED_NETNS | NEED_IFNAME,
        [CNI_CMD_DEL] = NEED_ID | NEED_IFNAME,
        [CNI_CMD_CHECK] = NEED_ID | NEED_NETNS | NEED_IFNAME,
        [CNI_CMD_VERSION] = 0,
        [CNI_CMD_GC] = NEED_PATH,
        [CNI_CMD_STATUS] = 0,
};

const char *cni_command_name(enum cni_command cmd) {
        return (unsigned)cmd < _CNI_CMD_MAX ? command_names[cmd] : "?";
}

int cni_command_from_name(const char *name, enum cni_command *ret) {
        for (int i = 0; name && i < _CNI_CMD_MAX; i++)
                if (strcmp(name, command_names[i]) == 0) {
                        *ret = (enum cni_command)i;
                        return 0;
                }
        return -EINVAL;
}

bool cni_version_supported(const char *v) {
        for (size_t i = 0; v && cni_supported_versions[i]; i++)
                if (strcmp(v, cni_supported_versions[i]) == 0)
                        return true;
        return false;
}

int cni_version_cmp(const char *a, const char *b) {
        unsigned x[3] = { 0 }, y[3] = { 0 };
        int na = a ? sscanf(a, "%u.%u.%u", &x[0], &x[1], &x[2]) : 0;
        int nb = b ? sscanf(b, "%u.%u.%u", &y[0], &y[1], &y[2]) : 0;
        if (na < 1 || nb < 1)
                return (na >= 1) - (nb >= 1);
        for (int i = 0; i < 3; i++)
                if (x[i] != y[i])
                        return x[i] < y[i] ? -1 : 1;
        return 0;
}

/* --- environment ------------------------------------------------------------------ */

static const char *env_get(char *const *envp, const char *key) {
        size_t n = strlen(key);
        for (; envp && *envp; envp++)
                if (strncmp(*envp, key, n) == 0 && (*envp)[n] == '=')
                        return *envp + n + 1;
        return NULL;
}

static int env_copy(const char *key, const char *v, char *dst, size_t max, struct errmsg *err) {
        if (!v || !*v)
                return errmsg_set(err, -EINVAL, "%s is not set", key);
        if (strlen(v) > max)
                return errmsg_set(err, -EINVAL, "%s is longer than %zu characters", key, max);
        memcpy(dst, v, strlen(v) + 1);
        return 0;
}

static int env_netns(const char *v, bool required, struct cni_env *e, struct errmsg *err) {
        if (!v || !*v) {
                if (required)
                        return errmsg_set(err, -EINVAL, "CNI_NETNS is not set");
                return 0;
        }
        if (v[0] != '/')
                return errmsg_set(err, -EINVAL, "CNI_NETNS=%.64s: not an absolute path", v);
        return env_copy("CNI_NETNS", v, e->netns, PROTO_NETNS_MAX, err);
}

static bool truthy(const char *v) {
        return strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0;
}

/* One K=V of CNI_ARGS; *unknown is set for keys we do not know. */
static int args_pair(const char *k, const char *v, struct cni_env *e, const char **unknown, struct errmsg *err) {
        static const struct { const char *key; size_t off, max; } keys[] = {
                { "K8S_POD_NAMESPACE", offsetof(struct cni_env, pod_namespace), PROTO_POD_FIELD_MAX },
                { "K8S_POD_NAME", offsetof(struct cni_env, pod_name), PROTO_POD_FIELD_MAX },
                { "K8S_POD_UID", offsetof(struct cni_env, pod_uid), PROTO_POD_FIELD_MAX },
                { "K8S_POD_INFRA_CONTAINER_ID", offsetof(struct cni_env, pod_infra_container_id),
                  PROTO_CONTAINER_ID_MAX },
        };
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
                if (strcmp(k, keys[i].key) == 0) {
                        if (strlen(v) > keys[i].max)
                                return errmsg_set(err, -EINVAL, "CNI_ARGS: %s is longer than %zu characters", k,
                                                  keys[i].max);
                        strcpy((char *)e + keys[i].off, v);
                        return 0;
                }
        if (strcmp(k, "IgnoreUnknown") != 0 && !*unknown)
                *unknown = k;
        return 0;
}

static int env_args(const char *args, struct cni_env *e, struct errmsg *err) {
        if (!args || !*args)
                return 0;
        if (strlen(args) > 8192)
                return errmsg_set(err, -EINVAL, "CNI_ARGS is longer than 8192 characters");
        char *copy = strdup(args), *save = NULL;
        if (!copy)
                return -ENOMEM;
        const char *unknown = NULL;
        bool ignore_unknown = false;
        int r = 0;
        char unknown_key[64] = "";
        for (char *pair = strtok_r(copy, ";", &save); pair && r >= 0; pair = strtok_r(NULL, ";", &save)) {
                char *eq = strchr(pair, '=');
                if (!eq || eq == pair) {
                        r = errmsg_set(err, -EINVAL, "CNI_ARGS: \"%.64s\" is not KEY=VALUE", pair);
                        break;
                }
                *eq = '\0';
                if (strcmp(pair, "IgnoreUnknown") == 0)
                        ignore_unknown = truthy(eq + 1);
                r = args_pair(pair, eq + 1, e, &unknown, err);
                if (unknown && !unknown_key[0])
                        snprintf(unknown_key, sizeof unknown_key, "%s", unknown);
        }
        free(copy);
        if (r >= 0 && unknown_key[0] && !ignore_unknown)
                r = errmsg_set(err, -EINVAL, "CNI_ARGS: unknown key \"%s\" (and IgnoreUnknown is not set)",
                               unknown_key);
        return r;
}

static int env_fields(char *const *envp, unsigned needs, struct cni_env *e, struct errmsg *err) {
        const char *v = env_get(envp, "CNI_CONTAINERID");
        if (needs & NEED_ID || (v && *v)) {
                int r = env_copy("CNI_CONTAINERID", v, e->container_id, PROTO_CONTAINER_ID_MAX, err);
                if (r < 0)
                        return r;
                if (!proto_valid_container_id(v))
                        return errmsg_set(err, -EINVAL,
                                          "CNI_CONTAINERID=%.64s: must be letters, digits, '_', '.', '-', "
                                          "starting with a letter or digit", v);
        }
        v = env_get(envp, "CNI_IFNAME");
        if (needs & NEED_IFNAME || (v && *v)) {
                if (!v || !*v)
                        return errmsg_set(err, -EINVAL, "CNI_IFNAME is not set");
                if (!proto_valid_ifname(v))
                        return errmsg_set(err, -EINVAL, "CNI_IFNAME=%.64s: not a valid interface name "
                                          "(1-15 characters, no '/', ':' or spaces)", v);
                strcpy(e->ifname, v);
        }
        int r = env_netns(env_get(envp, "CNI_NETNS"), needs & NEED_NETNS, e, err);
        if (r < 0)
                return r;
        e->path = env_get(envp, "CNI_PATH");
        if ((needs & NEED_PATH) && (!e->path || !*e->path))
                return errmsg_set(err, -EINVAL, "CNI_PATH is not set");
        return env_args(env_get(envp, "CNI_ARGS"), e, err);
}

int cni_env_parse(char *const *envp, struct cni_env *ret, int *ret_code, struct errmsg *err) {
        struct cni_env e = { 0 };
        const char *cmd = env_get(envp, "CNI_COMMAND");
        int r;
        if (!cmd || !*cmd)
                r = errmsg_set(err, -EINVAL, "CNI_COMMAND is not set");
        else if (cni_command_from_name(cmd, &e.command) < 0)
                r = errmsg_set(err, -EINVAL, "CNI_COMMAND=%.32s: not one of ADD, DEL, CHECK, VERSION, GC, STATUS",
                               cmd);
        else
                r = env_fields(envp, cmd_needs[e.command], &e, err);
        if (r < 0) {
                *ret_code = CNI_ERR_INVALID_ENV;
                return r;
        }
        *ret = e;
        return 0;
}

/* --- configuration ------------------------------------------------------------------ */

void cni_config_done(struct cni_config *c) {
        if (!c)
                return;
        free(c->name);
        free(c->cni_version);
        free(c->socket);
        free(c->log_file);
        free(c->log_level);
        cJSON_Delete(c->prev_result);
        free(c->valid);
        *c = (struct cni_config){ 0 };
}

/* An optional string field; required ones pass required = true. */
static int cfg_str(const cJSON *o, const char *key, bool required, size_t max, char **dst, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v || cJSON_IsNull(v))
                return required ? errmsg_set(err, -EINVAL, "\"%s\" is missing from the network configuration", key)
                                : 0;
        if (!cJSON_IsString(v))
                return errmsg_set(err, -EINVAL, "\"%s\" must be a string", key);
        if (strlen(v->valuestring) > max)
                return errmsg_set(err, -EINVAL, "\"%s\" is longer than %zu characters", key, max);
        *dst = strdup(v->valuestring);
        return *dst ? 0 : -ENOMEM;
}

static int cfg_name(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        int r = cfg_str(o, "name", true, 253, &c->name, err);
        if (r >= 0 && !proto_valid_container_id(c->name))
                r = errmsg_set(err, -EINVAL, "\"name\"=\"%.64s\": must be letters, digits, '_', '.', '-'", c->name);
        return r;
}

static int cfg_type(const cJSON *o, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "type");
        if (!cJSON_IsString(v))
                return errmsg_set(err, -EINVAL, "\"type\" is missing or not a string");
        if (strcmp(v->valuestring, "vpc-cni") != 0)
                return errmsg_set(err, -EINVAL, "\"type\"=\"%.64s\": this plugin is \"vpc-cni\"", v->valuestring);
        return 0;
}

static int cfg_socket(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        int r = cfg_str(o, "socket", false, 107, &c->socket, err);
        if (r < 0)
                return r;
        if (c->socket && c->socket[0] != '/')
                return errmsg_set(err, -EINVAL, "\"socket\"=\"%.64s\": not an absolute path", c->socket);
        if (!c->socket)
                c->socket = strdup(PROTO_SOCKET_DEFAULT);
        return c->socket ? 0 : -ENOMEM;
}

static int cfg_mtu(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "mtu");
        if (!v || cJSON_IsNull(v))
                return 0;
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (!isfinite(d) || d != floor(d) || d < 576 || d > 9001)
                return errmsg_set(err, -EINVAL, "\"mtu\" must be an integer in 576..9001");
        c->mtu = (unsigned)d;
        return 0;
}

static int cfg_veth_prefix(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        char *p = NULL;
        int r = cfg_str(o, "vethPrefix", false, 64, &p, err);
        if (r < 0 || !p) {
                strcpy(c->veth_prefix, CNI_VETH_PREFIX_DEFAULT);
                return r;
        }
        size_t n = strlen(p);
        bool ok = n >= 1 && n <= CNI_VETH_PREFIX_MAX && isalpha((unsigned char)p[0]);
        for (size_t i = 0; ok && i < n; i++)
                ok = isalnum((unsigned char)p[i]);
        if (ok && (strncmp(p, "eth", 3) == 0 || strncmp(p, "lo", 2) == 0 || strncmp(p, "vlan", 4) == 0))
                r = errmsg_set(err, -EINVAL, "\"vethPrefix\"=\"%s\": would clash with eth*, lo* or vlan* links", p);
        else if (!ok)
                r = errmsg_set(err, -EINVAL, "\"vethPrefix\"=\"%.64s\": 1-%d letters or digits, starting with a letter",
                               p, CNI_VETH_PREFIX_MAX);
        else
                strcpy(c->veth_prefix, p);
        free(p);
        return r;
}

/* "vethDelete": "async" (DEL takes the host veth down and vpc-ipamd deletes
 * it right after: the kernel's ~20 ms RCU wait is nobody's latency) or "sync"
 * (the plugin deletes it before DEL returns). "deferred", an earlier mode
 * that took the veth down and left it to the namespace's teardown, is read
 * as "async" (which also takes it down first), so an old conflist keeps
 * working. */
static int cfg_veth_delete(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vethDelete");
        if (!v || cJSON_IsNull(v))
                return 0;
        if (!cJSON_IsString(v) || (strcmp(v->valuestring, "async") != 0 && strcmp(v->valuestring, "sync") != 0 &&
                                   strcmp(v->valuestring, "deferred") != 0))
                return errmsg_set(err, -EINVAL, "\"vethDelete\" must be \"async\" or \"sync\"");
        c->veth_delete_sync = strcmp(v->valuestring, "sync") == 0;
        return 0;
}

static int cfg_logging(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        enum log_level level;
        int r = cfg_str(o, "logFile", false, 4096, &c->log_file, err);
        if (r >= 0 && c->log_file && c->log_file[0] != '/')
                r = errmsg_set(err, -EINVAL, "\"logFile\"=\"%.64s\": not an absolute path", c->log_file);
        if (r >= 0)
                r = cfg_str(o, "logLevel", false, 16, &c->log_level, err);
        if (r >= 0 && c->log_level && log_level_parse(c->log_level, &level) < 0)
                r = errmsg_set(err, -EINVAL, "\"logLevel\"=\"%s\": one of debug, info, warn, error, off",
                               c->log_level);
        return r;
}

static int cfg_objects(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        const cJSON *rc = cJSON_GetObjectItemCaseSensitive(o, "runtimeConfig");
        if (rc && !cJSON_IsObject(rc))
                return errmsg_set(err, -EINVAL, "\"runtimeConfig\" must be an object");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(o, "args");
        if (args && !cJSON_IsObject(args))
                return errmsg_set(err, -EINVAL, "\"args\" must be an object");
        const cJSON *prev = cJSON_GetObjectItemCaseSensitive(o, "prevResult");
        if (!prev || cJSON_IsNull(prev))
                return 0;
        if (!cJSON_IsObject(prev))
                return errmsg_set(err, -EINVAL, "\"prevResult\" must be an object");
        c->prev_result = cJSON_Duplicate(prev, true);
        return c->prev_result ? 0 : -ENOMEM;
}

/* GC: the attachments the runtime still knows (cni.dev/valid-attachments, or
 * the spec's first spelling cni.dev/attachments). */
static int cfg_valid_attachments(struct cni_config *c, const cJSON *o, struct errmsg *err) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "cni.dev/valid-attachments");
        if (!list)
                list = cJSON_GetObjectItemCaseSensitive(o, "cni.dev/attachments");
        if (!cJSON_IsArray(list))
                return errmsg_set(err, -EINVAL, "GC needs \"cni.dev/valid-attachments\" as an array");
        int n = cJSON_GetArraySize(list), i = 0;
        if (n > PROTO_LIST_MAX)
                return errmsg_set(err, -EINVAL, "\"cni.dev/valid-attachments\" has more than %d entries",
                                  PROTO_LIST_MAX);
        c->valid = calloc((size_t)n + 1, sizeof *c->valid);
        if (!c->valid)
                return -ENOMEM;
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "containerID");
                const cJSON *ifn = cJSON_GetObjectItemCaseSensitive(e, "ifname");
                if (!cJSON_IsString(id) || !proto_valid_container_id(id->valuestring) || !cJSON_IsString(ifn) ||
                    !proto_valid_ifname(ifn->valuestring))
                        return errmsg_set(err, -EINVAL, "cni.dev/valid-attachments[%d] needs a valid containerID "
                                          "and ifname", i);
                strcpy(c->valid[i].container_id, id->valuestring);
                strcpy(c->valid[i].ifname, ifn->valuestring);
                i++;
        }
        c->n_valid = (size_t)n;
        return 0;
}

static int cfg_version(struct cni_config *c, const cJSON *o, int *ret_code, struct errmsg *err) {
        int r = cfg_str(o, "cniVersion", true, 16, &c->cni_version, err);
        if (r < 0)
                return r;
        if (!cni_version_supported(c->cni_version)) {
                *ret_code = CNI_ERR_INCOMPATIBLE_VERSION;
                return errmsg_set(err, -EPROTONOSUPPORT, "cniVersion \"%s\" is not supported "
                                  "(0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0 are)", c->cni_version);
        }
        return 0;
}

static int cfg_fields(struct cni_config *c, const cJSON *o, enum cni_command cmd, int *ret_code,
                      struct errmsg *err) {
        int r = cfg_version(c, o, ret_code, err);
        if (r >= 0)
                r = cfg_name(c, o, err);
        if (r >= 0)
                r = cfg_type(o, err);
        if (r >= 0)
                r = cfg_socket(c, o, err);
        if (r >= 0)
                r = cfg_mtu(c, o, err);
        if (r >= 0)
                r = cfg_veth_prefix(c, o, err);
        if (r >= 0)
                r = cfg_veth_delete(c, o, err);
        if (r >= 0)
                r = cfg_logging(c, o, err);
        if (r >= 0)
                r = cfg_objects(c, o, err);
        if (r >= 0 && cmd == CNI_CMD_GC)
                r = cfg_valid_attachments(c, o, err);
        return r;
}

int cni_config_parse(const char *json, size_t len, enum cni_command cmd, struct cni_config *ret,
                     int *ret_code, struct errmsg *err) {
        struct cni_config c = { 0 };
        *ret_code = CNI_ERR_INVALID_CONFIG;
        if (len == 0 || len > CNI_STDIN_MAX) {
                *ret_code = CNI_ERR_DECODE;
                return errmsg_set(err, -EINVAL, "the network configuration on stdin is %s",
                                  len == 0 ? "empty" : "larger than 1 MiB");
        }
        cJSON *root = cJSON_ParseWithLength(json, len);
        if (!cJSON_IsObject(root)) {
                cJSON_Delete(root);
                *ret_code = CNI_ERR_DECODE;
                return errmsg_set(err, -EINVAL, "the network configuration on stdin is not a JSON object");
        }
        int r = cfg_fields(&c, root, cmd, ret_code, err);
        cJSON_Delete(root);
        if (r < 0) {
                cni_config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

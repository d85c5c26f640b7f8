/*
 * protocol: strict JSON codec of the daemon socket messages, the client call
 * and the server-side helpers (see protocol.h and docs/protocol.md).
 *
 * Decoding walks a table-free but uniform path: every field is fetched by a
 * typed getter that checks presence, JSON type, length and syntax, and the
 * first broken rule refuses the whole message with a sentence naming the
 * field. Unknown fields are ignored so that a newer peer may add fields
 * within the same protocol version; anything that changes the meaning of a
 * known field needs a new "v".
 *
 * The client is deliberately simple: one connection per call, a blocking
 * socket whose send timeout is the deadline (connect and send honour it on
 * Unix sockets), and poll() for the reply, so a stuck daemon costs the caller
 * its deadline and nothing more.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "protocol.h"

#define VPC_CIDRS_MAX 64

static const char *const op_names[_PROTO_OP_MAX] = {
        [PROTO_OP_ADD] = "add",       [PROTO_OP_DEL] = "del",   [PROTO_OP_CHECK] = "check",
        [PROTO_OP_GC] = "gc",         [PROTO_OP_STATUS] = "status",
        [PROTO_OP_POOL] = "pool",     [PROTO_OP_ENIS] = "enis", [PROTO_OP_PODS] = "pods",
        [PROTO_OP_INTENTS] = "intents",
};

const char *proto_op_name(enum proto_op op) {
        return (unsigned)op < _PROTO_OP_MAX ? op_names[op] : "?";
}

void proto_veth_alias(const char *container_id, const char *ifname, char ret[static PROTO_VETH_ALIAS_MAX]) {
        snprintf(ret, PROTO_VETH_ALIAS_MAX, PROTO_VETH_ALIAS_PREFIX "%s:%s", ifname, container_id);
}

int proto_op_from_name(const char *name, enum proto_op *ret) {
        for (int i = 0; i < _PROTO_OP_MAX; i++)
                if (name && strcmp(name, op_names[i]) == 0) {
                        *ret = (enum proto_op)i;
                        return 0;
                }
        return -EOPNOTSUPP;
}

/* --- validators ------------------------------------------------------------ */

bool proto_valid_ifname(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > PROTO_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                /* the kernel refuses '/', ':' and whitespace; we also refuse
                 * non-ASCII and controls, which no runtime uses */
                if (c > 0x7e || !isgraph(c) || c == '/' || c == ':')
                        return false;
        }
        return true;
}

/* The CNI spec: alphanumeric first, then alphanumerics, '_', '.', '-'. */
bool proto_valid_container_id(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > PROTO_CONTAINER_ID_MAX || !isalnum((unsigned char)s[0]))
                return false;
        for (size_t i = 1; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
                        return false;
        return true;
}

/* Strict dotted quad: four decimal parts 0-255, no leading zeros, no extras. */
bool proto_valid_ipv4(const char *s) {
        if (!s || strlen(s) > PROTO_IP_MAX - 1)
                return false;
        int parts = 0;
        const char *p = s;
        while (parts < 4) {
                if (!isdigit((unsigned char)*p))
                        return false;
                unsigned v = 0, digits = 0;
                const char *start = p;
                while (isdigit((unsigned char)*p) && digits < 4) {
                        v = v * 10 + (unsigned)(*p++ - '0');
                        digits++;
                }
                if (digits > 3 || v > 255 || (digits > 1 && *start == '0'))
                        return false;
                parts++;
                if (parts < 4 && *p++ != '.')
                        return false;
        }
        return *p == '\0';
}

bool proto_valid_cidr4(const char *s) {
        char ip[PROTO_IP_MAX];
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || (size_t)(slash - s) >= sizeof ip)
                return false;
        memcpy(ip, s, (size_t)(slash - s));
        ip[slash - s] = '\0';
        const char *len = slash + 1;
        size_t n = strlen(len);
        if (n == 0 || n > 2 || !isdigit((unsigned char)len[0]) || (n == 2 && !isdigit((unsigned char)len[1])))
                return false;
        if (n == 2 && len[0] == '0')
                return false;
        return proto_valid_ipv4(ip) && atoi(len) <= 32;
}

/* IPv6 in the one text form inet_ntop writes, so that a store key, a
 * kernel dump and a reply compare as strings. */
bool proto_valid_ipv6(const char *s) {
        struct in6_addr a;
        char canon[INET6_ADDRSTRLEN];
        if (!s || strlen(s) >= PROTO_IP_MAX || inet_pton(AF_INET6, s, &a) != 1)
                return false;
        return inet_ntop(AF_INET6, &a, canon, sizeof canon) && strcmp(canon, s) == 0;
}

bool proto_valid_ip(const char *s) {
        return proto_valid_ipv4(s) || proto_valid_ipv6(s);
}

bool proto_valid_cidr(const char *s) {
        if (proto_valid_cidr4(s))
                return true;
        char ip[PROTO_IP_MAX];
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || (size_t)(slash - s) >= sizeof ip)
                return false;
        memcpy(ip, s, (size_t)(slash - s));
        ip[slash - s] = '\0';
        const char *len = slash + 1;
        size_t n = strlen(len);
        if (n == 0 || n > 3 || (n > 1 && len[0] == '0'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char)len[i]))
                        return false;
        return proto_valid_ipv6(ip) && atoi(len) <= 128;
}

static bool valid_pod_field(const char *s) {
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static bool valid_slug(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
                        return false;
        return true;
}

static bool valid_eni_id(const char *s) {
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && *s != '-')
                        return false;
        return true;
}

/* --- typed getters ----------------------------------------------------------- */

typedef bool (*str_check)(const char *s);

/* Copy string field key into dst (size > max). Missing: -ENOENT when !required. */
static int get_str(const cJSON *o, const char *key, bool required, size_t max, str_check check,
                   char *dst, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v)
                return required ? errmsg_set(err, -EINVAL, "field \"%s\" is missing", key) : -ENOENT;
        if (!cJSON_IsString(v) || !v->valuestring)
                return errmsg_set(err, -EINVAL, "field \"%s\" is not a string", key);
        size_t n = strlen(v->valuestring);
        if (n > max)
                return errmsg_set(err, -EINVAL, "field \"%s\" is longer than %zu bytes", key, max);
        if (check && !check(v->valuestring))
                return errmsg_set(err, -EINVAL, "field \"%s\" is not valid: \"%.64s\"", key, v->valuestring);
        memcpy(dst, v->valuestring, n + 1);
        return 0;
}

static int get_u32(const cJSON *o, const char *key, bool required, uint32_t min, uint32_t max,
                   uint32_t *dst, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v)
                return required ? errmsg_set(err, -EINVAL, "field \"%s\" is missing", key) : -ENOENT;
        if (!cJSON_IsNumber(v))
                return errmsg_set(err, -EINVAL, "field \"%s\" is not a number", key);
        double d = v->valuedouble;
        if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
                return errmsg_set(err, -EINVAL, "field \"%s\" is not an integer in %u..%u", key, min, max);
        *dst = (uint32_t)d;
        return 0;
}

static int get_bool(const cJSON *o, const char *key, bool required, bool *dst, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v)
                return required ? errmsg_set(err, -EINVAL, "field \"%s\" is missing", key) : -ENOENT;
        if (!cJSON_IsBool(v))
                return errmsg_set(err, -EINVAL, "field \"%s\" is not a boolean", key);
        *dst = cJSON_IsTrue(v);
        return 0;
}

/* Parse buf as exactly one JSON object, nothing but whitespace after it. */
static int parse_object(const void *buf, size_t len, cJSON **ret, struct errmsg *err) {
        if (len == 0 || len > PROTO_MSG_MAX)
                return errmsg_set(err, -EINVAL, "message of %zu bytes (must be 1..%d)", len, PROTO_MSG_MAX);
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
        if (!root)
                return errmsg_set(err, -EINVAL, "message is not valid JSON");
        const char *stop = (const char *)buf + len;
        while (end && end < stop && isspace((unsigned char)*end))
                end++;
        if (end != stop || !cJSON_IsObject(root)) {
                cJSON_Delete(root);
                return errmsg_set(err, -EINVAL, "message is not a single JSON object");
        }
        *ret = root;
        return 0;
}

static int check_version(const cJSON *root, struct errmsg *err) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
        if (!v || !cJSON_IsNumber(v))
                return errmsg_set(err, -EINVAL, "field \"v\" (protocol version) is missing or not a number");
        if (v->valuedouble != PROTO_VERSION)
                return errmsg_set(err, -EPROTONOSUPPORT, "protocol version %g is not supported (this side speaks %d)",
                                  v->valuedouble, PROTO_VERSION);
        return 0;
}

/* --- requests ---------------------------------------------------------------- */

void proto_request_done(struct proto_request *req) {
        if (!req)
                return;
        free(req->valid);
        req->valid = NULL;
        req->n_valid = 0;
}

static int decode_attachment(const cJSON *o, struct proto_attachment *att, struct errmsg *err) {
        int r = get_str(o, "container_id", true, PROTO_CONTAINER_ID_MAX, proto_valid_container_id,
                        att->container_id, err);
        return r < 0 ? r : get_str(o, "ifname", true, PROTO_IFNAME_MAX, proto_valid_ifname, att->ifname, err);
}

static int optional(int r) {
        return r == -ENOENT ? 0 : r;
}

static int decode_add(const cJSON *o, struct proto_request *req, struct errmsg *err) {
        int r = decode_attachment(o, &req->att, err);
        if (r >= 0)
                r = get_str(o, "netns", true, PROTO_NETNS_MAX, valid_pod_field, req->netns, err);
        if (r >= 0)
                r = optional(get_str(o, "pod_namespace", false, PROTO_POD_FIELD_MAX, valid_pod_field,
                                     req->pod_namespace, err));
        if (r >= 0)
                r = optional(get_str(o, "pod_name", false, PROTO_POD_FIELD_MAX, valid_pod_field, req->pod_name, err));
        if (r >= 0)
                r = optional(get_str(o, "pod_uid", false, PROTO_POD_FIELD_MAX, valid_pod_field, req->pod_uid, err));
        if (r >= 0)
                r = optional(get_str(o, "pod_infra_container_id", false, PROTO_CONTAINER_ID_MAX, valid_pod_field,
                                     req->pod_infra_container_id, err));
        return r;
}

static int decode_del(const cJSON *o, struct proto_request *req, struct errmsg *err) {
        int r = decode_attachment(o, &req->att, err);
        if (r >= 0)
                r = optional(get_str(o, "reason", false, PROTO_REASON_MAX, valid_pod_field, req->reason, err));
        if (r >= 0)
                r = optional(get_str(o, "host_veth", false, PROTO_IFNAME_MAX, proto_valid_ifname, req->host_veth,
                                     err));
        return r;
}

static int decode_gc(const cJSON *o, struct proto_request *req, struct errmsg *err) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "valid");
        if (!cJSON_IsArray(list))
                return errmsg_set(err, -EINVAL, "field \"valid\" is missing or not an array");
        int n = cJSON_GetArraySize(list);
        if (n > PROTO_LIST_MAX)
                return errmsg_set(err, -EINVAL, "field \"valid\" has more than %d entries", PROTO_LIST_MAX);
        struct proto_attachment *v = calloc((size_t)n + 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        int i = 0, r = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
                if (!cJSON_IsObject(e))
                        r = errmsg_set(err, -EINVAL, "valid[%d] is not an object", i);
                else
                        r = decode_attachment(e, &v[i], err);
                if (r < 0) {
                        free(v);
                        return r;
                }
                i++;
        }
        req->valid = v;
        req->n_valid = (size_t)n;
        return 0;
}

static int decode_op_fields(const cJSON *o, struct proto_request *req, struct errmsg *err) {
        switch (req->op) {
        case PROTO_OP_ADD:
                return decode_add(o, req, err);
        case PROTO_OP_DEL:
                return decode_del(o, req, err);
        case PROTO_OP_CHECK:
                return decode_attachment(o, &req->att, err);
        case PROTO_OP_GC:
                return decode_gc(o, req, err);
        default:
                return 0;       /* status and the read-only queries carry no fields */
        }
}

static void set_error(struct proto_error *e, const char *code, const char *msg) {
        if (!e)
                return;
        snprintf(e->code, sizeof e->code, "%s", code);
        snprintf(e->msg, sizeof e->msg, "%s", msg);
        e->retry = false;
}

int proto_request_decode(const void *buf, size_t len, struct proto_request *ret, struct proto_error *ret_err) {
        struct errmsg err = { 0 };
        cJSON *root = NULL;
        struct proto_request req = { 0 };
        char op[32];
        int r = parse_object(buf, len, &root, &err);
        if (r >= 0)
                r = check_version(root, &err);
        if (r >= 0)
                r = get_str(root, "op", true, sizeof op - 1, NULL, op, &err);
        if (r >= 0 && proto_op_from_name(op, &req.op) < 0)
                r = errmsg_set(&err, -EOPNOTSUPP, "unknown op \"%s\"", op);
        if (r >= 0)
                r = decode_op_fields(root, &req, &err);
        cJSON_Delete(root);
        if (r < 0) {
                set_error(ret_err, r == -EPROTONOSUPPORT ? PROTO_E_UNSUPPORTED_VERSION
                                   : r == -EOPNOTSUPP    ? PROTO_E_UNKNOWN_OP
                                                         : PROTO_E_BAD_REQUEST,
                          errmsg_text(&err, r));
                return r == -ENOMEM ? r : r == -EPROTONOSUPPORT || r == -EOPNOTSUPP ? r : -EINVAL;
        }
        *ret = req;
        return 0;
}

/* Print root into a malloc'd string no longer than one message. */
static int print_message(cJSON *root, char **ret) {
        char *s = root ? cJSON_PrintUnformatted(root) : NULL;
        cJSON_Delete(root);
        if (!s)
                return -ENOMEM;
        if (strlen(s) > PROTO_MSG_MAX) {
                free(s);
                return -EMSGSIZE;
        }
        *ret = s;
        return 0;
}

static cJSON *attachment_json(cJSON *o, const struct proto_attachment *att) {
        cJSON_AddStringToObject(o, "container_id", att->container_id);
        cJSON_AddStringToObject(o, "ifname", att->ifname);
        return o;
}

int proto_request_encode(const struct proto_request *req, char **ret) {
        if ((unsigned)req->op >= _PROTO_OP_MAX)
                return -EINVAL;
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddNumberToObject(o, "v", PROTO_VERSION);
        cJSON_AddStringToObject(o, "op", proto_op_name(req->op));
        switch (req->op) {
        case PROTO_OP_ADD:
                attachment_json(o, &req->att);
                cJSON_AddStringToObject(o, "netns", req->netns);
                cJSON_AddStringToObject(o, "pod_namespace", req->pod_namespace);
                cJSON_AddStringToObject(o, "pod_name", req->pod_name);
                cJSON_AddStringToObject(o, "pod_uid", req->pod_uid);
                cJSON_AddStringToObject(o, "pod_infra_container_id", req->pod_infra_container_id);
                break;
        case PROTO_OP_DEL:
                attachment_json(o, &req->att);
                cJSON_AddStringToObject(o, "reason", req->reason);
                if (req->host_veth[0])
                        cJSON_AddStringToObject(o, "host_veth", req->host_veth);
                break;
        case PROTO_OP_CHECK:
                attachment_json(o, &req->att);
                break;
        case PROTO_OP_GC: {
                cJSON *list = cJSON_AddArrayToObject(o, "valid");
                for (size_t i = 0; list && i < req->n_valid; i++)
                        cJSON_AddItemToArray(list, attachment_json(cJSON_CreateObject(), &req->valid[i]));
                break;
        }
        default:
                break;
        }
        return print_message(o, ret);
}

/* --- replies ------------------------------------------------------------------- */

void proto_reply_done(struct proto_reply *reply) {
        if (!reply)
                return;
        free(reply->addr.vpc_cidrs);
        reply->addr.vpc_cidrs = NULL;
        reply->addr.n_vpc_cidrs = 0;
        free(reply->released);
        reply->released = NULL;
        reply->n_released = 0;
        cJSON_Delete(reply->result);
        reply->result = NULL;
}

/* Decode an array of strings of at most size-1 bytes that pass check. */
static int get_str_array(const cJSON *o, const char *key, size_t max_n, size_t size, str_check check,
                         char **ret, size_t *ret_n, struct errmsg *err) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!cJSON_IsArray(list))
                return errmsg_set(err, -EINVAL, "field \"%s\" is missing or not an array", key);
        int n = cJSON_GetArraySize(list);
        if ((size_t)n > max_n)
                return errmsg_set(err, -EINVAL, "field \"%s\" has more than %zu entries", key, max_n);
        char *v = calloc((size_t)n + 1, size);
        if (!v)
                return -ENOMEM;
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
                if (!cJSON_IsString(e) || strlen(e->valuestring) >= size || !check(e->valuestring)) {
                        free(v);
                        return errmsg_set(err, -EINVAL, "%s[%d] is not valid", key, i);
                }
                strcpy(v + (size_t)i * size, e->valuestring);
                i++;
        }
        *ret = v;
        *ret_n = (size_t)n;
        return 0;
}

/* PROTO_EGRESS4_CIDR (an IPv6 pod's) or PROTO_EGRESS6_CIDR (an IPv4 pod's, fd00::ac:0/118). */
bool proto_valid_egress_ip(const char *s) {
        struct in_addr a;
        struct in6_addr b;
        static const uint8_t ula[14] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xac };
        if (proto_valid_ipv4(s) && inet_pton(AF_INET, s, &a) == 1)
                return (ntohl(a.s_addr) & 0xfffffc00u) == 0xa9feac00u;        /* 169.254.172.0/22 */
        return strchr(s, ':') && inet_pton(AF_INET6, s, &b) == 1 && memcmp(b.s6_addr, ula, 14) == 0 &&
               (b.s6_addr[14] & 0xfc) == 0;
}

static int decode_address(const cJSON *o, struct proto_address *a, struct errmsg *err) {
        int r = get_str(o, "ip", true, PROTO_IP_MAX - 1, proto_valid_ip, a->ip, err);
        if (r >= 0)
                r = get_str(o, "eni_id", true, PROTO_ENI_ID_MAX, valid_eni_id, a->eni_id, err);
        if (r >= 0)
                r = get_u32(o, "device_index", true, 0, 65535, &a->device_index, err);
        if (r >= 0)
                r = get_u32(o, "route_table", true, 1, UINT32_MAX, &a->route_table, err);
        if (r >= 0)
                r = get_str(o, "gateway", true, PROTO_IP_MAX - 1, proto_valid_ip, a->gateway, err);
        if (r >= 0)
                r = get_str(o, "subnet_gateway", true, PROTO_IP_MAX - 1, proto_valid_ip, a->subnet_gateway, err);
        if (r >= 0)
                r = get_u32(o, "mtu", true, 68, 65535, &a->mtu, err);
        if (r >= 0)
                r = optional(get_str(o, "egress_ip", false, PROTO_IP_MAX - 1, proto_valid_egress_ip, a->egress_ip,
                                     err));
        char *cidrs = NULL;
        if (r >= 0)
                r = get_str_array(o, "vpc_cidrs", VPC_CIDRS_MAX, PROTO_CIDR_MAX, proto_valid_cidr, &cidrs,
                                  &a->n_vpc_cidrs, err);
        if (r < 0)
                return r;
        a->vpc_cidrs = (char (*)[PROTO_CIDR_MAX])cidrs;
        a->has_ip = true;
        return 0;
}

/* del: ip and route_table, each a value or null (the daemon knew nothing);
 * unwired and veth_queued, false when absent (a daemon that does not do it). */
static int decode_del_reply(const cJSON *o, struct proto_reply *reply, struct errmsg *err) {
        struct proto_address *a = &reply->addr;
        int r = optional(get_bool(o, "unwired", false, &reply->unwired, err));
        if (r >= 0)
                r = optional(get_bool(o, "veth_queued", false, &reply->veth_queued, err));
        if (r < 0)
                return r;
        const cJSON *ip = cJSON_GetObjectItemCaseSensitive(o, "ip");
        if (!ip || cJSON_IsNull(ip))
                return 0;
        r = get_str(o, "ip", true, PROTO_IP_MAX - 1, proto_valid_ip, a->ip, err);
        if (r >= 0)     /* the released pod's egress address: its egress veth is the plugin's to remove */
                r = optional(get_str(o, "egress_ip", false, PROTO_IP_MAX - 1, proto_valid_egress_ip, a->egress_ip,
                                     err));
        if (r < 0)
                return r;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "route_table");
        if (t && !cJSON_IsNull(t)) {
                r = get_u32(o, "route_table", true, 1, UINT32_MAX, &a->route_table, err);
                if (r < 0)
                        return r;
        }
        a->has_ip = true;
        return 0;
}

static int decode_status_reply(const cJSON *o, struct proto_reply *reply, struct errmsg *err) {
        int r = get_bool(o, "ready", true, &reply->ready, err);
        if (r >= 0)
                r = optional(get_str(o, "reason", false, PROTO_ERROR_MSG_MAX, valid_pod_field, reply->reason, err));
        if (r >= 0)
                r = optional(get_u32(o, "available", false, 0, UINT32_MAX, &reply->available, err));
        return r;
}

static int decode_error_reply(const cJSON *o, struct proto_error *e, struct errmsg *err) {
        const cJSON *eo = cJSON_GetObjectItemCaseSensitive(o, "error");
        if (!cJSON_IsObject(eo))
                return errmsg_set(err, -EINVAL, "error reply without an \"error\" object");
        int r = get_str(eo, "code", true, PROTO_ERROR_CODE_MAX, valid_slug, e->code, err);
        if (r >= 0)
                r = get_str(eo, "msg", true, PROTO_ERROR_MSG_MAX, valid_pod_field, e->msg, err);
        if (r >= 0)
                r = optional(get_bool(eo, "retry", false, &e->retry, err));
        return r;
}

static int decode_result(cJSON *root, struct proto_reply *reply, struct errmsg *err) {
        char *list = NULL;
        int r;
        switch (reply->op) {
        case PROTO_OP_ADD:
        case PROTO_OP_CHECK:
                return decode_address(root, &reply->addr, err);
        case PROTO_OP_DEL:
                return decode_del_reply(root, reply, err);
        case PROTO_OP_GC:
                r = get_str_array(root, "released", PROTO_LIST_MAX, PROTO_IP_MAX, proto_valid_ip, &list,
                                  &reply->n_released, err);
                if (r >= 0)
                        reply->released = (char (*)[PROTO_IP_MAX])list;
                return r;
        case PROTO_OP_STATUS:
                return decode_status_reply(root, reply, err);
        default:
                return 0;
        }
}

int proto_reply_decode(enum proto_op op, const void *buf, size_t len, struct proto_reply *ret,
                       struct errmsg *err) {
        cJSON *root = NULL;
        struct proto_reply reply = { .op = op };
        if ((unsigned)op >= _PROTO_OP_MAX)
                return -EINVAL;
        int r = parse_object(buf, len, &root, err);
        if (r >= 0)
                r = check_version(root, err);
        if (r >= 0)
                r = get_bool(root, "ok", true, &reply.ok, err);
        if (r >= 0)
                r = reply.ok ? decode_result(root, &reply, err) : decode_error_reply(root, &reply.error, err);
        if (r < 0) {
                proto_reply_done(&reply);
                cJSON_Delete(root);
                return r == -ENOMEM ? r : -EBADMSG;
        }
        if (reply.ok && op >= PROTO_OP_POOL)
                reply.result = root;            /* the caller reads the free-form result */
        else
                cJSON_Delete(root);
        *ret = reply;
        return 0;
}

int proto_reply_encode_error(const char *code, const char *msg, bool retry, char **ret) {
        cJSON *o = cJSON_CreateObject(), *e;
        char text[PROTO_ERROR_MSG_MAX + 1];
        if (!o)
                return -ENOMEM;
        /* a long EC2 error text is cut rather than making the reply invalid;
         * controls (newlines in EC2 texts) become spaces */
        snprintf(text, sizeof text, "%s", msg ? msg : "");
        for (char *p = text; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        cJSON_AddNumberToObject(o, "v", PROTO_VERSION);
        cJSON_AddFalseToObject(o, "ok");
        e = cJSON_AddObjectToObject(o, "error");
        if (e) {
                cJSON_AddStringToObject(e, "code", code);
                cJSON_AddStringToObject(e, "msg", text);
                cJSON_AddBoolToObject(e, "retry", retry);
        }
        return print_message(o, ret);
}

static void encode_address(cJSON *o, const struct proto_address *a) {
        cJSON_AddStringToObject(o, "ip", a->ip);
        cJSON_AddStringToObject(o, "eni_id", a->eni_id);
        cJSON_AddNumberToObject(o, "device_index", a->device_index);
        cJSON_AddNumberToObject(o, "route_table", a->route_table);
        cJSON_AddStringToObject(o, "gateway", a->gateway);
        cJSON_AddStringToObject(o, "subnet_gateway", a->subnet_gateway);
        cJSON_AddNumberToObject(o, "mtu", a->mtu);
        if (a->egress_ip[0])
                cJSON_AddStringToObject(o, "egress_ip", a->egress_ip);
        cJSON *list = cJSON_AddArrayToObject(o, "vpc_cidrs");
        for (size_t i = 0; list && i < a->n_vpc_cidrs; i++)
                cJSON_AddItemToArray(list, cJSON_CreateString(a->vpc_cidrs[i]));
}

static void encode_result(cJSON *o, const struct proto_reply *reply) {
        switch (reply->op) {
        case PROTO_OP_ADD:
        case PROTO_OP_CHECK:
                encode_address(o, &reply->addr);
                break;
        case PROTO_OP_DEL:
                if (reply->addr.has_ip) {
                        cJSON_AddStringToObject(o, "ip", reply->addr.ip);
                        if (reply->addr.route_table)
                                cJSON_AddNumberToObject(o, "route_table", reply->addr.route_table);
                        else
                                cJSON_AddNullToObject(o, "route_table");
                        if (reply->addr.egress_ip[0])
                                cJSON_AddStringToObject(o, "egress_ip", reply->addr.egress_ip);
                } else {
                        cJSON_AddNullToObject(o, "ip");
                        cJSON_AddNullToObject(o, "route_table");
                }
                cJSON_AddBoolToObject(o, "unwired", reply->unwired);
                cJSON_AddBoolToObject(o, "veth_queued", reply->veth_queued);
                break;
        case PROTO_OP_GC: {
                cJSON *list = cJSON_AddArrayToObject(o, "released");
                for (size_t i = 0; list && i < reply->n_released; i++)
                        cJSON_AddItemToArray(list, cJSON_CreateString(reply->released[i]));
                break;
        }
        case PROTO_OP_STATUS:
                cJSON_AddBoolToObject(o, "ready", reply->ready);
                cJSON_AddStringToObject(o, "reason", reply->reason);
                cJSON_AddNumberToObject(o, "available", reply->available);
                break;
        default: {
                /* read-only queries: copy the members of the free-form result */
                const cJSON *e;
                cJSON_ArrayForEach(e, reply->result)
                        if (e->string && strcmp(e->string, "v") != 0 && strcmp(e->string, "ok") != 0)
                                cJSON_AddItemToObject(o, e->string, cJSON_Duplicate(e, true));
                break;
        }
        }
}

int proto_reply_encode(const struct proto_reply *reply, char **ret) {
        if (!reply->ok)
                return proto_reply_encode_error(reply->error.code[0] ? reply->error.code : PROTO_E_INTERNAL,
                                                reply->error.msg, reply->error.retry, ret);
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddNumberToObject(o, "v", PROTO_VERSION);
        cJSON_AddTrueToObject(o, "ok");
        encode_result(o, reply);
        return print_message(o, ret);
}

/* --- server helpers -------------------------------------------------------------- */

int proto_server_handle(const void *buf, size_t len, proto_handler handler, void *userdata, char **ret_reply) {
        struct proto_request req;
        struct proto_error perr = { 0 };
        int r = proto_request_decode(buf, len, &req, &perr);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return proto_reply_encode_error(perr.code, perr.msg, false, ret_reply);
        struct proto_reply reply = { .op = req.op };
        handler(&req, &reply, userdata);
        r = proto_reply_encode(&reply, ret_reply);
        proto_reply_done(&reply);
        proto_request_done(&req);
        return r;
}

static int fill_sockaddr(const char *path, struct sockaddr_un *sa) {
        size_t n = strlen(path);
        if (n == 0 || n >= sizeof sa->sun_path)
                return -ENAMETOOLONG;
        memset(sa, 0, sizeof *sa);
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, path, n + 1);
        return 0;
}

int proto_listen(const char *path, int backlog, int *ret_fd) {
        struct sockaddr_un sa;
        int r = fill_sockaddr(path, &sa);
        if (r < 0)
                return r;
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void)unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, backlog) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/* --- client ------------------------------------------------------------------------ */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_until(const char *path, int64_t deadline, int *ret_fd, struct errmsg *err) {
        struct sockaddr_un sa;
        int r = fill_sockaddr(path, &sa);
        if (r < 0)
                return errmsg_set(err, r, "socket path \"%s\" is empty or too long", path);
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return errmsg_set(err, -errno, "socket: %s", strerror(errno));
        int64_t left = deadline - now_ms();
        struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };
        if (left <= 0)
                tv = (struct timeval){ .tv_usec = 1000 };
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                r = errno == EAGAIN || errno == EINPROGRESS ? -ETIMEDOUT : -errno;
                close(fd);
                return errmsg_set(err, r, "daemon socket %s: %s", path,
                                  r == -ETIMEDOUT ? "connection timed out" : strerror(-r));
        }
        *ret_fd = fd;
        return 0;
}

static int send_request(int fd, const struct proto_request *req, struct errmsg *err) {
        char *msg = NULL;
        int r = proto_request_encode(req, &msg);
        if (r < 0)
                return errmsg_set(err, r, "cannot encode the %s request: %s", proto_op_name(req->op), strerror(-r));
        ssize_t n = send(fd, msg, strlen(msg), MSG_NOSIGNAL);
        r = n < 0 ? (errno == EAGAIN ? -ETIMEDOUT : -errno) : 0;
        free(msg);
        if (r < 0)
                return errmsg_set(err, r, "cannot send the %s request: %s", proto_op_name(req->op), strerror(-r));
        return 0;
}

static int recv_reply(int fd, enum proto_op op, int64_t deadline, struct proto_reply *ret, struct errmsg *err) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        for (;;) {
                int64_t left = deadline - now_ms();
                int n = left > 0 ? poll(&p, 1, (int)left) : 0;
                if (n > 0)
                        break;
                if (n == 0)
                        return errmsg_set(err, -ETIMEDOUT, "no reply from the daemon to %s within the deadline",
                                          proto_op_name(op));
                if (errno != EINTR)
                        return errmsg_set(err, -errno, "poll: %s", strerror(errno));
        }
        char *buf = malloc(PROTO_MSG_MAX + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = recv(fd, buf, PROTO_MSG_MAX + 1, MSG_TRUNC | MSG_DONTWAIT);
        int r;
        if (n < 0)
                r = errmsg_set(err, errno == ECONNRESET ? -ECONNRESET : -errno, "receiving the reply: %s",
                               strerror(errno));
        else if (n == 0)
                r = errmsg_set(err, -ECONNRESET, "the daemon closed the connection without replying to %s",
                               proto_op_name(op));
        else if (n > PROTO_MSG_MAX)
                r = errmsg_set(err, -EBADMSG, "reply of %zd bytes exceeds %d", n, PROTO_MSG_MAX);
        else if ((r = proto_reply_decode(op, buf, (size_t)n, ret, err)) < 0)
                errmsg_prefix(err, "bad reply to %s", proto_op_name(op));
        free(buf);
        return r;
}

bool proto_error_is_transient(int r) {
        switch (-r) {
        case ENOENT: case ECONNREFUSED: case ECONNRESET: case ECONNABORTED: case EPIPE:
        case ENOTCONN: case ETIMEDOUT: case EAGAIN: case ENOBUFS: case EINTR:
                return true;
        default:
                return false;
        }
}

int proto_call_send(const char *socket_path, const struct proto_request *req, int deadline_ms,
                    struct proto_pending *ret, struct errmsg *err) {
        int64_t deadline = now_ms() + (deadline_ms > 0 ? deadline_ms : 1);
        int fd = -1;
        int r = connect_until(socket_path, deadline, &fd, err);
        if (r < 0)
                return r;
        r = send_request(fd, req, err);
        if (r < 0) {
                close(fd);
                return r;
        }
        *ret = (struct proto_pending){ .fd = fd, .op = req->op, .deadline = deadline };
        return 0;
}

int proto_call_recv(struct proto_pending *p, struct proto_reply *ret, struct errmsg *err) {
        int r = recv_reply(p->fd, p->op, p->deadline, ret, err);
        close(p->fd);
        p->fd = -1;
        return r;
}

int proto_call(const char *socket_path, const struct proto_request *req, int deadline_ms,
               struct proto_reply *ret, struct errmsg *err) {
        struct proto_pending p;
        int r = proto_call_send(socket_path, req, deadline_ms, &p, err);
        return r < 0 ? r : proto_call_recv(&p, ret, err);
}

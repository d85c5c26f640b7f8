/*
 * awsnode-checkpoint: aws-node's checkpoint parsed, and its veth names (see
 * awsnode-import.h). No store, no kernel: the fuzz target links it alone.
 *
 * Parsing is cJSON over the whole text, strict where aws-node is strict (the
 * version, the attachment key) and lenient where it omits (ipv4, ipv6,
 * metadata, the timestamp).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "awsnode-import.h"

static bool copy_str(const cJSON *o, const char *key, char *dst, size_t cap, bool required) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        if (!v || cJSON_IsNull(v)) {
                dst[0] = '\0';
                return !required;
        }
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap || (required && !v->valuestring[0]))
                return false;
        snprintf(dst, cap, "%s", v->valuestring);
        return true;
}

static int parse_alloc(const cJSON *o, size_t i, struct awsnode_alloc *a, struct errmsg *err) {
        memset(a, 0, sizeof *a);
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        if (!cJSON_IsObject(o) || !copy_str(o, "containerID", a->container_id, sizeof a->container_id, true) ||
            !copy_str(o, "ifName", a->ifname, sizeof a->ifname, true) ||
            !copy_str(o, "networkName", a->network_name, sizeof a->network_name, false) ||
            !copy_str(o, "ipv4", a->ipv4, sizeof a->ipv4, false) ||
            !copy_str(o, "ipv6", a->ipv6, sizeof a->ipv6, false) || (meta && !cJSON_IsObject(meta)) ||
            (meta && (!copy_str(meta, "k8sPodNamespace", a->pod_namespace, sizeof a->pod_namespace, false) ||
                      !copy_str(meta, "k8sPodName", a->pod_name, sizeof a->pod_name, false))))
                return errmsg_set(err, -EINVAL, "allocation %zu: containerID and ifName must be non-empty "
                                  "strings, and ipv4, ipv6, networkName and metadata's pod fields strings that fit", i);
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "allocationTimestamp");
        /* a double: beyond int64 (not a time aws-node writes) counts as absent */
        if (cJSON_IsNumber(ts) && ts->valuedouble > 0 && ts->valuedouble < 9.2e18)
                a->allocated_ns = (int64_t)ts->valuedouble;
        return 0;
}

static int parse_allocs(const cJSON *list, struct awsnode_checkpoint *ret, struct errmsg *err) {
        if (list && !cJSON_IsNull(list) && !cJSON_IsArray(list))
                return errmsg_set(err, -EINVAL, "\"allocations\" is not an array");
        size_t n = (size_t)cJSON_GetArraySize(list);
        struct awsnode_alloc *v = calloc(n ? n : 1, sizeof *v);
        if (!v)
                return errmsg_set(err, -ENOMEM, "out of memory");
        size_t i = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, list) {
                int r = parse_alloc(o, i, &v[i], err);
                if (r < 0) {
                        free(v);
                        return r;
                }
                i++;
        }
        *ret = (struct awsnode_checkpoint){ .allocs = v, .n = n };
        return 0;
}

int awsnode_checkpoint_parse(const char *text, size_t len, struct awsnode_checkpoint *ret, struct errmsg *err) {
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
        if (!root || !cJSON_IsObject(root)) {
                size_t at = root ? 0 : end && end >= text ? (size_t)(end - text) : 0;
                cJSON_Delete(root);
                return errmsg_set(err, -EINVAL, "not a JSON object (at byte %zu)", at);
        }
        const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
        int r;
        if (!cJSON_IsString(version) || strcmp(version->valuestring, AWSNODE_CHECKPOINT_VERSION) != 0)
                r = errmsg_set(err, -EPROTONOSUPPORT, "version %.64s is not %s, the only one understood",
                               cJSON_IsString(version) ? version->valuestring : "(none)", AWSNODE_CHECKPOINT_VERSION);
        else
                r = parse_allocs(cJSON_GetObjectItemCaseSensitive(root, "allocations"), ret, err);
        cJSON_Delete(root);
        return r;
}

static int read_all(FILE *f, char **ret, size_t *ret_len) {
        size_t cap = 65536, n = 0;
        char *buf = malloc(cap);
        while (buf) {
                n += fread(buf + n, 1, cap - n, f);
                if (n < cap)
                        break;
                char *nb = cap >= AWSNODE_CHECKPOINT_MAX ? NULL : realloc(buf, cap * 2);
                if (!nb) {
                        free(buf);
                        return cap >= AWSNODE_CHECKPOINT_MAX ? -EFBIG : -ENOMEM;
                }
                buf = nb;
                cap *= 2;
        }
        if (!buf)
                return -ENOMEM;
        if (ferror(f)) {
                free(buf);
                return -EIO;
        }
        *ret = buf;
        *ret_len = n;
        return 0;
}

int awsnode_checkpoint_read(const char *path, struct awsnode_checkpoint *ret, struct errmsg *err) {
        FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? -ENOENT : errmsg_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
        char *text = NULL;
        size_t len = 0;
        int r = read_all(f, &text, &len);
        fclose(f);
        if (r < 0)
                return errmsg_set(err, r, "%s: cannot read: %s", path, strerror(-r));
        struct errmsg perr = { 0 };
        r = awsnode_checkpoint_parse(text, len, ret, &perr);
        free(text);
        return r < 0 ? errmsg_set(err, r, "%s: %s", path, perr.text) : 0;
}

void awsnode_checkpoint_done(struct awsnode_checkpoint *c) {
        if (!c)
                return;
        free(c->allocs);
        *c = (struct awsnode_checkpoint){ 0 };
}

int awsnode_veth_name(const char *prefix, const char *pod_namespace, const char *pod_name,
                      char ret[static STORE_IFNAME_MAX + 1]) {
        char key[2 * STORE_POD_FIELD_MAX + 2];
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        int n = snprintf(key, sizeof key, "%s.%s", pod_namespace, pod_name);
        if (n < 0 || (size_t)n >= sizeof key || strlen(prefix) + AWSNODE_VETH_HASH_LEN > STORE_IFNAME_MAX)
                return -EINVAL;
        if (!EVP_Digest(key, (size_t)n, md, &md_len, EVP_sha1(), NULL))
                return -EIO;
        int k = snprintf(ret, STORE_IFNAME_MAX + 1, "%s", prefix);
        for (unsigned i = 0; k < (int)strlen(prefix) + AWSNODE_VETH_HASH_LEN; i++)
                k += snprintf(ret + k, STORE_IFNAME_MAX + 1 - (size_t)k, "%02x", md[i]);
        ret[strlen(prefix) + AWSNODE_VETH_HASH_LEN] = '\0';
        return 0;
}

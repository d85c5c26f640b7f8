/*
 * result: rendering of everything vpc-cni writes on stdout (see cni-result.h).
 *
 * The version differences are few enough to be two predicates, "legacy"
 * (0.3.x/0.4.0: ips[] carry "version") and "has_mtu" (1.1.0: interfaces
 * carry "mtu"), rather than one renderer per version.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cni-config.h"
#include "cni-result.h"

static bool legacy(const char *v) {
        return cni_version_cmp(v, "1.0.0") < 0;
}

static bool has_mtu(const char *v) {
        return cni_version_cmp(v, "1.1.0") >= 0;
}

static int print_and_free(cJSON *o, char **ret) {
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static cJSON *interface_json(const char *name, const char *mac, const char *sandbox, unsigned mtu, const char *v) {
        cJSON *i = cJSON_CreateObject();
        cJSON_AddStringToObject(i, "name", name);
        cJSON_AddStringToObject(i, "mac", mac);
        if (has_mtu(v) && mtu)
                cJSON_AddNumberToObject(i, "mtu", mtu);
        if (sandbox)
                cJSON_AddStringToObject(i, "sandbox", sandbox);
        return i;
}

/* Copy array key of prev into o (creating it), fixing the ips[] shape. */
static cJSON *copy_prev_array(cJSON *o, const cJSON *prev, const char *key, const char *v) {
        cJSON *dst = cJSON_AddArrayToObject(o, key);
        const cJSON *src = prev ? cJSON_GetObjectItemCaseSensitive(prev, key) : NULL;
        const cJSON *e, *list = cJSON_IsArray(src) ? src : NULL;
        cJSON_ArrayForEach(e, list) {
                cJSON *c = cJSON_Duplicate(e, true);
                if (c && strcmp(key, "ips") == 0) {
                        const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "address");
                        bool v6 = cJSON_IsString(a) && strchr(a->valuestring, ':');
                        cJSON_DeleteItemFromObjectCaseSensitive(c, "version");
                        if (legacy(v))
                                cJSON_AddStringToObject(c, "version", v6 ? "6" : "4");
                }
                cJSON_AddItemToArray(dst, c);
        }
        return dst;
}

/* ips[] entry: address/plen, gateway, interface index. */
static cJSON *ip_json(const char *ip, unsigned plen, const char *gateway, int interface, const char *v) {
        char cidr[PROTO_CIDR_MAX];
        cJSON *o = cJSON_CreateObject();
        if (legacy(v))
                cJSON_AddStringToObject(o, "version", strchr(ip, ':') ? "6" : "4");
        snprintf(cidr, sizeof cidr, "%s/%u", ip, plen);
        cJSON_AddStringToObject(o, "address", cidr);
        cJSON_AddStringToObject(o, "gateway", gateway);
        cJSON_AddNumberToObject(o, "interface", interface);
        return o;
}

static cJSON *route_json(const char *dst, const char *gw) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dst", dst);
        cJSON_AddStringToObject(o, "gw", gw);
        return o;
}

int cni_result_render(const struct cni_result *r, const char *v, const cJSON *prev, char **ret) {
        bool v6 = strchr(r->ip, ':') != NULL, egress = r->egress_ip[0] != '\0';
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "cniVersion", v);
        cJSON *ifs = copy_prev_array(o, prev, "interfaces", v);
        int base = cJSON_GetArraySize(ifs);
        cJSON_AddItemToArray(ifs, interface_json(r->host_ifname, r->host_mac, NULL, r->mtu, v));
        cJSON_AddItemToArray(ifs, interface_json(r->pod_ifname, r->pod_mac, r->sandbox, r->mtu, v));
        if (egress) {
                cJSON_AddItemToArray(ifs, interface_json(r->egress_host_ifname, r->egress_host_mac, NULL, r->mtu, v));
                cJSON_AddItemToArray(ifs, interface_json(r->egress_pod_ifname, r->egress_pod_mac, r->sandbox, r->mtu, v));
        }

        cJSON *ips = copy_prev_array(o, prev, "ips", v);
        cJSON_AddItemToArray(ips, ip_json(r->ip, v6 ? 128 : 32, r->gateway, base + 1, v));
        bool eg6 = strchr(r->egress_ip, ':') != NULL;
        if (egress)
                cJSON_AddItemToArray(ips, ip_json(r->egress_ip, eg6 ? 118 : 22, r->egress_gateway, base + 3, v));

        cJSON *routes = copy_prev_array(o, prev, "routes", v);
        cJSON_AddItemToArray(routes, route_json(v6 ? "::/0" : "0.0.0.0/0", r->gateway));
        if (egress)
                cJSON_AddItemToArray(routes, route_json(eg6 ? "::/0" : "0.0.0.0/0", r->egress_gateway));

        const cJSON *dns = prev ? cJSON_GetObjectItemCaseSensitive(prev, "dns") : NULL;
        cJSON_AddItemToObject(o, "dns", cJSON_IsObject(dns) ? cJSON_Duplicate(dns, true) : cJSON_CreateObject());
        return print_and_free(o, ret);
}

int cni_version_render(const char *v, char **ret) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "cniVersion", v && *v ? v : "1.1.0");
        cJSON *list = cJSON_AddArrayToObject(o, "supportedVersions");
        for (size_t i = 0; cni_supported_versions[i]; i++)
                cJSON_AddItemToArray(list, cJSON_CreateString(cni_supported_versions[i]));
        return print_and_free(o, ret);
}

int cni_error_render(const char *v, int code, const char *msg, const char *details, char **ret) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
                return -ENOMEM;
        cJSON_AddStringToObject(o, "cniVersion", v && cni_version_supported(v) ? v : "1.1.0");
        cJSON_AddNumberToObject(o, "code", code);
        cJSON_AddStringToObject(o, "msg", msg ? msg : "");
        if (details && *details)
                cJSON_AddStringToObject(o, "details", details);
        return print_and_free(o, ret);
}

/* An address in PROTO_EGRESS4_CIDR or PROTO_EGRESS6_CIDR: a pod's egress
 * address, never the pod's own. */
static bool is_egress(const char *ip) {
        return proto_valid_egress_ip(ip);
}

static void prev_ip(const cJSON *ips, char ip[static PROTO_IP_MAX]) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ips) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "address");
                if (!cJSON_IsString(a))
                        continue;
                char buf[PROTO_CIDR_MAX];
                snprintf(buf, sizeof buf, "%s", a->valuestring);
                char *slash = strchr(buf, '/');
                if (slash)
                        *slash = '\0';
                if (proto_valid_ip(buf) && !is_egress(buf)) {
                        strcpy(ip, buf);
                        return;
                }
        }
}

static void prev_host_ifname(const cJSON *ifs, char name[static PROTO_IFNAME_MAX + 1]) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ifs) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *sb = cJSON_GetObjectItemCaseSensitive(e, "sandbox");
                if (cJSON_IsString(n) && proto_valid_ifname(n->valuestring) &&
                    (!cJSON_IsString(sb) || !sb->valuestring[0])) {
                        strcpy(name, n->valuestring);
                        return;
                }
        }
}

int cni_result_prev_parse(const cJSON *prev, char ip[static PROTO_IP_MAX],
                          char host_ifname[static PROTO_IFNAME_MAX + 1]) {
        ip[0] = host_ifname[0] = '\0';
        if (!cJSON_IsObject(prev))
                return -ENOENT;
        const cJSON *ips = cJSON_GetObjectItemCaseSensitive(prev, "ips");
        const cJSON *ifs = cJSON_GetObjectItemCaseSensitive(prev, "interfaces");
        if (cJSON_IsArray(ips))
                prev_ip(ips, ip);
        if (cJSON_IsArray(ifs))
                prev_host_ifname(ifs, host_ifname);
        return ip[0] || host_ifname[0] ? 0 : -ENOENT;
}

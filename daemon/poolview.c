/*
 * poolview: store → JSON for vpc-ipamctl and introspection (see poolview.h).
 */
#include <stdlib.h>
#include <string.h>

#include "poolview.h"

cJSON *poolview_pool(store *s, int64_t now_ms, int waiting_adds, bool ready, const char *reason) {
        struct store_stats st;
        if (store_stats(s, now_ms, &st) < 0)
                return NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "enis", st.enis);
        cJSON_AddNumberToObject(o, "total", st.total);
        cJSON_AddNumberToObject(o, "assigned", st.assigned);
        cJSON_AddNumberToObject(o, "cooldown", st.cooldown);
        cJSON_AddNumberToObject(o, "available", st.available);
        cJSON_AddNumberToObject(o, "releasing", st.releasing);
        cJSON_AddNumberToObject(o, "waiting_adds", waiting_adds);
        cJSON_AddBoolToObject(o, "ready", ready);
        cJSON_AddStringToObject(o, "reason", reason ? reason : "");
        if (st.ipv6_prefixes) {         /* IPv6 mode */
                cJSON_AddNumberToObject(o, "ipv6_prefixes", st.ipv6_prefixes);
                cJSON_AddNumberToObject(o, "ipv6_assigned", st.ipv6_assigned);
                cJSON_AddNumberToObject(o, "ipv6_cooldown", st.ipv6_cooldown);
                cJSON_AddNumberToObject(o, "egress_assigned", st.egress_assigned);
        } else if (st.egress_assigned || st.egress_cooldown) {        /* IPv4 pods' IPv6 egress (ENABLE_V6_EGRESS) */
                cJSON_AddNumberToObject(o, "egress6_assigned", st.egress_assigned);
        }
        return o;
}

static void add_counts(cJSON *o, const struct plan_eni *pe, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(pe[i].id, id) == 0) {
                        cJSON_AddNumberToObject(o, "free", pe[i].free);
                        cJSON_AddNumberToObject(o, "assigned", pe[i].assigned);
                        cJSON_AddNumberToObject(o, "cooldown", pe[i].cooldown);
                        cJSON_AddNumberToObject(o, "releasing", pe[i].releasing);
                }
}

static void add_blocks(cJSON *o, store *s, const char *id) {
        char (*blocks)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        cJSON *arr = cJSON_AddArrayToObject(o, "blocks");
        if (store_blocks(s, id, &blocks, &n) == 0)
                for (size_t b = 0; b < n; b++)
                        cJSON_AddItemToArray(arr, cJSON_CreateString(blocks[b]));
        free(blocks);
}

static cJSON *use_json(const struct store_block_use *u) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddNumberToObject(b, "assigned", u->assigned);
        cJSON_AddNumberToObject(b, "free", u->free);
        cJSON_AddNumberToObject(b, "cooldown", u->cooldown);
        cJSON_AddNumberToObject(b, "releasing", u->releasing);
        return b;
}

/*
 * The kinds of the ENI's blocks and their use: "prefix_use" has one entry
 * per /28 prefix (its cidr and how its 16 addresses are used), "ip_use" sums
 * the /32 secondaries (one slot each: listing each would only repeat
 * "blocks", and a large node's reply must fit PROTO_MSG_MAX).
 */
static void add_block_use(cJSON *o, store *s, const char *id, int64_t now_ms) {
        struct store_block_use *u = NULL, ips = { .prefix = false };
        size_t n = 0;
        cJSON *prefixes = cJSON_AddArrayToObject(o, "prefix_use");
        if (store_block_use(s, id, now_ms, &u, &n) < 0)
                n = 0;
        for (size_t i = 0; i < n; i++) {
                if (u[i].prefix) {
                        cJSON *b = use_json(&u[i]);
                        cJSON_AddStringToObject(b, "cidr", u[i].cidr);
                        cJSON_AddItemToArray(prefixes, b);
                        continue;
                }
                ips.size++;
                ips.assigned += u[i].assigned, ips.free += u[i].free;
                ips.cooldown += u[i].cooldown, ips.releasing += u[i].releasing;
        }
        cJSON *ip = use_json(&ips);
        cJSON_AddNumberToObject(ip, "blocks", ips.size);
        cJSON_AddItemToObject(o, "ip_use", ip);
        cJSON_AddNumberToObject(o, "prefixes", cJSON_GetArraySize(prefixes));
        cJSON_AddNumberToObject(o, "ips", ips.size);
        free(u);
}

/* IPv6 mode: the ENI's /80s (none: no key, so IPv4 nodes' answers are as before). */
static void add_prefixes6(cJSON *o, store *s, const char *id) {
        char (*p)[STORE_CIDR6_MAX] = NULL;
        size_t n = 0;
        if (store_prefixes6(s, id, &p, &n) == 0 && n) {
                cJSON *arr = cJSON_AddArrayToObject(o, "ipv6_prefixes");
                for (size_t i = 0; i < n; i++)
                        cJSON_AddItemToArray(arr, cJSON_CreateString(p[i]));
        }
        free(p);
}

static cJSON *eni_json(store *s, const struct store_eni *e, const struct plan_eni *pe, size_t npe, int64_t now_ms) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", e->id);
        cJSON_AddNumberToObject(o, "device_index", e->device_index);
        cJSON_AddNumberToObject(o, "network_card", e->network_card);
        cJSON_AddStringToObject(o, "mac", e->mac);
        cJSON_AddStringToObject(o, "subnet_id", e->subnet_id);
        cJSON_AddStringToObject(o, "subnet_cidr", e->subnet_cidr);
        cJSON_AddStringToObject(o, "primary_ip", e->primary_ip);
        cJSON_AddNumberToObject(o, "route_table", e->route_table);
        cJSON_AddBoolToObject(o, "primary", e->is_primary);
        cJSON_AddStringToObject(o, "state", store_eni_state_name(e->state));
        add_counts(o, pe, npe, e->id);
        add_blocks(o, s, e->id);
        add_block_use(o, s, e->id, now_ms);
        add_prefixes6(o, s, e->id);
        return o;
}

cJSON *poolview_enis(store *s, int64_t now_ms) {
        struct store_eni *enis = NULL;
        struct plan_eni pe[128];
        size_t n = 0, npe = 0;
        if (store_enis(s, &enis, &n) < 0 || store_plan_enis(s, now_ms, pe, sizeof pe / sizeof pe[0], &npe) < 0) {
                free(enis);
                return NULL;
        }
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(arr, eni_json(s, &enis[i], pe, npe, now_ms));
        free(enis);
        return arr;
}

cJSON *poolview_pods(store *s) {
        struct store_lease *ls = NULL;
        size_t n = 0;
        if (store_leases(s, &ls, &n) < 0)
                return NULL;
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "ip", ls[i].ip);
                if (ls[i].egress_ip[0])
                        cJSON_AddStringToObject(o, "egress_ip", ls[i].egress_ip);
                cJSON_AddStringToObject(o, "eni_id", ls[i].eni_id);
                cJSON_AddNumberToObject(o, "device_index", ls[i].device_index);
                cJSON_AddStringToObject(o, "container_id", ls[i].container_id);
                cJSON_AddStringToObject(o, "ifname", ls[i].ifname);
                cJSON_AddStringToObject(o, "pod_namespace", ls[i].pod_namespace);
                cJSON_AddStringToObject(o, "pod_name", ls[i].pod_name);
                cJSON_AddStringToObject(o, "netns", ls[i].netns);
                cJSON_AddNumberToObject(o, "assigned_ms", (double)ls[i].assigned_ms);
                cJSON_AddItemToArray(arr, o);
        }
        free(ls);
        return arr;
}

cJSON *poolview_intents(store *s) {
        struct store_intent *its = NULL;
        size_t n = 0;
        if (store_intents_open(s, &its, &n) < 0)
                return NULL;
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "id", (double)its[i].id);
                cJSON_AddStringToObject(o, "kind", store_intent_kind_name(its[i].kind));
                cJSON_AddStringToObject(o, "client_token", its[i].client_token);
                cJSON_AddStringToObject(o, "eni_id", its[i].eni_id);
                cJSON_AddItemToObject(o, "params", cJSON_Parse(its[i].params));
                cJSON_AddNumberToObject(o, "created_ms", (double)its[i].created_ms);
                cJSON_AddItemToArray(arr, o);
        }
        free(its);
        return arr;
}

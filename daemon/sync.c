/*
 * sync: three truths into the store, and intents resolved (see sync.h).
 *
 * The EC2 pass reads every ENI attached to the instance
 * (DescribeNetworkInterfaces, attachment.instance-id, paginated), upserts the
 * managed ones with the device index and table EC2 reports, adds the
 * addresses EC2 lists and the store lacks, and removes the ones it no longer
 * lists. Intent resolution relies on it: after it, the store already holds
 * what EC2 holds, so an interrupted assign or unassign needs nothing more,
 * and an interrupted create is found by its client-token tag and deleted
 * unless it got attached.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "podnet.h"
#include "sync.h"

#define SYNC_TAG_NO_MANAGE "node.k8s.amazonaws.com/no_manage"

/*
 * Which attached ENIs vpc-ipamd uses, as aws-node's setUnmanagedENIs: the
 * primary always; never one tagged no_manage=true; one tagged with this
 * instance (vpc-ipamd's or aws-node's own), or tagged no_manage with any other
 * value, yes; an untagged one only with MANAGE_UNTAGGED_ENI (the default).
 * An ENI of another kind (trunk, efa, ...) is never taken: others own it.
 */
static bool managed(const struct ipamd_ctx *o, const struct ec2_eni *e) {
        if (strcmp(e->id, o->node->primary_eni_id) == 0)
                return true;
        const char *no_manage = ctx_eni_tag(e, SYNC_TAG_NO_MANAGE);
        const char *inst = ctx_eni_tag(e, CTX_TAG_INSTANCE);
        if (no_manage)
                return strcmp(no_manage, "true") != 0;
        if (inst && strcmp(inst, o->node->instance_id) == 0)
                return true;
        bool plain = !e->interface_type || !*e->interface_type || strcmp(e->interface_type, "interface") == 0;
        return o->cfg->manage_untagged && plain;
}

/* --- EC2 → store --------------------------------------------------------------- */

struct seen {
        char (*ids)[STORE_ID_MAX];
        size_t n;
};

static bool seen_has(const struct seen *s, const char *id) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->ids[i], id) == 0)
                        return true;
        return false;
}

static bool in_list(const char *cidr, char (*list)[STORE_CIDR_MAX], size_t n) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], cidr) == 0)
                        return true;
        return false;
}

/* The blocks EC2 lists for the ENI: secondary /32s (never its primary, flagged or not) and /28 prefixes. */
static size_t ec2_blocks(const struct ec2_eni *e, char (*out)[STORE_CIDR_MAX], size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < e->n_private_ips && n < max; i++)
                if (!e->private_ips[i].primary && (!e->primary_ip || strcmp(e->private_ips[i].address, e->primary_ip) != 0))
                        snprintf(out[n++], STORE_CIDR_MAX, "%s/32", e->private_ips[i].address);
        for (size_t i = 0; i < e->n_prefixes && n < max; i++)
                snprintf(out[n++], STORE_CIDR_MAX, "%s", e->prefixes[i]);
        return n;
}

/*
 * EC2's Describe is eventually consistent: an answer may not list yet what a
 * call just did. Nothing younger than this is taken away on one answer's word.
 */
#define SYNC_YOUNG_MS (60 * 1000)

static bool young_block(struct ipamd_ctx *o, const char *cidr) {
        int64_t added;
        bool releasing;
        /* A block we were releasing is expected to be gone: no grace for it. */
        return store_block_info(o->store, cidr, &added, &releasing) == 0 && !releasing &&
               o->now_ms() - added < SYNC_YOUNG_MS;
}

/*
 * The ENI's primary address as a block: a store migrated from schema 1 may
 * hold one that a pod holds (the store dropped the free ones). That pod keeps
 * it until released (then the store drops it for good): not taken away here,
 * but said loudly. True when cidr is the primary's block.
 */
static bool primary_block(struct ipamd_ctx *o, const struct ec2_eni *e, const char *cidr, struct sync_report *rep) {
        char primary[STORE_CIDR_MAX];
        snprintf(primary, sizeof primary, "%s/32", e->primary_ip ? e->primary_ip : "");
        if (strcmp(cidr, primary) != 0)
                return false;
        int r = store_block_remove(o->store, cidr, false, NULL);
        if (r == 0)
                rep->blocks_removed++;
        else if (r == -EBUSY)
                log_error("a pod holds its ENI's primary address (an older vpc-ipamd gave it out); it keeps it "
                          "until released and it is never given out again: restart that pod",
                          LF_STR("ip", e->primary_ip), LF_STR("eni", e->id));
        return true;
}

static void sync_blocks(struct ipamd_ctx *o, const struct ec2_eni *e, struct sync_report *rep) {
        char want[256][STORE_CIDR_MAX];
        size_t n_want = ec2_blocks(e, want, 256);
        char (*have)[STORE_CIDR_MAX] = NULL;
        size_t n_have = 0;
        if (store_blocks(o->store, e->id, &have, &n_have) < 0)
                return;
        for (size_t i = 0; i < n_want; i++)
                if (!in_list(want[i], have, n_have) && store_block_add(o->store, e->id, want[i], o->now_ms()) == 0)
                        rep->blocks_added++;
        for (size_t i = 0; i < n_have; i++) {
                size_t lost = 0;
                if (in_list(have[i], want, n_want) || primary_block(o, e, have[i], rep) || young_block(o, have[i]) ||
                    store_block_remove(o->store, have[i], true, &lost) < 0)
                        continue;
                rep->blocks_removed++;
                if (lost) {
                        rep->leases_lost += lost;
                        metrics_add(o->metrics, METRICS_FORCE_REMOVED_IPS, lost);
                        log_warn("EC2 no longer lists an address a pod holds; the pod has lost it",
                                 LF_STR("block", have[i]), LF_STR("eni", e->id));
                }
        }
        free(have);
}

static void setup_link_of(struct ipamd_ctx *o, const struct store_eni *se, struct sync_report *rep) {
        if (!o->net)
                return;
        struct hostnet_eni he = { .mac = se->mac, .device_index = (unsigned)se->device_index,
                                  .network_card = (unsigned)se->network_card, .is_primary = se->is_primary,
                                  .route_table = (uint32_t)se->route_table, .primary_ip = se->primary_ip,
                                  .subnet_cidr = se->subnet_cidr, .mtu = (unsigned)o->cfg->eni_mtu };
        struct errmsg err = { 0 };
        int r = hostnet_setup_eni(o->net, &he, &err);
        if (r == -ENOENT)
                return; /* no link yet: sync_links opens it when it appears */
        if (r < 0) {
                log_error_errno(r, "could not set up an ENI's link", LF_STR("eni", se->id), LF_STR("detail", err.text));
                return;
        }
        rep->links_set_up++;
        if (se->state != STORE_ENI_ATTACHED && store_eni_set_state(o->store, se->id, STORE_ENI_ATTACHED) == 0 &&
            o->pool_changed)
                o->pool_changed(o->userdata);
}

/* IMDS's subnet CIDR for an ENI (by MAC), remembered: when EC2 cannot tell it. */
static int imds_subnet_cidr(struct ipamd_ctx *o, const struct ec2_eni *e, char out[STORE_CIDR_MAX]) {
        struct imds_eni *ie = NULL;
        if (!o->imds || !e->mac || imds_eni(o->imds, e->mac, &ie, NULL) < 0)
                return -ENOENT;
        int r = -ENOENT;
        if (ie->subnet_cidr.len > 0 && strcmp(ie->subnet_id, e->subnet_id) == 0) {
                char ip[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &ie->subnet_cidr.addr, ip, sizeof ip);
                snprintf(out, STORE_CIDR_MAX, "%s/%u", ip, (unsigned)ie->subnet_cidr.len);
                ctx_subnet_remember(o, e->subnet_id, out, -1);
                r = 0;
        }
        imds_eni_free(ie);
        return r;
}

static void upsert(struct ipamd_ctx *o, const struct ec2_eni *e, struct sync_report *rep) {
        struct store_eni se = { 0 }, old;
        bool known = store_eni_get(o->store, e->id, &old) == 0;
        se.device_index = e->attachment.device_index;
        se.network_card = e->attachment.network_card;
        se.is_primary = strcmp(e->id, o->node->primary_eni_id) == 0;
        se.route_table = se.is_primary ? STORE_ROUTE_TABLE_MAIN
                                       : (int)hostnet_route_table((unsigned)se.network_card, (unsigned)se.device_index);
        /* A known ENI keeps its state (detaching stays detaching); a new one waits for its link. */
        se.state = known ? old.state : se.is_primary ? STORE_ENI_ATTACHED : STORE_ENI_ATTACHING;
        se.created_ms = known ? old.created_ms : o->now_ms();
        snprintf(se.id, sizeof se.id, "%s", e->id);
        snprintf(se.mac, sizeof se.mac, "%s", e->mac);
        snprintf(se.subnet_id, sizeof se.subnet_id, "%s", e->subnet_id);
        /* Each ENI's own subnet, as EC2 tells it: its table's gateway is that subnet's.
         * An ENI outside the node's subnet recorded with the node's CIDR is an older
         * daemon's guess: asked again (kept if EC2 cannot tell now). */
        bool reuse = known && strcmp(old.subnet_id, e->subnet_id) == 0 && old.subnet_cidr[0];
        bool guessed = reuse && strcmp(e->subnet_id, o->node->subnet_id) != 0 &&
                       strcmp(old.subnet_cidr, o->node->subnet_cidr) == 0;
        if (reuse && !guessed)
                snprintf(se.subnet_cidr, sizeof se.subnet_cidr, "%s", old.subnet_cidr);
        else if (ctx_subnet_cidr(o, e->subnet_id, se.subnet_cidr) < 0 && imds_subnet_cidr(o, e, se.subnet_cidr) < 0) {
                if (!reuse) {
                        rep->enis_unrecorded++; /* the next pass asks again; the witness waits for it */
                        return;
                }
                snprintf(se.subnet_cidr, sizeof se.subnet_cidr, "%s", old.subnet_cidr);
        }
        snprintf(se.primary_ip, sizeof se.primary_ip, "%s", e->primary_ip);
        int r = store_eni_put(o->store, &se);
        if (r < 0) {
                log_error_errno(r, "could not record an ENI EC2 reports", LF_STR("eni", e->id));
                return;
        }
        if (!known) {
                rep->enis_added++;
                log_info("found an attached ENI", LF_STR("eni", e->id), LF_INT("device_index", se.device_index));
        }
        if (!se.is_primary && e->attachment.id && !e->attachment.delete_on_termination && o->ec2 &&
            !o->cfg->no_provisioning) {
                /* Set after the attach, so a crash or a failed call could have left it off. */
                struct ec2_error err = { 0 };
                if (ec2_set_delete_on_termination(o->ec2, e->id, e->attachment.id, true, &err) < 0)
                        log_warn("could not set DeleteOnTermination", LF_STR("eni", e->id), LF_STR("code", err.code));
        }
        sync_blocks(o, e, rep);
        if (se.state != STORE_ENI_DETACHING)
                setup_link_of(o, &se, rep);
}

static void forget_missing(struct ipamd_ctx *o, const struct seen *attached, struct sync_report *rep) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        if (store_enis(o->store, &enis, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                size_t lost = 0;
                if (seen_has(attached, enis[i].id) || o->now_ms() - enis[i].created_ms < SYNC_YOUNG_MS ||
                    store_eni_remove(o->store, enis[i].id, true, &lost) < 0)
                        continue;
                rep->enis_removed++;
                rep->leases_lost += lost;
                metrics_inc(o->metrics, METRICS_FORCE_REMOVED_ENIS);
                metrics_add(o->metrics, METRICS_FORCE_REMOVED_IPS, lost);
                log_warn("an ENI is no longer attached; forgot it", LF_STR("eni", enis[i].id),
                         LF_INT("pods_that_lost_their_address", lost));
        }
        free(enis);
}

static int seen_add(struct seen *s, const char *id) {
        char (*n)[STORE_ID_MAX] = realloc(s->ids, (s->n + 1) * sizeof *s->ids);
        if (!n)
                return -ENOMEM;
        s->ids = n;
        snprintf(s->ids[s->n++], STORE_ID_MAX, "%s", id);
        return 0;
}

/* An ENI attached to this instance that vpc-ipamd manages; others' device indexes are noted. */
static bool ours_attached(struct ipamd_ctx *o, const struct ec2_eni *e) {
        const char *status = e->attachment.status ? e->attachment.status : "";
        if (strcmp(status, "attached") != 0 && strcmp(status, "attaching") != 0)
                return false;
        if (managed(o, e))
                return true;
        if (e->attachment.network_card == 0 && e->attachment.device_index < 64)
                o->foreign_devices |= 1ull << e->attachment.device_index;
        return false;
}

struct pages {
        struct ec2_result **v;
        size_t n;
};

static void pages_free(struct pages *p) {
        for (size_t i = 0; i < p->n; i++)
                ec2_result_free(p->v[i]);
        free(p->v);
}

/* Every page of DescribeNetworkInterfaces for this instance. */
static int describe_all(struct ipamd_ctx *o, struct pages *ret, struct errmsg *err) {
        const char *inst[] = { o->node->instance_id };
        struct ec2_filter f = { "attachment.instance-id", inst, 1 };
        char token[1024] = "";
        do {
                struct ec2_result *res = NULL;
                struct ec2_error e = { 0 };
                int r = ec2_describe_enis_page(o->ec2, &f, 1, 100, token[0] ? token : NULL, &res, &e);
                struct ec2_result **nv = r < 0 ? NULL : realloc(ret->v, (ret->n + 1) * sizeof *ret->v);
                if (r >= 0 && !nv) {
                        ec2_result_free(res);
                        r = -ENOMEM;
                }
                if (r < 0) {
                        ctx_note_failure(o, "DescribeNetworkInterfaces", r, &e);
                        return errmsg_set(err, r, "DescribeNetworkInterfaces: %s", errmsg_text(&e.msg, r));
                }
                ret->v = nv;
                ret->v[ret->n++] = res;
                snprintf(token, sizeof token, "%s", res->next_token ? res->next_token : "");
        } while (token[0]);
        return 0;
}

int sync_with_ec2(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err) {
        struct pages pages = { 0 };
        struct seen attached = { 0 };
        o->foreign_devices = 0;
        int r = describe_all(o, &pages, err);
        for (size_t p = 0; r >= 0 && p < pages.n; p++)
                for (size_t i = 0; r >= 0 && i < pages.v[p]->n_enis; i++)
                        if (ours_attached(o, &pages.v[p]->enis[i]))
                                r = seen_add(&attached, pages.v[p]->enis[i].id);
        /* Forget what went first: a new ENI may reuse a departed one's device index or MAC. */
        if (r >= 0)
                forget_missing(o, &attached, rep);
        for (size_t p = 0; r >= 0 && p < pages.n; p++)
                for (size_t i = 0; i < pages.v[p]->n_enis; i++)
                        if (seen_has(&attached, pages.v[p]->enis[i].id))
                                upsert(o, &pages.v[p]->enis[i], rep);
        pages_free(&pages);
        free(attached.ids);
        return r < 0 ? r : 0;
}

/* IMDS's view of one ENI in EC2's shape, so the same upsert serves both sources. */
struct imds_as_ec2 {
        struct ec2_eni eni;
        char ips[256][INET_ADDRSTRLEN];
        struct ec2_private_ip pips[256];
        char pfx[64][STORE_CIDR_MAX];
        const char *prefixes[64];
        char primary[INET_ADDRSTRLEN];
};

/* The ENI's primary address as EC2 told it before (the store, or the node's for its primary ENI); "" if unknown. */
static void known_primary(struct ipamd_ctx *o, const char *eni_id, char ret[STORE_IP_MAX]) {
        struct store_eni se;
        if (store_eni_get(o->store, eni_id, &se) == 0)
                snprintf(ret, STORE_IP_MAX, "%s", se.primary_ip);
        else
                snprintf(ret, STORE_IP_MAX, "%s", strcmp(eni_id, o->node->primary_eni_id) == 0 ? o->node->primary_ip : "");
}

/* IMDS lists the primary address first; the one EC2 told before wins if IMDS lists it. */
static void from_imds(const struct imds_eni *ie, const char *known, struct imds_as_ec2 *x) {
        memset(x, 0, sizeof *x);
        size_t primary = 0;
        for (size_t i = 0; i < ie->n_local_ipv4s && i < 256; i++) {
                inet_ntop(AF_INET, &ie->local_ipv4s[i], x->ips[i], sizeof x->ips[i]);
                if (strcmp(x->ips[i], known) == 0)
                        primary = i;
        }
        for (size_t i = 0; i < ie->n_local_ipv4s && i < 256; i++) {
                x->pips[i] = (struct ec2_private_ip){ x->ips[i], i == primary };
                x->eni.n_private_ips++;
        }
        for (size_t i = 0; i < ie->n_prefixes && i < 64; i++) {
                char ip[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &ie->prefixes[i].addr, ip, sizeof ip);
                snprintf(x->pfx[i], STORE_CIDR_MAX, "%s/%u", ip, (unsigned)ie->prefixes[i].len);
                x->prefixes[i] = x->pfx[i];
                x->eni.n_prefixes++;
        }
        x->eni.id = ie->interface_id;
        x->eni.mac = ie->mac;
        x->eni.subnet_id = ie->subnet_id;
        x->eni.primary_ip = x->eni.n_private_ips ? x->ips[primary] : "";
        x->eni.private_ips = x->pips;
        x->eni.prefixes = x->prefixes;
        x->eni.attached = true;
        x->eni.attachment = (struct ec2_attachment){ .device_index = ie->device_number,
                                                     .network_card = ie->network_card, .status = "attached" };
}

int sync_with_imds(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err) {
        char (*macs)[IMDS_MAC_LEN] = NULL;
        size_t n = 0;
        int r = imds_macs(o->imds, &macs, &n, err);
        if (r < 0)
                return r;
        if (n == 0) {
                free(macs);
                return errmsg_set(err, -EBADMSG, "IMDS lists no network interface: refusing to forget every ENI");
        }
        struct seen attached = { 0 };
        struct imds_as_ec2 *x = malloc(sizeof *x);
        for (size_t i = 0; x && i < n; i++) {
                struct imds_eni *ie = NULL;
                if ((r = imds_eni(o->imds, macs[i], &ie, err)) < 0)
                        break;
                char known[STORE_IP_MAX];
                known_primary(o, ie->interface_id, known);
                from_imds(ie, known, x);
                char cidr[INET_ADDRSTRLEN + 4];
                inet_ntop(AF_INET, &ie->subnet_cidr.addr, cidr, INET_ADDRSTRLEN);
                snprintf(cidr + strlen(cidr), 4, "/%u", (unsigned)ie->subnet_cidr.len);
                ctx_subnet_remember(o, ie->subnet_id, cidr, -1);
                if (seen_add(&attached, ie->interface_id) == 0)
                        upsert(o, &x->eni, rep);
                imds_eni_free(ie);
        }
        if (r >= 0 && x)
                forget_missing(o, &attached, rep);
        free(x);
        free(macs);
        free(attached.ids);
        return r < 0 ? r : x ? 0 : -ENOMEM;
}

int sync_eni(struct ipamd_ctx *o, const char *eni_id, struct sync_report *rep) {
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        int r = ctx_describe_eni(o, eni_id, &res, &e);
        if (r == -ENOENT)
                return 0;               /* gone: the next EC2 pass forgets it */
        if (r < 0)
                return r;
        sync_blocks(o, &res->enis[0], rep);
        ec2_result_free(res);
        return 0;
}

int sync_links(struct ipamd_ctx *o, struct sync_report *rep) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        int r = store_enis(o->store, &enis, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (enis[i].state == STORE_ENI_ATTACHING)
                        setup_link_of(o, &enis[i], rep);
        free(enis);
        return r;
}

/* --- intents -------------------------------------------------------------------- */

static void nap_ms(int ms) {
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* The strings of a JSON array, into v (n at most); their number. */
static size_t json_strings(const cJSON *a, const char **v, size_t n) {
        size_t k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, a)
                if (k < n && cJSON_IsString(it))
                        v[k++] = it->valuestring;
        return k;
}

/* Tags as [[key, value], ...] into tags (n at most); their number. */
static size_t json_tags(const cJSON *a, struct ec2_tag *tags, size_t n) {
        size_t k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, a) {
                const cJSON *key = cJSON_GetArrayItem(it, 0), *val = cJSON_GetArrayItem(it, 1);
                if (k < n && cJSON_IsString(key) && cJSON_IsString(val))
                        tags[k++] = (struct ec2_tag){ key->valuestring, val->valuestring };
        }
        return k;
}

int sync_create_eni(struct ipamd_ctx *o, const char *token, const char *params, struct ec2_result **ret,
                    struct ec2_error *e) {
        cJSON *p = cJSON_Parse(params);
        const cJSON *subnet = cJSON_GetObjectItem(p, "subnet"), *descr = cJSON_GetObjectItem(p, "description");
        const cJSON *count = cJSON_GetObjectItem(p, "count");
        if (!cJSON_IsString(subnet) || !cJSON_IsString(descr) || !cJSON_IsNumber(count)) {
                cJSON_Delete(p);
                return -ENODATA; /* an older daemon's intent: not enough to re-issue it */
        }
        const char *sgs[NODE_MAX_SGS];
        struct ec2_tag tags[IPAMD_TAGS_MAX + 8];
        size_t n_tags = json_tags(cJSON_GetObjectItem(p, "tags"), tags, IPAMD_TAGS_MAX + 8);
        /* Too many tags for the store's JSON: the configured ones are the daemon's config. */
        if (cJSON_IsTrue(cJSON_GetObjectItem(p, "config_tags")))
                for (size_t i = 0; i < o->cfg->n_tags && n_tags < IPAMD_TAGS_MAX + 8; i++)
                        tags[n_tags++] = (struct ec2_tag){ o->cfg->tags[i].key, o->cfg->tags[i].value };
        struct ec2_create_eni req = {
                .subnet_id = subnet->valuestring, .security_groups = sgs,
                .n_security_groups = json_strings(cJSON_GetObjectItem(p, "groups"), sgs, NODE_MAX_SGS),
                .description = descr->valuestring, .tags = tags, .n_tags = n_tags,
                .secondary_ip_count = (unsigned)count->valueint, .client_token = token };
        /* Prefix delegation: the ENI was asked with Ipv4PrefixCount ("count" is then 0). */
        const cJSON *prefixes = cJSON_GetObjectItem(p, "prefixes");
        if (cJSON_IsNumber(prefixes) && prefixes->valueint > 0)
                req.prefix_count = (unsigned)prefixes->valueint, req.secondary_ip_count = 0;
        int r = ec2_create_eni(o->ec2, &req, ret, e);
        if (r >= 0 && (*ret)->n_enis != 1) {
                ec2_result_free(*ret);
                *ret = NULL;
                r = -EBADMSG;
        }
        cJSON_Delete(p);
        return r;
}

bool sync_refused(int r, const struct ec2_error *e) {
        return r < 0 && e->http_status >= 400 && e->http_status < 500 &&
               strcmp(e->code, "RequestLimitExceeded") != 0 && strcmp(e->code, "IdempotentParameterMismatch") != 0;
}

/* The ENI with this client-token tag, if EC2 created it: 0 and *ret, or -ENOENT. */
static int find_by_token(struct ipamd_ctx *o, const char *token, struct ec2_result **ret) {
        char key[80];
        snprintf(key, sizeof key, "tag:%s", CTX_TAG_TOKEN);
        const char *vals[] = { token };
        struct ec2_filter f = { key, vals, 1 };
        struct ec2_error e = { 0 };
        int r = ec2_describe_enis_page(o->ec2, &f, 1, 5, NULL, ret, &e);
        if (r < 0)
                return r;
        if ((*ret)->n_enis == 0) {
                ec2_result_free(*ret);
                return -ENOENT;
        }
        return 0;
}

static int describe_id(struct ipamd_ctx *o, const char *id, struct ec2_result **ret) {
        struct ec2_error e = { 0 };
        return ctx_describe_eni(o, id, ret, &e);
}

static bool attached_here(struct ipamd_ctx *o, const struct ec2_eni *e) {
        return e->attached && e->attachment.instance_id && strcmp(e->attachment.instance_id, o->node->instance_id) == 0;
}

/*
 * An ENI of an interrupted operation that is not ours to keep: deleted, which
 * settles it for good (an attach applied late then fails; an attach applied
 * already makes the delete fail, and EC2 then shows it attached here: kept).
 * A NotFound is retried a little (a just-made ENI may not be visible yet).
 */
static enum store_intent_state delete_interrupted(struct ipamd_ctx *o, const char *id, struct sync_report *rep) {
        for (int i = 0;; i++) {
                struct ec2_error err = { 0 };
                if (ec2_delete_eni(o->ec2, id, &err) == 0) {
                        (void)ctx_forget_eni(o, id);
                        rep->enis_deleted++;
                        log_info("deleted the ENI of an interrupted operation", LF_STR("eni", id));
                        return STORE_INTENT_UNDONE;
                }
                if (strcmp(err.code, "InvalidNetworkInterfaceID.NotFound") == 0) {
                        if (i >= 3) {
                                (void)ctx_forget_eni(o, id);
                                return STORE_INTENT_UNDONE; /* EC2 says it is gone */
                        }
                        nap_ms(300);
                        continue;
                }
                struct ec2_result *res = NULL;
                bool here = describe_id(o, id, &res) == 0 && attached_here(o, &res->enis[0]);
                ec2_result_free(res);
                if (here)
                        return STORE_INTENT_DONE; /* attached to us: the EC2 passes record it */
                log_warn("could not delete the ENI of an interrupted operation; its intent stays open",
                         LF_STR("eni", id), LF_STR("code", err.code));
                return STORE_INTENT_OPEN;
        }
}

/* An older daemon's create intent (no parameters to re-issue it): its token tag looked up. */
static enum store_intent_state settle_create_by_tag(struct ipamd_ctx *o, const struct store_intent *it,
                                                   bool made, struct sync_report *rep) {
        struct ec2_result *res = NULL;
        int r = find_by_token(o, it->client_token, &res);
        if (r == -ENOENT)
                /* Known made (the token was used) yet not listed: the answer is stale, look again later. */
                return made ? STORE_INTENT_OPEN : STORE_INTENT_UNDONE;
        if (r < 0)
                return STORE_INTENT_OPEN;
        char id[STORE_ID_MAX];
        snprintf(id, sizeof id, "%s", res->enis[0].id);
        bool here = attached_here(o, &res->enis[0]);
        ec2_result_free(res);
        return here ? STORE_INTENT_DONE : delete_interrupted(o, id, rep);
}

/*
 * A create whose outcome is unknown is settled by issuing it again with the
 * same ClientToken and parameters: EC2 answers with the ENI the first call
 * made, or makes it now (once; a late first call then returns the same one).
 * Either way there is one ENI, known by id, never a guess from a Describe
 * that may not list it yet: kept when attached here, else deleted.
 */
static enum store_intent_state settle_create(struct ipamd_ctx *o, const struct store_intent *it,
                                            struct sync_report *rep) {
        if (!it->client_token[0])
                return STORE_INTENT_UNDONE;
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        int r = sync_create_eni(o, it->client_token, it->params, &res, &e);
        if (r == -ENODATA || (r < 0 && strcmp(e.code, "IdempotentParameterMismatch") == 0))
                return settle_create_by_tag(o, it, r != -ENODATA, rep);
        if (sync_refused(r, &e)) {
                log_info("EC2 refuses the interrupted create: nothing was made", LF_STR("code", e.code));
                return STORE_INTENT_FAILED;
        }
        if (r < 0)
                return STORE_INTENT_OPEN; /* still unknown: settled next time */
        char id[STORE_ID_MAX];
        snprintf(id, sizeof id, "%s", res->enis[0].id);
        bool here = attached_here(o, &res->enis[0]);
        ec2_result_free(res);
        return here ? STORE_INTENT_DONE : delete_interrupted(o, id, rep);
}

/*
 * An attach or a delete: the ENI by id. Attached here: kept (the EC2 pass
 * recorded it, or the next one does). Otherwise deleted, which settles a
 * late attach too; an ENI already gone needs nothing.
 */
static enum store_intent_state settle_by_id(struct ipamd_ctx *o, const struct store_intent *it,
                                           struct sync_report *rep) {
        if (!it->eni_id[0])
                return STORE_INTENT_DONE;
        struct ec2_result *res = NULL;
        int r = describe_id(o, it->eni_id, &res);
        if (r == -ENOENT) {
                (void)ctx_forget_eni(o, it->eni_id);
                return STORE_INTENT_UNDONE; /* nothing exists: nothing to undo */
        }
        if (r < 0)
                return STORE_INTENT_OPEN; /* EC2 unreachable: try again next time */
        bool here = attached_here(o, &res->enis[0]);
        ec2_result_free(res);
        return here ? STORE_INTENT_DONE : delete_interrupted(o, it->eni_id, rep);
}

/* Does this answer to an Unassign say for sure that EC2 no longer holds the addresses? */
static bool unassign_definite(int r, const struct ec2_error *e) {
        return r == 0 || strcmp(e->code, "InvalidNetworkInterfaceID.NotFound") == 0;
}

/*
 * An interrupted unassign: its addresses or /28 prefixes (params "ips" or
 * "prefixes"; still marked releasing, so no pod holds them) are unassigned again, which settles them whatever the first
 * call does later: EC2 no longer holds an address the call (or, one by one,
 * a "not assigned" refusal) says so. They leave the store in every case,
 * never to be handed out again on a guess: one EC2 still holds after all is
 * added back by a later EC2 pass.
 */
static enum store_intent_state settle_unassign(struct ipamd_ctx *o, const struct store_intent *it,
                                              struct sync_report *rep) {
        cJSON *p = cJSON_Parse(it->params);
        const cJSON *pfx = cJSON_GetObjectItem(p, "prefixes");
        bool prefixes = cJSON_IsArray(pfx);
        const char *all[256], *ips[256];
        size_t n_all = json_strings(prefixes ? pfx : cJSON_GetObjectItem(p, "ips"), all, 256), n = 0;
        char cidrs[256][STORE_CIDR_MAX];
        for (size_t i = 0; i < n_all; i++) {
                int64_t added;
                bool releasing = false;
                snprintf(cidrs[n], STORE_CIDR_MAX, prefixes ? "%s" : "%s/32", all[i]);
                if (store_block_info(o->store, cidrs[n], &added, &releasing) == 0 && releasing)
                        ips[n++] = all[i];
        }
        struct ec2_error e = { 0 };
        int r = n ? ec2_unassign_private_ips(o->ec2, it->eni_id, ips, n, prefixes, &e) : 0;
        bool one_by_one = r < 0 && strcmp(e.code, "InvalidParameterValue") == 0;
        size_t unsure = 0;
        for (size_t i = 0; i < n; i++) {
                struct ec2_error e1 = { 0 };
                int r1 = one_by_one ? ec2_unassign_private_ips(o->ec2, it->eni_id, &ips[i], 1, prefixes, &e1) : r;
                bool gone = one_by_one ? unassign_definite(r1, &e1) || strcmp(e1.code, "InvalidParameterValue") == 0
                                       : unassign_definite(r, &e);
                unsure += !gone;
                if (store_block_remove(o->store, cidrs[i], false, NULL) == 0)
                        rep->blocks_removed++;
        }
        if (unsure)
                log_warn("EC2 did not settle an interrupted release; its addresses are out of the pool until an "
                         "EC2 pass finds them still assigned", LF_STR("eni", it->eni_id), LF_INT("addresses", unsure));
        cJSON_Delete(p);
        return STORE_INTENT_DONE;
}

/*
 * How each kind is settled: a create by re-issuing it (settle_create); an
 * attach or a delete by the ENI's id (settle_by_id); an unassign by issuing it
 * again (settle_unassign). An assign (of /32s or of prefixes) needs nothing here: the EC2 pass made the
 * store match, and one EC2 applies after that pass only adds addresses, which
 * the periodic EC2 pass records (a pod never gets one EC2 does not hold). A kind
 * only an older daemon wrote (detach_eni and the like) is closed: the EC2
 * pass covers it too, and leak cleanup deletes an ENI it left available.
 */
static enum store_intent_state resolve(struct ipamd_ctx *o, const struct store_intent *it, struct sync_report *rep) {
        switch (it->kind) {
        case STORE_INTENT_CREATE_ENI:
                return settle_create(o, it, rep);
        case STORE_INTENT_ATTACH_ENI:
        case STORE_INTENT_DELETE_ENI:
                return settle_by_id(o, it, rep);
        case STORE_INTENT_LEGACY:
                log_warn("closing an interrupted operation of a kind this version no longer makes",
                         LF_INT("intent", it->id), LF_STR("eni", it->eni_id));
                return STORE_INTENT_DONE;
        case STORE_INTENT_UNASSIGN_IPS:
                return it->eni_id[0] ? settle_unassign(o, it, rep) : STORE_INTENT_DONE;
        case STORE_INTENT_ASSIGN_IPS:
                break;
        case STORE_INTENT_ASSIGN_IPV6_PREFIX:
                return STORE_INTENT_OPEN;       /* IPv6 mode settles it at start by EC2's list (ipv6node.c) */
        }
        return STORE_INTENT_DONE;
}

static int resolve_open(struct ipamd_ctx *o, bool creates_only, struct sync_report *rep, struct errmsg *err) {
        struct store_intent *its = NULL;
        size_t n = 0;
        int r = store_intents_open(o->store, &its, &n);
        if (r < 0)
                return errmsg_set(err, r, "reading open intents from the store");
        for (size_t i = 0; i < n; i++) {
                if (creates_only && its[i].kind != STORE_INTENT_CREATE_ENI)
                        continue;
                enum store_intent_state st = resolve(o, &its[i], rep);
                if (st == STORE_INTENT_OPEN)
                        continue;
                r = store_intent_end(o->store, its[i].id, st, "{\"resolved_later\":true}", o->now_ms());
                if (r < 0) {
                        log_error_errno(r, "could not record a resolved intent; resolved again next time",
                                        LF_INT("intent", its[i].id));
                        continue;
                }
                rep->intents_resolved++;
                log_info("resolved an interrupted operation", LF_STR("kind", store_intent_kind_name(its[i].kind)),
                         LF_STR("eni", its[i].eni_id), LF_STR("outcome", store_intent_state_name(st)));
        }
        free(its);
        return 0;
}

int sync_intents(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err) {
        int r = resolve_open(o, false, rep, err);
        return r < 0 ? r : store_unmark_all_releasing(o->store);
}

int sync_open_creates(struct ipamd_ctx *o, struct sync_report *rep) {
        return resolve_open(o, true, rep, NULL);
}

/* --- pods ----------------------------------------------------------------------- */

struct gone {
        char container_id[STORE_CONTAINER_ID_MAX + 1];
        char ifname[STORE_IFNAME_MAX + 1];
        int64_t since;
        int64_t grace;                  /* of the evidence seen last */
        bool still;
};

struct sync_pods {
        struct gone *v;
        size_t n;
};

int sync_pods_new(sync_pods **ret) {
        *ret = calloc(1, sizeof **ret);
        return *ret ? 0 : -ENOMEM;
}

sync_pods *sync_pods_free(sync_pods *p) {
        if (p)
                free(p->v);
        free(p);
        return NULL;
}

static bool has_link(char (*links)[HOSTNET_IFNAMSIZ], size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(links[i], name) == 0)
                        return true;
        return false;
}

/*
 * Is the pod still there? Its network namespace path when recorded (a gone
 * namespace takes the veth with it), else its host veth when recorded. Only
 * a definite "no such file" in a directory that exists counts as gone: a
 * path the daemon cannot see (a container without the host's /var/run/netns
 * or /proc) or any other error counts as present. An address is never taken
 * from a pod on a guess.
 */
static bool path_gone(const char *path) {
        struct stat st;
        if (stat(path, &st) == 0 || errno != ENOENT)
                return false;
        char dir[STORE_NETNS_MAX + 1];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return false;
        *slash = '\0';
        /* /proc/<pid>/ns/net: the process is what must be gone, and /proc must be the host's. */
        if (strncmp(dir, "/proc/", 6) == 0) {
                char *ns = strstr(dir + 6, "/ns");
                if (ns)
                        *ns = '\0';
                return stat(dir, &st) < 0 && errno == ENOENT && stat("/proc/1", &st) == 0;
        }
        return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool marked_veth(const struct sync_pod_links *k, const struct store_lease *l) {
        char alias[PROTO_VETH_ALIAS_MAX];
        proto_veth_alias(l->container_id, l->ifname, alias);
        for (size_t i = 0; i < k->n_marked; i++)
                if (strcmp(k->marked[i].alias, alias) == 0)
                        return true;
        return false;
}

/*
 * Gone is: its recorded network namespace path gone (SYNC_POD_GRACE_MS), or
 * no host veth of it (SYNC_POD_VETH_GRACE_MS): neither one carrying its
 * vpc-cni alias nor, when a name was recorded (restored or taken over), one
 * by that name. The veth is what catches a pod whose DEL came while the
 * daemon was away (the plugin removed the veth itself) and whose namespace
 * path outlives it (a runtime that keeps the file, a /proc path of a live
 * process). Its grace is longer than any ADD's wiring takes. A lease that
 * recorded neither a path nor a name (an aws-node checkpoint entry without
 * its pod's metadata) cannot be judged, and a link list that could not be
 * read judges nothing: both count as present.
 */
int64_t sync_pod_gone_grace(const struct store_lease *l, const struct sync_pod_links *k) {
        if (l->netns[0] && path_gone(l->netns))
                return SYNC_POD_GRACE_MS;
        if (!l->netns[0] && !l->host_veth[0])
                return 0;
        if (!k->have_marked || marked_veth(k, l))
                return 0;
        if (l->host_veth[0] && (!k->have_names || has_link(k->names, k->n_names, l->host_veth)))
                return 0;
        return SYNC_POD_VETH_GRACE_MS;
}

static struct gone *gone_entry(sync_pods *p, const struct store_lease *l, int64_t now) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->v[i].container_id, l->container_id) == 0 && strcmp(p->v[i].ifname, l->ifname) == 0)
                        return &p->v[i];
        struct gone *nv = realloc(p->v, (p->n + 1) * sizeof *p->v);
        if (!nv)
                return NULL;
        p->v = nv;
        struct gone *g = &p->v[p->n++];
        memset(g, 0, sizeof *g);
        snprintf(g->container_id, sizeof g->container_id, "%s", l->container_id);
        snprintf(g->ifname, sizeof g->ifname, "%s", l->ifname);
        g->since = now;
        return g;
}

/* Released first, so that a late DEL on the server's thread cannot release
 * it again, with a rest no ADD can cut short (PODNET_RELEASE_REST_MS), then
 * its rules go: no pod given the address next can lose its own to this. */
static void release_gone(struct ipamd_ctx *o, const struct store_lease *l, struct sync_report *rep) {
        struct store_lease now;
        /* still the lease that was seen gone (not a new one of a reused container id) */
        if (store_lookup(o->store, l->container_id, l->ifname, &now) < 0 || strcmp(now.ip, l->ip) != 0)
                return;
        int64_t rest = (int64_t)o->cfg->pool.ip_cooldown_s * 1000;
        int r = store_release(o->store, l->container_id, l->ifname, o->now_ms(),
                              rest > PODNET_RELEASE_REST_MS ? rest : PODNET_RELEASE_REST_MS, NULL);
        if (r != 1)
                return;
        struct errmsg err = { 0 };
        r = o->net ? hostnet_remove_pod_routing(o->net, l->ip, (uint32_t)l->route_table, &err) : 0;
        if (r < 0)
                log_warn("could not remove a vanished pod's rules", LF_STR("ip", l->ip),
                         LF_STR("error", errmsg_text(&err, r)));
        rep->pods_released++;
        metrics_inc(o->metrics, METRICS_PODS_GONE_RELEASED);
        log_info("released the address of a pod that is gone", LF_STR("ip", l->ip),
                 LF_STR("container_id", l->container_id), LF_STR("pod", l->pod_name));
        if (o->pool_changed)
                o->pool_changed(o->userdata);
}

int sync_pods_run(sync_pods *p, struct ipamd_ctx *o, struct sync_report *rep) {
        struct store_lease *ls = NULL;
        size_t n = 0;
        struct sync_pod_links k = { 0 };
        int r = store_leases(o->store, &ls, &n);
        if (r < 0)
                return r;
        /* Names are needed only for leases that recorded one (restored, taken over). */
        bool need_names = false;
        for (size_t i = 0; i < n; i++)
                need_names |= ls[i].host_veth[0] != '\0';
        if (n && o->net)
                k.have_marked = hostnet_list_aliased(o->net, PROTO_VETH_ALIAS_PREFIX, &k.marked, &k.n_marked, NULL) >= 0;
        if (need_names && k.have_marked)
                k.have_names = hostnet_list_links(o->net, "", &k.names, &k.n_names, NULL) == 0;
        int64_t now = o->now_ms();
        for (size_t i = 0; i < p->n; i++)
                p->v[i].still = false;
        for (size_t i = 0; i < n; i++) {
                int64_t grace = sync_pod_gone_grace(&ls[i], &k);
                if (!grace)
                        continue;
                struct gone *g = gone_entry(p, &ls[i], now);
                if (!g)
                        continue;
                g->still = true;
                g->grace = grace;
                if (now - g->since >= grace)
                        release_gone(o, &ls[i], rep);
        }
        /* Forget entries of pods that came back or were released. */
        size_t kept = 0;
        for (size_t i = 0; i < p->n; i++)
                if (p->v[i].still && now - p->v[i].since < p->v[i].grace)
                        p->v[kept++] = p->v[i];
        p->n = kept;
        free(ls);
        free(k.names);
        free(k.marked);
        return 0;
}

/* --- the kernel as a witness ------------------------------------------------------ */

/* "vpc-cni:<ifname>:<container id>" into its parts; false if it is not one. */
bool sync_witness_alias(const char *alias, char ifname[STORE_IFNAME_MAX + 1],
                        char container_id[STORE_CONTAINER_ID_MAX + 1]) {
        size_t plen = strlen(PROTO_VETH_ALIAS_PREFIX);
        const char *rest = alias + plen, *colon = strchr(rest, ':');
        if (strncmp(alias, PROTO_VETH_ALIAS_PREFIX, plen) != 0 || !colon || colon == rest ||
            (size_t)(colon - rest) > STORE_IFNAME_MAX || !colon[1] || strlen(colon + 1) > STORE_CONTAINER_ID_MAX)
                return false;
        snprintf(ifname, STORE_IFNAME_MAX + 1, "%.*s", (int)(colon - rest), rest);
        snprintf(container_id, STORE_CONTAINER_ID_MAX + 1, "%s", colon + 1);
        return true;
}

static void witness_one(struct ipamd_ctx *o, const struct hostnet_link *l, const char *ip, struct sync_report *rep) {
        char ifname[STORE_IFNAME_MAX + 1], cid[STORE_CONTAINER_ID_MAX + 1];
        if (!sync_witness_alias(l->alias, ifname, cid))
                return;
        struct store_attachment a = { .container_id = cid, .ifname = ifname, .host_veth = l->name };
        int r = store_assign_addr(o->store, &a, ip, o->now_ms(), NULL);
        if (r == 0) {
                rep->leases_witnessed++;
                log_warn("the kernel shows a pod holding an address the store had not assigned: it is that pod's lease",
                         LF_STR("ip", ip), LF_STR("container_id", cid), LF_STR("ifname", ifname), LF_STR("veth", l->name));
        } else if (r == -EEXIST || r == -EBUSY) {
                log_error("a pod's veth routes to an address the store gives another attachment; left as it is",
                          LF_STR("ip", ip), LF_STR("container_id", cid), LF_STR("veth", l->name));
        } else if (r == -EAGAIN) {
                rep->witness_pending++;
        } else if (r == -ENOENT) {
                log_warn("a pod's veth routes to an address no ENI of the pool holds", LF_STR("ip", ip),
                         LF_STR("container_id", cid), LF_STR("veth", l->name));
        } else if (r < 0) {
                log_error_errno(r, "could not record a pod's address the kernel shows", LF_STR("ip", ip),
                                LF_STR("container_id", cid));
        }
}

int sync_kernel_witness(struct ipamd_ctx *o, struct sync_report *rep, struct errmsg *err) {
        struct hostnet_link *links = NULL;
        struct hostnet_host_route *routes = NULL;
        size_t n_links = 0, n_routes = 0;
        if (!o->net)
                return 0;
        int r = hostnet_list_aliased(o->net, PROTO_VETH_ALIAS_PREFIX, &links, &n_links, err);
        if (r >= 0 && n_links)
                r = hostnet_host_routes(o->net, &routes, &n_routes, err);
        for (size_t i = 0; r >= 0 && i < n_routes; i++)
                for (size_t j = 0; j < n_links; j++)
                        if (links[j].ifindex == routes[i].ifindex && links[j].up)
                                witness_one(o, &links[j], routes[i].ip, rep);
        free(links);
        free(routes);
        if (r >= 0 && (rep->witness_pending || rep->enis_unrecorded))
                /* Serving now would let an address a live pod holds be handed out once its ENI is
                 * recorded or set up: the caller retries the whole pass, holding ADDs meanwhile. */
                return errmsg_set(err, -EAGAIN, "the kernel's witness is incomplete: %zu pod address(es) on ENIs not set "
                                  "up yet, %zu attached ENI(s) not recorded; retrying", rep->witness_pending,
                                  rep->enis_unrecorded);
        return r < 0 ? r : 0;
}

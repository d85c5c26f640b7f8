/*
 * eniops: the EC2 mutation sequences of the pool, each bracketed by intents.
 *
 * create:  intent(create_eni, token) → CreateNetworkInterface(token, tags,
 *          addresses) → ENI and blocks in the store, state attaching →
 *          intent(attach_eni) → AttachNetworkInterface → DeleteOnTermination
 *          → (all ENIs of the batch) wait for the link with the ENI's MAC →
 *          host setup → state attached: now pods may get its addresses (those
 *          EC2's reply listed) → IMDS check (below).
 * assign:  intent → AssignPrivateIpAddresses → blocks added.
 * release: blocks marked releasing (no longer handed out) → intent →
 *          UnassignPrivateIpAddresses → blocks removed (or unmarked on error).
 * delete:  state detaching, atomically only if no pod holds an address →
 *          intent → DetachNetworkInterface → wait until available →
 *          DeleteNetworkInterface → host teardown → ENI forgotten.
 *
 * The ENIs of one batch are created and attached side by side: the first on
 * the calling thread, the next ones on helper threads (ctx helpers: each its
 * own EC2 client and store handle, so every step above keeps its intent and
 * its transaction), all taking tokens from the one shared rate limiter.
 *
 * IMDS lags EC2 by seconds, so a new ENI is not waited for there: it opens
 * once the kernel shows its link and EC2's reply gave its addresses. IMDS is
 * then a check that can only take away: once it lists the ENI, an address the
 * store holds for it that IMDS lacks is asked of EC2 again (a Describe), and
 * leaves the pool if EC2 no longer lists it either; what IMDS lists beyond
 * EC2's reply is never added.
 *
 * Every created ENI carries the tag vpc-ipam/client-token=<its ClientToken>,
 * and its create intent holds the whole request: a create whose outcome is
 * unknown (an answer lost, retries timed out, a crash) is settled by issuing
 * it again with the same token, which EC2 answers with the one ENI.
 *
 * Under prefix delegation the same sequences carry /28 prefixes: Assign and
 * Create with Ipv4PrefixCount (intent params "prefixes": count), Unassign with
 * Ipv4Prefix.N (intent params "prefixes": [cidrs]) of prefixes none of whose
 * 16 addresses is assigned, cooling or being released; the IMDS check of a
 * new ENI covers its prefixes too (macs/<mac>/ipv4-prefix).
 *
 * /28 → /32 fallback: when EC2 refuses a prefix because the subnet has no
 * free aligned /28 (InsufficientCidrBlocks: fragmentation) though it may
 * have free addresses, the same need is met with /32 secondaries — on the
 * same ENI (as many as the prefixes' addresses, at most its free slots), or
 * new ENIs created with /32s — instead of leaving pods without addresses
 * (aws-node backs off for two minutes). Prefixes are tried again after
 * ENIOPS_PREFIX_RETRY_MS; until then growth goes straight to /32s. Logged,
 * and counted (vpcipam_prefix_fallbacks_total). Prefixes that only replace
 * free /32s (the planner's `replace`) fall back to nothing: the pool has its
 * /32s, and the planner releases them once prefixes came instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "eniops.h"
#include "log.h"
#include "vtime.h"
#include "subnets.h"
#include "sync.h"

#define POLL_MS 25
#define MAX_BATCH 16
#define DETACH_WAIT_MS 60000
/* detach_and_wait: the first look after 1.5 s (a detach takes 1-2 s; aws-node
 * sleeps 2 s before its Delete), then every 2 s: each look is a Describe
 * against the account's budget, and a fleet scaling down makes hundreds. */
#define DETACH_POLL_FIRST_MS 1500
#define DETACH_POLL_MAX_MS 2000

static void sleep_ms(int ms) {
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/*
 * A mutation whose outcome EC2 did not tell for sure: a transport error or a
 * server error (it may have been applied), or a success after retries (an
 * earlier attempt may have been applied too, and Assign has no ClientToken).
 */
static bool outcome_uncertain(int r, const struct ec2_error *e) {
        /* A limit error means EC2 holds more than the store believes (e.g. libcurl re-sent
         * a request whose connection died unanswered): read it back too. */
        return e->attempts > 1 || (r < 0 && (e->http_status == 0 || e->http_status >= 500 ||
                                            strcmp(e->code, "PrivateIpAddressLimitExceeded") == 0));
}

/* Re-read the ENI so the store holds exactly what EC2 holds. */
static void settle_uncertain(struct ipamd_ctx *o, const char *eni_id, const char *what) {
        struct sync_report rep = { 0 };
        int r = sync_eni(o, eni_id, &rep);
        log_info("re-read an ENI after an uncertain EC2 answer", LF_STR("eni", eni_id), LF_STR("action", what),
                 LF_INT("blocks_added", rep.blocks_added), LF_INT("blocks_removed", rep.blocks_removed),
                 LF_INT("error", r));
        if (rep.blocks_added && o->pool_changed)
                o->pool_changed(o->userdata);
}

/* --- intents ------------------------------------------------------------------ */

static int64_t intent_begin(struct ipamd_ctx *o, enum store_intent_kind kind, const char *token, const char *eni,
                            cJSON *params) {
        char *json = params ? cJSON_PrintUnformatted(params) : NULL;
        int64_t id = -1;
        int r = store_intent_begin(o->store, kind, token, eni, json ? json : "{}", o->now_ms(), &id);
        free(json);
        cJSON_Delete(params);
        if (r < 0) {
                log_error_errno(r, "could not record an intent; not calling EC2", LF_STR("kind", store_intent_kind_name(kind)));
                return r;
        }
        return id;
}

static void intent_end(struct ipamd_ctx *o, int64_t id, enum store_intent_state st, cJSON *result) {
        char *json = result ? cJSON_PrintUnformatted(result) : NULL;
        int r = store_intent_end(o->store, id, st, json, o->now_ms());
        if (r < 0)
                log_error_errno(r, "could not record an intent's outcome; it is resolved at the next start",
                                LF_INT("intent", id));
        free(json);
        cJSON_Delete(result);
}

static cJSON *json_ips(const char *const *ips, size_t n) {
        cJSON *o = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(o, "ips");
        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(a, cJSON_CreateString(ips[i]));
        return o;
}

static cJSON *json_count(const char *key, int v) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, key, v);
        return o;
}

/* --- assign --------------------------------------------------------------------- */

/*
 * Record addresses EC2 gave an ENI as /32 blocks. The ENI's primary address
 * (as the store has it from EC2) is never one, whatever a reply lists; nor is
 * another ENI's (the store refuses it). ips is compacted to the addresses
 * recorded; returns their number.
 */
static void skipped_block(const char *eni_id, const char *ip, int r) {
        /* Real EC2 never lists these; moto and LocalStack can (primary in an Assign
         * reply, random draws of reserved or taken addresses). Skip, never pool. */
        log_warn(r == -EEXIST ? "EC2 listed an address the pool holds on another ENI; skipped"
                              : "EC2 listed an ENI primary, reserved or off-subnet address; it is never a pod address",
                 LF_STR("ip", ip), LF_STR("eni", eni_id));
}

/* The /32 blocks of ips but the ENI's primary, in one store transaction; each one's answer in res. */
static int add_batch(struct ipamd_ctx *o, const struct store_eni *se, const char **ips, size_t n, int *res) {
        char (*cidrs)[STORE_CIDR_MAX] = calloc(n + 1, sizeof *cidrs);
        const char **batch = calloc(n + 1, sizeof *batch);
        size_t *at = calloc(n + 1, sizeof *at);
        int *got = calloc(n + 1, sizeof *got);
        size_t k = 0;
        int r = cidrs && batch && at && got ? 0 : -ENOMEM;
        for (size_t i = 0; r == 0 && i < n; i++) {
                res[i] = -EADDRNOTAVAIL;
                if (strcmp(ips[i], se->primary_ip) == 0)
                        continue;
                snprintf(cidrs[k], STORE_CIDR_MAX, "%s/32", ips[i]);
                batch[k] = cidrs[k];
                at[k++] = i;
        }
        if (r == 0)
                r = store_blocks_add(o->store, se->id, batch, k, o->now_ms(), got);
        for (size_t j = 0; r == 0 && j < k; j++)
                res[at[j]] = got[j] == -EINVAL ? -EADDRNOTAVAIL : got[j];
        free(cidrs);
        free(batch);
        free(at);
        free(got);
        return r;
}

/*
 * Record addresses EC2 gave an ENI as /32 blocks, in one transaction (the
 * server's ADDs wait for the write lock once, not once per address). The
 * ENI's primary address (as the store has it from EC2) is never one,
 * whatever a reply lists; nor is another ENI's (the store refuses it). ips is
 * compacted to the addresses recorded; returns their number.
 */
static int add_blocks(struct ipamd_ctx *o, const char *eni_id, const char **ips, size_t n) {
        struct store_eni se;
        int r = store_eni_get(o->store, eni_id, &se);
        if (r < 0) {
                log_error_errno(r, "could not read the ENI EC2 assigned addresses to", LF_STR("eni", eni_id));
                return r;
        }
        int *res = calloc(n + 1, sizeof *res);
        r = res ? add_batch(o, &se, ips, n, res) : -ENOMEM;
        if (r < 0) {
                log_error_errno(r, "could not record the addresses EC2 assigned", LF_STR("eni", eni_id),
                                LF_INT("count", n));
                free(res);
                return r;
        }
        size_t added = 0;
        for (size_t i = 0; i < n; i++) {
                if (res[i] == -EADDRNOTAVAIL || res[i] == -EEXIST)
                        skipped_block(eni_id, ips[i], res[i]);
                else
                        ips[added++] = ips[i];
        }
        free(res);
        return (int)added;
}

static bool holds(char (*have)[STORE_CIDR_MAX], size_t n_have, const char *ip) {
        char cidr[STORE_CIDR_MAX];
        snprintf(cidr, sizeof cidr, "%s/32", ip);
        for (size_t i = 0; i < n_have; i++)
                if (strcmp(have[i], cidr) == 0)
                        return true;
        return false;
}

/* The ENI's secondary addresses as EC2 lists them now (into ips, n at most); -errno when it cannot tell. */
static int listed_now(struct ipamd_ctx *o, const char *eni_id, struct ec2_result **ret, const char **ips, size_t *n) {
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        int r = ctx_describe_eni(o, eni_id, &res, &e);
        if (r < 0)
                return r;
        const struct ec2_eni *eni = &res->enis[0];
        size_t k = 0;
        for (size_t i = 0; i < eni->n_private_ips && k < *n; i++)
                if (!eni->private_ips[i].primary &&
                    (!eni->primary_ip || strcmp(eni->private_ips[i].address, eni->primary_ip) != 0))
                        ips[k++] = eni->private_ips[i].address;
        *ret = res;
        *n = k;
        return 0;
}

/*
 * The addresses an Assign added, into *ret (malloc'd). A reply that lists more
 * than was asked for (moto and LocalStack list every address of the ENI,
 * primary included) is only a hint: the new addresses are then those EC2 now
 * lists that the store did not hold before. *ret_now keeps the describe's
 * strings alive.
 */
static int assigned_ips(struct ipamd_ctx *o, const char *eni_id, int count, const struct ec2_result *res,
                        struct ec2_result **ret_now, const char ***ret, size_t *ret_n) {
        char (*have)[STORE_CIDR_MAX] = NULL;
        size_t n_have = 0, n = res->n_ips + 256;
        const char **list = calloc(n, sizeof *list);
        int r = list ? store_blocks(o->store, eni_id, &have, &n_have) : -ENOMEM;
        if (r < 0) {
                free(list);
                return r;
        }
        if (res->n_ips <= (size_t)count || listed_now(o, eni_id, ret_now, list, &n) < 0) {
                if (res->n_ips > (size_t)count)
                        log_warn("could not re-read an ENI after an Assign reply listing more than asked; "
                                 "using the reply", LF_STR("eni", eni_id));
                for (n = 0; n < res->n_ips; n++)
                        list[n] = res->ips[n];
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                bool seen = holds(have, n_have, list[i]);
                for (size_t j = 0; j < k && !seen; j++)
                        seen = strcmp(list[j], list[i]) == 0;
                if (!seen)
                        list[k++] = list[i];
        }
        free(have);
        *ret = list;
        *ret_n = k;
        return 0;
}

/* An Assign failed: a subnet that ran out is backed off, not all growth (ctx_note_assign_failure). */
static void note_assign_failure(struct ipamd_ctx *o, const char *eni_id, int r, const struct ec2_error *e) {
        struct store_eni se;
        ctx_note_assign_failure(o, store_eni_get(o->store, eni_id, &se) == 0 ? se.subnet_id : NULL, r, e);
}

int eniops_assign(struct ipamd_ctx *o, const char *eni_id, int count) {
        int64_t id = intent_begin(o, STORE_INTENT_ASSIGN_IPS, NULL, eni_id, json_count("count", count));
        if (id < 0)
                return (int)id;
        struct ec2_result *res = NULL, *now = NULL;
        struct ec2_error e = { 0 };
        int r = ec2_assign_private_ips(o->ec2, eni_id, (unsigned)count, 0, &res, &e);
        if (r < 0) {
                note_assign_failure(o, eni_id, r, &e);
                if (outcome_uncertain(r, &e))
                        settle_uncertain(o, eni_id, "AssignPrivateIpAddresses");
                intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                return r;
        }
        const char **ips = NULL;
        size_t n_ips = 0;
        r = assigned_ips(o, eni_id, count, res, &now, &ips, &n_ips);
        if (r >= 0)
                r = add_blocks(o, eni_id, ips, n_ips);
        if (outcome_uncertain(0, &e))
                settle_uncertain(o, eni_id, "AssignPrivateIpAddresses");
        intent_end(o, id, r < 0 ? STORE_INTENT_FAILED : STORE_INTENT_DONE, json_ips(ips, r > 0 ? (size_t)r : 0));
        if (r > 0) {
                metrics_add(o->metrics, METRICS_IPS_ASSIGNED, (uint64_t)r);
                log_info("assigned secondary addresses", LF_STR("eni", eni_id), LF_INT("count", r),
                         LF_STR("request_id", res->request_id));
                o->reason[0] = '\0';
                if (o->pool_changed)
                        o->pool_changed(o->userdata);
        }
        free(ips);
        ec2_result_free(now);
        ec2_result_free(res);
        return r;
}

/*
 * Record /28 prefixes EC2 gave an ENI, in one store transaction as add_batch
 * does for /32s (one commit before the waiting ADDs are woken, not one per
 * prefix); returns how many were recorded.
 */
static int add_prefix_blocks(struct ipamd_ctx *o, const char *eni_id, const char *const *prefixes, size_t n) {
        if (n == 0)
                return 0;       /* a /32 create: no empty commit */
        int *res = calloc(n, sizeof *res);
        int r = res ? store_blocks_add(o->store, eni_id, prefixes, n, o->now_ms(), res) : -ENOMEM;
        if (r < 0) {
                log_error_errno(r, "could not record the prefixes EC2 assigned", LF_STR("eni", eni_id),
                                LF_INT("count", n));
                free(res);
                return r;
        }
        int added = 0;
        for (size_t i = 0; i < n; i++) {
                if (res[i] < 0)
                        log_warn("EC2 listed a prefix the pool cannot hold on this ENI; skipped",
                                 LF_STR("prefix", prefixes[i]), LF_STR("eni", eni_id), LF_INT("error", res[i]));
                else
                        added++;
        }
        free(res);
        return added;
}

static bool no_cidr_blocks(const struct ec2_error *e) {
        return strcmp(e->code, "InsufficientCidrBlocks") == 0;
}

/* No free /28: say so once per back-off, count it, and use /32s until the back-off ends. */
#define FALLBACK_NO_CIDR_BLOCKS "the subnet has no free /28 for a prefix (InsufficientCidrBlocks); assigning /32 " \
        "secondary addresses instead, prefixes again later"
#define FALLBACK_NONE_GIVEN "EC2 accepted Ipv4PrefixCount but assigned no prefix (an endpoint without prefix " \
        "delegation, such as moto or LocalStack); assigning /32 secondary addresses instead, prefixes again later"

static void start_fallback(struct ipamd_ctx *o, const char *why, const char *eni_id, int prefixes,
                           const char *request_id) {
        o->prefix_fallback_until = o->now_ms() + ENIOPS_PREFIX_RETRY_MS;
        log_warn(why, LF_STR("subnet", o->node->subnet_id),
                 LF_STR("eni", eni_id ? eni_id : "(new)"), LF_INT("prefixes", prefixes),
                 LF_INT("retry_s", ENIOPS_PREFIX_RETRY_MS / 1000), LF_STR("request_id", request_id));
}

static bool in_fallback(struct ipamd_ctx *o) {
        return o->now_ms() < o->prefix_fallback_until;
}

/* The ENI's free IPv4 slots (each holds a /32 or a /28). */
static int free_slots(struct ipamd_ctx *o, const char *eni_id) {
        char (*blocks)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        int r = store_blocks(o->store, eni_id, &blocks, &n);
        free(blocks);
        return r < 0 ? r : plan_ips_per_eni(&o->node->limits) - (int)n;
}

/* /32s for `prefixes` prefixes' worth of addresses on the ENI, as many as its slots allow. */
static int assign_fallback(struct ipamd_ctx *o, const char *eni_id, int prefixes) {
        int slots = free_slots(o, eni_id);
        int count = prefixes * PLAN_PREFIX_IPS < slots ? prefixes * PLAN_PREFIX_IPS : slots;
        if (count <= 0)
                return slots < 0 ? slots : -ENOSPC;
        int r = eniops_assign(o, eni_id, count);
        if (r > 0)
                metrics_inc(o->metrics, METRICS_PREFIX_FALLBACKS);
        return r;
}

static cJSON *json_strings(const char *key, const char *const *v, size_t n) {
        cJSON *o = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(o, key);
        for (size_t i = 0; i < n; i++)
                cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
        return o;
}

int eniops_assign_prefixes(struct ipamd_ctx *o, const char *eni_id, int count, bool fallback) {
        if (in_fallback(o))
                return fallback ? assign_fallback(o, eni_id, count) : -ENOSPC;
        int64_t id = intent_begin(o, STORE_INTENT_ASSIGN_IPS, NULL, eni_id, json_count("prefixes", count));
        if (id < 0)
                return (int)id;
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        int r = ec2_assign_private_ips(o->ec2, eni_id, 0, (unsigned)count, &res, &e);
        if (r < 0 && no_cidr_blocks(&e)) {
                intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                start_fallback(o, FALLBACK_NO_CIDR_BLOCKS, eni_id, count, e.request_id);
                return fallback ? assign_fallback(o, eni_id, count) : -ENOSPC;
        }
        if (r < 0) {
                note_assign_failure(o, eni_id, r, &e);
                if (outcome_uncertain(r, &e))
                        settle_uncertain(o, eni_id, "AssignPrivateIpAddresses");
                intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                return r;
        }
        r = add_prefix_blocks(o, eni_id, res->prefixes, res->n_prefixes);
        if (outcome_uncertain(0, &e) || res->n_prefixes != (size_t)count)
                settle_uncertain(o, eni_id, "AssignPrivateIpAddresses");
        intent_end(o, id, r < 0 ? STORE_INTENT_FAILED : STORE_INTENT_DONE,
                   json_strings("prefixes", res->prefixes, r < 0 ? 0 : res->n_prefixes));
        if (r > 0) {
                metrics_add(o->metrics, METRICS_IPS_ASSIGNED, (uint64_t)r * PLAN_PREFIX_IPS);
                log_info("assigned prefixes", LF_STR("eni", eni_id), LF_INT("count", r),
                         LF_STR("request_id", res->request_id));
                o->reason[0] = '\0';
                if (o->pool_changed)
                        o->pool_changed(o->userdata);
        }
        bool none_given = r == 0 && res->n_prefixes == 0 && count > 0;
        if (none_given)         /* settled above: the ENI as EC2 lists it is in the store */
                start_fallback(o, FALLBACK_NONE_GIVEN, eni_id, count, res->request_id);
        ec2_result_free(res);
        if (none_given && fallback)
                return assign_fallback(o, eni_id, count);
        return r;
}

/* --- create --------------------------------------------------------------------- */

struct new_eni {
        char id[STORE_ID_MAX];
        char mac[STORE_MAC_MAX];
        char primary_ip[STORE_IP_MAX];
        int device_index;
        char subnet_id[SUBNETS_ID_MAX];
        char subnet_cidr[STORE_CIDR_MAX];
        bool exhausted;               /* the create failed for want of addresses in the subnet */
        int64_t create_intent;        /* open until the ENI is attached, or discarded */
        bool linked, done, opened;
        bool imds_seen;               /* its IMDS check is over (after it opened) */
        size_t n_ips;
        bool prefixes;                /* created with Ipv4PrefixCount */
        size_t n_prefixes;
};

static void random_token(char out[33]) {
        unsigned char b[16];
        if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
                for (size_t i = 0; i < sizeof b; i++)
                        b[i] = (unsigned char)(rand() & 0xff);
        for (size_t i = 0; i < sizeof b; i++)
                snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void rfc3339_now(struct ipamd_ctx *o, char out[32]) {
        time_t t = (time_t)(o->now_ms() / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The lowest device index no ENI in the store (nor an earlier one of this batch) uses. */
static int free_device_index(struct ipamd_ctx *o, const struct new_eni *batch, size_t n_batch, int from) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        int r = store_enis(o->store, &enis, &n);
        if (r < 0)
                return r;
        for (int dev = from;; dev++) {
                bool used = dev < 64 && (o->foreign_devices >> dev) & 1;
                for (size_t i = 0; i < n; i++)
                        used |= enis[i].device_index == dev && enis[i].network_card == 0;
                for (size_t i = 0; i < n_batch; i++)
                        used |= batch[i].device_index == dev;
                if (!used) {
                        free(enis);
                        return dev;
                }
        }
}

/*
 * The whole CreateNetworkInterface request as the create intent's params, so
 * that a create whose outcome is unknown can be issued again, identical, with
 * its ClientToken (sync_create_eni). Tags that would not fit in the store's
 * JSON are left to the config ("config_tags").
 */
static char *create_params(struct ipamd_ctx *o, int count, const struct new_eni *ne, const char *token) {
        char created[32], description[96];
        rfc3339_now(o, created);
        snprintf(description, sizeof description, ENIOPS_DESCRIPTION_PREFIX "%s", o->node->instance_id);
        char *json = NULL;
        for (int with_config = 1; with_config >= 0 && !json; with_config--) {
                cJSON *p = json_count("count", ne->prefixes ? 0 : count);
                if (ne->prefixes)
                        cJSON_AddNumberToObject(p, "prefixes", count);
                cJSON_AddNumberToObject(p, "device_index", ne->device_index);
                cJSON_AddStringToObject(p, "subnet", ne->subnet_id);
                cJSON_AddStringToObject(p, "description", description);
                cJSON *g = cJSON_AddArrayToObject(p, "groups");
                /* Custom networking: the ENIConfig's groups, when it lists any (aws-node). */
                for (size_t i = 0; i < o->n_eni_groups; i++)
                        cJSON_AddItemToArray(g, cJSON_CreateString(o->eni_groups[i]));
                for (size_t i = 0; !o->n_eni_groups && i < o->node->n_security_groups; i++)
                        cJSON_AddItemToArray(g, cJSON_CreateString(o->node->security_groups[i]));
                struct ec2_tag tags[IPAMD_TAGS_MAX + 4];
                size_t n = 0;
                tags[n++] = (struct ec2_tag){ CTX_TAG_INSTANCE, o->node->instance_id };
                tags[n++] = (struct ec2_tag){ CTX_TAG_CREATED, created };
                tags[n++] = (struct ec2_tag){ CTX_TAG_TOKEN, token };
                if (o->cfg->cluster_name[0])
                        tags[n++] = (struct ec2_tag){ CTX_TAG_CLUSTER, o->cfg->cluster_name };
                for (size_t i = 0; with_config && i < o->cfg->n_tags; i++)
                        tags[n++] = (struct ec2_tag){ o->cfg->tags[i].key, o->cfg->tags[i].value };
                cJSON *t = cJSON_AddArrayToObject(p, "tags");
                for (size_t i = 0; i < n; i++) {
                        cJSON *kv = cJSON_CreateArray();
                        cJSON_AddItemToArray(kv, cJSON_CreateString(tags[i].key));
                        cJSON_AddItemToArray(kv, cJSON_CreateString(tags[i].value));
                        cJSON_AddItemToArray(t, kv);
                }
                if (!with_config)
                        cJSON_AddBoolToObject(p, "config_tags", true);
                json = cJSON_PrintUnformatted(p);
                cJSON_Delete(p);
                if (json && strlen(json) >= STORE_JSON_MAX && with_config) {
                        free(json);
                        json = NULL;
                }
        }
        return json;
}

/* Record the created ENI (attaching) and its secondary addresses in the store. */
static int record_created(struct ipamd_ctx *o, const struct ec2_eni *eni, struct new_eni *ne) {
        snprintf(ne->id, sizeof ne->id, "%s", eni->id);
        snprintf(ne->mac, sizeof ne->mac, "%s", eni->mac);
        snprintf(ne->primary_ip, sizeof ne->primary_ip, "%s", eni->primary_ip);
        struct store_eni se = { .device_index = ne->device_index, .network_card = 0,
                                .route_table = (int)hostnet_route_table(0, (unsigned)ne->device_index),
                                .state = STORE_ENI_ATTACHING, .created_ms = o->now_ms() };
        snprintf(se.id, sizeof se.id, "%s", eni->id);
        snprintf(se.mac, sizeof se.mac, "%s", eni->mac);
        snprintf(se.subnet_id, sizeof se.subnet_id, "%s", ne->subnet_id);
        snprintf(se.subnet_cidr, sizeof se.subnet_cidr, "%s", ne->subnet_cidr);
        snprintf(se.primary_ip, sizeof se.primary_ip, "%s", eni->primary_ip);
        int r = store_eni_put(o->store, &se);
        const char **ips = calloc(eni->n_private_ips + 1, sizeof *ips);
        size_t n = 0;
        for (size_t i = 0; ips && i < eni->n_private_ips; i++)
                if (!eni->private_ips[i].primary)
                        ips[n++] = eni->private_ips[i].address;
        if (r >= 0)
                r = ips ? add_blocks(o, eni->id, ips, n) : -ENOMEM;
        if (r > 0)
                ne->n_ips = (size_t)r;
        free(ips);
        if (r >= 0)
                r = add_prefix_blocks(o, eni->id, eni->prefixes, eni->n_prefixes);
        if (r > 0)
                ne->n_prefixes = (size_t)r;
        return r < 0 ? r : 0;
}

/*
 * A create whose outcome EC2 did not tell: issued again, identical, with the
 * same ClientToken, a few times; EC2 answers with the ENI the first one made,
 * or makes it once. 0 with *ret, or the last error.
 */
static int reissue_create(struct ipamd_ctx *o, const char *token, const char *params, struct ec2_result **ret,
                          struct ec2_error *e) {
        int r = -EIO;
        for (int i = 0; i < ENIOPS_CREATE_REISSUES; i++) {
                if (o->stopping && o->stopping(o->userdata))
                        break;
                sleep_ms(500 << i);
                memset(e, 0, sizeof *e);
                r = sync_create_eni(o, token, params, ret, e);
                log_info("re-issued a create whose outcome was unknown", LF_STR("client_token", token),
                         LF_INT("error", r), LF_STR("code", e->code));
                if (r >= 0 || !outcome_uncertain(r, e))
                        break;
        }
        return r;
}

/* CreateNetworkInterface, then record the ENI (attaching) and its addresses. */
static int create_one(struct ipamd_ctx *o, int count, struct new_eni *ne) {
        char token[33];
        random_token(token);
        char *params = create_params(o, count, ne, token);
        if (!params)
                return -ENOMEM;
        int64_t id = -1;
        int r = store_intent_begin(o->store, STORE_INTENT_CREATE_ENI, token, NULL, params, o->now_ms(), &id);
        if (r < 0) {
                log_error_errno(r, "could not record an intent; not calling EC2", LF_STR("kind", "create_eni"));
                free(params);
                return r;
        }
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        r = sync_create_eni(o, token, params, &res, &e);
        if (r < 0 && outcome_uncertain(r, &e))
                r = reissue_create(o, token, params, &res, &e);
        free(params);
        if (r < 0 && ne->prefixes && no_cidr_blocks(&e)) {
                intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                start_fallback(o, FALLBACK_NO_CIDR_BLOCKS, NULL, count, e.request_id);
                return -ENOSPC;         /* eniops_create_prefixes falls back to /32s */
        }
        if (r < 0) {
                ne->exhausted = ctx_note_create_failure(o, ne->subnet_id, r, &e);
                if (outcome_uncertain(r, &e))
                        /* Still unknown: the intent stays open, and the next create (or the next
                         * start) settles it by issuing it again. Never closed on a guess. */
                        log_warn("the outcome of a create is still unknown; settled by re-issuing it later",
                                 LF_STR("client_token", token));
                else
                        intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                return r;
        }
        r = record_created(o, &res->enis[0], ne);
        /* The create intent stays open until the ENI is attached: a SIGKILL before that
         * leaves it open, and the next start settles it (re-issued, then deleted). */
        ne->create_intent = id;
        log_info("created ENI", LF_STR("eni", ne->id), LF_STR("mac", ne->mac), LF_INT("addresses", ne->n_ips),
                 LF_STR("subnet", ne->subnet_id), LF_INT("prefixes", ne->n_prefixes),
                 LF_INT("device_index", ne->device_index), LF_STR("request_id", res->request_id));
        ec2_result_free(res);
        if (r < 0)
                log_error_errno(r, "could not record a created ENI; deleting it", LF_STR("eni", ne->id));
        return r; /* on failure the caller discards it */
}

/*
 * Undo a created ENI that could not be attached or recorded: nothing of it may
 * linger. If EC2 will not delete it now, its create intent stays open and the
 * next start (or leak cleanup) deletes it.
 */
static void discard_created(struct ipamd_ctx *o, struct new_eni *ne) {
        struct ec2_error e = { 0 };
        int r = ne->id[0] ? ec2_delete_eni(o->ec2, ne->id, &e) : 0;
        if (r < 0 && strcmp(e.code, "InvalidNetworkInterfaceID.NotFound") == 0)
                r = 0;
        if (r < 0)
                log_warn("could not delete an ENI that failed to attach; retried at the next start",
                         LF_STR("eni", ne->id), LF_STR("code", e.code));
        if (ne->id[0])
                (void)ctx_forget_eni(o, ne->id);
        if (r == 0 && ne->create_intent > 0)
                intent_end(o, ne->create_intent, STORE_INTENT_UNDONE, NULL);
}


/* Is the ENI attached (or attaching) to this instance? Its attachment id in ret. */
static bool attached_to_us(struct ipamd_ctx *o, const char *eni_id, char ret[80]) {
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        if (ctx_describe_eni(o, eni_id, &res, &e) < 0)
                return false;
        const struct ec2_attachment *a = &res->enis[0].attachment;
        bool ours = res->enis[0].attached && a->instance_id && strcmp(a->instance_id, o->node->instance_id) == 0 &&
                    a->id;
        if (ours)
                snprintf(ret, 80, "%s", a->id);
        ec2_result_free(res);
        return ours;
}

static int attach_one(struct ipamd_ctx *o, struct new_eni *ne) {
        cJSON *params = json_count("device_index", ne->device_index);
        int64_t id = intent_begin(o, STORE_INTENT_ATTACH_ENI, NULL, ne->id, params);
        if (id < 0)
                return (int)id;
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        int r = ec2_attach_eni(o->ec2, ne->id, o->node->instance_id, ne->device_index, 0, &res, &e);
        char attachment[80] = "";
        if (r >= 0)
                snprintf(attachment, sizeof attachment, "%s", res->attachment_id);
        else if (attached_to_us(o, ne->id, attachment))
                r = 0; /* an earlier attempt went through and only its answer was lost */
        ec2_result_free(res);
        if (r < 0) {
                ctx_note_failure(o, "AttachNetworkInterface", r, &e);
                intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                return r;
        }
        struct ec2_error e2 = { 0 };
        int r2 = ec2_set_delete_on_termination(o->ec2, ne->id, attachment, true, &e2);
        if (r2 < 0)
                log_warn("could not set DeleteOnTermination; the leak cleanup covers this ENI",
                         LF_STR("eni", ne->id), LF_STR("code", e2.code));
        log_debug("attached ENI", LF_STR("eni", ne->id), LF_INT("device_index", ne->device_index),
                  LF_STR("attachment", attachment));
        cJSON *result = cJSON_CreateObject();
        cJSON_AddStringToObject(result, "attachment", attachment);
        intent_end(o, id, STORE_INTENT_DONE, result);
        cJSON *created = cJSON_CreateObject();
        cJSON_AddStringToObject(created, "eni", ne->id);
        intent_end(o, ne->create_intent, STORE_INTENT_DONE, created);
        return 0;
}

/* Does IMDS list this block (a.b.c.d/32 among the addresses, or a prefix)? */
static bool imds_lists(const struct imds_eni *ie, const char *cidr) {
        char ip[STORE_CIDR_MAX];
        snprintf(ip, sizeof ip, "%s", cidr);
        char *slash = strchr(ip, '/');
        unsigned len = slash ? (unsigned)atoi(slash + 1) : 32;
        if (slash)
                *slash = '\0';
        struct in_addr a;
        if (inet_pton(AF_INET, ip, &a) != 1)
                return true;            /* not ours to judge */
        for (size_t i = 0; len == 32 && i < ie->n_local_ipv4s; i++)
                if (ie->local_ipv4s[i].s_addr == a.s_addr)
                        return true;
        for (size_t i = 0; len != 32 && i < ie->n_prefixes; i++)
                if (ie->prefixes[i].addr.s_addr == a.s_addr && ie->prefixes[i].len == len)
                        return true;
        return false;
}

/* How many of the blocks the store holds for the ENI IMDS does not list. */
static size_t imds_lacks(struct ipamd_ctx *o, const struct new_eni *ne, const struct imds_eni *ie) {
        char (*have)[STORE_CIDR_MAX] = NULL;
        size_t n = 0, lacking = 0;
        if (store_blocks(o->store, ne->id, &have, &n) < 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                lacking += !imds_lists(ie, have[i]);
        free(have);
        return lacking;
}

/* Does EC2's view of the ENI list this block? */
static bool ec2_lists(const struct ec2_eni *e, const char *cidr) {
        char ip[STORE_CIDR_MAX];
        snprintf(ip, sizeof ip, "%s", cidr);
        char *slash = strchr(ip, '/');
        bool single = !slash || strcmp(slash, "/32") == 0;
        if (slash)
                *slash = '\0';
        for (size_t i = 0; single && i < e->n_private_ips; i++)
                if (strcmp(e->private_ips[i].address, ip) == 0)
                        return true;
        for (size_t i = 0; !single && i < e->n_prefixes; i++)
                if (strcmp(e->prefixes[i], cidr) == 0)
                        return true;
        return false;
}

/*
 * The blocks of a new ENI that IMDS lacks and EC2, asked again, no longer
 * lists either leave the pool (from a pod too, as a sync pass does): two
 * sources agree, so this does not wait out EC2's eventual consistency as
 * one Describe's word must. Their number.
 */
static size_t drop_gone(struct ipamd_ctx *o, const struct new_eni *ne, const struct imds_eni *ie) {
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        char (*have)[STORE_CIDR_MAX] = NULL;
        size_t n = 0, dropped = 0;
        if (ctx_describe_eni(o, ne->id, &res, &e) < 0)
                return 0;               /* gone, or EC2 silent: the next pass settles it */
        if (store_blocks(o->store, ne->id, &have, &n) < 0)
                n = 0;
        for (size_t i = 0; i < n; i++) {
                size_t lost = 0;
                if (imds_lists(ie, have[i]) || ec2_lists(&res->enis[0], have[i]) ||
                    store_block_remove(o->store, have[i], true, &lost) < 0)
                        continue;
                dropped++;
                log_warn("EC2 no longer lists an address of a new ENI, nor does IMDS; it leaves the pool",
                         LF_STR("eni", ne->id), LF_STR("block", have[i]), LF_INT("pods_lost", lost));
        }
        free(have);
        ec2_result_free(res);
        return dropped;
}

/*
 * The IMDS check of an opened ENI (see the top); true once it is over. Until
 * IMDS lists the ENI there is nothing to compare (bounded by
 * ENIOPS_IMDS_WAIT_MS); a block IMDS then lacks is asked of EC2 again.
 */
static bool imds_check(struct ipamd_ctx *o, struct new_eni *ne, int64_t waited) {
        struct imds_eni *ie = NULL;
        if (!o->imds)
                return true;
        if (imds_eni(o->imds, ne->mac, &ie, NULL) < 0) {
                if (waited < ENIOPS_IMDS_WAIT_MS)
                        return false;
                log_warn("IMDS does not list the new ENI yet; keeping EC2's answer", LF_STR("eni", ne->id),
                         LF_INT("waited_ms", waited));
                return true;
        }
        size_t lacking = imds_lacks(o, ne, ie);
        size_t dropped = lacking ? drop_gone(o, ne, ie) : 0;
        imds_eni_free(ie);
        if (lacking)
                log_info("checked a new ENI against IMDS", LF_STR("eni", ne->id), LF_INT("imds_lacks", lacking),
                         LF_INT("dropped", dropped));
        return true;
}

static int setup_link(struct ipamd_ctx *o, struct new_eni *ne) {
        if (!o->net)
                return 0;
        struct hostnet_eni he = { .mac = ne->mac, .device_index = (unsigned)ne->device_index,
                                  .route_table = hostnet_route_table(0, (unsigned)ne->device_index),
                                  .primary_ip = ne->primary_ip, .subnet_cidr = ne->subnet_cidr,
                                  .mtu = (unsigned)o->cfg->eni_mtu };
        struct errmsg err = { 0 };
        int r = hostnet_setup_eni(o->net, &he, &err);
        if (r < 0)
                log_error_errno(r, "could not set up the ENI's link", LF_STR("eni", ne->id), LF_STR("detail", err.text));
        return r;
}

static bool link_present(struct ipamd_ctx *o, const struct new_eni *ne) {
        int ifindex;
        char name[HOSTNET_IFNAMSIZ];
        return !o->net || hostnet_find_link_by_mac(o->net, ne->mac, &ifindex, name, NULL) == 0;
}

enum poll_state { NEW_ENI_WAITING, NEW_ENI_READY, NEW_ENI_NO_LINK };

/* One look at a new ENI: is its link there, within its bound? (Its addresses are EC2's reply's.) */
static enum poll_state poll_new_eni(struct ipamd_ctx *o, struct new_eni *ne, int64_t waited) {
        ne->linked = ne->linked || link_present(o, ne);
        if (!ne->linked && waited >= ENIOPS_LINK_WAIT_MS) {
                log_error("the attached ENI's link never appeared", LF_STR("eni", ne->id),
                          LF_STR("mac", ne->mac), LF_INT("waited_ms", waited));
                return NEW_ENI_NO_LINK;
        }
        return ne->linked ? NEW_ENI_READY : NEW_ENI_WAITING;
}

/* Set up a ready ENI's link and open it to pods. */
static int open_new_eni(struct ipamd_ctx *o, struct new_eni *ne, int64_t start) {
        int r = setup_link(o, ne);
        if (r >= 0)
                r = store_eni_set_state(o->store, ne->id, STORE_ENI_ATTACHED);
        if (r < 0)
                return r;
        metrics_inc(o->metrics, METRICS_ENIS_CREATED);
        metrics_add(o->metrics, METRICS_IPS_ASSIGNED, ne->n_ips + PLAN_PREFIX_IPS * ne->n_prefixes);
        log_info("ENI ready for pods", LF_STR("eni", ne->id), LF_INT("device_index", ne->device_index),
                 LF_INT("addresses", ne->n_ips), LF_INT("prefixes", ne->n_prefixes),
                 LF_INT("wait_ms", vtime_mono_ms() - start));
        if (o->pool_changed)
                o->pool_changed(o->userdata);
        return 0;
}

/* Poll every ENI of the batch until its link is there, open it, then check it against IMDS. */
static int wait_and_open(struct ipamd_ctx *o, struct new_eni *batch, size_t n) {
        int64_t start = vtime_mono_ms();
        int opened = 0;
        for (size_t left = n; left > 0;) {
                int64_t waited = vtime_mono_ms() - start;
                for (size_t i = 0; i < n; i++) {
                        struct new_eni *ne = &batch[i];
                        if (ne->opened && !ne->imds_seen && (ne->imds_seen = imds_check(o, ne, waited)))
                                left--;
                        enum poll_state st = ne->done ? NEW_ENI_WAITING : poll_new_eni(o, ne, waited);
                        if (st == NEW_ENI_WAITING)
                                continue;
                        ne->done = true;
                        ne->opened = st == NEW_ENI_READY && open_new_eni(o, ne, start) == 0;
                        opened += ne->opened;
                        left -= !ne->opened;    /* an opened one still has its IMDS check */
                }
                if (left > 0 && o->stopping && o->stopping(o->userdata))
                        break; /* shutting down: the ENIs stay attaching; the next start opens them */
                if (left > 0)
                        sleep_ms(POLL_MS);
        }
        return opened;
}

/*
 * Create in the best subnet that takes it (ctx_subnet_choices): one that ran
 * out is backed off and the next one tried, as aws-node tries its candidates
 * in order. A failed create leaves nothing behind.
 */
static int create_in_a_subnet(struct ipamd_ctx *o, int count, struct new_eni *ne) {
        struct ctx_subnet choices[SUBNETS_MAX];
        size_t n = ctx_subnet_choices(o, choices, SUBNETS_MAX);
        if (n == 0) {
                /* Asked again after a back-off: exhaustion ends, and tags may change. */
                int64_t now = o->now_ms();
                /* Custom networking said why (o->cn_reason), and may be fixed any moment. */
                bool cn = o->cfg->custom_networking;
                int64_t wait = cn ? CTX_CUSTOMNET_RETRY_MS : CTX_SUBNET_BACKOFF_MS;
                if (!cn && (!o->reason[0] || now >= o->grow_blocked_until))
                        snprintf(o->reason, sizeof o->reason, "no subnet may take a new ENI (every candidate is "
                                 "exhausted, tagged " SUBNETS_TAG_CNI "=0 or another cluster's)");
                if (o->grow_blocked_until < now + wait)
                        o->grow_blocked_until = now + wait;
                return -ENOSPC;
        }
        int r = -ENOSPC;
        for (size_t i = 0; i < n; i++) {
                snprintf(ne->subnet_id, sizeof ne->subnet_id, "%s", choices[i].id);
                snprintf(ne->subnet_cidr, sizeof ne->subnet_cidr, "%s", choices[i].cidr);
                ne->exhausted = false;
                r = create_one(o, count, ne);
                if (r >= 0)
                        return r;
                if (ne->id[0])
                        discard_created(o, ne);
                if (!ne->exhausted)
                        return r;
                ne->id[0] = '\0';
        }
        return r;
}

/* Create and attach one ENI; one that fails leaves nothing behind. */
static int create_and_attach(struct ipamd_ctx *o, int count, struct new_eni *ne) {
        int r = create_in_a_subnet(o, count, ne);
        if (r >= 0 && (r = attach_one(o, ne)) < 0)
                discard_created(o, ne);
        return r;
}

/* --- the ENIs of a batch side by side ---------------------------------------------- */

struct side_job {
        struct ipamd_ctx o;             /* the caller's, with a helper's handles */
        struct new_eni *ne;
        int count, r;
        pthread_t thread;
        bool running;
};

static void *side_job_run(void *arg) {
        struct side_job *j = arg;
        j->r = create_and_attach(&j->o, j->count, j->ne);
        return NULL;
}

/* What a helper's failure taught (why, back-offs) into the caller's context. */
static void side_job_merge(struct ipamd_ctx *o, const struct side_job *j) {
        if (j->r >= 0)
                return;
        if (j->o.reason[0])
                snprintf(o->reason, sizeof o->reason, "%s", j->o.reason);
        if (j->o.grow_blocked_until > o->grow_blocked_until)
                o->grow_blocked_until = j->o.grow_blocked_until;
        if (j->o.prefix_fallback_until > o->prefix_fallback_until)
                o->prefix_fallback_until = j->o.prefix_fallback_until;
        for (size_t i = 0; i < SUBNETS_MAX; i++) {
                const char *id = j->o.backoff.slot[i].id;
                int64_t until = j->o.backoff.slot[i].until_ms;
                if (id[0] && !subnets_backoff_active(&o->backoff, id, until - 1))
                        subnets_backoff_set(&o->backoff, id, until);
        }
}

/* The number of ENIs of a batch of n that can be made side by side (the caller's thread and its helpers). */
static size_t side_by_side(const struct ipamd_ctx *o, size_t n) {
        size_t k = 1;
        for (size_t i = 0; i < CTX_HELPERS && o->helpers[i].ec2 && o->helpers[i].store; i++)
                k++;
        return n < k ? n : k;
}

/*
 * Create and attach batch[0..n) (device indexes chosen): batch[0] on this
 * thread, the others on helpers. Each ENI's steps are the sequential ones,
 * with their intents, through that thread's own handles. Returns the last
 * failure, or 0; batch[i].done marks a failed one.
 */
static int create_side_by_side(struct ipamd_ctx *o, struct new_eni *batch, const int *counts, size_t n) {
        struct side_job jobs[CTX_HELPERS] = { 0 };
        if (n > 1 && o->cfg->subnet_discovery && !o->cfg->custom_networking) {
                /* Discovery asked once, here: the helpers' copies of o reuse its answer. */
                struct ctx_subnet warm[SUBNETS_MAX];
                (void)ctx_subnet_choices(o, warm, SUBNETS_MAX);
        }
        for (size_t i = 1; i < n; i++) {
                struct side_job *j = &jobs[i - 1];
                j->o = *o;
                j->o.ec2 = o->helpers[i - 1].ec2;
                j->o.store = o->helpers[i - 1].store;
                j->o.imds = NULL;       /* single-threaded handles the steps never need */
                j->o.net = NULL;
                j->ne = &batch[i];
                j->count = counts[i];
                j->running = pthread_create(&j->thread, NULL, side_job_run, j) == 0;
                if (!j->running)
                        side_job_run(j);        /* no thread: on this one, first */
        }
        int r = create_and_attach(o, counts[0], &batch[0]), last = r < 0 ? r : 0;
        batch[0].done = r < 0;
        for (size_t i = 1; i < n; i++) {
                struct side_job *j = &jobs[i - 1];
                if (j->running)
                        pthread_join(j->thread, NULL);
                side_job_merge(o, j);
                batch[i].done = j->r < 0;
                last = j->r < 0 ? j->r : last;
        }
        return last;
}

/*
 * The first ENIs of the batch side by side, each at its own free device
 * index; the ones made are moved to the front. Their number, or (none made)
 * the failure.
 */
static int create_first(struct ipamd_ctx *o, struct new_eni *batch, const int *counts, size_t n, bool prefixes) {
        size_t k = side_by_side(o, n);
        for (size_t i = 0; i < k; i++) {
                memset(&batch[i], 0, sizeof batch[i]);
                batch[i].prefixes = prefixes;
                batch[i].device_index = free_device_index(o, batch, i, 1);
                if (batch[i].device_index < 0)
                        return batch[i].device_index;
        }
        int r = create_side_by_side(o, batch, counts, k);
        size_t made = 0;
        for (size_t i = 0; i < k; i++)
                if (!batch[i].done) {
                        if (made != i)
                                batch[made] = batch[i];
                        made++;
                }
        return made > 0 ? (int)made : r < 0 ? r : -EIO;
}

static int create_enis(struct ipamd_ctx *o, const int *counts, size_t n, bool prefixes) {
        struct new_eni batch[MAX_BATCH];
        size_t made = 0;
        int r = 0;
        if (n > MAX_BATCH)
                n = MAX_BATCH;
        /* A create of an earlier batch whose outcome stayed unknown is settled first. */
        struct sync_report rep = { 0 };
        (void)sync_open_creates(o, &rep);
        size_t first = side_by_side(o, n);
        if (first > 1) {
                r = create_first(o, batch, counts, n, prefixes);
                if (r <= 0)
                        return r < 0 ? r : -EIO;
                made = (size_t)r;
                r = 0;
                if (made < first)
                        n = 0;          /* one failed: as one by one, the rest waits for the next pass */
        } else {
                first = 0;
        }
        for (size_t i = first; i < n; i++) {
                struct new_eni *ne = &batch[made];
                memset(ne, 0, sizeof *ne);
                ne->prefixes = prefixes;
                ne->device_index = free_device_index(o, batch, made, 1);
                if (ne->device_index < 0) {
                        r = ne->device_index;
                        break;          /* those made so far are still opened below */
                }
                r = create_and_attach(o, counts[i], ne);
                if (r < 0)
                        break;
                made++;
        }
        if (made == 0)
                return r < 0 ? r : -EIO;
        o->reason[0] = '\0';
        int opened = wait_and_open(o, batch, made);
        return opened > 0 ? opened : -ETIMEDOUT;
}

int eniops_create(struct ipamd_ctx *o, const int *counts, size_t n) {
        return create_enis(o, counts, n, false);
}

/* New ENIs with /32s for the prefixes' worth of addresses (up to a full ENI each). */
static int create_fallback(struct ipamd_ctx *o, const int *counts, size_t n) {
        int ips[MAX_BATCH];
        int per_eni = plan_ips_per_eni(&o->node->limits);
        n = n > MAX_BATCH ? MAX_BATCH : n;
        for (size_t i = 0; i < n; i++)
                ips[i] = counts[i] * PLAN_PREFIX_IPS < per_eni ? counts[i] * PLAN_PREFIX_IPS : per_eni;
        int r = create_enis(o, ips, n, false);
        if (r > 0)
                metrics_inc(o->metrics, METRICS_PREFIX_FALLBACKS);
        return r;
}

int eniops_create_prefixes(struct ipamd_ctx *o, const int *counts, size_t n, bool fallback) {
        if (in_fallback(o))
                return fallback ? create_fallback(o, counts, n) : -ENOSPC;
        int r = create_enis(o, counts, n, true);
        return r == -ENOSPC && fallback ? create_fallback(o, counts, n) : r;
}

/* --- release --------------------------------------------------------------------- */

/* Mark up to count free blocks of the ENI releasing; ips[] gets their addresses, as EC2 wants them. */
static int mark_releasing(struct ipamd_ctx *o, const char *eni_id, size_t count, char (*cidrs)[STORE_CIDR_MAX],
                          const char **ips, size_t *ret_n) {
        int r = store_blocks_mark_releasing(o->store, eni_id, count, o->now_ms(), cidrs, ret_n);
        for (size_t i = 0; r >= 0 && i < *ret_n; i++) {
                *strchr(cidrs[i], '/') = '\0';
                ips[i] = cidrs[i];
        }
        return r;
}

/* The store after an unassign: its blocks are gone (r >= 0), or free again (r < 0). */
static void record_unassign(struct ipamd_ctx *o, const char *eni_id, const char *const *ips, size_t n, int r) {
        for (size_t i = 0; i < n; i++) {
                char cidr[STORE_CIDR_MAX];
                snprintf(cidr, sizeof cidr, "%s/32", ips[i]);
                int sr = r < 0 ? store_block_unmark_releasing(o->store, cidr)
                               : store_block_remove(o->store, cidr, false, NULL);
                if (sr < 0 && sr != -ENOENT)
                        log_error_errno(sr, "could not record the outcome of a release; the next EC2 pass repairs it",
                                        LF_STR("block", cidr), LF_STR("eni", eni_id));
        }
}

/* UnassignPrivateIpAddresses for addresses marked releasing, bracketed by an intent. */
static int unassign(struct ipamd_ctx *o, const char *eni_id, const char **ips, size_t n) {
        int64_t id = intent_begin(o, STORE_INTENT_UNASSIGN_IPS, NULL, eni_id, json_ips(ips, n));
        if (id < 0) {
                record_unassign(o, eni_id, ips, n, (int)id); /* EC2 never called: free again */
                return (int)id;
        }
        struct ec2_error e = { 0 };
        int r = ec2_unassign_private_ips(o->ec2, eni_id, ips, n, false, &e);
        /* Uncertain: EC2 may still apply the call later, so no address of it is handed out
         * again on a guess (a describe now may predate it): they leave the store, and one
         * EC2 still holds after all is added back by a later EC2 pass (as settle_unassign). */
        record_unassign(o, eni_id, ips, n, outcome_uncertain(r, &e) ? 0 : r);
        if (r < 0)
                ctx_note_failure(o, "UnassignPrivateIpAddresses", r, &e);
        else
                metrics_add(o->metrics, METRICS_IPS_RELEASED, n);
        intent_end(o, id, r < 0 ? STORE_INTENT_FAILED : STORE_INTENT_DONE, NULL);
        if (r >= 0)
                log_info("returned addresses to EC2", LF_STR("eni", eni_id), LF_INT("count", n));
        return r;
}

int eniops_release(struct ipamd_ctx *o, const char *eni_id, int count) {
        char (*cidrs)[STORE_CIDR_MAX] = calloc((size_t)count, sizeof *cidrs);
        const char **ips = calloc((size_t)count, sizeof *ips);
        size_t n = 0;
        int r = cidrs && ips ? mark_releasing(o, eni_id, (size_t)count, cidrs, ips, &n) : -ENOMEM;
        if (r >= 0 && n > 0)
                r = unassign(o, eni_id, ips, n);
        free(cidrs);
        free(ips);
        return r < 0 ? r : (int)n;
}

/*
 * Empty prefixes back to EC2: marked releasing in one store transaction (only
 * those none of whose 16 addresses is assigned, cooling or releasing), then
 * UnassignPrivateIpAddresses Ipv4Prefix.N under an intent; removed from the
 * store on success, free again on a definite refusal, re-read when unsure.
 */
int eniops_release_prefixes(struct ipamd_ctx *o, const char *eni_id, int count) {
        char (*cidrs)[STORE_CIDR_MAX] = calloc((size_t)count, sizeof *cidrs);
        const char **items = calloc((size_t)count, sizeof *items);
        size_t n = 0;
        int r = cidrs && items ? store_prefixes_mark_releasing(o->store, eni_id, (size_t)count, o->now_ms(), cidrs, &n)
                               : -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++)
                items[i] = cidrs[i];
        int64_t id = r >= 0 && n > 0 ? intent_begin(o, STORE_INTENT_UNASSIGN_IPS, NULL, eni_id,
                                                    json_strings("prefixes", items, n))
                                     : 0;
        if (id > 0) {
                struct ec2_error e = { 0 };
                r = ec2_unassign_private_ips(o->ec2, eni_id, items, n, true, &e);
                if (outcome_uncertain(r, &e))
                        settle_uncertain(o, eni_id, "UnassignPrivateIpAddresses");
                if (r < 0)
                        ctx_note_failure(o, "UnassignPrivateIpAddresses", r, &e);
                intent_end(o, id, r < 0 ? STORE_INTENT_FAILED : STORE_INTENT_DONE, NULL);
        } else if (id < 0)
                r = (int)id;    /* EC2 never called: the prefixes are free again below */
        for (size_t i = 0; i < n; i++) {
                int sr = r < 0 ? store_block_unmark_releasing(o->store, cidrs[i])
                               : store_block_remove(o->store, cidrs[i], false, NULL);
                if (sr < 0 && sr != -ENOENT)
                        log_error_errno(sr, "could not record the outcome of a release; the next EC2 pass repairs it",
                                        LF_STR("block", cidrs[i]), LF_STR("eni", eni_id));
        }
        if (r >= 0 && n > 0) {
                metrics_add(o->metrics, METRICS_IPS_RELEASED, n * PLAN_PREFIX_IPS);
                log_info("returned prefixes to EC2", LF_STR("eni", eni_id), LF_INT("count", n));
        }
        free(cidrs);
        free(items);
        return r < 0 ? r : (int)n;
}

/* --- delete ------------------------------------------------------------------------ */

/* Detach (when attached) and wait until EC2 reports it available. */
/*
 * Polled with a back-off from 0.5 s to 2 s: a detach takes EC2 seconds, and
 * polling every 200 ms cost about nine DescribeNetworkInterfaces per ENI,
 * which throttled a whole fleet shrinking at once (scripts/bench-fleet).
 */
static int detach_and_wait(struct ipamd_ctx *o, const char *eni_id) {
        int64_t start = vtime_mono_ms();
        bool asked = false;
        int wait_ms = DETACH_POLL_FIRST_MS;
        for (;;) {
                struct ec2_result *res = NULL;
                struct ec2_error e = { 0 };
                int r = ctx_describe_eni(o, eni_id, &res, &e);
                if (r < 0)
                        return r;
                bool available = strcmp(res->enis[0].status, "available") == 0;
                char attachment[80];
                snprintf(attachment, sizeof attachment, "%s", res->enis[0].attachment.id ? res->enis[0].attachment.id : "");
                ec2_result_free(res);
                if (available)
                        return 0;
                if (!asked && !attachment[0])
                        asked = true; /* detaching or detached already: only wait */
                if (!asked && attachment[0]) {
                        r = ec2_detach_eni(o->ec2, attachment, false, &e);
                        if (r < 0 && strcmp(e.code, "InvalidAttachmentID.NotFound") != 0) {
                                ctx_note_failure(o, "DetachNetworkInterface", r, &e);
                                return r;
                        }
                        asked = true;
                }
                if (vtime_mono_ms() - start > DETACH_WAIT_MS || (o->stopping && o->stopping(o->userdata)))
                        return asked ? -EINPROGRESS : -ETIMEDOUT;
                sleep_ms(wait_ms);
                wait_ms = wait_ms * 2 < DETACH_POLL_MAX_MS ? wait_ms * 2 : DETACH_POLL_MAX_MS;
        }
}

static void teardown_link(struct ipamd_ctx *o, const struct store_eni *se) {
        if (!o->net)
                return;
        struct hostnet_eni he = { .mac = se->mac, .device_index = (unsigned)se->device_index,
                                  .network_card = (unsigned)se->network_card, .route_table = (uint32_t)se->route_table,
                                  .primary_ip = se->primary_ip, .subnet_cidr = se->subnet_cidr };
        struct errmsg err = { 0 };
        if (hostnet_teardown_eni(o->net, &he, &err) < 0)
                log_warn("could not remove the ENI's rule and routes", LF_STR("eni", se->id), LF_STR("detail", err.text));
}

/*
 * The second half of a delete: detach (if still attached), wait until EC2
 * reports the ENI available, delete it, remove its rule and routes, forget it.
 * The ENI is `detaching` in the store throughout, so nothing is handed out from
 * it; when this fails after the detach was asked, it stays so and
 * eniops_finish_detaching() carries on later — it never goes back to serving
 * pods from an ENI EC2 may already have detached.
 */
static int finish_delete(struct ipamd_ctx *o, const struct store_eni *se) {
        int64_t id = intent_begin(o, STORE_INTENT_DELETE_ENI, NULL, se->id, NULL);
        if (id < 0)
                return (int)id;
        int r = detach_and_wait(o, se->id);
        if (r == 0) {
                struct ec2_error e = { 0 };
                r = ec2_delete_eni(o->ec2, se->id, &e);
                if (r < 0 && strcmp(e.code, "InvalidNetworkInterfaceID.NotFound") == 0)
                        r = 0;
                if (r < 0)
                        ctx_note_failure(o, "DeleteNetworkInterface", r, &e);
        }
        if (r == -ENOENT)
                r = 0; /* already gone */
        if (r < 0) {
                intent_end(o, id, STORE_INTENT_FAILED, json_count("errno", r));
                return r;
        }
        teardown_link(o, se);
        (void)ctx_forget_eni(o, se->id);
        intent_end(o, id, STORE_INTENT_DONE, NULL);
        metrics_inc(o->metrics, METRICS_ENIS_DELETED);
        log_info("deleted ENI", LF_STR("eni", se->id), LF_INT("device_index", se->device_index));
        return 0;
}

int eniops_delete(struct ipamd_ctx *o, const char *eni_id) {
        struct store_eni se;
        int r = store_eni_get(o->store, eni_id, &se);
        if (r < 0)
                return r;
        r = store_eni_begin_detach(o->store, eni_id, o->now_ms());
        if (r < 0)
                return r; /* -EBUSY: a pod got one of its addresses since the plan */
        r = finish_delete(o, &se);
        if (r < 0)
                log_warn("ENI deletion not finished; it stays detaching and is retried",
                         LF_STR("eni", eni_id), LF_INT("error", r));
        return r;
}

int eniops_finish_detaching(struct ipamd_ctx *o) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        int r = store_enis(o->store, &enis, &n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (enis[i].state == STORE_ENI_DETACHING)
                        finish_delete(o, &enis[i]);
        free(enis);
        return r;
}

/* --- leaked ENIs -------------------------------------------------------------------- */

static bool leaked_long_enough(struct ipamd_ctx *o, const struct ec2_eni *e) {
        const char *created = ctx_eni_tag(e, CTX_TAG_CREATED);
        struct tm tm = { 0 };
        if (!created || !strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm))
                return false;
        return o->now_ms() / 1000 - (int64_t)timegm(&tm) > 5 * 60;
}

static bool has_prefix(const char *s, const char *prefix) {
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Delete an available ENI a node made (by its description: vpc-ipam's, or
 * aws-node's on a node taken over) long enough ago: 1 when deleted. */
static int delete_if_leaked(struct ipamd_ctx *o, const struct ec2_eni *eni) {
        if (!(has_prefix(eni->description, ENIOPS_DESCRIPTION_PREFIX) ||
              has_prefix(eni->description, CTX_AWSNODE_DESCRIPTION_PREFIX)) ||
            !leaked_long_enough(o, eni))
                return 0;
        struct ec2_error e = { 0 };
        if (ec2_delete_eni(o->ec2, eni->id, &e) < 0) {
                log_warn("could not delete a leaked ENI; retried at the next cleanup", LF_STR("eni", eni->id),
                         LF_STR("code", e.code), LF_STR("request_id", e.request_id));
                return 0;
        }
        metrics_inc(o->metrics, METRICS_LEAKED_ENIS_DELETED);
        log_info("deleted a leaked ENI", LF_STR("eni", eni->id), LF_STR("description", eni->description));
        (void)ctx_forget_eni(o, eni->id);
        return 1;
}

/* Every page of available ENIs matching filters; the leaked ones deleted. */
static int leak_scan(struct ipamd_ctx *o, const struct ec2_filter *filters, size_t n_filters, size_t *deleted) {
        char token[1024] = "";
        do {
                struct ec2_result *res = NULL;
                struct ec2_error e = { 0 };
                int r = ec2_describe_enis_page(o->ec2, filters, n_filters, 100, token[0] ? token : NULL, &res, &e);
                if (r < 0) {
                        ctx_note_failure(o, "DescribeNetworkInterfaces", r, &e);
                        return r;
                }
                for (size_t i = 0; i < res->n_enis; i++)
                        *deleted += (size_t)delete_if_leaked(o, &res->enis[i]);
                snprintf(token, sizeof token, "%s", res->next_token ? res->next_token : "");
                ec2_result_free(res);
        } while (token[0]);
        return 0;
}

/*
 * Two scans, as aws-node scopes its own: the ENIs tagged with this
 * instance's id; and, with CLUSTER_NAME, those of the cluster tagged with
 * any instance's id — the ones terminated nodes left behind (aws-node
 * filters by the cluster tag too; without it, it would reach every cluster
 * in the VPC, so vpc-ipam does not scan beyond this instance then).
 */
int eniops_leak_cleanup(struct ipamd_ctx *o, size_t *ret_deleted) {
        const char *inst[] = { o->node->instance_id }, *avail[] = { "available" };
        const char *cluster[] = { o->cfg->cluster_name }, *inst_key[] = { CTX_TAG_INSTANCE };
        char tag_filter[64], cluster_filter[64];
        snprintf(tag_filter, sizeof tag_filter, "tag:%s", CTX_TAG_INSTANCE);
        snprintf(cluster_filter, sizeof cluster_filter, "tag:%s", CTX_TAG_CLUSTER);
        struct ec2_filter mine[] = { { tag_filter, inst, 1 }, { "status", avail, 1 } };
        struct ec2_filter cluster_wide[] = { { cluster_filter, cluster, 1 }, { "tag-key", inst_key, 1 },
                                             { "status", avail, 1 } };
        size_t deleted = 0;
        int r = leak_scan(o, mine, 2, &deleted);
        if (r >= 0 && o->cfg->cluster_name[0])
                r = leak_scan(o, cluster_wide, 3, &deleted);
        if (r >= 0 && ret_deleted)
                *ret_deleted = deleted;
        return r < 0 ? r : 0;
}

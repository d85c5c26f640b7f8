/*
 * ipamd-ctx: the context that vpc-ipamd's EC2-facing modules share (sync.c,
 * eniops.c, the reconciler): the borrowed handles, the node, the clock and
 * callbacks, and why growing failed last. It also holds the few helpers both
 * sync.c and eniops.c need, so that dependencies run one way:
 * ipamd-ctx <- sync <- eniops <- reconciler.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ipamd-ctx.h"
#include "log.h"
#include "subnets.h"

static bool is_subnet_exhaustion(const char *code) {
        return strcmp(code, "InsufficientFreeAddressesInSubnet") == 0 ||
               strcmp(code, "InsufficientCidrBlocks") == 0;
}

void ctx_note_failure(struct ipamd_ctx *o, const char *what, int r, const struct ec2_error *e) {
        const char *code = e && e->code[0] ? e->code : "";
        if (is_subnet_exhaustion(code)) {
                snprintf(o->reason, sizeof o->reason, "subnet %s is exhausted (%s); retrying in %d s",
                         o->node->subnet_id, code, CTX_SUBNET_BACKOFF_MS / 1000);
                o->grow_blocked_until = o->now_ms() + CTX_SUBNET_BACKOFF_MS;
        } else if (e && ec2_code_is_throttling(code)) {
                snprintf(o->reason, sizeof o->reason, "EC2 is throttling %s (%s)", what, code);
        } else if (code[0]) {
                snprintf(o->reason, sizeof o->reason, "EC2 %s failed: %s: %.120s", what, code, e->message);
        } else {
                snprintf(o->reason, sizeof o->reason, "EC2 %s failed: %.160s", what,
                         e ? errmsg_text(&e->msg, r) : strerror(-r));
        }
        log_warn("EC2 call failed", LF_STR("action", what), LF_STR("code", code),
                 LF_STR("request_id", e ? e->request_id : ""), LF_STR("reason", o->reason),
                 LF_INT("http_status", e ? e->http_status : 0), LF_INT("attempts", e ? e->attempts : 0));
}

/* Is a candidate subnet other than skip open (not backing off)? */
static bool another_open(const struct ipamd_ctx *o, const char *skip, int64_t now) {
        for (size_t i = 0; i < o->n_candidates; i++)
                if (strcmp(o->candidates[i], skip) != 0 && !subnets_backoff_active(&o->backoff, o->candidates[i], now))
                        return true;
        return false;
}

bool ctx_note_create_failure(struct ipamd_ctx *o, const char *subnet_id, int r, const struct ec2_error *e) {
        const char *code = e && e->code[0] ? e->code : "";
        if (!is_subnet_exhaustion(code)) {
                ctx_note_failure(o, "CreateNetworkInterface", r, e);
                return false;
        }
        int64_t now = o->now_ms();
        subnets_backoff_set(&o->backoff, subnet_id, now + CTX_SUBNET_BACKOFF_MS);
        bool others = another_open(o, subnet_id, now);
        snprintf(o->reason, sizeof o->reason, "subnet %s is exhausted (%s); %s", subnet_id, code,
                 others ? "new ENIs go in another subnet" : "retrying in 120 s");
        if (!others)
                o->grow_blocked_until = now + CTX_SUBNET_BACKOFF_MS;
        log_warn("a subnet ran out of addresses", LF_STR("subnet", subnet_id), LF_STR("code", code),
                 LF_STR("request_id", e ? e->request_id : ""), LF_STR("reason", o->reason));
        return true;
}

static void verdict(struct ipamd_ctx *o, const char *id, bool excluded, int64_t retry_at) {
        size_t i = 0;
        while (i < o->n_verdicts && strcmp(o->verdicts[i].id, id) != 0)
                i++;
        if (i == SUBNETS_MAX)
                i = SUBNETS_MAX - 1;
        else if (i == o->n_verdicts)
                o->n_verdicts++;
        snprintf(o->verdicts[i].id, sizeof o->verdicts[i].id, "%s", id);
        o->verdicts[i].excluded = excluded;
        o->verdicts[i].retry_at = retry_at;
}

int ctx_subnet_excluded(struct ipamd_ctx *o, const char *subnet_id) {
        if (!subnet_id[0])
                return 0;
        for (size_t i = 0; i < o->n_verdicts; i++) {
                const struct ctx_verdict *v = &o->verdicts[i];
                if (strcmp(v->id, subnet_id) == 0 && (!v->retry_at || o->now_ms() < v->retry_at))
                        return v->retry_at ? -EAGAIN : v->excluded;
        }
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        const char *ids[] = { subnet_id };
        int r = o->ec2 ? ec2_describe_subnets(o->ec2, ids, 1, NULL, 0, &res, &e) : -ENOTCONN;
        bool excluded = r >= 0 && res->n_subnets == 1 && subnets_excluded(&res->subnets[0]);
        if (r < 0)
                log_warn("could not read a subnet's tags; its ENIs keep their mark, retrying", LF_STR("subnet", subnet_id),
                         LF_STR("code", e.code), LF_STR("detail", errmsg_text(&e.msg, r)));
        else if (excluded)
                log_warn("an ENI is in a subnet tagged " SUBNETS_TAG_CNI "=0: it carries no new pods, and its free "
                         "addresses go back to EC2", LF_STR("subnet", subnet_id));
        ec2_result_free(res);
        verdict(o, subnet_id, excluded, r < 0 ? o->now_ms() + CTX_SUBNET_RETRY_MS : 0);
        return r < 0 ? -EAGAIN : excluded;
}

void ctx_note_assign_failure(struct ipamd_ctx *o, const char *subnet_id, int r, const struct ec2_error *e) {
        const char *code = e && e->code[0] ? e->code : "";
        if (!is_subnet_exhaustion(code) || !subnet_id || !subnet_id[0]) {
                ctx_note_failure(o, "AssignPrivateIpAddresses", r, e);
                return;
        }
        if (o->n_candidates == 0) {
                struct ctx_subnet tmp[SUBNETS_MAX];
                (void)ctx_subnet_choices(o, tmp, SUBNETS_MAX);  /* which others there are */
        }
        (void)ctx_note_create_failure(o, subnet_id, r, e);
}

void ctx_subnet_remember(struct ipamd_ctx *o, const char *id, const char *cidr, long available) {
        if (!id || !cidr || strlen(id) >= SUBNETS_ID_MAX || strlen(cidr) >= sizeof o->known[0].cidr)
                return;
        size_t i = 0;
        while (i < o->n_known && strcmp(o->known[i].id, id) != 0)
                i++;
        if (i == SUBNETS_MAX)
                i = SUBNETS_MAX - 1;    /* full: the last slot turns over */
        else if (i == o->n_known)
                o->n_known++;
        snprintf(o->known[i].id, sizeof o->known[i].id, "%s", id);
        snprintf(o->known[i].cidr, sizeof o->known[i].cidr, "%s", cidr);
        o->known[i].available = available;
}

static void remember(struct ipamd_ctx *o, const struct ec2_subnet *s) {
        ctx_subnet_remember(o, s->id, s->cidr, s->available_ips);
}

static const struct ctx_subnet *known(const struct ipamd_ctx *o, const char *id) {
        for (size_t i = 0; i < o->n_known; i++)
                if (strcmp(o->known[i].id, id) == 0)
                        return &o->known[i];
        return NULL;
}

/* The node's subnet alone (discovery off, or DescribeSubnets failed). */
static size_t node_subnet_only(struct ipamd_ctx *o, struct ctx_subnet *out, size_t max) {
        o->n_candidates = 1;
        snprintf(o->candidates[0], SUBNETS_ID_MAX, "%s", o->node->subnet_id);
        if (!max || subnets_backoff_active(&o->backoff, o->node->subnet_id, o->now_ms()))
                return 0;
        memset(out, 0, sizeof *out);
        snprintf(out->id, sizeof out->id, "%s", o->node->subnet_id);
        snprintf(out->cidr, sizeof out->cidr, "%s", o->node->subnet_cidr);
        return 1;
}

/* The node's AZ's subnets in the node's VPC (the node subnet's: filtered on once known). */
static int describe_az(struct ipamd_ctx *o, struct ec2_result **ret, const char **vpc) {
        const char *az[] = { o->node->availability_zone }, *vpc_id[] = { o->vpc_id };
        struct ec2_filter f[] = { { "availability-zone", az, 1 }, { "vpc-id", vpc_id, 1 } };
        struct ec2_error e = { 0 };
        int r = ec2_describe_subnets(o->ec2, NULL, 0, f, o->vpc_id[0] ? 2 : 1, ret, &e);
        if (r < 0) {
                log_warn("DescribeSubnets failed; new ENIs go in the node's subnet", LF_STR("code", e.code),
                         LF_STR("detail", errmsg_text(&e.msg, r)));
                return r;
        }
        *vpc = NULL;
        for (size_t i = 0; i < (*ret)->n_subnets; i++)
                if ((*ret)->subnets[i].id && strcmp((*ret)->subnets[i].id, o->node->subnet_id) == 0)
                        *vpc = (*ret)->subnets[i].vpc_id;
        if (!*vpc) {
                log_warn("DescribeSubnets does not list the node's subnet in its AZ; new ENIs go in it",
                         LF_STR("subnet", o->node->subnet_id), LF_STR("az", o->node->availability_zone));
                ec2_result_free(*ret);
                return -ENOENT;
        }
        snprintf(o->vpc_id, sizeof o->vpc_id, "%s", *vpc);
        return 0;
}

/* Without discovery: is the node's subnet tagged kubernetes.io/role/cni=0 (aws-node then refuses)? */
static bool node_subnet_excluded(struct ipamd_ctx *o) {
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        const char *ids[] = { o->node->subnet_id };
        if (ec2_describe_subnets(o->ec2, ids, 1, NULL, 0, &res, &e) < 0)
                return false;   /* unknown: the node's subnet, as before DescribeSubnets was asked */
        bool excluded = res->n_subnets == 1 && subnets_excluded(&res->subnets[0]);
        ec2_result_free(res);
        return excluded;
}

/* Custom networking cannot make an ENI: o->cn_reason, logged when it changes; no choice. */
static size_t cn_refuse(struct ipamd_ctx *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t cn_refuse(struct ipamd_ctx *o, const char *fmt, ...) {
        char why[CTX_REASON_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        if (strcmp(why, o->cn_reason) != 0)
                log_error("custom networking: no new ENI", LF_STR("reason", why));
        snprintf(o->cn_reason, sizeof o->cn_reason, "%s", why);
        return 0;
}

static const struct ec2_subnet *find_subnet(const struct ec2_result *res, const char *id) {
        for (size_t i = 0; i < res->n_subnets; i++)
                if (res->subnets[i].id && strcmp(res->subnets[i].id, id) == 0)
                        return &res->subnets[i];
        return NULL;
}

/* Is the ENIConfig's subnet one a new ENI of this node may go in? NULL, or why not in why. */
static bool cn_subnet_ok(struct ipamd_ctx *o, const struct customnet_view *v, const struct ec2_result *res,
                         char *why, size_t size) {
        const struct ec2_subnet *s = find_subnet(res, v->subnet), *mine = find_subnet(res, o->node->subnet_id);
        const char *az = s && s->availability_zone ? s->availability_zone : "";
        if (!s)
                snprintf(why, size, "ENIConfig %s names subnet %s, which EC2 does not know", v->name, v->subnet);
        else if (strcmp(az, o->node->availability_zone) != 0)
                snprintf(why, size, "ENIConfig %s's subnet %s is in %s, the node in %s: an ENI there cannot be "
                         "attached (one ENIConfig per AZ, e.g. ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone)",
                         v->name, v->subnet, az, o->node->availability_zone);
        else if (mine && s->vpc_id && mine->vpc_id && strcmp(s->vpc_id, mine->vpc_id) != 0)
                snprintf(why, size, "ENIConfig %s's subnet %s is in %s, not the node's VPC %s", v->name, v->subnet,
                         s->vpc_id, mine->vpc_id);
        else if (subnets_excluded(s))
                snprintf(why, size, "ENIConfig %s's subnet %s is tagged " SUBNETS_TAG_CNI "=0", v->name, v->subnet);
        else
                return true;
        return false;
}

/* Custom networking: the ENIConfig's subnet, checked against EC2's answer, and its groups. */
static size_t eniconfig_choice(struct ipamd_ctx *o, struct ctx_subnet *out, size_t max) {
        struct customnet_view v;
        customnet_view(o->cnet, &v);
        o->n_candidates = 0;
        if (!v.subnet[0])
                return cn_refuse(o, "%s", v.error[0] ? v.error : "waiting for the first read of the Node and its "
                                 "ENIConfig from the Kubernetes API");
        o->n_candidates = 1;
        snprintf(o->candidates[0], SUBNETS_ID_MAX, "%s", v.subnet);
        if (!max || subnets_backoff_active(&o->backoff, v.subnet, o->now_ms()))
                return 0;       /* exhausted: o->reason says so */
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        const char *ids[] = { v.subnet, o->node->subnet_id };
        int r = ec2_describe_subnets(o->ec2, ids, 2, NULL, 0, &res, &e);
        if (r < 0)
                return cn_refuse(o, "could not describe ENIConfig %s's subnet %s: %s %.120s", v.name, v.subnet,
                                 e.code, errmsg_text(&e.msg, r));
        char why[CTX_REASON_MAX];
        bool ok = cn_subnet_ok(o, &v, res, why, sizeof why);
        const struct ec2_subnet *s = find_subnet(res, v.subnet);
        if (ok) {
                remember(o, s);
                memset(out, 0, sizeof *out);
                snprintf(out->id, sizeof out->id, "%s", s->id);
                snprintf(out->cidr, sizeof out->cidr, "%s", s->cidr ? s->cidr : "");
                out->available = s->available_ips;
        }
        ec2_result_free(res);
        if (!ok)
                return cn_refuse(o, "%s", why);
        if (o->cn_reason[0])
                log_info("custom networking: new ENIs go in the ENIConfig's subnet", LF_STR("eniconfig", v.name),
                         LF_STR("subnet", v.subnet), LF_STR("was", o->cn_reason));
        o->cn_reason[0] = '\0';
        for (size_t i = 0; i < v.n_groups; i++)
                snprintf(o->eni_groups[i], CUSTOMNET_ID_MAX, "%s", v.groups[i]);
        o->n_eni_groups = v.n_groups;
        return 1;
}

/* Discovery: aws-node's candidates among the AZ's subnets (EC2 asked); *answered when EC2 told them. */
static size_t discover(struct ipamd_ctx *o, struct ctx_subnet *out, size_t max, bool *answered) {
        struct ec2_result *res = NULL;
        const char *vpc = NULL;
        if (describe_az(o, &res, &vpc) < 0)
                return node_subnet_only(o, out, max);
        *answered = true;
        struct ec2_subnet same_vpc[SUBNETS_MAX * 4];
        size_t n = 0;
        for (size_t i = 0; i < res->n_subnets && n < SUBNETS_MAX * 4; i++) {
                remember(o, &res->subnets[i]);
                if (res->subnets[i].vpc_id && strcmp(res->subnets[i].vpc_id, vpc) == 0)
                        same_vpc[n++] = res->subnets[i];
        }
        const struct ec2_subnet *cand[SUBNETS_MAX];
        size_t k = subnets_candidates(same_vpc, n, o->node->subnet_id, o->cfg->cluster_name, cand, SUBNETS_MAX);
        size_t got = 0;
        int64_t now = o->now_ms();
        o->n_candidates = k;
        for (size_t i = 0; i < k; i++) {
                snprintf(o->candidates[i], SUBNETS_ID_MAX, "%s", cand[i]->id);
                if (got < max && !subnets_backoff_active(&o->backoff, cand[i]->id, now) && cand[i]->cidr) {
                        memset(&out[got], 0, sizeof out[got]);
                        snprintf(out[got].id, sizeof out[got].id, "%s", cand[i]->id);
                        snprintf(out[got].cidr, sizeof out[got].cidr, "%s", cand[i]->cidr);
                        out[got++].available = cand[i]->available_ips;
                }
        }
        if (!k)
                log_warn("no subnet may take new ENIs: every candidate is tagged " SUBNETS_TAG_CNI "=0 or for "
                         "another cluster", LF_STR("subnet", o->node->subnet_id));
        ec2_result_free(res);
        return got;
}

/* The remembered discovery answer, if fresh, into out[*got]: its subnets not backing off now. */
static bool choices_reuse(struct ipamd_ctx *o, struct ctx_subnet *out, size_t max, size_t *got) {
        int64_t now = o->now_ms();
        if (!o->n_choices || now >= o->choices_until || o->choices_until - now > CTX_CHOICES_TTL_MS)
                return false;   /* none, stale, or the wall clock stepped back */
        *got = 0;
        for (size_t i = 0; i < o->n_choices && *got < max; i++)
                if (!subnets_backoff_active(&o->backoff, o->choices[i].id, now))
                        out[(*got)++] = o->choices[i];
        return true;
}

size_t ctx_subnet_choices(struct ipamd_ctx *o, struct ctx_subnet *out, size_t max) {
        if (o->cnet && o->cfg->custom_networking)
                return eniconfig_choice(o, out, max);
        if (!o->cfg->subnet_discovery && node_subnet_excluded(o)) {
                o->n_candidates = 0;
                log_error("ENABLE_SUBNET_DISCOVERY=false and the node's subnet is tagged " SUBNETS_TAG_CNI "=0: "
                          "no new ENI", LF_STR("subnet", o->node->subnet_id));
                return 0;
        }
        if (!o->cfg->subnet_discovery)
                return node_subnet_only(o, out, max);
        size_t got = 0;
        if (choices_reuse(o, out, max, &got))
                return got;
        bool answered = false;
        got = discover(o, o->choices, SUBNETS_MAX, &answered);
        o->n_choices = answered ? got : 0;      /* a failed DescribeSubnets is asked again next time */
        o->choices_until = o->now_ms() + CTX_CHOICES_TTL_MS;
        if (got > max)
                got = max;
        memcpy(out, o->choices, got * sizeof *out);
        return got;
}

int ctx_subnet_cidr(struct ipamd_ctx *o, const char *subnet_id, char out[19]) {
        if (strcmp(subnet_id, o->node->subnet_id) == 0) {
                snprintf(out, 19, "%s", o->node->subnet_cidr);
                return 0;
        }
        const struct ctx_subnet *k = known(o, subnet_id);
        if (!k && o->ec2) {
                struct ec2_result *res = NULL;
                struct ec2_error e = { 0 };
                const char *ids[] = { subnet_id };
                int r = ec2_describe_subnets(o->ec2, ids, 1, NULL, 0, &res, &e);
                if (r < 0) {
                        log_warn("could not learn a subnet's CIDR", LF_STR("subnet", subnet_id), LF_STR("code", e.code),
                                 LF_STR("detail", errmsg_text(&e.msg, r)));
                        return r;
                }
                for (size_t i = 0; i < res->n_subnets; i++)
                        remember(o, &res->subnets[i]);
                ec2_result_free(res);
                k = known(o, subnet_id);
        }
        if (!k)
                return -ENOENT;
        snprintf(out, 19, "%s", k->cidr);
        return 0;
}

int ctx_forget_eni(struct ipamd_ctx *o, const char *eni_id) {
        int r = store_eni_remove(o->store, eni_id, true, NULL);
        if (r == -ENOENT) {
                /* Never recorded (an undone create, a leaked ENI): the goal already holds. */
                log_debug("ENI not in the store; nothing to forget", LF_STR("eni", eni_id));
                return 0;
        }
        if (r < 0)
                log_error_errno(r, "could not forget an ENI in the store; the next EC2 pass retries",
                                LF_STR("eni", eni_id));
        return r;
}

int ctx_describe_eni(struct ipamd_ctx *o, const char *eni_id, struct ec2_result **ret, struct ec2_error *e) {
        const char *ids[] = { eni_id };
        int r = ec2_describe_enis(o->ec2, ids, 1, ret, e);
        if (r < 0 && strcmp(e->code, "InvalidNetworkInterfaceID.NotFound") == 0)
                return -ENOENT;
        if (r >= 0 && (*ret)->n_enis != 1) {
                ec2_result_free(*ret);
                *ret = NULL;    /* callers free *ret on every path */
                return -ENOENT;
        }
        return r;
}

const char *ctx_eni_tag(const struct ec2_eni *e, const char *key) {
        for (size_t i = 0; i < e->n_tags; i++)
                if (strcmp(e->tags[i].key, key) == 0)
                        return e->tags[i].value;
        return NULL;
}

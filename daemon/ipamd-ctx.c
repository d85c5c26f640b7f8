/*
 * ipamd-ctx: the context that vpc-ipamd's EC2-facing modules share (sync.c,
 * eniops.c, the reconciler): the borrowed handles, the node, the clock and
 * callbacks, and why growing failed last. It also holds the few helpers both
 * sync.c and eniops.c need, so that dependencies run one way:
 * ipamd-ctx <- sync <- eniops <- reconciler.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ipamd-ctx.h"
#include "log.h"

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

/*
 * cni-commands: what vpc-cni does for each CNI command, between the parsed
 * input (cni-config.h) and the printed output (cni-result.h).
 *
 * A command returns 0 with ctx->out set to the JSON to print (or NULL for
 * commands that print nothing), or -EPROTO with ctx->code and ctx->msg set
 * to the CNI error to print. It never prints itself.
 */
#pragma once

#include "cni-config.h"
#include "dataplane.h"
#include "errmsg.h"

/* How long each call to the daemon may take (ADD may wait for an address). */
#define CNI_DEADLINE_ADD_MS 30000
#define CNI_DEADLINE_DEL_MS 5000
#define CNI_DEADLINE_CHECK_MS 5000
#define CNI_DEADLINE_GC_MS 10000
#define CNI_DEADLINE_STATUS_MS 2000
/* ADD waits this long for the daemon's socket to appear (a restart). */
#define CNI_DAEMON_WAIT_MS 2000

struct cni_ctx {
        const struct cni_env *env;
        const struct cni_config *cfg;
        dp_fault_hook fault;            /* tests only */
        void *fault_data;
        char *out;                      /* malloc'd JSON for stdout, or NULL */
        int code;                       /* CNI error code on failure */
        char msg[ERRMSG_MAX];
};

int cni_cmd_add(struct cni_ctx *ctx);
int cni_cmd_del(struct cni_ctx *ctx);
int cni_cmd_check(struct cni_ctx *ctx);
int cni_cmd_gc(struct cni_ctx *ctx);
int cni_cmd_status(struct cni_ctx *ctx);
int cni_cmd_version(struct cni_ctx *ctx);

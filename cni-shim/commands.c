/*
 * commands: ADD, DEL, CHECK, GC, STATUS and VERSION of vpc-cni.
 *
 * The daemon owns addresses; this file owns the order of things and the
 * mapping of every failure to a CNI code:
 *   - daemon unreachable, timed out, connection broken (reset, closed, a
 *     flood of connections), out of addresses, shutting down: 11,
 *     so the runtime retries (ADD first waits CNI_DAEMON_WAIT_MS for the
 *     socket, the daemon may be restarting);
 *   - the daemon refused for good: 101; its reply made no sense: 102;
 *   - a netlink failure: 100; CNI_IFNAME already in the pod: 103;
 *   - CHECK found drift: 104; the daemon does not know the container: 3;
 *   - ADD into a CNI_NETNS that is not a network namespace: 4, before any
 *     address is taken;
 *   - STATUS: 50 the daemon is unreachable, 51 it answers but cannot serve
 *     an ADD now.
 * ADD releases the address again (a "del" with reason "SetupFailed") when
 * the dataplane fails, except when the interface already existed — then the
 * address belongs to the attachment that is already wired.
 * DEL succeeds whenever nothing is left behind: with the daemon unreachable
 * it cleans what prevResult names and leaves the address to the daemon's
 * reconciliation. When the daemon answers "internal, retry" (it could not
 * record the release) DEL cleans up the same way but answers 11, so the
 * runtime repeats it instead of believing the address was given back.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cni-commands.h"
#include "cni-result.h"
#include "log.h"
#include "protocol.h"

static int fail(struct cni_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct cni_ctx *ctx, int code, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
        va_end(ap);
        ctx->code = code;
        return -EPROTO;
}

static bool unreachable(int r) {
        return r == -ENOENT || r == -ECONNREFUSED;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static long elapsed_ms(const struct timespec *t0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Send a request to the daemon; while it is unreachable, retry for up to wait_ms. */
static int call_send(struct cni_ctx *ctx, const struct proto_request *req, int deadline_ms, int wait_ms,
                     struct proto_pending *ret, struct errmsg *err) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                int r = proto_call_send(ctx->cfg->socket, req, deadline_ms, ret, err);
                if (!unreachable(r) || elapsed_ms(&t0) >= wait_ms)
                        return r;
                sleep_ms(20);
        }
}

/* Map a failed call or an error reply to the CNI answer. */
static int daemon_failure(struct cni_ctx *ctx, const char *op, int r, const struct errmsg *err,
                          const struct proto_reply *reply) {
        if (r >= 0 && !reply->ok) {
                bool again = reply->error.retry || strcmp(reply->error.code, PROTO_E_NO_ADDRESS) == 0 ||
                             strcmp(reply->error.code, PROTO_E_SHUTTING_DOWN) == 0;
                if (strcmp(reply->error.code, PROTO_E_UNKNOWN_CONTAINER) == 0)
                        return fail(ctx, CNI_ERR_UNKNOWN_CONTAINER, "vpc-ipamd does not know container %s/%s: %s",
                                    ctx->env->container_id, ctx->env->ifname, reply->error.msg);
                return fail(ctx, again ? CNI_ERR_TRY_AGAIN_LATER : CNI_ERR_DAEMON, "vpc-ipamd refused %s (%s): %s",
                            op, reply->error.code, reply->error.msg);
        }
        if (proto_error_is_transient(r))
                return fail(ctx, CNI_ERR_TRY_AGAIN_LATER, "vpc-ipamd is not answering on %s, try again later: %s",
                            ctx->cfg->socket, errmsg_text(err, r));
        if (r == -EBADMSG)
                return fail(ctx, CNI_ERR_PROTOCOL, "vpc-ipamd sent a bad reply to %s: %s", op, errmsg_text(err, r));
        return fail(ctx, CNI_ERR_IO, "cannot ask vpc-ipamd for %s: %s", op, errmsg_text(err, r));
}

static void attachment(const struct cni_env *env, struct proto_attachment *att) {
        snprintf(att->container_id, sizeof att->container_id, "%s", env->container_id);
        snprintf(att->ifname, sizeof att->ifname, "%s", env->ifname);
}

static struct dp_pod pod_of(const struct cni_ctx *ctx, const char *ip, uint32_t table, unsigned mtu) {
        return (struct dp_pod){
                .container_id = ctx->env->container_id, .ifname = ctx->env->ifname,
                .veth_prefix = ctx->cfg->veth_prefix, .ip = ip, .route_table = table, .mtu = mtu,
                .fault = ctx->fault, .fault_data = ctx->fault_data,
        };
}

/* --- ADD ---------------------------------------------------------------------------------- */

static void release_after_failure(struct cni_ctx *ctx) {
        struct proto_request req = { .op = PROTO_OP_DEL };
        struct proto_reply reply = { 0 };
        struct errmsg err = { 0 };
        attachment(ctx->env, &req.att);
        snprintf(req.reason, sizeof req.reason, "SetupFailed");
        int r = proto_call(ctx->cfg->socket, &req, CNI_DEADLINE_DEL_MS, &reply, &err);
        if (r < 0 || !reply.ok)
                log_warn("could not release the address after a failed ADD; the daemon will reclaim it",
                         LF_STR("container_id", ctx->env->container_id), LF_STR("error", errmsg_text(&err, r)));
        proto_reply_done(&reply);
}

static void add_request(struct cni_ctx *ctx, struct proto_request *req) {
        const struct cni_env *e = ctx->env;
        *req = (struct proto_request){ .op = PROTO_OP_ADD };
        attachment(e, &req->att);
        snprintf(req->netns, sizeof req->netns, "%s", e->netns);
        snprintf(req->pod_namespace, sizeof req->pod_namespace, "%s", e->pod_namespace);
        snprintf(req->pod_name, sizeof req->pod_name, "%s", e->pod_name);
        snprintf(req->pod_uid, sizeof req->pod_uid, "%s", e->pod_uid);
        snprintf(req->pod_infra_container_id, sizeof req->pod_infra_container_id, "%s", e->pod_infra_container_id);
}

/* The veth is made; finish wiring for the daemon's address a, and render the result. */
static int add_wire(struct cni_ctx *ctx, dp_wiring *w, const struct proto_address *a) {
        struct errmsg err = { 0 };
        struct dp_links links;
        unsigned mtu = ctx->cfg->mtu ? ctx->cfg->mtu : a->mtu;
        int r = dp_wiring_finish(w, a->ip, a->egress_ip, a->route_table, mtu, &links, &err);
        if (r < 0) {
                release_after_failure(ctx);
                return fail(ctx, CNI_ERR_DATAPLANE, "cannot wire %s for container %s: %s", a->ip,
                            ctx->env->container_id, errmsg_text(&err, r));
        }
        struct cni_result res = { .sandbox = ctx->env->netns, .mtu = mtu };
        snprintf(res.host_ifname, sizeof res.host_ifname, "%s", links.host_ifname);
        snprintf(res.host_mac, sizeof res.host_mac, "%s", links.host_mac);
        snprintf(res.pod_ifname, sizeof res.pod_ifname, "%s", ctx->env->ifname);
        snprintf(res.pod_mac, sizeof res.pod_mac, "%s", links.pod_mac);
        snprintf(res.ip, sizeof res.ip, "%s", a->ip);
        snprintf(res.gateway, sizeof res.gateway, "%s", strchr(a->ip, ':') ? PROTO_POD_GATEWAY6 : PROTO_POD_GATEWAY);
        if (a->egress_ip[0]) {
                snprintf(res.egress_ip, sizeof res.egress_ip, "%s", a->egress_ip);
                snprintf(res.egress_host_ifname, sizeof res.egress_host_ifname, "%s", links.egress_host_ifname);
                snprintf(res.egress_host_mac, sizeof res.egress_host_mac, "%s", links.egress_host_mac);
                snprintf(res.egress_pod_ifname, sizeof res.egress_pod_ifname, "%s", links.egress_pod_ifname);
                snprintf(res.egress_gateway, sizeof res.egress_gateway, "%s", links.egress_gateway);
                snprintf(res.egress_pod_mac, sizeof res.egress_pod_mac, "%s", links.egress_pod_mac);
        }
        r = cni_result_render(&res, ctx->cfg->cni_version, ctx->cfg->prev_result, &ctx->out);
        if (r < 0) {
                /* still all or nothing: unwire and release what we cannot report */
                struct dp_pod pod = pod_of(ctx, a->ip, a->route_table, mtu);
                (void)dp_del(&pod, links.host_ifname, NULL);
                release_after_failure(ctx);
                return fail(ctx, CNI_ERR_IO, "cannot render the result: %s", strerror(-r));
        }
        return 0;
}

/* The veth could not be made. An interface already named CNI_IFNAME in the
 * pod means the attachment is wired already: its address stays. */
static int add_veth_failed(struct cni_ctx *ctx, const struct proto_address *a, int r, const struct errmsg *err) {
        if (r != -EEXIST)
                release_after_failure(ctx);
        return fail(ctx, r == -EEXIST ? CNI_ERR_INTERFACE_EXISTS : CNI_ERR_DATAPLANE,
                    "cannot wire %s for container %s: %s", a->ip, ctx->env->container_id, errmsg_text(err, r));
}

/* A namespace that is not there gets no address: say so before asking. */
static int add_open(struct cni_ctx *ctx, dp_wiring **ret) {
        struct errmsg err = { 0 };
        struct dp_pod pod = pod_of(ctx, NULL, 0, ctx->cfg->mtu);
        int r = dp_wiring_open(ctx->env->netns, &pod, ret, &err);
        if (r == -ENOENT || r == -EINVAL)
                return fail(ctx, CNI_ERR_INVALID_ENV, "CNI_NETNS=%s: %s", ctx->env->netns,
                            r == -EINVAL ? "not a network namespace" : strerror(-r));
        return r < 0 ? fail(ctx, CNI_ERR_DATAPLANE, "%s", errmsg_text(&err, r)) : 0;
}

/*
 * The daemon chooses the address while the kernel makes the veth, which
 * needs none: the request is sent, the veth made, then the reply read. When
 * the daemon fails, the veth is undone with everything else.
 */
int cni_cmd_add(struct cni_ctx *ctx) {
        struct proto_request req;
        struct proto_pending pending;
        struct proto_reply reply = { 0 };
        struct errmsg err = { 0 }, dperr = { 0 };
        dp_wiring *w = NULL;
        int r = add_open(ctx, &w);
        if (r < 0)
                return r;
        add_request(ctx, &req);
        r = call_send(ctx, &req, CNI_DEADLINE_ADD_MS, CNI_DAEMON_WAIT_MS, &pending, &err);
        if (r >= 0) {
                int v = dp_wiring_veth(w, &dperr);
                r = proto_call_recv(&pending, &reply, &err);
                if (r >= 0 && reply.ok)
                        r = v < 0 ? add_veth_failed(ctx, &reply.addr, v, &dperr) : add_wire(ctx, w, &reply.addr);
                else
                        r = daemon_failure(ctx, "add", r, &err, &reply);
        } else
                r = daemon_failure(ctx, "add", r, &err, &reply);
        dp_wiring_free(w);
        proto_reply_done(&reply);
        return r;
}

/* --- DEL ---------------------------------------------------------------------------------- */

/*
 * vpc-ipamd undoes the host side itself, before it releases the address: the
 * rules, and the host veth the request names (taken down at once, deleted
 * by the daemon right after). What it did not do (it is away, failed, or the
 * config says "vethDelete": "sync") the plugin does, from the daemon's reply
 * or else from prevResult.
 */
/*
 * The host veth to name in the request, unless "vethDelete": "sync" keeps its
 * removal here. True when there is none (the namespace took it), which is as
 * good as one handed over. prevResult's name is named as it is: vpc-ipamd
 * checks the veth's alias before it touches it, and when it does not take it
 * the plugin looks for it (dp_del), so DEL spends no netlink lookup here.
 */
static bool del_find_veth(struct cni_ctx *ctx, const struct dp_pod *pod, const char *hint,
                          char veth[PROTO_IFNAME_MAX + 1]) {
        struct errmsg err = { 0 };
        if (ctx->cfg->veth_delete_sync)
                return false;
        if (hint && *hint) {
                snprintf(veth, PROTO_IFNAME_MAX + 1, "%s", hint);
                return false;
        }
        int v = dp_host_veth(pod, hint, veth, &err);
        if (v < 0)
                veth[0] = '\0';
        return v == -ENOENT;
}

/*
 * Ask vpc-ipamd to release the address. Its answer is the truth: ip becomes
 * the address the plugin must still unwire ("" when the daemon did, or when
 * it is not ours any more). Without an answer ip keeps prevResult's. True
 * when the daemon unwired the pod and took over removing its veth; *ret_v6
 * when the address it released is IPv6 or came with an egress address (the
 * pod may have an egress veth, which is never the daemon's).
 */
static bool del_ask_daemon(struct cni_ctx *ctx, const struct proto_request *req, char ip[PROTO_IP_MAX],
                           bool *ret_again, bool *ret_v6) {
        struct proto_reply reply = { 0 };
        struct errmsg err = { 0 };
        bool veth_done = false;
        int r = proto_call(ctx->cfg->socket, req, CNI_DEADLINE_DEL_MS, &reply, &err);
        /* The daemon answers but could not record the release (its store): the
         * runtime must repeat the DEL, not believe the address was given back. */
        *ret_again = r >= 0 && !reply.ok && reply.error.retry && strcmp(reply.error.code, PROTO_E_INTERNAL) == 0;
        if (r >= 0 && reply.ok) {
                *ret_v6 = reply.addr.has_ip && (strchr(reply.addr.ip, ':') || reply.addr.egress_ip[0]);
                snprintf(ip, PROTO_IP_MAX, "%s", reply.addr.has_ip && !reply.unwired ? reply.addr.ip : "");
                veth_done = reply.unwired && reply.veth_queued;
        } else
                log_warn("vpc-ipamd did not release the address; cleaning up from prevResult",
                         LF_STR("container_id", ctx->env->container_id), LF_STR("ip", ip),
                         LF_STR("error", r < 0 ? errmsg_text(&err, r) : reply.error.msg));
        proto_reply_done(&reply);
        return veth_done;
}

int cni_cmd_del(struct cni_ctx *ctx) {
        struct proto_request req = { .op = PROTO_OP_DEL };
        char ip[PROTO_IP_MAX] = "", hint[PROTO_IFNAME_MAX + 1] = "";
        attachment(ctx->env, &req.att);
        snprintf(req.reason, sizeof req.reason, "PodDeleted");
        (void)cni_result_prev_parse(ctx->cfg->prev_result, ip, hint);
        struct dp_pod pod = pod_of(ctx, ip, 0, 0); /* pod.ip is ip: what the daemon says overrides prevResult */
        bool no_veth = del_find_veth(ctx, &pod, hint, req.host_veth);
        bool again = false, v6 = false;
        bool veth_done = del_ask_daemon(ctx, &req, ip, &again, &v6);
        struct errmsg err = { 0 };
        int r = 0;
        /* the name found above, if any, spares dp_del the search */
        if (!veth_done && !(no_veth && !ip[0]))
                r = dp_del(&pod, req.host_veth[0] ? req.host_veth : hint, &err);
        else if (veth_done && v6)
                r = dp_del_egress(&pod, &err);
        if (r < 0)
                return fail(ctx, CNI_ERR_DATAPLANE, "cannot remove the network of container %s: %s",
                            ctx->env->container_id, errmsg_text(&err, r));
        if (again)
                return fail(ctx, CNI_ERR_TRY_AGAIN_LATER, "vpc-ipamd could not release the address of %s/%s yet; "
                            "try the DEL again", ctx->env->container_id, ctx->env->ifname);
        return 0;
}

/* --- CHECK -------------------------------------------------------------------------------- */

static int check_prev(struct cni_ctx *ctx, const char *ip) {
        char prev_ip[PROTO_IP_MAX], hint[PROTO_IFNAME_MAX + 1];
        if (cni_result_prev_parse(ctx->cfg->prev_result, prev_ip, hint) < 0 || !prev_ip[0])
                return 0;
        if (strcmp(prev_ip, ip) != 0)
                return fail(ctx, CNI_ERR_DRIFT, "prevResult has address %s but vpc-ipamd assigned %s", prev_ip, ip);
        return 0;
}

int cni_cmd_check(struct cni_ctx *ctx) {
        struct proto_request req = { .op = PROTO_OP_CHECK };
        struct proto_reply reply = { 0 };
        struct errmsg err = { 0 };
        attachment(ctx->env, &req.att);
        int r = proto_call(ctx->cfg->socket, &req, CNI_DEADLINE_CHECK_MS, &reply, &err);
        if (r < 0 || !reply.ok) {
                r = daemon_failure(ctx, "check", r, &err, &reply);
                proto_reply_done(&reply);
                return r;
        }
        r = check_prev(ctx, reply.addr.ip);
        if (r >= 0) {
                struct dp_pod pod = pod_of(ctx, reply.addr.ip, reply.addr.route_table, 0);
                pod.egress_ip = reply.addr.egress_ip;
                r = dp_check(ctx->env->netns, &pod, &err);
                if (r < 0)
                        r = fail(ctx, r == -EUCLEAN ? CNI_ERR_DRIFT : CNI_ERR_DATAPLANE, "CHECK of %s: %s",
                                 ctx->env->container_id, errmsg_text(&err, r));
        }
        proto_reply_done(&reply);
        return r;
}

/* --- GC, STATUS, VERSION ------------------------------------------------------------------ */

int cni_cmd_gc(struct cni_ctx *ctx) {
        struct proto_request req = { .op = PROTO_OP_GC, .valid = ctx->cfg->valid, .n_valid = ctx->cfg->n_valid };
        struct proto_reply reply = { 0 };
        struct errmsg err = { 0 }, dperr = { 0 };
        unsigned removed = 0;
        int r = proto_call(ctx->cfg->socket, &req, CNI_DEADLINE_GC_MS, &reply, &err);
        bool answered = r >= 0 && reply.ok;
        /* leftover veths can go even without the daemon; rules need its list */
        int d = dp_gc(ctx->cfg->veth_prefix, ctx->cfg->valid, ctx->cfg->n_valid, answered ? reply.released : NULL,
                      answered ? reply.n_released : 0, &removed, &dperr);
        log_info("GC done", LF_INT("valid", ctx->cfg->n_valid), LF_INT("released", answered ? reply.n_released : 0),
                 LF_INT("removed", removed), LF_STR("error", d < 0 ? errmsg_text(&dperr, d) : ""));
        if (!answered)
                r = daemon_failure(ctx, "gc", r, &err, &reply);
        else if (d < 0)
                r = fail(ctx, CNI_ERR_DATAPLANE, "GC: %s", errmsg_text(&dperr, d));
        proto_reply_done(&reply);
        return r < 0 ? r : 0;
}

/*
 * STATUS per CNI 1.1: 50 when the plugin cannot work at all (the daemon
 * cannot be reached or refuses to talk), 51 when the daemon answers but an
 * ADD now would fail: it is not ready (its start-up EC2 pass failed), or its
 * pool is empty and it says why it cannot grow (ENI limit, subnet exhausted,
 * provisioning disabled, EC2 failing). An empty pool with no reason is
 * still growing: an ADD waits for it, so that is 0.
 */
static int status_of_reply(struct cni_ctx *ctx, const struct proto_reply *reply) {
        const char *why = reply->reason[0] ? reply->reason : "not ready";
        if (!reply->ready)
                return fail(ctx, CNI_ERR_UNAVAILABLE_DEGRADED, "vpc-ipamd cannot serve addresses: %s", why);
        if (reply->available == 0 && reply->reason[0])
                return fail(ctx, CNI_ERR_UNAVAILABLE_DEGRADED, "vpc-ipamd has no free address and cannot grow: %s",
                            reply->reason);
        return 0;
}

int cni_cmd_status(struct cni_ctx *ctx) {
        struct proto_request req = { .op = PROTO_OP_STATUS };
        struct proto_reply reply = { 0 };
        struct errmsg err = { 0 };
        int r = proto_call(ctx->cfg->socket, &req, CNI_DEADLINE_STATUS_MS, &reply, &err);
        if (r < 0)
                r = fail(ctx, CNI_ERR_UNAVAILABLE, "vpc-ipamd is not reachable on %s: %s", ctx->cfg->socket,
                         errmsg_text(&err, r));
        else if (!reply.ok)
                r = fail(ctx, CNI_ERR_UNAVAILABLE, "vpc-ipamd refused status (%s): %s", reply.error.code,
                         reply.error.msg);
        else
                r = status_of_reply(ctx, &reply);
        proto_reply_done(&reply);
        return r;
}

int cni_cmd_version(struct cni_ctx *ctx) {
        int r = cni_version_render(ctx->cfg ? ctx->cfg->cni_version : NULL, &ctx->out);
        return r < 0 ? fail(ctx, CNI_ERR_IO, "cannot render the version: %s", strerror(-r)) : 0;
}

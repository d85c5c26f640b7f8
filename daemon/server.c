/*
 * server: the epoll loop behind vpc-ipamd's socket (see server.h).
 *
 * Each accepted connection is a `struct conn` registered in epoll with its
 * own deadline: the idle deadline while no request is pending, the ADD wait
 * deadline while an ADD waits. A connection may carry several requests, one
 * at a time. Waiting ADDs are kept in arrival order and retried whenever the
 * reconciler says the pool changed (an eventfd); the first to arrive is
 * served first. Replies are sent with MSG_DONTWAIT: a peer that does not read
 * is dropped rather than allowed to block the loop.
 *
 * Refusals (bad peer, bad message) are logged at most once per interval per
 * kind, so a misbehaving client cannot flood the log.
 *
 * Idle connections (no ADD waiting on them) are bounded so that a flood of
 * them cannot keep ADD and DEL out: one peer (uid and pid, by SO_PEERCRED)
 * keeps at most SERVER_PEER_IDLE_MAX, and past MAX_CONNS - SERVER_CONN_RESERVE
 * connections in all, each new one closes the oldest idle one first. The
 * oldest is the one whose last request (or accept) is oldest.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>

#include "log.h"
#include "mkdirs.h"
#include "poolview.h"
#include "vtime.h"
#include "protocol.h"
#include "server.h"

#define IDLE_MS_DEFAULT 5000
#define MAX_CONNS SERVER_MAX_CONNS
#define LOG_INTERVAL_MS 10000
#define E_PERMISSION "permission_denied"

enum refusal { REFUSE_PEER, REFUSE_MESSAGE, REFUSE_IDLE, _REFUSE_MAX };

struct conn {
        int fd;
        pid_t pid;
        uid_t uid;
        int64_t active;              /* monotonic ms of the accept or the last request */
        int64_t deadline;            /* monotonic ms */
        bool refused;                /* not root: its first request gets permission_denied */
        bool waiting;                /* an ADD waits for an address */
        int64_t wait_started;
        struct proto_request req;    /* the waiting ADD */
        struct conn *next_waiting;
        struct conn *prev, *next;    /* every live connection */
        bool dead;                   /* closed; freed after the current epoll batch */
        struct conn *next_dead;
};

struct server {
        struct server_options o;
        char *socket_path;
        int listen_fd, epoll_fd, stop_fd, changed_fd;
        size_t n_conns;
        struct conn *conns;
        struct conn *dead;           /* closed during this epoll batch, not yet freed */
        bool listener_paused;        /* out of descriptors: not accepting until one closes */
        struct conn *waiting_head, *waiting_tail;
        _Atomic int n_waiting;
        int64_t last_refusal_log[_REFUSE_MAX];
        unsigned suppressed[_REFUSE_MAX];
};

/* Tags for epoll's data.ptr, told apart from connections by address. */
static char tag_listen, tag_stop, tag_changed;

/* Log a refusal unless one of its kind was logged within LOG_INTERVAL_MS. */
static void log_refusal(server *s, enum refusal kind, const char *msg, const struct conn *c, const char *why) {
        int64_t now = vtime_mono_ms();
        if (s->last_refusal_log[kind] && now - s->last_refusal_log[kind] < LOG_INTERVAL_MS) {
                s->suppressed[kind]++;
                return;
        }
        log_warn(msg, LF_INT("peer_pid", c ? c->pid : 0), LF_STR("reason", why),
                 LF_INT("suppressed_since_last", s->suppressed[kind]));
        s->last_refusal_log[kind] = now;
        s->suppressed[kind] = 0;
}

/* --- sending ----------------------------------------------------------------- */

static void conn_close(server *s, struct conn *c);

/*
 * Send one reply; a peer that cannot take it now is dropped. 0, or a negative
 * errno when c was closed (-ENOMEM when there was no reply to send).
 */
static int send_json(server *s, struct conn *c, char *json) {
        ssize_t n = json ? send(c->fd, json, strlen(json), MSG_DONTWAIT | MSG_NOSIGNAL) : -1;
        int r = json ? -errno : -ENOMEM;
        free(json);
        if (n < 0) {
                log_debug("dropped a client that could not take its reply", LF_INT("peer_pid", c->pid));
                conn_close(s, c);
                return r;
        }
        c->deadline = vtime_mono_ms() + (s->o.idle_ms > 0 ? s->o.idle_ms : IDLE_MS_DEFAULT);
        return 0;
}

static int send_error(server *s, struct conn *c, const char *code, const char *msg, bool retry) {
        char *json = NULL;
        if (proto_reply_encode_error(code, msg, retry, &json) < 0)
                json = NULL;
        return send_json(s, c, json);
}

static int send_reply(server *s, struct conn *c, struct proto_reply *reply) {
        char *json = NULL;
        int r = proto_reply_encode(reply, &json);
        proto_reply_done(reply);
        if (r < 0)
                return send_error(s, c, PROTO_E_INTERNAL, "could not encode the reply", true);
        return send_json(s, c, json);
}

/* --- connections --------------------------------------------------------------- */

static void waiting_unlink(server *s, struct conn *c) {
        if (!c->waiting)
                return;
        struct conn **p = &s->waiting_head;
        while (*p && *p != c)
                p = &(*p)->next_waiting;
        if (*p)
                *p = c->next_waiting;
        if (s->waiting_tail == c) {
                s->waiting_tail = NULL;
                for (struct conn *w = s->waiting_head; w; w = w->next_waiting)
                        s->waiting_tail = w;
        }
        c->waiting = false;
        c->next_waiting = NULL;
        proto_request_done(&c->req);
        atomic_fetch_sub(&s->n_waiting, 1);
}

/*
 * Close a connection. Its memory lives until the end of the current epoll
 * batch (free_dead), because a later event of the same batch may still point
 * at it: such events are skipped by the dead flag.
 */
static void conn_close(server *s, struct conn *c) {
        if (c->dead)
                return;
        waiting_unlink(s, c);
        epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->dead = true;
        c->next_dead = s->dead;
        s->dead = c;
        s->n_conns--;
}

static int watch(server *s, int fd, void *tag);

static void free_dead(server *s) {
        bool freed = s->dead != NULL;
        while (s->dead) {
                struct conn *c = s->dead;
                s->dead = c->next_dead;
                free(c);
        }
        if (freed && s->listener_paused && watch(s, s->listen_fd, &tag_listen) == 0)
                s->listener_paused = false;
}

/* The least recently active idle connection, of this peer only when peer is set; *n its peer's idle count. */
static struct conn *oldest_idle(server *s, const struct ucred *peer, size_t *n) {
        struct conn *oldest = NULL;
        *n = 0;
        for (struct conn *c = s->conns; c; c = c->next) {
                if (c->waiting || (peer && (c->uid != peer->uid || c->pid != peer->pid)))
                        continue;
                (*n)++;
                /* <=: the list runs newest first, so among equal times (many accepts in one
                 * millisecond) the one accepted first is taken, never the newest. */
                if (!oldest || c->active <= oldest->active)
                        oldest = c;
        }
        return oldest;
}

/* Room for a new connection of this peer: its oldest idle one past its bound, the oldest idle past the reserve. */
static void make_room(server *s, const struct ucred *peer) {
        size_t n;
        struct conn *c = oldest_idle(s, peer, &n);
        if (c && n >= SERVER_PEER_IDLE_MAX) {
                log_refusal(s, REFUSE_IDLE, "closed a client's oldest idle connection", c,
                            "too many idle connections from one peer");
                conn_close(s, c);
        }
        if (s->n_conns >= MAX_CONNS - SERVER_CONN_RESERVE && (c = oldest_idle(s, NULL, &n))) {
                log_refusal(s, REFUSE_IDLE, "closed the oldest idle connection", c, "too many connections");
                conn_close(s, c);
        }
}

static void accept_one(server *s, int fd) {
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
                close(fd);
                return;
        }
        make_room(s, &cred);
        struct conn *c = calloc(1, sizeof *c);
        if (!c || s->n_conns >= MAX_CONNS) {
                free(c);
                close(fd);
                log_refusal(s, REFUSE_PEER, "refused a connection", NULL, "too many connections");
                return;
        }
        int64_t now = vtime_mono_ms();
        *c = (struct conn){ .fd = fd, .active = now, .deadline = now + (s->o.idle_ms > 0 ? s->o.idle_ms : IDLE_MS_DEFAULT) };
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
        if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                close(fd);
                free(c);
                return;
        }
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        c->pid = cred.pid;
        c->uid = cred.uid;
        if (cred.uid != 0) {
                /* Answered in-band when its request arrives, so the client reads why. */
                metrics_inc(s->o.metrics, METRICS_PEERS_REFUSED);
                char why[64];
                snprintf(why, sizeof why, "peer uid %u is not 0", (unsigned)cred.uid);
                log_refusal(s, REFUSE_PEER, "refused a client that is not root", c, why);
                c->refused = true;
        }
}

static void accept_all(server *s) {
        for (;;) {
                int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd >= 0) {
                        accept_one(s, fd);
                        continue;
                }
                if (errno == EMFILE || errno == ENFILE) {
                        /* Out of descriptors: the listener stays readable; pause it so the
                         * loop does not spin, and look again when a connection closes. */
                        epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
                        s->listener_paused = true;
                        log_refusal(s, REFUSE_PEER, "refused connections", NULL, "out of file descriptors");
                }
                return; /* EAGAIN: drained */
        }
}

/* --- the ops ------------------------------------------------------------------- */

/* The subnet's gateway: its base address + 1, as EC2 reserves it. */
static void subnet_gateway(const char *cidr, char out[PROTO_IP_MAX]) {
        char ip[PROTO_IP_MAX];
        const char *slash = strchr(cidr, '/');
        struct in_addr a;
        out[0] = '\0';
        if (!slash || (size_t)(slash - cidr) >= sizeof ip)
                return;
        memcpy(ip, cidr, (size_t)(slash - cidr));
        ip[slash - cidr] = '\0';
        int len = atoi(slash + 1);
        if (inet_pton(AF_INET, ip, &a) != 1 || len < 1 || len > 30)
                return;
        uint32_t base = ntohl(a.s_addr) & (0xffffffffu << (32 - len));
        a.s_addr = htonl(base + 1);
        inet_ntop(AF_INET, &a, out, PROTO_IP_MAX);
}

/* The VPC CIDRs the reconciler keeps in the store's metadata ("a/b,c/d"). */
static void fill_vpc_cidrs(server *s, struct proto_address *a) {
        char buf[1024];
        if (store_meta_get(s->o.store, "vpc_cidrs", buf, sizeof buf) < 0 || !buf[0])
                return;
        size_t n = 1;
        for (const char *p = buf; *p; p++)
                n += *p == ',';
        a->vpc_cidrs = calloc(n, sizeof *a->vpc_cidrs);
        if (!a->vpc_cidrs)
                return;
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok && a->n_vpc_cidrs < n; tok = strtok_r(NULL, ",", &save))
                if (proto_valid_cidr4(tok))
                        snprintf(a->vpc_cidrs[a->n_vpc_cidrs++], PROTO_CIDR_MAX, "%s", tok);
}

/* IPv6 pods: the VPC's IPv6 CIDRs ("vpc_cidrs6", ipv6node.c) first, then its IPv4 ones. */
static void fill_vpc_cidrs6(server *s, struct proto_address *a) {
        char v6[1024], v4[1024];
        if (store_meta_get(s->o.store, "vpc_cidrs6", v6, sizeof v6) < 0)
                v6[0] = '\0';
        if (store_meta_get(s->o.store, "vpc_cidrs", v4, sizeof v4) < 0)
                v4[0] = '\0';
        size_t n = 2;
        for (const char *p = v6; *p; p++)
                n += *p == ',';
        for (const char *p = v4; *p; p++)
                n += *p == ',';
        a->vpc_cidrs = calloc(n, sizeof *a->vpc_cidrs);
        if (!a->vpc_cidrs)
                return;
        char *save = NULL;
        for (char *tok = strtok_r(v6, ",", &save); tok && a->n_vpc_cidrs < n; tok = strtok_r(NULL, ",", &save))
                if (proto_valid_cidr(tok))
                        snprintf(a->vpc_cidrs[a->n_vpc_cidrs++], PROTO_CIDR_MAX, "%s", tok);
        for (char *tok = strtok_r(v4, ",", &save); tok && a->n_vpc_cidrs < n; tok = strtok_r(NULL, ",", &save))
                if (proto_valid_cidr4(tok))
                        snprintf(a->vpc_cidrs[a->n_vpc_cidrs++], PROTO_CIDR_MAX, "%s", tok);
}

static void fill_address(server *s, const struct store_lease *l, struct proto_address *a) {
        *a = (struct proto_address){ .has_ip = true, .device_index = (uint32_t)l->device_index,
                                     .route_table = (uint32_t)l->route_table, .mtu = (uint32_t)s->o.pod_mtu };
        bool v6 = strchr(l->ip, ':') != NULL;
        snprintf(a->ip, sizeof a->ip, "%s", l->ip);
        snprintf(a->eni_id, sizeof a->eni_id, "%s", l->eni_id);
        snprintf(a->gateway, sizeof a->gateway, "%s", v6 ? PROTO_POD_GATEWAY6 : PROTO_POD_GATEWAY);
        subnet_gateway(l->subnet_cidr, a->subnet_gateway);
        snprintf(a->egress_ip, sizeof a->egress_ip, "%s", l->egress_ip);      /* either family's */
        if (v6)
                fill_vpc_cidrs6(s, a);
        else
                fill_vpc_cidrs(s, a);
}

/* Monotonic µs, for the parts of ADD and DEL the log reports (scripts/bench-cni reads them). */
static int64_t mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct store_attachment attachment_of(const struct proto_request *req) {
        return (struct store_attachment){
                .container_id = req->att.container_id, .ifname = req->att.ifname, .netns = req->netns,
                .pod_namespace = req->pod_namespace, .pod_name = req->pod_name, .pod_uid = req->pod_uid,
        };
}

/* Try to give a waiting or new ADD its address. Returns -EAGAIN when the pool is empty. */
static int try_add(server *s, struct conn *c, const struct proto_request *req, bool *closed) {
        struct store_attachment a = attachment_of(req);
        struct store_lease lease;
        int64_t t0 = mono_us();
        int r = s->o.ipv6 ? store_assign6(s->o.store, &a, s->o.v4_egress, vtime_wall_ms(), &lease, NULL)
                          : store_assign(s->o.store, &a, vtime_wall_ms(), &lease, NULL);
        int64_t store_us = mono_us() - t0;
        *closed = false;
        if (r == -EAGAIN)
                return r;
        if (r < 0) {
                log_error_errno(r, "could not assign an address", LF_STR("container_id", req->att.container_id));
                *closed = send_error(s, c, PROTO_E_INTERNAL, "the pool store failed; see vpc-ipamd's log", true) < 0;
                return 0;
        }
        struct proto_reply reply = { .op = PROTO_OP_ADD, .ok = true };
        fill_address(s, &lease, &reply.addr);
        log_info("assigned address", LF_STR("ip", lease.ip), LF_STR("eni", lease.eni_id),
                 LF_STR("container_id", req->att.container_id), LF_STR("ifname", req->att.ifname),
                 LF_STR("pod", req->pod_name), LF_STR("namespace", req->pod_namespace),
                 LF_INT("store_us", store_us));
        if (lease.egress_ip[0])
                log_info("assigned an egress address", LF_STR("egress_ip", lease.egress_ip),
                         LF_STR("container_id", req->att.container_id));
        *closed = send_reply(s, c, &reply) < 0;
        return 0;
}

static void no_address(server *s, struct conn *c, int64_t waited_ms) {
        struct server_pool_status st = { .ready = false };
        if (s->o.hooks.status)
                s->o.hooks.status(s->o.hooks.userdata, &st);
        char msg[PROTO_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "no free address after waiting %lld ms: %s", (long long)waited_ms,
                 st.reason[0] ? st.reason : "the pool is still growing");
        metrics_inc(s->o.metrics, METRICS_NO_ADDRESS);
        metrics_observe_add_wait(s->o.metrics, (uint64_t)waited_ms);
        send_error(s, c, PROTO_E_NO_ADDRESS, msg, true);
}

static void wake_reconciler(server *s) {
        if (s->o.hooks.wake)
                s->o.hooks.wake(s->o.hooks.userdata, atomic_load(&s->n_waiting));
}

/* The store is being rebuilt (it was lost): its leases are not known yet, so nothing is handed out or released. */
static bool on_hold(server *s, char reason[SERVER_REASON_MAX]) {
        struct server_pool_status st = { .ready = true };
        if (s->o.hooks.status)
                s->o.hooks.status(s->o.hooks.userdata, &st);
        if (reason)
                snprintf(reason, SERVER_REASON_MAX, "%s", st.reason);
        return st.hold;
}

static bool refuse_on_hold(server *s, struct conn *c, const char *op) {
        char why[SERVER_REASON_MAX], msg[PROTO_ERROR_MSG_MAX];
        if (!on_hold(s, why))
                return false;
        snprintf(msg, sizeof msg, "%s must wait: %s; try again", op, why);
        send_error(s, c, PROTO_E_INTERNAL, msg, true);
        return true;
}

static void op_add(server *s, struct conn *c, struct proto_request *req) {
        bool closed;
        metrics_inc(s->o.metrics, METRICS_ADD_REQUESTS);
        /* On hold, an ADD waits as for an empty pool: it is served once the leases are known. */
        bool held = on_hold(s, NULL);
        if (!held && try_add(s, c, req, &closed) == 0) {
                if (!closed)
                        metrics_observe_add_wait(s->o.metrics, 0);
                wake_reconciler(s); /* one address fewer: the warm target may want more */
                return;
        }
        if (s->o.add_wait_ms <= 0) {
                if (!refuse_on_hold(s, c, "ADD"))
                        no_address(s, c, 0);
                wake_reconciler(s);
                return;
        }
        /* Wait: keep the request, wake the reconciler, answer when an address arrives. */
        metrics_inc(s->o.metrics, METRICS_ADD_WAITED);
        c->req = *req;
        memset(req, 0, sizeof *req); /* the connection owns it now */
        c->waiting = true;
        c->wait_started = vtime_mono_ms();
        c->deadline = c->wait_started + s->o.add_wait_ms;
        if (s->waiting_tail)
                s->waiting_tail->next_waiting = c;
        else
                s->waiting_head = c;
        s->waiting_tail = c;
        atomic_fetch_add(&s->n_waiting, 1);
        log_info("pool empty: ADD waits for an address", LF_STR("container_id", c->req.att.container_id),
                 LF_INT("waiting", atomic_load(&s->n_waiting)));
        wake_reconciler(s);
}

/* Retry every waiting ADD, first come first served, until the pool runs dry. */
static void serve_waiting(server *s) {
        int served = 0;
        if (s->waiting_head && on_hold(s, NULL))
                return;
        while (s->waiting_head) {
                struct conn *c = s->waiting_head;
                struct proto_request req = c->req;
                bool closed;
                if (try_add(s, c, &req, &closed) == -EAGAIN)
                        break;
                served++;
                if (closed)
                        continue; /* conn_close unlinked it */
                metrics_observe_add_wait(s->o.metrics, (uint64_t)(vtime_mono_ms() - c->wait_started));
                waiting_unlink(s, c);
        }
        if (served)
                wake_reconciler(s);
}

/* A DEL for an attachment whose ADD still waits: that ADD must not get an address later. */
static void cancel_waiting_add(server *s, const struct proto_attachment *att) {
        for (struct conn *w = s->waiting_head; w; w = w->next_waiting)
                if (strcmp(w->req.att.container_id, att->container_id) == 0 &&
                    strcmp(w->req.att.ifname, att->ifname) == 0) {
                        waiting_unlink(s, w);
                        send_error(s, w, PROTO_E_NO_ADDRESS, "the attachment was deleted while its ADD waited",
                                   false);
                        return;
                }
}

/* The host veth a DEL hands over: the one the plugin names, or for a pod
 * taken over from aws-node, which the plugin cannot name, the lease's
 * (awsnode-import.h). */
static const char *del_veth(const struct proto_request *req, const struct store_lease *lease) {
        return req->host_veth[0] || !lease ? req->host_veth : lease->host_veth;
}

/* The pod's rules and veth go before its address is released, so the next
 * pod given the address cannot lose its own rules to this DEL. When its rules
 * cannot be removed the address is kept (-1): the DEL is refused with "try
 * again", the plugin cleans up from its prevResult while the address is
 * still held, and the pod's vanished veth frees the address later (sync.h). */
static int unwire(server *s, const struct proto_request *req, const struct store_lease *lease,
                  struct proto_reply *reply) {
        struct errmsg err = { 0 };
        /* IPv6 mode: the plugin removes the pod's IPv6 wiring and egress link itself (its fallback path) */
        if (!s->o.podnet || s->o.ipv6 || (lease && strchr(lease->ip, ':')))
                return 0;
        int r = podnet_unwire(s->o.podnet, &req->att, lease ? lease->ip : NULL, lease ? (uint32_t)lease->route_table : 0,
                              del_veth(req, lease), &reply->veth_queued, &err);
        if (r < 0) {
                log_warn("could not remove a deleted pod's rules; keeping its address", LF_STR("container_id",
                         req->att.container_id), LF_STR("error", errmsg_text(&err, r)));
                return r;
        }
        reply->unwired = true;
        return 0;
}

static void log_released(const struct proto_request *req, const struct store_lease *lease, int64_t t0,
                         int64_t t_reply, int64_t t1) {
        log_info("released address", LF_STR("ip", lease->ip), LF_STR("container_id", req->att.container_id),
                 LF_STR("ifname", req->att.ifname), LF_STR("reason", req->reason), LF_INT("unwire_us", t1 - t0),
                 LF_INT("reply_us", t_reply - t0), LF_INT("store_us", mono_us() - t1));
}

/* What a DEL's answer says of the released lease: its address, table and egress address. */
static void del_reply_address(const struct store_lease *l, struct proto_address *a) {
        snprintf(a->ip, sizeof a->ip, "%s", l->ip);
        a->route_table = (uint32_t)l->route_table;
        snprintf(a->egress_ip, sizeof a->egress_ip, "%s", l->egress_ip);
}

/* The DEL as it always was: unwire, release, then answer (IPv6, no podnet,
 * or a store that may not commit: the answer must say whether it did). */
static void del_then_answer(server *s, struct conn *c, const struct proto_request *req, int looked,
                            struct store_lease *lease, int64_t t0) {
        struct proto_reply reply = { .op = PROTO_OP_DEL, .ok = true };
        if (unwire(s, req, looked == 0 ? lease : NULL, &reply) < 0) {
                send_error(s, c, PROTO_E_INTERNAL, "could not remove the pod's rules; see vpc-ipamd's log", true);
                return;
        }
        int64_t t1 = mono_us();
        int r = store_release(s->o.store, req->att.container_id, req->att.ifname, vtime_wall_ms(), s->o.cooldown_ms,
                              lease);
        if (r < 0) {
                /* Not a success: the lease would stay, silently. The plugin answers "try
                 * again" (CNI 11) and the runtime repeats the DEL; should it not, the
                 * pod's vanished veth frees the address once the store commits (sync.h). */
                log_error_errno(r, "could not release an address; the DEL must be retried",
                                LF_STR("container_id", req->att.container_id));
                send_error(s, c, PROTO_E_INTERNAL, "the pool store could not record the release; try again", true);
                return;
        }
        if (r == 1) {
                reply.addr.has_ip = true;
                del_reply_address(lease, &reply.addr);
        }
        int64_t t_reply = mono_us();
        send_reply(s, c, &reply);
        if (r == 1) {
                log_released(req, lease, t0, t_reply, t1);
                wake_reconciler(s);
        }
}

/* The answer of a DEL answered first; *ret_ifindex is the veth podnet
 * claimed (reply.veth_queued), 0 if none. Returns when it was sent (µs). */
static int64_t answer_first(server *s, struct conn *c, const struct proto_request *req,
                            const struct store_lease *held, const char *veth, int *ret_ifindex) {
        struct proto_reply reply = { .op = PROTO_OP_DEL, .ok = true, .unwired = true };
        *ret_ifindex = 0;
        reply.veth_queued = podnet_claim_veth(s->o.podnet, &req->att, veth, ret_ifindex);  /* untouched if not */
        if (held) {
                reply.addr.has_ip = true;
                del_reply_address(held, &reply.addr);
        }
        int64_t t = mono_us();
        send_reply(s, c, &reply);
        return t;
}

/* After the answer: the rules and routes, then the release (kept when they stay). */
static void release_after_answer(server *s, const struct proto_request *req, struct store_lease *lease, int64_t t0,
                                 int64_t t_reply) {
        struct errmsg err = { 0 };
        int r = podnet_unroute(s->o.podnet, lease->ip, (uint32_t)lease->route_table, &err);
        if (r < 0) {
                log_warn("could not remove a deleted pod's rules; keeping its address until the pod is gone",
                         LF_STR("container_id", req->att.container_id), LF_STR("error", errmsg_text(&err, r)));
                return;
        }
        int64_t t1 = mono_us();
        r = store_release(s->o.store, req->att.container_id, req->att.ifname, vtime_wall_ms(), s->o.cooldown_ms,
                          lease);
        if (r < 0)
                log_error_errno(r, "could not release an address after its DEL; it is released once the pod is gone",
                                LF_STR("container_id", req->att.container_id));
        if (r != 1)
                return;
        log_released(req, lease, t0, t_reply, t1);
        wake_reconciler(s);
}

/*
 * A DEL answered first (IPv4 with podnet, a ready daemon). Before the
 * answer only the veth the request names is read, to tell whether it is
 * this attachment's (so reply.veth_queued is exact). After it, on this
 * thread and before it reads another request, the veth is taken down by
 * that ifindex and queued for deletion, the rules and routes go, and the
 * address is released, in this order: the pod cannot send from the address
 * once another may hold it, and no ADD can be given it before its rules are
 * gone. The runtime no longer waits for them (taking a link down alone
 * costs ~0.35 ms: the kernel waits for an RCU grace period). Should the
 * rules fail, or the process die before the release, the address stays
 * held (never handed out twice) until the reconciler sees the pod gone,
 * releases it and removes its rules (sync.h); a veth left up goes with its
 * namespace. A store write that failed makes the daemon not ready, and the
 * DEL is then answered after the release (del_then_answer), which it can
 * report.
 */
static void answer_then_del(server *s, struct conn *c, const struct proto_request *req, int looked,
                            struct store_lease *lease, int64_t t0) {
        const char *veth = del_veth(req, looked == 0 ? lease : NULL);
        int ifindex;
        int64_t t_reply = answer_first(s, c, req, looked == 0 ? lease : NULL, veth, &ifindex);
        if (ifindex > 0)
                podnet_drop_veth(s->o.podnet, ifindex, veth);
        if (looked == 0)
                release_after_answer(s, req, lease, t0, t_reply);
}

/* IPv4 with podnet and a store that commits: the DEL can be answered before the release. */
static bool answers_first(server *s, const struct store_lease *lease) {
        if (!s->o.podnet || s->o.ipv6 || (lease && strchr(lease->ip, ':')))
                return false;
        struct server_pool_status st = { .ready = true };
        if (s->o.hooks.status)
                s->o.hooks.status(s->o.hooks.userdata, &st);
        return st.ready;
}

static void op_del(server *s, struct conn *c, const struct proto_request *req) {
        struct store_lease lease;
        metrics_inc(s->o.metrics, METRICS_DEL_REQUESTS);
        if (refuse_on_hold(s, c, "DEL"))
                return;
        cancel_waiting_add(s, &req->att);
        int64_t t0 = mono_us();
        int r = store_lookup(s->o.store, req->att.container_id, req->att.ifname, &lease);
        if (r < 0 && r != -ENOENT) {
                log_error_errno(r, "could not look up an address", LF_STR("container_id", req->att.container_id));
                send_error(s, c, PROTO_E_INTERNAL, "the pool store failed; see vpc-ipamd's log", true);
                return;
        }
        if (answers_first(s, r == 0 ? &lease : NULL))
                answer_then_del(s, c, req, r, &lease, t0);
        else
                del_then_answer(s, c, req, r, &lease, t0);
}

static void op_check(server *s, struct conn *c, const struct proto_request *req) {
        struct store_lease lease;
        int r = store_lookup(s->o.store, req->att.container_id, req->att.ifname, &lease);
        if (r == -ENOENT) {
                char msg[PROTO_ERROR_MSG_MAX];
                snprintf(msg, sizeof msg, "no address is assigned to container %.64s interface %s",
                         req->att.container_id, req->att.ifname);
                send_error(s, c, PROTO_E_UNKNOWN_CONTAINER, msg, false);
                return;
        }
        if (r < 0) {
                send_error(s, c, PROTO_E_INTERNAL, "the pool store failed; see vpc-ipamd's log", true);
                return;
        }
        struct proto_reply reply = { .op = PROTO_OP_CHECK, .ok = true };
        fill_address(s, &lease, &reply.addr);
        send_reply(s, c, &reply);
}

static void op_gc(server *s, struct conn *c, const struct proto_request *req) {
        struct store_key *keys = calloc(req->n_valid ? req->n_valid : 1, sizeof *keys);
        struct store_lease *gone = NULL;
        size_t n_gone = 0;
        if (!keys) {
                send_error(s, c, PROTO_E_INTERNAL, "out of memory", true);
                return;
        }
        for (size_t i = 0; i < req->n_valid; i++)
                keys[i] = (struct store_key){ req->valid[i].container_id, req->valid[i].ifname };
        /* the plugin removes the rules of what this releases, after the reply */
        int64_t rest = s->o.cooldown_ms > PODNET_RELEASE_REST_MS ? s->o.cooldown_ms : PODNET_RELEASE_REST_MS;
        int r = store_gc(s->o.store, keys, req->n_valid, vtime_wall_ms(), rest, &gone, &n_gone);
        free(keys);
        if (r < 0) {
                send_error(s, c, PROTO_E_INTERNAL, "the pool store failed; see vpc-ipamd's log", true);
                return;
        }
        struct proto_reply reply = { .op = PROTO_OP_GC, .ok = true };
        reply.released = calloc(n_gone ? n_gone : 1, sizeof *reply.released);
        for (size_t i = 0; reply.released && i < n_gone; i++) {
                snprintf(reply.released[reply.n_released++], PROTO_IP_MAX, "%s", gone[i].ip);
                log_info("released address of a stale attachment (CNI GC)", LF_STR("ip", gone[i].ip),
                         LF_STR("container_id", gone[i].container_id));
        }
        free(gone);
        send_reply(s, c, &reply);
        if (n_gone)
                wake_reconciler(s);
}

static void op_status(server *s, struct conn *c) {
        struct server_pool_status st = { .ready = true };
        struct store_stats stats = { 0 };
        if (s->o.hooks.status)
                s->o.hooks.status(s->o.hooks.userdata, &st);
        int r = store_stats(s->o.store, vtime_wall_ms(), &stats);
        struct proto_reply reply = { .op = PROTO_OP_STATUS, .ok = true, .ready = st.ready && r == 0 };
        reply.available = (uint32_t)stats.available;
        if (s->o.ipv6 && stats.ipv6_prefixes)   /* 2^48 per /80, less those held or cooling: more than fits */
                reply.available = UINT32_MAX;
        const char *reason = r < 0 ? "the pool store failed" : st.reason;
        bool egress = s->o.ipv6 ? s->o.v4_egress && stats.ipv6_prefixes : s->o.v6_egress;
        if (r == 0 && egress) {         /* an ADD needs one of each */
                uint32_t e = stats.egress_available > 0 ? (uint32_t)stats.egress_available : 0;
                reply.available = e < reply.available ? e : reply.available;
                if (e == 0) {
                        reply.ready = false;
                        reason = s->o.ipv6 ? "no IPv4 egress address is free (169.254.172.0/22 held or cooling down)"
                                           : "no IPv6 egress address is free (fd00::ac:0/118 held or cooling down)";
                }
        }
        snprintf(reply.reason, sizeof reply.reason, "%s", reason);
        send_reply(s, c, &reply);
}

/* --- read-only queries for vpc-ipamctl (the JSON is poolview's) ------------------ */

static void op_query(server *s, struct conn *c, enum proto_op op) {
        int64_t now = vtime_wall_ms();
        cJSON *value = NULL;
        if (op == PROTO_OP_POOL) {
                struct server_pool_status ps = { .ready = true };
                if (s->o.hooks.status)
                        s->o.hooks.status(s->o.hooks.userdata, &ps);
                value = poolview_pool(s->o.store, now, atomic_load(&s->n_waiting), ps.ready, ps.reason);
                if (value) /* for the liveness probe (vpc-ipamctl live) */
                        cJSON_AddNumberToObject(value, "stalled_ms", (double)(ps.stalled_ms > 0 ? ps.stalled_ms : 0));
                if (value && s->o.instance_type && s->o.instance_type[0])  /* for vpc-ipamctl max-pods */
                        cJSON_AddStringToObject(value, "instance_type", s->o.instance_type);
        } else if (op == PROTO_OP_ENIS) {
                value = poolview_enis(s->o.store, now);
        } else if (op == PROTO_OP_PODS) {
                value = poolview_pods(s->o.store);
        } else {
                value = poolview_intents(s->o.store);
        }
        if (!value) {
                send_error(s, c, PROTO_E_INTERNAL, "could not read the pool store", true);
                return;
        }
        struct proto_reply reply = { .op = op, .ok = true, .result = cJSON_CreateObject() };
        cJSON_AddItemToObject(reply.result, proto_op_name(op), value);
        send_reply(s, c, &reply);
}

/* --- reading requests -------------------------------------------------------------- */

static void dispatch(server *s, struct conn *c, struct proto_request *req) {
        switch (req->op) {
        case PROTO_OP_ADD: op_add(s, c, req); break;
        case PROTO_OP_DEL: op_del(s, c, req); break;
        case PROTO_OP_CHECK: op_check(s, c, req); break;
        case PROTO_OP_GC: op_gc(s, c, req); break;
        case PROTO_OP_STATUS: op_status(s, c); break;
        default: op_query(s, c, req->op); break;
        }
}

/* A message of n bytes c may not send now (a refused peer, an ADD waiting, too big): answer it, true. */
static bool refuse_message(server *s, struct conn *c, ssize_t n) {
        if (c->refused) {
                if (send_error(s, c, E_PERMISSION, "vpc-ipamd serves root (uid 0) only", false) == 0)
                        conn_close(s, c);
                return true;
        }
        if (c->waiting) {
                log_refusal(s, REFUSE_MESSAGE, "refused a message", c, "a request arrived while an ADD waits");
                if (send_error(s, c, PROTO_E_BAD_REQUEST, "one request at a time: an ADD is still waiting", false) == 0)
                        conn_close(s, c);
                return true;
        }
        if (n <= PROTO_MSG_MAX)
                return false;
        char msg[128];
        metrics_inc(s->o.metrics, METRICS_BAD_REQUESTS);
        snprintf(msg, sizeof msg, "message of %zd bytes exceeds the %d-byte limit", n, PROTO_MSG_MAX);
        log_refusal(s, REFUSE_MESSAGE, "refused a message", c, msg);
        send_error(s, c, PROTO_E_BAD_REQUEST, msg, false);
        return true;
}

static void conn_readable(server *s, struct conn *c, char *buf) {
        ssize_t n = recv(c->fd, buf, PROTO_MSG_MAX + 1, MSG_TRUNC | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                conn_close(s, c); /* the peer went away (a waiting ADD is simply dropped) */
                return;
        }
        if (n < 0 || refuse_message(s, c, n))
                return;
        c->active = vtime_mono_ms();
        struct proto_request req;
        struct proto_error perr = { 0 };
        int r = proto_request_decode(buf, (size_t)n, &req, &perr);
        if (r == -ENOMEM) {             /* the daemon's failure, not the client's: try again */
                log_error_errno(r, "could not decode a request");
                send_error(s, c, PROTO_E_INTERNAL, "vpc-ipamd is out of memory", true);
                return;
        }
        if (r < 0) {
                metrics_inc(s->o.metrics, METRICS_BAD_REQUESTS);
                log_refusal(s, REFUSE_MESSAGE, "refused a message", c, perr.msg);
                send_error(s, c, perr.code[0] ? perr.code : PROTO_E_BAD_REQUEST,
                           perr.msg[0] ? perr.msg : "not a valid request", false);
                return;
        }
        dispatch(s, c, &req);
        proto_request_done(&req);
}

/* Close idle connections and answer ADDs whose wait is over. */
static void expire(server *s) {
        int64_t now = vtime_mono_ms();
        struct conn *next;
        for (struct conn *c = s->conns; c; c = next) {
                next = c->next;
                if (c->deadline > now)
                        continue;
                if (c->waiting) {
                        int64_t waited = now - c->wait_started;
                        waiting_unlink(s, c);
                        no_address(s, c, waited);
                        continue;
                }
                log_refusal(s, REFUSE_IDLE, "closed an idle client", c, "no request before the deadline");
                if (send_error(s, c, PROTO_E_BAD_REQUEST, "no request arrived before the deadline", false) == 0)
                        conn_close(s, c);
        }
}

/* Milliseconds until the soonest deadline, for epoll_wait; -1 when none. */
static int next_timeout(server *s) {
        int64_t now = vtime_mono_ms(), soonest = INT64_MAX;
        for (struct conn *c = s->conns; c; c = c->next)
                if (c->deadline < soonest)
                        soonest = c->deadline;
        if (soonest == INT64_MAX)
                return -1;
        return soonest <= now ? 0 : (int)(soonest - now < 60000 ? soonest - now : 60000);
}

static void drain(int fd) {
        uint64_t v;
        while (read(fd, &v, sizeof v) > 0)
                ;
}

static void shutdown_clients(server *s) {
        while (s->waiting_head) {
                struct conn *c = s->waiting_head;
                waiting_unlink(s, c);
                send_error(s, c, PROTO_E_SHUTTING_DOWN, "vpc-ipamd is stopping; try again shortly", true);
        }
        while (s->conns)
                conn_close(s, s->conns);
}

int server_run(server *s) {
        struct epoll_event events[64];
        char *buf = malloc(PROTO_MSG_MAX + 1);
        if (!buf)
                return -ENOMEM;
        bool stop = false;
        while (!stop) {
                int n = epoll_wait(s->epoll_fd, events, 64, next_timeout(s));
                if (n < 0 && errno != EINTR) {
                        free(buf);
                        return -errno;
                }
                for (int i = 0; i < n; i++) {
                        void *p = events[i].data.ptr;
                        if (p == &tag_stop) {
                                stop = true;
                        } else if (p == &tag_listen) {
                                accept_all(s);
                        } else if (p == &tag_changed) {
                                drain(s->changed_fd);
                                serve_waiting(s);
                        } else if (((struct conn *)p)->dead) {
                                continue; /* closed earlier in this batch */
                        } else if (events[i].events & EPOLLIN) {
                                conn_readable(s, p, buf);
                        } else {
                                conn_close(s, p); /* hang-up with nothing to read */
                        }
                }
                expire(s);
                free_dead(s);
        }
        shutdown_clients(s);
        free_dead(s);
        free(buf);
        return 0;
}

static int notify(int fd) {
        uint64_t one = 1;
        return write(fd, &one, sizeof one) == sizeof one ? 0 : -errno;
}

int server_stop(server *s) {
        return notify(s->stop_fd);
}

void server_close_listener(server *s) {
        if (s->listen_fd < 0)
                return;
        epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, s->listen_fd, NULL);
        close(s->listen_fd);
        unlink(s->socket_path);
        s->listen_fd = -1;
}

int server_pool_changed(server *s) {
        return notify(s->changed_fd);
}

int server_waiting(server *s) {
        return atomic_load(&s->n_waiting);
}

static int watch(server *s, int fd, void *tag) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };
        return epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int server_new(const struct server_options *opts, server **ret, struct errmsg *err) {
        if (!opts || !opts->socket_path || !opts->store)
                return errmsg_set(err, -EINVAL, "server: socket path and store are required");
        server *s = calloc(1, sizeof *s);
        if (!s)
                return errmsg_set(err, -ENOMEM, "server: out of memory");
        s->o = *opts;
        store_v6_egress(opts->store, opts->v6_egress && !opts->ipv6);
        s->listen_fd = s->epoll_fd = s->stop_fd = s->changed_fd = -1;
        s->socket_path = strdup(opts->socket_path);
        int r = s->socket_path ? mkdirs_parent(opts->socket_path, err) : -ENOMEM;
        if (r >= 0 && (r = proto_listen(opts->socket_path, 128, &s->listen_fd)) < 0)
                errmsg_set(err, r, "cannot listen on %s: %s", opts->socket_path, strerror(-r));
        if (r >= 0 && chmod(opts->socket_path, 0600) < 0)
                r = errmsg_set(err, -errno, "cannot chmod %s: %s", opts->socket_path, strerror(errno));
        if (r >= 0) {
                s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
                s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                s->changed_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                if (s->epoll_fd < 0 || s->stop_fd < 0 || s->changed_fd < 0)
                        r = errmsg_set(err, -errno, "server: %s", strerror(errno));
        }
        if (r >= 0 && ((r = watch(s, s->listen_fd, &tag_listen)) < 0 || (r = watch(s, s->stop_fd, &tag_stop)) < 0 ||
                       (r = watch(s, s->changed_fd, &tag_changed)) < 0))
                errmsg_set(err, r, "server: epoll: %s", strerror(-r));
        if (r < 0) {
                server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

server *server_free(server *s) {
        if (!s)
                return NULL;
        while (s->conns)
                conn_close(s, s->conns);
        free_dead(s);
        server_close_listener(s);
        if (s->epoll_fd >= 0)
                close(s->epoll_fd);
        if (s->stop_fd >= 0)
                close(s->stop_fd);
        if (s->changed_fd >= 0)
                close(s->changed_fd);
        free(s->socket_path);
        free(s);
        return NULL;
}

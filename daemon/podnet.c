/*
 * podnet: rules and veth of a deleted pod (see podnet.h).
 *
 * Two hostnet handles: `now` is used by podnet_unwire() and its parts on
 * the caller's thread, `later` only by the deleting thread. The queue is a
 * fixed ring of (ifindex, name) under one mutex; the thread sleeps on a
 * condition variable while it is empty. A link is deleted by index and only
 * while it still has the name it had when queued, so an index the kernel
 * gave to a new link is never touched.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostnet.h"
#include "log.h"
#include "podnet.h"
#include "vtime.h"

struct doomed {
        int ifindex;
        char name[HOSTNET_IFNAMSIZ];
};

struct podnet {
        hostnet *now, *later;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct doomed ring[PODNET_QUEUE_MAX];
        unsigned head, n;               /* under lock */
        bool stop;                      /* under lock */
        int64_t stop_by;                /* under lock: when stopping, delete what is queued until then */
        metrics *metrics;
};

static bool take(podnet *p, struct doomed *ret) {
        if (p->n == 0)
                return false;
        *ret = p->ring[p->head];
        p->head = (p->head + 1) % PODNET_QUEUE_MAX;
        p->n--;
        return true;
}

static void *loop(void *arg) {
        podnet *p = arg;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                struct doomed d;
                if (p->stop && vtime_mono_ms() >= p->stop_by) {
                        if (p->n)
                                log_warn("stopping with veths of deleted pods left down; the next start deletes them",
                                         LF_INT("count", p->n));
                        break;
                }
                if (!take(p, &d)) {
                        if (p->stop)
                                break;
                        pthread_cond_wait(&p->cond, &p->lock);
                        continue;
                }
                pthread_mutex_unlock(&p->lock);
                struct errmsg err = { 0 };
                int r = hostnet_delete_link(p->later, d.ifindex, d.name, &err);
                if (r < 0)
                        log_warn("could not delete a deleted pod's veth; it stays down until its namespace goes",
                                 LF_STR("veth", d.name), LF_STR("error", err.text));
                if (r != 0)     /* 0: gone already (its namespace, or the plugin's GC, took it) */
                        metrics_inc(p->metrics, r < 0 ? METRICS_POD_VETH_DELETE_ERRORS : METRICS_POD_VETHS_DELETED);
                pthread_mutex_lock(&p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int podnet_new(metrics *m, podnet **ret, struct errmsg *err) {
        podnet *p = calloc(1, sizeof *p);
        if (!p)
                return errmsg_set(err, -ENOMEM, "podnet: out of memory");
        p->metrics = m;
        int r = hostnet_open(&p->now, err);
        if (r >= 0)
                r = hostnet_open(&p->later, err);
        if (r < 0) {
                hostnet_free(p->now);
                free(p);
                return r;
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        r = -pthread_create(&p->thread, NULL, loop, p);
        if (r < 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                hostnet_free(p->now);
                hostnet_free(p->later);
                free(p);
                return errmsg_set(err, r, "podnet: cannot start its thread");
        }
        *ret = p;
        return 0;
}

podnet *podnet_free(podnet *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        p->stop_by = vtime_mono_ms() + PODNET_DRAIN_MS;
        pthread_cond_signal(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);          /* the queue is empty, or the time is up */
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        hostnet_free(p->now);
        hostnet_free(p->later);
        free(p);
        return NULL;
}

static bool give(podnet *p, int ifindex, const char *name) {
        pthread_mutex_lock(&p->lock);
        bool room = p->n < PODNET_QUEUE_MAX && !p->stop;
        if (room) {
                struct doomed *d = &p->ring[(p->head + p->n) % PODNET_QUEUE_MAX];
                d->ifindex = ifindex;
                snprintf(d->name, sizeof d->name, "%s", name);
                p->n++;
                pthread_cond_signal(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
        return room;
}

int podnet_unroute(podnet *p, const char *pod_ip, uint32_t route_table, struct errmsg *err) {
        return pod_ip && *pod_ip ? hostnet_remove_pod_routing(p->now, pod_ip, route_table, err) : 0;
}

static void warn_veth(const char *veth, const struct errmsg *err, int r) {
        log_warn("could not take a deleted pod's veth down", LF_STR("veth", veth), LF_STR("error", errmsg_text(err, r)));
}

static bool has_room(podnet *p) {
        pthread_mutex_lock(&p->lock);
        bool room = p->n < PODNET_QUEUE_MAX && !p->stop;
        pthread_mutex_unlock(&p->lock);
        return room;
}

bool podnet_claim_veth(podnet *p, const struct proto_attachment *att, const char *host_veth, int *ret_ifindex) {
        char alias[PROTO_VETH_ALIAS_MAX];
        struct errmsg err = { 0 };
        if (!host_veth || !*host_veth || !has_room(p))
                return false;
        proto_veth_alias(att->container_id, att->ifname, alias);
        int r = hostnet_pod_veth_find(p->now, host_veth, alias, ret_ifindex, &err);
        if (r < 0 && r != -ENOENT)
                warn_veth(host_veth, &err, r);
        return r == 0;
}

void podnet_drop_veth(podnet *p, int ifindex, const char *host_veth) {
        struct errmsg err = { 0 };
        int r = hostnet_link_down(p->now, ifindex, &err);
        if (r == -ENOENT)
                return;                 /* gone with its namespace */
        if (r < 0)
                warn_veth(host_veth, &err, r);  /* deleted all the same */
        bool queued = give(p, ifindex, host_veth);
        assert(queued);                 /* claimed with room, and only this thread gives */
        (void)queued;
}

/* The veth half of podnet_unwire(): true when podnet took it. */
static bool take_veth(podnet *p, const struct proto_attachment *att, const char *host_veth) {
        if (!host_veth || !*host_veth)
                return false;
        char alias[PROTO_VETH_ALIAS_MAX];
        int ifindex = 0;
        proto_veth_alias(att->container_id, att->ifname, alias);
        struct errmsg err = { 0 };
        int r = hostnet_pod_veth_down(p->now, host_veth, alias, &ifindex, &err);
        if (r < 0 && r != -ENOENT)      /* the plugin deletes the veth itself */
                log_warn("could not take a deleted pod's veth down; leaving it to the plugin",
                         LF_STR("veth", host_veth), LF_STR("error", errmsg_text(&err, r)));
        return r == 0 && give(p, ifindex, host_veth);
}

int podnet_unwire(podnet *p, const struct proto_attachment *att, const char *pod_ip, uint32_t route_table,
                  const char *host_veth, bool *ret_veth_queued, struct errmsg *err) {
        *ret_veth_queued = false;
        int r = podnet_unroute(p, pod_ip, route_table, err);
        if (r < 0)
                return r;       /* the veth is left to the plugin with the rest */
        *ret_veth_queued = take_veth(p, att, host_veth);
        return 0;
}

/* "vpc-cni:<ifname>:<container id>" into its parts; false if it is not one. */
static bool alias_parse(const char *alias, struct proto_attachment *ret) {
        const char *rest = alias + strlen(PROTO_VETH_ALIAS_PREFIX);
        const char *colon = strchr(rest, ':');
        if (strncmp(alias, PROTO_VETH_ALIAS_PREFIX, strlen(PROTO_VETH_ALIAS_PREFIX)) != 0 || !colon ||
            colon == rest || (size_t)(colon - rest) > PROTO_IFNAME_MAX || !colon[1])
                return false;
        snprintf(ret->ifname, sizeof ret->ifname, "%.*s", (int)(colon - rest), rest);
        snprintf(ret->container_id, sizeof ret->container_id, "%s", colon + 1);
        return true;
}

int podnet_sweep(podnet *p, podnet_leased_fn leased, void *userdata, unsigned *ret_queued, struct errmsg *err) {
        struct hostnet_link *links = NULL;
        size_t n = 0;
        *ret_queued = 0;
        int r = hostnet_list_aliased(p->now, PROTO_VETH_ALIAS_PREFIX, &links, &n, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                struct proto_attachment att;
                if (links[i].up || !alias_parse(links[i].alias, &att))
                        continue;
                r = leased(userdata, &att);
                if (r < 0)
                        break;
                if (r == 0 && give(p, links[i].ifindex, links[i].name)) {
                        (*ret_queued)++;
                        log_info("deleting the veth of a deleted pod that an earlier vpc-ipamd left",
                                 LF_STR("veth", links[i].name), LF_STR("container_id", att.container_id));
                }
        }
        free(links);
        return r < 0 ? errmsg_set(err, r, "cannot tell whether a pod still holds an address: %s", strerror(-r)) : 0;
}

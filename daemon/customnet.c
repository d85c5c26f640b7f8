/*
 * customnet: the Kubernetes reads of custom networking and of the
 * unschedulable rule, on their own thread (see customnet.h).
 *
 * One read is: the Node, then (custom networking) the ENIConfig it names.
 * Its outcome becomes the published view under the lock; the reconciler only
 * ever copies the view, so no API call is on its path or the server's. The
 * k8s client is made on the thread, lazily, so missing service-account files
 * are a read failure retried like any other, not a failed start.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "customnet.h"
#include "log.h"
#include "vtime.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

struct customnet {
        struct customnet_options o;
        char annotation_key[CUSTOMNET_NAME_MAX], label_key[CUSTOMNET_NAME_MAX];
        k8s_client *k8s;                /* the thread's only */
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool stop, asked;               /* under lock */
        unsigned requested;             /* under lock: the last ticket customnet_refresh gave */
        bool muted, calling;            /* under lock: customnet_mute; options.changed running */
        struct customnet_view view;     /* under lock */
};

static const char *kv_or(const char *v, const char *dflt) {
        return v && *v ? v : dflt;
}

const char *customnet_config_name(const struct k8s_node *n, const char *annotation_key, const char *label_key) {
        const char *v = k8s_node_label(n, CUSTOMNET_EXTERNAL_LABEL);
        if (!v || !*v)
                v = k8s_node_annotation(n, kv_or(annotation_key, CUSTOMNET_DEFAULT_KEY));
        if (!v || !*v)
                v = k8s_node_label(n, kv_or(label_key, CUSTOMNET_DEFAULT_KEY));
        return v && *v ? v : "default";
}

/* The ENIConfig's fields into the view being built; its failure as the view's error. */
static int read_eniconfig(customnet *c, const char *name, struct customnet_view *v, struct errmsg *err) {
        struct k8s_eniconfig *e = NULL;
        int r = k8s_get_eniconfig(c->k8s, name, &e, err);
        snprintf(v->name, sizeof v->name, "%s", name);
        if (r < 0)
                return r;
        if (!e->subnet[0] || strlen(e->subnet) >= sizeof v->subnet)
                r = errmsg_set(err, -EINVAL, "eniconfig %s has no usable spec.subnet", name);
        else if (e->n_security_groups > CUSTOMNET_MAX_SGS)
                r = errmsg_set(err, -E2BIG, "eniconfig %s lists more than %d security groups", name,
                               CUSTOMNET_MAX_SGS);
        for (size_t i = 0; r == 0 && i < e->n_security_groups; i++) {
                if (strlen(e->security_groups[i]) >= CUSTOMNET_ID_MAX)
                        r = errmsg_set(err, -EINVAL, "eniconfig %s: a security group id too long", name);
                else
                        snprintf(v->groups[i], CUSTOMNET_ID_MAX, "%s", e->security_groups[i]);
        }
        if (r == 0) {
                snprintf(v->subnet, sizeof v->subnet, "%s", e->subnet);
                v->n_groups = e->n_security_groups;
        }
        k8s_eniconfig_free(e);
        return r;
}

/* Is the failure a definite answer about the ENIConfig (the subnet must go), or the API being away? */
static bool definite(int r) {
        return r == -ENOENT || r == -EINVAL || r == -E2BIG || r == -EBADMSG;
}

/* One read into *v (a copy of the current view). */
static int read_once(customnet *c, struct customnet_view *v, struct errmsg *err) {
        int r = c->k8s ? 0 : k8s_new(&c->o.k8s, &c->k8s, err);
        struct k8s_node *n = NULL;
        if (r == 0)
                r = k8s_get_node(c->k8s, NULL, &n, err);
        if (r < 0)
                return r;
        v->node_read = true;
        v->unschedulable = k8s_node_has_taint(n, CUSTOMNET_UNSCHEDULABLE_TAINT, "NoSchedule");
        if (c->o.eniconfig) {
                char name[CUSTOMNET_NAME_MAX];
                snprintf(name, sizeof name, "%s", customnet_config_name(n, c->annotation_key, c->label_key));
                r = read_eniconfig(c, name, v, err);
                if (r < 0 && definite(r)) {
                        v->subnet[0] = '\0';
                        v->n_groups = 0;
                }
        }
        k8s_node_free(n);
        return r;
}

/* options.changed, unless muted; customnet_mute waits for a call in progress. */
static void notify(customnet *c) {
        pthread_mutex_lock(&c->lock);
        bool call = c->o.changed && !c->muted;
        c->calling = call;
        pthread_mutex_unlock(&c->lock);
        if (!call)
                return;
        c->o.changed(c->o.userdata);
        pthread_mutex_lock(&c->lock);
        c->calling = false;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
}

/* Publish a read's outcome; say so in the log when it changed what is known. */
static void publish(customnet *c, struct customnet_view *v, int r, const struct errmsg *err) {
        snprintf(v->error, sizeof v->error, "%s", r < 0 ? errmsg_text(err, r) : "");
        v->reads++;
        v->failures += r < 0;
        pthread_mutex_lock(&c->lock);
        bool changed = v->node_read != c->view.node_read ||   /* the first read: ENI actions may wait on it */
                       strcmp(v->subnet, c->view.subnet) != 0 || v->unschedulable != c->view.unschedulable ||
                       strcmp(v->error, c->view.error) != 0 || v->n_groups != c->view.n_groups ||
                       strcmp(v->name, c->view.name) != 0;
        bool served = v->served != c->view.served;
        c->view = *v;
        pthread_mutex_unlock(&c->lock);
        if (!changed) {
                if (served)
                        notify(c);      /* a refresh asked for: answered */
                return;
        }
        if (r < 0 && definite(r))       /* the API answered; detail names the object */
                log_warn("the Kubernetes API says the Node or its ENIConfig is missing or unusable; reading "
                         "again with back-off",
                         LF_STR("detail", v->error), LF_STR("eniconfig", v->name));
        else if (r < 0)
                log_warn("could not read from the Kubernetes API; retrying with back-off", LF_STR("detail", v->error),
                         LF_STR("eniconfig", v->name), LF_STR("subnet_in_use", v->subnet));
        else
                log_info("read the node from the Kubernetes API", LF_STR("eniconfig", v->name),
                         LF_STR("subnet", v->subnet), LF_INT("security_groups", v->n_groups),
                         LF_BOOL("unschedulable", v->unschedulable));
        notify(c);
}

/* Under the lock: sleep ms, or until asked or stopped. */
static void wait_ms(customnet *c, int ms) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
                until.tv_sec++, until.tv_nsec -= 1000000000L;
        while (!c->stop && !c->asked)
                if (pthread_cond_timedwait(&c->cond, &c->lock, &until) != 0)
                        break;
        c->asked = false;
}

static void *loop(void *arg) {
        customnet *c = arg;
        int backoff = 0;
        pthread_mutex_lock(&c->lock);
        while (!c->stop) {
                struct customnet_view v = c->view;
                unsigned serving = c->requested;        /* asked before this read began */
                pthread_mutex_unlock(&c->lock);
                struct errmsg err = { 0 };
                int r = read_once(c, &v, &err);
                if (r >= 0 || definite(r))
                        v.served = serving;     /* what the API server says now, be it "none" */
                publish(c, &v, r, &err);
                backoff = r < 0 ? (backoff ? backoff * 2 : BACKOFF_MIN_MS) : 0;
                backoff = backoff > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff;
                pthread_mutex_lock(&c->lock);
                wait_ms(c, r < 0 ? backoff : c->o.refresh_ms);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int customnet_start(const struct customnet_options *o, customnet **ret, struct errmsg *err) {
        customnet *c = calloc(1, sizeof *c);
        if (!c)
                return errmsg_set(err, -ENOMEM, "out of memory");
        c->o = *o;
        c->view.started_ms = vtime_mono_ms();
        c->o.refresh_ms = o->refresh_ms > 0 ? o->refresh_ms : CUSTOMNET_REFRESH_MS;
        snprintf(c->annotation_key, sizeof c->annotation_key, "%s", kv_or(o->annotation_key, CUSTOMNET_DEFAULT_KEY));
        snprintf(c->label_key, sizeof c->label_key, "%s", kv_or(o->label_key, CUSTOMNET_DEFAULT_KEY));
        struct awshttp_options *h = &c->o.k8s.http;
        h->connect_timeout_ms = h->connect_timeout_ms ? h->connect_timeout_ms : 2000;
        h->total_timeout_ms = h->total_timeout_ms ? h->total_timeout_ms : 5000;
        c->o.k8s.max_attempts = o->k8s.max_attempts ? o->k8s.max_attempts : 2;
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&c->lock, NULL);
        int r = -pthread_create(&c->thread, NULL, loop, c);
        if (r < 0) {
                pthread_cond_destroy(&c->cond);
                pthread_mutex_destroy(&c->lock);
                free(c);
                return errmsg_set(err, r, "cannot start the Kubernetes reader's thread");
        }
        *ret = c;
        return 0;
}

void customnet_mute(customnet *c) {
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->muted = true;
        while (c->calling)
                pthread_cond_wait(&c->cond, &c->lock);
        pthread_mutex_unlock(&c->lock);
}

customnet *customnet_stop(customnet *c) {
        if (!c)
                return NULL;
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        k8s_free(c->k8s);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

void customnet_view(customnet *c, struct customnet_view *ret) {
        pthread_mutex_lock(&c->lock);
        *ret = c->view;
        pthread_mutex_unlock(&c->lock);
}

unsigned customnet_refresh(customnet *c) {
        pthread_mutex_lock(&c->lock);
        c->asked = true;
        if (++c->requested == 0)
                c->requested = 1;
        unsigned ticket = c->requested;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return ticket;
}

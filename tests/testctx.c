/*
 * testctx: see testctx.h. Everything a case needs is in one heap struct so a
 * case reads as set-up, action, then what EC2 and the store hold.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "sync.h"
#include "testctx.h"
#include "testlib.h"

int64_t testctx_now = TESTCTX_START_MS;

static int64_t now_ms(void) {
        return testctx_now;
}

static void fill_node(struct testctx *t, const struct fakeec2_eni *primary) {
        struct node *n = &t->node;
        snprintf(n->instance_id, sizeof n->instance_id, "%s", FAKEEC2_INSTANCE);
        snprintf(n->instance_type, sizeof n->instance_type, "m5.large");
        snprintf(n->region, sizeof n->region, "us-west-2");
        snprintf(n->availability_zone, sizeof n->availability_zone, "us-west-2a");
        snprintf(n->primary_mac, sizeof n->primary_mac, "%s", primary->mac);
        snprintf(n->primary_eni_id, sizeof n->primary_eni_id, "%s", primary->id);
        snprintf(n->primary_ip, sizeof n->primary_ip, "%s", primary->primary_ip);
        snprintf(n->subnet_id, sizeof n->subnet_id, "%s", FAKEEC2_SUBNET);
        snprintf(n->subnet_cidr, sizeof n->subnet_cidr, "%s", FAKEEC2_SUBNET_CIDR);
        snprintf(n->security_groups[0], sizeof n->security_groups[0], "%s", FAKEEC2_SG);
        n->n_security_groups = 1;
        snprintf(n->vpc_cidrs[0], sizeof n->vpc_cidrs[0], "%s", FAKEEC2_SUBNET_CIDR);
        n->n_vpc_cidrs = 1;
        n->limits = (struct plan_limits){ .max_enis = 3, .ipv4_per_eni = 10 };
}

struct ipamd_ctx testctx_ctx_for(struct testctx *t, store *st, ec2_client *ec2, imds *m) {
        return (struct ipamd_ctx){ .ec2 = ec2, .imds = m, .store = st, .net = NULL, .metrics = t->metrics,
                                   .cfg = &t->cfg, .node = &t->node, .now_ms = now_ms };
}

struct testctx *testctx_new(size_t n_primary_ips) {
        struct testctx *t = calloc(1, sizeof *t);
        ck_assert_ptr_nonnull(t);
        testctx_now = TESTCTX_START_MS;
        fakeec2_start(&t->f);
        fakeec2_lock(&t->f);
        fill_node(t, fakeec2_add_eni(&t->f, TESTCTX_PRIMARY_ENI, FAKEEC2_INSTANCE, 0, n_primary_ips, false));
        fakeec2_unlock(&t->f);
        ipamd_config_defaults(&t->cfg);
        static unsigned n_stores;       /* one fresh store per context, also within a case */
        char name[32];
        snprintf(name, sizeof name, "pool-%u.db", n_stores++);
        snprintf(t->db, sizeof t->db, "%s", testlib_path(name));
        struct errmsg err = { 0 };
        ck_assert_msg(store_open(t->db, &t->st, &err) == 0, "store_open: %s", err.text);
        ck_assert_int_eq(metrics_new(&t->metrics), 0);
        t->ec2 = fakeec2_client(&t->f);
        t->imds = fakeec2_imds(&t->f);
        t->ctx = testctx_ctx_for(t, t->st, t->ec2, t->imds);
        return t;
}

void testctx_helpers(struct testctx *t, struct ipamd_ctx *o) {
        for (size_t i = 0; i < CTX_HELPERS; i++) {
                ck_assert_int_eq(store_open(t->db, &o->helpers[i].store, NULL), 0);
                o->helpers[i].ec2 = fakeec2_client(&t->f);
        }
}

void testctx_free(struct testctx *t) {
        for (size_t i = 0; i < CTX_HELPERS; i++) {
                store_close(t->ctx.helpers[i].store);
                ec2_client_free(t->ctx.helpers[i].ec2);
        }
        store_close(t->st);
        ec2_client_free(t->ec2);
        imds_free(t->imds);
        metrics_free(t->metrics);
        fakeec2_stop(&t->f);
        free(t);
}

static void child(struct testctx *t, int go, testctx_op op, void *arg) {
        char c;
        if (read(go, &c, 1) != 1)
                _exit(3);
        store *st = NULL;
        if (store_open(t->db, &st, NULL) < 0)
                _exit(4);
        ec2_client *ec2 = fakeec2_client(&t->f);
        imds *m = fakeec2_imds(&t->f);
        struct ipamd_ctx o = testctx_ctx_for(t, st, ec2, m);
        op(&o, arg);
        _exit(0);               /* not killed: the case fails on this */
}

void testctx_crash(struct testctx *t, enum ec2_action action, bool after_apply, testctx_op op, void *arg) {
        int go[2];
        ck_assert_int_eq(pipe(go), 0);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(go[1]);
                child(t, go[0], op, arg);
        }
        close(go[0]);
        /* the model knows whom to kill before the child makes its first call */
        fakeec2_lock(&t->f);
        t->f.crash_action = action;
        t->f.crash_after_apply = after_apply;
        t->f.crash_pid = pid;
        t->f.crashed = false;
        fakeec2_unlock(&t->f);
        ck_assert_int_eq(write(go[1], "g", 1), 1);
        close(go[1]);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        fakeec2_lock(&t->f);
        bool crashed = t->f.crashed;
        t->f.crash_pid = 0;
        fakeec2_unlock(&t->f);
        ck_assert_msg(crashed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "the child was not killed at %s (status %d)", ec2_action_name(action), status);
}

struct sync_report testctx_restart(struct testctx *t) {
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        int r = sync_with_ec2(&t->ctx, &rep, &err);
        ck_assert_msg(r == 0, "sync_with_ec2: %d %s", r, err.text);
        r = sync_intents(&t->ctx, &rep, &err);
        ck_assert_msg(r == 0, "sync_intents: %d %s", r, err.text);
        return rep;
}

int testctx_blocks(struct testctx *t, const char *eni_id) {
        struct store_eni se;
        if (store_eni_get(t->st, eni_id, &se) < 0)
                return -1;
        char (*b)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_blocks(t->st, eni_id, &b, &n), 0);
        free(b);
        return (int)n;
}

size_t testctx_open_intents(struct testctx *t) {
        struct store_intent *its = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_intents_open(t->st, &its, &n), 0);
        free(its);
        return n;
}

struct store_lease testctx_pod(struct testctx *t, const char *tag) {
        struct store_attachment a = { .container_id = tag, .ifname = "eth0", .pod_namespace = "default",
                                      .pod_name = tag };
        struct store_lease l;
        bool existing = false;
        int r = store_assign(t->st, &a, testctx_now, &l, &existing);
        ck_assert_msg(r == 0, "store_assign %s: %d", tag, r);
        return l;
}

void testctx_assert_store_is_ec2(struct testctx *t, const char *eni_id) {
        char (*b)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_blocks(t->st, eni_id, &b, &n), 0);
        fakeec2_lock(&t->f);
        const struct fakeec2_eni *e = fakeec2_find(&t->f, eni_id);
        ck_assert_msg(e, "%s is not in EC2", eni_id);
        ck_assert_msg(n == e->n_ips + e->n_prefixes, "%s: the store holds %zu blocks, EC2 %zu addresses and %zu prefixes",
                      eni_id, n, e->n_ips, e->n_prefixes);
        for (size_t i = 0; i < e->n_ips + e->n_prefixes; i++) {
                char cidr[STORE_CIDR_MAX];
                if (i < e->n_ips)
                        snprintf(cidr, sizeof cidr, "%s/32", e->ips[i]);
                else
                        snprintf(cidr, sizeof cidr, "%s", e->prefixes[i - e->n_ips]);
                bool found = false;
                for (size_t k = 0; k < n; k++)
                        found |= strcmp(b[k], cidr) == 0;
                ck_assert_msg(found, "%s: EC2's %s is not in the store", eni_id, cidr);
        }
        fakeec2_unlock(&t->f);
        free(b);
}

size_t testctx_ec2_ips(struct testctx *t, const char *eni_id) {
        fakeec2_lock(&t->f);
        const struct fakeec2_eni *e = fakeec2_find(&t->f, eni_id);
        size_t n = e ? e->n_ips : (size_t)-1;
        fakeec2_unlock(&t->f);
        return n;
}

bool testctx_ec2_has(struct testctx *t, const char *eni_id) {
        fakeec2_lock(&t->f);
        bool has = fakeec2_find(&t->f, eni_id) != NULL;
        fakeec2_unlock(&t->f);
        return has;
}

size_t testctx_ec2_enis(struct testctx *t) {
        fakeec2_lock(&t->f);
        size_t n = t->f.n_enis;
        fakeec2_unlock(&t->f);
        return n;
}

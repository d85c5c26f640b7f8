/*
 * test-eniops-moto: an ENI's primary address never reaches the pool, against
 * moto_server (LocalStack's EC2 engine), whose AssignPrivateIpAddresses reply
 * lists every address of the ENI, primary included.
 *
 * The real eniops/sync code runs with no kernel (ipamd_ctx.net == NULL) on
 * a moto started on a free 127.0.0.1 port and seeded with one m5.large
 * instance (tests/cloud/motosrv.c), its random address picks made
 * repeatable (/moto-api/seed). moto's IMDS has no macs/ tree, so a fake IMDS
 * here renders it from moto's EC2 state, primary address first, as EC2's
 * does. After every step the store's blocks are checked against EC2: no
 * ENI's primary address among them, and exactly the secondaries EC2 lists.
 * Without moto the suite reports one SKIP with the reason.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "awshttp.h"
#include "eniops.h"
#include "fakesrv.h"
#include "ipamd-config.h"
#include "motosrv.h"
#include "store.h"
#include "sync.h"
#include "testlib.h"
#include "vtime.h"

#define MOTO_SEED "20261206"

static struct motosrv moto;

static ec2_client *client(void) {
        ec2_client *c = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(motosrv_ec2_client(&moto, &c, &err) == 0, "%s", err.text);
        return c;
}

/* Every ENI attached to the seeded instance, as EC2 (moto) lists it now. */
static struct ec2_result *attached_enis(ec2_client *c) {
        const char *inst[] = { moto.instance };
        struct ec2_filter f = { "attachment.instance-id", inst, 1 };
        struct ec2_result *r = NULL;
        struct ec2_error e = { 0 };
        ck_assert_msg(ec2_describe_enis_page(c, &f, 1, 0, NULL, &r, &e) == 0, "%s", e.msg.text);
        return r;
}

/* --- a fake IMDS rendering macs/ from moto's EC2 state ----------------------- */

struct fake_imds {
        ec2_client *ec2;        /* its own: used on the server's thread, under its lock */
        char body[8192];
};

static const struct ec2_eni *by_mac(const struct ec2_result *r, const char *mac, size_t len) {
        for (size_t i = 0; i < r->n_enis; i++)
                if (strlen(r->enis[i].mac) == len && strncasecmp(r->enis[i].mac, mac, len) == 0)
                        return &r->enis[i];
        return NULL;
}

/* The leaf of one ENI; false when IMDS would answer 404. */
static bool render_leaf(const struct ec2_eni *e, const char *leaf, char *out, size_t size) {
        if (strcmp(leaf, "device-number") == 0)
                snprintf(out, size, "%d", e->attachment.device_index);
        else if (strcmp(leaf, "interface-id") == 0)
                snprintf(out, size, "%s", e->id);
        else if (strcmp(leaf, "subnet-id") == 0)
                snprintf(out, size, "%s", e->subnet_id);
        else if (strcmp(leaf, "subnet-ipv4-cidr-block") == 0)
                snprintf(out, size, "10.0.1.0/24");
        else if (strcmp(leaf, "local-ipv4s") == 0) {
                size_t n = (size_t)snprintf(out, size, "%s", e->primary_ip);
                for (size_t i = 0; i < e->n_private_ips && n < size; i++)
                        if (strcmp(e->private_ips[i].address, e->primary_ip) != 0)
                                n += (size_t)snprintf(out + n, size - n, "\n%s", e->private_ips[i].address);
        } else
                return false;
        return true;
}

static void render_macs(const struct ec2_result *r, char *out, size_t size) {
        size_t n = 0;
        out[0] = '\0';
        for (size_t i = 0; i < r->n_enis && n < size; i++)
                n += (size_t)snprintf(out + n, size - n, "%s%s/", i ? "\n" : "", r->enis[i].mac);
}

static void fake_imds_fn(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *reply) {
        struct fake_imds *f = ud;
        static const char macs[] = "/latest/meta-data/network/interfaces/macs/";
        if (strcmp(req->url, "/latest/api/token") == 0) {
                reply->body = "fake-imds-token";
                return;
        }
        reply->status = 404;
        reply->body = "";
        if (strncmp(req->url, macs, strlen(macs)) != 0)
                return;
        struct ec2_result *r = attached_enis(f->ec2);
        const char *mac = req->url + strlen(macs), *slash = strchr(mac, '/');
        const struct ec2_eni *e = slash ? by_mac(r, mac, (size_t)(slash - mac)) : NULL;
        if (*mac == '\0') {
                render_macs(r, f->body, sizeof f->body);
                reply->status = 200;
        } else if (e && render_leaf(e, slash + 1, f->body, sizeof f->body)) {
                reply->status = 200;
        }
        if (reply->status == 200)
                reply->body = f->body;
        ec2_result_free(r);
}

/* --- the daemon's context, without a kernel -------------------------------- */

struct fixture {
        struct ipamd_ctx ctx;
        struct ipamd_config cfg;
        struct node node;
        struct fake_imds fake;
        struct fakesrv *imds_srv;
};

static void fill_node(ec2_client *c, struct node *n) {
        struct ec2_result *r = NULL;
        struct ec2_error e = { 0 };
        ck_assert_msg(ec2_describe_instance(c, moto.instance, &r, &e) == 0, "%s", e.msg.text);
        ck_assert_uint_eq(r->n_instances, 1);
        const struct ec2_eni *p = &r->instances[0].enis[0];
        snprintf(n->instance_id, sizeof n->instance_id, "%s", moto.instance);
        snprintf(n->instance_type, sizeof n->instance_type, "m5.large");
        n->limits = (struct plan_limits){ .max_enis = 3, .ipv4_per_eni = 10 };  /* m5.large's */
        snprintf(n->primary_mac, sizeof n->primary_mac, "%s", p->mac);
        snprintf(n->primary_eni_id, sizeof n->primary_eni_id, "%s", p->id);
        snprintf(n->primary_ip, sizeof n->primary_ip, "%s", p->primary_ip);
        snprintf(n->subnet_id, sizeof n->subnet_id, "%s", moto.subnet);
        snprintf(n->subnet_cidr, sizeof n->subnet_cidr, "10.0.1.0/24");
        snprintf(n->security_groups[0], sizeof n->security_groups[0], "%s", moto.sg);
        n->n_security_groups = 1;
        ec2_result_free(r);
}

static void fixture_init(struct fixture *fx) {
        memset(fx, 0, sizeof *fx);
        ipamd_config_defaults(&fx->cfg);
        snprintf(fx->cfg.cluster_name, sizeof fx->cfg.cluster_name, "primary-test");
        fx->ctx.ec2 = client();
        fill_node(fx->ctx.ec2, &fx->node);
        fx->fake.ec2 = client();
        fx->imds_srv = fakesrv_start(fake_imds_fn, &fx->fake);
        struct errmsg err = { 0 };
        ck_assert_msg(imds_new(&(struct imds_options){ .endpoint = fakesrv_url(fx->imds_srv) }, &fx->ctx.imds,
                               &err) == 0, "%s", err.text);
        ck_assert_msg(store_open(testlib_path("pool.db"), &fx->ctx.store, &err) == 0, "%s", err.text);
        fx->ctx.cfg = &fx->cfg;
        fx->ctx.node = &fx->node;
        fx->ctx.now_ms = vtime_wall_ms;
        fx->ctx.net = NULL;     /* no kernel: EC2 and the store only */
}

static void fixture_done(struct fixture *fx) {
        store_close(fx->ctx.store);
        imds_free(fx->ctx.imds);
        fakesrv_stop(fx->imds_srv);
        ec2_client_free(fx->fake.ec2);
        ec2_client_free(fx->ctx.ec2);
}

/* --- what must hold after every step ---------------------------------------- */

static bool in_blocks(char (*blocks)[STORE_CIDR_MAX], size_t n, const char *ip) {
        char cidr[STORE_CIDR_MAX];
        snprintf(cidr, sizeof cidr, "%s/32", ip);
        for (size_t i = 0; i < n; i++)
                if (strcmp(blocks[i], cidr) == 0)
                        return true;
        return false;
}

/* The distinct secondary addresses EC2 lists for e. */
static size_t ec2_secondaries(const struct ec2_eni *e) {
        size_t n = 0;
        for (size_t i = 0; i < e->n_private_ips; i++) {
                bool again = strcmp(e->private_ips[i].address, e->primary_ip) == 0;
                for (size_t j = 0; j < i && !again; j++)
                        again = strcmp(e->private_ips[j].address, e->private_ips[i].address) == 0;
                n += !again;
        }
        return n;
}

/*
 * No ENI's primary address (as EC2 lists it) is a block of any ENI, and each
 * ENI the store knows holds exactly the secondaries EC2 lists for it.
 * Returns the number of blocks in the store.
 */
static size_t check_against_ec2(struct fixture *fx) {
        char (*all)[STORE_CIDR_MAX] = NULL;
        size_t n_all = 0;
        ck_assert_int_eq(store_blocks(fx->ctx.store, NULL, &all, &n_all), 0);
        struct ec2_result *r = attached_enis(fx->ctx.ec2);
        for (size_t i = 0; i < r->n_enis; i++) {
                const struct ec2_eni *e = &r->enis[i];
                ck_assert_msg(!in_blocks(all, n_all, e->primary_ip), "primary %s of %s is in the pool",
                              e->primary_ip, e->id);
                char (*mine)[STORE_CIDR_MAX] = NULL;
                size_t n_mine = 0;
                ck_assert_int_eq(store_blocks(fx->ctx.store, e->id, &mine, &n_mine), 0);
                if (store_eni_get(fx->ctx.store, e->id, NULL) == 0) {
                        for (size_t j = 0; j < e->n_private_ips; j++)
                                if (strcmp(e->private_ips[j].address, e->primary_ip) != 0)
                                        ck_assert_msg(in_blocks(mine, n_mine, e->private_ips[j].address),
                                                      "%s of %s missing", e->private_ips[j].address, e->id);
                        ck_assert_uint_eq(n_mine, ec2_secondaries(e));
                }
                free(mine);
        }
        ec2_result_free(r);
        free(all);
        struct errmsg err = { 0 };
        ck_assert_msg(store_check(fx->ctx.store, vtime_wall_ms(), &err) == 0, "%s", err.text);
        return n_all;
}

static void sync_ec2(struct fixture *fx) {
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_msg(sync_with_ec2(&fx->ctx, &rep, &err) == 0, "%s", err.text);
}

/* Hand every available address to a pod: none is a primary address. */
static void pods_take_all(struct fixture *fx) {
        struct store_stats st;
        ck_assert_int_eq(store_stats(fx->ctx.store, vtime_wall_ms(), &st), 0);
        ck_assert_int_gt(st.available, 0);
        size_t expect = (size_t)st.available;
        struct ec2_result *r = attached_enis(fx->ctx.ec2);
        size_t got = 0;
        for (;; got++) {
                char cid[32];
                snprintf(cid, sizeof cid, "pod-%zu", got);
                struct store_attachment a = { .container_id = cid, .ifname = "eth0" };
                struct store_lease l;
                int rc = store_assign(fx->ctx.store, &a, vtime_wall_ms(), &l, NULL);
                if (rc == -EAGAIN)
                        break;
                ck_assert_int_eq(rc, 0);
                for (size_t i = 0; i < r->n_enis; i++)
                        ck_assert_msg(strcmp(l.ip, r->enis[i].primary_ip) != 0, "a pod got primary %s of %s",
                                      l.ip, r->enis[i].id);
        }
        ck_assert_uint_eq(got, expect);
        ec2_result_free(r);
}

/* --- cases -------------------------------------------------------------------- */

/* The node's primary ENI: its primary address is never pooled, whatever Assign lists. */
START_TEST(test_assign_on_primary_eni) {
        struct fixture fx;
        fixture_init(&fx);
        sync_ec2(&fx);
        ck_assert_int_eq(store_eni_get(fx.ctx.store, fx.node.primary_eni_id, NULL), 0);
        size_t before = check_against_ec2(&fx);
        int r = eniops_assign(&fx.ctx, fx.node.primary_eni_id, 3);
        ck_assert_int_gt(r, 0);
        size_t after = check_against_ec2(&fx);
        ck_assert_uint_eq(after, before + (size_t)r);     /* the reply's old addresses were no news */
        r = eniops_assign(&fx.ctx, fx.node.primary_eni_id, 2);
        ck_assert_int_gt(r, 0);
        ck_assert_uint_eq(check_against_ec2(&fx), after + (size_t)r);
        sync_ec2(&fx);
        check_against_ec2(&fx);
        pods_take_all(&fx);
        fixture_done(&fx);
}
END_TEST

/* Prefix delegation against moto, which answers Ipv4PrefixCount with success and assigns nothing:
 * the same need is met with /32s at once (one call more, not a retry every pass), and prefixes are
 * not asked for again until the back-off ends. */
START_TEST(test_prefixes_none_given_fall_back) {
        struct fixture fx;
        fixture_init(&fx);
        sync_ec2(&fx);
        size_t before = check_against_ec2(&fx);
        int r = eniops_assign_prefixes(&fx.ctx, fx.node.primary_eni_id, 1, true);
        ck_assert_int_gt(r, 0);                          /* /32s, not 0 */
        ck_assert_uint_eq(check_against_ec2(&fx), before + (size_t)r);
        ck_assert_int_gt(fx.ctx.prefix_fallback_until, vtime_wall_ms());
        char (*blocks)[STORE_CIDR_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_blocks(fx.ctx.store, fx.node.primary_eni_id, &blocks, &n), 0);
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(strstr(blocks[i], "/32"), "a block that is not a /32: %s", blocks[i]);
        free(blocks);
        /* in the back-off, without the fallback allowed, no EC2 call is made for prefixes */
        ck_assert_int_eq(eniops_assign_prefixes(&fx.ctx, fx.node.primary_eni_id, 1, false), -ENOSPC);
        pods_take_all(&fx);
        fixture_done(&fx);
}
END_TEST

/* A new ENI: neither the create reply nor a later Assign pools its primary. */
START_TEST(test_create_then_assign_on_secondary_eni) {
        struct fixture fx;
        fixture_init(&fx);
        sync_ec2(&fx);
        int counts[] = { 2 };
        ck_assert_int_eq(eniops_create(&fx.ctx, counts, 1), 1);
        check_against_ec2(&fx);
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(fx.ctx.store, &enis, &n), 0);
        const struct store_eni *made = NULL;
        for (size_t i = 0; i < n; i++)
                if (!enis[i].is_primary && enis[i].state == STORE_ENI_ATTACHED)
                        made = &enis[i];
        ck_assert_ptr_nonnull(made);
        char id[STORE_ID_MAX];
        snprintf(id, sizeof id, "%s", made->id);
        free(enis);
        char (*blocks)[STORE_CIDR_MAX] = NULL;
        ck_assert_int_eq(store_blocks(fx.ctx.store, id, &blocks, &n), 0);
        ck_assert_uint_ge(n, 1);
        free(blocks);

        ck_assert_int_gt(eniops_assign(&fx.ctx, id, 2), 0);
        check_against_ec2(&fx);
        struct sync_report rep = { 0 };
        ck_assert_int_eq(sync_eni(&fx.ctx, id, &rep), 0);
        ck_assert_uint_eq(rep.blocks_added, 0);
        sync_ec2(&fx);
        check_against_ec2(&fx);
        struct errmsg err = { 0 };
        ck_assert_msg(sync_with_imds(&fx.ctx, &rep, &err) == 0, "%s", err.text);
        check_against_ec2(&fx);
        pods_take_all(&fx);
        fixture_done(&fx);
}
END_TEST

/* IMDS alone (DISABLE_NETWORK_RESOURCE_PROVISIONING): local-ipv4s lists the primary first. */
START_TEST(test_sync_with_imds_only) {
        struct fixture fx;
        fixture_init(&fx);
        fx.cfg.no_provisioning = true;
        struct ec2_result *res = NULL;       /* addresses of its own, whatever ran before */
        struct ec2_error e = { 0 };
        ck_assert_msg(ec2_assign_private_ips(fx.ctx.ec2, fx.node.primary_eni_id, 2, 0, &res, &e) == 0, "%s",
                      e.msg.text);
        ec2_result_free(res);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_msg(sync_with_imds(&fx.ctx, &rep, &err) == 0, "%s", err.text);
        ck_assert_uint_ge(rep.enis_added, 1);
        ck_assert_uint_ge(check_against_ec2(&fx), 2);
        pods_take_all(&fx);
        fixture_done(&fx);
}
END_TEST

/* moto picks addresses at random: the same seed gives the same run. */
static int seed_moto(char *why, size_t size) {
        awshttp *h = NULL;
        struct errmsg err = { 0 };
        struct awshttp_response resp;
        char url[128];
        snprintf(url, sizeof url, "%s/moto-api/seed?a=" MOTO_SEED, moto.url);
        int r = awshttp_new(&(struct awshttp_options){ .direct = true }, &h, &err);
        if (r == 0)
                r = awshttp_request(h, "POST", url, NULL, 0, "", 0, &resp, &err);
        if (r == 0) {
                r = resp.status == 200 ? 0 : -EREMOTEIO;
                awshttp_response_done(&resp);
        }
        if (r < 0)
                snprintf(why, size, "seeding moto's random: %s", errmsg_text(&err, r));
        awshttp_free(h);
        return r;
}

int main(void) {
        char why[256];
        int r = motosrv_start(&moto, MOTOSRV_STOCK, why, sizeof why);
        if (r == -ENOENT) {
                printf("1..1\nok 1 - eniops against moto # SKIP %s\n", why);
                return 0;
        }
        if (r == 0)
                r = seed_moto(why, sizeof why);
        if (r < 0) {
                printf("1..1\nnot ok 1 - eniops against moto: %s\n", why);
                motosrv_stop(&moto);
                return 1;
        }
        Suite *s = suite_create("eniops-moto");
        TCase *tc = tcase_create("primary");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_assign_on_primary_eni);
        tcase_add_test(tc, test_create_then_assign_on_secondary_eni);
        tcase_add_test(tc, test_sync_with_imds_only);
        tcase_add_test(tc, test_prefixes_none_given_fall_back);
        suite_add_tcase(s, tc);
        int rc = testlib_run(s);
        motosrv_stop(&moto);
        return rc;
}

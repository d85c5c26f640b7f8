/*
 * test-sync: the store following EC2 (sync_with_ec2, sync_eni), and the
 * restart after a crash: for every EC2 mutation eniops makes, a child process
 * runs it against the fake EC2 model and is SIGKILLed at the call — before
 * EC2 applies it, or after (its answer lost) — leaving its intent open in the
 * store exactly as a killed daemon would. The parent then does what a start
 * does (sync_with_ec2, then sync_intents) and checks EC2 and the store agree,
 * nothing leaks in EC2 and no intent stays open. No kernel: ctx.net == NULL.
 *
 * Intents are recognised by what they carry (a client token, an ENI id), not
 * by their kind's name, so these cases do not depend on how kinds are spelled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eniops.h"
#include "protocol.h"
#include "testctx.h"
#include "testlib.h"

static struct testctx *node_with_primary(size_t n_ips) {
        struct testctx *t = testctx_new(n_ips);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        return t;
}

static void last_eni(struct testctx *t, char out[STORE_ID_MAX]) {
        fakeec2_lock(&t->f);
        snprintf(out, STORE_ID_MAX, "%s", t->f.enis[t->f.n_enis - 1].id);
        fakeec2_unlock(&t->f);
}

static size_t store_eni_count(struct testctx *t) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(t->st, &enis, &n), 0);
        free(enis);
        return n;
}

static struct store_stats stats(struct testctx *t) {
        struct store_stats s;
        ck_assert_int_eq(store_stats(t->st, testctx_now, &s), 0);
        return s;
}

static enum store_eni_state eni_state(struct testctx *t, const char *id) {
        struct store_eni se;
        ck_assert_int_eq(store_eni_get(t->st, id, &se), 0);
        return se.state;
}

static uint64_t counter(struct testctx *t, enum metrics_counter c) {
        struct metrics_snapshot s;
        metrics_snapshot(t->metrics, &s);
        return s.counters[c];
}

/* After a restart: the store is sound and nothing is left open. */
static void assert_settled(struct testctx *t) {
        struct errmsg err = { 0 };
        ck_assert_msg(store_check(t->st, testctx_now, &err) == 0, "store_check: %s", err.text);
        ck_assert_uint_eq(testctx_open_intents(t), 0);
        ck_assert_int_eq(stats(t).releasing, 0);
}

/* The open intents, each seen by what it names: a client token, or an ENI. */
struct open_intents {
        size_t n, with_token, on_eni;
        char token[STORE_TOKEN_MAX];
};

static struct open_intents open_intents(struct testctx *t, const char *eni_id) {
        struct store_intent *its = NULL;
        struct open_intents o = { 0 };
        ck_assert_int_eq(store_intents_open(t->st, &its, &o.n), 0);
        for (size_t i = 0; i < o.n; i++) {
                if (its[i].client_token[0]) {
                        o.with_token++;
                        snprintf(o.token, sizeof o.token, "%s", its[i].client_token);
                }
                o.on_eni += eni_id && strcmp(its[i].eni_id, eni_id) == 0;
        }
        free(its);
        return o;
}

/* --- EC2 → store ------------------------------------------------------------ */

START_TEST(test_sync_adds_managed_enis_only) {
        struct testctx *t = testctx_new(3);
        t->cfg.manage_untagged = false;         /* MANAGE_UNTAGGED_ENI=false: the untagged ENI is foreign */
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0ours0000000000001", FAKEEC2_INSTANCE, 1, 2, true);
        fakeec2_add_eni(&t->f, "eni-0foreign00000000001", FAKEEC2_INSTANCE, 2, 4, false);
        fakeec2_add_eni(&t->f, "eni-0elsewhere000000001", "i-0someoneelse00000001", 1, 4, true);
        fakeec2_add_eni(&t->f, "eni-0loose000000000001", NULL, 0, 4, true);
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.enis_added, 2);
        ck_assert_uint_eq(rep.blocks_added, 5);
        ck_assert_uint_eq(store_eni_count(t), 2);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        testctx_assert_store_is_ec2(t, "eni-0ours0000000000001");
        ck_assert_int_eq(eni_state(t, TESTCTX_PRIMARY_ENI), STORE_ENI_ATTACHED);
        /* A secondary ENI is opened to pods only once its link is set up, which
         * needs the kernel: with net == NULL it stays attaching. */
        ck_assert_int_eq(eni_state(t, "eni-0ours0000000000001"), STORE_ENI_ATTACHING);
        ck_assert_int_eq(stats(t).available, 3);
        ck_assert_uint_eq(t->ctx.foreign_devices, 1u << 2);
        /* Nothing in EC2 was touched */
        ck_assert_uint_eq(testctx_ec2_enis(t), 5);
        ck_assert_uint_eq(testctx_open_intents(t), 0);
        testctx_free(t);
}
END_TEST

/* The same over pages of one ENI each. */
START_TEST(test_sync_follows_pages) {
        struct testctx *t = testctx_new(1);
        t->cfg.manage_untagged = false;         /* MANAGE_UNTAGGED_ENI=false: the untagged ENI is foreign */
        t->f.page_size = 1;
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0foreign00000000001", FAKEEC2_INSTANCE, 1, 0, false);
        fakeec2_add_eni(&t->f, "eni-0ours0000000000001", FAKEEC2_INSTANCE, 2, 2, true);
        fakeec2_add_eni(&t->f, "eni-0ours0000000000002", FAKEEC2_INSTANCE, 3, 3, true);
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_ge(fakeec2_calls(&t->f, EC2_DESCRIBE_NETWORK_INTERFACES), 4);
        ck_assert_uint_eq(rep.enis_added, 3);
        ck_assert_uint_eq(rep.blocks_added, 6);
        testctx_assert_store_is_ec2(t, "eni-0ours0000000000002");
        testctx_free(t);
}
END_TEST

/* DeleteOnTermination left off (a crash after the attach) is set by the pass. */
START_TEST(test_sync_sets_delete_on_termination) {
        struct testctx *t = testctx_new(0);
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0ours0000000000001", FAKEEC2_INSTANCE, 1, 1, true)->delete_on_termination = false;
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert(fakeec2_find(&t->f, "eni-0ours0000000000001")->delete_on_termination);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE), 1);
        testctx_free(t);
}
END_TEST

/* EC2 assigned more (another writer, a retried call): the pass adds it. */
START_TEST(test_sync_adds_addresses) {
        struct testctx *t = node_with_primary(2);
        fakeec2_lock(&t->f);
        struct fakeec2_eni *p = fakeec2_find(&t->f, TESTCTX_PRIMARY_ENI);
        snprintf(p->ips[p->n_ips++], sizeof p->ips[0], "10.0.9.9");
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.blocks_added, 1);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_int_eq(stats(t).available, 3);
        testctx_free(t);
}
END_TEST

/*
 * EC2 took away an address a pod holds: not on the first answer's word while
 * the block is young (Describe is eventually consistent), then force-removed,
 * the pod's lease with it, counted and in the metrics.
 */
START_TEST(test_sync_force_removes_taken_address) {
        struct testctx *t = node_with_primary(3);
        struct store_lease l = testctx_pod(t, "pod-a");
        fakeec2_lock(&t->f);
        ck_assert(fakeec2_take_ip(&t->f, TESTCTX_PRIMARY_ENI, l.ip));
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.blocks_removed, 0);
        ck_assert_int_eq(testctx_blocks(t, TESTCTX_PRIMARY_ENI), 3);
        testctx_now += 2 * 60 * 1000;
        rep = (struct sync_report){ 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.blocks_removed, 1);
        ck_assert_uint_eq(rep.leases_lost, 1);
        struct store_lease gone;
        ck_assert_int_eq(store_lookup(t->st, "pod-a", "eth0", &gone), -ENOENT);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_uint_eq(counter(t, METRICS_FORCE_REMOVED_IPS), 1);
        struct store_stats s = stats(t);
        ck_assert_int_eq(s.assigned, 0);
        ck_assert_int_eq(s.total, 2);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* An ENI no longer attached is forgotten (after the young-ENI grace), with its pods' leases. */
START_TEST(test_sync_forgets_detached_eni) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 2 }, 1), 1);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        testctx_pod(t, "pod-a");                /* on the new ENI: the primary has none */
        fakeec2_lock(&t->f);
        ck_assert(fakeec2_detach(&t->f, id));
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.enis_removed, 0);
        ck_assert_int_eq(testctx_blocks(t, id), 2);
        testctx_now += 2 * 60 * 1000;
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.enis_removed, 1);
        ck_assert_uint_eq(rep.leases_lost, 1);
        ck_assert_int_eq(testctx_blocks(t, id), -1);
        struct store_lease gone;
        ck_assert_int_eq(store_lookup(t->st, "pod-a", "eth0", &gone), -ENOENT);
        ck_assert_uint_eq(counter(t, METRICS_FORCE_REMOVED_ENIS), 1);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* EC2 cannot be read: an error, and the store is left as it was. */
START_TEST(test_sync_describe_fails) {
        struct testctx *t = node_with_primary(2);
        fakeec2_lock(&t->f);
        fakeec2_detach(&t->f, TESTCTX_PRIMARY_ENI);
        fakeec2_unlock(&t->f);
        t->f.fail_action = EC2_DESCRIBE_NETWORK_INTERFACES;
        t->f.fail_times = 1;
        t->f.fail_status = 403;
        t->f.fail_code = "UnauthorizedOperation";
        testctx_now += 10 * 60 * 1000;
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_lt(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_ptr_nonnull(strstr(err.text, "DescribeNetworkInterfaces"));
        ck_assert_uint_eq(store_eni_count(t), 1);
        ck_assert_int_eq(testctx_blocks(t, TESTCTX_PRIMARY_ENI), 2);
        testctx_free(t);
}
END_TEST

/* sync_eni re-reads one ENI; an ENI EC2 no longer knows is left to the full pass. */
START_TEST(test_sync_eni) {
        struct testctx *t = node_with_primary(2);
        fakeec2_lock(&t->f);
        struct fakeec2_eni *p = fakeec2_find(&t->f, TESTCTX_PRIMARY_ENI);
        snprintf(p->ips[p->n_ips++], sizeof p->ips[0], "10.0.9.9");
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        ck_assert_int_eq(sync_eni(&t->ctx, TESTCTX_PRIMARY_ENI, &rep), 0);
        ck_assert_uint_eq(rep.blocks_added, 1);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_int_eq(sync_eni(&t->ctx, "eni-0unknown0000000001", &rep), 0);
        testctx_free(t);
}
END_TEST

/* --- IMDS → store (DISABLE_NETWORK_RESOURCE_PROVISIONING) --------------------- */

START_TEST(test_sync_with_imds) {
        struct testctx *t = testctx_new(2);
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0ours0000000000001", FAKEEC2_INSTANCE, 1, 3, false);
        fakeec2_add_eni(&t->f, "eni-0elsewhere000000001", "i-0someoneelse00000001", 1, 4, true);
        fakeec2_unlock(&t->f);
        t->cfg.no_provisioning = true;
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_msg(sync_with_imds(&t->ctx, &rep, &err) == 0, "%s", err.text);
        ck_assert_uint_eq(rep.enis_added, 2);          /* every ENI IMDS lists, tagged or not */
        ck_assert_uint_eq(rep.blocks_added, 5);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        testctx_assert_store_is_ec2(t, "eni-0ours0000000000001");
        for (int a = 0; a < _EC2_ACTION_MAX; a++)
                ck_assert_uint_eq(fakeec2_calls(&t->f, (enum ec2_action)a), 0);
        testctx_free(t);
}
END_TEST

/* IMDS listing no interface at all is refused, not taken as "forget every ENI". */
START_TEST(test_sync_with_imds_refuses_empty) {
        struct testctx *t = node_with_primary(2);
        fakeec2_lock(&t->f);
        fakeec2_detach(&t->f, TESTCTX_PRIMARY_ENI);
        fakeec2_unlock(&t->f);
        testctx_now += 10 * 60 * 1000;
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_lt(sync_with_imds(&t->ctx, &rep, &err), 0);
        ck_assert_msg(strstr(err.text, "IMDS lists no network interface"), "%s", err.text);
        ck_assert_uint_eq(store_eni_count(t), 1);
        ck_assert_int_eq(testctx_blocks(t, TESTCTX_PRIMARY_ENI), 2);
        testctx_free(t);
}
END_TEST

/* --- pods that are gone ------------------------------------------------------- */

static void pod_in(struct testctx *t, const char *id, const char *netns, const char *veth) {
        struct store_attachment a = { .container_id = id, .ifname = "eth0", .netns = netns, .host_veth = veth,
                                      .pod_name = id };
        struct store_lease l;
        ck_assert_int_eq(store_assign(t->st, &a, testctx_now, &l, NULL), 0);
}

/*
 * A pod whose netns file is gone (its directory still there) loses its
 * address after the grace period; one whose netns is there keeps it. A pod
 * known only by its host veth needs the kernel's link list: with net == NULL
 * it counts as present, never released on a guess.
 */
START_TEST(test_sync_pods_releases_gone_pods) {
        struct testctx *t = node_with_primary(3);
        char here[512], gone[512];
        snprintf(here, sizeof here, "%s", testlib_path("netns-here"));
        snprintf(gone, sizeof gone, "%s", testlib_path("netns-gone"));
        FILE *f = fopen(here, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        pod_in(t, "pod-here", here, NULL);
        pod_in(t, "pod-gone", gone, NULL);
        pod_in(t, "pod-veth", NULL, "eni0123456789a");
        sync_pods *p = NULL;
        ck_assert_int_eq(sync_pods_new(&p), 0);
        struct sync_report rep = { 0 };
        ck_assert_int_eq(sync_pods_run(p, &t->ctx, &rep), 0);
        ck_assert_uint_eq(rep.pods_released, 0);              /* seen gone once: grace starts */
        testctx_now += SYNC_POD_GRACE_MS - 1;
        ck_assert_int_eq(sync_pods_run(p, &t->ctx, &rep), 0);
        ck_assert_uint_eq(rep.pods_released, 0);
        testctx_now += 1;
        ck_assert_int_eq(sync_pods_run(p, &t->ctx, &rep), 0);
        ck_assert_uint_eq(rep.pods_released, 1);
        struct store_lease l;
        ck_assert_int_eq(store_lookup(t->st, "pod-gone", "eth0", &l), -ENOENT);
        ck_assert_int_eq(store_lookup(t->st, "pod-here", "eth0", &l), 0);
        ck_assert_int_eq(store_lookup(t->st, "pod-veth", "eth0", &l), 0);
        ck_assert_uint_eq(counter(t, METRICS_PODS_GONE_RELEASED), 1);
        sync_pods_free(p);
        testctx_free(t);
}
END_TEST

/*
 * What a pod's lease is judged by: its netns path when gone (30 s), else its
 * host veth, found by the vpc-cni alias or, for a recorded name, by name
 * (missing: 60 s). A lease with neither a path nor a name (an aws-node
 * checkpoint entry without metadata), or links that could not be listed,
 * count as present.
 */
START_TEST(test_sync_pod_gone_grace) {
        char here[512], gone[512];
        snprintf(here, sizeof here, "%s", testlib_path("netns-here2"));
        snprintf(gone, sizeof gone, "%s", testlib_path("netns-gone2"));
        FILE *f = fopen(here, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        struct hostnet_link marked = { .ifindex = 7, .up = true, .name = "eniaaaa" };
        proto_veth_alias("pod-a", "eth0", marked.alias);
        char names[][HOSTNET_IFNAMSIZ] = { "eniaaaa", "eniawsnode1" };
        struct sync_pod_links k = { .names = names, .n_names = 2, .have_names = true, .marked = &marked,
                                    .n_marked = 1, .have_marked = true };
        struct store_lease l = { .container_id = "pod-a", .ifname = "eth0" };
        snprintf(l.netns, sizeof l.netns, "%s", here);
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), 0);                       /* its veth, by alias */
        snprintf(l.netns, sizeof l.netns, "%s", gone);
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), SYNC_POD_GRACE_MS);       /* netns gone */
        snprintf(l.netns, sizeof l.netns, "%s", here);
        snprintf(l.container_id, sizeof l.container_id, "pod-b");
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), SYNC_POD_VETH_GRACE_MS);  /* no veth of its own */
        k.have_marked = false;
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), 0);                       /* links unknown */
        k.have_marked = true;
        l.netns[0] = '\0';
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), 0);                       /* nothing to judge by */
        snprintf(l.host_veth, sizeof l.host_veth, "eniawsnode1");
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), 0);                       /* taken over, by name */
        k.have_names = false;
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), 0);
        k.have_names = true;
        snprintf(l.host_veth, sizeof l.host_veth, "eniawsnode2");
        ck_assert_int_eq(sync_pod_gone_grace(&l, &k), SYNC_POD_VETH_GRACE_MS);  /* its named veth gone */
}
END_TEST

/* --- crashes: create ---------------------------------------------------------- */

static void op_create(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        eniops_create(o, (int[]){ 3 }, 1);
}

/* Killed before EC2 made the ENI: the create is re-issued with its token (EC2 may have been
 * about to apply it), which makes it once, and that ENI is deleted. */
START_TEST(test_crash_create_before_ec2) {
        struct testctx *t = node_with_primary(0);
        testctx_crash(t, EC2_CREATE_NETWORK_INTERFACE, false, op_create, NULL);
        struct open_intents oi = open_intents(t, NULL);
        ck_assert_uint_eq(oi.n, 1);
        ck_assert_uint_eq(oi.with_token, 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        struct sync_report rep = testctx_restart(t);
        ck_assert_uint_eq(rep.intents_resolved, 1);
        ck_assert_uint_eq(rep.enis_deleted, 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        ck_assert_uint_eq(store_eni_count(t), 1);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* Killed after EC2 made it (its answer lost): found by its token tag, and deleted. */
START_TEST(test_crash_create_after_ec2) {
        struct testctx *t = node_with_primary(0);
        testctx_crash(t, EC2_CREATE_NETWORK_INTERFACE, true, op_create, NULL);
        struct open_intents oi = open_intents(t, NULL);
        ck_assert_uint_eq(oi.n, 1);
        ck_assert_uint_eq(oi.with_token, 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        ck_assert_str_eq(t->f.enis[1].client_token, oi.token);
        ck_assert_uint_eq(store_eni_count(t), 1);       /* the store never heard of it */
        struct sync_report rep = testctx_restart(t);
        ck_assert_uint_eq(rep.intents_resolved, 1);
        ck_assert_uint_eq(rep.enis_deleted, 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        ck_assert_uint_eq(store_eni_count(t), 1);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* Killed at the attach, before EC2 attached: the created ENI (in the store, attaching) is deleted everywhere. */
START_TEST(test_crash_attach_before_ec2) {
        struct testctx *t = node_with_primary(0);
        testctx_crash(t, EC2_ATTACH_NETWORK_INTERFACE, false, op_create, NULL);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        ck_assert_int_eq(eni_state(t, id), STORE_ENI_ATTACHING);
        ck_assert_int_eq(testctx_blocks(t, id), 3);
        struct open_intents oi = open_intents(t, id);
        ck_assert_uint_eq(oi.n, 2);             /* the create's and the attach's */
        ck_assert_uint_eq(oi.with_token, 1);
        ck_assert_uint_eq(oi.on_eni, 1);
        struct sync_report rep = testctx_restart(t);
        ck_assert_uint_eq(rep.intents_resolved, 2);
        ck_assert_uint_eq(rep.enis_deleted, 1);
        ck_assert(!testctx_ec2_has(t, id));
        ck_assert_int_eq(testctx_blocks(t, id), -1);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

static void assert_kept_attached(struct testctx *t, const char *id, struct sync_report rep) {
        ck_assert_uint_eq(rep.intents_resolved, 2);
        ck_assert_uint_eq(rep.enis_deleted, 0);
        ck_assert(testctx_ec2_has(t, id));
        ck_assert_str_eq(fakeec2_find(&t->f, id)->instance_id, FAKEEC2_INSTANCE);
        ck_assert(fakeec2_find(&t->f, id)->delete_on_termination);     /* repaired by the pass */
        testctx_assert_store_is_ec2(t, id);
        /* Opening it to pods needs its link set up: with net == NULL it stays attaching. */
        ck_assert_int_eq(eni_state(t, id), STORE_ENI_ATTACHING);
        assert_settled(t);
}

/* Killed after EC2 attached it: kept, with its addresses. */
START_TEST(test_crash_attach_after_ec2) {
        struct testctx *t = node_with_primary(0);
        testctx_crash(t, EC2_ATTACH_NETWORK_INTERFACE, true, op_create, NULL);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        ck_assert(!fakeec2_find(&t->f, id)->delete_on_termination);
        ck_assert_uint_eq(open_intents(t, id).n, 2);
        assert_kept_attached(t, id, testctx_restart(t));
        testctx_free(t);
}
END_TEST

/* Killed setting DeleteOnTermination (the attach intent is still open). */
START_TEST(test_crash_delete_on_termination) {
        struct testctx *t = node_with_primary(0);
        testctx_crash(t, EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, false, op_create, NULL);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        ck_assert_uint_eq(open_intents(t, id).n, 2);
        assert_kept_attached(t, id, testctx_restart(t));
        testctx_free(t);
}
END_TEST

static void op_create_side_by_side(struct ipamd_ctx *o, void *arg) {
        testctx_helpers(arg, o);
        eniops_create(o, (int[]){ 2, 3 }, 2);
}

/*
 * Two ENIs created side by side (the Creates' answers held 200 ms, so the
 * other is on its way too), killed at each step of the first to reach it:
 * whatever the other thread had done by then, the restart leaves no intent
 * open, every ENI EC2 still has attached to us and in the store as EC2 holds
 * it, and none unattached.
 */
START_TEST(test_crash_side_by_side) {
        static const struct { enum ec2_action at; bool after; } points[] = {
                { EC2_CREATE_NETWORK_INTERFACE, false }, { EC2_CREATE_NETWORK_INTERFACE, true },
                { EC2_ATTACH_NETWORK_INTERFACE, false }, { EC2_ATTACH_NETWORK_INTERFACE, true },
                { EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, false },
        };
        for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
                struct testctx *t = node_with_primary(0);
                t->f.create_delay_ms = 200;
                testctx_crash(t, points[p].at, points[p].after, op_create_side_by_side, t);
                t->f.create_delay_ms = 0;
                testctx_restart(t);
                assert_settled(t);
                ck_assert_uint_eq(store_eni_count(t), testctx_ec2_enis(t));
                for (size_t i = 1; i < testctx_ec2_enis(t); i++) {
                        const struct fakeec2_eni *e = &t->f.enis[i];
                        ck_assert_msg(strcmp(e->instance_id, FAKEEC2_INSTANCE) == 0, "%s left unattached (%s)",
                                      e->id, ec2_action_name(points[p].at));
                        testctx_assert_store_is_ec2(t, e->id);
                }
                testctx_free(t);
        }
}
END_TEST

/* EC2 unreachable at the restart: the intent stays open, and is resolved at the next try. */
START_TEST(test_crash_create_ec2_down_at_restart) {
        struct testctx *t = node_with_primary(0);
        testctx_crash(t, EC2_CREATE_NETWORK_INTERFACE, true, op_create, NULL);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        t->f.fail_action = EC2_CREATE_NETWORK_INTERFACE; /* the re-issue cannot tell */
        t->f.fail_times = 1000;
        t->f.fail_status = 503;
        t->f.fail_code = "Unavailable";
        ck_assert_int_eq(sync_intents(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.intents_resolved, 0);
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        t->f.fail_times = 0;
        ck_assert_int_eq(sync_intents(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.intents_resolved, 1);
        ck_assert_uint_eq(rep.enis_deleted, 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* --- crashes: assign and release ---------------------------------------------- */

static void op_assign(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        eniops_assign(o, TESTCTX_PRIMARY_ENI, 3);
}

START_TEST(test_crash_assign) {
        for (int after = 0; after <= 1; after++) {
                struct testctx *t = node_with_primary(0);
                testctx_crash(t, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, after, op_assign, NULL);
                ck_assert_uint_eq(open_intents(t, TESTCTX_PRIMARY_ENI).on_eni, 1);
                ck_assert_int_eq(testctx_blocks(t, TESTCTX_PRIMARY_ENI), 0);
                struct sync_report rep = testctx_restart(t);
                ck_assert_uint_eq(rep.intents_resolved, 1);
                ck_assert_uint_eq(rep.blocks_added, (after ? 3 : 0));
                ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), (after ? 3 : 0));
                testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
                ck_assert_int_eq(stats(t).available, (after ? 3 : 0));
                assert_settled(t);
                testctx_free(t);
        }
}
END_TEST

static void op_release(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        eniops_release(o, TESTCTX_PRIMARY_ENI, 2);
}

/* Killed with two addresses marked releasing: gone if EC2 took them, free again if not. */
START_TEST(test_crash_release) {
        for (int after = 0; after <= 1; after++) {
                struct testctx *t = node_with_primary(6);
                testctx_crash(t, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES, after, op_release, NULL);
                ck_assert_uint_eq(open_intents(t, TESTCTX_PRIMARY_ENI).on_eni, 1);
                ck_assert_int_eq(stats(t).releasing, 2);
                ck_assert_int_eq(stats(t).available, 4);
                struct sync_report rep = testctx_restart(t);
                ck_assert_uint_eq(rep.intents_resolved, 1);
                /* Before EC2 applied it, it may still: the restart issues it again, so either way
                 * EC2 and the store end without the two addresses. */
                ck_assert_uint_eq(rep.blocks_removed, 2);
                ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 4);
                testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
                ck_assert_int_eq(stats(t).available, 4);
                assert_settled(t);
                testctx_free(t);
        }
}
END_TEST

/* --- crashes: delete ---------------------------------------------------------- */

static void op_delete(struct ipamd_ctx *o, void *arg) {
        eniops_delete(o, arg);
}

static struct testctx *node_with_eni(char id[STORE_ID_MAX]) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 2 }, 1), 1);
        last_eni(t, id);
        return t;
}

/* Killed before EC2 detached it: it stays detaching (never serving again) and the delete is carried on. */
START_TEST(test_crash_detach_before_ec2) {
        char id[STORE_ID_MAX];
        struct testctx *t = node_with_eni(id);
        testctx_crash(t, EC2_DETACH_NETWORK_INTERFACE, false, op_delete, id);
        ck_assert_uint_eq(open_intents(t, id).on_eni, 1);
        ck_assert_int_eq(eni_state(t, id), STORE_ENI_DETACHING);
        struct sync_report rep = testctx_restart(t);
        ck_assert_uint_eq(rep.intents_resolved, 1);
        ck_assert_int_eq(eni_state(t, id), STORE_ENI_DETACHING);
        ck_assert_int_eq(stats(t).available, 0);
        assert_settled(t);
        ck_assert_int_eq(eniops_finish_detaching(&t->ctx), 0);
        ck_assert(!testctx_ec2_has(t, id));
        ck_assert_int_eq(testctx_blocks(t, id), -1);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* Killed at the detach after EC2 detached, or at the delete before or after EC2 deleted: gone everywhere. */
START_TEST(test_crash_detach_or_delete_after_detached) {
        static const struct { enum ec2_action at; bool after; } points[] = {
                { EC2_DETACH_NETWORK_INTERFACE, true },
                { EC2_DELETE_NETWORK_INTERFACE, false },
                { EC2_DELETE_NETWORK_INTERFACE, true },
        };
        /* each restarting at once (the ENI is young: the EC2 pass leaves it to the
         * intent) and two minutes later (the EC2 pass forgets it first) */
        for (size_t i = 0; i < 2 * sizeof points / sizeof *points; i++) {
                char id[STORE_ID_MAX];
                struct testctx *t = node_with_eni(id);
                testctx_crash(t, points[i / 2].at, points[i / 2].after, op_delete, id);
                ck_assert_uint_eq(open_intents(t, id).on_eni, 1);
                ck_assert_int_eq(eni_state(t, id), STORE_ENI_DETACHING);
                testctx_now += i % 2 ? 2 * 60 * 1000 : 0;
                struct sync_report rep = testctx_restart(t);
                ck_assert_uint_eq(rep.intents_resolved, 1);
                ck_assert_msg(!testctx_ec2_has(t, id), "case %zu: the ENI is still in EC2", i);
                ck_assert_msg(testctx_blocks(t, id) == -1, "case %zu: the ENI is still in the store", i);
                ck_assert_uint_eq(testctx_ec2_enis(t), 1);
                assert_settled(t);
                testctx_free(t);
        }
}
END_TEST

/* --- uncertain outcomes settled for sure ------------------------------------------- */

/* The EC2 pass at the restart still saw both addresses; EC2 then applied the dead daemon's
 * unassign for one of them. The re-issued unassign (refused as a whole: one is no longer
 * assigned) is settled address by address: both leave EC2 and the store, none is handed out. */
START_TEST(test_crash_release_applied_after_the_pass) {
        struct testctx *t = node_with_primary(6);
        testctx_crash(t, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES, false, op_release, NULL);
        struct store_intent *its = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_intents_open(t->st, &its, &n), 0);
        ck_assert_uint_eq(n, 1);
        char ip[STORE_IP_MAX];
        const char *q = strstr(its[0].params, "[\"");
        ck_assert_ptr_nonnull(q);
        snprintf(ip, sizeof ip, "%.*s", (int)strcspn(q + 2, "\""), q + 2);
        free(its);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 6);
        fakeec2_lock(&t->f);
        ck_assert(fakeec2_take_ip(&t->f, TESTCTX_PRIMARY_ENI, ip)); /* the late half */
        fakeec2_unlock(&t->f);
        ck_assert_int_eq(sync_intents(&t->ctx, &rep, &err), 0);
        ck_assert_uint_eq(rep.intents_resolved, 1);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 4);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_int_eq(stats(t).available, 4);
        ck_assert_int_eq(stats(t).releasing, 0);
        assert_settled(t);
        testctx_free(t);
}
END_TEST

/* --- prefix delegation ------------------------------------------------------------ */

static size_t ec2_prefixes(struct testctx *t, const char *eni_id) {
        fakeec2_lock(&t->f);
        const struct fakeec2_eni *e = fakeec2_find(&t->f, eni_id);
        size_t n = e ? e->n_prefixes : (size_t)-1;
        fakeec2_unlock(&t->f);
        return n;
}

static void op_assign_prefixes(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        eniops_assign_prefixes(o, TESTCTX_PRIMARY_ENI, 2, true);
}

/* Killed during an Ipv4PrefixCount assign: the restart's EC2 pass holds what EC2 gave, the intent closes. */
START_TEST(test_crash_assign_prefixes) {
        for (int after = 0; after <= 1; after++) {
                struct testctx *t = node_with_primary(0);
                testctx_crash(t, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, after, op_assign_prefixes, NULL);
                ck_assert_uint_eq(open_intents(t, TESTCTX_PRIMARY_ENI).on_eni, 1);
                ck_assert_int_eq(testctx_blocks(t, TESTCTX_PRIMARY_ENI), 0);
                struct sync_report rep = testctx_restart(t);
                ck_assert_uint_eq(rep.intents_resolved, 1);
                ck_assert_uint_eq(rep.blocks_added, (after ? 2 : 0));
                ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), (after ? 2 : 0));
                testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
                ck_assert_int_eq(stats(t).available, (after ? 32 : 0));
                assert_settled(t);
                testctx_free(t);
        }
}
END_TEST

static void op_release_prefixes(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        eniops_release_prefixes(o, TESTCTX_PRIMARY_ENI, 2);
}

/* Killed with two prefixes marked releasing: the restart unassigns them again (Ipv4Prefix.N), so
 * either way EC2 and the store end without them; the third, holding a pod, is untouched. */
START_TEST(test_crash_release_prefixes) {
        for (int after = 0; after <= 1; after++) {
                struct testctx *t = node_with_primary(0);
                ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 3, true), 3);
                struct store_lease pod = testctx_pod(t, "a");
                testctx_crash(t, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES, after, op_release_prefixes, NULL);
                ck_assert_uint_eq(open_intents(t, TESTCTX_PRIMARY_ENI).on_eni, 1);
                ck_assert_int_eq(stats(t).releasing, 32);
                ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), (after ? 1 : 3));
                struct sync_report rep = testctx_restart(t);
                ck_assert_uint_eq(rep.intents_resolved, 1);
                ck_assert_uint_eq(rep.blocks_removed, 2);
                ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 1);
                testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
                struct store_lease l;
                ck_assert_int_eq(store_lookup(t->st, pod.container_id, pod.ifname, &l), 0);
                ck_assert_str_eq(l.ip, pod.ip);
                ck_assert_int_eq(stats(t).available, 15);
                assert_settled(t);
                testctx_free(t);
        }
}
END_TEST

/* A create intent of prefix delegation is re-issued with its prefix count (Ipv4PrefixCount). */
START_TEST(test_create_reissued_with_prefixes) {
        struct testctx *t = node_with_primary(0);
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        const char *params = "{\"count\":0,\"prefixes\":3,\"device_index\":1,\"subnet\":\"" FAKEEC2_SUBNET "\","
                             "\"description\":\"vpc-ipam-x\",\"groups\":[],\"tags\":[]}";
        ck_assert_int_eq(sync_create_eni(&t->ctx, "tok-pd", params, &res, &e), 0);
        ck_assert_uint_eq(res->enis[0].n_prefixes, 3);
        ck_assert_uint_eq(ec2_prefixes(t, res->enis[0].id), 3);
        ck_assert_uint_eq(testctx_ec2_ips(t, res->enis[0].id), 0);
        ec2_result_free(res);
        testctx_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("sync");
        TCase *tc = tcase_create("ec2");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_sync_adds_managed_enis_only);
        tcase_add_test(tc, test_sync_follows_pages);
        tcase_add_test(tc, test_sync_sets_delete_on_termination);
        tcase_add_test(tc, test_sync_adds_addresses);
        tcase_add_test(tc, test_sync_force_removes_taken_address);
        tcase_add_test(tc, test_sync_forgets_detached_eni);
        tcase_add_test(tc, test_sync_describe_fails);
        tcase_add_test(tc, test_sync_eni);
        tcase_add_test(tc, test_sync_with_imds);
        tcase_add_test(tc, test_sync_with_imds_refuses_empty);
        tcase_add_test(tc, test_sync_pods_releases_gone_pods);
        tcase_add_test(tc, test_sync_pod_gone_grace);
        suite_add_tcase(s, tc);
        TCase *crash = tcase_create("crash");
        tcase_set_timeout(crash, 60);
        tcase_add_test(crash, test_crash_create_before_ec2);
        tcase_add_test(crash, test_crash_create_after_ec2);
        tcase_add_test(crash, test_crash_attach_before_ec2);
        tcase_add_test(crash, test_crash_attach_after_ec2);
        tcase_add_test(crash, test_crash_delete_on_termination);
        tcase_add_test(crash, test_crash_side_by_side);
        tcase_add_test(crash, test_crash_create_ec2_down_at_restart);
        tcase_add_test(crash, test_crash_assign);
        tcase_add_test(crash, test_crash_release);
        tcase_add_test(crash, test_crash_detach_before_ec2);
        tcase_add_test(crash, test_crash_detach_or_delete_after_detached);
        tcase_add_test(crash, test_crash_release_applied_after_the_pass);
        tcase_add_test(crash, test_crash_assign_prefixes);
        tcase_add_test(crash, test_crash_release_prefixes);
        tcase_add_test(crash, test_create_reissued_with_prefixes);
        suite_add_tcase(s, crash);
        return testlib_run(s);
}

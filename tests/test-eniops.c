/*
 * test-eniops: every EC2 mutation of the pool (assign, create, release,
 * delete, finishing a delete, leak cleanup) against the fake EC2 model
 * (cloud/fakeec2.h), with no kernel (ctx.net == NULL). Each case checks both
 * sides afterwards: what EC2 holds and what the store holds, that they agree,
 * and that no intent is left open after an operation that ran to its end.
 * What a crash in the middle leaves, and how the next start resolves it, is
 * test-sync.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eniops.h"
#include "testctx.h"
#include "testlib.h"

/* The store's primary ENI, from a first EC2 pass. */
static struct testctx *node_with_primary(size_t n_ips) {
        struct testctx *t = testctx_new(n_ips);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_int_eq(rep.enis_added, 1);
        return t;
}

/* The id of the ENI EC2 made last (the model appends). */
static void last_eni(struct testctx *t, char out[STORE_ID_MAX]) {
        fakeec2_lock(&t->f);
        snprintf(out, STORE_ID_MAX, "%s", t->f.enis[t->f.n_enis - 1].id);
        fakeec2_unlock(&t->f);
}

static struct store_stats stats(struct testctx *t) {
        struct store_stats s;
        ck_assert_int_eq(store_stats(t->st, testctx_now, &s), 0);
        return s;
}

static uint64_t counter(struct testctx *t, enum metrics_counter c) {
        struct metrics_snapshot s;
        metrics_snapshot(t->metrics, &s);
        return s.counters[c];
}

static void assert_consistent(struct testctx *t) {
        struct errmsg err = { 0 };
        ck_assert_msg(store_check(t->st, testctx_now, &err) == 0, "store_check: %s", err.text);
        ck_assert_uint_eq(testctx_open_intents(t), 0);
}

/* --- assign ----------------------------------------------------------------- */

START_TEST(test_assign) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_assign(&t->ctx, TESTCTX_PRIMARY_ENI, 4), 4);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 4);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_int_eq(stats(t).available, 4);
        ck_assert_uint_eq(counter(t, METRICS_IPS_ASSIGNED), 4);
        ck_assert_str_eq(t->ctx.reason, "");
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* EC2 refuses (the ENI is full): nothing is added, the reason says why. */
START_TEST(test_assign_refused_at_limit) {
        struct testctx *t = node_with_primary(7);
        int r = eniops_assign(&t->ctx, TESTCTX_PRIMARY_ENI, 5);
        ck_assert_int_lt(r, 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 7);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_ptr_nonnull(strstr(t->ctx.reason, "PrivateIpAddressLimitExceeded"));
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/*
 * The first attempt is applied but answered with a 500; the client retries
 * and EC2 assigns again (Assign has no ClientToken). The store must end with
 * every address EC2 holds — none handed out that EC2 lacks, none EC2 holds
 * forgotten.
 */
START_TEST(test_assign_retried_after_lost_answer) {
        struct testctx *t = node_with_primary(0);
        t->f.fail_action = EC2_ASSIGN_PRIVATE_IP_ADDRESSES;
        t->f.fail_times = 1;
        t->f.fail_status = 500;
        t->f.fail_code = "InternalError";
        t->f.fail_after_apply = true;
        ck_assert_int_eq(eniops_assign(&t->ctx, TESTCTX_PRIMARY_ENI, 3), 3);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES), 2);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 6);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* --- create ----------------------------------------------------------------- */

static const char *tag_of(const struct fakeec2_eni *e, const char *key) {
        for (size_t i = 0; i < e->n_tags; i++)
                if (strcmp(e->tags[i].key, key) == 0)
                        return e->tags[i].value;
        return NULL;
}

START_TEST(test_create) {
        struct testctx *t = node_with_primary(9);
        snprintf(t->cfg.cluster_name, sizeof t->cfg.cluster_name, "prod");
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 5 }, 1), 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        const struct fakeec2_eni *e = fakeec2_find(&t->f, id);
        ck_assert_str_eq(e->instance_id, FAKEEC2_INSTANCE);
        ck_assert_int_eq(e->device_index, 1);
        ck_assert(e->delete_on_termination);
        ck_assert_uint_eq(e->n_ips, 5);
        ck_assert_str_eq(e->subnet_id, FAKEEC2_SUBNET);
        ck_assert(strncmp(e->description, ENIOPS_DESCRIPTION_PREFIX, strlen(ENIOPS_DESCRIPTION_PREFIX)) == 0);
        ck_assert_str_eq(tag_of(e, CTX_TAG_INSTANCE), FAKEEC2_INSTANCE);
        ck_assert_str_eq(tag_of(e, CTX_TAG_CLUSTER), "prod");
        ck_assert_str_eq(tag_of(e, CTX_TAG_TOKEN), e->client_token);   /* found again by it after a crash */
        ck_assert_ptr_nonnull(tag_of(e, CTX_TAG_CREATED));
        struct store_eni se;
        ck_assert_int_eq(store_eni_get(t->st, id, &se), 0);
        ck_assert_int_eq(se.state, STORE_ENI_ATTACHED);    /* net == NULL: no link to wait for */
        ck_assert_int_eq(se.device_index, 1);
        ck_assert_str_eq(se.mac, e->mac);
        testctx_assert_store_is_ec2(t, id);
        ck_assert_int_eq(stats(t).available, 9 + 5);
        ck_assert_uint_eq(counter(t, METRICS_ENIS_CREATED), 1);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* The create was applied but answered 500: the retry carries the same ClientToken, so EC2 makes one ENI. */
START_TEST(test_create_retried_makes_one_eni) {
        struct testctx *t = node_with_primary(0);
        t->f.fail_action = EC2_CREATE_NETWORK_INTERFACE;
        t->f.fail_times = 1;
        t->f.fail_status = 500;
        t->f.fail_code = "InternalError";
        t->f.fail_after_apply = true;
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 4 }, 1), 1);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), 2);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        testctx_assert_store_is_ec2(t, id);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* Device indexes: not one the store uses, nor one an unmanaged ENI holds. */
START_TEST(test_create_batch_skips_foreign_device_index) {
        struct testctx *t = testctx_new(0);
        t->cfg.manage_untagged = false;         /* MANAGE_UNTAGGED_ENI=false: the untagged ENI is foreign */
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0foreign00000001", FAKEEC2_INSTANCE, 1, 0, false);
        fakeec2_unlock(&t->f);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        ck_assert_int_eq(testctx_blocks(t, "eni-0foreign00000001"), -1);       /* not managed */
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 2, 3 }, 2), 2);
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(t->st, &enis, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_int_eq(enis[1].device_index, 2);
        ck_assert_int_eq(enis[2].device_index, 3);
        for (size_t i = 1; i < n; i++) {
                ck_assert_int_eq(enis[i].state, STORE_ENI_ATTACHED);
                ck_assert_int_eq(fakeec2_find(&t->f, enis[i].id)->device_index, enis[i].device_index);
                testctx_assert_store_is_ec2(t, enis[i].id);
        }
        free(enis);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* EC2 will not attach: the created ENI is deleted again, in EC2 and in the store. */
START_TEST(test_create_attach_refused_discards_the_eni) {
        struct testctx *t = node_with_primary(0);
        t->f.fail_action = EC2_ATTACH_NETWORK_INTERFACE;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = "AttachmentLimitExceeded";
        ck_assert_int_lt(eniops_create(&t->ctx, (int[]){ 4 }, 1), 0);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), 1);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_DELETE_NETWORK_INTERFACE), 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(t->st, &enis, &n), 0);
        ck_assert_uint_eq(n, 1);
        free(enis);
        ck_assert_ptr_nonnull(strstr(t->ctx.reason, "AttachmentLimitExceeded"));
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* The attach was applied but its answer lost (a 500 after the retries): the
 * ENI is found attached to us and kept. */
START_TEST(test_create_attach_answer_lost_keeps_the_eni) {
        struct testctx *t = node_with_primary(0);
        t->f.fail_action = EC2_ATTACH_NETWORK_INTERFACE;
        t->f.fail_times = 100;
        t->f.fail_status = 500;
        t->f.fail_code = "InternalError";
        t->f.fail_after_apply = true;
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 4 }, 1), 1);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        ck_assert_str_eq(fakeec2_find(&t->f, id)->instance_id, FAKEEC2_INSTANCE);
        ck_assert(fakeec2_find(&t->f, id)->delete_on_termination);
        testctx_assert_store_is_ec2(t, id);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* --- create: side by side, and the IMDS check ------------------------------------ */

/* The ENIs of the batch, after the primary, each attached at its own index and matching EC2. */
static void assert_new_enis(struct testctx *t, size_t want) {
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(t->st, &enis, &n), 0);
        ck_assert_uint_eq(n, want + 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), want + 1);
        for (size_t i = 1; i < n; i++) {
                const struct fakeec2_eni *e = fakeec2_find(&t->f, enis[i].id);
                ck_assert_ptr_nonnull(e);
                ck_assert_int_eq(enis[i].state, STORE_ENI_ATTACHED);
                ck_assert_int_eq(enis[i].device_index, (int)i);
                ck_assert_int_eq(e->device_index, enis[i].device_index);
                ck_assert(e->delete_on_termination);
                testctx_assert_store_is_ec2(t, enis[i].id);
        }
        free(enis);
}

/* With helpers, the batch's creates are in flight together (the model holds each Create's
 * answer 1 s: they arrive less apart than that), and each ENI is attached at its own index. */
START_TEST(test_create_side_by_side) {
        struct testctx *t = node_with_primary(0);
        testctx_helpers(t, &t->ctx);
        t->f.create_delay_ms = 1000;
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 2, 3 }, 2), 2);
        ck_assert_int_lt(t->f.min_create_gap_ms, 1000);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), 2);
        assert_new_enis(t, 2);
        ck_assert_int_eq(stats(t).available, 5);
        ck_assert_uint_eq(counter(t, METRICS_ENIS_CREATED), 2);
        ck_assert_str_eq(t->ctx.reason, "");
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* Without helpers the same batch goes one by one: never two Creates at once. */
START_TEST(test_create_one_by_one_without_helpers) {
        struct testctx *t = node_with_primary(0);
        t->f.create_delay_ms = 1000;
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 2, 3 }, 2), 2);
        ck_assert_int_ge(t->f.min_create_gap_ms, 1000);
        assert_new_enis(t, 2);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* One ENI of the batch is refused at its attach: it is deleted everywhere, the other opens. */
START_TEST(test_create_side_by_side_one_refused) {
        struct testctx *t = node_with_primary(0);
        testctx_helpers(t, &t->ctx);
        t->f.fail_action = EC2_ATTACH_NETWORK_INTERFACE;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = "AttachmentLimitExceeded";
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 2, 3 }, 2), 1);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), 2);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_DELETE_NETWORK_INTERFACE), 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        struct store_eni *enis = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_enis(t->st, &enis, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(enis[1].state, STORE_ENI_ATTACHED);
        testctx_assert_store_is_ec2(t, enis[1].id);
        free(enis);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/*
 * The IMDS check: a new ENI opens on EC2's reply (its link is there), but EC2
 * took one of its addresses right after (here, at the attach). IMDS, once it
 * lists the ENI, lacks that address; EC2 is asked again and the address
 * leaves the pool. Without the check the store would keep handing it out.
 */
START_TEST(test_create_imds_check_removes_what_ec2_took) {
        struct testctx *t = node_with_primary(0);
        t->f.take_ip_at_attach = true;
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 4 }, 1), 1);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        ck_assert_uint_eq(fakeec2_find(&t->f, id)->n_ips, 3);
        testctx_assert_store_is_ec2(t, id);
        ck_assert_int_eq(stats(t).available, 3);
        ck_assert_uint_ge(fakeec2_calls(&t->f, EC2_DESCRIBE_NETWORK_INTERFACES), 2);  /* the pass's, the check's */
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* --- release ---------------------------------------------------------------- */

START_TEST(test_release) {
        struct testctx *t = node_with_primary(6);
        ck_assert_int_eq(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 2), 2);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 4);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        struct store_stats s = stats(t);
        ck_assert_int_eq(s.available, 4);
        ck_assert_int_eq(s.releasing, 0);
        ck_assert_uint_eq(counter(t, METRICS_IPS_RELEASED), 2);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* A pod's address is never released; only free ones go. */
START_TEST(test_release_spares_assigned) {
        struct testctx *t = node_with_primary(3);
        struct store_lease l = testctx_pod(t, "pod-a");
        ck_assert_int_eq(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 3), 2);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 1);
        ck_assert_str_eq(t->f.enis[0].ips[0], l.ip);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        struct store_lease again;
        ck_assert_int_eq(store_lookup(t->st, "pod-a", "eth0", &again), 0);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* EC2 refuses: the addresses are free again, not lost and not stuck releasing. */
START_TEST(test_release_refused_unmarks) {
        struct testctx *t = node_with_primary(6);
        t->f.fail_action = EC2_UNASSIGN_PRIVATE_IP_ADDRESSES;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = "InvalidParameterValue";
        ck_assert_int_lt(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 2), 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 6);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        struct store_stats s = stats(t);
        ck_assert_int_eq(s.available, 6);
        ck_assert_int_eq(s.releasing, 0);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* Applied, then answered 500 every time: the re-read decides, and only what EC2 still lists stays. */
START_TEST(test_release_answer_lost) {
        struct testctx *t = node_with_primary(6);
        t->f.fail_action = EC2_UNASSIGN_PRIVATE_IP_ADDRESSES;
        t->f.fail_times = 100;
        t->f.fail_status = 500;
        t->f.fail_code = "InternalError";
        t->f.fail_after_apply = true;
        ck_assert_int_lt(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 2), 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 4);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_int_eq(stats(t).releasing, 0);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* An unassign EC2 did not apply but never answered: its addresses leave the pool anyway (the
 * call may still land later), and the next EC2 pass gives back those EC2 still holds. */
START_TEST(test_release_unanswered_not_applied) {
        struct testctx *t = node_with_primary(6);
        t->f.fail_action = EC2_UNASSIGN_PRIVATE_IP_ADDRESSES;
        t->f.fail_times = 100;
        t->f.fail_status = 500;
        t->f.fail_code = "InternalError";
        t->f.fail_after_apply = false;
        ck_assert_int_lt(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 2), 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 6);
        struct store_stats s = stats(t);
        ck_assert_int_eq(s.releasing, 0);
        ck_assert_int_eq(s.total, 4);                   /* never free again on a guess */
        t->f.fail_times = 0;
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(sync_with_ec2(&t->ctx, &rep, &err), 0);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* --- delete ----------------------------------------------------------------- */

static struct testctx *node_with_eni(char id[STORE_ID_MAX], int n_ips) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_create(&t->ctx, &n_ips, 1), 1);
        last_eni(t, id);
        return t;
}

START_TEST(test_delete) {
        char id[STORE_ID_MAX];
        struct testctx *t = node_with_eni(id, 3);
        ck_assert_int_eq(eniops_delete(&t->ctx, id), 0);
        ck_assert(!testctx_ec2_has(t, id));
        ck_assert_int_eq(testctx_blocks(t, id), -1);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_DETACH_NETWORK_INTERFACE), 1);
        ck_assert_uint_eq(counter(t, METRICS_ENIS_DELETED), 1);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

START_TEST(test_delete_refused_while_a_pod_holds_an_address) {
        char id[STORE_ID_MAX];
        struct testctx *t = node_with_eni(id, 1);
        testctx_pod(t, "pod-a");        /* the primary has none: it lands on the new ENI */
        ck_assert_int_eq(eniops_delete(&t->ctx, id), -EBUSY);
        ck_assert(testctx_ec2_has(t, id));
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_DETACH_NETWORK_INTERFACE), 0);
        struct store_eni se;
        ck_assert_int_eq(store_eni_get(t->st, id, &se), 0);
        ck_assert_int_eq(se.state, STORE_ENI_ATTACHED);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* A refused detach leaves the ENI detaching (never serving again); finishing it later deletes it. */
START_TEST(test_delete_refused_then_finished) {
        char id[STORE_ID_MAX];
        struct testctx *t = node_with_eni(id, 2);
        t->f.fail_action = EC2_DETACH_NETWORK_INTERFACE;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = "OperationNotPermitted";
        ck_assert_int_lt(eniops_delete(&t->ctx, id), 0);
        struct store_eni se;
        ck_assert_int_eq(store_eni_get(t->st, id, &se), 0);
        ck_assert_int_eq(se.state, STORE_ENI_DETACHING);
        ck_assert(testctx_ec2_has(t, id));
        ck_assert_int_eq(eniops_finish_detaching(&t->ctx), 0);
        ck_assert(!testctx_ec2_has(t, id));
        ck_assert_int_eq(testctx_blocks(t, id), -1);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* --- leaked ENIs ------------------------------------------------------------ */

START_TEST(test_leak_cleanup) {
        struct testctx *t = node_with_primary(0);
        /* Ours (tag and description), created and never attached — e.g. by a daemon
         * older than intents — ten minutes ago and one minute ago; and someone else's. */
        fakeec2_lock(&t->f);
        struct fakeec2_eni *old = fakeec2_add_eni(&t->f, "eni-0leaked00000000001", NULL, 0, 2, true);
        snprintf(old->description, sizeof old->description, ENIOPS_DESCRIPTION_PREFIX "%s", FAKEEC2_INSTANCE);
        struct fakeec2_eni *young = fakeec2_add_eni(&t->f, "eni-0young000000000001", NULL, 0, 2, true);
        snprintf(young->description, sizeof young->description, ENIOPS_DESCRIPTION_PREFIX "%s", FAKEEC2_INSTANCE);
        struct fakeec2_eni *other = fakeec2_add_eni(&t->f, "eni-0other000000000001", NULL, 0, 2, true);
        snprintf(other->description, sizeof other->description, "made by someone else");
        fakeec2_unlock(&t->f);
        /* created tags: ten minutes ago, one minute ago, ten minutes ago */
        const char *when[] = { "2027-01-15T07:50:00Z", "2027-01-15T07:59:00Z", "2027-01-15T07:50:00Z" };
        for (size_t i = 0; i < 3; i++) {
                struct fakeec2_eni *e = &t->f.enis[1 + i];
                snprintf(e->tags[e->n_tags].key, sizeof e->tags[0].key, "%s", CTX_TAG_CREATED);
                snprintf(e->tags[e->n_tags++].value, sizeof e->tags[0].value, "%s", when[i]);
        }
        ck_assert_int_eq(testctx_now, 1800000000000LL);     /* 2027-01-15T08:00:00Z */
        size_t deleted = 0;
        ck_assert_int_eq(eniops_leak_cleanup(&t->ctx, &deleted), 0);
        ck_assert_uint_eq(deleted, 1);
        ck_assert(!testctx_ec2_has(t, "eni-0leaked00000000001"));
        ck_assert(testctx_ec2_has(t, "eni-0young000000000001"));
        ck_assert(testctx_ec2_has(t, "eni-0other000000000001"));
        ck_assert(testctx_ec2_has(t, TESTCTX_PRIMARY_ENI));
        ck_assert_uint_eq(counter(t, METRICS_LEAKED_ENIS_DELETED), 1);
        testctx_free(t);
}
END_TEST

/* --- uncertain creates ---------------------------------------------------------- */

/* ENIs EC2 holds that nothing has attached. */
static size_t available_enis(struct testctx *t) {
        size_t n = 0;
        fakeec2_lock(&t->f);
        for (size_t i = 0; i < t->f.n_enis; i++)
                n += !t->f.enis[i].attachment_id[0];
        fakeec2_unlock(&t->f);
        return n;
}

static void fail_creates_after_apply(struct testctx *t, int times) {
        t->f.fail_action = EC2_CREATE_NETWORK_INTERFACE;
        t->f.fail_times = times;
        t->f.fail_status = 500;
        t->f.fail_code = "InternalError";
        t->f.fail_after_apply = true;
}

/* Every attempt of the create applied and unanswered: it is re-issued with its token, and the one ENI adopted. */
START_TEST(test_create_unknown_after_every_retry_is_reissued) {
        struct testctx *t = node_with_primary(0);
        fail_creates_after_apply(t, 5);         /* the client's 5 attempts */
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 4 }, 1), 1);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), 6);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        ck_assert_uint_eq(available_enis(t), 0);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        testctx_assert_store_is_ec2(t, id);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* Still unknown after the re-issues: the intent stays open (not "failed"), and the next create settles it. */
START_TEST(test_create_still_unknown_is_settled_by_the_next) {
        struct testctx *t = node_with_primary(0);
        fail_creates_after_apply(t, 1000);
        ck_assert_int_lt(eniops_create(&t->ctx, (int[]){ 4 }, 1), 0);
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);      /* EC2 made it; the answer never came */
        ck_assert_uint_eq(available_enis(t), 1);
        t->f.fail_times = 0;
        ck_assert_int_eq(eniops_create(&t->ctx, (int[]){ 4 }, 1), 1);
        ck_assert_uint_eq(available_enis(t), 0);        /* the first one deleted, the new one attached */
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* A definite refusal is not re-issued and closes the intent as failed. */
START_TEST(test_create_refused_is_not_reissued) {
        struct testctx *t = node_with_primary(0);
        t->f.fail_action = EC2_CREATE_NETWORK_INTERFACE;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = "InsufficientFreeAddressesInSubnet";
        ck_assert_int_lt(eniops_create(&t->ctx, (int[]){ 4 }, 1), 0);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_CREATE_NETWORK_INTERFACE), 1);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* --- prefix delegation -------------------------------------------------------------- */

static size_t ec2_prefixes(struct testctx *t, const char *eni_id) {
        fakeec2_lock(&t->f);
        const struct fakeec2_eni *e = fakeec2_find(&t->f, eni_id);
        size_t n = e ? e->n_prefixes : (size_t)-1;
        fakeec2_unlock(&t->f);
        return n;
}

/* Ipv4PrefixCount on an ENI: the /28s EC2 gave are blocks of 16 in the store, sharing slots with /32s. */
START_TEST(test_assign_prefixes) {
        struct testctx *t = node_with_primary(2);
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 3, true), 3);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 3);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_int_eq(stats(t).available, 2 + 3 * 16);
        ck_assert_uint_eq(counter(t, METRICS_IPS_ASSIGNED), 3 * 16);
        struct plan_eni pe[1];
        size_t n = 0;
        ck_assert_int_eq(store_plan_enis(t->st, testctx_now, pe, 1, &n), 0);
        ck_assert_int_eq(pe[0].prefixes, 3);
        ck_assert_int_eq(pe[0].empty_prefixes, 3);
        /* 1 primary + 2 /32s + 3 prefixes of 10 slots: 4 more fit, then none */
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 4, true), 4);
        ck_assert_int_lt(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1, true), 0);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 7);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* A new ENI with prefixes: created with Ipv4PrefixCount, opened on its link with EC2's
 * prefixes, then checked against IMDS (macs/<mac>/ipv4-prefix). */
START_TEST(test_create_with_prefixes) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_create_prefixes(&t->ctx, (int[]){ 2 }, 1, true), 1);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        const struct fakeec2_eni *e = fakeec2_find(&t->f, id);
        ck_assert_uint_eq(e->n_ips, 0);
        ck_assert_uint_eq(e->n_prefixes, 2);
        struct store_eni se;
        ck_assert_int_eq(store_eni_get(t->st, id, &se), 0);
        ck_assert_int_eq(se.state, STORE_ENI_ATTACHED);
        testctx_assert_store_is_ec2(t, id);
        ck_assert_int_eq(stats(t).available, 32);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* Only prefixes none of whose addresses is assigned or cooling go back, with Ipv4Prefix.N. */
START_TEST(test_release_prefixes_only_empty) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 3, true), 3);
        struct store_lease pod = testctx_pod(t, "a");
        ck_assert_int_eq(eniops_release_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 3), 2);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 1);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        struct store_stats s = stats(t);
        ck_assert_int_eq(s.assigned, 1);
        ck_assert_int_eq(s.available, 15);
        ck_assert_int_eq(s.releasing, 0);
        ck_assert_uint_eq(counter(t, METRICS_IPS_RELEASED), 32);
        /* the pod's prefix stays while it holds an address, and while that cools */
        ck_assert_int_eq(eniops_release_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1), 0);
        ck_assert_int_eq(store_release(t->st, pod.container_id, pod.ifname, testctx_now, 30000, NULL), 1);
        ck_assert_int_eq(eniops_release_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1), 0);
        testctx_now += 30000;
        ck_assert_int_eq(eniops_release_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1), 1);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 0);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* EC2 refuses the release: the prefixes serve pods again. */
START_TEST(test_release_prefixes_refused_unmarks) {
        struct testctx *t = node_with_primary(0);
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 2, true), 2);
        fakeec2_lock(&t->f);
        t->f.fail_action = EC2_UNASSIGN_PRIVATE_IP_ADDRESSES;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = "UnauthorizedOperation";
        fakeec2_unlock(&t->f);
        ck_assert_int_lt(eniops_release_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 2), 0);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 2);
        struct store_stats s = stats(t);
        ck_assert_int_eq(s.available, 32);
        ck_assert_int_eq(s.releasing, 0);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_uint_eq(testctx_open_intents(t), 0);
        testctx_free(t);
}
END_TEST

static void fail_next(struct testctx *t, enum ec2_action a, const char *code) {
        fakeec2_lock(&t->f);
        t->f.fail_action = a;
        t->f.fail_times = 1;
        t->f.fail_status = 400;
        t->f.fail_code = code;
        fakeec2_unlock(&t->f);
}

/* No free /28 in the subnet: the same need is met with /32s on the ENI (at most its free slots),
 * counted, without blocking growth; /32s straight away during the back-off, prefixes after it. */
START_TEST(test_assign_prefixes_falls_back_to_ips) {
        struct testctx *t = node_with_primary(2);
        fail_next(t, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, "InsufficientCidrBlocks");
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1, true), 7);   /* 9 slots − 2 */
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 9);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        ck_assert_uint_eq(counter(t, METRICS_PREFIX_FALLBACKS), 1);
        ck_assert_int_eq(t->ctx.grow_blocked_until, 0);
        assert_consistent(t);
        testctx_free(t);

        t = node_with_primary(0);
        fail_next(t, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, "InsufficientCidrBlocks");
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1, true), 9);
        ck_assert_int_eq(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 5), 5);
        unsigned calls = fakeec2_calls(&t->f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES);
        /* within the back-off: /32s at once, one call */
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 2, true), 5);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES), calls + 1);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 0);
        ck_assert_uint_eq(counter(t, METRICS_PREFIX_FALLBACKS), 2);
        /* after it: prefixes again */
        ck_assert_int_eq(eniops_release(&t->ctx, TESTCTX_PRIMARY_ENI, 3), 3);
        testctx_now += ENIOPS_PREFIX_RETRY_MS;
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1, true), 1);
        ck_assert_uint_eq(ec2_prefixes(t, TESTCTX_PRIMARY_ENI), 1);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/* A new ENI refused its prefixes for want of a /28: created with /32s instead (one full ENI at most). */
START_TEST(test_create_prefixes_falls_back_to_ips) {
        struct testctx *t = node_with_primary(0);
        fail_next(t, EC2_CREATE_NETWORK_INTERFACE, "InsufficientCidrBlocks");
        ck_assert_int_eq(eniops_create_prefixes(&t->ctx, (int[]){ 1 }, 1, true), 1);
        char id[STORE_ID_MAX];
        last_eni(t, id);
        ck_assert_uint_eq(ec2_prefixes(t, id), 0);
        ck_assert_uint_eq(testctx_ec2_ips(t, id), 9);
        testctx_assert_store_is_ec2(t, id);
        ck_assert_uint_eq(counter(t, METRICS_PREFIX_FALLBACKS), 1);
        ck_assert_int_eq(t->ctx.grow_blocked_until, 0);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

/*
 * Prefixes that only replace free /32s (the planner's `replace`): refused for want
 * of a /28, nothing falls back to /32s — the pool has them — but the back-off
 * starts, so the planner treats the /32s as supply until it ends.
 */
START_TEST(test_replacing_prefixes_do_not_fall_back) {
        struct testctx *t = node_with_primary(4);
        fail_next(t, EC2_ASSIGN_PRIVATE_IP_ADDRESSES, "InsufficientCidrBlocks");
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1, false), -ENOSPC);
        ck_assert_uint_eq(testctx_ec2_ips(t, TESTCTX_PRIMARY_ENI), 4);
        ck_assert_uint_eq(counter(t, METRICS_PREFIX_FALLBACKS), 0);
        ck_assert_int_gt(t->ctx.prefix_fallback_until, testctx_now);
        unsigned calls = fakeec2_calls(&t->f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES);
        /* within the back-off: no EC2 call at all */
        ck_assert_int_eq(eniops_assign_prefixes(&t->ctx, TESTCTX_PRIMARY_ENI, 1, false), -ENOSPC);
        ck_assert_int_eq(eniops_create_prefixes(&t->ctx, (int[]){ 1 }, 1, false), -ENOSPC);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_PRIVATE_IP_ADDRESSES), calls);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        testctx_assert_store_is_ec2(t, TESTCTX_PRIMARY_ENI);
        assert_consistent(t);
        testctx_free(t);

        t = node_with_primary(0);
        fail_next(t, EC2_CREATE_NETWORK_INTERFACE, "InsufficientCidrBlocks");
        ck_assert_int_eq(eniops_create_prefixes(&t->ctx, (int[]){ 1 }, 1, false), -ENOSPC);
        ck_assert_uint_eq(testctx_ec2_enis(t), 1);
        ck_assert_uint_eq(counter(t, METRICS_PREFIX_FALLBACKS), 0);
        assert_consistent(t);
        testctx_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("eniops");
        TCase *tc = tcase_create("eniops");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_assign);
        tcase_add_test(tc, test_assign_refused_at_limit);
        tcase_add_test(tc, test_assign_retried_after_lost_answer);
        tcase_add_test(tc, test_create);
        tcase_add_test(tc, test_create_retried_makes_one_eni);
        tcase_add_test(tc, test_create_batch_skips_foreign_device_index);
        tcase_add_test(tc, test_create_attach_refused_discards_the_eni);
        tcase_add_test(tc, test_create_attach_answer_lost_keeps_the_eni);
        tcase_add_test(tc, test_create_side_by_side);
        tcase_add_test(tc, test_create_one_by_one_without_helpers);
        tcase_add_test(tc, test_create_side_by_side_one_refused);
        tcase_add_test(tc, test_create_imds_check_removes_what_ec2_took);
        tcase_add_test(tc, test_release);
        tcase_add_test(tc, test_release_spares_assigned);
        tcase_add_test(tc, test_release_refused_unmarks);
        tcase_add_test(tc, test_release_answer_lost);
        tcase_add_test(tc, test_release_unanswered_not_applied);
        tcase_add_test(tc, test_delete);
        tcase_add_test(tc, test_delete_refused_while_a_pod_holds_an_address);
        tcase_add_test(tc, test_delete_refused_then_finished);
        tcase_add_test(tc, test_leak_cleanup);
        tcase_add_test(tc, test_create_unknown_after_every_retry_is_reissued);
        tcase_add_test(tc, test_create_still_unknown_is_settled_by_the_next);
        tcase_add_test(tc, test_create_refused_is_not_reissued);
        tcase_add_test(tc, test_assign_prefixes);
        tcase_add_test(tc, test_create_with_prefixes);
        tcase_add_test(tc, test_release_prefixes_only_empty);
        tcase_add_test(tc, test_release_prefixes_refused_unmarks);
        tcase_add_test(tc, test_assign_prefixes_falls_back_to_ips);
        tcase_add_test(tc, test_create_prefixes_falls_back_to_ips);
        tcase_add_test(tc, test_replacing_prefixes_do_not_fall_back);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

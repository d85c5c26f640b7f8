/*
 * test-subnets: aws-node's subnet-discovery rules (aws-vpc-cni-modes.md §4)
 * over DescribeSubnets-shaped input, and the per-subnet back-off table.
 */
#include <stdio.h>
#include <string.h>

#include "subnets.h"
#include "testlib.h"

#define T(k, v) { (k), (v) }

static struct ec2_tag cni1[] = { T(SUBNETS_TAG_CNI, "1") };
static struct ec2_tag cni0[] = { T(SUBNETS_TAG_CNI, "0") };
static struct ec2_tag cni_empty[] = { T(SUBNETS_TAG_CNI, "") };
static struct ec2_tag cni_shared[] = { T(SUBNETS_TAG_CNI, "shared") };
static struct ec2_tag other[] = { T("Name", "pods") };
static struct ec2_tag ours[] = { T(SUBNETS_TAG_CNI, "1"), T(SUBNETS_TAG_CLUSTER_PREFIX "blue", "1"),
                                 T(SUBNETS_TAG_CLUSTER_PREFIX "green", "1") };
static struct ec2_tag theirs[] = { T(SUBNETS_TAG_CNI, "1"), T(SUBNETS_TAG_CLUSTER_PREFIX "green", "1") };

#define SUBNET(i, free, t) { .id = (i), .available_ips = (free), .tags = (t), .n_tags = sizeof(t) / sizeof(t[0]) }
#define PLAIN(i, free) { .id = (i), .available_ips = (free) }

static size_t pick(const struct ec2_subnet *s, size_t n, const char *cluster, const char **ids) {
        const struct ec2_subnet *out[SUBNETS_MAX];
        size_t k = subnets_candidates(s, n, "subnet-node", cluster, out, SUBNETS_MAX);
        for (size_t i = 0; i < k; i++)
                ids[i] = out[i]->id;
        return k;
}

/* Most free addresses first; the node's subnet always; untagged others never. */
START_TEST(test_order_and_tags) {
        struct ec2_subnet s[] = { PLAIN("subnet-node", 50), SUBNET("subnet-a", 200, cni1),
                                  SUBNET("subnet-b", 100, cni_shared), PLAIN("subnet-untagged", 900),
                                  SUBNET("subnet-other-tag", 800, other), SUBNET("subnet-empty", 700, cni_empty) };
        const char *ids[SUBNETS_MAX];
        ck_assert_uint_eq(pick(s, 6, "", ids), 3);
        ck_assert_str_eq(ids[0], "subnet-a");
        ck_assert_str_eq(ids[1], "subnet-b");
        ck_assert_str_eq(ids[2], "subnet-node");
}
END_TEST

/* cni=0 excludes any subnet, the node's too; nothing is left then. */
START_TEST(test_zero_excludes) {
        struct ec2_subnet s[] = { SUBNET("subnet-node", 50, cni0), SUBNET("subnet-z", 900, cni0),
                                  SUBNET("subnet-a", 10, cni1) };
        const char *ids[SUBNETS_MAX];
        ck_assert_uint_eq(pick(s, 3, NULL, ids), 1);
        ck_assert_str_eq(ids[0], "subnet-a");
        ck_assert(subnets_excluded(&s[0]));
        ck_assert(!subnets_excluded(&s[2]));
        ck_assert_uint_eq(pick(s, 2, NULL, ids), 0);
}
END_TEST

/* With CLUSTER_NAME: cluster keys naming only other clusters exclude; none at all keep. */
START_TEST(test_cluster_keys) {
        struct ec2_subnet s[] = { SUBNET("subnet-ours", 300, ours), SUBNET("subnet-theirs", 400, theirs),
                                  SUBNET("subnet-any", 200, cni1), PLAIN("subnet-node", 1) };
        const char *ids[SUBNETS_MAX];
        ck_assert_uint_eq(pick(s, 4, "blue", ids), 3);
        ck_assert_str_eq(ids[0], "subnet-ours");
        ck_assert_str_eq(ids[1], "subnet-any");
        ck_assert_str_eq(ids[2], "subnet-node");
        /* Without CLUSTER_NAME the cluster keys do not matter. */
        ck_assert_uint_eq(pick(s, 4, "", ids), 4);
        ck_assert_str_eq(ids[0], "subnet-theirs");
        /* A name that is only a prefix of a key is not that cluster. */
        ck_assert_uint_eq(pick(s, 4, "gree", ids), 2);
}
END_TEST

/* With room for fewer than the candidates, the freest win wherever EC2 lists them. */
START_TEST(test_max_keeps_the_freest) {
        struct ec2_subnet s[] = { SUBNET("subnet-a", 10, cni1), PLAIN("subnet-node", 20), SUBNET("subnet-b", 30, cni1),
                                  SUBNET("subnet-c", 500, cni1) };
        const struct ec2_subnet *out[2];
        ck_assert_uint_eq(subnets_candidates(s, 4, "subnet-node", NULL, out, 2), 2);
        ck_assert_str_eq(out[0]->id, "subnet-c");
        ck_assert_str_eq(out[1]->id, "subnet-b");
}
END_TEST

/* Ties keep EC2's order; max bounds the answer. */
START_TEST(test_ties_and_max) {
        struct ec2_subnet s[] = { SUBNET("subnet-a", 100, cni1), SUBNET("subnet-b", 100, cni1),
                                  PLAIN("subnet-node", 100) };
        const struct ec2_subnet *out[2];
        ck_assert_uint_eq(subnets_candidates(s, 3, "subnet-node", NULL, out, 2), 2);
        ck_assert_str_eq(out[0]->id, "subnet-a");
        ck_assert_str_eq(out[1]->id, "subnet-b");
}
END_TEST

START_TEST(test_backoff) {
        struct subnets_backoff b;
        memset(&b, 0, sizeof b);
        ck_assert(!subnets_backoff_active(&b, "subnet-a", 0));
        subnets_backoff_set(&b, "subnet-a", 1000);
        ck_assert(subnets_backoff_active(&b, "subnet-a", 999));
        ck_assert(!subnets_backoff_active(&b, "subnet-a", 1000));
        ck_assert(!subnets_backoff_active(&b, "subnet-b", 500));
        subnets_backoff_set(&b, "subnet-a", 3000);      /* renewed, in its own slot */
        ck_assert(subnets_backoff_active(&b, "subnet-a", 2000));
        /* Full: the slot that expires first is reused; the others stay. */
        char id[32];
        for (int i = 0; i < SUBNETS_MAX; i++) {
                snprintf(id, sizeof id, "subnet-%d", i);
                subnets_backoff_set(&b, id, 5000 + i);
        }
        ck_assert(!subnets_backoff_active(&b, "subnet-a", 2000));
        ck_assert(subnets_backoff_active(&b, "subnet-1", 4000));
        ck_assert(subnets_backoff_active(&b, "subnet-15", 4000));
}
END_TEST

int main(void) {
        Suite *s = suite_create("subnets");
        TCase *tc = tcase_create("subnets");
        tcase_add_test(tc, test_order_and_tags);
        tcase_add_test(tc, test_zero_excludes);
        tcase_add_test(tc, test_cluster_keys);
        tcase_add_test(tc, test_ties_and_max);
        tcase_add_test(tc, test_max_keeps_the_freest);
        tcase_add_test(tc, test_backoff);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

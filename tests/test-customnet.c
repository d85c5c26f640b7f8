/*
 * test-customnet: which ENIConfig a Node names (aws-node's order,
 * aws-vpc-cni-modes.md §3), over Nodes as the API server shapes them.
 */
#include <stdio.h>
#include <string.h>

#include "customnet.h"
#include "testlib.h"

/* A Node with these labels and annotations (JSON object bodies, "" for none). */
static struct k8s_node *node(const char *labels, const char *annotations) {
        char body[2048];
        snprintf(body, sizeof body,
                 "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"ip-10-0-0-4\","
                 "\"labels\":{%s},\"annotations\":{%s}},\"spec\":{},\"status\":{}}",
                 labels, annotations);
        struct k8s_node *n = NULL;
        struct errmsg e = { 0 };
        ck_assert_msg(k8s_parse_node(body, strlen(body), &n, &e) == 0, "%s", e.text);
        return n;
}

static const char *name_of(const char *labels, const char *annotations, const char *ann_key, const char *label_key) {
        static char out[CUSTOMNET_NAME_MAX];
        struct k8s_node *n = node(labels, annotations);
        snprintf(out, sizeof out, "%s", customnet_config_name(n, ann_key, label_key));
        k8s_node_free(n);
        return out;
}

#define ZONE "\"topology.kubernetes.io/zone\":\"us-west-2a\""
#define ANN "\"k8s.amazonaws.com/eniConfig\":\"by-annotation\""
#define LBL "\"k8s.amazonaws.com/eniConfig\":\"by-label\""
#define EXT "\"vpc.amazonaws.com/externalEniConfig\":\"external\""

START_TEST(test_order) {
        /* nothing names one: "default" */
        ck_assert_str_eq(name_of(ZONE, "", NULL, NULL), "default");
        /* the default key as a label, then as an annotation (which wins) */
        ck_assert_str_eq(name_of(LBL, "", NULL, NULL), "by-label");
        ck_assert_str_eq(name_of(LBL, ANN, NULL, NULL), "by-annotation");
        /* ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone: one ENIConfig per AZ */
        ck_assert_str_eq(name_of(ZONE, "", NULL, "topology.kubernetes.io/zone"), "us-west-2a");
        ck_assert_str_eq(name_of(ZONE, ANN, NULL, "topology.kubernetes.io/zone"), "by-annotation");
        /* ENI_CONFIG_ANNOTATION_DEF moves the annotation: the default one no longer counts */
        ck_assert_str_eq(name_of(ZONE, ANN, "example.com/eni", "topology.kubernetes.io/zone"), "us-west-2a");
        /* the external label before everything */
        ck_assert_str_eq(name_of(EXT "," ZONE, ANN, NULL, "topology.kubernetes.io/zone"), "external");
        /* an empty value names nothing */
        ck_assert_str_eq(name_of("\"k8s.amazonaws.com/eniConfig\":\"\"", "", NULL, NULL), "default");
}
END_TEST

int main(void) {
        Suite *s = suite_create("customnet");
        TCase *tc = tcase_create("customnet");
        tcase_add_test(tc, test_order);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

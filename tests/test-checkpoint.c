/*
 * test-checkpoint: aws-node's checkpoint, parsed (awsnode_checkpoint_parse,
 * _read), its veth names, and its import into a real store (no kernel: the
 * hostnet handle is NULL, so no veth is adopted).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "awsnode-import.h"
#include "testlib.h"

#define T0 1764979200000LL

static int parse(const char *text, struct awsnode_checkpoint *c, struct errmsg *err) {
        return awsnode_checkpoint_parse(text, strlen(text), c, err);
}

START_TEST(test_reference_example) {
        const char *text = "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"networkName\":\"aws-cni\","
                           "\"containerID\":\"3f9c00\",\"ifName\":\"eth0\",\"ipv4\":\"10.0.3.37\","
                           "\"allocationTimestamp\":1718000000123456789,\"metadata\":{\"k8sPodNamespace\":"
                           "\"default\",\"k8sPodName\":\"web-0\",\"interfacesCount\":1}}]}";
        struct awsnode_checkpoint c = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(parse(text, &c, &err), 0);
        ck_assert_uint_eq(c.n, 1);
        struct awsnode_alloc *a = &c.allocs[0];
        ck_assert_str_eq(a->network_name, "aws-cni");
        ck_assert_str_eq(a->container_id, "3f9c00");
        ck_assert_str_eq(a->ifname, "eth0");
        ck_assert_str_eq(a->ipv4, "10.0.3.37");
        ck_assert_str_eq(a->pod_namespace, "default");
        ck_assert_str_eq(a->pod_name, "web-0");
        ck_assert(a->allocated_ns > 1718000000000000000LL);  /* a double: ns precision is not kept */
        awsnode_checkpoint_done(&c);
        ck_assert_ptr_null(c.allocs);
}
END_TEST

START_TEST(test_omitted_fields) {
        /* omitempty: an IPv6 allocation has no ipv4; metadata and the timestamp may be absent */
        const char *text = "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\",\"ifName\":"
                           "\"eth0\",\"ipv6\":\"2001:db8::5\"},{\"containerID\":\"b\",\"ifName\":\"eth0\","
                           "\"ipv4\":\"10.0.0.9\",\"unknownField\":[1,2]}]}";
        struct awsnode_checkpoint c = { 0 };
        ck_assert_int_eq(parse(text, &c, NULL), 0);
        ck_assert_uint_eq(c.n, 2);
        ck_assert_str_eq(c.allocs[0].ipv4, "");
        ck_assert_str_eq(c.allocs[1].ipv4, "10.0.0.9");
        ck_assert_str_eq(c.allocs[1].pod_name, "");
        ck_assert_int_eq(c.allocs[1].allocated_ns, 0);
        awsnode_checkpoint_done(&c);
        /* a timestamp beyond int64 (found by fuzz-checkpoint) is taken as absent, not converted */
        ck_assert_int_eq(parse("{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\","
                               "\"ifName\":\"eth0\",\"allocationTimestamp\":1.718e34}]}", &c, NULL), 0);
        ck_assert_int_eq(c.allocs[0].allocated_ns, 0);
        awsnode_checkpoint_done(&c);
}
END_TEST

START_TEST(test_no_allocations) {
        const char *texts[] = { "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[]}",
                                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":null}",
                                "{\"version\":\"vpc-cni-ipam/1\"}" };
        for (size_t i = 0; i < 3; i++) {
                struct awsnode_checkpoint c = { 0 };
                ck_assert_int_eq(parse(texts[i], &c, NULL), 0);
                ck_assert_uint_eq(c.n, 0);
                awsnode_checkpoint_done(&c);
        }
}
END_TEST

START_TEST(test_unknown_version_is_refused) {
        struct awsnode_checkpoint c = { 0 };
        struct errmsg err = { 0 };
        ck_assert_int_eq(parse("{\"version\":\"vpc-cni-ipam/2\",\"allocations\":[]}", &c, &err), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(err.text, "vpc-cni-ipam/2"));
        ck_assert_int_eq(parse("{\"allocations\":[]}", &c, &err), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(err.text, "(none)"));
        ck_assert_int_eq(parse("{\"version\":1}", &c, &err), -EPROTONOSUPPORT);
        ck_assert_ptr_null(c.allocs);
}
END_TEST

START_TEST(test_malformed_is_refused) {
        const char *bad[] = {
                "", "[]", "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[", "not json",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":{}}",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"ifName\":\"eth0\",\"ipv4\":\"10.0.0.1\"}]}",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"\",\"ifName\":\"eth0\"}]}",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\",\"ifName\":\"eth0\","
                "\"ipv4\":7}]}",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\",\"ifName\":"
                "\"a-name-longer-than-15\"}]}",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\",\"ifName\":\"eth0\","
                "\"metadata\":\"x\"}]}",
                "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[1]}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct awsnode_checkpoint c = { 0 };
                struct errmsg err = { 0 };
                ck_assert_msg(parse(bad[i], &c, &err) == -EINVAL, "accepted: %s", bad[i]);
                ck_assert_msg(err.text[0], "no message for: %s", bad[i]);
                ck_assert_ptr_null(c.allocs);
        }
        struct errmsg err = { 0 };
        struct awsnode_checkpoint c = { 0 };
        ck_assert_int_eq(parse("{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\",\"ifName\":"
                               "\"eth0\"},{\"ifName\":\"eth0\"}]}", &c, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.text, "allocation 1"));
}
END_TEST

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(text, f);
        fclose(f);
}

START_TEST(test_read_names_the_file) {
        struct awsnode_checkpoint c = { 0 };
        struct errmsg err = { 0 };
        char path[512];
        snprintf(path, sizeof path, "%s", testlib_path("absent.json"));
        ck_assert_int_eq(awsnode_checkpoint_read(path, &c, &err), -ENOENT);
        snprintf(path, sizeof path, "%s", testlib_path("ipam.json"));
        write_file(path, "{\"version\":\"vpc-cni-ipam/9\",\"allocations\":[]}");
        ck_assert_int_eq(awsnode_checkpoint_read(path, &c, &err), -EPROTONOSUPPORT);
        ck_assert_ptr_nonnull(strstr(err.text, path));
        ck_assert_ptr_nonnull(strstr(err.text, "vpc-cni-ipam/9"));
        write_file(path, "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"a\",\"ifName\":"
                         "\"eth0\",\"ipv4\":\"10.0.0.1\"}]}");
        ck_assert_int_eq(awsnode_checkpoint_read(path, &c, &err), 0);
        ck_assert_uint_eq(c.n, 1);
        awsnode_checkpoint_done(&c);
}
END_TEST

START_TEST(test_veth_names_as_aws_node) {
        char name[STORE_IFNAME_MAX + 1];
        /* sha1("default.web-0") = 0d7763386da…; aws-node keeps 11 hex digits */
        ck_assert_int_eq(awsnode_veth_name("eni", "default", "web-0", name), 0);
        ck_assert_str_eq(name, "eni0d7763386da");
        ck_assert_int_eq(awsnode_veth_name("abcd", "kube-system", "coredns-5d78c9869d-x2x4k", name), 0);
        ck_assert_str_eq(name, "abcd7db3aefa950");
        ck_assert_uint_eq(strlen(name), 15);
        ck_assert_int_eq(awsnode_veth_name("abcde", "default", "web-0", name), -EINVAL);
}
END_TEST

static store *store_with_eni(void) {
        store *s = NULL;
        ck_assert_int_eq(store_open(testlib_path("pool.db"), &s, NULL), 0);
        struct store_eni e = { .device_index = 1, .route_table = 2, .state = STORE_ENI_ATTACHED, .created_ms = T0 };
        snprintf(e.id, sizeof e.id, "eni-aws");
        snprintf(e.mac, sizeof e.mac, "02:00:00:00:00:01");
        snprintf(e.subnet_id, sizeof e.subnet_id, "subnet-1");
        snprintf(e.subnet_cidr, sizeof e.subnet_cidr, "10.0.0.0/16");
        snprintf(e.primary_ip, sizeof e.primary_ip, "10.0.3.4");
        ck_assert_int_eq(store_eni_put(s, &e), 0);
        ck_assert_int_eq(store_block_add(s, "eni-aws", "10.0.3.37/32", T0), 0);
        ck_assert_int_eq(store_block_add(s, "eni-aws", "10.0.3.38/32", T0), 0);
        ck_assert_int_eq(store_block_add(s, "eni-aws", "10.0.3.39/32", T0), 0);
        return s;
}

struct skips {
        int n;
        char last[128];
};

static void on_skip(void *ud, const struct awsnode_alloc *a, const char *why) {
        struct skips *k = ud;
        k->n++;
        snprintf(k->last, sizeof k->last, "%s: %s", a->ipv4, why);
}

START_TEST(test_import_makes_leases_once) {
        store *s = store_with_eni();
        const char *text = "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":["
                           "{\"containerID\":\"c1\",\"ifName\":\"eth0\",\"ipv4\":\"10.0.3.37\",\"metadata\":"
                           "{\"k8sPodNamespace\":\"default\",\"k8sPodName\":\"web-0\"}},"
                           "{\"containerID\":\"c2\",\"ifName\":\"eth0\",\"ipv4\":\"10.9.9.9\"},"
                           "{\"containerID\":\"c3\",\"ifName\":\"eth0\",\"ipv6\":\"2001:db8::1\"}]}";
        struct awsnode_checkpoint c = { 0 };
        ck_assert_int_eq(parse(text, &c, NULL), 0);
        struct awsnode_import_report rep = { 0 };
        struct skips k = { 0 };
        char meta[32];
        ck_assert_int_eq(store_meta_get(s, AWSNODE_IMPORTED_META, meta, sizeof meta), -ENOENT);
        ck_assert_int_eq(awsnode_import(s, NULL, &c, "eni", false, T0, on_skip, &k, &rep, NULL), 0);
        ck_assert_uint_eq(rep.imported, 1);
        ck_assert_uint_eq(rep.skipped, 2);
        ck_assert_int_eq(k.n, 2);
        ck_assert_int_eq(store_meta_get(s, AWSNODE_IMPORTED_META, meta, sizeof meta), 0);
        struct store_lease l;
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", &l), 0);
        ck_assert_str_eq(l.ip, "10.0.3.37");
        ck_assert_str_eq(l.pod_name, "web-0");
        ck_assert_str_eq(l.host_veth, "eni0d7763386da");
        ck_assert_int_eq(l.route_table, 2);
        ck_assert_int_eq(store_lookup(s, "c2", "eth0", &l), -ENOENT);
        /* the imported address is never handed out; the others are */
        bool existing;
        struct store_attachment a = { .container_id = "new", .ifname = "eth0" };
        for (int i = 0; i < 2; i++) {
                char cid[8];
                snprintf(cid, sizeof cid, "new%d", i);
                a.container_id = cid;
                ck_assert_int_eq(store_assign(s, &a, T0, &l, &existing), 0);
                ck_assert_str_ne(l.ip, "10.0.3.37");
        }
        a.container_id = "new2";
        ck_assert_int_eq(store_assign(s, &a, T0, &l, &existing), -EAGAIN);
        /* importing again is idempotent for c1 */
        ck_assert_int_eq(awsnode_import(s, NULL, &c, "eni", false, T0, on_skip, &k, &rep, NULL), 0);
        ck_assert_uint_eq(rep.imported, 1);
        /* a DEL releases it like any lease */
        ck_assert_int_eq(store_release(s, "c1", "eth0", T0, 0, &l), 1);
        awsnode_checkpoint_done(&c);
        store_close(s);
}
END_TEST

START_TEST(test_import_skips_an_address_another_pod_holds) {
        store *s = store_with_eni();
        struct store_lease l;
        struct store_attachment mine = { .container_id = "ours", .ifname = "eth0" };
        ck_assert_int_eq(store_assign_addr(s, &mine, "10.0.3.38", T0, &l), 0);
        ck_assert_int_eq(store_assign_addr(s, &mine, "10.0.3.38", T0, &l), 1);       /* idempotent: held */
        ck_assert_int_eq(store_assign_addr(s, &mine, "10.0.3.39", T0, &l), -EEXIST); /* holds another */
        ck_assert_int_eq(store_assign_addr(s, &mine, "10.0.3.400", T0, &l), -EINVAL);
        struct store_attachment other = { .container_id = "other", .ifname = "eth0" };
        ck_assert_int_eq(store_assign_addr(s, &other, "10.0.3.4", T0, &l), -ENOENT);  /* the ENI's primary */
        ck_assert_int_eq(store_assign_addr(s, &other, "10.0.3.38", T0, &l), -EBUSY);  /* mine's */
        ck_assert_int_eq(store_eni_set_state(s, "eni-aws", STORE_ENI_ATTACHING), 0);
        ck_assert_int_eq(store_assign_addr(s, &other, "10.0.3.39", T0, &l), -EAGAIN); /* ENI not set up */
        ck_assert_int_eq(store_eni_set_state(s, "eni-aws", STORE_ENI_ATTACHED), 0);
        struct awsnode_checkpoint c = { 0 };
        ck_assert_int_eq(parse("{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"theirs\","
                               "\"ifName\":\"eth0\",\"ipv4\":\"10.0.3.38\"}]}", &c, NULL), 0);
        struct awsnode_import_report rep = { 0 };
        struct skips k = { 0 };
        ck_assert_int_eq(awsnode_import(s, NULL, &c, "eni", false, T0, on_skip, &k, &rep, NULL), 0);
        ck_assert_uint_eq(rep.skipped, 1);
        ck_assert_ptr_nonnull(strstr(k.last, "held by another pod"));
        ck_assert_int_eq(store_lookup(s, "ours", "eth0", &l), 0);
        ck_assert_str_eq(l.ip, "10.0.3.38");
        awsnode_checkpoint_done(&c);
        store_close(s);
}
END_TEST

/* IPv6 mode: aws-node's /128s become leases of the adopted /80; one outside it refuses the import. */
START_TEST(test_import_ipv6) {
        store *s = store_with_eni();
        ck_assert_int_eq(store_prefix6_add(s, "eni-aws", "2600:1f14:abc:de00:1234::/80", T0), 0);
        struct awsnode_checkpoint c = { 0 };
        struct awsnode_import_report rep = { 0 };
        struct skips k = { 0 };
        struct errmsg err = { 0 };
        char meta[32];
        /* a /128 outside the store's /80: refused, and the import not recorded */
        ck_assert_int_eq(parse("{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":\"x\","
                               "\"ifName\":\"eth0\",\"ipv6\":\"2600:1f14:abc:de00:9999::5\"}]}", &c, NULL), 0);
        ck_assert_int_eq(awsnode_import(s, NULL, &c, "eni", true, T0, on_skip, &k, &rep, &err), -EADDRNOTAVAIL);
        ck_assert_ptr_nonnull(strstr(err.text, "2600:1f14:abc:de00:9999::5"));
        ck_assert_int_eq(store_meta_get(s, AWSNODE_IMPORTED_META, meta, sizeof meta), -ENOENT);
        awsnode_checkpoint_done(&c);
        const char *text = "{\"version\":\"vpc-cni-ipam/1\",\"allocations\":["
                           "{\"containerID\":\"c1\",\"ifName\":\"eth0\",\"ipv6\":\"2600:1f14:abc:de00:1234::\","
                           "\"metadata\":{\"k8sPodNamespace\":\"default\",\"k8sPodName\":\"web-0\"}},"
                           "{\"containerID\":\"c2\",\"ifName\":\"eth0\",\"ipv6\":\"2600:1f14:abc:de00:1234::1\"},"
                           "{\"containerID\":\"c3\",\"ifName\":\"eth0\",\"ipv4\":\"10.0.3.37\"}]}";
        ck_assert_int_eq(parse(text, &c, NULL), 0);
        ck_assert_str_eq(c.allocs[0].ipv6, "2600:1f14:abc:de00:1234::");
        ck_assert_int_eq(awsnode_import(s, NULL, &c, "eni", true, T0, on_skip, &k, &rep, NULL), 0);
        ck_assert_uint_eq(rep.imported, 2);
        ck_assert_uint_eq(rep.skipped, 1);                       /* the IPv4 one */
        ck_assert_int_eq(store_meta_get(s, AWSNODE_IMPORTED_META, meta, sizeof meta), 0);
        struct store_lease l;
        ck_assert_int_eq(store_lookup(s, "c1", "eth0", &l), 0);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1234::");
        ck_assert_str_eq(l.host_veth, "eni0d7763386da");
        /* a new pod gets neither of aws-node's /128s */
        struct store_attachment a = { .container_id = "new", .ifname = "eth0" };
        ck_assert_int_eq(store_assign6(s, &a, true, T0, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00:1234::2");
        awsnode_checkpoint_done(&c);
        store_close(s);
}
END_TEST

int main(void) {
        Suite *s = suite_create("checkpoint");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_reference_example);
        tcase_add_test(tc, test_import_ipv6);
        tcase_add_test(tc, test_omitted_fields);
        tcase_add_test(tc, test_no_allocations);
        tcase_add_test(tc, test_unknown_version_is_refused);
        tcase_add_test(tc, test_malformed_is_refused);
        tcase_add_test(tc, test_read_names_the_file);
        tcase_add_test(tc, test_veth_names_as_aws_node);
        tcase_add_test(tc, test_import_makes_leases_once);
        tcase_add_test(tc, test_import_skips_an_address_another_pod_holds);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

/*
 * test-cni-config: the CNI environment and network configuration are parsed
 * as the spec says, and every refusal carries the right CNI code and names
 * the culprit; host veth names are stable, short and distinct.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cni-config.h"
#include "dataplane.h"
#include "testlib.h"

#define ADD_ENV "CNI_COMMAND=ADD", "CNI_CONTAINERID=abc123", "CNI_NETNS=/var/run/netns/x", "CNI_IFNAME=eth0", \
                "CNI_PATH=/opt/cni/bin"

static int env_parse(char **envp, struct cni_env *e, struct errmsg *err) {
        int code = 0;
        errmsg_clear(err);
        int r = cni_env_parse(envp, e, &code, err);
        if (r < 0)
                ck_assert_int_eq(code, CNI_ERR_INVALID_ENV);
        return r;
}

START_TEST(test_env_add_ok_with_k8s_args) {
        char *envp[] = { ADD_ENV,
                         "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
                         "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1;Other=x",
                         NULL };
        struct cni_env e;
        struct errmsg err;
        ck_assert_int_eq(env_parse(envp, &e, &err), 0);
        ck_assert_int_eq(e.command, CNI_CMD_ADD);
        ck_assert_str_eq(e.container_id, "abc123");
        ck_assert_str_eq(e.netns, "/var/run/netns/x");
        ck_assert_str_eq(e.ifname, "eth0");
        ck_assert_str_eq(e.pod_namespace, "default");
        ck_assert_str_eq(e.pod_name, "web-0");
        ck_assert_str_eq(e.pod_uid, "u-1");
        ck_assert_str_eq(e.pod_infra_container_id, "abc123");
}
END_TEST

static void expect_env_error(char **envp, const char *needle) {
        struct cni_env e;
        struct errmsg err;
        ck_assert_int_lt(env_parse(envp, &e, &err), 0);
        ck_assert_msg(strstr(err.text, needle), "\"%s\" does not mention \"%s\"", err.text, needle);
}

START_TEST(test_env_errors) {
        char *no_cmd[] = { "CNI_CONTAINERID=a", NULL };
        expect_env_error(no_cmd, "CNI_COMMAND");
        char *bad_cmd[] = { "CNI_COMMAND=FROB", NULL };
        expect_env_error(bad_cmd, "CNI_COMMAND=FROB");
        char *no_id[] = { "CNI_COMMAND=ADD", "CNI_NETNS=/x", "CNI_IFNAME=eth0", NULL };
        expect_env_error(no_id, "CNI_CONTAINERID");
        char *bad_id[] = { "CNI_COMMAND=ADD", "CNI_CONTAINERID=a/b", "CNI_NETNS=/x", "CNI_IFNAME=eth0", NULL };
        expect_env_error(bad_id, "CNI_CONTAINERID=a/b");
        char *no_netns[] = { "CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_IFNAME=eth0", NULL };
        expect_env_error(no_netns, "CNI_NETNS");
        char *rel_netns[] = { "CNI_COMMAND=CHECK", "CNI_CONTAINERID=a", "CNI_NETNS=x", "CNI_IFNAME=eth0", NULL };
        expect_env_error(rel_netns, "absolute");
        char *no_if[] = { "CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/x", NULL };
        expect_env_error(no_if, "CNI_IFNAME");
        char *long_if[] = { "CNI_COMMAND=ADD", "CNI_CONTAINERID=a", "CNI_NETNS=/x", "CNI_IFNAME=abcdefghijklmnop",
                            NULL };
        expect_env_error(long_if, "CNI_IFNAME");
        char *bad_args[] = { ADD_ENV, "CNI_ARGS=K8S_POD_NAME", NULL };
        expect_env_error(bad_args, "KEY=VALUE");
        char *unknown_arg[] = { ADD_ENV, "CNI_ARGS=K8S_POD_NAME=a;Frob=1", NULL };
        expect_env_error(unknown_arg, "Frob");
        char *gc_no_path[] = { "CNI_COMMAND=GC", NULL };
        expect_env_error(gc_no_path, "CNI_PATH");
}
END_TEST

START_TEST(test_env_del_accepts_empty_netns) {
        char *envp[] = { "CNI_COMMAND=DEL", "CNI_CONTAINERID=abc", "CNI_NETNS=", "CNI_IFNAME=eth0", NULL };
        struct cni_env e;
        struct errmsg err;
        ck_assert_int_eq(env_parse(envp, &e, &err), 0);
        ck_assert_str_eq(e.netns, "");
        char *version[] = { "CNI_COMMAND=VERSION", NULL };
        ck_assert_int_eq(env_parse(version, &e, &err), 0);
        char *status[] = { "CNI_COMMAND=STATUS", NULL };
        ck_assert_int_eq(env_parse(status, &e, &err), 0);
        ck_assert_int_eq(e.command, CNI_CMD_STATUS);
}
END_TEST

static int cfg_parse(const char *json, enum cni_command cmd, struct cni_config *c, int *code, struct errmsg *err) {
        errmsg_clear(err);
        *code = 0;
        return cni_config_parse(json, strlen(json), cmd, c, code, err);
}

START_TEST(test_config_defaults_and_fields) {
        struct cni_config c;
        struct errmsg err;
        int code;
        ck_assert_int_eq(cfg_parse("{\"cniVersion\":\"1.1.0\",\"name\":\"vpc\",\"type\":\"vpc-cni\","
                                   "\"unknownField\":[1,2],\"runtimeConfig\":{}}",
                                   CNI_CMD_ADD, &c, &code, &err), 0);
        ck_assert_str_eq(c.socket, PROTO_SOCKET_DEFAULT);
        ck_assert_str_eq(c.veth_prefix, "eni");
        ck_assert_uint_eq(c.mtu, 0);
        ck_assert_ptr_null(c.prev_result);
        ck_assert(!c.veth_delete_sync);
        cni_config_done(&c);
        ck_assert_int_eq(cfg_parse("{\"cniVersion\":\"0.3.1\",\"name\":\"vpc\",\"type\":\"vpc-cni\","
                                   "\"socket\":\"/tmp/s.sock\",\"mtu\":1500,\"vethPrefix\":\"pod\","
                                   "\"logFile\":\"/tmp/l\",\"logLevel\":\"debug\",\"vethDelete\":\"sync\","
                                   "\"prevResult\":{\"ips\":[{\"address\":\"10.0.0.2/32\"}]}}",
                                   CNI_CMD_DEL, &c, &code, &err), 0);
        ck_assert_str_eq(c.socket, "/tmp/s.sock");
        ck_assert_str_eq(c.veth_prefix, "pod");
        ck_assert_uint_eq(c.mtu, 1500);
        ck_assert_str_eq(c.log_level, "debug");
        ck_assert(c.veth_delete_sync);
        ck_assert_ptr_nonnull(c.prev_result);
        cni_config_done(&c);
        /* the earlier "deferred" reads as the default, "async" */
        ck_assert_int_eq(cfg_parse("{\"cniVersion\":\"1.1.0\",\"name\":\"vpc\",\"type\":\"vpc-cni\","
                                   "\"vethDelete\":\"deferred\"}", CNI_CMD_DEL, &c, &code, &err), 0);
        ck_assert(!c.veth_delete_sync);
        cni_config_done(&c);
}
END_TEST

static void expect_cfg_error(const char *json, enum cni_command cmd, int want_code, const char *needle) {
        struct cni_config c;
        struct errmsg err;
        int code;
        ck_assert_int_lt(cfg_parse(json, cmd, &c, &code, &err), 0);
        ck_assert_msg(code == want_code, "%s: code %d, want %d", json, code, want_code);
        ck_assert_msg(strstr(err.text, needle), "\"%s\" does not mention \"%s\"", err.text, needle);
}

#define BASE "\"cniVersion\":\"1.0.0\",\"name\":\"vpc\",\"type\":\"vpc-cni\""

START_TEST(test_config_errors) {
        expect_cfg_error("", CNI_CMD_ADD, CNI_ERR_DECODE, "empty");
        expect_cfg_error("{not json", CNI_CMD_ADD, CNI_ERR_DECODE, "JSON");
        expect_cfg_error("[]", CNI_CMD_ADD, CNI_ERR_DECODE, "JSON object");
        expect_cfg_error("{\"name\":\"vpc\",\"type\":\"vpc-cni\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "cniVersion");
        expect_cfg_error("{\"cniVersion\":\"2.0.0\",\"name\":\"vpc\",\"type\":\"vpc-cni\"}", CNI_CMD_ADD,
                         CNI_ERR_INCOMPATIBLE_VERSION, "2.0.0");
        expect_cfg_error("{\"cniVersion\":\"1.0.0\",\"type\":\"vpc-cni\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "name");
        expect_cfg_error("{\"cniVersion\":\"1.0.0\",\"name\":\"a b\",\"type\":\"vpc-cni\"}", CNI_CMD_ADD,
                         CNI_ERR_INVALID_CONFIG, "name");
        expect_cfg_error("{\"cniVersion\":\"1.0.0\",\"name\":\"vpc\",\"type\":\"ptp\"}", CNI_CMD_ADD,
                         CNI_ERR_INVALID_CONFIG, "ptp");
        expect_cfg_error("{" BASE ",\"socket\":\"rel.sock\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "socket");
        expect_cfg_error("{" BASE ",\"socket\":7}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "socket");
        expect_cfg_error("{" BASE ",\"mtu\":70000}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "mtu");
        expect_cfg_error("{" BASE ",\"mtu\":\"1500\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "mtu");
        expect_cfg_error("{" BASE ",\"vethPrefix\":\"toolong\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "vethPrefix");
        expect_cfg_error("{" BASE ",\"vethPrefix\":\"eth\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "clash");
        expect_cfg_error("{" BASE ",\"vethPrefix\":\"lo\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "clash");
        expect_cfg_error("{" BASE ",\"vethPrefix\":\"vlan\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "clash");
        expect_cfg_error("{" BASE ",\"vethPrefix\":\"a-b\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "vethPrefix");
        expect_cfg_error("{" BASE ",\"vethDelete\":\"later\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "vethDelete");
        expect_cfg_error("{" BASE ",\"logLevel\":\"loud\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "loud");
        expect_cfg_error("{" BASE ",\"logFile\":\"rel\"}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "logFile");
        expect_cfg_error("{" BASE ",\"runtimeConfig\":[]}", CNI_CMD_ADD, CNI_ERR_INVALID_CONFIG, "runtimeConfig");
        expect_cfg_error("{" BASE ",\"prevResult\":\"x\"}", CNI_CMD_DEL, CNI_ERR_INVALID_CONFIG, "prevResult");
        expect_cfg_error("{" BASE "}", CNI_CMD_GC, CNI_ERR_INVALID_CONFIG, "valid-attachments");
        expect_cfg_error("{" BASE ",\"cni.dev/valid-attachments\":[{\"containerID\":\"a\"}]}", CNI_CMD_GC,
                         CNI_ERR_INVALID_CONFIG, "valid-attachments[0]");
}
END_TEST

START_TEST(test_config_gc_attachments) {
        struct cni_config c;
        struct errmsg err;
        int code;
        ck_assert_int_eq(cfg_parse("{" BASE ",\"cni.dev/valid-attachments\":[{\"containerID\":\"a1\",\"ifname\":"
                                   "\"eth0\"},{\"containerID\":\"b2\",\"ifname\":\"eth1\"}]}",
                                   CNI_CMD_GC, &c, &code, &err), 0);
        ck_assert_uint_eq(c.n_valid, 2);
        ck_assert_str_eq(c.valid[1].container_id, "b2");
        ck_assert_str_eq(c.valid[1].ifname, "eth1");
        cni_config_done(&c);
        /* the spec's first spelling is accepted too */
        ck_assert_int_eq(cfg_parse("{" BASE ",\"cni.dev/attachments\":[]}", CNI_CMD_GC, &c, &code, &err), 0);
        ck_assert_uint_eq(c.n_valid, 0);
        cni_config_done(&c);
}
END_TEST

START_TEST(test_versions) {
        ck_assert(cni_version_supported("0.3.0"));
        ck_assert(cni_version_supported("1.1.0"));
        ck_assert(!cni_version_supported("0.2.0"));
        ck_assert_int_lt(cni_version_cmp("0.4.0", "1.0.0"), 0);
        ck_assert_int_gt(cni_version_cmp("1.1.0", "1.0.0"), 0);
        ck_assert_int_eq(cni_version_cmp("1.0.0", "1.0.0"), 0);
}
END_TEST

START_TEST(test_veth_names) {
        char a[16], b[16], c[16], d[16], e[16];
        ck_assert_int_eq(dp_veth_name("eni", "abc123", "eth0", 0, a), 0);
        ck_assert_int_eq(dp_veth_name("eni", "abc123", "eth0", 0, b), 0);
        ck_assert_str_eq(a, b);                         /* stable */
        ck_assert_uint_eq(strlen(a), 15);
        ck_assert(strncmp(a, "eni", 3) == 0);
        dp_veth_name("eni", "abc123", "eth1", 0, c);    /* ifname counts */
        ck_assert_str_ne(a, c);
        dp_veth_name("eni", "abc12", "3eth0", 0, d);    /* no ambiguity at the join */
        ck_assert_str_ne(a, d);
        dp_veth_name("eni", "abc123", "eth0", 1, e);    /* a salted alternate differs */
        ck_assert_str_ne(a, e);
        dp_veth_name("abcd", "abc123", "eth0", 0, e);
        ck_assert_uint_eq(strlen(e), 15);
        ck_assert_int_eq(dp_veth_name("", "x", "eth0", 0, e), -EINVAL);
        ck_assert_int_eq(dp_veth_name("abcde", "x", "eth0", 0, e), -EINVAL);
        /* no collisions across a few thousand pods */
        enum { N = 5000 };
        static char names[N][16];
        for (int i = 0; i < N; i++) {
                char id[32];
                snprintf(id, sizeof id, "pod-%d", i);
                dp_veth_name("eni", id, "eth0", 0, names[i]);
                ck_assert(proto_valid_ifname(names[i]));
        }
        qsort(names, N, sizeof names[0], (int (*)(const void *, const void *))strcmp);
        for (int i = 1; i < N; i++)
                ck_assert_str_ne(names[i - 1], names[i]);
}
END_TEST

int main(void) {
        Suite *s = suite_create("cni-config");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_env_add_ok_with_k8s_args);
        tcase_add_test(tc, test_env_errors);
        tcase_add_test(tc, test_env_del_accepts_empty_netns);
        tcase_add_test(tc, test_config_defaults_and_fields);
        tcase_add_test(tc, test_config_errors);
        tcase_add_test(tc, test_config_gc_attachments);
        tcase_add_test(tc, test_versions);
        tcase_add_test(tc, test_veth_names);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

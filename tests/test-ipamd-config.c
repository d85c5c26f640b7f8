/*
 * test-ipamd-config: the daemon's variables — defaults, good values, and each
 * bad value or unsupported feature refused with a message that names it.
 */
#include <errno.h>
#include <string.h>

#include "ipamd-config.h"
#include "testlib.h"

START_TEST(test_defaults) {
        const char *env[] = { NULL };
        struct ipamd_config c;
        ck_assert_int_eq(ipamd_config_from_env(env, &c, NULL), 0);
        ck_assert_int_eq(c.eni_mtu, 9001);
        ck_assert_int_eq(c.pod_mtu, 9001);
        ck_assert_str_eq(c.socket_path, "/run/vpc-ipam/ipamd.sock");
        ck_assert_str_eq(c.db_path, "/var/lib/vpc-ipam/pool.db");
        ck_assert_str_eq(c.introspection_bind, "127.0.0.1:61679");
        ck_assert_str_eq(c.metrics_bind, ":61678");
        ck_assert_int_eq(c.add_wait_ms, 10000);
        ck_assert(c.ec2_rate_share > 0.099 && c.ec2_rate_share < 0.101);
        ck_assert_int_eq(c.pool.warm_eni_target, 1);
        ck_assert_uint_eq(c.n_tags, 0);
        ck_assert(!c.no_provisioning && !c.no_leak_cleanup && !c.no_introspection && !c.no_metrics);
        ck_assert_int_eq(c.log_level, LOG_INFO);
}
END_TEST

START_TEST(test_values) {
        const char *env[] = {
                "AWS_VPC_ENI_MTU=1500", "CLUSTER_NAME=prod-eu", "ADDITIONAL_ENI_TAGS={\"team\":\"net\",\"cost\":\"42\"}",
                "DISABLE_NETWORK_RESOURCE_PROVISIONING=true", "DISABLE_LEAKED_ENI_CLEANUP=1",
                "AWS_VPC_K8S_CNI_LOGLEVEL=DEBUG", "AWS_VPC_K8S_CNI_LOG_FILE=/var/log/ipamd.log",
                "INTROSPECTION_BIND_ADDRESS=unix:/run/vpc-ipam/introspect.sock", "METRICS_BIND_ADDRESS=127.0.0.1:9100",
                "DISABLE_METRICS=false", "VPC_IPAM_SOCKET=/tmp/x.sock", "VPC_IPAM_DB=/tmp/x.db",
                "VPC_IPAM_ADD_WAIT=3", "VPC_IPAM_EC2_RATE_SHARE=0.5", "WARM_IP_TARGET=5", "ENABLE_IPv6=false",
                "ENABLE_IPv4=true", "VPC_IPAM_LOG_FORMAT=text", NULL };
        struct ipamd_config c;
        struct errmsg e;
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        ck_assert_int_eq(c.eni_mtu, 1500);
        ck_assert_int_eq(c.pod_mtu, 1500);
        ck_assert_str_eq(c.cluster_name, "prod-eu");
        ck_assert_uint_eq(c.n_tags, 2);
        ck_assert_str_eq(c.tags[0].key, "team");
        ck_assert_str_eq(c.tags[1].value, "42");
        ck_assert(c.no_provisioning && c.no_leak_cleanup);
        ck_assert_int_eq(c.log_level, LOG_DEBUG);
        ck_assert_int_eq(c.log_format, LOG_FORMAT_TEXT);
        ck_assert_str_eq(c.log_file, "/var/log/ipamd.log");
        ck_assert_str_eq(c.introspection_bind, "unix:/run/vpc-ipam/introspect.sock");
        ck_assert_int_eq(c.add_wait_ms, 3000);
        ck_assert_int_eq(c.pool.warm_ip_target, 5);
        ck_assert(c.ec2_rate_share > 0.49 && c.ec2_rate_share < 0.51);
}
END_TEST

static const struct {
        const char *var;
        int code;
        const char *must_say;
} bad[] = {
        { "AWS_VPC_ENI_MTU=9002", -ERANGE, "AWS_VPC_ENI_MTU=9002: out of range; accepted: 576 to 9001" },
        { "AWS_VPC_ENI_MTU=jumbo", -EINVAL, "AWS_VPC_ENI_MTU=jumbo" },
        { "POD_MTU=100", -ERANGE, "POD_MTU=100" },
        { "ADDITIONAL_ENI_TAGS=team=net", -EINVAL, "ADDITIONAL_ENI_TAGS=team=net: not a JSON object" },
        { "ADDITIONAL_ENI_TAGS=[1]", -EINVAL, "not a JSON object" },
        { "ADDITIONAL_ENI_TAGS={\"a\":1}", -EINVAL, "the value of \"a\" is not a string" },
        { "ADDITIONAL_ENI_TAGS={\"node.k8s.amazonaws.com/x\":\"y\"}", -EINVAL, "is reserved" },
        { "ADDITIONAL_ENI_TAGS={\"aws:x\":\"y\"}", -EINVAL, "reserved by AWS" },
        { "DISABLE_NETWORK_RESOURCE_PROVISIONING=yes", -EINVAL,
          "DISABLE_NETWORK_RESOURCE_PROVISIONING=yes: not a boolean" },
        { "AWS_VPC_K8S_CNI_LOGLEVEL=loud", -EINVAL, "AWS_VPC_K8S_CNI_LOGLEVEL=loud: not a log level" },
        { "AWS_VPC_K8S_CNI_LOG_FILE=stdout", -EINVAL, "stdout: not accepted" },
        { "AWS_VPC_K8S_CNI_LOG_FILE=relative.log", -EINVAL, "not an absolute path" },
        { "INTROSPECTION_BIND_ADDRESS=localhost:61679", -EINVAL, "\"localhost\" is not an IPv4 address" },
        { "INTROSPECTION_BIND_ADDRESS=127.0.0.1", -EINVAL, "not an address" },
        { "METRICS_BIND_ADDRESS=:99999", -EINVAL, "METRICS_BIND_ADDRESS=:99999" },
        { "METRICS_BIND_ADDRESS=unix:relative", -EINVAL, "unix: needs an absolute path" },
        { "VPC_IPAM_SOCKET=run/x.sock", -EINVAL, "VPC_IPAM_SOCKET=run/x.sock: not an absolute path" },
        { "VPC_IPAM_SOCKET=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          -ERANGE, "VPC_IPAM_SOCKET" },
        { "VPC_IPAM_ADD_WAIT=10s", -EINVAL, "VPC_IPAM_ADD_WAIT=10s: not an integer" },
        { "VPC_IPAM_ADD_WAIT=26", -ERANGE, "VPC_IPAM_ADD_WAIT=26: out of range; accepted: 0 to 25" },
        { "VPC_IPAM_EC2_RATE_SHARE=0", -EINVAL, "VPC_IPAM_EC2_RATE_SHARE=0: accepted: a fraction above 0" },
        { "VPC_IPAM_EC2_RATE_SHARE=1.5", -EINVAL, "VPC_IPAM_EC2_RATE_SHARE=1.5" },
        { "VPC_IPAM_EC2_RATE_SHARE=nan", -EINVAL, "VPC_IPAM_EC2_RATE_SHARE=nan" },
        { "ENABLE_IPv6=true", -EOPNOTSUPP, "ENABLE_IPv6=true: not supported yet" },
        { "ENABLE_PREFIX_DELEGATION=true", -EOPNOTSUPP, "ENABLE_PREFIX_DELEGATION=true: not supported yet" },
        { "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true", -EOPNOTSUPP, "not supported yet" },
        { "ENABLE_POD_ENI=true", -EOPNOTSUPP, "ENABLE_POD_ENI=true" },
        { "ENABLE_IPv4=false", -EOPNOTSUPP, "IPv4 only" },
        { "CLUSTER_NAME=a\tb", -EINVAL, "control character" },
        { "WARM_ENI_TARGET=x", -EINVAL, "WARM_ENI_TARGET=x" },
        { "VPC_IPAM_LEAK_CLEANUP_INTERVAL=5", -ERANGE, "VPC_IPAM_LEAK_CLEANUP_INTERVAL=5" },
        { "VPC_IPAM_VPC_CIDR_REFRESH=0", -ERANGE, "VPC_IPAM_VPC_CIDR_REFRESH=0" },
        { "VPC_IPAM_VPC_CIDR_REFRESH=1m", -EINVAL, "VPC_IPAM_VPC_CIDR_REFRESH=1m: not an integer" },
        { "AWS_VPC_K8S_CNI_EXTERNALSNAT=maybe", -EINVAL, "AWS_VPC_K8S_CNI_EXTERNALSNAT=maybe: not a boolean" },
        { "AWS_VPC_K8S_CNI_RANDOMIZESNAT=random", -EINVAL,
          "AWS_VPC_K8S_CNI_RANDOMIZESNAT=random: accepted: prng, hashrandom, none" },
        { "AWS_VPC_K8S_CNI_RANDOMIZESNAT=PRNG", -EINVAL, "AWS_VPC_K8S_CNI_RANDOMIZESNAT=PRNG" },
        { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=10.1.0.0/16,bogus", -EINVAL,
          "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS: \"bogus\" is not an IPv4 CIDR" },
        { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=10.1.0.1/16", -EINVAL, "\"10.1.0.1/16\" has host bits set" },
        { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=fd00::/8", -EINVAL, "is not an IPv4 CIDR" },
        { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=10.1.0.0/33", -EINVAL, "\"10.1.0.0/33\" is not an IPv4 CIDR" },
        { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=10.1.0.0/16,,10.2.0.0/16", -EINVAL, "an empty or overlong item" },
        { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=10.1.0.0/16,", -EINVAL, "ends with a comma" },
        { "AWS_VPC_CNI_NODE_PORT_SUPPORT=on", -EINVAL, "AWS_VPC_CNI_NODE_PORT_SUPPORT=on: not a boolean" },
        { "AWS_VPC_K8S_CNI_CONNMARK=0", -EINVAL, "AWS_VPC_K8S_CNI_CONNMARK=0: accepted: a non-zero 32-bit mark" },
        { "AWS_VPC_K8S_CNI_CONNMARK=0x100000000", -EINVAL, "AWS_VPC_K8S_CNI_CONNMARK=0x100000000" },
        { "AWS_VPC_K8S_CNI_CONNMARK=-128", -EINVAL, "AWS_VPC_K8S_CNI_CONNMARK=-128" },
        { "AWS_VPC_K8S_CNI_CONNMARK=0x8g", -EINVAL, "AWS_VPC_K8S_CNI_CONNMARK=0x8g" },
        { "AWS_VPC_K8S_CNI_VETHPREFIX=veths", -EINVAL, "AWS_VPC_K8S_CNI_VETHPREFIX=veths: accepted: 1-4" },
        { "AWS_VPC_K8S_CNI_VETHPREFIX=vlan", -EINVAL, "AWS_VPC_K8S_CNI_VETHPREFIX=vlan: reserved" },
        { "AWS_VPC_K8S_CNI_VETHPREFIX=1abc", -EINVAL, "a letter first" },
};

START_TEST(test_bad_values) {
        const char *env[] = { bad[_i].var, NULL };
        struct ipamd_config c;
        memset(&c, 0x33, sizeof c);
        struct ipamd_config before = c;
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_int_eq(ipamd_config_from_env(env, &c, &e), bad[_i].code);
        ck_assert_msg(strstr(e.text, bad[_i].must_say), "for %s got: %s", bad[_i].var, e.text);
        ck_assert_int_eq(memcmp(&c, &before, sizeof c), 0);
}
END_TEST

START_TEST(test_snat_values) {
        const char *env[] = { "AWS_VPC_K8S_CNI_EXTERNALSNAT=false", "AWS_VPC_K8S_CNI_RANDOMIZESNAT=hashrandom",
                              "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS= 10.1.0.0/16 ,192.168.0.0/24",
                              "AWS_VPC_CNI_NODE_PORT_SUPPORT=false", "AWS_VPC_K8S_CNI_CONNMARK=0x4000",
                              "AWS_VPC_K8S_CNI_VETHPREFIX=pod", NULL };
        struct ipamd_config c;
        struct errmsg e;
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        ck_assert(!c.snat.external && !c.snat.node_port);
        ck_assert_int_eq(c.snat.random, SNAT_RANDOM_HASH);
        ck_assert_uint_eq(c.snat.n_exclude, 2);
        ck_assert_str_eq(c.snat.exclude[0], "10.1.0.0/16");
        ck_assert_str_eq(c.snat.exclude[1], "192.168.0.0/24");
        ck_assert_uint_eq(c.snat.mark, 0x4000);
        ck_assert_str_eq(c.snat.veth_prefix, "pod");
        const char *dflt[] = { "AWS_VPC_K8S_CNI_CONNMARK=128", NULL };
        ck_assert_int_eq(ipamd_config_from_env(dflt, &c, NULL), 0);
        ck_assert(!c.snat.external && c.snat.node_port);
        ck_assert_int_eq(c.snat.random, SNAT_RANDOM_PRNG);
        ck_assert_uint_eq(c.snat.mark, 0x80);
        ck_assert_uint_eq(c.snat.n_exclude, 0);
        ck_assert_str_eq(c.snat.veth_prefix, "eni");
        ck_assert_int_eq(c.vpc_cidr_refresh_s, 60);
}
END_TEST

START_TEST(test_vars_documented) {
        size_t n = 0;
        for (const struct ipamd_config_var *v; (v = ipamd_config_var(n)); n++) {
                ck_assert_ptr_nonnull(v->name);
                ck_assert_ptr_nonnull(v->default_value);
                ck_assert_ptr_nonnull(v->accepted);
        }
        ck_assert_uint_ge(n, 20);
}
END_TEST

int main(void) {
        Suite *s = suite_create("ipamd-config");
        TCase *tc = tcase_create("env");
        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_values);
        tcase_add_loop_test(tc, test_bad_values, 0, sizeof bad / sizeof bad[0]);
        tcase_add_test(tc, test_snat_values);
        tcase_add_test(tc, test_vars_documented);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

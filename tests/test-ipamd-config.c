/*
 * test-ipamd-config: the daemon's variables — defaults, good values, and each
 * bad value, conflict or unsupported feature refused with a message that
 * names it; the two tables (daemon, pool) disjoint; the settings `vpc-ipamd
 * -n` prints; the path checks, which create nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
                "ENABLE_IPv4=true", "VPC_IPAM_LOG_FORMAT=text", "VPC_IPAM_IMDS_START_WAIT=5", NULL };
        struct ipamd_config c;
        struct errmsg e;
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        ck_assert_int_eq(c.eni_mtu, 1500);
        ck_assert_int_eq(c.pod_mtu, 1500);
        ck_assert_int_eq(c.imds_start_wait_s, 5);
        ck_assert_str_eq(c.cluster_name, "prod-eu");
        ck_assert_uint_eq(c.n_tags, 3);        /* and the owner tag CLUSTER_NAME implies, last */
        ck_assert_str_eq(c.tags[0].key, "team");
        ck_assert_str_eq(c.tags[1].value, "42");
        ck_assert_str_eq(c.tags[2].key, "eks:eni:owner");
        ck_assert_str_eq(c.tags[2].value, "amazon-vpc-cni");
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
        { "VPC_IPAM_IMDS_START_WAIT=601", -ERANGE, "VPC_IPAM_IMDS_START_WAIT=601: out of range; accepted: 0 to 600" },
        { "VPC_IPAM_IMDS_START_WAIT=-1", -ERANGE, "VPC_IPAM_IMDS_START_WAIT=-1: out of range; accepted: 0 to 600" },
        { "VPC_IPAM_EC2_RATE_SHARE=0", -EINVAL, "VPC_IPAM_EC2_RATE_SHARE=0: accepted: a fraction above 0" },
        { "VPC_IPAM_EC2_RATE_SHARE=1.5", -EINVAL, "VPC_IPAM_EC2_RATE_SHARE=1.5" },
        { "VPC_IPAM_EC2_RATE_SHARE=nan", -EINVAL, "VPC_IPAM_EC2_RATE_SHARE=nan" },
        { "ENABLE_IPv6=true", -EINVAL, "ENABLE_IPv6=true: IPv4 and IPv6 are both enabled; VPC CNI does not "
          "support dual stack mode" },
        { "ENABLE_IPv6=1x", -EINVAL, "ENABLE_IPv6=1x: not a boolean" },
        { "ENABLE_V4_EGRESS=yes", -EINVAL, "ENABLE_V4_EGRESS=yes: not a boolean" },
        { "ENABLE_PREFIX_DELEGATION=true", -EINVAL, "ENABLE_PREFIX_DELEGATION=true: needs WARM_PREFIX_TARGET" },
        { "ENABLE_PREFIX_DELEGATION=yes", -EINVAL, "ENABLE_PREFIX_DELEGATION=yes: not a boolean" },
        { "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true", -EINVAL, "needs MY_NODE_NAME" },
        { "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=yes", -EINVAL, "not a boolean" },
        { "MY_NODE_NAME=Not_A_Name", -EINVAL, "not a Node name" },
        { "CLUSTER_ENDPOINT=http://api:6443", -EINVAL, "not an https:// URL" },
        { "ENI_CONFIG_LABEL_DEF=a b", -EINVAL, "not a label or annotation key" },
        { "AWS_MANAGE_ENIS_NON_SCHEDULABLE=maybe", -EINVAL, "not a boolean" },
        { "ENABLE_POD_ENI=true", -EOPNOTSUPP, "ENABLE_POD_ENI=true" },
        { "ENABLE_IPv4=false", -EINVAL, "ENABLE_IPv4=false: IPv4 and IPv6 are both disabled" },
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
        { "ENABLE_IMDS_ONLY_MODE=yes", -EINVAL, "ENABLE_IMDS_ONLY_MODE=yes: not a boolean" },
        { "MANAGE_UNTAGGED_ENI=2", -EINVAL, "MANAGE_UNTAGGED_ENI=2: not a boolean" },
        { "AWS_EC2_ENDPOINT=ec2.example.com", -EINVAL, "AWS_EC2_ENDPOINT=ec2.example.com: accepted: an http(s) URL" },
        { "AWS_EC2_ENDPOINT=https://ec2.example.com/v1/", -EINVAL, "AWS_EC2_ENDPOINT=https://ec2.example.com/v1/" },
        { "AWS_EC2_ENDPOINT=https://", -EINVAL, "AWS_EC2_ENDPOINT=https://: accepted" },
        { "AWS_EC2_ENDPOINT=https://:443", -EINVAL, "AWS_EC2_ENDPOINT=https://:443" },
        { "AWS_EC2_ENDPOINT=https://a b", -EINVAL, "AWS_EC2_ENDPOINT=https://a b" },
        { "HTTP_TIMEOUT=5", -ERANGE, "HTTP_TIMEOUT=5: out of range; accepted: 10 to 600" },
        { "HTTP_TIMEOUT=10s", -EINVAL, "HTTP_TIMEOUT=10s: not an integer" },
        { "AWS_EXTERNAL_SERVICE_CIDRS=10.100.0.1/16", -EINVAL,
          "AWS_EXTERNAL_SERVICE_CIDRS: \"10.100.0.1/16\" has host bits set" },
        { "AWS_EXTERNAL_SERVICE_CIDRS=fd00::/8", -EINVAL, "AWS_EXTERNAL_SERVICE_CIDRS: \"fd00::/8\" is not an IPv4" },
        /* aws-node variables that do not apply: their values are checked all the same */
        { "ENABLE_MULTI_NIC=true", -EOPNOTSUPP, "ENABLE_MULTI_NIC=true: not supported yet" },
        { "ENABLE_V6_EGRESS=maybe", -EINVAL, "ENABLE_V6_EGRESS=maybe: not a boolean" },
        { "ENABLE_MULTI_NIC=no", -EINVAL, "ENABLE_MULTI_NIC=no: not a boolean" },
        { "NETWORK_POLICY_ENFORCING_MODE=strict", -EOPNOTSUPP, "NETWORK_POLICY_ENFORCING_MODE=strict: not supported" },
        { "NETWORK_POLICY_ENFORCING_MODE=loose", -EINVAL, "NETWORK_POLICY_ENFORCING_MODE=loose: accepted: standard" },
        { "POD_SECURITY_GROUP_ENFORCING_MODE=lax", -EINVAL, "POD_SECURITY_GROUP_ENFORCING_MODE=lax: accepted" },
        { "ENABLE_SUBNET_DISCOVERY=maybe", -EINVAL, "ENABLE_SUBNET_DISCOVERY=maybe: not a boolean" },
        { "AWS_VPC_K8S_PLUGIN_LOG_FILE=stdout", -EINVAL, "AWS_VPC_K8S_PLUGIN_LOG_FILE=stdout: not accepted" },
        { "AWS_VPC_K8S_PLUGIN_LOG_LEVEL=loud", -EINVAL, "AWS_VPC_K8S_PLUGIN_LOG_LEVEL=loud: accepted" },
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

/* The rules across variables: one path per file, one port per server. */
static const struct {
        const char *env[5];
        int code;
        const char *must_say;
} conflicts[] = {
        { { "VPC_IPAM_DB=/run/vpc-ipam/ipamd.sock" }, -EINVAL,
          "VPC_IPAM_SOCKET=/run/vpc-ipam/ipamd.sock: the same path as VPC_IPAM_DB" },
        { { "AWS_VPC_K8S_CNI_LOG_FILE=/var/lib/vpc-ipam/pool.db" }, -EINVAL,
          "VPC_IPAM_DB=/var/lib/vpc-ipam/pool.db: the same path as AWS_VPC_K8S_CNI_LOG_FILE" },
        { { "INTROSPECTION_BIND_ADDRESS=unix:/run/vpc-ipam/ipamd.sock" }, -EINVAL,
          "INTROSPECTION_BIND_ADDRESS=/run/vpc-ipam/ipamd.sock: the same path as VPC_IPAM_SOCKET" },
        { { "INTROSPECTION_BIND_ADDRESS=unix:/run/x.sock", "METRICS_BIND_ADDRESS=unix:/run/x.sock" }, -EINVAL,
          "METRICS_BIND_ADDRESS=/run/x.sock: the same path as INTROSPECTION_BIND_ADDRESS" },
        { { "METRICS_BIND_ADDRESS=:61679" }, -EADDRINUSE,
          "METRICS_BIND_ADDRESS=:61679: the same port as INTROSPECTION_BIND_ADDRESS=127.0.0.1:61679" },
        { { "METRICS_BIND_ADDRESS=127.0.0.1:61679" }, -EADDRINUSE, "the same port" },
        { { "INTROSPECTION_BIND_ADDRESS=:9000", "METRICS_BIND_ADDRESS=10.0.0.1:9000" }, -EADDRINUSE,
          "the same port" },
        { { "ENABLE_IMDS_ONLY_MODE=true", "DISABLE_NETWORK_RESOURCE_PROVISIONING=false" }, -EINVAL,
          "DISABLE_NETWORK_RESOURCE_PROVISIONING=false: ENABLE_IMDS_ONLY_MODE=true implies true" },
        { { "ENABLE_IMDS_ONLY_MODE=true", "DISABLE_LEAKED_ENI_CLEANUP=0" }, -EINVAL,
          "DISABLE_LEAKED_ENI_CLEANUP=false: ENABLE_IMDS_ONLY_MODE=true implies true" },
        { { "DISABLE_NETWORK_RESOURCE_PROVISIONING=true", "MANAGE_UNTAGGED_ENI=false" }, -EINVAL,
          "MANAGE_UNTAGGED_ENI=false: it needs the ENIs' tags" },
        { { "ENABLE_IMDS_ONLY_MODE=true", "MANAGE_UNTAGGED_ENI=false" }, -EINVAL, "with ENABLE_IMDS_ONLY_MODE" },
        /* IPv6: aws-node's rules (ipamd isConfigValid) */
        { { "ENABLE_IPv6=true", "ENABLE_IPv4=false" }, -EINVAL,
          "ENABLE_IPv6=true: IPv6 is supported only in prefix delegation mode" },
        { { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=false" }, -EINVAL,
          "set ENABLE_PREFIX_DELEGATION=true" },
        { { "ENABLE_IPv6=true", "ENABLE_IPv4=true", "ENABLE_PREFIX_DELEGATION=true" }, -EINVAL, "dual stack" },
        { { "ENABLE_IPv6=false", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true" }, -EINVAL,
          "both disabled" },
        { { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true",
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true" }, -EINVAL,
          "custom networking is not supported in IPv6 mode" },
        { { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true", "AWS_VPC_ENI_MTU=1279" },
          -ERANGE, "AWS_VPC_ENI_MTU=1279: IPv6 needs at least 1280" },
        { { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true", "POD_MTU=1000" },
          -ERANGE, "POD_MTU=1000" },
};

START_TEST(test_conflicts) {
        struct ipamd_config c;
        memset(&c, 0x33, sizeof c);
        struct ipamd_config before = c;
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_int_eq(ipamd_config_from_env(conflicts[_i].env, &c, &e), conflicts[_i].code);
        ck_assert_msg(strstr(e.text, conflicts[_i].must_say), "for %s got: %s", conflicts[_i].env[0], e.text);
        ck_assert_int_eq(memcmp(&c, &before, sizeof c), 0);
}
END_TEST

/* Not conflicts: a server switched off, different hosts, different ports. */
START_TEST(test_no_conflict) {
        static const char *const envs[][3] = {
                { "METRICS_BIND_ADDRESS=127.0.0.1:61679", "DISABLE_METRICS=true" },
                { "INTROSPECTION_BIND_ADDRESS=unix:/run/vpc-ipam/ipamd.sock", "DISABLE_INTROSPECTION=1" },
                { "METRICS_BIND_ADDRESS=127.0.0.2:61679" },
                { "METRICS_BIND_ADDRESS=:61680" },
                { "INTROSPECTION_BIND_ADDRESS=unix:/run/a.sock", "METRICS_BIND_ADDRESS=unix:/run/b.sock" },
        };
        for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
                struct ipamd_config c;
                struct errmsg e;
                errmsg_clear(&e);
                ck_assert_msg(ipamd_config_from_env((const char *const *)envs[i], &c, &e) == 0, "%s: %s",
                              envs[i][0], e.text);
        }
}
END_TEST

/* Paths are checked with stat() only: nothing is created, whatever the answer. */
START_TEST(test_check_paths) {
        const char *dir = testlib_tmpdir();
        char file[512], db[600], sock[600], nested[600];
        snprintf(file, sizeof file, "%s/file", dir);
        int fd = open(file, O_CREAT | O_WRONLY, 0600);
        ck_assert_int_ge(fd, 0);
        close(fd);
        struct ipamd_config c;
        ipamd_config_defaults(&c);
        snprintf(c.db_path, sizeof c.db_path, "%s/a/b/pool.db", dir);
        snprintf(c.socket_path, sizeof c.socket_path, "%s/run/ipamd.sock", dir);
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_msg(ipamd_config_check_paths(&c, &e) == 0, "%s", e.text);
        snprintf(nested, sizeof nested, "%s/a", dir);
        snprintf(sock, sizeof sock, "%s/run", dir);
        struct stat st;
        ck_assert_int_eq(stat(nested, &st), -1);
        ck_assert_int_eq(stat(sock, &st), -1);
        /* a file where a directory must be */
        snprintf(db, sizeof db, "%s/x/pool.db", file);
        snprintf(c.db_path, sizeof c.db_path, "%s", db);
        ck_assert_int_eq(ipamd_config_check_paths(&c, &e), -ENOTDIR);
        snprintf(db, sizeof db, "VPC_IPAM_DB=%s/x/pool.db: %s is not a directory", file, file);
        ck_assert_str_eq(e.text, db);
        /* a directory where the file must be */
        snprintf(c.db_path, sizeof c.db_path, "%s/pool.db", dir);
        snprintf(c.socket_path, sizeof c.socket_path, "%s", dir);
        ck_assert_int_eq(ipamd_config_check_paths(&c, &e), -EISDIR);
        ck_assert_msg(strstr(e.text, "VPC_IPAM_SOCKET=") && strstr(e.text, ": is a directory"), "%s", e.text);
        snprintf(c.socket_path, sizeof c.socket_path, "%s/s.sock", dir);
        snprintf(c.log_file, sizeof c.log_file, "%s", dir);
        ck_assert_int_eq(ipamd_config_check_paths(&c, &e), -EISDIR);
        ck_assert_ptr_nonnull(strstr(e.text, "AWS_VPC_K8S_CNI_LOG_FILE="));
        /* unix: servers too, unless switched off */
        c.log_file[0] = '\0';
        snprintf(c.metrics_bind, sizeof c.metrics_bind, "unix:%s/m", file);
        ck_assert_int_eq(ipamd_config_check_paths(&c, &e), -ENOTDIR);
        ck_assert_ptr_nonnull(strstr(e.text, "METRICS_BIND_ADDRESS="));
        c.no_metrics = true;
        ck_assert_int_eq(ipamd_config_check_paths(&c, &e), 0);
        ck_assert_int_eq(stat(file, &st), 0);
        ck_assert(S_ISREG(st.st_mode) && st.st_size == 0);
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

/* Each variable is parsed by one table: the daemon's or the pool's, never both. */
START_TEST(test_tables_disjoint) {
        size_t n_daemon = 0, n_pool = 0;
        for (const struct ipamd_config_var *v; (v = ipamd_config_var(n_daemon)); n_daemon++) {
                for (size_t j = 0; j < n_daemon; j++)
                        ck_assert_str_ne(ipamd_config_var(j)->name, v->name);
                for (size_t j = 0; poolconfig_var(j); j++)
                        ck_assert_msg(strcmp(poolconfig_var(j)->name, v->name) != 0,
                                      "%s is parsed by both ipamd-config and poolconfig", v->name);
        }
        for (const struct poolconfig_var *v; (v = poolconfig_var(n_pool)); n_pool++)
                for (size_t j = 0; j < n_pool; j++)
                        ck_assert_str_ne(poolconfig_var(j)->name, v->name);
        ck_assert_uint_ge(n_daemon, 25);
        ck_assert_uint_ge(n_pool, 6);
        /* The prefix delegation switch is the daemon's; its pool target the pool's. */
        bool daemon_pd = false;
        for (size_t i = 0; ipamd_config_var(i); i++)
                daemon_pd |= strcmp(ipamd_config_var(i)->name, "ENABLE_PREFIX_DELEGATION") == 0;
        ck_assert(daemon_pd);
}
END_TEST

/* What -n prints: every variable of both tables once, its effective value, set or default. */
START_TEST(test_settings) {
        const char *none[] = { NULL };
        struct ipamd_config c;
        ck_assert_int_eq(ipamd_config_from_env(none, &c, NULL), 0);
        size_t n_daemon = 0, n_pool = 0, i = 0;
        while (ipamd_config_var(n_daemon))
                n_daemon++;
        while (poolconfig_var(n_pool))
                n_pool++;
        const char *name;
        bool set;
        char buf[1024];
        for (; ipamd_config_setting(&c, i, &name, &set, buf, sizeof buf) == 0; i++) {
                ck_assert_msg(!set, "%s set in an empty environment", name);
                const char *doc = i < n_daemon ? ipamd_config_var(i)->default_value
                                               : poolconfig_var(i - n_daemon)->default_value;
                if (strcmp(name, "POD_MTU") == 0)
                        ck_assert_str_eq(buf, "9001");  /* documented as AWS_VPC_ENI_MTU */
                else
                        ck_assert_msg(strcmp(buf, doc) == 0, "%s: effective %s, documented %s", name, buf, doc);
        }
        ck_assert_uint_eq(i, n_daemon + n_pool);
        ck_assert_int_eq(ipamd_config_setting(&c, i, &name, &set, buf, sizeof buf), -ENOENT);
        const char *env[] = { "AWS_VPC_K8S_CNI_LOGLEVEL=DEBUG", "AWS_VPC_K8S_CNI_CONNMARK=128", "POD_MTU=",
                              "AWS_VPC_ENI_MTU=1500", "WARM_IP_TARGET=3", "VPC_IPAM_ADD_WAIT=4",
                              "ADDITIONAL_ENI_TAGS={\"a\": \"b\"}",
                              "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS= 10.1.0.0/16 ,192.168.0.0/24", NULL };
        static const char *const want[][3] = {
                { "AWS_VPC_K8S_CNI_LOGLEVEL", "debug", "set" }, { "AWS_VPC_K8S_CNI_CONNMARK", "0x80", "set" },
                { "POD_MTU", "1500", "default" }, { "AWS_VPC_ENI_MTU", "1500", "set" },
                { "WARM_IP_TARGET", "3", "set" }, { "VPC_IPAM_ADD_WAIT", "4", "set" },
                { "ADDITIONAL_ENI_TAGS", "{\"a\":\"b\"}", "set" },
                { "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.1.0.0/16,192.168.0.0/24", "set" },
                { "WARM_ENI_TARGET", "1", "default" }, { "VPC_IPAM_EC2_RATE_SHARE", "0.1", "default" },
                { "AWS_VPC_K8S_CNI_LOG_FILE", "stderr", "default" },
        };
        struct errmsg e;
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        size_t found = 0, n_set = 0;
        for (i = 0; ipamd_config_setting(&c, i, &name, &set, buf, sizeof buf) == 0; i++) {
                n_set += set;
                for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
                        if (strcmp(name, want[w][0]) != 0)
                                continue;
                        found++;
                        ck_assert_msg(strcmp(buf, want[w][1]) == 0 && set == (want[w][2][0] == 's'),
                                      "%s: %s (%s), want %s (%s)", name, buf, set ? "set" : "default",
                                      want[w][1], want[w][2]);
                }
        }
        ck_assert_uint_eq(found, sizeof want / sizeof want[0]);
        ck_assert_uint_eq(n_set, 7);
}
END_TEST

/* The aws-node variables with a meaning here: what each sets, and what it implies. */
/* Custom networking: the Node's name and an API server are needed; the keys default to aws-node's. */
START_TEST(test_custom_networking) {
        const char *env[] = { "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true", "MY_NODE_NAME=ip-10-0-0-5.ec2.internal",
                              "ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone", NULL };
        struct ipamd_config c;
        struct errmsg e;
        ck_assert_int_eq(ipamd_config_from_env(env, &c, &e), -EINVAL);
        ck_assert_msg(strstr(e.text, "KUBERNETES_SERVICE_HOST"), "%s", e.text);
        const char *in_pod[] = { env[0], env[1], env[2], "KUBERNETES_SERVICE_HOST=10.100.0.1", NULL };
        ck_assert_msg(ipamd_config_from_env(in_pod, &c, &e) == 0, "%s", e.text);
        ck_assert(c.custom_networking && c.in_cluster && !c.manage_non_schedulable);
        ck_assert_str_eq(c.eniconfig_label, "topology.kubernetes.io/zone");
        ck_assert_str_eq(c.eniconfig_annotation, "k8s.amazonaws.com/eniConfig");
        const char *endpoint[] = { env[0], env[1], "CLUSTER_ENDPOINT=https://abc.eks.amazonaws.com", NULL };
        ck_assert_msg(ipamd_config_from_env(endpoint, &c, &e) == 0, "%s", e.text);
        ck_assert_str_eq(c.eniconfig_label, "k8s.amazonaws.com/eniConfig");
}
END_TEST

START_TEST(test_aws_node_values) {
        const char *env[] = { "ENABLE_IMDS_ONLY_MODE=true", "MANAGE_UNTAGGED_ENI=true",
                              "AWS_EC2_ENDPOINT=http://127.0.0.1:5000/", "HTTP_TIMEOUT=30",
                              "AWS_EXTERNAL_SERVICE_CIDRS=10.100.0.0/16, 172.20.0.0/14",
                              "DISABLE_LEAKED_ENI_CLEANUP=true", "MY_NODE_NAME=n1", "ENABLE_MULTI_NIC=false",
                              "NETWORK_POLICY_ENFORCING_MODE=standard", NULL };
        struct ipamd_config c;
        struct errmsg e;
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        ck_assert(c.imds_only && c.no_provisioning && c.no_leak_cleanup && c.manage_untagged);
        ck_assert_str_eq(c.ec2_endpoint, "http://127.0.0.1:5000/");
        ck_assert_int_eq(c.http_timeout_s, 30);
        ck_assert_uint_eq(c.n_service_cidrs, 2);
        ck_assert_str_eq(c.service_cidrs[1], "172.20.0.0/14");
        /* the ignored ones set are recorded, each by its row */
        size_t n_ignored = 0;
        for (size_t i = 0; ipamd_config_ignored_var(i); i++)
                if ((c.ignored >> i) & 1) {
                        n_ignored++;
                        const char *name = ipamd_config_ignored_var(i)->name;
                        ck_assert_msg(strcmp(name, "ENABLE_MULTI_NIC") == 0 ||
                                      strcmp(name, "NETWORK_POLICY_ENFORCING_MODE") == 0, "%s", name);
                }
        ck_assert_uint_eq(n_ignored, 2);
        ck_assert_str_eq(c.node_name, "n1");
        /* defaults: aws-node's */
        const char *none[] = { NULL };
        ck_assert_int_eq(ipamd_config_from_env(none, &c, NULL), 0);
        ck_assert(!c.imds_only && c.manage_untagged && c.ignored == 0);
        ck_assert_int_eq(c.http_timeout_s, 10);
        ck_assert_str_eq(c.ec2_endpoint, "");
        ck_assert_uint_eq(c.n_service_cidrs, 0);
}
END_TEST

/* CLUSTER_NAME adds eks:eni:owner (as aws-node), unless the tags already have it; -n shows the user's only. */
START_TEST(test_owner_tag) {
        const char *env[] = { "CLUSTER_NAME=c1", "ADDITIONAL_ENI_TAGS={\"eks:eni:owner\":\"me\"}", NULL };
        struct ipamd_config c;
        struct errmsg e;
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        ck_assert_uint_eq(c.n_tags, 1);
        ck_assert_str_eq(c.tags[0].value, "me");
        const char *none[] = { "ADDITIONAL_ENI_TAGS={\"a\":\"b\"}", NULL };
        ck_assert_int_eq(ipamd_config_from_env(none, &c, NULL), 0);
        ck_assert_uint_eq(c.n_tags, 1);                         /* no cluster: no owner tag */
        const char *cl[] = { "CLUSTER_NAME=c1", "ADDITIONAL_ENI_TAGS={\"a\":\"b\"}", NULL };
        ck_assert_int_eq(ipamd_config_from_env(cl, &c, NULL), 0);
        ck_assert_uint_eq(c.n_tags, 2);
        const char *name;
        bool set;
        char buf[256];
        for (size_t i = 0; ipamd_config_setting(&c, i, &name, &set, buf, sizeof buf) == 0; i++)
                if (strcmp(name, "ADDITIONAL_ENI_TAGS") == 0)
                        ck_assert_str_eq(buf, "{\"a\":\"b\"}");
        /* 40 of the user's leave no room for it */
        char tags[2048] = "ADDITIONAL_ENI_TAGS={";
        for (int i = 0; i < IPAMD_TAGS_MAX; i++)
                snprintf(tags + strlen(tags), sizeof tags - strlen(tags), "%s\"k%d\":\"v\"", i ? "," : "", i);
        strcat(tags, "}");
        const char *full[] = { "CLUSTER_NAME=c1", tags, NULL };
        ck_assert_int_eq(ipamd_config_from_env(full, &c, &e), -ERANGE);
        ck_assert_msg(strstr(e.text, "more than 39 tags with CLUSTER_NAME set"), "%s", e.text);
        ck_assert_int_eq(ipamd_config_from_env(full + 1, &c, NULL), 0);
}
END_TEST

/*
 * IPv6 mode as aws-node's IPv6 manifest sets it: accepted, leak cleanup off,
 * IPv4 egress on unless ENABLE_V4_EGRESS=false; the pool variables set are
 * listed once each as ignored, none outside IPv6 mode; ENABLE_V6_EGRESS is
 * an IPv4 node's setting (off by default), no longer an ignored one.
 */
START_TEST(test_ipv6) {
        const char *env[] = { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true",
                              "WARM_PREFIX_TARGET=1", "WARM_ENI_TARGET=1", "IP_COOLDOWN_PERIOD=5", NULL };
        struct ipamd_config c;
        struct errmsg e = { 0 };
        ck_assert_msg(ipamd_config_from_env(env, &c, &e) == 0, "%s", e.text);
        ck_assert(c.ipv6 && !c.ipv4 && c.prefix_delegation && c.v4_egress && c.no_leak_cleanup);
        ck_assert_str_eq(ipamd_config_v6_ignored(&c, 0), "WARM_ENI_TARGET");
        ck_assert_str_eq(ipamd_config_v6_ignored(&c, 1), "WARM_PREFIX_TARGET");
        ck_assert_ptr_null(ipamd_config_v6_ignored(&c, 2));     /* the cooldown applies */
        const char *noegress[] = { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true",
                                   "WARM_IP_TARGET=1", "ENABLE_V4_EGRESS=false", NULL };
        ck_assert_msg(ipamd_config_from_env(noegress, &c, &e) == 0, "%s", e.text);
        ck_assert(c.ipv6 && !c.v4_egress);
        /* no warm target needed: IPv6 mode has no warm pool (aws-node's entrypoint asks for one all the same) */
        const char *bare[] = { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true", NULL };
        ck_assert_msg(ipamd_config_from_env(bare, &c, &e) == 0, "%s", e.text);
        ck_assert_ptr_null(ipamd_config_v6_ignored(&c, 0));
        ck_assert(!c.v6_egress);
        const char *v4[] = { "WARM_IP_TARGET=1", "ENABLE_V6_EGRESS=true", NULL };
        ck_assert_msg(ipamd_config_from_env(v4, &c, &e) == 0, "%s", e.text);
        ck_assert(c.ipv4 && !c.ipv6 && !c.no_leak_cleanup && c.v6_egress);
        ck_assert_ptr_null(ipamd_config_v6_ignored(&c, 0));
        ck_assert_uint_eq(c.ignored, 0);
}
END_TEST

/* Prefix delegation is accepted with any warm or minimum target above 0, refused with none (as aws-node). */
START_TEST(test_prefix_delegation) {
        struct ipamd_config c;
        struct errmsg e = { 0 };
        const char *warm[] = { "ENABLE_PREFIX_DELEGATION=true", "WARM_PREFIX_TARGET=1", NULL };
        const char *ip[] = { "ENABLE_PREFIX_DELEGATION=true", "WARM_IP_TARGET=5", NULL };
        const char *min[] = { "ENABLE_PREFIX_DELEGATION=true", "MINIMUM_IP_TARGET=20", NULL };
        const char *zero[] = { "ENABLE_PREFIX_DELEGATION=true", "WARM_PREFIX_TARGET=0", NULL };
        const char *off[] = { "ENABLE_PREFIX_DELEGATION=false", NULL };
        ck_assert_int_eq(ipamd_config_from_env(warm, &c, NULL), 0);
        ck_assert(c.prefix_delegation);
        ck_assert_int_eq(c.pool.warm_prefix_target, 1);
        ck_assert_int_eq(ipamd_config_from_env(ip, &c, NULL), 0);
        ck_assert(c.prefix_delegation);
        ck_assert_int_eq(ipamd_config_from_env(min, &c, NULL), 0);
        ck_assert_int_eq(ipamd_config_from_env(zero, &c, &e), -EINVAL);
        ck_assert_msg(strstr(e.text, "WARM_PREFIX_TARGET=1"), "%s", e.text);
        ck_assert_int_eq(ipamd_config_from_env(off, &c, NULL), 0);
        ck_assert(!c.prefix_delegation);
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
        tcase_add_loop_test(tc, test_conflicts, 0, sizeof conflicts / sizeof conflicts[0]);
        tcase_add_test(tc, test_no_conflict);
        tcase_add_test(tc, test_check_paths);
        tcase_add_test(tc, test_tables_disjoint);
        tcase_add_test(tc, test_settings);
        tcase_add_test(tc, test_aws_node_values);
        tcase_add_test(tc, test_custom_networking);
        tcase_add_test(tc, test_owner_tag);
        tcase_add_test(tc, test_prefix_delegation);
        tcase_add_test(tc, test_ipv6);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

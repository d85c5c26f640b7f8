/*
 * test-awsvars: every aws-node variable is answered — parsed by one of
 * vpc-ipamd's tables (with aws-node's meaning) or listed as not applicable
 * with a reason; a not-applicable one that is set is warned about once, at
 * start and by `vpc-ipamd -n`; and the ENIs vpc-ipamd takes follow
 * MANAGE_UNTAGGED_ENI and the no_manage tag.
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakesrv.h"
#include "ipamd-config.h"
#include "sync.h"
#include "testctx.h"
#include "testlib.h"

/*
 * aws-node's variables (amazon-vpc-cni-k8s v1.23.1: its manifest, its init
 * container and the code's os.Getenv calls), as listed in the project's
 * reference (aws-vpc-cni.md §1, aws-vpc-cni-modes.md), plus the manifest's
 * informational VPC_CNI_VERSION and VPC_ID and the two variables aws-node
 * itself deprecated.
 */
static const char *const aws_node_vars[] = {
        "WARM_ENI_TARGET", "WARM_IP_TARGET", "MINIMUM_IP_TARGET", "WARM_PREFIX_TARGET",
        "ENABLE_PREFIX_DELEGATION", "MAX_ENI", "IP_COOLDOWN_PERIOD",
        "AWS_VPC_K8S_CNI_EXTERNALSNAT", "AWS_VPC_K8S_CNI_RANDOMIZESNAT", "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
        "AWS_EXTERNAL_SERVICE_CIDRS", "AWS_VPC_CNI_NODE_PORT_SUPPORT", "AWS_VPC_K8S_CNI_CONNMARK",
        "AWS_VPC_ENI_MTU", "POD_MTU", "AWS_VPC_K8S_CNI_VETHPREFIX",
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "ENI_CONFIG_ANNOTATION_DEF", "ENI_CONFIG_LABEL_DEF",
        "ENABLE_IPv4", "ENABLE_IPv6", "DISABLE_NETWORK_RESOURCE_PROVISIONING", "ENABLE_IMDS_ONLY_MODE",
        "DISABLE_LEAKED_ENI_CLEANUP", "ADDITIONAL_ENI_TAGS", "CLUSTER_NAME", "MANAGE_UNTAGGED_ENI",
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE", "ENABLE_SUBNET_DISCOVERY",
        "AWS_VPC_K8S_CNI_LOGLEVEL", "AWS_VPC_K8S_CNI_LOG_FILE", "AWS_VPC_K8S_PLUGIN_LOG_FILE",
        "AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "AWS_VPC_K8S_CNI_BACKING_STORE",
        "INTROSPECTION_BIND_ADDRESS", "DISABLE_INTROSPECTION", "DISABLE_METRICS",
        "HTTP_TIMEOUT", "AWS_EC2_ENDPOINT", "NETWORK_POLICY_ENFORCING_MODE",
        "ENABLE_POD_ENI", "POD_SECURITY_GROUP_ENFORCING_MODE", "ANNOTATE_POD_IP", "ENABLE_MULTI_NIC",
        "ENABLE_BANDWIDTH_PLUGIN", "DISABLE_POD_V6", "ENABLE_V4_EGRESS", "ENABLE_V6_EGRESS",
        "DISABLE_TCP_EARLY_DEMUX", "CLUSTER_ENDPOINT", "MY_NODE_NAME", "MY_POD_NAME",
        "HOST_CNI_BIN_PATH", "HOST_CNI_CONFDIR_PATH",
        "VPC_CNI_VERSION", "VPC_ID", "AWS_VPC_K8S_CNI_CONFIGURE_RPFILTER", "ENABLE_NFTABLES",
};
#define N_AWS_NODE_VARS (sizeof aws_node_vars / sizeof aws_node_vars[0])

static bool parsed(const char *name) {
        for (size_t i = 0; ipamd_config_var(i); i++)
                if (strcmp(ipamd_config_var(i)->name, name) == 0)
                        return true;
        for (size_t i = 0; poolconfig_var(i); i++)
                if (strcmp(poolconfig_var(i)->name, name) == 0)
                        return true;
        return false;
}

static const struct ipamd_ignored_var *ignored(const char *name) {
        for (size_t i = 0; ipamd_config_ignored_var(i); i++)
                if (strcmp(ipamd_config_ignored_var(i)->name, name) == 0)
                        return ipamd_config_ignored_var(i);
        return NULL;
}

START_TEST(test_every_var_answered) {
        const char *name = aws_node_vars[_i];
        const struct ipamd_ignored_var *ig = ignored(name);
        ck_assert_msg(parsed(name) || ig, "%s: neither parsed nor listed as not applicable", name);
        ck_assert_msg(!(parsed(name) && ig), "%s: both parsed and listed as not applicable", name);
        if (ig)
                ck_assert_msg(ig->reason && strlen(ig->reason) > 10 && ig->accepted && *ig->accepted,
                              "%s: no reason or accepted values", name);
}
END_TEST

/* The not-applicable table holds aws-node's variables only, each once. */
START_TEST(test_ignored_are_aws_nodes) {
        size_t n = 0;
        for (const struct ipamd_ignored_var *v; (v = ipamd_config_ignored_var(n)); n++) {
                bool known = false;
                for (size_t i = 0; i < N_AWS_NODE_VARS; i++)
                        known |= strcmp(aws_node_vars[i], v->name) == 0;
                ck_assert_msg(known, "%s is not an aws-node variable", v->name);
                for (size_t j = 0; j < n; j++)
                        ck_assert_str_ne(ipamd_config_ignored_var(j)->name, v->name);
        }
        ck_assert_uint_ge(n, 15);
}
END_TEST

/* --- the warning, once ----------------------------------------------------------- */

struct run {
        int status;
        char err[65536];
};

/* vpc-ipamd with exactly env and args; stderr captured, stdout discarded. */
static void run_ipamd(const char *const *env, const char *arg, struct run *ret) {
        const char *bin = getenv("VPC_IPAMD");
        ck_assert_msg(bin && access(bin, X_OK) == 0, "VPC_IPAMD is not set to the built vpc-ipamd");
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(fds[1], STDERR_FILENO);
                int null = open("/dev/null", O_WRONLY);
                dup2(null, STDOUT_FILENO);
                close(fds[0]);
                char *argv[] = { (char *)bin, (char *)arg, NULL };
                execve(bin, argv, (char *const *)env);
                _exit(127);
        }
        close(fds[1]);
        size_t n = 0;
        for (ssize_t k; (k = read(fds[0], ret->err + n, sizeof ret->err - 1 - n)) > 0;)
                n += (size_t)k;
        ret->err[n] = '\0';
        close(fds[0]);
        ck_assert_int_eq(waitpid(pid, &ret->status, 0), pid);
}

/*
 * The daemon started by a case stops before it touches the kernel's routing;
 * should that ever change, it must not be the machine's: as root the case
 * moves into a network namespace of its own first (lo up, the fake servers
 * started after). Without root it could change nothing anyway.
 */
static void isolate(void) {
        if (geteuid() != 0)
                return;
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
        ck_assert_int_eq(testlib_sh("ip link set lo up"), 0);
}

static unsigned count(const char *hay, const char *needle) {
        unsigned n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
                n++;
        return n;
}

START_TEST(test_check_warns_once) {
        const char *env[] = { "MY_POD_NAME=aws-node-x", "ENABLE_BANDWIDTH_PLUGIN=true", "WARM_IP_TARGET=2", NULL };
        struct run r;
        run_ipamd(env, "-n", &r);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d: %s", r.status, r.err);
        ck_assert_uint_eq(count(r.err, "MY_POD_NAME=aws-node-x is ignored: "), 1);
        ck_assert_uint_eq(count(r.err, ignored("MY_POD_NAME")->reason), 1);
        ck_assert_uint_eq(count(r.err, "ENABLE_BANDWIDTH_PLUGIN=true is ignored: "), 1);
        ck_assert_uint_eq(count(r.err, "is ignored"), 2);     /* nothing about what is unset or parsed */
        ck_assert_ptr_nonnull(strstr(r.err, "configuration OK"));
        /* A bad value of an ignored variable is still refused, named. */
        const char *bad[] = { "ENABLE_BANDWIDTH_PLUGIN=maybe", NULL };
        run_ipamd(bad, "-n", &r);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 2, "status %d: %s", r.status, r.err);
        ck_assert_ptr_nonnull(strstr(r.err, "ENABLE_BANDWIDTH_PLUGIN=maybe"));
}
END_TEST

/* IPv6 mode: each pool variable set is named once as ignored; the cooldown, which applies, is not. */
START_TEST(test_check_warns_v6_once) {
        const char *env[] = { "ENABLE_IPv6=true", "ENABLE_IPv4=false", "ENABLE_PREFIX_DELEGATION=true",
                              "WARM_PREFIX_TARGET=1", "MAX_ENI=3", "IP_COOLDOWN_PERIOD=10",
                              "ENABLE_V6_EGRESS=true", NULL };
        struct run r;
        run_ipamd(env, "-n", &r);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d: %s", r.status, r.err);
        ck_assert_uint_eq(count(r.err, "WARM_PREFIX_TARGET=1 is ignored in IPv6 mode"), 1);
        ck_assert_uint_eq(count(r.err, "MAX_ENI=3 is ignored in IPv6 mode"), 1);
        ck_assert_uint_eq(count(r.err, "ENABLE_V6_EGRESS=true is ignored in IPv6 mode: IPv6 pods' egress is "
                                       "ENABLE_V4_EGRESS"), 1);
        ck_assert_uint_eq(count(r.err, "is ignored"), 3);
        /* the same pool variables in an IPv4 node: nothing */
        const char *v4[] = { "WARM_PREFIX_TARGET=1", "MAX_ENI=3", NULL };
        run_ipamd(v4, "-n", &r);
        ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d: %s", r.status, r.err);
        ck_assert_uint_eq(count(r.err, "is ignored"), 0);
}
END_TEST

/* A start logs it once, before anything else can fail: here IMDS on a closed port. */
START_TEST(test_start_warns_once) {
        isolate();
        char db[600], sock[600];
        snprintf(db, sizeof db, "VPC_IPAM_DB=%s/pool.db", testlib_tmpdir());
        snprintf(sock, sizeof sock, "VPC_IPAM_SOCKET=%s/s.sock", testlib_tmpdir());
        const char *env[] = { "ANNOTATE_POD_IP=true", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9",
                              "DISABLE_INTROSPECTION=true", "DISABLE_METRICS=true", "VPC_IPAM_IMDS_START_WAIT=0",
                              db, sock, NULL };
        struct run r;
        run_ipamd(env, NULL, &r);
        ck_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) != 0);  /* no IMDS: it stops */
        ck_assert_ptr_nonnull(strstr(r.err, "127.0.0.1:9"));            /* and asked only loopback */
        ck_assert_uint_eq(count(r.err, "\"variable\":\"ANNOTATE_POD_IP\""), 1);
        ck_assert_uint_eq(count(r.err, "\"level\":\"warn\",\"msg\":\"an aws-node variable"), 1);
}
END_TEST

/* --- AWS_EC2_ENDPOINT reaches the EC2 client, before AWS_ENDPOINT_URL_EC2 ------------------ */

#define MAC "0a:00:00:00:00:01"

/* IMDS of a one-ENI node, and an EC2 that refuses every call (UnauthorizedOperation). */
static void fake_node(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        static const char *const files[][2] = {
                { "/latest/api/token", "fake-token" }, { "/latest/meta-data/instance-id", "i-0123456789abcdef0" },
                { "/latest/meta-data/instance-type", "m5.large" }, { "/latest/meta-data/placement/region", "us-west-2" },
                { "/latest/meta-data/placement/availability-zone", "us-west-2a" }, { "/latest/meta-data/mac", MAC },
                { "/latest/meta-data/network/interfaces/macs/", MAC "/" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/device-number", "0" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/interface-id", "eni-0123456789abcdef0" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/subnet-id", "subnet-0123456789abcdef0" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/subnet-ipv4-cidr-block", "10.0.0.0/24" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/vpc-ipv4-cidr-blocks", "10.0.0.0/16" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/security-group-ids", "sg-0123456789abcdef0" },
                { "/latest/meta-data/network/interfaces/macs/" MAC "/local-ipv4s", "10.0.0.10" },
        };
        (void)ud;
        if (strncmp(req->url, "/latest/", 8) != 0) {
                rep->status = 400;
                rep->body = "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>fake</Message>"
                            "</Error></Errors><RequestID>fake-1</RequestID></Response>";
                return;
        }
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
                if (strcmp(req->url, files[i][0]) == 0) {
                        rep->body = files[i][1];
                        rep->content_type = "text/plain";
                        return;
                }
        rep->status = 404;
        rep->body = "";
}

static unsigned ec2_requests(struct fakesrv *srv) {
        unsigned n = 0;
        for (unsigned i = 0; i < fakesrv_count(srv); i++) {
                struct fakesrv_req req;
                fakesrv_request(srv, i, &req);
                n += strncmp(req.url, "/latest/", 8) != 0;
        }
        return n;
}

/* The daemon stops at its first EC2 call (the instance type's limits), having
 * asked EC2 where AWS_EC2_ENDPOINT says and nowhere else. */
START_TEST(test_ec2_endpoint_wins) {
        isolate();
        struct fakesrv *srv = fakesrv_start(fake_node, NULL);
        char md[128], ep[128], db[600], sock[600];
        snprintf(md, sizeof md, "AWS_EC2_METADATA_SERVICE_ENDPOINT=%s", fakesrv_url(srv));
        snprintf(ep, sizeof ep, "AWS_EC2_ENDPOINT=%s/", fakesrv_url(srv));
        snprintf(db, sizeof db, "VPC_IPAM_DB=%s/pool.db", testlib_tmpdir());
        snprintf(sock, sizeof sock, "VPC_IPAM_SOCKET=%s/s.sock", testlib_tmpdir());
        const char *env[] = { md, ep, db, sock, "AWS_ENDPOINT_URL_EC2=http://127.0.0.1:9/", "HTTP_TIMEOUT=10",
                              "AWS_REGION=us-west-2", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
                              "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                              "DISABLE_INTROSPECTION=true", "DISABLE_METRICS=true", NULL };
        struct run r;
        run_ipamd(env, NULL, &r);
        ck_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
        ck_assert_ptr_nonnull(strstr(r.err, "UnauthorizedOperation"));
        ck_assert_uint_ge(ec2_requests(srv), 1);
        /* without it, AWS_ENDPOINT_URL_EC2 is asked: nothing reaches this EC2 */
        unsigned before = ec2_requests(srv);
        env[1] = "AWS_EC2_ENDPOINT=";
        run_ipamd(env, NULL, &r);
        ck_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 1);
        ck_assert_ptr_nonnull(strstr(r.err, "127.0.0.1:9"));
        ck_assert_uint_eq(ec2_requests(srv), before);
        fakesrv_stop(srv);
}
END_TEST

/* --- which ENIs are managed -------------------------------------------------------- */

static void tag(struct fakeec2_eni *e, const char *key, const char *value) {
        snprintf(e->tags[e->n_tags].key, sizeof e->tags[e->n_tags].key, "%s", key);
        snprintf(e->tags[e->n_tags].value, sizeof e->tags[e->n_tags].value, "%s", value);
        e->n_tags++;
}

static int sync_ec2(struct testctx *t) {
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        ck_assert_msg(sync_with_ec2(&t->ctx, &rep, &err) == 0, "%s", err.text);
        return (int)rep.enis_added;
}

/* MANAGE_UNTAGGED_ENI defaults to true: an ENI attached without tags is used. */
START_TEST(test_untagged_managed_by_default) {
        struct testctx *t = testctx_new(1);
        ck_assert(t->cfg.manage_untagged);
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0untagged00000001", FAKEEC2_INSTANCE, 1, 3, false);
        fakeec2_unlock(&t->f);
        ck_assert_int_eq(sync_ec2(t), 2);
        ck_assert_int_eq(testctx_blocks(t, "eni-0untagged00000001"), 3);
        ck_assert_uint_eq(t->ctx.foreign_devices, 0);
        testctx_free(t);
}
END_TEST

/* no_manage=true: never taken, even tagged with this instance; its device is noted. */
START_TEST(test_no_manage_true_never_managed) {
        struct testctx *t = testctx_new(1);
        fakeec2_lock(&t->f);
        tag(fakeec2_add_eni(&t->f, "eni-0nomanage00000001", FAKEEC2_INSTANCE, 2, 3, true),
            "node.k8s.amazonaws.com/no_manage", "true");
        fakeec2_unlock(&t->f);
        ck_assert_int_eq(sync_ec2(t), 1);                       /* the primary only */
        ck_assert_int_eq(testctx_blocks(t, "eni-0nomanage00000001"), -1);
        ck_assert_uint_eq(t->ctx.foreign_devices, 1u << 2);
        ck_assert_uint_eq(testctx_ec2_enis(t), 2);              /* nor deleted */
        testctx_free(t);
}
END_TEST

/* MANAGE_UNTAGGED_ENI=false leaves untagged ENIs alone; no_manage=false still opts one in. */
START_TEST(test_manage_untagged_false) {
        struct testctx *t = testctx_new(1);
        t->cfg.manage_untagged = false;
        fakeec2_lock(&t->f);
        fakeec2_add_eni(&t->f, "eni-0untagged00000001", FAKEEC2_INSTANCE, 1, 3, false);
        tag(fakeec2_add_eni(&t->f, "eni-0optedin000000001", FAKEEC2_INSTANCE, 2, 2, false),
            "node.k8s.amazonaws.com/no_manage", "false");
        fakeec2_unlock(&t->f);
        ck_assert_int_eq(sync_ec2(t), 2);
        ck_assert_int_eq(testctx_blocks(t, "eni-0untagged00000001"), -1);
        ck_assert_int_eq(testctx_blocks(t, "eni-0optedin000000001"), 2);
        ck_assert_uint_eq(t->ctx.foreign_devices, 1u << 1);
        testctx_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("awsvars");
        TCase *tc = tcase_create("vars");
        tcase_add_loop_test(tc, test_every_var_answered, 0, N_AWS_NODE_VARS);
        tcase_add_test(tc, test_ignored_are_aws_nodes);
        tcase_add_test(tc, test_check_warns_once);
        tcase_add_test(tc, test_check_warns_v6_once);
        tcase_add_test(tc, test_start_warns_once);
        tcase_add_test(tc, test_ec2_endpoint_wins);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        TCase *eni = tcase_create("managed");
        tcase_add_test(eni, test_untagged_managed_by_default);
        tcase_add_test(eni, test_no_manage_true_never_managed);
        tcase_add_test(eni, test_manage_untagged_false);
        suite_add_tcase(s, eni);
        return testlib_run(s);
}

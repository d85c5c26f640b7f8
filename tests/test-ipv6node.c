/*
 * test-ipv6node: IPv6 mode's set-up against the fake EC2 and IMDS — one /80
 * on the primary ENI, adopted when EC2 lists one (the first), assigned under
 * an intent otherwise; a daemon SIGKILLed before or after AssignIpv6Addresses
 * leaves an intent the next set-up settles by EC2's list (never two /80s,
 * never none); without provisioning, IMDS's list only; pods then get /128s
 * inside it. And the node's sysctls, written under a directory standing in
 * for /proc/sys. Last, the built vpc-ipamd in IPv6 mode in a network
 * namespace of the case's own against the fake EC2: it serves /128s, sets
 * the namespace's sysctls and egress table, keeps both across a restart, and
 * with its store lost gives a live pod its addresses back from the kernel's
 * routes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipv6node.h"
#include "protocol.h"
#include "testctx.h"
#include "testlib.h"

static struct testctx *v6ctx(void) {
        struct testctx *t = testctx_new(0);
        fakeec2_lock(&t->f);
        t->f.ipv6 = true;
        fakeec2_unlock(&t->f);
        return t;
}

static size_t ec2_prefixes(struct testctx *t, char first[44]) {
        fakeec2_lock(&t->f);
        struct fakeec2_eni *e = fakeec2_find(&t->f, TESTCTX_PRIMARY_ENI);
        size_t n = e->n_ipv6_prefixes;
        if (n && first)
                snprintf(first, 44, "%s", e->ipv6_prefixes[0]);
        fakeec2_unlock(&t->f);
        return n;
}

static void setup_ok(struct testctx *t, char out[STORE_CIDR6_MAX]) {
        struct errmsg err = { 0 };
        int r = ipv6node_setup(&t->ctx, out, &err);
        ck_assert_msg(r == 0, "ipv6node_setup: %d %s", r, err.text);
}

/* The store holds exactly EC2's one /80, and a pod's /128 is inside it. */
static void assert_one_prefix(struct testctx *t) {
        char ec2[44];
        ck_assert_uint_eq(ec2_prefixes(t, ec2), 1);
        char (*cidrs)[STORE_CIDR6_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_prefixes6(t->st, TESTCTX_PRIMARY_ENI, &cidrs, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(cidrs[0], ec2);
        free(cidrs);
        ck_assert_uint_eq(testctx_open_intents(t), 0);
        struct store_attachment a = { .container_id = "c-v6", .ifname = "eth0" };
        struct store_lease l;
        ck_assert_int_eq(store_assign6(t->st, &a, true, testctx_now, &l, NULL), 0);
        char base[44];
        snprintf(base, sizeof base, "%s", ec2);
        *strstr(base, "/80") = '\0';
        ck_assert_str_eq(l.ip, base);                   /* the first pod gets the base, as aws-node */
        ck_assert_str_eq(l.eni_id, TESTCTX_PRIMARY_ENI);
        ck_assert_str_eq(l.egress_ip, "169.254.172.2");
}

START_TEST(test_assigns_then_adopts) {
        struct testctx *t = v6ctx();
        char p[STORE_CIDR6_MAX], again[STORE_CIDR6_MAX];
        setup_ok(t, p);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 1);
        ck_assert_ptr_nonnull(strstr(p, "2600:1f14:abc:de00:"));
        setup_ok(t, again);                             /* a restart: adopted, not assigned again */
        ck_assert_str_eq(again, p);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 1);
        char buf[256];
        ck_assert_int_eq(store_meta_get(t->st, "vpc_cidrs6", buf, sizeof buf), 0);
        ck_assert_str_eq(buf, FAKEEC2_VPC_CIDR6);
        struct store_eni e;
        ck_assert_int_eq(store_eni_get(t->st, TESTCTX_PRIMARY_ENI, &e), 0);
        ck_assert(e.is_primary && e.state == STORE_ENI_ATTACHED && e.route_table == 254);
        assert_one_prefix(t);
        testctx_free(t);
}
END_TEST

/* Prefixes already there (a previous daemon, aws-node): the first is used, none is assigned. */
START_TEST(test_adopts_the_first_listed) {
        struct testctx *t = v6ctx();
        fakeec2_lock(&t->f);
        char first[44];
        snprintf(first, sizeof first, "%s", fakeec2_add_ipv6_prefix(&t->f, TESTCTX_PRIMARY_ENI));
        fakeec2_add_ipv6_prefix(&t->f, TESTCTX_PRIMARY_ENI);
        fakeec2_unlock(&t->f);
        char p[STORE_CIDR6_MAX];
        setup_ok(t, p);
        ck_assert_str_eq(p, first);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 0);
        ck_assert_uint_eq(ec2_prefixes(t, NULL), 2);    /* the others are left alone, as aws-node */
        testctx_free(t);
}
END_TEST

/* A /80 the store has and the ENI no longer lists: dropped when empty, else kept for its pods; never handed out. */
START_TEST(test_drops_unlisted_prefixes) {
        struct testctx *t = v6ctx();
        const char *gone = "2600:1f14:abc:de00::/80", *gone2 = "2600:1f14:abc:de00:1::/80";     /* below EC2's */
        setup_ok(t, NULL);
        ck_assert_int_eq(store_prefix6_add(t->st, TESTCTX_PRIMARY_ENI, gone, testctx_now), 0);
        ck_assert_int_eq(store_prefix6_add(t->st, TESTCTX_PRIMARY_ENI, gone2, testctx_now), 0);
        struct store_attachment a = { .container_id = "old", .ifname = "eth0" };
        struct store_lease l;
        ck_assert_int_eq(store_assign6(t->st, &a, false, testctx_now, &l, NULL), 0);
        ck_assert_str_eq(l.ip, "2600:1f14:abc:de00::");         /* the lowest /80, held by a pod */
        setup_ok(t, NULL);                                      /* a restart */
        char (*cidrs)[STORE_CIDR6_MAX] = NULL;
        size_t n = 0;
        ck_assert_int_eq(store_prefixes6(t->st, NULL, &cidrs, &n), 0);
        ck_assert_uint_eq(n, 2);                                /* gone2 dropped; gone kept for its pod */
        ck_assert_str_eq(cidrs[0], gone);
        free(cidrs);
        ck_assert_int_eq(store_lookup(t->st, "old", "eth0", &l), 0);
        ck_assert_int_eq(store_release(t->st, "old", "eth0", testctx_now, 0, NULL), 1);
        setup_ok(t, NULL);
        assert_one_prefix(t);                                   /* and new pods get EC2's */
        testctx_free(t);
}
END_TEST

static void op_setup(struct ipamd_ctx *o, void *arg) {
        (void)arg;
        ipv6node_setup(o, NULL, NULL);
}

/* Killed before EC2 applied the call: the intent stays open, EC2 has no /80; the restart assigns one. */
START_TEST(test_crash_before_assign) {
        struct testctx *t = v6ctx();
        testctx_crash(t, EC2_ASSIGN_IPV6_ADDRESSES, false, op_setup, NULL);
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        ck_assert_uint_eq(ec2_prefixes(t, NULL), 0);
        testctx_restart(t);                             /* the IPv4 resolution leaves it to IPv6 set-up */
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        /* EC2's list may lag the call: the intent is not failed (no second /80) before it settles */
        struct errmsg err = { 0 };
        testctx_now += IPV6NODE_SETTLE_MS - 1;
        ck_assert_int_eq(ipv6node_setup(&t->ctx, NULL, &err), -EAGAIN);
        ck_assert_ptr_nonnull(strstr(err.text, "settle"));
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 1);
        testctx_now += 1;
        setup_ok(t, NULL);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 2);
        assert_one_prefix(t);
        testctx_free(t);
}
END_TEST

/* Killed after EC2 applied it (the answer lost): the restart adopts that /80, asks for none. */
START_TEST(test_crash_after_assign) {
        struct testctx *t = v6ctx();
        testctx_crash(t, EC2_ASSIGN_IPV6_ADDRESSES, true, op_setup, NULL);
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        ck_assert_uint_eq(ec2_prefixes(t, NULL), 1);
        char (*cidrs)[STORE_CIDR6_MAX] = NULL;
        size_t n = 9;
        ck_assert_int_eq(store_prefixes6(t->st, NULL, &cidrs, &n), 0);
        ck_assert_uint_eq(n, 0);                        /* the store never heard of it */
        free(cidrs);
        setup_ok(t, NULL);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 1);
        assert_one_prefix(t);
        testctx_free(t);
}
END_TEST

/* EC2's refusal (a subnet without IPv6) is an error naming the call; its intent is closed, not left open. */
START_TEST(test_refused_by_ec2) {
        struct testctx *t = testctx_new(0);             /* no IPv6 in the VPC */
        struct errmsg err = { 0 };
        ck_assert_int_eq(ipv6node_setup(&t->ctx, NULL, &err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err.text, "AssignIpv6Addresses"));
        ck_assert_ptr_nonnull(strstr(err.text, "IPv6 CIDR"));
        ck_assert_uint_eq(testctx_open_intents(t), 0);
        /* 5xx to every retry: the outcome is unknown, so the intent stays open for the next set-up */
        fakeec2_lock(&t->f);
        t->f.ipv6 = true;
        t->f.fail_action = EC2_ASSIGN_IPV6_ADDRESSES;
        t->f.fail_times = 100;
        t->f.fail_status = 503;
        t->f.fail_code = "InternalError";
        fakeec2_unlock(&t->f);
        ck_assert_int_lt(ipv6node_setup(&t->ctx, NULL, &err), 0);
        ck_assert_uint_eq(testctx_open_intents(t), 1);
        fakeec2_lock(&t->f);
        t->f.fail_times = 0;
        fakeec2_unlock(&t->f);
        testctx_now += IPV6NODE_SETTLE_MS;              /* EC2's list has settled: it made none */
        setup_ok(t, NULL);
        assert_one_prefix(t);
        testctx_free(t);
}
END_TEST

/* Without provisioning, IMDS's list decides and EC2 is never asked to assign. */
START_TEST(test_no_provisioning_uses_imds) {
        struct testctx *t = v6ctx();
        t->cfg.no_provisioning = true;
        struct errmsg err = { 0 };
        ck_assert_int_eq(ipv6node_setup(&t->ctx, NULL, &err), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err.text, "DISABLE_NETWORK_RESOURCE_PROVISIONING"));
        fakeec2_lock(&t->f);
        fakeec2_add_ipv6_prefix(&t->f, TESTCTX_PRIMARY_ENI);
        fakeec2_unlock(&t->f);
        setup_ok(t, NULL);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 0);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_DESCRIBE_NETWORK_INTERFACES), 0);
        assert_one_prefix(t);
        testctx_free(t);
}
END_TEST

static void make_file(const char *dir, const char *rel) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        ck_assert_int_eq(testlib_sh("mkdir -p \"$(dirname '%s')\" && echo 9 > '%s'", path, path), 0);
}

static void assert_file(const char *dir, const char *rel, const char *want) {
        char path[600], buf[16] = "";
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
        fclose(f);
        ck_assert_str_eq(buf, want);
}

START_TEST(test_sysctls) {
        const char *dir = testlib_tmpdir();
        static const char *const keys[] = { "net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/all/forwarding",
                                            "net/ipv4/ip_forward", "net/ipv6/conf/eth0/accept_ra" };
        for (size_t i = 0; i < 4; i++)
                make_file(dir, keys[i]);
        struct errmsg err = { 0 };
        ck_assert_msg(ipv6node_sysctls(dir, "eth0", &err) == 0, "%s", err.text);
        assert_file(dir, keys[0], "0");
        assert_file(dir, keys[1], "1");
        assert_file(dir, keys[2], "1");
        assert_file(dir, keys[3], "2");
        /* Set already: not written again (all/forwarding would reach every pod's host veth). */
        for (size_t i = 0; i < 4; i++)
                ck_assert_int_eq(testlib_sh("touch -d '2001-02-03 04:05:06' '%s/%s'", dir, keys[i]), 0);
        ck_assert_msg(ipv6node_sysctls(dir, "eth0", &err) == 0, "%s", err.text);
        for (size_t i = 0; i < 4; i++)
                ck_assert_int_eq(testlib_sh("test \"$(date -r '%s/%s' +%%Y)\" = 2001", dir, keys[i]), 0);
        ck_assert_int_eq(ipv6node_sysctls(dir, "ens5", &err), -ENOENT);    /* no such link's directory */
        ck_assert_ptr_nonnull(strstr(err.text, "ens5/accept_ra"));
        ck_assert_int_eq(ipv6node_sysctls(dir, "../x", &err), -EINVAL);
}
END_TEST

/* --- the daemon itself, in a private network namespace ------------------------------------ */

static const char *read_sysctl(const char *key) {
        static char buf[32];
        char path[256];
        snprintf(path, sizeof path, "/proc/sys/%s", key);
        FILE *f = fopen(path, "r");
        ck_assert_msg(f, "%s", path);
        ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
        fclose(f);
        buf[strcspn(buf, "\n")] = '\0';
        return buf;
}

static pid_t start_ipamd(struct testctx *t, const char *db_path, const char *sock) {
        const char *bin = getenv("VPC_IPAMD");
        ck_assert_msg(bin && access(bin, X_OK) == 0, "VPC_IPAMD is not set to the built vpc-ipamd");
        char db[600], so[600], imds_ep[300], ec2_ep[300], cp[600], log[600];
        snprintf(db, sizeof db, "VPC_IPAM_DB=%s", db_path);
        snprintf(so, sizeof so, "VPC_IPAM_SOCKET=%s", sock);
        snprintf(imds_ep, sizeof imds_ep, "AWS_EC2_METADATA_SERVICE_ENDPOINT=%s", fakeec2_url(&t->f));
        snprintf(ec2_ep, sizeof ec2_ep, "AWS_EC2_ENDPOINT=%s", fakeec2_url(&t->f));
        snprintf(cp, sizeof cp, "VPC_IPAM_AWS_NODE_CHECKPOINT=%s/none.json", testlib_tmpdir());
        snprintf(log, sizeof log, "%s/ipamd.log", testlib_tmpdir());
        const char *env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "ENABLE_IPv6=true", "ENABLE_IPv4=false",
                              "ENABLE_PREFIX_DELEGATION=true", "WARM_PREFIX_TARGET=1", "DISABLE_INTROSPECTION=true",
                              "DISABLE_METRICS=true", "AWS_REGION=us-west-2", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
                              "AWS_SECRET_ACCESS_KEY=secret", "VPC_IPAM_IMDS_START_WAIT=5", "VPC_IPAM_LOG_FORMAT=text",
                              db, so, imds_ep, ec2_ep, cp, NULL };
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
                dup2(fd, STDERR_FILENO);
                dup2(fd, STDOUT_FILENO);
                execle(bin, bin, (char *)NULL, (char *const *)env);
                _exit(127);
        }
        return pid;
}

/* Wait (bounded) until the socket answers STATUS; the daemon's log on failure. */
static void wait_serving(const char *sock, pid_t pid) {
        for (int i = 0; i < 400; i++) {
                struct proto_request req = { .op = PROTO_OP_STATUS };
                struct proto_reply rep = { 0 };
                struct errmsg e = { 0 };
                if (proto_call(sock, &req, 1000, &rep, &e) == 0 && rep.ok) {
                        proto_reply_done(&rep);
                        return;
                }
                proto_reply_done(&rep);
                int st;
                ck_assert_msg(waitpid(pid, &st, WNOHANG) == 0, "vpc-ipamd exited (status %d); see %s/ipamd.log", st,
                              testlib_tmpdir());
                struct timespec d = { 0, 50 * 1000000L };
                nanosleep(&d, NULL);
        }
        ck_abort_msg("vpc-ipamd did not serve within 20 s; see %s/ipamd.log", testlib_tmpdir());
}

static void stop_ipamd(pid_t pid) {
        int st;
        ck_assert_int_eq(kill(pid, SIGTERM), 0);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "vpc-ipamd stopped with status %d", st);
}

static void add(const char *sock, const char *cid, struct proto_reply *rep) {
        struct proto_request req = { .op = PROTO_OP_ADD };
        snprintf(req.att.container_id, sizeof req.att.container_id, "%s", cid);
        snprintf(req.att.ifname, sizeof req.att.ifname, "eth0");
        struct errmsg e = { 0 };
        ck_assert_msg(proto_call(sock, &req, 5000, rep, &e) == 0 && rep->ok, "ADD: %s %s", e.text, rep->error.msg);
}

START_TEST(test_daemon_in_netns) {
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
        struct testctx *t = v6ctx();                    /* after unshare: the fake EC2 listens in this namespace */
        fakeec2_lock(&t->f);
        const char *mac = fakeec2_find(&t->f, TESTCTX_PRIMARY_ENI)->mac;
        ck_assert_int_eq(testlib_sh("ip link set lo up && ip link add eth0 address %s type veth peer name eth0p && "
                                    "ip link set eth0 up", mac), 0);
        fakeec2_unlock(&t->f);
        struct store_itype it = { .name = "m5.large", .max_enis = 3, .ipv4_per_eni = 10, .prefix_supported = true,
                                  .network_cards = 1, .fetched_ms = testctx_now };
        ck_assert_int_eq(store_itype_put(t->st, &it), 0);      /* the fake EC2 has no DescribeInstanceTypes */
        ck_assert_int_eq(testlib_sh("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                                    "echo 0 > /proc/sys/net/ipv4/ip_forward"), 0);
        char sock[300];
        snprintf(sock, sizeof sock, "%s/ipamd.sock", testlib_tmpdir());
        pid_t pid = start_ipamd(t, t->db, sock);
        wait_serving(sock, pid);
        char p80[44];
        ck_assert_uint_eq(ec2_prefixes(t, p80), 1);
        *strstr(p80, "/80") = '\0';
        struct proto_reply rep = { 0 };
        add(sock, "pod-a", &rep);
        ck_assert_str_eq(rep.addr.ip, p80);
        ck_assert_str_eq(rep.addr.gateway, "fe80::1");
        ck_assert_str_eq(rep.addr.egress_ip, "169.254.172.2");
        ck_assert_str_eq(rep.addr.vpc_cidrs[0], FAKEEC2_VPC_CIDR6);
        proto_reply_done(&rep);
        ck_assert_str_eq(read_sysctl("net/ipv6/conf/all/disable_ipv6"), "0");
        ck_assert_str_eq(read_sysctl("net/ipv6/conf/all/forwarding"), "1");
        ck_assert_str_eq(read_sysctl("net/ipv4/ip_forward"), "1");
        ck_assert_str_eq(read_sysctl("net/ipv6/conf/eth0/accept_ra"), "2");
        ck_assert_int_eq(testlib_sh("nft list table ip vpc-ipam | grep -q 'ip saddr 169.254.172.0/22 snat to %s'",
                                    t->node.primary_ip), 0);
        /* a live pod's host veth, as the plugin leaves it: forwarding 0 must survive the restart */
        ck_assert_int_eq(testlib_sh("ip link add enilive type veth peer name enilivep && "
                                    "echo 0 > /proc/sys/net/ipv6/conf/enilive/forwarding"), 0);
        stop_ipamd(pid);
        pid = start_ipamd(t, t->db, sock);              /* a restart: the same /80, the pod keeps its /128 */
        wait_serving(sock, pid);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 1);
        ck_assert_str_eq(read_sysctl("net/ipv6/conf/enilive/forwarding"), "0");
        struct proto_request chk = { .op = PROTO_OP_CHECK };
        snprintf(chk.att.container_id, sizeof chk.att.container_id, "pod-a");
        snprintf(chk.att.ifname, sizeof chk.att.ifname, "eth0");
        struct errmsg e = { 0 };
        ck_assert_int_eq(proto_call(sock, &chk, 5000, &rep, &e), 0);
        ck_assert(rep.ok);
        ck_assert_str_eq(rep.addr.ip, p80);
        ck_assert_str_eq(rep.addr.egress_ip, "169.254.172.2");
        proto_reply_done(&rep);
        add(sock, "pod-b", &rep);
        ck_assert_str_ne(rep.addr.ip, p80);
        ck_assert_str_eq(rep.addr.egress_ip, "169.254.172.3");
        proto_reply_done(&rep);
        stop_ipamd(pid);
        /* The store lost: pod-a's links (as the plugin leaves them) are the witness of its addresses. */
        ck_assert_int_eq(testlib_sh("ip link add enitest1 type veth peer name enitest1p && "
                                    "ip link set enitest1 alias 'vpc-cni:eth0:pod-a' up && "
                                    "ip link add enitest2 type veth peer name enitest2p && "
                                    "ip link set enitest2 alias 'vpc-cni-egress:eth0:pod-a' up && "
                                    "ip -6 route add %s/128 dev enitest1 && ip route add 169.254.172.2/32 dev enitest2",
                                    p80), 0);
        store *lost = NULL;
        char lost_db[600];
        snprintf(lost_db, sizeof lost_db, "%s/lost.db", testlib_tmpdir());
        ck_assert_int_eq(store_open(lost_db, &lost, NULL), 0);
        ck_assert_int_eq(store_itype_put(lost, &it), 0);
        store_close(lost);
        pid = start_ipamd(t, lost_db, sock);
        wait_serving(sock, pid);
        ck_assert_int_eq(proto_call(sock, &chk, 5000, &rep, &e), 0);
        ck_assert_msg(rep.ok, "pod-a lost its lease: %s", rep.error.msg);
        ck_assert_str_eq(rep.addr.ip, p80);
        ck_assert_str_eq(rep.addr.egress_ip, "169.254.172.2");
        proto_reply_done(&rep);
        add(sock, "pod-c", &rep);                       /* never pod-a's */
        ck_assert_str_ne(rep.addr.ip, p80);
        ck_assert_str_ne(rep.addr.egress_ip, "169.254.172.2");
        proto_reply_done(&rep);
        stop_ipamd(pid);
        /* Taking over from aws-node (a new store): its pod on the /80's base, its egress route to .2 on an
         * unaliased veth. Neither address goes to a new pod. */
        ck_assert_int_eq(testlib_sh("ip link del enitest1 && ip link del enitest2 && "
                                    "ip link add awsegr type veth peer name awsegrp && ip link set awsegr up && "
                                    "ip route add 169.254.172.2/32 dev awsegr && "
                                    "printf '{\"version\":\"vpc-cni-ipam/1\",\"allocations\":[{\"containerID\":"
                                    "\"aws-pod\",\"ifName\":\"eth0\",\"ipv6\":\"%s\"}]}' > %s/none.json",
                                    p80, testlib_tmpdir()), 0);
        char aws_db[600];
        snprintf(aws_db, sizeof aws_db, "%s/aws.db", testlib_tmpdir());
        ck_assert_int_eq(store_open(aws_db, &lost, NULL), 0);
        ck_assert_int_eq(store_itype_put(lost, &it), 0);
        store_close(lost);
        pid = start_ipamd(t, aws_db, sock);
        wait_serving(sock, pid);
        snprintf(chk.att.container_id, sizeof chk.att.container_id, "aws-pod");
        ck_assert_int_eq(proto_call(sock, &chk, 5000, &rep, &e), 0);
        ck_assert_msg(rep.ok, "aws-node's pod was not imported: %s", rep.error.msg);
        ck_assert_str_eq(rep.addr.ip, p80);
        proto_reply_done(&rep);
        add(sock, "pod-d", &rep);
        ck_assert_str_ne(rep.addr.ip, p80);
        ck_assert_str_eq(rep.addr.egress_ip, "169.254.172.3");
        proto_reply_done(&rep);
        stop_ipamd(pid);
        ck_assert_int_eq(testlib_sh("rm %s/none.json", testlib_tmpdir()), 0);
        /* A non-nitro type: no prefix delegation, so no IPv6 mode (aws-node exits too). */
        char xen_db[600];
        snprintf(xen_db, sizeof xen_db, "%s/xen.db", testlib_tmpdir());
        ck_assert_int_eq(store_open(xen_db, &lost, NULL), 0);
        it.prefix_supported = false;
        ck_assert_int_eq(store_itype_put(lost, &it), 0);
        store_close(lost);
        pid = start_ipamd(t, xen_db, sock);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
        ck_assert_int_eq(testlib_sh("grep -q 'not supported on this non-nitro instance type' %s/ipamd.log",
                                    testlib_tmpdir()), 0);
        ck_assert_uint_eq(fakeec2_calls(&t->f, EC2_ASSIGN_IPV6_ADDRESSES), 1);
        testctx_free(t);
}
END_TEST

int main(void) {
        Suite *s = suite_create("ipv6node");
        TCase *tc = tcase_create("prefix");
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_assigns_then_adopts);
        tcase_add_test(tc, test_adopts_the_first_listed);
        tcase_add_test(tc, test_drops_unlisted_prefixes);
        tcase_add_test(tc, test_crash_before_assign);
        tcase_add_test(tc, test_crash_after_assign);
        tcase_add_test(tc, test_refused_by_ec2);
        tcase_add_test(tc, test_no_provisioning_uses_imds);
        tcase_add_test(tc, test_sysctls);
        suite_add_tcase(s, tc);
        TCase *d = tcase_create("daemon");
        tcase_set_timeout(d, 90);
        tcase_add_test(d, test_daemon_in_netns);
        suite_add_tcase(s, d);
        return testlib_run(s);
}

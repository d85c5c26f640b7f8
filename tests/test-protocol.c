/*
 * test-protocol: the daemon socket codec refuses every malformed message with
 * the right error code, round-trips every op, and the client tells "daemon
 * not reachable", "timed out" and "bad reply" apart against real sockets.
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"
#include "testlib.h"

static int decode_req(const char *json, struct proto_request *req, struct proto_error *e) {
        memset(e, 0, sizeof *e);
        return proto_request_decode(json, strlen(json), req, e);
}

START_TEST(test_validators) {
        ck_assert(proto_valid_ipv4("10.0.0.1"));
        ck_assert(proto_valid_ipv4("255.255.255.255"));
        ck_assert(!proto_valid_ipv4("256.0.0.1"));
        ck_assert(!proto_valid_ipv4("10.0.0"));
        ck_assert(!proto_valid_ipv4("10.0.0.1.2"));
        ck_assert(!proto_valid_ipv4("010.0.0.1"));
        ck_assert(!proto_valid_ipv4("10.0.0.1 "));
        ck_assert(!proto_valid_ipv4(""));
        ck_assert(proto_valid_cidr4("10.0.0.0/16"));
        ck_assert(proto_valid_cidr4("0.0.0.0/0"));
        ck_assert(!proto_valid_cidr4("10.0.0.0/33"));
        ck_assert(!proto_valid_cidr4("10.0.0.0/"));
        ck_assert(!proto_valid_cidr4("10.0.0.0"));
        ck_assert(proto_valid_ipv6("2600:1f14:abc:1::"));
        ck_assert(proto_valid_ipv6("fe80::1"));
        ck_assert(!proto_valid_ipv6("FE80::1"));                /* not canonical */
        ck_assert(!proto_valid_ipv6("2600:0:0:0:0:0:0:1"));     /* not canonical */
        ck_assert(!proto_valid_ipv6("10.0.0.1"));
        ck_assert(proto_valid_ip("10.0.0.1") && proto_valid_ip("::1") && !proto_valid_ip("x"));
        ck_assert(proto_valid_cidr("10.0.0.0/16"));
        ck_assert(proto_valid_cidr("2600:1f14:abc::/56"));
        ck_assert(proto_valid_cidr("::/0"));
        ck_assert(!proto_valid_cidr("2600::/129"));
        ck_assert(!proto_valid_cidr("2600::/064"));
        ck_assert(!proto_valid_cidr("2600::"));
        ck_assert(proto_valid_ifname("eth0"));
        ck_assert(proto_valid_ifname("abcdefghijklmno"));
        ck_assert(!proto_valid_ifname("abcdefghijklmnop"));
        ck_assert(!proto_valid_ifname("a/b"));
        ck_assert(!proto_valid_ifname("a:b"));
        ck_assert(!proto_valid_ifname("a b"));
        ck_assert(!proto_valid_ifname(".."));
        ck_assert(!proto_valid_ifname(""));
        ck_assert(proto_valid_container_id("default-c1"));
        ck_assert(!proto_valid_container_id("-x"));
        ck_assert(!proto_valid_container_id("a/b"));
}
END_TEST

START_TEST(test_request_roundtrip_add) {
        struct proto_request in = { .op = PROTO_OP_ADD }, out;
        struct proto_error e;
        strcpy(in.att.container_id, "c0ffee");
        strcpy(in.att.ifname, "eth0");
        strcpy(in.netns, "/var/run/netns/cni-1");
        strcpy(in.pod_namespace, "default");
        strcpy(in.pod_name, "web-0");
        strcpy(in.pod_uid, "1234-5678");
        strcpy(in.pod_infra_container_id, "c0ffee");
        char *json = NULL;
        ck_assert_int_eq(proto_request_encode(&in, &json), 0);
        ck_assert_int_eq(decode_req(json, &out, &e), 0);
        ck_assert_int_eq(out.op, PROTO_OP_ADD);
        ck_assert_str_eq(out.att.container_id, "c0ffee");
        ck_assert_str_eq(out.att.ifname, "eth0");
        ck_assert_str_eq(out.netns, "/var/run/netns/cni-1");
        ck_assert_str_eq(out.pod_name, "web-0");
        ck_assert_str_eq(out.pod_uid, "1234-5678");
        free(json);
}
END_TEST

START_TEST(test_request_roundtrip_gc) {
        struct proto_attachment v[2] = { { "a1", "eth0" }, { "b2", "eth1" } };
        struct proto_request in = { .op = PROTO_OP_GC, .valid = v, .n_valid = 2 }, out;
        struct proto_error e;
        char *json = NULL;
        ck_assert_int_eq(proto_request_encode(&in, &json), 0);
        ck_assert_int_eq(decode_req(json, &out, &e), 0);
        ck_assert_uint_eq(out.n_valid, 2);
        ck_assert_str_eq(out.valid[1].container_id, "b2");
        ck_assert_str_eq(out.valid[1].ifname, "eth1");
        proto_request_done(&out);
        free(json);
}
END_TEST

static void expect_refusal(const char *json, int want_r, const char *want_code) {
        struct proto_request req;
        struct proto_error e;
        int r = decode_req(json, &req, &e);
        ck_assert_msg(r == want_r, "%s: got %d, want %d (%s)", json, r, want_r, e.msg);
        ck_assert_str_eq(e.code, want_code);
        ck_assert(e.msg[0]);
}

START_TEST(test_request_refusals) {
        expect_refusal("", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("garbage", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("[1,2]", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"status\"} x", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"op\":\"status\"}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":\"1\",\"op\":\"status\"}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":2,\"op\":\"status\"}", -EPROTONOSUPPORT, PROTO_E_UNSUPPORTED_VERSION);
        expect_refusal("{\"v\":1,\"op\":\"explode\"}", -EOPNOTSUPP, PROTO_E_UNKNOWN_OP);
        expect_refusal("{\"v\":1}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"del\",\"ifname\":\"eth0\"}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"del\",\"container_id\":\"a\",\"ifname\":\"abcdefghijklmnop\"}", -EINVAL,
                       PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"del\",\"container_id\":\"a\",\"ifname\":\"a/b\"}", -EINVAL,
                       PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"del\",\"container_id\":7,\"ifname\":\"eth0\"}", -EINVAL,
                       PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"add\",\"container_id\":\"a\",\"ifname\":\"eth0\"}", -EINVAL,
                       PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"del\",\"container_id\":\"a\",\"ifname\":\"eth0\","
                       "\"host_veth\":\"../x\"}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"del\",\"container_id\":\"a\",\"ifname\":\"eth0\","
                       "\"host_veth\":\"eni0123456789abcd\"}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"gc\",\"valid\":{}}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"gc\",\"valid\":[{\"container_id\":\"a\"}]}", -EINVAL, PROTO_E_BAD_REQUEST);
        expect_refusal("{\"v\":1,\"op\":\"add\",\"container_id\":\"a\",\"ifname\":\"eth0\",\"netns\":\"/x\","
                       "\"pod_name\":\"a\\nb\"}", -EINVAL, PROTO_E_BAD_REQUEST);
}
END_TEST

START_TEST(test_request_length_limits) {
        /* container_id of 256 passes, 257 does not; netns of 4097 does not */
        char big[PROTO_NETNS_MAX + 200], id[300];
        struct proto_request req;
        struct proto_error e;
        memset(id, 'a', 256);
        id[256] = '\0';
        snprintf(big, sizeof big, "{\"v\":1,\"op\":\"check\",\"container_id\":\"%s\",\"ifname\":\"eth0\"}", id);
        ck_assert_int_eq(decode_req(big, &req, &e), 0);
        strcat(id, "a");
        snprintf(big, sizeof big, "{\"v\":1,\"op\":\"check\",\"container_id\":\"%s\",\"ifname\":\"eth0\"}", id);
        ck_assert_int_eq(decode_req(big, &req, &e), -EINVAL);
        char *msg = malloc(PROTO_MSG_MAX + 2);
        memset(msg, ' ', PROTO_MSG_MAX + 1);
        memcpy(msg, "{\"v\":1,\"op\":\"status\"}", 21);
        ck_assert_int_eq(proto_request_decode(msg, PROTO_MSG_MAX, &req, &e), 0);
        ck_assert_int_eq(proto_request_decode(msg, PROTO_MSG_MAX + 1, &req, &e), -EINVAL);
        free(msg);
}
END_TEST

static const char add_reply[] =
        "{\"v\":1,\"ok\":true,\"ip\":\"10.0.1.5\",\"eni_id\":\"eni-0abc\",\"device_index\":1,\"route_table\":2,"
        "\"gateway\":\"169.254.1.1\",\"subnet_gateway\":\"10.0.1.1\",\"mtu\":9001,\"vpc_cidrs\":[\"10.0.0.0/16\"]}";

START_TEST(test_reply_add_decode) {
        struct proto_reply r;
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, add_reply, strlen(add_reply), &r, NULL), 0);
        ck_assert(r.ok);
        ck_assert_str_eq(r.addr.ip, "10.0.1.5");
        ck_assert_str_eq(r.addr.eni_id, "eni-0abc");
        ck_assert_uint_eq(r.addr.route_table, 2);
        ck_assert_uint_eq(r.addr.mtu, 9001);
        ck_assert_uint_eq(r.addr.n_vpc_cidrs, 1);
        ck_assert_str_eq(r.addr.vpc_cidrs[0], "10.0.0.0/16");
        /* and it re-encodes to something that decodes the same */
        char *json = NULL;
        ck_assert_int_eq(proto_reply_encode(&r, &json), 0);
        struct proto_reply r2;
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, json, strlen(json), &r2, NULL), 0);
        ck_assert_str_eq(r2.addr.subnet_gateway, "10.0.1.1");
        proto_reply_done(&r);
        proto_reply_done(&r2);
        free(json);
}
END_TEST

static void expect_bad_reply(enum proto_op op, const char *json) {
        struct proto_reply r;
        struct errmsg e = { 0 };
        ck_assert_msg(proto_reply_decode(op, json, strlen(json), &r, &e) == -EBADMSG, "accepted: %s", json);
        ck_assert(e.text[0]);
}

/* An IPv6 pod's reply: a /128, fe80::1, and its IPv4 egress address. */
START_TEST(test_reply_add_ipv6) {
        static const char v6[] =
                "{\"v\":1,\"ok\":true,\"ip\":\"2600:1f14:abc:1:8f3e::7\",\"eni_id\":\"eni-0abc\",\"device_index\":0,"
                "\"route_table\":254,\"gateway\":\"fe80::1\",\"subnet_gateway\":\"10.0.1.1\",\"mtu\":9001,"
                "\"egress_ip\":\"169.254.172.9\",\"vpc_cidrs\":[\"2600:1f14:abc::/56\",\"10.0.0.0/16\"]}";
        struct proto_reply r;
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, v6, strlen(v6), &r, NULL), 0);
        ck_assert_str_eq(r.addr.ip, "2600:1f14:abc:1:8f3e::7");
        ck_assert_str_eq(r.addr.gateway, PROTO_POD_GATEWAY6);
        ck_assert_str_eq(r.addr.egress_ip, "169.254.172.9");
        ck_assert_str_eq(r.addr.vpc_cidrs[0], "2600:1f14:abc::/56");
        char *json = NULL;
        ck_assert_int_eq(proto_reply_encode(&r, &json), 0);
        ck_assert_ptr_nonnull(strstr(json, "\"egress_ip\":\"169.254.172.9\""));
        proto_reply_done(&r);
        free(json);
        /* an IPv4 reply carries no egress_ip, and one outside 169.254.172.0/22 is refused */
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, add_reply, strlen(add_reply), &r, NULL), 0);
        ck_assert_str_eq(r.addr.egress_ip, "");
        ck_assert_int_eq(proto_reply_encode(&r, &json), 0);
        ck_assert_ptr_null(strstr(json, "egress_ip"));
        proto_reply_done(&r);
        free(json);
        char bad[sizeof v6];
        strcpy(bad, v6);
        memcpy(strstr(bad, "169.254.172.9"), "169.254.176.9", 13);
        expect_bad_reply(PROTO_OP_ADD, bad);
}
END_TEST

/* An add reply decodes with egress_ip want and encodes it back. */
static void egress_round_trip(const char *reply, const char *want) {
        struct proto_reply r;
        char *json = NULL, needle[80];
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, reply, strlen(reply), &r, NULL), 0);
        ck_assert_str_eq(r.addr.egress_ip, want);
        ck_assert_int_eq(proto_reply_encode(&r, &json), 0);
        snprintf(needle, sizeof needle, "\"egress_ip\":\"%s\"", want);
        ck_assert_ptr_nonnull(strstr(json, needle));
        proto_reply_done(&r);
        free(json);
}

/* An IPv4 pod's reply with ENABLE_V6_EGRESS: its egress address is a ULA in fd00::ac:0/118. */
START_TEST(test_reply_add_v6_egress) {
        static const char v4[] =
                "{\"v\":1,\"ok\":true,\"ip\":\"10.0.1.5\",\"eni_id\":\"eni-0abc\",\"device_index\":1,\"route_table\":2,"
                "\"gateway\":\"169.254.1.1\",\"subnet_gateway\":\"10.0.1.1\",\"mtu\":9001,"
                "\"egress_ip\":\"fd00::ac:3fe\",\"vpc_cidrs\":[\"10.0.0.0/16\"]}";
        egress_round_trip(v4, "fd00::ac:3fe");
        static const char *const outside[] = { "fd00::ac:400", "fd00::ad:2", "fd01::ac:2", "fe80::ac:2" };
        for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
                char bad[sizeof v4 + 8];
                const char *at = strstr(v4, "fd00::ac:3fe");
                snprintf(bad, sizeof bad, "%.*s%s%s", (int)(at - v4), v4, outside[i], at + strlen("fd00::ac:3fe"));
                expect_bad_reply(PROTO_OP_ADD, bad);
        }
}
END_TEST

START_TEST(test_reply_refusals) {
        expect_bad_reply(PROTO_OP_ADD, "{\"v\":1,\"ok\":true}");
        expect_bad_reply(PROTO_OP_ADD, "{\"v\":2,\"ok\":true}");
        expect_bad_reply(PROTO_OP_ADD, "{\"v\":1}");
        expect_bad_reply(PROTO_OP_ADD, "{\"v\":1,\"ok\":false}");
        expect_bad_reply(PROTO_OP_ADD, "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"Bad Code\",\"msg\":\"x\"}}");
        char bad[sizeof add_reply + 16];
        strcpy(bad, add_reply);
        memcpy(strstr(bad, "10.0.1.5"), "10.0.1.x", 8);
        expect_bad_reply(PROTO_OP_ADD, bad);
        strcpy(bad, add_reply);
        memcpy(strstr(bad, "\"route_table\":2"), "\"route_table\":0", 15);
        expect_bad_reply(PROTO_OP_ADD, bad);
        strcpy(bad, add_reply);
        memcpy(strstr(bad, "9001"), "9.01", 4);
        expect_bad_reply(PROTO_OP_ADD, bad);
        expect_bad_reply(PROTO_OP_GC, "{\"v\":1,\"ok\":true,\"released\":[\"10.0.0.1\",\"nope\"]}");
        expect_bad_reply(PROTO_OP_STATUS, "{\"v\":1,\"ok\":true,\"ready\":\"yes\"}");
}
END_TEST

START_TEST(test_reply_del_null_and_error) {
        struct proto_reply r;
        const char *null_del = "{\"v\":1,\"ok\":true,\"ip\":null,\"route_table\":null}";
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_DEL, null_del, strlen(null_del), &r, NULL), 0);
        ck_assert(r.ok);
        ck_assert(!r.addr.has_ip);
        ck_assert(!r.unwired && !r.veth_queued);                /* absent: an older daemon did nothing */
        /* a DEL naming the host veth, and the daemon saying it undid the host side */
        struct proto_request req = { .op = PROTO_OP_DEL }, back;
        struct proto_error perr;
        strcpy(req.att.container_id, "c1");
        strcpy(req.att.ifname, "eth0");
        strcpy(req.host_veth, "eni0123456789ab");
        char *json = NULL;
        ck_assert_int_eq(proto_request_encode(&req, &json), 0);
        ck_assert_int_eq(proto_request_decode(json, strlen(json), &back, &perr), 0);
        ck_assert_str_eq(back.host_veth, "eni0123456789ab");
        proto_request_done(&back);
        free(json);
        struct proto_reply done = { .op = PROTO_OP_DEL, .ok = true, .unwired = true, .veth_queued = true };
        ck_assert_int_eq(proto_reply_encode(&done, &json), 0);
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_DEL, json, strlen(json), &r, NULL), 0);
        ck_assert(r.unwired && r.veth_queued && !r.addr.has_ip);
        free(json);
        /* the released lease's egress address (its egress veth is the plugin's to remove) */
        done.addr.has_ip = true;
        strcpy(done.addr.ip, "10.0.1.5");
        strcpy(done.addr.egress_ip, "fd00::ac:2");
        ck_assert_int_eq(proto_reply_encode(&done, &json), 0);
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_DEL, json, strlen(json), &r, NULL), 0);
        ck_assert(r.addr.has_ip);
        ck_assert_str_eq(r.addr.egress_ip, "fd00::ac:2");
        free(json);
        expect_bad_reply(PROTO_OP_DEL, "{\"v\":1,\"ok\":true,\"ip\":\"10.0.1.5\",\"egress_ip\":\"10.0.1.6\"}");
        expect_bad_reply(PROTO_OP_DEL, "{\"v\":1,\"ok\":true,\"ip\":null,\"unwired\":1}");
        ck_assert_int_eq(proto_reply_encode_error(PROTO_E_NO_ADDRESS, "subnet exhausted\n(10.0.1.0/24)", true, &json),
                         0);
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, json, strlen(json), &r, NULL), 0);
        ck_assert(!r.ok);
        ck_assert_str_eq(r.error.code, "no_address");
        ck_assert_str_eq(r.error.msg, "subnet exhausted (10.0.1.0/24)");
        ck_assert(r.error.retry);
        free(json);
}
END_TEST

START_TEST(test_reply_readonly_carries_object) {
        const char *j = "{\"v\":1,\"ok\":true,\"enis\":[{\"id\":\"eni-1\",\"ips\":3}]}";
        struct proto_reply r;
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ENIS, j, strlen(j), &r, NULL), 0);
        ck_assert_ptr_nonnull(r.result);
        const cJSON *enis = cJSON_GetObjectItem(r.result, "enis");
        ck_assert_int_eq(cJSON_GetArraySize(enis), 1);
        char *out = NULL;
        ck_assert_int_eq(proto_reply_encode(&r, &out), 0);
        ck_assert_ptr_nonnull(strstr(out, "\"enis\":[{\"id\":\"eni-1\",\"ips\":3}]"));
        free(out);
        proto_reply_done(&r);
}
END_TEST

/* --- client against real sockets ------------------------------------------------------- */

enum server_mode { SERVE, SILENT, GARBAGE, CLOSE };

struct server {
        int fd;
        enum server_mode mode;
        pthread_t thread;
};

static void handler(const struct proto_request *req, struct proto_reply *reply, void *userdata) {
        (void)userdata;
        if (req->op == PROTO_OP_STATUS) {
                reply->ok = true;
                reply->ready = true;
                reply->available = 7;
                strcpy(reply->reason, "ok");
        } else {
                strcpy(reply->error.code, PROTO_E_INTERNAL);
                strcpy(reply->error.msg, "not in this test");
        }
}

static void *serve_one(void *arg) {
        struct server *s = arg;
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        if (poll(&p, 1, 5000) <= 0)
                return NULL;
        int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
        char buf[PROTO_MSG_MAX];
        ssize_t n = recv(c, buf, sizeof buf, 0);
        char *reply = NULL;
        if (s->mode == SERVE && n > 0 && proto_server_handle(buf, (size_t)n, handler, NULL, &reply) == 0)
                send(c, reply, strlen(reply), MSG_NOSIGNAL);
        else if (s->mode == GARBAGE)
                send(c, "{\"v\":1,\"ok\":tru", 15, MSG_NOSIGNAL);
        else if (s->mode == SILENT)
                usleep(600 * 1000);
        free(reply);
        close(c);
        return NULL;
}

static void start(struct server *s, const char *path, enum server_mode mode) {
        s->mode = mode;
        ck_assert_int_eq(proto_listen(path, 8, &s->fd), 0);
        ck_assert_int_eq(pthread_create(&s->thread, NULL, serve_one, s), 0);
}

static void stop(struct server *s) {
        pthread_join(s->thread, NULL);
        close(s->fd);
}

static int call_status(const char *path, int deadline, struct proto_reply *r, struct errmsg *e) {
        struct proto_request req = { .op = PROTO_OP_STATUS };
        return proto_call(path, &req, deadline, r, e);
}

START_TEST(test_call_ok) {
        struct server s;
        struct proto_reply r;
        const char *path = testlib_path("ok.sock");
        start(&s, path, SERVE);
        ck_assert_int_eq(call_status(path, 2000, &r, NULL), 0);
        ck_assert(r.ok && r.ready);
        ck_assert_uint_eq(r.available, 7);
        stop(&s);
        /* in two halves, with work in between: the reply waits for the caller */
        struct proto_request req = { .op = PROTO_OP_STATUS };
        struct proto_pending p;
        struct proto_reply r2 = { 0 };
        path = testlib_path("halves.sock");
        start(&s, path, SERVE);
        ck_assert_int_eq(proto_call_send(path, &req, 2000, &p, NULL), 0);
        usleep(50000);
        ck_assert_int_eq(proto_call_recv(&p, &r2, NULL), 0);
        ck_assert(r2.ok && r2.available == 7 && p.fd == -1);
        stop(&s);
}
END_TEST

START_TEST(test_call_unreachable) {
        struct proto_reply r;
        struct errmsg e = { 0 };
        ck_assert_int_eq(call_status(testlib_path("none.sock"), 500, &r, &e), -ENOENT);
        /* a socket file with nobody listening */
        const char *path = testlib_path("dead.sock");
        int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        close(fd);
        ck_assert_int_eq(call_status(path, 500, &r, &e), -ECONNREFUSED);
        ck_assert_ptr_nonnull(strstr(e.text, path));
}
END_TEST

START_TEST(test_call_timeout) {
        struct server s;
        struct proto_reply r;
        const char *path = testlib_path("silent.sock");
        start(&s, path, SILENT);
        ck_assert_int_eq(call_status(path, 200, &r, NULL), -ETIMEDOUT);
        stop(&s);
}
END_TEST

START_TEST(test_call_bad_reply_and_close) {
        struct server s;
        struct proto_reply r;
        const char *path = testlib_path("bad.sock");
        start(&s, path, GARBAGE);
        ck_assert_int_eq(call_status(path, 2000, &r, NULL), -EBADMSG);
        stop(&s);
        start(&s, path, CLOSE);
        ck_assert_int_eq(call_status(path, 2000, &r, NULL), -ECONNRESET);
        stop(&s);
}
END_TEST

START_TEST(test_server_refuses_with_reply) {
        char *reply = NULL;
        struct proto_reply r;
        ck_assert_int_eq(proto_server_handle("{\"v\":9,\"op\":\"add\"}", 18, handler, NULL, &reply), 0);
        ck_assert_int_eq(proto_reply_decode(PROTO_OP_ADD, reply, strlen(reply), &r, NULL), 0);
        ck_assert(!r.ok);
        ck_assert_str_eq(r.error.code, PROTO_E_UNSUPPORTED_VERSION);
        free(reply);
}
END_TEST

/* The plugin answers "try again" (CNI 11) for these: an unreachable or broken daemon connection. */
START_TEST(test_transient_errors) {
        static const int transient[] = { ENOENT, ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ENOTCONN,
                                         ETIMEDOUT, EAGAIN };
        for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
                ck_assert_msg(proto_error_is_transient(-transient[i]), "%s", strerror(transient[i]));
        static const int lasting[] = { EBADMSG, EACCES, ENOMEM, EINVAL, ENAMETOOLONG };
        for (size_t i = 0; i < sizeof lasting / sizeof *lasting; i++)
                ck_assert_msg(!proto_error_is_transient(-lasting[i]), "%s", strerror(lasting[i]));
        /* What proto_call returns when the daemon closes the connection unanswered. */
        struct server s;
        struct proto_reply r;
        struct errmsg e = { 0 };
        const char *path = testlib_path("closer.sock");
        start(&s, path, CLOSE);
        ck_assert(proto_error_is_transient(call_status(path, 300, &r, &e)));
        stop(&s);
}
END_TEST

int main(void) {
        Suite *s = suite_create("protocol");
        TCase *tc = tcase_create("codec");
        tcase_add_test(tc, test_validators);
        tcase_add_test(tc, test_request_roundtrip_add);
        tcase_add_test(tc, test_request_roundtrip_gc);
        tcase_add_test(tc, test_request_refusals);
        tcase_add_test(tc, test_request_length_limits);
        tcase_add_test(tc, test_reply_add_decode);
        tcase_add_test(tc, test_reply_refusals);
        tcase_add_test(tc, test_reply_add_ipv6);
        tcase_add_test(tc, test_reply_add_v6_egress);
        tcase_add_test(tc, test_reply_del_null_and_error);
        tcase_add_test(tc, test_reply_readonly_carries_object);
        tcase_add_test(tc, test_server_refuses_with_reply);
        suite_add_tcase(s, tc);
        TCase *cl = tcase_create("client");
        tcase_add_test(cl, test_call_ok);
        tcase_add_test(cl, test_call_unreachable);
        tcase_add_test(cl, test_call_timeout);
        tcase_add_test(cl, test_call_bad_reply_and_close);
        tcase_add_test(cl, test_transient_errors);
        suite_add_tcase(s, cl);
        return testlib_run(s);
}

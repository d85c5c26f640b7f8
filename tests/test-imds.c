/*
 * test-imds: the IMDSv2 client against a fake metadata service that enforces
 * session tokens (PUT with a TTL, 401 for a missing or revoked token), the
 * typed getters end to end, and the strict body parsers on good and bad input.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakeclock.h"
#include "fakesrv.h"
#include "imds.h"
#include "testlib.h"

#define MAC0 "02:3f:aa:bb:cc:00"
#define MAC1 "02:3f:aa:bb:cc:01"

struct fake_imds {
        int tokens_issued;
        char valid[32];
        int puts, gets, unauthorized;
        bool revoke_next;               /* invalidate the token before the next GET */
        const char *override_path, *override_body;
};

static const struct { const char *path, *body; } tree[] = {
        { "/latest/meta-data/instance-id", "i-0123456789abcdef0" },
        { "/latest/meta-data/instance-type", "m5.large" },
        { "/latest/meta-data/placement/region", "us-west-2" },
        { "/latest/meta-data/placement/availability-zone", "us-west-2a" },
        { "/latest/meta-data/mac", MAC0 },
        { "/latest/meta-data/network/interfaces/macs/", MAC0 "/\n" MAC1 "/" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/device-number", "1" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/network-card", "0" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/interface-id", "eni-0a1b2c3d4e5f60718" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/subnet-id", "subnet-0123456789abcdef0" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/subnet-ipv4-cidr-block", "10.0.1.0/24" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/vpc-ipv4-cidr-blocks", "10.0.0.0/16\n100.64.0.0/16" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/security-group-ids", "sg-0aaa\nsg-0bbb" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/local-ipv4s", "10.0.1.10\n10.0.1.11\n10.0.1.12" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/ipv4-prefix", "10.0.1.32/28\n10.0.1.48/28" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/ipv6s",
          "2600:1f14:abc:de00:8f2e:51a0:7c1b:3d2a\n2600:1f14:abc:de00::10" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/ipv6-prefix", "2600:1f14:abc:de00:1234::/80" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/subnet-ipv6-cidr-blocks", "2600:1f14:abc:de00::/64" },
        { "/latest/meta-data/network/interfaces/macs/" MAC1 "/vpc-ipv6-cidr-blocks", "2600:1f14:abc:de00::/56" },
        { "/latest/meta-data/ipv6", "2600:1f14:abc:de00:8f2e:51a0:7c1b:3d2a" },
        { "/latest/meta-data/network/interfaces/macs/" MAC0 "/device-number", "0" },
        { "/latest/meta-data/network/interfaces/macs/" MAC0 "/interface-id", "eni-0primary000000001" },
        { "/latest/meta-data/network/interfaces/macs/" MAC0 "/subnet-id", "subnet-0123456789abcdef0" },
        { "/latest/meta-data/network/interfaces/macs/" MAC0 "/subnet-ipv4-cidr-block", "10.0.1.0/24" },
        { "/latest/meta-data/network/interfaces/macs/" MAC0 "/local-ipv4s", "10.0.1.5" },
};

static void imds_handler(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        struct fake_imds *f = ud;
        rep->content_type = "text/plain";
        if (strcmp(req->url, "/latest/api/token") == 0) {
                f->puts++;
                unsigned ttl = (unsigned)atoi(req->imds_ttl);
                if (strcmp(req->method, "PUT") != 0 || ttl < 1 || ttl > 21600) {
                        rep->status = 400;
                        return;
                }
                snprintf(f->valid, sizeof f->valid, "tok-%d", ++f->tokens_issued);
                rep->body = f->valid;
                return;
        }
        f->gets++;
        if (f->revoke_next) {
                f->revoke_next = false;
                f->valid[0] = '\0';
        }
        if (!f->valid[0] || strcmp(req->imds_token, f->valid) != 0) {
                f->unauthorized++;
                rep->status = 401;
                return;
        }
        if (f->override_path && strcmp(req->url, f->override_path) == 0) {
                rep->body = f->override_body;
                return;
        }
        for (size_t i = 0; i < sizeof tree / sizeof *tree; i++)
                if (strcmp(req->url, tree[i].path) == 0) {
                        rep->body = tree[i].body;
                        return;
                }
        rep->status = 404;
        rep->body = "<?xml version=\"1.0\"?><html>404 - Not Found</html>";
}

static imds *start(struct fakesrv **srv, struct fake_imds *f, struct fakeclock *fc) {
        *srv = fakesrv_start(imds_handler, f);
        struct imds_options o = { .endpoint = fakesrv_url(*srv), .clock = fc ? &fc->clock : NULL, .token_ttl_s = 600 };
        imds *m = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(imds_new(&o, &m, &err) == 0, "%s", err.text);
        return m;
}

START_TEST(test_getters) {
        struct fake_imds f = { 0 };
        struct fakesrv *srv;
        imds *m = start(&srv, &f, NULL);
        char id[IMDS_ID_MAX], mac[IMDS_MAC_LEN];
        struct errmsg err = { 0 };
        ck_assert_int_eq(imds_instance_id(m, id, &err), 0);
        ck_assert_str_eq(id, "i-0123456789abcdef0");
        ck_assert_int_eq(imds_instance_type(m, id, &err), 0);
        ck_assert_str_eq(id, "m5.large");
        ck_assert_int_eq(imds_region(m, id, &err), 0);
        ck_assert_str_eq(id, "us-west-2");
        ck_assert_int_eq(imds_availability_zone(m, id, &err), 0);
        ck_assert_str_eq(id, "us-west-2a");
        ck_assert_int_eq(imds_primary_mac(m, mac, &err), 0);
        ck_assert_str_eq(mac, MAC0);
        char (*macs)[IMDS_MAC_LEN] = NULL;
        size_t n = 0;
        ck_assert_int_eq(imds_macs(m, &macs, &n, &err), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_str_eq(macs[1], MAC1);
        free(macs);
        ck_assert_int_eq(f.puts, 1);    /* one token for everything */
        imds_free(m);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_eni) {
        struct fake_imds f = { 0 };
        struct fakesrv *srv;
        imds *m = start(&srv, &f, NULL);
        struct imds_eni *e = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(imds_eni(m, "02:3F:AA:BB:CC:01", &e, &err) == 0, "%s", err.text);
        ck_assert_str_eq(e->mac, MAC1);
        ck_assert_int_eq(e->device_number, 1);
        ck_assert_int_eq(e->network_card, 0);
        ck_assert_str_eq(e->interface_id, "eni-0a1b2c3d4e5f60718");
        ck_assert_str_eq(e->subnet_id, "subnet-0123456789abcdef0");
        ck_assert_str_eq(inet_ntoa(e->subnet_cidr.addr), "10.0.1.0");
        ck_assert_int_eq(e->subnet_cidr.len, 24);
        ck_assert_uint_eq(e->n_vpc_cidrs, 2);
        ck_assert_str_eq(inet_ntoa(e->vpc_cidrs[1].addr), "100.64.0.0");
        ck_assert_uint_eq(e->n_security_groups, 2);
        ck_assert_str_eq(e->security_groups[1], "sg-0bbb");
        ck_assert_uint_eq(e->n_local_ipv4s, 3);
        ck_assert_str_eq(inet_ntoa(e->local_ipv4s[2]), "10.0.1.12");
        ck_assert_uint_eq(e->n_prefixes, 2);
        ck_assert_int_eq(e->prefixes[0].len, 28);
        imds_eni_free(e);
        /* The primary ENI: no ipv4-prefix, network-card, SGs or VPC CIDRs (404 = none). */
        ck_assert_int_eq(imds_eni(m, MAC0, &e, &err), 0);
        ck_assert_uint_eq(e->n_prefixes, 0);
        ck_assert_int_eq(e->network_card, 0);
        ck_assert_uint_eq(e->n_local_ipv4s, 1);
        imds_eni_free(e);
        /* An unknown MAC: its device-number is a 404, which is not optional. */
        e = NULL;
        ck_assert_int_eq(imds_eni(m, "02:00:00:00:00:99", &e, &err), -ENOENT);
        ck_assert_ptr_null(e);
        ck_assert_int_eq(imds_eni(m, "not-a-mac", &e, &err), -EINVAL);
        imds_free(m);
        fakesrv_stop(srv);
}
END_TEST

static const char *ntop6(const struct in6_addr *a) {
        static char buf[INET6_ADDRSTRLEN];
        return inet_ntop(AF_INET6, a, buf, sizeof buf);
}

/* IPv6 keys as EC2 serves them; all absent (404) on an ENI without IPv6, which is "none", not an error. */
START_TEST(test_eni6) {
        struct fake_imds f = { 0 };
        struct fakesrv *srv;
        imds *m = start(&srv, &f, NULL);
        struct imds_eni6 *e = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(imds_eni6(m, MAC1, &e, &err) == 0, "%s", err.text);
        ck_assert_uint_eq(e->n_ipv6s, 2);
        ck_assert_str_eq(ntop6(&e->ipv6s[1]), "2600:1f14:abc:de00::10");
        ck_assert_uint_eq(e->n_prefixes, 1);
        ck_assert_str_eq(ntop6(&e->prefixes[0].addr), "2600:1f14:abc:de00:1234::");
        ck_assert_int_eq(e->prefixes[0].len, 80);
        ck_assert_str_eq(ntop6(&e->subnet_cidr.addr), "2600:1f14:abc:de00::");
        ck_assert_int_eq(e->subnet_cidr.len, 64);
        ck_assert_uint_eq(e->n_vpc_cidrs, 1);
        ck_assert_int_eq(e->vpc_cidrs[0].len, 56);
        imds_eni6_free(e);
        ck_assert_int_eq(imds_eni6(m, MAC0, &e, &err), 0);
        ck_assert_uint_eq(e->n_ipv6s + e->n_prefixes + e->n_vpc_cidrs, 0);
        ck_assert_int_eq(e->subnet_cidr.len, 0);
        imds_eni6_free(e);
        struct in6_addr a;
        ck_assert_int_eq(imds_ipv6(m, &a, &err), 0);
        ck_assert_str_eq(ntop6(&a), "2600:1f14:abc:de00:8f2e:51a0:7c1b:3d2a");
        f.override_path = "/latest/meta-data/network/interfaces/macs/" MAC1 "/ipv6-prefix";
        f.override_body = "2600:1f14:abc:de00:1234::1/80";           /* host bits set: not a prefix */
        e = NULL;
        ck_assert_int_eq(imds_eni6(m, MAC1, &e, &err), -EBADMSG);
        ck_assert_ptr_null(e);
        ck_assert_ptr_nonnull(strstr(err.text, "ipv6-prefix"));
        imds_free(m);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_token_refetched_on_401_and_expiry) {
        struct fake_imds f = { 0 };
        struct fakesrv *srv;
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        imds *m = start(&srv, &f, &fc);
        char id[IMDS_ID_MAX];
        ck_assert_int_eq(imds_instance_id(m, id, NULL), 0);
        ck_assert_int_eq(f.puts, 1);
        f.revoke_next = true;
        ck_assert_int_eq(imds_instance_id(m, id, NULL), 0);
        ck_assert_int_eq(f.unauthorized, 1);
        ck_assert_int_eq(f.puts, 2);
        /* Near the TTL (600 s, refreshed 60 s early) a new token is fetched before use. */
        fc.now_ns += 530ull * 1000000000ull;
        ck_assert_int_eq(imds_instance_id(m, id, NULL), 0);
        ck_assert_int_eq(f.puts, 2);
        fc.now_ns += 20ull * 1000000000ull;
        ck_assert_int_eq(imds_instance_id(m, id, NULL), 0);
        ck_assert_int_eq(f.puts, 3);
        ck_assert_int_eq(f.unauthorized, 1);
        imds_free(m);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_malformed_bodies_are_errors) {
        struct fake_imds f = { .override_path = "/latest/meta-data/instance-id", .override_body = "i-123 \n" };
        struct fakesrv *srv;
        imds *m = start(&srv, &f, NULL);
        char id[IMDS_ID_MAX] = "untouched";
        struct errmsg err = { 0 };
        ck_assert_int_eq(imds_instance_id(m, id, &err), -EBADMSG);
        ck_assert_str_eq(id, "untouched");
        f.override_path = "/latest/meta-data/network/interfaces/macs/" MAC1 "/local-ipv4s";
        f.override_body = "10.0.1.10\n\n10.0.1.11";
        struct imds_eni *e = NULL;
        ck_assert_int_eq(imds_eni(m, MAC1, &e, &err), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(err.text, "local-ipv4s"));
        imds_free(m);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_endpoint_from_env) {
        struct fake_imds f = { 0 };
        struct fakesrv *srv = fakesrv_start(imds_handler, &f);
        char ep[80];
        snprintf(ep, sizeof ep, "%s/", fakesrv_url(srv));
        setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", ep, 1);
        imds *m = NULL;
        ck_assert_int_eq(imds_new(NULL, &m, NULL), 0);
        ck_assert_str_eq(imds_endpoint(m), fakesrv_url(srv));
        char id[IMDS_ID_MAX];
        ck_assert_int_eq(imds_region(m, id, NULL), 0);
        imds_free(m);
        unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
        ck_assert_int_eq(imds_new(NULL, &m, NULL), 0);
        ck_assert_str_eq(imds_endpoint(m), "http://169.254.169.254");
        imds_free(m);
        ck_assert_int_eq(imds_new(&(struct imds_options){ .endpoint = "file:///etc" }, &m, NULL), -EINVAL);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_parsers) {
        char id[IMDS_ID_MAX], mac[IMDS_MAC_LEN];
        unsigned u;
        ck_assert_int_eq(imds_parse_id("i-0abc", 6, "i-", id), 0);
        ck_assert_int_eq(imds_parse_id("i-0abc\n", 7, "i-", id), 0);
        ck_assert_int_eq(imds_parse_id("i-0abc\n\n", 8, "i-", id), -EBADMSG);
        ck_assert_int_eq(imds_parse_id("x-0abc", 6, "i-", id), -EBADMSG);
        ck_assert_int_eq(imds_parse_id("i-", 2, "i-", id), -EBADMSG);
        ck_assert_int_eq(imds_parse_id("i-a b", 5, "i-", id), -EBADMSG);
        ck_assert_int_eq(imds_parse_id("", 0, NULL, id), -EBADMSG);
        ck_assert_int_eq(imds_parse_mac("02:00:00:00:00:0A", 17, mac), 0);
        ck_assert_str_eq(mac, "02:00:00:00:00:0a");
        ck_assert_int_eq(imds_parse_mac("02:00:00:00:00:0", 16, mac), -EBADMSG);
        ck_assert_int_eq(imds_parse_mac("02-00-00-00-00-0a", 17, mac), -EBADMSG);
        ck_assert_int_eq(imds_parse_mac("02:00:00:00:00:0g", 17, mac), -EBADMSG);
        ck_assert_int_eq(imds_parse_uint("12", 2, 100, &u), 0);
        ck_assert_uint_eq(u, 12);
        ck_assert_int_eq(imds_parse_uint("012", 3, 100, &u), -EBADMSG);
        ck_assert_int_eq(imds_parse_uint("-1", 2, 100, &u), -EBADMSG);
        ck_assert_int_eq(imds_parse_uint("101", 3, 100, &u), -ERANGE);
        ck_assert_int_eq(imds_parse_uint("99999999999", 11, ~0u, &u), -EBADMSG);
        struct in_addr *ips;
        size_t n;
        ck_assert_int_eq(imds_parse_ipv4_list("", 0, &ips, &n), 0);
        ck_assert_uint_eq(n, 0);
        free(ips);
        ck_assert_int_eq(imds_parse_ipv4_list("1.2.3.4\n5.6.7.8\n", 16, &ips, &n), 0);
        ck_assert_uint_eq(n, 2);
        free(ips);
        static const char *bad_ips[] = { "1.2.3", "1.2.3.256", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\r", "01.2.3.4",
                                         "1.2.3.4\n\n5.6.7.8", "::1" };
        for (size_t i = 0; i < sizeof bad_ips / sizeof *bad_ips; i++)
                ck_assert_msg(imds_parse_ipv4_list(bad_ips[i], strlen(bad_ips[i]), &ips, &n) == -EBADMSG, "%s", bad_ips[i]);
        struct imds_cidr *c;
        ck_assert_int_eq(imds_parse_cidr_list("10.0.0.0/16\n10.1.0.16/28", 24, &c, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(c[1].len, 28);
        free(c);
        static const char *bad_cidrs[] = { "10.0.0.1/24", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0", "10.0.0.0/08", "/8" };
        for (size_t i = 0; i < sizeof bad_cidrs / sizeof *bad_cidrs; i++)
                ck_assert_msg(imds_parse_cidr_list(bad_cidrs[i], strlen(bad_cidrs[i]), &c, &n) == -EBADMSG, "%s", bad_cidrs[i]);
        char (*ids)[IMDS_ID_MAX];
        ck_assert_int_eq(imds_parse_id_list("sg-1\nsg-2", 9, "sg-", &ids, &n), 0);
        ck_assert_uint_eq(n, 2);
        free(ids);
        ck_assert_int_eq(imds_parse_id_list("sg-1\neni-2", 10, "sg-", &ids, &n), -EBADMSG);
        struct in6_addr *v6;
        ck_assert_int_eq(imds_parse_ipv6_list("2600::1\nfe80::1\n", 16, &v6, &n), 0);
        ck_assert_uint_eq(n, 2);
        free(v6);
        static const char *bad_v6[] = { "2600::1 ", "2600:::1", "1.2.3.4", "2600::1/64", "2600::1\n\nfe80::1" };
        for (size_t i = 0; i < sizeof bad_v6 / sizeof *bad_v6; i++)
                ck_assert_msg(imds_parse_ipv6_list(bad_v6[i], strlen(bad_v6[i]), &v6, &n) == -EBADMSG, "%s",
                              bad_v6[i]);
        struct imds_cidr6 *c6;
        ck_assert_int_eq(imds_parse_cidr6_list("2600:1f14:abc:de00::/56\n2600:1f14:abc:de00:1234::/80", 52, &c6, &n), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(c6[1].len, 80);
        free(c6);
        static const char *bad_c6[] = { "2600:1f14:abc:de01::/56", "2600::/129", "2600::", "2600::/", "10.0.0.0/8" };
        for (size_t i = 0; i < sizeof bad_c6 / sizeof *bad_c6; i++)
                ck_assert_msg(imds_parse_cidr6_list(bad_c6[i], strlen(bad_c6[i]), &c6, &n) == -EBADMSG, "%s", bad_c6[i]);
}
END_TEST

int main(void) {
        Suite *s = suite_create("imds");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_getters);
        tcase_add_test(tc, test_eni);
        tcase_add_test(tc, test_eni6);
        tcase_add_test(tc, test_token_refetched_on_401_and_expiry);
        tcase_add_test(tc, test_malformed_bodies_are_errors);
        tcase_add_test(tc, test_endpoint_from_env);
        tcase_add_test(tc, test_parsers);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

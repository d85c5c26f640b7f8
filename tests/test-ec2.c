/*
 * test-ec2: the EC2 response decoder on recorded responses of every action
 * (success, each error shape, pagination) and on hostile input, then the
 * client against a scripted local server: request format, signing headers,
 * retries (what is and is not retried, backoff bounds, ClientToken reuse),
 * endpoint choice, response bounds and the rate limiter.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ec2.h"
#include "fakeclock.h"
#include "fakesrv.h"
#include "testlib.h"

#define XML "text/xml;charset=UTF-8"

static char *fixture(const char *name, size_t *len) {
        char path[1024];
        const char *dir = getenv("CLOUD_FIXTURES");
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/cloud/xml", name);
        FILE *f = fopen(path, "r");
        ck_assert_msg(f, "cannot open %s", path);
        static char buf[65536];
        *len = fread(buf, 1, sizeof buf - 1, f);
        buf[*len] = '\0';
        fclose(f);
        return buf;
}

static struct ec2_result *parse_ok(enum ec2_action a, const char *name) {
        size_t len;
        char *body = fixture(name, &len);
        struct ec2_result *r = NULL;
        struct ec2_error e;
        int k = ec2_parse_response(a, 200, XML, body, len, &r, &e);
        ck_assert_msg(k == 0, "%s: %d %s", name, k, e.msg.text);
        ck_assert_int_eq(r->action, a);
        return r;
}

START_TEST(test_parse_describe_enis) {
        struct ec2_result *r = parse_ok(EC2_DESCRIBE_NETWORK_INTERFACES, "describe-network-interfaces.xml");
        ck_assert_str_eq(r->request_id, "5c1d8a2e-1f0e-4c47-9e0b-2f7b0e1c1a11");
        ck_assert_str_eq(r->next_token, "eyJ2IjoyLCJjIjoiZm9vIn0=");
        ck_assert_uint_eq(r->n_enis, 2);
        const struct ec2_eni *e = &r->enis[0];
        ck_assert_str_eq(e->id, "eni-0a1b2c3d4e5f60718");
        ck_assert_str_eq(e->mac, "02:3f:aa:bb:cc:01");
        ck_assert_str_eq(e->status, "in-use");
        ck_assert_str_eq(e->subnet_id, "subnet-0123456789abcdef0");
        ck_assert_str_eq(e->vpc_id, "vpc-0fedcba9876543210");
        ck_assert_str_eq(e->description, "aws-K8S-i-0123456789abcdef0");
        ck_assert_str_eq(e->primary_ip, "10.0.1.10");
        ck_assert_uint_eq(e->n_private_ips, 3);
        ck_assert(e->private_ips[0].primary);
        ck_assert(!e->private_ips[2].primary);
        ck_assert_str_eq(e->private_ips[2].address, "10.0.1.12");
        ck_assert_uint_eq(e->n_prefixes, 2);
        ck_assert_str_eq(e->prefixes[1], "10.0.1.48/28");
        ck_assert_uint_eq(e->n_security_groups, 2);
        ck_assert_str_eq(e->security_groups[1], "sg-0bbb");
        ck_assert(e->attached);
        ck_assert_str_eq(e->attachment.id, "eni-attach-0123456789abcdef0");
        ck_assert_int_eq(e->attachment.device_index, 1);
        ck_assert_int_eq(e->attachment.network_card, 0);
        ck_assert_str_eq(e->attachment.instance_id, "i-0123456789abcdef0");
        ck_assert_str_eq(e->attachment.status, "attached");
        ck_assert(e->attachment.delete_on_termination);
        ck_assert_uint_eq(e->n_tags, 2);
        ck_assert_str_eq(e->tags[1].value, "test & prod");
        e = &r->enis[1];
        ck_assert_str_eq(e->status, "available");
        ck_assert(!e->attached);
        ck_assert_str_eq(e->description, "");
        ck_assert_uint_eq(e->n_tags, 0);
        ck_assert_uint_eq(e->n_private_ips, 1);
        ec2_result_free(r);
}
END_TEST

START_TEST(test_parse_describe_enis_moto_last_page) {
        struct ec2_result *r = parse_ok(EC2_DESCRIBE_NETWORK_INTERFACES, "describe-network-interfaces-moto.xml");
        ck_assert_ptr_null(r->next_token);
        ck_assert_str_eq(r->request_id, "request-id");
        ck_assert_uint_eq(r->n_enis, 1);
        ck_assert_str_eq(r->enis[0].id, "eni-6144562936343bb32");
        ck_assert(!r->enis[0].attachment.delete_on_termination);
        ck_assert_int_eq(r->enis[0].attachment.device_index, 1);
        ec2_result_free(r);
}
END_TEST

START_TEST(test_parse_describe_instances) {
        struct ec2_result *r = parse_ok(EC2_DESCRIBE_INSTANCES, "describe-instances.xml");
        ck_assert_uint_eq(r->n_instances, 1);
        const struct ec2_instance *in = &r->instances[0];
        ck_assert_str_eq(in->id, "i-0123456789abcdef0");
        ck_assert_str_eq(in->type, "m5.large");
        ck_assert_str_eq(in->state, "running");
        ck_assert_str_eq(in->availability_zone, "us-west-2a");
        ck_assert_str_eq(in->subnet_id, "subnet-0123456789abcdef0");
        ck_assert_str_eq(in->private_ip, "10.0.1.10");
        ck_assert_uint_eq(in->n_enis, 2);
        ck_assert_str_eq(in->enis[0].id, "eni-0primary000000001");
        ck_assert_int_eq(in->enis[0].attachment.device_index, 0);
        ck_assert_ptr_null(in->enis[0].attachment.instance_id);
        ck_assert_int_eq(in->enis[1].attachment.device_index, 2);
        ck_assert_int_eq(in->enis[1].attachment.network_card, 1);
        ck_assert_str_eq(in->enis[1].prefixes[0], "10.0.2.0/28");
        /* The instance's own groupSet must not leak into an ENI. */
        ck_assert_uint_eq(in->enis[1].n_security_groups, 0);
        ec2_result_free(r);
}
END_TEST

START_TEST(test_parse_instance_types) {
        struct ec2_result *r = parse_ok(EC2_DESCRIBE_INSTANCE_TYPES, "describe-instance-types.xml");
        ck_assert_uint_eq(r->n_types, 2);
        const struct ec2_instance_type *t = &r->types[0];
        ck_assert_str_eq(t->type, "m5.large");
        ck_assert_str_eq(t->hypervisor, "nitro");
        ck_assert(!t->bare_metal);
        ck_assert_int_eq(t->max_enis, 3);
        ck_assert_int_eq(t->ipv4_per_eni, 10);
        ck_assert(t->ipv6_supported);
        ck_assert_uint_eq(t->n_cards, 1);
        t = &r->types[1];
        ck_assert_uint_eq(t->n_cards, 4);
        ck_assert_int_eq(t->cards[3].index, 3);
        ck_assert_int_eq(t->cards[3].max_enis, 15);
        ck_assert_int_eq(t->max_enis, 60);
        ec2_result_free(r);
}
END_TEST

START_TEST(test_parse_subnets) {
        struct ec2_result *r = parse_ok(EC2_DESCRIBE_SUBNETS, "describe-subnets.xml");
        ck_assert_uint_eq(r->n_subnets, 2);
        ck_assert_str_eq(r->subnets[0].cidr, "10.0.1.0/24");
        ck_assert_int_eq(r->subnets[0].available_ips, 247);
        ck_assert_str_eq(r->subnets[0].tags[0].key, "kubernetes.io/role/cni");
        ck_assert_int_eq(r->subnets[1].available_ips, -10);
        ck_assert_str_eq(r->subnets[1].availability_zone, "us-west-2b");
        ec2_result_free(r);
}
END_TEST

START_TEST(test_parse_create_attach_assign) {
        struct ec2_result *r = parse_ok(EC2_CREATE_NETWORK_INTERFACE, "create-network-interface.xml");
        ck_assert_uint_eq(r->n_enis, 1);
        ck_assert_str_eq(r->enis[0].id, "eni-0c000000000000003");
        ck_assert_str_eq(r->enis[0].prefixes[0], "10.0.1.64/28");
        ck_assert_str_eq(r->enis[0].tags[0].key, "node.k8s.amazonaws.com/instance_id");
        ec2_result_free(r);
        r = parse_ok(EC2_ATTACH_NETWORK_INTERFACE, "attach-network-interface.xml");
        ck_assert_str_eq(r->attachment_id, "eni-attach-0d000000000000004");
        ck_assert_int_eq(r->network_card, 1);
        ec2_result_free(r);
        r = parse_ok(EC2_ASSIGN_PRIVATE_IP_ADDRESSES, "assign-private-ip-addresses.xml");
        ck_assert_str_eq(r->eni_id, "eni-0a1b2c3d4e5f60718");
        ck_assert_uint_eq(r->n_ips, 2);
        ck_assert_str_eq(r->ips[1], "10.0.1.14");
        ck_assert_uint_eq(r->n_prefixes, 0);
        ec2_result_free(r);
        r = parse_ok(EC2_ASSIGN_PRIVATE_IP_ADDRESSES, "assign-prefixes.xml");
        ck_assert_uint_eq(r->n_prefixes, 1);
        ck_assert_str_eq(r->prefixes[0], "10.0.1.80/28");
        ec2_result_free(r);
}
END_TEST

/* IPv6 (AWS's documented response shapes, 2016-11-15): describes, Assign and Unassign, both forms. */
START_TEST(test_parse_ipv6) {
        struct ec2_result *r = parse_ok(EC2_DESCRIBE_NETWORK_INTERFACES, "describe-network-interfaces-ipv6.xml");
        ck_assert_uint_eq(r->n_enis, 1);
        const struct ec2_eni *e = &r->enis[0];
        ck_assert_uint_eq(e->n_ipv6s, 1);
        ck_assert_str_eq(e->ipv6s[0], "2600:1f14:abc:de00:8f2e:51a0:7c1b:3d2a");
        ck_assert_uint_eq(e->n_ipv6_prefixes, 2);
        ck_assert_str_eq(e->ipv6_prefixes[0], "2600:1f14:abc:de00:1234::/80");
        ck_assert_str_eq(e->ipv6_prefixes[1], "2600:1f14:abc:de00:5678::/80");
        ck_assert_uint_eq(e->n_private_ips, 1);
        ck_assert_uint_eq(e->n_prefixes, 0);
        ck_assert_str_eq(e->primary_ip, "10.0.1.10");   /* the ENI's own <ipv6Address> changes nothing */
        ec2_result_free(r);
        r = parse_ok(EC2_DESCRIBE_NETWORK_INTERFACES, "describe-network-interfaces.xml");
        ck_assert_uint_eq(r->enis[0].n_ipv6s + r->enis[0].n_ipv6_prefixes, 0);   /* <ipv6AddressesSet/> */
        ec2_result_free(r);
        r = parse_ok(EC2_DESCRIBE_SUBNETS, "describe-subnets-ipv6.xml");
        ck_assert_uint_eq(r->subnets[0].n_ipv6_cidrs, 1);       /* the disassociated one is not listed */
        ck_assert_str_eq(r->subnets[0].ipv6_cidrs[0], "2600:1f14:abc:de00::/64");
        ck_assert_str_eq(r->subnets[0].cidr, "10.0.1.0/24");
        ec2_result_free(r);
        r = parse_ok(EC2_ASSIGN_IPV6_ADDRESSES, "assign-ipv6-prefix.xml");
        ck_assert_str_eq(r->eni_id, "eni-0a1b2c3d4e5f60718");
        ck_assert_uint_eq(r->n_prefixes, 1);
        ck_assert_str_eq(r->prefixes[0], "2600:1f14:abc:de00:1234::/80");
        ck_assert_uint_eq(r->n_ips, 0);
        ec2_result_free(r);
        r = parse_ok(EC2_ASSIGN_IPV6_ADDRESSES, "assign-ipv6-addresses.xml");
        ck_assert_uint_eq(r->n_ips, 2);
        ck_assert_str_eq(r->ips[1], "2600:1f14:abc:de00:11::5");
        ck_assert_uint_eq(r->n_prefixes, 0);
        ec2_result_free(r);
        r = parse_ok(EC2_UNASSIGN_IPV6_ADDRESSES, "unassign-ipv6.xml");
        ck_assert_uint_eq(r->n_ips, 1);
        ck_assert_uint_eq(r->n_prefixes, 1);
        ck_assert_str_eq(r->prefixes[0], "2600:1f14:abc:de00:1234::/80");
        ec2_result_free(r);
        ck_assert_str_eq(ec2_action_name(EC2_ASSIGN_IPV6_ADDRESSES), "AssignIpv6Addresses");
        ck_assert_str_eq(ec2_action_name(EC2_UNASSIGN_IPV6_ADDRESSES), "UnassignIpv6Addresses");
}
END_TEST

START_TEST(test_parse_return_actions) {
        static const enum ec2_action acts[] = { EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE, EC2_UNASSIGN_PRIVATE_IP_ADDRESSES,
                                                EC2_DETACH_NETWORK_INTERFACE, EC2_DELETE_NETWORK_INTERFACE, EC2_CREATE_TAGS };
        for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
                const char *n = ec2_action_name(acts[i]);
                char body[512];
                struct ec2_result *r = NULL;
                struct ec2_error e;
                /* real EC2 */
                snprintf(body, sizeof body, "<%sResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">"
                         "<requestId>abc</requestId><return>true</return></%sResponse>", n, n);
                ck_assert_int_eq(ec2_parse_response(acts[i], 200, XML, body, strlen(body), &r, &e), 0);
                ck_assert_str_eq(r->request_id, "abc");
                r = ec2_result_free(r);
                /* moto: no <return> */
                snprintf(body, sizeof body, "<%sResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15\">"
                         "<requestId>request-id</requestId></%sResponse>", n, n);
                ck_assert_int_eq(ec2_parse_response(acts[i], 200, XML, body, strlen(body), &r, &e), 0);
                r = ec2_result_free(r);
                snprintf(body, sizeof body, "<%sResponse><return>false</return></%sResponse>", n, n);
                ck_assert_int_eq(ec2_parse_response(acts[i], 200, XML, body, strlen(body), &r, &e), -EBADMSG);
                /* another action's response is not this one's */
                ck_assert_int_eq(ec2_parse_response(acts[i], 200, XML, "<DescribeSubnetsResponse/>", 26, &r, &e), -EBADMSG);
        }
}
END_TEST

static int parse_error(const char *name, long status, struct ec2_error *e) {
        size_t len;
        char *body = fixture(name, &len);
        struct ec2_result *r = (void *)0x1;
        int k = ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, status, "text/xml", body, len, &r, e);
        ck_assert_ptr_eq(r, (void *)0x1);       /* untouched on failure */
        return k;
}

START_TEST(test_parse_errors) {
        struct ec2_error e;
        ck_assert_int_eq(parse_error("error-not-found.xml", 400, &e), -ENOENT);
        ck_assert_str_eq(e.code, "InvalidNetworkInterfaceID.NotFound");
        ck_assert_str_eq(e.request_id, "5d1b1e7a-0f5e-4bb0-8a8e-example");
        ck_assert_int_eq(e.http_status, 400);
        ck_assert(!e.retryable);
        ck_assert_ptr_nonnull(strstr(e.msg.text, "does not exist"));
        ck_assert_int_eq(parse_error("error-throttled.xml", 503, &e), -EAGAIN);
        ck_assert_str_eq(e.code, "RequestLimitExceeded");
        ck_assert(e.retryable);
        ck_assert_int_eq(parse_error("error-throttled.xml", 400, &e), -EAGAIN);
        ck_assert(e.retryable);
        ck_assert_int_eq(parse_error("error-moto-ns.xml", 400, &e), -ENOENT);
        ck_assert_str_eq(e.request_id, "request-id");
        ck_assert_int_eq(parse_error("error-iam-shape.xml", 403, &e), -EACCES);
        ck_assert_str_eq(e.code, "AccessDenied");
        ck_assert_str_eq(e.request_id, "4bd0e5b4-example");
}
END_TEST

START_TEST(test_parse_error_codes_and_shapes) {
        static const struct { const char *code; long status; int err; bool retry; } cases[] = {
                { "AuthFailure", 401, -EACCES, false }, { "UnauthorizedOperation", 403, -EACCES, false },
                { "AttachmentLimitExceeded", 400, -ENOSPC, false }, { "PrivateIpAddressLimitExceeded", 400, -ENOSPC, false },
                { "InsufficientFreeAddressesInSubnet", 400, -ENOSPC, false }, { "InvalidParameterValue", 400, -EINVAL, false },
                { "InvalidNetworkInterfaceId.Malformed", 400, -EINVAL, false }, { "Throttling", 400, -EAGAIN, true },
                { "InternalError", 500, -EIO, true }, { "Unavailable", 503, -EIO, true },
                { "OperationNotPermitted", 400, -EPERM, false }, { "SomethingNew", 400, -EREMOTEIO, false },
        };
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                char body[256];
                snprintf(body, sizeof body, "<Response><Errors><Error><Code>%s</Code><Message>m</Message></Error>"
                         "</Errors><RequestID>r</RequestID></Response>", cases[i].code);
                struct ec2_result *r = NULL;
                struct ec2_error e;
                ck_assert_int_eq(ec2_parse_response(EC2_CREATE_TAGS, cases[i].status, XML, body, strlen(body), &r, &e),
                                 cases[i].err);
                ck_assert_int_eq(e.retryable, cases[i].retry);
        }
        /* moto's unknown action: a 500 HTML page; ELB's 503 text: retryable, no code. */
        struct ec2_result *r = NULL;
        struct ec2_error e;
        const char *html = "<html><body>Internal Server Error</body></html>";
        ck_assert_int_eq(ec2_parse_response(EC2_CREATE_TAGS, 500, "text/html; charset=utf-8", html, strlen(html), &r, &e), -EIO);
        ck_assert(e.retryable);
        ck_assert_str_eq(e.code, "");
        /* a 400 without an error document */
        ck_assert_int_eq(ec2_parse_response(EC2_CREATE_TAGS, 400, XML, "<Nope/>", 7, &r, &e), -EREMOTEIO);
        ck_assert(!e.retryable);
        /* an error document with a 200 is not a success */
        const char *errdoc = "<Response><Errors><Error><Code>X</Code></Error></Errors></Response>";
        ck_assert_int_eq(ec2_parse_response(EC2_CREATE_TAGS, 200, XML, errdoc, strlen(errdoc), &r, &e), -EBADMSG);
        /* the NULL err is allowed */
        ck_assert_int_eq(ec2_parse_response(EC2_CREATE_TAGS, 404, XML, errdoc, strlen(errdoc), &r, NULL), -EREMOTEIO);
}
END_TEST

START_TEST(test_parse_hostile) {
        static const char *bodies[] = {
                "",
                "<DescribeNetworkInterfacesResponse>",                                  /* truncated */
                "<DescribeNetworkInterfacesResponse><networkInterfaceSet><item><networkInterfaceId>eni-1",
                "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>"
                "<DescribeNetworkInterfacesResponse>&lol2;</DescribeNetworkInterfacesResponse>",
                "<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><DescribeNetworkInterfacesResponse/>",
                "<DescribeNetworkInterfacesResponse><networkInterfaceSet><item><attachment><deviceIndex>x1"
                "</deviceIndex></attachment></item></networkInterfaceSet></DescribeNetworkInterfacesResponse>",
                "<DescribeNetworkInterfacesResponse><networkInterfaceSet><item><attachment><deviceIndex>99999999999999"
                "</deviceIndex></attachment></item></networkInterfaceSet></DescribeNetworkInterfacesResponse>",
                "<DescribeNetworkInterfacesResponse><networkInterfaceSet><item><privateIpAddressesSet><item><primary>yes"
                "</primary></item></privateIpAddressesSet></item></networkInterfaceSet></DescribeNetworkInterfacesResponse>",
                "<DescribeNetworkInterfacesResponse>\xff\xfe</DescribeNetworkInterfacesResponse>",
                "<a><b></a></b>",
                "not xml at all",
        };
        for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
                struct ec2_result *r = NULL;
                struct ec2_error e;
                int k = ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, 200, XML, bodies[i], strlen(bodies[i]), &r, &e);
                ck_assert_msg(k == -EBADMSG, "body %zu: %d", i, k);
                ck_assert_ptr_null(r);
                ck_assert(!e.retryable);
        }
        /* Wrong content type on a 200 */
        struct ec2_result *r = NULL;
        ck_assert_int_eq(ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, 200, "application/json", "{}", 2, &r, NULL), -EBADMSG);
        ck_assert_int_eq(ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, 200, NULL, "<x/>", 4, &r, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_parse_bounds) {
        /* Depth beyond the walker's limit, an oversized text, an ENI with 100k private IPs. */
        size_t cap = 8u << 20;
        char *b = malloc(cap);
        size_t n = (size_t)sprintf(b, "<DescribeNetworkInterfacesResponse>");
        for (int i = 0; i < 40; i++)
                n += (size_t)sprintf(b + n, "<x>");
        for (int i = 0; i < 40; i++)
                n += (size_t)sprintf(b + n, "</x>");
        n += (size_t)sprintf(b + n, "</DescribeNetworkInterfacesResponse>");
        struct ec2_result *r = NULL;
        struct ec2_error e;
        ck_assert_int_eq(ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, 200, XML, b, n, &r, &e), -E2BIG);
        n = (size_t)sprintf(b, "<DescribeNetworkInterfacesResponse><nextToken>");
        memset(b + n, 'A', 100000);
        n += 100000;
        n += (size_t)sprintf(b + n, "</nextToken></DescribeNetworkInterfacesResponse>");
        ck_assert_int_eq(ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, 200, XML, b, n, &r, &e), -E2BIG);
        n = (size_t)sprintf(b, "<DescribeNetworkInterfacesResponse><networkInterfaceSet><item><privateIpAddressesSet>");
        for (int i = 0; i < 100000; i++)
                n += (size_t)sprintf(b + n, "<item><privateIpAddress>10.%d.%d.%d</privateIpAddress></item>",
                                     i >> 16, (i >> 8) & 255, i & 255);
        n += (size_t)sprintf(b + n, "</privateIpAddressesSet></item></networkInterfaceSet></DescribeNetworkInterfacesResponse>");
        ck_assert_int_eq(ec2_parse_response(EC2_DESCRIBE_NETWORK_INTERFACES, 200, XML, b, n, &r, &e), 0);
        ck_assert_uint_eq(r->enis[0].n_private_ips, 100000);
        ck_assert_str_eq(r->enis[0].private_ips[99999].address, "10.1.134.159");
        ec2_result_free(r);
        free(b);
}
END_TEST

/* --- the client against a scripted server -------------------------------- */

struct script {
        int n;                          /* requests seen */
        int fail_first;                 /* reply with `fail_status`/`fail_body` this many times */
        int fail_status;
        const char *fail_body;
        const char *fail_type;
        const char *ok_body;
        size_t ok_len;
};

static void scripted(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        struct script *s = ud;
        (void)req;
        if (s->n++ < s->fail_first) {
                rep->status = s->fail_status;
                rep->body = s->fail_body;
                rep->content_type = s->fail_type;
                return;
        }
        rep->body = s->ok_body;
        rep->len = s->ok_len;
}

static ec2_client *client_for(struct fakesrv *srv, struct fakeclock *fc, ratelimit *rl) {
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
        setenv("AWS_SESSION_TOKEN", "session-token-xyz", 1);
        struct ec2_options o = { .region = "us-west-2", .endpoint = fakesrv_url(srv), .clock = &fc->clock,
                                 .limits = rl, .seed = 42 };
        ec2_client *c = NULL;
        struct errmsg err = { 0 };
        ck_assert_msg(ec2_client_new(&o, &c, &err) == 0, "%s", err.text);
        return c;
}

static const char *throttle_body =
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
        "</Error></Errors><RequestID>t</RequestID></Response>";

START_TEST(test_client_request_format_and_signing) {
        size_t len;
        struct script s = { .ok_body = fixture("create-network-interface.xml", &len) };
        s.ok_body = strdup(s.ok_body);
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1440938160);
        ec2_client *c = client_for(srv, &fc, NULL);
        const char *sgs[] = { "sg-0aaa", "sg-0bbb" };
        struct ec2_tag tags[] = { { "node.k8s.amazonaws.com/instance_id", "i-0123" }, { "k", "v w" } };
        struct ec2_create_eni q = { .subnet_id = "subnet-1", .security_groups = sgs, .n_security_groups = 2,
                                    .description = "aws-K8S-i-0123", .tags = tags, .n_tags = 2,
                                    .secondary_ip_count = 9, .client_token = "tok-1" };
        struct ec2_result *r = NULL;
        struct ec2_error e;
        ck_assert_int_eq(ec2_create_eni(c, &q, &r, &e), 0);
        ck_assert_str_eq(r->enis[0].id, "eni-0c000000000000003");
        ck_assert_uint_eq(e.attempts, 1);
        struct fakesrv_req req;
        fakesrv_request(srv, 0, &req);
        ck_assert_str_eq(req.method, "POST");
        ck_assert_str_eq(req.url, "/");
        ck_assert_str_eq(req.body,
                "Action=CreateNetworkInterface&Version=2016-11-15&SubnetId=subnet-1&SecurityGroupId.1=sg-0aaa"
                "&SecurityGroupId.2=sg-0bbb&Description=aws-K8S-i-0123&TagSpecification.1.ResourceType=network-interface"
                "&TagSpecification.1.Tag.1.Key=node.k8s.amazonaws.com%2Finstance_id&TagSpecification.1.Tag.1.Value=i-0123"
                "&TagSpecification.1.Tag.2.Key=k&TagSpecification.1.Tag.2.Value=v+w"
                "&SecondaryPrivateIpAddressCount=9&ClientToken=tok-1");
        ck_assert_str_eq(req.amz_date, "20150830T123601Z");  /* the fake clock's wall time */
        ck_assert_str_eq(req.security_token, "session-token-xyz");
        ck_assert_str_eq(req.content_type, "application/x-www-form-urlencoded; charset=utf-8");
        ck_assert_ptr_nonnull(strstr(req.authorization, "Credential=AKIDEXAMPLE/20150830/us-west-2/ec2/aws4_request, "
                                                         "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="));
        ec2_result_free(r);
        ec2_client_free(c);
        fakesrv_stop(srv);
        free((void *)s.ok_body);
}
END_TEST

/* The IPv6 calls' forms, by the botocore model's serialized names. */
START_TEST(test_client_ipv6_request_forms) {
        size_t len;
        struct script s = { .ok_body = strdup(fixture("assign-ipv6-prefix.xml", &len)) };
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1440938160);
        ec2_client *c = client_for(srv, &fc, NULL);
        struct ec2_result *r = NULL;
        struct ec2_error e;
        ck_assert_int_eq(ec2_assign_ipv6(c, "eni-1", 0, 1, &r, &e), 0);
        ck_assert_str_eq(r->prefixes[0], "2600:1f14:abc:de00:1234::/80");
        ec2_result_free(r);
        ck_assert_int_eq(ec2_assign_ipv6(c, "eni-1", 2, 0, NULL, &e), 0);
        const char *pfx[] = { "2600:1f14:abc:de00:1234::/80" }, *ips[] = { "2600:1f14:abc:de00::5", "2600:1f14:abc:de00::6" };
        ck_assert_int_eq(ec2_assign_ipv6_items(c, "eni-1", pfx, 1, true, NULL, &e), 0);
        free((void *)s.ok_body);
        s.ok_body = strdup(fixture("unassign-ipv6.xml", &len));  /* the server answers one request at a time */
        ck_assert_int_eq(ec2_unassign_ipv6(c, "eni-1", ips, 2, false, NULL, &e), 0);
        ck_assert_int_eq(ec2_unassign_ipv6(c, "eni-1", pfx, 1, true, NULL, &e), 0);
        static const char *const want[] = {
                "Action=AssignIpv6Addresses&Version=2016-11-15&NetworkInterfaceId=eni-1&Ipv6PrefixCount=1",
                "Action=AssignIpv6Addresses&Version=2016-11-15&NetworkInterfaceId=eni-1&Ipv6AddressCount=2",
                "Action=AssignIpv6Addresses&Version=2016-11-15&NetworkInterfaceId=eni-1"
                "&Ipv6Prefix.1=2600%3A1f14%3Aabc%3Ade00%3A1234%3A%3A%2F80",
                "Action=UnassignIpv6Addresses&Version=2016-11-15&NetworkInterfaceId=eni-1"
                "&Ipv6Addresses.1=2600%3A1f14%3Aabc%3Ade00%3A%3A5&Ipv6Addresses.2=2600%3A1f14%3Aabc%3Ade00%3A%3A6",
                "Action=UnassignIpv6Addresses&Version=2016-11-15&NetworkInterfaceId=eni-1"
                "&Ipv6Prefix.1=2600%3A1f14%3Aabc%3Ade00%3A1234%3A%3A%2F80",
        };
        for (unsigned i = 0; i < 5; i++) {
                struct fakesrv_req req;
                fakesrv_request(srv, i, &req);
                ck_assert_str_eq(req.body, want[i]);
        }
        /* neither or both counts, no items: refused before any request */
        ck_assert_int_eq(ec2_assign_ipv6(c, "eni-1", 0, 0, NULL, &e), -EINVAL);
        ck_assert_int_eq(ec2_assign_ipv6(c, "eni-1", 1, 1, NULL, &e), -EINVAL);
        ck_assert_int_eq(ec2_unassign_ipv6(c, "eni-1", ips, 0, false, NULL, &e), -EINVAL);
        ck_assert_uint_eq(fakesrv_count(srv), 5);
        ec2_client_free(c);
        fakesrv_stop(srv);
        free((void *)s.ok_body);
}
END_TEST

START_TEST(test_client_retries_throttling_with_same_client_token) {
        size_t len;
        struct script s = { .fail_first = 3, .fail_status = 503, .fail_body = throttle_body };
        s.ok_body = strdup(fixture("create-network-interface.xml", &len));
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ratelimit *rl;
        struct ratelimit_options ro = { .share = 1, .clock = &fc.clock };
        ck_assert_int_eq(ratelimit_new(&ro, &rl), 0);
        ec2_client *c = client_for(srv, &fc, rl);
        struct ec2_create_eni q = { .subnet_id = "subnet-1", .prefix_count = 1 };
        struct ec2_result *r = NULL;
        struct ec2_error e;
        ck_assert_int_eq(ec2_create_eni(c, &q, &r, &e), 0);
        ck_assert_uint_eq(e.attempts, 4);
        ck_assert_uint_eq(fakesrv_count(srv), 4);
        /* Full jitter: each pause is within [0, min(cap, base * 2^n)]. Each
         * throttle also halved the limiter's rate as it was then (5/s, then
         * about 2.55 and 1.41/s), dropped its saved tokens and let it climb
         * back with time (linearly over 20 s), so after each pause the limiter
         * waits out the rest of a token's time from the cut: pause + wait =
         * 0.39608, 0.74402, 1.19734 s (ratelimit.c's integral; test-ratelimit
         * checks it). */
        ck_assert_uint_eq(fc.sleeps, 6);
        static const uint64_t cap_ns[] = { 100000000ull, 200000000ull, 400000000ull };
        static const uint64_t interval_ns[] = { 396078000ull, 744022000ull, 1197341000ull };
        for (unsigned i = 0; i < 3; i++) {
                ck_assert_uint_le(fc.sleep_log[2 * i], cap_ns[i]);
                uint64_t interval = fc.sleep_log[2 * i] + fc.sleep_log[2 * i + 1];
                ck_assert_uint_ge(interval + 1000000, interval_ns[i]);
                ck_assert_uint_le(interval, interval_ns[i] + 1000000);
        }
        char token[64] = "";
        for (unsigned i = 0; i < 4; i++) {
                struct fakesrv_req req;
                fakesrv_request(srv, i, &req);
                const char *t = strstr(req.body, "ClientToken=");
                ck_assert_ptr_nonnull(t);
                ck_assert_ptr_nonnull(strstr(req.body, "Ipv4PrefixCount=1"));
                if (i == 0)
                        snprintf(token, sizeof token, "%s", t);
                ck_assert_str_eq(t, token);
        }
        ck_assert_uint_eq(strlen(token), strlen("ClientToken=") + 32);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert_uint_eq(st.calls, 4);
        ck_assert_uint_eq(st.errors, 3);
        ck_assert_uint_eq(st.throttled, 3);
        /* the success does not move the rate: 1.197 s after the last cut (to 0.70667/s) it is 0.96370/s */
        ck_assert_double_eq_tol(st.rate_per_s, 0.96370, 0.0001);
        ec2_result_free(r);
        ec2_client_free(c);
        ratelimit_free(rl);
        fakesrv_stop(srv);
        free((void *)s.ok_body);
}
END_TEST

START_TEST(test_client_gives_up_after_max_attempts) {
        struct script s = { .fail_first = 100, .fail_status = 500, .fail_body = "<html>oops</html>",
                            .fail_type = "text/html" };
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ec2_client *c = client_for(srv, &fc, NULL);
        struct ec2_error e;
        ck_assert_int_eq(ec2_delete_eni(c, "eni-1", &e), -EIO);
        ck_assert_uint_eq(e.attempts, 5);
        ck_assert_uint_eq(fakesrv_count(srv), 5);
        ck_assert_int_eq(e.http_status, 500);
        ck_assert(e.retryable);
        /* Sum of the pauses is bounded by base * (1 + 2 + 4 + 8). */
        ck_assert_uint_le(fc.slept_ns, 1500000000ull);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_client_does_not_retry_client_errors) {
        size_t len;
        struct script s = { .fail_first = 100, .fail_status = 400 };
        s.fail_body = strdup(fixture("error-not-found.xml", &len));
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ec2_client *c = client_for(srv, &fc, NULL);
        struct ec2_error e;
        const char *ids[] = { "eni-0123456789abcdef0" };
        struct ec2_result *r = NULL;
        ck_assert_int_eq(ec2_describe_enis(c, ids, 1, &r, &e), -ENOENT);
        ck_assert_ptr_null(r);
        ck_assert_uint_eq(fakesrv_count(srv), 1);
        ck_assert_uint_eq(fc.sleeps, 0);
        ck_assert_str_eq(e.code, "InvalidNetworkInterfaceID.NotFound");
        ck_assert_str_eq(e.request_id, "5d1b1e7a-0f5e-4bb0-8a8e-example");
        ec2_client_free(c);
        fakesrv_stop(srv);
        free((void *)s.fail_body);
}
END_TEST

START_TEST(test_client_transport_errors) {
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        /* A port nobody listens on: refused, retried, then reported. */
        struct fakesrv *srv = fakesrv_start(scripted, &(struct script){ 0 });
        char url[64];
        snprintf(url, sizeof url, "%s", fakesrv_url(srv));
        fakesrv_stop(srv);
        struct ec2_options o = { .region = "us-east-1", .endpoint = url, .clock = &fc.clock, .max_attempts = 3 };
        ec2_client *c = NULL;
        ck_assert_int_eq(ec2_client_new(&o, &c, NULL), 0);
        struct ec2_error e;
        ck_assert_int_eq(ec2_delete_eni(c, "eni-1", &e), -ECONNREFUSED);
        ck_assert_uint_eq(e.attempts, 3);
        ck_assert(e.retryable);
        ck_assert_int_eq(e.http_status, 0);
        ck_assert_ptr_nonnull(strstr(e.msg.text, "DeleteNetworkInterface"));
        ec2_client_free(c);
}
END_TEST

START_TEST(test_client_timeout_and_oversize) {
        struct script s = { .ok_body = "<DescribeSubnetsResponse/>" };
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        struct ec2_options o = { .region = "us-east-1", .endpoint = fakesrv_url(srv), .clock = &fc.clock,
                                 .http = { .max_body = 10 } };
        ec2_client *c = NULL;
        ck_assert_int_eq(ec2_client_new(&o, &c, NULL), 0);
        struct ec2_error e;
        struct ec2_result *r = NULL;
        ck_assert_int_eq(ec2_describe_subnets(c, NULL, 0, NULL, 0, &r, &e), -EFBIG);
        ck_assert(!e.retryable);
        ck_assert_uint_eq(fakesrv_count(srv), 1);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

static void slow(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        (void)ud, (void)req;
        rep->delay_ms = 700;
        rep->body = "<DescribeSubnetsResponse/>";
}

START_TEST(test_client_total_timeout) {
        struct fakesrv *srv = fakesrv_start(slow, NULL);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        struct ec2_options o = { .region = "us-east-1", .endpoint = fakesrv_url(srv), .clock = &fc.clock,
                                 .http = { .total_timeout_ms = 200 }, .max_attempts = 2 };
        ec2_client *c = NULL;
        ck_assert_int_eq(ec2_client_new(&o, &c, NULL), 0);
        struct ec2_error e;
        struct ec2_result *r = NULL;
        ck_assert_int_eq(ec2_describe_subnets(c, NULL, 0, NULL, 0, &r, &e), -ETIMEDOUT);
        ck_assert_uint_eq(e.attempts, 2);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_endpoint_and_region_choice) {
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        unsetenv("AWS_ENDPOINT_URL_EC2");
        unsetenv("AWS_ENDPOINT_URL");
        setenv("AWS_REGION", "eu-west-3", 1);
        setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
        ec2_client *c = NULL;
        ck_assert_int_eq(ec2_client_new(NULL, &c, NULL), 0);
        ck_assert_str_eq(ec2_client_region(c), "eu-west-3");
        ck_assert_str_eq(ec2_client_endpoint(c), "https://ec2.eu-west-3.amazonaws.com/");
        c = ec2_client_free(c);
        unsetenv("AWS_REGION");
        setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566", 1);
        ck_assert_int_eq(ec2_client_new(NULL, &c, NULL), 0);
        ck_assert_str_eq(ec2_client_region(c), "us-east-2");
        ck_assert_str_eq(ec2_client_endpoint(c), "http://127.0.0.1:4566");
        c = ec2_client_free(c);
        setenv("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:5000/", 1);
        ck_assert_int_eq(ec2_client_new(NULL, &c, NULL), 0);
        ck_assert_str_eq(ec2_client_endpoint(c), "http://127.0.0.1:5000/");
        c = ec2_client_free(c);
        struct errmsg err = { 0 };
        setenv("AWS_ENDPOINT_URL_EC2", "ftp://x/", 1);
        ck_assert_int_eq(ec2_client_new(NULL, &c, &err), -EINVAL);
        setenv("AWS_ENDPOINT_URL_EC2", "http://x/some/path", 1);
        ck_assert_int_eq(ec2_client_new(NULL, &c, &err), -EINVAL);
        unsetenv("AWS_ENDPOINT_URL_EC2");
        setenv("AWS_DEFAULT_REGION", "Bad Region", 1);
        ck_assert_int_eq(ec2_client_new(NULL, &c, &err), -EINVAL);
        ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_url_host_is_the_host_header) {
        char h[128];
        ck_assert_int_eq(awshttp_url_host("https://ec2.us-west-2.amazonaws.com/", h, sizeof h), 0);
        ck_assert_str_eq(h, "ec2.us-west-2.amazonaws.com");
        ck_assert_int_eq(awshttp_url_host("https://ec2.us-west-2.amazonaws.com:443/", h, sizeof h), 0);
        ck_assert_str_eq(h, "ec2.us-west-2.amazonaws.com");
        ck_assert_int_eq(awshttp_url_host("http://127.0.0.1:80", h, sizeof h), 0);
        ck_assert_str_eq(h, "127.0.0.1");
        ck_assert_int_eq(awshttp_url_host("http://127.0.0.1:5000/", h, sizeof h), 0);
        ck_assert_str_eq(h, "127.0.0.1:5000");
        ck_assert_int_eq(awshttp_url_host("http://[::1]:8080/", h, sizeof h), 0);
        ck_assert_str_eq(h, "[::1]:8080");
        ck_assert_int_eq(awshttp_url_host("ftp://x/", h, sizeof h), -EINVAL);
        ck_assert_int_eq(awshttp_url_host("http://127.0.0.1:5000/", h, 4), -E2BIG);
}
END_TEST

START_TEST(test_argument_checks) {
        struct fakesrv *srv = fakesrv_start(scripted, &(struct script){ .ok_body = "<x/>" });
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ec2_client *c = client_for(srv, &fc, NULL);
        struct ec2_error e;
        ck_assert_int_eq(ec2_assign_private_ips(c, "eni-1", 1, 1, NULL, &e), -EINVAL);
        ck_assert_int_eq(ec2_assign_private_ips(c, "eni-1", 0, 0, NULL, &e), -EINVAL);
        ck_assert_int_eq(ec2_describe_enis(c, NULL, 0, NULL, &e), -EINVAL);
        ck_assert_int_eq(ec2_describe_enis_page(c, NULL, 0, 4, NULL, NULL, &e), -EINVAL);
        ck_assert_int_eq(ec2_create_eni(c, &(struct ec2_create_eni){ .subnet_id = "s", .secondary_ip_count = 1,
                                                                     .prefix_count = 1 }, NULL, &e), -EINVAL);
        ck_assert_uint_eq(fakesrv_count(srv), 0);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_client_side_rate_limit_paces_calls) {
        struct script s = { .ok_body = "<DeleteNetworkInterfaceResponse><return>true</return></DeleteNetworkInterfaceResponse>" };
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ratelimit *rl;
        /* share 0.1 of (100, 5/s): 10 calls at once, then one per 2 s. */
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 0.1, .clock = &fc.clock }, &rl), 0);
        ec2_client *c = client_for(srv, &fc, rl);
        for (int i = 0; i < 13; i++)
                ck_assert_int_eq(ec2_delete_eni(c, "eni-1", NULL), 0);
        ck_assert_uint_eq(fc.sleeps, 3);
        ck_assert_uint_ge(fc.slept_ns, 5900000000ull);
        ck_assert_uint_le(fc.slept_ns, 6100000000ull);
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert_uint_eq(st.waits, 3);
        ck_assert_uint_eq(st.calls, 13);
        ck_assert_uint_eq(ec2_client_connections(c), 1);       /* one keep-alive connection for all 13 */
        ec2_client_free(c);
        ratelimit_free(rl);
        fakesrv_stop(srv);
}
END_TEST

/* Three pages of DescribeNetworkInterfaces, chained by NextToken. */
static void pager(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        (void)ud;
        static __thread char body[2048];
        int page = strstr(req->body, "NextToken=page%2F2") ? 2 : strstr(req->body, "NextToken=page%2F3") ? 3 : 1;
        int n = snprintf(body, sizeof body, "<DescribeNetworkInterfacesResponse><requestId>p%d</requestId>"
                         "<networkInterfaceSet>", page);
        for (int i = 0; i < (page == 3 ? 1 : 5); i++)
                n += snprintf(body + n, sizeof body - (size_t)n, "<item><networkInterfaceId>eni-%d%d</networkInterfaceId>"
                              "</item>", page, i);
        snprintf(body + n, sizeof body - (size_t)n, "</networkInterfaceSet>%s</DescribeNetworkInterfacesResponse>",
                 page == 1 ? "<nextToken>page/2</nextToken>" : page == 2 ? "<nextToken>page/3</nextToken>" : "");
        rep->body = body;
}

START_TEST(test_client_pages_with_next_token) {
        struct fakesrv *srv = fakesrv_start(pager, NULL);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ec2_client *c = client_for(srv, &fc, NULL);
        const char *v[] = { "available" };
        struct ec2_filter f = { "status", v, 1 };
        char token[64] = "";
        size_t total = 0;
        int pages = 0;
        do {
                struct ec2_result *r = NULL;
                struct ec2_error e;
                ck_assert_int_eq(ec2_describe_enis_page(c, &f, 1, 5, token[0] ? token : NULL, &r, &e), 0);
                total += r->n_enis;
                snprintf(token, sizeof token, "%s", r->next_token ? r->next_token : "");
                ec2_result_free(r);
        } while (token[0] && ++pages < 10);
        ck_assert_uint_eq(total, 11);
        ck_assert_uint_eq(fakesrv_count(srv), 3);
        struct fakesrv_req req;
        fakesrv_request(srv, 2, &req);
        ck_assert_str_eq(req.body, "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=status"
                                   "&Filter.1.Value.1=available&MaxResults=5&NextToken=page%2F3");
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

struct thread_arg {
        const char *url;
        ratelimit *rl;
        creds_provider *creds;
        int ok;
};

static void *thread_calls(void *ud) {
        struct thread_arg *a = ud;
        struct ec2_options o = { .region = "us-east-1", .endpoint = a->url, .limits = a->rl, .creds = a->creds };
        ec2_client *c = NULL;
        if (ec2_client_new(&o, &c, NULL) < 0)
                return NULL;
        for (int i = 0; i < 25; i++)
                a->ok += ec2_delete_eni(c, "eni-1", NULL) == 0;
        ec2_client_free(c);
        return NULL;
}

START_TEST(test_threads_share_limits_and_credentials) {
        /* One client per thread; the rate limiter and the credentials provider are shared. */
        struct script s = { .ok_body = "<DeleteNetworkInterfaceResponse/>" };
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        ratelimit *rl;
        ck_assert_int_eq(ratelimit_new(&(struct ratelimit_options){ .share = 1 }, &rl), 0);
        creds_provider *cp;
        ck_assert_int_eq(creds_provider_new(NULL, &cp, NULL), 0);
        pthread_t t[4];
        struct thread_arg args[4];
        for (int i = 0; i < 4; i++) {
                args[i] = (struct thread_arg){ fakesrv_url(srv), rl, cp, 0 };
                pthread_create(&t[i], NULL, thread_calls, &args[i]);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(t[i], NULL);
                ck_assert_int_eq(args[i].ok, 25);
        }
        struct ratelimit_stats st;
        ratelimit_stats(rl, RATELIMIT_ENI_ADDRESS, &st);
        ck_assert_uint_eq(st.calls, 100);
        ck_assert_uint_eq(st.errors, 0);
        ck_assert_uint_eq(fakesrv_count(srv), 100);
        creds_provider_free(cp);
        ratelimit_free(rl);
        fakesrv_stop(srv);
}
END_TEST

START_TEST(test_proxy_for_ec2_never_for_imds) {
        /* EC2 goes through $http_proxy like the SDKs; IMDS must not. */
        struct script s = { .ok_body = "<DeleteNetworkInterfaceResponse/>" };
        struct fakesrv *proxy = fakesrv_start(scripted, &s);
        setenv("http_proxy", fakesrv_url(proxy), 1);
        unsetenv("no_proxy");
        unsetenv("NO_PROXY");
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        struct ec2_options o = { .region = "us-east-1", .endpoint = "http://ec2.example.invalid/",
                                 .clock = &fc.clock, .max_attempts = 1 };
        ec2_client *c = NULL;
        ck_assert_int_eq(ec2_client_new(&o, &c, NULL), 0);
        struct ec2_error e;
        ck_assert_msg(ec2_delete_eni(c, "eni-1", &e) == 0, "%s", e.msg.text);
        ck_assert_uint_eq(fakesrv_count(proxy), 1);
        struct fakesrv_req req;
        fakesrv_request(proxy, 0, &req);
        ck_assert_str_eq(req.host, "ec2.example.invalid");
        ec2_client_free(c);
        imds *m = NULL;
        ck_assert_int_eq(imds_new(&(struct imds_options){ .endpoint = "http://127.0.0.1:1" }, &m, NULL), 0);
        char id[IMDS_ID_MAX];
        ck_assert_int_eq(imds_instance_id(m, id, NULL), -ECONNREFUSED);
        ck_assert_uint_eq(fakesrv_count(proxy), 1);
        imds_free(m);
        unsetenv("http_proxy");
        fakesrv_stop(proxy);
}
END_TEST

/* A server whose clock is an hour ahead of the client's fake clock (1700000000). */
#define SERVER_NOW ((time_t)1700003600)

static void skewed_server(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        (void)ud;
        static __thread char date[64];
        struct tm tm;
        time_t now = SERVER_NOW;
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
        rep->date = date;
        memset(&tm, 0, sizeof tm);
        if (!strptime(req->amz_date, "%Y%m%dT%H%M%SZ", &tm) || labs((long)(timegm(&tm) - now)) > 300) {
                rep->status = 400;
                rep->body = "<Response><Errors><Error><Code>RequestExpired</Code><Message>Request has expired."
                            "</Message></Error></Errors><RequestID>x</RequestID></Response>";
                return;
        }
        rep->body = "<DeleteNetworkInterfaceResponse/>";
}

START_TEST(test_clock_skew_is_corrected_from_date) {
        struct fakesrv *srv = fakesrv_start(skewed_server, NULL);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000 - 1);
        ec2_client *c = client_for(srv, &fc, NULL);
        struct ec2_error e;
        ck_assert_msg(ec2_delete_eni(c, "eni-1", &e) == 0, "%s", e.msg.text);
        ck_assert_uint_eq(e.attempts, 2);
        ck_assert_uint_eq(fc.sleeps, 0);                /* corrected and retried at once */
        ck_assert_int_eq(ec2_delete_eni(c, "eni-1", &e), 0);
        ck_assert_uint_eq(e.attempts, 1);               /* the offset is remembered */
        ck_assert_uint_eq(fakesrv_count(srv), 3);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

static void expired_no_date_skew(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        (void)ud, (void)req;
        rep->status = 401;
        rep->body = "<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the "
                    "provided access credentials</Message></Error></Errors><RequestID>x</RequestID></Response>";
}

START_TEST(test_auth_failure_without_skew_is_final) {
        struct fakesrv *srv = fakesrv_start(expired_no_date_skew, NULL);
        ec2_client *c = NULL;
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        ck_assert_int_eq(ec2_client_new(&(struct ec2_options){ .region = "us-east-1", .endpoint = fakesrv_url(srv) },
                                        &c, NULL), 0);
        struct ec2_error e;
        ck_assert_int_eq(ec2_delete_eni(c, "eni-1", &e), -EACCES);       /* real clock: MHD's Date agrees */
        ck_assert_uint_eq(e.attempts, 1);
        ck_assert(!e.retryable);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

static char *read_tls(const char *name) {
        char path[1024];
        const char *dir = getenv("CLOUD_FIXTURES");
        snprintf(path, sizeof path, "%s/../tls/%s", dir ? dir : "tests/cloud/xml", name);
        FILE *f = fopen(path, "r");
        ck_assert_msg(f, "cannot open %s", path);
        char *buf = calloc(1, 8192);
        fread(buf, 1, 8191, f);
        fclose(f);
        return buf;
}

static int tls_call(const char *url, const char *ca_bundle, struct ec2_error *e) {
        struct ec2_options o = { .region = "us-east-1", .endpoint = url, .max_attempts = 3,
                                 .http = { .ca_bundle = ca_bundle } };
        ec2_client *c = NULL;
        ck_assert_int_eq(ec2_client_new(&o, &c, NULL), 0);
        int r = ec2_delete_eni(c, "eni-1", e);
        ec2_client_free(c);
        return r;
}

START_TEST(test_tls_is_verified_and_ca_bundle_honoured) {
        char *cert = read_tls("loopback.pem"), *key = read_tls("loopback.key");
        char *wcert = read_tls("wrongname.pem"), *wkey = read_tls("wrongname.key");
        struct script s = { .ok_body = "<DeleteNetworkInterfaceResponse/>" };
        struct fakesrv *srv = fakesrv_start_tls(scripted, &s, cert, key);
        setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
        unsetenv("AWS_CA_BUNDLE");
        struct ec2_error e;
        /* a self-signed certificate is refused by the system store, and that is not retried */
        ck_assert_int_eq(tls_call(fakesrv_url(srv), NULL, &e), -EPROTO);
        ck_assert_uint_eq(e.attempts, 1);
        ck_assert(!e.retryable);
        ck_assert_uint_eq(fakesrv_count(srv), 0);
        /* trusted through AWS_CA_BUNDLE, or the option */
        char bundle[1024];
        snprintf(bundle, sizeof bundle, "%s/../tls/loopback.pem", getenv("CLOUD_FIXTURES"));
        setenv("AWS_CA_BUNDLE", bundle, 1);
        ck_assert_msg(tls_call(fakesrv_url(srv), NULL, &e) == 0, "%s", e.msg.text);
        unsetenv("AWS_CA_BUNDLE");
        ck_assert_int_eq(tls_call(fakesrv_url(srv), bundle, &e), 0);
        ck_assert_uint_eq(fakesrv_count(srv), 2);
        fakesrv_stop(srv);
        /* a trusted certificate for another name: host verification stays on */
        srv = fakesrv_start_tls(scripted, &s, wcert, wkey);
        snprintf(bundle, sizeof bundle, "%s/../tls/wrongname.pem", getenv("CLOUD_FIXTURES"));
        ck_assert_int_eq(tls_call(fakesrv_url(srv), bundle, &e), -EPROTO);
        ck_assert_uint_eq(fakesrv_count(srv), 0);
        fakesrv_stop(srv);
        free(cert), free(key), free(wcert), free(wkey);
}
END_TEST

/* DescribeSubnets as subnet discovery sends it (a filter on the AZ), and tags with an empty value. */
START_TEST(test_describe_subnets_filtered_with_tags) {
        size_t len;
        struct script s = { .ok_body = fixture("describe-subnets-tagged.xml", &len) };
        (void)len;
        struct fakesrv *srv = fakesrv_start(scripted, &s);
        struct fakeclock fc;
        fakeclock_init(&fc, 1700000000);
        ec2_client *c = client_for(srv, &fc, NULL);
        const char *az[] = { "us-west-2a" }, *vpc[] = { "vpc-0fedcba9876543210" };
        struct ec2_filter f[] = { { "availability-zone", az, 1 }, { "vpc-id", vpc, 1 } };
        struct ec2_result *r = NULL;
        struct ec2_error e;
        ck_assert_int_eq(ec2_describe_subnets(c, NULL, 0, f, 2, &r, &e), 0);
        struct fakesrv_req req;
        fakesrv_request(srv, 0, &req);
        ck_assert_str_eq(req.body, "Action=DescribeSubnets&Version=2016-11-15&Filter.1.Name=availability-zone"
                                   "&Filter.1.Value.1=us-west-2a&Filter.2.Name=vpc-id"
                                   "&Filter.2.Value.1=vpc-0fedcba9876543210");
        ck_assert_uint_eq(r->n_subnets, 1);
        const struct ec2_subnet *sn = &r->subnets[0];
        ck_assert_str_eq(sn->cidr, "100.64.0.0/19");
        ck_assert_int_eq(sn->available_ips, 8187);
        ck_assert_uint_eq(sn->n_tags, 3);
        ck_assert_str_eq(sn->tags[0].key, "kubernetes.io/role/cni");
        ck_assert(sn->tags[0].value == NULL || sn->tags[0].value[0] == '\0');
        ck_assert_str_eq(sn->tags[1].key, "cni.networking.k8s.aws/cluster/blue");
        ck_assert_str_eq(sn->tags[2].value, "pods & more");
        ec2_result_free(r);
        ec2_client_free(c);
        fakesrv_stop(srv);
}
END_TEST

int main(void) {
        Suite *s = suite_create("ec2");
        TCase *tc = tcase_create("parse");
        tcase_add_test(tc, test_parse_describe_enis);
        tcase_add_test(tc, test_parse_describe_enis_moto_last_page);
        tcase_add_test(tc, test_parse_describe_instances);
        tcase_add_test(tc, test_parse_instance_types);
        tcase_add_test(tc, test_parse_subnets);
        tcase_add_test(tc, test_parse_create_attach_assign);
        tcase_add_test(tc, test_parse_return_actions);
        tcase_add_test(tc, test_parse_ipv6);
        tcase_add_test(tc, test_parse_errors);
        tcase_add_test(tc, test_parse_error_codes_and_shapes);
        tcase_add_test(tc, test_parse_hostile);
        tcase_add_test(tc, test_parse_bounds);
        suite_add_tcase(s, tc);
        tc = tcase_create("client");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_client_request_format_and_signing);
        tcase_add_test(tc, test_client_ipv6_request_forms);
        tcase_add_test(tc, test_client_retries_throttling_with_same_client_token);
        tcase_add_test(tc, test_client_gives_up_after_max_attempts);
        tcase_add_test(tc, test_client_does_not_retry_client_errors);
        tcase_add_test(tc, test_client_transport_errors);
        tcase_add_test(tc, test_client_timeout_and_oversize);
        tcase_add_test(tc, test_client_total_timeout);
        tcase_add_test(tc, test_endpoint_and_region_choice);
        tcase_add_test(tc, test_argument_checks);
        tcase_add_test(tc, test_url_host_is_the_host_header);
        tcase_add_test(tc, test_client_side_rate_limit_paces_calls);
        tcase_add_test(tc, test_proxy_for_ec2_never_for_imds);
        tcase_add_test(tc, test_threads_share_limits_and_credentials);
        tcase_add_test(tc, test_client_pages_with_next_token);
        tcase_add_test(tc, test_tls_is_verified_and_ca_bundle_honoured);
        tcase_add_test(tc, test_clock_skew_is_corrected_from_date);
        tcase_add_test(tc, test_auth_failure_without_skew_is_final);
        tcase_add_test(tc, test_describe_subnets_filtered_with_tags);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

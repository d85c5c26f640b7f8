/*
 * test-cni-result: results come out in the shape of the requested
 * cniVersion, chain onto a prevResult, and errors/VERSION are well formed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cni-result.h"
#include "testlib.h"

static const struct cni_result R = {
        .host_ifname = "eni0123456789ab", .host_mac = "02:00:00:00:00:01",
        .pod_ifname = "eth0", .pod_mac = "0a:00:00:00:00:02",
        .sandbox = "/var/run/netns/p1", .ip = "10.0.1.5", .gateway = "169.254.1.1", .mtu = 9001,
};

static cJSON *render(const char *v, const cJSON *prev) {
        char *s = NULL;
        ck_assert_int_eq(cni_result_render(&R, v, prev, &s), 0);
        cJSON *o = cJSON_Parse(s);
        ck_assert_ptr_nonnull(o);
        free(s);
        return o;
}

static const cJSON *at(const cJSON *o, const char *key, int i) {
        const cJSON *a = cJSON_GetObjectItem(o, key);
        ck_assert(cJSON_IsArray(a));
        const cJSON *e = cJSON_GetArrayItem(a, i);
        ck_assert_ptr_nonnull(e);
        return e;
}

static const char *str(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItem(o, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

START_TEST(test_shape_1_1) {
        cJSON *o = render("1.1.0", NULL);
        ck_assert_str_eq(str(o, "cniVersion"), "1.1.0");
        const cJSON *host = at(o, "interfaces", 0), *pod = at(o, "interfaces", 1);
        ck_assert_str_eq(str(host, "name"), "eni0123456789ab");
        ck_assert_ptr_null(cJSON_GetObjectItem(host, "sandbox"));
        ck_assert_str_eq(str(pod, "name"), "eth0");
        ck_assert_str_eq(str(pod, "sandbox"), "/var/run/netns/p1");
        ck_assert_str_eq(str(pod, "mac"), "0a:00:00:00:00:02");
        ck_assert_int_eq(cJSON_GetObjectItem(pod, "mtu")->valueint, 9001);
        const cJSON *ip = at(o, "ips", 0);
        ck_assert_str_eq(str(ip, "address"), "10.0.1.5/32");
        ck_assert_str_eq(str(ip, "gateway"), "169.254.1.1");
        ck_assert_int_eq(cJSON_GetObjectItem(ip, "interface")->valueint, 1);
        ck_assert_ptr_null(cJSON_GetObjectItem(ip, "version"));
        ck_assert_str_eq(str(at(o, "routes", 0), "dst"), "0.0.0.0/0");
        ck_assert(cJSON_IsObject(cJSON_GetObjectItem(o, "dns")));
        cJSON_Delete(o);
}
END_TEST

START_TEST(test_shape_1_0_has_no_mtu) {
        cJSON *o = render("1.0.0", NULL);
        ck_assert_ptr_null(cJSON_GetObjectItem(at(o, "interfaces", 1), "mtu"));
        ck_assert_ptr_null(cJSON_GetObjectItem(at(o, "ips", 0), "version"));
        cJSON_Delete(o);
}
END_TEST

START_TEST(test_shape_legacy) {
        const char *versions[] = { "0.3.0", "0.3.1", "0.4.0" };
        for (int i = 0; i < 3; i++) {
                cJSON *o = render(versions[i], NULL);
                ck_assert_str_eq(str(o, "cniVersion"), versions[i]);
                ck_assert_str_eq(str(at(o, "ips", 0), "version"), "4");
                ck_assert_ptr_null(cJSON_GetObjectItem(at(o, "interfaces", 1), "mtu"));
                cJSON_Delete(o);
        }
}
END_TEST

START_TEST(test_chained_prev_result) {
        cJSON *prev = cJSON_Parse("{\"interfaces\":[{\"name\":\"x0\"}],\"ips\":[{\"version\":\"4\",\"address\":"
                                  "\"192.168.0.2/24\",\"interface\":0}],\"routes\":[{\"dst\":\"192.168.0.0/16\"}],"
                                  "\"dns\":{\"nameservers\":[\"10.0.0.2\"]}}");
        cJSON *o = render("1.0.0", prev);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "interfaces")), 3);
        ck_assert_str_eq(str(at(o, "interfaces", 0), "name"), "x0");
        ck_assert_int_eq(cJSON_GetObjectItem(at(o, "ips", 1), "interface")->valueint, 2);
        ck_assert_ptr_null(cJSON_GetObjectItem(at(o, "ips", 0), "version"));
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "routes")), 2);
        ck_assert_ptr_nonnull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "dns"), "nameservers"));
        cJSON_Delete(o);
        cJSON_Delete(prev);
}
END_TEST

START_TEST(test_prev_parse) {
        char ip[PROTO_IP_MAX], host[PROTO_IFNAME_MAX + 1];
        cJSON *o = render("1.1.0", NULL);
        ck_assert_int_eq(cni_result_prev_parse(o, ip, host), 0);
        ck_assert_str_eq(ip, "10.0.1.5");
        ck_assert_str_eq(host, "eni0123456789ab");
        cJSON_Delete(o);
        cJSON *empty = cJSON_Parse("{}");
        ck_assert_int_eq(cni_result_prev_parse(empty, ip, host), -ENOENT);
        ck_assert_int_eq(cni_result_prev_parse(NULL, ip, host), -ENOENT);
        cJSON_Delete(empty);
        cJSON *junk = cJSON_Parse("{\"ips\":[{\"address\":\"nope\"},{\"address\":7}],\"interfaces\":[{\"name\":"
                                  "\"a/b\"}]}");
        ck_assert_int_eq(cni_result_prev_parse(junk, ip, host), -ENOENT);
        cJSON_Delete(junk);
}
END_TEST

START_TEST(test_error_and_version) {
        char *s = NULL;
        ck_assert_int_eq(cni_error_render("0.4.0", 11, "try later", "because", &s), 0);
        cJSON *o = cJSON_Parse(s);
        ck_assert_str_eq(str(o, "cniVersion"), "0.4.0");
        ck_assert_int_eq(cJSON_GetObjectItem(o, "code")->valueint, 11);
        ck_assert_str_eq(str(o, "msg"), "try later");
        ck_assert_str_eq(str(o, "details"), "because");
        cJSON_Delete(o);
        free(s);
        ck_assert_int_eq(cni_error_render("9.9.9", 4, "x", NULL, &s), 0);
        ck_assert_ptr_nonnull(strstr(s, "\"cniVersion\":\"1.1.0\""));
        free(s);
        ck_assert_int_eq(cni_version_render("0.3.1", &s), 0);
        ck_assert_str_eq(s, "{\"cniVersion\":\"0.3.1\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\","
                            "\"1.0.0\",\"1.1.0\"]}");
        free(s);
}
END_TEST


static const struct cni_result R6 = {
        .host_ifname = "eni0123456789ab", .host_mac = "02:00:00:00:00:01",
        .pod_ifname = "eth0", .pod_mac = "0a:00:00:00:00:02",
        .sandbox = "/var/run/netns/p1", .ip = "2600:1f14:abc:de00::5", .gateway = "fe80::1", .mtu = 9001,
        .egress_ip = "169.254.172.9", .egress_host_ifname = "eniv0123456789a", .egress_host_mac = "02:00:00:00:00:03",
        .egress_pod_ifname = "v4if0", .egress_pod_mac = "0a:00:00:00:00:04", .egress_gateway = "169.254.172.1",
};

static cJSON *render6(const char *v, const cJSON *prev) {
        char *s = NULL;
        ck_assert_int_eq(cni_result_render(&R6, v, prev, &s), 0);
        cJSON *o = cJSON_Parse(s);
        ck_assert_ptr_nonnull(o);
        free(s);
        return o;
}

/* An IPv6 pod: the /128 with fe80::1 on eth0, the egress address on its own
 * interface (so the runtime's eth0 lists only the IPv6 address). */
START_TEST(test_shape_ipv6_with_egress) {
        cJSON *o = render6("1.1.0", NULL);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "interfaces")), 4);
        ck_assert_str_eq(str(at(o, "interfaces", 2), "name"), "eniv0123456789a");
        ck_assert_ptr_null(cJSON_GetObjectItem(at(o, "interfaces", 2), "sandbox"));
        ck_assert_str_eq(str(at(o, "interfaces", 3), "name"), "v4if0");
        ck_assert_str_eq(str(at(o, "interfaces", 3), "sandbox"), "/var/run/netns/p1");
        ck_assert_str_eq(str(at(o, "interfaces", 3), "mac"), "0a:00:00:00:00:04");
        ck_assert_str_eq(str(at(o, "ips", 0), "address"), "2600:1f14:abc:de00::5/128");
        ck_assert_str_eq(str(at(o, "ips", 0), "gateway"), "fe80::1");
        ck_assert_int_eq(cJSON_GetObjectItem(at(o, "ips", 0), "interface")->valueint, 1);
        ck_assert_str_eq(str(at(o, "ips", 1), "address"), "169.254.172.9/22");
        ck_assert_str_eq(str(at(o, "ips", 1), "gateway"), "169.254.172.1");
        ck_assert_int_eq(cJSON_GetObjectItem(at(o, "ips", 1), "interface")->valueint, 3);
        ck_assert_str_eq(str(at(o, "routes", 0), "dst"), "::/0");
        ck_assert_str_eq(str(at(o, "routes", 0), "gw"), "fe80::1");
        ck_assert_str_eq(str(at(o, "routes", 1), "dst"), "0.0.0.0/0");
        ck_assert_str_eq(str(at(o, "routes", 1), "gw"), "169.254.172.1");
        cJSON_Delete(o);
        o = render6("0.4.0", NULL);
        ck_assert_str_eq(str(at(o, "ips", 0), "version"), "6");
        ck_assert_str_eq(str(at(o, "ips", 1), "version"), "4");
        cJSON_Delete(o);
}
END_TEST

/* An IPv4 pod with ENABLE_V6_EGRESS: v6if0 and its ULA /118, ::/0 via the host end's link-local. */
START_TEST(test_shape_ipv4_with_v6_egress) {
        static const struct cni_result r4 = {
                .host_ifname = "eni0123456789ab", .host_mac = "02:00:00:00:00:01", .pod_ifname = "eth0",
                .pod_mac = "0a:00:00:00:00:02", .sandbox = "/var/run/netns/p1", .ip = "10.0.1.5",
                .gateway = "169.254.1.1", .mtu = 9001, .egress_ip = "fd00::ac:2",
                .egress_host_ifname = "eniv0123456789a", .egress_host_mac = "02:00:00:00:00:03",
                .egress_pod_ifname = "v6if0", .egress_pod_mac = "0a:00:00:00:00:04",
                .egress_gateway = "fe80::ff:fe00:3",
        };
        char *s = NULL, ip[PROTO_IP_MAX], host[PROTO_IFNAME_MAX + 1];
        ck_assert_int_eq(cni_result_render(&r4, "1.1.0", NULL, &s), 0);
        cJSON *o = cJSON_Parse(s);
        free(s);
        ck_assert_str_eq(str(at(o, "ips", 0), "address"), "10.0.1.5/32");
        const char *want[][2] = { { "interfaces", "v6if0" }, { "ips", "fd00::ac:2/118" }, { "ips", "fe80::ff:fe00:3" },
                                  { "routes", "::/0" }, { "routes", "fe80::ff:fe00:3" } };
        const char *key[] = { "name", "address", "gateway", "dst", "gw" };
        for (size_t i = 0; i < 5; i++)
                ck_assert_str_eq(str(at(o, want[i][0], i ? 1 : 3), key[i]), want[i][1]);
        ck_assert_int_eq(cJSON_GetObjectItem(at(o, "ips", 1), "interface")->valueint, 3);
        /* DEL from it finds the pod's own address, not the ULA, whichever comes first */
        ck_assert_int_eq(cni_result_prev_parse(o, ip, host), 0);
        ck_assert_str_eq(ip, "10.0.1.5");
        cJSON_Delete(o);
        o = cJSON_Parse("{\"ips\":[{\"address\":\"fd00::ac:2/118\"},{\"address\":\"10.0.1.5/32\"}]}");
        ck_assert_int_eq(cni_result_prev_parse(o, ip, host), 0);
        ck_assert_str_eq(ip, "10.0.1.5");
        cJSON_Delete(o);
}
END_TEST

/* DEL from prevResult: the pod's /128 and the main host veth, never the
 * egress address or the egress veth, whichever order ips[] has. */
START_TEST(test_prev_parse_ipv6) {
        char ip[PROTO_IP_MAX], host[PROTO_IFNAME_MAX + 1];
        cJSON *o = render6("1.1.0", NULL);
        ck_assert_int_eq(cni_result_prev_parse(o, ip, host), 0);
        ck_assert_str_eq(ip, "2600:1f14:abc:de00::5");
        ck_assert_str_eq(host, "eni0123456789ab");
        cJSON_Delete(o);
        cJSON *swapped = cJSON_Parse("{\"ips\":[{\"address\":\"169.254.172.9/22\"},{\"address\":"
                                     "\"2600:1f14:abc:de00::5/128\"}]}");
        ck_assert_int_eq(cni_result_prev_parse(swapped, ip, host), 0);
        ck_assert_str_eq(ip, "2600:1f14:abc:de00::5");
        cJSON_Delete(swapped);
        /* a legacy 0.4.0 prevResult chained below keeps each entry's family */
        cJSON *prev = cJSON_Parse("{\"ips\":[{\"version\":\"6\",\"address\":\"fd00::2/64\"}]}");
        o = render6("0.4.0", prev);
        ck_assert_str_eq(str(at(o, "ips", 0), "version"), "6");
        cJSON_Delete(o);
        cJSON_Delete(prev);
}
END_TEST

int main(void) {
        Suite *s = suite_create("cni-result");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_shape_1_1);
        tcase_add_test(tc, test_shape_1_0_has_no_mtu);
        tcase_add_test(tc, test_shape_legacy);
        tcase_add_test(tc, test_chained_prev_result);
        tcase_add_test(tc, test_prev_parse);
        tcase_add_test(tc, test_error_and_version);
        tcase_add_test(tc, test_shape_ipv6_with_egress);
        tcase_add_test(tc, test_prev_parse_ipv6);
        tcase_add_test(tc, test_shape_ipv4_with_v6_egress);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

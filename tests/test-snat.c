/*
 * test-snat: the `ip vpc-ipam` table — the variables' parsers, the rendered
 * nft script for each combination of inputs, bad inputs refused, and (with
 * --kernel, suite netns) the script applied in a private network namespace:
 * accepted by the kernel, replaced in place, removed with its fwmark rule.
 *
 * The kernel cases run in Check's forked child after unshare(CLONE_NEWNET),
 * so nothing reaches the machine's namespace and nothing outlives the case.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "snat.h"
#include "testlib.h"

static struct snat_input base_input(void) {
        struct snat_input in = { .primary_ip = "10.0.0.4", .primary_if = "eth0",
                                 .vpc_cidrs = { "10.0.0.0/16" }, .n_vpc_cidrs = 1 };
        snat_config_defaults(&in.cfg);
        return in;
}

static char *render(const struct snat_input *in) {
        char *s = NULL;
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_msg(snat_render(in, &s, &e) == 0, "%s", e.text);
        return s;
}

static void assert_has(const char *text, const char *want) {
        ck_assert_msg(strstr(text, want), "missing \"%s\" in:\n%s", want, text);
}

static void assert_lacks(const char *text, const char *unwanted) {
        ck_assert_msg(!strstr(text, unwanted), "unexpected \"%s\" in:\n%s", unwanted, text);
}

/* --- parsers -------------------------------------------------------------------------------- */

START_TEST(test_parse_random) {
        enum snat_random r = SNAT_RANDOM_NONE;
        ck_assert_int_eq(snat_parse_random("V", "prng", &r, NULL), 0);
        ck_assert_int_eq(r, SNAT_RANDOM_PRNG);
        ck_assert_int_eq(snat_parse_random("V", "hashrandom", &r, NULL), 0);
        ck_assert_int_eq(r, SNAT_RANDOM_HASH);
        ck_assert_int_eq(snat_parse_random("V", "none", &r, NULL), 0);
        ck_assert_int_eq(r, SNAT_RANDOM_NONE);
        struct errmsg e;
        ck_assert_int_eq(snat_parse_random("V", "fully", &r, &e), -EINVAL);
        ck_assert_str_eq(e.text, "V=fully: accepted: prng, hashrandom, none");
        ck_assert_int_eq(r, SNAT_RANDOM_NONE);
        ck_assert_str_eq(snat_random_name(SNAT_RANDOM_HASH), "hashrandom");
}
END_TEST

START_TEST(test_parse_cidrs) {
        struct snat_config c;
        snat_config_defaults(&c);
        ck_assert_int_eq(snat_parse_cidrs("V", "", &c, NULL), 0);
        ck_assert_uint_eq(c.n_exclude, 0);
        ck_assert_int_eq(snat_parse_cidrs("V", "0.0.0.0/0, 10.1.2.3/32,\t172.16.0.0/12", &c, NULL), 0);
        ck_assert_uint_eq(c.n_exclude, 3);
        ck_assert_str_eq(c.exclude[0], "0.0.0.0/0");
        ck_assert_str_eq(c.exclude[1], "10.1.2.3/32");
        ck_assert_str_eq(c.exclude[2], "172.16.0.0/12");
        /* a bad list leaves the previous one whole */
        static const char *const bad[] = { "10.0.0.0", "10.0.0.0/", "10.0.0.0/8x", "10.0.0/8", "10.0.0.0/008",
                                           "a.b.c.d/8", "10.0.0.1/8", ",", "10.0.0.0/8,", " , ", "::/0" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct errmsg e;
                errmsg_clear(&e);
                ck_assert_msg(snat_parse_cidrs("V", bad[i], &c, &e) == -EINVAL, "accepted \"%s\"", bad[i]);
                ck_assert_msg(strncmp(e.text, "V", 1) == 0, "%s", e.text);
                ck_assert_uint_eq(c.n_exclude, 3);
        }
        char many[SNAT_MAX_EXCLUDE * 20 + 20] = "";
        for (int i = 0; i <= SNAT_MAX_EXCLUDE; i++)
                snprintf(many + strlen(many), sizeof many - strlen(many), "%s10.%d.0.0/16", i ? "," : "", i);
        ck_assert_int_eq(snat_parse_cidrs("V", many, &c, NULL), -ERANGE);
}
END_TEST

START_TEST(test_parse_mark_and_prefix) {
        uint32_t m = 7;
        ck_assert_int_eq(snat_parse_mark("V", "0x80", &m, NULL), 0);
        ck_assert_uint_eq(m, 0x80);
        ck_assert_int_eq(snat_parse_mark("V", "4096", &m, NULL), 0);
        ck_assert_uint_eq(m, 4096);
        ck_assert_int_eq(snat_parse_mark("V", "0xffffffff", &m, NULL), 0);
        ck_assert_uint_eq(m, 0xffffffffu);
        static const char *const bad[] = { "", "0", "0x0", "-1", "+1", " 1", "1 ", "0x100000000", "mark", "0x" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                ck_assert_msg(snat_parse_mark("V", bad[i], &m, NULL) == -EINVAL, "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(m, 0xffffffffu);
        char p[SNAT_VETH_PREFIX_MAX + 1] = "x";
        ck_assert_int_eq(snat_parse_veth_prefix("V", "cali", p, NULL), 0);
        ck_assert_str_eq(p, "cali");
        static const char *const badp[] = { "", "abcde", "9ab", "e-n", "eth", "lo", "vlan", "e*" };
        for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++)
                ck_assert_msg(snat_parse_veth_prefix("V", badp[i], p, NULL) == -EINVAL, "accepted \"%s\"", badp[i]);
        ck_assert_str_eq(p, "cali");
}
END_TEST

/* --- rendering ------------------------------------------------------------------------------ */

START_TEST(test_render_defaults) {
        struct snat_input in = base_input();
        char *s = render(&in);
        /* one transaction: make sure the table exists, delete it, add it whole */
        static const char head[] = "table ip aws-cni {}\ndelete table ip aws-cni\n"
                                   "table ip vpc-ipam {}\ndelete table ip vpc-ipam\n"
                                   "table ip6 vpc-ipam {}\ndelete table ip6 vpc-ipam\ntable ip vpc-ipam {\n";
        ck_assert_msg(strncmp(s, head, strlen(head)) == 0, "%s", s);
        assert_has(s, "elements = { 10.0.0.0/16 }");
        assert_has(s, "set excluded {\n\t\ttype ipv4_addr; flags interval; auto-merge;\n\t}");
        assert_has(s, "type filter hook prerouting priority mangle; policy accept;");
        assert_has(s, "iifname \"eth0\" fib daddr . iif type local ct mark set ct mark or 0x80\n");
        assert_has(s, "iifname \"eni*\" ct state new ip daddr != @vpc ip daddr != @excluded ct mark set ct mark or 0x80\n");
        assert_has(s, "iifname \"eni*\" ct mark and 0x80 == 0x80 meta mark set meta mark or 0x80\n");
        assert_has(s, "type nat hook postrouting priority srcnat; policy accept;");
        assert_has(s, "ip daddr @vpc return\n\t\tip daddr @excluded return\n\t\toifname \"eni*\" return\n"
                      "\t\toifname \"vlan*\" return\n\t\tfib daddr type local return\n"
                      "\t\tsnat to 10.0.0.4 fully-random\n");
        /* the SNAT rule is the chain's last */
        ck_assert_ptr_nonnull(strstr(s, "fully-random\n\t}\n}\n"));
        free(s);
}
END_TEST

/* Each RANDOMIZESNAT × NODE_PORT_SUPPORT × exclusions × mark × prefix combination. */
START_TEST(test_render_combinations) {
        static const char *const flag[] = { "snat to 10.0.0.4 fully-random\n", "snat to 10.0.0.4 random\n",
                                            "snat to 10.0.0.4\n" };
        int i = _i;
        struct snat_input in = base_input();
        in.cfg.random = (enum snat_random)(i % 3);
        in.cfg.node_port = (i / 3) % 2;
        bool excl = (i / 6) % 2;
        if (excl)
                snat_parse_cidrs("V", "192.168.0.0/16,10.0.5.0/24", &in.cfg, NULL);
        if ((i / 12) % 2) {
                in.cfg.mark = 0x4000;
                snprintf(in.cfg.veth_prefix, sizeof in.cfg.veth_prefix, "pod");
                snprintf(in.primary_if, sizeof in.primary_if, "ens5");
                snprintf(in.vpc_cidrs[1], SNAT_CIDR_LEN, "100.64.0.0/16");
                in.n_vpc_cidrs = 2;
        }
        const char *m = in.cfg.mark == 0x80 ? "0x80" : "0x4000";
        const char *pods = in.cfg.veth_prefix;
        char *s = render(&in);
        assert_has(s, flag[in.cfg.random]);
        if (in.cfg.random == SNAT_RANDOM_NONE)
                assert_lacks(s, "random");
        char want[256];
        snprintf(want, sizeof want, "iifname \"%s\" fib daddr . iif type local ct mark set ct mark or %s\n",
                 in.primary_if, m);
        if (in.cfg.node_port)
                assert_has(s, want);
        else
                assert_lacks(s, "fib daddr . iif");
        snprintf(want, sizeof want, "iifname \"%s*\" ct mark and %s == %s meta mark set meta mark or %s\n", pods, m,
                 m, m);
        assert_has(s, want);
        snprintf(want, sizeof want, "oifname \"%s*\" return\n", pods);
        assert_has(s, want);
        if (excl)
                assert_has(s, "elements = { 192.168.0.0/16, 10.0.5.0/24 }");
        else
                assert_lacks(s, "192.168");
        assert_has(s, in.n_vpc_cidrs == 2 ? "elements = { 10.0.0.0/16, 100.64.0.0/16 }" : "elements = { 10.0.0.0/16 }\n");
        free(s);
}
END_TEST

START_TEST(test_render_external) {
        struct snat_input in = base_input();
        in.cfg.external = true;
        in.primary_ip[0] = '\0';          /* nothing else matters then */
        char *s = render(&in);
        ck_assert_str_eq(s, "table ip aws-cni {}\ndelete table ip aws-cni\ntable ip vpc-ipam {}\ndelete table ip vpc-ipam\n"
                            "table ip6 vpc-ipam {}\ndelete table ip6 vpc-ipam\n");
        ck_assert_str_eq(s, snat_render_remove());
        free(s);
}
END_TEST

START_TEST(test_render_bad_inputs) {
        static const struct {
                const char *field, *value, *must_say;
        } bad[] = {
                { "ip", "10.0.0.256", "primary IP \"10.0.0.256\" is not an IPv4 address" },
                { "ip", "", "primary IP" },
                { "if", "", "is not a link name" },
                { "if", "eth0\"; flush ruleset", "is not a link name" },
                { "if", "eth 0", "is not a link name" },
                { "vpc", "10.0.0.0/33", "VPC CIDR \"10.0.0.0/33\"" },
                { "vpc", "10.0.0.1/16", "VPC CIDR \"10.0.0.1/16\"" },
                { "excl", "1.2.3.4/8", "exclusion \"1.2.3.4/8\"" },
                { "prefix", "e*", "pod link prefix" },
                { "none", "", "1-8 and 0-32 accepted" },
                { "mark", "", "must not be 0" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct snat_input in = base_input();
                const char *f = bad[i].field;
                if (!strcmp(f, "ip"))
                        snprintf(in.primary_ip, sizeof in.primary_ip, "%s", bad[i].value);
                else if (!strcmp(f, "if"))
                        snprintf(in.primary_if, sizeof in.primary_if, "%s", bad[i].value);
                else if (!strcmp(f, "vpc"))
                        snprintf(in.vpc_cidrs[0], SNAT_CIDR_LEN, "%s", bad[i].value);
                else if (!strcmp(f, "excl"))
                        snprintf(in.cfg.exclude[in.cfg.n_exclude++], SNAT_CIDR_LEN, "%s", bad[i].value);
                else if (!strcmp(f, "prefix"))
                        snprintf(in.cfg.veth_prefix, sizeof in.cfg.veth_prefix, "%s", bad[i].value);
                else if (!strcmp(f, "none"))
                        in.n_vpc_cidrs = 0;
                else
                        in.cfg.mark = 0;
                char *s = (char *)"untouched";
                struct errmsg e;
                errmsg_clear(&e);
                ck_assert_msg(snat_render(&in, &s, &e) == -EINVAL, "case %zu rendered", i);
                ck_assert_msg(strstr(e.text, bad[i].must_say), "case %zu got: %s", i, e.text);
                ck_assert_str_eq(s, "untouched");
        }
}
END_TEST

START_TEST(test_render_ipv6_egress) {
        struct snat_input in = base_input();
        in.ipv6_egress = true;
        in.n_vpc_cidrs = 0;                             /* not needed in IPv6 mode */
        in.cfg.random = SNAT_RANDOM_NONE;
        char *t = render(&in);
        assert_has(t, "delete table ip aws-cni");
        assert_has(t, "table ip vpc-ipam {");
        assert_has(t, "\t\tip saddr 169.254.172.0/22 snat to 10.0.0.4\n");
        assert_has(t, "ip saddr 169.254.172.0/22 fib daddr type local return");
        assert_has(t, "type filter hook forward priority filter; policy accept;");
        assert_has(t, "ip daddr 169.254.172.0/22 ct state new reject");
        assert_lacks(t, "prerouting");
        assert_lacks(t, "ct mark");
        free(t);
        snprintf(in.primary_ip, sizeof in.primary_ip, "fe80::1");
        char *bad = NULL;
        ck_assert_int_eq(snat_render(&in, &bad, NULL), -EINVAL);
        struct snat_input a = base_input(), b = base_input();
        b.ipv6_egress = true;
        ck_assert(!snat_input_equal(&a, &b));
}
END_TEST

/* ENABLE_V6_EGRESS: the ip6 table beside the IPv4 one, kept with external SNAT; a bad node IPv6 refused. */
START_TEST(test_render_v6_egress) {
        struct snat_input in = base_input();
        snprintf(in.egress6_ip, sizeof in.egress6_ip, "2600:1f14:abc:de00::10");
        char *t = render(&in);
        assert_has(t, "table ip vpc-ipam {\n\tset vpc");
        assert_has(t, "table ip6 vpc-ipam {\n");
        assert_has(t, "\t\tip6 saddr fd00::ac:0/118 ip6 daddr ff00::/8 return\n");
        assert_has(t, "\t\tip6 saddr fd00::ac:0/118 fib daddr type local return\n");
        assert_has(t, "\t\tip6 saddr fd00::ac:0/118 snat to 2600:1f14:abc:de00::10 fully-random\n");
        assert_has(t, "\t\tip6 daddr fd00::ac:0/118 ct state new reject\n");
        free(t);
        in.cfg.external = true;
        t = render(&in);
        assert_lacks(t, "table ip vpc-ipam {\n");
        assert_has(t, "table ip6 vpc-ipam {\n");
        free(t);
        struct snat_input a = base_input();
        ck_assert(!snat_input_equal(&a, &in));
        snprintf(in.egress6_ip, sizeof in.egress6_ip, "10.0.0.9");
        char *bad = NULL;
        struct errmsg e = { 0 };
        ck_assert_int_eq(snat_render(&in, &bad, &e), -EINVAL);
        ck_assert_ptr_nonnull(strstr(e.text, "node IPv6 \"10.0.0.9\""));
}
END_TEST

START_TEST(test_input_equal) {
        struct snat_input a = base_input(), b = base_input();
        ck_assert(snat_input_equal(&a, &b));
        snprintf(b.vpc_cidrs[1], SNAT_CIDR_LEN, "100.64.0.0/16");
        ck_assert(snat_input_equal(&a, &b));       /* beyond n_vpc_cidrs: not an input */
        b.n_vpc_cidrs = 2;
        ck_assert(!snat_input_equal(&a, &b));
        b = base_input();
        snat_parse_cidrs("V", "192.168.0.0/16", &b.cfg, NULL);
        ck_assert(!snat_input_equal(&a, &b));
        b = base_input();
        snprintf(b.primary_ip, sizeof b.primary_ip, "10.0.0.5");
        ck_assert(!snat_input_equal(&a, &b));
        b = base_input();
        b.cfg.random = SNAT_RANDOM_NONE;
        ck_assert(!snat_input_equal(&a, &b));
        b = base_input();
        b.cfg.external = true;
        ck_assert(!snat_input_equal(&a, &b));
}
END_TEST

/* --- in a private network namespace (--kernel) ------------------------------------------------ */

static void enter_netns(void) {
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
}

/* `nft list table ip vpc-ipam` through libnftables; NULL when there is no table. */
static char *list_table(void) {
        struct nft_ctx *n = nft_ctx_new(NFT_CTX_DEFAULT);
        ck_assert_ptr_nonnull(n);
        nft_ctx_buffer_output(n);
        nft_ctx_buffer_error(n);
        char *out = NULL;
        if (nft_run_cmd_from_buffer(n, "list table ip vpc-ipam\n") == 0)
                out = strdup(nft_ctx_get_output_buffer(n));
        nft_ctx_free(n);
        return out;
}

static int count_lines(const char *cmd, const char *needle) {
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        char line[512];
        int n = 0;
        while (fgets(line, sizeof line, p))
                n += strstr(line, needle) != NULL;
        pclose(p);
        return n;
}

static int fwmark_rules(const char *mark) {
        char needle[64];
        snprintf(needle, sizeof needle, "1024:\tfrom all fwmark %s/%s lookup main", mark, mark);
        return count_lines("ip -4 rule show 2>/dev/null", needle);
}

static void apply_ok(snat *s, const struct snat_input *in) {
        struct errmsg e;
        errmsg_clear(&e);
        ck_assert_msg(snat_apply(s, in, NULL, &e) == 0, "%s", e.text);
}

START_TEST(test_kernel_every_combination) {
        enter_netns();
        snat *s = NULL;
        ck_assert_int_eq(snat_new(&s, NULL), 0);
        for (int i = 0; i < 24; i++) {
                struct snat_input in = base_input();
                in.cfg.random = (enum snat_random)(i % 3);
                in.cfg.node_port = (i / 3) % 2;
                if ((i / 6) % 2)   /* overlapping, and inside the VPC: merged, not refused */
                        snat_parse_cidrs("V", "192.168.0.0/16,192.168.1.0/24,10.0.5.0/24", &in.cfg, NULL);
                if ((i / 12) % 2)
                        in.cfg.mark = 0x4000;
                apply_ok(s, &in);
                char *t = list_table();
                ck_assert_msg(t, "no table after combination %d", i);
                assert_has(t, in.cfg.random == SNAT_RANDOM_PRNG ? "snat to 10.0.0.4 fully-random" :
                              in.cfg.random == SNAT_RANDOM_HASH ? "snat to 10.0.0.4 random" : "snat to 10.0.0.4\n");
                if (in.cfg.node_port)
                        assert_has(t, "fib daddr . iif type local");
                else
                        assert_lacks(t, "fib daddr . iif type local");
                free(t);
                ck_assert_int_eq(fwmark_rules(in.cfg.mark == 0x80 ? "0x80" : "0x4000"), 1);
                struct errmsg e;
                ck_assert_msg(snat_remove(s, in.cfg.mark, &e) == 0, "%s", e.text);
                ck_assert_ptr_null(list_table());
                ck_assert_int_eq(fwmark_rules(in.cfg.mark == 0x80 ? "0x80" : "0x4000"), 0);
        }
        snat_free(s);
}
END_TEST

START_TEST(test_kernel_replace_in_place) {
        enter_netns();
        snat *s = NULL;
        ck_assert_int_eq(snat_new(&s, NULL), 0);
        struct snat_input in = base_input();
        bool changed = false;
        ck_assert_int_eq(snat_apply(s, &in, &changed, NULL), 0);
        ck_assert(changed);
        ck_assert_int_eq(snat_apply(s, &in, &changed, NULL), 0);
        ck_assert(!changed);                    /* the same input: nothing sent */
        snat *other = NULL;                     /* a fresh handle (a restarted daemon) re-applies it */
        ck_assert_int_eq(snat_new(&other, NULL), 0);
        ck_assert_int_eq(snat_apply(other, &in, &changed, NULL), 0);
        ck_assert(changed);
        snat_free(other);
        ck_assert_int_eq(fwmark_rules("0x80"), 1);   /* still one table and one rule */
        in.cfg.mark = 0x4000;                   /* a new mark takes the old one's rule away */
        apply_ok(s, &in);
        ck_assert_int_eq(fwmark_rules("0x80"), 0);
        ck_assert_int_eq(fwmark_rules("0x4000"), 1);
        in.cfg.mark = 0x80;
        apply_ok(s, &in);
        ck_assert_int_eq(fwmark_rules("0x4000"), 0);
        snprintf(in.vpc_cidrs[1], SNAT_CIDR_LEN, "100.64.0.0/16");
        in.n_vpc_cidrs = 2;
        apply_ok(s, &in);
        char *t = list_table();
        ck_assert_ptr_nonnull(t);
        assert_has(t, "100.64.0.0/16");
        ck_assert_int_eq(count_lines("nft list tables 2>/dev/null", "vpc-ipam"), 1);
        free(t);
        ck_assert_int_eq(fwmark_rules("0x80"), 1);
        in.cfg.external = true;                 /* EXTERNALSNAT: nothing of it stays */
        apply_ok(s, &in);
        ck_assert_ptr_null(list_table());
        ck_assert_int_eq(fwmark_rules("0x80"), 0);
        apply_ok(s, &in);                       /* removing what is gone is fine */
        snat_free(s);
}
END_TEST

/*
 * IPv6 mode in a namespace: the kernel accepts the table and lists the SNAT
 * from 169.254.172.0/22 to the primary IP (multicast excepted) and the
 * reject of new connections forwarded to the range; no fwmark rule stays
 * (one an IPv4 run left is removed). Traffic through it is the end-to-end
 * test's (tests/daemon, IPv6 mode).
 */
START_TEST(test_kernel_ipv6_egress) {
        enter_netns();
        snat *s = NULL;
        ck_assert_int_eq(snat_new(&s, NULL), 0);
        struct snat_input in = base_input();
        apply_ok(s, &in);                               /* an IPv4 run before */
        ck_assert_int_eq(fwmark_rules("0x80"), 1);
        in.ipv6_egress = true;
        bool changed = false;
        ck_assert_int_eq(snat_apply(s, &in, &changed, NULL), 0);
        ck_assert(changed);
        ck_assert_int_eq(fwmark_rules("0x80"), 0);
        char *t = list_table();
        ck_assert_ptr_nonnull(t);
        assert_has(t, "ip saddr 169.254.172.0/22 snat to 10.0.0.4 fully-random");
        assert_has(t, "ip saddr 169.254.172.0/22 ip daddr 224.0.0.0/4 return");
        assert_has(t, "ip daddr 169.254.172.0/22 ct state new reject");
        assert_lacks(t, "@vpc");
        free(t);
        ck_assert_int_eq(snat_apply(s, &in, &changed, NULL), 0);
        ck_assert(!changed);
        ck_assert_int_eq(snat_remove(s, in.cfg.mark, NULL), 0);
        ck_assert_ptr_null(list_table());
        snat_free(s);
}
END_TEST

/* ENABLE_V6_EGRESS: the kernel takes the ip6 table, with and without external SNAT; removal takes both. */
START_TEST(test_kernel_v6_egress) {
        enter_netns();
        snat *s = NULL;
        ck_assert_int_eq(snat_new(&s, NULL), 0);
        struct snat_input in = base_input();
        snprintf(in.egress6_ip, sizeof in.egress6_ip, "2600:1f14:abc:de00::10");
        apply_ok(s, &in);
        ck_assert_int_eq(count_lines("nft list table ip6 vpc-ipam 2>/dev/null",
                                     "ip6 saddr fd00::ac:0/118 snat to 2600:1f14:abc:de00::10"), 1);
        ck_assert_int_eq(count_lines("nft list table ip6 vpc-ipam 2>/dev/null",
                                     "ip6 daddr fd00::ac:0/118 ct state new reject"), 1);
        ck_assert_int_eq(fwmark_rules("0x80"), 1);
        in.cfg.external = true;
        apply_ok(s, &in);
        ck_assert_ptr_null(list_table());               /* no IPv4 SNAT, nor its rule */
        ck_assert_int_eq(fwmark_rules("0x80"), 0);
        ck_assert_int_eq(count_lines("nft list table ip6 vpc-ipam 2>/dev/null", "snat to 2600:1f14:abc:de00::10"), 1);
        ck_assert_int_eq(snat_remove(s, in.cfg.mark, NULL), 0);
        ck_assert_int_eq(count_lines("nft list tables 2>/dev/null", "vpc-ipam"), 0);
        snat_free(s);
}
END_TEST

START_TEST(test_kernel_foreign_rule_kept) {
        enter_netns();
        /* someone else's rule at 1024 with another mark is not ours to delete */
        ck_assert_int_eq(system("ip rule add fwmark 0x40/0x40 lookup main prio 1024"), 0);
        snat *s = NULL;
        ck_assert_int_eq(snat_new(&s, NULL), 0);
        struct snat_input in = base_input();
        apply_ok(s, &in);
        ck_assert_int_eq(snat_remove(s, 0, NULL), 0);
        ck_assert_int_eq(fwmark_rules("0x80"), 0);
        ck_assert_int_eq(fwmark_rules("0x40"), 1);
        snat_free(s);
}
END_TEST

int main(int argc, char **argv) {
        bool kernel = argc > 1 && strcmp(argv[1], "--kernel") == 0;
        Suite *s = suite_create(kernel ? "snat-kernel" : "snat");
        TCase *tc = tcase_create(kernel ? "kernel" : "render");
        if (kernel) {
                tcase_set_timeout(tc, 60);
                tcase_add_test(tc, test_kernel_every_combination);
                tcase_add_test(tc, test_kernel_replace_in_place);
                tcase_add_test(tc, test_kernel_foreign_rule_kept);
                tcase_add_test(tc, test_kernel_ipv6_egress);
                tcase_add_test(tc, test_kernel_v6_egress);
        } else {
                tcase_add_test(tc, test_parse_random);
                tcase_add_test(tc, test_parse_cidrs);
                tcase_add_test(tc, test_parse_mark_and_prefix);
                tcase_add_test(tc, test_render_defaults);
                tcase_add_loop_test(tc, test_render_combinations, 0, 24);
                tcase_add_test(tc, test_render_external);
                tcase_add_test(tc, test_render_bad_inputs);
                tcase_add_test(tc, test_input_equal);
                tcase_add_test(tc, test_render_ipv6_egress);
                tcase_add_test(tc, test_render_v6_egress);
        }
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

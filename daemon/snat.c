/*
 * snat: the `ip vpc-ipam` table — parsing its variables, rendering it as an
 * nft script, and applying that script through libnftables (see snat.h).
 *
 * The table, for primary 10.0.0.4 on eth0, VPC 10.0.0.0/16, pods on eni*:
 *
 *   set vpc      { type ipv4_addr; flags interval; auto-merge; elements = { 10.0.0.0/16 } }
 *   set excluded { ...the exclusions... }
 *   chain prerouting {            # mangle priority: before the routing decision
 *     iifname "eth0" fib daddr . iif type local ct mark set ct mark or M     # NodePort support
 *     iifname "eni*" ct state new ip daddr != @vpc ip daddr != @excluded ct mark set ct mark or M
 *     iifname "eni*" ct mark and M == M meta mark set meta mark or M
 *   }
 *   chain postrouting {           # srcnat
 *     ip daddr @vpc return; ip daddr @excluded return
 *     oifname "eni*" return; oifname "vlan*" return; fib daddr type local return
 *     snat to 10.0.0.4 fully-random
 *   }
 *
 * The first prerouting rule is aws-node's mangle "--dst-type LOCAL
 * --limit-iface-in" mark; the second its AWS-CONNMARK-CHAIN; the third its
 * "--restore-mark --mask M" (only the bit is restored, the rest of the
 * packet's mark is kept). The postrouting chain is AWS-SNAT-CHAIN-0.
 * Interval sets auto-merge, so overlapping exclusions (or an exclusion inside
 * a VPC CIDR) are not an error.
 *
 * In IPv6 mode (snat_input.ipv6_egress) the table is instead:
 *
 *   chain postrouting {           # srcnat: aws-node's CNI-E4-<hash> chains, one rule for all pods
 *     ip saddr 169.254.172.0/22 ip daddr 224.0.0.0/4 return
 *     ip saddr 169.254.172.0/22 fib daddr type local return
 *     ip saddr 169.254.172.0/22 snat to 10.0.0.4 fully-random
 *   }
 *   chain forward {               # ipamd's "Block Node Local Pod access via IPv4"
 *     ip daddr 169.254.172.0/22 ct state new reject
 *   }
 *
 * With an IPv4 pod's IPv6 egress (snat_input.egress6_ip, ENABLE_V6_EGRESS),
 * also, whatever cfg.external says:
 *
 *   table ip6 vpc-ipam {
 *     chain postrouting { ip6 saddr fd00::ac:0/118 ip6 daddr ff00::/8 return; ...
 *                         fib daddr type local return; snat to <node IPv6> }
 *     chain forward { ip6 daddr fd00::ac:0/118 ct state new reject }
 *   }
 *
 * Every script first deletes aws-node's own nftables table, `ip aws-cni`
 * (its nat-prerouting and snat-mark chains, made when the host's iptables
 * is nft): on a node taken over from aws-node, ours replaces it in one
 * transaction. aws-node's iptables chains (AWS-SNAT-CHAIN-0,
 * AWS-CONNMARK-CHAIN-0) are not touched: see docs/operations.md.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "snat.h"

/* --- parsing the variables ------------------------------------------------------ */

void snat_config_defaults(struct snat_config *ret) {
        *ret = (struct snat_config){ .random = SNAT_RANDOM_PRNG, .node_port = true, .mark = SNAT_MARK_DEFAULT,
                                     .veth_prefix = "eni" };
}

static const char *const random_names[] = {
        [SNAT_RANDOM_PRNG] = "prng", [SNAT_RANDOM_HASH] = "hashrandom", [SNAT_RANDOM_NONE] = "none" };

const char *snat_random_name(enum snat_random r) {
        return (unsigned)r < sizeof random_names / sizeof random_names[0] ? random_names[r] : "?";
}

int snat_parse_random(const char *name, const char *value, enum snat_random *ret, struct errmsg *err) {
        for (size_t i = 0; i < sizeof random_names / sizeof random_names[0]; i++)
                if (strcmp(value, random_names[i]) == 0) {
                        *ret = (enum snat_random)i;
                        return 0;
                }
        return errmsg_set(err, -EINVAL, "%s=%s: accepted: prng, hashrandom, none", name, value);
}

/* "a.b.c.d/n" with no host bits; the text must be exactly that. */
static int cidr_check(const char *s) {
        char ip[16];
        const char *slash = strchr(s, '/');
        if (!slash || (size_t)(slash - s) >= sizeof ip || !isdigit((unsigned char)slash[1]))
                return -EINVAL;
        memcpy(ip, s, (size_t)(slash - s));
        ip[slash - s] = '\0';
        char *end;
        unsigned long plen = strtoul(slash + 1, &end, 10);
        struct in_addr a;
        if (*end || plen > 32 || strlen(slash + 1) > 2 || inet_pton(AF_INET, ip, &a) != 1)
                return -EINVAL;
        uint32_t base = ntohl(a.s_addr), mask = plen ? ~0u << (32 - plen) : 0;
        return base & ~mask ? -EDOM : 0;
}

static int add_exclusion(const char *name, const char *item, struct snat_config *c, struct errmsg *err) {
        int r = cidr_check(item);
        if (r == -EDOM)
                return errmsg_set(err, -EINVAL, "%s: \"%s\" has host bits set; give the network address", name,
                                  item);
        if (r < 0)
                return errmsg_set(err, -EINVAL, "%s: \"%s\" is not an IPv4 CIDR (a.b.c.d/n); accepted: a "
                                  "comma-separated list of IPv4 CIDRs", name, item);
        if (c->n_exclude == SNAT_MAX_EXCLUDE)
                return errmsg_set(err, -ERANGE, "%s: more than %d CIDRs", name, SNAT_MAX_EXCLUDE);
        snprintf(c->exclude[c->n_exclude++], SNAT_CIDR_LEN, "%s", item);
        return 0;
}

int snat_parse_cidrs(const char *name, const char *value, struct snat_config *c, struct errmsg *err) {
        struct snat_config tmp = *c;
        tmp.n_exclude = 0;
        const char *p = value;
        while (*p) {
                while (*p == ' ' || *p == '\t')
                        p++;
                size_t n = strcspn(p, ",");
                char item[64];
                size_t len = n;
                while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                        len--;
                if (len == 0 || len >= sizeof item)
                        return errmsg_set(err, -EINVAL, "%s=%s: an empty or overlong item; accepted: a "
                                          "comma-separated list of IPv4 CIDRs", name, value);
                memcpy(item, p, len);
                item[len] = '\0';
                int r = add_exclusion(name, item, &tmp, err);
                if (r < 0)
                        return r;
                p += n;
                if (*p == ',' && !*++p)
                        return errmsg_set(err, -EINVAL, "%s=%s: ends with a comma", name, value);
        }
        *c = tmp;
        return 0;
}

int snat_parse_mark(const char *name, const char *value, uint32_t *ret, struct errmsg *err) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(value, &end, 0);
        if (errno || end == value || *end || value[0] == '-' || value[0] == '+' || isspace((unsigned char)value[0]) ||
            v == 0 || v > UINT32_MAX)
                return errmsg_set(err, -EINVAL, "%s=%s: accepted: a non-zero 32-bit mark, hex (0x80) or decimal",
                                  name, value);
        *ret = (uint32_t)v;
        return 0;
}

int snat_parse_veth_prefix(const char *name, const char *value, char ret[static SNAT_VETH_PREFIX_MAX + 1],
                           struct errmsg *err) {
        size_t n = strlen(value);
        bool ok = n >= 1 && n <= SNAT_VETH_PREFIX_MAX && isalpha((unsigned char)value[0]);
        for (size_t i = 0; ok && i < n; i++)
                ok = isalnum((unsigned char)value[i]);
        if (!ok)
                return errmsg_set(err, -EINVAL, "%s=%s: accepted: 1-%d letters or digits, a letter first", name,
                                  value, SNAT_VETH_PREFIX_MAX);
        if (strcmp(value, "eth") == 0 || strcmp(value, "lo") == 0 || strcmp(value, "vlan") == 0)
                return errmsg_set(err, -EINVAL, "%s=%s: reserved (eth, lo and vlan name other links)", name, value);
        memcpy(ret, value, n + 1);
        return 0;
}

/* --- rendering -------------------------------------------------------------------- */

bool snat_input_equal(const struct snat_input *a, const struct snat_input *b) {
        const struct snat_config *x = &a->cfg, *y = &b->cfg;
        if (x->external != y->external || x->random != y->random || x->node_port != y->node_port ||
            x->mark != y->mark || strcmp(x->veth_prefix, y->veth_prefix) || x->n_exclude != y->n_exclude ||
            strcmp(a->primary_ip, b->primary_ip) || strcmp(a->primary_if, b->primary_if) ||
            a->n_vpc_cidrs != b->n_vpc_cidrs || a->ipv6_egress != b->ipv6_egress ||
            strcmp(a->egress6_ip, b->egress6_ip))
                return false;
        for (size_t i = 0; i < x->n_exclude; i++)
                if (strcmp(x->exclude[i], y->exclude[i]))
                        return false;
        for (size_t i = 0; i < a->n_vpc_cidrs; i++)
                if (strcmp(a->vpc_cidrs[i], b->vpc_cidrs[i]))
                        return false;
        return true;
}

/* Adding an empty table first makes the delete succeed when there is none. */
/* aws-node's nftables table goes in the same transaction as ours is (re)made
 * or removed: a node taken over never SNATs twice, nor has a moment without. */
#define REMOVE_SCRIPT                                                                   \
        "table ip " SNAT_AWSNODE_TABLE " {}\ndelete table ip " SNAT_AWSNODE_TABLE "\n" \
        "table ip " SNAT_TABLE " {}\ndelete table ip " SNAT_TABLE "\n"                          \
        "table ip6 " SNAT_TABLE " {}\ndelete table ip6 " SNAT_TABLE "\n"

const char *snat_render_remove(void) {
        return REMOVE_SCRIPT;
}

static bool ifname_ok(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n >= SNAT_IFNAME_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("-_.@", s[i]))
                        return false;
        return true;
}

static int check_input(const struct snat_input *in, struct errmsg *err) {
        struct in_addr a;
        char tmp[SNAT_VETH_PREFIX_MAX + 1];
        if (inet_pton(AF_INET, in->primary_ip, &a) != 1)
                return errmsg_set(err, -EINVAL, "snat: primary IP \"%s\" is not an IPv4 address", in->primary_ip);
        if (!ifname_ok(in->primary_if))
                return errmsg_set(err, -EINVAL, "snat: \"%s\" is not a link name", in->primary_if);
        if (snat_parse_veth_prefix("snat: pod link prefix", in->cfg.veth_prefix, tmp, err) < 0)
                return -EINVAL;
        if (in->cfg.mark == 0)
                return errmsg_set(err, -EINVAL, "snat: the connmark bit must not be 0");
        if (in->n_vpc_cidrs == 0 || in->n_vpc_cidrs > SNAT_MAX_VPC_CIDRS || in->cfg.n_exclude > SNAT_MAX_EXCLUDE)
                return errmsg_set(err, -EINVAL, "snat: %zu VPC CIDRs and %zu exclusions; 1-%d and 0-%d accepted",
                                  in->n_vpc_cidrs, in->cfg.n_exclude, SNAT_MAX_VPC_CIDRS, SNAT_MAX_EXCLUDE);
        for (size_t i = 0; i < in->n_vpc_cidrs; i++)
                if (cidr_check(in->vpc_cidrs[i]) < 0)
                        return errmsg_set(err, -EINVAL, "snat: VPC CIDR \"%s\" is not an IPv4 network", in->vpc_cidrs[i]);
        for (size_t i = 0; i < in->cfg.n_exclude; i++)
                if (cidr_check(in->cfg.exclude[i]) < 0)
                        return errmsg_set(err, -EINVAL, "snat: exclusion \"%s\" is not an IPv4 network",
                                          in->cfg.exclude[i]);
        return 0;
}

/* IPv6 mode: only the primary IP matters (the rest of the input is not IPv4 pods' business). */
static int check_egress_input(const struct snat_input *in, struct errmsg *err) {
        struct in_addr a;
        if (inet_pton(AF_INET, in->primary_ip, &a) != 1)
                return errmsg_set(err, -EINVAL, "snat: primary IP \"%s\" is not an IPv4 address", in->primary_ip);
        return 0;
}

/* The node's IPv6 of an IPv4 pod's IPv6 egress, when there is one. */
static int check_egress6_input(const struct snat_input *in, struct errmsg *err) {
        struct in6_addr a;
        if (in->egress6_ip[0] && inet_pton(AF_INET6, in->egress6_ip, &a) != 1)
                return errmsg_set(err, -EINVAL, "snat: node IPv6 \"%s\" is not an IPv6 address", in->egress6_ip);
        return 0;
}

/* The egress of one family (fam "ip" or "ip6"): the range's packets SNATed to `to`, but multicast and
 * the node's own; new connections forwarded to the range rejected. */
static void put_egress(FILE *f, const char *fam, const char *range, const char *mcast, const char *to,
                       enum snat_random random) {
        static const char *const flags[] = {
                [SNAT_RANDOM_PRNG] = " fully-random", [SNAT_RANDOM_HASH] = " random", [SNAT_RANDOM_NONE] = "" };
        fprintf(f, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                "\t\t%s saddr %s %s daddr %s return\n\t\t%s saddr %s fib daddr type local return\n"
                "\t\t%s saddr %s snat to %s%s\n\t}\n", fam, range, fam, mcast, fam, range, fam, range, to,
                flags[random <= SNAT_RANDOM_NONE ? random : SNAT_RANDOM_PRNG]);
        fprintf(f, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
                "\t\t%s daddr %s ct state new reject\n\t}\n", fam, range);
}

static void put_set(FILE *f, const char *name, const char (*cidrs)[SNAT_CIDR_LEN], size_t n) {
        fprintf(f, "\tset %s {\n\t\ttype ipv4_addr; flags interval; auto-merge;\n", name);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i == 0 ? "\t\telements = { " : ", ", cidrs[i]);
        fprintf(f, "%s\t}\n", n ? " }\n" : "");
}

static void put_prerouting(FILE *f, const struct snat_input *in) {
        const char *pods = in->cfg.veth_prefix;
        uint32_t m = in->cfg.mark;
        fprintf(f, "\tchain prerouting {\n\t\ttype filter hook prerouting priority mangle; policy accept;\n");
        if (in->cfg.node_port)
                fprintf(f, "\t\tiifname \"%s\" fib daddr . iif type local ct mark set ct mark or 0x%x\n",
                        in->primary_if, m);
        fprintf(f, "\t\tiifname \"%s*\" ct state new ip daddr != @vpc ip daddr != @excluded "
                "ct mark set ct mark or 0x%x\n", pods, m);
        fprintf(f, "\t\tiifname \"%s*\" ct mark and 0x%x == 0x%x meta mark set meta mark or 0x%x\n", pods, m, m, m);
        fprintf(f, "\t}\n");
}

static void put_postrouting(FILE *f, const struct snat_input *in) {
        static const char *const flags[] = {
                [SNAT_RANDOM_PRNG] = " fully-random", [SNAT_RANDOM_HASH] = " random", [SNAT_RANDOM_NONE] = "" };
        fprintf(f, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                "\t\tip daddr @vpc return\n\t\tip daddr @excluded return\n"
                "\t\toifname \"%s*\" return\n\t\toifname \"vlan*\" return\n"
                "\t\tfib daddr type local return\n"
                "\t\tsnat to %s%s\n\t}\n", in->cfg.veth_prefix, in->primary_ip,
                flags[in->cfg.random <= SNAT_RANDOM_NONE ? in->cfg.random : SNAT_RANDOM_PRNG]);
}

/* The ip table (unless cfg.external), then the ip6 one (with egress6_ip). */
static void put_tables(FILE *f, const struct snat_input *in) {
        if (!in->cfg.external) {
                fprintf(f, "table ip %s {\n", SNAT_TABLE);
                if (in->ipv6_egress) {
                        put_egress(f, "ip", SNAT_EGRESS4_CIDR, "224.0.0.0/4", in->primary_ip, in->cfg.random);
                } else {
                        put_set(f, "vpc", in->vpc_cidrs, in->n_vpc_cidrs);
                        put_set(f, "excluded", in->cfg.exclude, in->cfg.n_exclude);
                        put_prerouting(f, in);
                        put_postrouting(f, in);
                }
                fprintf(f, "}\n");
        }
        if (in->egress6_ip[0]) {
                fprintf(f, "table ip6 %s {\n", SNAT_TABLE);
                put_egress(f, "ip6", SNAT_EGRESS6_CIDR, "ff00::/8", in->egress6_ip, in->cfg.random);
                fprintf(f, "}\n");
        }
}

int snat_render(const struct snat_input *in, char **ret, struct errmsg *err) {
        int r = check_egress6_input(in, err);
        if (r >= 0 && !in->cfg.external)
                r = in->ipv6_egress ? check_egress_input(in, err) : check_input(in, err);
        if (r < 0)
                return r;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return errmsg_set(err, -ENOMEM, "snat: out of memory");
        fprintf(f, "%s", REMOVE_SCRIPT);
        put_tables(f, in);
        if (fclose(f) != 0) {
                free(buf);
                return errmsg_set(err, -ENOMEM, "snat: out of memory");
        }
        *ret = buf;
        return 0;
}

/* --- applying ------------------------------------------------------------------------ */

struct snat {
        struct nft_ctx *nft;
        struct snat_input applied;      /* the last input applied in full */
        bool have_applied;
};

int snat_new(snat **ret, struct errmsg *err) {
        snat *s = calloc(1, sizeof *s);
        if (!s || !(s->nft = nft_ctx_new(NFT_CTX_DEFAULT))) {
                free(s);
                return errmsg_set(err, -ENOMEM, "snat: cannot create a libnftables context");
        }
        /* Keep nft's messages for errmsg instead of letting it print them. */
        nft_ctx_buffer_output(s->nft);
        nft_ctx_buffer_error(s->nft);
        *ret = s;
        return 0;
}

snat *snat_free(snat *s) {
        if (!s)
                return NULL;
        nft_ctx_free(s->nft);
        free(s);
        return NULL;
}

/* Run one script: libnftables makes it one transaction (all of it, or nothing). */
static int run_script(snat *s, const char *script, struct errmsg *err) {
        int rc = nft_run_cmd_from_buffer(s->nft, script);
        const char *msg = nft_ctx_get_error_buffer(s->nft);
        if (rc != 0) {
                char first[200] = "";
                if (msg)
                        snprintf(first, sizeof first, "%.*s", (int)strcspn(msg, "\n"), msg);
                return errmsg_set(err, -EIO, "nftables table ip %s: %s", SNAT_TABLE,
                                  first[0] ? first : "the kernel refused the change");
        }
        return 0;
}

static int apply_now(snat *s, const struct snat_input *in, struct errmsg *err) {
        if (in->cfg.external && !in->egress6_ip[0])
                return snat_remove(s, in->cfg.mark, err);
        char *script = NULL;
        int r = snat_render(in, &script, err);
        if (r < 0)
                return r;
        r = run_script(s, script, err);
        free(script);
        if (r < 0)
                return r;
        /* no IPv4 pod to route by mark (IPv6 mode) or no SNAT of them (external): a rule left before goes */
        if (in->ipv6_egress || in->cfg.external)
                return snat_rule_remove(s->have_applied ? s->applied.cfg.mark : in->cfg.mark, err);
        /* A changed mark leaves the old one's rule behind otherwise. */
        if (s->have_applied && s->applied.cfg.mark != in->cfg.mark &&
            (r = snat_rule_remove(s->applied.cfg.mark, err)) < 0)
                return r;
        return snat_rule_ensure(in->cfg.mark, err);
}

int snat_apply(snat *s, const struct snat_input *in, bool *ret_changed, struct errmsg *err) {
        if (s->have_applied && snat_input_equal(&s->applied, in)) {
                if (ret_changed)
                        *ret_changed = false;
                return 0;
        }
        int r = apply_now(s, in, err);
        if (r < 0)
                return r;
        s->applied = *in;
        s->have_applied = true;
        if (ret_changed)
                *ret_changed = true;
        return 0;
}

int snat_remove(snat *s, uint32_t mark, struct errmsg *err) {
        s->have_applied = false;
        int r = run_script(s, REMOVE_SCRIPT, err);
        int r2 = snat_rule_remove(mark ? mark : SNAT_MARK_DEFAULT, r < 0 ? NULL : err);
        return r < 0 ? r : r2;
}

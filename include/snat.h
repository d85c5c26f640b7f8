/*
 * snat: egress beyond the VPC — vpc-ipamd's nftables table `ip vpc-ipam` and
 * the connmark policy rule, as aws-node's AWS-SNAT-CHAIN and connmark rules.
 *
 * Pods hold VPC addresses, but only the node's primary address has a way to
 * the internet, so traffic from pods to anything outside every VPC CIDR (and
 * outside AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS) that leaves through a non-pod
 * interface is SNATed to the primary ENI's primary IP. A connection that
 * needs the primary ENI — a pod's connection beyond the VPC, or (with
 * AWS_VPC_CNI_NODE_PORT_SUPPORT) one that came in on the primary ENI to a
 * local address and was forwarded to a pod — carries the connmark bit
 * AWS_VPC_K8S_CNI_CONNMARK; packets from pods get it back as their fwmark,
 * and the rule "fwmark M/M lookup main" at priority SNAT_RULE_PRIO routes them
 * out of the primary ENI rather than the pod's own ENI (whose source check
 * would drop the primary's address). AWS_VPC_K8S_CNI_EXTERNALSNAT=true: none
 * of it — the table and the rule are removed. Either way aws-node's table
 * `ip aws-cni` is deleted in the same transaction (a node taken over).
 *
 * Rendering (inputs → nft script text) is pure and separate from applying
 * it. Applying is one libnftables run that deletes and re-adds the whole
 * table: a single transaction, so the table is never seen half-built.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#define SNAT_TABLE "vpc-ipam"             /* nft table, family ip */
#define SNAT_AWSNODE_TABLE "aws-cni"      /* aws-node's, deleted with every apply or removal */
#define SNAT_RULE_PRIO 1024               /* "fwmark M/M lookup main", as aws-node */
#define SNAT_MAX_EXCLUDE 32
#define SNAT_MAX_VPC_CIDRS 8
#define SNAT_CIDR_LEN 19                  /* "255.255.255.255/32" and the NUL */
#define SNAT_IFNAME_LEN 16                /* IFNAMSIZ */
#define SNAT_VETH_PREFIX_MAX 4            /* as aws-node's AWS_VPC_K8S_CNI_VETHPREFIX */
#define SNAT_MARK_DEFAULT 0x80u
#define SNAT_EGRESS4_CIDR "169.254.172.0/22"   /* IPv6 pods' IPv4 egress addresses (aws-node's egress-cni) */
#define SNAT_EGRESS4_CIDR_BASE "169.254.172.0"
#define SNAT_EGRESS6_CIDR "fd00::ac:0/118"     /* IPv4 pods' IPv6 egress addresses (ENABLE_V6_EGRESS) */

enum snat_random {
        SNAT_RANDOM_PRNG,                 /* "prng": fully-random source ports (the default) */
        SNAT_RANDOM_HASH,                 /* "hashrandom": random */
        SNAT_RANDOM_NONE,                 /* "none" */
};

/* What the environment says (ipamd-config parses it with the functions below). */
struct snat_config {
        bool external;                    /* AWS_VPC_K8S_CNI_EXTERNALSNAT */
        enum snat_random random;          /* AWS_VPC_K8S_CNI_RANDOMIZESNAT */
        char exclude[SNAT_MAX_EXCLUDE][SNAT_CIDR_LEN];   /* AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS */
        size_t n_exclude;
        bool node_port;                   /* AWS_VPC_CNI_NODE_PORT_SUPPORT */
        uint32_t mark;                    /* AWS_VPC_K8S_CNI_CONNMARK, never 0 */
        char veth_prefix[SNAT_VETH_PREFIX_MAX + 1];      /* AWS_VPC_K8S_CNI_VETHPREFIX: pod links */
};

/* Everything the table is built from; equal inputs give the same table. */
struct snat_input {
        struct snat_config cfg;
        char primary_ip[16];              /* the primary ENI's primary IP */
        char primary_if[SNAT_IFNAME_LEN]; /* its link, e.g. "eth0" */
        char vpc_cidrs[SNAT_MAX_VPC_CIDRS][SNAT_CIDR_LEN];
        size_t n_vpc_cidrs;
        /*
         * IPv6 mode: the table holds only the IPv4 egress of IPv6 pods, as
         * aws-node's egress-cni and ipamd's FORWARD rule: packets from
         * SNAT_EGRESS4_CIDR to a non-multicast destination are SNATed to
         * primary_ip; new connections forwarded to SNAT_EGRESS4_CIDR are
         * rejected. VPC CIDRs, exclusions, the connmark and its fwmark rule
         * do not apply (no IPv4 pod); cfg.random still chooses the port flag.
         */
        bool ipv6_egress;
        /*
         * IPv4 mode with ENABLE_V6_EGRESS: the node's IPv6 address; "" for
         * none. The table of family ip6 of the same name then holds the IPv6
         * egress of IPv4 pods, as aws-node's egress-cni (ip6tables CNI-E6-)
         * and FORWARD rule: packets from SNAT_EGRESS6_CIDR to a non-multicast
         * destination SNATed to it, new connections forwarded to the range
         * rejected. It stays with cfg.external (aws-node's egress plugin
         * SNATs whatever AWS_VPC_K8S_CNI_EXTERNALSNAT says).
         */
        char egress6_ip[46];
};

/* aws-node's defaults: SNAT on, prng, no exclusions, NodePort support, mark 0x80, "eni". */
void snat_config_defaults(struct snat_config *ret);

/* Strict parsers for the variables; name is the variable, for the message. */
int snat_parse_random(const char *name, const char *value, enum snat_random *ret, struct errmsg *err);
/* "a.b.c.d/n,..." (blanks around items allowed, "" = none); host bits are an error. */
int snat_parse_cidrs(const char *name, const char *value, struct snat_config *c, struct errmsg *err);
/* "0x80" or "128": a non-zero 32-bit mark. */
int snat_parse_mark(const char *name, const char *value, uint32_t *ret, struct errmsg *err);
/* 1-4 letters or digits, a letter first; not eth, lo or vlan (as aws-node). */
int snat_parse_veth_prefix(const char *name, const char *value, char ret[static SNAT_VETH_PREFIX_MAX + 1],
                           struct errmsg *err);

const char *snat_random_name(enum snat_random r);

/* Whether a and b build the same table. */
bool snat_input_equal(const struct snat_input *a, const struct snat_input *b);

/*
 * The nft script that replaces the table (delete + add, one transaction), or
 * with cfg.external the one that only removes it. *ret is malloc'd. -EINVAL
 * naming the field for an input nft must not see (bad address, CIDR, link
 * name or prefix; no VPC CIDR).
 */
int snat_render(const struct snat_input *in, char **ret, struct errmsg *err);

/* The script that removes the table, whether it exists or not. */
const char *snat_render_remove(void);

typedef struct snat snat;

/* A libnftables context, working in the caller's network namespace. */
int snat_new(snat **ret, struct errmsg *err);
snat *snat_free(snat *s);

/*
 * Bring the table and the fwmark rule to what in asks for (with
 * cfg.external: remove both). The table is replaced in one transaction; the
 * rule is added when missing. When in equals the input of the last success
 * on this handle nothing is sent and *ret_changed (may be NULL) is false.
 * Not thread-safe: one handle per thread.
 */
int snat_apply(snat *s, const struct snat_input *in, bool *ret_changed, struct errmsg *err);

/* Remove the table and the rule for mark (0: SNAT_MARK_DEFAULT); missing is fine. */
int snat_remove(snat *s, uint32_t mark, struct errmsg *err);

/* --- snat-rule.c: the policy rule, through netlink --------------------------------- */

/* "fwmark mark/mark lookup main" at SNAT_RULE_PRIO, added unless present. */
int snat_rule_ensure(uint32_t mark, struct errmsg *err);
/* Delete every such rule (at SNAT_RULE_PRIO with that mark and mask); none is fine. */
int snat_rule_remove(uint32_t mark, struct errmsg *err);

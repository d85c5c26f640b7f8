/*
 * imds: the EC2 instance metadata service, IMDSv2 only.
 *
 * A session token (PUT /latest/api/token with a TTL) is fetched on first use,
 * reused until shortly before it expires, and fetched again when a request
 * gets 401. The endpoint is opts->endpoint, else
 * $AWS_EC2_METADATA_SERVICE_ENDPOINT, else http://169.254.169.254. One imds
 * handle per thread (it owns an awshttp handle).
 *
 * The typed getters parse bodies strictly: a body that is not exactly the
 * expected shape (one id, one MAC, lines of addresses or CIDRs, no blank or
 * padded lines, no control characters) is -EBADMSG, never a guess. A 404 is
 * -ENOENT, except for the optional per-ENI lists (ipv4-prefix, local-ipv4s,
 * security-group-ids, vpc-ipv4-cidr-blocks, and every IPv6 key) where it
 * means "none".
 */
#pragma once

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "awshttp.h"
#include "cloudclock.h"
#include "errmsg.h"

#define IMDS_ID_MAX 64
#define IMDS_MAC_LEN 18         /* "02:00:00:00:00:01" plus NUL */

typedef struct imds imds;

struct imds_options {
        const char *endpoint;           /* NULL: $AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254 */
        unsigned token_ttl_s;           /* 0: 21600 */
        struct awshttp_options http;    /* 0 timeouts: 1 s connect, 2 s total */
        const struct cloud_clock *clock;  /* NULL: the system clock */
};

struct imds_cidr {
        struct in_addr addr;
        uint8_t len;
};

struct imds_eni {
        char mac[IMDS_MAC_LEN];
        int device_number;
        int network_card;               /* 0 when IMDS has no network-card entry */
        char interface_id[IMDS_ID_MAX];
        char subnet_id[IMDS_ID_MAX];
        struct imds_cidr subnet_cidr;
        struct imds_cidr *vpc_cidrs;
        size_t n_vpc_cidrs;
        char (*security_groups)[IMDS_ID_MAX];
        size_t n_security_groups;
        struct in_addr *local_ipv4s;    /* primary first, as IMDS lists them */
        size_t n_local_ipv4s;
        struct imds_cidr *prefixes;
        size_t n_prefixes;
};

/* IPv6 (aws-vpc-cni-modes.md §2): absent keys (404) on a VPC without IPv6, as on EC2. */
struct imds_cidr6 {
        struct in6_addr addr;
        uint8_t len;
};

struct imds_eni6 {
        struct in6_addr *ipv6s;         /* ipv6s; none when absent */
        size_t n_ipv6s;
        struct imds_cidr6 *prefixes;    /* ipv6-prefix: the /80s */
        size_t n_prefixes;
        struct imds_cidr6 subnet_cidr;  /* subnet-ipv6-cidr-blocks (one CIDR); len 0 when absent */
        struct imds_cidr6 *vpc_cidrs;   /* vpc-ipv6-cidr-blocks */
        size_t n_vpc_cidrs;
};

int imds_new(const struct imds_options *opts, imds **ret, struct errmsg *err);
imds *imds_free(imds *m);
const char *imds_endpoint(const imds *m);

/* GET /latest/<path> (e.g. "meta-data/instance-id"); *ret is malloc'd, NUL-terminated. */
int imds_get(imds *m, const char *path, char **ret, size_t *ret_len, struct errmsg *err);

int imds_instance_id(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err);
int imds_instance_type(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err);
int imds_region(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err);
int imds_availability_zone(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err);
int imds_primary_mac(imds *m, char ret[static IMDS_MAC_LEN], struct errmsg *err);
int imds_macs(imds *m, char (**ret)[IMDS_MAC_LEN], size_t *ret_n, struct errmsg *err);
int imds_eni(imds *m, const char *mac, struct imds_eni **ret, struct errmsg *err);
struct imds_eni *imds_eni_free(struct imds_eni *e);
/*
 * The IPv6 view of the ENI with this MAC: four more reads, so apart from
 * imds_eni (IPv4 nodes never pay for them). Each key absent (404) is "none".
 */
int imds_eni6(imds *m, const char *mac, struct imds_eni6 **ret, struct errmsg *err);
struct imds_eni6 *imds_eni6_free(struct imds_eni6 *e);
/* meta-data/ipv6: the primary ENI's first IPv6 address; -ENOENT when the instance has none. */
int imds_ipv6(imds *m, struct in6_addr *ret, struct errmsg *err);

/* The strict body parsers (pure functions; fuzzed by tests/fuzz/fuzz-imds.c). */
/* One token of [A-Za-z0-9._-], optionally prefixed (e.g. "i-", "subnet-"). */
int imds_parse_id(const char *body, size_t len, const char *prefix, char ret[static IMDS_ID_MAX]);
int imds_parse_mac(const char *body, size_t len, char ret[static IMDS_MAC_LEN]);
/* The macs/ listing: "02:..:01/\n02:..:02/" (trailing slash optional). */
int imds_parse_mac_list(const char *body, size_t len, char (**ret)[IMDS_MAC_LEN], size_t *ret_n);
int imds_parse_uint(const char *body, size_t len, unsigned max, unsigned *ret);
int imds_parse_ipv4_list(const char *body, size_t len, struct in_addr **ret, size_t *ret_n);
int imds_parse_cidr_list(const char *body, size_t len, struct imds_cidr **ret, size_t *ret_n);
/* IPv6 addresses and CIDRs (host bits clear), one a line, as inet_pton reads them. */
int imds_parse_ipv6_list(const char *body, size_t len, struct in6_addr **ret, size_t *ret_n);
int imds_parse_cidr6_list(const char *body, size_t len, struct imds_cidr6 **ret, size_t *ret_n);
int imds_parse_id_list(const char *body, size_t len, const char *prefix,
                       char (**ret)[IMDS_ID_MAX], size_t *ret_n);

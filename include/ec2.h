/*
 * ec2: the EC2 Query API calls vpc-ipam makes, one typed function each.
 *
 * An ec2_client is used by one thread at a time (it owns one awshttp handle,
 * so connections are reused). It signs each request with SigV4 using the
 * credentials chain (creds.h), takes a token from the shared client-side rate
 * limiter (ratelimit.h) before each attempt, and retries only what is worth
 * retrying: throttling, 5xx and transport errors, with capped exponential
 * backoff and full jitter. CreateNetworkInterface carries a ClientToken that
 * stays the same across retries, so a retried create cannot make two ENIs.
 *
 * Every call returns 0 or a negative errno, and on failure fills a struct
 * ec2_error (HTTP status, EC2 code, message, request id, retryable). Results
 * come back in one struct ec2_result that owns all its strings; free it with
 * ec2_result_free().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awshttp.h"
#include "cloudclock.h"
#include "creds.h"
#include "errmsg.h"
#include "imds.h"
#include "ratelimit.h"

#define EC2_API_VERSION "2016-11-15"

enum ec2_action {
        EC2_DESCRIBE_INSTANCES,
        EC2_DESCRIBE_INSTANCE_TYPES,
        EC2_DESCRIBE_SUBNETS,
        EC2_DESCRIBE_NETWORK_INTERFACES,
        EC2_CREATE_NETWORK_INTERFACE,
        EC2_ATTACH_NETWORK_INTERFACE,
        EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE,
        EC2_ASSIGN_PRIVATE_IP_ADDRESSES,
        EC2_UNASSIGN_PRIVATE_IP_ADDRESSES,
        EC2_DETACH_NETWORK_INTERFACE,
        EC2_DELETE_NETWORK_INTERFACE,
        EC2_CREATE_TAGS,
        EC2_ASSIGN_IPV6_ADDRESSES,
        EC2_UNASSIGN_IPV6_ADDRESSES,
        _EC2_ACTION_MAX,
};

struct ec2_error {
        struct errmsg msg;              /* one sentence for the log */
        long http_status;               /* 0: no HTTP response (transport error) */
        char code[96];                  /* EC2 error code, "" if none */
        char message[256];
        char request_id[80];
        bool retryable;                 /* the last failure was of a retryable kind */
        unsigned attempts;              /* attempts made */
};

struct ec2_tag {
        const char *key;
        const char *value;
};

struct ec2_private_ip {
        const char *address;
        bool primary;
};

struct ec2_attachment {
        const char *id;
        int device_index;
        int network_card;
        const char *instance_id;        /* NULL inside DescribeInstances (it is the instance) */
        const char *status;             /* attaching, attached, detaching, detached */
        bool delete_on_termination;
};

struct ec2_eni {
        const char *id, *mac, *status, *subnet_id, *vpc_id, *availability_zone;
        const char *description, *primary_ip, *interface_type;
        struct ec2_private_ip *private_ips;     /* primary included */
        size_t n_private_ips;
        const char **prefixes;                  /* "10.0.1.16/28" */
        size_t n_prefixes;
        const char **ipv6s;                     /* ipv6AddressesSet: "2600:1f14:abc:de00::10" */
        size_t n_ipv6s;
        const char **ipv6_prefixes;             /* ipv6PrefixSet: "2600:1f14:abc:de00:1234::/80" */
        size_t n_ipv6_prefixes;
        const char **security_groups;
        size_t n_security_groups;
        bool attached;
        struct ec2_attachment attachment;
        struct ec2_tag *tags;
        size_t n_tags;
};

struct ec2_instance {
        const char *id, *type, *state, *availability_zone, *subnet_id, *vpc_id, *private_ip;
        struct ec2_eni *enis;
        size_t n_enis;
};

struct ec2_network_card {
        int index;
        int max_enis;
};

struct ec2_instance_type {
        const char *type;
        const char *hypervisor;         /* "nitro", "xen", NULL */
        bool bare_metal;
        int max_enis;
        int ipv4_per_eni;               /* primary included */
        int ipv6_per_eni;
        bool ipv6_supported;
        int default_network_card;
        struct ec2_network_card *cards;
        size_t n_cards;
};

struct ec2_subnet {
        const char *id, *vpc_id, *availability_zone, *cidr, *state;
        long available_ips;
        const char **ipv6_cidrs;                /* ipv6CidrBlockAssociationSet, associated ones only */
        size_t n_ipv6_cidrs;
        struct ec2_tag *tags;
        size_t n_tags;
};

struct ec2_result {
        enum ec2_action action;
        const char *request_id;
        struct ec2_eni *enis;                   /* DescribeNetworkInterfaces; Create (one) */
        size_t n_enis;
        const char *next_token;                 /* DescribeNetworkInterfaces page; NULL at the end */
        struct ec2_instance *instances;         /* DescribeInstances */
        size_t n_instances;
        struct ec2_instance_type *types;        /* DescribeInstanceTypes */
        size_t n_types;
        struct ec2_subnet *subnets;             /* DescribeSubnets */
        size_t n_subnets;
        const char *eni_id;                     /* Assign/UnassignIpv6Addresses, AssignPrivateIpAddresses */
        const char **ips;                       /* AssignPrivateIpAddresses: addresses in the response;
                                                   Assign/UnassignIpv6Addresses: the IPv6 addresses */
        size_t n_ips;
        const char **prefixes;                  /* AssignPrivateIpAddresses: prefixes assigned;
                                                   Assign/UnassignIpv6Addresses: the IPv6 prefixes */
        size_t n_prefixes;
        const char *attachment_id;              /* AttachNetworkInterface */
        int network_card;
        struct arena *arena_;                   /* owns everything above */
};

struct ec2_filter {
        const char *name;                       /* "tag:cluster", "status", "vpc-id", ... */
        const char *const *values;
        size_t n_values;
};

typedef struct ec2_client ec2_client;

struct ec2_options {
        const char *region;             /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, then IMDS */
        const char *endpoint;           /* NULL: $AWS_ENDPOINT_URL_EC2, $AWS_ENDPOINT_URL, https://ec2.<region>.amazonaws.com
                                         * (vpc-ipamd: aws-node's AWS_EC2_ENDPOINT, when set) */
        struct awshttp_options http;    /* vpc-ipamd: total_timeout_ms from HTTP_TIMEOUT; also the credentials' */
        unsigned max_attempts;          /* 0: 5 */
        uint64_t backoff_base_ns;       /* 0: 100 ms */
        uint64_t backoff_cap_ns;        /* 0: 5 s */
        ratelimit *limits;              /* shared, borrowed; NULL: no client-side limit */
        creds_provider *creds;          /* borrowed; NULL: the client builds the default chain */
        imds *imds;                     /* borrowed, for the region; NULL: created when needed */
        const struct cloud_clock *clock;  /* NULL: the system clock */
        uint64_t seed;                  /* jitter seed; 0: random */
};

int ec2_client_new(const struct ec2_options *opts, ec2_client **ret, struct errmsg *err);
ec2_client *ec2_client_free(ec2_client *c);
const char *ec2_client_region(const ec2_client *c);
const char *ec2_client_endpoint(const ec2_client *c);
/* TCP/TLS connections the client has opened (keep-alive keeps this at 1). */
unsigned long ec2_client_connections(const ec2_client *c);

/* The calls. ret receives a result on success (n_* may be 0); err may be NULL. */
int ec2_describe_instance(ec2_client *c, const char *instance_id, struct ec2_result **ret, struct ec2_error *err);
int ec2_describe_instance_types(ec2_client *c, const char *const *types, size_t n,
                                struct ec2_result **ret, struct ec2_error *err);
int ec2_describe_subnets(ec2_client *c, const char *const *ids, size_t n_ids,
                         const struct ec2_filter *filters, size_t n_filters,
                         struct ec2_result **ret, struct ec2_error *err);
int ec2_describe_enis(ec2_client *c, const char *const *ids, size_t n,
                      struct ec2_result **ret, struct ec2_error *err);
/* One page: max_results 0 means unpaginated; next_token NULL for the first page. */
int ec2_describe_enis_page(ec2_client *c, const struct ec2_filter *filters, size_t n_filters,
                           unsigned max_results, const char *next_token,
                           struct ec2_result **ret, struct ec2_error *err);

struct ec2_create_eni {
        const char *subnet_id;
        const char *const *security_groups;
        size_t n_security_groups;
        const char *description;
        const struct ec2_tag *tags;     /* TagSpecification for the network-interface */
        size_t n_tags;
        unsigned secondary_ip_count;    /* SecondaryPrivateIpAddressCount, or */
        unsigned prefix_count;          /* Ipv4PrefixCount (not both) */
        const char *client_token;       /* NULL: a random one, reused across retries */
};
int ec2_create_eni(ec2_client *c, const struct ec2_create_eni *req, struct ec2_result **ret, struct ec2_error *err);
int ec2_attach_eni(ec2_client *c, const char *eni_id, const char *instance_id, int device_index,
                   int network_card, struct ec2_result **ret, struct ec2_error *err);
int ec2_set_delete_on_termination(ec2_client *c, const char *eni_id, const char *attachment_id,
                                  bool delete_on_termination, struct ec2_error *err);
/* ModifyNetworkInterfaceAttribute Groups: replace the ENI's security groups. */
int ec2_set_security_groups(ec2_client *c, const char *eni_id, const char *const *groups, size_t n,
                            struct ec2_error *err);
/* Exactly one of ip_count and prefix_count is non-zero. */
int ec2_assign_private_ips(ec2_client *c, const char *eni_id, unsigned ip_count, unsigned prefix_count,
                           struct ec2_result **ret, struct ec2_error *err);
/* Addresses ("10.0.0.5") or, with prefixes, IPv4 prefixes ("10.0.1.16/28"). */
int ec2_unassign_private_ips(ec2_client *c, const char *eni_id, const char *const *items, size_t n,
                             bool prefixes, struct ec2_error *err);
/*
 * AssignIpv6Addresses by count: exactly one of address_count
 * (Ipv6AddressCount) and prefix_count (Ipv6PrefixCount, /80s) non-zero.
 * The result's ips and prefixes list what EC2 assigned.
 */
int ec2_assign_ipv6(ec2_client *c, const char *eni_id, unsigned address_count, unsigned prefix_count,
                    struct ec2_result **ret, struct ec2_error *err);
/* AssignIpv6Addresses of given items: addresses (Ipv6Addresses.N) or, with prefixes, /80s (Ipv6Prefix.N). */
int ec2_assign_ipv6_items(ec2_client *c, const char *eni_id, const char *const *items, size_t n, bool prefixes,
                          struct ec2_result **ret, struct ec2_error *err);
/* UnassignIpv6Addresses: addresses (Ipv6Addresses.N) or, with prefixes, /80s (Ipv6Prefix.N). */
int ec2_unassign_ipv6(ec2_client *c, const char *eni_id, const char *const *items, size_t n, bool prefixes,
                      struct ec2_result **ret, struct ec2_error *err);
int ec2_detach_eni(ec2_client *c, const char *attachment_id, bool force, struct ec2_error *err);
int ec2_delete_eni(ec2_client *c, const char *eni_id, struct ec2_error *err);
int ec2_create_tags(ec2_client *c, const char *const *resource_ids, size_t n_ids,
                    const struct ec2_tag *tags, size_t n_tags, struct ec2_error *err);

struct ec2_result *ec2_result_free(struct ec2_result *r);

/*
 * Decode one response (exposed for the tests and the fuzzer). For a 2xx
 * status, *ret gets the action's result; otherwise err is filled from the
 * error document and the errno for the EC2 code is returned (-ENOENT for
 * *.NotFound, -EACCES for auth, -EAGAIN for throttling, -ENOSPC for limits,
 * -EINVAL for bad parameters, -EIO for 5xx, -EACCES for 401/403 without a
 * code, -EREMOTEIO otherwise). Malformed bodies, and 2xx bodies that are not
 * XML, give -EBADMSG.
 */
int ec2_parse_response(enum ec2_action action, long http_status, const char *content_type,
                       const char *body, size_t len, struct ec2_result **ret, struct ec2_error *err);
const char *ec2_action_name(enum ec2_action action);
/* The EC2 error codes that mean "slow down". */
bool ec2_code_is_throttling(const char *code);

/*
 * ec2-parse: from an EC2 Query API response body to struct ec2_result or
 * struct ec2_error.
 *
 * xmlwalk streams the document; this file keeps a small decoder state per
 * action and copies only the fields the result types name into the result's
 * arena. Element paths are matched relative to the object being decoded
 * (an ENI is the same whether it sits in DescribeNetworkInterfaces'
 * networkInterfaceSet, CreateNetworkInterface's networkInterface or an
 * instance's networkInterfaceSet). Unknown elements are skipped, so new
 * fields in EC2's responses never break the parser; numbers and booleans are
 * parsed strictly, and a wrong root element is an error.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "awshttp.h"
#include "ec2.h"
#include "xmlwalk.h"

static const char *const action_names[_EC2_ACTION_MAX] = {
        [EC2_DESCRIBE_INSTANCES] = "DescribeInstances",
        [EC2_DESCRIBE_INSTANCE_TYPES] = "DescribeInstanceTypes",
        [EC2_DESCRIBE_SUBNETS] = "DescribeSubnets",
        [EC2_DESCRIBE_NETWORK_INTERFACES] = "DescribeNetworkInterfaces",
        [EC2_CREATE_NETWORK_INTERFACE] = "CreateNetworkInterface",
        [EC2_ATTACH_NETWORK_INTERFACE] = "AttachNetworkInterface",
        [EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE] = "ModifyNetworkInterfaceAttribute",
        [EC2_ASSIGN_PRIVATE_IP_ADDRESSES] = "AssignPrivateIpAddresses",
        [EC2_UNASSIGN_PRIVATE_IP_ADDRESSES] = "UnassignPrivateIpAddresses",
        [EC2_DETACH_NETWORK_INTERFACE] = "DetachNetworkInterface",
        [EC2_DELETE_NETWORK_INTERFACE] = "DeleteNetworkInterface",
        [EC2_CREATE_TAGS] = "CreateTags",
        [EC2_ASSIGN_IPV6_ADDRESSES] = "AssignIpv6Addresses",
        [EC2_UNASSIGN_IPV6_ADDRESSES] = "UnassignIpv6Addresses",
};

const char *ec2_action_name(enum ec2_action action) {
        return (unsigned)action < _EC2_ACTION_MAX ? action_names[action] : "?";
}

/* Growth capacities of the arrays of the object being decoded. */
struct eni_caps {
        size_t ips, prefixes, groups, tags, ipv6s, ipv6_prefixes;
};

struct dec {
        enum ec2_action action;
        struct arena *a;
        struct ec2_result *res;
        bool is_error;
        bool returned_false;
        char root[XMLWALK_MAX_NAME + 16];
        struct ec2_error *err;
        size_t cap_enis, cap_instances, cap_types, cap_subnets, cap_ips, cap_prefixes;
        size_t cap_inst_enis, cap_cards, cap_tags, cap_v6cidrs;
        struct eni_caps eni;
};

#define AT(path, depth, from, ...) xmlwalk_at(path, depth, from, __VA_ARGS__, (const char *)NULL)
#define LAST(arr, n) (&(arr)[(n) - 1])

static int set_str(struct dec *d, const char **field, const char *text, size_t len) {
        char *s = arena_strndup(d->a, text, len);
        if (!s)
                return -ENOMEM;
        *field = s;
        return 0;
}

static int parse_long(const char *text, long min, long max, long *ret) {
        char *end;
        errno = 0;
        if (!*text || !(*text == '-' || (*text >= '0' && *text <= '9')))
                return -EBADMSG;
        long v = strtol(text, &end, 10);
        if (errno || *end || v < min || v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int set_int(int *field, const char *text) {
        long v;
        int r = parse_long(text, INT_MIN, INT_MAX, &v);
        if (r == 0)
                *field = (int)v;
        return r;
}

static int set_bool(bool *field, const char *text) {
        if (strcmp(text, "true") == 0)
                *field = true;
        else if (strcmp(text, "false") == 0)
                *field = false;
        else
                return -EBADMSG;
        return 0;
}

static int push_str(struct dec *d, const char ***arr, size_t *n, size_t *cap, const char *text, size_t len) {
        const char **slot = arena_push(d->a, (void **)arr, n, cap, sizeof **arr);
        if (!slot)
                return -ENOMEM;
        return set_str(d, slot, text, len);
}

static int push_tag(struct dec *d, struct ec2_tag **tags, size_t *n, size_t *cap) {
        return arena_push(d->a, (void **)tags, n, cap, sizeof **tags) ? 0 : -ENOMEM;
}

/* A tag's key or value, for path p[0..n) relative to the tagged object. */
static int tag_field(struct dec *d, struct ec2_tag *tags, size_t n_tags, const char *const *p,
                     unsigned n, const char *text, size_t len) {
        if (n_tags == 0)
                return 0;
        if (AT(p, n, 0, "tagSet", "item", "key"))
                return set_str(d, &LAST(tags, n_tags)->key, text, len);
        if (AT(p, n, 0, "tagSet", "item", "value"))
                return set_str(d, &LAST(tags, n_tags)->value, text, len);
        return 0;
}

/* --- ENI ------------------------------------------------------------------ */

static int eni_start(struct dec *d, struct ec2_eni *e, const char *const *p, unsigned n) {
        if (AT(p, n, 0, "privateIpAddressesSet", "item"))
                return arena_push(d->a, (void **)&e->private_ips, &e->n_private_ips, &d->eni.ips,
                                  sizeof *e->private_ips) ? 0 : -ENOMEM;
        if (AT(p, n, 0, "tagSet", "item"))
                return push_tag(d, &e->tags, &e->n_tags, &d->eni.tags);
        if (AT(p, n, 0, "attachment"))
                e->attached = true;
        return 0;
}

static int eni_attachment(struct dec *d, struct ec2_attachment *at, const char *name, const char *text, size_t len) {
        if (strcmp(name, "attachmentId") == 0)
                return set_str(d, &at->id, text, len);
        if (strcmp(name, "deviceIndex") == 0)
                return set_int(&at->device_index, text);
        if (strcmp(name, "networkCardIndex") == 0)
                return set_int(&at->network_card, text);
        if (strcmp(name, "instanceId") == 0)
                return set_str(d, &at->instance_id, text, len);
        if (strcmp(name, "status") == 0)
                return set_str(d, &at->status, text, len);
        if (strcmp(name, "deleteOnTermination") == 0)
                return set_bool(&at->delete_on_termination, text);
        return 0;
}

static int eni_scalar(struct dec *d, struct ec2_eni *e, const char *name, const char *text, size_t len) {
        static const struct { const char *name; size_t off; } fields[] = {
                { "networkInterfaceId", offsetof(struct ec2_eni, id) },
                { "macAddress", offsetof(struct ec2_eni, mac) },
                { "status", offsetof(struct ec2_eni, status) },
                { "subnetId", offsetof(struct ec2_eni, subnet_id) },
                { "vpcId", offsetof(struct ec2_eni, vpc_id) },
                { "availabilityZone", offsetof(struct ec2_eni, availability_zone) },
                { "description", offsetof(struct ec2_eni, description) },
                { "privateIpAddress", offsetof(struct ec2_eni, primary_ip) },
                { "interfaceType", offsetof(struct ec2_eni, interface_type) },
        };
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
                if (strcmp(name, fields[i].name) == 0)
                        return set_str(d, (const char **)((char *)e + fields[i].off), text, len);
        return 0;
}

static int eni_end(struct dec *d, struct ec2_eni *e, const char *const *p, unsigned n,
                   const char *text, size_t len) {
        if (n == 1)
                return eni_scalar(d, e, p[0], text, len);
        if (n == 2 && strcmp(p[0], "attachment") == 0)
                return eni_attachment(d, &e->attachment, p[1], text, len);
        if (AT(p, n, 0, "privateIpAddressesSet", "item", "privateIpAddress") && e->n_private_ips)
                return set_str(d, &LAST(e->private_ips, e->n_private_ips)->address, text, len);
        if (AT(p, n, 0, "privateIpAddressesSet", "item", "primary") && e->n_private_ips)
                return set_bool(&LAST(e->private_ips, e->n_private_ips)->primary, text);
        if (AT(p, n, 0, "ipv4PrefixSet", "item", "ipv4Prefix"))
                return push_str(d, &e->prefixes, &e->n_prefixes, &d->eni.prefixes, text, len);
        if (AT(p, n, 0, "ipv6AddressesSet", "item", "ipv6Address"))
                return push_str(d, &e->ipv6s, &e->n_ipv6s, &d->eni.ipv6s, text, len);
        if (AT(p, n, 0, "ipv6PrefixSet", "item", "ipv6Prefix"))
                return push_str(d, &e->ipv6_prefixes, &e->n_ipv6_prefixes, &d->eni.ipv6_prefixes, text, len);
        if (AT(p, n, 0, "groupSet", "item", "groupId"))
                return push_str(d, &e->security_groups, &e->n_security_groups, &d->eni.groups, text, len);
        return tag_field(d, e->tags, e->n_tags, p, n, text, len);
}

/* Feed one event below an ENI rooted at depth `root` (the ENI element itself). */
static int eni_node(struct dec *d, struct ec2_eni *e, const char *const *path, unsigned depth,
                    unsigned root, const char *text, size_t len) {
        if (depth <= root)
                return 0;
        const char *const *p = path + root;
        unsigned n = depth - root;
        return text ? eni_end(d, e, p, n, text, len) : eni_start(d, e, p, n);
}

static struct ec2_eni *new_eni(struct dec *d, struct ec2_eni **arr, size_t *n, size_t *cap) {
        d->eni = (struct eni_caps){ 0 };
        return arena_push(d->a, (void **)arr, n, cap, sizeof **arr);
}

/* --- per action ----------------------------------------------------------- */

static int dni_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (AT(path, depth, 1, "nextToken") && text)
                return len ? set_str(d, &r->next_token, text, len) : 0;
        if (depth < 3 || !AT(path, 3, 1, "networkInterfaceSet", "item"))
                return 0;
        if (depth == 3 && !text)
                return new_eni(d, &r->enis, &r->n_enis, &d->cap_enis) ? 0 : -ENOMEM;
        return r->n_enis ? eni_node(d, LAST(r->enis, r->n_enis), path, depth, 3, text, len) : 0;
}

static int create_eni_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (depth < 2 || strcmp(path[1], "networkInterface") != 0)
                return 0;
        if (depth == 2 && !text)
                return r->n_enis ? -EBADMSG : (new_eni(d, &r->enis, &r->n_enis, &d->cap_enis) ? 0 : -ENOMEM);
        return r->n_enis ? eni_node(d, r->enis, path, depth, 2, text, len) : 0;
}

static int instance_scalar(struct dec *d, struct ec2_instance *in, const char *const *p, unsigned n,
                           const char *text, size_t len) {
        if (n == 1 && strcmp(p[0], "instanceId") == 0)
                return set_str(d, &in->id, text, len);
        if (n == 1 && strcmp(p[0], "instanceType") == 0)
                return set_str(d, &in->type, text, len);
        if (n == 1 && strcmp(p[0], "subnetId") == 0)
                return set_str(d, &in->subnet_id, text, len);
        if (n == 1 && strcmp(p[0], "vpcId") == 0)
                return set_str(d, &in->vpc_id, text, len);
        if (n == 1 && strcmp(p[0], "privateIpAddress") == 0)
                return set_str(d, &in->private_ip, text, len);
        if (AT(p, n, 0, "instanceState", "name"))
                return set_str(d, &in->state, text, len);
        if (AT(p, n, 0, "placement", "availabilityZone"))
                return set_str(d, &in->availability_zone, text, len);
        return 0;
}

static int instance_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (depth < 5 || !AT(path, 5, 1, "reservationSet", "item", "instancesSet", "item"))
                return 0;
        if (depth == 5 && !text) {
                d->cap_inst_enis = 0;
                return arena_push(d->a, (void **)&r->instances, &r->n_instances, &d->cap_instances,
                                  sizeof *r->instances) ? 0 : -ENOMEM;
        }
        if (!r->n_instances)
                return 0;
        struct ec2_instance *in = LAST(r->instances, r->n_instances);
        if (depth >= 7 && AT(path, 7, 5, "networkInterfaceSet", "item")) {
                if (depth == 7 && !text)
                        return new_eni(d, &in->enis, &in->n_enis, &d->cap_inst_enis) ? 0 : -ENOMEM;
                return in->n_enis ? eni_node(d, LAST(in->enis, in->n_enis), path, depth, 7, text, len) : 0;
        }
        return text ? instance_scalar(d, in, path + 5, depth - 5, text, len) : 0;
}

static int type_scalar(struct dec *d, struct ec2_instance_type *t, const char *const *p, unsigned n,
                       const char *text, size_t len) {
        if (n == 1 && strcmp(p[0], "instanceType") == 0)
                return set_str(d, &t->type, text, len);
        if (n == 1 && strcmp(p[0], "hypervisor") == 0)
                return set_str(d, &t->hypervisor, text, len);
        if (n == 1 && strcmp(p[0], "bareMetal") == 0)
                return set_bool(&t->bare_metal, text);
        if (n != 2 || strcmp(p[0], "networkInfo") != 0)
                return 0;
        if (strcmp(p[1], "maximumNetworkInterfaces") == 0)
                return set_int(&t->max_enis, text);
        if (strcmp(p[1], "ipv4AddressesPerInterface") == 0)
                return set_int(&t->ipv4_per_eni, text);
        if (strcmp(p[1], "ipv6AddressesPerInterface") == 0)
                return set_int(&t->ipv6_per_eni, text);
        if (strcmp(p[1], "ipv6Supported") == 0)
                return set_bool(&t->ipv6_supported, text);
        if (strcmp(p[1], "defaultNetworkCardIndex") == 0)
                return set_int(&t->default_network_card, text);
        return 0;
}

static int type_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (depth < 3 || !AT(path, 3, 1, "instanceTypeSet", "item"))
                return 0;
        if (depth == 3 && !text) {
                d->cap_cards = 0;
                return arena_push(d->a, (void **)&r->types, &r->n_types, &d->cap_types, sizeof *r->types) ? 0 : -ENOMEM;
        }
        if (!r->n_types)
                return 0;
        struct ec2_instance_type *t = LAST(r->types, r->n_types);
        const char *const *p = path + 3;
        unsigned n = depth - 3;
        if (!text)
                return AT(p, n, 0, "networkInfo", "networkCards", "item")
                        ? (arena_push(d->a, (void **)&t->cards, &t->n_cards, &d->cap_cards, sizeof *t->cards) ? 0 : -ENOMEM)
                        : 0;
        if (n == 4 && AT(p, 3, 0, "networkInfo", "networkCards", "item") && t->n_cards) {
                struct ec2_network_card *card = LAST(t->cards, t->n_cards);
                if (strcmp(p[3], "networkCardIndex") == 0)
                        return set_int(&card->index, text);
                if (strcmp(p[3], "maximumNetworkInterfaces") == 0)
                        return set_int(&card->max_enis, text);
                return 0;
        }
        return type_scalar(d, t, p, n, text, len);
}

static int subnet_scalar(struct dec *d, struct ec2_subnet *s, const char *name, const char *text, size_t len) {
        if (strcmp(name, "subnetId") == 0)
                return set_str(d, &s->id, text, len);
        if (strcmp(name, "vpcId") == 0)
                return set_str(d, &s->vpc_id, text, len);
        if (strcmp(name, "availabilityZone") == 0)
                return set_str(d, &s->availability_zone, text, len);
        if (strcmp(name, "cidrBlock") == 0)
                return set_str(d, &s->cidr, text, len);
        if (strcmp(name, "state") == 0)
                return set_str(d, &s->state, text, len);
        if (strcmp(name, "availableIpAddressCount") == 0)
                /* moto lets this go negative; keep what EC2 says, the planner clamps. */
                return parse_long(text, -(1L << 40), 1L << 40, &s->available_ips);
        return 0;
}

/* A CIDR being disassociated (or failed) is not the subnet's: drop the one its item just listed. */
static int v6cidr_state(struct ec2_subnet *s, const char *text, size_t len) {
        bool ok = (len == 10 && memcmp(text, "associated", 10) == 0) ||
                  (len == 11 && memcmp(text, "associating", 11) == 0);
        if (!ok && s->n_ipv6_cidrs)
                s->n_ipv6_cidrs--;
        return 0;
}

static int subnet_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (depth < 3 || !AT(path, 3, 1, "subnetSet", "item"))
                return 0;
        if (depth == 3 && !text) {
                d->cap_tags = d->cap_v6cidrs = 0;
                return arena_push(d->a, (void **)&r->subnets, &r->n_subnets, &d->cap_subnets,
                                  sizeof *r->subnets) ? 0 : -ENOMEM;
        }
        if (!r->n_subnets)
                return 0;
        struct ec2_subnet *s = LAST(r->subnets, r->n_subnets);
        const char *const *p = path + 3;
        unsigned n = depth - 3;
        if (!text)
                return AT(p, n, 0, "tagSet", "item") ? push_tag(d, &s->tags, &s->n_tags, &d->cap_tags) : 0;
        if (n == 1)
                return subnet_scalar(d, s, p[0], text, len);
        if (AT(p, n, 0, "ipv6CidrBlockAssociationSet", "item", "ipv6CidrBlock"))
                return push_str(d, &s->ipv6_cidrs, &s->n_ipv6_cidrs, &d->cap_v6cidrs, text, len);
        if (AT(p, n, 0, "ipv6CidrBlockAssociationSet", "item", "ipv6CidrBlockState", "state"))
                return v6cidr_state(s, text, len);
        return tag_field(d, s->tags, s->n_tags, p, n, text, len);
}

static int assign_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (!text)
                return 0;
        if (AT(path, depth, 1, "networkInterfaceId"))
                return set_str(d, &r->eni_id, text, len);
        if (AT(path, depth, 1, "assignedPrivateIpAddressesSet", "item", "privateIpAddress"))
                return push_str(d, &r->ips, &r->n_ips, &d->cap_ips, text, len);
        if (AT(path, depth, 1, "assignedIpv4PrefixSet", "item", "ipv4Prefix"))
                return push_str(d, &r->prefixes, &r->n_prefixes, &d->cap_prefixes, text, len);
        return 0;
}

/* Assign/UnassignIpv6Addresses: the ENI, then the addresses and /80s EC2 assigned or unassigned. */
static int ipv6_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_result *r = d->res;
        if (!text)
                return 0;
        if (AT(path, depth, 1, "networkInterfaceId"))
                return set_str(d, &r->eni_id, text, len);
        if (AT(path, depth, 1, "assignedIpv6Addresses", "item") || AT(path, depth, 1, "unassignedIpv6Addresses", "item"))
                return push_str(d, &r->ips, &r->n_ips, &d->cap_ips, text, len);
        if (AT(path, depth, 1, "assignedIpv6PrefixSet", "item") || AT(path, depth, 1, "unassignedIpv6PrefixSet", "item"))
                return push_str(d, &r->prefixes, &r->n_prefixes, &d->cap_prefixes, text, len);
        return 0;
}

static int attach_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        if (!text || depth != 2)
                return 0;
        if (strcmp(path[1], "attachmentId") == 0)
                return set_str(d, &d->res->attachment_id, text, len);
        if (strcmp(path[1], "networkCardIndex") == 0)
                return set_int(&d->res->network_card, text);
        return 0;
}

/* Modify/Unassign/Detach/Delete/CreateTags: real EC2 sends <return>true</return>, moto nothing. */
static int return_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        (void)len;
        if (text && AT(path, depth, 1, "return")) {
                bool v;
                int r = set_bool(&v, text);
                if (r < 0)
                        return r;
                d->returned_false = !v;
        }
        return 0;
}

typedef int (*node_fn)(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len);

static const node_fn action_nodes[_EC2_ACTION_MAX] = {
        [EC2_DESCRIBE_INSTANCES] = instance_node,
        [EC2_DESCRIBE_INSTANCE_TYPES] = type_node,
        [EC2_DESCRIBE_SUBNETS] = subnet_node,
        [EC2_DESCRIBE_NETWORK_INTERFACES] = dni_node,
        [EC2_CREATE_NETWORK_INTERFACE] = create_eni_node,
        [EC2_ATTACH_NETWORK_INTERFACE] = attach_node,
        [EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE] = return_node,
        [EC2_ASSIGN_PRIVATE_IP_ADDRESSES] = assign_node,
        [EC2_UNASSIGN_PRIVATE_IP_ADDRESSES] = return_node,
        [EC2_DETACH_NETWORK_INTERFACE] = return_node,
        [EC2_DELETE_NETWORK_INTERFACE] = return_node,
        [EC2_CREATE_TAGS] = return_node,
        [EC2_ASSIGN_IPV6_ADDRESSES] = ipv6_node,
        [EC2_UNASSIGN_IPV6_ADDRESSES] = ipv6_node,
};

/* --- errors --------------------------------------------------------------- */

static void copy_field(char *dst, size_t size, const char *text, size_t len) {
        if (len >= size)
                len = size - 1;
        memcpy(dst, text, len);
        dst[len] = '\0';
}

/* <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response> (EC2)
 * and <ErrorResponse><Error><Code/><Message/></Error><RequestId/></ErrorResponse> (IAM/STS). */
static int error_node(struct dec *d, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct ec2_error *e = d->err;
        if (!text || !e)
                return 0;
        const char *leaf = path[depth - 1];
        bool in_error = (depth == 4 && AT(path, 3, 1, "Errors", "Error")) || (depth == 3 && AT(path, 2, 1, "Error"));
        if (in_error && strcmp(leaf, "Code") == 0 && !e->code[0])
                copy_field(e->code, sizeof e->code, text, len);
        else if (in_error && strcmp(leaf, "Message") == 0 && !e->message[0])
                copy_field(e->message, sizeof e->message, text, len);
        else if (depth == 2 && (strcmp(leaf, "RequestID") == 0 || strcmp(leaf, "RequestId") == 0))
                copy_field(e->request_id, sizeof e->request_id, text, len);
        return 0;
}

static int root_start(struct dec *d, const char *name) {
        if (strcmp(name, "Response") == 0 || strcmp(name, "ErrorResponse") == 0) {
                d->is_error = true;
                return 0;
        }
        return strcmp(name, d->root) == 0 ? 0 : -EBADMSG;
}

static int on_node(void *ud, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct dec *d = ud;
        if (depth == 1)
                return text ? 0 : root_start(d, path[0]);
        if (d->is_error)
                return error_node(d, path, depth, text, len);
        if (depth == 2 && text && strcmp(path[1], "requestId") == 0)
                return set_str(d, &d->res->request_id, text, len);
        return action_nodes[d->action](d, path, depth, text, len);
}

/* --- entry ---------------------------------------------------------------- */

bool ec2_code_is_throttling(const char *code) {
        static const char *const codes[] = { "RequestLimitExceeded", "Throttling", "ThrottlingException",
                                             "RequestThrottled", "EC2ThrottledException", "SlowDown" };
        for (size_t i = 0; code && i < sizeof codes / sizeof *codes; i++)
                if (strcmp(code, codes[i]) == 0)
                        return true;
        return false;
}

static bool ends_with(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int code_errno(const char *code, long status) {
        static const struct { const char *code; int err; } table[] = {
                { "AuthFailure", -EACCES }, { "UnauthorizedOperation", -EACCES }, { "AccessDenied", -EACCES },
                { "InvalidClientTokenId", -EACCES }, { "SignatureDoesNotMatch", -EACCES },
                { "ExpiredToken", -EACCES }, { "RequestExpired", -EACCES },
                { "AttachmentLimitExceeded", -ENOSPC }, { "PrivateIpAddressLimitExceeded", -ENOSPC },
                { "InsufficientFreeAddressesInSubnet", -ENOSPC }, { "NetworkInterfaceLimitExceeded", -ENOSPC },
                { "InsufficientCidrBlocks", -ENOSPC }, { "IdempotentParameterMismatch", -EEXIST },
                { "MissingParameter", -EINVAL }, { "InvalidAction", -EINVAL }, { "OperationNotPermitted", -EPERM },
                { "IncorrectState", -EBUSY }, { "DryRunOperation", -EALREADY },
        };
        if (ec2_code_is_throttling(code))
                return -EAGAIN;
        for (size_t i = 0; i < sizeof table / sizeof *table; i++)
                if (strcmp(code, table[i].code) == 0)
                        return table[i].err;
        if (ends_with(code, "NotFound"))
                return -ENOENT;
        if (strncmp(code, "Invalid", 7) == 0)
                return -EINVAL;
        return status >= 500 ? -EIO : -EREMOTEIO;
}

static int fail(struct ec2_error *e, enum ec2_action action, long status, int code) {
        e->http_status = status;
        e->retryable = status >= 500 || ec2_code_is_throttling(e->code);
        if (e->code[0])
                errmsg_set(&e->msg, code, "%s: HTTP %ld %s: %s%s%s", ec2_action_name(action), status, e->code,
                           e->message, e->request_id[0] ? " (request " : "", e->request_id[0] ? e->request_id : "");
        else if (!e->msg.text[0])
                errmsg_set(&e->msg, code, "%s: HTTP %ld", ec2_action_name(action), status);
        return code;
}

static void error_reset(struct ec2_error *e) {
        if (e) {
                unsigned attempts = e->attempts;
                *e = (struct ec2_error){ .attempts = attempts };
        }
}

static int status_errno(long status) {
        return status >= 500 ? -EIO : status == 401 || status == 403 ? -EACCES : -EREMOTEIO;
}

int ec2_parse_response(enum ec2_action action, long http_status, const char *content_type,
                       const char *body, size_t len, struct ec2_result **ret, struct ec2_error *err) {
        if ((unsigned)action >= _EC2_ACTION_MAX || (!body && len))
                return -EINVAL;
        struct ec2_error local;
        if (!err)
                err = &local;
        error_reset(err);
        bool ok = http_status >= 200 && http_status < 300;
        /* A success must be XML. An error body is decoded whatever its type (moto labels
         * its auth errors text/html); a non-EC2 body then falls through to "no error document". */
        if (ok && !awshttp_content_type_is(content_type, "text/xml", "application/xml", (const char *)NULL)) {
                int code = -EBADMSG;
                errmsg_set(&err->msg, code, "%s: HTTP %ld with content type '%s'",
                           ec2_action_name(action), http_status, content_type ? content_type : "");
                return fail(err, action, http_status, code);
        }
        struct dec d = { .action = action, .err = err };
        snprintf(d.root, sizeof d.root, "%sResponse", ec2_action_name(action));
        d.a = arena_new();
        if (!d.a || !(d.res = arena_alloc(d.a, sizeof *d.res))) {
                arena_free(d.a);
                return fail(err, action, http_status, errmsg_set(&err->msg, -ENOMEM, "out of memory"));
        }
        d.res->action = action;
        d.res->arena_ = d.a;
        struct errmsg xerr = { 0 };
        int r = xmlwalk_parse(body ? body : "", len, NULL, on_node, &d, &xerr);
        if (r == 0 && ok && (d.is_error || d.returned_false))
                r = errmsg_set(&xerr, -EBADMSG, d.is_error ? "error document with a success status" : "returned false");
        if (r == 0 && ok) {
                *ret = d.res;
                return 0;
        }
        arena_free(d.a);
        if (r == 0 && d.is_error && err->code[0])
                return fail(err, action, http_status, code_errno(err->code, http_status));
        /* A body that is not EC2's: malformed, hostile, truncated, or no error document. */
        errmsg_set(&err->msg, -EBADMSG, "%s: HTTP %ld: %s", ec2_action_name(action), http_status,
                   xerr.text[0] ? xerr.text : "no error document");
        if (r != -ENOMEM && r != -E2BIG)
                r = ok ? -EBADMSG : status_errno(http_status);
        err->code[0] = '\0';
        return fail(err, action, http_status, r);
}

struct ec2_result *ec2_result_free(struct ec2_result *r) {
        if (r)
                arena_free(r->arena_);
        return NULL;
}

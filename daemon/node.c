/*
 * node: discovery from IMDS and the instance type's limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "instance-limits.h"
#include "node.h"

static void cidr_format(const struct imds_cidr *c, char out[19]) {
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &c->addr, ip, sizeof ip);
        snprintf(out, 19, "%s/%u", ip, (unsigned)c->len);
}

static void copy_vpc_cidrs(struct node *n, const struct imds_eni *e) {
        n->n_vpc_cidrs = 0;
        for (size_t i = 0; i < e->n_vpc_cidrs && n->n_vpc_cidrs < NODE_MAX_VPC_CIDRS; i++)
                cidr_format(&e->vpc_cidrs[i], n->vpc_cidrs[n->n_vpc_cidrs++]);
}

static int from_primary_eni(struct node *n, const struct imds_eni *e, struct errmsg *err) {
        if (e->n_local_ipv4s == 0)
                return errmsg_set(err, -EBADMSG, "IMDS lists no local-ipv4s for the primary ENI %s", e->mac);
        snprintf(n->primary_eni_id, sizeof n->primary_eni_id, "%s", e->interface_id);
        snprintf(n->subnet_id, sizeof n->subnet_id, "%s", e->subnet_id);
        cidr_format(&e->subnet_cidr, n->subnet_cidr);
        inet_ntop(AF_INET, &e->local_ipv4s[0], n->primary_ip, sizeof n->primary_ip);
        n->n_security_groups = 0;
        for (size_t i = 0; i < e->n_security_groups && n->n_security_groups < NODE_MAX_SGS; i++)
                snprintf(n->security_groups[n->n_security_groups++], IMDS_ID_MAX, "%s", e->security_groups[i]);
        copy_vpc_cidrs(n, e);
        return 0;
}

int node_discover(imds *m, struct node *ret, struct errmsg *err) {
        struct node n = { 0 };
        int r;
        if ((r = imds_instance_id(m, n.instance_id, err)) < 0 ||
            (r = imds_instance_type(m, n.instance_type, err)) < 0 ||
            (r = imds_region(m, n.region, err)) < 0 ||
            (r = imds_availability_zone(m, n.availability_zone, err)) < 0 ||
            (r = imds_primary_mac(m, n.primary_mac, err)) < 0) {
                errmsg_prefix(err, "discovering the node from IMDS");
                return r;
        }
        struct imds_eni *e = NULL;
        r = imds_eni(m, n.primary_mac, &e, err);
        if (r < 0) {
                errmsg_prefix(err, "reading the primary ENI %s from IMDS", n.primary_mac);
                return r;
        }
        r = from_primary_eni(&n, e, err);
        imds_eni_free(e);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

int node_refresh_vpc_cidrs(struct node *n, imds *m, bool *ret_changed, struct errmsg *err) {
        struct imds_eni *e = NULL;
        int r = imds_eni(m, n->primary_mac, &e, err);
        if (r < 0)
                return r;
        struct node fresh = *n;
        copy_vpc_cidrs(&fresh, e);
        imds_eni_free(e);
        bool changed = fresh.n_vpc_cidrs != n->n_vpc_cidrs ||
                       memcmp(fresh.vpc_cidrs, n->vpc_cidrs, sizeof n->vpc_cidrs) != 0;
        if (changed)
                memcpy(n->vpc_cidrs, fresh.vpc_cidrs, sizeof n->vpc_cidrs), n->n_vpc_cidrs = fresh.n_vpc_cidrs;
        if (ret_changed)
                *ret_changed = changed;
        return 0;
}

void node_vpc_cidrs_string(const struct node *n, char *buf, size_t len) {
        size_t off = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n->n_vpc_cidrs && off < len; i++)
                off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "", n->vpc_cidrs[i]);
}

/*
 * The ENIs vpc-ipamd may attach: the default network card's
 * MaximumNetworkInterfaces, as aws-node's ENILimit (ENIs go on card 0 only,
 * ENABLE_MULTI_NIC=false); the instance-wide count when EC2 lists no cards.
 */
static int default_card_enis(const struct ec2_instance_type *t) {
        for (size_t i = 0; i < t->n_cards; i++)
                if (t->cards[i].index == t->default_network_card && t->cards[i].max_enis > 0)
                        return t->cards[i].max_enis < t->max_enis ? t->cards[i].max_enis : t->max_enis;
        return t->max_enis;
}

static int limits_from_ec2(struct node *n, store *s, ec2_client *ec2, int64_t now_ms, struct errmsg *err) {
        const char *types[] = { n->instance_type };
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        int r = ec2_describe_instance_types(ec2, types, 1, &res, &e);
        if (r < 0)
                return errmsg_set(err, r, "DescribeInstanceTypes %s: %s", n->instance_type, errmsg_text(&e.msg, r));
        if (res->n_types != 1 || res->types[0].max_enis < 1 || res->types[0].ipv4_per_eni < 1) {
                ec2_result_free(res);
                return errmsg_set(err, -EBADMSG, "DescribeInstanceTypes returned no usable limits for %s",
                                  n->instance_type);
        }
        const struct ec2_instance_type *t = &res->types[0];
        struct store_itype it = { .max_enis = default_card_enis(t), .ipv4_per_eni = t->ipv4_per_eni,
                                  .prefix_supported = (t->hypervisor && strcmp(t->hypervisor, "nitro") == 0) ||
                                                      t->bare_metal,
                                  .network_cards = t->n_cards ? (int)t->n_cards : 1, .fetched_ms = now_ms };
        snprintf(it.name, sizeof it.name, "%s", n->instance_type);
        ec2_result_free(res);
        r = store_itype_put(s, &it);
        if (r < 0)
                return errmsg_set(err, r, "caching the limits of %s in the store", n->instance_type);
        n->limits = (struct plan_limits){ it.max_enis, it.ipv4_per_eni };
        n->prefix_supported = it.prefix_supported;
        return 0;
}

int node_limits(struct node *n, store *s, ec2_client *ec2, int64_t now_ms, struct errmsg *err) {
        struct store_itype it;
        /* A multi-card type is asked again: stores before per-card limits cached the
         * instance-wide count. Should EC2 not answer, the built-in table bounds it. */
        int r = store_itype_get(s, n->instance_type, &it);
        if (r == 0 && it.network_cards > 1 && ec2 && limits_from_ec2(n, s, ec2, now_ms, err) == 0)
                return 0;
        const struct ilimits *known = r == 0 && it.network_cards > 1 ? ilimits_lookup(n->instance_type) : NULL;
        if (known && ilimits_default_card_enis(known) < it.max_enis)
                it.max_enis = ilimits_default_card_enis(known);
        if (r == 0) {
                errmsg_clear(err);
                n->limits = (struct plan_limits){ it.max_enis, it.ipv4_per_eni };
                n->prefix_supported = it.prefix_supported;
                return 0;
        }
        return limits_from_ec2(n, s, ec2, now_ms, err);
}

int node_max_pods(const struct node *n, int max_eni, bool custom_networking, bool prefix_delegation) {
        const struct ilimits *t = ilimits_lookup(n->instance_type);
        struct plan_maxpods_in m = { .max_enis = t ? ilimits_default_card_enis(t) : n->limits.max_enis,
                                     .ipv4_per_eni = n->limits.ipv4_per_eni, .vcpus = t ? t->vcpus : 31,
                                     .nitro = true, .prefix_delegation = prefix_delegation, .max_eni = max_eni,
                                     .custom_networking = custom_networking };
        int pods = plan_max_pods_for(&m);
        return pods > 0 ? pods : 0;
}

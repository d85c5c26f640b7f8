/*
 * hostnet-eni: an ENI's host setup and teardown, and a gone pod's cleanup,
 * composed from the per-object files (see hostnet.h for the layout).
 *
 * The description is validated completely before anything is touched; then
 * each step reads the kernel and changes only what differs, so setup can be
 * re-run at every start-up and after any partial failure, and a second run
 * sends no change at all. Order matters in two places: the link route to the
 * gateway goes into the table before the default route through it (the
 * kernel checks that a gateway is reachable, in the route's own table first),
 * and stale rules of the table are removed before ours is ensured, so a
 * device index reused by a new ENI never leaves two source rules pointing
 * at one table.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/rtnetlink.h>

#include "hostnet-internal.h"

struct eni {
        const struct hostnet_eni *e;
        uint32_t table;                 /* e->route_table, or derived from card and device */
        int ifindex;
        char name[HOSTNET_IFNAMSIZ];
        uint32_t ip, base, gw;
        unsigned plen;
};

static bool table_reserved(uint32_t t) {
        return t == RT_TABLE_UNSPEC || t == RT_TABLE_DEFAULT || t == RT_TABLE_MAIN || t == RT_TABLE_LOCAL;
}

static const char *mac_of(const struct hostnet_eni *e) {
        return e->mac ? e->mac : "(no MAC)";
}

static uint32_t table_of(const struct hostnet_eni *e) {
        return e->route_table ? e->route_table : hostnet_route_table(e->network_card, e->device_index);
}

static int check_table(const struct hostnet_eni *e, uint32_t table, struct errmsg *err) {
        if (!e->is_primary && table_reserved(table))
                return errmsg_set(err, -EINVAL, "ENI %s: route table %u (card %u, device %u) is reserved "
                                  "(253, 254, 255); only the primary ENI uses main", mac_of(e), table,
                                  e->network_card, e->device_index);
        return 0;
}

/* Addresses of a secondary ENI: the IP inside the subnet, not its base or gateway. */
static int parse_addresses(struct eni *c, struct errmsg *err) {
        const struct hostnet_eni *e = c->e;
        if (hn_ip4_parse(e->primary_ip, &c->ip) < 0)
                return errmsg_set(err, -EINVAL, "ENI %s: primary IP \"%s\" is not an IPv4 address", mac_of(e),
                                  e->primary_ip ? e->primary_ip : "");
        if (hn_cidr_parse(e->subnet_cidr, &c->base, &c->plen) < 0 || c->plen < 1 || c->plen > 30)
                return errmsg_set(err, -EINVAL, "ENI %s: subnet \"%s\" is not an IPv4 CIDR a.b.c.d/1-30 without host bits",
                                  mac_of(e), e->subnet_cidr ? e->subnet_cidr : "");
        uint32_t mask = htonl(~0u << (32 - c->plen));
        c->gw = htonl(ntohl(c->base) + 1);
        if ((c->ip & mask) != c->base || c->ip == c->base || c->ip == c->gw)
                return errmsg_set(err, -EINVAL, "ENI %s: primary IP %s is not a host address of subnet %s", mac_of(e),
                                  e->primary_ip, e->subnet_cidr);
        return 0;
}

static int parse_eni(const struct hostnet_eni *e, struct eni *c, struct errmsg *err) {
        *c = (struct eni){ .e = e, .table = table_of(e) };
        if (e->mtu && (e->mtu < 68 || e->mtu > 65535))
                return errmsg_set(err, -EINVAL, "ENI %s: MTU %u is outside 68..65535", mac_of(e), e->mtu);
        int r = check_table(e, c->table, err);
        return r < 0 || e->is_primary ? r : parse_addresses(c, err);
}

static int eni_fail(const struct eni *c, int r, const char *what, struct errmsg *err) {
        return errmsg_set(err, r, "ENI %s (%s): cannot %s: %s", mac_of(c->e), c->name, what, strerror(-r));
}

static int setup_routes(hostnet *h, const struct eni *c, struct errmsg *err) {
        const struct hn_route want[] = {
                { .table = c->table, .dst = c->gw, .plen = 32, .ifindex = c->ifindex, .scope = RT_SCOPE_LINK },
                { .table = c->table, .gw = c->gw, .ifindex = c->ifindex, .scope = RT_SCOPE_UNIVERSE },
        };
        char what[192], rt[128];
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
                int r = hn_route_ensure(h, &want[i]);
                if (r < 0) {
                        snprintf(what, sizeof what, "add route %s", hn_route_str(&want[i], rt));
                        return eni_fail(c, r, what, err);
                }
        }
        return 0;
}

static int setup_rule(hostnet *h, const struct eni *c, struct errmsg *err) {
        struct hn_rule want = { .prio = HOSTNET_ENI_RULE_PRIO, .table = c->table, .src = c->ip, .src_len = 32 };
        char what[192], rs[128];
        int r = hn_rule_remove_table(h, want.prio, want.table, c->ip);
        if (r < 0) {
                snprintf(what, sizeof what, "remove stale rules lookup %u prio %u", want.table, want.prio);
                return eni_fail(c, r, what, err);
        }
        r = hn_rule_ensure(h, &want);
        if (r < 0) {
                snprintf(what, sizeof what, "add rule %s", hn_rule_str(&want, rs));
                return eni_fail(c, r, what, err);
        }
        return 0;
}

static int setup_secondary(hostnet *h, const struct eni *c, struct errmsg *err) {
        char what[128], base[16];
        int r = hn_addr_ensure_only(h, c->ifindex, c->ip, c->plen);
        if (r < 0) {
                snprintf(what, sizeof what, "make %s/%u its only global address", c->e->primary_ip, c->plen);
                return eni_fail(c, r, what, err);
        }
        if ((r = setup_routes(h, c, err)) < 0)
                return r;
        r = hn_route_remove(h, RT_TABLE_MAIN, c->base, c->plen, c->ifindex);
        if (r < 0) {
                snprintf(what, sizeof what, "remove the main-table route to its subnet %s/%u",
                         hn_ip4_str(c->base, base), c->plen);
                return eni_fail(c, r, what, err);
        }
        return setup_rule(h, c, err);
}

int hostnet_setup_eni(hostnet *h, const struct hostnet_eni *e, struct errmsg *err) {
        struct eni c;
        int r = parse_eni(e, &c, err);
        if (r < 0)
                return r;
        if ((r = hostnet_find_link_by_mac(h, e->mac, &c.ifindex, c.name, err)) < 0)
                return r;
        r = hn_link_ensure(h, c.ifindex, e->mtu, true);
        if (r < 0) {
                char what[64] = "bring the link up";
                if (e->mtu)
                        snprintf(what, sizeof what, "bring the link up with MTU %u", e->mtu);
                return eni_fail(&c, r, what, err);
        }
        return e->is_primary ? 0 : setup_secondary(h, &c, err);
}

int hostnet_teardown_eni(hostnet *h, const struct hostnet_eni *e, struct errmsg *err) {
        uint32_t table = table_of(e);
        int r = check_table(e, table, err);
        if (r < 0 || e->is_primary)
                return r;
        r = hn_rule_remove_table(h, HOSTNET_ENI_RULE_PRIO, table, 0);
        if (r < 0)
                return errmsg_set(err, r, "ENI %s: cannot remove the rules lookup %u prio %u: %s", mac_of(e), table,
                                  HOSTNET_ENI_RULE_PRIO, strerror(-r));
        r = hn_route_flush_table(h, table);
        if (r < 0)
                return errmsg_set(err, r, "ENI %s: cannot remove the routes of table %u: %s", mac_of(e), table,
                                  strerror(-r));
        return 0;
}

int hostnet_remove_pod_routing(hostnet *h, const char *pod_ip, uint32_t route_table, struct errmsg *err) {
        uint32_t ip;
        if (hn_ip4_parse(pod_ip, &ip) < 0)
                return errmsg_set(err, -EINVAL, "pod IP \"%s\" is not an IPv4 address", pod_ip ? pod_ip : "");
        const struct hn_rule rules[] = {
                { .prio = HOSTNET_POD_RULE_PRIO_TO, .table = RT_TABLE_MAIN, .dst = ip, .dst_len = 32 },
                { .prio = HOSTNET_POD_RULE_PRIO_FROM, .table = route_table, .src = ip, .src_len = 32 },
        };
        int r = hn_route_delete_each(h, RT_TABLE_MAIN, ip, 32);
        if (r < 0)
                return errmsg_set(err, r, "pod %s: cannot remove host route %s/32: %s", pod_ip, pod_ip, strerror(-r));
        for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
                char rs[128];
                if ((r = hn_rule_delete_each(h, &rules[i])) < 0)
                        return errmsg_set(err, r, "pod %s: cannot remove rule %s: %s", pod_ip, hn_rule_str(&rules[i], rs),
                                          strerror(-r));
        }
        return 0;
}

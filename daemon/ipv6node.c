/*
 * ipv6node: IPv6 mode's node set-up (see ipv6node.h): the primary ENI, its
 * /80 under an intent, the VPC's IPv6 CIDRs, the sysctls.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ipv6node.h"
#include "log.h"
#include "protocol.h"
#include "sync.h"

/* The primary ENI as the store needs it to hand out its /128s (attached, main table). */
static int record_primary(struct ipamd_ctx *o, struct errmsg *err) {
        const struct node *n = o->node;
        struct store_eni e = { .device_index = 0, .network_card = 0, .route_table = STORE_ROUTE_TABLE_MAIN,
                               .is_primary = true, .state = STORE_ENI_ATTACHED, .created_ms = o->now_ms() };
        snprintf(e.id, sizeof e.id, "%s", n->primary_eni_id);
        snprintf(e.mac, sizeof e.mac, "%s", n->primary_mac);
        snprintf(e.subnet_id, sizeof e.subnet_id, "%s", n->subnet_id);
        snprintf(e.subnet_cidr, sizeof e.subnet_cidr, "%s", n->subnet_cidr);
        snprintf(e.primary_ip, sizeof e.primary_ip, "%s", n->primary_ip);
        int r = store_eni_put(o->store, &e);
        return r < 0 ? errmsg_set(err, r, "cannot record the primary ENI %s in the store", e.id) : 0;
}

static void format_cidr6(const struct imds_cidr6 *c, char out[STORE_CIDR6_MAX]) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &c->addr, ip, sizeof ip);
        snprintf(out, STORE_CIDR6_MAX, "%s/%u", ip, c->len);
}

/* The /80s the primary ENI has (EC2's list, or IMDS's without provisioning), in *ret (malloc'd; *ret_n may be 0). */
static int listed_prefixes(struct ipamd_ctx *o, char (**ret)[STORE_CIDR6_MAX], size_t *ret_n, struct errmsg *err) {
        size_t n = 0;
        if (o->cfg->no_provisioning) {
                struct imds_eni6 *e = NULL;
                int r = imds_eni6(o->imds, o->node->primary_mac, &e, err);
                if (r < 0)
                        return r;
                n = e->n_prefixes;
                if ((*ret = calloc(n ? n : 1, sizeof **ret)) != NULL)
                        for (size_t i = 0; i < n; i++)
                                format_cidr6(&e->prefixes[i], (*ret)[i]);
                imds_eni6_free(e);
        } else {
                struct ec2_result *res = NULL;
                struct ec2_error e = { 0 };
                int r = ctx_describe_eni(o, o->node->primary_eni_id, &res, &e);
                if (r < 0) {
                        ec2_result_free(res);
                        return errmsg_set(err, r == -ENOENT ? -ENXIO : r, "DescribeNetworkInterfaces %s: %s",
                                          o->node->primary_eni_id, errmsg_text(&e.msg, r));
                }
                n = res->enis[0].n_ipv6_prefixes;
                if ((*ret = calloc(n ? n : 1, sizeof **ret)) != NULL)
                        for (size_t i = 0; i < n; i++)
                                snprintf((*ret)[i], STORE_CIDR6_MAX, "%s", res->enis[0].ipv6_prefixes[i]);
                ec2_result_free(res);
        }
        if (!*ret)
                return errmsg_set(err, -ENOMEM, "out of memory");
        *ret_n = n;
        return 0;
}

/*
 * The /80 to use: the first listed (aws-node uses the first and never frees
 * the others), -ENOENT when none. The store's /80s are reconciled with the
 * list first: one the ENI no longer has is dropped, or withdrawn while pods
 * hold it, so it is never handed out.
 */
static int listed_prefix(struct ipamd_ctx *o, char ret[STORE_CIDR6_MAX], struct errmsg *err) {
        char (*list)[STORE_CIDR6_MAX] = NULL;
        size_t n = 0, dropped = 0, withdrawn = 0;
        int r = listed_prefixes(o, &list, &n, err);
        if (r < 0)
                return r;
        if (n)
                snprintf(ret, STORE_CIDR6_MAX, "%s", list[0]);
        if (n > 1)
                log_warn("the primary ENI has several IPv6 prefixes; using the first", LF_STR("prefix", ret),
                         LF_INT("prefixes", (int)n));
        r = store_prefixes6_reconcile(o->store, o->node->primary_eni_id, (const char (*)[STORE_CIDR6_MAX])list, n,
                                      &dropped, &withdrawn);
        free(list);
        if (r < 0)
                return errmsg_set(err, r, "cannot reconcile the store's IPv6 prefixes with the ENI's");
        if (dropped || withdrawn)
                log_warn("the primary ENI no longer has IPv6 prefixes the store had: none is handed out again",
                         LF_INT("dropped", (int)dropped), LF_INT("kept_for_their_pods", (int)withdrawn));
        return n ? 0 : -ENOENT;
}

/* The newest open assign_ipv6_prefix intent's age in ms, or -1 when none is open. */
static int64_t open_intent_age(struct ipamd_ctx *o) {
        struct store_intent *its = NULL;
        size_t n = 0;
        int64_t age = -1;
        if (store_intents_open(o->store, &its, &n) < 0)
                return 0;       /* unknown: treated as just begun */
        for (size_t i = 0; i < n; i++)
                if (its[i].kind == STORE_INTENT_ASSIGN_IPV6_PREFIX) {
                        int64_t a = o->now_ms() - its[i].created_ms;
                        age = age < 0 || a < age ? (a > 0 ? a : 0) : age;
                }
        free(its);
        return age;
}

/* Close every open assign_ipv6_prefix intent: EC2's list has settled it. */
static void settle_open(struct ipamd_ctx *o, enum store_intent_state st, const char *prefix) {
        struct store_intent *its = NULL;
        size_t n = 0;
        if (store_intents_open(o->store, &its, &n) < 0)
                return;         /* left open: settled at the next setup */
        char result[160];
        snprintf(result, sizeof result, "{\"resolved_later\":true,\"prefix\":\"%s\"}", prefix ? prefix : "");
        for (size_t i = 0; i < n; i++) {
                if (its[i].kind != STORE_INTENT_ASSIGN_IPV6_PREFIX)
                        continue;
                if (store_intent_end(o->store, its[i].id, st, result, o->now_ms()) == 0)
                        log_info("resolved an interrupted operation", LF_STR("kind", "assign_ipv6_prefix"),
                                 LF_INT("intent", its[i].id), LF_STR("outcome", store_intent_state_name(st)));
        }
        free(its);
}

static int adopt(struct ipamd_ctx *o, const char *cidr, struct errmsg *err) {
        int r = store_prefix6_add(o->store, o->node->primary_eni_id, cidr, o->now_ms());
        return r < 0 ? errmsg_set(err, r, "cannot record the IPv6 prefix %s in the store", cidr) : 0;
}

/* No answer, or a 5xx: EC2 may have assigned it. */
static bool outcome_unknown(const struct ec2_error *e) {
        return e->http_status == 0 || e->http_status >= 500;
}

/* AssignIpv6Addresses(Ipv6PrefixCount=1) on the primary ENI, bracketed by an intent. */
static int assign_prefix(struct ipamd_ctx *o, char ret[STORE_CIDR6_MAX], struct errmsg *err) {
        const char *eni = o->node->primary_eni_id;
        int64_t id = -1;
        int r = store_intent_begin(o->store, STORE_INTENT_ASSIGN_IPV6_PREFIX, NULL, eni, "{\"Ipv6PrefixCount\":1}",
                                   o->now_ms(), &id);
        if (r < 0)
                return errmsg_set(err, r, "could not record an intent; not calling EC2");
        struct ec2_result *res = NULL;
        struct ec2_error e = { 0 };
        r = ec2_assign_ipv6(o->ec2, eni, 0, 1, &res, &e);
        if (r >= 0 && res->n_prefixes == 0)
                r = -EBADMSG;   /* a 200 naming no prefix: settled by EC2's list at the next setup */
        if (r < 0) {
                if (!outcome_unknown(&e) && r != -EBADMSG)
                        store_intent_end(o->store, id, STORE_INTENT_FAILED, NULL, o->now_ms());
                ec2_result_free(res);
                return errmsg_set(err, r, "AssignIpv6Addresses %s Ipv6PrefixCount=1: %s", eni,
                                  errmsg_text(&e.msg, r));
        }
        snprintf(ret, STORE_CIDR6_MAX, "%s", res->prefixes[0]);
        ec2_result_free(res);
        char result[96];
        snprintf(result, sizeof result, "{\"prefix\":\"%s\"}", ret);
        if ((r = adopt(o, ret, err)) < 0)
                return r;       /* the intent stays open: the next setup finds the /80 in EC2's list */
        store_intent_end(o->store, id, STORE_INTENT_DONE, result, o->now_ms());
        log_info("assigned the node's IPv6 prefix", LF_STR("prefix", ret), LF_STR("eni", eni));
        return 0;
}

static int obtain_prefix(struct ipamd_ctx *o, char ret[STORE_CIDR6_MAX], struct errmsg *err) {
        int r = listed_prefix(o, ret, err);
        if (r == 0) {
                settle_open(o, STORE_INTENT_DONE, ret);
                return adopt(o, ret, err);
        }
        if (r != -ENOENT)
                return r;
        if (o->cfg->no_provisioning)
                return errmsg_set(err, -ENOENT, "the primary ENI %s has no IPv6 prefix and vpc-ipamd may not "
                                  "assign one (DISABLE_NETWORK_RESOURCE_PROVISIONING or ENABLE_IMDS_ONLY_MODE)",
                                  o->node->primary_eni_id);
        int64_t age = open_intent_age(o);
        if (age >= 0 && age < IPV6NODE_SETTLE_MS)       /* EC2's list may not show a /80 just assigned yet */
                return errmsg_set(err, -EAGAIN, "an AssignIpv6Addresses of %lld ms ago has an unknown outcome and EC2 "
                                  "lists no IPv6 prefix yet; waiting %d s for its list to settle before asking again",
                                  (long long)age, IPV6NODE_SETTLE_MS / 1000);
        settle_open(o, STORE_INTENT_FAILED, NULL);      /* EC2 lists none: an interrupted assign made none */
        return assign_prefix(o, ret, err);
}

/* The VPC's IPv6 CIDRs (IMDS vpc-ipv6-cidr-blocks) as "a/b,c/d" in the store's metadata. */
static int record_vpc_cidrs6(struct ipamd_ctx *o, struct errmsg *err) {
        struct imds_eni6 *e = NULL;
        int r = imds_eni6(o->imds, o->node->primary_mac, &e, err);
        if (r < 0)
                return r;
        char buf[512] = "", one[STORE_CIDR6_MAX];
        for (size_t i = 0; i < e->n_vpc_cidrs; i++) {
                format_cidr6(&e->vpc_cidrs[i], one);
                snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "," : "", one);
        }
        size_t n = e->n_vpc_cidrs;
        imds_eni6_free(e);
        if (n == 0)
                log_warn("IMDS lists no IPv6 CIDR for the VPC; pods get no VPC IPv6 routes",
                         LF_STR("mac", o->node->primary_mac));
        r = store_meta_set(o->store, "vpc_cidrs6", buf);
        return r < 0 ? errmsg_set(err, r, "cannot record the VPC's IPv6 CIDRs") : 0;
}

int ipv6node_setup(struct ipamd_ctx *o, char ret[STORE_CIDR6_MAX], struct errmsg *err) {
        char prefix[STORE_CIDR6_MAX] = "";
        int r = record_primary(o, err);
        if (r == 0)
                r = obtain_prefix(o, prefix, err);
        if (r == 0)
                r = record_vpc_cidrs6(o, err);
        if (r == 0 && ret)
                snprintf(ret, STORE_CIDR6_MAX, "%s", prefix);
        return r;
}

/* --- the kernel as witness, after a store loss ------------------------------------- */

/*
 * The alias vpc-cni gives an IPv6 pod's IPv4 egress veth, "vpc-cni-egress:<ifname>:<container id>"
 * (its own prefix, so that nothing reading "vpc-cni:" aliases takes it for a pod's VPC address).
 * It must equal the plugin's DP_EGRESS_ALIAS_PREFIX (include/dataplane.h).
 */
#define EGRESS_ALIAS_PREFIX "vpc-cni-egress:"

struct witness {
        struct hostnet_link *links, *elinks;    /* "vpc-cni:" and EGRESS_ALIAS_PREFIX aliases */
        size_t n_links, n_elinks;
        struct hostnet_host_route6 *r6;
        size_t n_r6;
        struct hostnet_host_route *r4;
        size_t n_r4;
};

static const struct hostnet_link *link_in(const struct hostnet_link *links, size_t n, int ifindex) {
        for (size_t i = 0; i < n; i++)
                if (links[i].ifindex == ifindex)
                        return &links[i];
        return NULL;
}

/* The egress address routed to the attachment's egress veth, or NULL. */
static const char *egress_of(const struct witness *w, const char *ifname, const char *cid) {
        char alias[PROTO_VETH_ALIAS_MAX];
        struct in_addr a, net;
        snprintf(alias, sizeof alias, EGRESS_ALIAS_PREFIX "%s:%s", ifname, cid);
        inet_pton(AF_INET, SNAT_EGRESS4_CIDR_BASE, &net);
        for (size_t i = 0; i < w->n_r4; i++) {
                const struct hostnet_link *l = link_in(w->elinks, w->n_elinks, w->r4[i].ifindex);
                if (l && strcmp(l->alias, alias) == 0 && inet_pton(AF_INET, w->r4[i].ip, &a) == 1 &&
                    (ntohl(a.s_addr) & 0xfffffc00u) == ntohl(net.s_addr))
                        return w->r4[i].ip;
        }
        return NULL;
}

static int restore_one(struct ipamd_ctx *o, const struct witness *w, const struct hostnet_host_route6 *rt) {
        const struct hostnet_link *l = link_in(w->links, w->n_links, rt->ifindex);
        char ifname[STORE_IFNAME_MAX + 1], cid[STORE_CONTAINER_ID_MAX + 1];
        if (!l || !sync_witness_alias(l->alias, ifname, cid))
                return 0;
        struct store_attachment a = { .container_id = cid, .ifname = ifname, .host_veth = l->name };
        struct store_lease lease;
        int r = store_assign6_addr(o->store, &a, rt->ip, egress_of(w, ifname, cid), o->now_ms(), &lease);
        if (r == 0)
                log_warn("the kernel shows a pod holding an address the store had not assigned: it is that pod's lease",
                         LF_STR("ip", rt->ip), LF_STR("egress_ip", lease.egress_ip), LF_STR("container_id", cid),
                         LF_STR("ifname", ifname), LF_STR("veth", l->name));
        else if (r != 1)
                log_warn("a pod's veth routes to an IPv6 address the store cannot give it", LF_STR("ip", rt->ip),
                         LF_STR("container_id", cid), LF_STR("error", strerror(-r)));
        return r == 0;
}

int ipv6node_witness(struct ipamd_ctx *o, size_t *ret_n, struct errmsg *err) {
        struct witness w = { 0 };
        size_t n = 0;
        int r = hostnet_list_aliased(o->net, PROTO_VETH_ALIAS_PREFIX, &w.links, &w.n_links, err);
        if (r >= 0 && w.n_links)
                r = hostnet_list_aliased(o->net, EGRESS_ALIAS_PREFIX, &w.elinks, &w.n_elinks, err);
        if (r >= 0 && w.n_links && (r = hostnet_host_routes6(o->net, &w.r6, &w.n_r6, err)) >= 0)
                r = hostnet_host_routes(o->net, &w.r4, &w.n_r4, err);
        for (size_t i = 0; r >= 0 && i < w.n_r6; i++)
                n += (size_t)restore_one(o, &w, &w.r6[i]);
        free(w.links);
        free(w.elinks);
        free(w.r6);
        free(w.r4);
        if (r >= 0 && ret_n)
                *ret_n = n;
        return r < 0 ? r : 0;
}

int ipv6node_egress_in_use(struct ipamd_ctx *o, int64_t cooldown_ms, size_t *ret_kept, struct errmsg *err) {
        struct hostnet_host_route *r4 = NULL;
        struct hostnet_host_route6 *r6 = NULL;
        size_t n4 = 0, n6 = 0;
        int r = hostnet_host_routes(o->net, &r4, &n4, err);
        if (r >= 0)
                r = hostnet_host_routes6(o->net, &r6, &n6, err);
        const char **ips = r >= 0 ? calloc(n4 + n6 ? n4 + n6 : 1, sizeof *ips) : NULL;
        if (r >= 0 && !ips)
                r = errmsg_set(err, -ENOMEM, "out of memory");
        for (size_t i = 0; ips && i < n4 + n6; i++)     /* the store ignores those outside both egress ranges */
                ips[i] = i < n4 ? r4[i].ip : r6[i - n4].ip;
        if (r >= 0 && (r = store_egress_in_use(o->store, ips, n4 + n6, o->now_ms(), cooldown_ms, ret_kept)) < 0)
                errmsg_set(err, r, "cannot record the egress addresses in use on the node");
        free(ips);
        free(r4);
        free(r6);
        return r < 0 ? r : 0;
}

/* --- sysctls ----------------------------------------------------------------------- */

/* Whether the sysctl at path reads value already (a short read or none: no). */
static bool sysctl_is(const char *path, const char *value) {
        char buf[32] = "";
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[strcspn(buf, "\n")] = '\0';
        return strcmp(buf, value) == 0;
}

/*
 * Written only when different: writing all/forwarding (or all/disable_ipv6)
 * sets it on every link, so a restart rewriting it would undo the
 * forwarding=0 the plugin gave each live pod's host veth.
 */
static int write_sysctl(const char *procsys, const char *key, const char *value, struct errmsg *err) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", procsys, key);
        if (sysctl_is(path, value))
                return 0;
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0)
                return errmsg_set(err, -errno, "%s: %s", path, strerror(errno));
        size_t n = strlen(value);
        ssize_t w = write(fd, value, n);
        int e = w < 0 ? errno : 0;
        close(fd);
        if (w != (ssize_t)n)
                return errmsg_set(err, e ? -e : -EIO, "%s=%s: %s", path, value, e ? strerror(e) : "short write");
        return 0;
}

int ipv6node_sysctls(const char *procsys, const char *primary_if, struct errmsg *err) {
        if (!primary_if || !*primary_if || strchr(primary_if, '/') || strcmp(primary_if, "..") == 0)
                return errmsg_set(err, -EINVAL, "\"%s\" is not a link name", primary_if ? primary_if : "");
        char ra[96];
        snprintf(ra, sizeof ra, "net/ipv6/conf/%s/accept_ra", primary_if);
        const char *const kv[][2] = {
                { "net/ipv6/conf/all/disable_ipv6", "0" }, { "net/ipv6/conf/all/forwarding", "1" },
                { "net/ipv4/ip_forward", "1" }, { ra, "2" },
        };
        for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
                int r = write_sysctl(procsys, kv[i][0], kv[i][1], err);
                if (r < 0)
                        return r;
        }
        return 0;
}

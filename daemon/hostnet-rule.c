/*
 * hostnet-rule: IPv4 policy rules "from/to <address> lookup <table>".
 *
 * A rule is ours when its priority, selectors and table are exactly the
 * wanted ones and it has nothing else (no iif/oif, no fwmark): a rule that
 * only resembles ours is left to whoever made it. Rules are deleted one at a
 * time, by what the dump showed: the kernel deletes the first rule matching
 * the given fields, so duplicates (possible: the kernel accepts identical
 * rules without NLM_F_EXCL) go one per matching dump entry. A delete request
 * cannot say "and no fwmark", so a foreign rule with our priority, selectors
 * and table plus a fwmark could be taken first; nothing puts such rules at
 * the priorities used here (512, 1535, 1536, 32765).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fib_rules.h>

#include <netlink/route/rule.h>

#include "hostnet-internal.h"

static void rule_putp(struct rtnl_rule **p) {
        if (*p)
                rtnl_rule_put(*p);
}

static bool no_extras(struct rtnl_rule *r) {
        uint32_t mark = rtnl_rule_get_mark(r);
        return !rtnl_rule_get_iif(r) && !rtnl_rule_get_oif(r) && (mark == 0 || mark == UINT32_MAX);
}

/* m's prio and selectors; table too unless m->table is 0. */
static bool rule_is(struct rtnl_rule *r, const struct hn_rule *m) {
        return rtnl_rule_get_family(r) == AF_INET && rtnl_rule_get_action(r) == FR_ACT_TO_TBL &&
               rtnl_rule_get_prio(r) == m->prio && (m->table == 0 || rtnl_rule_get_table(r) == m->table) &&
               hn_nladdr_is(rtnl_rule_get_src(r), m->src, m->src_len) &&
               hn_nladdr_is(rtnl_rule_get_dst(r), m->dst, m->dst_len) && no_extras(r);
}

/* Add (add = true) or delete the rule m describes, table 0 meaning any. */
static int rule_change(hostnet *h, bool add, const struct hn_rule *m) {
        _cleanup_(rule_putp) struct rtnl_rule *rule = rtnl_rule_alloc();
        _cleanup_(hn_addr_putp) struct nl_addr *src = m->src_len ? hn_nladdr(m->src, m->src_len) : NULL;
        _cleanup_(hn_addr_putp) struct nl_addr *dst = m->dst_len ? hn_nladdr(m->dst, m->dst_len) : NULL;
        if (!rule || (m->src_len && !src) || (m->dst_len && !dst))
                return -ENOMEM;
        rtnl_rule_set_family(rule, AF_INET);
        rtnl_rule_set_prio(rule, m->prio);
        rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
        if (m->table)
                rtnl_rule_set_table(rule, m->table);
        if (src)
                rtnl_rule_set_src(rule, src);
        if (dst)
                rtnl_rule_set_dst(rule, dst);
        return nlerr_errno(add ? rtnl_rule_add(h->sk, rule, NLM_F_EXCL) : rtnl_rule_delete(h->sk, rule, 0));
}

static int rules_dump(hostnet *h, struct nl_cache **ret) {
        return nlerr_errno(rtnl_rule_alloc_cache(h->sk, AF_INET, ret));
}

int hn_rule_ensure(hostnet *h, const struct hn_rule *want) {
        _cleanup_(hn_cache_freep) struct nl_cache *rules = NULL;
        int r = rules_dump(h, &rules);
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(rules); o; o = nl_cache_get_next(o))
                if (rule_is((struct rtnl_rule *)o, want))
                        return 0;
        return rule_change(h, true, want);
}

/* Delete, as m describes it with the dumped rule's table, once; gone is fine. */
static int rule_delete_one(hostnet *h, struct rtnl_rule *dumped, const struct hn_rule *m) {
        struct hn_rule exact = *m;
        exact.table = rtnl_rule_get_table(dumped);
        int r = rule_change(h, false, &exact);
        return r == -ENOENT || r == -ESRCH ? 0 : r;
}

int hn_rule_remove_table(hostnet *h, uint32_t prio, uint32_t table, uint32_t keep_src) {
        _cleanup_(hn_cache_freep) struct nl_cache *rules = NULL;
        int r = rules_dump(h, &rules);
        for (struct nl_object *o = r < 0 ? NULL : nl_cache_get_first(rules); o; o = nl_cache_get_next(o)) {
                struct rtnl_rule *x = (struct rtnl_rule *)o;
                struct nl_addr *src = rtnl_rule_get_src(x);
                if (rtnl_rule_get_family(x) != AF_INET || rtnl_rule_get_action(x) != FR_ACT_TO_TBL ||
                    rtnl_rule_get_prio(x) != prio || rtnl_rule_get_table(x) != table || !no_extras(x) ||
                    (keep_src && hn_nladdr_is(src, keep_src, 32)) || !hn_nladdr_is(rtnl_rule_get_dst(x), 0, 0))
                        continue;
                struct hn_rule m = { .prio = prio, .table = table };
                if (src && nl_addr_get_len(src) == 4) {
                        m.src_len = (unsigned)nl_addr_get_prefixlen(src);
                        memcpy(&m.src, nl_addr_get_binary_addr(src), 4);
                }
                if ((r = rule_delete_one(h, x, &m)) < 0)
                        break;
        }
        return r;
}

int hn_rule_delete_each(hostnet *h, const struct hn_rule *m) {
        for (int i = 0; i < HN_DELETE_EACH_MAX; i++) {
                int r = rule_change(h, false, m);
                if (r == -ENOENT || r == -ESRCH)
                        return 0;
                if (r < 0)
                        return r;
        }
        return 0;
}

const char *hn_rule_str(const struct hn_rule *m, char buf[static 128]) {
        char ip[16], sel[80] = "", table[24] = "";
        int n = 0;
        if (m->src_len)
                n = snprintf(sel, sizeof sel, "from %s/%u ", hn_ip4_str(m->src, ip), m->src_len);
        if (m->dst_len)
                snprintf(sel + n, sizeof sel - (size_t)n, "to %s/%u ", hn_ip4_str(m->dst, ip), m->dst_len);
        if (m->table)
                snprintf(table, sizeof table, "lookup %u ", m->table);
        snprintf(buf, 128, "%s%sprio %u", sel, table, m->prio);
        return buf;
}

/* --- AWS_EXTERNAL_SERVICE_CIDRS: "to CIDR lookup main" at HOSTNET_SERVICE_RULE_PRIO ---------- */

static bool in_wanted(struct nl_addr *dst, const struct hn_rule *want, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (hn_nladdr_is(dst, want[i].dst, want[i].dst_len))
                        return true;
        return false;
}

/* Delete the plain "to X lookup main" rules at the priority whose X is not wanted. */
static int service_rules_prune(hostnet *h, const struct hn_rule *want, size_t n) {
        _cleanup_(hn_cache_freep) struct nl_cache *rules = NULL;
        int r = rules_dump(h, &rules);
        for (struct nl_object *o = r < 0 ? NULL : nl_cache_get_first(rules); o; o = nl_cache_get_next(o)) {
                struct rtnl_rule *x = (struct rtnl_rule *)o;
                struct nl_addr *dst = rtnl_rule_get_dst(x);
                if (rtnl_rule_get_family(x) != AF_INET || rtnl_rule_get_action(x) != FR_ACT_TO_TBL ||
                    rtnl_rule_get_prio(x) != HOSTNET_SERVICE_RULE_PRIO || rtnl_rule_get_table(x) != HOSTNET_TABLE_MAIN ||
                    !no_extras(x) || !hn_nladdr_is(rtnl_rule_get_src(x), 0, 0) || !dst ||
                    nl_addr_get_len(dst) != 4 || in_wanted(dst, want, n))
                        continue;
                struct hn_rule m = { .prio = HOSTNET_SERVICE_RULE_PRIO, .table = HOSTNET_TABLE_MAIN,
                                     .dst_len = (unsigned)nl_addr_get_prefixlen(dst) };
                memcpy(&m.dst, nl_addr_get_binary_addr(dst), 4);
                if ((r = rule_delete_one(h, x, &m)) < 0)
                        break;
        }
        return r;
}

int hostnet_sync_service_rules(hostnet *h, const char *const *cidrs, size_t n, struct errmsg *err) {
        struct hn_rule *want = calloc(n ? n : 1, sizeof *want);
        if (!want)
                return errmsg_set(err, -ENOMEM, "out of memory");
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++) {
                want[i] = (struct hn_rule){ .prio = HOSTNET_SERVICE_RULE_PRIO, .table = HOSTNET_TABLE_MAIN };
                if (hn_cidr_parse(cidrs[i], &want[i].dst, &want[i].dst_len) < 0)
                        r = errmsg_set(err, -EINVAL, "\"%s\" is not an IPv4 CIDR without host bits", cidrs[i]);
        }
        char rs[128];
        for (size_t i = 0; i < n && r == 0; i++)
                if ((r = hn_rule_ensure(h, &want[i])) < 0)
                        errmsg_set(err, r, "cannot add rule %s: %s", hn_rule_str(&want[i], rs), strerror(-r));
        if (r == 0 && (r = service_rules_prune(h, want, n)) < 0)
                errmsg_set(err, r, "cannot remove a stale rule at priority %d: %s", HOSTNET_SERVICE_RULE_PRIO,
                           strerror(-r));
        free(want);
        return r;
}

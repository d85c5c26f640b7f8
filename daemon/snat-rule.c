/*
 * snat-rule: the policy rule "fwmark M/M lookup main" at SNAT_RULE_PRIO,
 * through libnl-route-3 (see snat.h for why it exists).
 *
 * A rule is ours when it has exactly that priority, mark, mask and table and
 * no selectors; anything else at the priority is someone else's and left
 * alone. Each call opens its own short-lived route socket in the caller's
 * namespace: the rule changes only when the table does, so there is nothing
 * to keep open.
 */
#include <errno.h>
#include <linux/fib_rules.h>
#include <sys/socket.h>

#include <netlink/netlink.h>
#include <netlink/route/rule.h>

#include "nlerr.h"
#include "snat.h"

#define TABLE_MAIN 254

static void sock_freep(struct nl_sock **p) {
        if (*p)
                nl_socket_free(*p);
}

static void cache_freep(struct nl_cache **p) {
        if (*p)
                nl_cache_free(*p);
}

static void rule_putp(struct rtnl_rule **p) {
        if (*p)
                rtnl_rule_put(*p);
}

static int open_sock(struct nl_sock **ret) {
        struct nl_sock *sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        int r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0) {
                nl_socket_free(sk);
                return nlerr_errno(r);
        }
        *ret = sk;
        return 0;
}

static bool rule_is_ours(struct rtnl_rule *r, uint32_t mark) {
        struct nl_addr *src = rtnl_rule_get_src(r), *dst = rtnl_rule_get_dst(r);
        return rtnl_rule_get_family(r) == AF_INET && rtnl_rule_get_action(r) == FR_ACT_TO_TBL &&
               rtnl_rule_get_prio(r) == SNAT_RULE_PRIO && rtnl_rule_get_table(r) == TABLE_MAIN &&
               rtnl_rule_get_mark(r) == mark && rtnl_rule_get_mask(r) == mark && !rtnl_rule_get_iif(r) &&
               !rtnl_rule_get_oif(r) && (!src || nl_addr_get_prefixlen(src) == 0) &&
               (!dst || nl_addr_get_prefixlen(dst) == 0);
}

static struct rtnl_rule *make_rule(uint32_t mark) {
        struct rtnl_rule *rule = rtnl_rule_alloc();
        if (!rule)
                return NULL;
        rtnl_rule_set_family(rule, AF_INET);
        rtnl_rule_set_prio(rule, SNAT_RULE_PRIO);
        rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
        rtnl_rule_set_table(rule, TABLE_MAIN);
        rtnl_rule_set_mark(rule, mark);
        rtnl_rule_set_mask(rule, mark);
        return rule;
}

/* How many of our rules are there now. */
static int count_ours(struct nl_sock *sk, uint32_t mark, int *ret) {
        struct nl_cache *rules __attribute__((cleanup(cache_freep))) = NULL;
        int r = nlerr_errno(rtnl_rule_alloc_cache(sk, AF_INET, &rules));
        if (r < 0)
                return r;
        int n = 0;
        for (struct nl_object *o = nl_cache_get_first(rules); o; o = nl_cache_get_next(o))
                n += rule_is_ours((struct rtnl_rule *)o, mark);
        *ret = n;
        return 0;
}

/* Make our rule present (one copy) or absent (every copy). */
static int rule_sync(uint32_t mark, bool present, struct errmsg *err) {
        struct nl_sock *sk __attribute__((cleanup(sock_freep))) = NULL;
        struct rtnl_rule *rule __attribute__((cleanup(rule_putp))) = make_rule(mark);
        int n = 0;
        int r = rule ? open_sock(&sk) : -ENOMEM;
        if (r == 0)
                r = count_ours(sk, mark, &n);
        if (r == 0 && present && n == 0) {
                r = nlerr_errno(rtnl_rule_add(sk, rule, NLM_F_EXCL));
                if (r == -EEXIST)
                        r = 0;
        }
        /* The kernel deletes the first rule matching the fields given: one per copy. */
        for (int i = 0; r == 0 && !present && i < n; i++) {
                r = nlerr_errno(rtnl_rule_delete(sk, rule, 0));
                if (r == -ENOENT)
                        r = 0;
        }
        if (r < 0)
                return errmsg_set(err, r, "cannot %s rule \"fwmark 0x%x/0x%x lookup main prio %d\"",
                                  present ? "add" : "delete", mark, mark, SNAT_RULE_PRIO);
        return 0;
}

int snat_rule_ensure(uint32_t mark, struct errmsg *err) {
        return rule_sync(mark, true, err);
}

int snat_rule_remove(uint32_t mark, struct errmsg *err) {
        return rule_sync(mark, false, err);
}

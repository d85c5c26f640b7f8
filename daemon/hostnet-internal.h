/*
 * hostnet-internal: what the hostnet-*.c files share (one file per kernel
 * object: link, address, route, rule; hostnet-eni.c composes them).
 *
 * Addresses travel as IPv4 in network byte order (uint32_t) plus a prefix
 * length; the parsers at the API boundary reject anything else. Each object
 * file offers "ensure" (read the kernel, change only what differs) and
 * "remove matching" (missing is fine) operations returning 0 / -errno; they
 * do not fill errmsg — the composer names the object in the sentence, with
 * the describe helpers below.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>

#include "hostnet.h"
#include "nlerr.h"

#define _cleanup_(f) __attribute__((cleanup(f)))
#define HN_DELETE_EACH_MAX 16           /* duplicates removed by one targeted delete loop */

struct hostnet {
        struct nl_sock *sk;
};

/* --- hostnet.c: errors and IPv4 ------------------------------------------------ */

/* "10.0.1.5" -> network order. -EINVAL unless a dotted quad. */
int hn_ip4_parse(const char *s, uint32_t *ret);
/* "10.0.1.0/24" -> base, plen (0..32). -EINVAL on anything else or host bits. */
int hn_cidr_parse(const char *s, uint32_t *ret_base, unsigned *ret_plen);
/* "a.b.c.d" into buf. */
const char *hn_ip4_str(uint32_t ip, char buf[static 16]);
/* A new AF_INET nl_addr (NULL on ENOMEM). */
struct nl_addr *hn_nladdr(uint32_t ip, unsigned plen);
/* Whether a is ip/plen; NULL or empty a counts as 0.0.0.0/0. */
bool hn_nladdr_is(struct nl_addr *a, uint32_t ip, unsigned plen);

void hn_cache_freep(struct nl_cache **p);
void hn_addr_putp(struct nl_addr **p);

/* --- hostnet-link.c ------------------------------------------------------------------ */

/* Up (when up) and MTU (when mtu > 0), sending nothing when already so. */
int hn_link_ensure(hostnet *h, int ifindex, unsigned mtu, bool up);

/* --- hostnet-addr.c ------------------------------------------------------------------ */

/* ip/plen as the only global IPv4 address of ifindex (others are removed). */
int hn_addr_ensure_only(hostnet *h, int ifindex, uint32_t ip, unsigned plen);

/* --- hostnet-route.c ----------------------------------------------------------------- */

struct hn_route {
        uint32_t table;
        uint32_t dst;
        unsigned plen;
        uint32_t gw;                    /* 0: none (a link route) */
        int ifindex;
        uint8_t scope;
};

int hn_route_ensure(hostnet *h, const struct hn_route *want);
/* Delete every route of table to dst/plen (through ifindex, or any when 0). */
int hn_route_remove(hostnet *h, uint32_t table, uint32_t dst, unsigned plen, int ifindex);
/* Delete routes of table to dst/plen through any device by asking the kernel
 * to (no dump), until none is left (at most HN_DELETE_EACH_MAX). */
int hn_route_delete_each(hostnet *h, uint32_t table, uint32_t dst, unsigned plen);
/* Delete every route of table. */
int hn_route_flush_table(hostnet *h, uint32_t table);
/* "default via 10.0.1.1 table 2", "10.0.1.1/32 scope link table 2" */
const char *hn_route_str(const struct hn_route *r, char buf[static 128]);

/* --- hostnet-rule.c ------------------------------------------------------------------ */

struct hn_rule {
        uint32_t prio;
        uint32_t table;                 /* 0 in a match: any table */
        uint32_t src, dst;
        unsigned src_len, dst_len;      /* 0: no selector */
};

/* Add the rule unless an identical plain one exists. */
int hn_rule_ensure(hostnet *h, const struct hn_rule *want);
/* Delete rules matching m (table 0: any) by asking the kernel to (no dump),
 * until none is left (at most HN_DELETE_EACH_MAX). The kernel matches only the
 * fields given, so a rule that adds a fwmark or iif to m's fields would go
 * too: use it only where nothing else puts rules. */
int hn_rule_delete_each(hostnet *h, const struct hn_rule *m);
/* Delete the plain rules at prio that look up table, except "from keep_src"
 * (0: keep none). */
int hn_rule_remove_table(hostnet *h, uint32_t prio, uint32_t table, uint32_t keep_src);
/* "from 10.0.1.10/32 lookup 2 prio 32765" */
const char *hn_rule_str(const struct hn_rule *r, char buf[static 128]);

/*
 * hostnet: the handle and the IPv4 parsing shared by the hostnet-*.c files
 * (libnl's errors become errnos through nlerr.h).
 *
 * The parsers are strict: a dotted quad, and a CIDR
 * without host bits, because a stray "10.0.1.7/24" from a caller is a bug to
 * report, not to round.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <netlink/socket.h>

#include "hostnet-internal.h"

int hn_ip4_parse(const char *s, uint32_t *ret) {
        struct in_addr in;
        if (!s || inet_pton(AF_INET, s, &in) != 1)
                return -EINVAL;
        *ret = in.s_addr;
        return 0;
}

int hn_cidr_parse(const char *s, uint32_t *ret_base, unsigned *ret_plen) {
        char ip[INET_ADDRSTRLEN];
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || (size_t)(slash - s) >= sizeof ip)
                return -EINVAL;
        memcpy(ip, s, (size_t)(slash - s));
        ip[slash - s] = '\0';
        char *end;
        errno = 0;
        unsigned long plen = strtoul(slash + 1, &end, 10);
        uint32_t base;
        if (errno || end == slash + 1 || *end || plen > 32 || slash[1] < '0' || slash[1] > '9' ||
            hn_ip4_parse(ip, &base) < 0)
                return -EINVAL;
        uint32_t mask = plen ? htonl(~0u << (32 - plen)) : 0;
        if (base & ~mask)
                return -EINVAL;
        *ret_base = base;
        *ret_plen = (unsigned)plen;
        return 0;
}

const char *hn_ip4_str(uint32_t ip, char buf[static 16]) {
        struct in_addr in = { .s_addr = ip };
        return inet_ntop(AF_INET, &in, buf, 16) ? buf : "?";
}

struct nl_addr *hn_nladdr(uint32_t ip, unsigned plen) {
        struct nl_addr *a = nl_addr_build(AF_INET, &ip, sizeof ip);
        if (a)
                nl_addr_set_prefixlen(a, (int)plen);
        return a;
}

bool hn_nladdr_is(struct nl_addr *a, uint32_t ip, unsigned plen) {
        if (!a || nl_addr_get_len(a) == 0)
                return plen == 0;
        if (nl_addr_get_family(a) != AF_INET || (unsigned)nl_addr_get_prefixlen(a) != plen ||
            nl_addr_get_len(a) != sizeof ip)
                return false;
        return plen == 0 || memcmp(nl_addr_get_binary_addr(a), &ip, sizeof ip) == 0;
}

void hn_cache_freep(struct nl_cache **p) {
        if (*p)
                nl_cache_free(*p);
}

void hn_addr_putp(struct nl_addr **p) {
        if (*p)
                nl_addr_put(*p);
}

uint32_t hostnet_route_table(unsigned network_card, unsigned device_index) {
        if (network_card > 0)
                return 10000 + device_index + 100 * network_card;
        return device_index == 0 ? HOSTNET_TABLE_MAIN : device_index + 1;
}

int hostnet_open(hostnet **ret, struct errmsg *err) {
        hostnet *h = calloc(1, sizeof *h);
        if (!h || !(h->sk = nl_socket_alloc())) {
                free(h);
                return errmsg_set(err, -ENOMEM, "cannot allocate a netlink socket");
        }
        int r = nl_connect(h->sk, NETLINK_ROUTE);
        if (r < 0) {
                r = nlerr_errno(r);
                hostnet_free(h);
                return errmsg_set(err, r, "cannot open a NETLINK_ROUTE socket: %s", strerror(-r));
        }
        *ret = h;
        return 0;
}

hostnet *hostnet_free(hostnet *h) {
        if (h) {
                if (h->sk)
                        nl_socket_free(h->sk);
                free(h);
        }
        return NULL;
}

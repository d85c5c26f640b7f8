/*
 * hostnet-addr: a secondary ENI's one global IPv4 address.
 *
 * aws-node flushes the link's global addresses and adds the primary IP, which
 * makes the kernel add a main-table route to the whole subnet through this
 * ENI, which it then deletes. We add the address with IFA_F_NOPREFIXROUTE so
 * that route is never made — not now, and not again when the link goes down
 * and up (the kernel re-adds prefix routes on NETDEV_UP) — and the caller
 * still deletes any such route, for an address someone else added. Only
 * addresses that differ are touched: the wanted one is left alone when
 * present, whatever its flags, so a second run sends nothing.
 */
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <netlink/route/addr.h>

#include "hostnet-internal.h"

static void rtaddr_putp(struct rtnl_addr **p) {
        if (*p)
                rtnl_addr_put(*p);
}

static int addr_add(hostnet *h, int ifindex, uint32_t ip, unsigned plen) {
        _cleanup_(hn_addr_putp) struct nl_addr *local = hn_nladdr(ip, plen);
        _cleanup_(rtaddr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
        if (!a || !local)
                return -ENOMEM;
        rtnl_addr_set_family(a, AF_INET);
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_local(a, local);
        rtnl_addr_set_scope(a, RT_SCOPE_UNIVERSE);
        rtnl_addr_set_flags(a, IFA_F_NOPREFIXROUTE);
        return nlerr_errno(rtnl_addr_add(h->sk, a, NLM_F_EXCL));
}

/* One pass: remove every other global address; *ret_have when ip/plen is there. */
static int addr_scan(hostnet *h, int ifindex, uint32_t ip, unsigned plen, bool *ret_have, unsigned *ret_removed) {
        _cleanup_(hn_cache_freep) struct nl_cache *addrs = NULL;
        int r = nlerr_errno(rtnl_addr_alloc_cache(h->sk, &addrs));
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
                struct rtnl_addr *a = (struct rtnl_addr *)o;
                if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET ||
                    rtnl_addr_get_scope(a) != RT_SCOPE_UNIVERSE)
                        continue;
                if (!*ret_have && hn_nladdr_is(rtnl_addr_get_local(a), ip, plen)) {
                        *ret_have = true;
                        continue;
                }
                r = nlerr_errno(rtnl_addr_delete(h->sk, a, 0));
                if (r < 0 && r != -EADDRNOTAVAIL && r != -ENOENT)
                        return r;
                (*ret_removed)++;
        }
        return 0;
}

/* Deleting a subnet's primary address also deletes its secondaries (unless
 * promote_secondaries), which may include ours: after removing anything,
 * look again before deciding whether to add. */
int hn_addr_ensure_only(hostnet *h, int ifindex, uint32_t ip, unsigned plen) {
        bool have = false;
        for (int pass = 0; pass < 2; pass++) {
                unsigned removed = 0;
                have = false;
                int r = addr_scan(h, ifindex, ip, plen, &have, &removed);
                if (r < 0)
                        return r;
                if (removed == 0)
                        break;
        }
        return have ? 0 : addr_add(h, ifindex, ip, plen);
}

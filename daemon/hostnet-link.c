/*
 * hostnet-link: finding ENI links and setting their state.
 *
 * Links are read with one RTM_GETLINK dump (a node has tens of links, not
 * thousands) and matched by hardware address, because an ENI's name depends
 * on the distribution's naming scheme while its MAC is what EC2 reports.
 * Virtual links that copy an ENI's MAC (a vlan on it, a bridge or bond over
 * it) are not taken for the ENI. hostnet_wait_link_by_mac(), for a caller
 * waiting on one link, listens to the kernel's link notifications (a socket
 * in RTMGRP_LINK, opened before the first look so no event is missed) and
 * looks again after each wake-up. The daemon does not use it: eniops waits
 * for a batch of ENIs and for IMDS together, so it polls
 * hostnet_find_link_by_mac() every 25 ms instead.
 * Changes are sent with an ifindex-only "orig" object so libnl never resends
 * the link's kind or other dumped attributes; nothing is sent when the link
 * is already as wanted, so re-running setup produces no netlink event.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <netlink/route/link.h>

#include "hostnet-internal.h"

static void link_putp(struct rtnl_link **p) {
        if (*p)
                rtnl_link_put(*p);
}

/* "0a:1b:2c:3d:4e:5f" (either case) into 6 bytes. */
static int mac_parse(const char *s, unsigned char ret[static 6]) {
        unsigned char m[6];
        int n = -1;
        if (!s || strlen(s) != 17 ||
            sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%n", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5], &n) != 6 ||
            n != 17)
                return -EINVAL;
        for (int i = 2; i < 17; i += 3)
                if (s[i] != ':')
                        return -EINVAL;
        memcpy(ret, m, 6);
        return 0;
}

static bool link_has_mac(struct rtnl_link *l, const unsigned char mac[static 6]) {
        struct nl_addr *a = rtnl_link_get_addr(l);
        return a && nl_addr_get_len(a) == 6 && memcmp(nl_addr_get_binary_addr(a), mac, 6) == 0;
}

/* How well a link with the wanted MAC fits as the ENI: 2 a device without a
 * kind (ENA), 1 a veth (the emulated VPC's ENIs), 0 a virtual link that copies
 * its lower device's MAC (vlan, bridge, bond, macvlan...): never the ENI. */
static int eni_fit(struct rtnl_link *l) {
        const char *kind = rtnl_link_get_type(l);
        return !kind ? 2 : strcmp(kind, "veth") == 0 ? 1 : 0;
}

int hostnet_find_link_by_mac(hostnet *h, const char *mac, int *ret_ifindex, char ret_name[static HOSTNET_IFNAMSIZ],
                             struct errmsg *err) {
        _cleanup_(hn_cache_freep) struct nl_cache *links = NULL;
        struct rtnl_link *best = NULL;
        unsigned char want[6];
        if (mac_parse(mac, want) < 0)
                return errmsg_set(err, -EINVAL, "MAC \"%s\" is not of the form 0a:1b:2c:3d:4e:5f", mac ? mac : "");
        int r = nlerr_errno(rtnl_link_alloc_cache(h->sk, AF_UNSPEC, &links));
        if (r < 0)
                return errmsg_set(err, r, "cannot list the links: %s", strerror(-r));
        for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
                struct rtnl_link *l = (struct rtnl_link *)o;
                if (link_has_mac(l, want) && rtnl_link_get_name(l) && eni_fit(l) > (best ? eni_fit(best) : 0))
                        best = l;
        }
        if (!best)
                return errmsg_set(err, -ENOENT, "no link has MAC %s (is the ENI attached yet?)", mac);
        *ret_ifindex = rtnl_link_get_ifindex(best);
        snprintf(ret_name, HOSTNET_IFNAMSIZ, "%s", rtnl_link_get_name(best));
        return 0;
}

static int64_t now_ms(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int link_monitor_open(void) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

/* Discard what is queued: the events only say "look again". */
static void link_monitor_drain(int fd) {
        char buf[8192];
        for (int i = 0; i < 256; i++)
                if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) < 0 && errno != ENOBUFS)
                        return;
}

int hostnet_wait_link_by_mac(hostnet *h, const char *mac, unsigned timeout_ms, int *ret_ifindex,
                             char ret_name[static HOSTNET_IFNAMSIZ], struct errmsg *err) {
        int fd = link_monitor_open();
        if (fd < 0)
                return errmsg_set(err, fd, "cannot listen for new links: %s", strerror(-fd));
        int64_t deadline = now_ms() + timeout_ms;
        int r;
        while ((r = hostnet_find_link_by_mac(h, mac, ret_ifindex, ret_name, err)) == -ENOENT) {
                int64_t left = deadline - now_ms();
                if (left <= 0) {
                        r = errmsg_set(err, -ETIMEDOUT, "no link with MAC %s appeared within %u ms", mac, timeout_ms);
                        break;
                }
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, (int)(left < 60000 ? left : 60000)) < 0 && errno != EINTR) {
                        int e = errno;
                        r = errmsg_set(err, -e, "cannot wait for new links: %s", strerror(e));
                        break;
                }
                link_monitor_drain(fd);
        }
        close(fd);
        return r;
}

int hn_link_ensure(hostnet *h, int ifindex, unsigned mtu, bool up) {
        _cleanup_(link_putp) struct rtnl_link *cur = NULL, *orig = NULL, *change = NULL;
        int r = nlerr_errno(rtnl_link_get_kernel(h->sk, ifindex, NULL, &cur));
        if (r < 0)
                return r == -ENOENT ? -ENODEV : r;
        bool fix_mtu = mtu > 0 && rtnl_link_get_mtu(cur) != mtu;
        bool fix_up = up && !(rtnl_link_get_flags(cur) & IFF_UP);
        if (!fix_mtu && !fix_up)
                return 0;
        orig = rtnl_link_alloc();
        change = rtnl_link_alloc();
        if (!orig || !change)
                return -ENOMEM;
        rtnl_link_set_ifindex(orig, ifindex);
        if (fix_mtu)
                rtnl_link_set_mtu(change, mtu);
        if (fix_up)
                rtnl_link_set_flags(change, IFF_UP);
        return nlerr_errno(rtnl_link_change(h->sk, orig, change, 0));
}

int hostnet_set_link_mtu(hostnet *h, int ifindex, unsigned mtu, struct errmsg *err) {
        if (mtu < 68 || mtu > 65535)
                return errmsg_set(err, -EINVAL, "MTU %u is outside 68..65535", mtu);
        int r = hn_link_ensure(h, ifindex, mtu, false);
        if (r < 0)
                return errmsg_set(err, r, "cannot set the MTU of link %d to %u: %s", ifindex, mtu, strerror(-r));
        return 0;
}

static bool has_prefix(const char *name, const char *prefix) {
        return name && strncmp(name, prefix, strlen(prefix)) == 0;
}

int hostnet_list_links(hostnet *h, const char *prefix, char (**ret)[HOSTNET_IFNAMSIZ], size_t *ret_n,
                       struct errmsg *err) {
        _cleanup_(hn_cache_freep) struct nl_cache *links = NULL;
        const char *p = prefix ? prefix : "";
        int r = nlerr_errno(rtnl_link_alloc_cache(h->sk, AF_UNSPEC, &links));
        if (r < 0)
                return errmsg_set(err, r, "cannot list the links: %s", strerror(-r));
        size_t n = 0, cap = (size_t)nl_cache_nitems(links);
        char (*names)[HOSTNET_IFNAMSIZ] = calloc(cap ? cap : 1, HOSTNET_IFNAMSIZ);
        if (!names)
                return errmsg_set(err, -ENOMEM, "out of memory listing the links");
        for (struct nl_object *o = nl_cache_get_first(links); o && n < cap; o = nl_cache_get_next(o)) {
                const char *name = rtnl_link_get_name((struct rtnl_link *)o);
                if (has_prefix(name, p))
                        snprintf(names[n++], HOSTNET_IFNAMSIZ, "%s", name);
        }
        *ret = names;
        *ret_n = n;
        return 0;
}

int hostnet_pod_veth_find(hostnet *h, const char *name, const char *alias, int *ret_ifindex, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *cur = NULL;
        int r = nlerr_errno(rtnl_link_get_kernel(h->sk, 0, name, &cur));
        if (r == -ENOENT || r == -ENODEV)
                return -ENOENT;
        if (r < 0)
                return errmsg_set(err, r, "cannot read link %s: %s", name, strerror(-r));
        const char *a = rtnl_link_get_ifalias(cur);
        if (!a || strcmp(a, alias) != 0)
                return -ENOENT;         /* not this attachment's veth: never touched */
        *ret_ifindex = rtnl_link_get_ifindex(cur);
        return 0;
}

int hostnet_link_down(hostnet *h, int ifindex, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *orig = rtnl_link_alloc(), *change = rtnl_link_alloc();
        if (!orig || !change)
                return errmsg_set(err, -ENOMEM, "out of memory");
        rtnl_link_set_ifindex(orig, ifindex);
        rtnl_link_unset_flags(change, IFF_UP);  /* the kernel does nothing to a link already down */
        int r = nlerr_errno(rtnl_link_change(h->sk, orig, change, 0));
        if (r == -ENOENT || r == -ENODEV)
                return -ENOENT;
        return r < 0 ? errmsg_set(err, r, "cannot take link %d down: %s", ifindex, strerror(-r)) : 0;
}

int hostnet_pod_veth_down(hostnet *h, const char *name, const char *alias, int *ret_ifindex, struct errmsg *err) {
        int ifindex = 0;
        int r = hostnet_pod_veth_find(h, name, alias, &ifindex, err);
        if (r >= 0)
                r = hostnet_link_down(h, ifindex, err);
        if (r >= 0)
                *ret_ifindex = ifindex;
        return r;
}

int hostnet_adopt_pod_veth(hostnet *h, const char *name, const char *alias, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *cur = NULL, *orig = NULL, *change = NULL;
        int r = nlerr_errno(rtnl_link_get_kernel(h->sk, 0, name, &cur));
        if (r == -ENOENT || r == -ENODEV)
                return -ENOENT;
        if (r < 0)
                return errmsg_set(err, r, "cannot read link %s: %s", name, strerror(-r));
        const char *type = rtnl_link_get_type(cur), *a = rtnl_link_get_ifalias(cur);
        if (!type || strcmp(type, "veth") != 0)
                return -EMEDIUMTYPE;
        if (a && *a)
                return strcmp(a, alias) == 0 ? 0 : -EEXIST;
        orig = rtnl_link_alloc();
        change = rtnl_link_alloc();
        if (!orig || !change)
                return errmsg_set(err, -ENOMEM, "out of memory");
        rtnl_link_set_ifindex(orig, rtnl_link_get_ifindex(cur));
        rtnl_link_set_ifalias(change, alias);
        r = nlerr_errno(rtnl_link_change(h->sk, orig, change, 0));
        if (r == -ENOENT || r == -ENODEV)
                return -ENOENT;
        if (r < 0)
                return errmsg_set(err, r, "cannot set the alias of link %s: %s", name, strerror(-r));
        return 1;
}

int hostnet_delete_link(hostnet *h, int ifindex, const char *name, struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *cur = NULL;
        int r = nlerr_errno(rtnl_link_get_kernel(h->sk, ifindex, NULL, &cur));
        if (r == -ENOENT || r == -ENODEV)
                return 0;
        if (r < 0)
                return errmsg_set(err, r, "cannot read link %d (%s): %s", ifindex, name, strerror(-r));
        if (strcmp(rtnl_link_get_name(cur), name) != 0)
                return 0;               /* gone, and the index reused: not ours */
        r = nlerr_errno(rtnl_link_delete(h->sk, cur));
        if (r == -ENOENT || r == -ENODEV)
                return 0;
        if (r < 0)
                return errmsg_set(err, r, "cannot delete link %s: %s", name, strerror(-r));
        return 1;
}

int hostnet_list_aliased(hostnet *h, const char *alias_prefix, struct hostnet_link **ret, size_t *ret_n,
                         struct errmsg *err) {
        _cleanup_(hn_cache_freep) struct nl_cache *links = NULL;
        int r = nlerr_errno(rtnl_link_alloc_cache(h->sk, AF_UNSPEC, &links));
        if (r < 0)
                return errmsg_set(err, r, "cannot list the links: %s", strerror(-r));
        size_t n = 0, cap = (size_t)nl_cache_nitems(links);
        struct hostnet_link *v = calloc(cap ? cap : 1, sizeof *v);
        if (!v)
                return errmsg_set(err, -ENOMEM, "out of memory listing the links");
        for (struct nl_object *o = nl_cache_get_first(links); o && n < cap; o = nl_cache_get_next(o)) {
                struct rtnl_link *l = (struct rtnl_link *)o;
                const char *alias = rtnl_link_get_ifalias(l);
                if (!alias || !has_prefix(alias, alias_prefix))
                        continue;
                v[n].ifindex = rtnl_link_get_ifindex(l);
                v[n].up = rtnl_link_get_flags(l) & IFF_UP;
                snprintf(v[n].name, sizeof v[n].name, "%s", rtnl_link_get_name(l));
                snprintf(v[n].alias, sizeof v[n].alias, "%s", alias);
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

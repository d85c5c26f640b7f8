/*
 * awsnode-import: aws-node's checkpoint into the store (see awsnode-import.h;
 * the parser is awsnode-checkpoint.c). Importing is one store_assign_addr() per
 * allocation: the store refuses an address it does not hold or that another
 * attachment holds, and the import reports those as skipped rather than
 * failing — a pod whose address EC2 no longer lists has lost it already.
 * In IPv6 mode it is one store_assign6_addr() per IPv6 allocation, and a
 * /128 outside the store's /80s stops the import (it is the /80 aws-node
 * used that the store adopted: an address outside it is not understood).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "awsnode-import.h"
#include "protocol.h"

/* The lease of an IPv6 allocation: 1 imported, 0 skipped, -EADDRNOTAVAIL when its /128 cannot be held. */
static int import6(store *s, const struct store_attachment *att, const struct awsnode_alloc *a, int64_t now_ms,
                   awsnode_skip_fn skipped, void *userdata) {
        int r = store_assign6_addr(s, att, a->ipv6, NULL, now_ms, NULL);
        if (r == 0 || r == 1)
                return 1;
        if (r == -EBUSY || r == -EEXIST) {
                skipped(userdata, a, "the address or the attachment is held by another pod");
                return 0;
        }
        return r == -ENOENT || r == -EINVAL ? -EADDRNOTAVAIL : r;
}

/* One allocation: 1 imported, 0 skipped (skipped() told why), or a store error. */
static int import_one(store *s, hostnet *net, const struct awsnode_alloc *a, const char *veth_prefix, bool ipv6,
                      int64_t now_ms, awsnode_skip_fn skipped, void *userdata, struct awsnode_import_report *rep) {
        char veth[STORE_IFNAME_MAX + 1] = "";
        if (!(ipv6 ? a->ipv6 : a->ipv4)[0]) {
                skipped(userdata, a, ipv6 ? "no IPv6 address (vpc-ipamd runs in IPv6 mode)"
                                          : "no IPv4 address (vpc-ipamd runs in IPv4 mode)");
                return 0;
        }
        if (a->pod_namespace[0] && a->pod_name[0])
                (void)awsnode_veth_name(veth_prefix, a->pod_namespace, a->pod_name, veth);
        /* A checkpoint outlives its pods (a store lost while the daemon was down, a stale
         * file): an allocation whose veth is gone belongs to no running pod, and importing
         * it would hold an address the kernel's witness then cannot give its real owner. */
        bool adopted = false;
        if (net && veth[0]) {
                char alias[PROTO_VETH_ALIAS_MAX];
                proto_veth_alias(a->container_id, a->ifname, alias);
                int v = hostnet_adopt_pod_veth(net, veth, alias, NULL);
                if (v == -ENOENT) {
                        skipped(userdata, a, "its veth is gone: the pod no longer runs");
                        return 0;
                }
                adopted = v == 1;
        }
        struct store_attachment att = { .container_id = a->container_id, .ifname = a->ifname,
                                        .pod_namespace = a->pod_namespace, .pod_name = a->pod_name,
                                        .host_veth = veth };
        if (ipv6) {
                int r6 = import6(s, &att, a, now_ms, skipped, userdata);
                if (r6 == 1 && adopted)
                        rep->veths_adopted++;
                return r6;
        }
        int r = store_assign_addr(s, &att, a->ipv4, now_ms, NULL);
        if (r == -ENOENT || r == -EBUSY || r == -EEXIST || r == -EINVAL) {
                skipped(userdata, a, r == -ENOENT ? "the address is on none of the node's ENIs"
                                     : r == -EINVAL ? "not an address the store can hold"
                                                    : "the address or the attachment is held by another pod");
                return 0;
        }
        if (r < 0)      /* -EAGAIN: its ENI is not set up yet; the caller must not serve */
                return r;
        if (adopted)
                rep->veths_adopted++;
        return 1;
}

int awsnode_import(store *s, hostnet *net, const struct awsnode_checkpoint *c, const char *veth_prefix, bool ipv6,
                   int64_t now_ms, awsnode_skip_fn skipped, void *userdata, struct awsnode_import_report *ret,
                   struct errmsg *err) {
        struct awsnode_import_report rep = { 0 };
        for (size_t i = 0; i < c->n; i++) {
                const struct awsnode_alloc *a = &c->allocs[i];
                int r = import_one(s, net, a, veth_prefix, ipv6, now_ms, skipped, userdata, &rep);
                if (r == -EADDRNOTAVAIL)
                        return errmsg_set(err, r, "the pod %s/%s (container %s) holds %s, outside the node's IPv6 "
                                          "prefix: it cannot be taken over, and its address could be handed out "
                                          "again", a->pod_namespace, a->pod_name, a->container_id, a->ipv6);
                if (r < 0)
                        return errmsg_set(err, r, "cannot record the lease of %s: %s", ipv6 ? a->ipv6 : a->ipv4,
                                          strerror(-r));
                *(r ? &rep.imported : &rep.skipped) += 1;
        }
        char value[32];
        snprintf(value, sizeof value, "%lld", (long long)now_ms);
        int r = store_meta_set(s, AWSNODE_IMPORTED_META, value);
        if (r < 0)
                return errmsg_set(err, r, "cannot record that the checkpoint was imported: %s", strerror(-r));
        if (ret)
                *ret = rep;
        return 0;
}

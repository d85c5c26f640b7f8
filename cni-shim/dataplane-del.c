/*
 * dataplane-del: DEL and GC. DEL removes the pod address's rules and the
 * attachment's host veths (found by name and alias), which take every
 * pod-side object and the host routes with them; missing objects are no
 * error. GC removes the veths of ours (by name prefix and alias) whose
 * attachment is not listed, and the rules of released addresses.
 */
#include "dataplane-internal.h"

int dp_host_veth(const struct dp_pod *pod, const char *host_ifname_hint, char ret[static PROTO_IFNAME_MAX + 1],
                 struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if ((r = dpi_find_host_veth(host, pod, host_ifname_hint, false, &veth)) < 0)
                return r == -ENOENT ? r : errmsg_set(err, r, "cannot look for the host veth: %s", strerror(-r));
        snprintf(ret, PROTO_IFNAME_MAX + 1, "%s", rtnl_link_get_name(veth));
        return 0;
}

/* Delete the attachment's main or egress veth when there is one. */
static int del_veth(struct nl_sock *host, const struct dp_pod *pod, const char *hint, bool egress,
                    struct errmsg *err) {
        _cleanup_(link_putp) struct rtnl_link *veth = NULL;
        int r = dpi_find_host_veth(host, pod, hint, egress, &veth);
        if (r == -ENOENT)
                return 0;               /* gone with its namespace, or never made */
        if (r < 0)
                return errmsg_set(err, r, "cannot look for the host %sveth: %s", egress ? "egress " : "",
                                  strerror(-r));
        r = nlerr_errno(rtnl_link_delete(host, veth));
        if (r < 0 && r != -ENODEV && r != -ENOENT)
                return errmsg_set(err, r, "cannot delete veth %s: %s", rtnl_link_get_name(veth), strerror(-r));
        return 0;
}

int dp_del(const struct dp_pod *pod, const char *host_ifname_hint, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        if (pod->ip && *pod->ip && (r = dpi_rules_remove(host, pod->ip, NULL)) < 0)
                return errmsg_set(err, r, "cannot remove the rules of %s: %s", pod->ip, strerror(-r));
        r = del_veth(host, pod, host_ifname_hint, false, err);
        return r < 0 ? r : del_veth(host, pod, NULL, true, err);
}

int dp_del_egress(const struct dp_pod *pod, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        return del_veth(host, pod, NULL, true, err);
}

/* One of our aliases (main or egress) of an attachment listed in valid[]. */
static bool alias_valid(const char *alias, bool egress, const struct proto_attachment *valid, size_t n_valid) {
        char want[PROTO_VETH_ALIAS_MAX];
        for (size_t i = 0; i < n_valid; i++) {
                dpi_alias_of(valid[i].container_id, valid[i].ifname, egress, want);
                if (strcmp(alias, want) == 0)
                        return true;
        }
        return false;
}

static bool starts_with(const char *s, const char *prefix) {
        return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A veth of ours (by name and alias) whose attachment is not in valid[]. */
static bool gc_candidate(struct rtnl_link *l, const char *prefix, const struct proto_attachment *valid,
                         size_t n_valid) {
        const char *name = rtnl_link_get_name(l), *alias = rtnl_link_get_ifalias(l);
        if (!starts_with(name, prefix))
                return false;
        if (starts_with(alias, PROTO_VETH_ALIAS_PREFIX))
                return !alias_valid(alias, false, valid, n_valid);
        if (starts_with(alias, DP_EGRESS_ALIAS_PREFIX))
                return !alias_valid(alias, true, valid, n_valid);
        return false;
}

static int gc_veths(struct nl_sock *sk, const char *prefix, const struct proto_attachment *valid, size_t n_valid,
                    unsigned *removed) {
        _cleanup_(cache_freep) struct nl_cache *links = NULL;
        int r = nlerr_errno(rtnl_link_alloc_cache(sk, AF_UNSPEC, &links));
        if (r < 0)
                return r;
        for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
                struct rtnl_link *l = (struct rtnl_link *)o;
                if (!gc_candidate(l, prefix, valid, n_valid))
                        continue;
                r = nlerr_errno(rtnl_link_delete(sk, l));
                if (r < 0 && r != -ENODEV)
                        return r;
                (*removed)++;
        }
        return 0;
}

int dp_gc(const char *veth_prefix, const struct proto_attachment *valid, size_t n_valid,
          char (*released)[PROTO_IP_MAX], size_t n_released, unsigned *ret_removed, struct errmsg *err) {
        _cleanup_(sock_freep) struct nl_sock *host = NULL;
        unsigned removed = 0;
        int r = netns_nl_socket_here(&host);
        if (r < 0)
                return errmsg_set(err, r, "cannot open a netlink socket: %s", strerror(-r));
        /* The rules first: the released addresses rest only a few seconds
         * (PODNET_RELEASE_REST_MS), and each veth deletion waits ~20 ms. */
        for (size_t i = 0; i < n_released; i++) {
                r = dpi_rules_remove(host, released[i], &removed);
                if (r < 0)
                        return errmsg_set(err, r, "cannot remove the rules of %s: %s", released[i], strerror(-r));
        }
        r = gc_veths(host, veth_prefix, valid, n_valid, &removed);
        *ret_removed = removed;
        return r < 0 ? errmsg_set(err, r, "cannot remove leftover veths: %s", strerror(-r)) : 0;
}

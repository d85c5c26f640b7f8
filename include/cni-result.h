/*
 * cni-result: the JSON that vpc-cni prints on stdout — the ADD/CHECK result in
 * the shape of the requested cniVersion, the VERSION answer, and the error
 * object. Each renderer builds the whole document in memory and hands back
 * one string, so the plugin prints either a complete answer or nothing.
 *
 * Shapes: 0.3.0, 0.3.1 and 0.4.0 put "version":"4" (or "6") on each ips[]
 * entry; 1.0.0 drops it; 1.1.0 adds "mtu" on the interfaces. An IPv6 pod's
 * egress address is listed on its own interface (v4if0), so a runtime that
 * takes the pod's addresses from CNI_IFNAME sees only the IPv6 one.
 */
#pragma once

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "protocol.h"

struct cni_result {
        char host_ifname[PROTO_IFNAME_MAX + 1];
        char host_mac[18];
        char pod_ifname[PROTO_IFNAME_MAX + 1];
        char pod_mac[18];
        const char *sandbox;    /* the netns path */
        char ip[PROTO_IP_MAX];          /* IPv4 (/32) or IPv6 (/128) */
        char gateway[PROTO_IP_MAX];
        unsigned mtu;
        /* The egress of the other family (egress_ip "" without): a second pair
         * of interfaces, the address on the pod one (an IPv6 pod's /22 in
         * PROTO_EGRESS4_CIDR, an IPv4 pod's /118 in PROTO_EGRESS6_CIDR), the
         * default route of that family via egress_gateway. */
        char egress_ip[PROTO_IP_MAX];
        char egress_gateway[PROTO_IP_MAX];
        char egress_host_ifname[PROTO_IFNAME_MAX + 1];
        char egress_host_mac[18];
        char egress_pod_ifname[PROTO_IFNAME_MAX + 1];
        char egress_pod_mac[18];
};

/*
 * Render r for cni_version. prev (may be NULL) is a prevResult from an
 * earlier plugin of a chain: its interfaces, ips and routes come first and
 * ours are appended, with our ips[].interface indexes shifted to match.
 */
int cni_result_render(const struct cni_result *r, const char *cni_version, const cJSON *prev, char **ret);

/* {"cniVersion":..,"supportedVersions":[..]} */
int cni_version_render(const char *cni_version, char **ret);

/* {"cniVersion":..,"code":..,"msg":..,"details":..}; details may be NULL. */
int cni_error_render(const char *cni_version, int code, const char *msg, const char *details, char **ret);

/*
 * What DEL needs from a prevResult when the daemon cannot tell it: the first
 * address of ips[] of either family that is not an egress address (without
 * the prefix) and the name of the first host-side interface (the one without
 * a sandbox). Missing parts stay empty; returns
 * -ENOENT when prev has neither.
 */
int cni_result_prev_parse(const cJSON *prev, char ip[static PROTO_IP_MAX],
                          char host_ifname[static PROTO_IFNAME_MAX + 1]);

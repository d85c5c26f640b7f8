/*
 * protocol: the messages between vpc-ipamd and its clients (the vpc-cni
 * plugin, vpc-ipamctl), and the client call that carries them.
 *
 * Transport: a Unix socket of type SOCK_SEQPACKET, one message per datagram,
 * at most PROTO_MSG_MAX bytes, each a UTF-8 JSON object. A request is
 *     {"v":1,"op":"add", ...fields of the op}
 * and its reply
 *     {"v":1,"ok":true, ...result}   or
 *     {"v":1,"ok":false,"error":{"code":"no_address","msg":"...","retry":true}}
 * docs/protocol.md is the reference for every op and field.
 *
 * Both sides decode strictly: every field has a type and a length bound,
 * addresses are dotted quads, interface names are valid kernel names, and a
 * message that breaks a rule is refused as a whole. The structs below are
 * plain data; the few dynamic parts (GC lists, VPC CIDRs, the free-form result
 * of the read-only ops) are released with proto_request_done() and
 * proto_reply_done().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "errmsg.h"

#define PROTO_VERSION 1
#define PROTO_MSG_MAX 65536
#define PROTO_SOCKET_DEFAULT "/run/vpc-ipam/ipamd.sock"

#define PROTO_CONTAINER_ID_MAX 256
#define PROTO_IFNAME_MAX 15
#define PROTO_NETNS_MAX 4096
#define PROTO_POD_FIELD_MAX 253
#define PROTO_REASON_MAX 64
#define PROTO_ENI_ID_MAX 32
#define PROTO_ERROR_CODE_MAX 32
#define PROTO_ERROR_MSG_MAX 400
#define PROTO_IP_MAX 46          /* INET6_ADDRSTRLEN: an IPv6 text address + NUL */
#define PROTO_CIDR_MAX 50        /* an IPv6 address, "/128", NUL */
#define PROTO_LIST_MAX 4096      /* entries in a GC list or a released list */
#define PROTO_POD_GATEWAY "169.254.1.1"
#define PROTO_POD_GATEWAY6 "fe80::1"            /* an IPv6 pod's gateway (aws-node's) */
/* IPv4 egress of IPv6 pods: each pod gets a node-local address from this
 * /22 on a second interface; the host end is its .1 (aws-node's egress-cni). */
#define PROTO_EGRESS4_CIDR "169.254.172.0/22"
#define PROTO_EGRESS4_GATEWAY "169.254.172.1"
/* IPv6 egress of IPv4 pods (ENABLE_V6_EGRESS): a ULA from this /118 on a
 * second interface, default route via the host end's link-local address. */
#define PROTO_EGRESS6_CIDR "fd00::ac:0/118"

enum proto_op {
        PROTO_OP_ADD,
        PROTO_OP_DEL,
        PROTO_OP_CHECK,
        PROTO_OP_GC,
        PROTO_OP_STATUS,
        PROTO_OP_POOL,          /* read-only queries of vpc-ipamctl: */
        PROTO_OP_ENIS,          /* the result is a free-form object */
        PROTO_OP_PODS,
        PROTO_OP_INTENTS,
        _PROTO_OP_MAX,
};

/* The wire names of the error codes (error.code). */
#define PROTO_E_BAD_REQUEST "bad_request"
#define PROTO_E_UNSUPPORTED_VERSION "unsupported_version"
#define PROTO_E_UNKNOWN_OP "unknown_op"
#define PROTO_E_UNKNOWN_CONTAINER "unknown_container"
#define PROTO_E_NO_ADDRESS "no_address"
#define PROTO_E_INTERNAL "internal"
#define PROTO_E_SHUTTING_DOWN "shutting_down"

struct proto_attachment {
        char container_id[PROTO_CONTAINER_ID_MAX + 1];
        char ifname[PROTO_IFNAME_MAX + 1];
};

struct proto_request {
        enum proto_op op;
        struct proto_attachment att;            /* add, del, check */
        char netns[PROTO_NETNS_MAX + 1];        /* add */
        char pod_namespace[PROTO_POD_FIELD_MAX + 1];
        char pod_name[PROTO_POD_FIELD_MAX + 1];
        char pod_uid[PROTO_POD_FIELD_MAX + 1];
        char pod_infra_container_id[PROTO_CONTAINER_ID_MAX + 1];
        char reason[PROTO_REASON_MAX + 1];      /* del: why ("PodDeleted", "SetupFailed", ...) */
        char host_veth[PROTO_IFNAME_MAX + 1];   /* del: the pod's host veth as the plugin found it, or "" */
        struct proto_attachment *valid;         /* gc: the attachments that must stay */
        size_t n_valid;
};

struct proto_error {
        char code[PROTO_ERROR_CODE_MAX + 1];
        char msg[PROTO_ERROR_MSG_MAX + 1];
        bool retry;
};

/* What add and check return, and (ip and route_table only) del. */
struct proto_address {
        bool has_ip;                            /* del: false when the daemon knew no address */
        char ip[PROTO_IP_MAX];                  /* IPv4, or IPv6 (a /128) in IPv6 mode */
        char eni_id[PROTO_ENI_ID_MAX + 1];
        uint32_t device_index;
        uint32_t route_table;                   /* 254 = main (primary ENI) */
        char gateway[PROTO_IP_MAX];             /* the pod's gateway: 169.254.1.1, or fe80::1 for IPv6 */
        char subnet_gateway[PROTO_IP_MAX];
        uint32_t mtu;
        char egress_ip[PROTO_IP_MAX];           /* the pod's egress address of the other family:
                                                   an IPv6 pod's in PROTO_EGRESS4_CIDR, an IPv4
                                                   pod's in PROTO_EGRESS6_CIDR, or "" (none) */
        char (*vpc_cidrs)[PROTO_CIDR_MAX];
        size_t n_vpc_cidrs;
};

struct proto_reply {
        enum proto_op op;
        bool ok;
        struct proto_error error;               /* when !ok */
        struct proto_address addr;              /* add, check, del */
        bool unwired;                           /* del: the daemon removed the pod's rules and routes
                                                   (or does before it answers anything else) */
        bool veth_queued;                       /* del: ...and takes host_veth down, deleting it shortly */
        char (*released)[PROTO_IP_MAX];         /* gc */
        size_t n_released;
        bool ready;                             /* status */
        char reason[PROTO_ERROR_MSG_MAX + 1];
        uint32_t available;
        cJSON *result;                          /* pool, enis, pods, intents: the whole reply object */
};

const char *proto_op_name(enum proto_op op);
int proto_op_from_name(const char *name, enum proto_op *ret);

/* The alias vpc-cni sets on a pod's host veth, "vpc-cni:<ifname>:<container
 * id>" (cut to the kernel's 255 characters): how the plugin and vpc-ipamd tell
 * an attachment's veth from any other link. */
#define PROTO_VETH_ALIAS_PREFIX "vpc-cni:"
#define PROTO_VETH_ALIAS_MAX 256
void proto_veth_alias(const char *container_id, const char *ifname, char ret[static PROTO_VETH_ALIAS_MAX]);

/* Field validators, shared with the plugin's own parsing. */
bool proto_valid_ifname(const char *s);
bool proto_valid_container_id(const char *s);
bool proto_valid_ipv4(const char *s);
/* An egress address: in PROTO_EGRESS4_CIDR (an IPv6 pod's) or PROTO_EGRESS6_CIDR (an IPv4 pod's). */
bool proto_valid_egress_ip(const char *s);
bool proto_valid_cidr4(const char *s);
bool proto_valid_ipv6(const char *s);   /* RFC 5952 canonical text only (what inet_ntop writes) */
bool proto_valid_ip(const char *s);     /* either family */
bool proto_valid_cidr(const char *s);   /* either family, canonical address, prefix within the family */

void proto_request_done(struct proto_request *req);
void proto_reply_done(struct proto_reply *reply);

/* Request: encode to a NUL-terminated JSON string (free()), decode strictly.
 * On failure, decode fills ret_err with the reply the server should send
 * (bad_request, unsupported_version or unknown_op) and returns -EINVAL,
 * -EPROTONOSUPPORT or -EOPNOTSUPP; *ret is then untouched. */
int proto_request_encode(const struct proto_request *req, char **ret);
int proto_request_decode(const void *buf, size_t len, struct proto_request *ret,
                         struct proto_error *ret_err);

/* Reply: encode (op tells which fields to write) and decode strictly for the
 * op that was asked. A well-formed error reply decodes with ok == false. */
int proto_reply_encode(const struct proto_reply *reply, char **ret);
int proto_reply_encode_error(const char *code, const char *msg, bool retry, char **ret);
int proto_reply_decode(enum proto_op op, const void *buf, size_t len, struct proto_reply *ret,
                       struct errmsg *err);

/*
 * Client: connect to socket_path, send req, wait for the reply until
 * deadline_ms from now. Returns 0 with *ret filled (check ret->ok), or
 *   -ENOENT / -ECONNREFUSED  the daemon is not reachable (no socket, no listener)
 *   -ETIMEDOUT               no reply within the deadline
 *   -EBADMSG                 the reply is not a valid reply to this request
 *   other negative errno     a local failure (socket, send)
 */
int proto_call(const char *socket_path, const struct proto_request *req, int deadline_ms,
               struct proto_reply *ret, struct errmsg *err);

/*
 * Did a failed proto_call() fail because the daemon could not be reached or
 * the connection broke (no socket, no listener, refused or reset, closed
 * under us, no reply in time)? Such a call is worth trying again later; it
 * never carries an answer from the daemon.
 */
bool proto_error_is_transient(int r);

/* proto_call() in two halves, so the caller can work while the daemon
 * answers: proto_call_send() connects and sends (proto_call()'s errors) and
 * leaves the call pending; proto_call_recv() waits for the reply until the
 * deadline given to send and ends the call (it must be called once for
 * every successful send). */
struct proto_pending {
        int fd;
        enum proto_op op;
        int64_t deadline;               /* CLOCK_MONOTONIC ms */
};
int proto_call_send(const char *socket_path, const struct proto_request *req, int deadline_ms,
                    struct proto_pending *ret, struct errmsg *err);
int proto_call_recv(struct proto_pending *p, struct proto_reply *ret, struct errmsg *err);

/*
 * Server side: a handler answers one decoded request by filling *reply
 * (reply->op is preset; set ok, or error). proto_server_handle() decodes a
 * datagram, calls the handler, and returns the reply to send as a JSON string
 * (free()); bad input gets its error reply without calling the handler.
 */
typedef void (*proto_handler)(const struct proto_request *req, struct proto_reply *reply,
                              void *userdata);
int proto_server_handle(const void *buf, size_t len, proto_handler handler, void *userdata,
                        char **ret_reply);

/* Create a listening SOCK_SEQPACKET socket at path (an old socket file is
 * replaced), close-on-exec and non-blocking. */
int proto_listen(const char *path, int backlog, int *ret_fd);

/*
 * fuzz-protocol: the daemon socket codec, both directions.
 *
 * The bytes are decoded as a request (what the daemon's server will face)
 * and as a reply to every op (what the plugin and vpc-ipamctl face). Every
 * message that decodes must re-encode, and the re-encoding must decode
 * again to the same op/ok — the codec may refuse, but never produce what it
 * would itself refuse.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void request(const uint8_t *data, size_t size) {
        struct proto_request req, again;
        struct proto_error e;
        char *json = NULL;
        if (proto_request_decode(data, size, &req, &e) < 0) {
                if (!e.code[0] || !e.msg[0])
                        abort();
                return;
        }
        if (proto_request_encode(&req, &json) < 0 || proto_request_decode(json, strlen(json), &again, &e) < 0 ||
            again.op != req.op || strcmp(again.att.container_id, req.att.container_id) != 0 ||
            strcmp(again.host_veth, req.host_veth) != 0 || again.n_valid != req.n_valid)
                abort();
        proto_request_done(&again);
        proto_request_done(&req);
        free(json);
}

static void reply(enum proto_op op, const uint8_t *data, size_t size) {
        struct proto_reply r, again;
        char *json = NULL;
        if (proto_reply_decode(op, data, size, &r, NULL) < 0)
                return;
        if (proto_reply_encode(&r, &json) < 0 || proto_reply_decode(op, json, strlen(json), &again, NULL) < 0 ||
            again.ok != r.ok || (r.ok && strcmp(again.addr.ip, r.addr.ip) != 0) || again.unwired != r.unwired ||
            again.veth_queued != r.veth_queued)
                abort();
        proto_reply_done(&again);
        proto_reply_done(&r);
        free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        request(data, size);
        for (int op = 0; op < _PROTO_OP_MAX; op++)
                reply((enum proto_op)op, data, size);
        return 0;
}

/*
 * fuzz-checkpoint: aws-node's checkpoint parser (daemon/awsnode-checkpoint.c),
 * which reads a file another program wrote. The input is the file's text.
 * Whatever parses must hold only what the store can take: non-empty
 * container id and ifname that fit, NUL-terminated fields, and for each
 * allocation with pod fields a veth name of exactly prefix + 11 hex digits.
 * A refusal must come with a message.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "awsnode-import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_alloc(const struct awsnode_alloc *a) {
        assert(a->container_id[0] && strlen(a->container_id) <= STORE_CONTAINER_ID_MAX);
        assert(a->ifname[0] && strlen(a->ifname) <= STORE_IFNAME_MAX);
        assert(strlen(a->ipv4) < STORE_IP_MAX);
        assert(strlen(a->pod_namespace) <= STORE_POD_FIELD_MAX && strlen(a->pod_name) <= STORE_POD_FIELD_MAX);
        char veth[STORE_IFNAME_MAX + 1];
        if (awsnode_veth_name("eni", a->pod_namespace, a->pod_name, veth) == 0) {
                assert(strlen(veth) == 3 + AWSNODE_VETH_HASH_LEN && strncmp(veth, "eni", 3) == 0);
                assert(strspn(veth + 3, "0123456789abcdef") == AWSNODE_VETH_HASH_LEN);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct awsnode_checkpoint c = { 0 };
        struct errmsg err = { 0 };
        int r = awsnode_checkpoint_parse((const char *)data, size, &c, &err);
        if (r < 0) {
                assert(r == -EINVAL || r == -EPROTONOSUPPORT || r == -ENOMEM);
                assert(err.text[0] && !c.allocs);
                return 0;
        }
        for (size_t i = 0; i < c.n; i++)
                check_alloc(&c.allocs[i]);
        awsnode_checkpoint_done(&c);
        return 0;
}

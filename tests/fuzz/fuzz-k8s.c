/*
 * fuzz-k8s: the Kubernetes API decoders (cloud/k8s.c): a Node, an ENIConfig
 * and a Status message. Input: byte 0 picks the decoder, the rest is the
 * body. Every accepted object is checked to be whole: a valid name, strings
 * never NULL, lookups that find what the arrays hold, a printable message.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_node(const struct k8s_node *n) {
        assert(k8s_name_ok(n->name));
        for (size_t i = 0; i < n->n_labels; i++)
                assert(k8s_node_label(n, n->labels[i].key) != NULL);
        for (size_t i = 0; i < n->n_annotations; i++)
                assert(k8s_node_annotation(n, n->annotations[i].key) != NULL);
        for (size_t i = 0; i < n->n_taints; i++) {
                assert(n->taints[i].key[0] && n->taints[i].value && n->taints[i].effect);
                assert(k8s_node_has_taint(n, n->taints[i].key, n->taints[i].effect));
        }
        assert(n->capacity_pods >= -1);
}

static void check_eniconfig(const struct k8s_eniconfig *e) {
        assert(k8s_name_ok(e->name) && e->subnet);
        for (size_t i = 0; i < e->n_security_groups; i++)
                assert(e->security_groups[i][0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        const char *b = (const char *)data + 1;
        size_t len = size - 1;
        struct k8s_node *n = NULL;
        struct k8s_eniconfig *e = NULL;
        char msg[64];
        switch (data[0] % 3) {
        case 0:
                if (k8s_parse_node(b, len, &n, NULL) == 0)
                        check_node(n);
                else
                        assert(!n);
                k8s_node_free(n);
                break;
        case 1:
                if (k8s_parse_eniconfig(b, len, &e, NULL) == 0)
                        check_eniconfig(e);
                else
                        assert(!e);
                k8s_eniconfig_free(e);
                break;
        default:
                k8s_parse_status(b, len, msg, sizeof msg);
                assert(strlen(msg) < sizeof msg);
                for (const char *p = msg; *p; p++)
                        assert(*p >= 0x20 && *p < 0x7f);
                break;
        }
        return 0;
}

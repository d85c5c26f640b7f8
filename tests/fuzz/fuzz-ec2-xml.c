/*
 * fuzz-ec2-xml: the EC2 response decoder (cloud/ec2-parse.c over xmlwalk and
 * expat). Input: byte 0 picks the action, byte 1 the HTTP status (200, 400,
 * 503) and content type, the rest is the body. A decoded result is walked
 * completely so that a dangling or unterminated string would be caught by
 * AddressSanitizer.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ec2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t touch(const char *s) {
        return s ? strlen(s) : 0;
}

static size_t walk_eni(const struct ec2_eni *e) {
        size_t n = touch(e->id) + touch(e->mac) + touch(e->status) + touch(e->subnet_id) + touch(e->vpc_id) +
                   touch(e->availability_zone) + touch(e->description) + touch(e->primary_ip) +
                   touch(e->interface_type) + touch(e->attachment.id) + touch(e->attachment.instance_id) +
                   touch(e->attachment.status);
        for (size_t i = 0; i < e->n_private_ips; i++)
                n += touch(e->private_ips[i].address);
        for (size_t i = 0; i < e->n_prefixes; i++)
                n += touch(e->prefixes[i]);
        for (size_t i = 0; i < e->n_security_groups; i++)
                n += touch(e->security_groups[i]);
        for (size_t i = 0; i < e->n_tags; i++)
                n += touch(e->tags[i].key) + touch(e->tags[i].value);
        return n;
}

static size_t walk(const struct ec2_result *r) {
        size_t n = touch(r->request_id) + touch(r->next_token) + touch(r->eni_id) + touch(r->attachment_id);
        for (size_t i = 0; i < r->n_enis; i++)
                n += walk_eni(&r->enis[i]);
        for (size_t i = 0; i < r->n_instances; i++) {
                const struct ec2_instance *in = &r->instances[i];
                n += touch(in->id) + touch(in->type) + touch(in->state) + touch(in->availability_zone) +
                     touch(in->subnet_id) + touch(in->vpc_id) + touch(in->private_ip);
                for (size_t j = 0; j < in->n_enis; j++)
                        n += walk_eni(&in->enis[j]);
        }
        for (size_t i = 0; i < r->n_types; i++) {
                n += touch(r->types[i].type) + touch(r->types[i].hypervisor);
                for (size_t j = 0; j < r->types[i].n_cards; j++)
                        n += (size_t)r->types[i].cards[j].max_enis;
        }
        for (size_t i = 0; i < r->n_subnets; i++) {
                const struct ec2_subnet *s = &r->subnets[i];
                n += touch(s->id) + touch(s->vpc_id) + touch(s->availability_zone) + touch(s->cidr) + touch(s->state);
                for (size_t j = 0; j < s->n_tags; j++)
                        n += touch(s->tags[j].key) + touch(s->tags[j].value);
        }
        for (size_t i = 0; i < r->n_ips; i++)
                n += touch(r->ips[i]);
        for (size_t i = 0; i < r->n_prefixes; i++)
                n += touch(r->prefixes[i]);
        return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const long statuses[] = { 200, 400, 503 };
        static const char *types[] = { "text/xml;charset=UTF-8", "application/xml", "text/html" };
        if (size < 2)
                return 0;
        enum ec2_action a = (enum ec2_action)(data[0] % _EC2_ACTION_MAX);
        long status = statuses[data[1] % 3];
        const char *ctype = types[(data[1] / 3) % 3];
        struct ec2_result *r = NULL;
        struct ec2_error e;
        if (ec2_parse_response(a, status, ctype, (const char *)data + 2, size - 2, &r, &e) == 0) {
                volatile size_t n = walk(r);
                (void)n;
                ec2_result_free(r);
        } else {
                volatile size_t n = strlen(e.msg.text) + strlen(e.code) + strlen(e.message) + strlen(e.request_id);
                (void)n;
        }
        return 0;
}

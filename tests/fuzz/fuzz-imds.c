/*
 * fuzz-imds: the strict parsers of IMDS text bodies (cloud/imds.c) and the
 * credentials documents served by IMDS and the container endpoint
 * (cloud/creds.c). Input: byte 0 picks the parser, the rest is the body.
 * Every accepted list is checked to be well-formed (MACs lower-case and
 * colon-separated, CIDR host bits clear, IPv4 and IPv6).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"
#include "imds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cidrs(const struct imds_cidr *c, size_t n) {
        for (size_t i = 0; i < n; i++) {
                assert(c[i].len <= 32);
                uint32_t mask = c[i].len ? ~0u << (32 - c[i].len) : 0;
                assert((ntohl(c[i].addr.s_addr) & ~mask) == 0);
        }
}

static void check_cidrs6(const struct imds_cidr6 *c, size_t n) {
        for (size_t i = 0; i < n; i++) {
                assert(c[i].len <= 128);
                for (unsigned bit = c[i].len; bit < 128; bit++)
                        assert(!(c[i].addr.s6_addr[bit / 8] & (0x80 >> (bit % 8))));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1)
                return 0;
        const char *b = (const char *)data + 1;
        size_t len = size - 1;
        char id[IMDS_ID_MAX], mac[IMDS_MAC_LEN];
        char (*macs)[IMDS_MAC_LEN] = NULL, (*ids)[IMDS_ID_MAX] = NULL;
        struct in_addr *ips = NULL;
        struct imds_cidr *cidrs = NULL;
        struct creds_value *v = NULL;
        size_t n = 0;
        unsigned u;
        struct in6_addr *ips6 = NULL;
        struct imds_cidr6 *cidrs6 = NULL;
        switch (data[0] % 11) {
        case 0:
                if (imds_parse_id(b, len, "i-", id) == 0)
                        assert(strncmp(id, "i-", 2) == 0 && strlen(id) < IMDS_ID_MAX);
                break;
        case 1:
                if (imds_parse_mac(b, len, mac) == 0)
                        assert(strlen(mac) == 17 && mac[2] == ':');
                break;
        case 2:
                if (imds_parse_mac_list(b, len, &macs, &n) == 0)
                        for (size_t i = 0; i < n; i++)
                                assert(strlen(macs[i]) == 17);
                free(macs);
                break;
        case 3:
                if (imds_parse_uint(b, len, 1023, &u) == 0)
                        assert(u <= 1023);
                break;
        case 4:
                imds_parse_ipv4_list(b, len, &ips, &n) == 0 ? free(ips) : (void)0;
                break;
        case 5:
                if (imds_parse_cidr_list(b, len, &cidrs, &n) == 0) {
                        check_cidrs(cidrs, n);
                        free(cidrs);
                }
                break;
        case 6:
                if (imds_parse_id_list(b, len, "sg-", &ids, &n) == 0)
                        for (size_t i = 0; i < n; i++)
                                assert(strncmp(ids[i], "sg-", 3) == 0);
                free(ids);
                break;
        case 7:
                v = malloc(sizeof *v);
                if (v && creds_parse_json(b, len, v, NULL) == 0)
                        assert(v->access_key_id[0] && v->secret_access_key[0]);
                free(v);
                break;
        case 8:
                v = malloc(sizeof *v);
                if (v && creds_parse_sts(b, len, v, NULL) == 0)
                        assert(v->session_token[0] && v->expiration > 0);
                free(v);
                break;
        case 9:
                imds_parse_ipv6_list(b, len, &ips6, &n) == 0 ? free(ips6) : (void)0;
                break;
        case 10:
                if (imds_parse_cidr6_list(b, len, &cidrs6, &n) == 0) {
                        check_cidrs6(cidrs6, n);
                        free(cidrs6);
                }
                break;
        }
        return 0;
}

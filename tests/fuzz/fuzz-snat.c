/*
 * fuzz-snat: the egress variables' parsers and the nft script renderer
 * (daemon/snat.c) — the only code that turns environment text into
 * nftables input, so nothing from the input may escape its place.
 *
 * Input layout: six lines — RANDOMIZESNAT, EXCLUDE_SNAT_CIDRS, CONNMARK,
 * VETHPREFIX, the primary IP, the primary link name — then the rest as
 * "CIDR" lines for the VPC. Whatever parses is rendered; a rendered script
 * must hold exactly the quotes, braces and statements the renderer writes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of the input, NUL-terminated in place of its newline. */
static char *next_line(char **p) {
        char *s = *p;
        if (!s)
                return (char *)"";
        char *nl = strchr(s, '\n');
        *p = nl ? nl + 1 : NULL;
        if (nl)
                *nl = '\0';
        return s;
}

static size_t count(const char *s, char c) {
        size_t n = 0;
        for (; *s; s++)
                n += *s == c;
        return n;
}

static void check_script(const struct snat_input *in, const char *s) {
        /* quoted names: the pod prefix twice in prerouting, pod prefix and vlan in
         * postrouting, the primary link when NodePort support is on */
        size_t quotes = 2 * (2 + 2 + (in->cfg.node_port ? 1 : 0));
        if (count(s, '"') != quotes || count(s, '{') != count(s, '}') || strstr(s, ";;"))
                abort();
        if (strncmp(s, snat_render_remove(), strlen(snat_render_remove())) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 4096)
                return 0;
        char *buf = malloc(size + 1), *p = buf;
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        struct snat_input in = { 0 };
        snat_config_defaults(&in.cfg);
        (void)snat_parse_random("R", next_line(&p), &in.cfg.random, NULL);
        (void)snat_parse_cidrs("X", next_line(&p), &in.cfg, NULL);
        (void)snat_parse_mark("M", next_line(&p), &in.cfg.mark, NULL);
        (void)snat_parse_veth_prefix("V", next_line(&p), in.cfg.veth_prefix, NULL);
        snprintf(in.primary_ip, sizeof in.primary_ip, "%s", next_line(&p));
        snprintf(in.primary_if, sizeof in.primary_if, "%s", next_line(&p));
        in.cfg.node_port = size % 2;
        while (p && in.n_vpc_cidrs < SNAT_MAX_VPC_CIDRS)
                snprintf(in.vpc_cidrs[in.n_vpc_cidrs++], SNAT_CIDR_LEN, "%s", next_line(&p));
        char *script = NULL;
        struct errmsg err;
        if (snat_render(&in, &script, &err) == 0) {
                check_script(&in, script);
                free(script);
        } else if (!err.text[0]) {
                abort();          /* a refusal always says why */
        }
        struct snat_input copy = in;
        if (!snat_input_equal(&in, &copy))
                abort();
        free(buf);
        return 0;
}

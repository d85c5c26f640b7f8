/*
 * fuzz-cni-config: the plugin's two inputs from the runtime — the CNI_*
 * environment and the network configuration on stdin.
 *
 * Input layout: "K=V" lines (the environment), a line "--", then the
 * configuration bytes. Whatever parses is pushed further the way the plugin
 * would: the config for the parsed command (or for each command when the
 * environment did not parse), prevResult through the DEL/CHECK reader and
 * the result renderer, so a chained prevResult is fuzzed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cni-config.h"
#include "cni-result.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void push_config(const char *cfg_text, size_t len, enum cni_command cmd) {
        struct cni_config c;
        struct errmsg err;
        int code = 0;
        if (cni_config_parse(cfg_text, len, cmd, &c, &code, &err) < 0) {
                if (code != CNI_ERR_DECODE && code != CNI_ERR_INVALID_CONFIG && code != CNI_ERR_INCOMPATIBLE_VERSION)
                        abort();
                return;
        }
        char ip[PROTO_IP_MAX], host[PROTO_IFNAME_MAX + 1], *out = NULL;
        (void)cni_result_prev_parse(c.prev_result, ip, host);
        struct cni_result r = { .host_ifname = "eni0", .pod_ifname = "eth0", .ip = "10.0.0.1",
                                .gateway = "169.254.1.1", .sandbox = "/x", .mtu = c.mtu };
        if (cni_result_render(&r, c.cni_version, c.prev_result, &out) < 0 || !out)
                abort();
        free(out);
        cni_config_done(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 64 * 1024)
                return 0;
        char *buf = malloc(size + 1), *envp[64];
        memcpy(buf, data, size);
        buf[size] = '\0';
        char *sep = strstr(buf, "\n--\n"), *cfg = sep ? sep + 4 : buf;
        size_t cfg_len = sep ? size - (size_t)(cfg - buf) : size;
        size_t n = 0;
        if (sep) {
                *sep = '\0';
                for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l && n < 63; l = strtok_r(NULL, "\n", &save))
                        envp[n++] = l;
        }
        envp[n] = NULL;
        struct cni_env env;
        struct errmsg err;
        int code = 0;
        if (cni_env_parse(envp, &env, &code, &err) == 0)
                push_config(cfg, cfg_len, env.command);
        else if (code != CNI_ERR_INVALID_ENV)
                abort();
        else
                for (int c = 0; c < _CNI_CMD_MAX; c++)
                        push_config(cfg, cfg_len, (enum cni_command)c);
        free(buf);
        return 0;
}

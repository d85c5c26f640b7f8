/*
 * vpc-cni: the CNI plugin's entry point.
 *
 * Reads the configuration from stdin and the CNI_* environment, checks both
 * (cni-config.h), dispatches the command from a table like wg.c's, and prints
 * exactly one JSON document on stdout with one write — the result, or the
 * CNI error — so the runtime never sees half an answer. Logs go to stderr
 * and to logFile when set; never to stdout. No fork, no exec: ADD is a few
 * netlink round trips and one socket call.
 *
 * Built with -DVPC_CNI_TEST_HOOKS (the test-only vpc-cni-faulty, never
 * installed), VPC_CNI_TEST_FAULT=<step number> makes ADD fail before that
 * dataplane step (see dataplane.h); the tests use it to prove rollback end
 * to end. The installed vpc-cni has no such hook.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cni-commands.h"
#include "cni-config.h"
#include "cni-result.h"
#include "log.h"

extern char **environ;

static const struct {
        enum cni_command cmd;
        bool needs_config;
        int (*run)(struct cni_ctx *ctx);
} commands[] = {
        { CNI_CMD_ADD, true, cni_cmd_add },
        { CNI_CMD_DEL, true, cni_cmd_del },
        { CNI_CMD_CHECK, true, cni_cmd_check },
        { CNI_CMD_GC, true, cni_cmd_gc },
        { CNI_CMD_STATUS, true, cni_cmd_status },
        { CNI_CMD_VERSION, false, cni_cmd_version },
};

static int write_all(int fd, const char *s, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, s, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -errno;
                s += w;
                n -= (size_t)w;
        }
        return 0;
}

static int read_stdin(char **ret, size_t *ret_len) {
        size_t cap = 4096, len = 0;
        char *buf = malloc(cap + 1);
        while (buf) {
                ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        if (n < 0) {
                                free(buf);
                                return -errno;
                        }
                        buf[len] = '\0';
                        *ret = buf;
                        *ret_len = len;
                        return 0;
                }
                len += (size_t)n;
                if (len == cap) {
                        if (cap >= CNI_STDIN_MAX) {
                                free(buf);
                                return -EFBIG;
                        }
                        cap *= 2;
                        char *nb = realloc(buf, cap + 1);
                        if (!nb)
                                free(buf);
                        buf = nb;
                }
        }
        return -ENOMEM;
}

/* The cniVersion of stdin, best effort, for answers given before the config
 * is known to be valid (VERSION, early errors). Only those parse stdin for
 * it: ADD and DEL parse it once, in cni_config_parse(). */
static char *peek_version(const char *in, size_t len) {
        cJSON *o = cJSON_ParseWithLength(in, len);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "cniVersion");
        char *s = cJSON_IsString(v) && cni_version_supported(v->valuestring) ? strdup(v->valuestring) : NULL;
        cJSON_Delete(o);
        return s;
}

/* Print the CNI error object; the exit status of a failed command is 1. */
static int print_error(const char *version, int code, const char *msg, const char *details) {
        char *out = NULL;
        if (cni_error_render(version, code, msg, details, &out) >= 0) {
                (void)write_all(STDOUT_FILENO, out, strlen(out));
                free(out);
        }
        return 1;
}

static void setup_logging(const struct cni_config *cfg) {
        struct log_options o = { .level = LOG_WARN, .format = LOG_FORMAT_JSON, .fd = STDERR_FILENO };
        if (cfg && cfg->log_level)
                (void)log_level_parse(cfg->log_level, &o.level);
        else if (cfg && cfg->log_file)
                o.level = LOG_INFO;
        o.file = cfg ? cfg->log_file : NULL;
        if (log_setup(&o) < 0) {
                o.file = NULL;
                (void)log_setup(&o);
                log_warn("cannot open logFile; logging to stderr only", LF_STR("logFile", cfg->log_file));
        }
}

#ifdef VPC_CNI_TEST_HOOKS
static int fault_at(enum dp_step step, void *userdata) {
        return (int)step == *(int *)userdata ? -EIO : 0;
}

static void test_hooks(struct cni_ctx *ctx) {
        static int fault_step;
        const char *f = getenv("VPC_CNI_TEST_FAULT");
        fault_step = f && *f ? atoi(f) : -1;
        if (fault_step >= 0) {
                ctx->fault = fault_at;
                ctx->fault_data = &fault_step;
        }
}
#else
static void test_hooks(struct cni_ctx *ctx) {
        (void)ctx;
}
#endif

static long usec_since(const struct timespec *t0) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (t.tv_sec - t0->tv_sec) * 1000000L + (t.tv_nsec - t0->tv_nsec) / 1000;
}

static int run(const struct cni_env *env, const struct cni_config *cfg, size_t i) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct cni_ctx ctx = { .env = env, .cfg = cfg };
        test_hooks(&ctx);
        int r = commands[i].run(&ctx);
        long us = usec_since(&t0);
        if (r < 0) {
                log_warn("command failed", LF_STR("command", cni_command_name(env->command)),
                         LF_STR("container_id", env->container_id), LF_INT("code", ctx.code),
                         LF_STR("reason", ctx.msg), LF_INT("usec", us));
                free(ctx.out);
                return print_error(cfg ? cfg->cni_version : NULL, ctx.code, ctx.msg, NULL);
        }
        log_info("command done", LF_STR("command", cni_command_name(env->command)),
                 LF_STR("container_id", env->container_id), LF_INT("usec", us));
        int w = ctx.out ? write_all(STDOUT_FILENO, ctx.out, strlen(ctx.out)) : 0;
        free(ctx.out);
        return w < 0 ? 1 : 0;
}

int main(void) {
        struct cni_env env;
        struct cni_config cfg = { 0 };
        struct errmsg err = { 0 };
        char *in = NULL, *version = NULL;
        size_t len = 0;
        int code = 0, status;
        int r = read_stdin(&in, &len);
        if (r < 0)
                return print_error(NULL, CNI_ERR_IO, "cannot read the network configuration from stdin",
                                   strerror(-r));
        if (cni_env_parse(environ, &env, &code, &err) < 0) {
                version = peek_version(in, len);
                status = print_error(version, code, errmsg_text(&err, -EINVAL), NULL);
                goto out;
        }
        size_t i = 0;
        while (commands[i].cmd != env.command)
                i++;
        if (commands[i].needs_config && cni_config_parse(in, len, env.command, &cfg, &code, &err) < 0) {
                version = peek_version(in, len);
                status = print_error(version, code, errmsg_text(&err, -EINVAL), NULL);
                goto out;
        }
        if (!commands[i].needs_config) {
                version = peek_version(in, len);
                cfg.cni_version = version ? strdup(version) : NULL;
        }
        setup_logging(&cfg);
        status = run(&env, &cfg, i);
out:
        cni_config_done(&cfg);
        free(version);
        free(in);
        log_shutdown();
        return status;
}

/*
 * poolconfig: table-driven, strict parsing of the warm-pool variables.
 *
 * Each variable is one row: name, default and accepted range (as documented),
 * where it lands (offsetof) and which HAS_ bit it sets. Parsing fills a
 * scratch copy and only copies it out when every row parsed, so a failure
 * changes nothing. These rows are the only place a pool variable is read:
 * the daemon's table (ipamd-config) holds every other variable, and a
 * variable is in one table only (ENABLE_PREFIX_DELEGATION is the daemon's,
 * which refuses it until prefix delegation exists).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "poolconfig.h"

struct row {
        struct poolconfig_var var;
        long min, max;
        long special;           /* a value accepted outside [min, max], or LONG_MIN */
        size_t offset;
        unsigned has;
};

static const struct row rows[] = {
        { { "WARM_ENI_TARGET", "1", "an integer from 0 to 128" }, 0, 128, LONG_MIN,
          offsetof(struct poolconfig, warm_eni_target), POOLCONFIG_HAS_WARM_ENI },
        { { "WARM_IP_TARGET", "0", "an integer from 0 to 65535" }, 0, 65535, LONG_MIN,
          offsetof(struct poolconfig, warm_ip_target), POOLCONFIG_HAS_WARM_IP },
        { { "MINIMUM_IP_TARGET", "0", "an integer from 0 to 65535" }, 0, 65535, LONG_MIN,
          offsetof(struct poolconfig, minimum_ip_target), POOLCONFIG_HAS_MINIMUM_IP },
        { { "WARM_PREFIX_TARGET", "0", "an integer from 0 to 4096" }, 0, 4096, LONG_MIN,
          offsetof(struct poolconfig, warm_prefix_target), POOLCONFIG_HAS_WARM_PREFIX },
        { { "MAX_ENI", "-1", "-1 (the instance type's limit) or an integer from 1 to 128" }, 1, 128, -1,
          offsetof(struct poolconfig, max_eni), POOLCONFIG_HAS_MAX_ENI },
        { { "IP_COOLDOWN_PERIOD", "30", "whole seconds from 0 to 86400" }, 0, 86400, LONG_MIN,
          offsetof(struct poolconfig, ip_cooldown_s), POOLCONFIG_HAS_COOLDOWN },
        { { "VPC_IPAM_SHRINK_DELAY", "120", "whole seconds from 0 to 3600" }, 0, 3600, LONG_MIN,
          offsetof(struct poolconfig, shrink_delay_s), POOLCONFIG_HAS_SHRINK_DELAY },
};

#define N_ROWS (sizeof rows / sizeof rows[0])

void poolconfig_defaults(struct poolconfig *ret) {
        *ret = (struct poolconfig){
                .warm_eni_target = 1,
                .max_eni = -1,
                .ip_cooldown_s = 30,
                .shrink_delay_s = 120,
        };
}

const char *poolconfig_getenv(const char *const *env, const char *name) {
        size_t n = strlen(name);
        for (; env && *env; env++)
                if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
                        return *env + n + 1;
        return NULL;
}

int poolconfig_parse_int(const char *name, const char *value, long min, long max,
                         long *ret, struct errmsg *err) {
        const char *p = value;
        if (*p == '+' || *p == '-')
                p++;
        if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
                return errmsg_set(err, -EINVAL, "%s=%s: not an integer; accepted: %ld to %ld",
                                  name, value, min, max);
        errno = 0;
        long v = strtol(value, NULL, 10);
        if (errno == ERANGE || v < min || v > max)
                return errmsg_set(err, -ERANGE, "%s=%s: out of range; accepted: %ld to %ld",
                                  name, value, min, max);
        *ret = v;
        return 0;
}

int poolconfig_parse_bool(const char *name, const char *value, bool *ret, struct errmsg *err) {
        /* The spellings Go's strconv.ParseBool accepts, which aws-node users write. */
        static const char *const yes[] = { "1", "t", "T", "true", "TRUE", "True" };
        static const char *const no[] = { "0", "f", "F", "false", "FALSE", "False" };
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                if (strcmp(value, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcmp(value, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return errmsg_set(err, -EINVAL, "%s=%s: not a boolean; accepted: true or false", name, value);
}

static int parse_row(const struct row *r, const char *value, struct poolconfig *c, struct errmsg *err) {
        long v;
        int ret = poolconfig_parse_int(r->var.name, value, r->special != LONG_MIN ? LONG_MIN : r->min,
                                       r->max, &v, err);
        if (ret < 0 && ret != -ERANGE)
                return errmsg_set(err, ret, "%s=%s: not an integer; accepted: %s", r->var.name, value,
                                  r->var.accepted);
        if (ret == 0 && r->special != LONG_MIN && v < r->min && v != r->special)
                ret = -ERANGE;
        if (ret < 0)
                return errmsg_set(err, ret, "%s=%s: out of range; accepted: %s", r->var.name, value,
                                  r->var.accepted);
        *(int *)((char *)c + r->offset) = (int)v;
        return 0;
}

int poolconfig_from_env(const char *const *env, struct poolconfig *ret, struct errmsg *err) {
        struct poolconfig c;
        poolconfig_defaults(&c);
        for (size_t i = 0; i < N_ROWS; i++) {
                const char *v = poolconfig_getenv(env, rows[i].var.name);
                if (!v || *v == '\0')
                        continue;
                int r = parse_row(&rows[i], v, &c, err);
                if (r < 0)
                        return r;
                c.has |= rows[i].has;
        }
        *ret = c;
        return 0;
}

bool poolconfig_ip_targets(const struct poolconfig *c) {
        return c->warm_ip_target > 0 || c->minimum_ip_target > 0;
}

const struct poolconfig_var *poolconfig_var(size_t i) {
        return i < N_ROWS ? &rows[i].var : NULL;
}

int poolconfig_var_value(const struct poolconfig *c, size_t i, bool *ret_set, char *buf, size_t size) {
        if (i >= N_ROWS)
                return -ENOENT;
        snprintf(buf, size, "%d", *(const int *)((const char *)c + rows[i].offset));
        *ret_set = (c->has & rows[i].has) != 0;
        return 0;
}

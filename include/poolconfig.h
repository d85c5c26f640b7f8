/*
 * poolconfig: the warm-pool settings, read strictly from aws-node's
 * environment variables.
 *
 * Names, meanings and defaults are aws-node's (WARM_ENI_TARGET=1, the rest
 * unset). Unlike aws-node, which falls back to a default on a bad value, an
 * invalid value is an error naming the variable, the value and what is
 * accepted: a typo must not silently change how many addresses a node holds.
 * An empty value counts as unset (manifests often template "").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "errmsg.h"

/* Which fields the environment set explicitly (the rest hold defaults). */
enum {
        POOLCONFIG_HAS_WARM_ENI      = 1u << 0,
        POOLCONFIG_HAS_WARM_IP       = 1u << 1,
        POOLCONFIG_HAS_MINIMUM_IP    = 1u << 2,
        POOLCONFIG_HAS_WARM_PREFIX   = 1u << 3,
        POOLCONFIG_HAS_MAX_ENI       = 1u << 4,
        POOLCONFIG_HAS_COOLDOWN      = 1u << 5,
        POOLCONFIG_HAS_SHRINK_DELAY  = 1u << 6,
};

struct poolconfig {
        int warm_eni_target;    /* WARM_ENI_TARGET, default 1 */
        int warm_ip_target;     /* WARM_IP_TARGET, 0 = unset */
        int minimum_ip_target;  /* MINIMUM_IP_TARGET, 0 = unset */
        int warm_prefix_target; /* WARM_PREFIX_TARGET, 0 = unset (prefix delegation only) */
        int max_eni;            /* MAX_ENI, -1 = the instance type's limit */
        int ip_cooldown_s;      /* IP_COOLDOWN_PERIOD in seconds, default 30 */
        int shrink_delay_s;     /* VPC_IPAM_SHRINK_DELAY: no release this long after a grow, and
                                   room kept for the peak of pods seen over this long; default 120 */
        unsigned has;           /* POOLCONFIG_HAS_* */
};

/* aws-node's defaults. */
void poolconfig_defaults(struct poolconfig *ret);

/*
 * Read every pool variable from env, a NULL-terminated "NAME=value" array
 * (pass `environ` in production). On the first invalid value returns -EINVAL
 * with err naming it, and leaves *ret untouched.
 */
int poolconfig_from_env(const char *const *env, struct poolconfig *ret, struct errmsg *err);

/* One row of the pool's variable table, as documented (README "Warm pool"). */
struct poolconfig_var {
        const char *name;
        const char *default_value;
        const char *accepted;
};

/* The i-th pool variable, in documentation order; NULL past the end. No
 * other table (the daemon's, ipamd-config) reads these names. */
const struct poolconfig_var *poolconfig_var(size_t i);

/*
 * The effective value of the i-th pool variable in c, written into buf as the
 * environment spells it, and whether the environment set it. -ENOENT past
 * the end (nothing written then).
 */
int poolconfig_var_value(const struct poolconfig *c, size_t i, bool *ret_set, char *buf, size_t size);

/* True when WARM_IP_TARGET or MINIMUM_IP_TARGET drives the pool (aws-node's rule). */
bool poolconfig_ip_targets(const struct poolconfig *c);

/*
 * Shared strict parsers for other modules' variables (the daemon's). Both
 * fill err with "NAME=value: ..." on failure and leave *ret untouched.
 */
int poolconfig_parse_int(const char *name, const char *value, long min, long max,
                         long *ret, struct errmsg *err);
int poolconfig_parse_bool(const char *name, const char *value, bool *ret, struct errmsg *err);

/* Look NAME up in a "NAME=value" array; NULL when absent. */
const char *poolconfig_getenv(const char *const *env, const char *name);

/*
 * errmsg: the detail that goes with a negative errno.
 *
 * Every fallible function in vpc-ipam returns 0 or a negative errno. Where a
 * person needs more than "Invalid argument" (a bad env var, a corrupt store,
 * an EC2 error), the function also fills a caller-provided struct errmsg with
 * one sentence that names what was wrong. The caller decides whether and how
 * to log it; modules never print.
 */
#pragma once

#include <stddef.h>

#define ERRMSG_MAX 512

struct errmsg {
        int code;               /* negative errno, 0 when nothing was recorded */
        char text[ERRMSG_MAX];  /* one sentence, no trailing newline */
};

/*
 * Record an error and return its code, so that a failing path can write
 *     return errmsg_set(err, -EINVAL, "MAX_ENI=%s: not an integer", v);
 * err may be NULL (the caller does not want the detail). code must be < 0.
 */
int errmsg_set(struct errmsg *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("store /var/lib/x.db: ...").
 * Returns err->code, or 0 when err is NULL: return the callee's error
 * yourself, not this. */
int errmsg_prefix(struct errmsg *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* The recorded sentence, or strerror(-code) when none was recorded. */
const char *errmsg_text(const struct errmsg *err, int code);

static inline void errmsg_clear(struct errmsg *err) {
        if (err) {
                err->code = 0;
                err->text[0] = '\0';
        }
}

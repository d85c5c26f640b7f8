/*
 * errmsg: filling and reading the one-sentence error detail (see errmsg.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errmsg.h"

int errmsg_set(struct errmsg *err, int code, const char *fmt, ...) {
        if (err) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err->text, sizeof err->text, fmt, ap);
                va_end(ap);
                err->code = code;
        }
        return code;
}

int errmsg_prefix(struct errmsg *err, const char *fmt, ...) {
        if (!err)
                return 0;
        char prefix[ERRMSG_MAX], old[ERRMSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->text, sizeof old);
        snprintf(err->text, sizeof err->text, "%s: %s", prefix,
                 old[0] ? old : strerror(err->code < 0 ? -err->code : 0));
        return err->code;
}

const char *errmsg_text(const struct errmsg *err, int code) {
        if (err && err->text[0])
                return err->text;
        return strerror(code < 0 ? -code : code);
}

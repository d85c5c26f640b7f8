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
        char prefix[ERRMSG_MAX / 2], old[ERRMSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->text, sizeof old);
        const char *rest = old[0] ? old : strerror(err->code < 0 ? -err->code : 0);
        /* Cutting is intended: the sentence is bounded, the prefix comes first. */
        size_t n = strlen(prefix);
        memcpy(err->text, prefix, n);
        n += (size_t)snprintf(err->text + n, sizeof err->text - n, ": ");
        snprintf(err->text + n, sizeof err->text - n, "%s", rest);
        return err->code;
}

const char *errmsg_text(const struct errmsg *err, int code) {
        if (err && err->text[0])
                return err->text;
        return strerror(code < 0 ? -code : code);
}

/*
 * buf: growable strings with sticky allocation failure (see buf.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static bool buf_reserve(struct buf *b, size_t extra) {
        if (b->oom)
                return false;
        if (b->len + extra + 1 <= b->cap)
                return true;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + extra + 1)
                cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
                b->oom = true;
                return false;
        }
        b->p = p;
        b->cap = cap;
        return true;
}

void buf_append(struct buf *b, const void *s, size_t n) {
        if (!buf_reserve(b, n))
                return;
        if (n)
                memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s) {
        buf_append(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0 || !buf_reserve(b, (size_t)n))
                return;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

static bool unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == '~';
}

static void encode(struct buf *b, const char *s, size_t n, bool keep_slash, bool plus) {
        static const char hex[] = "0123456789ABCDEF";
        if (!buf_reserve(b, 3 * n))
                return;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (plus && c == ' ') {
                        b->p[b->len++] = '+';
                } else if (unreserved(c) || (keep_slash && c == '/')) {
                        b->p[b->len++] = (char)c;
                } else {
                        b->p[b->len++] = '%';
                        b->p[b->len++] = hex[c >> 4];
                        b->p[b->len++] = hex[c & 15];
                }
        }
        b->p[b->len] = '\0';
}

void buf_uri_encode(struct buf *b, const char *s, size_t n, bool keep_slash) {
        encode(b, s, n, keep_slash, false);
}

void buf_form_encode(struct buf *b, const char *s, size_t n) {
        encode(b, s, n, false, true);
}

int buf_done(const struct buf *b) {
        return b->oom ? -ENOMEM : 0;
}

void buf_free(struct buf *b) {
        free(b->p);
        *b = (struct buf){ 0 };
}

char *buf_steal(struct buf *b) {
        if (b->oom) {
                buf_free(b);
                return NULL;
        }
        if (!b->p)
                return strdup("");
        char *p = b->p;
        *b = (struct buf){ 0 };
        return p;
}

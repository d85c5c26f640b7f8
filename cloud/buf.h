/*
 * buf: a growable byte string for building requests (canonical requests,
 * form bodies, URLs). Internal to cloud/. An allocation failure is sticky:
 * later appends do nothing and buf_done() reports -ENOMEM once, so callers
 * check at the end instead of after every append.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct buf {
        char *p;        /* NUL-terminated when non-NULL */
        size_t len, cap;
        bool oom;
};

void buf_append(struct buf *b, const void *s, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s percent-encoded per RFC 3986 (unreserved A-Z a-z 0-9 - _ . ~ kept). */
void buf_uri_encode(struct buf *b, const char *s, size_t n, bool keep_slash);
/*
 * Append s for an application/x-www-form-urlencoded body: as above, but a
 * space is '+'. This is byte for byte what botocore (urlencode) sends, which
 * matters beyond taste: moto re-encodes the parsed form that way before it
 * checks a signature.
 */
void buf_form_encode(struct buf *b, const char *s, size_t n);
/* 0, or -ENOMEM if any append failed. */
int buf_done(const struct buf *b);
void buf_free(struct buf *b);
/* Hand the string over (never NULL on success: "" for empty). */
char *buf_steal(struct buf *b);

/*
 * sigv4: canonical request -> string to sign -> HMAC chain, as in AWS's
 * "Create a signed AWS API request". The canonical request is built in one
 * growable buffer; the query parameters are encoded and sorted by encoded key,
 * then value (what botocore does, so the cross-check can compare byte for
 * byte). Header values are trimmed and inner runs of spaces collapsed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "buf.h"
#include "sigv4.h"

static void hex32(const uint8_t in[static 32], char out[static 65]) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
                out[2 * i] = hex[in[i] >> 4];
                out[2 * i + 1] = hex[in[i] & 15];
        }
        out[64] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[static 65]) {
        uint8_t md[32];
        SHA256(data, len, md);
        hex32(md, out);
}

static int hmac(const void *key, size_t klen, const char *msg, uint8_t out[static 32]) {
        unsigned int n = 32;
        if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n) || n != 32)
                return -EIO;
        return 0;
}

int sigv4_signing_key(const char *secret, const char *date, const char *region,
                      const char *service, uint8_t ret[static 32]) {
        if (!secret || !date || !region || !service)
                return -EINVAL;
        char k0[256];
        int n = snprintf(k0, sizeof k0, "AWS4%s", secret);
        if (n < 0 || (size_t)n >= sizeof k0)
                return -E2BIG;
        uint8_t a[32], b[32];
        int r = hmac(k0, (size_t)n, date, a);
        if (r == 0) r = hmac(a, 32, region, b);
        if (r == 0) r = hmac(b, 32, service, a);
        if (r == 0) r = hmac(a, 32, "aws4_request", b);
        OPENSSL_cleanse(k0, sizeof k0);
        OPENSSL_cleanse(a, sizeof a);
        if (r == 0)
                memcpy(ret, b, 32);
        OPENSSL_cleanse(b, sizeof b);
        return r;
}

/* Append a header value, trimmed, with runs of spaces collapsed to one. */
static void put_trimmed(struct buf *b, const char *v) {
        bool space = false, any = false;
        for (; *v; v++) {
                if (*v == ' ' || *v == '\t') {
                        space = any;
                        continue;
                }
                if (space)
                        buf_append(b, " ", 1);
                buf_append(b, v, 1);
                space = false;
                any = true;
        }
}

struct enc_pair {
        char *kv;       /* "key=value", both encoded */
        size_t klen;
};

static int cmp_pair(const void *x, const void *y) {
        const struct enc_pair *a = x, *b = y;
        size_t n = a->klen < b->klen ? a->klen : b->klen;
        int c = memcmp(a->kv, b->kv, n);
        if (c || a->klen != b->klen)
                return c ? c : (a->klen < b->klen ? -1 : 1);
        return strcmp(a->kv + a->klen, b->kv + b->klen);
}

static void put_canonical_query(struct buf *out, const struct sigv4_param *q, size_t n) {
        struct enc_pair *pairs = calloc(n ? n : 1, sizeof *pairs);
        if (!pairs) {
                out->oom = true;
                return;
        }
        bool oom = false;
        for (size_t i = 0; i < n; i++) {
                struct buf e = { 0 };
                buf_uri_encode(&e, q[i].key, strlen(q[i].key), false);
                pairs[i].klen = e.len;
                buf_append(&e, "=", 1);
                buf_uri_encode(&e, q[i].value, strlen(q[i].value), false);
                pairs[i].kv = buf_steal(&e);
                oom |= !pairs[i].kv;
        }
        if (!oom)
                qsort(pairs, n, sizeof *pairs, cmp_pair);
        for (size_t i = 0; i < n; i++) {
                if (!oom) {
                        if (i)
                                buf_append(out, "&", 1);
                        buf_puts(out, pairs[i].kv);
                }
                free(pairs[i].kv);
        }
        free(pairs);
        out->oom |= oom;
}

static bool has_token(const struct sigv4_key *k) {
        return k->session_token && k->session_token[0];
}

/* The signed headers' names, for the canonical request and the Authorization header. */
static const char *signed_headers(const struct sigv4_request *req, const struct sigv4_key *key) {
        static const char *const names[2][2] = {
                { "host;x-amz-date", "host;x-amz-date;x-amz-security-token" },
                { "content-type;host;x-amz-date", "content-type;host;x-amz-date;x-amz-security-token" },
        };
        return names[req->content_type != NULL][has_token(key)];
}

static void put_canonical_request(struct buf *cr, const struct sigv4_request *req,
                                  const struct sigv4_key *key, const char *amz_date) {
        char payload_hash[65];
        sha256_hex(req->payload ? req->payload : "", req->payload_len, payload_hash);
        buf_printf(cr, "%s\n", req->method);
        buf_uri_encode(cr, req->path, strlen(req->path), true);
        buf_append(cr, "\n", 1);
        put_canonical_query(cr, req->query, req->n_query);
        buf_append(cr, "\n", 1);
        if (req->content_type) {
                buf_puts(cr, "content-type:");
                put_trimmed(cr, req->content_type);
                buf_append(cr, "\n", 1);
        }
        buf_puts(cr, "host:");
        put_trimmed(cr, req->host);
        buf_printf(cr, "\nx-amz-date:%s\n", amz_date);
        if (has_token(key)) {
                buf_puts(cr, "x-amz-security-token:");
                put_trimmed(cr, key->session_token);
                buf_append(cr, "\n", 1);
        }
        buf_printf(cr, "\n%s\n%s", signed_headers(req, key), payload_hash);
}

static int check_args(const struct sigv4_request *req, const struct sigv4_key *key) {
        if (!req || !key || !req->method || !req->host || !req->path || !req->region ||
            !req->service || !key->access_key_id || !key->secret_access_key ||
            (req->n_query && !req->query))
                return -EINVAL;
        return 0;
}

int sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *key,
               struct sigv4_signature *ret) {
        int r = check_args(req, key);
        if (r < 0)
                return r;
        struct tm tm;
        char amz_date[17], date[9];
        if (!gmtime_r(&req->when, &tm) || strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm) != 16)
                return -EINVAL;
        memcpy(date, amz_date, 8);
        date[8] = '\0';

        struct buf cr = { 0 };
        put_canonical_request(&cr, req, key, amz_date);
        if ((r = buf_done(&cr)) < 0) {
                buf_free(&cr);
                return r;
        }
        char cr_hash[65], sts[256], sig[65];
        sha256_hex(cr.p, cr.len, cr_hash);
        buf_free(&cr);
        int n = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                         amz_date, date, req->region, req->service, cr_hash);
        if (n < 0 || (size_t)n >= sizeof sts)
                return -E2BIG;
        uint8_t k[32], mac[32];
        r = sigv4_signing_key(key->secret_access_key, date, req->region, req->service, k);
        if (r == 0)
                r = hmac(k, 32, sts, mac);
        OPENSSL_cleanse(k, sizeof k);
        if (r < 0)
                return r;
        hex32(mac, sig);

        struct sigv4_signature out;
        memcpy(out.amz_date, amz_date, sizeof amz_date);
        n = snprintf(out.authorization, sizeof out.authorization,
                     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                     key->access_key_id, date, req->region, req->service, signed_headers(req, key), sig);
        if (n < 0 || (size_t)n >= sizeof out.authorization)
                return -E2BIG;
        *ret = out;
        return 0;
}

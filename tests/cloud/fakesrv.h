/*
 * fakesrv: a scripted HTTP server on 127.0.0.1 (libmicrohttpd, own thread) for
 * the cloud/ tests: EC2, STS, IMDS and the container credentials endpoint are
 * all "a function from request to reply" here. Requests are recorded.
 */
#pragma once

#include <stddef.h>

struct fakesrv_req {
        char method[8];
        char url[512];                  /* path and query */
        char body[16384];
        size_t body_len;
        char authorization[4096];
        char amz_date[32];
        char security_token[4096];
        char imds_token[256];
        char imds_ttl[32];
        char content_type[128];
        char host[128];
};

struct fakesrv_reply {
        int status;                     /* 0: 200 */
        const char *content_type;       /* NULL: text/xml;charset=UTF-8 */
        const char *body;               /* copied */
        size_t len;                     /* 0: strlen(body) */
        unsigned delay_ms;
        const char *date;               /* a Date header to send instead of libmicrohttpd's own */
};

typedef void (*fakesrv_fn)(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *reply);

struct fakesrv;

/* Start on a free loopback port; aborts the test process on failure. */
struct fakesrv *fakesrv_start(fakesrv_fn fn, void *ud);
/* The same over HTTPS with the given PEM certificate and key (fakesrv_url gives https://). */
struct fakesrv *fakesrv_start_tls(fakesrv_fn fn, void *ud, const char *cert_pem, const char *key_pem);
const char *fakesrv_url(const struct fakesrv *s);       /* "http://127.0.0.1:PORT" */
unsigned fakesrv_count(struct fakesrv *s);
/* A copy of the n-th (0-based) recorded request (the last 64 are kept). */
void fakesrv_request(struct fakesrv *s, unsigned n, struct fakesrv_req *ret);
void fakesrv_stop(struct fakesrv *s);

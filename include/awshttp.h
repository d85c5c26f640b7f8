/*
 * awshttp: the one libcurl wrapper of vpc-ipam. An awshttp handle owns one
 * reusable curl easy handle (so keep-alive connections persist between calls)
 * and belongs to one thread at a time. HTTP/1.1, TLS peer and host
 * verification always on (AWS_CA_BUNDLE or the system store), connect and
 * total timeouts, and a cap on the response size (a larger body is an error,
 * not an allocation).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "errmsg.h"

typedef struct awshttp awshttp;

struct awshttp_options {
        long connect_timeout_ms;        /* 0: 2000 */
        long total_timeout_ms;          /* 0: 10000 */
        size_t max_body;                /* 0: 16 MiB */
        const char *ca_bundle;          /* NULL: $AWS_CA_BUNDLE, else the system store */
        bool fresh_connection;          /* close after each request (benchmarks only) */
        bool direct;                    /* ignore proxy variables (IMDS, container agent); otherwise
                                         * curl honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY as the SDKs do */
};

struct awshttp_header {
        const char *name;
        const char *value;
};

struct awshttp_response {
        long status;                    /* HTTP status */
        char content_type[128];         /* "" if none */
        char *body;                     /* NUL-terminated; free with awshttp_response_done() */
        size_t len;
        time_t date;                    /* the Date header, 0 if absent or unparsable */
};

int awshttp_new(const struct awshttp_options *opts, awshttp **ret, struct errmsg *err);
awshttp *awshttp_free(awshttp *h);

/*
 * Send one request. Returns 0 when a complete HTTP response arrived (any
 * status), or a negative errno for transport failures: -ETIMEDOUT,
 * -ECONNREFUSED, -EHOSTUNREACH, -ECONNRESET, -EFBIG (body over max_body),
 * -EPROTO (TLS or HTTP protocol), -EINVAL (bad URL). *resp is filled only on 0.
 */
int awshttp_request(awshttp *h, const char *method, const char *url,
                    const struct awshttp_header *headers, size_t n_headers,
                    const char *body, size_t body_len,
                    struct awshttp_response *resp, struct errmsg *err);
void awshttp_response_done(struct awshttp_response *resp);

/* Connections opened so far (1 after many calls means keep-alive worked). */
unsigned long awshttp_connections(const awshttp *h);

/* True for transport errors that a retry may cure (timeouts, resets, refused). */
bool awshttp_error_is_transient(int error);

/* "host[:port]" of an http(s) URL, as the Host header will carry it. */
int awshttp_url_host(const char *url, char *ret, size_t size);

/* The media type of a Content-Type value equals one of the NULL-terminated list. */
bool awshttp_content_type_is(const char *content_type, ...);

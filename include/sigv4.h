/*
 * sigv4: AWS Signature Version 4 for the requests cloud/ sends (the EC2 Query
 * API as a form-encoded POST, STS, and GETs in the published test vectors).
 *
 * The signed headers are fixed: content-type (when given), host, x-amz-date
 * and x-amz-security-token (when the credentials carry a session token) —
 * exactly what the HTTP layer then sends. Pure computation: no I/O, no clock
 * (the caller passes the time), no allocation beyond the call.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SIGV4_AUTH_MAX 512

struct sigv4_key {
        const char *access_key_id;
        const char *secret_access_key;
        const char *session_token;      /* NULL or "" for long-term keys */
};

struct sigv4_param {
        const char *key;                /* raw (not encoded) */
        const char *value;
};

struct sigv4_request {
        const char *method;             /* "POST", "GET" */
        const char *host;               /* the Host header as sent: host[:port] */
        const char *path;               /* "/" for the Query API */
        const struct sigv4_param *query;  /* URL query parameters (GET), may be NULL */
        size_t n_query;
        const char *content_type;       /* signed when not NULL */
        const void *payload;
        size_t payload_len;
        const char *region;
        const char *service;            /* "ec2", "sts", "iam" */
        time_t when;                    /* UTC seconds */
};

struct sigv4_signature {
        char amz_date[17];              /* X-Amz-Date value, YYYYMMDDTHHMMSSZ */
        char authorization[SIGV4_AUTH_MAX];
};

/* Sign req with key; -EINVAL on a missing field, -E2BIG if it would not fit. */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_key *key,
               struct sigv4_signature *ret);

/* The derived signing key for date (YYYYMMDD), region and service. */
int sigv4_signing_key(const char *secret, const char *date, const char *region,
                      const char *service, uint8_t ret[static 32]);

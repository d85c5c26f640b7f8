/*
 * creds: where AWS credentials come from, in this order (the AWS SDKs' chain
 * minus shared config files, which nodes do not have):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *   2. web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *      (+ AWS_ROLE_SESSION_NAME) through STS AssumeRoleWithWebIdentity
 *      (endpoint AWS_ENDPOINT_URL_STS, else AWS_ENDPOINT_URL, else the
 *      regional STS endpoint);
 *   3. container (EKS Pod Identity, ECS): AWS_CONTAINER_CREDENTIALS_FULL_URI
 *      (or _RELATIVE_URI) with AWS_CONTAINER_AUTHORIZATION_TOKEN or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
 *   4. the instance role from IMDS (meta-data/iam/security-credentials/).
 *
 * Temporary credentials are cached and fetched again refresh_before_s before
 * they expire (if that fails while the old ones are still valid, the old ones
 * are served). When no source works, the error names every source and why it
 * failed. Values are copied out, so creds_get() is safe from any thread.
 * Secrets never go into an errmsg.
 */
#pragma once

#include <stddef.h>
#include <time.h>

#include "awshttp.h"
#include "cloudclock.h"
#include "errmsg.h"
#include "imds.h"

#define CREDS_TOKEN_MAX 4096

struct creds_value {
        char access_key_id[128];
        char secret_access_key[128];
        char session_token[CREDS_TOKEN_MAX];    /* "" for long-term keys */
        time_t expiration;                      /* 0: does not expire */
        char source[24];                        /* "env", "web-identity", "container", "imds" */
};

typedef struct creds_provider creds_provider;

struct creds_options {
        imds *imds;                     /* borrowed, used under the provider's lock: nobody else may use
                                         * it concurrently; NULL: the provider creates its own */
        const char *region;             /* for the regional STS endpoint; NULL: $AWS_REGION/$AWS_DEFAULT_REGION */
        struct awshttp_options http;
        unsigned refresh_before_s;      /* 0: 300 */
        const struct cloud_clock *clock;  /* NULL: the system clock */
};

int creds_provider_new(const struct creds_options *opts, creds_provider **ret, struct errmsg *err);
creds_provider *creds_provider_free(creds_provider *p);

/* Current credentials (cached, refreshed as needed). */
int creds_get(creds_provider *p, struct creds_value *ret, struct errmsg *err);

/* Overwrite the secrets in v (use before freeing or reusing a copy). */
void creds_value_wipe(struct creds_value *v);

/* The credential document of IMDS and the container endpoint (JSON). */
int creds_parse_json(const char *body, size_t len, struct creds_value *ret, struct errmsg *err);
/* An AssumeRoleWithWebIdentity response (XML). */
int creds_parse_sts(const char *body, size_t len, struct creds_value *ret, struct errmsg *err);
/* "2026-11-26T18:00:00Z" (fractional seconds allowed) -> seconds since the epoch. */
int creds_parse_time(const char *s, time_t *ret);

/*
 * creds: the credentials chain (see creds.h).
 *
 * Each source is a function that either fills a creds_value, returns -ENOENT
 * with a reason when it is not configured, or fails with a reason. The chain
 * walks the sources in order and collects the reasons, so "no credentials"
 * says exactly what was looked at. The provider caches the result under a
 * mutex and refreshes it refresh_before_s before it expires; documents are
 * parsed with cJSON (IMDS, container endpoint) and xmlwalk (STS).
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "creds.h"
#include "xmlwalk.h"

struct creds_provider {
        pthread_mutex_t lock;
        struct creds_options o;
        char region[64];
        imds *imds;
        bool own_imds;
        awshttp *http;                  /* STS: through a proxy when one is configured */
        awshttp *http_direct;           /* the container agent: never through a proxy */
        struct creds_value cached;
        bool have;
};

static const char *env(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

int creds_provider_new(const struct creds_options *opts, creds_provider **ret, struct errmsg *err) {
        creds_provider *p = calloc(1, sizeof *p);
        if (!p)
                return errmsg_set(err, -ENOMEM, "out of memory");
        if (opts)
                p->o = *opts;
        p->o.clock = p->o.clock ? p->o.clock : cloud_clock_system();
        p->o.refresh_before_s = p->o.refresh_before_s ? p->o.refresh_before_s : 300;
        const char *region = p->o.region ? p->o.region : env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
        snprintf(p->region, sizeof p->region, "%s", region ? region : "");
        p->o.region = NULL;
        p->imds = p->o.imds;
        pthread_mutex_init(&p->lock, NULL);
        *ret = p;
        return 0;
}

creds_provider *creds_provider_free(creds_provider *p) {
        if (!p)
                return NULL;
        if (p->own_imds)
                imds_free(p->imds);
        awshttp_free(p->http);
        awshttp_free(p->http_direct);
        creds_value_wipe(&p->cached);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

void creds_value_wipe(struct creds_value *v) {
        if (v)
                explicit_bzero(v, sizeof *v);
}

/* --- documents ------------------------------------------------------------ */

int creds_parse_time(const char *s, time_t *ret) {
        struct tm tm = { 0 };
        int n = 0;
        if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                         &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
                return -EBADMSG;
        const char *rest = s + n;
        if (*rest == '.')
                for (rest++; isdigit((unsigned char)*rest); rest++)
                        ;
        if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
                return -EBADMSG;
        if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
            tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
                return -EBADMSG;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
                return -EBADMSG;
        *ret = t;
        return 0;
}

static int copy_secret(char *dst, size_t size, const char *src) {
        size_t n = src ? strlen(src) : 0;
        if (n == 0 || n >= size)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)src[i] <= 0x20 || (unsigned char)src[i] >= 0x7f)
                        return -EBADMSG;
        memcpy(dst, src, n + 1);
        return 0;
}

static const char *json_str(const cJSON *o, const char *key) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        return cJSON_IsString(v) ? v->valuestring : NULL;
}

int creds_parse_json(const char *body, size_t len, struct creds_value *ret, struct errmsg *err) {
        cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
        if (!cJSON_IsObject(doc)) {
                cJSON_Delete(doc);
                return errmsg_set(err, -EBADMSG, "credentials document is not a JSON object");
        }
        struct creds_value v = { 0 };
        const char *code = json_str(doc, "Code"), *exp = json_str(doc, "Expiration");
        int r = 0;
        if (code && strcmp(code, "Success") != 0)
                r = errmsg_set(err, -EACCES, "credentials document says Code=%.64s", code);
        else if (copy_secret(v.access_key_id, sizeof v.access_key_id, json_str(doc, "AccessKeyId")) < 0 ||
                 copy_secret(v.secret_access_key, sizeof v.secret_access_key, json_str(doc, "SecretAccessKey")) < 0)
                r = errmsg_set(err, -EBADMSG, "credentials document lacks a valid AccessKeyId/SecretAccessKey");
        else if (json_str(doc, "Token") &&
                 copy_secret(v.session_token, sizeof v.session_token, json_str(doc, "Token")) < 0)
                r = errmsg_set(err, -EBADMSG, "credentials document has an invalid Token");
        else if (exp && creds_parse_time(exp, &v.expiration) < 0)
                r = errmsg_set(err, -EBADMSG, "credentials document has an invalid Expiration");
        cJSON_Delete(doc);
        if (r == 0)
                *ret = v;
        creds_value_wipe(&v);
        return r;
}

struct sts_doc {
        struct creds_value v;
        char expiration[64];
        char code[96];
        bool error;
        int bad;
};

static int sts_node(void *ud, const char *const *path, unsigned depth, const char *text, size_t len) {
        struct sts_doc *d = ud;
        if (depth == 1 && !text)
                d->error = strcmp(path[0], "ErrorResponse") == 0;
        if (!text || depth < 2)
                return 0;
        char tmp[CREDS_TOKEN_MAX];
        if (len >= sizeof tmp)
                return -E2BIG;
        memcpy(tmp, text, len);
        tmp[len] = '\0';
        const char *leaf = path[depth - 1];
        if (d->error && depth == 3 && strcmp(leaf, "Code") == 0)
                snprintf(d->code, sizeof d->code, "%.95s", tmp);
        if (d->error || depth != 4 || !xmlwalk_at(path, 3, 1, "AssumeRoleWithWebIdentityResult", "Credentials", NULL))
                return 0;
        if (strcmp(leaf, "AccessKeyId") == 0)
                d->bad |= copy_secret(d->v.access_key_id, sizeof d->v.access_key_id, tmp);
        else if (strcmp(leaf, "SecretAccessKey") == 0)
                d->bad |= copy_secret(d->v.secret_access_key, sizeof d->v.secret_access_key, tmp);
        else if (strcmp(leaf, "SessionToken") == 0)
                d->bad |= copy_secret(d->v.session_token, sizeof d->v.session_token, tmp);
        else if (strcmp(leaf, "Expiration") == 0)
                snprintf(d->expiration, sizeof d->expiration, "%.63s", tmp);
        explicit_bzero(tmp, len);
        return 0;
}

int creds_parse_sts(const char *body, size_t len, struct creds_value *ret, struct errmsg *err) {
        struct sts_doc *d = calloc(1, sizeof *d);
        if (!d)
                return errmsg_set(err, -ENOMEM, "out of memory");
        int r = xmlwalk_parse(body ? body : "", body ? len : 0, NULL, sts_node, d, err);
        if (r == 0 && d->error)
                r = errmsg_set(err, -EACCES, "STS error %s", d->code[0] ? d->code : "(no code)");
        else if (r == 0 && (d->bad || !d->v.access_key_id[0] || !d->v.secret_access_key[0] ||
                            !d->v.session_token[0] || creds_parse_time(d->expiration, &d->v.expiration) < 0))
                r = errmsg_set(err, -EBADMSG, "STS response lacks valid Credentials");
        if (r == 0)
                *ret = d->v;
        creds_value_wipe(&d->v);
        free(d);
        return r;
}

/* --- sources -------------------------------------------------------------- */

static int from_env(creds_provider *p, struct creds_value *v, struct errmsg *err) {
        (void)p;
        const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY"), *tok = env("AWS_SESSION_TOKEN");
        if (!ak && !sk)
                return errmsg_set(err, -ENOENT, "AWS_ACCESS_KEY_ID not set");
        if (!ak || !sk)
                return errmsg_set(err, -EINVAL, "%s set without %s", ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                                  ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        if (copy_secret(v->access_key_id, sizeof v->access_key_id, ak) < 0 ||
            copy_secret(v->secret_access_key, sizeof v->secret_access_key, sk) < 0 ||
            (tok && copy_secret(v->session_token, sizeof v->session_token, tok) < 0))
                return errmsg_set(err, -EINVAL, "malformed key, secret or session token");
        return 0;
}

static int ensure_http(creds_provider *p, bool direct, struct errmsg *err) {
        awshttp **h = direct ? &p->http_direct : &p->http;
        if (*h)
                return 0;
        struct awshttp_options ho = p->o.http;
        if (!ho.max_body)
                ho.max_body = 1u << 20;
        ho.direct = direct;
        return awshttp_new(&ho, h, err);
}

/* Read a small token file (whole content, trailing newline dropped). */
static int read_token_file(const char *path, char *out, size_t size, struct errmsg *err) {
        FILE *f = fopen(path, "re");
        if (!f)
                return errmsg_set(err, -errno, "cannot read %s: %s", path, strerror(errno));
        size_t n = fread(out, 1, size, f);
        fclose(f);
        if (n >= size)
                return errmsg_set(err, -E2BIG, "%s: token too long", path);
        while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
                n--;
        out[n] = '\0';
        if (n == 0 || strpbrk(out, "\r\n"))
                return errmsg_set(err, -EBADMSG, "%s: empty or multi-line token", path);
        return 0;
}

static int sts_endpoint(creds_provider *p, struct buf *url) {
        const char *e = env("AWS_ENDPOINT_URL_STS") ? env("AWS_ENDPOINT_URL_STS") : env("AWS_ENDPOINT_URL");
        if (e)
                buf_puts(url, e);
        else if (p->region[0])
                buf_printf(url, "https://sts.%s.amazonaws.com%s/", p->region, strncmp(p->region, "cn-", 3) ? "" : ".cn");
        else
                buf_puts(url, "https://sts.amazonaws.com/");
        return buf_done(url);
}

static void sts_form(struct buf *f, const char *role, const char *session, const char *token) {
        const char *kv[][2] = { { "Action", "AssumeRoleWithWebIdentity" }, { "Version", "2011-06-15" },
                                { "RoleArn", role }, { "RoleSessionName", session }, { "WebIdentityToken", token } };
        for (size_t i = 0; i < 5; i++) {
                buf_printf(f, "%s%s=", i ? "&" : "", kv[i][0]);
                buf_form_encode(f, kv[i][1], strlen(kv[i][1]));
        }
}

static int post_sts(creds_provider *p, const char *role, const char *session, const char *token,
                    struct creds_value *v, struct errmsg *err) {
        struct buf url = { 0 }, form = { 0 };
        sts_form(&form, role, session, token);
        int r = sts_endpoint(p, &url);
        if (r == 0)
                r = buf_done(&form);
        if (r == 0)
                r = ensure_http(p, false, err);
        struct awshttp_header h = { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" };
        struct awshttp_response resp = { 0 };
        if (r == 0)
                r = awshttp_request(p->http, "POST", url.p, &h, 1, form.p, form.len, &resp, err);
        if (r == 0) {
                r = creds_parse_sts(resp.body, resp.len, v, err);
                if (r < 0)
                        errmsg_prefix(err, "HTTP %ld from %s", resp.status, url.p);
                explicit_bzero(resp.body, resp.len);
        }
        awshttp_response_done(&resp);
        explicit_bzero(form.p, form.len);
        buf_free(&form);
        buf_free(&url);
        return r;
}

static int from_web_identity(creds_provider *p, struct creds_value *v, struct errmsg *err) {
        const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = env("AWS_ROLE_ARN");
        if (!file || !role)
                return errmsg_set(err, -ENOENT, "%s not set", file ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
        char session[64];
        const char *s = env("AWS_ROLE_SESSION_NAME");
        snprintf(session, sizeof session, "%s", s ? s : "vpc-ipam");
        char *token = malloc(CREDS_TOKEN_MAX * 4);
        if (!token)
                return errmsg_set(err, -ENOMEM, "out of memory");
        int r = read_token_file(file, token, CREDS_TOKEN_MAX * 4, err);
        if (r == 0)
                r = post_sts(p, role, session, token, v, err);
        explicit_bzero(token, CREDS_TOKEN_MAX * 4);
        free(token);
        return r;
}

/* http:// is only for loopback and the EKS Pod Identity / ECS agent addresses. */
static bool container_url_ok(const char *url) {
        if (strncmp(url, "https://", 8) == 0)
                return true;
        char host[256];
        if (strncmp(url, "http://", 7) != 0 || awshttp_url_host(url, host, sizeof host) < 0)
                return false;
        char *colon = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
        if (colon && host[0] == '[')
                colon[1] = '\0';
        else if (colon)
                *colon = '\0';
        return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
               strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0 ||
               strcasecmp(host, "[fd00:ec2::23]") == 0;
}

static int container_token(char *out, size_t size, struct errmsg *err) {
        const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
        out[0] = '\0';
        if (file)
                return read_token_file(file, out, size, err);
        if (!tok)
                return 0;
        if (strlen(tok) >= size || strpbrk(tok, "\r\n"))
                return errmsg_set(err, -EINVAL, "AWS_CONTAINER_AUTHORIZATION_TOKEN is malformed");
        snprintf(out, size, "%s", tok);
        return 0;
}

static int from_container(creds_provider *p, struct creds_value *v, struct errmsg *err) {
        const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI"), *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        if (!full && !rel)
                return errmsg_set(err, -ENOENT, "AWS_CONTAINER_CREDENTIALS_FULL_URI not set");
        struct buf url = { 0 };
        if (full)
                buf_puts(&url, full);
        else
                buf_printf(&url, "http://169.254.170.2%s", rel);
        char token[CREDS_TOKEN_MAX];
        int r = buf_done(&url);
        if (r == 0 && !container_url_ok(url.p))
                r = errmsg_set(err, -EPERM, "%s: plain http only to loopback or the container agent", url.p);
        if (r == 0)
                r = container_token(token, sizeof token, err);
        if (r == 0)
                r = ensure_http(p, true, err);
        struct awshttp_header h = { "Authorization", token };
        struct awshttp_response resp = { 0 };
        if (r == 0)
                r = awshttp_request(p->http_direct, "GET", url.p, &h, token[0] ? 1 : 0, NULL, 0, &resp, err);
        if (r == 0 && resp.status != 200)
                r = errmsg_set(err, resp.status == 401 || resp.status == 403 ? -EACCES : -EREMOTEIO,
                               "GET %s: HTTP %ld", url.p, resp.status);
        else if (r == 0)
                r = creds_parse_json(resp.body, resp.len, v, err);
        if (resp.body)
                explicit_bzero(resp.body, resp.len);
        awshttp_response_done(&resp);
        explicit_bzero(token, sizeof token);
        buf_free(&url);
        return r;
}

static int role_name_ok(const char *s, size_t n) {
        if (n == 0 || n > 128)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("+=,.@_-", s[i]))
                        return -EBADMSG;
        return 0;
}

static int from_imds(creds_provider *p, struct creds_value *v, struct errmsg *err) {
        if (!p->imds) {
                int r = imds_new(NULL, &p->imds, err);
                if (r < 0)
                        return r;
                p->own_imds = true;
        }
        char *body = NULL, path[256];
        size_t len = 0;
        int r = imds_get(p->imds, "meta-data/iam/security-credentials/", &body, &len, err);
        if (r == -ENOENT)
                return errmsg_set(err, -ENOENT, "no instance profile attached");
        if (r < 0)
                return r;
        if (len && body[len - 1] == '\n')
                len--;
        if (role_name_ok(body, len) < 0) {
                free(body);
                return errmsg_set(err, -EBADMSG, "IMDS security-credentials listing is not one role name");
        }
        snprintf(path, sizeof path, "meta-data/iam/security-credentials/%.*s", (int)len, body);
        free(body);
        r = imds_get(p->imds, path, &body, &len, err);
        if (r < 0)
                return r;
        r = creds_parse_json(body, len, v, err);
        explicit_bzero(body, len);
        free(body);
        return r;
}

/* --- the chain ------------------------------------------------------------ */

static const struct {
        const char *name;
        int (*fn)(creds_provider *p, struct creds_value *v, struct errmsg *err);
} sources[] = {
        { "env", from_env },
        { "web-identity", from_web_identity },
        { "container", from_container },
        { "imds", from_imds },
};

static int try_source(creds_provider *p, size_t i, struct creds_value *v, struct errmsg *err) {
        *v = (struct creds_value){ 0 };
        int r = sources[i].fn(p, v, err);
        if (r == 0)
                snprintf(v->source, sizeof v->source, "%s", sources[i].name);
        else
                creds_value_wipe(v);
        return r;
}

static int resolve(creds_provider *p, struct creds_value *v, struct errmsg *err) {
        struct buf why = { 0 };
        for (size_t i = 0; i < sizeof sources / sizeof *sources; i++) {
                struct errmsg e = { 0 };
                int r = try_source(p, i, v, &e);
                if (r == 0) {
                        buf_free(&why);
                        return 0;
                }
                buf_printf(&why, "%s%s: %s", i ? "; " : "", sources[i].name, errmsg_text(&e, r));
        }
        errmsg_set(err, -ENOKEY, "no AWS credentials (%s)", why.p ? why.p : "");
        buf_free(&why);
        return -ENOKEY;
}

/* Refresh from the source that gave the cached credentials; -ENOENT if there is none. */
static int refresh_same_source(creds_provider *p, struct creds_value *v, struct errmsg *err) {
        for (size_t i = 0; p->have && i < sizeof sources / sizeof *sources; i++)
                if (strcmp(p->cached.source, sources[i].name) == 0)
                        return try_source(p, i, v, err);
        return -ENOENT;
}

static bool fresh(const creds_provider *p, time_t now) {
        return p->have && (p->cached.expiration == 0 ||
                           p->cached.expiration - now > (time_t)p->o.refresh_before_s);
}

int creds_get(creds_provider *p, struct creds_value *ret, struct errmsg *err) {
        if (!p || !ret)
                return errmsg_set(err, -EINVAL, "credentials: bad arguments");
        pthread_mutex_lock(&p->lock);
        time_t now = cloud_clock_wall(p->o.clock);
        int r = 0;
        if (!fresh(p, now)) {
                /* A refresh stays with the source that worked (a failing IRSA must not
                 * silently become the node role); while the old credentials are still
                 * valid they are served, once expired the whole chain is walked again. */
                struct creds_value *v = malloc(sizeof *v);
                r = v ? refresh_same_source(p, v, err) : errmsg_set(err, -ENOMEM, "out of memory");
                bool still_valid = p->have && p->cached.expiration > now;
                if (v && r < 0 && !still_valid)
                        r = resolve(p, v, err);
                if (r == 0) {
                        p->cached = *v;
                        p->have = true;
                } else if (still_valid) {
                        r = 0;
                }
                creds_value_wipe(v);
                free(v);
        }
        if (r == 0)
                *ret = p->cached;
        pthread_mutex_unlock(&p->lock);
        return r;
}

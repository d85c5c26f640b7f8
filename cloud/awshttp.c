/*
 * awshttp: libcurl behind a small request/response call (see awshttp.h).
 *
 * The easy handle is created once and reset between requests only in the
 * options this file sets per request, so curl's connection cache (and TLS
 * session) survives from one call to the next. The write callback refuses
 * bytes past max_body, which aborts the transfer with CURLE_WRITE_ERROR; that
 * is reported as -EFBIG.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "awshttp.h"
#include "buf.h"

struct awshttp {
        CURL *curl;
        struct awshttp_options o;
        char *ca_bundle;
        struct buf body;
        time_t date;
        bool too_big;
        unsigned long connections;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
        struct awshttp *h = ud;
        size_t n = size * nmemb;
        if (h->body.len + n > h->o.max_body) {
                h->too_big = true;
                return 0;
        }
        buf_append(&h->body, data, n);
        return h->body.oom ? 0 : n;
}

/* Keep only the Date header: the EC2 client corrects its signing clock from it. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
        struct awshttp *h = ud;
        size_t n = size * nmemb;
        if (n > 5 && n < 128 && strncasecmp(data, "Date:", 5) == 0) {
                char v[128];
                memcpy(v, data + 5, n - 5);
                v[n - 5] = '\0';
                time_t t = curl_getdate(v, NULL);
                h->date = t > 0 ? t : 0;
        }
        return n;
}

static int setup_handle(struct awshttp *h) {
        CURL *c = h->curl;
        CURLcode rc = CURLE_OK;
        rc |= curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
        rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        rc |= curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
        rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->o.connect_timeout_ms);
        rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->o.total_timeout_ms);
        rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        rc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
        rc |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        rc |= curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
        rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, "vpc-ipam/0.1");
        if (h->o.direct)
                rc |= curl_easy_setopt(c, CURLOPT_PROXY, "");  /* link-local/loopback: never via a proxy */
        if (h->o.fresh_connection) {
                rc |= curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
                rc |= curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        }
        if (h->ca_bundle)
                rc |= curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_bundle);
        return rc == CURLE_OK ? 0 : -EINVAL;
}

int awshttp_new(const struct awshttp_options *opts, awshttp **ret, struct errmsg *err) {
        struct awshttp *h = calloc(1, sizeof *h);
        if (!h)
                return errmsg_set(err, -ENOMEM, "HTTP client: out of memory");
        if (opts)
                h->o = *opts;
        if (h->o.connect_timeout_ms <= 0)
                h->o.connect_timeout_ms = 2000;
        if (h->o.total_timeout_ms <= 0)
                h->o.total_timeout_ms = 10000;
        if (h->o.max_body == 0)
                h->o.max_body = 16u << 20;
        const char *ca = h->o.ca_bundle ? h->o.ca_bundle : getenv("AWS_CA_BUNDLE");
        int r = 0;
        if (ca && *ca && !(h->ca_bundle = strdup(ca)))
                r = -ENOMEM;
        h->o.ca_bundle = NULL;
        /* curl_easy_init() runs the (thread-safe since 7.84) global init on first use. */
        if (r == 0 && !(h->curl = curl_easy_init()))
                r = -ENOMEM;
        if (r == 0)
                r = setup_handle(h);
        if (r < 0) {
                awshttp_free(h);
                return errmsg_set(err, r, "HTTP client: could not set up libcurl");
        }
        *ret = h;
        return 0;
}

awshttp *awshttp_free(awshttp *h) {
        if (!h)
                return NULL;
        if (h->curl)
                curl_easy_cleanup(h->curl);
        buf_free(&h->body);
        free(h->ca_bundle);
        free(h);
        return NULL;
}

static int curl_errno(CURLcode rc, bool too_big) {
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
        case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE: return -ECONNRESET;
        case CURLE_WRITE_ERROR: return too_big ? -EFBIG : -ENOMEM;
        case CURLE_OUT_OF_MEMORY: return -ENOMEM;
        case CURLE_URL_MALFORMAT:
        case CURLE_BAD_FUNCTION_ARGUMENT:
        case CURLE_UNSUPPORTED_PROTOCOL: return -EINVAL;
        default: return -EPROTO;
        }
}

unsigned long awshttp_connections(const awshttp *h) {
        return h ? h->connections : 0;
}

bool awshttp_error_is_transient(int error) {
        return error == -ETIMEDOUT || error == -ECONNREFUSED || error == -ECONNRESET || error == -EHOSTUNREACH;
}

/* The request's options; the first that fails is returned (setting the URL
 * does not parse it: a failure here is memory or an over-long string). */
static CURLcode set_request(struct awshttp *h, const char *method, bool has_body, const char *url,
                            struct curl_slist *hdrs, const char *body, size_t body_len) {
        CURL *c = h->curl;
        CURLcode rc = curl_easy_setopt(c, CURLOPT_URL, url);
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        if (rc == CURLE_OK && has_body)
                rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (rc == CURLE_OK && has_body)
                rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        if (rc == CURLE_OK)
                rc = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, has_body ? "POST" : "GET") ? method : NULL);
        return rc;
}

static struct curl_slist *make_headers(const struct awshttp_header *headers, size_t n, bool has_body) {
        struct curl_slist *list = NULL;
        /* No "Expect: 100-continue" round trip for small form bodies. */
        const char *fixed[] = { "Expect:", has_body ? NULL : "Content-Type:" };
        for (size_t i = 0; i < 2; i++) {
                if (!fixed[i])
                        continue;
                struct curl_slist *l = curl_slist_append(list, fixed[i]);
                if (!l)
                        goto fail;
                list = l;
        }
        for (size_t i = 0; i < n; i++) {
                struct buf line = { 0 };
                buf_printf(&line, "%s: %s", headers[i].name, headers[i].value);
                struct curl_slist *l = line.oom ? NULL : curl_slist_append(list, line.p);
                buf_free(&line);
                if (!l)
                        goto fail;
                list = l;
        }
        return list;
fail:
        curl_slist_free_all(list);
        return NULL;
}

static void fill_response(struct awshttp *h, struct awshttp_response *resp) {
        char *ct = NULL;
        *resp = (struct awshttp_response){ 0 };
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        curl_easy_getinfo(h->curl, CURLINFO_CONTENT_TYPE, &ct);
        if (ct)
                snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
        resp->len = h->body.len;
        resp->date = h->date;
        resp->body = buf_steal(&h->body);
}

int awshttp_request(awshttp *h, const char *method, const char *url,
                    const struct awshttp_header *headers, size_t n_headers,
                    const char *body, size_t body_len,
                    struct awshttp_response *resp, struct errmsg *err) {
        if (!h || !method || !url || !resp)
                return errmsg_set(err, -EINVAL, "HTTP request: bad arguments");
        bool has_body = body || strcmp(method, "GET") != 0;
        struct curl_slist *hdrs = make_headers(headers, n_headers, has_body);
        if (!hdrs)
                return errmsg_set(err, -ENOMEM, "HTTP request: out of memory");
        buf_free(&h->body);
        h->too_big = false;
        h->date = 0;
        CURLcode rc = set_request(h, method, has_body, url, hdrs, body, body_len);
        if (rc == CURLE_OK)
                rc = curl_easy_perform(h->curl);
        curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(hdrs);
        long connects = 0;
        if (curl_easy_getinfo(h->curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
                h->connections += (unsigned long)connects;
        if (rc != CURLE_OK) {
                int r = curl_errno(rc, h->too_big);
                buf_free(&h->body);
                if (r == -EFBIG)
                        return errmsg_set(err, r, "%s %s: response larger than %zu bytes", method, url, h->o.max_body);
                return errmsg_set(err, r, "%s %s: %s", method, url, curl_easy_strerror(rc));
        }
        struct awshttp_response out;
        fill_response(h, &out);
        if (!out.body)
                return errmsg_set(err, -ENOMEM, "%s %s: out of memory", method, url);
        *resp = out;
        return 0;
}

void awshttp_response_done(struct awshttp_response *resp) {
        if (resp) {
                free(resp->body);
                resp->body = NULL;
                resp->len = 0;
        }
}

int awshttp_url_host(const char *url, char *ret, size_t size) {
        CURLU *u = curl_url();
        char *host = NULL, *port = NULL, *scheme = NULL;
        int r = -EINVAL;
        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                goto cleanup;
        if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
                goto cleanup;
        /* Only an explicit, non-default port: curl's Host header leaves out :80/:443, and
         * the signed host must be byte for byte the one sent. */
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
        int n = snprintf(ret, size, "%s%s%s", host, port ? ":" : "", port ? port : "");
        r = n < 0 || (size_t)n >= size ? -E2BIG : 0;
cleanup:
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_url_cleanup(u);
        return r;
}

bool awshttp_content_type_is(const char *content_type, ...) {
        if (!content_type)
                return false;
        size_t n = strcspn(content_type, ";");
        while (n && content_type[n - 1] == ' ')
                n--;
        va_list ap;
        va_start(ap, content_type);
        bool found = false;
        for (const char *t; !found && (t = va_arg(ap, const char *));)
                found = strlen(t) == n && strncasecmp(content_type, t, n) == 0;
        va_end(ap);
        return found;
}

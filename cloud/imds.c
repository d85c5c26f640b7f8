/*
 * imds: IMDSv2 client and the strict parsers of its text bodies (see imds.h).
 *
 * Session tokens: fetched with PUT /latest/api/token and kept until 60 s (or
 * a tenth of the TTL, if shorter) before expiry by the monotonic clock. A 401
 * means the token was rejected (expired, or IMDS restarted): drop it, fetch a
 * new one, and try once more. Transient transport errors and 5xx are retried
 * twice with a short pause, as the SDKs do.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imds.h"

#define IMDS_TOKEN_MAX 1024

struct imds {
        awshttp *http;
        char *endpoint;                 /* without a trailing slash */
        unsigned ttl_s;
        const struct cloud_clock *clock;
        char token[IMDS_TOKEN_MAX];
        uint64_t token_expires_ns;      /* 0: no token */
};

int imds_new(const struct imds_options *opts, imds **ret, struct errmsg *err) {
        static const struct imds_options none;
        const struct imds_options *o = opts ? opts : &none;
        const char *ep = o->endpoint ? o->endpoint : getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
        if (!ep || !*ep)
                ep = "http://169.254.169.254";
        if (o->token_ttl_s > 21600)
                return errmsg_set(err, -EINVAL, "IMDS token TTL %u: must be 1..21600", o->token_ttl_s);
        imds *m = calloc(1, sizeof *m);
        if (!m)
                return errmsg_set(err, -ENOMEM, "out of memory");
        m->ttl_s = o->token_ttl_s ? o->token_ttl_s : 21600;
        m->clock = o->clock ? o->clock : cloud_clock_system();
        struct awshttp_options ho = o->http;
        if (!ho.connect_timeout_ms)
                ho.connect_timeout_ms = 1000;
        if (!ho.total_timeout_ms)
                ho.total_timeout_ms = 2000;
        if (!ho.max_body)
                ho.max_body = 1u << 20;
        ho.direct = true;
        int r = 0;
        if (!(m->endpoint = strdup(ep)))
                r = errmsg_set(err, -ENOMEM, "out of memory");
        else if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
                r = errmsg_set(err, -EINVAL, "IMDS endpoint '%s' is not an http(s) URL", ep);
        if (r == 0)
                r = awshttp_new(&ho, &m->http, err);
        if (r < 0) {
                imds_free(m);
                return r;
        }
        size_t n = strlen(m->endpoint);
        while (n && m->endpoint[n - 1] == '/')
                m->endpoint[--n] = '\0';
        *ret = m;
        return 0;
}

imds *imds_free(imds *m) {
        if (!m)
                return NULL;
        awshttp_free(m->http);
        free(m->endpoint);
        explicit_bzero(m->token, sizeof m->token);
        free(m);
        return NULL;
}

const char *imds_endpoint(const imds *m) {
        return m->endpoint;
}

static bool token_char_ok(unsigned char c) {
        return c > 0x20 && c < 0x7f;
}

/* One request with up to 2 retries of transient failures; resp filled on 0. */
static int send_retrying(imds *m, const char *method, const char *url, const struct awshttp_header *h,
                         size_t nh, struct awshttp_response *resp, struct errmsg *err) {
        int r = 0;
        for (int i = 0; i < 3; i++) {
                if (i)
                        cloud_clock_sleep(m->clock, 100000000ull * (uint64_t)i);
                r = awshttp_request(m->http, method, url, h, nh, method[0] == 'P' ? "" : NULL, 0, resp, err);
                if (r == 0 && resp->status < 500)
                        return 0;
                if (r == 0) {
                        r = errmsg_set(err, -EIO, "%s %s: HTTP %ld", method, url, resp->status);
                        awshttp_response_done(resp);
                } else if (!awshttp_error_is_transient(r)) {
                        return r;
                }
        }
        return r;
}

static int fetch_token(imds *m, struct errmsg *err) {
        char url[512], ttl[16];
        snprintf(url, sizeof url, "%s/latest/api/token", m->endpoint);
        snprintf(ttl, sizeof ttl, "%u", m->ttl_s);
        struct awshttp_header h = { "X-aws-ec2-metadata-token-ttl-seconds", ttl };
        struct awshttp_response resp;
        int r = send_retrying(m, "PUT", url, &h, 1, &resp, err);
        if (r < 0) {
                errmsg_prefix(err, "IMDS token");
                return r;
        }
        if (resp.status != 200)
                r = errmsg_set(err, resp.status == 403 ? -EACCES : -EREMOTEIO,
                               "IMDS token: PUT %s: HTTP %ld", url, resp.status);
        else if (resp.len == 0 || resp.len >= IMDS_TOKEN_MAX)
                r = errmsg_set(err, -EBADMSG, "IMDS token: %zu bytes", resp.len);
        for (size_t i = 0; r == 0 && i < resp.len; i++)
                if (!token_char_ok((unsigned char)resp.body[i]))
                        r = errmsg_set(err, -EBADMSG, "IMDS token: not a printable token");
        if (r == 0) {
                memcpy(m->token, resp.body, resp.len + 1);
                uint64_t margin = m->ttl_s / 10 < 60 ? m->ttl_s / 10 : 60;
                m->token_expires_ns = cloud_clock_mono(m->clock) + (uint64_t)(m->ttl_s - margin) * 1000000000ull;
        }
        explicit_bzero(resp.body, resp.len);
        awshttp_response_done(&resp);
        return r;
}

static int ensure_token(imds *m, struct errmsg *err) {
        if (m->token_expires_ns && cloud_clock_mono(m->clock) < m->token_expires_ns)
                return 0;
        m->token_expires_ns = 0;
        return fetch_token(m, err);
}

static int get_once(imds *m, const char *url, struct awshttp_response *resp, struct errmsg *err) {
        int r = ensure_token(m, err);
        if (r < 0)
                return r;
        struct awshttp_header h = { "X-aws-ec2-metadata-token", m->token };
        return send_retrying(m, "GET", url, &h, 1, resp, err);
}

int imds_get(imds *m, const char *path, char **ret, size_t *ret_len, struct errmsg *err) {
        if (!m || !path || !ret)
                return errmsg_set(err, -EINVAL, "IMDS: bad arguments");
        char url[1024];
        if ((size_t)snprintf(url, sizeof url, "%s/latest/%s", m->endpoint, path) >= sizeof url)
                return errmsg_set(err, -E2BIG, "IMDS: path too long");
        struct awshttp_response resp;
        int r = get_once(m, url, &resp, err);
        if (r == 0 && resp.status == 401) {
                awshttp_response_done(&resp);
                m->token_expires_ns = 0;
                r = get_once(m, url, &resp, err);
        }
        if (r < 0)
                return r;
        if (resp.status != 200) {
                long st = resp.status;
                awshttp_response_done(&resp);
                return errmsg_set(err, st == 404 ? -ENOENT : st == 401 || st == 403 ? -EACCES : -EREMOTEIO,
                                  "IMDS %s: HTTP %ld", path, st);
        }
        if (memchr(resp.body, '\0', resp.len)) {
                awshttp_response_done(&resp);
                return errmsg_set(err, -EBADMSG, "IMDS %s: NUL byte in the body", path);
        }
        *ret = resp.body;
        if (ret_len)
                *ret_len = resp.len;
        return 0;
}

/* --- strict parsers ------------------------------------------------------- */

/* Split body into lines: no empty line, no CR, one optional final '\n'. Calls fn per line. */
typedef int (*line_fn)(const char *line, size_t len, void *ud);

static int each_line(const char *body, size_t len, line_fn fn, void *ud) {
        if (len && body[len - 1] == '\n')
                len--;
        size_t i = 0;
        while (i <= len && len) {
                const char *nl = memchr(body + i, '\n', len - i);
                size_t n = nl ? (size_t)(nl - body) - i : len - i;
                if (n == 0)
                        return -EBADMSG;
                int r = fn(body + i, n, ud);
                if (r < 0)
                        return r;
                i += n + 1;
        }
        return 0;
}

static bool id_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.' || c == '_';
}

static int parse_id_line(const char *s, size_t n, const char *prefix, char ret[static IMDS_ID_MAX]) {
        size_t pl = prefix ? strlen(prefix) : 0;
        if (n <= pl || n >= IMDS_ID_MAX || (pl && memcmp(s, prefix, pl) != 0))
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if (!id_char(s[i]))
                        return -EBADMSG;
        memcpy(ret, s, n);
        ret[n] = '\0';
        return 0;
}

int imds_parse_id(const char *body, size_t len, const char *prefix, char ret[static IMDS_ID_MAX]) {
        if (!body)
                return -EINVAL;
        if (len && body[len - 1] == '\n')
                len--;
        return parse_id_line(body, len, prefix, ret);
}

static int parse_mac_line(const char *s, size_t n, char ret[static IMDS_MAC_LEN]) {
        static const char hex[] = "0123456789abcdefABCDEF";
        if (n != 17)
                return -EBADMSG;
        for (size_t i = 0; i < 17; i++) {
                bool colon = i % 3 == 2;
                if (colon ? s[i] != ':' : !strchr(hex, s[i]) || !s[i])
                        return -EBADMSG;
        }
        for (size_t i = 0; i < 17; i++)
                ret[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] - 'A' + 'a') : s[i];
        ret[17] = '\0';
        return 0;
}

int imds_parse_mac(const char *body, size_t len, char ret[static IMDS_MAC_LEN]) {
        if (!body)
                return -EINVAL;
        if (len && body[len - 1] == '\n')
                len--;
        return parse_mac_line(body, len, ret);
}

/* A growable array filled by line callbacks. */
struct list {
        void *items;
        size_t n, cap, elem;
        int (*parse)(const char *s, size_t n, void *out, const void *arg);
        const void *arg;
};

static int list_line(const char *s, size_t n, void *ud) {
        struct list *l = ud;
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                if (cap > 65536)
                        return -E2BIG;
                void *p = realloc(l->items, cap * l->elem);
                if (!p)
                        return -ENOMEM;
                l->items = p;
                l->cap = cap;
        }
        int r = l->parse(s, n, (char *)l->items + l->n * l->elem, l->arg);
        if (r == 0)
                l->n++;
        return r;
}

static int parse_list(const char *body, size_t len, struct list *l, void **ret, size_t *ret_n) {
        if (!body)
                return -EINVAL;
        int r = each_line(body, len, list_line, l);
        if (r < 0) {
                free(l->items);
                return r;
        }
        *ret = l->items;
        *ret_n = l->n;
        return 0;
}

static int mac_entry(const char *s, size_t n, void *out, const void *arg) {
        (void)arg;
        if (n && s[n - 1] == '/')
                n--;
        return parse_mac_line(s, n, out);
}

int imds_parse_mac_list(const char *body, size_t len, char (**ret)[IMDS_MAC_LEN], size_t *ret_n) {
        struct list l = { .elem = IMDS_MAC_LEN, .parse = mac_entry };
        return parse_list(body, len, &l, (void **)ret, ret_n);
}

static int parse_uint_str(const char *s, size_t n, unsigned max, unsigned *ret) {
        if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
                return -EBADMSG;
        unsigned long long v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        if (v > max)
                return -ERANGE;
        *ret = (unsigned)v;
        return 0;
}

int imds_parse_uint(const char *body, size_t len, unsigned max, unsigned *ret) {
        if (!body)
                return -EINVAL;
        if (len && body[len - 1] == '\n')
                len--;
        return parse_uint_str(body, len, max, ret);
}

static int parse_ipv4(const char *s, size_t n, struct in_addr *ret) {
        char tmp[16];
        if (n < 7 || n > 15)
                return -EBADMSG;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        /* inet_pton accepts only dotted quads of decimal octets, no leading zeros beyond "0". */
        return inet_pton(AF_INET, tmp, ret) == 1 ? 0 : -EBADMSG;
}

static int ipv4_entry(const char *s, size_t n, void *out, const void *arg) {
        (void)arg;
        return parse_ipv4(s, n, out);
}

int imds_parse_ipv4_list(const char *body, size_t len, struct in_addr **ret, size_t *ret_n) {
        struct list l = { .elem = sizeof(struct in_addr), .parse = ipv4_entry };
        return parse_list(body, len, &l, (void **)ret, ret_n);
}

static int cidr_entry(const char *s, size_t n, void *out, const void *arg) {
        (void)arg;
        const char *slash = memchr(s, '/', n);
        if (!slash)
                return -EBADMSG;
        struct imds_cidr c;
        unsigned plen;
        int r = parse_ipv4(s, (size_t)(slash - s), &c.addr);
        if (r == 0)
                r = parse_uint_str(slash + 1, n - (size_t)(slash - s) - 1, 32, &plen);
        if (r < 0)
                return -EBADMSG;
        /* Host bits must be clear: 10.0.0.1/24 is not a network. */
        uint32_t mask = plen ? htonl(~0u << (32 - plen)) : 0;
        if (c.addr.s_addr & ~mask)
                return -EBADMSG;
        c.len = (uint8_t)plen;
        memcpy(out, &c, sizeof c);
        return 0;
}

int imds_parse_cidr_list(const char *body, size_t len, struct imds_cidr **ret, size_t *ret_n) {
        struct list l = { .elem = sizeof(struct imds_cidr), .parse = cidr_entry };
        return parse_list(body, len, &l, (void **)ret, ret_n);
}

static int parse_ipv6(const char *s, size_t n, struct in6_addr *ret) {
        char tmp[INET6_ADDRSTRLEN];
        if (n < 2 || n >= sizeof tmp)
                return -EBADMSG;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        return inet_pton(AF_INET6, tmp, ret) == 1 ? 0 : -EBADMSG;
}

static int ipv6_entry(const char *s, size_t n, void *out, const void *arg) {
        (void)arg;
        return parse_ipv6(s, n, out);
}

int imds_parse_ipv6_list(const char *body, size_t len, struct in6_addr **ret, size_t *ret_n) {
        struct list l = { .elem = sizeof(struct in6_addr), .parse = ipv6_entry };
        return parse_list(body, len, &l, (void **)ret, ret_n);
}

static int cidr6_entry(const char *s, size_t n, void *out, const void *arg) {
        (void)arg;
        const char *slash = memchr(s, '/', n);
        if (!slash)
                return -EBADMSG;
        struct imds_cidr6 c;
        unsigned plen;
        int r = parse_ipv6(s, (size_t)(slash - s), &c.addr);
        if (r == 0)
                r = parse_uint_str(slash + 1, n - (size_t)(slash - s) - 1, 128, &plen);
        if (r < 0)
                return -EBADMSG;
        for (unsigned bit = plen; bit < 128; bit++)   /* host bits must be clear */
                if (c.addr.s6_addr[bit / 8] & (0x80 >> (bit % 8)))
                        return -EBADMSG;
        c.len = (uint8_t)plen;
        memcpy(out, &c, sizeof c);
        return 0;
}

int imds_parse_cidr6_list(const char *body, size_t len, struct imds_cidr6 **ret, size_t *ret_n) {
        struct list l = { .elem = sizeof(struct imds_cidr6), .parse = cidr6_entry };
        return parse_list(body, len, &l, (void **)ret, ret_n);
}

static int id_entry(const char *s, size_t n, void *out, const void *arg) {
        return parse_id_line(s, n, arg, out);
}

int imds_parse_id_list(const char *body, size_t len, const char *prefix,
                       char (**ret)[IMDS_ID_MAX], size_t *ret_n) {
        struct list l = { .elem = IMDS_ID_MAX, .parse = id_entry, .arg = prefix };
        return parse_list(body, len, &l, (void **)ret, ret_n);
}

/* --- typed getters -------------------------------------------------------- */

static int get_id(imds *m, const char *path, const char *prefix, char ret[static IMDS_ID_MAX], struct errmsg *err) {
        char *body;
        size_t len;
        int r = imds_get(m, path, &body, &len, err);
        if (r < 0)
                return r;
        char tmp[IMDS_ID_MAX];
        r = imds_parse_id(body, len, prefix, tmp);
        free(body);
        if (r < 0)
                return errmsg_set(err, r, "IMDS %s: not a valid value", path);
        memcpy(ret, tmp, IMDS_ID_MAX);
        return 0;
}

int imds_instance_id(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err) {
        return get_id(m, "meta-data/instance-id", "i-", ret, err);
}

int imds_instance_type(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err) {
        return get_id(m, "meta-data/instance-type", NULL, ret, err);
}

int imds_region(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err) {
        return get_id(m, "meta-data/placement/region", NULL, ret, err);
}

int imds_availability_zone(imds *m, char ret[static IMDS_ID_MAX], struct errmsg *err) {
        return get_id(m, "meta-data/placement/availability-zone", NULL, ret, err);
}

int imds_primary_mac(imds *m, char ret[static IMDS_MAC_LEN], struct errmsg *err) {
        char *body;
        size_t len;
        int r = imds_get(m, "meta-data/mac", &body, &len, err);
        if (r < 0)
                return r;
        char tmp[IMDS_MAC_LEN];
        r = imds_parse_mac(body, len, tmp);
        free(body);
        if (r < 0)
                return errmsg_set(err, r, "IMDS meta-data/mac: not a MAC address");
        memcpy(ret, tmp, IMDS_MAC_LEN);
        return 0;
}

int imds_macs(imds *m, char (**ret)[IMDS_MAC_LEN], size_t *ret_n, struct errmsg *err) {
        char *body;
        size_t len;
        int r = imds_get(m, "meta-data/network/interfaces/macs/", &body, &len, err);
        if (r < 0)
                return r;
        r = imds_parse_mac_list(body, len, ret, ret_n);
        free(body);
        return r < 0 ? errmsg_set(err, r, "IMDS network/interfaces/macs/: not a list of MACs") : 0;
}

struct imds_eni *imds_eni_free(struct imds_eni *e) {
        if (e) {
                free(e->vpc_cidrs);
                free(e->security_groups);
                free(e->local_ipv4s);
                free(e->prefixes);
                free(e);
        }
        return NULL;
}

/* GET macs/<mac>/<leaf>; -ENOENT passes through (the caller decides if it means "none"). */
static int get_eni_field(imds *m, const char *mac, const char *leaf, char **body, size_t *len, struct errmsg *err) {
        char path[160];
        snprintf(path, sizeof path, "meta-data/network/interfaces/macs/%s/%s", mac, leaf);
        return imds_get(m, path, body, len, err);
}

/* The leaves of an ENI, in eni_store()'s order. */
struct eni_field {
        const char *leaf;
        bool optional;          /* 404 means none/default */
};

static int eni_store(struct imds_eni *e, int i, const char *body, size_t len) {
        struct imds_cidr *one;
        size_t n;
        unsigned u;
        int r;
        switch (i) {
        case 0: r = imds_parse_uint(body, len, 1023, &u); e->device_number = (int)u; return r;
        case 1: r = imds_parse_uint(body, len, 1023, &u); e->network_card = (int)u; return r;
        case 2: return imds_parse_id(body, len, "eni-", e->interface_id);
        case 3: return imds_parse_id(body, len, "subnet-", e->subnet_id);
        case 4:
                r = imds_parse_cidr_list(body, len, &one, &n);
                if (r < 0)
                        return r;
                if (n == 1)
                        e->subnet_cidr = one[0];
                free(one);
                return n == 1 ? 0 : -EBADMSG;
        case 5: return imds_parse_cidr_list(body, len, &e->vpc_cidrs, &e->n_vpc_cidrs);
        case 6: return imds_parse_id_list(body, len, "sg-", &e->security_groups, &e->n_security_groups);
        case 7: return imds_parse_ipv4_list(body, len, &e->local_ipv4s, &e->n_local_ipv4s);
        case 8: return imds_parse_cidr_list(body, len, &e->prefixes, &e->n_prefixes);
        }
        return -EINVAL;
}

static const struct eni_field eni_fields[] = {
        { "device-number", false },
        { "network-card", true },
        { "interface-id", false },
        { "subnet-id", false },
        { "subnet-ipv4-cidr-block", false },
        { "vpc-ipv4-cidr-blocks", true },
        { "security-group-ids", true },
        { "local-ipv4s", true },
        { "ipv4-prefix", true },
};

int imds_eni(imds *m, const char *mac, struct imds_eni **ret, struct errmsg *err) {
        char norm[IMDS_MAC_LEN];
        if (!m || !mac || imds_parse_mac(mac, strlen(mac), norm) < 0)
                return errmsg_set(err, -EINVAL, "IMDS: '%s' is not a MAC address", mac ? mac : "");
        struct imds_eni *e = calloc(1, sizeof *e);
        if (!e)
                return errmsg_set(err, -ENOMEM, "out of memory");
        memcpy(e->mac, norm, sizeof norm);
        int r = 0;
        for (int i = 0; r == 0 && i < (int)(sizeof eni_fields / sizeof *eni_fields); i++) {
                char *body = NULL;
                size_t len = 0;
                r = get_eni_field(m, norm, eni_fields[i].leaf, &body, &len, err);
                if (r == -ENOENT && eni_fields[i].optional) {
                        r = 0;
                        continue;
                }
                if (r == 0 && (r = eni_store(e, i, body, len)) < 0)
                        errmsg_set(err, r, "IMDS macs/%s/%s: malformed", norm, eni_fields[i].leaf);
                free(body);
        }
        if (r < 0) {
                imds_eni_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

/* --- IPv6 ------------------------------------------------------------------ */

struct imds_eni6 *imds_eni6_free(struct imds_eni6 *e) {
        if (e) {
                free(e->ipv6s);
                free(e->prefixes);
                free(e->vpc_cidrs);
                free(e);
        }
        return NULL;
}

static int eni6_store(struct imds_eni6 *e, int i, const char *body, size_t len) {
        struct imds_cidr6 *one;
        size_t n;
        int r;
        switch (i) {
        case 0: return imds_parse_ipv6_list(body, len, &e->ipv6s, &e->n_ipv6s);
        case 1: return imds_parse_cidr6_list(body, len, &e->prefixes, &e->n_prefixes);
        case 2:
                r = imds_parse_cidr6_list(body, len, &one, &n);
                if (r < 0)
                        return r;
                if (n == 1)
                        e->subnet_cidr = one[0];
                free(one);
                return n == 1 ? 0 : -EBADMSG;
        case 3: return imds_parse_cidr6_list(body, len, &e->vpc_cidrs, &e->n_vpc_cidrs);
        }
        return -EINVAL;
}

static const char *const eni6_leaves[] = { "ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks", "vpc-ipv6-cidr-blocks" };

int imds_eni6(imds *m, const char *mac, struct imds_eni6 **ret, struct errmsg *err) {
        char norm[IMDS_MAC_LEN];
        if (!m || !mac || imds_parse_mac(mac, strlen(mac), norm) < 0)
                return errmsg_set(err, -EINVAL, "IMDS: '%s' is not a MAC address", mac ? mac : "");
        struct imds_eni6 *e = calloc(1, sizeof *e);
        if (!e)
                return errmsg_set(err, -ENOMEM, "out of memory");
        int r = 0;
        for (int i = 0; r == 0 && i < (int)(sizeof eni6_leaves / sizeof *eni6_leaves); i++) {
                char *body = NULL;
                size_t len = 0;
                r = get_eni_field(m, norm, eni6_leaves[i], &body, &len, err);
                if (r == -ENOENT) {
                        r = 0;
                        continue;
                }
                if (r == 0 && (r = eni6_store(e, i, body, len)) < 0)
                        errmsg_set(err, r, "IMDS macs/%s/%s: malformed", norm, eni6_leaves[i]);
                free(body);
        }
        if (r < 0) {
                imds_eni6_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

int imds_ipv6(imds *m, struct in6_addr *ret, struct errmsg *err) {
        char *body;
        size_t len;
        int r = imds_get(m, "meta-data/ipv6", &body, &len, err);
        if (r < 0)
                return r;
        struct in6_addr *v = NULL;
        size_t n = 0;
        r = imds_parse_ipv6_list(body, len, &v, &n);
        free(body);
        if (r == 0 && n == 1)
                *ret = v[0];
        free(v);
        if (r < 0 || n != 1)
                return errmsg_set(err, -EBADMSG, "IMDS meta-data/ipv6: not one IPv6 address");
        return 0;
}

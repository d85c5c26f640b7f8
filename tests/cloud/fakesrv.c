/*
 * fakesrv: libmicrohttpd with an internal polling thread; the access handler
 * collects the upload, then calls the test's function once per request under
 * a mutex, so test state needs no locking of its own.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "fakesrv.h"

#define KEEP 64

struct fakesrv {
        struct MHD_Daemon *d;
        fakesrv_fn fn;
        void *ud;
        char url[64];
        pthread_mutex_t lock;
        unsigned count;
        struct fakesrv_req *log;        /* ring of KEEP */
};

static void header(struct MHD_Connection *c, const char *name, char *dst, size_t size) {
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
        snprintf(dst, size, "%s", v ? v : "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state) {
        struct fakesrv *s = cls;
        (void)version;
        struct fakesrv_req *r = *state;
        if (!r) {
                r = calloc(1, sizeof *r);
                if (!r)
                        return MHD_NO;
                snprintf(r->method, sizeof r->method, "%s", method);
                snprintf(r->url, sizeof r->url, "%s", url);
                *state = r;
                return MHD_YES;
        }
        if (*upload_size) {
                size_t n = *upload_size;
                if (r->body_len + n >= sizeof r->body)
                        n = sizeof r->body - 1 - r->body_len;
                memcpy(r->body + r->body_len, upload, n);
                r->body_len += n;
                *upload_size = 0;
                return MHD_YES;
        }
        header(c, "Authorization", r->authorization, sizeof r->authorization);
        header(c, "X-Amz-Date", r->amz_date, sizeof r->amz_date);
        header(c, "X-Amz-Security-Token", r->security_token, sizeof r->security_token);
        header(c, "X-aws-ec2-metadata-token", r->imds_token, sizeof r->imds_token);
        header(c, "X-aws-ec2-metadata-token-ttl-seconds", r->imds_ttl, sizeof r->imds_ttl);
        header(c, "Content-Type", r->content_type, sizeof r->content_type);
        header(c, "Host", r->host, sizeof r->host);
        struct fakesrv_reply rep = { 0 };
        pthread_mutex_lock(&s->lock);
        s->log[s->count % KEEP] = *r;
        s->count++;
        s->fn(s->ud, r, &rep);
        pthread_mutex_unlock(&s->lock);
        if (rep.delay_ms)
                usleep(rep.delay_ms * 1000);
        const char *body = rep.body ? rep.body : "";
        struct MHD_Response *resp = MHD_create_response_from_buffer(rep.len ? rep.len : strlen(body),
                                                                    (void *)body, MHD_RESPMEM_MUST_COPY);
        MHD_add_response_header(resp, "Content-Type", rep.content_type ? rep.content_type : "text/xml;charset=UTF-8");
        if (rep.date)
                MHD_add_response_header(resp, "Date", rep.date);
        enum MHD_Result ret = MHD_queue_response(c, rep.status ? (unsigned)rep.status : 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code) {
        (void)cls, (void)c, (void)code;
        free(*state);
        *state = NULL;
}

static struct fakesrv *start(fakesrv_fn fn, void *ud, const char *cert, const char *key) {
        struct fakesrv *s = calloc(1, sizeof *s);
        if (!s || !(s->log = calloc(KEEP, sizeof *s->log)))
                abort();
        s->fn = fn;
        s->ud = ud;
        pthread_mutex_init(&s->lock, NULL);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | (cert ? MHD_USE_TLS : 0);
        s->d = cert ? MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                       MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
                                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                       MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END)
                    : MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                       MHD_OPTION_NOTIFY_COMPLETED, on_done, s,
                                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
        if (!s->d) {
                fprintf(stderr, "fakesrv: MHD_start_daemon failed\n");
                abort();
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
        snprintf(s->url, sizeof s->url, "%s://127.0.0.1:%u", cert ? "https" : "http", info ? info->port : 0);
        return s;
}

struct fakesrv *fakesrv_start(fakesrv_fn fn, void *ud) {
        return start(fn, ud, NULL, NULL);
}

struct fakesrv *fakesrv_start_tls(fakesrv_fn fn, void *ud, const char *cert_pem, const char *key_pem) {
        return start(fn, ud, cert_pem, key_pem);
}

const char *fakesrv_url(const struct fakesrv *s) {
        return s->url;
}

unsigned fakesrv_count(struct fakesrv *s) {
        pthread_mutex_lock(&s->lock);
        unsigned n = s->count;
        pthread_mutex_unlock(&s->lock);
        return n;
}

void fakesrv_request(struct fakesrv *s, unsigned n, struct fakesrv_req *ret) {
        pthread_mutex_lock(&s->lock);
        *ret = s->log[n % KEEP];
        pthread_mutex_unlock(&s->lock);
}

void fakesrv_stop(struct fakesrv *s) {
        if (!s)
                return;
        MHD_stop_daemon(s->d);
        pthread_mutex_destroy(&s->lock);
        free(s->log);
        free(s);
}

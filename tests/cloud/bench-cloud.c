/*
 * bench-cloud: figures for docs/benchmarks.md, printed as text.
 *   1. SigV4 signing cost per EC2 request (µs), no I/O;
 *   2. calls/s and median/p99 latency of DescribeSubnets against moto on
 *      127.0.0.1, with the client's connection reuse and with a fresh TCP
 *      connection per call, side by side on the same server (moto's app
 *      served with HTTP/1.1 keep-alive), then stock moto_server (which
 *      closes every connection) for reference;
 *   3. the same pair over HTTPS against a local C server (libmicrohttpd,
 *      RSA-2048 self-signed, trusted through ca_bundle), to show what reuse
 *      saves when each new connection costs a TLS handshake, as with EC2.
 * Bounded: --calls N per configuration (default 300). Needs moto (SKIPs
 * the HTTP part with the reason otherwise).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec2.h"
#include "fakesrv.h"
#include "motosrv.h"
#include "sigv4.h"

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void signing_cost(void) {
        const char *body = "Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=tag%3Acluster.k8s."
                           "amazonaws.com%2Fname&Filter.1.Value.1=prod&Filter.2.Name=status&Filter.2.Value.1=available"
                           "&MaxResults=1000";
        struct sigv4_key key = { "ASIAEXAMPLEEXAMPLE01", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                 "IQoJb3JpZ2luX2VjEXAMPLETOKENEXAMPLETOKENEXAMPLETOKENEXAMPLETOKEN" };
        struct sigv4_request req = { .method = "POST", .host = "ec2.us-west-2.amazonaws.com", .path = "/",
                                     .content_type = "application/x-www-form-urlencoded; charset=utf-8",
                                     .payload = body, .payload_len = strlen(body), .region = "us-west-2",
                                     .service = "ec2", .when = 1764172800 };
        struct sigv4_signature sig;
        const int n = 50000;
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
                req.when++;
                if (sigv4_sign(&req, &key, &sig) < 0)
                        abort();
        }
        double per = (now_s() - t0) / n * 1e6;
        printf("signing: %.2f us per request (%d SigV4 signatures of a %zu-byte form, session token, 1 thread)\n",
               per, n, strlen(body));
}

static int run_url(const char *url, const char *subnet, const char *ca, bool fresh, int calls, const char *label);

static int run(const struct motosrv *m, bool fresh, int calls, const char *label) {
        return run_url(m->url, m->subnet, NULL, fresh, calls, label);
}

static int run_url(const char *url, const char *subnet, const char *ca, bool fresh, int calls, const char *label) {
        struct ec2_options o = { .region = "us-west-2", .endpoint = url,
                                 .http = { .fresh_connection = fresh, .ca_bundle = ca } };
        ec2_client *c = NULL;
        struct errmsg err = { 0 };
        if (ec2_client_new(&o, &c, &err) < 0) {
                fprintf(stderr, "bench-cloud: %s\n", err.text);
                return -1;
        }
        double *lat = calloc((size_t)calls, sizeof *lat);
        const char *ids[] = { subnet };
        struct ec2_result *r = NULL;
        for (int i = 0; i < 5; i++)        /* warm-up: first connection, moto's lazy imports */
                if (ec2_describe_subnets(c, ids, 1, NULL, 0, &r, NULL) == 0)
                        r = ec2_result_free(r);
        double t0 = now_s();
        int failed = 0;
        for (int i = 0; i < calls; i++) {
                double a = now_s();
                struct ec2_error e;
                if (ec2_describe_subnets(c, ids, 1, NULL, 0, &r, &e) < 0)
                        failed++;
                else
                        r = ec2_result_free(r);
                lat[i] = (now_s() - a) * 1e3;
        }
        double total = now_s() - t0;
        qsort(lat, (size_t)calls, sizeof *lat, cmp_double);
        printf("%-30s %8.1f calls/s  median %5.2f ms  p99 %5.2f ms  (%d calls, %lu connections, %d failed)\n",
               label, calls / total, lat[calls / 2], lat[(calls * 99) / 100], calls,
               ec2_client_connections(c), failed);
        free(lat);
        ec2_client_free(c);
        return failed ? -1 : 0;
}

static const char subnets_xml[] =
        "<DescribeSubnetsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId>"
        "<subnetSet><item><subnetId>subnet-1</subnetId><vpcId>vpc-1</vpcId><cidrBlock>10.0.1.0/24</cidrBlock>"
        "<availableIpAddressCount>250</availableIpAddressCount><availabilityZone>us-west-2a</availabilityZone>"
        "</item></subnetSet></DescribeSubnetsResponse>";

static void answer(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        (void)ud, (void)req;
        rep->body = subnets_xml;
}

static char *slurp(const char *path) {
        FILE *f = fopen(path, "r");
        char *buf = f ? calloc(1, 8192) : NULL;
        if (buf && fread(buf, 1, 8191, f) == 0) {
                free(buf);
                buf = NULL;
        }
        if (f)
                fclose(f);
        return buf;
}

static int tls_pair(int calls) {
        char cert_path[1024], key_path[1024];
        const char *dir = getenv("CLOUD_HELPERS") ? getenv("CLOUD_HELPERS") : "tests/cloud";
        snprintf(cert_path, sizeof cert_path, "%s/tls/loopback.pem", dir);
        snprintf(key_path, sizeof key_path, "%s/tls/loopback.key", dir);
        char *cert = slurp(cert_path), *key = slurp(key_path);
        if (!cert || !key) {
                printf("HTTPS figures skipped: no %s\n", cert_path);
                free(cert), free(key);
                return 0;
        }
        struct fakesrv *srv = fakesrv_start_tls(answer, NULL, cert, key);
        printf("DescribeSubnets over HTTPS against a local C server (libmicrohttpd, RSA-2048), 1 client thread:\n");
        int bad = run_url(fakesrv_url(srv), "subnet-1", cert_path, false, calls, "  connection reuse") < 0;
        bad |= run_url(fakesrv_url(srv), "subnet-1", cert_path, true, calls, "  fresh connection per call") < 0;
        fakesrv_stop(srv);
        free(cert), free(key);
        return bad ? -1 : 0;
}

int main(int argc, char **argv) {
        int calls = 300;
        if (argc == 3 && strcmp(argv[1], "--calls") == 0)
                calls = atoi(argv[2]);
        if (calls < 10 || calls > 100000) {
                fprintf(stderr, "usage: bench-cloud [--calls N]  (10..100000)\n");
                return 2;
        }
        setenv("AWS_ACCESS_KEY_ID", "AKIDBENCH", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "bench-secret", 1);
        signing_cost();
        int tls_bad = tls_pair(calls) < 0;
        struct motosrv m;
        char why[256];
        int r = motosrv_start(&m, MOTOSRV_KEEPALIVE, why, sizeof why);
        if (r < 0) {
                printf("HTTP figures skipped: %s\n", why);
                return r == -ENOENT ? 0 : 1;
        }
        printf("DescribeSubnets by id against moto 5 on 127.0.0.1 (HTTP/1.1 keep-alive server), 1 client thread:\n");
        int bad = 0;
        bad |= run(&m, false, calls, "  connection reuse") < 0;
        bad |= run(&m, true, calls, "  fresh connection per call") < 0;
        motosrv_stop(&m);
        r = motosrv_start(&m, MOTOSRV_STOCK, why, sizeof why);
        if (r == 0) {
                printf("Stock moto_server (answers Connection: close, so no reuse is possible):\n");
                bad |= run(&m, false, calls, "  client with reuse enabled") < 0;
                motosrv_stop(&m);
        }
        return bad | tls_bad;
}

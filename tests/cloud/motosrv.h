/*
 * motosrv: start a moto server on a free 127.0.0.1 port for a test or a
 * benchmark, seed it (moto_fixture.py) and stop it by PID — at exit, on
 * SIGINT/SIGTERM, and (PR_SET_PDEATHSIG) if the test process dies.
 */
#pragma once

#include <stdbool.h>

#include "ec2.h"

struct motosrv {
        int pid;
        int port;
        char url[64];
        char vpc[64], subnet[64], sg[64], instance[64];
        char ak[64], sk[128];           /* the IAM user's key (auth mode), else moto's dummy */
};

enum motosrv_mode {
        MOTOSRV_STOCK,          /* moto_server, signatures not checked */
        MOTOSRV_KEEPALIVE,      /* moto's app via tests/cloud/moto_run.py (HTTP/1.1 keep-alive) */
        MOTOSRV_AUTH,           /* moto_server verifying SigV4 against an IAM user's key */
};

/*
 * 0 on success; -ENOENT with *why filled when moto is not available (the
 * caller reports a SKIP); another negative errno when it failed to start.
 */
int motosrv_start(struct motosrv *m, enum motosrv_mode mode, char *why, unsigned why_size);
void motosrv_stop(struct motosrv *m);

/* An EC2 client for m: moto's dummy credentials and region us-west-2 in the
 * environment (the client reads them as the SDKs do), the endpoint m->url. */
int motosrv_ec2_client(const struct motosrv *m, ec2_client **ret, struct errmsg *err);

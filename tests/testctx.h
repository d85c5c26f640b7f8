/*
 * testctx: a node for the tests of vpc-ipamd's EC2-facing modules (eniops,
 * sync, reconciler) without a kernel: the fake EC2 and IMDS (cloud/fakeec2.h)
 * holding the instance's primary ENI, a store in the case's directory, the
 * node as IMDS would describe it (m5.large limits: 3 ENIs, 10 IPv4 each), the
 * default configuration, and a struct ipamd_ctx with net == NULL and a clock
 * the test moves (testctx_now).
 *
 * testctx_crash() runs an operation in a child process that the fake EC2
 * SIGKILLs at a chosen call — a daemon killed between an intent's begin and
 * end — so what a restart does with the store it left can be checked.
 */
#pragma once

#include <stdbool.h>

#include "fakeec2.h"
#include "sync.h"

#define TESTCTX_PRIMARY_ENI "eni-0primary000000001"
#define TESTCTX_START_MS 1800000000000LL        /* 2027-01-15 */

extern int64_t testctx_now;

struct testctx {
        struct fakeec2 f;
        ec2_client *ec2;
        imds *imds;
        store *st;
        metrics *metrics;
        struct node node;
        struct ipamd_config cfg;
        struct ipamd_ctx ctx;
        char db[512];
};

/* Start everything; the primary ENI is attached in EC2 with n_primary_ips secondary addresses. */
struct testctx *testctx_new(size_t n_primary_ips);
void testctx_free(struct testctx *t);

/* A context like t->ctx over another store handle and clients (for another thread or process). */
struct ipamd_ctx testctx_ctx_for(struct testctx *t, store *st, ec2_client *ec2, imds *m);

/* Helper handles into o (eniops makes a batch's ENIs side by side): a fresh EC2 client and
 * store handle each. Those given to t->ctx are closed by testctx_free. */
void testctx_helpers(struct testctx *t, struct ipamd_ctx *o);

typedef void (*testctx_op)(struct ipamd_ctx *o, void *arg);
/*
 * Run op in a child process with its own store handle and clients; the fake
 * EC2 SIGKILLs it at its first call of action, before the model applies the
 * call or after (then the answer is lost). Fails the case unless the child
 * died so.
 */
void testctx_crash(struct testctx *t, enum ec2_action action, bool after_apply, testctx_op op, void *arg);

/* The restart's EC2 pass then intent resolution, both asserted to succeed. */
struct sync_report testctx_restart(struct testctx *t);

/* How many blocks the store holds for an ENI (-1: the ENI is unknown). */
int testctx_blocks(struct testctx *t, const char *eni_id);
/* How many intents are open. */
size_t testctx_open_intents(struct testctx *t);
/* Give a pod an address (an attachment named after tag); asserts it worked. */
struct store_lease testctx_pod(struct testctx *t, const char *tag);

/* The store holds exactly the addresses EC2 lists for the ENI (failing the case otherwise). */
void testctx_assert_store_is_ec2(struct testctx *t, const char *eni_id);
/* EC2's view: the ENI's secondary addresses ((size_t)-1: no such ENI), whether it exists, how many ENIs. */
size_t testctx_ec2_ips(struct testctx *t, const char *eni_id);
bool testctx_ec2_has(struct testctx *t, const char *eni_id);
size_t testctx_ec2_enis(struct testctx *t);

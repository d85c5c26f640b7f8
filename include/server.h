/*
 * server: vpc-ipamd's Unix socket, where the plugin and vpc-ipamctl ask.
 *
 * One thread, one epoll loop, non-blocking sockets: a slow or stuck client
 * never delays another. Every peer is checked with SO_PEERCRED and only uid 0
 * is served. Messages are protocol.h's (SOCK_SEQPACKET, JSON, ≤ 64 KiB);
 * anything else gets an error reply. An ADD that finds the pool empty is not
 * failed: it waits (bounded by add_wait_ms) while the reconciler is woken, and
 * is answered the moment an address arrives; on timeout it gets a "try again"
 * answer saying why the pool is empty.
 *
 * The server owns no pool logic: it calls the store (its own handle, used only
 * on the server's thread) and tells the reconciler through hooks.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "errmsg.h"
#include "metrics.h"
#include "podnet.h"
#include "store.h"

typedef struct server server;

#define SERVER_REASON_MAX 256
#define SERVER_MAX_CONNS 1024
#define SERVER_CONN_RESERVE 64          /* past MAX - RESERVE, a new connection closes the oldest idle one */
#define SERVER_PEER_IDLE_MAX 32         /* idle connections one peer (uid, pid) may hold */

/* What the reconciler says about the pool, for STATUS and for timed-out ADDs. */
struct server_pool_status {
        bool ready;                          /* it can serve or grow the pool */
        char reason[SERVER_REASON_MAX];      /* why not, or why the pool is empty */
        bool hold;                           /* the store is being rebuilt: ADD and DEL answer "try again" */
        int64_t stalled_ms;                  /* since the daemon last made progress (liveness) */
};

struct server_hooks {
        /* The pool changed or ADDs are waiting (their number): plan again now. */
        void (*wake)(void *userdata, int waiting_adds);
        void (*status)(void *userdata, struct server_pool_status *ret);
        void *userdata;
};

struct server_options {
        const char *socket_path;     /* its directory is created 0700, the socket is 0600 */
        store *store;                /* borrowed; used only on the server's thread */
        metrics *metrics;            /* borrowed; may be NULL */
        podnet *podnet;              /* borrowed; may be NULL: DEL then leaves the host side to the plugin */
        int add_wait_ms;             /* how long an ADD may wait for an address; 0 = fail at once */
        int idle_ms;                 /* a connection with no request for this long is closed; 0: 5000 */
        int pod_mtu;
        int64_t cooldown_ms;         /* how long a released address rests */
        bool ipv6;                   /* ENABLE_IPv6: pods get /128s (store_assign6); DEL leaves the wiring
                                        to the plugin (unwired false) */
        bool v4_egress;              /* ENABLE_V4_EGRESS: IPv6 pods also get an IPv4 egress address */
        const char *instance_type;   /* borrowed; the node's, in the pool reply (vpc-ipamctl max-pods) */
        bool v6_egress;              /* ENABLE_V6_EGRESS on a node with an IPv6 address: IPv4 pods also get
                                        an IPv6 egress address (store_v6_egress) */
        struct server_hooks hooks;
};

int server_new(const struct server_options *opts, server **ret, struct errmsg *err);
server *server_free(server *s);

/* Serve until server_stop(); waiting ADDs are then answered "shutting down". */
int server_run(server *s);

/* Thread-safe: stop serving (server_run returns). */
int server_stop(server *s);

/*
 * After server_run returned: close and unlink the listening socket, so
 * clients see at once that the daemon is gone (the plugin then waits for
 * the next daemon, or cleans up a DEL by itself), while the rest of the
 * daemon shuts down.
 */
void server_close_listener(server *s);

/* Thread-safe: addresses arrived or the pool's status changed; retry waiting ADDs. */
int server_pool_changed(server *s);

/* ADDs waiting for an address right now (thread-safe). */
int server_waiting(server *s);

/*
 * vpc-ipamd: the per-node daemon — start-up, the threads, shutdown.
 *
 * Start-up order is chosen so a restart serves at once: configuration (any
 * bad variable or path stops here, exit 2), the node from IMDS, the store, the
 * socket. `-n` stops after the configuration: it prints every setting and
 * exits, having created, opened and asked nothing (OpenBSD's ospfd -n). The
 * store alone decides what may be handed out (only free addresses of attached
 * ENIs), so serving before the EC2 pass is safe; the reconciler's first job is
 * that pass, the kernel's witness of which pod holds which address, and the
 * resolution of intents a crash left open. A store created at this start
 * (the old one was lost) knows no pod: the server holds ADDs and DELs until
 * that first job is done, so no live pod's address is handed out again.
 *
 * Threads: main runs the socket server; the reconciler makes every EC2 call;
 * the introspection server answers HTTP; a signal thread turns SIGTERM or
 * SIGINT into an orderly stop (in-flight work finishes, the store closes).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "awsnode-import.h"
#include "customnet.h"
#include "ec2.h"
#include "eniops.h"
#include "hostnet.h"
#include "imds.h"
#include "introspect.h"
#include "ipamd-config.h"
#include "ipv6node.h"
#include "log.h"
#include "mkdirs.h"
#include "vtime.h"
#include "metrics.h"
#include "node.h"
#include "podnet.h"
#include "ratelimit.h"
#include "reconciler.h"
#include "server.h"
#include "snat.h"
#include "store.h"
#include "sync.h"

extern char **environ;

/* The daemon's top-level context: everything main owns. */
struct ipamd {
        struct ipamd_config cfg;
        struct node node;
        imds *imds;
        ratelimit *limits;
        ec2_client *ec2;
        struct ctx_helper helpers[CTX_HELPERS];        /* eniops' helper threads' handles */
        store *store, *rec_store, *http_store;
        hostnet *net;
        podnet *podnet;
        metrics *metrics;
        server *srv;
        reconciler *rec;
        customnet *cnet;                /* the Kubernetes reads; NULL when no feature needs them */
        introspect *http;
        sigset_t signals;
        _Atomic bool stopping;
        bool store_new;                 /* created at this start: its leases come from the kernel's witness */
        bool limits_known;              /* the instance type's limits came from EC2 (or the store's cache of it) */
};

/* Only main and start-up code stop the process. */
static void fatal(const char *what, int r, const char *detail) {
        log_error_errno(r, what, LF_STR("detail", detail));
        fprintf(stderr, "vpc-ipamd: %s: %s\n", what, detail && *detail ? detail : strerror(-r));
        exit(1);
}

static void hook_wake(void *ud, int waiting) {
        struct ipamd *d = ud;
        if (d->rec)
                reconciler_wake(d->rec, waiting);
}

/* The Kubernetes reader read something new, or the read a refresh asked for: plan again now. */
static void cnet_changed(void *ud) {
        struct ipamd *d = ud;
        if (d->rec)
                reconciler_wake(d->rec, d->srv ? server_waiting(d->srv) : 0);
}

static void hook_status(void *ud, struct server_pool_status *ret) {
        struct ipamd *d = ud;
        if (d->rec)
                reconciler_status(d->rec, ret);
        else
                *ret = (struct server_pool_status){ .ready = true };
}

static void pool_changed(void *ud) {
        struct ipamd *d = ud;
        if (d->srv)
                server_pool_changed(d->srv);
}

static bool stopping(void *ud) {
        struct ipamd *d = ud;
        return atomic_load(&d->stopping);
}

static void *signal_thread(void *arg) {
        struct ipamd *d = arg;
        int sig = 0;
        sigwait(&d->signals, &sig);
        log_info("stopping", LF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
        atomic_store(&d->stopping, true);
        server_stop(d->srv);
        return NULL;
}

static void open_logging(struct ipamd *d) {
        struct log_options lo = { .level = d->cfg.log_level, .format = d->cfg.log_format, .fd = -1,
                                  .file = d->cfg.log_file, .file_max_bytes = IPAMD_LOG_FILE_MAX_BYTES,
                                  .file_backups = IPAMD_LOG_FILE_BACKUPS };
        int r = log_setup(&lo);
        if (r < 0) {
                fprintf(stderr, "vpc-ipamd: AWS_VPC_K8S_CNI_LOG_FILE=%s: cannot open: %s\n", d->cfg.log_file,
                        strerror(-r));
                exit(2);
        }
}

/*
 * The node from IMDS, which may be slow to answer at boot: retried with
 * back-off (IMDS_BACKOFF_MIN_MS doubling up to IMDS_BACKOFF_MAX_MS), one log
 * line per attempt, for VPC_IPAM_IMDS_START_WAIT (60 s) at most; only then is it fatal,
 * so a slow metadata service does not become a restart loop. SIGTERM/SIGINT
 * (blocked, and read here) end the wait.
 */
#define IMDS_BACKOFF_MIN_MS 250
#define IMDS_BACKOFF_MAX_MS 8000

static void discover_node(struct ipamd *d) {
        int64_t start = vtime_mono_ms();
        int backoff = IMDS_BACKOFF_MIN_MS;
        for (int attempt = 1;; attempt++) {
                struct errmsg err = { 0 };
                int r = node_discover(d->imds, &d->node, &err);
                if (r >= 0)
                        return;
                int64_t left = d->cfg.imds_start_wait_s * 1000LL - (vtime_mono_ms() - start);
                if (left <= 0)
                        fatal("cannot learn the node from IMDS", r, err.text);
                int wait = backoff < left ? backoff : (int)left;
                log_warn("IMDS does not answer yet; retrying", LF_INT("attempt", attempt), LF_INT("retry_in_ms", wait),
                         LF_INT("gives_up_in_ms", left), LF_STR("detail", errmsg_text(&err, r)));
                struct timespec ts = { wait / 1000, (long)(wait % 1000) * 1000000L };
                int sig = sigtimedwait(&d->signals, NULL, &ts);
                if (sig > 0) {
                        log_info("stopping", LF_STR("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
                        exit(0);
                }
                backoff = backoff * 2 < IMDS_BACKOFF_MAX_MS ? backoff * 2 : IMDS_BACKOFF_MAX_MS;
        }
}

static void discover(struct ipamd *d) {
        struct errmsg err = { 0 };
        int r = imds_new(NULL, &d->imds, &err);
        if (r < 0)
                fatal("cannot learn the node from IMDS", r, err.text);
        discover_node(d);
        struct ratelimit_options ro = { .share = d->cfg.ec2_rate_share };
        if ((r = ratelimit_new(&ro, &d->limits)) < 0)
                fatal("cannot create the EC2 rate limiter", r, NULL);
        const char *region_env = getenv("AWS_REGION") ? getenv("AWS_REGION") : getenv("AWS_DEFAULT_REGION");
        /* AWS_EC2_ENDPOINT (aws-node's) first, then the SDKs' AWS_ENDPOINT_URL_EC2 and AWS_ENDPOINT_URL. */
        struct ec2_options eo = { .region = region_env && *region_env ? NULL : d->node.region,
                                  .endpoint = d->cfg.ec2_endpoint[0] ? d->cfg.ec2_endpoint : NULL,
                                  .http = { .total_timeout_ms = d->cfg.http_timeout_s * 1000L },
                                  .limits = d->limits, .imds = d->imds };
        if ((r = ec2_client_new(&eo, &d->ec2, &err)) < 0)
                fatal("cannot create the EC2 client", r, err.text);
        for (size_t i = 0; i < CTX_HELPERS && r >= 0; i++)
                if ((r = ec2_client_new(&eo, &d->helpers[i].ec2, &err)) < 0)
                        log_warn("no EC2 client for a helper; new ENIs are made fewer at a time",
                                 LF_STR("detail", err.text));
        log_info("node discovered", LF_STR("instance_id", d->node.instance_id),
                 LF_STR("instance_type", d->node.instance_type), LF_STR("region", d->node.region),
                 LF_STR("primary_eni", d->node.primary_eni_id), LF_STR("subnet", d->node.subnet_id),
                 LF_STR("ec2_endpoint", ec2_client_endpoint(d->ec2)));
}

/* AWS_EXTERNAL_SERVICE_CIDRS' rules, before any pod is served; the set only changes with the config. */
static void service_rules(struct ipamd *d) {
        const char *cidrs[IPAMD_SERVICE_CIDRS_MAX];
        for (size_t i = 0; i < d->cfg.n_service_cidrs; i++)
                cidrs[i] = d->cfg.service_cidrs[i];
        struct errmsg err = { 0 };
        hostnet *h = NULL;
        int r = hostnet_open(&h, &err);
        if (r == 0)
                r = hostnet_sync_service_rules(h, cidrs, d->cfg.n_service_cidrs, &err);
        hostnet_free(h);
        if (r < 0)
                fatal("cannot set the rules of AWS_EXTERNAL_SERVICE_CIDRS", r, err.text);
        if (d->cfg.n_service_cidrs)
                log_info("external service CIDRs routed through the main table",
                         LF_INT("rules", (int)d->cfg.n_service_cidrs), LF_INT("priority", HOSTNET_SERVICE_RULE_PRIO));
}

/* One warning per aws-node variable set that does not apply here. */
static void warn_ignored(const struct ipamd_config *cfg, bool to_stderr) {
        const struct ipamd_ignored_var *v;
        for (size_t i = 0; (v = ipamd_config_ignored_var(i)); i++) {
                if (!((cfg->ignored >> i) & 1))
                        continue;
                if (to_stderr)
                        fprintf(stderr, "vpc-ipamd: warning: %s=%s is ignored: %s\n", v->name, getenv(v->name),
                                v->reason);
                else
                        log_warn("an aws-node variable that does not apply to vpc-ipamd is ignored",
                                 LF_STR("variable", v->name), LF_STR("value", getenv(v->name)),
                                 LF_STR("reason", v->reason));
        }
        const char *name;
        for (size_t i = 0; (name = ipamd_config_v6_ignored(cfg, i)); i++) {
                if (to_stderr)
                        fprintf(stderr, "vpc-ipamd: warning: %s=%s is ignored in IPv6 mode: one /80 prefix on the "
                                "primary ENI serves every pod\n", name, getenv(name));
                else
                        log_warn("a pool variable is ignored in IPv6 mode: one /80 prefix on the primary ENI "
                                 "serves every pod", LF_STR("variable", name), LF_STR("value", getenv(name)));
        }
        if (!cfg->ipv6 || !cfg->v6_egress)
                return;
        if (to_stderr)      /* aws-node's IPv6 conflist takes ENABLE_V4_EGRESS and leaves this one out */
                fprintf(stderr, "vpc-ipamd: warning: ENABLE_V6_EGRESS=true is ignored in IPv6 mode: IPv6 pods' "
                        "egress is ENABLE_V4_EGRESS\n");
        else
                log_warn("ENABLE_V6_EGRESS is ignored in IPv6 mode: IPv6 pods' egress is ENABLE_V4_EGRESS");
}

/* A full or read-only disk, a missing mount: a fault an operator fixes, not a wrong file. */
static bool store_fault_passes(int r) {
        return r == -EIO || r == -ENOSPC || r == -EACCES || r == -ENOENT || r == -EBUSY || r == -EROFS;
}

/*
 * Open the store, retrying with back-off (1 s doubling to 30 s) while the
 * fault is one that passes, so a fixed disk needs no restart; SIGTERM ends
 * the wait. A file that is no usable store (corrupt, newer schema) stops here.
 */
static store *open_store(struct ipamd *d) {
        struct errmsg err = { 0 };
        store *s = NULL;
        for (int wait_s = 1;; wait_s = wait_s < 16 ? wait_s * 2 : 30) {
                int r = store_open(d->cfg.db_path, &s, &err);
                if (r >= 0)
                        return s;
                if (!store_fault_passes(r))
                        fatal("cannot open the pool store", r, err.text);
                log_error_errno(r, "cannot open the pool store; retrying", LF_STR("detail", err.text),
                                LF_INT("retry_s", wait_s));
                struct timespec ts = { wait_s, 0 };
                if (sigtimedwait(&d->signals, NULL, &ts) > 0) {
                        log_info("stopped before the pool store could be opened");
                        exit(0);
                }
                (void)mkdirs_parent(d->cfg.db_path, NULL);
        }
}

/* A store belongs to one instance: refuse one copied from another node. */
static void check_store_owner(struct ipamd *d) {
        char owner[IMDS_ID_MAX];
        int r = store_meta_get(d->store, "instance_id", owner, sizeof owner);
        if (r == -ENOENT) {
                d->store_new = true;
                if ((r = store_meta_set(d->store, "instance_id", d->node.instance_id)) < 0)
                        fatal("cannot record the store's instance", r, NULL);
                return;
        }
        if (r < 0 || strcmp(owner, d->node.instance_id) != 0) {
                char detail[400];
                snprintf(detail, sizeof detail, "%s belongs to instance %s, this is %s; move it away to start afresh",
                         d->cfg.db_path, r < 0 ? "?" : owner, d->node.instance_id);
                fatal("the pool store is another node's", -EEXIST, detail);
        }
}

static void open_stores(struct ipamd *d) {
        (void)mkdirs_parent(d->cfg.db_path, NULL);     /* store_open says what is wrong */
        d->store = open_store(d);
        d->rec_store = open_store(d);
        d->http_store = open_store(d);
        for (size_t i = 0; i < CTX_HELPERS; i++)
                if (store_open(d->cfg.db_path, &d->helpers[i].store, NULL) < 0)
                        log_warn("no store handle for a helper; new ENIs are made fewer at a time");
        check_store_owner(d);
        struct errmsg err = { 0 };
        /* ENABLE_IMDS_ONLY_MODE: EC2 is not asked at all, not even for the limits. */
        int r = d->cfg.imds_only ? errmsg_set(&err, -EOPNOTSUPP, "ENABLE_IMDS_ONLY_MODE: EC2 is not asked")
                                 : node_limits(&d->node, d->store, d->ec2, vtime_wall_ms(), &err);
        if (r < 0 && d->cfg.no_provisioning) {
                /* IMDS-only: the limits only feed reports; what IMDS lists is what there is. */
                char (*macs)[IMDS_MAC_LEN] = NULL;
                size_t n = 1;
                imds_macs(d->imds, &macs, &n, NULL);
                free(macs);
                d->node.limits = (struct plan_limits){ n > 0 ? (int)n : 1, 50 };
                log_warn("instance type limits unknown without EC2; reporting what IMDS shows",
                         LF_STR("detail", err.text));
        } else if (r < 0) {
                fatal("cannot learn the instance type's limits", r, err.text);
        }
        /* Secondary-IP mode hands out /32s before leftover prefixes' addresses (they empty out and go back). */
        store_prefer_ips(d->store, !(d->cfg.prefix_delegation && d->node.prefix_supported));
        store_skip_primary(d->store, d->cfg.custom_networking);
        d->limits_known = r >= 0;
        char buf[512];
        node_vpc_cidrs_string(&d->node, buf, sizeof buf);
        if ((r = store_meta_set(d->store, "vpc_cidrs", buf)) < 0)
                log_error_errno(r, "could not record the VPC's CIDRs", LF_STR("vpc_cidrs", buf));
}

static void start_server(struct ipamd *d) {
        struct errmsg err = { 0 };
        int r = metrics_new(&d->metrics);
        if (r < 0)
                fatal("out of memory", r, NULL);
        if ((r = podnet_new(d->metrics, &d->podnet, &err)) < 0)
                fatal("cannot open a netlink socket", r, err.text);
        if ((r = store_set_serving(d->store)) < 0)     /* ADD and DEL wait for no fsync (store.h) */
                log_warn("the server's store handle fsyncs every commit", LF_INT("error", r));
        struct server_options so = { .socket_path = d->cfg.socket_path, .store = d->store, .metrics = d->metrics,
                                     .podnet = d->podnet,
                                     .add_wait_ms = d->cfg.add_wait_ms, .pod_mtu = d->cfg.pod_mtu,
                                     .cooldown_ms = (int64_t)d->cfg.pool.ip_cooldown_s * 1000,
                                     .ipv6 = d->cfg.ipv6, .v4_egress = d->cfg.v4_egress,
                                     .instance_type = d->node.instance_type,
                                     .v6_egress = d->cfg.v6_egress,
                                     .hooks = { hook_wake, hook_status, d } };
        if ((r = server_new(&so, &d->srv, &err)) < 0)
                fatal("cannot serve the socket", r, err.text);
}

static int leased(void *ud, const struct proto_attachment *att) {
        struct ipamd *d = ud;
        struct store_lease lease;
        int r = store_lookup(d->store, att->container_id, att->ifname, &lease);
        return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

/* Veths a killed predecessor took down at DEL but did not delete. */
static void sweep_pod_veths(struct ipamd *d) {
        struct errmsg err = { 0 };
        unsigned n = 0;
        int r = podnet_sweep(d->podnet, leased, d, &n, &err);
        if (r < 0)
                log_warn("could not look for the veths of deleted pods", LF_STR("error", errmsg_text(&err, r)));
        else if (n)
                log_info("deleting veths of deleted pods", LF_INT("count", n));
}

static struct ipamd_ctx make_ctx(struct ipamd *d, store *s) {
        struct ipamd_ctx o = { .ec2 = d->ec2, .imds = d->imds, .store = s, .net = d->net, .metrics = d->metrics,
                               .cfg = &d->cfg, .node = &d->node, .now_ms = vtime_wall_ms, .cnet = d->cnet,
                               .pool_changed = pool_changed, .stopping = stopping, .userdata = d };
        if (s == d->rec_store)          /* the reconciler's: it creates ENIs */
                memcpy(o.helpers, d->helpers, sizeof o.helpers);
        return o;
}

/* --- IPv6 mode (ipv6node.h) ------------------------------------------------------------ */

/* The /80 and the rest, retried with back-off while EC2 or the store fails: without it nothing can be served. */
static void ipv6_prefix(struct ipamd *d) {
        struct ipamd_ctx o = make_ctx(d, d->store);
        if (d->limits_known && !d->node.prefix_supported)      /* aws-node's isConfigValid: fatal, not a fallback */
                fatal("IPv6 mode: prefix delegation is not supported on this non-nitro instance type, and IPv6 is "
                      "only supported in prefix delegation mode (as aws-node)", -EOPNOTSUPP, d->node.instance_type);
        for (int wait_s = 1;; wait_s = wait_s < 16 ? wait_s * 2 : 30) {
                struct errmsg err = { 0 };
                char prefix[STORE_CIDR6_MAX];
                int r = ipv6node_setup(&o, prefix, &err);
                if (r >= 0) {
                        log_info("IPv6 mode: pods get /128s from the node's prefix", LF_STR("prefix", prefix),
                                 LF_STR("eni", d->node.primary_eni_id), LF_BOOL("v4_egress", d->cfg.v4_egress));
                        return;
                }
                log_error_errno(r, "IPv6 mode: cannot set up the node's IPv6 prefix; retrying",
                                LF_STR("detail", err.text), LF_INT("retry_s", wait_s));
                struct timespec ts = { wait_s, 0 };
                if (sigtimedwait(&d->signals, NULL, &ts) > 0) {
                        log_info("stopped before the node's IPv6 prefix was set up");
                        exit(0);
                }
        }
}

/* A store created at this start knows no pod: the kernel's routes give the live pods their addresses back first. */
static void ipv6_witness(struct ipamd *d) {
        struct ipamd_ctx o = make_ctx(d, d->store);
        struct errmsg err = { 0 };
        size_t n = 0;
        int r = hostnet_open(&o.net, &err);
        if (r >= 0)
                r = ipv6node_witness(&o, &n, &err);
        hostnet_free(o.net);
        if (r < 0)
                fatal("IPv6 mode: cannot read the pods' routes to rebuild the store", r, err.text);
        log_info("IPv6 mode: a new store; the pods the kernel shows keep their addresses", LF_INT("restored", (int)n));
}

/* Egress addresses routed to pods the store does not know (aws-node's, or after a lost store) are kept
 * from new pods: IPv6 mode's IPv4 ones, or IPv4 pods' ULAs with ENABLE_V6_EGRESS. */
static void egress_in_use(struct ipamd *d) {
        struct ipamd_ctx o = make_ctx(d, d->store);
        struct errmsg err = { 0 };
        size_t kept = 0;
        int r = hostnet_open(&o.net, &err);
        if (r >= 0)
                r = ipv6node_egress_in_use(&o, (int64_t)d->cfg.pool.ip_cooldown_s * 1000, &kept, &err);
        hostnet_free(o.net);
        if (r < 0)
                fatal("cannot read the egress addresses in use on the node", r, err.text);
        if (kept)
                log_warn("egress addresses in use by pods the store does not know are not handed out",
                         LF_INT("kept", (int)kept));
}

/* The node's IPv6 sysctls (ipv6node.h), in the daemon's (the node's) namespace; ifname is the primary's link. */
static void ipv6_sysctls(struct ipamd *d, char ifname[HOSTNET_IFNAMSIZ], const char *what) {
        struct errmsg err = { 0 };
        hostnet *h = NULL;
        int ifindex = 0;
        int r = hostnet_open(&h, &err);
        if (r >= 0)
                r = hostnet_find_link_by_mac(h, d->node.primary_mac, &ifindex, ifname, &err);
        hostnet_free(h);
        if (r >= 0)
                r = ipv6node_sysctls("/proc/sys", ifname, &err);
        if (r < 0)
                fatal(what, r, err.text);
}

/* The node's sysctls and the egress table, in the daemon's (the node's) namespace. */
static void ipv6_host(struct ipamd *d) {
        struct errmsg err = { 0 };
        char ifname[HOSTNET_IFNAMSIZ] = "";
        int r;
        ipv6_sysctls(d, ifname, "IPv6 mode: cannot set the node's sysctls");
        snat *sn = NULL;
        struct snat_input in = { .cfg = d->cfg.snat, .ipv6_egress = true };
        in.cfg.external = false;        /* the egress SNAT is the egress plugin's in aws-node: always on */
        snprintf(in.primary_ip, sizeof in.primary_ip, "%s", d->node.primary_ip);
        snprintf(in.primary_if, sizeof in.primary_if, "%s", ifname);
        if ((r = snat_new(&sn, &err)) >= 0)
                r = d->cfg.v4_egress ? snat_apply(sn, &in, NULL, &err) : snat_remove(sn, d->cfg.snat.mark, &err);
        snat_free(sn);
        if (r < 0)
                fatal("IPv6 mode: cannot set the egress table", r, err.text);
}

/*
 * ENABLE_V6_EGRESS (IPv4 mode): the node's IPv6 is IMDS's meta-data/ipv6 (the
 * primary ENI's first), as aws-node's conflist nodeIP; without one the
 * setting is off, as there. With one: the node forwards IPv6 (ipv6node.h's
 * sysctls), pods get their ULAs (store_v6_egress, via the server) and the
 * reconciler's egress table gains its ip6 part (node.egress6_ip).
 */
static void v6_egress_node(struct ipamd *d) {
        struct errmsg err = { 0 };
        struct in6_addr a;
        char ifname[HOSTNET_IFNAMSIZ] = "";
        if (!d->cfg.v6_egress)
                return;
        int r = imds_ipv6(d->imds, &a, &err);
        if (r == -ENOENT) {
                d->cfg.v6_egress = false;
                log_warn("ENABLE_V6_EGRESS=true but the node has no IPv6 address (IMDS meta-data/ipv6 is absent): "
                         "IPv6 egress is off, as aws-node's; IPv4 pods get no IPv6 egress address",
                         LF_STR("eni", d->node.primary_eni_id));
                return;
        }
        if (r < 0)
                fatal("ENABLE_V6_EGRESS: cannot read the node's IPv6 address from IMDS", r, err.text);
        inet_ntop(AF_INET6, &a, d->node.egress6_ip, sizeof d->node.egress6_ip);
        ipv6_sysctls(d, ifname, "ENABLE_V6_EGRESS: cannot set the node's IPv6 sysctls");
        log_info("ENABLE_V6_EGRESS: IPv4 pods get an IPv6 egress address from fd00::ac:0/118, SNATed to the node's "
                 "IPv6", LF_STR("node_ipv6", d->node.egress6_ip), LF_STR("primary_if", ifname));
}

/* --- taking over from aws-node (awsnode-import.h) ------------------------------------- */

static void import_skipped(void *ud, const struct awsnode_alloc *a, const char *why) {
        (void)ud;
        log_warn("aws-node checkpoint: allocation not imported", LF_STR("ip", a->ipv4[0] ? a->ipv4 : a->ipv6),
                 LF_STR("container_id", a->container_id), LF_STR("pod", a->pod_name), LF_STR("reason", why));
}

/* The checkpoint, or exit: 2 for a version not understood (the operator must look), 1 otherwise. */
static bool read_checkpoint(const char *path, struct awsnode_checkpoint *ret) {
        struct errmsg err = { 0 };
        int r = awsnode_checkpoint_read(path, ret, &err);
        if (r == -ENOENT)
                return false;
        if (r == -EPROTONOSUPPORT) {
                log_error_errno(r, "aws-node's checkpoint has a version vpc-ipamd does not understand",
                                LF_STR("detail", err.text));
                fprintf(stderr, "vpc-ipamd: cannot take over from aws-node: %s\n", err.text);
                exit(2);
        }
        if (r < 0)
                fatal("cannot read aws-node's checkpoint", r, err.text);
        return true;
}

/* The addresses on the node's ENIs, as the reconciler's first pass finds them, with their links set up. */
static void sync_for_import(struct ipamd *d) {
        struct ipamd_ctx o = make_ctx(d, d->store);
        struct sync_report rep = { 0 };
        struct errmsg err = { 0 };
        int r = hostnet_open(&o.net, &err);
        if (r >= 0)
                r = d->cfg.no_provisioning ? sync_with_imds(&o, &rep, &err) : sync_with_ec2(&o, &rep, &err);
        hostnet_free(o.net);
        if (r < 0)
                fatal("cannot learn the node's ENIs to take over aws-node's pods", r, err.text);
}

/*
 * Once per store, before serving: aws-node's pods keep their addresses, and
 * no ADD can be handed one of them. The EC2 pass runs here first (it also
 * runs as the reconciler's first job: it is idempotent).
 */
static void import_aws_node(struct ipamd *d) {
        const char *path = d->cfg.awsnode_checkpoint;
        char done[32];
        if (store_meta_get(d->store, AWSNODE_IMPORTED_META, done, sizeof done) == 0)
                return;
        struct awsnode_checkpoint cp = { 0 };
        if (!read_checkpoint(path, &cp))
                return;         /* a fresh node */
        if (!d->cfg.ipv6)       /* IPv6 mode: the /80 (ipv6node_setup) is all the store needs */
                sync_for_import(d);
        struct awsnode_import_report rep = { 0 };
        struct errmsg err = { 0 };
        hostnet *net = NULL;
        int r = hostnet_open(&net, &err);
        if (r >= 0)
                r = awsnode_import(d->store, net, &cp, d->cfg.snat.veth_prefix, d->cfg.ipv6, vtime_wall_ms(),
                                   import_skipped, d, &rep, &err);
        hostnet_free(net);
        awsnode_checkpoint_done(&cp);
        if (r < 0)
                fatal("cannot import aws-node's checkpoint", r, err.text);
        log_info("took over aws-node's pods", LF_STR("checkpoint", path), LF_INT("imported", rep.imported),
                 LF_INT("skipped", rep.skipped), LF_INT("veths_adopted", rep.veths_adopted));
}

/*
 * The Kubernetes reader (customnet.h), when a feature needs the API: custom
 * networking, or the unschedulable rule (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false,
 * aws-node's default) on a node that knows its name and its API server. It
 * never blocks the start: the first read happens on its thread.
 */
static void start_customnet(struct ipamd *d) {
        const struct ipamd_config *c = &d->cfg;
        bool unsched = !c->manage_non_schedulable && c->node_name[0] && c->in_cluster;
        if (!c->custom_networking && !unsched) {
                if (!c->manage_non_schedulable)
                        log_info("AWS_MANAGE_ENIS_NON_SCHEDULABLE=false, but without MY_NODE_NAME and the in-cluster "
                                 "API the Node cannot be read: ENIs are managed whatever its taints");
                return;
        }
        struct customnet_options o = { .eniconfig = c->custom_networking, .annotation_key = c->eniconfig_annotation,
                                       .label_key = c->eniconfig_label, .changed = cnet_changed, .userdata = d };
        struct errmsg err = { 0 };
        int r = customnet_start(&o, &d->cnet, &err);
        if (r < 0)
                fatal("cannot start the Kubernetes reader", r, err.text);
        log_info("reading the node from the Kubernetes API", LF_STR("node", c->node_name),
                 LF_BOOL("custom_networking", c->custom_networking), LF_BOOL("unschedulable_rule", unsched),
                 LF_STR("annotation", c->eniconfig_annotation), LF_STR("label", c->eniconfig_label));
}

/* The reconciler's thread: its first job is the EC2 pass and the intents a crash left. */
static void start_reconciler(struct ipamd *d) {
        struct errmsg err = { 0 };
        int r = hostnet_open(&d->net, &err);
        if (r < 0)
                fatal("cannot open a netlink socket", r, err.text);
        struct reconciler_options ro = { .ctx = make_ctx(d, d->rec_store),
                                         .imds_refresh_ms = d->cfg.vpc_cidr_refresh_s * 1000,
                                         .store_new = d->store_new };
        if ((r = reconciler_start(&ro, &d->rec, &err)) < 0)
                fatal("cannot start the reconciler", r, err.text);
}

static void start_introspection(struct ipamd *d) {
        struct introspect_options io = { .cfg = &d->cfg, .node = &d->node, .store = d->http_store,
                                         .metrics = d->metrics, .limits = d->limits };
        struct errmsg err = { 0 };
        int r = introspect_start(&io, &d->http, &err);
        if (r < 0)
                fatal("cannot start introspection/metrics", r, err.text);
}

static void shutdown_all(struct ipamd *d) {
        server_close_listener(d->srv);   /* clients learn at once that this daemon is gone */
        introspect_stop(d->http);
        customnet_mute(d->cnet);         /* its reads wake the reconciler no more */
        reconciler_stop(d->rec);         /* finishes the EC2 call in flight; long waits end early */
        d->rec = NULL;
        d->cnet = customnet_stop(d->cnet);
        server_free(d->srv);
        podnet_free(d->podnet);          /* deletes the veths still queued */
        store_close(d->store);
        store_close(d->rec_store);
        store_close(d->http_store);
        hostnet_free(d->net);
        ec2_client_free(d->ec2);
        for (size_t i = 0; i < CTX_HELPERS; i++) {
                store_close(d->helpers[i].store);
                ec2_client_free(d->helpers[i].ec2);
        }
        ratelimit_free(d->limits);
        imds_free(d->imds);
        metrics_free(d->metrics);
        log_info("stopped");
        log_shutdown();
}

static void usage(FILE *f) {
        fprintf(f, "usage: vpc-ipamd [-n [-j]]\n"
                   "  -n, --check  read and check the configuration (the environment, its paths and the\n"
                   "               rules across variables), print every setting and exit: 0 valid,\n"
                   "               2 invalid, with the message a start would print; touches nothing\n"
                   "  -j, --json   with -n: the settings as one JSON object\n"
                   "  -h, --help   this text\n"
                   "Configured by environment variables: README.md, \"Configuration\".\n");
}

enum mode { MODE_RUN, MODE_CHECK, MODE_CHECK_JSON, MODE_HELP };

/* The command line: nothing, -n [-j], or -h. Anything else exits 2, named. */
static enum mode parse_args(int argc, char **argv) {
        static const struct option opts[] = { { "check", no_argument, NULL, 'n' },
                                              { "json", no_argument, NULL, 'j' },
                                              { "help", no_argument, NULL, 'h' },
                                              { NULL, 0, NULL, 0 } };
        bool check = false, json = false;
        opterr = 0;
        for (int o; (o = getopt_long(argc, argv, ":njh", opts, NULL)) != -1;) {
                if (o == 'h')
                        return MODE_HELP;
                if (o == 'n' || o == 'j') {
                        *(o == 'n' ? &check : &json) = true;
                        continue;
                }
                fprintf(stderr, "vpc-ipamd: unknown option '%s'; vpc-ipamd -h lists them\n", argv[optind - 1]);
                exit(2);
        }
        if (optind < argc || (json && !check)) {
                fprintf(stderr, "vpc-ipamd: %s%s%s; vpc-ipamd -h lists the options\n",
                        optind < argc ? "unexpected argument '" : "-j needs -n", optind < argc ? argv[optind] : "",
                        optind < argc ? "'" : "");
                exit(2);
        }
        return !check ? MODE_RUN : json ? MODE_CHECK_JSON : MODE_CHECK;
}

/* The environment and the paths it names; a bad one exits 2. The same for a start and for -n. */
static void load_config(struct ipamd_config *cfg) {
        struct errmsg err = { 0 };
        int r = ipamd_config_from_env((const char *const *)environ, cfg, &err);
        if (r >= 0)
                r = ipamd_config_check_paths(cfg, &err);
        if (r < 0) {
                fprintf(stderr, "vpc-ipamd: invalid configuration: %s\n", err.text);
                exit(2);
        }
}

/* -n: one "set|default NAME=value" line per variable, or one JSON object. */
static int print_settings(const struct ipamd_config *cfg, bool json) {
        static char value[32768];       /* ADDITIONAL_ENI_TAGS may be 15 KiB */
        cJSON *o = json ? cJSON_CreateObject() : NULL;
        const char *name;
        bool set;
        for (size_t i = 0; ipamd_config_setting(cfg, i, &name, &set, value, sizeof value) == 0; i++) {
                if (!json) {
                        printf("%-7s %s=%s\n", set ? "set" : "default", name, value);
                        continue;
                }
                cJSON *v = cJSON_AddObjectToObject(o, name);
                cJSON_AddStringToObject(v, "value", value);
                cJSON_AddBoolToObject(v, "set", set);
        }
        if (json) {
                char *text = cJSON_Print(o);
                printf("%s\n", text ? text : "{}");
                cJSON_free(text);
                cJSON_Delete(o);
        }
        warn_ignored(cfg, true);
        fprintf(stderr, "vpc-ipamd: configuration OK\n");
        return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
        static struct ipamd d; /* the daemon's one top-level context */
        int64_t t0 = vtime_mono_ms();
        enum mode mode = parse_args(argc, argv);
        if (mode == MODE_HELP) {
                usage(stdout);
                return 0;
        }
        load_config(&d.cfg);
        if (mode != MODE_RUN)
                return print_settings(&d.cfg, mode == MODE_CHECK_JSON);
        open_logging(&d);
        warn_ignored(&d.cfg, false);
        unsigned seed;
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
                seed = (unsigned)getpid() ^ (unsigned)t0;
        srand(seed); /* jitter of the leak cleanup: nodes must not all ask at once */
        sigemptyset(&d.signals);
        sigaddset(&d.signals, SIGTERM);
        sigaddset(&d.signals, SIGINT);
        pthread_sigmask(SIG_BLOCK, &d.signals, NULL);
        signal(SIGPIPE, SIG_IGN);
        discover(&d);
        open_stores(&d);
        service_rules(&d);
        if (d.cfg.ipv6) {
                ipv6_prefix(&d);
                if (d.store_new)
                        ipv6_witness(&d);
                import_aws_node(&d);    /* its IPv6 pods' /128s, before anything is handed out */
                egress_in_use(&d);
                ipv6_host(&d);
        } else {
                import_aws_node(&d);
                v6_egress_node(&d);
                if (d.cfg.v6_egress)
                        egress_in_use(&d);
        }
        start_server(&d);
        log_info("serving", LF_STR("socket", d.cfg.socket_path), LF_INT("startup_ms", vtime_mono_ms() - t0));
        start_introspection(&d);
        pthread_t sig;
        pthread_create(&sig, NULL, signal_thread, &d);
        if (!d.cfg.ipv6) {      /* IPv6 mode: no warm pool, no ENI beyond the primary, nothing to reconcile */
                start_customnet(&d);    /* (nor an ENI rule to read the Node for: no API call) */
                start_reconciler(&d);
        }
        sweep_pod_veths(&d);
        int r = server_run(d.srv);
        pthread_cancel(sig);
        pthread_join(sig, NULL);
        shutdown_all(&d);
        return r < 0 ? 1 : 0;
}

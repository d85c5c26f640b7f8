/*
 * test-vpc-cni: the real vpc-cni binary, end to end, against a small fake
 * vpc-ipamd.
 *
 * The fake daemon is a thread of the test serving the socket protocol with
 * protocol.h's server helpers: it hands out fixed addresses (10.0.1.100 and
 * up), remembers attachments, counts what it was asked and can be told to
 * refuse or to report "not ready". Each case runs in Check's forked child,
 * which unshares a fresh "node" namespace first; pods are namespaces made
 * inside it and held by descriptors. The plugin is exec'd with a CNI
 * environment and stdin exactly as a runtime would, and its stdout, exit
 * status and the kernel state are checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "dataplane.h"
#include "protocol.h"
#include "testlib.h"

/* --- the fake daemon ---------------------------------------------------------------------- */

#define MAX_PODS 64

struct fake {
        int fd, stop[2];
        pthread_t thread;
        pthread_mutex_t lock;
        struct proto_attachment pods[MAX_PODS];
        bool used[MAX_PODS];
        uint32_t route_table;
        bool refuse_add;        /* answer no_address */
        bool not_ready;
        char status_reason[64];         /* STATUS: the reason and free count it reports */
        uint32_t available;
        bool unwire;            /* DEL: say what vpc-ipamd says when it undid the host side itself */
        bool v6;                /* IPv6 mode: hand out /128s (and egress addresses when egress) */
        bool egress;
        bool refuse_del;        /* DEL: answer internal, not to be retried */
        char del_host_veth[PROTO_IFNAME_MAX + 1];       /* what the last DEL named */
        unsigned n_add, n_del, n_del_setup_failed, n_gc;
};

static int find_pod(struct fake *f, const struct proto_attachment *a) {
        for (int i = 0; i < MAX_PODS; i++)
                if (f->used[i] && strcmp(f->pods[i].container_id, a->container_id) == 0 &&
                    strcmp(f->pods[i].ifname, a->ifname) == 0)
                        return i;
        return -1;
}

/* The address of slot i: 10.0.1.(100+i), or 2600:1f14:abc:de00::(100+i, hex) in IPv6 mode. */
static void addr_of(const struct fake *f, int i, char ip[static PROTO_IP_MAX]) {
        if (f->v6)
                snprintf(ip, PROTO_IP_MAX, "2600:1f14:abc:de00::%x", 100 + i);
        else
                snprintf(ip, PROTO_IP_MAX, "10.0.1.%d", (100 + i) & 0xff);
}

static void fill_address(struct fake *f, int i, struct proto_address *a) {
        addr_of(f, i, a->ip);
        strcpy(a->eni_id, "eni-0fake");
        a->device_index = f->route_table == 254 ? 0 : f->route_table - 1;
        a->route_table = f->route_table;
        strcpy(a->gateway, PROTO_POD_GATEWAY);
        strcpy(a->subnet_gateway, "10.0.1.1");
        a->mtu = 9001;
        a->has_ip = true;
        if (f->v6) {                    /* as the daemon's contract says for IPv6 pods */
                a->route_table = 254;
                a->device_index = 0;
                strcpy(a->gateway, PROTO_POD_GATEWAY6);
                if (f->egress)
                        snprintf(a->egress_ip, sizeof a->egress_ip, "169.254.172.%d", 10 + i);
        }
}

static void fake_add(struct fake *f, const struct proto_request *req, struct proto_reply *reply) {
        f->n_add++;
        if (f->refuse_add) {
                strcpy(reply->error.code, PROTO_E_NO_ADDRESS);
                strcpy(reply->error.msg, "subnet exhausted: subnet-0fake has no free address");
                reply->error.retry = true;
                return;
        }
        int i = find_pod(f, &req->att);
        for (int j = 0; i < 0 && j < MAX_PODS; j++)
                if (!f->used[j]) {
                        i = j;
                        f->used[j] = true;
                        f->pods[j] = req->att;
                }
        reply->ok = true;
        fill_address(f, i, &reply->addr);
}

static void fake_gc(struct fake *f, const struct proto_request *req, struct proto_reply *reply) {
        f->n_gc++;
        reply->released = calloc(MAX_PODS, PROTO_IP_MAX);
        for (int i = 0; i < MAX_PODS; i++) {
                bool valid = false;
                for (size_t v = 0; v < req->n_valid; v++)
                        valid = valid || (f->used[i] && strcmp(req->valid[v].container_id, f->pods[i].container_id) == 0);
                if (f->used[i] && !valid) {
                        f->used[i] = false;
                        addr_of(f, i, reply->released[reply->n_released++]);
                }
        }
        reply->ok = true;
}

static void fake_handle(const struct proto_request *req, struct proto_reply *reply, void *userdata) {
        struct fake *f = userdata;
        int i;
        pthread_mutex_lock(&f->lock);
        switch (req->op) {
        case PROTO_OP_ADD:
                fake_add(f, req, reply);
                break;
        case PROTO_OP_DEL:
                f->n_del++;
                f->n_del_setup_failed += strcmp(req->reason, "SetupFailed") == 0;
                snprintf(f->del_host_veth, sizeof f->del_host_veth, "%s", req->host_veth);
                if (f->refuse_del) {
                        strcpy(reply->error.code, PROTO_E_INTERNAL);
                        strcpy(reply->error.msg, "the store is read-only");
                        break;
                }
                reply->ok = true;
                reply->unwired = f->unwire;
                reply->veth_queued = f->unwire && req->host_veth[0];
                if ((i = find_pod(f, &req->att)) >= 0) {
                        fill_address(f, i, &reply->addr);
                        f->used[i] = false;
                }
                break;
        case PROTO_OP_CHECK:
                if ((i = find_pod(f, &req->att)) < 0) {
                        strcpy(reply->error.code, PROTO_E_UNKNOWN_CONTAINER);
                        strcpy(reply->error.msg, "no such attachment");
                } else {
                        reply->ok = true;
                        fill_address(f, i, &reply->addr);
                }
                break;
        case PROTO_OP_GC:
                fake_gc(f, req, reply);
                break;
        case PROTO_OP_STATUS:
                reply->ok = true;
                reply->ready = !f->not_ready;
                strcpy(reply->reason, f->status_reason);
                reply->available = f->available;
                break;
        default:
                strcpy(reply->error.code, PROTO_E_UNKNOWN_OP);
                strcpy(reply->error.msg, "not here");
        }
        pthread_mutex_unlock(&f->lock);
}

static void serve_conn(struct fake *f, int c) {
        static char buf[PROTO_MSG_MAX];
        struct pollfd p = { .fd = c, .events = POLLIN };
        if (poll(&p, 1, 2000) <= 0)
                return;
        ssize_t n = recv(c, buf, sizeof buf, 0);
        char *reply = NULL;
        if (n > 0 && proto_server_handle(buf, (size_t)n, fake_handle, f, &reply) == 0)
                (void)send(c, reply, strlen(reply), MSG_NOSIGNAL);
        free(reply);
}

static void *fake_loop(void *arg) {
        struct fake *f = arg;
        for (;;) {
                struct pollfd p[2] = { { .fd = f->fd, .events = POLLIN }, { .fd = f->stop[0], .events = POLLIN } };
                if (poll(p, 2, -1) < 0 || p[1].revents)
                        return NULL;
                int c = accept4(f->fd, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0) {
                        serve_conn(f, c);
                        close(c);
                }
        }
}

static const char *sock_path(void) {
        return testlib_path("ipamd.sock");
}

static void fake_start(struct fake *f) {
        memset(f, 0, sizeof *f);
        f->route_table = 2;
        pthread_mutex_init(&f->lock, NULL);
        ck_assert_int_eq(pipe(f->stop), 0);
        ck_assert_int_eq(proto_listen(sock_path(), 64, &f->fd), 0);
        ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_loop, f), 0);
}

static void fake_stop(struct fake *f) {
        ck_assert_int_eq(write(f->stop[1], "x", 1), 1);
        pthread_join(f->thread, NULL);
        close(f->fd);
        unlink(sock_path());
}

/* --- namespaces and the plugin ----------------------------------------------------------- */

static int host_fd = -1;

static void enter_fresh_host(void) {
        ck_assert_msg(unshare(CLONE_NEWNET) == 0, "unshare(CLONE_NEWNET): %s (needs root)", strerror(errno));
        host_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(host_fd, 0);
}

static int make_pod(char path[static 64]) {
        ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
        int fd = open("/proc/thread-self/ns/net", O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(setns(host_fd, CLONE_NEWNET), 0);
        snprintf(path, 64, "/proc/%d/fd/%d", getpid(), fd);
        return fd;
}

struct run {
        int status;             /* exit status */
        char out[16384];        /* stdout */
        cJSON *json;            /* stdout parsed, or NULL when empty */
        long usec;
};

/* The parsed stdout of the last run; freed by the next run or at exit. */
static cJSON *last_json;

static void free_last_json(void) {
        cJSON_Delete(last_json);
        last_json = NULL;
}

static void run_done(struct run *r) {
        free_last_json();
        r->json = NULL;
}

/* The variable naming the binary to run: VPC_CNI (as installed), or
 * VPC_CNI_FAULTY (the test build that honours VPC_CNI_TEST_FAULT). */
static const char *plugin_var = "VPC_CNI";

static void child_exec(const char *stdin_text, int in[2], int out[2], char **envp) {
        (void)stdin_text;
        dup2(in[0], 0);
        dup2(out[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        if (!getenv("VPC_CNI_TEST_STDERR"))
                dup2(devnull, 2);
        close(in[1]);
        close(out[0]);
        const char *bin = getenv(plugin_var);
        execve(bin, (char *[]){ (char *)bin, NULL }, envp);
        _exit(127);
}

struct spawned {
        pid_t pid;
        int out;
        struct timespec t0;
};

/* Start vpc-cni with envp and stdin_text; collect with collect(). */
static void spawn(struct spawned *sp, const char *stdin_text, char **envp) {
        int in[2], out[2];
        ck_assert_int_eq(pipe(in), 0);
        ck_assert_int_eq(pipe(out), 0);
        clock_gettime(CLOCK_MONOTONIC, &sp->t0);
        sp->pid = fork();
        ck_assert_int_ge(sp->pid, 0);
        if (sp->pid == 0)
                child_exec(stdin_text, in, out, envp);
        close(in[0]);
        close(out[1]);
        ck_assert_int_eq(write(in[1], stdin_text, strlen(stdin_text)), (ssize_t)strlen(stdin_text));
        close(in[1]);
        sp->out = out[0];
}

static void collect(struct spawned *sp, struct run *r) {
        static int registered;
        size_t len = 0;
        ssize_t k;
        while ((k = read(sp->out, r->out + len, sizeof r->out - 1 - len)) > 0)
                len += (size_t)k;
        r->out[len] = '\0';
        close(sp->out);
        int st;
        ck_assert_int_eq(waitpid(sp->pid, &st, 0), sp->pid);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        r->usec = (t1.tv_sec - sp->t0.tv_sec) * 1000000L + (t1.tv_nsec - sp->t0.tv_nsec) / 1000;
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
        free_last_json();
        if (!registered++)
                atexit(free_last_json);
        r->json = last_json = len ? cJSON_Parse(r->out) : NULL;
        ck_assert_msg(!len || r->json, "stdout is not one JSON document: %s", r->out);
}

/* Run vpc-cni with "K=V" strings (NULL-terminated) and stdin_text. */
static void plugin(struct run *r, const char *stdin_text, ...) {
        char *envp[32];
        int n = 0;
        va_list ap;
        va_start(ap, stdin_text);
        for (const char *e; n < 30 && (e = va_arg(ap, const char *));)
                envp[n++] = (char *)e;
        va_end(ap);
        envp[n] = NULL;
        struct spawned sp;
        spawn(&sp, stdin_text, envp);
        collect(&sp, r);
}

static int code_of(const struct run *r) {
        const cJSON *c = cJSON_GetObjectItem(r->json, "code");
        return cJSON_IsNumber(c) ? c->valueint : 0;
}

static const char *msg_of(const struct run *r) {
        const cJSON *m = cJSON_GetObjectItem(r->json, "msg");
        return cJSON_IsString(m) ? m->valuestring : "";
}

/* A network config for the fake daemon; extra is spliced in (",..." or ""). */
static char *conf(const char *version, const char *extra) {
        static char buf[20000];
        snprintf(buf, sizeof buf, "{\"cniVersion\":\"%s\",\"name\":\"vpcnet\",\"type\":\"vpc-cni\",\"socket\":\"%s\"%s}",
                 version, sock_path(), extra);
        return buf;
}

/* The config with prevResult set to an earlier ADD's output. */
static char *conf_prev(const char *version, const char *prev) {
        static char extra[17000];
        snprintf(extra, sizeof extra, ",\"prevResult\":%s", prev);
        return conf(version, extra);
}

#define ENV(cmd, id, ns) "CNI_COMMAND=" cmd, id, ns, "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin"

static char env_ns[PROTO_NETNS_MAX + 16], env_id[PROTO_CONTAINER_ID_MAX + 32];

static void set_pod(const char *id, const char *ns) {
        snprintf(env_id, sizeof env_id, "CNI_CONTAINERID=%s", id);
        snprintf(env_ns, sizeof env_ns, "CNI_NETNS=%s", ns);
}

static int host_links(void) {
        return testlib_sh("test $(ip -o link show | wc -l) -eq 1") == 0 ? 1 : 0;
}

static bool clean_host(void) {
        return host_links() && testlib_sh("test $(ip -o rule show | wc -l) -eq 3") == 0 &&
               testlib_sh("test -z \"$(ip route show table main)\"") == 0;
}

/* --- the cases ---------------------------------------------------------------------------- */

START_TEST(test_full_cycle) {
        struct fake f;
        struct run r;
        char ns[64], prev[16384];
        enter_fresh_host();
        make_pod(ns);
        fake_start(&f);
        set_pod("cycle1", ns);

        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", "CNI_PATH=/opt/cni/bin", NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "STATUS: %d %s", r.status, r.out);

        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns),
               "CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=cycle1;"
               "K8S_POD_UID=u1;IgnoreUnknown=1", NULL);
        ck_assert_msg(r.status == 0, "ADD: %s", r.out);
        const cJSON *ip = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "ips"), 0);
        ck_assert_str_eq(cJSON_GetObjectItem(ip, "address")->valuestring, "10.0.1.100/32");
        const cJSON *pod_if = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "interfaces"), 1);
        ck_assert_str_eq(cJSON_GetObjectItem(pod_if, "sandbox")->valuestring, ns);
        ck_assert_int_eq(cJSON_GetObjectItem(pod_if, "mtu")->valueint, 9001);
        snprintf(prev, sizeof prev, "%s", r.out);
        run_done(&r);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip -4 addr show eth0 | grep -q 'inet 10.0.1.100/32'", ns), 0);
        /* no mtu in the config: the daemon's, on both ends, though the veth was made before its reply */
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip link show eth0 | grep -q ' mtu 9001 '", ns), 0);
        ck_assert_int_eq(testlib_sh("ip -o link show | grep -q '^[0-9]*: eni[0-9a-f]*@.* mtu 9001 '"), 0);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 'from 10.0.1.100 lookup 2'"), 0);

        plugin(&r, conf_prev("1.1.0", prev), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "CHECK: %s", r.out);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip route del default", ns), 0);
        plugin(&r, conf_prev("1.1.0", prev), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 1);
        ck_assert_int_eq(code_of(&r), 104);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "default route"));
        run_done(&r);

        plugin(&r, conf_prev("1.1.0", prev), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "DEL: %s", r.out);
        ck_assert(clean_host());
        ck_assert_uint_eq(f.n_del, 1);
        plugin(&r, conf_prev("1.1.0", prev), ENV("DEL", env_id, env_ns), NULL);      /* again */
        ck_assert_int_eq(r.status, 0);
        plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, "CNI_NETNS="), NULL);       /* CRI's second DEL */
        ck_assert_int_eq(r.status, 0);
        plugin(&r, conf("1.1.0", ""), ENV("CHECK", env_id, env_ns), NULL);          /* now unknown */
        ck_assert_int_eq(code_of(&r), 3);
        run_done(&r);
        fake_stop(&f);
}
END_TEST

START_TEST(test_result_per_version) {
        struct fake f;
        struct run r;
        char ns[64];
        const char *versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };
        enter_fresh_host();
        make_pod(ns);
        fake_start(&f);
        set_pod("versions1", ns);
        for (int i = 0; i < 5; i++) {
                plugin(&r, conf(versions[i], ""), ENV("ADD", env_id, env_ns), NULL);
                ck_assert_msg(r.status == 0, "ADD %s: %s", versions[i], r.out);
                ck_assert_str_eq(cJSON_GetObjectItem(r.json, "cniVersion")->valuestring, versions[i]);
                const cJSON *ip = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "ips"), 0);
                ck_assert_int_eq(cJSON_HasObjectItem(ip, "version"), i < 3);
                const cJSON *pi = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "interfaces"), 1);
                ck_assert_int_eq(cJSON_HasObjectItem(pi, "mtu"), i == 4);
                run_done(&r);
                plugin(&r, conf(versions[i], ""), ENV("DEL", env_id, env_ns), NULL);
                ck_assert_int_eq(r.status, 0);
        }
        plugin(&r, "{\"cniVersion\":\"0.4.0\"}", "CNI_COMMAND=VERSION", NULL);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(r.out, "{\"cniVersion\":\"0.4.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\","
                                "\"1.0.0\",\"1.1.0\"]}");
        run_done(&r);
        fake_stop(&f);
}
END_TEST

START_TEST(test_add_after_failed_add) {
        struct fake f;
        struct run r;
        char ns[64], fault[32];
        enter_fresh_host();
        make_pod(ns);
        fake_start(&f);
        set_pod("failing1", ns);
        snprintf(fault, sizeof fault, "VPC_CNI_TEST_FAULT=%d", DP_STEP_RULE_FROM);
        plugin_var = "VPC_CNI_FAULTY";
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), fault, NULL);
        plugin_var = "VPC_CNI";
        ck_assert_int_eq(r.status, 1);
        ck_assert_int_eq(code_of(&r), 100);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "add rule from pod"));
        run_done(&r);
        ck_assert_uint_eq(f.n_del_setup_failed, 1);             /* the address went back */
        ck_assert(clean_host());
        ck_assert_int_eq(testlib_sh("test $(nsenter --net=%s ip -o link show | wc -l) -eq 1", ns), 0);
        /* the runtime's DEL after a failed ADD, then a fresh ADD: by the
         * installed binary, which ignores VPC_CNI_TEST_FAULT */
        plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), fault, NULL);
        ck_assert_msg(r.status == 0, "ADD: %s", r.out);
        run_done(&r);
        /* ADD again for the same attachment: the interface exists, the
         * address stays with the working attachment */
        unsigned dels = f.n_del;
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(code_of(&r), 103);
        ck_assert_uint_eq(f.n_del, dels);
        plugin(&r, conf("1.1.0", ""), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "CHECK: %s", r.out);
        run_done(&r);
        fake_stop(&f);
}
END_TEST

START_TEST(test_del_unknown_and_without_daemon) {
        struct fake f;
        struct run r;
        char ns[64], prev[16384];
        enter_fresh_host();
        make_pod(ns);
        fake_start(&f);
        set_pod("never-seen", ns);
        plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, "CNI_NETNS="), NULL);
        ck_assert_int_eq(r.status, 0);
        set_pod("orphan1", ns);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        snprintf(prev, sizeof prev, "%s", r.out);
        run_done(&r);
        fake_stop(&f);
        /* the daemon is gone: DEL cleans from prevResult and succeeds */
        plugin(&r, conf_prev("1.1.0", prev), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "DEL: %s", r.out);
        ck_assert(clean_host());
}
END_TEST

START_TEST(test_add_without_daemon_is_try_again) {
        struct run r;
        char ns[64];
        enter_fresh_host();
        make_pod(ns);
        set_pod("nodaemon1", ns);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 1);
        ck_assert_int_eq(code_of(&r), 11);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), sock_path()));
        ck_assert_int_ge(r.usec, 1900 * 1000);              /* it waited for a restarting daemon */
        ck_assert_int_lt(r.usec, 5000 * 1000);
        run_done(&r);
        ck_assert(clean_host());
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_int_eq(code_of(&r), 50);
        run_done(&r);
}
END_TEST

START_TEST(test_daemon_refusals) {
        struct fake f;
        struct run r;
        char ns[64];
        enter_fresh_host();
        make_pod(ns);
        fake_start(&f);
        set_pod("refused1", "/proc/self/no-such-netns");
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(code_of(&r), 4);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "no-such-netns"));
        ck_assert_uint_eq(f.n_add, 0);                  /* no address was taken for it */
        set_pod("refused1", ns);
        f.refuse_add = true;
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(code_of(&r), 11);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "subnet exhausted"));
        run_done(&r);
        ck_assert(clean_host());
        fake_stop(&f);
}
END_TEST

/* STATUS: 0 while an ADD can be served (or waits for a growing pool), 51 when
 * the daemon answers but cannot serve one, 50 when it cannot be reached. */
START_TEST(test_status_codes) {
        struct fake f;
        struct run r;
        enter_fresh_host();
        fake_start(&f);
        f.available = 5;
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "STATUS: %d %s", r.status, r.out);
        f.available = 0;                                /* empty, still growing: an ADD waits */
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "STATUS: %d %s", r.status, r.out);
        strcpy(f.status_reason, "ENI limit reached: 3 ENIs hold 27 addresses");
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_int_eq(r.status, 1);
        ck_assert_int_eq(code_of(&r), 51);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "ENI limit reached"));
        f.available = 2;                                /* at the limit but addresses left */
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "STATUS: %d %s", r.status, r.out);
        f.not_ready = true;
        strcpy(f.status_reason, "EC2 DescribeNetworkInterfaces failed: timeout");
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_int_eq(code_of(&r), 51);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "DescribeNetworkInterfaces"));
        fake_stop(&f);
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=STATUS", NULL);
        ck_assert_int_eq(code_of(&r), 50);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), sock_path()));
        run_done(&r);
}
END_TEST

START_TEST(test_gc) {
        struct fake f;
        struct run r;
        char ns1[64], ns2[64];
        enter_fresh_host();
        make_pod(ns1);
        make_pod(ns2);
        fake_start(&f);
        set_pod("keep1", ns1);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        set_pod("gone1", ns2);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        run_done(&r);
        plugin(&r, conf("1.1.0", ",\"cni.dev/valid-attachments\":[{\"containerID\":\"keep1\",\"ifname\":\"eth0\"}]"),
               "CNI_COMMAND=GC", "CNI_PATH=/opt/cni/bin", NULL);
        ck_assert_msg(r.status == 0, "GC: %s", r.out);
        ck_assert_uint_eq(f.n_gc, 1);
        ck_assert_int_eq(testlib_sh("test $(ip -o link show | wc -l) -eq 2"), 0);          /* lo + keep1's veth */
        ck_assert_int_ne(testlib_sh("ip rule show | grep -q 10.0.1.101"), 0);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 10.0.1.100"), 0);
        set_pod("keep1", ns1);
        plugin(&r, conf("1.1.0", ""), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "CHECK: %s", r.out);
        run_done(&r);
        fake_stop(&f);
}
END_TEST

START_TEST(test_input_errors) {
        struct run r;
        plugin(&r, conf("1.1.0", ""), "CNI_COMMAND=ADD", NULL);
        ck_assert_int_eq(code_of(&r), 4);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "CNI_CONTAINERID"));
        run_done(&r);
        plugin(&r, "{nope", ENV("ADD", "CNI_CONTAINERID=x", "CNI_NETNS=/x"), NULL);
        ck_assert_int_eq(code_of(&r), 6);
        run_done(&r);
        plugin(&r, conf("1.1.0", ",\"mtu\":12"), ENV("ADD", "CNI_CONTAINERID=x", "CNI_NETNS=/x"), NULL);
        ck_assert_int_eq(code_of(&r), 7);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "mtu"));
        run_done(&r);
        plugin(&r, conf("0.2.0", ""), ENV("ADD", "CNI_CONTAINERID=x", "CNI_NETNS=/x"), NULL);
        ck_assert_int_eq(code_of(&r), 1);
        ck_assert_int_eq(r.status, 1);
        run_done(&r);
}
END_TEST

START_TEST(test_latency) {
        enum { N = 30 };
        struct fake f;
        struct run r;
        char ns[N][64], id[32];
        long add[N], del[N], del_empty[N];
        enter_fresh_host();
        fake_start(&f);
        for (int i = 0; i < N; i++)
                make_pod(ns[i]);
        for (int i = 0; i < N; i++) {
                snprintf(id, sizeof id, "lat%d", i);
                set_pod(id, ns[i]);
                plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
                ck_assert_int_eq(r.status, 0);
                add[i] = r.usec;
                run_done(&r);
        }
        for (int i = 0; i < N; i++) {
                snprintf(id, sizeof id, "lat%d", i);
                set_pod(id, ns[i]);
                plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, env_ns), NULL);
                ck_assert_int_eq(r.status, 0);
                del[i] = r.usec;
                plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, "CNI_NETNS="), NULL);
                del_empty[i] = r.usec;
        }
        ck_assert(clean_host());
        testlib_sort_longs(add, N);
        testlib_sort_longs(del, N);
        testlib_sort_longs(del_empty, N);
        fprintf(stderr, "# vpc-cni exec'd, %d pods: ADD median %ld us max %ld us; DEL median %ld us max %ld us; "
                "repeat DEL (empty netns) median %ld us\n", N, add[N / 2], add[N - 1], del[N / 2], del[N - 1],
                del_empty[N / 2]);
        fake_stop(&f);
}
END_TEST

/* DEL names the host veth to the daemon; when the daemon says it undid the
 * host side (rules, veth down and queued), the plugin leaves it all alone —
 * this fake only says so, so everything is still there to see. Without that
 * answer the plugin removes everything itself; with "unwired" but no veth
 * taken (as with "vethDelete": "sync", which names none) it deletes only the
 * veth, leaving the rules to the daemon. */
START_TEST(test_del_leaves_host_side_to_daemon) {
        struct fake f;
        struct run r;
        char ns[64], veth[32] = "";
        enter_fresh_host();
        make_pod(ns);
        fake_start(&f);
        set_pod("handoff1", ns);
        /* the daemon does not say it undid anything: the plugin cleans up */
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        run_done(&r);
        plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_ne(f.del_host_veth, "");
        ck_assert(clean_host());
        /* "sync": the veth is not handed over, the plugin deletes it */
        const char *sync_cfg = conf("1.1.0", ",\"vethDelete\":\"sync\"");
        plugin(&r, sync_cfg, ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        run_done(&r);
        f.unwire = true;
        plugin(&r, sync_cfg, ENV("DEL", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(f.del_host_veth, "");
        ck_assert(host_links());
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 'to 10.0.1.100 lookup main'"), 0);   /* the daemon's */
        ck_assert_int_eq(testlib_sh("ip rule del to 10.0.1.100 lookup main prio 512 && "
                                    "ip rule del from 10.0.1.100 lookup 2 prio 1536"), 0);
        ck_assert(clean_host());
        /* the daemon says it did it all: the plugin touches nothing */
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        snprintf(veth, sizeof veth, "%s",
                 cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "interfaces"), 0), "name")->valuestring);
        run_done(&r);
        plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(f.del_host_veth, veth);
        ck_assert_int_eq(testlib_sh("ip link show %s | grep -q 'state UP'", veth), 0);
        ck_assert_int_eq(testlib_sh("ip rule show | grep -q 'to 10.0.1.100 lookup main'"), 0);
        fake_stop(&f);
}
END_TEST

START_TEST(test_concurrent_burst) {
        enum { N = 24 };
        struct fake f;
        struct run r;
        struct spawned sp[N];
        char ns[N][64], envs[N][3][128];
        enter_fresh_host();
        fake_start(&f);
        for (int i = 0; i < N; i++)
                make_pod(ns[i]);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const char *cfg = conf("1.1.0", "");
        for (int i = 0; i < N; i++) {
                snprintf(envs[i][0], sizeof envs[i][0], "CNI_CONTAINERID=burst%d", i);
                snprintf(envs[i][1], sizeof envs[i][1], "CNI_NETNS=%s", ns[i]);
                char *envp[] = { "CNI_COMMAND=ADD", envs[i][0], envs[i][1], "CNI_IFNAME=eth0", NULL };
                spawn(&sp[i], cfg, envp);
        }
        int failures = 0;
        for (int i = 0; i < N; i++) {
                collect(&sp[i], &r);
                failures += r.status != 0;
                if (r.status)
                        fprintf(stderr, "# burst ADD %d failed: %s\n", i, r.out);
        }
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long wall = (t1.tv_sec - t0.tv_sec) * 1000L + (t1.tv_nsec - t0.tv_nsec) / 1000000L;
        fprintf(stderr, "# burst of %d concurrent ADDs: %d failures, %ld ms wall\n", N, failures, wall);
        ck_assert_int_eq(failures, 0);
        ck_assert_int_eq(testlib_sh("test $(ip -o link show | wc -l) -eq %d", N + 1), 0);
        ck_assert_int_eq(testlib_sh("test $(ip -o rule show | grep -c 'lookup 2') -eq %d", N), 0);
        for (int i = 0; i < N; i++) {
                char *envp[] = { "CNI_COMMAND=DEL", envs[i][0], envs[i][1], "CNI_IFNAME=eth0", NULL };
                spawn(&sp[i], cfg, envp);
        }
        for (int i = 0; i < N; i++) {
                collect(&sp[i], &r);
                ck_assert_int_eq(r.status, 0);
        }
        ck_assert(clean_host());
        fake_stop(&f);
}
END_TEST


/* --- IPv6 pods ------------------------------------------------------------------------- */

static bool clean_host6(void) {
        return clean_host() && testlib_sh("test $(ip -6 -o rule show | wc -l) -eq 2") == 0 &&
               testlib_sh("test -z \"$(ip -6 route show table main)\"") == 0 &&
               testlib_sh("test -z \"$(ip -4 addr show scope link)\"") == 0;
}

static void ipv6_node(void) {
        ck_assert_int_eq(testlib_sh("ip link set lo up && echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && "
                                    "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"), 0);
}

static const char *jstr_at(const cJSON *o, const char *key, int i, const char *field) {
        const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, key), i), field);
        return cJSON_IsString(v) ? v->valuestring : "";
}

static int jint_at(const cJSON *o, const char *key, int i, const char *field) {
        const cJSON *v = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, key), i), field);
        return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* ADD of an IPv6 pod with an egress address: the result lists the /128 on
 * eth0 and the egress address on v4if0, the kernel has both; CHECK passes
 * and names an egress drift; the daemon's DEL reply leaves the unwiring to
 * the plugin (unwired false), which leaves nothing. */
START_TEST(test_v6_full_cycle) {
        struct fake f;
        struct run r;
        char ns[64], prev[16384];
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        fake_start(&f);
        f.v6 = f.egress = true;
        set_pod("v6cycle", ns);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "ADD: %s", r.out);
        fprintf(stderr, "# IPv6 ADD with egress through vpc-cni (DAD included): %ld us\n", r.usec);
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "interfaces")), 4);
        ck_assert_str_eq(jstr_at(r.json, "interfaces", 1, "name"), "eth0");
        ck_assert_str_eq(jstr_at(r.json, "interfaces", 3, "name"), "v4if0");
        ck_assert_str_eq(jstr_at(r.json, "interfaces", 3, "sandbox"), ns);
        ck_assert_str_eq(jstr_at(r.json, "interfaces", 2, "sandbox"), "");
        ck_assert_str_eq(jstr_at(r.json, "ips", 0, "address"), "2600:1f14:abc:de00::64/128");
        ck_assert_str_eq(jstr_at(r.json, "ips", 0, "gateway"), "fe80::1");
        ck_assert_int_eq(jint_at(r.json, "ips", 0, "interface"), 1);
        ck_assert_str_eq(jstr_at(r.json, "ips", 1, "address"), "169.254.172.10/22");
        ck_assert_str_eq(jstr_at(r.json, "ips", 1, "gateway"), "169.254.172.1");
        ck_assert_int_eq(jint_at(r.json, "ips", 1, "interface"), 3);
        ck_assert_str_eq(jstr_at(r.json, "routes", 0, "dst"), "::/0");
        snprintf(prev, sizeof prev, "%s", r.out);
        run_done(&r);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip -6 addr show eth0 | grep -q 'inet6 2600:1f14:abc:de00::64/128'",
                                    ns), 0);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip -6 addr show eth0 | grep -q tentative", ns), 1);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip -4 addr show v4if0 | grep -q 'inet 169.254.172.10/22'", ns), 0);
        ck_assert_int_eq(testlib_sh("ip -6 rule show | grep -q 'to 2600:1f14:abc:de00::64 lookup main'"), 0);

        plugin(&r, conf_prev("1.1.0", prev), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "CHECK: %s", r.out);
        ck_assert_int_eq(testlib_sh("nsenter --net=%s ip route del default dev v4if0", ns), 0);
        plugin(&r, conf_prev("1.1.0", prev), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_int_eq(code_of(&r), 104);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "egress default route"));
        ck_assert_int_eq(testlib_sh("ip -6 route del 2600:1f14:abc:de00::64/128"), 0);
        plugin(&r, conf_prev("1.1.0", prev), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_int_eq(code_of(&r), 104);
        ck_assert_ptr_nonnull(strstr(msg_of(&r), "host route 2600:1f14:abc:de00::64/128"));
        run_done(&r);

        plugin(&r, conf_prev("1.1.0", prev), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0 && !r.out[0], "DEL: %s", r.out);
        ck_assert(clean_host6());
        ck_assert_int_eq(testlib_sh("test $(nsenter --net=%s ip -o link show | wc -l) -eq 1", ns), 0);
        plugin(&r, conf_prev("1.1.0", prev), ENV("DEL", env_id, env_ns), NULL);      /* again */
        ck_assert_int_eq(r.status, 0);
        fake_stop(&f);
}
END_TEST

/* The pod namespaces below skip DAD (tested above and in test-dataplane). */
static void pod_without_dad(const char *ns) {
        ck_assert_int_eq(testlib_sh("nsenter --net=%s sh -c 'echo 0 > /proc/sys/net/ipv6/conf/default/dad_transmits'",
                                    ns), 0);
}

/* DEL of an IPv6 pod when the daemon says it unwired the pod (the egress
 * veth is still the plugin's), refuses it, and when it is away:
 * prevResult's /128 (not the egress address) names the rule to remove. */
START_TEST(test_v6_del_variants) {
        struct fake f;
        struct run r;
        char ns[64], prev[16384];
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        pod_without_dad(ns);
        fake_start(&f);
        f.v6 = f.egress = true;
        set_pod("v6orphan", ns);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "ADD: %s", r.out);
        char veth[32], egress[32];
        snprintf(veth, sizeof veth, "%s", jstr_at(r.json, "interfaces", 0, "name"));
        snprintf(egress, sizeof egress, "%s", jstr_at(r.json, "interfaces", 2, "name"));
        run_done(&r);
        f.unwire = true;                /* this fake only says so: the veth and rule stay to be seen */
        plugin(&r, conf("1.1.0", ""), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        ck_assert_str_eq(f.del_host_veth, veth);
        ck_assert_int_ne(testlib_sh("ip link show %s >/dev/null 2>&1", egress), 0);
        ck_assert_int_eq(testlib_sh("ip link show %s | grep -q 'state UP'", veth), 0);
        ck_assert_int_eq(testlib_sh("ip link del %s && ip -6 rule del prio 512", veth), 0);
        ck_assert(clean_host6());
        f.unwire = false;
        plugin(&r, conf("0.4.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "ADD: %s", r.out);
        ck_assert_str_eq(jstr_at(r.json, "ips", 0, "version"), "6");
        ck_assert_str_eq(jstr_at(r.json, "ips", 1, "version"), "4");
        snprintf(prev, sizeof prev, "%s", r.out);
        run_done(&r);
        f.refuse_del = true;
        plugin(&r, conf_prev("0.4.0", prev), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "DEL: %s", r.out);
        ck_assert(clean_host6());
        f.refuse_del = false;
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "ADD: %s", r.out);
        snprintf(prev, sizeof prev, "%s", r.out);
        run_done(&r);
        fake_stop(&f);
        plugin(&r, conf_prev("1.1.0", prev), ENV("DEL", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "DEL: %s", r.out);
        ck_assert(clean_host6());
}
END_TEST

/* GC removes the rule of the released /128 and both veths of the pod that
 * is no longer listed, and keeps the listed pod whole. */
START_TEST(test_v6_gc) {
        struct fake f;
        struct run r;
        char ns1[64], ns2[64];
        enter_fresh_host();
        ipv6_node();
        make_pod(ns1);
        make_pod(ns2);
        pod_without_dad(ns1);
        pod_without_dad(ns2);
        fake_start(&f);
        f.v6 = f.egress = true;
        set_pod("keep6", ns1);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        set_pod("gone6", ns2);
        plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), NULL);
        ck_assert_int_eq(r.status, 0);
        run_done(&r);
        plugin(&r, conf("1.1.0", ",\"cni.dev/valid-attachments\":[{\"containerID\":\"keep6\",\"ifname\":\"eth0\"}]"),
               "CNI_COMMAND=GC", "CNI_PATH=/opt/cni/bin", NULL);
        ck_assert_msg(r.status == 0, "GC: %s", r.out);
        ck_assert_int_eq(testlib_sh("test $(ip -o link show | wc -l) -eq 3"), 0);          /* lo + keep6's two */
        ck_assert_int_eq(testlib_sh("test $(nsenter --net=%s ip -o link show | wc -l) -eq 1", ns2), 0);
        ck_assert_int_ne(testlib_sh("ip -6 rule show | grep -q 2600:1f14:abc:de00::65"), 0);
        ck_assert_int_eq(testlib_sh("ip -6 rule show | grep -q 2600:1f14:abc:de00::64"), 0);
        set_pod("keep6", ns1);
        plugin(&r, conf("1.1.0", ""), ENV("CHECK", env_id, env_ns), NULL);
        ck_assert_msg(r.status == 0, "CHECK: %s", r.out);
        run_done(&r);
        fake_stop(&f);
}
END_TEST

/* A failure at an IPv6 or egress step: code 100, the address released, nothing left. */
START_TEST(test_v6_add_failures) {
        struct fake f;
        struct run r;
        char ns[64], fault[32];
        const enum dp_step steps[] = { DP_STEP_HOST_SYSCTL6, DP_STEP_POD_SYSCTL6, DP_STEP_EGRESS_VETH,
                                       DP_STEP_EGRESS_HOST_ROUTE, DP_STEP_POD_DAD };
        enter_fresh_host();
        ipv6_node();
        make_pod(ns);
        fake_start(&f);
        f.v6 = f.egress = true;
        set_pod("v6fail", ns);
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
                snprintf(fault, sizeof fault, "VPC_CNI_TEST_FAULT=%d", steps[i]);
                plugin_var = "VPC_CNI_FAULTY";
                plugin(&r, conf("1.1.0", ""), ENV("ADD", env_id, env_ns), fault, NULL);
                plugin_var = "VPC_CNI";
                ck_assert_int_eq(r.status, 1);
                ck_assert_int_eq(code_of(&r), 100);
                ck_assert_msg(strstr(msg_of(&r), dp_step_name(steps[i])), "%s", msg_of(&r));
                run_done(&r);
                ck_assert_uint_eq(f.n_del_setup_failed, i + 1);         /* the address went back */
                ck_assert(clean_host6());
                ck_assert_int_eq(testlib_sh("test $(nsenter --net=%s ip -o link show | wc -l) -eq 1", ns), 0);
        }
        fake_stop(&f);
}
END_TEST

int main(void) {
        Suite *s = suite_create("vpc-cni");
        TCase *tc = tcase_create("e2e");
        tcase_set_timeout(tc, 90);
        tcase_add_test(tc, test_full_cycle);
        tcase_add_test(tc, test_result_per_version);
        tcase_add_test(tc, test_add_after_failed_add);
        tcase_add_test(tc, test_del_unknown_and_without_daemon);
        tcase_add_test(tc, test_add_without_daemon_is_try_again);
        tcase_add_test(tc, test_daemon_refusals);
        tcase_add_test(tc, test_status_codes);
        tcase_add_test(tc, test_gc);
        tcase_add_test(tc, test_input_errors);
        tcase_add_test(tc, test_latency);
        tcase_add_test(tc, test_del_leaves_host_side_to_daemon);
        tcase_add_test(tc, test_concurrent_burst);
        tcase_add_test(tc, test_v6_full_cycle);
        tcase_add_test(tc, test_v6_del_variants);
        tcase_add_test(tc, test_v6_gc);
        tcase_add_test(tc, test_v6_add_failures);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

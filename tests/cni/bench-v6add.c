/*
 * bench-v6add: what an IPv6 pod's ADD costs, and when the pod is usable.
 *
 * In a private network namespace (the "node": unshare(CLONE_NEWNET), IPv6
 * forwarding on as vpc-ipamd sets it; nothing reaches the machine's and
 * nothing outlives the process) it wires one peer pod and waits until the
 * peer's addresses are settled, then ITER times: a fresh pod namespace,
 * dp_add() of an IPv6 pod (with an IPv4 egress address when asked), and from
 * the moment dp_add() was called, ICMPv6 echo requests every 2 ms until the
 * first reply on two paths:
 *   node -> pod   from the node namespace to the pod's /128 (what kubelet's
 *                 probes take: the node must resolve the pod on the veth);
 *   pod -> peer   from the pod namespace to the peer pod through the node.
 * It prints the median, min and max of each, and for how many pods an
 * address of eth0 (global or link-local) was still tentative and not
 * optimistic (not yet usable) when dp_add() returned.
 * A figure, not a bound: no time is asserted. It fails only when an ADD
 * fails or a path gets no reply within 10 s.
 *
 * usage: bench-v6add [ITER [egress]]   (root; scripts/bench-v6add)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "dataplane.h"

#define PEER_IP "2600:1f14:abc:de00::1"
#define READY_LIMIT_MS 10000.0

static int node_fd = -1;

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void put(const char *path, const char *value) {
        FILE *f = fopen(path, "w");
        if (!f || fputs(value, f) < 0 || fclose(f) != 0) {
                fprintf(stderr, "bench-v6add: cannot write %s\n", path);
                exit(1);
        }
}

/* A new namespace held by a descriptor, named /proc/<pid>/fd/<n>; the
 * process stays in the node's. */
static int new_ns(char path[static 64]) {
        if (unshare(CLONE_NEWNET) < 0)
                return -errno;
        int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(node_fd, CLONE_NEWNET) < 0)
                exit(2);
        snprintf(path, 64, "/proc/%d/fd/%d", getpid(), fd);
        return fd;
}

/* A raw ICMPv6 socket in nsfd's namespace (-1: the node's). */
static int icmp_socket(int nsfd) {
        if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
                return -1;
        int s = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
        if (nsfd >= 0 && setns(node_fd, CLONE_NEWNET) < 0)
                exit(2);
        return s;
}

/* One echo path: its socket, destination and the time of its first reply. */
struct path {
        int sock;
        struct sockaddr_in6 to;
        double ready;           /* ms after the start; < 0 while none */
};

static void ping(struct path *p, uint16_t id, uint16_t seq) {
        struct icmp6_hdr h = { .icmp6_type = ICMP6_ECHO_REQUEST };
        h.icmp6_id = htons(id);
        h.icmp6_seq = htons(seq);
        (void)sendto(p->sock, &h, sizeof h, 0, (struct sockaddr *)&p->to, sizeof p->to);
}

static void drain(struct path *p, uint16_t id, double t) {
        struct icmp6_hdr h;
        while (recv(p->sock, &h, sizeof h, 0) >= (ssize_t)sizeof h)
                if (h.icmp6_type == ICMP6_ECHO_REPLY && ntohs(h.icmp6_id) == id && p->ready < 0)
                        p->ready = t;
}

/* Ping both paths every 2 ms from t0 until each has had a reply. */
static int wait_ready(struct path *paths, size_t n, uint16_t id, double t0) {
        for (uint16_t seq = 0;; seq++) {
                size_t done = 0;
                for (size_t i = 0; i < n; i++) {
                        drain(&paths[i], id, now_ms() - t0);
                        if (paths[i].ready >= 0)
                                done++;
                        else
                                ping(&paths[i], id, seq);
                }
                if (done == n)
                        return 0;
                if (now_ms() - t0 > READY_LIMIT_MS)
                        return -ETIMEDOUT;
                poll(NULL, 0, 2);
        }
}

/* Addresses of eth0 in nsfd's namespace flagged tentative (optimistic_ok:
 * and not optimistic, i.e. not usable yet), from its /proc/net/if_inet6
 * (field 5 is the flags). */
static int tentative(int nsfd, bool optimistic_ok) {
        char line[256], dev[32];
        unsigned flags, n = 0;
        if (setns(nsfd, CLONE_NEWNET) < 0)
                return -1;
        FILE *f = fopen("/proc/thread-self/net/if_inet6", "r");
        if (setns(node_fd, CLONE_NEWNET) < 0)
                exit(2);
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "%*s %*x %*x %*x %x %31s", &flags, dev) == 2 && strcmp(dev, "eth0") == 0 &&
                    (flags & 0x40) && (!optimistic_ok || !(flags & 0x04)))   /* TENTATIVE, OPTIMISTIC */
                        n++;
        fclose(f);
        return (int)n;
}

static struct dp_pod pod6(const char *id, const char *ip, const char *egress) {
        return (struct dp_pod){ .container_id = id, .ifname = "eth0", .veth_prefix = "eni", .ip = ip,
                                .egress_ip = egress, .route_table = 254, .mtu = 9001 };
}

static int add(const char *ns, const struct dp_pod *p) {
        struct dp_links l;
        struct errmsg err = { 0 };
        int r = dp_add(ns, p, &l, &err);
        if (r < 0)
                fprintf(stderr, "bench-v6add: dp_add %s: %s\n", p->ip, err.text);
        return r;
}

/* The peer pod, wired and settled (no tentative address) before any measurement. */
static int add_peer(void) {
        char ns[64];
        int fd = new_ns(ns);
        struct dp_pod p = pod6("peer", PEER_IP, NULL);
        if (fd < 0 || add(ns, &p) < 0)
                return -1;
        for (double t0 = now_ms(); tentative(fd, false) != 0;) {
                if (now_ms() - t0 > READY_LIMIT_MS)
                        return -1;
                poll(NULL, 0, 10);
        }
        return 0;
}

struct sample {
        double add, node_pod, pod_peer;     /* ms after dp_add() was called */
        int tentative;
};

static int one(int i, bool egress, struct sample *s) {
        char ns[64], id[32], ip[64];
        snprintf(id, sizeof id, "bench%d", i);
        snprintf(ip, sizeof ip, "2600:1f14:abc:de00::%x", 0x100 + i);
        int fd = new_ns(ns);
        if (fd < 0)
                return -1;
        struct dp_pod p = pod6(id, ip, egress ? "169.254.172.9" : NULL);
        struct path paths[2] = { { .sock = icmp_socket(-1), .ready = -1 }, { .sock = icmp_socket(fd), .ready = -1 } };
        paths[0].to = (struct sockaddr_in6){ .sin6_family = AF_INET6 };
        paths[1].to = paths[0].to;
        inet_pton(AF_INET6, ip, &paths[0].to.sin6_addr);
        inet_pton(AF_INET6, PEER_IP, &paths[1].to.sin6_addr);
        double t0 = now_ms();
        int r = add(ns, &p);
        s->add = now_ms() - t0;
        s->tentative = tentative(fd, true);
        if (r >= 0 && (r = wait_ready(paths, 2, (uint16_t)(0x4000 + i), t0)) < 0)
                fprintf(stderr, "bench-v6add: pod %s: no echo reply within %.0f ms\n", ip, READY_LIMIT_MS);
        s->node_pod = paths[0].ready;
        s->pod_peer = paths[1].ready;
        struct errmsg err = { 0 };
        (void)dp_del(&p, NULL, &err);
        close(paths[0].sock);
        close(paths[1].sock);
        close(fd);
        return r;
}

static void report(const char *what, double *v, int n) {
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        printf("%-32s median %8.1f  min %8.1f  max %8.1f ms\n", what, v[n / 2], v[0], v[n - 1]);
}

int main(int argc, char **argv) {
        int iter = argc > 1 ? atoi(argv[1]) : 20;
        bool egress = argc > 2 && strcmp(argv[2], "egress") == 0;
        if (iter <= 0 || iter > 1000 || unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "usage: bench-v6add [ITER [egress]]   (root)\n");
                return 2;
        }
        node_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        put("/proc/sys/net/ipv6/conf/all/disable_ipv6", "0");
        put("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        if (node_fd < 0 || system("ip link set lo up") != 0 || add_peer() < 0)
                return 1;
        double *a = calloc((size_t)iter, sizeof *a), *np = calloc((size_t)iter, sizeof *np),
               *pp = calloc((size_t)iter, sizeof *pp), *late = calloc((size_t)iter, sizeof *late);
        int tent = 0;
        for (int i = 0; i < iter; i++) {
                struct sample s;
                if (one(i, egress, &s) < 0)
                        return 1;
                a[i] = s.add, np[i] = s.node_pod, pp[i] = s.pod_peer;
                late[i] = (s.node_pod > s.pod_peer ? s.node_pod : s.pod_peer) - s.add;
                tent += s.tentative > 0;
        }
        printf("IPv6 ADD%s, %d pods:\n", egress ? " with IPv4 egress" : "", iter);
        report("dp_add", a, iter);
        report("start -> node reaches pod", np, iter);
        report("start -> pod reaches peer", pp, iter);
        report("ADD returned -> both paths work", late, iter);
        printf("%-32s %d of %d\n", "ADD returned with eth0 unusable", tent, iter);
        free(a), free(np), free(pp), free(late);
        return 0;
}

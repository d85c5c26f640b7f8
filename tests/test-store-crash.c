/*
 * test-store-crash: SIGKILL at random moments loses nothing committed.
 *
 * A child process assigns and releases addresses in a loop and reports each
 * operation on a pipe twice: "B" before it starts and "E" after the store
 * returned (committed). The parent kills it with SIGKILL while its 1st to
 * 5th operation is in flight or just done (up to 2 ms after its "B"), many
 * times, and after each kill reopens the store and checks: it
 * opens, it passes the invariant check, every operation reported as ended is
 * there, and the one operation in flight is either wholly done or not at all.
 * The IPv6 run does the same with /128s from one /80 and their IPv4 egress
 * addresses (the model holds "ip,egress").
 * The same for a child whose handle serves as vpc-ipamd's server's does
 * (store_set_serving: commits not fsynced), which a SIGKILL must not undo.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "testlib.h"

#define N_CIDS 96
#define N_ADDRS 64
#define KILLS 120
#define P80 "2600:1f14:abc:de00:1234::/80"
#define MODEL_IP_MAX 64         /* "ipv6,egress" */

static bool v6;                 /* this run: IPv6 mode (store_assign6 with egress) */

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup_pool(const char *path) {
        store *s = NULL;
        struct errmsg e;
        ck_assert_msg(store_open(path, &s, &e) == 0, "%s", e.text);
        struct store_eni eni = { .id = "eni-p", .mac = "02:00:00:00:00:01", .subnet_id = "subnet-1",
                                 .subnet_cidr = "10.1.0.0/16", .primary_ip = "10.1.0.5", .route_table = 254,
                                 .is_primary = true, .state = STORE_ENI_ATTACHED, .created_ms = now_ms() };
        ck_assert_int_eq(store_eni_put(s, &eni), 0);
        for (int i = 0; i < N_ADDRS; i++) {
                char cidr[STORE_CIDR_MAX];
                snprintf(cidr, sizeof cidr, "10.1.1.%d/32", i + 10);
                ck_assert_int_eq(store_block_add(s, "eni-p", cidr, now_ms()), 0);
        }
        if (v6)
                ck_assert_int_eq(store_prefix6_add(s, "eni-p", P80, now_ms()), 0);
        store_close(s);
}

static void report(int fd, char phase, char op, int cid, const char *ip) {
        char line[128];
        int n = snprintf(line, sizeof line, "%c %c %d %s\n", phase, op, cid, ip ? ip : "-");
        if (write(fd, line, (size_t)n) != n)
                _exit(3);
}

static bool child_serving;       /* the child's handle is a serving one (store_set_serving) */

/* The child: random assign/release until killed. */
static void churn(const char *path, int fd, unsigned seed) {
        store *s = NULL;
        if (store_open(path, &s, NULL) < 0)
                _exit(2);
        if (child_serving && store_set_serving(s) < 0)
                _exit(5);
        report(fd, 'S', '-', 0, NULL);  /* open (reports before any operation begins) */
        srand(seed);
        for (;;) {
                int cid = rand() % N_CIDS;
                char id[16];
                snprintf(id, sizeof id, "c%d", cid);
                struct store_lease l;
                if (store_lookup(s, id, "eth0", &l) == 0) {
                        report(fd, 'B', 'R', cid, NULL);
                        if (store_release(s, id, "eth0", now_ms(), 0, NULL) != 1)
                                _exit(4);
                        report(fd, 'E', 'R', cid, NULL);
                } else {
                        struct store_attachment a = { .container_id = id, .ifname = "eth0", .pod_name = id };
                        report(fd, 'B', 'A', cid, NULL);
                        int r = v6 ? store_assign6(s, &a, true, now_ms(), &l, NULL)
                                   : store_assign(s, &a, now_ms(), &l, NULL);
                        if (r == -EAGAIN) {
                                report(fd, 'E', 'N', cid, NULL); /* pool full: nothing changed */
                                continue;
                        }
                        if (r < 0)
                                _exit(5);
                        char ip[MODEL_IP_MAX];
                        snprintf(ip, sizeof ip, v6 ? "%s,%s" : "%s", l.ip, l.egress_ip);
                        report(fd, 'E', 'A', cid, ip);
                }
        }
}

/* What the parent believes each cid holds ("" = nothing). */
struct model {
        char ip[N_CIDS][MODEL_IP_MAX];
        int in_flight;          /* cid of a B without its E, or -1 */
        char in_flight_op;
};

/* Apply one report line to the model; 'S' (the child opened the store) changes nothing. */
static void apply_line(struct model *m, const char *line, long *ops) {
        char phase, op, ip[MODEL_IP_MAX];
        int cid;
        ck_assert_msg(sscanf(line, " %c %c %d %63s", &phase, &op, &cid, ip) == 4, "bad report '%s'", line);
        if (phase == 'S')
                return;
        ck_assert(cid >= 0 && cid < N_CIDS);
        if (phase == 'B') {
                m->in_flight = cid;
                m->in_flight_op = op;
                return;
        }
        m->in_flight = -1;
        (*ops)++;
        if (op == 'A')
                snprintf(m->ip[cid], sizeof m->ip[cid], "%s", ip);
        else if (op == 'R')
                m->ip[cid][0] = '\0';
}

/* Apply reports until the child has begun its n-th operation (n > 0) or until EOF (n == 0). */
static void apply_until(struct model *m, FILE *f, int n, long *ops) {
        char line[128];
        int begun = 0;
        while ((n == 0 || begun < n) && fgets(line, sizeof line, f)) {
                apply_line(m, line, ops);
                begun += line[0] == 'B';
        }
        ck_assert_msg(n == 0 || begun == n, "the child stopped reporting after %d operations", begun);
}

/* Compare the store with the model; adopt the store's answer for the one op in flight. */
static void verify(const char *path, struct model *m) {
        store *s = NULL;
        struct errmsg e;
        ck_assert_msg(store_open(path, &s, &e) == 0, "reopen after SIGKILL: %s", e.text);
        errmsg_clear(&e);
        ck_assert_msg(store_check(s, now_ms(), &e) == 0, "invariants after SIGKILL: %s", e.text);
        for (int cid = 0; cid < N_CIDS; cid++) {
                char id[16];
                snprintf(id, sizeof id, "c%d", cid);
                struct store_lease l;
                int r = store_lookup(s, id, "eth0", &l);
                ck_assert(r == 0 || r == -ENOENT);
                char actual[MODEL_IP_MAX] = "";
                if (r == 0)
                        snprintf(actual, sizeof actual, v6 ? "%s,%s" : "%s", l.ip, l.egress_ip);
                if (cid == m->in_flight) {
                        snprintf(m->ip[cid], sizeof m->ip[cid], "%s", actual);
                        continue;
                }
                ck_assert_msg(strcmp(actual, m->ip[cid]) == 0, "c%d: store has '%s', child committed '%s'",
                              cid, actual, m->ip[cid]);
        }
        store_close(s);
}

static void kills(const char *path, int n_kills) {
        setup_pool(path);
        static struct model m;
        memset(&m, 0, sizeof m);
        long ops = 0;
        unsigned seed = (unsigned)time(NULL);
        printf("# seed %u\n", seed);
        srand(seed);
        for (int k = 0; k < n_kills; k++) {
                int fds[2];
                ck_assert_int_eq(pipe(fds), 0);
                pid_t pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        close(fds[0]);
                        churn(path, fds[1], seed + (unsigned)k);
                }
                close(fds[1]);
                FILE *f = fdopen(fds[0], "r");
                ck_assert_ptr_nonnull(f);
                m.in_flight = -1;
                /* The kill lands while the child's 1st-5th operation is in flight or just
                 * after it committed: the moment is drawn in operations, which a loaded
                 * or sanitized run cannot stretch into "before any work". */
                apply_until(&m, f, 1 + rand() % 5, &ops);
                struct timespec d = { 0, (rand() % 2000) * 1000L };
                nanosleep(&d, NULL);
                kill(pid, SIGKILL);
                int status;
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert_msg(WIFSIGNALED(status), "child exited on its own with %d", WEXITSTATUS(status));
                apply_until(&m, f, 0, &ops);
                fclose(f);
                verify(path, &m);
        }
        printf("# %d kills, %ld committed operations verified\n", n_kills, ops);
        /* Each kill came after at least one operation began; most ended before it. */
        ck_assert_int_ge(ops, n_kills / 2);
}

START_TEST(test_sigkill_loses_nothing_committed) {
        v6 = _i == 1;
        kills(testlib_path(v6 ? "crash6.db" : "crash.db"), KILLS);
}
END_TEST

START_TEST(test_sigkill_serving_handle_loses_nothing_committed) {
        child_serving = true;
        v6 = false;
        kills(testlib_path("crash-serving.db"), KILLS / 2);
}
END_TEST

int main(void) {
        Suite *s = suite_create("store-crash");
        TCase *tc = tcase_create("sigkill");
        tcase_set_timeout(tc, 240);
        tcase_add_loop_test(tc, test_sigkill_loses_nothing_committed, 0, 2);   /* IPv4, IPv6 */
        tcase_add_test(tc, test_sigkill_serving_handle_loses_nothing_committed);
        suite_add_tcase(s, tc);
        return testlib_run(s);
}

/*
 * motosrv: moto as a child process (see motosrv.h). The paths of python3,
 * moto_server and the helper scripts come from the environment the meson
 * test (or scripts/bench-cloud) sets: MOTO_PYTHON, MOTO_SERVER, CLOUD_HELPERS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "motosrv.h"

static pid_t moto_pid;          /* for the exit and signal handlers only */
static pid_t owner_pid;

static void kill_moto(void) {
        if (moto_pid > 0 && getpid() == owner_pid) {
                kill(moto_pid, SIGTERM);
                waitpid(moto_pid, NULL, 0);
                moto_pid = 0;
        }
}

static void on_signal(int sig) {
        if (moto_pid > 0 && getpid() == owner_pid)
                kill(moto_pid, SIGKILL);
        signal(sig, SIG_DFL);
        raise(sig);
}

static int free_port(void) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        close(fd);
        return ntohs(sa.sin_port);
}

static bool port_open(int port) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
                close(fd);
        return ok;
}

static const char *env_or(const char *name, const char *dflt) {
        const char *v = getenv(name);
        return v && *v ? v : dflt;
}

static bool moto_importable(const char *python) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' -c 'import moto, boto3' >/dev/null 2>&1", python);
        return system(cmd) == 0;
}

static int spawn(struct motosrv *m, enum motosrv_mode mode) {
        char port[16], script[1024];
        snprintf(port, sizeof port, "%d", m->port);
        snprintf(script, sizeof script, "%s/moto_run.py", env_or("CLOUD_HELPERS", "tests/cloud"));
        const char *python = env_or("MOTO_PYTHON", "python3"), *server = env_or("MOTO_SERVER", "moto_server");
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                int fd = open("/dev/null", O_WRONLY);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                if (mode == MOTOSRV_AUTH)
                        setenv("INITIAL_NO_AUTH_ACTION_COUNT", "3", 1);
                if (mode == MOTOSRV_KEEPALIVE)
                        execlp(python, python, script, port, (char *)NULL);
                else
                        execlp(server, server, "-H", "127.0.0.1", "-p", port, (char *)NULL);
                _exit(127);
        }
        m->pid = pid;
        moto_pid = pid;
        owner_pid = getpid();
        return 0;
}

static int wait_ready(struct motosrv *m) {
        for (int i = 0; i < 300; i++) {         /* 30 s at most */
                if (port_open(m->port))
                        return 0;
                if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
                        m->pid = moto_pid = 0;
                        return -ECHILD;
                }
                nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
        }
        return -ETIMEDOUT;
}

static void copy_json(cJSON *o, const char *key, char *dst, size_t size) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        snprintf(dst, size, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static int seed(struct motosrv *m, enum motosrv_mode mode) {
        char cmd[2048], out[4096];
        snprintf(cmd, sizeof cmd, "'%s' '%s/moto_fixture.py' '%s'%s", env_or("MOTO_PYTHON", "python3"),
                 env_or("CLOUD_HELPERS", "tests/cloud"), m->url, mode == MOTOSRV_AUTH ? " --auth" : "");
        FILE *p = popen(cmd, "r");
        if (!p)
                return -errno;
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        if (pclose(p) != 0)
                return -EIO;
        cJSON *o = cJSON_Parse(out);
        if (!o)
                return -EBADMSG;
        copy_json(o, "vpc", m->vpc, sizeof m->vpc);
        copy_json(o, "subnet", m->subnet, sizeof m->subnet);
        copy_json(o, "sg", m->sg, sizeof m->sg);
        copy_json(o, "instance", m->instance, sizeof m->instance);
        copy_json(o, "ak", m->ak, sizeof m->ak);
        copy_json(o, "sk", m->sk, sizeof m->sk);
        cJSON_Delete(o);
        return m->instance[0] ? 0 : -EBADMSG;
}

int motosrv_start(struct motosrv *m, enum motosrv_mode mode, char *why, unsigned why_size) {
        memset(m, 0, sizeof *m);
        const char *python = env_or("MOTO_PYTHON", "python3");
        if (!moto_importable(python)) {
                snprintf(why, why_size, "moto/boto3 not importable by %s", python);
                return -ENOENT;
        }
        atexit(kill_moto);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        if ((m->port = free_port()) < 0)
                return -EADDRNOTAVAIL;
        snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
        int r = spawn(m, mode);
        if (r == 0)
                r = wait_ready(m);
        if (r == 0)
                r = seed(m, mode);
        if (r < 0) {
                snprintf(why, why_size, "moto did not start or seed: %s", strerror(-r));
                motosrv_stop(m);
        }
        return r;
}

void motosrv_stop(struct motosrv *m) {
        if (m->pid > 0) {
                kill(m->pid, SIGTERM);
                waitpid(m->pid, NULL, 0);
        }
        m->pid = 0;
        moto_pid = 0;
}

int motosrv_ec2_client(const struct motosrv *m, ec2_client **ret, struct errmsg *err) {
        setenv("AWS_ACCESS_KEY_ID", "AKIDMOTO", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "moto-secret", 1);
        setenv("AWS_SESSION_TOKEN", "moto-session", 1);
        setenv("AWS_REGION", "us-west-2", 1);
        setenv("AWS_ENDPOINT_URL_EC2", m->url, 1);
        return ec2_client_new(NULL, ret, err);
}

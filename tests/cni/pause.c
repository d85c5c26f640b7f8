/*
 * pause: the one process of the containerd tests' sandbox image
 * (tests/cni/ctrd.py builds it with gcc -static into an OCI layout, since no
 * registry can be reached). It sleeps until SIGTERM or SIGINT and exits 0,
 * so `ctr tasks kill` and CRI's StopPodSandbox end it at once.
 */
#include <signal.h>
#include <unistd.h>

static void done(int sig) {
        (void)sig;
        _exit(0);
}

int main(void) {
        signal(SIGTERM, done);
        signal(SIGINT, done);
        for (;;)
                pause();
}

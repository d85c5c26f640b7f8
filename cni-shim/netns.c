/*
 * netns: the pod-namespace socket dance (see netns.h for why it is safe).
 *
 * Identity of "home" is checked by the device and inode of
 * /proc/thread-self/ns/net before and after, not by trusting setns()'s return
 * alone. The socket is created while in the pod namespace and nothing else
 * happens there: no allocation that could fail half-way, no callbacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/nsfs.h>

#include <netlink/socket.h>

#include "netns.h"
#include "nlerr.h"

#define SELF_NS "/proc/thread-self/ns/net"

int netns_open(const char *path, int *ret_fd) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int type = ioctl(fd, NS_GET_NSTYPE);
        if (type != CLONE_NEWNET) {
                close(fd);
                return -EINVAL;
        }
        *ret_fd = fd;
        return 0;
}

int netns_nl_socket_here(struct nl_sock **ret) {
        struct nl_sock *sk = nl_socket_alloc();
        if (!sk)
                return -ENOMEM;
        /* One recvmsg per reply instead of a MSG_PEEK first: the kernel never
         * sends a netlink message larger than 32 KiB to a reader whose
         * buffer is that size. */
        nl_socket_disable_msg_peek(sk);
        int r = nl_socket_set_msg_buf_size(sk, 32768);
        if (r >= 0)
                r = nl_connect(sk, NETLINK_ROUTE);
        if (r < 0) {
                nl_socket_free(sk);
                return nlerr_errno(r);
        }
        *ret = sk;
        return 0;
}

/* Return to home and prove it; there is no safe way to continue otherwise. */
static void go_home(int home, const struct stat *before) {
        struct stat now;
        if (setns(home, CLONE_NEWNET) < 0 || stat(SELF_NS, &now) < 0 || now.st_ino != before->st_ino ||
            now.st_dev != before->st_dev)
                abort();
}

int netns_nl_socket(int nsfd, struct nl_sock **ret) {
        struct stat before;
        int home = open(SELF_NS, O_RDONLY | O_CLOEXEC);
        if (home < 0)
                return -errno;
        if (fstat(home, &before) < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
                int r = -errno;
                close(home);
                return r;
        }
        struct nl_sock *sk = NULL;
        int r = netns_nl_socket_here(&sk);
        go_home(home, &before);
        close(home);
        if (r < 0)
                return r;
        *ret = sk;
        return 0;
}

/* open() of a /proc/sys file in nsfd's namespace; -errno on failure. */
static int open_in(int nsfd, const char *file, int flags) {
        struct stat before;
        if (nsfd < 0) {
                int fd = open(file, flags | O_CLOEXEC);
                return fd < 0 ? -errno : fd;
        }
        int home = open(SELF_NS, O_RDONLY | O_CLOEXEC);
        if (home < 0)
                return -errno;
        if (fstat(home, &before) < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
                int r = -errno;
                close(home);
                return r;
        }
        int fd = open(file, flags | O_CLOEXEC);
        int r = fd < 0 ? -errno : fd;
        go_home(home, &before);
        close(home);
        return r;
}

int netns_sysctl_write(int nsfd, const char *path, const char *value) {
        char file[256];
        if (snprintf(file, sizeof file, "/proc/sys/%s", path) >= (int)sizeof file)
                return -ENAMETOOLONG;
        int fd = open_in(nsfd, file, O_WRONLY);
        if (fd < 0)
                return fd;
        size_t n = strlen(value);
        ssize_t w = write(fd, value, n);
        int r = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
        close(fd);
        return r;
}

int netns_sysctl_read(int nsfd, const char *path, char *buf, size_t size) {
        char file[256];
        if (size == 0 || snprintf(file, sizeof file, "/proc/sys/%s", path) >= (int)sizeof file)
                return -ENAMETOOLONG;
        int fd = open_in(nsfd, file, O_RDONLY);
        if (fd < 0)
                return fd;
        ssize_t n = read(fd, buf, size - 1);
        int r = n < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

int netns_sysctl_read_here(const char *path, char *buf, size_t size) {
        return netns_sysctl_read(-1, path, buf, size);
}

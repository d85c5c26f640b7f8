/*
 * netns: reaching into a pod's network namespace without living in it.
 *
 * The plugin never runs code "inside" the pod namespace. It opens the
 * namespace file, and netns_nl_socket() switches the calling thread into it
 * only for the two calls that create a netlink socket, then switches back and
 * verifies that it is home again. A netlink socket stays bound to the
 * namespace it was created in, so every pod-side change goes through that
 * socket while the thread itself stays in the host namespace. A /proc/sys
 * file is bound the same way when it is opened, so netns_sysctl_write()
 * opens it there and writes it from home. If the switch
 * back were ever to fail (it cannot with a valid descriptor of our own
 * namespace) the process aborts rather than carry on in the wrong namespace.
 */
#pragma once

#include <stddef.h>

#include <netlink/netlink.h>

/* Open a namespace file (e.g. /var/run/netns/x, /proc/PID/ns/net) read-only,
 * close-on-exec. -ENOENT when it does not exist, -EINVAL when it is not a
 * network namespace. */
int netns_open(const char *path, int *ret_fd);

/* A connected NETLINK_ROUTE libnl socket whose namespace is nsfd's. */
int netns_nl_socket(int nsfd, struct nl_sock **ret);

/* A connected NETLINK_ROUTE socket in the calling thread's namespace. */
int netns_nl_socket_here(struct nl_sock **ret);

/* Write value to /proc/sys/<path> of nsfd's namespace (nsfd < 0: the
 * calling thread's). The file is opened in that namespace, which is what
 * binds it there, and written from home. */
int netns_sysctl_write(int nsfd, const char *path, const char *value);

/* Read the first line of /proc/sys/<path> of nsfd's namespace (nsfd < 0:
 * the calling thread's) into buf (newline cut). */
int netns_sysctl_read(int nsfd, const char *path, char *buf, size_t size);
/* The same here. */
int netns_sysctl_read_here(const char *path, char *buf, size_t size);

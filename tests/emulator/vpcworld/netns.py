"""Network-namespace plumbing: run ip/nft in a namespace, open sockets in one.

Everything that changes networking goes through `ip -n NS` or
`ip netns exec NS`, never the host namespace. listen_in() opens a listening
TCP socket inside a namespace by switching one short-lived thread there with
setns(2) (libc via ctypes; a thread's network namespace is its own), creating
and binding the socket, and switching back: the socket keeps its namespace,
and the process serves it from any thread.
"""

import ctypes
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class CommandError(RuntimeError):
    pass


def run(args, stdin=None, check=True, timeout=30):
    p = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise CommandError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}\n"
                           + (f"input:\n{stdin}" if stdin else ""))
    return p


def ip_batch(ns, lines, check=True, force=False):
    """Run `ip` commands (one per line) in namespace ns (None: only netns add/del).

    With force, every line runs even after a failing one (ip -force); the
    call still fails (if check) when any line did."""
    if not lines:
        return None
    args = ["ip"] + (["-n", ns] if ns else []) + (["-force"] if force else []) + ["-batch", "-"]
    return run(args, "\n".join(lines) + "\n", check)


def in_ns(ns, args, stdin=None, check=True):
    return run(["ip", "netns", "exec", ns] + list(args), stdin, check)


def nft(ns, script, check=True):
    return in_ns(ns, ["nft", "-f", "-"], script, check)


def list_netns():
    p = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def delete_with_prefix(prefix):
    """Delete every namespace named <prefix>-*; veths inside go with them."""
    names = [n for n in list_netns() if n.startswith(prefix + "-")]
    ip_batch(None, [f"netns del {n}" for n in names], check=False)
    return names


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def call_in(ns, fn, *args, **kw):
    """Run fn(*args, **kw) on a thread switched into namespace ns; return its result.

    Sockets fn creates belong to ns for good (tests use this to talk to IMDS
    and EC2 as a node would)."""
    result = {}

    def body():
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                result["value"] = fn(*args, **kw)
            finally:
                _setns(own)
        except BaseException as e:    # handed to the caller's thread
            result["err"] = e
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=body, name=f"setns-{ns}")
    t.start()
    t.join()
    if "err" in result:
        raise result["err"]
    return result["value"]


def listen_in(ns, host, port, backlog=128):
    """A listening TCP socket bound to host:port inside namespace ns."""
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(backlog)
        return s
    return call_in(ns, make)

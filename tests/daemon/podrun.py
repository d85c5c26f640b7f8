"""Pods for the fleet and soak benchmarks: fresh network namespaces, and the
real vpc-cni exec'd inside a node's namespace the way a runtime runs it.

PodNetns.make() creates a network namespace held only by a descriptor of this
process (a helper thread unshare(2)s its own namespace, opens
/proc/thread-self/ns/net and exits), so CNI_NETNS is /proc/<pid>/fd/<n> and
closing the descriptor deletes the namespace with its veth: nothing is left
behind if the process dies. Descriptor numbers only grow (F_DUPFD from a
counter), so no path names two pods over a run: a daemon that sweeps gone
pods by their netns path must never see a new pod under an old one's path
(runtimes name every namespace uniquely); they wrap around only near
RLIMIT_NOFILE, which raise_nofile() lifts to the hard limit.

Plugins.submit() queues one vpc-cni run (optionally not before a time; at
most per_node running at once in a node, nodes served round robin); a few
spawner threads posix_spawn() it after setns(2)ing into the node's namespace
(a child inherits its thread's namespaces; the caller's thread never moves),
with the config on stdin and the result on stdout (files in a work
directory), and one epoll thread reaps it through a pidfd, so the process's
other children (the daemons, reaped by subprocess) are never touched. A
callback gets (status, seconds, stdout text).
"""

import ctypes
import fcntl
import heapq
import json
import os
import resource
import select
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def setns_net(fd):
    """Move the calling thread into the network namespace of fd."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


class PodNetns:
    """Network namespaces held by descriptors of this process."""

    def __init__(self, first_fd=1000):
        self.fds = []
        self.lock = threading.Lock()
        self.first_fd = self.next_fd = first_fd

    def make(self, n):
        out, err = [], []

        def body():
            try:
                for _ in range(n):
                    _check(_libc.unshare(CLONE_NEWNET), "unshare")
                    out.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY))
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=body, name="podns")
        t.start()
        t.join()
        with self.lock:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            for i, fd in enumerate(out):
                if self.next_fd >= soft - 200:
                    self.next_fd = self.first_fd
                out[i] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, self.next_fd)
                os.close(fd)
                self.next_fd = out[i] + 1
            self.fds += out
        if err:
            raise err[0]
        return [f"/proc/{os.getpid()}/fd/{fd}" for fd in out]

    def close(self, paths=None):
        """Close the namespaces of paths (all when None): the kernel deletes them and their veths."""
        with self.lock:
            fds = set(self.fds if paths is None else [int(p.rsplit("/", 1)[1]) for p in paths]) & set(self.fds)
            for fd in fds:
                os.close(fd)
            self.fds = [f for f in self.fds if f not in fds]


def raise_nofile():
    """The soft descriptor limit up to the hard one (namespaces are held by descriptors); returns it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cni_env(cmd, cid, netns):
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": cmd, "CNI_CONTAINERID": cid,
            "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
            "CNI_ARGS": f"K8S_POD_NAMESPACE=bench;K8S_POD_NAME={cid};K8S_POD_INFRA_CONTAINER_ID={cid};"
                        f"K8S_POD_UID=uid-{cid};IgnoreUnknown=1"}


class Plugins:
    """vpc-cni processes spawned in node namespaces and reaped by pidfd."""

    def __init__(self, binary, workdir, spawners=2, per_node=0):
        self.binary, self.dir, self.per_node = binary, workdir, per_node
        self.ep = select.epoll()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.queues = {}         # node netns -> heap of (not before, seq, job)
        self.order, self.rr = [], 0
        self.inflight = {}       # node netns -> plugins running there
        self.live = {}           # pidfd -> (pid, t0, out path, callback, node)
        self.node_fds = {}       # node netns name -> fd
        self.stopping = False
        self.seq = 0
        self.threads = [threading.Thread(target=self._reap, name="reaper", daemon=True)]
        self.threads += [threading.Thread(target=self._spawner, name=f"spawner{i}", daemon=True)
                         for i in range(spawners)]
        for t in self.threads:
            t.start()

    def submit(self, node_ns, cmd, cid, netns, conf, callback, not_before=0.0):
        """Queue CNI_COMMAND=cmd for pod cid in node_ns; callback(status, seconds, stdout) when it exits.
        At most per_node (0: no limit) run at once in a node, as a runtime's worker pool would."""
        with self.cond:
            self.seq += 1
            if node_ns not in self.queues:
                self.queues[node_ns] = []
                self.order.append(node_ns)
            heapq.heappush(self.queues[node_ns], (not_before, self.seq, (node_ns, cmd, cid, netns, conf, callback)))
            self.cond.notify()

    def queued(self):
        with self.lock:
            return sum(len(q) for q in self.queues.values())

    def _pick(self):
        """The next due job of a node with room, round robin over nodes (under the lock); or the wait."""
        now, soonest = time.monotonic(), 0.2
        for k in range(len(self.order)):
            ns = self.order[(self.rr + k) % len(self.order)]
            q = self.queues[ns]
            if not q or (self.per_node and self.inflight.get(ns, 0) >= self.per_node):
                continue
            if q[0][0] <= now:
                self.rr = (self.rr + k + 1) % len(self.order)
                self.inflight[ns] = self.inflight.get(ns, 0) + 1
                return heapq.heappop(q)[2], 0
            soonest = min(soonest, q[0][0] - now)
        return None, soonest

    def _spawner(self):
        while True:
            with self.cond:
                job, wait = self._pick()
                while job is None and not self.stopping:
                    self.cond.wait(wait)
                    job, wait = self._pick()
                if self.stopping:
                    return
            try:
                self._run(*job)
            except OSError as e:   # counted as a failed run, like a plugin that could not start
                self._done(job[0])
                job[5](-1, 0.0, f"spawn failed: {e}")

    def _done(self, ns):
        with self.cond:
            self.inflight[ns] -= 1
            self.cond.notify()

    def node_fd(self, ns):
        with self.lock:
            if ns not in self.node_fds:
                self.node_fds[ns] = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            return self.node_fds[ns]

    def _run(self, node_ns, cmd, cid, netns, conf, callback):
        """Spawn one vpc-cni CNI_COMMAND=cmd in node_ns (moves this spawner thread there)."""
        with self.lock:
            self.seq += 1
            base = os.path.join(self.dir, f"{cid}.{cmd}.{self.seq}")
        with open(base + ".in", "w") as f:
            json.dump(conf, f)
        setns_net(self.node_fd(node_ns))
        t0 = time.monotonic()
        pid = os.posix_spawn(self.binary, [self.binary], cni_env(cmd, cid, netns), file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, base + ".in", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, base + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)])
        pfd = os.pidfd_open(pid)
        with self.lock:
            self.live[pfd] = (pid, t0, base, callback, node_ns)
        self.ep.register(pfd, select.EPOLLIN)
        return pid

    def in_flight(self):
        with self.lock:
            return len(self.live)


    def _reap(self):
        while not self.stopping:
            for pfd, _ in self.ep.poll(0.2):
                with self.lock:
                    pid, t0, base, cb, ns = self.live.pop(pfd)
                self.ep.unregister(pfd)
                os.close(pfd)
                _, status, _ = os.wait4(pid, 0)
                dt = time.monotonic() - t0
                self._done(ns)
                try:
                    with open(base + ".out") as f:
                        out = f.read()
                except OSError:
                    out = ""
                for ext in (".in", ".out"):
                    try:
                        os.unlink(base + ext)
                    except OSError:
                        pass
                try:
                    cb(os.waitstatus_to_exitcode(status), dt, out)
                except Exception as e:  # a broken callback must not stop reaping
                    print(f"# podrun: callback failed: {type(e).__name__}: {e}", flush=True)

    def kill_all(self):
        """Drop what is queued, SIGKILL every plugin still running (our own children only), wait for them."""
        with self.lock:
            self.queues = {ns: [] for ns in self.queues}
            live = list(self.live.values())
        for pid, *_ in live:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        end = time.monotonic() + 10
        while self.in_flight() and time.monotonic() < end:
            time.sleep(0.05)

    def close(self):
        self.kill_all()
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for t in self.threads:
            t.join(2)
        for fd in self.node_fds.values():
            os.close(fd)
        self.node_fds = {}


def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def proc_mem(pid):
    """{VmRSS, VmHWM, Pss, Private} in KiB of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("Pss", "Private_Clean", "Private_Dirty"):
                out[k] = int(v.split()[0])
    out["Private"] = out.pop("Private_Clean", 0) + out.pop("Private_Dirty", 0)
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metrics(daemon, names):
    """Samples of a daemon's /metrics, summed over their labels (0 when absent)."""
    try:
        _, body = daemon.http("/metrics", metrics=True)
    except OSError:
        return {n: None for n in names}
    out = {n: 0.0 for n in names}
    for ln in body.splitlines():
        k, _, v = ln.partition(" ")
        k = k.split("{", 1)[0]
        if k in out and not ln.startswith("#"):
            out[k] += float(v.split()[0])
    return out

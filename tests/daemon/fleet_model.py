"""aws-node's documented pool loop for a whole fleet, against the emulator's
account token buckets, in virtual time: scripts/bench-fleet's baseline.

Never a measurement: a discrete-event model of reference aws-vpc-cni.md §2 and
§4 at its defaults (WARM_ENI_TARGET=1, IP_COOLDOWN_PERIOD=30 s) for N nodes
started within one second. Each node runs its ipamd loop: DescribeNetwork-
Interfaces at init, one prescaling increase, then forever {sleep 2.5 s;
increase if the pool is too low (available < one ENI's worth, cooling
addresses counted as available), else free one deletable ENI if available >=
two ENIs' worth (age >= 60 s, no pod, nothing cooling); sleep 2.5 s}. An
increase fills the first ENI with room (Assign + Describe) or else makes one
ENI (DescribeSubnets, Create with all its addresses, DescribeInstances,
Attach, Modify, then IMDS polls 0.1 s doubling until attach + IMDS lag have
passed). Freeing: Describe, Detach, 2 s, Delete. Every call draws from the
same buckets as the emulator's (vpcworld/faults.py BUCKETS and category(),
one account), with latencies sampled from the emulator's ranges; a
throttled call is retried by the SDK's standard retryer (10 attempts, delay
uniform(0, 2^attempt) s capped at 20 s), then the step gives up until the
next cycle. A pod takes the first free address past its cooldown the moment
one exists (every failed ADD retried at once: kubelet's real retry backoff is
longer), so pod times are a lower bound; its retry quota, API-server waits
and jitter are left out too.
"""

import heapq
import itertools
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "emulator"))

from vpcworld.faults import BUCKETS, category  # noqa: E402

COOLDOWN = 30.0


class Buckets:
    """The emulator's token buckets, refilled in virtual time."""

    def __init__(self):
        self.b = {c: [float(cap), float(cap), float(refill), 0.0] for c, (cap, refill) in BUCKETS.items()}

    def take(self, cat, t):
        b = self.b[cat]
        cap, tokens, refill, last = b
        tokens = min(cap, tokens + (t - last) * refill)
        ok = tokens >= 1
        b[1], b[3] = tokens - 1 if ok else tokens, t
        return ok


class Node:
    def __init__(self, idx, max_ips, max_enis, max_pods):
        self.idx, self.max_ips, self.max_enis, self.max_pods = idx, max_ips, max_enis, max_pods
        self.enis = [{"primary": True, "born": 0.0, "addrs": []}]
        self.waiting = []         # pod ids in arrival order
        self.last_addressed = 0.0

    def addrs(self):
        return [a for e in self.enis for a in e["addrs"]]

    def total(self):
        return sum(len(e["addrs"]) for e in self.enis)

    def available(self):
        return sum(1 for a in self.addrs() if a[0] is None)


class FleetModel:
    def __init__(self, lat, n_nodes, max_ips, max_enis, max_pods, seed=3):
        self.lat, self.rng = lat, random.Random(seed)
        self.buckets = Buckets()
        self.nodes = [Node(i, max_ips, max_enis, max_pods) for i in range(n_nodes)]
        self.heap, self.seq, self.now = [], itertools.count(), 0.0
        self.calls, self.throttled = {}, {}
        self.first_failed = 0
        self.pod_times = {}        # pod -> seconds from its arrival to its address
        self.held, self.peak = [], 0

    # --- the engine: processes are generators yielding ("sleep", s) or ("call", action, narrowed) ---
    def spawn(self, gen, at):
        heapq.heappush(self.heap, (at, next(self.seq), gen, None))

    def run(self, until):
        while self.heap and self.heap[0][0] <= until:
            t, _, gen, value = heapq.heappop(self.heap)
            self.now = t
            try:
                req = gen.send(value)
            except StopIteration:
                continue
            if req[0] == "sleep":
                heapq.heappush(self.heap, (t + req[1], next(self.seq), gen, None))
            else:
                _, action, narrowed = req
                ok = self.buckets.take(category(action, {"Filter.1.Name": "x"} if narrowed else {}), t)
                self.calls[action] = self.calls.get(action, 0) + 1
                if not ok:
                    self.throttled[action] = self.throttled.get(action, 0) + 1
                d = self.lat.api(action) if ok else self.lat.api("DescribeSubnets")
                heapq.heappush(self.heap, (t + d, next(self.seq), gen, ok))
        self.now = until

    def call(self, action, narrowed=True):
        """The SDK's standard retryer around one EC2 call; True when it got through."""
        for attempt in range(1, 11):
            ok = yield ("call", action, narrowed)
            if ok:
                return True
            yield ("sleep", min(20.0, self.rng.random() * 2 ** attempt))
        return False

    # --- aws-node -------------------------------------------------------------------
    def node_loop(self, n):
        yield from self.call("DescribeNetworkInterfaces")
        yield from self.increase(n)
        while True:
            yield ("sleep", 2.5)
            if self.too_low(n):
                yield from self.increase(n)
            elif self.should_free(n):
                yield from self.free_eni(n)
            yield ("sleep", 2.5)

    def too_low(self, n):
        return n.total() < n.max_pods and n.available() < n.max_ips

    def should_free(self, n):
        return n.available() >= 2 * n.max_ips and self.deletable(n) is not None

    def deletable(self, n):
        for e in n.enis:
            if e["primary"] or self.now - e["born"] < 60.0:
                continue
            if all(a[0] is None and self.now - a[1] >= COOLDOWN for a in e["addrs"]):
                return e
        return None

    def increase(self, n):
        for e in n.enis:
            room = n.max_ips - len(e["addrs"])
            if room > 0:
                if (yield from self.call("AssignPrivateIpAddresses")) and \
                        (yield from self.call("DescribeNetworkInterfaces")):
                    self.add_addrs(n, e, room)
                return
        if len(n.enis) >= n.max_enis:
            return
        for action in ("DescribeSubnets", "CreateNetworkInterface", "DescribeInstances",
                       "AttachNetworkInterface"):
            if not (yield from self.call(action)):
                return
        visible = self.now + self.lat.effect("attach") + self.lat.effect("imds_lag")
        yield from self.call("ModifyNetworkInterfaceAttribute")
        wait, k = 0.0, 0
        while self.now + wait < visible and k < 12:
            wait += 0.1 * 2 ** k
            k += 1
        yield ("sleep", wait)
        e = {"primary": False, "born": self.now, "addrs": []}
        n.enis.append(e)
        self.add_addrs(n, e, n.max_ips)

    def free_eni(self, n):
        e = self.deletable(n)
        n.enis.remove(e)
        self.note_held()
        if (yield from self.call("DescribeNetworkInterfaces")) and \
                (yield from self.call("DetachNetworkInterface", False)):
            yield ("sleep", 2.0)
            yield from self.call("DeleteNetworkInterface")

    # --- pods ---------------------------------------------------------------------------
    def add_addrs(self, n, e, count):
        e["addrs"] += [[None, -1e9] for _ in range(count)]
        self.note_held()
        self.serve(n)

    def note_held(self):
        h = sum(n.total() for n in self.nodes)
        self.peak = max(self.peak, h)
        self.held.append((self.now, h))

    def serve(self, n):
        for a in n.addrs():
            if not n.waiting:
                return
            if a[0] is None and self.now - a[1] >= COOLDOWN:
                pod, since = n.waiting.pop(0)
                a[0] = pod
                self.pod_times[pod] = self.now - since
                n.last_addressed = self.now

    def arrive(self, pods_per_node, tag):
        for n in self.nodes:
            before = len(n.waiting)
            n.waiting += [(f"{tag}-{n.idx}-{i}", self.now) for i in range(pods_per_node)]
            self.serve(n)
            self.first_failed += max(0, len(n.waiting) - before)   # pods whose first ADD found no address
            self.spawn(self.retry_loop(n), self.now + 0.5)

    def retry_loop(self, n):
        """Cooling addresses come free with time: waiting pods look again every 0.5 s."""
        while n.waiting:
            self.serve(n)
            yield ("sleep", 0.5)

    def delete_all(self):
        for n in self.nodes:
            for a in n.addrs():
                if a[0] is not None:
                    a[0], a[1] = None, self.now

    def done(self):
        return all(not n.waiting for n in self.nodes)

    def held_now(self):
        return sum(n.total() for n in self.nodes)


def simulate(lat, n_nodes, pods, max_ips, max_enis, max_pods, arrive_at, settle, horizon=900.0):
    """Scale up, down to 0, up again. -> dict of figures per phase (times from each phase's start)."""
    m = FleetModel(lat, n_nodes, max_ips, max_enis, max_pods)
    rng = random.Random(5)
    for n in m.nodes:
        m.spawn(m.node_loop(n), rng.uniform(0.0, 1.0))
    out = {}
    start = 0.0
    for phase in ("up", "up again"):
        m.run(arrive_at if phase == "up" else m.now)
        t_phase = m.now
        calls0, thr0, ff0 = dict(m.calls), dict(m.throttled), m.first_failed
        m.pod_times = {}
        m.arrive(pods, phase)
        step = 0.25
        while not m.done() and m.now < t_phase + horizon:
            m.run(m.now + step)
        node_done = [max(0.0, n.last_addressed - (start if phase == "up" else t_phase)) for n in m.nodes]
        out[phase] = {
            "complete": m.done(), "node_done": node_done, "pod_times": list(m.pod_times.values()),
            "calls": {k: v - calls0.get(k, 0) for k, v in m.calls.items() if v - calls0.get(k, 0)},
            "throttled": {k: v - thr0.get(k, 0) for k, v in m.throttled.items() if v - thr0.get(k, 0)},
            "first_failed": m.first_failed - ff0, "held_done": m.held_now(),
        }
        if phase == "up":
            m.delete_all()
            m.run(m.now + settle)
            out["down"] = {"held_idle": m.held_now()}
    m.run(m.now + 10.0)
    out["total_calls"], out["total_throttled"] = dict(m.calls), dict(m.throttled)
    out["peak"], out["final"] = m.peak, m.held_now()
    return out

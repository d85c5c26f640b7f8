"""scripts/bench-soak's driver: one node of the emulated VPC (EC2-like
latencies) running the real vpc-ipamd with its defaults for --minutes, pods
churning through the real vpc-cni, EC2 faults and daemon SIGKILLs on a
schedule; it samples the daemon's resources and prints their slopes, then
checks that no address leaked and none was handed out twice. Also the
engine of the one-minute test (tests/daemon/test_soak.py).

Churn: a new pod every 2/--rate s (so --rate pod operations per second in
steady state, half ADDs and half DELs), each living a uniform random time in
[0.2, 1.8] x --lifetime, each in a fresh network namespace (podrun.PodNetns),
ADDed and DELeted (prevResult, CNI_NETNS) by vpc-cni exec'd in the node's
namespace (podrun.Plugins). A failed ADD or DEL is retried after 1 s, as
kubelet retries. Every --fault-every s the next EC2 call gets a fault, in
turn: a 500, three forced throttles, a timeout, a lost response (applied,
unanswered), a 503. Every --kill-every s the daemon is SIGKILLed and
started again at once.

Every --sample s: the daemon's VmRSS and open descriptors, the store file and
its WAL, ADD exec-to-exit p50/p99 of the interval, EC2 calls in the interval
(the emulator's /stats), pods alive. At the end the churn stops, every pod
is DELeted, faults are cleared, and once the daemon has settled (no open
intent, bounded) its ENIs and addresses are compared with EC2's truth, no
lease may be left, no ENI left `available`; during the run every ADD's
address is checked against the addresses of the pods then alive (a
duplicate is a violation). Exit status 1 on any violation, or (with
--check-growth) on growth beyond the bounds the test sets.
"""

import argparse
import heapq
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ipamd  # noqa: E402
from ipamd import Daemon, harness, wait_for  # noqa: E402
from podrun import Plugins, PodNetns, raise_nofile, pct, proc_mem  # noqa: E402

TAG_INSTANCE = "node.k8s.amazonaws.com/instance_id"
FAULTS = [
    ("500 InternalError", {"faults": {"action": "*", "kind": "error", "status": 500, "count": 1}}),
    ("3 forced throttles", {"throttle": {"force": {"*": 3}}}),
    ("timeout (3 s, not applied)", {"faults": {"action": "*", "kind": "timeout", "seconds": 3, "count": 1}}),
    ("lost response (applied)", {"faults": {"action": "*", "kind": "lost", "count": 1}}),
    ("503 Unavailable", {"faults": {"action": "*", "kind": "error", "status": 503, "code": "Unavailable",
                                    "count": 1}}),
]


PREFIX = ""          # "# " under --tap: the report as TAP comments


def say(line=""):
    print(PREFIX + line, flush=True)


def slope(xs, ys):
    """Least-squares slope of ys over xs (None with fewer than 2 points)."""
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


class Soak:
    def __init__(self, a, w, plugins, pods_ns):
        self.a, self.w, self.plugins, self.pods_ns = a, w, plugins, pods_ns
        self.rng = random.Random(a.seed)
        self.inst = w.nodes[0]["instance_id"]
        self.lock = threading.Lock()
        self.live = {}            # cid -> (address, result, netns)
        self.pending = set()      # cids with an ADD or DEL not yet succeeded
        self.dels = []            # heap of (due, cid)
        self.violations = []
        self.adds = self.deletes = self.add_fails = self.del_fails = 0
        self.add_lat = []         # (time, seconds) of successful ADDs
        self.kills = 0
        self.restarts = []        # seconds from SIGKILL to serving again
        self.faults_sent = []
        self.stopping = False
        self.d = None

    def start_daemon(self):
        self.d = Daemon(self.w, env={"AWS_VPC_K8S_CNI_LOGLEVEL": "info"}, name="soak").start()

    def conf(self, prev=None):
        c = {"cniVersion": "1.0.0", "name": "vpc", "type": "vpc-cni", "socket": self.d.sock}
        if prev:
            c["prevResult"] = prev
        return c

    def violate(self, what):
        self.violations.append(what)
        say(f"VIOLATION: {what}")

    # --- pods -------------------------------------------------------------------------
    def add(self, cid, netns):
        with self.lock:
            self.pending.add(cid)
        self.plugins.submit(self.w.node_ns(0), "ADD", cid, netns, self.conf(),
                            lambda rc, dt, out: self.added(cid, netns, rc, dt, out))

    def added(self, cid, netns, rc, dt, out):
        if rc != 0:
            with self.lock:
                self.add_fails += 1
            if self.stopping:          # never added: the namespace goes, nothing to DEL
                self.pods_ns.close([netns])
                with self.lock:
                    self.pending.discard(cid)
                return
            self.plugins.submit(self.w.node_ns(0), "ADD", cid, netns, self.conf(),
                                lambda rc, dt, out: self.added(cid, netns, rc, dt, out), time.monotonic() + 1.0)
            return
        res = json.loads(out)
        addr = res["ips"][0]["address"].split("/")[0]
        life = self.rng.uniform(0.2, 1.8) * self.a.lifetime
        with self.lock:
            self.adds += 1
            self.add_lat.append((time.monotonic(), dt))
            holder = next((c for c, v in self.live.items() if v[0] == addr), None)
            self.live[cid] = (addr, res, netns)
            self.pending.discard(cid)
            heapq.heappush(self.dels, (time.monotonic() + life, cid))
        if holder:
            self.violate(f"{addr} handed to {cid} while {holder} holds it")

    def delete(self, cid):
        addr, res, netns = self.live[cid]
        with self.lock:
            self.pending.add(cid)
        self.plugins.submit(self.w.node_ns(0), "DEL", cid, netns, self.conf(res),
                            lambda rc, dt, out: self.deleted(cid, rc))

    def deleted(self, cid, rc):
        if rc != 0:
            with self.lock:
                self.del_fails += 1
            addr, res, netns = self.live[cid]
            self.plugins.submit(self.w.node_ns(0), "DEL", cid, netns, self.conf(res),
                                lambda rc, dt, out: self.deleted(cid, rc), time.monotonic() + 1.0)
            return
        with self.lock:
            _, _, netns = self.live.pop(cid)
            self.pending.discard(cid)
            self.deletes += 1
        self.pods_ns.close([netns])

    # --- disturbances -----------------------------------------------------------------
    def fault(self):
        name, spec = FAULTS[len(self.faults_sent) % len(FAULTS)]
        if "faults" in spec:
            self.w.ctl("POST", "/faults", spec["faults"])
        else:
            self.w.ctl("POST", "/throttle", spec["throttle"])
        self.faults_sent.append(name)

    def kill(self):
        t = time.monotonic()
        self.d.kill()
        self.d.logf.close()
        self.kills += 1
        self.start_daemon()
        self.restarts.append(time.monotonic() - t)

    # --- sampling -----------------------------------------------------------------------
    def sample(self, t0, since, calls_before):
        pid = self.d.proc.pid
        mem = proc_mem(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0  # noqa: E731
        with self.lock:
            lat = [x for t, x in self.add_lat if t >= since]
            live = len(self.live)
        calls = self.total_calls()
        held = sum(len(v) for v in self.truth_enis().values())
        return {"min": (time.monotonic() - t0) / 60, "rss": mem["VmRSS"], "fds": fds, "db": size(self.d.db),
                "wal": size(self.d.db + "-wal"), "add_p50": pct(lat, 50) if lat else None,
                "add_p99": pct(lat, 99) if lat else None, "adds": len(lat), "calls": calls - calls_before,
                "live": live, "held": held}, calls

    def total_calls(self):
        return sum(v["calls"] for v in self.w.ctl("GET", "/stats")["api"].values())

    def truth_enis(self):
        return {e["id"]: {ip + "/32" for ip in e.get("secondary_ips") or []} | set(e.get("prefixes") or [])
                for e in self.w.truth()["enis"] if (e.get("attachment") or {}).get("instance_id") == self.inst}

    def store_enis(self):
        r = self.d.try_call({"op": "enis"})
        if not r or not r.get("ok"):
            return None
        return {e["id"]: set(e.get("blocks", [])) for e in r["enis"] if e["state"] == "attached"}

    # --- the run --------------------------------------------------------------------------
    def run(self):
        a = self.a
        t0 = time.monotonic()
        end = t0 + a.minutes * 60
        next_add, next_fault = t0, t0 + a.fault_first
        next_kill, next_sample = t0 + a.kill_every, t0 + a.sample
        samples, since, calls = [], t0, self.total_calls()
        serial = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            while True:
                with self.lock:
                    due = self.dels and self.dels[0][0] <= now
                    cid = heapq.heappop(self.dels)[1] if due else None
                if cid is None:
                    break
                self.delete(cid)
            if now >= next_add:
                next_add += 2.0 / a.rate
                if len(self.live) + len(self.pending) < a.max_pods:
                    serial += 1
                    self.add(f"soak-{serial}", self.pods_ns.make(1)[0])
            if now >= next_fault:
                next_fault += a.fault_every
                self.fault()
            if now >= next_kill:
                next_kill += a.kill_every
                self.kill()
            if now >= next_sample:
                next_sample += a.sample
                s, calls = self.sample(t0, since, calls)
                since = now
                samples.append(s)
                say(f"{s['min']:5.1f} min: RSS {s['rss'] / 1024:.1f} MiB, {s['fds']} fds, store {s['db'] // 1024} KiB"
                    f" + WAL {s['wal'] // 1024} KiB, ADD p50/p99 {fmt_ms(s['add_p50'])}/{fmt_ms(s['add_p99'])}"
                    f" ({s['adds']}), EC2 calls {s['calls']}, pods {s['live']}, addresses {s['held']}")
            with self.lock:
                nxt = min([next_add, next_fault, next_kill, next_sample, end] + ([self.dels[0][0]] if self.dels else []))
            time.sleep(max(0.0, min(0.2, nxt - time.monotonic())))
        return samples

    def drain(self):
        """Stop the churn: every live pod DELeted (bounded), faults off, the daemon settled."""
        self.stopping = True
        wait_for(lambda: not self.pending, timeout=60, interval=0.1, what="in-flight ADDs and DELs to end")
        for cid in list(self.live):
            self.delete(cid)
        wait_for(lambda: not self.live, timeout=60, interval=0.1, what="every pod DELeted")
        fired = sum(r["fired"] for r in self.w.ctl("GET", "/faults"))
        self.w.ctl("DELETE", "/faults")
        self.w.ctl("POST", "/throttle", {"force": {"*": 0}})
        return fired

    def verify(self):
        try:
            wait_for(lambda: self.d.call({"op": "pods"})["pods"] == [], timeout=60, interval=0.5,
                     what="no lease left")
        except AssertionError:
            self.violate(f"leases left after every pod was DELeted: {self.d.call({'op': 'pods'})['pods'][:5]}")

        def settled():
            r = self.d.try_call({"op": "intents"})
            return r and r.get("ok") and r["intents"] == [] and self.store_enis() == self.truth_enis()
        try:
            wait_for(settled, timeout=60, interval=0.5, what="store == EC2")
        except AssertionError:
            store, truth = self.store_enis() or {}, self.truth_enis()
            for eni in sorted(set(store) | set(truth)):
                x, y = store.get(eni, set()), truth.get(eni, set())
                if x != y:
                    self.violate(f"ENI {eni}: only in the store {sorted(x - y)[:5]}, only in EC2 {sorted(y - x)[:5]}")
        leaked = [e["id"] for e in self.w.truth()["enis"]
                  if e["status"] == "available" and (e.get("tags") or {}).get(TAG_INSTANCE) == self.inst]
        if leaked:
            self.violate(f"ENIs left available: {leaked}")
        store = self.store_enis() or {}
        return sum(len(v) for v in store.values()), len(store)


def fmt_ms(x):
    return "n/a" if x is None else f"{x * 1000:.1f} ms"


def report(a, soak, samples, fired, held, took):
    say()
    say(f"## Soak: {a.minutes:g} min, {a.instance_type}, {a.rate:g} pod operations/s, lifetimes"
        f" {0.2 * a.lifetime:g}-{1.8 * a.lifetime:g} s")
    say()
    say(f"- pods: {soak.adds} ADDs and {soak.deletes} DELs succeeded through vpc-cni; attempts that failed and"
        f" were retried: {soak.add_fails} ADDs, {soak.del_fails} DELs")
    say(f"- faults: {len(soak.faults_sent)} injected ({', '.join(sorted(set(soak.faults_sent)))}), {fired} EC2"
        f" fault rules fired (forced throttles are not counted there)")
    say(f"- daemon SIGKILLs: {soak.kills}; SIGKILL to serving again: "
        + (", ".join(f"{x * 1000:.0f} ms" for x in soak.restarts) if soak.restarts else "none"))
    say()
    say("| min | VmRSS MiB | fds | store KiB | WAL KiB | ADD p50 ms | ADD p99 ms | ADDs | EC2 calls | pods | addresses |")
    say("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in samples:
        say(f"| {s['min']:.1f} | {s['rss'] / 1024:.1f} | {s['fds']} | {s['db'] // 1024} | {s['wal'] // 1024} |"
            f" {fmt_ms(s['add_p50'])[:-3]} | {fmt_ms(s['add_p99'])[:-3]} | {s['adds']} | {s['calls']} | {s['live']} |"
            f" {s['held']} |")
    say()
    warm = samples[a.warmup:] if len(samples) > a.warmup + 1 else samples
    xs = [s["min"] for s in warm]
    say(f"Slopes per hour over samples {a.warmup + 1}-{len(samples)} (least squares; after the pool's growth):")
    say()
    for key, label, unit, scale in (("rss", "VmRSS", "MiB", 1 / 1024), ("fds", "open fds", "", 1),
                                    ("db", "store file", "KiB", 1 / 1024), ("wal", "WAL", "KiB", 1 / 1024),
                                    ("add_p50", "ADD p50", "ms", 1000), ("add_p99", "ADD p99", "ms", 1000),
                                    ("calls", "EC2 calls per sample", "", 1)):
        pts = [(x, s[key] * scale) for x, s in zip(xs, warm) if s[key] is not None]
        sl = slope([p[0] for p in pts], [p[1] for p in pts])
        if sl is None:
            continue
        mean = sum(p[1] for p in pts) / len(pts)
        rel = f" ({100 * sl * 60 / mean:+.1f} % of the mean per hour)" if mean else ""
        say(f"- {label}: {sl * 60:+.2f} {unit}/h{rel}; first {pts[0][1]:.1f}, last {pts[-1][1]:.1f},"
            f" range {min(p[1] for p in pts):.1f}-{max(p[1] for p in pts):.1f} {unit}")
    say()
    say(f"- end: every pod DELeted; the daemon holds {held[0]} addresses on {held[1]} ENIs, equal to EC2's, no lease"
        f" left, no ENI left available: {'yes' if not soak.violations else 'NO'}")
    say(f"- violations (duplicate address, leak, store != EC2): {len(soak.violations)}")
    for v in soak.violations[:10]:
        say(f"  - {v}")
    say(f"- whole run {took:.0f} s; load average at the end {open('/proc/loadavg').read().split()[:3]}")


def growth_problems(a, samples):
    """The test's bounds: descriptors, memory and the store must not grow without bound."""
    out = []
    if len(samples) < 3:
        return [f"only {len(samples)} samples"]
    fds = [s["fds"] for s in samples]
    if max(fds) > min(fds) + 8:
        out.append(f"open fds grew: {fds}")
    rss = [s["rss"] for s in samples]
    if max(rss) > 1.25 * rss[0]:
        out.append(f"VmRSS grew by more than 25 %: {rss}")
    if max(s["db"] + s["wal"] for s in samples) > 64 << 20:
        out.append("store + WAL above 64 MiB")
    return out


def main(argv=None):
    return run(argv)[0]


def run(argv=None):
    """-> (exit status, {"adds", "kills", "faults_fired", "violations", "growth"})."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=5.0, help="pod operations per second (half ADD, half DEL)")
    ap.add_argument("--lifetime", type=float, default=10.0, help="mean pod lifetime, s")
    ap.add_argument("--max-pods", type=int, default=100)
    ap.add_argument("--instance-type", default="m5.4xlarge")
    ap.add_argument("--fault-every", type=float, default=60.0)
    ap.add_argument("--fault-first", type=float, default=30.0, help="seconds to the first fault")
    ap.add_argument("--kill-every", type=float, default=600.0)
    ap.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--warmup", type=int, default=2, help="samples left out of the slopes")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--check-growth", action="store_true", help="exit 1 when fds, RSS or the store grow (the test)")
    ap.add_argument("--tap", action="store_true", help="print the report as TAP comments (the test)")
    a = ap.parse_args(argv)
    global PREFIX
    PREFIX = "# " if a.tap else ""
    if not ipamd.IPAMD or not os.access(ipamd.IPAMD, os.X_OK) or not os.access(os.environ.get("VPC_CNI", ""), os.X_OK):
        sys.exit("set VPC_IPAMD and VPC_CNI (scripts/bench-soak does)")
    why = harness._why_not()
    if why:
        sys.exit(f"bench-soak: {why}")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_nofile()
    say(f"seed {a.seed}")
    tmp = tempfile.mkdtemp(prefix="bench-soak-")
    pods_ns = PodNetns()
    w = plugins = soak = None
    t_run = time.monotonic()
    try:
        w = harness.WorldFixture(nodes=1, instance_type=a.instance_type, fast=False)
        plugins = Plugins(os.environ["VPC_CNI"], tmp, spawners=1)
        soak = Soak(a, w, plugins, pods_ns)
        soak.start_daemon()
        samples = soak.run()
        fired = soak.drain()
        held = soak.verify()
        report(a, soak, samples, fired, held, time.monotonic() - t_run)
        problems = growth_problems(a, samples) if a.check_growth else []
        for p in problems:
            say(f"GROWTH: {p}")
        say(f"exercised: adds={soak.adds} kills={soak.kills} faults_fired={fired}")
        summary = {"adds": soak.adds, "kills": soak.kills, "faults_fired": fired,
                   "violations": list(soak.violations), "growth": problems}
        return (1 if soak.violations or problems else 0), summary
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second SIGTERM must not cut the teardown short
        if plugins:
            plugins.close()
        pods_ns.close()
        if soak and soak.d:
            soak.d.stop()
            log = shutil.copy(soak.d.log, tempfile.mkdtemp(prefix="bench-soak-log-"))
            say(f"daemon log: {log}")
        if w:
            w.down()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Figures for vpc-ipamd (docs/benchmarks.md, section "vpc-ipamd"), measured
against the emulated VPC (tests/emulator) with its default, EC2-like
latencies, beside aws-node's behaviour modeled from the same latencies.

Run by scripts/bench-ipamd (which builds the daemon first). Every world is
brought up and taken down here; the daemon is the real vpc-ipamd, started by
the Daemon fixture of tests/daemon/ipamd.py inside a node namespace and
driven over its socket. Parts:

  cold     cold node to the first address and to the warm target
  churn    EC2 calls during 1,000 pod ADD/DEL operations at WARM_IP_TARGET=5
  big      RSS at 250 assigned addresses, and restart-to-serving times
  burst    ADD wait percentiles: 30 concurrent ADDs onto a pool that must grow

The aws-node baseline is a model, never a measurement: its pool loop as
documented in shared/reference/aws-vpc-cni.md §2 and §4 (sleep 2.5 s,
increase, sleep 2.5 s, reconcile; one ENI or one AssignPrivateIpAddresses
per increase; a new ENI waited for by polling IMDS with a backoff that
starts at 100 ms and doubles), fed with latencies sampled from the ranges
the emulator itself reports at GET /latency. Its 15 % backoff jitter,
Kubernetes API waits and kubelet's retry delays are left out, so the model
is a lower bound for aws-node.
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import ipamd  # noqa: E402
from ipamd import Daemon, harness, wait_for  # noqa: E402

MODEL_SAMPLES = 2000
DEADLINE = None  # monotonic time after which optional parts are skipped


# --- small helpers --------------------------------------------------------------

def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def ms(x):
    if x < 0.01:
        return f"{x * 1000:.2f} ms"
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def say(line=""):
    print(line, flush=True)


def world(instance_type="m5.large"):
    return harness.WorldFixture(nodes=1, instance_type=instance_type, fast=False)


def stats_calls(w):
    """{action: calls} from the emulator's /stats."""
    s = w.ctl("GET", "/stats")["api"]
    return {k: v.get("calls", 0) for k, v in s.items() if isinstance(v, dict)}


def diff_calls(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}


MUTATIONS = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "CreateNetworkInterface",
             "DeleteNetworkInterface", "AttachNetworkInterface", "DetachNetworkInterface",
             "ModifyNetworkInterfaceAttribute", "CreateTags")


def pod_add(d, cid, netns, timeout=15):
    return d.call({"op": "add", "container_id": cid, "ifname": "eth0", "netns": netns,
                   "pod_namespace": "bench", "pod_name": cid, "pod_uid": "", "pod_infra_container_id": cid},
                  timeout)


def pod_netns(w):
    """A path that exists for as long as the world: the daemon's gone-pod sweep stats the netns path."""
    p = os.path.join(w.dir, "bench-pod-netns")
    open(p, "w").close()
    return p


def poll_pool(d):
    r = d.try_call({"op": "pool"}, timeout=2)
    return r.get("pool") if r else None


def histogram(d):
    """The daemon's ADD wait histogram: [(upper bound s, cumulative count)], from /metrics."""
    st, body = d.http("/metrics", metrics=True)
    out = []
    for ln in body.splitlines():
        if ln.startswith("vpcipam_add_wait_seconds_bucket{le="):
            le = ln.split('"')[1]
            out.append((float("inf") if le == "+Inf" else float(le), int(float(ln.split()[-1]))))
    return out


def hist_pct(buckets, p):
    """Upper bound of the bucket holding the p-th percentile."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    want = p / 100.0 * total
    for le, cum in buckets:
        if cum >= want:
            return le
    return float("inf")


def smaps(pid):
    """({mapping: Rss KiB}, rollup {field: KiB}) of a process."""
    per, cur = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for ln in f:
            parts = ln.split()
            if parts and "-" in parts[0] and not parts[0].endswith(":"):
                cur = parts[5] if len(parts) > 5 else "[anon]"
            elif parts and parts[0] == "Rss:":
                per[cur] = per.get(cur, 0) + int(parts[1])
    roll = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if v.strip().endswith("kB"):
                roll[k] = int(v.split()[0])
    return per, roll


FLOOR_C = "#include <unistd.h>\nint main(void) { pause(); return 0; }\n"


def linked_floor(binary):
    """RSS (KiB) of a program that does nothing but is linked with the same shared libraries as binary."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    needed = [ln.split("[", 1)[1].rstrip("]") for ln in out.splitlines() if "(NEEDED)" in ln]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "floor.c"), os.path.join(tmp, "floor")
        with open(src, "w") as f:
            f.write(FLOOR_C)
        cc = subprocess.run(["cc", "-O2", "-o", exe, src, "-Wl,--no-as-needed"] + [f"-l:{n}" for n in needed],
                            capture_output=True, text=True)
        if cc.returncode != 0:
            return None, needed
        p = subprocess.Popen([exe])
        try:
            time.sleep(0.3)
            return rss(p.pid), needed
        finally:
            p.kill()
            p.wait()


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out


# --- the aws-node model -----------------------------------------------------------

class Lat:
    """Samples of the emulator's latency ranges (GET /latency)."""

    def __init__(self, spec, rng):
        self.spec, self.rng = spec, rng

    def _s(self, r):
        return r if isinstance(r, (int, float)) else self.rng.uniform(r[0], r[1])

    def api(self, action):
        return self._s(self.spec["api"].get(action, self.spec["api"]["*"]))

    def effect(self, kind):
        return self._s(self.spec[kind])


class AwsNodeModel:
    """aws-node's datastore and increase step (reference §2/§4), for one network card."""

    def __init__(self, lat, max_ips, max_enis, warm_eni=1, warm_ip=0, min_ip=0):
        self.lat, self.max_ips, self.max_enis = lat, max_ips, max_enis
        self.warm_eni, self.warm_ip, self.min_ip = warm_eni, warm_ip, min_ip
        self.enis = [0]        # secondary addresses per ENI; the primary starts with none
        self.assigned = 0

    def total(self):
        return sum(self.enis)

    def short(self):
        """Addresses wanted now (0: the pool is not too low)."""
        avail = self.total() - self.assigned
        if self.warm_ip or self.min_ip:
            return max(max(self.warm_ip - avail, 0), self.min_ip - self.total())
        w = self.warm_eni
        return self.max_ips if (avail < self.max_ips * w or (w == 0 and avail == 0)) else 0

    def increase(self, t):
        """One increaseDatastorePool at time t; returns when it ends."""
        short = self.short()
        if short <= 0:
            return t
        want = short if (self.warm_ip or self.min_ip) else self.max_ips
        for i, n in enumerate(self.enis):
            if n < self.max_ips:  # fill one existing ENI, then read its addresses back from EC2
                t += self.lat.api("AssignPrivateIpAddresses") + self.lat.api("DescribeNetworkInterfaces")
                self.enis[i] += min(self.max_ips - n, want)
                return t
        if len(self.enis) >= self.max_enis:
            return t
        t += self.lat.api("CreateNetworkInterface") + self.lat.api("DescribeInstances")
        t += self.lat.api("AttachNetworkInterface")
        visible = t + self.lat.effect("attach") + self.lat.effect("imds_lag")
        t += self.lat.api("ModifyNetworkInterfaceAttribute")
        wait, k = 0.0, 0
        while t + wait < visible and k < 12:   # WaitForENIAndIPsAttached: 100 ms, doubling
            wait += 0.1 * (2 ** k)
            k += 1
        self.enis.append(min(want, self.max_ips))
        return t + wait

    def cold(self, target, horizon=600.0):
        """(first address, warm target reached) from process start."""
        t = self.lat.api("DescribeNetworkInterfaces")   # nodeInit: DescribeAllENIs
        t = self.increase(t)                            # handlePreScaling: one increase
        first = t if self.total() > 0 else None
        done = t if target(self) else None
        while done is None and t < horizon:
            t += 2.5
            t = self.increase(t)
            if first is None and self.total() > 0:
                first = t
            if target(self):
                done = t
            t += 2.5                                    # nodeIPPoolReconcile: nothing to do
        return first, done


def model_cold(spec, max_ips, max_enis, env, target, seed=7):
    rng = random.Random(seed)
    firsts, dones = [], []
    for _ in range(MODEL_SAMPLES):
        m = AwsNodeModel(Lat(spec, rng), max_ips, max_enis, warm_eni=int(env.get("WARM_ENI_TARGET", 1)),
                         warm_ip=int(env.get("WARM_IP_TARGET", 0)), min_ip=int(env.get("MINIMUM_IP_TARGET", 0)))
        f, d = m.cold(target)
        firsts.append(f)
        dones.append(d)
    return firsts, dones


def model_burst(spec, max_ips, max_enis, warm_ip, n_pods, seed=11):
    """Waits of n_pods ADDs arriving at once on a pool of warm_ip free addresses; aws-node fails an ADD on an
    empty pool, and here every pod retries at once (kubelet's real retry delay is longer)."""
    rng = random.Random(seed)
    waits = []
    for _ in range(MODEL_SAMPLES // 10):
        m = AwsNodeModel(Lat(spec, rng), max_ips, max_enis, warm_ip=warm_ip)
        m.enis[0] = warm_ip
        phase = rng.uniform(0, 5.0)           # where in its 5 s loop the burst lands
        served = min(n_pods, warm_ip)
        waits += [0.0] * served
        m.assigned = served
        t = phase - 5.0
        while served < n_pods and t < 3600:
            t += 2.5
            t2 = m.increase(max(t, 0.0))
            free = m.total() - m.assigned
            take = min(free, n_pods - served)
            waits += [max(t2, 0.0)] * take
            served += take
            m.assigned += take
            t = t2 + 2.5
    return waits


# --- parts --------------------------------------------------------------------------

COLD_CONFIGS = [
    ("defaults (WARM_ENI_TARGET=1)", {}, 9, 0),
    ("WARM_IP_TARGET=5, MINIMUM_IP_TARGET=20", {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "20"}, 20, 5),
]


# Where a cold start's time goes: the daemon log's events, as ms from exec (the last of each kind).
COLD_EVENTS = [("serving", "serving"), ("EC2 pass", "reconciled with EC2"),
               ("primary Assign", "assigned secondary addresses"), ("ENIs created", "created ENI"),
               ("ENIs attached", "attached ENI"), ("ENIs open", "ENI ready for pods"),
               ("IMDS checked", "checked a new ENI against IMDS")]


def log_events(path, wall0):
    """{event label: ms after wall0 of its last occurrence} from a daemon's JSON log."""
    import datetime
    out = {}
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        try:
            j = json.loads(line)
        except ValueError:
            continue
        for label, msg in COLD_EVENTS:
            if j.get("msg") == msg and "time" in j:
                t = datetime.datetime.strptime(j["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                out[label] = (t - wall0) * 1000
    return out


def cold_once(env, total_want, avail_want, binary=None):
    w = world("m5.large")
    saved = ipamd.IPAMD
    ipamd.IPAMD = binary or saved
    d = Daemon(w, env=env, name="cold")
    try:
        spec = w.ctl("GET", "/latency")
        t0 = time.monotonic()
        wall0 = time.time()
        d.start(wait=False)
        serving = first = done = None
        enis = 0
        end = t0 + 60
        while time.monotonic() < end:
            d.alive_or_raise()
            p = poll_pool(d)
            now = time.monotonic() - t0
            if p is not None:
                serving = serving if serving is not None else now
                if first is None and p["available"] >= 1:
                    first = now
                if p["total"] >= total_want and p["available"] >= max(avail_want, 1):
                    done, enis = now, p["enis"]
                    break
            time.sleep(0.005)
        if done is None:
            raise AssertionError(f"warm target not reached in 60 s: {poll_pool(d)}\n{d.tail()}")
        calls = stats_calls(w)
        return spec, serving, first, done, enis, calls, log_events(d.log, wall0)
    finally:
        ipamd.IPAMD = saved
        d.stop()
        keep_log(d, "cold-" + label_slug(env))
        w.down()


def part_cold(reps):
    say("## 1. Cold node (m5.large: 3 ENIs x 9 secondary addresses) to the first address and to the warm target")
    say(f"vpc-ipamd measured, {reps} runs each (fresh world and store per run), time from exec;"
        " aws-node modeled from the same latency ranges (median of "
        f"{MODEL_SAMPLES} samples; a lower bound, see the notes).")
    say()
    say("| configuration | vpc-ipamd first address (median / max) | vpc-ipamd warm target (median / max) | ENIs |"
        " EC2 calls | aws-node first address (modeled) | aws-node warm target (modeled) |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    # VPC_IPAMD_BASELINE: another build (e.g. the last commit's) run in the same world, interleaved run by run.
    base = os.environ.get("VPC_IPAMD_BASELINE")
    versions = [("", None)] + ([(" (baseline)", base)] if base else [])
    results, breakdowns = [], []
    for label, env, total_want, avail_want in COLD_CONFIGS:
        runs = {v: {"firsts": [], "dones": [], "servings": [], "enis": [], "calls": [], "events": []}
                for v, _ in versions}
        spec = None
        for _ in range(reps):
            for v, binary in versions:
                spec, s, f, dn, e, c, ev = cold_once(env, total_want, avail_want, binary)
                r = runs[v]
                r["servings"].append(s)
                r["firsts"].append(f)
                r["dones"].append(dn)
                r["enis"].append(e)
                r["calls"].append(sum(c.values()))
                r["events"].append(ev)

        def target(m, total_want=total_want, avail_want=avail_want):
            return m.total() >= total_want and m.total() - m.assigned >= max(avail_want, 1)
        mf, md = model_cold(spec, 9, 3, env, target)
        for v, _ in versions:
            r = runs[v]
            say(f"| {label}{v} | {ms(statistics.median(r['firsts']))} / {ms(max(r['firsts']))} | "
                f"{ms(statistics.median(r['dones']))} / {ms(max(r['dones']))} | {statistics.median(r['enis']):.0f} | "
                f"{statistics.median(r['calls']):.0f} | {ms(statistics.median(mf))} | {ms(statistics.median(md))} "
                f"(p99 {ms(pct(md, 99))}) |")
            results.append((label + v, statistics.median(r["servings"])))
            parts = []
            for ev_label, _ in COLD_EVENTS:
                xs = [e[ev_label] for e in r["events"] if ev_label in e]
                if xs:
                    parts.append(f"{ev_label} {ms(statistics.median(xs) / 1000)}")
            parts.append(f"warm target {ms(statistics.median(r['dones']))}")
            breakdowns.append((label + v, parts))
    say()
    for label, s in results:
        say(f"- socket serving (a `pool` answer) after a median {ms(s)} from exec, {label}.")
    for label, parts in breakdowns:
        say(f"- where the time goes, {label} (median ms from exec, each the last of its kind, from the daemon log):"
            f" {', '.join(parts)}.")
    say(f"- emulator latencies used (GET /latency): {json.dumps(spec)}")
    say("- aws-node model: DescribeNetworkInterfaces at init, one prescaling increase, then every 5 s one increase"
        " (Assign+Describe on an ENI with room, else Create+DescribeInstances+Attach+Modify and IMDS polls at"
        " 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3 s... until attach + IMDS lag has passed).")
    say()


def churn_run(instance, env, ops, pace, seed=1, settle=10, cap=60.0, warm_want=None):
    """1,000-ish random-walk pod operations (population 0..20); EC2 calls between the warm start (warm_want
    free addresses; default WARM_IP_TARGET) and the settle."""
    w = world(instance)
    d = Daemon(w, env=env, name="churn")
    try:
        d.start()
        ns = pod_netns(w)
        warm = int(env.get("WARM_IP_TARGET", "0")) if warm_want is None else warm_want
        wait_for(lambda: (poll_pool(d) or {}).get("available", 0) >= warm, timeout=30, what="warm target")
        before = stats_calls(w)
        rng = random.Random(seed)
        live, serial, lat, failures, trace = [], 0, [], 0, []
        t0 = time.monotonic()
        done, due = 0, t0
        for i in range(ops):
            if time.monotonic() - t0 > cap:
                break
            done += 1
            if pace:  # at most pace ops/s, and no catch-up burst after an ADD that waited
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                due = max(due, time.monotonic()) + 1.0 / pace
            if not live or (len(live) < 20 and rng.random() < 0.5):
                serial += 1
                cid = f"churn{serial}"
                a = time.monotonic()
                trace.append((a - t0, "add", cid))
                r = pod_add(d, cid, ns)
                lat.append(time.monotonic() - a)
                if r.get("ok"):
                    live.append(cid)
                else:
                    failures += 1
            else:
                cid = live.pop(rng.randrange(len(live)))
                trace.append((time.monotonic() - t0, "del", cid))
                assert d.delete(cid)["ok"]
        took = time.monotonic() - t0
        during = diff_calls(before, stats_calls(w))
        # Let the pool settle (hysteresis, cooldowns ending) and count what that costs too.
        end = time.monotonic() + settle
        while time.monotonic() < end:
            time.sleep(0.5)
        after = diff_calls(before, stats_calls(w))
        p = poll_pool(d)
        m = metric_values(d, ("vpcipam_ec2_throttle_waits_total", "vpcipam_ec2_throttle_wait_seconds_total",
                               "vpcipam_add_waited_total"))
        return {"trace": trace, "spec": w.ctl("GET", "/latency"), "metrics": m, "done": done, "took": took, "during": during, "after": after, "lat": lat, "failures": failures,
                "pool": p, "live": len(live)}
    finally:
        d.stop()
        keep_log(d, "churn-" + label_slug(env))
        w.down()


class AwsNodeChurn:
    """aws-node's datastore and pool loop (reference §2) replayed on a trace of pod operations, WARM_IP_TARGET
    mode: cooling addresses count as available, an ADD with no address past its cooldown fails, every 5 s one
    increase (Assign+Describe, or a new ENI) when short, at most every 30 s a decrease (Unassign of free
    addresses, cooldown not checked), and one deletable ENI freed per cycle (Describe+Detach+Delete)."""

    def __init__(self, lat, max_ips, max_enis, warm_ip, cooldown, start_free):
        self.lat, self.max_ips, self.max_enis = lat, max_ips, max_enis
        self.warm, self.cool = warm_ip, cooldown
        self.enis = [{"primary": True, "born": -1e9, "ips": [[None, -1e9] for _ in range(start_free)]}]
        self.calls, self.mutations, self.failed = 0, 0, 0
        self.pending = []          # (time, eni dict) of ENIs whose addresses arrive later
        self.last_decrease = -1e9

    def _call(self, n, mutating):
        self.calls += n
        self.mutations += mutating

    def _addrs(self):
        return [a for e in self.enis for a in e["ips"]]

    def available(self):
        return sum(1 for a in self._addrs() if a[0] is None)

    def add(self, t, cid):
        for a in self._addrs():
            if a[0] is None and t - a[1] >= self.cool:
                a[0] = cid
                return
        self.failed += 1

    def delete(self, t, cid):
        for a in self._addrs():
            if a[0] == cid:
                a[0], a[1] = None, t
                return

    def cycle(self, t):
        """One updateIPPoolIfRequired at t; returns its duration."""
        dur = 0.0
        short = max(self.warm - self.available(), 0)
        if short > 0:
            for e in self.enis:
                room = self.max_ips - len(e["ips"])
                if room > 0:
                    self._call(2, 1)
                    dur = self.lat.api("AssignPrivateIpAddresses") + self.lat.api("DescribeNetworkInterfaces")
                    self.pending.append((t + dur, e, min(room, short)))
                    return dur
            if len(self.enis) < self.max_enis:
                self._call(4, 3)
                dur = sum(self.lat.api(a) for a in ("CreateNetworkInterface", "DescribeInstances",
                                                      "AttachNetworkInterface"))
                visible = dur + self.lat.effect("attach") + self.lat.effect("imds_lag")
                dur += self.lat.api("ModifyNetworkInterfaceAttribute")
                wait, k = 0.0, 0
                while dur + wait < visible and k < 12:
                    wait += 0.1 * (2 ** k)
                    k += 1
                dur += wait
                e = {"primary": False, "born": t + dur, "ips": []}
                self.enis.append(e)
                self.pending.append((t + dur, e, min(short, self.max_ips)))
            return dur
        over = self.available() - self.warm
        if over > 0 and t - self.last_decrease >= 30.0:
            self.last_decrease = t
            for e in self.enis:
                free = [a for a in e["ips"] if a[0] is None]
                n = min(over, len(free))
                if n:
                    self._call(1, 1)
                    dur += self.lat.api("UnassignPrivateIpAddresses")
                    for a in free[:n]:
                        e["ips"].remove(a)
                    over -= n
        for e in self.enis:
            if e["primary"] or t - e["born"] < 60.0 or any(a[0] is not None or t - a[1] < self.cool for a in e["ips"]):
                continue
            others = sum(1 for o in self.enis if o is not e for a in o["ips"] if a[0] is None)
            if others >= self.warm:
                self._call(3, 2)
                self.enis.remove(e)
                dur += 2.0 + self.lat.api("DetachNetworkInterface") + self.lat.api("DeleteNetworkInterface")
                break
        return dur

    def _arrive(self, t):
        for p in [p for p in self.pending if p[0] <= t]:
            self.pending.remove(p)
            _, e, n = p
            e["ips"] += [[None, -1e9] for _ in range(min(n, self.max_ips - len(e["ips"])))]

    def replay(self, trace, end, phase):
        nxt = phase + 2.5
        for t, op, cid in trace + [(end, "end", None)]:
            while nxt <= t:
                self._arrive(nxt)
                nxt += self.cycle(nxt) + 5.0
            self._arrive(t)
            if op == "add":
                self.add(t, cid)
            elif op == "del":
                self.delete(t, cid)
        return self


def model_churn(spec, trace, end, max_ips, max_enis, warm_ip, cooldown, seed=5, samples=100):
    """Medians over loop phases and latency samples: (calls, mutations, failed ADDs)."""
    rng = random.Random(seed)
    runs = [AwsNodeChurn(Lat(spec, rng), max_ips, max_enis, warm_ip, cooldown, warm_ip).replay(
        trace, end, rng.uniform(0, 5.0)) for _ in range(samples)]
    return (statistics.median(r.calls for r in runs), statistics.median(r.mutations for r in runs),
            statistics.median(r.failed for r in runs))


def metric_values(d, names):
    st, body = d.http("/metrics", metrics=True)
    out = {}
    for ln in body.splitlines():
        k = ln.split(" ")[0].split("{")[0]
        if k in names and not ln.startswith("#"):
            out[k] = out.get(k, 0.0) + float(ln.split()[-1])  # summed over labels
    return out


LOG_DIR = None


def keep_log(d, name):
    """Copy a daemon's log out of its world before the world's directory goes."""
    if LOG_DIR and os.path.exists(d.log):
        with open(d.log) as src, open(os.path.join(LOG_DIR, name + ".log"), "a") as dst:
            dst.write(src.read())


def label_slug(env):
    return "-".join(f"{k}={v}" for k, v in sorted(env.items())) or "defaults"


def part_churn(ops, quick):
    say(f"## 2. EC2 calls during {ops} pod operations at WARM_IP_TARGET=5 (goal: at most 20)")
    say("A seeded random walk of ADDs and DELs keeps 0 to 20 pods on the node (so the pool must grow and may"
        " shrink), against default latencies. Counts come from the emulator's /stats, from the moment the warm"
        " target is reached; 'settled' adds 10 s after the last operation. m5.xlarge: 4 ENIs x 14 addresses."
        " Each run stops after 60 s of operations.")
    say()
    runs = [("m5.xlarge", {"WARM_IP_TARGET": "5", "IP_COOLDOWN_PERIOD": "0"}, 0, "IP_COOLDOWN_PERIOD=0, unpaced")]
    if not quick:
        runs += [("m5.xlarge", {"WARM_IP_TARGET": "5", "IP_COOLDOWN_PERIOD": "1"}, 30.0,
                  "IP_COOLDOWN_PERIOD=1 at 30 ops/s (= 30 s cooldown at 1 op/s, time compressed 30x)"),
                 ("c5.18xlarge", {"WARM_IP_TARGET": "5"}, 30.0,
                  "IP_COOLDOWN_PERIOD=30 (default) at 30 ops/s, c5.18xlarge")]
    say("| run | duration | EC2 calls during (mutations) | after settling (mutations) | ADD p50 / p99 | failed ADDs |"
        " pool at end (total / assigned / cooling) |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    for instance, env, pace, label in runs:
        if time.monotonic() > DEADLINE:
            say(f"| {label} | skipped: time budget | | | | | |")
            continue
        r = churn_run(instance, env, ops, pace)
        mut = sum(v for k, v in r["during"].items() if k in MUTATIONS)
        mut2 = sum(v for k, v in r["after"].items() if k in MUTATIONS)
        p = r["pool"] or {}
        say(f"| {label} | {r['done']} ops in {r['took']:.1f} s | {sum(r['during'].values())} ({mut}) | {sum(r['after'].values())} ({mut2})"
            f" | {ms(statistics.median(r['lat']))} / {ms(pct(r['lat'], 99))} | {r['failures']} |"
            f" {p.get('total')} / {p.get('assigned')} / {p.get('cooldown')} |")
        m = r["metrics"]
        say(f"|   calls by action; ADDs that waited {m.get('vpcipam_add_waited_total', 0):.0f}, client-side EC2 rate-limit"
            f" waits {m.get('vpcipam_ec2_throttle_waits_total', 0):.0f} ({m.get('vpcipam_ec2_throttle_wait_seconds_total', 0):.1f} s)"
            f" | | {json.dumps(r['during'], sort_keys=True)} | {json.dumps(r['after'], sort_keys=True)} | | | |")
        lim = {"m5.xlarge": (14, 4), "c5.18xlarge": (49, 15)}[instance]
        cool = float(env.get("IP_COOLDOWN_PERIOD", "30"))
        # The time-compressed run stands for 1 op/s with a 30 s cooldown: model aws-node on that, uncompressed.
        k = 30.0 if cool == 1 else 1.0
        trace = [(t * k, op, cid) for t, op, cid in r["trace"]]
        mc, mm, mf = model_churn(r["spec"], trace, (r["took"] + 10.0) * k, lim[0], lim[1], 5, cool * k)
        what = "the same operations 30x slower, 30 s cooldown" if k > 1 else "the same operations"
        say(f"|   aws-node, modeled on {what} | {r['took'] * k:.0f} s | | {mc:.0f} ({mm:.0f}) | | {mf:.0f} | |")
    say()
    say("- Cooldown: a released address may not be handed out again for IP_COOLDOWN_PERIOD, and vpc-ipamd does not"
        " count cooling addresses as available (aws-node does, its #2896). So at the default 30 s the pool must also"
        " hold every address released in the last 30 s: at 30 operations/s about 15 addresses/s are released, ~450"
        " within the window, so that run needs a pool of hundreds (hence c5.18xlarge) and its calls are growth to"
        " that size, not churn. The 1 s run keeps the ratio of cooldown to operation rate"
        " of a node doing one pod operation per second with the default 30 s.")
    say("- aws-node model (AwsNodeChurn): its WARM_IP_TARGET arithmetic with cooling addresses counted as available,"
        " one increase per 5 s cycle, a decrease at most every 30 s (Unassign of free addresses, cooldown not checked),"
        " one deletable ENI freed per cycle; an ADD that finds no address past its cooldown fails and is dropped"
        " (kubelet would retry it, so aws-node's real demand and calls are higher). Medians of 100 loop phases.")
    say()


def part_big(restarts):
    say("## 3-4. 250 assigned addresses on c5.18xlarge (15 ENIs x 49): RSS, and restart to serving")
    env = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "255"}
    w = world("c5.18xlarge")
    d = Daemon(w, env=env, name="big")
    try:
        d.start()
        ns = pod_netns(w)
        wait_for(lambda: (poll_pool(d) or {}).get("total", 0) >= 255, timeout=60, what="255 addresses")
        time.sleep(1.0)
        idle = rss(d.proc.pid)
        for i in range(250):
            r = pod_add(d, f"big{i}", ns)
            assert r.get("ok"), r
        time.sleep(1.0)
        p = poll_pool(d)
        assert p["assigned"] == 250, p
        busy = rss(d.proc.pid)
        say(f"Pool: {p['total']} addresses on {p['enis']} ENIs, {p['assigned']} assigned;"
            f" store {os.path.getsize(d.db) / 1024:.0f} KiB (+ WAL).")
        say()
        say("| vpc-ipamd | VmRSS | VmHWM (peak) | RssAnon | RssFile | threads |")
        say("|---|---:|---:|---:|---:|---:|")
        for label, m in (("idle pool, 0 assigned", idle), ("250 assigned", busy)):
            say(f"| {label} | {m['VmRSS'] / 1024:.1f} MiB | {m['VmHWM'] / 1024:.1f} MiB |"
                f" {m.get('RssAnon', 0) / 1024:.1f} MiB | {m.get('RssFile', 0) / 1024:.1f} MiB | {m['Threads']} |")
        say("| aws-node (published, aws-vpc-cni#2436) | 40-64 MiB (v1.12); ~400 MiB (v1.13.2 regression) | | | | |")
        say()
        say(f"PID {d.proc.pid} is the daemon itself: `ip netns exec` execs it in place. Goal: RSS at most 8 MiB.")
        say()
        per, roll = smaps(d.proc.pid)
        floor, needed = linked_floor(ipamd.IPAMD)
        anon = sum(v for k, v in per.items() if k.startswith("[") or k == "[anon]")
        libs = sum(v for k, v in per.items() if k.startswith("/") and k != os.path.realpath(ipamd.IPAMD))
        say("Where the resident memory is (250 assigned, /proc/PID/smaps):")
        say()
        say(f"- shared libraries: {libs / 1024:.1f} MiB of the RSS ({len(needed)} direct NEEDED entries,"
            f" {sum(1 for k in per if '.so' in k)} libraries mapped);"
            f" heap, stacks and other anonymous memory: {anon / 1024:.1f} MiB;"
            f" the vpc-ipamd binary: {per.get(os.path.realpath(ipamd.IPAMD), 0) / 1024:.1f} MiB.")
        say(f"- PSS (shared pages divided among their users): {roll.get('Pss', 0) / 1024:.1f} MiB;"
            f" private (what this process alone adds): {(roll.get('Private_Dirty', 0) + roll.get('Private_Clean', 0)) / 1024:.1f} MiB;"
            f" shared clean (library code, in memory once for the node): {roll.get('Shared_Clean', 0) / 1024:.1f} MiB.")
        if floor:
            say(f"- floor, measured here: `int main(void) {{ pause(); }}` linked with the same {len(needed)} libraries"
                f" has VmRSS {floor['VmRSS'] / 1024:.1f} MiB before it runs a line of its own code (libc alone is"
                " about 1.1 MiB).")
        top = sorted(per.items(), key=lambda kv: -kv[1])[:8]
        say("- largest mappings: " + ", ".join(f"{os.path.basename(k)} {v / 1024:.1f} MiB" for k, v in top) + ".")
        say()
        # Restart to serving.
        netns_exec = []
        for _ in range(5):
            a = time.monotonic()
            subprocess.run(["ip", "netns", "exec", d.ns, "true"], check=True)
            netns_exec.append(time.monotonic() - a)
        rows = []
        for how in ("SIGTERM", "SIGKILL"):
            times, logged = [], []
            for _ in range(restarts):
                if how == "SIGTERM":
                    assert d.stop() == 0, d.tail()
                else:
                    d.kill()
                d = Daemon(w, env=env, name="big")
                sock = d.sock
                a = time.monotonic()
                d.start(wait=False)
                up = serve_time(d, sock, a)
                times.append(up)
                logged.append(startup_ms_logged(d))
                assert d.call({"op": "pool"})["pool"]["assigned"] == 250
                time.sleep(0.5)  # let the reconciler's start-up pass run before the next stop
            rows.append((how, times, [x for x in logged if x is not None]))
        say(f"Restart to serving ({restarts} runs each): from Popen of `ip netns exec <node> vpc-ipamd` until a"
            " `status` request is answered (connect retried every 0.5 ms). `ip netns exec <node> true` alone takes"
            f" a median {ms(statistics.median(netns_exec))} here, and is inside the measured time.")
        say()
        say("| stopped with | median | max | daemon's own exec-to-serving log (median) |")
        say("|---|---:|---:|---:|")
        for how, times, logged in rows:
            lg = f"{statistics.median(logged):.0f} ms" if logged else "n/a"
            say(f"| {how} | {ms(statistics.median(times))} | {ms(max(times))} | {lg} |")
        say()
        say("Goal: at most 100 ms. aws-node has no published restart figure; its ipamd first waits up to 30 s"
            " for the API server and re-reads IMDS and EC2 before serving (reference §1 process model, §3).")
        say()
    finally:
        d.stop()
        keep_log(d, "big")
        w.down()


def serve_time(d, sock, t0, timeout=10.0):
    end = t0 + timeout
    while time.monotonic() < end:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(2)
        try:
            s.connect(sock)
            s.send(json.dumps({"v": 1, "op": "status"}).encode())
            if json.loads(s.recv(65536)):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.0005)
        finally:
            s.close()
    raise AssertionError(f"not serving after {timeout} s: {d.tail()}")


def startup_ms_logged(d):
    for ln in reversed(d.tail(200).splitlines()):
        if '"msg":"serving"' in ln:
            try:
                return json.loads(ln).get("startup_ms")
            except ValueError:
                return None
    return None


def burst_runs(reps, n_pods, latency=None):
    """Client-side ADD latencies, the summed /metrics histogram, the latency spec, and the daemon's
    per-ENI waits (ms, from the last Create/Attach to the ENI open) of reps bursts."""
    waits, hist, spec, eni_waits, passes = [], None, None, [], []
    for _ in range(reps):
        w = world("m5.xlarge")
        d = Daemon(w, env={"WARM_IP_TARGET": "1"}, name="burst")
        try:
            if latency:
                w.ctl("POST", "/latency", latency)
            spec = w.ctl("GET", "/latency")
            d.start()
            ns = pod_netns(w)
            wait_for(lambda: (poll_pool(d) or {}).get("available", 0) >= 1, timeout=30, what="1 warm address")
            time.sleep(0.5)
            mark = len(d.tail(100000).splitlines())
            res = {}
            go = threading.Barrier(n_pods)

            def one(i):
                go.wait()
                a = time.monotonic()
                r = pod_add(d, f"burst{i}", ns, timeout=20)
                res[i] = (time.monotonic() - a, r.get("ok"))
            ts = [threading.Thread(target=one, args=(i,)) for i in range(n_pods)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            assert all(ok for _, ok in res.values()) and len(res) == n_pods, res
            waits += [x for x, _ in res.values()]
            h = histogram(d)
            hist = h if hist is None else [(le, c + c2) for (le, c), (_, c2) in zip(hist, h)]
            seen = []   # the planner passes with waiting ADDs, and "ENI" where a new ENI opened
            for ln in d.tail(100000).splitlines()[mark:]:
                if '"msg":"ENI ready for pods"' in ln:
                    eni_waits.append(json.loads(ln)["wait_ms"])
                    seen.append("ENI")
                if '"msg":"planned"' in ln and json.loads(ln).get("waiting", 0) > 0:
                    seen.append(json.loads(ln)["waiting"])
            passes.append(seen)
        finally:
            d.stop()
            keep_log(d, "burst-" + (label_slug(latency) if latency else "default"))
            w.down()
    return waits, hist, spec, eni_waits, passes


def part_burst(reps, n_pods=30, what_if=True):
    say(f"## 5. ADD wait: {n_pods} concurrent ADDs onto a pool that must grow (m5.xlarge: 4 ENIs x 14,"
        " WARM_IP_TARGET=1)")
    waits, hist, spec, eni_waits, passes = burst_runs(reps, n_pods)
    mw = model_burst(spec, 14, 4, 1, n_pods)
    say(f"vpc-ipamd: {reps} runs x {n_pods} ADDs, client-side latency of each ADD (socket round trip);"
        " the daemon's vpcipam_add_wait_seconds histogram gives the bucket bound.")
    say()
    say("| | p50 | p90 | p99 | max |")
    say("|---|---:|---:|---:|---:|")
    say(f"| vpc-ipamd ADD latency (measured) | {ms(pct(waits, 50))} | {ms(pct(waits, 90))} | {ms(pct(waits, 99))} |"
        f" {ms(max(waits))} |")
    hb = [hist_pct(hist, p) for p in (50, 90, 99, 100)]
    say("| vpc-ipamd /metrics histogram (bucket upper bound) | " + " | ".join(
        f"<= {b:g} s" if b is not None else "n/a" for b in hb) + " |")
    rows = []
    if what_if:
        for label, lat in (("what-if, IMDS lag 0", {"imds_lag": 0}),
                           ("what-if, IMDS lag 0 and attach 0", {"imds_lag": 0, "attach": 0})):
            if time.monotonic() > DEADLINE:
                say(f"| vpc-ipamd, {label} | skipped: time budget | | | |")
                continue
            x, _, _, ew, _ = burst_runs(max(1, reps - 1), n_pods, lat)
            rows.append((label, ew))
            say(f"| vpc-ipamd, {label} (measured) | {ms(pct(x, 50))} | {ms(pct(x, 90))} | {ms(pct(x, 99))} |"
                f" {ms(max(x))} |")
    say(f"| aws-node (modeled: pod k waits for k-1 increases of 1 address) | {ms(pct(mw, 50))} | {ms(pct(mw, 90))} |"
        f" {ms(pct(mw, 99))} | {ms(max(mw))} |")
    say()
    say(f"- cumulative histogram over the default-latency runs: {hist}")
    late = sum(1 for p in passes if "ENI" in p and any(isinstance(x, int) for x in p[p.index("ENI"):]))
    say(f"- bursts with ADDs still waiting after a new ENI opened (a second round of growth): {late} of {len(passes)};"
        f" per burst, the waiting ADDs each planner pass saw and where ENIs opened: {passes}")
    if eni_waits:
        say(f"- a new ENI's wait for its link and IMDS (daemon log, wait_ms): median {statistics.median(eni_waits):.0f} ms"
            f" over {len(eni_waits)} ENIs at default latencies"
            + "".join(f"; {lb}: median {statistics.median(ew):.0f} ms" for lb, ew in rows if ew) + ".")
    say("- The ADDs beyond the primary ENI's 14 addresses wait for a new ENI: Create, Attach and Modify calls, then"
        " the link (attach latency) and IMDS listing the addresses (IMDS lag after the attach). The what-if rows"
        " zero those emulator delays to show what each costs.")
    say("- aws-node answers an ADD on an empty pool with a failure at once (reference §2, its #330, #1956); the pod"
        " is retried by kubelet. At WARM_IP_TARGET=1 its shortfall is max(WARM_IP_TARGET - available, 0) = 1, so"
        " each 5 s cycle adds one address. The model lets every pod retry instantly, so real pods wait longer.")
    say()


def main():
    global DEADLINE, LOG_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, cooldown-0 churn only, no what-ifs")
    ap.add_argument("--parts", default="cold,churn,big,burst")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds after which optional runs are skipped")
    a = ap.parse_args()
    if not ipamd.IPAMD or not os.access(ipamd.IPAMD, os.X_OK):
        sys.exit("set VPC_IPAMD to the vpc-ipamd binary (scripts/bench-ipamd does)")
    why = harness._why_not()
    if why:
        sys.exit(f"bench-ipamd: {why}")
    parts = a.parts.split(",")
    unknown = set(parts) - {"cold", "churn", "big", "burst"}
    if unknown:
        sys.exit(f"bench-ipamd: unknown part(s) {','.join(sorted(unknown))}; known: cold,churn,big,burst")
    # timeout(1) and ^C: unwind, so every world's finally block takes its namespaces down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    DEADLINE = time.monotonic() + a.budget
    LOG_DIR = tempfile.mkdtemp(prefix="bench-ipamd-logs-")
    t0 = time.monotonic()
    reps = 2 if a.quick else 5
    runs = {"cold": lambda: part_cold(reps), "churn": lambda: part_churn(1000, a.quick),
            "big": lambda: part_big(3 if a.quick else 7),
            "burst": lambda: part_burst(2 if a.quick else 3, what_if=not a.quick)}
    failed = []
    for name in ("cold", "churn", "big", "burst"):
        if name not in parts:
            continue
        try:
            runs[name]()
        except Exception as e:  # one broken part must not hide the others' figures
            failed.append(name)
            say(f"\n**part {name} FAILED**: {type(e).__name__}: {e}\n")
    say(f"(whole run: {time.monotonic() - t0:.0f} s; the daemons' logs are in {LOG_DIR})")
    if failed:
        sys.exit(f"bench-ipamd: part(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

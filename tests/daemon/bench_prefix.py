"""Figures for prefix delegation (docs/benchmarks.md, section "Prefix delegation"), measured against
the emulated VPC with its default, EC2-like latencies, beside secondary-IP mode in the same run and
aws-node's PD loop modeled from the same latencies.

Run by scripts/bench-prefix (which builds the daemon first; it also runs tests/bench-prefix, the
store and planner cost at 250 pods). Parts:

  fill    a cold m5.large to 110 pods: 110 concurrent ADDs (kubelet starting a deployment's pods)
          right after the socket serves; wall time from exec, EC2 calls and mutations. Beside it the
          same in secondary-IP mode up to its 27 addresses (max-pods 29 counts 2 host-network pods),
          and aws-node's PD loop modeled.
  first   where a cold node's first address comes from, each mode with the same 27 ADDs (the /32 mode's
          maximum), alternating: from the daemon's log, each step's time from the process's start (IMDS
          read, socket serving, egress table, start-up EC2 sync, first plan, the first grow's reply
          recorded, first ADD served), each step's duration as median / p90 / max; beside the client's
          first ADD answered.
  churn   EC2 calls during 1,000 pod ADD/DEL operations at WARM_PREFIX_TARGET=1 (population 0..20),
          beside aws-node's PD loop replayed on the same operations.

The aws-node baseline is a model, never a measurement (as in bench_ipamd.py): its pool loop from
shared/reference/aws-vpc-cni.md §2 and aws-vpc-cni-modes.md §1 — every 5 s one increase when free
addresses < 16·WARM_PREFIX_TARGET, adding max(1, W - empty prefixes) prefixes with one
AssignPrivateIpAddresses (then DescribeNetworkInterfaces), or a new ENI; at most every 30 s a decrease
freeing empty prefixes above W; an ADD finding no address fails and is retried by kubelet (here: at
once). Latencies are sampled from the ranges the emulator reports at GET /latency.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_ipamd as b  # noqa: E402
import ipamd  # noqa: E402
from bench_ipamd import MUTATIONS, Lat, ms, pct, say, stats_calls, world  # noqa: E402
from ipamd import Daemon, harness, wait_for  # noqa: E402

PD = {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"}
SAMPLES = 500


def mutations(calls):
    return sum(v for k, v in calls.items() if k in MUTATIONS)


# --- fill: a cold node to max pods ---------------------------------------------------

def fill_once(env, pods, steps=None):
    """(serving, first ADD answered, last ADD answered, all ok, calls by action, prefixes, spec) from exec;
    with steps (a list), the daemon's start-up steps from its log are appended to it (log_steps)."""
    w = world("m5.large")
    d = Daemon(w, env=env, name="fill")
    adds = None
    try:
        spec = w.ctl("GET", "/latency")
        ns = b.pod_netns(w)
        adds = ConcurrentAdds(d, ns, pods)       # forked first: 110 forks take seconds on a busy machine
        t0 = time.monotonic()
        d.start(wait=False)
        serving = None
        while serving is None and time.monotonic() - t0 < 30:
            d.alive_or_raise()
            if b.poll_pool(d) is not None:
                serving = time.monotonic() - t0
            else:
                time.sleep(0.002)
        done = adds.run(t0)
        times = [x for x, _ in done]
        ok = len(done) == pods and all(v for _, v in done)
        calls = stats_calls(w)
        prefixes = b.metric_values(d, ("awscni_total_ipv4_prefixes",)).get("awscni_total_ipv4_prefixes", 0)
        if steps is not None:
            steps.append(log_steps(d.log))
        return serving, min(times), max(times), ok, calls, prefixes, spec
    finally:
        if adds:
            adds.stop()
        d.stop()
        b.keep_log(d, "fill-" + b.label_slug(env))
        w.down()


def _one_add(d, ns, i, go, out):
    go.wait()
    try:
        r = b.pod_add(d, f"fill{i}", ns, timeout=120)
        out.put((time.monotonic(), bool(r.get("ok"))))
    except OSError as e:
        out.put((time.monotonic(), False))
        print(f"ADD fill{i}: {e}", file=sys.stderr)


class ConcurrentAdds:
    """pods ADDs sent at once, each from its own process as kubelet runs one vpc-cni per pod (the daemon
    bounds idle connections per peer process). The processes are forked up front and wait for run()."""

    def __init__(self, d, ns, pods):
        ctx = multiprocessing.get_context("fork")
        self.go, self.out, self.n = ctx.Event(), ctx.Queue(), pods
        self.procs = [ctx.Process(target=_one_add, args=(d, ns, i, self.go, self.out)) for i in range(pods)]
        for p in self.procs:
            p.start()

    def run(self, t0):
        """Release them; [(seconds from t0 until answered, ok)]."""
        self.go.set()
        res = []
        try:
            for _ in range(self.n):
                t, ok = self.out.get(timeout=150)
                res.append((t - t0, ok))
        finally:
            self.stop()
        return res

    def stop(self):
        """End the processes still there (a failed run), each by its own PID."""
        for p in self.procs:
            p.join(0.1 if self.go.is_set() else 0)
            if p.is_alive():
                p.terminate()
                p.join(5)


class AwsNodePD:
    """aws-node's PD datastore and increase step on one network card (WARM_PREFIX_TARGET only)."""

    def __init__(self, lat, max_prefixes, max_enis, warm_prefix, max_pods):
        self.lat, self.max_prefixes, self.max_enis = lat, max_prefixes, max_enis
        self.w, self.max_pods = warm_prefix, max_pods
        self.enis = [[]]               # per ENI, per prefix: the number of assigned addresses
        self.calls = self.mutations = 0

    def total(self):
        return 16 * sum(len(e) for e in self.enis)

    def assigned(self):
        return sum(sum(e) for e in self.enis)

    def empty(self):
        return sum(1 for e in self.enis for p in e if p == 0)

    def too_low(self):
        if self.total() >= self.max_pods:
            return False
        free = self.total() - self.assigned()
        return free < 16 * self.w or (self.w == 0 and free == 0)

    def increase(self, t):
        if not self.too_low():
            return t
        n = max(1, self.w - self.empty())
        for e in self.enis:
            if len(e) < self.max_prefixes:
                self.calls, self.mutations = self.calls + 2, self.mutations + 1
                t += self.lat.api("AssignPrivateIpAddresses") + self.lat.api("DescribeNetworkInterfaces")
                e += [0] * min(n, self.max_prefixes - len(e))
                return t
        if len(self.enis) >= self.max_enis:
            return t
        self.calls, self.mutations = self.calls + 4, self.mutations + 3
        t += sum(self.lat.api(a) for a in ("CreateNetworkInterface", "DescribeInstances", "AttachNetworkInterface"))
        visible = t + self.lat.effect("attach") + self.lat.effect("imds_lag")
        t += self.lat.api("ModifyNetworkInterfaceAttribute")
        wait, k = 0.0, 0
        while t + wait < visible and k < 12:
            wait += 0.1 * (2 ** k)
            k += 1
        self.enis.append([0] * min(n, self.max_prefixes))
        return t + wait

    def take(self, n):
        """Give up to n waiting pods an address each; how many got one."""
        got = 0
        for e in self.enis:
            for i, used in enumerate(e):
                k = min(16 - used, n - got)
                e[i] += k
                got += k
        return got

    def fill(self, pods, horizon=900.0):
        """Time at which `pods` pods that all arrive at t=0 hold an address (kubelet retries at once)."""
        self.calls += 1
        t = self.lat.api("DescribeNetworkInterfaces")       # nodeInit
        t = self.increase(t)                                # prescaling
        served = self.take(pods)
        while served < pods and t < horizon:
            t += 2.5
            t = self.increase(t)
            served += self.take(pods - served)
            if served < pods:
                t += 2.5
        return t


def part_fill(reps):
    say("## Prefix delegation 1. Cold m5.large to 110 pods (goal: at most 6 EC2 mutations)")
    say(f"vpc-ipamd measured, {reps} runs each, the modes alternating (fresh world and store per run): the pods'"
        " ADDs all sent at once as soon as the socket serves; times from exec. The daemon's first pass waits for"
        " its start-up sync with EC2 (DescribeNetworkInterfaces) and the egress SNAT table, in either mode. EC2 calls are the emulator's /stats for the whole run"
        " (start-up reads included). aws-node modeled from the same latency ranges (median of"
        f" {SAMPLES} samples; a lower bound).")
    say()
    say("| mode | pods | socket serving | first ADD answered | last ADD answered (median / max) | EC2 calls |"
        " mutations | prefixes at end |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|")
    spec = None
    modes = (("vpc-ipamd, ENABLE_PREFIX_DELEGATION=true, WARM_PREFIX_TARGET=1", PD, 110),
             ("vpc-ipamd, secondary-IP mode (defaults)", {}, 27))
    results = {label: [] for label, _, _ in modes}
    for _ in range(reps):           # the modes alternate, so the machine's load weighs on both alike
        for label, env, pods in modes:
            s, f, last, ok, calls, pfx, spec = fill_once(env, pods)
            if not ok:
                raise AssertionError(f"{label}: not every ADD succeeded")
            results[label].append((s, f, last, sum(calls.values()), mutations(calls), pfx, calls))
    for label, env, pods in modes:
        rows = results[label]
        med = [statistics.median(r[i] for r in rows) for i in range(6)]
        say(f"| {label} | {pods} | {ms(med[0])} | {ms(med[1])} | {ms(med[2])} / {ms(max(r[2] for r in rows))} |"
            f" {med[3]:.0f} | {med[4]:.0f} (max {max(r[4] for r in rows)}) | {med[5]:.0f} |")
        say(f"|   calls by action (last run) | | | | {dict(sorted(rows[-1][6].items()))} | | | |")
    rng = random.Random(3)
    runs = []
    for _ in range(SAMPLES):
        m = AwsNodePD(Lat(spec, rng), 9, 3, 1, 110)
        runs.append((m.fill(110), m.calls, m.mutations, sum(len(e) for e in m.enis)))
    t = [r[0] for r in runs]
    say(f"| aws-node PD loop, WARM_PREFIX_TARGET=1 (modeled) | 110 | | | {ms(statistics.median(t))}"
        f" (p99 {ms(pct(t, 99))}) | {statistics.median(r[1] for r in runs):.0f} |"
        f" {statistics.median(r[2] for r in runs):.0f} | {statistics.median(r[3] for r in runs):.0f} |")
    say()
    say("- aws-node adds max(1, W - empty prefixes) = 1 prefix per 5 s cycle while free addresses < 16, and an ADD"
        " on an empty pool fails (kubelet retries it; the model lets it retry at once, so aws-node is slower).")
    say()


# --- first: where a cold node's first address comes from -------------------------------

STEPS = (("IMDS read", ("node discovered",)), ("socket serving", ("serving",)),
         ("egress table", ("egress SNAT programmed",)), ("EC2 sync done", ("reconciled with EC2",)),
         ("first plan", ("planned",)), ("grow recorded", ("assigned prefixes", "assigned secondary addresses")),
         ("first ADD served", ("assigned address",)))


def log_steps(path):
    """{step: seconds from the daemon's start} for the first of each of STEPS in one daemon's log (the start is
    'serving' minus its startup_ms), plus the start-up sync's own ms as 'sync ms'."""
    seen, start = {}, None
    with open(path) as f:
        for line in f:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            t = datetime.datetime.strptime(j["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
            for step, msgs in STEPS:
                if j.get("msg") in msgs and step not in seen:
                    seen[step] = t
            if j.get("msg") == "serving" and start is None:
                start = t - j["startup_ms"] / 1000.0
            if j.get("msg") == "reconciled with EC2" and "sync ms" not in seen:
                seen["sync ms"] = j.get("ms", 0) / 1000.0
    return {k: (v if k == "sync ms" else v - start) for k, v in seen.items()}


def part_first(reps, pods=27):
    say(f"## Prefix delegation 1b. A cold node's first address, PD beside /32 with the same {pods} ADDs")
    say(f"{reps} runs per mode, alternating (fresh world and store per run); m5.large; {pods} ADDs sent at once as"
        " soon as the socket serves. Daemon steps from its log, ms from the process's start; the client's first"
        " ADD answered from exec.")
    say()
    modes = (("PD, WARM_PREFIX_TARGET=1", PD), ("secondary IPs (defaults)", {}))
    res = {label: ([], []) for label, _ in modes}
    for _ in range(reps):
        for label, env in modes:
            steps = []
            _, first, _, ok, _, _, _ = fill_once(env, pods, steps)
            if not ok:
                raise AssertionError(f"{label}: not every ADD succeeded")
            res[label][0].append(first)
            res[label][1].append(steps[0])
    say("Each step's duration (from the step before), median / p90 / max, ms:")
    say()
    say("| step | " + " | ".join(label for label, _ in modes) + " |")
    say("|---|" + "---:|" * len(modes))
    names = [s for s, _ in STEPS]

    def cell(v):
        return f"{statistics.median(v) * 1000:.0f} / {pct(v, 90) * 1000:.0f} / {max(v) * 1000:.0f}" if v else "-"
    for i, step in enumerate(names):
        before = names[i - 1] if i else None
        row = []
        for label, _ in modes:
            runs = res[label][1]
            row.append(cell([r[step] - (r[before] if before else 0) for r in runs if step in r and
                             (before is None or before in r)]))
        say(f"| {before or 'start'} → {step} | " + " | ".join(row) + " |")
    say("| **first ADD served, from start** | " +
        " | ".join(cell([r[names[-1]] for r in res[label][1] if names[-1] in r]) for label, _ in modes) + " |")
    say("| client: first ADD answered, from exec | " + " | ".join(cell(res[label][0]) for label, _ in modes) + " |")
    say("| start-up sync's own ms | " +
        " | ".join(cell([r["sync ms"] for r in res[label][1] if "sync ms" in r]) for label, _ in modes) + " |")
    say()


# --- churn: 1,000 pod operations at WARM_PREFIX_TARGET=1 --------------------------------

class AwsNodePDChurn(b.AwsNodeChurn):
    """aws-node's PD pool loop replayed on a trace (ADDs, DELs and the replay are bench_ipamd's
    AwsNodeChurn): cooling addresses count as available but are not handed out; every 5 s one
    increase when too low; at most every 30 s a decrease of the empty prefixes above W (cooldown not
    checked)."""

    def __init__(self, lat, cooldown, w=1, max_prefixes=9):
        self.lat, self.cool, self.w, self.max_prefixes = lat, cooldown, w, max_prefixes
        self.prefixes = [[[None, -1e9] for _ in range(16)]]   # the warm prefix at start
        self.calls = self.mutations = self.failed = 0
        self.pending = []
        self.last_decrease = -1e9

    def _addrs(self):
        return [a for p in self.prefixes for a in p]

    def _arrive(self, t):
        for p in [p for p in self.pending if p[0] <= t]:
            self.pending.remove(p)
            self.prefixes += [[[None, -1e9] for _ in range(16)] for _ in range(p[1])]

    def cycle(self, t):
        free = sum(1 for a in self._addrs() if a[0] is None)
        empty = [p for p in self.prefixes if all(a[0] is None for a in p)]
        if free < 16 * self.w and len(self.prefixes) < self.max_prefixes:
            self.calls, self.mutations = self.calls + 2, self.mutations + 1
            dur = self.lat.api("AssignPrivateIpAddresses") + self.lat.api("DescribeNetworkInterfaces")
            self.pending.append((t + dur, max(1, self.w - len(empty))))
            return dur
        if len(empty) > self.w and t - self.last_decrease >= 30.0:
            self.last_decrease = t
            self.calls, self.mutations = self.calls + 1, self.mutations + 1
            for p in empty[:len(empty) - self.w]:
                self.prefixes.remove(p)
            return self.lat.api("UnassignPrivateIpAddresses")
        return 0.0


def part_churn(ops):
    say(f"## Prefix delegation 2. EC2 calls during {ops} pod operations at WARM_PREFIX_TARGET=1 (goal: at most 10)")
    say("The seeded random walk of bench_ipamd.py (0 to 20 pods), m5.large, counted from the moment the first"
        " prefix is free; 'settled' adds 10 s after the last operation. Beside it the same walk in secondary-IP"
        " mode at WARM_IP_TARGET=5 (bench_ipamd.py's figure, same run) and aws-node's PD loop replayed on the"
        " walk's operations.")
    say()
    say("| run | duration | EC2 calls during (mutations) | after settling (mutations) | ADD p50 / p99 | failed ADDs |"
        " pool at end (total / assigned / cooling) |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    runs = [("PD, WARM_PREFIX_TARGET=1, IP_COOLDOWN_PERIOD=1 at 30 ops/s", dict(PD, IP_COOLDOWN_PERIOD="1"), 30.0, 16),
            ("PD, WARM_PREFIX_TARGET=1, IP_COOLDOWN_PERIOD=0, unpaced", dict(PD, IP_COOLDOWN_PERIOD="0"), 0, 16),
            ("secondary IPs, WARM_IP_TARGET=5, IP_COOLDOWN_PERIOD=1 at 30 ops/s",
             {"WARM_IP_TARGET": "5", "IP_COOLDOWN_PERIOD": "1"}, 30.0, 5)]
    for label, env, pace, warm in runs:
        r = b.churn_run("m5.large", env, ops, pace, warm_want=warm)
        mut, mut2 = mutations(r["during"]), mutations(r["after"])
        p = r["pool"] or {}
        say(f"| {label} | {r['done']} ops in {r['took']:.1f} s | {sum(r['during'].values())} ({mut}) |"
            f" {sum(r['after'].values())} ({mut2}) | {ms(statistics.median(r['lat']))} / {ms(pct(r['lat'], 99))} |"
            f" {r['failures']} | {p.get('total')} / {p.get('assigned')} / {p.get('cooldown')} |")
        say(f"|   calls by action | | {dict(sorted(r['during'].items()))} | {dict(sorted(r['after'].items()))} | | | |")
        if "ENABLE_PREFIX_DELEGATION" in env:
            cool = float(env["IP_COOLDOWN_PERIOD"])
            k = 30.0 if cool == 1 else 1.0     # the paced run stands for 1 op/s with a 30 s cooldown
            trace = [(t * k, op, cid) for t, op, cid in r["trace"]]
            rng = random.Random(5)
            ms_ = [AwsNodePDChurn(Lat(r["spec"], rng), cool * k).replay(trace, (r["took"] + 10.0) * k,
                                                                         rng.uniform(0, 5.0)) for _ in range(100)]
            say(f"|   aws-node PD loop, modeled on the same operations{' 30x slower, 30 s cooldown' if k > 1 else ''}"
                f" | {r['took'] * k:.0f} s | | {statistics.median(m.calls for m in ms_):.0f}"
                f" ({statistics.median(m.mutations for m in ms_):.0f}) | | {statistics.median(m.failed for m in ms_):.0f} | |")
    say()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="fill,first,churn")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    if not ipamd.IPAMD or not os.access(ipamd.IPAMD, os.X_OK):
        sys.exit("set VPC_IPAMD to the vpc-ipamd binary (scripts/bench-prefix does)")
    why = harness._why_not()
    if why:
        sys.exit(f"bench-prefix: {why}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b.LOG_DIR = tempfile.mkdtemp(prefix="bench-prefix-logs-")
    t0 = time.monotonic()
    failed = []
    for name, fn in (("fill", lambda: part_fill(a.reps)), ("first", lambda: part_first(a.reps)),
                     ("churn", lambda: part_churn(1000))):
        if name not in a.parts.split(","):
            continue
        try:
            fn()
        except Exception as e:  # one broken part must not hide the other's figures
            failed.append(name)
            say(f"\n**part {name} FAILED**: {type(e).__name__}: {e}\n")
    say(f"(whole run: {time.monotonic() - t0:.0f} s; the daemons' logs are in {b.LOG_DIR})")
    if failed:
        sys.exit(f"bench-prefix: part(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

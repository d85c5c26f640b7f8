"""scripts/bench-fleet's driver: a fleet of nodes in one emulated VPC and
account, each running the real vpc-ipamd, scaled 0 -> pods -> 0 -> pods
through the real vpc-cni, beside aws-node's loop modeled against the same
token buckets (fleet_model.py). Prints the figures (docs/benchmarks.md,
"Fleet").

One world (tests/emulator, EC2-like latencies, the account's token buckets
at EC2's documented sizes, never scaled) with N nodes. Pod namespaces are
made first (podrun.PodNetns). Then every daemon is started (Popen of `ip
netns exec <node> vpc-ipamd`, defaults but for its socket and store paths),
all within about a second (each is set up in its namespace first and
exec'd at a signal); when every one answers, all N x P pods arrive at
once: each is an ADD of vpc-cni exec'd in its node's namespace (podrun.
Plugins), at most --per-node at a time in a node (a runtime's workers: the
nodes share this machine's one kernel and its rtnl lock). A failed ADD is retried after --retry-delay, as kubelet retries a
sandbox. Then every pod is DELeted (prevResult and CNI_NETNS, as CRI
sends), the fleet left alone for --settle seconds, fresh namespaces made,
and all pods ADDed again. A sampler reads EC2's truth (GET /truth) every 2 s
for the addresses the fleet holds. At the end every pod's address is checked
against EC2 (on its node's ENIs, no address given to two pods).

Everything is bounded (--phase-timeout per phase, the script's timeout(1))
and torn down in finally blocks, also on SIGTERM: plugins still running are
SIGKILLed by PID, daemons get SIGTERM then SIGKILL by PID, namespaces close
with their descriptors, the world goes down with its namespaces.
"""

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fleet_model  # noqa: E402
import ipamd  # noqa: E402
from ipamd import Daemon, harness  # noqa: E402
from bench_ipamd import Lat  # noqa: E402
from podrun import Plugins, PodNetns, raise_nofile, cpu_seconds, metrics, pct, proc_mem  # noqa: E402

LIMITS = {"t3.medium": (5, 3, 17), "m5.large": (9, 3, 29), "m5.xlarge": (14, 4, 58),
          "m5.2xlarge": (14, 4, 58), "m5.4xlarge": (29, 8, 234), "c5.18xlarge": (49, 15, 737)}
CLIENT_METRICS = ("vpcipam_ec2_throttle_waits_total", "vpcipam_ec2_throttle_wait_seconds_total",
                  "vpcipam_ec2_throttled_total", "vpcipam_add_waited_total")


def say(line=""):
    print(line, flush=True)


class Pod:
    __slots__ = ("cid", "node", "netns", "arrived", "addressed", "addr", "result", "fails", "gone", "lat")

    def __init__(self, cid, node, netns):
        self.cid, self.node, self.netns = cid, node, netns
        self.arrived = self.addressed = self.gone = None
        self.addr, self.result, self.fails, self.lat = None, None, 0, []


class Fleet:
    def __init__(self, args, world, plugins, tmp):
        self.a, self.w, self.plugins, self.tmp = args, world, plugins, tmp
        self.daemons = []
        self.lock = threading.Lock()
        self.samples = []           # (t, addresses held, ENIs, pods addressed)
        self.per_node = []          # (t, [secondary addresses of node i])
        self.sampling = True
        self.t0 = None

    def conf(self, node):
        return {"cniVersion": "1.0.0", "name": "vpc", "type": "vpc-cni", "socket": self.daemons[node].sock}

    # --- daemons ---------------------------------------------------------------------
    def start_daemons(self):
        env = {"AWS_VPC_K8S_CNI_LOGLEVEL": "info"}      # the daemon's default (the fixture sets debug)
        env.update(kv.split("=", 1) for kv in self.a.daemon_env)
        self.daemons = [Daemon(self.w, i, env=env, name=f"n{i}") for i in range(self.a.nodes)]
        for d in self.daemons:       # the node boots: its namespace entered, the exec held
            d.start(wait=False, gate=True)
        harness.wait_for(lambda: all(comm(d.proc.pid) == "sh" for d in self.daemons), timeout=60,
                         interval=0.05, what="every node's shell waiting to exec its daemon")
        spawned = []
        self.t0 = time.monotonic()
        for d in self.daemons:
            d.release()
            spawned.append(time.monotonic() - self.t0)
        serving = [None] * len(self.daemons)

        def watch(i, d):         # one thread per daemon: a slow one must not delay the others' times
            end = self.t0 + 60
            while serving[i] is None and time.monotonic() < end and d.proc.poll() is None:
                if os.path.exists(d.sock) and d.try_call({"op": "status"}, timeout=1) is not None:
                    serving[i] = time.monotonic() - self.t0
                else:
                    time.sleep(0.1)      # 100 pollers: more often would take the daemons' CPU
        ts = [threading.Thread(target=watch, args=(i, d)) for i, d in enumerate(self.daemons)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if None in serving:
            raise AssertionError(f"{serving.count(None)} daemons not serving 60 s after the start")
        return spawned, serving

    def stop_daemons(self):
        for d in self.daemons:
            if d.proc and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + 20
        for d in self.daemons:
            if d.proc:
                try:
                    d.proc.wait(max(0.1, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait()
                d.logf.close()

    # --- the sampler -------------------------------------------------------------------
    def sampler(self, pods_ref):
        while self.sampling:
            try:
                held, enis = self.held()
                self.per_node.append((time.monotonic() - self.t0, self.last_per_node))
                with self.lock:
                    n = sum(1 for p in pods_ref[0] if p.addressed is not None and p.gone is None)
                self.samples.append((time.monotonic() - self.t0, held, enis, n))
            except Exception as e:  # a slow truth dump must not end the run
                say(f"# sampler: {type(e).__name__}: {e}")
            time.sleep(2.0)

    def held(self):
        """(secondary addresses, ENIs) attached to the fleet's instances, from EC2's truth."""
        t = self.w.truth()
        enis = [e for e in t["enis"] if (e.get("attachment") or {}).get("instance_id")]
        node_of = {n["instance_id"]: i for i, n in enumerate(self.w.nodes)}
        per = [0] * len(self.w.nodes)
        for e in enis:
            per[node_of[e["attachment"]["instance_id"]]] += len(e["secondary_ips"])
        self.last_per_node = per
        return sum(len(e["secondary_ips"]) for e in enis), len(enis)

    # --- phases --------------------------------------------------------------------------
    def run_phase(self, pods, cmd):
        """ADD (or DEL) every pod at once; failures retried. -> seconds until the last succeeded."""
        t_start = time.monotonic()
        remaining = [len(pods)]
        done = threading.Event()
        deadline = t_start + self.a.phase_timeout

        def submit(p, not_before=0.0):
            conf = self.conf(p.node)
            if cmd == "DEL" and p.result is not None:
                conf["prevResult"] = p.result
            self.plugins.submit(self.w.node_ns(p.node), cmd, p.cid, p.netns, conf,
                                lambda rc, dt, out, p=p: finished(p, rc, dt, out), not_before)

        def finished(p, rc, dt, out):
            now = time.monotonic()
            p.lat.append(dt)
            if rc == 0:
                with self.lock:
                    if cmd == "ADD":
                        p.addressed = now
                        p.result = json.loads(out)
                        p.addr = p.result["ips"][0]["address"].split("/")[0]
                    else:
                        p.gone = now
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()
                return
            p.fails += 1
            if now + self.a.retry_delay < deadline:
                submit(p, now + self.a.retry_delay)
            else:
                with self.lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()

        for p in pods:
            p.arrived, p.fails, p.lat = t_start, 0, []
            if cmd == "ADD":
                p.addressed = p.gone = None
        # round robin over nodes: every node's first pod, then every node's second, ...
        for p in sorted(pods, key=lambda p: (int(p.cid.rsplit("-", 1)[1]), p.node)):
            submit(p)
        done.wait(self.a.phase_timeout + 30)
        return time.monotonic() - t_start

    def make_pods(self, netns, tag):
        pods, nsi = [], iter(netns)
        for node in range(self.a.nodes):
            for i in range(self.a.pods):
                pods.append(Pod(f"{tag}-{node}-{i}", node, next(nsi)))
        return pods


def pool_ready(per_node, t_from, t_after, want, nodes):
    """Per node: seconds from t_from until EC2 first showed (sampled) at least `want` secondary addresses on
    it, looking at samples taken after t_after (None: never)."""
    out = [None] * nodes
    for t, per in per_node:
        if t < t_after:
            continue
        for i, n in enumerate(per):
            if out[i] is None and n >= want:
                out[i] = t - t_from
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def phase_figures(pods, t_from, nodes):
    """Per node: seconds from t_from until its last pod had an address (None when one never got one)."""
    per = {}
    for p in pods:
        t = None if p.addressed is None else p.addressed - t_from
        per.setdefault(p.node, []).append(t)
    node_done = [None if None in ts else max(ts) for ts in (per[n] for n in range(nodes))]
    return node_done


def fmt(x):
    return "n/a" if x is None else f"{x:.1f} s"


def dist(xs):
    ok = [x for x in xs if x is not None]
    if not ok:
        return "n/a"
    missing = len(xs) - len(ok)
    return (f"{pct(ok, 50):.1f} / {pct(ok, 99):.1f} / {max(ok):.1f} s" +
            (f" ({missing} never)" if missing else ""))


def check_truth(w, pods):
    """Every pod's address is a secondary of an ENI of its own node, and no address is held twice."""
    t = w.truth()
    inst = {i["id"]: i for i in t["instances"]}
    node_of = {n["instance_id"]: idx for idx, n in enumerate(w.nodes)}
    owner = {}
    for e in t["enis"]:
        a = e.get("attachment") or {}
        if a.get("instance_id") in inst:
            for ip in e["secondary_ips"]:
                owner[ip] = node_of.get(a["instance_id"])
    problems, seen = [], {}
    for p in pods:
        if p.addr is None:
            continue
        if p.addr in seen:
            problems.append(f"{p.addr} given to {seen[p.addr]} and {p.cid}")
        seen[p.addr] = p.cid
        if owner.get(p.addr) != p.node:
            problems.append(f"{p.cid} has {p.addr}, which EC2 has on node {owner.get(p.addr)}")
    return problems


def calls_delta(before, after):
    out = {}
    for k, v in after["api"].items():
        b = before["api"].get(k, {"calls": 0, "errors": {}})
        c = v["calls"] - b["calls"]
        thr = v["errors"].get("RequestLimitExceeded", 0) - b["errors"].get("RequestLimitExceeded", 0)
        if c:
            out[k] = (c, thr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=50, help="pods per node")
    ap.add_argument("--instance-type", default="m5.xlarge")
    ap.add_argument("--settle", type=float, default=150.0,
                    help="seconds left alone after the scale-down (vpc-ipamd releases nothing within"
                         " VPC_IPAM_SHRINK_DELAY, 120 s, of a grow)")
    ap.add_argument("--phase-timeout", type=float, default=300.0)
    ap.add_argument("--retry-delay", type=float, default=1.0, help="a failed ADD is retried after this")
    ap.add_argument("--spawners", type=int, default=2, help="threads spawning plugins")
    ap.add_argument("--daemon-env", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for every daemon beside its defaults (repeatable)")
    ap.add_argument("--per-node", type=int, default=3,
                    help="plugins running at once per node (a runtime's workers; 0: no limit)")
    a = ap.parse_args()
    if not ipamd.IPAMD or not os.access(ipamd.IPAMD, os.X_OK):
        sys.exit("set VPC_IPAMD (scripts/bench-fleet does)")
    cni = os.environ.get("VPC_CNI", "")
    if not os.access(cni, os.X_OK):
        sys.exit("set VPC_CNI (scripts/bench-fleet does)")
    why = harness._why_not()
    if why:
        sys.exit(f"bench-fleet: {why}")
    if a.instance_type not in LIMITS:
        sys.exit(f"bench-fleet: no limits known for {a.instance_type}; known: {', '.join(LIMITS)}")
    max_ips, max_enis, max_pods = LIMITS[a.instance_type]
    if a.pods > max_ips * max_enis:
        sys.exit(f"bench-fleet: {a.pods} pods do not fit {a.instance_type} ({max_ips * max_enis} addresses)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if raise_nofile() < 2 * a.nodes * a.pods + 2000:
        sys.exit(f"bench-fleet: RLIMIT_NOFILE's hard limit is below {2 * a.nodes * a.pods + 2000} (a descriptor per pod)")
    tmp = tempfile.mkdtemp(prefix="bench-fleet-")
    logs = tempfile.mkdtemp(prefix="bench-fleet-logs-")
    pods_ns = PodNetns()
    w = plugins = fleet = None
    try:
        t_up = time.monotonic()
        w = harness.WorldFixture(nodes=a.nodes, instance_type=a.instance_type, fast=False,
                                extra=("--timeout", str(30 + a.nodes)))
        say(f"# world: {a.nodes} x {a.instance_type} up in {time.monotonic() - t_up:.1f} s"
            f" (prefix {w.prefix}); throttle {json.dumps(w.ctl('GET', '/throttle')['buckets'])}")
        spec = w.ctl("GET", "/latency")
        t_ns = time.monotonic()
        ns1 = pods_ns.make(a.nodes * a.pods)
        say(f"# {len(ns1)} pod namespaces made in {time.monotonic() - t_ns:.1f} s")
        plugins = Plugins(cni, tmp, a.spawners, a.per_node)
        fleet = Fleet(a, w, plugins, tmp)
        pods_ref = [[]]
        stats0 = w.ctl("GET", "/stats")
        spawned, serving = fleet.start_daemons()
        if a.daemon_env:
            say(f"# every daemon's environment beside its defaults: {' '.join(a.daemon_env)}")
        say(f"# daemons: all {a.nodes} spawned within {max(spawned):.2f} s; serving p50 / max"
            f" {statistics.median(serving):.2f} / {max(serving):.2f} s after the first spawn")
        threading.Thread(target=fleet.sampler, args=(pods_ref,), daemon=True).start()
        mem_start = [proc_mem(d.proc.pid) for d in fleet.daemons]

        up1 = fleet.make_pods(ns1, "a")
        pods_ref[0] = up1
        t_arrive1 = time.monotonic() - fleet.t0
        took1 = fleet.run_phase(up1, "ADD")
        stats1 = w.ctl("GET", "/stats")
        mem_up = [proc_mem(d.proc.pid) for d in fleet.daemons]
        say(f"# scale-up done in {took1:.1f} s after the pods arrived ({t_arrive1:.1f} s after the first spawn)")
        problems = check_truth(w, up1)

        took_del = fleet.run_phase(up1, "DEL")
        t_down = time.monotonic()
        say(f"# scale-down: every DEL done in {took_del:.1f} s; leaving the fleet alone {a.settle:.0f} s")
        while time.monotonic() < t_down + a.settle:
            time.sleep(1.0)
        held_idle, enis_idle = fleet.held()
        stats2 = w.ctl("GET", "/stats")
        pods_ns.close(ns1)
        ns2 = pods_ns.make(a.nodes * a.pods)

        up2 = fleet.make_pods(ns2, "b")
        pods_ref[0] = up2
        t_arrive2 = time.monotonic()
        took2 = fleet.run_phase(up2, "ADD")
        say(f"# scale-up again done in {took2:.1f} s")
        problems += check_truth(w, up2)
        time.sleep(10.0)        # the pools' last growth settles before the final count
        fleet.sampling = False
        held_final, enis_final = fleet.held()
        stats3 = w.ctl("GET", "/stats")
        client = [metrics(d, CLIENT_METRICS) for d in fleet.daemons]
        mem_end = [proc_mem(d.proc.pid) for d in fleet.daemons]
        cpu = [cpu_seconds(d.proc.pid) for d in fleet.daemons]
        dead = [i for i, d in enumerate(fleet.daemons) if d.proc.poll() is not None]

        model = fleet_model.simulate(Lat(spec, random.Random(1)), a.nodes, a.pods, max_ips, max_enis, max_pods,
                                     t_arrive1, a.settle)
        report(a, fleet, up1, up2, t_arrive1, t_arrive2, took_del,
               (stats0, stats1, stats2, stats3), (held_idle, enis_idle, held_final, enis_final),
               client, (mem_start, mem_up, mem_end), cpu, model, problems, dead)
        return 1 if problems or dead else 0
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second SIGTERM must not cut the teardown short
        if plugins:
            plugins.close()
        pods_ns.close()
        if fleet:
            fleet.sampling = False
            fleet.stop_daemons()
            for d in fleet.daemons:
                try:
                    shutil.copy(d.log, logs)
                except OSError:
                    pass
        if w:
            w.down()
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"# daemon logs: {logs}")


def report(a, fleet, up1, up2, t_arrive1, t_arrive2, took_del, stats, held, client, mem, cpu, model,
           problems, dead):
    n_pods = a.nodes * a.pods
    max_ips, max_enis, _ = LIMITS[a.instance_type]
    say()
    say(f"## Fleet: {a.nodes} x {a.instance_type}, {a.pods} pods each ({n_pods} pods), one account")
    say()
    nd1 = phase_figures(up1, fleet.t0, a.nodes)
    nd2 = phase_figures(up2, t_arrive2, a.nodes)
    m1, m2 = model["up"], model["up again"]
    fails1, fails2 = sum(p.fails for p in up1), sum(p.fails for p in up2)
    lat1 = [x for p in up1 for x in p.lat]
    say("| | vpc-ipamd (measured) | aws-node (modeled) |")
    say("|---|---:|---:|")
    say(f"| scale-up: every pod of a node addressed, from the daemons' start, p50 / p99 / max over nodes |"
        f" {dist(nd1)} | {dist(m1['node_done'])} |")
    t_a2 = t_arrive2 - fleet.t0
    pr1 = pool_ready(fleet.per_node, 0.0, 0.0, a.pods, a.nodes)
    pr2 = pool_ready(fleet.per_node, t_a2, t_a2, a.pods, a.nodes)
    say(f"| scale-up: EC2 shows enough addresses on the node for its pods (sampled every ~2 s), p50 / p99 / max |"
        f" {dist(pr1)} | (modeled pods are served the moment addresses arrive: the rows above) |")
    done1 = None if None in nd1 else max(nd1)
    say(f"| scale-up: whole fleet addressed | {fmt(done1)} | {fmt(max(m1['node_done']) if m1['complete'] else None)} |")
    say(f"| scale-up: ADD exec-to-exit p50 / p99 (every attempt) | {pct(lat1, 50):.2f} / {pct(lat1, 99):.2f} s |"
        f" (pod wait p50 / p99 {pct(m1['pod_times'], 50):.1f} / {pct(m1['pod_times'], 99):.1f} s) |")
    never1, never2 = sum(p.addressed is None for p in up1), sum(p.addressed is None for p in up2)
    say(f"| scale-up: failed ADDs (retried); pods never addressed within --phase-timeout | {fails1}; {never1} |"
        f" >= {m1['first_failed']} (pods whose first ADD finds no address) |")
    say(f"| scale-up again (from the pods' arrival), p50 / p99 / max over nodes | {dist(nd2)} |"
        f" {dist(m2['node_done'])} |")
    say(f"| scale-up again: EC2 shows enough addresses on the node, from the pods' arrival | {dist(pr2)} | |")
    say(f"| scale-up again: failed ADDs; never addressed | {fails2}; {never2} | >= {m2['first_failed']} |")
    say(f"| scale-down: every DEL answered | {took_del:.1f} s | (no EC2 call on the DEL path) |")
    s0, s1, s2, s3 = stats
    tot = calls_delta(s0, s3)
    mc, mt = model["total_calls"], model["total_throttled"]
    calls, thr = sum(c for c, _ in tot.values()), sum(t for _, t in tot.values())
    say(f"| EC2 calls, whole run | {calls} | {sum(mc.values())} |")
    say(f"| throttled (RequestLimitExceeded), whole run | {thr} ({100 * thr / max(calls, 1):.1f} %) |"
        f" {sum(mt.values())} ({100 * sum(mt.values()) / max(sum(mc.values()), 1):.1f} %) |")
    cw = [c["vpcipam_ec2_throttle_waits_total"] or 0 for c in client]
    cs = [c["vpcipam_ec2_throttle_wait_seconds_total"] or 0 for c in client]
    say(f"| client-side rate-limit waits (all daemons; seconds waited) | {sum(cw):.0f} ({sum(cs):.0f} s) | (none: aws-node has no client-side limiter) |")
    held_idle, enis_idle, held_final, enis_final = held
    peak = max((s[1] for s in fleet.samples), default=0)
    say(f"| addresses held, peak (sampled every 2 s) | {peak} | {model['peak']} |")
    say(f"| addresses held {a.settle:.0f} s after the scale-down (idle waste) | {held_idle} on {enis_idle} ENIs |"
        f" {model['down']['held_idle']} |")
    say(f"| addresses held at the end, {n_pods} pods running (waste) | {held_final} on {enis_final} ENIs (primaries included)"
        f" ({held_final - n_pods}) | {model['final']} ({model['final'] - n_pods}) |")
    ms, mu, me = mem
    say(f"| memory per daemon, VmRSS p50 / max at the end | {statistics.median(m['VmRSS'] for m in me) / 1024:.1f} /"
        f" {max(m['VmRSS'] for m in me) / 1024:.1f} MiB | 40-64 MiB (published, v1.12, aws-vpc-cni#2436) |")
    say(f"| memory per daemon, PSS / private p50 at the end | {statistics.median(m['Pss'] for m in me) / 1024:.1f} /"
        f" {statistics.median(m['Private'] for m in me) / 1024:.1f} MiB | |")
    say()
    say("EC2 calls by action (calls, of which throttled):")
    say()
    say("| action | vpc-ipamd: up | down + idle | up again + 10 s | total | aws-node (modeled) total |")
    say("|---|---:|---:|---:|---:|---:|")
    d1, d2, d3 = calls_delta(s0, s1), calls_delta(s1, s2), calls_delta(s2, s3)
    for k in sorted(set(tot) | set(mc)):
        def c(d):
            x = d.get(k)
            return "" if not x else (f"{x[0]} ({x[1]})" if x[1] else f"{x[0]}")
        mm = f"{mc.get(k, 0)} ({mt.get(k, 0)})" if mt.get(k) else f"{mc.get(k, 0)}" if mc.get(k) else ""
        say(f"| {k} | {c(d1)} | {c(d2)} | {c(d3)} | {c(tot)} | {mm} |")
    say()
    say(f"- daemons: CPU seconds p50 / max {statistics.median(cpu):.1f} / {max(cpu):.1f};"
        f" VmRSS at start p50 {statistics.median(m['VmRSS'] for m in ms) / 1024:.1f} MiB, after the first scale-up p50"
        f" {statistics.median(m['VmRSS'] for m in mu) / 1024:.1f} MiB, VmHWM max {max(m['VmHWM'] for m in me) / 1024:.1f} MiB;"
        f" client-side waits per daemon p50 / max {pct(cw, 50):.0f} / {max(cw):.0f};"
        f" throttled answers the daemons counted {sum(c['vpcipam_ec2_throttled_total'] or 0 for c in client):.0f};"
        f" ADDs that waited in a daemon for growth {sum(c['vpcipam_add_waited_total'] or 0 for c in client):.0f}.")
    say(f"- pods arrived {t_arrive1:.1f} s after the first daemon was spawned (when every daemon answered);"
        f" the model's pods arrive at the same time.")
    say(f"- fleet addresses over time (s from the first spawn: held, ENIs, pods addressed): "
        + ", ".join(f"{t:.0f}: {h}/{e}/{n}" for t, h, e, n in fleet.samples[::max(1, len(fleet.samples) // 40)]))
    say(f"- truth check (each pod's address on its own node's ENIs in EC2, none held twice):"
        f" {'OK' if not problems else str(len(problems)) + ' problems: ' + '; '.join(problems[:5])}")
    if dead:
        say(f"- daemons that exited: {dead}")
    say(f"- load average at the end: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    sys.exit(main())

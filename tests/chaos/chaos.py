"""Crash and fault chaos: pod churn through vpc-cni against vpc-ipamd while EC2
misbehaves and the daemon is SIGKILLed at random moments.

One emulated node. Worker threads create and delete pods (named network
namespaces wired by the real vpc-cni binary) as a runtime would: an ADD that
fails is followed by a DEL, then retried later. Meanwhile the emulator injects
throttling, 5xx, timeouts and lost responses, and a killer thread SIGKILLs
vpc-ipamd at random moments and restarts it. After each restart (workers
paused) and at the end, the store, the kernel and EC2 are compared as
sets of addresses, ENI by ENI:

  - the addresses the store holds on each ENI are exactly EC2's secondary
    addresses of that ENI; no ENI of this instance is left `available`; no
    EC2 operation left open;
  - the addresses leased to pods on each ENI (store) are exactly those the
    node's kernel routes for that ENI (a "from IP lookup <ENI table>" rule,
    or none for the primary ENI's main table, besides "to IP lookup main"
    and the host /32 route), and exactly the live pods' addresses;
  - every live pod's address is the one the daemon holds for it, on its eth0;
    no address held for a pod that is gone (after reconciliation);
  - the host veths are exactly those of the live pods.

A run proves something only if it did what it claims: it also fails unless it
SIGKILLed the daemon at least --min-kills times, EC2 misbehaved (an injected
fault fired or a request was throttled) at least --min-faults times, and at
least --min-adds ADDs succeeded (defaults scale with --ops). Prints those
numbers as a TAP diagnostic line, then one summary line. Exit status 1 on any
violation. The operations stop after --ops or --seconds, the seconds counted
without the time the checks after each restart held the workers (at most
--seconds more).

usage: chaos.py [--ops N] [--seconds S] [--workers W] [--seed X]
                [--min-kills K] [--min-faults F] [--min-adds A]
"""

import argparse
import ipaddress
import json
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))

from ipamd import Daemon, harness, stop_all, wait_for  # noqa: E402

CNI = os.environ.get("VPC_CNI", "")
TAG_INSTANCE = "node.k8s.amazonaws.com/instance_id"
VETH_ALIAS = "vpc-cni:eth0:"    # PROTO_VETH_ALIAS_PREFIX, then ifname and container id


class Chaos:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.w = harness.WorldFixture(nodes=1, fast=True)
        self.ns = self.w.node_ns(0)
        self.inst = self.w.nodes[0]["instance_id"]
        self.env = {"WARM_IP_TARGET": "3", "MINIMUM_IP_TARGET": "4", "IP_COOLDOWN_PERIOD": "2",
                    "VPC_IPAM_ADD_WAIT": "5", "VPC_IPAM_SHRINK_DELAY": "5", "AWS_VPC_K8S_CNI_LOGLEVEL": "info"}
        if args.prefix_delegation:      # /28 prefixes, grown and shrunk by WARM_PREFIX_TARGET
            self.env = {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "IP_COOLDOWN_PERIOD": "2",
                        "VPC_IPAM_ADD_WAIT": "5", "VPC_IPAM_SHRINK_DELAY": "5", "AWS_VPC_K8S_CNI_LOGLEVEL": "info"}
        self.d = None
        self.lock = threading.RLock()      # guards the bookkeeping below
        self.idle = threading.Condition(self.lock)
        self.in_flight = 0                 # CNI calls running now
        self.paused = False                # the verifier wants a quiet node
        self.paused_s = 0.0                # time the workers spent held by the verifier
        self.paused_at = 0.0
        self.pods = {}                     # name -> ip, pods whose ADD succeeded and not yet deleted
        self.results = {}                  # name -> ADD result, handed back as prevResult on DEL
        self.seq = 0
        self.ops = self.kills = self.add_retries = self.adds_ok = 0
        self.faults_fired = 0              # injected faults that fired, summed before each /faults reset
        self.violations = []
        self.stop = threading.Event()

    # --- the daemon ---------------------------------------------------------------
    def start_daemon(self):
        self.d = Daemon(self.w, env=self.env, name="chaos").start()

    def settle(self):
        """Wait for the daemon to have reconciled: no open intent, store == EC2."""
        def ok():
            r = self.d.try_call({"op": "intents"})
            return r and r.get("ok") and r["intents"] == [] and self.store_enis() == self.truth_enis()
        try:
            wait_for(ok, timeout=30, interval=0.2, what="the daemon to settle")
        except AssertionError as e:
            self.violate(str(e))

    # --- pods ---------------------------------------------------------------------
    def begin(self):
        with self.idle:
            while self.paused:
                self.idle.wait()
            self.in_flight += 1

    def end(self):
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def pause(self):
        with self.idle:
            self.paused = True
            self.paused_at = time.monotonic()
            while self.in_flight:
                self.idle.wait()

    def resume(self):
        with self.idle:
            self.paused = False
            self.paused_s += time.monotonic() - self.paused_at
            self.idle.notify_all()

    def cni(self, cmd, name, prev=None):
        conf = {"cniVersion": "1.1.0", "name": "chaos", "type": "vpc-cni", "socket": self.d.sock}
        if prev:
            conf["prevResult"] = prev
        env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": name, "CNI_NETNS": f"/var/run/netns/{name}",
               "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(CNI),
               "CNI_ARGS": f"K8S_POD_NAMESPACE=chaos;K8S_POD_NAME={name};IgnoreUnknown=1"}
        p = subprocess.run(["ip", "netns", "exec", self.ns, CNI], env=env, input=json.dumps(conf),
                           capture_output=True, text=True, timeout=60)
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else {})

    def add_pod(self):
        self.begin()
        try:
            with self.lock:
                self.seq += 1
                name = f"{self.w.prefix}-c{self.seq}"
            subprocess.run(["ip", "netns", "add", name], check=True)
            rc, out = self.cni("ADD", name)
            with self.lock:
                self.ops += 1
                if rc == 0:
                    self.pods[name] = out["ips"][0]["address"].split("/")[0]
                    self.results[name] = out
                    self.adds_ok += 1
                    return
                self.add_retries += 1
            # As a runtime does: DEL after a failed ADD, and the pod is retried later.
            self.cni("DEL", name)
            subprocess.run(["ip", "netns", "del", name])
        finally:
            self.end()

    def del_pod(self):
        self.begin()
        try:
            with self.lock:
                if not self.pods:
                    return
                name = self.rng.choice(sorted(self.pods))
                del self.pods[name]
                prev = self.results.pop(name, None)
            rc, out = self.cni("DEL", name, prev)
            with self.lock:
                self.ops += 1
            if rc != 0:
                self.violate(f"DEL {name} failed: {out}")
            subprocess.run(["ip", "netns", "del", name])
        finally:
            self.end()

    def worker(self):
        rng = random.Random(self.rng.random())
        while not self.stop.is_set() and self.ops < self.a.ops:
            with self.lock:
                n = len(self.pods)
            if n < 6 or (n < 20 and rng.random() < 0.55):
                self.add_pod()
            else:
                self.del_pod()

    # --- faults and kills ------------------------------------------------------------
    def inject(self):
        faults = [
            {"action": "AssignPrivateIpAddresses", "kind": "error", "status": 500, "code": "InternalError",
             "probability": 0.15},
            {"action": "CreateNetworkInterface", "kind": "lost", "probability": 0.2},
            {"action": "AttachNetworkInterface", "kind": "lost", "probability": 0.1},
            {"action": "UnassignPrivateIpAddresses", "kind": "timeout", "seconds": 1, "probability": 0.1},
            {"action": "DescribeNetworkInterfaces", "kind": "error", "status": 503, "code": "Unavailable",
             "probability": 0.1},
        ]
        for f in faults:
            self.w.ctl("POST", "/faults", f)
        self.w.ctl("POST", "/throttle", {"force": {"ip-eni": 2}})

    def clear_faults(self):
        """Faults and forced throttling off, counting the faults that fired since inject()."""
        self.faults_fired += sum(r["fired"] for r in self.w.ctl("GET", "/faults"))
        self.w.ctl("DELETE", "/faults")
        self.w.ctl("POST", "/throttle", {"force": {"ip-eni": 0}})

    def killer(self):
        while not self.stop.wait(self.rng.uniform(2.0, 5.0)):
            self.d.kill()            # at any moment: CNI calls may be in flight
            self.kills += 1
            time.sleep(self.rng.uniform(0.0, 0.5))
            self.start_daemon()
            self.pause()             # let in-flight calls finish, start no new one, then compare
            try:
                self.verify("after restart")
            finally:
                self.resume()

    # --- checks -------------------------------------------------------------------------
    def violate(self, what):
        self.violations.append(what)
        print(f"# VIOLATION: {what}", flush=True)

    def truth_enis(self):
        """EC2's truth: {eni: set(blocks)} of the ENIs attached to this instance: secondary
        addresses as a.b.c.d/32, and /28 prefixes."""
        return {e["id"]: {ip + "/32" for ip in e.get("secondary_ips") or []} | set(e.get("prefixes") or [])
                for e in self.w.truth()["enis"] if (e.get("attachment") or {}).get("instance_id") == self.inst}

    def store_enis(self):
        """The store: {eni: set(addresses)} of the ENIs it holds attached; None if the daemon does not answer."""
        r = self.d.try_call({"op": "enis"})
        if not r or not r.get("ok"):
            return None
        return {e["id"]: set(e.get("blocks", [])) for e in r["enis"] if e["state"] == "attached"}

    def host(self, *args):
        return subprocess.run(["ip", "-n", self.ns] + list(args), capture_output=True, text=True).stdout

    def kernel_pods(self, tables):
        """The node's kernel: {eni: set(pod addresses)} from the pod rules, given {route table: eni};
        plus the addresses with a host /32 route and problems found on the way."""
        to_main, from_table, odd = set(), {}, []
        for r in json.loads(self.host("-j", "-4", "rule", "show") or "[]"):
            if r.get("priority") == 512 and r.get("table") == "main" and "dst" in r:
                to_main.add(r["dst"])
            elif r.get("priority") == 1536 and "src" in r:
                from_table[r["src"]] = r.get("table")
            elif r.get("priority") in (512, 1536):
                odd.append(f"a pod rule of an unexpected shape: {r}")
        out = {eni: set() for eni in tables.values()}
        primary = tables.get("main")
        for ip in to_main - set(from_table):
            if primary is None:
                odd.append(f"{ip} has no 'from' rule and no ENI uses the main table")
            else:
                out[primary].add(ip)
        for ip, table in from_table.items():
            if ip not in to_main:
                odd.append(f"'from {ip} lookup {table}' without 'to {ip} lookup main'")
            if str(table) not in tables:
                odd.append(f"'from {ip} lookup {table}': no ENI has route table {table}")
            else:
                out[tables[str(table)]].add(ip)
        routed = {r["dst"] for r in json.loads(self.host("-j", "-4", "route", "show", "table", "main") or "[]")
                  if r.get("dev", "").startswith("eni") and r.get("dst", "").count(".") == 3}
        return out, routed, odd

    def compare(self, when, what, a_name, a, b_name, b):
        """Two {eni: set(addresses)} maps must be equal; each difference is named."""
        for eni in sorted(set(a) | set(b)):
            x, y = a.get(eni), b.get(eni)
            if x is None or y is None:
                self.violate(f"{when}: {what}: ENI {eni} is known to {a_name if y is None else b_name} only")
            elif x != y:
                self.violate(f"{when}: {what} on {eni}: only in {a_name} {sorted(x - y)}, "
                             f"only in {b_name} {sorted(y - x)}")

    def verify(self, when):
        # Faults off while checking: the daemon must be able to settle.
        self.clear_faults()
        self.settle()
        # A pod whose DEL reached no daemon is released by reconciliation once its
        # namespace has been gone for the daemon's grace period (30 s).
        def leases_now():
            return self.d.call({"op": "pods"})["pods"]
        try:
            wait_for(lambda: not {p["container_id"] for p in leases_now()} - set(self.pods), timeout=45,
                     interval=0.5, what="addresses of gone pods to be released")
        except AssertionError:
            pass  # reported below, with the names
        leases = leases_now()
        held = {p["container_id"]: p["ip"] for p in leases}
        ips = [p["ip"] for p in leases]
        if len(ips) != len(set(ips)):
            self.violate(f"{when}: an address is held by two pods: {sorted(ips)}")
        for name, ip in self.pods.items():
            if held.get(name) != ip:
                self.violate(f"{when}: live pod {name} has {ip} but the daemon holds {held.get(name)}")
            out = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show", "eth0"], capture_output=True,
                                 text=True).stdout
            if f" {ip}/32 " not in out:
                self.violate(f"{when}: pod {name} lost its address {ip} on eth0")
        for name in set(held) - set(self.pods):
            self.violate(f"{when}: the daemon holds {held[name]} for {name}, which is gone")
        # ENI by ENI: store == EC2 for the addresses, store == kernel for the leases.
        r = self.d.call({"op": "enis"})
        attached = [e for e in r["enis"] if e["state"] == "attached"]
        store = {e["id"]: set(e.get("blocks", [])) for e in attached}
        self.compare(when, "blocks", "the store", store, "EC2", self.truth_enis())
        leased = {e["id"]: set() for e in attached}
        for p in leases:
            leased.setdefault(p["eni_id"], set()).add(p["ip"])
            if not any(ipaddress.ip_address(p["ip"]) in ipaddress.ip_network(b) for b in store.get(p["eni_id"], set())):
                self.violate(f"{when}: {p['container_id']} leases {p['ip']}, not an address of {p['eni_id']}")
        tables = {("main" if e["route_table"] == 254 else str(e["route_table"])): e["id"] for e in attached}
        kernel, routed, odd = self.kernel_pods(tables)
        for o in odd:
            self.violate(f"{when}: {o}")
        self.compare(when, "pod addresses", "the store's leases", leased, "the kernel's rules", kernel)
        live = set(self.pods.values())
        if set(ips) != live:
            self.violate(f"{when}: leases without a live pod {sorted(set(ips) - live)}, "
                         f"live pods without a lease {sorted(live - set(ips))}")
        if routed != live:
            self.violate(f"{when}: host /32 routes without a live pod {sorted(routed - live)}, "
                         f"live pods without one {sorted(live - routed)}")
        leaked = [e["id"] for e in self.w.truth()["enis"]
                  if e["status"] == "available" and (e.get("tags") or {}).get(TAG_INSTANCE) == self.inst]
        if leaked:
            self.violate(f"{when}: ENIs left available: {leaked}")

        def veths_now():
            """The container ids the host veths carry in their alias (proto_veth_alias), sorted."""
            links = json.loads(self.host("-j", "link", "show") or "[]")
            return sorted(x.get("ifalias", "").removeprefix(VETH_ALIAS) for x in links if x["ifname"].startswith("eni"))
        # vpc-ipamd deletes a DEL'd pod's veth right after answering, on its own thread
        try:
            wait_for(lambda: veths_now() == sorted(self.pods), timeout=5, interval=0.05,
                     what="the veths of deleted pods to go")
        except AssertionError:
            pass  # reported below
        veths = veths_now()
        if veths != sorted(self.pods):
            detail = [(x["ifname"], x.get("operstate"), x.get("ifalias", ""))
                      for x in json.loads(self.host("-j", "link", "show") or "[]") if x["ifname"].startswith("eni")]
            self.violate(f"{when}: host veths for pods {veths}, live pods {sorted(self.pods)}: {detail}")
        self.inject()

    def check_exercised(self):
        """The run proves nothing unless the daemon was killed, EC2 misbehaved and pods were served."""
        throttled = sum(self.w.ctl("GET", "/stats")["throttled"].values())
        faults = self.faults_fired + throttled
        print(f"# exercised: {self.kills} SIGKILLs (need {self.a.min_kills}), {faults} injected EC2 faults "
              f"({self.faults_fired} fired, {throttled} throttled; need {self.a.min_faults}), "
              f"{self.adds_ok} successful ADDs (need {self.a.min_adds})", flush=True)
        for got, need, what in ((self.kills, self.a.min_kills, "SIGKILLs"), (faults, self.a.min_faults, "EC2 faults"),
                                (self.adds_ok, self.a.min_adds, "successful ADDs")):
            if got < need:
                self.violate(f"the run did not exercise what it claims: {got} {what}, fewer than {need}")

    # --- the run ---------------------------------------------------------------------------
    def run(self):
        t0 = time.monotonic()
        try:
            self.start_daemon()
            self.inject()
            workers = [threading.Thread(target=self.worker) for _ in range(self.a.workers)]
            killer = threading.Thread(target=self.killer)
            for t in workers + [killer]:
                t.start()
            # --seconds of pod operations: the time the verifier held the workers (a check after each
            # restart can wait out the daemon's 30 s grace for a pod whose DEL no daemon heard) is added
            # back, up to --seconds more, so a run with slow checks still does its operations
            def deadline():
                with self.idle:
                    held = self.paused_s + (time.monotonic() - self.paused_at if self.paused else 0.0)
                return t0 + self.a.seconds + min(held, self.a.seconds)
            while any(t.is_alive() for t in workers) and time.monotonic() < deadline():
                time.sleep(0.2)
            self.stop.set()
            for t in workers + [killer]:
                t.join()
            self.verify("at the end")
            while self.pods:
                self.del_pod()
            self.verify("after deleting every pod")
            self.check_exercised()
            api = self.w.ctl("GET", "/stats")["api"]
            calls = ", ".join(f"{a} {v['calls']}" for a, v in sorted(api.items()) if not a.startswith("Describe"))
            print(f"# chaos: {self.ops} operations, {self.kills} kills, {self.add_retries} ADDs retried, "
                  f"{len(self.violations)} violations in {time.monotonic() - t0:.0f} s (seed {self.a.seed}); "
                  f"EC2 calls: {calls}", flush=True)
        finally:
            self.stop.set()
            stop_all()
            self.w.down()
        return not self.violations


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--min-kills", type=int, default=1)
    ap.add_argument("--min-faults", type=int, help="default: ops / 30, at least 3")
    ap.add_argument("--min-adds", type=int, help="default: ops / 4")
    ap.add_argument("--prefix-delegation", action="store_true", help="ENABLE_PREFIX_DELEGATION, WARM_PREFIX_TARGET=1")
    args = ap.parse_args(argv)
    if args.min_faults is None:
        args.min_faults = max(3, args.ops // 30)
    if args.min_adds is None:
        args.min_adds = args.ops // 4
    return 0 if Chaos(args).run() else 1


if __name__ == "__main__":
    sys.exit(main())

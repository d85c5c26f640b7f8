"""Crash and fault chaos: pod churn through vpc-cni against vpc-ipamd while EC2
misbehaves and the daemon is SIGKILLed at random moments.

One emulated node. Worker threads create and delete pods (named network
namespaces wired by the real vpc-cni binary) as a runtime would: an ADD that
fails is followed by a DEL, then retried later. Meanwhile the emulator injects
throttling, 5xx, timeouts and lost responses, and a killer thread SIGKILLs
vpc-ipamd at random moments and restarts it. After each restart (workers
paused) and at the end, the store, the kernel and EC2 are compared:

  - no address held by two pods; every live pod's address is the one the
    daemon holds for it, on its eth0, with the host route and rules;
  - no address held for a pod that is gone (after reconciliation);
  - the ENIs and addresses the daemon holds are exactly EC2's; no ENI of
    this instance is left `available`; no EC2 operation left open;
  - no host veth or pod rule without a live pod.

Prints one summary line: operations, kills, faults, violations. Exit status 1
on any violation.

usage: chaos.py [--ops N] [--seconds S] [--workers W] [--seed X]
"""

import argparse
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


class Chaos:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.w = harness.WorldFixture(nodes=1, fast=True)
        self.ns = self.w.node_ns(0)
        self.inst = self.w.nodes[0]["instance_id"]
        self.env = {"WARM_IP_TARGET": "3", "MINIMUM_IP_TARGET": "4", "IP_COOLDOWN_PERIOD": "2",
                    "VPC_IPAM_ADD_WAIT": "5", "VPC_IPAM_SHRINK_DELAY": "5", "AWS_VPC_K8S_CNI_LOGLEVEL": "info"}
        self.d = None
        self.lock = threading.RLock()      # guards the bookkeeping below
        self.idle = threading.Condition(self.lock)
        self.in_flight = 0                 # CNI calls running now
        self.paused = False                # the verifier wants a quiet node
        self.pods = {}                     # name -> ip, pods whose ADD succeeded and not yet deleted
        self.results = {}                  # name -> ADD result, handed back as prevResult on DEL
        self.seq = 0
        self.ops = self.kills = self.add_retries = 0
        self.violations = []
        self.stop = threading.Event()

    # --- the daemon ---------------------------------------------------------------
    def start_daemon(self):
        self.d = Daemon(self.w, env=self.env, name="chaos").start()

    def settle(self):
        """Wait for the daemon to have reconciled: no open intent, store == EC2."""
        def ok():
            r = self.d.try_call({"op": "intents"})
            return r and r.get("ok") and r["intents"] == [] and self.store_matches_ec2()
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
            while self.in_flight:
                self.idle.wait()

    def resume(self):
        with self.idle:
            self.paused = False
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
                    return
            # As a runtime does: DEL after a failed ADD, and the pod is retried later.
            self.add_retries += 1
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

    def store_matches_ec2(self):
        truth = {}
        for e in self.w.truth()["enis"]:
            if (e.get("attachment") or {}).get("instance_id") == self.inst:
                truth[e["id"]] = len(e.get("secondary_ips") or [])
        r = self.d.try_call({"op": "enis"})
        if not r or not r.get("ok"):
            return False
        mine = {e["id"]: e.get("free", 0) + e.get("assigned", 0) + e.get("cooldown", 0) + e.get("releasing", 0)
                for e in r["enis"] if e["state"] == "attached"}
        return truth == mine

    def host(self, *args):
        return subprocess.run(["ip", "-n", self.ns] + list(args), capture_output=True, text=True).stdout

    def verify(self, when):
        # Faults off while checking: the daemon must be able to settle.
        self.w.ctl("DELETE", "/faults")
        self.w.ctl("POST", "/throttle", {"force": {"ip-eni": 0}})
        self.settle()
        # A pod whose DEL reached no daemon is released by reconciliation once its
        # namespace has been gone for the daemon's grace period (30 s).
        def held_now():
            return {p["container_id"]: p["ip"] for p in self.d.call({"op": "pods"})["pods"]}
        try:
            wait_for(lambda: not set(held_now()) - set(self.pods), timeout=45, interval=0.5,
                     what="addresses of gone pods to be released")
        except AssertionError:
            pass  # reported below, with the names
        held = held_now()
        ips = list(held.values())
        if len(ips) != len(set(ips)):
            self.violate(f"{when}: an address is held by two pods: {sorted(ips)}")
        for name, ip in self.pods.items():
            if held.get(name) != ip:
                self.violate(f"{when}: live pod {name} has {ip} but the daemon holds {held.get(name)}")
            out = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show", "eth0"], capture_output=True,
                                 text=True).stdout
            if f"{ip}/32" not in out:
                self.violate(f"{when}: pod {name} lost its address {ip} on eth0")
            if f"{ip} dev" not in self.host("route", "show", f"{ip}/32"):
                self.violate(f"{when}: no host route to pod {name} ({ip})")
            if f"to {ip} lookup main" not in self.host("rule", "show"):
                self.violate(f"{when}: no 'to {ip} lookup main' rule for pod {name}")
        for name in set(held) - set(self.pods):
            self.violate(f"{when}: the daemon holds {held[name]} for {name}, which is gone")
        leaked = [e["id"] for e in self.w.truth()["enis"]
                  if e["status"] == "available" and (e.get("tags") or {}).get(TAG_INSTANCE) == self.inst]
        if leaked:
            self.violate(f"{when}: ENIs left available: {leaked}")
        rules = self.host("rule", "show")
        for line in rules.splitlines():
            if line.startswith(("512:", "1536:")) and not any(f" {ip} " in line + " " for ip in self.pods.values()):
                self.violate(f"{when}: a pod rule without a live pod: {line.strip()}")
        def veths_now():
            return [x["ifname"] for x in json.loads(self.host("-j", "link", "show") or "[]")
                    if x["ifname"].startswith("eni")]
        # vpc-ipamd deletes a DEL'd pod's veth right after answering, on its own thread
        try:
            wait_for(lambda: len(veths_now()) == len(self.pods), timeout=5, interval=0.05,
                     what="the veths of deleted pods to go")
        except AssertionError:
            pass  # reported below
        veths = veths_now()
        if len(veths) != len(self.pods):
            detail = [(x["ifname"], x.get("operstate"), x.get("ifalias", ""))
                      for x in json.loads(self.host("-j", "link", "show") or "[]") if x["ifname"].startswith("eni")]
            self.violate(f"{when}: {len(veths)} pod veths on the host for {len(self.pods)} live pods: {detail}")
        self.inject()

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
            deadline = t0 + self.a.seconds
            while any(t.is_alive() for t in workers) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.stop.set()
            for t in workers + [killer]:
                t.join()
            self.verify("at the end")
            while self.pods:
                self.del_pod()
            self.verify("after deleting every pod")
            stats = self.w.ctl("GET", "/stats")
            faults = sum(sum(v["errors"].values()) for v in stats["api"].values())
            print(f"chaos: {self.ops} operations, {self.kills} kills, {faults} EC2 faults and errors, "
                  f"{self.add_retries} ADDs retried, {len(self.violations)} violations "
                  f"in {time.monotonic() - t0:.0f} s (seed {self.a.seed})", flush=True)
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
    args = ap.parse_args(argv)
    return 0 if Chaos(args).run() else 1


if __name__ == "__main__":
    sys.exit(main())

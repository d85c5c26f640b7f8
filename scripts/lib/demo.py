"""The vpc-ipam demo: an emulated VPC with two nodes and their pods.

Run by scripts/demo (which installs and builds first). It brings up the
emulated VPC (tests/emulator) with two m5.large nodes, runs vpc-ipamd in each,
creates pods — network namespaces — through vpc-cni, enough to need a second
ENI on the first node, and shows: the nodes warming up, each node's
vpc-ipamctl tables beside the emulator's view of the same ENIs, pings between
pods on one node and across nodes (pods on secondary ENIs included), the ADD
timings; then it deletes the pods, shows the pool shrinking back to its warm
target, and tears everything down. Exit status 1 if any check failed.

usage: demo.py BUILD_DIR [--fast]
"""

import json
import os
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "daemon"))
sys.path.insert(0, os.path.join(TOP, "tests", "emulator"))

BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(TOP, "build", "normal")
FAST = "--fast" in sys.argv
os.environ["VPC_IPAMD"] = os.path.join(BUILD, "daemon", "vpc-ipamd")
IPAMCTL = os.path.join(BUILD, "daemon", "vpc-ipamctl")
CNI = os.path.join(BUILD, "cni-shim", "vpc-cni")

import harness  # noqa: E402
from ipamd import Daemon  # noqa: E402

PODS = {0: 11, 1: 4}          # node 0 needs a second ENI: the primary holds 9 secondaries
COOLDOWN = "10"               # seconds; short so the demo can show the pool shrinking
SHRINK_DELAY = "20"           # seconds (default 120): how long the pool keeps room for its recent peak
failures = []


def say(msg=""):
    print(msg, flush=True)


def section(title):
    say()
    say(f"== {title} " + "=" * max(0, 70 - len(title)))


def check(ok, what):
    say(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)
    return ok


def wait(cond, timeout, what, every=0.5, show=None):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        if cond():
            return True
        if show:
            line = show()
            if line != last:
                say("  " + line)
                last = line
        time.sleep(every)
    return check(False, f"{what} within {timeout:.0f} s")


class Node:
    def __init__(self, world, i):
        self.w, self.i = world, i
        self.ns = world.node_ns(i)
        self.inst = world.nodes[i]["instance_id"]
        self.d = Daemon(world, i, env={"IP_COOLDOWN_PERIOD": COOLDOWN, "VPC_IPAM_SHRINK_DELAY": SHRINK_DELAY,
                                       "AWS_VPC_K8S_CNI_LOGLEVEL": "info"})
        self.pods = []  # (name, netns, ip, eni)

    def ctl(self, *args):
        p = subprocess.run([IPAMCTL, "--socket", self.d.sock] + list(args), capture_output=True, text=True)
        return p.stdout if p.returncode == 0 else p.stderr

    def cni(self, cmd, name, netns):
        conf = {"cniVersion": "1.1.0", "name": "vpc", "type": "vpc-cni", "socket": self.d.sock}
        env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": name, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": os.path.dirname(CNI),
               "CNI_ARGS": f"K8S_POD_NAMESPACE=demo;K8S_POD_NAME={name};IgnoreUnknown=1"}
        t0 = time.monotonic()
        p = subprocess.run(["ip", "netns", "exec", self.ns, CNI], env=env, input=json.dumps(conf),
                           capture_output=True, text=True, timeout=60)
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else {}), time.monotonic() - t0


def pod_ns(world, node, k):
    return f"{world.prefix}-n{node}p{k}"


def show_warmup(nodes):
    parts = []
    for n in nodes:
        p = n.d.try_call({"op": "pool"})
        pool = p["pool"] if p and p.get("ok") else None
        parts.append(f"node{n.i}: " + (f"{pool['total']} addresses on {pool['enis']} ENI(s)" if pool else "starting"))
    return "; ".join(parts)


def emulator_view(node):
    say(f"  emulator (EC2's truth) for {node.inst}:")
    for e in node.w.truth()["enis"]:
        att = e.get("attachment") or {}
        if att.get("instance_id") == node.inst:
            say(f"    {e['id']}  device {att['device_index']}  {e['status']:<9} primary {e['primary_ip']:<11} "
                f"secondaries {len(e.get('secondary_ips') or [])}")


def create_pods(world, nodes):
    times = []
    for n in nodes:
        for k in range(PODS[n.i]):
            name = f"node{n.i}-pod{k}"
            ns = pod_ns(world, n.i, k)
            subprocess.run(["ip", "netns", "add", ns], check=True)
            rc, out, took = n.cni("ADD", name, f"/var/run/netns/{ns}")
            if rc != 0 or not out.get("ips"):
                check(False, f"ADD {name}: {out}")
                continue
            ip = out["ips"][0]["address"].split("/")[0]
            times.append(took * 1000)
            n.pods.append((name, ns, ip))
            say(f"  [ok] {name:<13} {ip:<12} ADD {took * 1000:7.1f} ms")
    return times


def ping(src, dst_ip):
    p = subprocess.run(["ip", "netns", "exec", src, "ping", "-c", "1", "-W", "2", dst_ip],
                       capture_output=True, text=True)
    return p.returncode == 0


def eni_of(node, ip):
    for p in node.d.call({"op": "pods"})["pods"]:
        if p["ip"] == ip:
            return p["eni_id"], p["device_index"]
    return "?", -1


def pings(world, nodes):
    a, b = nodes
    secondary = [p for p in a.pods if eni_of(a, p[2])[1] > 0]
    primary = [p for p in a.pods if eni_of(a, p[2])[1] == 0]
    pairs = [("same node, primary ENI to primary ENI", primary[0], primary[1]),
             ("across nodes", primary[0], b.pods[0])]
    if secondary:
        pairs += [("same node, secondary ENI to primary ENI", secondary[0], primary[0]),
                  ("across nodes, from a pod on a secondary ENI", secondary[0], b.pods[1])]
    check(bool(secondary), "node0 has pods on a secondary ENI")
    for what, src, dst in pairs:
        check(ping(src[1], dst[2]), f"ping {src[0]} ({src[2]}) -> {dst[0]} ({dst[2]}): {what}")
    drops = world.truth()["fabric"]["drops_total"]
    check(drops == 0, f"the VPC's source/destination check dropped {drops} packets")


def delete_pods(nodes):
    for n in nodes:
        for name, ns, ip in n.pods:
            rc, out, _ = n.cni("DEL", name, f"/var/run/netns/{ns}")
            check(rc == 0, f"DEL {name}") if rc else None
            subprocess.run(["ip", "netns", "del", ns])
        def leftovers():
            return [l for l in json.loads(subprocess.run(["ip", "-n", n.ns, "-j", "link"], capture_output=True,
                                                         text=True).stdout) if l["ifname"].startswith("eni")]
        # vpc-ipamd deletes the veths DEL handed it right after answering (docs/vpc-cni.md)
        end = time.monotonic() + 5
        while leftovers() and time.monotonic() < end:
            time.sleep(0.05)
        check(not leftovers(), f"node{n.i}: every pod's veth is gone after DEL")
        check(n.d.pool()["assigned"] == 0, f"node{n.i}: no address is assigned after DEL")


def main():
    t_start = time.monotonic()
    section("an emulated VPC: 2 x m5.large" + (" (fast latencies)" if FAST else " (EC2-like latencies)"))
    world = harness.WorldFixture(nodes=2, instance_type="m5.large", fast=FAST)
    nodes = []
    try:
        say(f"  VPC {world.w['vpc']['cidrs'][0]}, nodes {[n['primary_ip'] for n in world.nodes]}, "
            f"up in {world.up_seconds:.1f} s")
        section("vpc-ipamd on each node: warming up (WARM_ENI_TARGET=1, aws-node's default)")
        for i in range(2):
            n = Node(world, i)
            t0 = time.monotonic()
            n.d.start()
            say(f"  node{i}: vpc-ipamd serving after {(time.monotonic() - t0) * 1000:.0f} ms")
            nodes.append(n)
        t0 = time.monotonic()
        wait(lambda: all(n.d.pool()["total"] >= 9 for n in nodes), 60, "both nodes warm", show=lambda: show_warmup(nodes))
        say(f"  warm after {time.monotonic() - t0:.1f} s: {show_warmup(nodes)}")

        section(f"pods: {PODS[0]} on node0 (needs a second ENI), {PODS[1]} on node1, through vpc-cni")
        times = create_pods(world, nodes)
        if times:
            q = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else times * 99
            say(f"  ADD: median {statistics.median(times):.1f} ms, p99 {q[98]:.1f} ms, max {max(times):.1f} ms "
                f"over {len(times)} pods (first pods on a new ENI wait for it)")
        wait(lambda: nodes[0].d.pool()["enis"] >= 2, 30, "node0 to open its second ENI")

        for n in nodes:
            section(f"node{n.i}: vpc-ipamctl enis / pods, beside the emulator")
            say("  " + n.ctl("enis").replace("\n", "\n  ").rstrip())
            say("  " + n.ctl("pods").replace("\n", "\n  ").rstrip())
            emulator_view(n)

        section("traffic between pods")
        pings(world, nodes)

        section("delete every pod, then watch the pool shrink back to its warm target")
        delete_pods(nodes)
        say(f"  (released addresses cool down for {COOLDOWN} s, room for the recent peak is kept for "
            f"{SHRINK_DELAY} s, and an ENI goes once it holds no pod and is over a minute old)")
        def ec2_enis(n):
            return len([e for e in n.w.truth()["enis"] if (e.get("attachment") or {}).get("instance_id") == n.inst])

        wait(lambda: all(n.d.pool()["enis"] == 1 and ec2_enis(n) == 1 for n in nodes), 150,
             "both nodes back to one ENI, in the store and in EC2", every=2,
             show=lambda: "; ".join(f"node{n.i}: {n.d.pool()['enis']} ENIs, {n.d.pool()['total']} addresses, "
                                    f"{n.d.pool()['cooldown']} cooling" for n in nodes))
        for n in nodes:
            say(f"  node{n.i}:")
            say("    " + n.ctl("pool").replace("\n", "\n    ").rstrip())
            check(n.d.pool()["total"] == 9, f"node{n.i} holds one ENI's worth again (9 addresses), as "
                                            f"WARM_ENI_TARGET=1 asks")
            check(ec2_enis(n) == 1, f"node{n.i}: EC2 agrees: one ENI attached, the others detached and deleted")
    finally:
        section("teardown")
        for n in nodes:
            n.d.stop()
        world.down()
        say(f"  done in {time.monotonic() - t_start:.0f} s")
    if failures:
        say(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            say(f"  - {f}")
        return 1
    say("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

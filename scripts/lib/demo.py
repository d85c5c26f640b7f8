"""The vpc-ipam demo: an emulated VPC with two nodes and their pods.

Run by scripts/demo (which installs and builds first). It brings up the
emulated VPC (tests/emulator) with two m5.large nodes, runs vpc-ipamd in each,
creates pods — network namespaces — through vpc-cni, enough to need a second
ENI on the first node, and shows: the nodes warming up, each node's
vpc-ipamctl tables beside the emulator's view of the same ENIs, pings between
pods on one node and across nodes (pods on secondary ENIs included), the ADD
timings; then it deletes the pods, shows the pool shrinking back to its warm
target, and tears everything down. Exit status 1 if any check failed.

--ipv6 shows IPv6 mode instead (issue 16, README "IPv6 mode"): an IPv6 VPC
(`vpc-world up --ipv6`) with two nodes whose vpc-ipamd runs with
ENABLE_IPv6=true, ENABLE_IPv4=false, ENABLE_PREFIX_DELEGATION=true; each
node's /80 per EC2, a few pods per node on /128s through vpc-cni with their
IPv4 egress addresses, vpc-ipamctl pool and pods, ICMPv6 pod to pod across
the nodes, IPv6 pods reaching the IPv4-only outside host as their node's
primary IPv4, then DEL leaving nothing behind, and the teardown.

usage: demo.py BUILD_DIR [--fast] [--ipv6]
"""

import importlib.util
import ipaddress
import json
import os
import signal
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "daemon"))
sys.path.insert(0, os.path.join(TOP, "tests", "emulator"))

BUILD = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.join(TOP, "build", "normal")
FAST = "--fast" in sys.argv
IPV6 = "--ipv6" in sys.argv
os.environ["VPC_IPAMD"] = os.path.join(BUILD, "daemon", "vpc-ipamd")
IPAMCTL = os.path.join(BUILD, "daemon", "vpc-ipamctl")
CNI = os.path.join(BUILD, "cni-shim", "vpc-cni")

import harness  # noqa: E402
from ipamd import Daemon  # noqa: E402

PODS = {0: 11, 1: 4}          # node 0 needs a second ENI: the primary holds 9 secondaries
COOLDOWN = "10"               # seconds; short so the demo can show the pool shrinking
SHRINK_DELAY = "20"           # seconds (default 120): how long the pool keeps room for its recent peak
V6_ENV = {"ENABLE_IPv6": "true", "ENABLE_IPv4": "false", "ENABLE_PREFIX_DELEGATION": "true"}
PODS6 = 3                     # per node in the IPv6 demo: a /80 holds them all, no ENI to open
EGRESS_NET = ipaddress.ip_network("169.254.172.0/22")
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
    def __init__(self, world, i, env=None):
        self.w, self.i = world, i
        self.ns = world.node_ns(i)
        self.inst = world.nodes[i]["instance_id"]
        self.d = Daemon(world, i, env=dict({"IP_COOLDOWN_PERIOD": COOLDOWN, "VPC_IPAM_SHRINK_DELAY": SHRINK_DELAY,
                                            "AWS_VPC_K8S_CNI_LOGLEVEL": "info"}, **(env or {})))
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


def delete_pods(nodes, assigned=("assigned",)):
    for n in nodes:
        for name, ns, *_ in n.pods:
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
        check(all(n.d.pool()[k] == 0 for k in assigned), f"node{n.i}: no address is assigned after DEL")


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
        teardown(world, nodes, t_start)
    return verdict()


def teardown(world, nodes, t_start, procs=()):
    section("teardown")
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for n in nodes:
        n.d.stop()
    world.down()
    left = [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if ns.startswith(world.prefix + "-")]
    check(not left, f"every network namespace the demo made is gone{' (left: ' + ' '.join(left) + ')' if left else ''}")
    say(f"  done in {time.monotonic() - t_start:.0f} s")


def verdict():
    if failures:
        say(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            say(f"  - {f}")
        return 1
    say("\nall checks passed")
    return 0


# --- IPv6 mode (--ipv6) ------------------------------------------------------------------

def _ipv6_test():
    """tests/daemon/test_ipv6.py, loaded by path (tests/emulator has a test_ipv6 too): its ECHO, a TCP server
    that answers each connection with the source address it saw, and ASK, its client."""
    path = os.path.join(TOP, "tests", "daemon", "test_ipv6.py")
    spec = importlib.util.spec_from_file_location("daemon_test_ipv6", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def prefixes80(n):
    """EC2's truth: the /80s on node n's primary ENI."""
    return n.w.eni_truth(n.w.nodes[n.i]["primary_eni_id"]).get("ipv6_prefixes") or []


def ready(n):
    st = n.d.try_call({"op": "status"})
    return bool(st and st.get("ready"))


def show_prefixes(n):
    eni = n.w.nodes[n.i]["primary_eni_id"]
    p80 = prefixes80(n)
    say(f"  node{n.i}: {eni} holds {', '.join(p80) or 'no prefix'} (EC2's truth)")
    subnet = ipaddress.ip_network(n.w.w["subnets"][0]["ipv6_cidr"])
    check(len(p80) == 1 and ipaddress.ip_network(p80[0]).prefixlen == 80
          and ipaddress.ip_network(p80[0]).subnet_of(subnet),
          f"node{n.i}: exactly one /80, inside the subnet's {subnet}")


def create_pods6(world, nodes):
    for n in nodes:
        p80 = (prefixes80(n) or ["::/128"])[0]
        for k in range(PODS6):
            name = f"node{n.i}-pod{k}"
            ns = pod_ns(world, n.i, k)
            subprocess.run(["ip", "netns", "add", ns], check=True)
            rc, out, took = n.cni("ADD", name, f"/var/run/netns/{ns}")
            addrs = [ipaddress.ip_interface(a["address"]) for a in out.get("ips") or []]
            v6 = [a for a in addrs if a.version == 6 and a.network.prefixlen == 128]
            v4 = [a for a in addrs if a.version == 4]
            if rc != 0 or len(v6) != 1 or len(v4) != 1:
                check(False, f"ADD {name}: one /128 and one IPv4 egress address: {out}")
                continue
            n.pods.append((name, ns, str(v6[0].ip), str(v4[0].ip)))
            say(f"  {name}  {str(v6[0]):<32} egress {str(v4[0].ip):<15} ADD {took * 1000:6.1f} ms")
            check(v6[0].ip in ipaddress.ip_network(p80) and v4[0].ip in EGRESS_NET,
                  f"{name}: its /128 is in node{n.i}'s {p80}, its egress address in {EGRESS_NET}")
    ips = [p[2] for n in nodes for p in n.pods]
    check(len(set(ips)) == len(ips) == PODS6 * len(nodes), f"{len(ips)} pods, {len(set(ips))} distinct /128s")


def in_pod(ns, *args):
    return subprocess.run(["ip", "netns", "exec", ns] + list(args), capture_output=True, text=True, timeout=30)


def pings6(world, nodes):
    a, b = nodes
    if len(a.pods) < 2 or len(b.pods) < 2:
        return check(False, "two pods on each node to ping between")
    before = world.truth()["fabric"]["drops_total"]
    pairs = [("same node", a.pods[0], a.pods[1]), ("across nodes", a.pods[0], b.pods[0]),
             ("across nodes", b.pods[1], a.pods[1])]
    for what, src, dst in pairs:
        ok = in_pod(src[1], "ping", "-6", "-c", "1", "-W", "2", dst[2]).returncode == 0
        check(ok, f"ping -6 {src[0]} ({src[2]}) -> {dst[0]} ({dst[2]}): {what}")
    drops = world.truth()["fabric"]["drops_total"] - before
    check(drops == 0, f"the VPC's source/destination check dropped {drops} packets")


def egress(world, nodes, procs):
    out_ns, outside = world.w["outside"]["netns"], world.w["outside"]["ip"]
    t = _ipv6_test()
    srv = subprocess.Popen(["ip", "netns", "exec", out_ns, sys.executable, "-c", t.ECHO, outside, "7000"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(srv)
    if not check(srv.stdout.readline().strip() == "ready", f"a TCP server on the outside host {outside}:7000"):
        return
    for n in nodes:
        if not n.pods:
            continue
        name, ns, ip, eg = n.pods[-1]
        got = in_pod(ns, sys.executable, "-c", t.ASK, outside, "7000").stdout.strip()
        primary = n.w.nodes[n.i]["primary_ip"]
        check(got == primary, f"{name} ({ip}, egress {eg}) -> {outside}:7000: the outside saw {got or 'nothing'}, "
                              f"node{n.i}'s primary IPv4 is {primary}")


def leftovers6(n, pods):
    """What DEL should have removed from node n: routes, rules, neighbours and egress addresses of its pods."""
    sh = lambda *a: subprocess.run(["ip", "-n", n.ns] + list(a), capture_output=True, text=True).stdout  # noqa: E731
    text = " ".join([sh("-6", "route", "show", "table", "all"), sh("-6", "rule", "show"), sh("-6", "neigh", "show"),
                     sh("-4", "route", "show", "table", "all")]).split()
    left = [ip for p in pods for ip in (p[2], p[3]) if ip in text or ip + "/128" in text]
    if "169.254.172." in sh("-4", "addr", "show"):
        left.append("an address in 169.254.172.0/22")
    return left


def main6():
    t_start = time.monotonic()
    section("an emulated IPv6 VPC: 2 x m5.large" + (" (fast latencies)" if FAST else " (EC2-like latencies)"))
    world = harness.WorldFixture(nodes=2, instance_type="m5.large", fast=FAST, extra=["--ipv6"])
    nodes, procs = [], []
    try:
        w = world.w
        say(f"  VPC {w['vpc']['cidrs'][0]} and {w['vpc']['ipv6_cidrs'][0]}, subnet {w['subnets'][0]['ipv6_cidr']}, "
            f"up in {world.up_seconds:.1f} s")
        for i, nd in enumerate(world.nodes):
            say(f"  node{i}: {nd['instance_id']}, primary {nd['primary_ip']} and {nd['primary_ipv6']}")
        say(f"  outside host {w['outside']['ip']} (IPv4 only)")

        section("vpc-ipamd in IPv6 mode on each node: its /80")
        say("  (" + ", ".join(f"{k}={v}" for k, v in V6_ENV.items()) + ")")
        for i in range(2):
            nodes.append(Node(world, i, V6_ENV))
            nodes[-1].d.start()
        t0 = time.monotonic()
        if wait(lambda: all(ready(n) and prefixes80(n) for n in nodes), 60, "both nodes ready with a /80"):
            say(f"  both ready after {time.monotonic() - t0:.1f} s")
        for n in nodes:
            show_prefixes(n)
        created = world.ctl("GET", "/stats")["api"].get("CreateNetworkInterface", {}).get("calls", 0)
        check(created == 0, f"no ENI created ({created} CreateNetworkInterface calls): "
                            "the /80 lives on the primary ENI")

        section(f"pods: {PODS6} per node through vpc-cni, a /128 from the node's /80 each, plus IPv4 egress")
        create_pods6(world, nodes)

        for n in nodes:
            section(f"node{n.i}: vpc-ipamctl pool / pods")
            say("  " + n.ctl("pool").replace("\n", "\n  ").rstrip())
            say("  " + n.ctl("pods").replace("\n", "\n  ").rstrip())

        section("ICMPv6 between pods")
        pings6(world, nodes)

        section("IPv4 egress: IPv6 pods reach the IPv4-only outside host, SNATed to their node's IPv4")
        egress(world, nodes, procs)

        section("delete every pod")
        pods = {n.i: list(n.pods) for n in nodes}
        delete_pods(nodes, assigned=("ipv6_assigned", "egress_assigned"))
        for n in nodes:
            left = leftovers6(n, pods[n.i])
            check(not left, f"node{n.i}: no route, rule, neighbour or egress address of a pod left"
                            + (f" (left: {', '.join(left)})" if left else ""))
            check(n.d.call({"op": "pods"})["pods"] == [], f"node{n.i}: vpc-ipamctl pods lists none")
            check(len(prefixes80(n)) == 1, f"node{n.i}: its /80 stays on the primary ENI for the next pods")
    finally:
        teardown(world, nodes, t_start, procs)
    return verdict()


def on_sigterm(signum, frame):
    sys.exit(128 + signum)     # runs main's finally: daemons stopped, namespaces deleted


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_sigterm)
    sys.exit(main6() if IPV6 else main())

#!/usr/bin/env python3
"""Egress beyond the VPC: vpc-ipamd's SNAT and connmark table (daemon/snat.c)
in a node of the emulated VPC, whose way out admits only node primary
addresses (tests/emulator/README.md). TAP on stdout.

Each case brings up its own fast one-node world, runs the real daemon in the
node, and wires a "pod" by hand as the CNI plugin would: a namespace named
<world prefix>-pod<k> (so `vpc-world down` removes it even after a crash)
with the address the daemon assigned as /32 on eth0, a veth "eni..." into
the node, the host route, and the rules "to IP lookup main" (512) and
"from IP lookup <ENI table>" (1536). Peers are tiny echo servers that answer
with the address they saw, run in the outside host or the fabric.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ipamd import Daemon, harness, wait_for  # noqa: E402

ECHO = r"""
import socket, sys
kind, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "tcp":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, port)); s.listen(16)
    print("ready", flush=True)
    while True:
        c, peer = s.accept(); c.sendall((peer[0] + "\n").encode()); c.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, port))
    print("ready", flush=True)
    while True:
        d, peer = s.recvfrom(100); s.sendto((peer[0] + "\n").encode(), peer)
"""

ASK = r"""
import socket, sys
kind, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "tcp":
        s = socket.create_connection((addr, port), timeout=1.5); print(s.recv(100).decode().strip())
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5); s.sendto(b"?", (addr, port))
        print(s.recvfrom(100)[0].decode().strip())
except OSError as e:
    print("ERR " + type(e).__name__)
"""


class Egress:
    """One world, one daemon, hand-wired pods; everything goes in down()."""

    def __init__(self, env=None):
        self.W = harness.WorldFixture(nodes=1)
        self.node = self.W.nodes[0]
        self.ns = self.node["netns"]
        self.outside = self.W.w["outside"]["ip"]
        self.procs = []
        self.pods = 0
        base = {"MINIMUM_IP_TARGET": "12", "WARM_IP_TARGET": "2", "VPC_IPAM_VPC_CIDR_REFRESH": "1"}
        base.update(env or {})
        self.d = Daemon(self.W, env=base)
        try:    # forwarding in the node, as the plugin's ADD turns it on
            self.W.sh(self.ns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        except BaseException:
            self.W.down()
            raise

    def down(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        try:
            self.d.stop()
        finally:
            self.W.down()

    def start(self):
        self.d.start()
        wait_for(lambda: self.d.pool()["enis"] >= 2, timeout=15, what="a second ENI")
        return self

    def restart(self, env):
        self.d.stop()
        self.d = Daemon(self.W, env=dict(self.d.env, **env))
        self.d.start()

    # --- kernel state in the node -------------------------------------------
    def table(self, ns=None):
        p = self.W.sh(ns or self.ns, ["nft", "list", "table", "ip", "vpc-ipam"], check=False)
        return p.stdout if p.returncode == 0 else None

    def fwmark_rules(self, ns=None):
        out = self.W.sh(ns or self.ns, ["ip", "-4", "rule", "show"]).stdout
        return [line for line in out.splitlines() if line.startswith("1024:") and "fwmark 0x80/0x80 lookup main" in line]

    # --- pods and peers ------------------------------------------------------
    def pod(self, secondary=True):
        """ADD pods until one is served from a secondary ENI (or the primary); wire it; (ns, ip, table)."""
        for _ in range(12):
            cid = f"pod{self.pods}"
            self.pods += 1
            r = self.d.add(cid)
            assert r["ok"], r
            if (r["route_table"] != 254) == secondary:
                return self._wire(r["ip"], r["route_table"])
        raise AssertionError("no address of the wanted ENI")

    def _wire(self, ip, table):
        k = self.pods
        pns, veth = f"{self.W.prefix}-pod{k}", f"eni{self.W.prefix}{k}"
        run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, timeout=10)  # noqa: E731
        run("ip", "netns", "add", pns)
        run("ip", "-n", self.ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pns)
        mac = json.loads(self.W.ip(self.ns, "-j", "link", "show", veth).stdout)[0]["address"]
        for args in (["link", "set", "lo", "up"], ["addr", "add", f"{ip}/32", "dev", "eth0"],
                     ["link", "set", "eth0", "up"], ["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
                     ["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
                     ["neigh", "add", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent"]):
            run("ip", "-n", pns, *args)
        for args in (["link", "set", veth, "up"], ["route", "add", f"{ip}/32", "dev", veth, "scope", "link"],
                     ["rule", "add", "to", ip, "lookup", "main", "prio", "512"],
                     ["rule", "add", "from", ip, "lookup", str(table), "prio", "1536"]):
            run("ip", "-n", self.ns, *args)
        return pns, ip, table

    def serve(self, ns, kind, addr, port):
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", ECHO, kind, addr, str(port)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "ready", f"echo server in {ns} did not start"
        return p

    def ask(self, ns, kind, addr, port):
        p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", ASK, kind, addr, str(port)],
                           capture_output=True, text=True, timeout=10)
        return p.stdout.strip()

    def outside_drops(self):
        return self.W.truth()["fabric"]["outside_drops"]

    def eni_drops(self, eni_id):
        return self.W.eni_truth(eni_id)["drops"]


def case(env, fn):
    x = Egress(env)
    try:
        fn(x.start())
    finally:
        x.down()


def test_pod_on_secondary_eni_reaches_outside_as_node_primary():
    def body(x):
        wait_for(lambda: x.table() is not None, timeout=5, what="the vpc-ipam table")
        assert f"snat to {x.node['primary_ip']} fully-random" in x.table(), x.table()
        assert len(x.fwmark_rules()) == 1, x.fwmark_rules()
        pns, ip, table = x.pod(secondary=True)
        assert table != 254
        x.serve(x.W.w["outside"]["netns"], "tcp", x.outside, 7000)
        x.serve(x.W.w["outside"]["netns"], "udp", x.outside, 7001)
        before = x.outside_drops()
        t0 = time.monotonic()
        assert x.ask(pns, "tcp", x.outside, 7000) == x.node["primary_ip"], "TCP not seen as the node's primary"
        print(f"# pod {ip} (table {table}) -> outside over TCP in {(time.monotonic() - t0) * 1000:.0f} ms "
              "(incl. python start)")
        assert x.ask(pns, "udp", x.outside, 7001) == x.node["primary_ip"], "UDP not seen as the node's primary"
        assert x.outside_drops() == before
    case({}, body)


def test_external_snat_pod_does_not_get_out_and_fabric_says_why():
    def body(x):
        # evidence the daemon applied its egress config, then a whole reconciler pass after it
        wait_for(lambda: "egress SNAT removed" in open(x.d.log).read(), timeout=10, interval=0.05,
                 what="the daemon to log 'egress SNAT removed'")
        x.d.wait_passes()
        assert x.table() is None, "EXTERNALSNAT=true but the table exists"
        assert x.fwmark_rules() == []
        pns, ip, _ = x.pod(secondary=True)
        x.serve(x.W.w["outside"]["netns"], "tcp", x.outside, 7000)
        before = x.outside_drops()
        got = x.ask(pns, "tcp", x.outside, 7000)
        assert got.startswith("ERR"), f"got out without SNAT: {got}"
        # it left through its own ENI with its own address (source check passed) and the gateway refused it
        assert x.outside_drops() >= before + 1, "not counted at the way out"
    case({"AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"}, body)


def test_excluded_cidrs_are_not_natted():
    # 192.0.2.0/24 (the EC2 endpoint's net, in the fabric) is outside the VPC: excluded, the peer sees the pod
    def body(x):
        wait_for(lambda: x.table() is not None, timeout=5, what="the vpc-ipam table")
        assert "192.0.2.0/24" in x.table(), x.table()
        pns, ip, _ = x.pod(secondary=True)
        ec2_ip = "192.0.2.10"
        x.serve(x.W.w["fabric_netns"], "tcp", ec2_ip, 7002)
        x.serve(x.W.w["outside"]["netns"], "tcp", x.outside, 7000)
        assert x.ask(pns, "tcp", ec2_ip, 7002) == ip, "an excluded destination saw a NATed source"
        assert x.ask(pns, "tcp", x.outside, 7000) == x.node["primary_ip"], "the rest is still NATed"
    case({"AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "192.0.2.0/24,203.0.113.0/24"}, body)


NODEPORT_TABLE = """table ip kubeproxy {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    tcp dport 30080 dnat to POD:8080
  }
}
"""


def test_nodeport_replies_leave_through_the_primary_eni():
    def body(x):
        wait_for(lambda: x.table() is not None, timeout=5, what="the vpc-ipam table")
        pns, ip, _ = x.pod(secondary=True)
        x.serve(pns, "tcp", ip, 8080)
        # kube-proxy's part, in the node: NodePort 30080 -> the pod
        subprocess.run(["ip", "netns", "exec", x.ns, "nft", "-f", "-"], input=NODEPORT_TABLE.replace("POD", ip),
                       text=True, check=True, timeout=10)
        out_ns, primary = x.W.w["outside"]["netns"], x.node["primary_ip"]
        sec_eni = [e for e in x.d.call({"op": "enis"})["enis"] if e["id"] != x.node["primary_eni_id"]][0]["id"]
        before = x.eni_drops(sec_eni)
        assert x.ask(out_ns, "tcp", primary, 30080) == x.outside, "no NodePort answer through the primary ENI"
        assert x.eni_drops(sec_eni) == before
        # without NodePort support the reply takes the pod's ENI and its source check drops it
        x.restart({"AWS_VPC_CNI_NODE_PORT_SUPPORT": "false"})
        wait_for(lambda: "fib daddr . iif" not in (x.table() or "fib daddr . iif"), timeout=5,
                 what="the table without the NodePort mark")
        got = x.ask(out_ns, "tcp", primary, 30080)
        assert got.startswith("ERR"), f"answered without the connmark: {got}"
        assert x.eni_drops(sec_eni) >= before + 1, "the reply was not dropped at the pod's ENI"
    case({}, body)


def test_table_follows_vpc_cidrs_and_is_removed():
    def body(x):
        wait_for(lambda: x.table() is not None, timeout=5, what="the vpc-ipam table")
        assert "100.64.0.0/16" not in x.table()
        t0 = time.monotonic()
        x.W.ctl("POST", "/vpc-cidrs", {"add": ["100.64.0.0/16"]})
        wait_for(lambda: "100.64.0.0/16" in (x.table() or ""), timeout=10, what="the new VPC CIDR in the table")
        print(f"# new VPC CIDR in the table after {time.monotonic() - t0:.1f} s (IMDS read every 1 s, on the reconciler's 5 s tick)")
        assert len(x.fwmark_rules()) == 1
        x.W.ctl("POST", "/vpc-cidrs", {"remove": ["100.64.0.0/16"]})
        wait_for(lambda: "100.64.0.0/16" not in (x.table() or "100.64.0.0/16"), timeout=10,
                 what="the removed VPC CIDR gone")
        # removal on request: EXTERNALSNAT=true at the next start takes table and rule away
        x.restart({"AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"})
        wait_for(lambda: x.table() is None and not x.fwmark_rules(), timeout=5, what="table and rule gone")
        for ns in (x.W.w["fabric_netns"], x.W.w["outside"]["netns"]):
            assert x.table(ns) is None and not x.fwmark_rules(ns), ns
        host = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout
        assert "vpc-ipam" not in host, "a vpc-ipam table in the machine's own namespace"
    case({}, body)


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

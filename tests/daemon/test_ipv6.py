#!/usr/bin/env python3
"""IPv6 mode end to end (issue 16): the real vpc-ipamd and vpc-cni in an IPv6 VPC. TAP on stdout.

One fast world of two m5.large nodes brought up with `vpc-world up --ipv6`
(tests/emulator/README.md: a /56 for the VPC, a /64 per subnet, one IPv6
address on each node's primary ENI, IPv6 routed by the fabric with the
source/destination check, an outside host with IPv4 only). Both nodes run
vpc-ipamd with ENABLE_IPv6=true, ENABLE_IPv4=false and
ENABLE_PREFIX_DELEGATION=true (ENABLE_V4_EGRESS left at its default, true);
pods are wired by the real vpc-cni. The cases run in order on that world:

- each node's primary ENI holds exactly one /80 per EC2's truth: node0's
  daemon obtains it (AssignIpv6Addresses, Ipv6PrefixCount=1), node1's adopts
  the one assigned before it started; no ENI is created;
- 30 pods per node, each a /128 inside its node's /80, all distinct, wired as
  aws-node wires IPv6 pods (pod: the /128 on eth0, default via fe80::1 with a
  permanent neighbour; host: /128 route, rule `to` 512; an IPv4 egress
  address in 169.254.172.0/22 on v4if0); CHECK passes;
- /metrics, /v1/pods, /v1/enis, /v1/pool and `vpc-ipamctl pods`/`enis`/`pool`
  show the /80, the /128s and the egress addresses; /v1/pool's max_pods is
  EKS's IPv6 figure (`vpc-ipamctl max-pods --ipv6`), its max_enis 1;
- ICMPv6 pod to pod on a node and across the nodes, with 0 source-check drops;
- an IPv6 pod reaches the IPv4-only outside host through its egress address,
  and the outside sees the node's primary IPv4;
- SIGKILL of node0's daemon with its pods live, then a restart: every pod
  keeps its address and egress address, the /80 stays the only one, CHECK
  passes, the pods still talk;
- DEL of every pod leaves nothing on the node: no pod route, rule,
  neighbour, egress address or veth, and the daemon holds no pod.

Written against the IPv6 contract (tests/emulator's --ipv6 world, the daemon's
and the plugin's IPv6 mode were built in parallel): when it was written it had
run only against the emulator's side, with a daemon that still refused
ENABLE_IPv6; the field names it reads (add/check replies, `pods`, `status`)
are those of docs/protocol.md.
"""

import ipaddress
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cni"))

from ipamd import Daemon, harness, stop_all, wait_for  # noqa: E402
from test_vpc_cni_ipamd import Node  # noqa: E402

V6 = {"ENABLE_IPv6": "true", "ENABLE_IPv4": "false", "ENABLE_PREFIX_DELEGATION": "true",
      "IP_COOLDOWN_PERIOD": "1"}
PODS = 30
IPAMCTL = os.environ["VPC_IPAMCTL"]
EGRESS_NET = ipaddress.ip_network("169.254.172.0/22")

ECHO = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall((peer[0] + "\n").encode()); c.close()
"""

ASK = r"""
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print(s.recv(100).decode().strip())
except OSError as e:
    print("ERR " + type(e).__name__)
"""


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=2, extra=["--ipv6"])
        self.c = self.W.ec2()
        self.nodes = []
        self.pods = {}            # cid -> {"node": i, "ns": path, "ip": v6, "egress": v4, "out": CNI result}
        self.procs = []
        try:
            # node1's primary ENI already has a /80 when its daemon starts: it must adopt it
            r = self.c.assign_ipv6_addresses(NetworkInterfaceId=self.W.nodes[1]["primary_eni_id"], Ipv6PrefixCount=1)
            self.preassigned = r["AssignedIpv6Prefixes"][0]     # plain strings, as EC2 answers
            self.nodes = [Node(self.W, i, V6) for i in range(2)]
        except BaseException:
            self.close()
            raise

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in self.nodes:
            n.close()
        stop_all()
        self.W.down()


def setup():
    return Ctx()


def teardown(x):
    x.close()


# --- helpers ---------------------------------------------------------------------------

def prefixes80(x, i):
    """EC2's truth: the /80s on node i's primary ENI."""
    return x.W.eni_truth(x.W.nodes[i]["primary_eni_id"]).get("ipv6_prefixes") or []


def add6(n, cid, netns):
    """CNI ADD; (IPv6 /128, IPv4 egress address or None, result)."""
    rc, out = n.cni("ADD", cid, netns)
    assert rc == 0, (cid, out)
    v6 = [ipaddress.ip_interface(a["address"]) for a in out["ips"] if ipaddress.ip_interface(a["address"]).version == 6]
    v4 = [ipaddress.ip_interface(a["address"]) for a in out["ips"] if ipaddress.ip_interface(a["address"]).version == 4]
    assert len(v6) == 1 and v6[0].network.prefixlen == 128, out
    assert len(v4) <= 1, out
    return str(v6[0].ip), (str(v4[0].ip) if v4 else None), out


def in_pod(netns, *args, check=False):
    return subprocess.run(["nsenter", "--net=" + netns] + list(args), capture_output=True, text=True,
                          timeout=30, check=check)


def ping6(netns, ip):
    return in_pod(netns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "-q", ip).returncode == 0


def drops_total(x):
    return x.W.truth()["fabric"]["drops_total"]


def node_sh(n, *args):
    return n.sh(*args).stdout


def pod_links_of(n):
    """Links in the node that a pod attachment made (vpc-cni marks them with an alias vpc-cni:...)."""
    links = json.loads(node_sh(n, "ip", "-j", "-d", "link", "show"))
    return [x["ifname"] for x in links if (x.get("ifalias") or "").startswith("vpc-cni:")
            or x["ifname"].startswith("eni")]


def mentions(text, ip):
    """Whether `ip route/rule/neigh` output names ip (as a whole word, /128 or bare)."""
    return any(tok in (ip, ip + "/128") for tok in text.split())


def check_reply(n, cid):
    return n.d.call({"op": "check", "container_id": cid, "ifname": "eth0"})


# --- the cases -----------------------------------------------------------------------------

def test_each_node_holds_one_80_on_its_primary_eni(x):
    for n in x.nodes:
        n.d.start()
    wait_for(lambda: len(prefixes80(x, 0)) == 1, timeout=30, interval=0.2, what="node0's /80 in EC2")
    wait_for(lambda: all(n.d.try_call({"op": "status"}) and n.d.call({"op": "status"}).get("ready")
                         for n in x.nodes), timeout=30, interval=0.2, what="both daemons ready")
    assert prefixes80(x, 1) == [x.preassigned], f"node1 did not adopt its /80: {prefixes80(x, 1)}"
    assert len(prefixes80(x, 0)) == 1, prefixes80(x, 0)
    for i in range(2):
        net = ipaddress.ip_network(prefixes80(x, i)[0])
        assert net.prefixlen == 80 and net.subnet_of(ipaddress.ip_network(x.W.w["subnets"][0]["ipv6_cidr"]))
    stats = x.W.ctl("GET", "/stats")["api"]
    assert stats.get("CreateNetworkInterface", {}).get("calls", 0) == 0, "an ENI was created in IPv6 mode"
    enis = [e for e in x.W.truth()["enis"] if e["attachment"]]
    assert len(enis) == 2, [e["id"] for e in enis]


def test_30_pods_per_node_each_a_128_in_its_nodes_80(x):
    for i, n in enumerate(x.nodes):
        for k in range(PODS):
            cid = f"n{i}p{k}"
            ns = n.pod()
            ip, egress, out = add6(n, cid, ns)
            x.pods[cid] = {"node": i, "ns": ns, "ip": ip, "egress": egress, "out": out}
    ips = [p["ip"] for p in x.pods.values()]
    assert len(set(ips)) == 2 * PODS, "an address handed out twice"
    for cid, p in x.pods.items():
        (mine,) = prefixes80(x, p["node"])
        assert ipaddress.ip_address(p["ip"]) in ipaddress.ip_network(mine), (cid, p["ip"], mine)
        assert p["ip"] == str(ipaddress.ip_address(p["ip"])), f"not canonical: {p['ip']}"
        assert p["egress"] and ipaddress.ip_address(p["egress"]) in EGRESS_NET, (cid, p["egress"])
    for i in range(2):
        eg = [p["egress"] for p in x.pods.values() if p["node"] == i]
        assert len(set(eg)) == PODS, f"node{i}: an egress address on two live pods"
    # the wiring of one pod per node, as aws-node's IPv6 mode wires it
    for i, n in enumerate(x.nodes):
        cid = f"n{i}p0"
        p = x.pods[cid]
        addrs = in_pod(p["ns"], "ip", "-6", "addr", "show", "dev", "eth0", "scope", "global").stdout
        assert f"{p['ip']}/128" in addrs and "tentative" not in addrs, addrs
        assert "default via fe80::1 dev eth0" in in_pod(p["ns"], "ip", "-6", "route", "show", "default").stdout
        neigh = in_pod(p["ns"], "ip", "-6", "neigh", "show", "fe80::1", "dev", "eth0").stdout
        assert "PERMANENT" in neigh, neigh
        v4 = in_pod(p["ns"], "ip", "-4", "addr", "show", "dev", "v4if0").stdout
        assert f"{p['egress']}/22" in v4, v4
        assert "default via 169.254.172.1" in in_pod(p["ns"], "ip", "-4", "route", "show", "default").stdout
        assert f"{p['ip']} dev " in node_sh(n, "ip", "-6", "route", "show", p["ip"])
        rules = node_sh(n, "ip", "-6", "rule", "show")
        assert f"512:\tfrom all to {p['ip']} lookup main" in rules, rules
        r = check_reply(n, cid)
        assert r["ok"] and r["ip"] == p["ip"] and r["gateway"] == "fe80::1" and r["route_table"] == 254, r
        assert r["egress_ip"] == p["egress"] and r["eni_id"] == x.W.nodes[i]["primary_eni_id"], r
        assert r["vpc_cidrs"][0] == x.W.w["vpc"]["ipv6_cidrs"][0], r
    for cid, p in list(x.pods.items())[::7]:
        rc, res = x.nodes[p["node"]].cni("CHECK", cid, p["ns"], prev=p["out"])
        assert rc == 0, (cid, res)


def test_metrics_introspection_and_ipamctl_show_ipv6(x):
    n, eni = x.nodes[0], x.W.nodes[0]["primary_eni_id"]
    mine = {p["ip"]: p["egress"] for p in x.pods.values() if p["node"] == 0}
    (prefix,) = prefixes80(x, 0)
    for name, want in (("vpcipam_ipv6_prefixes", 1), ("vpcipam_assigned_ipv6_addresses", PODS),
                       ("vpcipam_egress_ipv4_addresses", PODS), ("awscni_assigned_ip_addresses", PODS),
                       ("awscni_eni_max", 1), ("awscni_ip_max", 2 ** 48)):
        assert n.d.metric(name) == want, (name, n.d.metric(name), want)
    st, body = n.d.http("/v1/pods")
    assert st == 200 and {p["ip"]: p.get("egress_ip") for p in json.loads(body)} == mine, body
    st, body = n.d.http("/v1/enis")
    enis = [e for e in json.loads(body) if e["id"] == eni]
    assert st == 200 and len(enis) == 1 and enis[0].get("ipv6_prefixes") == [prefix], body
    # the pool, with kubelet's max-pods as `vpc-ipamctl max-pods --ipv6` gives it for the type
    st, body = n.d.http("/v1/pool")
    pool = json.loads(body)
    want = json.loads(ctl("--json", "max-pods", "--instance-type", pool["instance_type"], "--ipv6"))["max_pods"]
    assert st == 200 and pool["ipv6_prefixes"] == 1 and pool["ipv6_assigned"] == PODS, pool
    assert pool["max_enis"] == 1 and pool["max_pods"] == want == 110, (pool, want)
    rows = {r.split()[0]: r.split()[1] for r in ctl("--socket", n.d.sock, "pods").splitlines()[1:]}
    assert rows == mine, rows
    assert f"{eni} IPv6 prefix {prefix}" in ctl("--socket", n.d.sock, "enis")
    pool_lines = ctl("--socket", n.d.sock, "pool").splitlines()
    assert f"IPv6 assigned     {PODS}" in pool_lines and f"IPv4 egress held  {PODS}" in pool_lines, pool_lines
    # no IPv4 secondary counts (always 0 on an IPv6 node: "available now 0" reads as a full node)
    assert not [r for r in pool_lines if r.startswith(("addresses", "available now", "assigned to pods"))], pool_lines


def ctl(*args):
    p = subprocess.run([IPAMCTL] + list(args), capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout


def _pick(x, node, k):
    return x.pods[f"n{node}p{k}"]


def test_icmpv6_pod_to_pod_on_a_node_and_across_nodes(x):
    before = drops_total(x)
    a, b, c = _pick(x, 0, 1), _pick(x, 0, 2), _pick(x, 1, 1)
    assert ping6(a["ns"], b["ip"]), "pod -> pod on node0"
    assert ping6(a["ns"], c["ip"]), "node0 pod -> node1 pod"
    assert ping6(c["ns"], a["ip"]), "node1 pod -> node0 pod"
    assert ping6(c["ns"], _pick(x, 1, 2)["ip"]), "pod -> pod on node1"
    assert ping6(a["ns"], x.W.nodes[1]["primary_ipv6"]), "node0 pod -> node1's own IPv6"
    assert drops_total(x) == before, f"source-check drops: {x.W.truth()['fabric']['drops']}"


def test_ipv6_pod_reaches_the_ipv4_outside_as_the_node_primary(x):
    out_ns, outside = x.W.w["outside"]["netns"], x.W.w["outside"]["ip"]
    p = subprocess.Popen(["ip", "netns", "exec", out_ns, sys.executable, "-c", ECHO, outside, "7000"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    x.procs.append(p)
    assert p.stdout.readline().strip() == "ready"
    before = x.W.truth()["fabric"]["outside_drops"]
    for i in range(2):
        pod = _pick(x, i, 3)
        got = in_pod(pod["ns"], sys.executable, "-c", ASK, outside, "7000").stdout.strip()
        assert got == x.W.nodes[i]["primary_ip"], f"node{i} pod seen by the outside as {got!r}"
    assert x.W.truth()["fabric"]["outside_drops"] == before


def test_sigkill_and_restart_keeps_every_address(x):
    n = x.nodes[0]
    mine = {cid: p for cid, p in x.pods.items() if p["node"] == 0}
    held = {cid: (check_reply(n, cid)["ip"], check_reply(n, cid).get("egress_ip")) for cid in mine}
    assert held == {cid: (p["ip"], p["egress"]) for cid, p in mine.items()}, "the daemon disagrees before the kill"
    prefix = prefixes80(x, 0)
    n.d.kill()
    n.d = Daemon(x.W, 0, V6)
    n.d.start()
    wait_for(lambda: n.d.call({"op": "status"}).get("ready"), timeout=30, interval=0.2, what="ready after restart")
    for cid, p in mine.items():
        r = check_reply(n, cid)
        assert r["ok"] and r["ip"] == p["ip"] and r.get("egress_ip") == p["egress"], (cid, r, p)
    assert prefixes80(x, 0) == prefix, f"the /80 changed: {prefix} -> {prefixes80(x, 0)}"
    for cid, p in list(mine.items())[::6]:
        rc, res = n.cni("CHECK", cid, p["ns"], prev=p["out"])
        assert rc == 0, (cid, res)
    before = drops_total(x)
    assert ping6(_pick(x, 1, 4)["ns"], _pick(x, 0, 4)["ip"]), "a live pod unreachable after the restart"
    assert drops_total(x) == before
    # a new pod after the restart gets none of the live addresses
    late_ns = n.pod()
    ip, egress, out = add6(n, "late", late_ns)
    assert ip not in {p["ip"] for p in x.pods.values()}, ip
    assert egress not in {p["egress"] for p in mine.values()}, egress
    x.pods["late"] = {"node": 0, "ns": late_ns, "ip": ip, "egress": egress, "out": out}


def test_del_leaves_nothing(x):
    for cid, p in x.pods.items():
        n = x.nodes[p["node"]]
        rc, res = n.cni("DEL", cid, p["ns"], prev=p["out"])
        assert rc == 0, (cid, res)
    for i, n in enumerate(x.nodes):
        gone = [p for p in x.pods.values() if p["node"] == i]
        wait_for(lambda: pod_links_of(n) == [], timeout=10, what=f"node{i}: the pod veths gone ({pod_links_of(n)})")
        routes6 = node_sh(n, "ip", "-6", "route", "show", "table", "all")
        rules6 = node_sh(n, "ip", "-6", "rule", "show")
        neigh6 = node_sh(n, "ip", "-6", "neigh", "show")
        routes4 = node_sh(n, "ip", "-4", "route", "show", "table", "all")
        addrs4 = node_sh(n, "ip", "-4", "addr", "show")
        for p in gone:
            assert not mentions(routes6, p["ip"]), f"node{i}: a route to {p['ip']} left:\n{routes6}"
            assert not mentions(rules6, p["ip"]), f"node{i}: a rule for {p['ip']} left:\n{rules6}"
            assert not mentions(neigh6, p["ip"]), f"node{i}: a neighbour {p['ip']} left:\n{neigh6}"
            assert not mentions(routes4, p["egress"]), f"node{i}: a route to egress {p['egress']} left"
        assert "169.254.172." not in addrs4, f"node{i}: an egress address left:\n{addrs4}"
        for cid, p in x.pods.items():
            if p["node"] == i:
                assert n.pod_links(p["ns"]) == ["lo"], f"{cid}: pod links left: {n.pod_links(p['ns'])}"
        assert [r for r in rules6.splitlines() if r.startswith("512:")] == [], rules6
        assert n.d.call({"op": "pods"})["pods"] == [], n.d.call({"op": "pods"})


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

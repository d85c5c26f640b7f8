#!/usr/bin/env python3
"""ENABLE_V6_EGRESS end to end (issue 16): IPv6 egress of IPv4 pods, the real vpc-ipamd and vpc-cni. TAP on stdout.

One fast world of two m5.large nodes brought up with `vpc-world up --ipv6
--outside-ipv6` (tests/emulator/README.md: each node's primary ENI has an
IPv6 address that IMDS lists as meta-data/ipv6, and the outside host has an
IPv6 address the fabric forwards to only from a node's primary IPv6). Both
daemons run in IPv4 mode with ENABLE_V6_EGRESS=true; node1's IPv6 address is
unassigned before its daemon starts, so IMDS lists none. The cases run in
order on that world:

- node1 (no IPv6): the setting is off with one clear log line, pods are
  still served, IPv4 only, no v6if0, no ip6 table;
- node0: pods get their IPv4 address and a ULA from fd00::ac:0/118 on
  v6if0 (default via the host end's link-local, eth0's IPv6 off), all
  distinct; CHECK passes; the daemon's check reply, /metrics, /v1/pods
  and `vpc-ipamctl pods`/`pool` show them; the ip6 vpc-ipam table SNATs
  the range to the node's IPv6 and rejects new connections to it;
- an IPv4 pod reaches the IPv6 outside host, which sees node0's IPv6,
  with no drop at the fabric's way out;
- SIGKILL + restart of node0's daemon with live pods keeps each ULA, and a
  ULA the kernel routes to a pod the store does not know is never handed
  out;
- DEL leaves nothing: no route to a ULA, no egress veth or v6if0, no
  element naming a ULA in the table, the daemon holds no pod.
"""

import contextlib
import ipaddress
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cni"))

from ipamd import Daemon, harness, wait_for  # noqa: E402
from test_vpc_cni_ipamd import Node  # noqa: E402
import test_ipv6  # noqa: E402

V4 = {"ENABLE_V6_EGRESS": "true", "WARM_IP_TARGET": "4", "IP_COOLDOWN_PERIOD": "1"}
PODS = 6
IPAMCTL = os.environ["VPC_IPAMCTL"]
ULA = ipaddress.ip_network("fd00::ac:0/118")
NO_IPV6_LOG = "ENABLE_V6_EGRESS=true but the node has no IPv6 address (IMDS meta-data/ipv6 is absent)"

# test_ipv6's echo server (it answers with the peer's address) on an IPv6 socket, and its client
ECHO6 = test_ipv6.ECHO.replace("socket.socket()", "socket.socket(socket.AF_INET6)")
ASK6 = test_ipv6.ASK
assert ECHO6 != test_ipv6.ECHO


class Ctx(test_ipv6.Ctx):
    """test_ipv6's context (its close() stops what this one starts too), on an --outside-ipv6 world."""

    def __init__(self):
        self.W = harness.WorldFixture(nodes=2, extra=["--ipv6", "--outside-ipv6"])
        self.c, self.nodes, self.procs = self.W.ec2(), [], []
        self.pods = {}            # cid -> {"node": i, "ns": path, "ip": v4, "ula": v6 or None, "out": CNI result}
        with contextlib.ExitStack() as undo:
            undo.callback(self.close)                   # a failed setup leaves nothing
            n1 = self.W.nodes[1]                        # node1: no IPv6 address in IMDS
            self.c.unassign_ipv6_addresses(NetworkInterfaceId=n1["primary_eni_id"], Ipv6Addresses=[n1["primary_ipv6"]])
            self.nodes = [Node(self.W, i, V4) for i in range(2)]
            undo.pop_all()


def setup():
    return Ctx()


teardown = test_ipv6.teardown


# --- helpers ---------------------------------------------------------------------------

def add4(x, n, i, cid):
    """CNI ADD on node i: records (IPv4 /32, ULA or None, result)."""
    ns = n.pod()
    rc, out = n.cni("ADD", cid, ns)
    assert rc == 0, (cid, out)
    ips = [ipaddress.ip_interface(a["address"]) for a in out["ips"]]
    v4 = [a for a in ips if a.version == 4]
    v6 = [a for a in ips if a.version == 6]
    assert len(v4) == 1 and v4[0].network.prefixlen == 32 and len(v6) <= 1, out
    x.pods[cid] = {"node": i, "ns": ns, "ip": str(v4[0].ip), "ula": str(v6[0].ip) if v6 else None, "out": out}
    return x.pods[cid]


def in_pod(netns, *args):
    return subprocess.run(["nsenter", "--net=" + netns] + list(args), capture_output=True, text=True, timeout=30)


def node_sh(n, *args):
    return n.sh(*args).stdout


def ctl(*args):
    p = subprocess.run([IPAMCTL] + list(args), capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout


def egress_links(n):
    links = json.loads(node_sh(n, "ip", "-j", "-d", "link", "show"))
    return [x["ifname"] for x in links if (x.get("ifalias") or "").startswith("vpc-cni-egress:")]


def echo6(x, where, addr, port):
    """ECHO6 on addr:port run by the command prefix where (a namespace), once it listens."""
    p = subprocess.Popen(where + [sys.executable, "-c", ECHO6, addr, port], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    x.procs.append(p)
    assert p.stdout.readline().strip() == "ready", f"no echo server on {addr}:{port}"


def log_text(n):
    with open(n.d.log) as f:
        return f.read()


# --- the cases -----------------------------------------------------------------------------

def test_node_without_ipv6_is_off_with_a_log_line_and_serves_pods(x):
    for n in x.nodes:
        n.d.start()
    n = x.nodes[1]
    wait_for(lambda: n.d.call({"op": "status"}).get("ready"), timeout=30, interval=0.2, what="node1 ready")
    assert log_text(n).count(NO_IPV6_LOG) == 1, n.d.tail()
    for k in range(2):
        p = add4(x, n, 1, f"n1p{k}")
        assert p["ula"] is None, p["out"]
        assert in_pod(p["ns"], "ip", "link", "show", "v6if0").returncode != 0, "v6if0 without IPv6 egress"
        r = n.d.call({"op": "check", "container_id": f"n1p{k}", "ifname": "eth0"})
        assert r["ok"] and r["ip"] == p["ip"] and "egress_ip" not in r, r
    assert egress_links(n) == []
    assert node_sh(n, "nft", "list", "table", "ip6", "vpc-ipam") == "", "an ip6 table on a node without IPv6"
    st, body = n.d.http("/metrics", metrics=True)
    assert st == 200 and "vpcipam_egress_ipv6_addresses" not in body, body


def test_pods_get_a_ula_on_v6if0_as_aws_node_wires_it(x):
    n, node_ip6 = x.nodes[0], x.W.nodes[0]["primary_ipv6"]
    wait_for(lambda: n.d.call({"op": "status"}).get("ready"), timeout=30, interval=0.2, what="node0 ready")
    assert NO_IPV6_LOG not in log_text(n)
    for k in range(PODS):
        add4(x, n, 0, f"n0p{k}")
    mine = {cid: p for cid, p in x.pods.items() if p["node"] == 0}
    ulas = [p["ula"] for p in mine.values()]
    assert all(u and ipaddress.ip_address(u) in ULA for u in ulas), ulas
    assert len(set(ulas)) == PODS, f"a ULA on two live pods: {ulas}"
    p = mine["n0p0"]
    addrs = in_pod(p["ns"], "ip", "-6", "addr", "show", "dev", "v6if0").stdout
    assert f"{p['ula']}/118" in addrs and "tentative" not in addrs, addrs
    default = in_pod(p["ns"], "ip", "-6", "route", "show", "default").stdout
    assert "default via fe80::" in default and "dev v6if0" in default, default
    assert in_pod(p["ns"], "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout.strip() == "1"
    assert f"{p['ula']} dev " in node_sh(n, "ip", "-6", "route", "show", p["ula"])
    assert [i["name"] for i in p["out"]["interfaces"]][-1] == "v6if0", p["out"]
    for cid, q in mine.items():
        rc, res = n.cni("CHECK", cid, q["ns"], prev=q["out"])
        assert rc == 0, (cid, res)
        r = n.d.call({"op": "check", "container_id": cid, "ifname": "eth0"})
        assert r["ok"] and r["ip"] == q["ip"] and r["egress_ip"] == q["ula"], r
    assert n.d.metric("vpcipam_egress_ipv6_addresses") == PODS
    st, body = n.d.http("/v1/pods")
    assert st == 200 and {q["ip"]: q.get("egress_ip") for q in json.loads(body)} == \
        {q["ip"]: q["ula"] for q in mine.values()}, body
    lines = ctl("--socket", n.d.sock, "pods").splitlines()
    assert lines[0].split()[:2] == ["IP", "EGRESS"] and "EGRESS IPV6" in lines[0], lines[0]
    assert {r.split()[0]: r.split()[1] for r in lines[1:]} == {q["ip"]: q["ula"] for q in mine.values()}, lines
    assert f"IPv6 egress held  {PODS}" in ctl("--socket", n.d.sock, "pool").splitlines()
    table = node_sh(n, "nft", "list", "table", "ip6", "vpc-ipam")
    assert f"ip6 saddr fd00::ac:0/118 snat to {node_ip6}" in table, table
    assert "ip6 daddr fd00::ac:0/118 ct state new reject" in table, table


def test_ipv4_pod_reaches_the_ipv6_outside_as_the_node_ipv6(x):
    outside = x.W.w["outside"]["ip6"]
    echo6(x, ["ip", "netns", "exec", x.W.w["outside"]["netns"]], outside, "7006")
    before = x.W.truth()["fabric"]["outside_drops"]
    for k in (1, 4):
        pod = x.pods[f"n0p{k}"]
        got = in_pod(pod["ns"], sys.executable, "-c", ASK6, outside, "7006").stdout.strip()
        assert got == x.W.nodes[0]["primary_ipv6"], f"pod {k} seen by the outside as {got!r}"
    assert x.W.truth()["fabric"]["outside_drops"] == before
    # the way out is only for the node's primary IPv6, as for IPv4: an address the ENI owns (it passes the
    # source check) but is not the primary is dropped at the outside, and counted
    eni = x.W.nodes[0]["primary_eni_id"]
    extra = x.c.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6AddressCount=1)["AssignedIpv6Addresses"][0]
    n = x.nodes[0]
    assert n.sh("ip", "-6", "addr", "add", extra + "/128", "dev", "eth0", "nodad").returncode == 0
    ask_from = ASK6.replace("timeout=2)", f"timeout=2, source_address=('{extra}', 0))")
    assert ask_from != ASK6
    got = n.sh(sys.executable, "-c", ask_from, outside, "7006").stdout.strip()
    assert got.startswith("ERR"), f"the outside answered {extra}: {got!r}"
    assert x.W.truth()["fabric"]["outside_drops"] > before
    n.sh("ip", "-6", "addr", "del", extra + "/128", "dev", "eth0")
    x.c.unassign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Addresses=[extra])
    # a listener on a pod's ULA: the node itself reaches it, a connection forwarded to it (from another
    # pod) is rejected, as aws-node's FORWARD rule rejects it
    other = x.pods["n0p2"]
    echo6(x, ["nsenter", "--net=" + other["ns"]], "::", "7007")
    got = x.nodes[0].sh(sys.executable, "-c", ASK6, other["ula"], "7007").stdout.strip()
    assert ipaddress.ip_address(got), f"the node cannot reach the pod's listener: {got!r}"
    got = in_pod(x.pods["n0p3"]["ns"], sys.executable, "-c", ASK6, other["ula"], "7007").stdout.strip()
    assert got.startswith("ERR"), f"a forwarded connection to a ULA got through: {got!r}"


def test_restart_keeps_ulas_and_skips_one_an_unknown_pod_holds(x):
    n = x.nodes[0]
    mine = {cid: p for cid, p in x.pods.items() if p["node"] == 0}
    # a pod the store does not know (aws-node's, or one a lost store forgot) is routed fd00::ac:a
    assert all(p["ula"] != "fd00::ac:a" for p in mine.values())
    assert n.sh("ip", "link", "add", "unk0", "type", "veth", "peer", "name", "unk1").returncode == 0
    n.sh("ip", "link", "set", "unk0", "up")
    r = n.sh("ip", "-6", "route", "add", "fd00::ac:a/128", "dev", "unk0")
    assert r.returncode == 0, r.stderr
    n.d.kill()
    n.d = Daemon(x.W, 0, V4)
    n.d.start()
    wait_for(lambda: n.d.call({"op": "status"}).get("ready"), timeout=30, interval=0.2, what="ready after restart")
    for cid, p in mine.items():
        r = n.d.call({"op": "check", "container_id": cid, "ifname": "eth0"})
        assert r["ok"] and r["ip"] == p["ip"] and r.get("egress_ip") == p["ula"], (cid, r, p)
    assert "egress addresses in use by pods the store does not know are not handed out" in log_text(n)
    late = [add4(x, n, 0, f"n0late{k}")["ula"] for k in range(3)]
    assert late == ["fd00::ac:8", "fd00::ac:9", "fd00::ac:b"], late      # lowest never used, fd00::ac:a kept
    n.sh("ip", "link", "del", "unk0")


def test_del_leaves_nothing(x):
    for cid, p in x.pods.items():
        rc, res = x.nodes[p["node"]].cni("DEL", cid, p["ns"], prev=p["out"])
        assert rc == 0, (cid, res)
    n = x.nodes[0]
    wait_for(lambda: egress_links(n) == [], timeout=10, what=f"egress veths gone ({egress_links(n)})")
    routes6 = node_sh(n, "ip", "-6", "route", "show", "table", "all")
    neigh6 = node_sh(n, "ip", "-6", "neigh", "show")
    table = node_sh(n, "nft", "list", "table", "ip6", "vpc-ipam")
    for cid, p in x.pods.items():
        if p["node"] != 0:
            continue
        assert p["ula"] not in routes6.split(), f"a route to {p['ula']} left:\n{routes6}"
        assert p["ula"] not in neigh6.split(), f"a neighbour {p['ula']} left:\n{neigh6}"
        assert p["ula"] not in table, f"{p['ula']} named in the table:\n{table}"
        assert n.pod_links(p["ns"]) == ["lo"], f"{cid}: pod links left: {n.pod_links(p['ns'])}"
    for m in x.nodes:
        assert m.d.call({"op": "pods"})["pods"] == [], m.d.call({"op": "pods"})
    assert n.d.metric("vpcipam_egress_ipv6_addresses") == 0


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

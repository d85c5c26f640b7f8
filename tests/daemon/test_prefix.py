"""Prefix delegation end to end: the real vpc-ipamd and vpc-cni in the emulated VPC. TAP on stdout.

An m5.large with ENABLE_PREFIX_DELEGATION=true and WARM_PREFIX_TARGET=1 serves
110 pods ADDed through the plugin, each at a distinct address inside a /28
that EC2's truth (the emulator's /truth) lists on one of the node's ENIs;
after DEL of all, the pool shrinks back to one free prefix. A SIGKILL while
AssignPrivateIpAddresses (Ipv4PrefixCount) is in flight is resolved at the
restart: no intent stays open, and the store holds exactly the prefixes EC2
lists; so is one during UnassignPrivateIpAddresses (Ipv4Prefix.N). A xen
instance type falls back to secondary IPs, logged, as aws-node. A node subnet
with no free /28 serves pods through /32s (the fallback). The bounded chaos
run (tests/chaos) holds its invariants in prefix delegation.
"""

import ipaddress
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cni"))
sys.path.insert(0, os.path.join(HERE, "..", "chaos"))

import chaos  # noqa: E402
from ipamd import Daemon, harness, stop_all, wait_for  # noqa: E402
from test_vpc_cni_ipamd import Node  # noqa: E402

XEN = "m4.large"
PD = {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "IP_COOLDOWN_PERIOD": "1",
      "VPC_IPAM_SHRINK_DELAY": "3"}


def wait_intent(d, kind, timeout=10):
    def open_one():
        r = d.try_call({"op": "intents"}, timeout=2)
        return r and any(i["kind"] == kind for i in r["intents"])
    wait_for(open_one, timeout=timeout, interval=0.01, what=f"an open {kind} intent")


def ec2_connections(w):
    """The node's TCP connections to the emulated EC2 that the emulator has not closed yet
    (as test_faults.py: one still here is a call the emulator has not finished)."""
    host = urllib.parse.urlparse(w.w["ec2_endpoint"]).hostname
    states = ["syn-sent", "established", "fin-wait-1", "fin-wait-2", "closing", "last-ack"]
    p = subprocess.run(["ip", "netns", "exec", w.node_ns(0), "ss", "-Htn"] + [x for st in states for x in ("state", st)]
                       + ["dst", host], capture_output=True, text=True, timeout=10, check=True)
    return [line for line in p.stdout.splitlines() if line.strip()]


def node_prefixes(w, instance_id):
    """EC2's truth: {prefix: eni_id} of the /28s on ENIs attached to the instance."""
    out = {}
    for e in w.truth()["enis"]:
        if (e.get("attachment") or {}).get("instance_id") == instance_id:
            for p in e.get("prefixes") or []:
                out[p] = e["id"]
    return out


def store_blocks(d):
    db = sqlite3.connect(d.db)
    try:
        return {c: (k, e) for c, k, e in db.execute("SELECT cidr, kind, eni_id FROM blocks")}
    finally:
        db.close()


def open_intents(d):
    db = sqlite3.connect(d.db)
    try:
        return db.execute("SELECT kind, params FROM intents WHERE state = 'open'").fetchall()
    finally:
        db.close()


def test_110_pods_in_prefixes_then_shrink():
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, PD)
    inst = w.nodes[0]["instance_id"]
    try:
        n.d.start()
        wait_for(lambda: n.d.pool()["available"] >= 16, timeout=20, what="a first prefix")
        pods = {}
        for i in range(110):
            ns = n.pod()
            ip, out = n.add(f"p{i}", ns)
            pods[f"p{i}"] = (ns, ip, out)
        ips = [v[1] for v in pods.values()]
        assert len(set(ips)) == 110, "addresses handed out twice"
        truth = node_prefixes(w, inst)
        nets = [ipaddress.ip_network(p) for p in truth]
        outside = [ip for ip in ips if not any(ipaddress.ip_address(ip) in net for net in nets)]
        assert not outside, f"pods outside every prefix EC2 lists on the node: {outside[:5]} ({sorted(truth)})"
        # 110 pods in 7 prefixes, plus the warm one: never beyond what max-pods needs
        assert 7 <= len(truth) <= 9, sorted(truth)
        blocks = store_blocks(n.d)
        assert {c for c, (k, _) in blocks.items() if k == "prefix"} == set(truth), (sorted(blocks), sorted(truth))
        assert all(k == "prefix" for k, _ in blocks.values()), "a /32 in a PD pool"
        assert n.d.metric("awscni_total_ipv4_prefixes") == len(truth)
        assert n.d.metric("awscni_ip_max") == 3 * 9 * 16
        for cid, (ns, ip, out) in pods.items():
            rc, res = n.cni("DEL", cid, ns, prev=out)
            assert rc == 0, (cid, res)
        assert n.d.pool()["assigned"] == 0, n.d.pool()
        # back to WARM_PREFIX_TARGET: one free prefix, the rest returned to EC2
        wait_for(lambda: len(node_prefixes(w, inst)) == 1 and n.d.pool()["total"] == 16, timeout=90,
                 interval=0.5, what=f"the pool shrinking to one prefix (now {n.d.pool()}, {sorted(node_prefixes(w, inst))})")
        assert {c for c in store_blocks(n.d)} == set(node_prefixes(w, inst))
        assert open_intents(n.d) == []
    finally:
        n.close()
        stop_all()
        w.down()


def test_sigkill_during_prefix_assign():
    w = harness.WorldFixture(nodes=1)
    inst = w.nodes[0]["instance_id"]
    d = Daemon(w, env=PD)
    try:
        w.ctl("POST", "/latency", {"api": {"AssignPrivateIpAddresses": 1.5}})
        d.start()
        wait_intent(d, "assign_ips")
        d.kill()
        wait_for(lambda: not ec2_connections(w), timeout=10, interval=0.05,
                 what="the emulator to finish the dead daemon's calls")
        w.ctl("POST", "/latency", {"api": {"AssignPrivateIpAddresses": 0}, "attach": 0, "detach": 0})
        interrupted = open_intents(d)
        assert any(k == "assign_ips" and '"prefixes"' in p for k, p in interrupted), interrupted
        d2 = Daemon(w, env=PD).start()
        def settled():
            return (open_intents(d2) == [] and node_prefixes(w, inst)
                    and set(store_blocks(d2)) == set(node_prefixes(w, inst)) and d2.pool()["available"] >= 16)
        wait_for(settled, timeout=30, interval=0.2,
                 what=f"the interrupted assign resolved ({open_intents(d2)}, {sorted(store_blocks(d2))}, "
                      f"{sorted(node_prefixes(w, inst))})")
        assert all(k == "prefix" for k, _ in store_blocks(d2).values())
        with open(d2.log) as f:
            assert "resolved an interrupted operation" in f.read()
    finally:
        stop_all()
        w.down()


def test_sigkill_during_prefix_unassign():
    """Three free prefixes, then WARM_PREFIX_TARGET=1: the daemon is killed while Ipv4Prefix.N
    is in flight; the restart settles the release (the prefixes leave the store and EC2 alike)."""
    w = harness.WorldFixture(nodes=1)
    inst = w.nodes[0]["instance_id"]
    three = dict(PD, WARM_PREFIX_TARGET="3")
    d = Daemon(w, env=three)
    try:
        d.start()
        wait_for(lambda: len(node_prefixes(w, inst)) == 3 and d.pool()["total"] == 48, timeout=20, interval=0.1,
                 what="three prefixes")
        d.stop()
        w.ctl("POST", "/latency", {"api": {"UnassignPrivateIpAddresses": 1.5}})
        d = Daemon(w, env=PD)
        d.start()
        wait_intent(d, "unassign_ips")
        d.kill()
        wait_for(lambda: not ec2_connections(w), timeout=10, interval=0.05,
                 what="the emulator to finish the dead daemon's calls")
        w.ctl("POST", "/latency", {"api": {"UnassignPrivateIpAddresses": 0}, "attach": 0, "detach": 0})
        interrupted = open_intents(d)
        assert any(k == "unassign_ips" and '"prefixes"' in p for k, p in interrupted), interrupted
        d2 = Daemon(w, env=PD).start()
        def settled():
            return (open_intents(d2) == [] and len(node_prefixes(w, inst)) == 1
                    and set(store_blocks(d2)) == set(node_prefixes(w, inst)) and d2.pool()["total"] == 16)
        wait_for(settled, timeout=30, interval=0.2,
                 what=f"the interrupted release settled ({open_intents(d2)}, {sorted(store_blocks(d2))}, "
                      f"{sorted(node_prefixes(w, inst))})")
    finally:
        stop_all()
        w.down()


def test_xen_falls_back_to_secondary_ips():
    w = harness.WorldFixture(nodes=1, instance_type=XEN)
    d = Daemon(w, env=PD)
    try:
        d.start()
        wait_for(lambda: d.pool()["available"] >= 1, timeout=20, what="a warm pool")
        d.wait_passes()
        assert all(k == "ip" for k, _ in store_blocks(d).values()), store_blocks(d)
        assert node_prefixes(w, w.nodes[0]["instance_id"]) == {}
        with open(d.log) as f:
            assert "not nitro" in f.read()
    finally:
        stop_all()
        w.down()


def test_fragmented_subnet_serves_pods_through_ip_fallback():
    """The node subnet (a /25) has an address taken in every /28: EC2 refuses every prefix
    (InsufficientCidrBlocks), and vpc-ipamd meets the need with /32 secondaries instead:
    20 pods through the plugin, logged and counted."""
    w = harness.WorldFixture(nodes=1, extra=["--vpc-cidr", "10.0.0.0/24"])
    inst = w.nodes[0]["instance_id"]
    subnet_id = w.nodes[0]["subnet_id"]
    n = None
    try:
        truth = w.truth()
        net = ipaddress.ip_network([x["cidr"] for x in truth["subnets"] if x["id"] == subnet_id][0])
        used = set()
        for e in truth["enis"]:
            used.add(e["primary_ip"])
            used.update(e.get("secondary_ips") or [])
        reserved = {net.network_address + i for i in range(4)} | {net.broadcast_address}
        taken = []
        for block in net.subnets(new_prefix=28):
            free = [a for a in block if a not in reserved and str(a) not in used]
            if free and not any(str(a) in used for a in block):
                taken.append(str(free[len(free) // 2]))
        c = w.ec2()
        c.create_network_interface(SubnetId=subnet_id, PrivateIpAddresses=[
            {"PrivateIpAddress": a, "Primary": i == 0} for i, a in enumerate(taken)])
        n = Node(w, 0, PD)
        n.d.start()
        ips = set()
        for i in range(20):
            ip, _ = n.add(f"f{i}", n.pod())
            ips.add(ip)
        assert len(ips) == 20
        assert node_prefixes(w, inst) == {}
        blocks = store_blocks(n.d)
        assert blocks and all(k == "ip" for k, _ in blocks.values()), blocks
        assert all(ipaddress.ip_address(ip) in net for ip in ips)
        assert n.d.metric("vpcipam_prefix_fallbacks_total") >= 1
        assert n.d.metric("awscni_total_ipv4_prefixes") == 0
        with open(n.d.log) as f:
            assert "InsufficientCidrBlocks" in f.read()
    finally:
        if n:
            n.close()
        stop_all()
        w.down()


def test_chaos_in_prefix_delegation():
    """tests/chaos/chaos.py's bounded run (pod operations through vpc-cni, EC2 faults, SIGKILLs)
    under ENABLE_PREFIX_DELEGATION: every invariant holds, the store's /28s are EC2's."""
    seed = int(os.environ.get("CHAOS_SEED", time.time()))
    # PD serves pods with few EC2 calls: more operations than the /32 run, fewer faults asked of them.
    assert chaos.main(["--ops", "600", "--seconds", "150", "--seed", str(seed), "--min-faults", "3",
                       "--prefix-delegation"]) == 0, \
        f"violations (seed {seed})"


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

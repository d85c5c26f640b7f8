"""Prefix delegation end to end: the real vpc-ipamd and vpc-cni in the emulated VPC. TAP on stdout.

An m5.large with ENABLE_PREFIX_DELEGATION=true and WARM_PREFIX_TARGET=1 serves
110 pods ADDed through the plugin, each at a distinct address inside a /28
that EC2's truth (the emulator's /truth) lists on one of the node's ENIs,
each reached from another node and from a pod beside it; after DEL of all, the pool shrinks back to one free prefix. A SIGKILL while
AssignPrivateIpAddresses (Ipv4PrefixCount) is in flight is resolved at the
restart: no intent stays open, and the store holds exactly the prefixes EC2
lists; so is one during UnassignPrivateIpAddresses (Ipv4Prefix.N). A xen
instance type falls back to secondary IPs, logged, as aws-node. A node subnet
with no free /28 serves pods through /32s (the fallback); once the addresses
blocking every /28 are gone and the pods with them, the free /32s go back to
EC2 and the capacity returns as prefixes, while a pod still on a /32 keeps it.
A switch of mode across a restart, both ways, with live pods: the free blocks
of the old kind go back, the new kind comes, the pods keep their addresses and
their connectivity. The bounded chaos run (tests/chaos) holds its invariants
in prefix delegation.
"""

import ipaddress
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cni"))
sys.path.insert(0, os.path.join(HERE, "..", "chaos"))

import chaos  # noqa: E402
from ipamd import Daemon, harness, stop_all, wait_for  # noqa: E402
from test_vpc_cni_ipamd import Node, ping  # noqa: E402

XEN = "m4.large"
IPAMCTL = os.environ["VPC_IPAMCTL"]
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


def node_secondary_ips(w, instance_id):
    """EC2's truth: the /32 secondary addresses on ENIs attached to the instance."""
    out = set()
    for e in w.truth()["enis"]:
        if (e.get("attachment") or {}).get("instance_id") == instance_id:
            out.update(e.get("secondary_ips") or [])
    return out


def in_some(ip, prefixes):
    return any(ipaddress.ip_address(ip) in ipaddress.ip_network(p) for p in prefixes)


def assert_block_kinds(d, prefixes, held_ips):
    """/v1/enis and `vpc-ipamctl enis` show each ENI's blocks by kind, with their use: every
    prefix EC2 lists (cidr, its 16 addresses' states) and the /32 secondaries, here all held."""
    st, body = d.http("/v1/enis")
    assert st == 200, body
    enis = [e for e in json.loads(body) if e["state"] == "attached"]
    use = {p["cidr"]: p for e in enis for p in e["prefix_use"]}
    assert set(use) == set(prefixes), (sorted(use), sorted(prefixes))
    assert all(p["assigned"] + p["free"] + p["cooldown"] + p["releasing"] == 16 for p in use.values()), use
    assert sum(e["prefixes"] for e in enis) == len(prefixes)
    assert sum(e["ips"] for e in enis) == len(held_ips) == sum(e["ip_use"]["assigned"] for e in enis), enis
    assert all(e["prefixes"] + e["ips"] == len(e["blocks"]) for e in enis), enis
    p = subprocess.run([IPAMCTL, "--socket", d.sock, "enis"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()]
    pfx_rows = {r[1]: r for r in rows if len(r) > 3 and r[2:4] == ["prefix", "/28"]}
    assert set(pfx_rows) == set(prefixes), p.stdout
    ip_rows = [r for r in rows if "secondary" in r]
    assert ip_rows and all(r[2] in ("address", "addresses") and r[4] == "/32" for r in ip_rows), p.stdout
    assert sum(int(r[1]) for r in ip_rows) == len(held_ips) == sum(int(r[5]) for r in ip_rows), p.stdout
    assert "/28S" in p.stdout and "/32S" in p.stdout, p.stdout


def node_max_pods(d, *flags):
    """`vpc-ipamctl max-pods` without --instance-type: the daemon names its node's type."""
    p = subprocess.run([IPAMCTL, "--socket", d.sock, "max-pods", *flags], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    return p.stdout, p.stderr


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


def pings_across_nodes(w, remote, pods):
    """Node `remote` pings every pod (across the fabric: EC2 routes a prefix's addresses to its ENI),
    and each pod the next one on its node; the failures."""
    def from_remote(ip):
        return subprocess.run(["ip", "netns", "exec", w.node_ns(remote), "ping", "-c", "2", "-i", "0.2", "-W", "2",
                               "-q", ip], capture_output=True).returncode == 0
    jobs = [(f"node{remote} -> {ip}", lambda ip=ip: from_remote(ip)) for _, ip, _ in pods]
    jobs += [(f"{a[1]} -> {b[1]}", lambda a=a, b=b: ping(a[0], b[1])) for a, b in zip(pods, pods[1:] + pods[:1])]
    with ThreadPoolExecutor(8) as ex:
        return [name for name, ok in ex.map(lambda j: (j[0], j[1]()), jobs) if not ok]


def test_110_pods_in_prefixes_then_shrink():
    w = harness.WorldFixture(nodes=2)
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
        assert node_max_pods(n.d, "--prefix-delegation") == ("110\n", "")
        assert node_max_pods(n.d) == ("29\n", "")
        st, body = n.d.http("/v1/pool")     # kubelet's max-pods in the node's mode, as the calculator's
        assert st == 200 and json.loads(body)["max_pods"] == 110, body
        failed = pings_across_nodes(w, 1, list(pods.values()))
        assert not failed, f"pings failed: {failed}"
        assert w.truth()["fabric"]["drops_total"] == 0, w.truth()["fabric"]
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
        out, err = node_max_pods(d, "--prefix-delegation")       # 2 ENIs x 9 + 2, as EKS: no PD on xen
        assert out == "20\n" and "m4.large is not nitro" in err, (out, err)
    finally:
        stop_all()
        w.down()


def test_fragmented_subnet_serves_pods_through_ip_fallback():
    """The node subnet (a /25) has an address taken in every /28: EC2 refuses every prefix
    (InsufficientCidrBlocks), and vpc-ipamd meets the need with /32 secondary addresses instead:
    20 pods through the plugin, logged and counted. Then the blocking addresses go away and 18
    pods are deleted: once the fallback's back-off is over, a prefix comes, the free /32s go back
    to EC2 (the two pods left keep theirs), and once those go too the pool is prefixes only."""
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
        blocker = c.create_network_interface(SubnetId=subnet_id, PrivateIpAddresses=[
            {"PrivateIpAddress": a, "Primary": i == 0} for i, a in enumerate(taken)])
        n = Node(w, 0, PD)
        n.d.start()
        pods = {}
        for i in range(20):
            ns = n.pod()
            ip, out = n.add(f"f{i}", ns)
            pods[f"f{i}"] = (ns, ip, out)
        ips = {v[1] for v in pods.values()}
        assert len(ips) == 20
        assert node_prefixes(w, inst) == {}
        blocks = store_blocks(n.d)
        assert blocks and all(k == "ip" for k, _ in blocks.values()), blocks
        assert all(ipaddress.ip_address(ip) in net for ip in ips)
        assert n.d.metric("vpcipam_prefix_fallbacks_total") >= 1
        assert n.d.metric("awscni_total_ipv4_prefixes") == 0
        with open(n.d.log) as f:
            assert "InsufficientCidrBlocks" in f.read()

        # the /28s free up; 18 pods go, f0 and f1 stay on their /32s
        c.delete_network_interface(NetworkInterfaceId=blocker["NetworkInterface"]["NetworkInterfaceId"])
        kept = {cid: pods.pop(cid) for cid in ("f0", "f1")}
        for cid, (ns, ip, out) in pods.items():
            rc, res = n.cni("DEL", cid, ns, prev=out)
            assert rc == 0, (cid, res)
        held = {v[1] for v in kept.values()}

        def converted():
            blocks = store_blocks(n.d)
            ip_blocks = {c_.split("/")[0] for c_, (k, _) in blocks.items() if k == "ip"}
            return (node_prefixes(w, inst) and ip_blocks == held and node_secondary_ips(w, inst) == held
                    and n.d.pool()["available"] >= 16)
        # the back-off (60 s) ends, a prefix replaces the /32s, the shrink delay (3 s) passes
        wait_for(converted, timeout=150, interval=1,
                 what=f"the free /32s replaced by prefixes ({sorted(store_blocks(n.d))}, {n.d.pool()})")
        for cid, (ns, ip, out) in kept.items():
            assert n.held().get(cid) == ip, (cid, n.held())
            rc, res = n.cni("CHECK", cid, ns, prev=out)
            assert rc == 0, (cid, res)
        assert_block_kinds(n.d, node_prefixes(w, inst), held)
        new_ns = n.pod()
        new_ip, new_out = n.add("after", new_ns)
        assert in_some(new_ip, node_prefixes(w, inst)), (new_ip, node_prefixes(w, inst))
        wait_for(lambda: ping(new_ns, kept["f0"][1]), timeout=20, interval=0.5,
                 what="a pod in a prefix reaching a pod on a /32")
        for cid, (ns, ip, out) in list(kept.items()) + [("after", (new_ns, new_ip, new_out))]:
            rc, res = n.cni("DEL", cid, ns, prev=out)
            assert rc == 0, (cid, res)
        wait_for(lambda: all(k == "prefix" for k, _ in store_blocks(n.d).values())
                 and not node_secondary_ips(w, inst) and node_prefixes(w, inst), timeout=30, interval=0.5,
                 what=f"the last /32s returned ({sorted(store_blocks(n.d))})")
        assert set(store_blocks(n.d)) == set(node_prefixes(w, inst))
        assert open_intents(n.d) == []
    finally:
        if n:
            n.close()
        stop_all()
        w.down()


SECONDARY = {"IP_COOLDOWN_PERIOD": "1", "VPC_IPAM_SHRINK_DELAY": "3"}


def live_pods(n, prefix, count):
    pods = {}
    for i in range(count):
        ns = n.pod()
        ip, out = n.add(f"{prefix}{i}", ns)
        pods[f"{prefix}{i}"] = (ns, ip, out)
    return pods


def assert_pods_kept(n, pods):
    held = n.held()
    for cid, (ns, ip, out) in pods.items():
        assert held.get(cid) == ip, (cid, ip, held.get(cid))
        rc, res = n.cni("CHECK", cid, ns, prev=out)
        assert rc == 0, (cid, res)


def test_switch_to_prefix_delegation_with_live_pods():
    """Secondary-IP mode with 5 live pods, restarted with ENABLE_PREFIX_DELEGATION=true: the free
    /32s go back to EC2, prefixes come, the 5 pods keep their /32s and reach a pod on another node,
    and a new pod gets an address in a prefix."""
    w = harness.WorldFixture(nodes=2)
    n, remote = Node(w, 0, SECONDARY), Node(w, 1, SECONDARY)
    inst = w.nodes[0]["instance_id"]
    try:
        n.d.start()
        remote.d.start()
        wait_for(lambda: n.d.pool()["available"] >= 9, timeout=20, what="a warm pool")
        pods = live_pods(n, "s", 5)
        remote_ns = remote.pod()
        remote_ip, _ = remote.add("remote", remote_ns)
        wait_for(lambda: len(node_secondary_ips(w, inst)) > 5, timeout=20, what="warm /32s")
        assert all(k == "ip" for k, _ in store_blocks(n.d).values())
        n.d.stop()
        n.d = Daemon(w, 0, env=PD).start()
        held = {v[1] for v in pods.values()}

        def switched():
            ips = {c.split("/")[0] for c, (k, _) in store_blocks(n.d).items() if k == "ip"}
            return (node_prefixes(w, inst) and ips == held and node_secondary_ips(w, inst) == held
                    and n.d.pool()["available"] >= 16)
        wait_for(switched, timeout=60, interval=0.5,
                 what=f"free /32s released, prefixes added ({sorted(store_blocks(n.d))}, {n.d.pool()})")
        assert_pods_kept(n, pods)
        for ns, ip, _ in pods.values():
            assert ping(ns, remote_ip), f"live pod {ip} -> the other node"
        new_ns = n.pod()
        new_ip, _ = n.add("new", new_ns)
        assert in_some(new_ip, node_prefixes(w, inst)), (new_ip, node_prefixes(w, inst))
        assert ping(new_ns, remote_ip) and ping(remote_ns, new_ip), "a pod in a prefix <-> the other node"
        assert ping(new_ns, pods["s0"][1]), "a pod in a prefix -> a live pod on a /32"
        assert open_intents(n.d) == []
    finally:
        n.close()
        remote.close()
        stop_all()
        w.down()


def test_switch_off_prefix_delegation_with_live_pods():
    """Prefix delegation with 3 live pods in one prefix, restarted without it: the empty prefixes
    go back to EC2, the one holding the pods stays, new pods get /32s; once the 3 pods are gone
    that prefix goes back too."""
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, dict(PD, WARM_PREFIX_TARGET="2"))
    inst = w.nodes[0]["instance_id"]
    try:
        n.d.start()
        pods = live_pods(n, "p", 3)
        wait_for(lambda: len(node_prefixes(w, inst)) >= 3, timeout=20, what="three prefixes")
        occupied = {p for p in node_prefixes(w, inst) if any(in_some(v[1], [p]) for v in pods.values())}
        assert len(occupied) == 1, occupied
        n.d.stop()
        n.d = Daemon(w, 0, env=SECONDARY).start()

        def switched():
            return set(node_prefixes(w, inst)) == occupied and n.d.pool()["available"] >= 9
        wait_for(switched, timeout=60, interval=0.5,
                 what=f"empty prefixes released ({sorted(node_prefixes(w, inst))}, {n.d.pool()})")
        assert_pods_kept(n, pods)
        new = live_pods(n, "n", 2)
        for ns, ip, _ in new.values():
            assert not in_some(ip, occupied) and ip in node_secondary_ips(w, inst), (ip, occupied)
        assert ping(new["n0"][0], pods["p0"][1]) and ping(pods["p1"][0], new["n1"][1]), "old <-> new pods"
        for cid, (ns, ip, out) in pods.items():
            rc, res = n.cni("DEL", cid, ns, prev=out)
            assert rc == 0, (cid, res)
        wait_for(lambda: not node_prefixes(w, inst) and all(k == "ip" for k, _ in store_blocks(n.d).values()),
                 timeout=30, interval=0.5, what=f"the emptied prefix released ({sorted(store_blocks(n.d))})")
        assert_pods_kept(n, new)
        assert open_intents(n.d) == []
    finally:
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

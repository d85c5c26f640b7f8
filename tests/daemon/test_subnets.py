"""Subnet discovery with the real vpc-ipamd and vpc-cni in the emulated VPC. TAP on stdout.

Each world has, besides the node subnet (10.0.0.0/18, most of it taken by a
reservation so that it is the least free), subnets the test adds: A and B
tagged kubernetes.io/role/cni=1 (A freer), and Z tagged kubernetes.io/role/cni=0
(the freest of all). Checks:
  - new ENIs go in A; pods on them get A's addresses and ping a pod on the node
    subnet (the primary ENI, and another node whose daemon runs with
    ENABLE_SUBNET_DISCOVERY=false, whose ENIs stay in the node subnet); Z is
    never used;
  - a create refused with InsufficientFreeAddressesInSubnet in A moves on to B,
    and A is skipped afterwards (its own back-off) though it shows more room;
  - A really exhausted (no free address left) is passed over for B;
  - with discovery off and the node subnet tagged cni=0, no ENI is made (aws-node's error).
"""

import ipaddress
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cni"))

from ipamd import harness, wait_for  # noqa: E402
from test_vpc_cni_ipamd import Node, ping  # noqa: E402

CNI_TAG = "kubernetes.io/role/cni"


def make_subnets(w):
    s = {"A": w.ctl("POST", "/subnets", {"cidr": "10.0.128.0/24", "tags": {CNI_TAG: "1"}}),
         "B": w.ctl("POST", "/subnets", {"cidr": "10.0.129.0/25", "tags": {CNI_TAG: "shared"}}),
         "Z": w.ctl("POST", "/subnets", {"cidr": "10.0.130.0/23", "tags": {CNI_TAG: "0"}})}
    node = next(x for x in w.w["subnets"] if x["role"] == "nodes")
    s["node"] = w.ctl("POST", "/subnets/reserve", {"subnet_id": node["id"], "leave": 60})
    assert s["A"]["available_ip_address_count"] > s["B"]["available_ip_address_count"] > 60, s
    return s


def secondary_enis(w, node):
    inst = w.nodes[node]["instance_id"]
    return [e for e in w.truth()["enis"]
            if e["attachment"] and e["attachment"]["instance_id"] == inst and e["attachment"]["device_index"] > 0]


def wait_enis(w, nodes, k):
    """Each (node index, Node) has k secondary ENIs; the daemons' logs on a timeout."""
    try:
        wait_for(lambda: all(len(secondary_enis(w, i)) >= k for i, _ in nodes), timeout=30,
                 what=f"{k} secondary ENI(s) per node")
    except AssertionError as e:
        raise AssertionError(f"{e}\n" + "\n".join(n.d.tail(40) for _, n in nodes)) from None


def in_subnet(ip, subnet):
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(subnet["cidr"])


def never_in(w, subnet):
    return [e["id"] for e in w.truth()["enis"] if e["subnet_id"] == subnet["id"]] == []


def test_new_enis_go_to_the_freer_tagged_subnet_and_pods_talk():
    w = harness.WorldFixture(nodes=2)
    # 10 free addresses wanted: more than the primary ENI holds, so each node makes a secondary ENI
    n0 = Node(w, 0, {"WARM_IP_TARGET": "10"})
    n1 = Node(w, 1, {"WARM_IP_TARGET": "10", "ENABLE_SUBNET_DISCOVERY": "false"})
    try:
        s = make_subnets(w)
        n0.d.start()
        n1.d.start()
        wait_enis(w, [(0, n0), (1, n1)], 1)
        assert {e["subnet_id"] for e in secondary_enis(w, 0)} == {s["A"]["id"]}, secondary_enis(w, 0)
        assert {e["subnet_id"] for e in secondary_enis(w, 1)} == {s["node"]["id"]}, secondary_enis(w, 1)
        wait_for(lambda: n0.d.pool()["available"] >= 10, timeout=30, what="node 0's warm pool")
        # fill node 0 until a pod sits on the primary ENI and one on the secondary (subnet A)
        pods = {}
        for i in range(20):
            ns = n0.pod()
            ip, out = n0.add(f"p{i}", ns)
            table = n0.d.call({"op": "check", "container_id": f"p{i}", "ifname": "eth0"})["route_table"]
            pods.setdefault(table == 254, (ns, ip, out))
            if len(pods) == 2:
                break
            wait_for(lambda: n0.d.pool()["available"] > 0, timeout=20, what="a free address on node 0")
        assert set(pods) == {True, False}, pods
        prim, sec = pods[True], pods[False]
        assert in_subnet(sec[1], s["A"]), (sec[1], s["A"])
        assert in_subnet(prim[1], s["node"]), (prim[1], s["node"])
        remote_ns = n1.pod()
        remote_ip, _ = n1.add("remote", remote_ns)
        assert in_subnet(remote_ip, s["node"]), (remote_ip, s["node"])   # discovery off: the node subnet
        assert ping(sec[0], prim[1]), "subnet-A pod -> node-subnet pod on the same node"
        assert ping(sec[0], remote_ip), "subnet-A pod -> pod on the other node"
        assert ping(remote_ns, sec[1]), "other node -> subnet-A pod"
        rules = n0.rules()
        assert f"from {sec[1]} lookup" in rules, rules
        # the ENI's table routes via subnet A's gateway, not the node subnet's
        routes = n0.sh("ip", "route", "show", "table", "all").stdout
        assert f"default via {s['A']['gateway']}" in routes, routes
        assert never_in(w, s["Z"]), "an ENI in the subnet tagged cni=0"
    finally:
        n0.close()
        n1.close()
        w.down()


def test_an_exhausted_subnet_is_skipped():
    w = harness.WorldFixture(nodes=1)
    # a secondary ENI at start; pods then make WARM_IP_TARGET ask for another, a fresh choice
    n = Node(w, 0, {"WARM_IP_TARGET": "10"})
    try:
        s = make_subnets(w)
        # the first create (in A, the freest) is refused as if A had run out
        w.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "error", "status": 400,
                                  "code": "InsufficientFreeAddressesInSubnet",
                                  "message": "The specified subnet does not have enough free addresses",
                                  "count": 1})
        n.d.start()
        wait_enis(w, [(0, n)], 1)
        first = secondary_enis(w, 0)
        assert [e["subnet_id"] for e in first] == [s["B"]["id"]], first
        refused = w.ctl("GET", "/stats")["api"]["CreateNetworkInterface"]["errors"]
        assert refused.get("InsufficientFreeAddressesInSubnet") == 1, refused
        # more pods: the third ENI still skips A (backing off), though A shows more room
        for i in range(20):
            if len(secondary_enis(w, 0)) >= 2:
                break
            try:
                wait_for(lambda: n.d.pool()["available"] > 0, timeout=20, what="a free address")
            except AssertionError as e:
                raise AssertionError(f"{e}: {n.d.tail(30)}") from None
            n.add(f"p{i}", n.pod())
        wait_enis(w, [(0, n)], 2)
        assert {e["subnet_id"] for e in secondary_enis(w, 0)} == {s["B"]["id"]}, secondary_enis(w, 0)
        assert never_in(w, s["Z"]) and never_in(w, s["A"])
        assert "a subnet ran out of addresses" in n.d.tail(400), n.d.tail(40)
    finally:
        n.close()
        w.down()


def test_a_full_subnet_is_passed_over():
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, {"WARM_IP_TARGET": "10"})
    try:
        s = make_subnets(w)
        w.ctl("POST", "/subnets/reserve", {"subnet_id": s["A"]["id"], "leave": 0})
        n.d.start()
        wait_enis(w, [(0, n)], 1)
        assert [e["subnet_id"] for e in secondary_enis(w, 0)] == [s["B"]["id"]], secondary_enis(w, 0)
        ip, _ = n.add("p0", n.pod())
        eni = secondary_enis(w, 0)[0]
        assert eni["secondary_ips"] and all(in_subnet(a, s["B"]) for a in eni["secondary_ips"]), eni
        assert never_in(w, s["A"]) and never_in(w, s["Z"])
    finally:
        n.close()
        w.down()


def test_one_plan_asks_for_the_subnets_once():
    # m5.large: 3 ENIs of 10 addresses; 25 free wanted at start, so one plan makes both
    # secondary ENIs side by side. Discovery's DescribeSubnets answer is asked once for
    # the two creates (a fleet's scale-up asked once per ENI); the ENIs still go in A.
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, {"WARM_IP_TARGET": "25"})
    try:
        s = make_subnets(w)
        before = w.ctl("GET", "/stats")["api"].get("DescribeSubnets", {}).get("calls", 0)
        n.d.start()
        wait_enis(w, [(0, n)], 2)
        enis = secondary_enis(w, 0)
        assert {e["subnet_id"] for e in enis} == {s["A"]["id"]}, enis
        api = w.ctl("GET", "/stats")["api"]
        creates = api["CreateNetworkInterface"]["calls"]
        described = api["DescribeSubnets"]["calls"] - before
        assert creates == 2, api["CreateNetworkInterface"]
        # one for the plan's candidates, one for A's tags (kubernetes.io/role/cni=0?) once opened
        assert described <= 2, (described, api["DescribeSubnets"], n.d.tail(60))
    finally:
        n.close()
        w.down()


def test_discovery_off_refuses_a_node_subnet_tagged_zero():
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, {"WARM_IP_TARGET": "10", "ENABLE_SUBNET_DISCOVERY": "false"})
    try:
        s = make_subnets(w)
        w.ctl("POST", "/subnets/tags", {"subnet_id": s["node"]["id"], "tags": {CNI_TAG: "0"}})
        n.d.start()
        wait_for(lambda: "no subnet may take a new ENI" in n.d.pool()["reason"], timeout=30,
                 what="the reason naming why no ENI is made")
        assert "is tagged kubernetes.io/role/cni=0" in n.d.tail(200), n.d.tail(40)
        assert secondary_enis(w, 0) == []
        assert never_in(w, s["A"]) and never_in(w, s["B"]) and never_in(w, s["Z"])
    finally:
        n.close()
        w.down()


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

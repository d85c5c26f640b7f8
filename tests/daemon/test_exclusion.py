"""Subnets that stop taking pods, with the real vpc-ipamd and vpc-cni in the emulated VPC. TAP on stdout.

The subnets are test_subnets.py's: A (kubernetes.io/role/cni=1, the freest candidate), B (cni=shared),
Z (cni=0), and the node subnet nearly full. Checks:
  - an ENI already attached in a subnet tagged kubernetes.io/role/cni=0 at start carries no new pod
    (aws-node's IsExcludedForPodIPs): its free addresses go back to EC2, a pod holding one keeps it,
    the ENI stays attached, and new pods get addresses from elsewhere;
  - so in prefix delegation, with the node's own subnet tagged cni=0: the primary ENI's empty /28s go
    back to EC2, the one a pod holds stays, and new pods (even before a pass, once addresses cool)
    get addresses only from an ENI in a candidate subnet;
  - an Assign refused with InsufficientFreeAddressesInSubnet backs off that subnet only: the pool
    grows at once with a new ENI in another candidate subnet, instead of pausing all growth.
"""

import ipaddress
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cni"))

from ipamd import harness, wait_for  # noqa: E402
from test_subnets import CNI_TAG, in_subnet, make_subnets, secondary_enis  # noqa: E402
from test_vpc_cni_ipamd import Node  # noqa: E402


def wait_true(cond, n, what, timeout=40):
    try:
        wait_for(cond, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: {n.d.pool()}\n{n.d.tail(40)}") from None


def test_an_eni_in_a_subnet_tagged_zero_carries_no_new_pod():
    # 4 ENIs of 14 addresses: room for more ENIs once the one in A carries no pods
    w = harness.WorldFixture(nodes=1, instance_type="m5.xlarge")
    n = Node(w, 0, {"WARM_IP_TARGET": "10"})
    try:
        s = make_subnets(w)
        n.d.start()
        # a pod on an ENI in A (pods take the primary's addresses first: free longest)
        held = None
        for i in range(25):
            wait_true(lambda: n.d.pool()["available"] > 0, n, "a free address")
            ip, _ = n.add(f"p{i}", n.pod())
            if in_subnet(ip, s["A"]):
                held = ip
                break
        assert held, "no pod got an address in subnet A"
        in_a = [e for e in secondary_enis(w, 0) if e["subnet_id"] == s["A"]["id"]]
        assert len(in_a) == 1, secondary_enis(w, 0)
        eni = in_a[0]
        n.d.stop()
        w.ctl("POST", "/subnets/tags", {"subnet_id": s["A"]["id"], "tags": {CNI_TAG: "0"}})
        n.d.start()
        wait_true(lambda: set(w.eni_truth(eni["id"])["secondary_ips"]) == {held}, n,
                  "the A ENI's free addresses returned to EC2")
        assert w.eni_truth(eni["id"])["attachment"], "the excluded ENI was detached"
        assert n.held()[f"p{i}"] == held, "the pod lost its address"
        assert "carries no new pods" in n.d.tail(400), n.d.tail(40)
        for k in range(3):
            wait_true(lambda: n.d.pool()["available"] > 0, n, "a free address elsewhere")
            ip, _ = n.add(f"q{k}", n.pod())
            assert not in_subnet(ip, s["A"]), ip
        assert set(w.eni_truth(eni["id"])["secondary_ips"]) == {held}
    finally:
        n.close()
        w.down()


def eni_prefixes(w, eni_id):
    return set(w.eni_truth(eni_id).get("prefixes") or [])


def test_prefixes_of_an_eni_in_a_subnet_tagged_zero_go_back_and_serve_no_pod():
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "IP_COOLDOWN_PERIOD": "1",
                    "VPC_IPAM_SHRINK_DELAY": "3"})
    try:
        a = w.ctl("POST", "/subnets", {"cidr": "10.0.128.0/24", "tags": {CNI_TAG: "1"}})
        node_subnet = next(x for x in w.w["subnets"] if x["role"] == "nodes")
        inst = w.nodes[0]["instance_id"]
        primary = next(e for e in w.truth()["enis"]
                       if (e.get("attachment") or {}).get("instance_id") == inst and e["attachment"]["device_index"] == 0)
        n.d.start()
        wait_true(lambda: n.d.pool()["available"] >= 16, n, "a first prefix")
        ns0 = n.pod()
        held, out0 = n.add("p0", ns0)
        wait_true(lambda: len(eni_prefixes(w, primary["id"])) >= 2, n, "a warm prefix beside the pod's")
        mine = [p for p in eni_prefixes(w, primary["id"]) if ipaddress.ip_address(held) in ipaddress.ip_network(p)]
        assert len(mine) == 1, (held, eni_prefixes(w, primary["id"]))
        n.d.stop()
        w.ctl("POST", "/subnets/tags", {"subnet_id": node_subnet["id"], "tags": {CNI_TAG: "0"}})
        n.d.start()
        wait_true(lambda: eni_prefixes(w, primary["id"]) == set(mine), n,
                  "the primary ENI's empty prefixes returned to EC2")
        assert n.held()["p0"] == held, "the pod lost its address"
        for k in range(3):
            wait_true(lambda: n.d.pool()["available"] > 0, n, "a free address elsewhere")
            ip, _ = n.add(f"q{k}", n.pod())
            assert in_subnet(ip, a), (ip, n.d.pool())
        # the pod on the excluded ENI ends: its address cools, is free again, and still goes to no pod;
        # its prefix, empty now, goes back too
        rc, res = n.cni("DEL", "p0", ns0, prev=out0)
        assert rc == 0, res
        end, k = time.monotonic() + 3, 3      # ADDs across the 1 s cooldown and the passes after it
        while time.monotonic() < end:
            wait_true(lambda: n.d.pool()["available"] > 0, n, "a free address elsewhere")
            ip, _ = n.add(f"q{k}", n.pod())
            assert in_subnet(ip, a), (ip, n.d.pool())
            k += 1
            time.sleep(0.25)
        wait_true(lambda: not eni_prefixes(w, primary["id"]), n, "the emptied prefix returned to EC2")
    finally:
        n.close()
        w.down()


def test_an_assign_refused_for_exhaustion_moves_to_another_subnet():
    w = harness.WorldFixture(nodes=1)
    n = Node(w, 0, {"WARM_IP_TARGET": "3"})
    try:
        s = make_subnets(w)
        n.d.start()
        wait_true(lambda: len(secondary_enis(w, 0)) >= 1 or n.d.pool()["available"] >= 3, n, "the warm pool")
        # the next Assign (on whichever ENI has room) is refused as if its subnet had run out
        w.ctl("POST", "/faults", {"action": "AssignPrivateIpAddresses", "kind": "error", "status": 400,
                                  "code": "InsufficientFreeAddressesInSubnet",
                                  "message": "The specified subnet does not have enough free addresses",
                                  "count": 1})
        before = {e["id"] for e in secondary_enis(w, 0)}
        for i in range(3):
            ip, _ = n.add(f"p{i}", n.pod())
        wait_true(lambda: w.ctl("GET", "/stats")["api"]["AssignPrivateIpAddresses"]["errors"]
                  .get("InsufficientFreeAddressesInSubnet") == 1, n, "the refused Assign")
        # well within the 120 s a global pause would last: a new ENI in another candidate
        wait_true(lambda: {e["id"] for e in secondary_enis(w, 0)} - before, n, "a new ENI", timeout=30)
        new = [e for e in secondary_enis(w, 0) if e["id"] not in before]
        assert new and all(e["subnet_id"] != s["Z"]["id"] for e in new), new
        wait_true(lambda: n.d.pool()["available"] >= 3, n, "the warm pool again", timeout=30)
        assert "a subnet ran out of addresses" in n.d.tail(400)
    finally:
        n.close()
        w.down()


if __name__ == "__main__":
    import ipamd
    harness.run(globals(), teardown=ipamd.stop_all)

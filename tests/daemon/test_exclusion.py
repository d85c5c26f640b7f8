"""Subnets that stop taking pods, with the real vpc-ipamd and vpc-cni in the emulated VPC. TAP on stdout.

The subnets are test_subnets.py's: A (kubernetes.io/role/cni=1, the freest candidate), B (cni=shared),
Z (cni=0), and the node subnet nearly full. Checks:
  - an ENI already attached in a subnet tagged kubernetes.io/role/cni=0 at start carries no new pod
    (aws-node's IsExcludedForPodIPs): its free addresses go back to EC2, a pod holding one keeps it,
    the ENI stays attached, and new pods get addresses from elsewhere;
  - an Assign refused with InsufficientFreeAddressesInSubnet backs off that subnet only: the pool
    grows at once with a new ENI in another candidate subnet, instead of pausing all growth.
"""

import os
import sys

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

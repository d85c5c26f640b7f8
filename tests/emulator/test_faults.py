#!/usr/bin/env python3
"""Latency, EC2-style throttling and injected faults, steered through the control API.

One fast world of one node; each case sets what it needs and restores it.
"""

import sys
import time

import harness
from harness import client_error


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=1, instance_type="m5.large")
        self.c = self.W.ec2()
        self.subnet = self.W.w["subnets"][0]["id"]


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


def _eni_count(x):
    return len(x.W.truth()["enis"])


def test_per_action_latency(x):
    x.W.ctl("POST", "/latency", {"api": {"CreateNetworkInterface": [0.3, 0.3]}})
    try:
        t0 = time.monotonic()
        e = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
        took = time.monotonic() - t0
        assert 0.3 <= took < 2.0, took
        t0 = time.monotonic()
        x.c.describe_vpcs()
        other = time.monotonic() - t0
        # Another action is not slowed: it is quicker than the slowed one by most of the 0.3 s
        # (compared within the run, so a loaded machine slows both alike).
        assert other < took - 0.2, (other, took)
        x.c.delete_network_interface(NetworkInterfaceId=e)
    finally:
        x.W.ctl("POST", "/latency", {"api": {"CreateNetworkInterface": [0, 0]}})
    lat = x.W.ctl("GET", "/latency")
    assert lat["api"]["CreateNetworkInterface"] == [0, 0] and "imds_lag" in lat


def test_forced_throttling_by_category(x):
    x.W.ctl("POST", "/throttle", {"force": {"ip-eni": 2}})
    for _ in range(2):
        assert client_error(x.c.create_network_interface, SubnetId=x.subnet) == ("RequestLimitExceeded", 503)
    x.c.describe_vpcs()            # another category is untouched
    e = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    x.c.delete_network_interface(NetworkInterfaceId=e)
    # unfiltered DescribeNetworkInterfaces has a bucket of its own
    x.W.ctl("POST", "/throttle", {"force": {"unfiltered-describe": "always"}})
    assert client_error(x.c.describe_network_interfaces) == ("RequestLimitExceeded", 503)
    x.c.describe_network_interfaces(Filters=[{"Name": "status", "Values": ["in-use"]}])
    x.W.ctl("POST", "/throttle", {"force": {"unfiltered-describe": 0}})
    x.c.describe_network_interfaces()
    st = x.W.ctl("GET", "/stats")
    assert st["throttled"]["ip-eni"] >= 2 and st["throttled"]["unfiltered-describe"] >= 1
    assert st["api"]["CreateNetworkInterface"]["errors"]["RequestLimitExceeded"] >= 2


def test_token_buckets_refuse_bursts(x):
    # scaled to 5 %: the non-mutating bucket holds 5 and refills 1/s
    x.W.ctl("POST", "/throttle", {"scale": 0.05, "reset": True})
    try:
        ok = throttled = 0
        for _ in range(12):
            try:
                x.c.describe_vpcs()
                ok += 1
            except Exception as e:
                assert e.response["Error"]["Code"] == "RequestLimitExceeded", e
                throttled += 1
        assert 5 <= ok <= 7 and throttled == 12 - ok, (ok, throttled)      # 5, +1/s refill
        time.sleep(1.1)            # refilled by one
        x.c.describe_vpcs()
    finally:
        x.W.ctl("POST", "/throttle", {"scale": 1.0, "reset": True})


def test_error_faults_are_not_applied(x):
    e = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    x.W.ctl("POST", "/faults", {"action": "AssignPrivateIpAddresses", "status": 500, "count": 1})
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=e,
                        SecondaryPrivateIpAddressCount=1) == ("InternalError", 500)
    assert x.W.eni_truth(e)["secondary_ips"] == []
    x.c.assign_private_ip_addresses(NetworkInterfaceId=e, SecondaryPrivateIpAddressCount=1)
    x.W.ctl("POST", "/faults", {"action": "*", "status": 503, "count": 1})
    assert client_error(x.c.describe_vpcs) == ("Unavailable", 503)
    x.W.ctl("POST", "/faults", {"action": "DescribeVpcs", "status": 403, "code": "UnauthorizedOperation",
                                "message": "You are not authorized to perform this operation.", "count": 1})
    assert client_error(x.c.describe_vpcs) == ("UnauthorizedOperation", 403)
    x.c.delete_network_interface(NetworkInterfaceId=e)
    rules = x.W.ctl("GET", "/faults")
    assert all(r["count"] == 0 and r["fired"] == 1 for r in rules), rules
    x.W.ctl("DELETE", "/faults")
    assert x.W.ctl("GET", "/faults") == []


def test_fault_probability(x):
    x.W.ctl("POST", "/faults", {"action": "DescribeVpcs", "status": 500, "probability": 0.5})
    try:
        failed = 0
        for _ in range(40):
            try:
                x.c.describe_vpcs()
            except Exception:
                failed += 1
        assert 6 <= failed <= 34, failed
    finally:
        x.W.ctl("DELETE", "/faults")


def test_timeout_fault_is_not_applied(x):
    from botocore.exceptions import ReadTimeoutError
    before = _eni_count(x)
    x.W.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "timeout", "seconds": 3.0, "count": 1})
    c = x.W.ec2(read_timeout=0.4)
    t0 = time.monotonic()
    try:
        c.create_network_interface(SubnetId=x.subnet)
        raise AssertionError("no timeout")
    except ReadTimeoutError:
        pass
    assert time.monotonic() - t0 < 2.5          # the client gave up long before the server answered
    assert _eni_count(x) == before


def test_lost_response_is_applied(x):
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError
    before = _eni_count(x)
    x.W.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "lost", "count": 1})
    try:
        x.c.create_network_interface(SubnetId=x.subnet, Description="lost")
        raise AssertionError("the response was not lost")
    except (ConnectionClosedError, EndpointConnectionError):
        pass
    t = x.W.truth()
    assert len(t["enis"]) == before + 1 and any(e["description"] == "lost" for e in t["enis"])
    x.W.ctl("DELETE", "/faults")


def test_control_terminate(x):
    node = x.W.nodes[0]
    r = x.W.ctl("POST", "/terminate", {"instance_id": node["instance_id"]})
    assert r["previous_state"] == "running", r
    harness.wait_for(lambda: x.W.truth()["instances"][0]["state"] == "terminated", what="terminated")
    t = x.W.truth()
    assert node["primary_eni_id"] not in {e["id"] for e in t["enis"]}
    harness.wait_for(lambda: x.W.links(node["netns"]).keys() == {"lo"}, what="eth0 to go")
    try:
        x.W.ctl("POST", "/terminate", {"instance_id": "i-0123456789abcdef0"})
        raise AssertionError("terminated an unknown instance")
    except AssertionError as e:
        assert "InvalidInstanceID.NotFound" in str(e), e


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

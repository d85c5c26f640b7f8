#!/usr/bin/env python3
"""vpc-ipam's own C cloud client (cloud/) end to end against the emulator.

Runs cloud-probe (built by meson; its path is argv[1]) inside a node
namespace with nothing but AWS_ENDPOINT_URL_EC2 set, as the daemon runs:
region and credentials come from IMDS, EC2 is reached through the fabric.
The probe prints TAP for its steps (quoted here as comments); then the
world's truth must show that the probe left nothing behind.
"""

import os
import subprocess
import sys

import harness

PROBE = sys.argv[1] if len(sys.argv) > 1 else None


def _need_probe():
    if not PROBE or not os.access(PROBE, os.X_OK):
        raise harness.Skip("cloud-probe was not built (run through meson)")


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=1, instance_type="m5.large")
        self.before = self.W.truth()


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


def test_probe_walks_an_eni_through_its_life(x):
    _need_probe()
    n = x.W.nodes[0]
    env = ["env", "-i", "PATH=/usr/bin:/bin", f"AWS_ENDPOINT_URL_EC2={x.W.w['ec2_endpoint']}"]
    p = subprocess.run(["ip", "netns", "exec", n["netns"]] + env +
                       [PROBE, n["instance_id"], n["primary_ip"], n["primary_mac"], n["subnet_id"],
                        x.W.w["region"]], capture_output=True, text=True, timeout=60)
    for line in (p.stdout + p.stderr).splitlines():
        print("# probe: " + line)
    assert p.returncode == 0, f"cloud-probe exited {p.returncode}"
    lines = p.stdout.splitlines()
    oks = [line for line in lines if line.startswith("ok ")]
    assert lines and lines[-1] == f"1..{len(oks)}" and len(oks) >= 10, "the probe stopped early"


def test_the_probe_left_nothing_behind(x):
    _need_probe()
    t = x.W.truth()
    assert [e["id"] for e in t["enis"]] == [e["id"] for e in x.before["enis"]], t["enis"]
    assert [s["available_ip_address_count"] for s in t["subnets"]] == \
        [s["available_ip_address_count"] for s in x.before["subnets"]]
    assert t["fabric"]["drops_total"] == 0
    calls = t["api"]
    for action in ("CreateNetworkInterface", "AttachNetworkInterface", "AssignPrivateIpAddresses",
                   "DetachNetworkInterface", "DeleteNetworkInterface"):
        assert calls.get(action, {}).get("calls", 0) >= 1, (action, calls)


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

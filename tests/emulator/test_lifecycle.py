#!/usr/bin/env python3
"""vpc-world up/down: what a world is made of, and that nothing outlives `down`.

Each case brings up its own world: a normal up/down, options, a failing up,
SIGTERM, and `kill -9` of the server during and after `up`, after which
`down` must still leave no namespace and no link behind.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
from harness import VPC_WORLD, wait_for
from vpcworld import netns


def _alive(pid):
    """True while pid runs (a zombie counts as gone: it can do nothing more)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _ours(prefix):
    return [n for n in netns.list_netns() if n.startswith(prefix + "-")]


def _host_links():
    return {x["ifname"] for x in json.loads(netns.run(["ip", "-j", "link", "show"]).stdout)}


def _vw(*args, check=True):
    p = subprocess.run([sys.executable, VPC_WORLD] + list(args), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"vpc-world {' '.join(args)}: {p.returncode} {p.stderr}")
    return p


def test_up_builds_the_world_and_down_removes_it():
    host_before = _host_links()
    W = harness.WorldFixture(nodes=2)
    try:
        w = W.w
        assert W.up_seconds < 10.0, W.up_seconds      # ~0.3 s when idle; CI machines are busy
        print(f"# fast world of 2 nodes up in {W.up_seconds:.2f}s")
        for k in ("ec2_endpoint", "ec2_endpoint_host", "control_endpoint", "region", "credentials", "vpc",
                  "subnets", "outside", "nodes", "imds_endpoint"):
            assert k in w, k
        for n in w["nodes"]:
            for k in ("name", "netns", "instance_id", "instance_type", "primary_ip", "primary_mac",
                      "primary_eni_id"):
                assert n.get(k), (k, n)
        assert sorted(_ours(W.prefix)) == sorted([f"{W.prefix}-fab", f"{W.prefix}-out", f"{W.prefix}-n0",
                                                   f"{W.prefix}-n1"])
        fab_links = W.links(w["fabric_netns"])
        assert all(len(name) <= 15 and (name == "lo" or name.startswith(W.prefix)) for name in fab_links), fab_links
        assert _host_links() == host_before, "links appeared in the host namespace"
    finally:
        t0 = time.monotonic()
        W.down()
        print(f"# down in {time.monotonic() - t0:.2f}s")
    assert _ours(W.prefix) == [] and _host_links() == host_before


def test_options_nodes_type_and_cidr():
    W = harness.WorldFixture(nodes=3, instance_type="p4d.24xlarge", extra=["--vpc-cidr", "172.16.0.0/20"])
    try:
        assert len(W.nodes) == 3 and {n["instance_type"] for n in W.nodes} == {"p4d.24xlarge"}
        assert W.w["vpc"]["cidrs"] == ["172.16.0.0/20"]
        assert [s["cidr"] for s in W.w["subnets"]] == ["172.16.0.0/22", "172.16.4.0/22"]
        assert all(n["primary_ip"].startswith("172.16.") for n in W.nodes)
        assert _vw("up", "--dir", W.dir, check=False).returncode != 0, "a second up in a live dir"
        # a type with 4 network cards: an ENI on card 1 shows up as c1eth1
        c = W.ec2()
        e = c.create_network_interface(SubnetId=W.w["subnets"][0]["id"])["NetworkInterface"]
        r = c.attach_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"], DeviceIndex=1,
                                       NetworkCardIndex=1, InstanceId=W.nodes[0]["instance_id"])
        assert r["NetworkCardIndex"] == 1
        link = wait_for(lambda: W.links(W.nodes[0]["netns"]).get("c1eth1"), what="c1eth1")
        assert link["address"] == e["MacAddress"]
    finally:
        W.down()
    assert _ours(W.prefix) == []


def test_failed_up_leaves_nothing():
    d = tempfile.mkdtemp(prefix="vpc-world-test-")
    p = _vw("up", "--dir", d, "--instance-type", "z9.nothing", check=False)
    assert p.returncode != 0 and "unknown instance type" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(d, "prefix")) or _ours(open(os.path.join(d, "prefix")).read().strip()) == []
    _vw("down", "--dir", d)
    shutil.rmtree(d, ignore_errors=True)


def test_sigterm_to_the_server_tears_down():
    W = harness.WorldFixture(nodes=1)
    try:
        os.kill(W.w["server_pid"], signal.SIGTERM)
        # The server deletes the namespaces, then world.json: wait for the last step.
        wait_for(lambda: not os.path.exists(os.path.join(W.dir, "world.json")), timeout=10,
                 what="the server's own teardown")
        assert _ours(W.prefix) == []
    finally:
        W.down()


def test_kill_9_after_up_then_down_cleans():
    W = harness.WorldFixture(nodes=2)
    os.kill(W.w["server_pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(W.w["server_pid"]), timeout=10, what="the killed server to be gone")
    assert len(_ours(W.prefix)) == 4  # a killed server tears nothing down
    W.down()
    assert _ours(W.prefix) == []


def test_kill_9_during_up_then_down_cleans():
    d = tempfile.mkdtemp(prefix="vpc-world-test-")
    up = subprocess.Popen([sys.executable, VPC_WORLD, "up", "--dir", d, "--nodes", "24", "--fast"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix_file = os.path.join(d, "prefix")
    prefix = wait_for(lambda: os.path.exists(prefix_file) and open(prefix_file).read().strip(), timeout=10,
                      interval=0.002, what="the prefix")
    wait_for(lambda: _ours(prefix), timeout=10, interval=0.002, what="the first namespace")
    pid = int(wait_for(lambda: open(os.path.join(d, "server.pid")).read().strip(), what="server.pid"))
    os.kill(pid, signal.SIGKILL)
    up.kill()
    up.wait()
    during = not os.path.exists(os.path.join(d, "world.json"))
    print(f"# killed {'during' if during else 'right after'} up, with {len(_ours(prefix))} namespaces made")
    _vw("down", "--dir", d)
    shutil.rmtree(d, ignore_errors=True)
    assert _ours(prefix) == []


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

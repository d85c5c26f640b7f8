#!/usr/bin/env python3
"""Nodes and the VPC fabric: links on attach/detach, delivery, the source/dest check.

One fast world of two m5.large nodes. Secondary ENIs arrive bare; the cases
configure them by hand (as the daemon would) and send real packets (ping)
between namespaces through the fabric.
"""

import sys
import time

import harness
from harness import wait_for


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=2, instance_type="m5.large")
        self.c = self.W.ec2()
        self.n0, self.n1 = self.W.nodes
        self.subnet = self.W.w["subnets"][0]["id"]


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


def _ping(x, ns, src, dst):
    args = ["ping", "-c", "1", "-W", "1", "-q"] + (["-I", src] if src else []) + [dst]
    return x.W.sh(ns, args, check=False).returncode == 0


def _drops(x, eni_id):
    return x.W.eni_truth(eni_id)["drops"]


def test_primary_eni_is_configured_as_at_boot(x):
    ns = x.n0["netns"]
    links = x.W.links(ns)
    assert set(links) == {"lo", "eth0"}, links
    assert links["eth0"]["address"] == x.n0["primary_mac"] and links["eth0"]["mtu"] == 9001
    addrs = x.W.ip(ns, "-4", "-br", "addr", "show", "eth0").stdout.split()
    assert f"{x.n0['primary_ip']}/{x.n0['prefix_length']}" in addrs, addrs
    routes = x.W.ip(ns, "route", "show", "default").stdout
    assert f"default via {x.n0['gateway']} dev eth0" in routes, routes
    assert _ping(x, ns, None, x.n0["gateway"]), "the subnet gateway does not answer"
    assert _ping(x, ns, None, x.n1["primary_ip"]), "node1 unreachable"
    assert _ping(x, ns, None, x.W.w["outside"]["ip"]), "the outside host unreachable"


def test_link_appears_after_attach_latency_and_goes_on_detach(x):
    ns = x.n0["netns"]
    x.W.ctl("POST", "/latency", {"attach": [0.4, 0.4], "detach": [0.3, 0.3]})
    try:
        e = x.c.create_network_interface(SubnetId=x.subnet, SecondaryPrivateIpAddressCount=1)["NetworkInterface"]
        t0 = time.monotonic()
        att = x.c.attach_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"],
                                           InstanceId=x.n0["instance_id"], DeviceIndex=1)["AttachmentId"]
        assert "eth1" not in x.W.links(ns)
        assert x.W.eni_truth(e["NetworkInterfaceId"])["attachment"]["status"] == "attaching"
        link = wait_for(lambda: x.W.links(ns).get("eth1"), what="eth1")
        took = time.monotonic() - t0
        assert 0.35 <= took < 3.0, took
        assert link["address"] == e["MacAddress"] and "UP" not in link["flags"], link     # bare
        assert x.W.ip(ns, "-4", "addr", "show", "eth1").stdout.strip().count("inet") == 0
        assert x.W.eni_truth(e["NetworkInterfaceId"])["attachment"]["status"] == "attached"
        x.c.detach_network_interface(AttachmentId=att)
        assert "eth1" in x.W.links(ns)
        wait_for(lambda: "eth1" not in x.W.links(ns), what="eth1 to go")
        x.c.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"])
    finally:
        x.W.ctl("POST", "/latency", {"attach": [0, 0], "detach": [0, 0]})


def _secondary_eni(x, node):
    """Attach an ENI with one secondary address at eth1 and configure it by hand."""
    e = x.c.create_network_interface(SubnetId=x.subnet, SecondaryPrivateIpAddressCount=1)["NetworkInterface"]
    x.c.attach_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"], InstanceId=node["instance_id"],
                                 DeviceIndex=1)
    ns = node["netns"]
    wait_for(lambda: "eth1" in x.W.links(ns), what="eth1")
    sec = e["PrivateIpAddresses"][1]["PrivateIpAddress"]
    x.W.ip(ns, "link", "set", "eth1", "up")
    x.W.ip(ns, "addr", "add", f"{sec}/32", "dev", "eth1")
    return e["NetworkInterfaceId"], sec


def test_fabric_delivers_between_secondary_addresses(x):
    x.eni0, x.s0 = _secondary_eni(x, x.n0)
    x.eni1, x.s1 = _secondary_eni(x, x.n1)
    gw = x.n0["gateway"]
    # each side reaches the other's secondary through its own secondary ENI
    x.W.ip(x.n0["netns"], "route", "add", f"{x.s1}/32", "via", gw, "dev", "eth1", "onlink", "src", x.s0)
    x.W.ip(x.n1["netns"], "route", "add", f"{x.s0}/32", "via", gw, "dev", "eth1", "onlink", "src", x.s1)
    assert _ping(x, x.n0["netns"], x.s0, x.s1), "no delivery between secondaries"
    assert _drops(x, x.eni0) == 0 and _drops(x, x.eni1) == 0


def test_spoofed_source_is_dropped_and_counted(x):
    ns = x.n0["netns"]
    primary = x.n0["primary_eni_id"]
    before = _drops(x, primary)
    peer = x.n0["gateway"]        # the fabric itself: its reply to s0 goes back through eth1
    # s0 belongs to eni0 (eth1); sending it out of eth0 breaks the source/dest check
    x.W.ip(ns, "route", "add", f"{peer}/32", "dev", "eth0", "src", x.s0)
    assert not _ping(x, ns, x.s0, peer), "a spoofed packet got through"
    assert _drops(x, primary) >= before + 1
    t = x.W.truth()
    assert t["fabric"]["drops"][primary] == _drops(x, primary) and t["fabric"]["drops_total"] >= 1
    # with the check off for that ENI, the same packet is delivered (the reply comes back on eth1)
    x.c.modify_network_interface_attribute(NetworkInterfaceId=primary, SourceDestCheck={"Value": False})
    wait_for(lambda: _ping(x, ns, x.s0, peer), timeout=3, what="delivery with the check off")
    x.c.modify_network_interface_attribute(NetworkInterfaceId=primary, SourceDestCheck={"Value": True})
    wait_for(lambda: not _ping(x, ns, x.s0, peer), timeout=3, what="the check back on")
    x.W.ip(ns, "route", "del", f"{peer}/32")


def test_outside_accepts_only_node_primary_addresses(x):
    """The way out is an internet gateway: only a node's primary address has a public mapping."""
    ns = x.n0["netns"]
    outside = x.W.w["outside"]["ip"]
    before = x.W.truth()["fabric"]["outside_drops"]
    assert _ping(x, ns, x.n0["primary_ip"], outside), "a node's primary address cannot reach the outside"
    assert x.W.truth()["fabric"]["outside_drops"] == before
    # s0 is eni0's own address: it passes the source/dest check, but has no way out
    eni_drops = _drops(x, x.eni0)
    x.W.ip(ns, "route", "add", f"{outside}/32", "via", x.n0["gateway"], "dev", "eth1", "onlink", "src", x.s0)
    try:
        assert not _ping(x, ns, x.s0, outside), "a secondary address reached the outside unNATed"
        assert _ping(x, x.n1["netns"], x.n1["primary_ip"], outside), "node1's primary cannot get out"
    finally:
        x.W.ip(ns, "route", "del", f"{outside}/32")
    assert _drops(x, x.eni0) == eni_drops, "dropped by the source/dest check instead"
    assert x.W.truth()["fabric"]["outside_drops"] >= before + 1


def test_unassigned_address_is_no_longer_delivered(x):
    x.c.unassign_private_ip_addresses(NetworkInterfaceId=x.eni1, PrivateIpAddresses=[x.s1])
    wait_for(lambda: not _ping(x, x.n0["netns"], x.s0, x.s1), timeout=3, what="the route to go")
    x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni1, PrivateIpAddresses=[x.s1])
    wait_for(lambda: _ping(x, x.n0["netns"], x.s0, x.s1), timeout=3, what="the route to come back")


def test_reassigned_address_follows_its_new_eni(x):
    # node1 takes s0 away from node0 (AllowReassignment): the fabric now delivers s0 to node1
    # (the fabric's gateway answers: the outside host would refuse s0, as no node's primary)
    target = x.n1["gateway"]
    x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni1, PrivateIpAddresses=[x.s0], AllowReassignment=True)
    x.W.ip(x.n1["netns"], "addr", "add", f"{x.s0}/32", "dev", "eth1")
    x.W.ip(x.n1["netns"], "route", "add", f"{target}/32", "dev", "eth1")
    try:
        wait_for(lambda: _ping(x, x.n1["netns"], x.s0, target), timeout=3, what="s0 delivered to node1")
        assert not _ping(x, x.n0["netns"], x.s0, x.s1), "node0 still owns s0"
    finally:
        x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni0, PrivateIpAddresses=[x.s0],
                                        AllowReassignment=True)
        x.W.ip(x.n1["netns"], "addr", "del", f"{x.s0}/32", "dev", "eth1")
        x.W.ip(x.n1["netns"], "route", "del", f"{target}/32")
    wait_for(lambda: _ping(x, x.n0["netns"], x.s0, x.s1), timeout=3, what="s0 back on node0")


def test_prefix_addresses_are_delivered(x):
    r = x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni1, Ipv4PrefixCount=1)
    base = r["AssignedIpv4Prefixes"][0]["Ipv4Prefix"].split("/")[0]
    a, b, c, d = base.split(".")
    inside = f"{a}.{b}.{c}.{int(d) + 5}"
    x.W.ip(x.n1["netns"], "addr", "add", f"{inside}/32", "dev", "eth1")
    x.W.ip(x.n1["netns"], "route", "replace", f"{x.s0}/32", "via", x.n1["gateway"], "dev", "eth1", "onlink")
    x.W.ip(x.n0["netns"], "route", "add", f"{inside}/32", "via", x.n0["gateway"], "dev", "eth1", "onlink",
           "src", x.s0)
    wait_for(lambda: _ping(x, x.n0["netns"], x.s0, inside), timeout=3, what="delivery into the /28")


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

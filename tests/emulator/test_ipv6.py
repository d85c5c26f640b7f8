#!/usr/bin/env python3
"""An IPv6 world (`vpc-world up --ipv6`): EC2's IPv6 actions and shapes, IMDS, the fabric.

One fast world of two m5.large nodes (10 IPv6 per ENI) with an IPv6 /56. The
cases run in order: the describes, AssignIpv6Addresses/UnassignIpv6Addresses
in every form and every error through botocore (each response also checked
on the wire against botocore's EC2 model, as test_ec2.py does), IMDS's IPv6
keys against EC2, faults and throttling on the new actions, then real ICMPv6
between the nodes' namespaces with addresses EC2 lists (set by hand, as the
daemon would), a spoofed source dropped and counted, and the outside host
left IPv4-only.
"""

import ipaddress
import sys

import harness
from harness import client_error, wait_for


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=2, instance_type="m5.large", extra=["--ipv6"])
        self.c = self.W.ec2()
        self.cv = self.W.ec2(validate=False)      # sends what botocore would refuse
        self.rec = harness.WireRecorder(self.c)
        self.rec_v = harness.WireRecorder(self.cv)
        self.n0, self.n1 = self.W.nodes
        self.nodes_subnet = self.W.w["subnets"][0]
        self.tok = {n["netns"]: self.W.imds_token(n["netns"]) for n in self.W.nodes}
        # the cases make a few hundred ip-eni calls quickly: larger buckets (forced throttling still applies)
        self.W.ctl("POST", "/throttle", {"scale": 20, "reset": True})


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


def _eni(x, eni_id):
    return x.c.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]


def _v6(x, eni_id):
    e = _eni(x, eni_id)
    return [a["Ipv6Address"] for a in e.get("Ipv6Addresses", [])], [p["Ipv6Prefix"] for p in e.get("Ipv6Prefixes", [])]


def _net(text):
    return ipaddress.IPv6Network(text)


def _addr_in(prefix, n):
    """The n-th address of a CIDR, as text."""
    return str(_net(prefix).network_address + n)


# --- world.json and the describes ---------------------------------------------------

def test_world_and_describes_show_the_ipv6_vpc(x):
    w = x.W.w
    vpc6 = _net(w["vpc"]["ipv6_cidrs"][0])
    assert w["ipv6"] is True and vpc6.prefixlen == 56, w["vpc"]
    v = x.c.describe_vpcs()["Vpcs"][0]
    (assoc,) = v["Ipv6CidrBlockAssociationSet"]
    assert assoc["Ipv6CidrBlock"] == str(vpc6) and assoc["Ipv6CidrBlockState"]["State"] == "associated", assoc
    subs = {s["SubnetId"]: s for s in x.c.describe_subnets()["Subnets"]}
    nets = []
    for sj in w["subnets"]:
        (sa,) = subs[sj["id"]]["Ipv6CidrBlockAssociationSet"]
        assert sa["Ipv6CidrBlock"] == sj["ipv6_cidr"] and sa["Ipv6CidrBlockState"]["State"] == "associated"
        nets.append(_net(sa["Ipv6CidrBlock"]))
    assert all(n.prefixlen == 64 and n.subnet_of(vpc6) for n in nets) and len(set(nets)) == len(nets), nets
    r = x.c.describe_subnets(Filters=[{"Name": "ipv6-cidr-block-association.ipv6-cidr-block",
                                       "Values": [x.nodes_subnet["ipv6_cidr"]]}])["Subnets"]
    assert [s["SubnetId"] for s in r] == [x.nodes_subnet["id"]]
    assert [v["VpcId"] for v in x.c.describe_vpcs(Filters=[{"Name": "ipv6-cidr-block-association.ipv6-cidr-block",
                                                            "Values": [str(vpc6)]}])["Vpcs"]] == [w["vpc"]["id"]]


def test_each_primary_eni_has_one_ipv6_address(x):
    seen = set()
    for n in x.W.nodes:
        addrs, prefixes = _v6(x, n["primary_eni_id"])
        assert addrs == [n["primary_ipv6"]] and prefixes == [], (addrs, prefixes)
        assert ipaddress.IPv6Address(addrs[0]) in _net(x.nodes_subnet["ipv6_cidr"])
        seen.add(addrs[0])
        inst = x.c.describe_instances(InstanceIds=[n["instance_id"]])["Reservations"][0]["Instances"][0]
        assert [a["Ipv6Address"] for a in inst["NetworkInterfaces"][0]["Ipv6Addresses"]] == addrs
        r = x.c.describe_network_interfaces(Filters=[{"Name": "ipv6-addresses.ipv6-address", "Values": addrs}])
        assert [e["NetworkInterfaceId"] for e in r["NetworkInterfaces"]] == [n["primary_eni_id"]]
    assert len(seen) == 2
    t = x.W.truth()
    e0 = next(e for e in t["enis"] if e["id"] == x.n0["primary_eni_id"])
    assert e0["ipv6_addresses"] == [x.n0["primary_ipv6"]] and e0["ipv6_prefixes"] == []


# --- AssignIpv6Addresses / UnassignIpv6Addresses ------------------------------------------

def test_prefix_count_assigns_aligned_80s(x):
    eni = x.n0["primary_eni_id"]
    r = x.c.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)
    assert r["NetworkInterfaceId"] == eni and r.get("AssignedIpv6Addresses", []) == [], r
    (p1,) = r["AssignedIpv6Prefixes"]
    p2 = x.c.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6PrefixCount=1)["AssignedIpv6Prefixes"][0]
    sub = _net(x.nodes_subnet["ipv6_cidr"])
    for p in (p1, p2):
        net = _net(p)                           # strict parse: aligned, canonical
        assert net.prefixlen == 80 and net.subnet_of(sub) and str(net) == p, p
    assert not _net(p1).overlaps(_net(p2))
    assert _v6(x, eni) == ([x.n0["primary_ipv6"]], [p1, p2])
    r = x.c.unassign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Prefixes=[p2])
    assert r["UnassignedIpv6Prefixes"] == [p2] and r["NetworkInterfaceId"] == eni, r
    assert _v6(x, eni) == ([x.n0["primary_ipv6"]], [p1])
    x.p0 = p1


def test_address_count_and_explicit_forms(x):
    eni = x.n1["primary_eni_id"]
    got = x.c.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6AddressCount=2)["AssignedIpv6Addresses"]
    assert len(got) == 2 and all(ipaddress.IPv6Address(a) in _net(x.nodes_subnet["ipv6_cidr"]) for a in got)
    assert not any(ipaddress.IPv6Address(a) in _net(x.p0) for a in got)
    assert _v6(x, eni)[0] == [x.n1["primary_ipv6"]] + got
    r = x.c.unassign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Addresses=got)
    assert sorted(r["UnassignedIpv6Addresses"]) == sorted(got)
    # explicit forms: an address and a /80 of our choosing
    sub = _net(x.nodes_subnet["ipv6_cidr"])
    mine = str(sub.network_address + (0x4242 << 48) + 0x99)
    pfx = str(_net(f"{sub.network_address + (0x4343 << 48)}/80"))
    assert x.c.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Addresses=[mine])["AssignedIpv6Addresses"] == [mine]
    r = x.c.assign_ipv6_addresses(NetworkInterfaceId=eni, Ipv6Prefixes=[pfx])
    assert r["AssignedIpv6Prefixes"] == [pfx]
    assert _v6(x, eni) == ([x.n1["primary_ipv6"], mine], [pfx])
    # in use: the same address, an address inside a /80, a /80 holding an address, the same /80
    n0 = x.n0["primary_eni_id"]
    inside = _addr_in(pfx, 7)
    for kw in ({"Ipv6Addresses": [mine]}, {"Ipv6Addresses": [inside]},
               {"Ipv6Prefixes": [str(ipaddress.IPv6Network(mine + "/80", strict=False))]},
               {"Ipv6Prefixes": [pfx]}):
        assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId=n0, **kw) == \
            ("InvalidIPAddress.InUse", 400), kw
    x.p1 = pfx


def test_assign_errors_are_ec2s(x):
    n0 = x.n0["primary_eni_id"]
    sub = _net(x.nodes_subnet["ipv6_cidr"])
    bad = [
        ({"Ipv6AddressCount": 1, "Ipv6PrefixCount": 1}, "InvalidParameterCombination"),
        ({"Ipv6Addresses": [str(sub.network_address + 12345)], "Ipv6AddressCount": 1}, "InvalidParameterCombination"),
        ({"Ipv6Prefixes": [str(_net(f"{sub.network_address + (5 << 48)}/80"))], "Ipv6PrefixCount": 1},
         "InvalidParameterCombination"),
        ({}, "MissingParameter"),
        ({"Ipv6AddressCount": 0}, "InvalidParameterValue"),
        ({"Ipv6PrefixCount": -1}, "InvalidParameterValue"),
        ({"Ipv6Addresses": ["10.0.0.9"]}, "InvalidParameterValue"),                 # not IPv6
        ({"Ipv6Addresses": ["2001:db8::1"]}, "InvalidParameterValue"),              # not in the subnet
        ({"Ipv6Addresses": [str(sub.network_address + 2)]}, "InvalidParameterValue"),  # reserved
        ({"Ipv6Prefixes": [f"{sub.network_address + (5 << 48) + 1}/80"]}, "InvalidParameterValue"),  # unaligned
        ({"Ipv6Prefixes": [str(sub)]}, "InvalidParameterValue"),                    # a /64, not a /80
        ({"Ipv6Prefixes": [f"{sub.network_address}/80"]}, "InvalidParameterValue"),  # holds reserved ones
        ({"Ipv6Prefixes": ["2001:db8:0:0:1::/80"]}, "InvalidParameterValue"),      # not in the subnet
        ({"Ipv6Addresses": [str(sub.network_address + 9)] * 2}, "InvalidParameterValue"),  # twice
    ]
    before = _v6(x, n0)
    for kw, code in bad:
        assert client_error(x.cv.assign_ipv6_addresses, NetworkInterfaceId=n0, **kw) == (code, 400), (kw, code)
    assert _v6(x, n0) == before, "a refused call changed the ENI"
    assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId="eni-0123456789abcdef0",
                        Ipv6PrefixCount=1) == ("InvalidNetworkInterfaceID.NotFound", 400)
    assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId="eni-zz",
                        Ipv6PrefixCount=1) == ("InvalidNetworkInterfaceId.Malformed", 400)
    assert client_error(x.c.unassign_ipv6_addresses, NetworkInterfaceId=n0,
                        Ipv6Addresses=[x.n1["primary_ipv6"]]) == ("InvalidParameterValue", 400)
    assert client_error(x.c.unassign_ipv6_addresses, NetworkInterfaceId=n0,
                        Ipv6Prefixes=[x.p1]) == ("InvalidParameterValue", 400)
    assert client_error(x.cv.unassign_ipv6_addresses, NetworkInterfaceId=n0) == ("MissingParameter", 400)
    assert _v6(x, n0) == before


def test_per_eni_limit_counts_addresses_and_prefixes(x):
    n0 = x.n0["primary_eni_id"]
    addrs, prefixes = _v6(x, n0)
    room = 10 - len(addrs) - len(prefixes)            # m5.large: 10 IPv6 per ENI
    assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId=n0,
                        Ipv6AddressCount=room + 1) == ("PrivateIpAddressLimitExceeded", 400)
    got = x.c.assign_ipv6_addresses(NetworkInterfaceId=n0, Ipv6AddressCount=room - 1)["AssignedIpv6Addresses"]
    x.c.assign_ipv6_addresses(NetworkInterfaceId=n0, Ipv6PrefixCount=1)
    assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId=n0,
                        Ipv6PrefixCount=1) == ("PrivateIpAddressLimitExceeded", 400)
    extra = _v6(x, n0)[1][-1]
    x.c.unassign_ipv6_addresses(NetworkInterfaceId=n0, Ipv6Prefixes=[extra])
    x.c.unassign_ipv6_addresses(NetworkInterfaceId=n0, Ipv6Addresses=got)
    assert _v6(x, n0) == (addrs, prefixes)


def test_subnet_without_ipv6_refuses(x):
    s = x.W.ctl("POST", "/subnets", {"cidr": "10.0.210.0/26", "ipv6": False})
    assert "ipv6_cidr" not in s, s
    got = x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]
    assert got.get("Ipv6CidrBlockAssociationSet", []) == [], got
    e = x.c.create_network_interface(SubnetId=s["id"])["NetworkInterface"]["NetworkInterfaceId"]
    assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId=e,
                        Ipv6AddressCount=1) == ("InvalidParameterValue", 400)
    x.c.delete_network_interface(NetworkInterfaceId=e)
    s2 = x.W.ctl("POST", "/subnets", {"cidr": "10.0.211.0/26"})    # in an IPv6 world: the next /64
    assert _net(s2["ipv6_cidr"]).subnet_of(_net(x.W.w["vpc"]["ipv6_cidrs"][0])), s2


def test_create_network_interface_with_ipv6(x):
    sid = x.nodes_subnet["id"]
    a = x.c.create_network_interface(SubnetId=sid, Ipv6AddressCount=2)["NetworkInterface"]
    assert len(a["Ipv6Addresses"]) == 2 and "Ipv6Prefixes" not in a, a
    b = x.c.create_network_interface(SubnetId=sid, Ipv6PrefixCount=1)["NetworkInterface"]
    (p,) = [q["Ipv6Prefix"] for q in b["Ipv6Prefixes"]]
    assert _net(p).prefixlen == 80 and _v6(x, b["NetworkInterfaceId"]) == ([], [p])
    free = str(_net(x.nodes_subnet["ipv6_cidr"]).network_address + (0x4545 << 48) + 3)
    c = x.c.create_network_interface(SubnetId=sid, Ipv6Addresses=[{"Ipv6Address": free}])["NetworkInterface"]
    assert [q["Ipv6Address"] for q in c["Ipv6Addresses"]] == [free]
    # refused: nothing created
    v4only = x.W.ctl("POST", "/subnets", {"cidr": "10.0.213.0/26", "ipv6": False})["id"]
    before = {e["id"] for e in x.W.truth()["enis"]}
    assert client_error(x.c.create_network_interface, SubnetId=v4only,
                        Ipv6AddressCount=1) == ("InvalidParameterValue", 400)
    assert client_error(x.c.create_network_interface, SubnetId=sid, Ipv6AddressCount=1,
                        Ipv6PrefixCount=1) == ("InvalidParameterCombination", 400)
    assert client_error(x.c.create_network_interface, SubnetId=sid,
                        Ipv6Addresses=[{"Ipv6Address": free}]) == ("InvalidIPAddress.InUse", 400)
    assert {e["id"] for e in x.W.truth()["enis"]} == before, "a refused create left an ENI"
    for e in (a, b, c):
        x.c.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"])
    x.c.create_network_interface(SubnetId=sid, Ipv6Addresses=[{"Ipv6Address": free}])   # free again


# --- IMDS --------------------------------------------------------------------------------

def _imds6(x, node):
    ns, tok, mac = node["netns"], x.tok[node["netns"]], node["primary_mac"]
    out = {}
    for f in ("ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks", "vpc-ipv6-cidr-blocks"):
        st, body = x.W.imds(ns, f"network/interfaces/macs/{mac}/{f}", tok)
        out[f] = body if st == 200 else st
    st, body = x.W.imds(ns, "ipv6", tok)
    out["ipv6"] = body if st == 200 else st
    return out


def _imds6_want(x, node):
    addrs, prefixes = _v6(x, node["primary_eni_id"])
    return {"ipv6s": "\n".join(addrs) or 404, "ipv6-prefix": "\n".join(prefixes) or 404,
            "subnet-ipv6-cidr-blocks": x.nodes_subnet["ipv6_cidr"],
            "vpc-ipv6-cidr-blocks": "\n".join(x.W.w["vpc"]["ipv6_cidrs"]), "ipv6": addrs[0]}


def test_imds_ipv6_keys_follow_ec2(x):
    for n in x.W.nodes:
        wait_for(lambda: _imds6(x, n) == _imds6_want(x, n), what=f"IMDS IPv6 of {n['name']}")
    assert _imds6(x, x.n0)["ipv6-prefix"] == x.p0
    listing = x.W.imds(x.n0["netns"], f"network/interfaces/macs/{x.n0['primary_mac']}/", x.tok[x.n0["netns"]])[1]
    assert {"ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks", "vpc-ipv6-cidr-blocks"} <= set(listing.split("\n"))
    assert "ipv6" in x.W.imds(x.n0["netns"], "", x.tok[x.n0["netns"]])[1].split("\n")
    # a new prefix reaches IMDS, an unassigned one leaves it
    p = x.c.assign_ipv6_addresses(NetworkInterfaceId=x.n0["primary_eni_id"],
                                  Ipv6PrefixCount=1)["AssignedIpv6Prefixes"][0]
    wait_for(lambda: _imds6(x, x.n0)["ipv6-prefix"] == f"{x.p0}\n{p}", what="the new /80 in IMDS")
    x.c.unassign_ipv6_addresses(NetworkInterfaceId=x.n0["primary_eni_id"], Ipv6Prefixes=[p])
    wait_for(lambda: _imds6(x, x.n0)["ipv6-prefix"] == x.p0, what="the /80 gone from IMDS")


def test_imds_ipv6_keys_absent_for_an_eni_without_ipv6(x):
    s = x.W.ctl("POST", "/subnets", {"cidr": "10.0.212.0/26", "ipv6": False})
    e = x.c.create_network_interface(SubnetId=s["id"])["NetworkInterface"]
    x.c.attach_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"], InstanceId=x.n1["instance_id"],
                                 DeviceIndex=2)
    ns, tok = x.n1["netns"], x.tok[x.n1["netns"]]
    base = f"network/interfaces/macs/{e['MacAddress']}/"
    wait_for(lambda: x.W.imds(ns, base + "interface-id", tok) == (200, e["NetworkInterfaceId"]), what="ENI in IMDS")
    for f in ("ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks"):
        assert x.W.imds(ns, base + f, tok)[0] == 404, f
    assert x.W.imds(ns, base + "vpc-ipv6-cidr-blocks", tok) == (200, x.W.w["vpc"]["ipv6_cidrs"][0])
    att = _eni(x, e["NetworkInterfaceId"])["Attachment"]["AttachmentId"]
    x.c.detach_network_interface(AttachmentId=att)
    wait_for(lambda: _eni(x, e["NetworkInterfaceId"])["Status"] == "available", what="detached")
    x.c.delete_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"])


# --- faults and throttling apply to the new actions --------------------------------------------

def test_faults_and_throttling_apply(x):
    n1 = x.n1["primary_eni_id"]
    before = _v6(x, n1)
    x.W.ctl("POST", "/faults", {"action": "AssignIpv6Addresses", "kind": "error", "status": 500,
                                "code": "InternalError", "message": "injected", "count": 1})
    assert client_error(x.c.assign_ipv6_addresses, NetworkInterfaceId=n1,
                        Ipv6PrefixCount=1) == ("InternalError", 500)
    assert _v6(x, n1) == before, "an injected error was applied"
    x.W.ctl("POST", "/faults", {"action": "AssignIpv6Addresses", "kind": "lost", "count": 1})
    try:
        x.c.assign_ipv6_addresses(NetworkInterfaceId=n1, Ipv6PrefixCount=1)
        raise AssertionError("a lost response was answered")
    except Exception as e:            # the connection closes unanswered
        assert "ClientError" not in type(e).__name__, e
    addrs, prefixes = _v6(x, n1)
    assert addrs == before[0] and len(prefixes) == len(before[1]) + 1, "the lost call was not applied"
    x.lost = prefixes[-1]
    x.W.ctl("POST", "/throttle", {"force": {"ip-eni": 1}})
    assert client_error(x.c.unassign_ipv6_addresses, NetworkInterfaceId=n1,
                        Ipv6Prefixes=[x.lost]) == ("RequestLimitExceeded", 503)
    x.c.unassign_ipv6_addresses(NetworkInterfaceId=n1, Ipv6Prefixes=[x.lost])
    assert _v6(x, n1) == before
    st = x.W.ctl("GET", "/stats")["api"]
    assert st["AssignIpv6Addresses"]["errors"]["InternalError"] >= 1
    assert st["UnassignIpv6Addresses"]["errors"]["RequestLimitExceeded"] >= 1


# --- the fabric ------------------------------------------------------------------------------

def _ping6(x, ns, src, dst):
    args = ["ping", "-6", "-c", "1", "-W", "1", "-q"] + (["-I", src] if src else []) + [dst]
    return x.W.sh(ns, args, check=False).returncode == 0


def _drops(x, eni_id):
    return x.W.eni_truth(eni_id)["drops"]


def test_nodes_boot_with_their_ipv6(x):
    for n in x.W.nodes:
        out = x.W.ip(n["netns"], "-6", "-br", "addr", "show", "dev", "eth0", "scope", "global").stdout.split()
        assert f"{n['primary_ipv6']}/128" in out, out
        assert "default via fe80::ec2:1 dev eth0" in x.W.ip(n["netns"], "-6", "route", "show", "default").stdout


def test_icmpv6_between_nodes_by_ec2s_truth(x):
    d0, d1 = _drops(x, x.n0["primary_eni_id"]), _drops(x, x.n1["primary_eni_id"])
    wait_for(lambda: _ping6(x, x.n0["netns"], None, x.n1["primary_ipv6"]), timeout=5, what="node0 -> node1")
    # an address of node1's /80 (x.p1, assigned above) and one of node0's /80 as the source
    dst = _addr_in(x.p1, 0x51)
    src = _addr_in(x.p0, 0x50)
    x.W.ip(x.n1["netns"], "addr", "add", f"{dst}/128", "dev", "eth0", "nodad")
    x.W.ip(x.n0["netns"], "addr", "add", f"{src}/128", "dev", "eth0", "nodad")
    assert _ping6(x, x.n0["netns"], src, dst), "no delivery between the /80s"
    assert _ping6(x, x.n1["netns"], dst, x.n0["primary_ipv6"]), "no delivery from a /80 to a primary"
    assert _drops(x, x.n0["primary_eni_id"]) == d0 and _drops(x, x.n1["primary_eni_id"]) == d1
    x.dst, x.src = dst, src


def test_unassigned_prefix_is_no_longer_delivered(x):
    x.c.unassign_ipv6_addresses(NetworkInterfaceId=x.n1["primary_eni_id"], Ipv6Prefixes=[x.p1])
    wait_for(lambda: not _ping6(x, x.n0["netns"], x.src, x.dst), timeout=3, what="the /80's route to go")
    x.c.assign_ipv6_addresses(NetworkInterfaceId=x.n1["primary_eni_id"], Ipv6Prefixes=[x.p1])
    wait_for(lambda: _ping6(x, x.n0["netns"], x.src, x.dst), timeout=3, what="the /80's route back")


def test_secondary_eni_ipv6_and_spoofed_source(x):
    ns, n0 = x.n0["netns"], x.n0["primary_eni_id"]
    e = x.c.create_network_interface(SubnetId=x.nodes_subnet["id"])["NetworkInterface"]["NetworkInterfaceId"]
    (s6,) = x.c.assign_ipv6_addresses(NetworkInterfaceId=e, Ipv6AddressCount=1)["AssignedIpv6Addresses"]
    x.c.attach_network_interface(NetworkInterfaceId=e, InstanceId=x.n0["instance_id"], DeviceIndex=1)
    wait_for(lambda: "eth1" in x.W.links(ns), what="eth1")
    x.W.ip(ns, "link", "set", "eth1", "up")
    x.W.ip(ns, "addr", "add", f"{s6}/128", "dev", "eth1", "nodad")
    peer = x.n1["primary_ipv6"]
    # through its own ENI, s6 is delivered and passes the check
    x.W.ip(ns, "-6", "route", "add", f"{peer}/128", "via", "fe80::ec2:1", "dev", "eth1", "src", s6)
    wait_for(lambda: _ping6(x, ns, s6, peer), timeout=5, what="delivery from eth1's address")
    assert _drops(x, e) == 0
    # out of eth0 (the primary ENI, which does not own s6): dropped and counted
    x.W.ip(ns, "-6", "route", "del", f"{peer}/128")
    before, total = _drops(x, n0), x.W.truth()["fabric"]["drops_total"]
    assert not _ping6(x, ns, s6, peer), "a spoofed packet got through"
    assert _drops(x, n0) >= before + 1
    assert x.W.truth()["fabric"]["drops_total"] >= total + 1
    # with the check off for the primary ENI the same packet passes (the reply comes back on eth1)
    x.c.modify_network_interface_attribute(NetworkInterfaceId=n0, SourceDestCheck={"Value": False})
    wait_for(lambda: _ping6(x, ns, s6, peer), timeout=3, what="delivery with the check off")
    x.c.modify_network_interface_attribute(NetworkInterfaceId=n0, SourceDestCheck={"Value": True})
    wait_for(lambda: not _ping6(x, ns, s6, peer), timeout=3, what="the check back on")
    # a source no ENI owns at all
    ghost = str(_net(x.nodes_subnet["ipv6_cidr"]).network_address + (0x7777 << 48) + 1)
    x.W.ip(ns, "addr", "add", f"{ghost}/128", "dev", "eth0", "nodad")
    before = _drops(x, n0)
    assert not _ping6(x, ns, ghost, peer)
    assert _drops(x, n0) >= before + 1


def test_outside_stays_ipv4_only(x):
    out = x.W.w["outside"]
    assert x.W.sh(out["netns"], ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]).stdout.strip() == "1"
    assert "inet6" not in x.W.ip(out["netns"], "addr", "show").stdout
    assert x.W.ip(x.W.w["fabric_netns"], "-6", "route", "get", "2001:db8::1", check=False).returncode != 0
    ping4 = x.W.sh(x.n0["netns"], ["ping", "-c", "1", "-W", "1", "-q", out["ip"]], check=False)
    assert ping4.returncode == 0, "the outside host is no longer reachable over IPv4"


def test_every_response_matches_the_wire_format(x):
    problems = x.rec.problems + x.rec_v.problems
    assert problems == [], "\n".join(problems[:20])
    want = {"AssignIpv6Addresses", "UnassignIpv6Addresses", "DescribeNetworkInterfaces", "DescribeSubnets",
            "DescribeVpcs", "DescribeInstances"}
    assert want <= set(x.rec.seen), want - set(x.rec.seen)
    assert {200, 400, 500, 503} <= x.rec.seen["AssignIpv6Addresses"] | x.rec.seen["UnassignIpv6Addresses"]


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

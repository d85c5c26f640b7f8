#!/usr/bin/env python3
"""The emulator's IPv6 model (vpcworld/model6.py) on its own, and IMDS's IPv6 keys; no namespaces.

These cases need no root: they drive vpcworld.model.World with the default
Hooks and check what the API and fabric suites rely on: the VPC's /56 and
the subnets' /64s, addresses and /80 prefixes unique, aligned and clear of
the reserved addresses, the per-ENI limit, failures taking nothing, an ENI's
IPv6 freed with it, and IMDS listing the IPv6 keys only when there is IPv6.
"""

import ipaddress
import sys

import harness
from vpcworld import imds, model6
from vpcworld.model import Ec2Error, World

CREDS = {"access_key_id": "ASIA", "secret_access_key": "s", "token": "t", "expiration": "e", "updated": "u"}


def _raises(code, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except Ec2Error as e:
        assert e.code == code, (e.code, e.message, code)
        return
    raise AssertionError(f"no {code}")


def _world(itype="m5.large"):
    w = World("10.0.0.0/16")
    s = w.add_subnet("10.0.0.0/24")
    inst = w.add_instance(itype, s, "n0", "ns0")
    model6.enable(w)
    return w, s, inst


def _net(text):
    return ipaddress.IPv6Network(text)


def _a6(text):
    return int(ipaddress.IPv6Address(text))


def test_vpc_gets_a_56_and_subnets_64s_in_it():
    w = World("10.0.0.0/16")
    a, b = w.add_subnet("10.0.0.0/24"), w.add_subnet("10.0.1.0/24")
    assert a.net6 is None and w.ipv6_cidrs == []
    model6.enable(w)
    (_, vpc6), = w.ipv6_cidrs
    assert vpc6.prefixlen == 56 and vpc6.subnet_of(model6.AMAZON_POOL), vpc6
    assert a.net6.prefixlen == 64 and a.net6.subnet_of(vpc6) and b.net6.subnet_of(vpc6)
    assert a.net6 != b.net6 and a.ipv6_assoc.startswith("subnet-cidr-assoc-")
    c = w.add_subnet("10.0.2.0/24")
    assert c.net6 is None                 # the model adds none by itself: the caller asks
    model6.add_subnet_block(w, c)
    assert c.net6.subnet_of(vpc6) and c.net6 not in (a.net6, b.net6)
    _raises("InvalidParameterValue", model6.enable, w)


def test_prefixes_are_aligned_unique_80s_inside_the_64():
    w, s, inst = _world()
    e = inst.primary_eni
    _, got = model6.assign(w, e, prefix_count=3)
    _, more = model6.assign(w, e, prefix_count=2)
    got += more
    assert len(set(got)) == 5 and e.prefixes6 == got
    first, last = int(s.net6.network_address), int(s.net6.broadcast_address) & ~((1 << 48) - 1)
    for p in got:
        net = _net(model6.prefix6_str(p))       # strict: raises if p is not aligned
        assert net.prefixlen == 80 and net.subnet_of(s.net6), net
        assert p not in (first, last), "a /80 holding reserved addresses"
    assert model6.owned6(e) == {(p, 80) for p in got}


def test_addresses_are_unique_in_the_64_and_outside_every_prefix():
    w, s, inst = _world("m5.4xlarge")                 # 30 per ENI
    e = inst.primary_eni
    _, prefixes = model6.assign(w, e, prefix_count=2)
    got, _ = model6.assign(w, e, count=20)
    assert len(set(got)) == 20
    lo, hi = int(s.net6.network_address) + 4, int(s.net6.broadcast_address) - 1
    for a in got:
        assert lo <= a <= hi and (a & ~((1 << 48) - 1)) not in prefixes, model6.ip6_str(a)


def test_explicit_addresses_and_prefixes_are_checked():
    w, s, inst = _world()
    e = inst.primary_eni
    other = w.create_eni(s)
    base = int(s.net6.network_address)
    for reserved in (base, base + 3, base + (1 << 64) - 1):
        _raises("InvalidParameterValue", model6.assign, w, e, addrs=[reserved])
    _raises("InvalidParameterValue", model6.assign, w, e, addrs=[_a6("2001:db8::5")])      # not in the /64
    _raises("InvalidParameterValue", model6.assign, w, e, prefixes=[base])             # the first /80
    p = base + (7 << 48)
    model6.assign(w, e, prefixes=[p])
    _raises("InvalidIPAddress.InUse", model6.assign, w, other, prefixes=[p])
    _raises("InvalidIPAddress.InUse", model6.assign, w, other, addrs=[p + 9])         # inside e's /80
    a = base + (9 << 48) + 77
    model6.assign(w, other, addrs=[a])
    _raises("InvalidIPAddress.InUse", model6.assign, w, e, addrs=[a])
    _raises("InvalidIPAddress.InUse", model6.assign, w, e, prefixes=[base + (9 << 48)])  # holds a
    assert e.prefixes6 == [p] and other.ipv6s == [a]


def test_forms_limits_and_nitro():
    w, s, inst = _world("t3.nano")                    # 2 IPv6 per ENI
    e = inst.primary_eni
    _raises("MissingParameter", model6.assign, w, e)
    _raises("InvalidParameterCombination", model6.assign, w, e, count=1, prefix_count=1)
    _raises("InvalidParameterCombination", model6.assign, w, e, addrs=[int(s.net6.network_address) + 9], count=1)
    model6.assign(w, e, prefix_count=1)
    model6.assign(w, e, count=1)
    _raises("PrivateIpAddressLimitExceeded", model6.assign, w, e, count=1)
    _raises("PrivateIpAddressLimitExceeded", model6.assign, w, e, prefix_count=1)
    loose = w.create_eni(s)                            # unattached: the largest limit
    model6.assign(w, loose, count=model6.MAX_IPV6_PER_ENI)
    _raises("PrivateIpAddressLimitExceeded", model6.assign, w, loose, count=1)
    xen = w.add_instance("t2.medium", s, "n1", "ns1")
    _raises("InvalidParameterValue", model6.assign, w, xen.primary_eni, prefix_count=1)
    model6.assign(w, xen.primary_eni, count=1)         # addresses need no nitro


def test_failures_take_nothing():
    w, s, inst = _world()
    e, other = inst.primary_eni, w.create_eni(s)
    base = int(s.net6.network_address)
    taken = base + (3 << 48) + 1
    model6.assign(w, other, addrs=[taken])
    _raises("InvalidIPAddress.InUse", model6.assign, w, e, addrs=[base + 1000, taken])
    assert e.ipv6s == []
    model6.assign(w, e, count=2)
    before = list(e.ipv6s)
    _raises("InvalidParameterValue", model6.unassign, w, e, addrs=[before[0], taken])
    assert e.ipv6s == before
    _raises("MissingParameter", model6.unassign, w, e)
    model6.unassign(w, e, addrs=[before[0]])
    assert e.ipv6s == before[1:]


def test_deleted_eni_frees_its_ipv6():
    w, s, inst = _world()
    e = w.create_eni(s)
    a, = model6.assign(w, e, count=1)[0]
    _, (p,) = model6.assign(w, w.create_eni(s), prefix_count=1)
    w.delete_eni(e)
    other = w.create_eni(s)
    model6.assign(w, other, addrs=[a])                 # free again
    assert other.ipv6s == [a]
    owner = next(x for x in w.enis.values() if x.prefixes6 == [p])
    w.delete_eni(owner)
    model6.assign(w, inst.primary_eni, prefixes=[p])


def test_no_room_is_insufficient_cidr_blocks():
    w, s, inst = _world()
    orig = model6.secrets.randbelow
    model6.secrets.randbelow = lambda n: 0             # every draw lands on a reserved address
    try:
        _raises("InsufficientCidrBlocks", model6.assign, w, inst.primary_eni, count=1)
        _raises("InsufficientCidrBlocks", model6.assign, w, inst.primary_eni, prefix_count=1)
    finally:
        model6.secrets.randbelow = orig
    assert inst.primary_eni.ipv6s == [] and inst.primary_eni.prefixes6 == []


def test_subnet_without_ipv6_refuses():
    w, s, inst = _world()
    bare = w.add_subnet("10.0.9.0/24")
    e = w.create_eni(bare)
    _raises("InvalidParameterValue", model6.assign, w, e, count=1)


def _tree(w, inst):
    return imds._tree(imds.view(w, inst, CREDS))


def test_imds_has_no_ipv6_keys_without_ipv6():
    w = World("10.0.0.0/16")
    s = w.add_subnet("10.0.0.0/24")
    inst = w.add_instance("m5.large", s, "n0", "ns0")
    t = _tree(w, inst)
    mac = t["network"]["interfaces"]["macs"][inst.primary_eni.mac]
    assert "ipv6" not in t
    assert not {"ipv6s", "ipv6-prefix", "subnet-ipv6-cidr-blocks", "vpc-ipv6-cidr-blocks"} & set(mac), mac


def test_imds_ipv6_keys_follow_the_model():
    w, s, inst = _world()
    e = inst.primary_eni
    mac = lambda: _tree(w, inst)["network"]["interfaces"]["macs"][e.mac]  # noqa: E731
    m = mac()
    assert m["subnet-ipv6-cidr-blocks"] == str(s.net6)
    assert m["vpc-ipv6-cidr-blocks"] == str(w.ipv6_cidrs[0][1])
    assert "ipv6s" not in m and "ipv6-prefix" not in m and "ipv6" not in _tree(w, inst)
    got, _ = model6.assign(w, e, count=2)
    _, prefixes = model6.assign(w, e, prefix_count=2)
    m = mac()
    assert m["ipv6s"] == "\n".join(model6.ip6_str(a) for a in got)
    assert m["ipv6-prefix"] == "\n".join(model6.prefix6_str(p) for p in prefixes)
    assert _tree(w, inst)["ipv6"] == model6.ip6_str(got[0])


if __name__ == "__main__":
    sys.exit(harness.run(globals(), needs_root=False))

#!/usr/bin/env python3
"""The emulator's EC2 model on its own: address accounting and limits, no namespaces.

These cases need no root: they drive vpcworld.model.World directly with the
default Hooks (timed effects happen at once) and check the invariants the
API suites rely on: every address has one owner, the subnet's count is
exact, failures take nothing, prefixes are aligned and whole.
"""

import ipaddress
import sys

import harness
from vpcworld.model import Ec2Error, World


def _ip(text):
    return int(ipaddress.IPv4Address(text))


def _raises(code, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except Ec2Error as e:
        assert e.code == code, (e.code, code)
        return
    raise AssertionError(f"no {code}")


def _consistent(w):
    """Every address owned by exactly what the subnet says, and nothing else."""
    for s in w.subnets.values():
        owned = {}
        for e in w.enis.values():
            if e.subnet is s:
                for a in [e.primary] + e.secondaries:
                    owned[a] = e.id
                for p in e.prefixes:
                    owned.update({p + i: e.id for i in range(16)})
        assert owned == s.used, (len(owned), len(s.used))
        assert s.available == (s.hi - s.lo + 1) - len(owned)


def _world(cidr="10.0.0.0/24"):
    w = World("10.0.0.0/16")
    s = w.add_subnet(cidr)
    return w, s


def test_addresses_skip_reserved_and_are_unique():
    w, s = _world("10.0.0.0/28")
    e = w.create_eni(s, secondary_count=10)
    got = [e.primary] + e.secondaries
    assert got == list(range(_ip("10.0.0.4"), _ip("10.0.0.15"))), got
    assert s.available == 0
    _raises("InsufficientFreeAddressesInSubnet", w.create_eni, s)
    _consistent(w)


def test_failed_create_takes_nothing():
    w, s = _world("10.0.0.0/28")
    _raises("InsufficientFreeAddressesInSubnet", w.create_eni, s, secondary_count=11)
    _raises("InsufficientFreeAddressesInSubnet", w.create_eni, s, prefix_count=1)  # 11 < 16 addresses
    a = w.create_eni(s, primary_ip=_ip("10.0.0.9"))
    _raises("InvalidIPAddress.InUse", w.create_eni, s, primary_ip=_ip("10.0.0.5"), secondary_ips=[_ip("10.0.0.9")])
    _raises("InvalidParameterValue", w.create_eni, s, primary_ip=_ip("10.0.0.15"))          # the last address
    assert s.available == 10 and len(w.enis) == 1
    w.delete_eni(a)
    assert s.available == 11
    _consistent(w)


def test_prefixes_are_aligned_and_whole():
    w, s = _world("10.0.0.0/26")
    e = w.create_eni(s)                                   # takes .4
    got, prefixes = w.assign(e, prefix_count=2)
    assert prefixes == [_ip("10.0.0.16"), _ip("10.0.0.32")], prefixes
    _raises("InsufficientCidrBlocks", w.assign, e, prefix_count=1)
    w.unassign(e, prefixes=[_ip("10.0.0.16")])
    assert w.assign(e, prefix_count=1)[1] == [_ip("10.0.0.16")]
    _raises("InvalidParameterValue", w.assign, e, prefixes=[_ip("10.0.0.8")])       # unaligned
    _consistent(w)


def test_limits_follow_the_instance_type():
    w, s = _world()
    inst = w.add_instance("t3.nano", s, "n0", "ns0")      # 2 ENIs x 2 addresses
    p = inst.primary_eni
    w.assign(p, count=1)
    _raises("PrivateIpAddressLimitExceeded", w.assign, p, count=1)
    _raises("PrivateIpAddressLimitExceeded", w.assign, p, prefix_count=1)
    e2 = w.create_eni(s)
    w.attach(e2, inst, 1)
    e3 = w.create_eni(s)
    _raises("AttachmentLimitExceeded", w.attach, e3, inst, 2)
    big = w.create_eni(s, secondary_count=5)
    w.detach(e2)
    _raises("PrivateIpAddressLimitExceeded", w.attach, big, inst, 1)
    _consistent(w)


def test_reassignment_moves_only_secondaries():
    w, s = _world()
    a = w.create_eni(s, secondary_count=1)
    b = w.create_eni(s)
    moving = a.secondaries[0]
    _raises("InvalidIPAddress.InUse", w.assign, b, ips=[moving])
    w.assign(b, ips=[moving], allow_reassignment=True)
    assert moving in b.secondaries and moving not in a.secondaries and s.used[moving] == b.id
    _raises("InvalidIPAddress.InUse", w.assign, b, ips=[a.primary], allow_reassignment=True)
    _consistent(w)


def test_terminate_honours_delete_on_termination():
    w, s = _world()
    inst = w.add_instance("m5.large", s, "n0", "ns0")
    keep, gone = w.create_eni(s, secondary_count=2), w.create_eni(s, secondary_count=2)
    w.attach(keep, inst, 1)
    w.attach(gone, inst, 2).delete_on_termination = True
    w.terminate(inst)
    assert inst.state == "terminated" and keep.status == "available"
    assert set(w.enis) == {keep.id}
    _consistent(w)


if __name__ == "__main__":
    sys.exit(harness.run(globals(), needs_root=False))

"""IPv6 in the EC2 model: the VPC's /56, the subnets' /64s, ENI addresses and /80 prefixes.

An IPv6 world (`vpc-world up --ipv6`) gets an Amazon-provided /56 (drawn
from 2600:1f14::/32, as EC2 draws one from its pool) and each subnet the next
/64 in it. State lives on the ENIs only (Eni.ipv6s: addresses, Eni.prefixes6:
/80 bases, ints in assignment order); a subnet's IPv6 use is computed from
its ENIs, so deleting or terminating an ENI releases its IPv6 with nothing
to undo. Like the rest of the model this knows nothing of HTTP or XML and
raises Ec2Error with EC2's codes.

Choices as EC2 makes them: addresses and /80s are drawn at random from the
subnet's /64 (EC2's look random too), never one of the subnet's first four
addresses nor its last (reserved, as for IPv4; they lie in the first and the
last /80, which are therefore never prefixes), never an address inside an
assigned /80 and never a /80 holding an assigned address. Addresses and
prefixes share the per-ENI IPv6 limit of the instance type (each /80 takes
one slot, as each /28 does for IPv4); an unattached ENI is bounded by the
largest limit. AssignIpv6Addresses takes one form per kind, like
AssignPrivateIpAddresses: addresses or a count, prefixes or a prefix count,
and not addresses and prefixes together.
"""

import ipaddress
import secrets

from .instance_types import TYPES
from .model import Ec2Error, new_id

AMAZON_POOL = ipaddress.IPv6Network("2600:1f14::/32")
PREFIX_LEN = 80
_IID = 1 << 64                           # addresses in a /64
_PREFIX_SPAN = 1 << (128 - PREFIX_LEN)   # addresses in a /80
MAX_IPV6_PER_ENI = max(t.ipv6_per_eni for t in TYPES.values())


def ip6_str(addr):
    return str(ipaddress.IPv6Address(addr))


def prefix6_str(base):
    return f"{ip6_str(base)}/{PREFIX_LEN}"


def parse_ip6(text, what="Ipv6Address"):
    try:
        return int(ipaddress.IPv6Address(text))
    except ValueError:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{text}' for {what}") from None


def parse_prefix6(text):
    """A /80 in CIDR text -> its base; anything else is InvalidParameterValue."""
    try:
        net = ipaddress.IPv6Network(text)          # strict: host bits set is an error
    except ValueError:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{text}' for Ipv6Prefix") from None
    if net.prefixlen != PREFIX_LEN:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{text}' for Ipv6Prefix: must be a /80")
    return int(net.network_address)


# --- the VPC and its subnets ----------------------------------------------------

def enable(world, cidr=None):
    """Give the VPC an IPv6 /56 and every subnet a /64 in it."""
    if world.ipv6_cidrs:
        raise Ec2Error("InvalidParameterValue", "The VPC already has an IPv6 CIDR block.")
    if cidr is None:
        slot = secrets.randbelow(1 << 24)
        cidr = ipaddress.IPv6Network((int(AMAZON_POOL.network_address) + (slot << 72), 56))
    net = ipaddress.IPv6Network(cidr)
    if net.prefixlen != 56:
        raise Ec2Error("InvalidParameterValue", f"The IPv6 CIDR '{cidr}' is not a /56.")
    world.ipv6_cidrs.append((new_id("vpc-cidr-assoc"), net))
    for s in world.subnets.values():
        add_subnet_block(world, s)
    world.hooks.changed()


def add_subnet_block(world, subnet):
    """Associate the next free /64 of the VPC's /56 with a subnet."""
    if not world.ipv6_cidrs or subnet.net6 is not None:
        return
    vpc6 = world.ipv6_cidrs[0][1]
    taken = {s.net6 for s in world.subnets.values() if s.net6 is not None}
    for net in vpc6.subnets(new_prefix=64):
        if net not in taken:
            subnet.net6 = net
            subnet.ipv6_assoc = new_id("subnet-cidr-assoc")
            world.hooks.changed()
            return
    raise Ec2Error("InvalidSubnet.Range", "The VPC's IPv6 CIDR block has no free /64.")


def _bounds(subnet):
    base = int(subnet.net6.network_address)
    return base + 4, base + _IID - 2          # first four and the last are reserved


def _in_use(world, subnet):
    addrs, prefixes = {}, {}
    for e in world.enis.values():
        if e.subnet is subnet:
            addrs.update({a: e.id for a in e.ipv6s})
            prefixes.update({p: e.id for p in e.prefixes6})
    return addrs, prefixes


def _covering(addr):
    return addr & ~(_PREFIX_SPAN - 1)


def _addr_free(subnet, addr, addrs, prefixes):
    lo, hi = _bounds(subnet)
    return lo <= addr <= hi and addr not in addrs and _covering(addr) not in prefixes


def _prefix_free(subnet, base, addrs, prefixes):
    lo, hi = _bounds(subnet)
    return (lo <= base and base + _PREFIX_SPAN - 1 <= hi and base not in prefixes
            and not any(_covering(a) == base for a in addrs))


def _draw(n, candidate, ok):
    """n distinct random values from candidate() that pass ok(v, drawn so far)."""
    out = []
    for _ in range(n * 64 + 64):
        if len(out) == n:
            break
        v = candidate()
        if v not in out and ok(v, out):
            out.append(v)
    if len(out) < n:
        raise Ec2Error("InsufficientCidrBlocks",
                       "The specified subnet does not have enough free cidr blocks to satisfy the request.")
    return out


def _draw_addrs(subnet, n, addrs, prefixes):
    base = int(subnet.net6.network_address)
    return _draw(n, lambda: base + secrets.randbelow(_IID),
                 lambda a, got: _addr_free(subnet, a, addrs, prefixes))


def _draw_prefixes(subnet, n, addrs, prefixes):
    base = int(subnet.net6.network_address)
    return _draw(n, lambda: base + secrets.randbelow(_IID // _PREFIX_SPAN) * _PREFIX_SPAN,
                 lambda p, got: _prefix_free(subnet, p, addrs, prefixes))


# --- ENIs -----------------------------------------------------------------------

def limit6(eni):
    a = eni.attachment
    return a.instance.type.ipv6_per_eni if a else MAX_IPV6_PER_ENI


def slots6(eni):
    return len(eni.ipv6s) + len(eni.prefixes6)


def owned6(eni):
    """Every IPv6 address this ENI owns as (base, prefix length) pairs."""
    return {(a, 128) for a in eni.ipv6s} | {(p, PREFIX_LEN) for p in eni.prefixes6}


def _check_forms(eni, addrs, count, prefixes, prefix_count):
    if eni.subnet.net6 is None:
        raise Ec2Error("InvalidParameterValue",
                       f"The subnet '{eni.subnet.id}' of {eni.id} has no IPv6 CIDR block.")
    if (addrs and count) or ((addrs or count) and (prefixes or prefix_count)) or (prefixes and prefix_count):
        raise Ec2Error("InvalidParameterCombination",
                       "Specify either IPv6 addresses or a count of addresses, or either IPv6 prefixes or "
                       "a prefix count; not several.")
    if not (addrs or count or prefixes or prefix_count):
        raise Ec2Error("MissingParameter",
                       "Either Ipv6Addresses, Ipv6AddressCount, Ipv6Prefix or Ipv6PrefixCount must be specified.")
    if (prefixes or prefix_count) and eni.attachment and not eni.attachment.instance.type.nitro:
        raise Ec2Error("InvalidParameterValue",
                       f"Prefix delegation is not supported for instance type {eni.attachment.instance.type.name}.")
    if slots6(eni) + len(addrs) + count + len(prefixes) + prefix_count > limit6(eni):
        raise Ec2Error("PrivateIpAddressLimitExceeded", "Number of IPv6 addresses will exceed limit.")


def _check_explicit(world, eni, addrs, prefixes):
    used_a, used_p = _in_use(world, eni.subnet)
    lo, hi = _bounds(eni.subnet)
    for a in addrs:
        if not lo <= a <= hi:
            raise Ec2Error("InvalidParameterValue",
                           f"Address {ip6_str(a)} does not fall within the subnet's IPv6 address range")
        if a in used_a or _covering(a) in used_p:
            raise Ec2Error("InvalidIPAddress.InUse", f"Address {ip6_str(a)} is in use.")
    for p in prefixes:
        if not (lo <= p and p + _PREFIX_SPAN - 1 <= hi):
            raise Ec2Error("InvalidParameterValue",
                           f"Prefix {prefix6_str(p)} is not within the subnet's usable IPv6 range")
        if not _prefix_free(eni.subnet, p, used_a, used_p):
            raise Ec2Error("InvalidIPAddress.InUse", f"Prefix {prefix6_str(p)} is in use.")
    return used_a, used_p


def assign(world, eni, addrs=(), count=0, prefixes=(), prefix_count=0):
    """AssignIpv6Addresses: returns (new addresses, new /80 bases); all or nothing."""
    addrs, prefixes = list(addrs), list(prefixes)
    _check_forms(eni, addrs, count, prefixes, prefix_count)
    used_a, used_p = _check_explicit(world, eni, addrs, prefixes)
    got_a = addrs + (_draw_addrs(eni.subnet, count, used_a, used_p) if count else [])
    got_p = prefixes + (_draw_prefixes(eni.subnet, prefix_count, used_a, used_p) if prefix_count else [])
    eni.ipv6s += got_a
    eni.prefixes6 += got_p
    world.hooks.changed(eni.attachment and eni.attachment.instance.id, eni)
    return got_a, got_p


def unassign(world, eni, addrs=(), prefixes=()):
    """UnassignIpv6Addresses: every one must be on the ENI, else nothing changes."""
    if not (addrs or prefixes):
        raise Ec2Error("MissingParameter", "Either Ipv6Addresses or Ipv6Prefix must be specified.")
    for a in addrs:
        if a not in eni.ipv6s:
            raise Ec2Error("InvalidParameterValue",
                           f"Some of the specified IPv6 addresses are not assigned to interface {eni.id}")
    for p in prefixes:
        if p not in eni.prefixes6:
            raise Ec2Error("InvalidParameterValue",
                           f"Some of the specified IPv6 prefixes are not assigned to interface {eni.id}")
    eni.ipv6s = [a for a in eni.ipv6s if a not in addrs]
    eni.prefixes6 = [p for p in eni.prefixes6 if p not in prefixes]
    world.hooks.changed(eni.attachment and eni.attachment.instance.id, eni)
    return list(addrs), list(prefixes)

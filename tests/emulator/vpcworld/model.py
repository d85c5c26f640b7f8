"""The world's EC2 state and the semantics of every operation on it.

Nothing here knows about HTTP, XML or namespaces: the EC2 front end
(ec2api.py) parses a request into arguments, takes World.lock, calls one
method here and renders the result; errors are raised as Ec2Error carrying
EC2's code, message and HTTP status. Time-taking effects (an attachment
completing, a detach, a terminate) are handed to Hooks.schedule, and every
change that the fabric or IMDS must see is reported through Hooks.changed,
so the server can plumb links and publish IMDS views after the change.

Addresses are kept as ints. A subnet hands out the lowest free address,
never the first four nor the last, and aligned /28 prefixes whose 16
addresses are all free; AvailableIpAddressCount is exact.
"""

import ipaddress
import secrets
import threading
import time

from .instance_types import MAX_IPV4_PER_ENI, TYPES


class Ec2Error(Exception):
    """An EC2 error response: code, message and HTTP status."""

    def __init__(self, code, message, status=400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def new_id(prefix):
    return f"{prefix}-{secrets.token_hex(9)[:17]}"


def ip_str(addr):
    return str(ipaddress.IPv4Address(addr))


def parse_ip(text, what="PrivateIpAddress"):
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{text}' for {what}") from None


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


class Hooks:
    """What the model asks of its host; the default does everything at once."""

    def schedule(self, kind, fn):
        fn()

    def changed(self, instance_id=None, eni=None):
        pass


class Subnet:
    def __init__(self, world, cidr, az, az_id):
        self.id = new_id("subnet")
        self.net = ipaddress.IPv4Network(cidr)
        self.az, self.az_id, self.vpc_id = az, az_id, world.vpc_id
        self.tags = {}
        base = int(self.net.network_address)
        self.gateway = base + 1
        self.lo = base + 4                                  # .0-.3 reserved
        self.hi = int(self.net.broadcast_address) - 1       # last reserved
        self.used = {}                                      # addr -> ENI id
        self._hint = self.lo
        self.net6, self.ipv6_assoc = None, None             # its IPv6 /64 (model6.py)

    @property
    def available(self):
        return max(0, self.hi - self.lo + 1) - len(self.used)

    def contains(self, addr):
        return self.lo <= addr <= self.hi

    def take(self, addr, owner):
        self.used[addr] = owner

    def release(self, addr):
        if self.used.pop(addr, None) is not None and addr < self._hint:
            self._hint = addr

    def alloc_ips(self, n, owner):
        if n <= 0:
            return []
        if n > self.available:
            raise Ec2Error("InsufficientFreeAddressesInSubnet",
                           "The specified subnet does not have enough free addresses to satisfy the request.")
        out, a = [], self._hint
        while len(out) < n:
            if a not in self.used:
                out.append(a)
            a += 1
        for a in out:
            self.used[a] = owner
        self._hint = out[-1] + 1 if out else self._hint
        return out

    def free_prefix_bases(self):
        base = (self.lo + 15) & ~15
        while base + 15 <= self.hi:
            if all(base + i not in self.used for i in range(16)):
                yield base
            base += 16

    def alloc_prefixes(self, n, owner):
        if n <= 0:
            return []
        if n * 16 > self.available:
            raise Ec2Error("InsufficientFreeAddressesInSubnet",
                           "The specified subnet does not have enough free addresses to satisfy the request.")
        bases = []
        for base in self.free_prefix_bases():
            bases.append(base)
            if len(bases) == n:
                break
        if len(bases) < n:
            raise Ec2Error("InsufficientCidrBlocks",
                           "The specified subnet does not have enough free cidr blocks to satisfy the request.")
        for base in bases:
            self.take_prefix(base, owner)
        return bases

    def take_prefix(self, base, owner):
        for i in range(16):
            self.used[base + i] = owner

    def release_prefix(self, base):
        for i in range(16):
            self.release(base + i)


class Attachment:
    def __init__(self, instance, device_index, card_index, delete_on_termination=False):
        self.id = new_id("eni-attach")
        self.instance = instance
        self.device_index, self.card_index = device_index, card_index
        self.delete_on_termination = delete_on_termination
        self.status = "attaching"
        self.time = time.time()


class Eni:
    def __init__(self, world, subnet, description, groups):
        world.serial += 1
        self.serial = world.serial
        self.id = new_id("eni")
        self.subnet = subnet
        self.description = description
        self.groups = list(groups)
        self.tags = {}
        self.mac = world.new_mac()
        self.primary = None
        self.secondaries = []          # ints, in assignment order
        self.prefixes = []             # /28 bases, in assignment order
        self.ipv6s, self.prefixes6 = [], []    # IPv6 addresses and /80 bases (model6.py)
        self.attachment = None
        self.source_dest_check = True
        self.requester_managed = False

    @property
    def status(self):
        return "in-use" if self.attachment else "available"

    def slots(self):
        return 1 + len(self.secondaries) + len(self.prefixes)

    def limit(self):
        a = self.attachment
        return a.instance.type.ipv4_per_eni if a else MAX_IPV4_PER_ENI

    def owned(self):
        """Every address this ENI owns as (base, prefix length) pairs."""
        return ([(self.primary, 32)] + [(a, 32) for a in self.secondaries] +
                [(p, 28) for p in self.prefixes])


class Instance:
    def __init__(self, world, itype, subnet, node_name, netns):
        self.id = new_id("i")
        self.type = itype
        self.subnet = subnet
        self.node_name, self.netns = node_name, netns
        self.state = "running"
        self.launch_time = time.time()
        self.image_id = "ami-0a1b2c3d4e5f60718"
        self.groups = [world.default_sg]
        self.tags = {"Name": node_name}
        self.primary_eni = None
        self._world = world

    def enis(self):
        """The ENIs attached (or attaching, detaching) here, by card and device."""
        return sorted((e for e in self._world.enis.values()
                       if e.attachment and e.attachment.instance is self),
                      key=lambda e: (e.attachment.card_index, e.attachment.device_index))


STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}


class World:
    """The VPC: subnets, instances, ENIs; one lock guards all of it."""

    def __init__(self, vpc_cidr, region="us-west-2", account="111122223333", hooks=None):
        self.lock = threading.RLock()
        self.hooks = hooks or Hooks()
        self.region, self.account = region, account
        self.az, self.az_id = region + "a", "usw2-az1" if region == "us-west-2" else region[:4] + "-az1"
        self.vpc_id = new_id("vpc")
        self.vpc_cidrs = []            # [(association id, IPv4Network)]
        self.ipv6_cidrs = []           # [(association id, IPv6Network /56)] (model6.py)
        self.subnets = {}
        self.instances = {}
        self.enis = {}                 # id -> Eni, in creation order
        self.default_sg = new_id("sg")
        self.groups = {self.default_sg: "default"}
        self.client_tokens = {}        # token -> (fingerprint, eni id)
        self.macs = set()
        self.serial = 0
        self.add_vpc_cidr(vpc_cidr)

    # --- construction ---------------------------------------------------
    def new_mac(self):
        while True:
            mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
            if mac not in self.macs:
                self.macs.add(mac)
                return mac

    def add_vpc_cidr(self, cidr):
        net = ipaddress.IPv4Network(cidr)
        for _, other in self.vpc_cidrs:
            if net.overlaps(other):
                raise Ec2Error("InvalidVpc.Range", f"The CIDR '{cidr}' conflicts with another CIDR of the VPC.")
        self.vpc_cidrs.append((new_id("vpc-cidr-assoc"), net))
        self.hooks.changed()

    def remove_vpc_cidr(self, cidr):
        net = ipaddress.IPv4Network(cidr)
        if len(self.vpc_cidrs) == 1 or any(s.net.subnet_of(net) for s in self.subnets.values()):
            raise Ec2Error("InvalidCidrBlock.InUse", f"The CIDR '{cidr}' cannot be removed.")
        self.vpc_cidrs = [(a, n) for a, n in self.vpc_cidrs if n != net]
        self.hooks.changed()

    def add_subnet(self, cidr, az=None):
        net = ipaddress.IPv4Network(cidr)
        if not any(net.subnet_of(v) for _, v in self.vpc_cidrs):
            raise Ec2Error("InvalidSubnet.Range", f"The CIDR '{cidr}' is invalid.")
        if any(net.overlaps(s.net) for s in self.subnets.values()):
            raise Ec2Error("InvalidSubnet.Conflict", f"The CIDR '{cidr}' conflicts with another subnet")
        s = Subnet(self, net, az or self.az, self.az_id)
        self.subnets[s.id] = s
        self.hooks.changed()
        return s

    def add_instance(self, itype, subnet, node_name, netns, primary_ip=None):
        inst = Instance(self, TYPES[itype], subnet, node_name, netns)
        self.instances[inst.id] = inst
        eni = self.create_eni(subnet, "Primary network interface", [self.default_sg],
                              primary_ip=primary_ip)
        att = Attachment(inst, 0, 0, delete_on_termination=True)
        att.status = "attached"
        eni.attachment = att
        inst.primary_eni = eni
        self.hooks.changed(inst.id, eni)
        return inst

    # --- lookups --------------------------------------------------------
    def eni(self, eni_id):
        if not eni_id.startswith("eni-") or len(eni_id) < 8 or any(c not in "0123456789abcdef" for c in eni_id[4:]):
            raise Ec2Error("InvalidNetworkInterfaceId.Malformed",
                           f'Invalid id: "{eni_id}" (expecting "eni-...")')
        e = self.enis.get(eni_id)
        if e is None:
            raise Ec2Error("InvalidNetworkInterfaceID.NotFound",
                           f"The networkInterface ID '{eni_id}' does not exist")
        return e

    def instance(self, inst_id):
        if not inst_id.startswith("i-") or len(inst_id) < 10 or any(c not in "0123456789abcdef" for c in inst_id[2:]):
            raise Ec2Error("InvalidInstanceID.Malformed", f'Invalid id: "{inst_id}"')
        i = self.instances.get(inst_id)
        if i is None:
            raise Ec2Error("InvalidInstanceID.NotFound", f"The instance ID '{inst_id}' does not exist")
        return i

    def subnet(self, subnet_id):
        s = self.subnets.get(subnet_id)
        if s is None:
            raise Ec2Error("InvalidSubnetID.NotFound", f"The subnet ID '{subnet_id}' does not exist")
        return s

    def attachment(self, att_id):
        for e in self.enis.values():
            if e.attachment and e.attachment.id == att_id:
                return e
        raise Ec2Error("InvalidAttachmentID.NotFound", f"The attachment ID '{att_id}' does not exist")

    def check_groups(self, groups):
        for g in groups:
            if g not in self.groups:
                raise Ec2Error("InvalidGroup.NotFound", f"The security group '{g}' does not exist")

    # --- ENIs -----------------------------------------------------------
    def create_eni(self, subnet, description="", groups=(), primary_ip=None,
                   secondary_count=0, secondary_ips=(), prefix_count=0, prefixes=()):
        groups = list(groups) or [self.default_sg]
        self.check_groups(groups)
        if 1 + secondary_count + len(secondary_ips) + prefix_count + len(prefixes) > MAX_IPV4_PER_ENI:
            raise Ec2Error("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")
        explicit = ([primary_ip] if primary_ip is not None else []) + list(secondary_ips)
        if len(set(explicit)) != len(explicit) or len(set(prefixes)) != len(prefixes):
            raise Ec2Error("InvalidParameterValue", "The same address or prefix is given more than once.")
        for a in explicit:
            self._check_free(subnet, a)
        for base in prefixes:
            self._check_free_prefix(subnet, base)
        eni = Eni(self, subnet, description, groups)
        # everything taken is recorded on the ENI at once, so a failure
        # further down releases exactly what was taken
        try:
            for a in explicit:
                subnet.take(a, eni.id)
            eni.secondaries = list(secondary_ips)
            eni.primary = primary_ip if primary_ip is not None else subnet.alloc_ips(1, eni.id)[0]
            eni.secondaries += subnet.alloc_ips(secondary_count, eni.id)
            for base in prefixes:
                subnet.take_prefix(base, eni.id)
                eni.prefixes.append(base)
            eni.prefixes += subnet.alloc_prefixes(prefix_count, eni.id)
        except Ec2Error:
            self._release_all(eni)
            raise
        self.enis[eni.id] = eni
        return eni

    def _release_all(self, eni):
        for a in ([eni.primary] if eni.primary is not None else []) + eni.secondaries:
            if eni.subnet.used.get(a) == eni.id:
                eni.subnet.release(a)
        for p in eni.prefixes:
            if eni.subnet.used.get(p) == eni.id:
                eni.subnet.release_prefix(p)
        self.macs.discard(eni.mac)

    def _check_free(self, subnet, addr, allow_from=None):
        if not subnet.contains(addr):
            raise Ec2Error("InvalidParameterValue",
                           f"Address {ip_str(addr)} does not fall within the subnet's address range")
        owner = subnet.used.get(addr)
        if owner is not None and owner != allow_from:
            raise Ec2Error("InvalidIPAddress.InUse", f"Address {ip_str(addr)} is in use.")
        return owner

    def _check_free_prefix(self, subnet, base):
        if base & 15 or not (subnet.contains(base) and subnet.contains(base + 15)):
            raise Ec2Error("InvalidParameterValue",
                           f"Prefix {ip_str(base)}/28 is not an aligned /28 within the subnet's address range")
        if any(base + i in subnet.used for i in range(16)):
            raise Ec2Error("InvalidIPAddress.InUse", f"Prefix {ip_str(base)}/28 is in use.")

    def delete_eni(self, eni):
        if eni.attachment:
            raise Ec2Error("InvalidParameterValue", f"Network interface '{eni.id}' is currently in use.")
        self._release_all(eni)
        del self.enis[eni.id]
        self.hooks.changed(None, eni)

    def attach(self, eni, inst, device_index, card_index=0):
        if inst.state != "running":
            raise Ec2Error("IncorrectInstanceState",
                           f"The instance '{inst.id}' is not in a valid state for this operation.")
        if eni.attachment:
            raise Ec2Error("InvalidParameterValue", f"Interface: [{eni.id}] in use.")
        if not 0 <= card_index < inst.type.cards:
            raise Ec2Error("InvalidParameterValue",
                           f"NetworkCardIndex {card_index} is invalid for instance type {inst.type.name}.")
        if not 0 <= device_index < 100:
            raise Ec2Error("InvalidParameterValue", f"Invalid value '{device_index}' for deviceIndex.")
        if eni.subnet.az != inst.subnet.az:
            raise Ec2Error("InvalidParameterCombination",
                           "You may not attach a network interface to an instance if they are not in the same availability zone")
        on_card = [e for e in inst.enis() if e.attachment.card_index == card_index]
        if any(e.attachment.device_index == device_index for e in on_card):
            raise Ec2Error("InvalidParameterValue",
                           f"Instance '{inst.id}' already has an interface attached at device index '{device_index}'.")
        if len(on_card) + 1 > inst.type.enis_per_card(card_index):
            raise Ec2Error("AttachmentLimitExceeded",
                           f"Interface count {len(inst.enis()) + 1} exceeds the limit for {inst.type.name}")
        if eni.slots() > inst.type.ipv4_per_eni:
            raise Ec2Error("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")
        att = Attachment(inst, device_index, card_index)
        eni.attachment = att
        self.hooks.changed(inst.id, eni)
        self.hooks.schedule("attach", lambda: self._attach_done(eni, att))
        return att

    def _attach_done(self, eni, att):
        if eni.attachment is att and att.status == "attaching":
            att.status = "attached"
            self.hooks.changed(att.instance.id, eni)

    def detach(self, eni, force=False):
        att = eni.attachment
        if att.device_index == 0 and att.card_index == 0:
            raise Ec2Error("OperationNotPermitted",
                           "The network interface at device index 0 and networkCard index 0 cannot be detached.")
        if att.status == "detaching":
            return
        att.status = "detaching"
        self.hooks.changed(att.instance.id, eni)
        self.hooks.schedule("detach", lambda: self._detach_done(eni, att))

    def _detach_done(self, eni, att):
        if eni.attachment is att:
            eni.attachment = None
            self.hooks.changed(att.instance.id, eni)

    def assign(self, eni, ips=(), count=0, prefixes=(), prefix_count=0, allow_reassignment=False):
        if (ips and count) or ((ips or count) and (prefixes or prefix_count)) or (prefixes and prefix_count):
            raise Ec2Error("InvalidParameterCombination",
                           "Specify either addresses or a count of addresses, and either prefixes or a prefix count, not both.")
        if not (ips or count or prefixes or prefix_count):
            raise Ec2Error("MissingParameter",
                           "Either PrivateIpAddress, SecondaryPrivateIpAddressCount, Ipv4Prefix or Ipv4PrefixCount must be specified.")
        if (prefixes or prefix_count) and eni.attachment and not eni.attachment.instance.type.nitro:
            raise Ec2Error("InvalidParameterValue",
                           f"Prefix delegation is not supported for instance type {eni.attachment.instance.type.name}.")
        new = len(ips) + count + len(prefixes) + prefix_count
        if eni.slots() + new > eni.limit():
            raise Ec2Error("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")
        sub = eni.subnet
        moved = []
        for a in ips:
            owner = self._check_free(sub, a, allow_from=sub.used.get(a) if allow_reassignment else None)
            if owner == eni.id:
                raise Ec2Error("InvalidParameterValue", f"Address {ip_str(a)} is already assigned to {eni.id}.")
            if owner is not None:
                if a not in self.enis[owner].secondaries:     # a primary, or inside a prefix
                    raise Ec2Error("InvalidIPAddress.InUse",
                                   f"Address {ip_str(a)} is in use as a primary address or within a prefix.")
                moved.append((owner, a))
        for base in prefixes:
            self._check_free_prefix(sub, base)
        # all checks done: from here on nothing fails but the allocation itself
        got_ips = sub.alloc_ips(count, eni.id) if count else []
        got_prefixes = sub.alloc_prefixes(prefix_count, eni.id) if prefix_count else []
        for owner, a in moved:
            other = self.enis[owner]
            other.secondaries.remove(a)
            self.hooks.changed(other.attachment and other.attachment.instance.id, other)
        for a in ips:
            sub.take(a, eni.id)
        for base in prefixes:
            sub.take_prefix(base, eni.id)
        got_ips = list(ips) + got_ips
        got_prefixes = list(prefixes) + got_prefixes
        eni.secondaries += got_ips
        eni.prefixes += got_prefixes
        self.hooks.changed(eni.attachment and eni.attachment.instance.id, eni)
        return got_ips, got_prefixes

    def unassign(self, eni, ips=(), prefixes=()):
        if not (ips or prefixes):
            raise Ec2Error("MissingParameter", "Either PrivateIpAddress or Ipv4Prefix must be specified.")
        for a in ips:
            if a == eni.primary:
                raise Ec2Error("InvalidParameterValue", "The primary IP address of a network interface cannot be unassigned.")
            if a not in eni.secondaries:
                raise Ec2Error("InvalidParameterValue",
                               f"Some of the specified addresses are not assigned to interface {eni.id}")
        for p in prefixes:
            if p not in eni.prefixes:
                raise Ec2Error("InvalidParameterValue",
                               f"Some of the specified prefixes are not assigned to interface {eni.id}")
        for a in ips:
            eni.secondaries.remove(a)
            eni.subnet.release(a)
        for p in prefixes:
            eni.prefixes.remove(p)
            eni.subnet.release_prefix(p)
        self.hooks.changed(eni.attachment and eni.attachment.instance.id, eni)

    # --- tags -----------------------------------------------------------
    def taggable(self, rid):
        if rid.startswith("eni-"):
            return self.eni(rid)
        if rid.startswith("i-"):
            return self.instance(rid)
        if rid.startswith("subnet-"):
            return self.subnet(rid)
        if rid == self.vpc_id:
            return self
        if rid.startswith("vpc-"):
            raise Ec2Error("InvalidVpcID.NotFound", f"The vpc ID '{rid}' does not exist")
        raise Ec2Error("InvalidID", f"The ID '{rid}' is not valid")

    # --- instances ------------------------------------------------------
    def terminate(self, inst):
        prev = inst.state
        if inst.state == "running":
            inst.state = "shutting-down"
            for e in inst.enis():
                e.attachment.status = "detaching"
            self.hooks.changed(inst.id)
            self.hooks.schedule("detach", lambda: self._terminate_done(inst))
        return prev

    def _terminate_done(self, inst):
        for e in list(inst.enis()):
            att = e.attachment
            e.attachment = None
            if att.delete_on_termination:
                self._release_all(e)
                del self.enis[e.id]
            self.hooks.changed(inst.id, e)
        inst.state = "terminated"
        self.hooks.changed(inst.id)

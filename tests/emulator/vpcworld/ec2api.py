"""The EC2 Query API front end: parse, authenticate, throttle, misbehave, dispatch.

Ec2Api.handle() takes one HTTP request (POST form or GET query, Action and
Version=2016-11-15) and returns (status, XML body), or raises Drop when the
connection must be closed unanswered (an injected timeout or lost response).
Order, as EC2: SigV4 (401 AuthFailure), the action's existence (400
InvalidAction), throttling (503 RequestLimitExceeded), injected faults, the
action's latency, then the action itself under the world lock. Each action
parses its parameters (EC2's .N list encoding), checks DryRun (412
DryRunOperation) and calls the model (model.py), whose Ec2Error becomes the
error response. Stats count calls and error codes per action.
"""

import base64
import fnmatch
import hashlib
import ipaddress
import json
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import defaultdict

from . import ec2xml, model6, sigv4
from .faults import category
from .instance_types import TYPES
from .model import Ec2Error, parse_ip


class Drop(Exception):
    """Close the connection without a response (after `delay` seconds)."""

    def __init__(self, delay=0.0):
        super().__init__("drop")
        self.delay = delay


class Params:
    """EC2 Query parameters with the .N list conventions."""

    def __init__(self, d):
        self.d = d

    def str(self, name, required=False, default=None):
        v = self.d.get(name)
        if v is None and required:
            raise Ec2Error("MissingParameter", f"The request must contain the parameter {name}")
        return default if v is None else v

    def int(self, name, required=False, default=None):
        v = self.str(name, required)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise Ec2Error("InvalidParameterValue", f"Invalid value '{v}' for {name}") from None

    def bool(self, name, default=False):
        v = self.d.get(name)
        if v is None:
            return default
        if v.lower() not in ("true", "false"):
            raise Ec2Error("InvalidParameterValue", f"Invalid value '{v}' for {name}")
        return v.lower() == "true"

    def indices(self, prefix):
        out = set()
        for k in self.d:
            if k.startswith(prefix + "."):
                n = k[len(prefix) + 1:].split(".", 1)[0]
                if n.isdigit():
                    out.add(int(n))
        return sorted(out)

    def list(self, prefix, sub=None):
        key = (lambda n: f"{prefix}.{n}") if sub is None else (lambda n: f"{prefix}.{n}.{sub}")
        return [self.d[key(n)] for n in self.indices(prefix) if key(n) in self.d]

    def filters(self):
        out = []
        for n in self.indices("Filter"):
            name = self.d.get(f"Filter.{n}.Name")
            if name is None:
                raise Ec2Error("InvalidParameterValue", f"Filter.{n}.Name is missing")
            out.append((name, self.list(f"Filter.{n}.Value")))
        return out

    def tags(self, prefix):
        return [(self.d.get(f"{prefix}.{n}.Key"), self.d.get(f"{prefix}.{n}.Value"))
                for n in self.indices(prefix)]

    def dry_run(self):
        if self.bool("DryRun"):
            raise Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)


def _prefix(text):
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{text}' for Ipv4Prefix") from None
    if net.prefixlen != 28:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{text}' for Ipv4Prefix: must be a /28")
    return int(net.network_address)


def _match(filters, fields, what):
    """True when every filter matches one of the resource's values (wildcards allowed)."""
    for name, patterns in filters:
        if name.startswith("tag:"):
            tags = fields("tags")
            values = [tags[name[4:]]] if name[4:] in tags else []
        elif name == "tag-key":
            values = list(fields("tags"))
        elif name == "tag-value":
            values = list(fields("tags").values())
        else:
            values = fields(name)
            if values is None:
                raise Ec2Error("InvalidParameterValue", f"The filter '{name}' is invalid for {what}")
        if not any(fnmatch.fnmatchcase(v, p) for v in values for p in patterns):
            return False
    return True


def _eni_fields(world, e):
    att = e.attachment
    table = {
        "tags": lambda: e.tags,
        "network-interface-id": lambda: [e.id],
        "attachment.instance-id": lambda: [att.instance.id] if att else [],
        "attachment.instance-owner-id": lambda: [world.account] if att else [],
        "attachment.status": lambda: [att.status] if att else [],
        "attachment.device-index": lambda: [str(att.device_index)] if att else [],
        "attachment.attachment-id": lambda: [att.id] if att else [],
        "attachment.delete-on-termination": lambda: [str(att.delete_on_termination).lower()] if att else [],
        "attachment.network-card-index": lambda: [str(att.card_index)] if att else [],
        "status": lambda: [e.status],
        "vpc-id": lambda: [world.vpc_id],
        "subnet-id": lambda: [e.subnet.id],
        "availability-zone": lambda: [e.subnet.az],
        "description": lambda: [e.description],
        "mac-address": lambda: [e.mac],
        "private-ip-address": lambda: [ec2xml.ip_str(a) for a in [e.primary] + e.secondaries],
        "addresses.private-ip-address": lambda: [ec2xml.ip_str(a) for a in [e.primary] + e.secondaries],
        "group-id": lambda: list(e.groups),
        "group-name": lambda: [world.groups.get(g, g) for g in e.groups],
        "owner-id": lambda: [world.account],
        "requester-managed": lambda: [str(e.requester_managed).lower()],
        "source-dest-check": lambda: [str(e.source_dest_check).lower()],
        "interface-type": lambda: ["interface"],
        "ipv6-addresses.ipv6-address": lambda: [model6.ip6_str(a) for a in e.ipv6s],
    }
    return lambda name: table[name]() if name in table else None


def _instance_fields(world, i):
    enis = i.enis()
    table = {
        "tags": lambda: i.tags,
        "instance-id": lambda: [i.id],
        "instance-state-name": lambda: [i.state],
        "instance-type": lambda: [i.type.name],
        "vpc-id": lambda: [world.vpc_id],
        "subnet-id": lambda: [i.subnet.id],
        "availability-zone": lambda: [i.subnet.az],
        "private-ip-address": lambda: [ec2xml.ip_str(i.primary_eni.primary)],
        "network-interface.network-interface-id": lambda: [e.id for e in enis],
        "network-interface.addresses.private-ip-address":
            lambda: [ec2xml.ip_str(a) for e in enis for a in [e.primary] + e.secondaries],
    }
    return lambda name: table[name]() if name in table else None


def _subnet_fields(world, s):
    table = {
        "tags": lambda: s.tags,
        "subnet-id": lambda: [s.id],
        "vpc-id": lambda: [world.vpc_id],
        "availability-zone": lambda: [s.az],
        "availability-zone-id": lambda: [s.az_id],
        "cidr-block": lambda: [str(s.net)],
        "cidr": lambda: [str(s.net)],
        "state": lambda: ["available"],
        "default-for-az": lambda: ["false"],
        "ipv6-cidr-block-association.ipv6-cidr-block": lambda: [str(s.net6)] if s.net6 else [],
        "ipv6-native": lambda: ["false"],
    }
    return lambda name: table[name]() if name in table else None


class Ec2Api:
    def __init__(self, world, keys, latency, throttle, faults):
        self.world, self.keys = world, keys
        self.latency, self.throttle, self.faults = latency, throttle, faults
        self.stats_lock = threading.Lock()
        self.stats = defaultdict(lambda: {"calls": 0, "errors": defaultdict(int)})
        self.actions = {
            "DescribeInstances": self.describe_instances,
            "DescribeInstanceTypes": self.describe_instance_types,
            "DescribeSubnets": self.describe_subnets,
            "DescribeVpcs": self.describe_vpcs,
            "DescribeNetworkInterfaces": self.describe_network_interfaces,
            "CreateNetworkInterface": self.create_network_interface,
            "AttachNetworkInterface": self.attach_network_interface,
            "DetachNetworkInterface": self.detach_network_interface,
            "DeleteNetworkInterface": self.delete_network_interface,
            "ModifyNetworkInterfaceAttribute": self.modify_network_interface_attribute,
            "AssignPrivateIpAddresses": self.assign_private_ip_addresses,
            "UnassignPrivateIpAddresses": self.unassign_private_ip_addresses,
            "AssignIpv6Addresses": self.assign_ipv6_addresses,
            "UnassignIpv6Addresses": self.unassign_ipv6_addresses,
            "CreateTags": self.create_tags,
            "DeleteTags": self.delete_tags,
            "TerminateInstances": self.terminate_instances,
        }

    # --- the request pipeline ---------------------------------------------
    def handle(self, method, path, query, headers, body):
        rid = str(uuid.uuid4())
        action = "?"
        try:
            if method not in ("GET", "POST"):
                raise Ec2Error("InvalidAction", f"The method {method} is not valid for this web service.")
            params = dict(_parse_qs(query))
            if method == "POST":
                params.update(_parse_qs(body.decode("utf-8", "replace")))
            sigv4.verify(method, path, query, headers, body, self.world.region, self.keys)
            action = params.get("Action") or "?"
            if action == "?":
                raise Ec2Error("MissingAction", "The request must contain the parameter Action")
            fn = self.actions.get(action)
            if fn is None:
                raise Ec2Error("InvalidAction", f"The action {action} is not valid for this web service.")
            if not self.throttle.allow(category(action, params)):
                raise Ec2Error("RequestLimitExceeded", "Request limit exceeded.", 503)
            fault = self.faults.pick(action)
            if fault and fault["kind"] == "error":
                raise Ec2Error(fault["code"], fault["message"], fault["status"])
            if fault and fault["kind"] == "timeout":
                raise Drop(fault["seconds"])
            if fault and fault["kind"] == "lost" and fault["apply_after"] > 0:
                self._apply_late(action, fn, Params(params), fault)
                raise Drop(fault["hold"])
            delay = self.latency.api_delay(action)
            if delay > 0:
                time.sleep(delay)
            with self.world.lock:
                out = fn(Params(params))
            self._count(action, None)
            if fault and fault["kind"] == "lost":
                raise Drop()
            return 200, ec2xml.response(action, rid, out)
        except Ec2Error as e:
            self._count(action, e.code)
            return e.status, ec2xml.error(e.code, e.message, rid)
        except Drop:
            raise
        except Exception:                 # an emulator bug: answer as EC2 would, and say why in the log
            traceback.print_exc(file=sys.stderr)
            self._count(action, "InternalError")
            return 500, ec2xml.error("InternalError", "An internal error has occurred", rid)

    def _apply_late(self, action, fn, p, fault):
        """Apply a call apply_after seconds from now, on a thread of its own (its answer goes nowhere)."""
        def run():
            time.sleep(fault["apply_after"])
            try:
                with self.world.lock:
                    fn(p)
                self._count(action, None)
            except Ec2Error as e:
                self._count(action, e.code)
            self.faults.note_applied_late(fault["id"])
        threading.Thread(target=run, daemon=True).start()

    def _count(self, action, code):
        with self.stats_lock:
            s = self.stats[action]
            s["calls"] += 1
            if code:
                s["errors"][code] += 1

    def stats_json(self):
        with self.stats_lock:
            return {a: {"calls": s["calls"], "errors": dict(s["errors"])} for a, s in self.stats.items()}

    # --- paging -------------------------------------------------------------
    def _page(self, p, items, key, ids_given, lo=5, hi=1000):
        """items sorted by key(); MaxResults/NextToken paging by a cursor on key."""
        maxr = p.int("MaxResults")
        token = p.str("NextToken")
        if maxr is not None and ids_given:
            raise Ec2Error("InvalidParameterCombination",
                           "The parameter MaxResults cannot be used with the parameter of resource IDs")
        if maxr is not None and not lo <= maxr <= hi:
            raise Ec2Error("InvalidParameterValue",
                           f"Value ( {maxr} ) for parameter maxResults is invalid. "
                           f"Expecting a value between {lo} and {hi}.")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
            except Exception:
                raise Ec2Error("InvalidPaginationToken", f"Invalid pagination token '{token}'") from None
            items = [x for x in items if key(x) > after]
        if maxr is None or len(items) <= maxr:
            return items, None
        page = items[:maxr]
        nxt = base64.urlsafe_b64encode(json.dumps({"after": key(page[-1])}).encode()).decode()
        return page, nxt

    # --- describes ------------------------------------------------------------
    def describe_network_interfaces(self, p):
        w = self.world
        ids = p.list("NetworkInterfaceId")
        filters = p.filters()
        p.dry_run()
        for i in ids:
            w.eni(i)        # Malformed / NotFound
        want = set(ids)
        items = [e for e in w.enis.values()
                 if (not want or e.id in want) and _match(filters, _eni_fields(w, e), "DescribeNetworkInterfaces")]
        page, nxt = self._page(p, items, lambda e: e.serial, bool(ids))
        return {"networkInterfaceSet": [ec2xml.eni_shape(w, e) for e in page], "nextToken": nxt}

    def describe_instances(self, p):
        w = self.world
        ids = p.list("InstanceId")
        filters = p.filters()
        p.dry_run()
        for i in ids:
            w.instance(i)
        want = set(ids)
        items = [i for i in w.instances.values()
                 if (not want or i.id in want) and _match(filters, _instance_fields(w, i), "DescribeInstances")]
        order = {i.id: n for n, i in enumerate(w.instances.values())}
        page, nxt = self._page(p, items, lambda i: order[i.id], bool(ids))
        return {"reservationSet": [ec2xml.reservation_shape(w, [i]) for i in page], "nextToken": nxt}

    def describe_instance_types(self, p):
        names = p.list("InstanceType")
        filters = p.filters()
        p.dry_run()
        missing = [n for n in names if n not in TYPES]
        if missing:
            raise Ec2Error("InvalidInstanceType",
                           f"The following supplied instance types do not exist: [{', '.join(missing)}]")
        types = [TYPES[n] for n in names] if names else list(TYPES.values())
        fields = lambda t: lambda name: {  # noqa: E731
            "tags": {}, "instance-type": [t.name], "hypervisor": [t.hypervisor],
            "bare-metal": [str(t.bare_metal).lower()],
            "network-info.maximum-network-interfaces": [str(t.enis)],
            "network-info.ipv4-addresses-per-interface": [str(t.ipv4_per_eni)]}.get(name)
        types = [t for t in types if _match(filters, fields(t), "DescribeInstanceTypes")]
        order = {t.name: n for n, t in enumerate(TYPES.values())}
        page, nxt = self._page(p, types, lambda t: order[t.name], bool(names), 5, 100)
        return {"instanceTypeSet": [ec2xml.instance_type_shape(t) for t in page], "nextToken": nxt}

    def describe_subnets(self, p):
        w = self.world
        ids = p.list("SubnetId")
        filters = p.filters()
        p.dry_run()
        for s in ids:
            w.subnet(s)
        items = [s for s in w.subnets.values()
                 if (not ids or s.id in ids) and _match(filters, _subnet_fields(w, s), "DescribeSubnets")]
        order = {s.id: n for n, s in enumerate(w.subnets.values())}
        page, nxt = self._page(p, items, lambda s: order[s.id], bool(ids))
        return {"subnetSet": [ec2xml.subnet_shape(w, s) for s in page], "nextToken": nxt}

    def describe_vpcs(self, p):
        w = self.world
        ids = p.list("VpcId")
        filters = p.filters()
        p.dry_run()
        for v in ids:
            if v != w.vpc_id:
                raise Ec2Error("InvalidVpcID.NotFound", f"The vpc ID '{v}' does not exist")
        fields = lambda name: {"tags": getattr(w, "tags", {}), "vpc-id": [w.vpc_id], "state": ["available"],  # noqa: E731
                               "cidr": [str(n) for _, n in w.vpc_cidrs],
                               "cidr-block-association.cidr-block": [str(n) for _, n in w.vpc_cidrs],
                               "ipv6-cidr-block-association.ipv6-cidr-block":
                                   [str(n) for _, n in w.ipv6_cidrs]}.get(name)
        ok = _match(filters, fields, "DescribeVpcs")
        return {"vpcSet": [ec2xml.vpc_shape(w)] if ok else []}

    # --- ENIs ---------------------------------------------------------------
    def create_network_interface(self, p):
        w = self.world
        subnet_id = p.str("SubnetId", required=True)
        token = p.str("ClientToken")
        primary = p.str("PrivateIpAddress")
        explicit = []
        for n in p.indices("PrivateIpAddresses"):
            ip = p.str(f"PrivateIpAddresses.{n}.PrivateIpAddress", required=True)
            if p.bool(f"PrivateIpAddresses.{n}.Primary"):
                if primary and primary != ip:
                    raise Ec2Error("InvalidParameterCombination", "Only one primary address can be specified.")
                primary = ip
            else:
                explicit.append(parse_ip(ip))
        count = p.int("SecondaryPrivateIpAddressCount", default=0)
        prefixes = [_prefix(x) for x in p.list("Ipv4Prefix", "Ipv4Prefix")]
        prefix_count = p.int("Ipv4PrefixCount", default=0)
        if count < 0 or prefix_count < 0:
            raise Ec2Error("InvalidParameterValue", "Address and prefix counts must be positive.")
        if (count and explicit) or ((count or explicit) and (prefixes or prefix_count)) or (prefixes and prefix_count):
            raise Ec2Error("InvalidParameterCombination",
                           "Specify addresses, an address count, prefixes or a prefix count; not several.")
        tags = {}
        for n in p.indices("TagSpecification"):
            rtype = p.str(f"TagSpecification.{n}.ResourceType")
            if rtype != "network-interface":
                raise Ec2Error("InvalidParameterValue",
                               f"'{rtype}' is not a valid taggable resource type for this operation.")
            for k, v in p.tags(f"TagSpecification.{n}.Tag"):
                tags[k] = v or ""
        groups = p.list("SecurityGroupId")
        v6 = self._ipv6_params(p, create=True)
        p.dry_run()
        subnet = w.subnet(subnet_id)
        fingerprint = None
        if token:
            fingerprint = hashlib.sha256(json.dumps(sorted(
                (k, v) for k, v in p.d.items()
                if k not in ("ClientToken", "DryRun", "Action", "Version"))).encode()).hexdigest()
            seen = w.client_tokens.get(token)
            if seen:
                if seen[0] != fingerprint:
                    raise Ec2Error("IdempotentParameterMismatch",
                                   f"The client token '{token}' was already used with different parameters.")
                e = w.enis.get(seen[1])
                shape = ec2xml.eni_shape(w, e) if e else seen[2]
                return {"networkInterface": shape, "clientToken": token}
        e = w.create_eni(subnet, p.str("Description", default=""), groups,
                         primary_ip=parse_ip(primary) if primary else None,
                         secondary_count=count, secondary_ips=explicit,
                         prefix_count=prefix_count, prefixes=prefixes)
        self._create_with_ipv6(e, v6)
        e.tags.update(tags)
        shape = ec2xml.eni_shape(w, e)
        shape["status"] = "pending"
        if token:
            w.client_tokens[token] = (fingerprint, e.id, shape)
        return {"networkInterface": shape, "clientToken": token}

    def attach_network_interface(self, p):
        w = self.world
        eni_id = p.str("NetworkInterfaceId", required=True)
        inst_id = p.str("InstanceId", required=True)
        dev = p.int("DeviceIndex", required=True)
        card = p.int("NetworkCardIndex", default=0)
        p.dry_run()
        att = w.attach(w.eni(eni_id), w.instance(inst_id), dev, card)
        return {"attachmentId": att.id, "networkCardIndex": att.card_index}

    def detach_network_interface(self, p):
        att_id = p.str("AttachmentId", required=True)
        force = p.bool("Force")
        p.dry_run()
        self.world.detach(self.world.attachment(att_id), force)
        return {"return": True}

    def delete_network_interface(self, p):
        eni_id = p.str("NetworkInterfaceId", required=True)
        p.dry_run()
        self.world.delete_eni(self.world.eni(eni_id))
        return {"return": True}

    def modify_network_interface_attribute(self, p):
        w = self.world
        eni_id = p.str("NetworkInterfaceId", required=True)
        given = [a for a in ("Attachment", "Description", "SourceDestCheck")
                 if any(k.startswith(a + ".") for k in p.d)]
        if p.list("SecurityGroupId"):
            given.append("SecurityGroupId")
        if not given:
            raise Ec2Error("MissingParameter", "No attributes specified.")
        if len(given) > 1:
            raise Ec2Error("InvalidParameterCombination",
                           f"Fields for multiple attribute types specified: {', '.join(given)}")
        p.dry_run()
        e = w.eni(eni_id)
        what = given[0]
        if what == "Attachment":
            att_id = p.str("Attachment.AttachmentId", required=True)
            dot = p.bool("Attachment.DeleteOnTermination")
            if not e.attachment or e.attachment.id != att_id:
                raise Ec2Error("InvalidAttachmentID.NotFound", f"The attachment ID '{att_id}' does not exist")
            e.attachment.delete_on_termination = dot
        elif what == "Description":
            e.description = p.str("Description.Value", default="")
        elif what == "SourceDestCheck":
            e.source_dest_check = p.bool("SourceDestCheck.Value", True)
            w.hooks.changed(e.attachment and e.attachment.instance.id, e)
        else:
            groups = p.list("SecurityGroupId")
            w.check_groups(groups)
            e.groups = groups
            w.hooks.changed(e.attachment and e.attachment.instance.id, e)
        return {"return": True}

    def assign_private_ip_addresses(self, p):
        w = self.world
        eni_id = p.str("NetworkInterfaceId", required=True)
        ips = [parse_ip(x) for x in p.list("PrivateIpAddress")]
        count = p.int("SecondaryPrivateIpAddressCount", default=0)
        prefixes = [_prefix(x) for x in p.list("Ipv4Prefix")]
        prefix_count = p.int("Ipv4PrefixCount", default=0)
        if count < 0 or prefix_count < 0 or "SecondaryPrivateIpAddressCount" in p.d and count == 0 \
                or "Ipv4PrefixCount" in p.d and prefix_count == 0:
            raise Ec2Error("InvalidParameterValue", "Address and prefix counts must be at least 1.")
        if len(set(ips)) != len(ips) or len(set(prefixes)) != len(prefixes):
            raise Ec2Error("InvalidParameterValue", "Duplicate addresses or prefixes in the request.")
        realloc = p.bool("AllowReassignment")
        p.dry_run()
        e = w.eni(eni_id)
        got_ips, got_prefixes = w.assign(e, ips, count, prefixes, prefix_count, realloc)
        return {"networkInterfaceId": e.id,
                "assignedPrivateIpAddressesSet": [{"privateIpAddress": ec2xml.ip_str(a)} for a in got_ips],
                "assignedIpv4PrefixSet": [{"ipv4Prefix": f"{ec2xml.ip_str(b)}/28"} for b in got_prefixes]}

    def unassign_private_ip_addresses(self, p):
        w = self.world
        eni_id = p.str("NetworkInterfaceId", required=True)
        ips = [parse_ip(x) for x in p.list("PrivateIpAddress")]
        prefixes = [_prefix(x) for x in p.list("Ipv4Prefix")]
        p.dry_run()
        w.unassign(w.eni(eni_id), ips, prefixes)
        return {"return": True}

    # --- IPv6 (model6.py); neither action has DryRun in EC2's model ----------------
    @staticmethod
    def _ipv6_params(p, create=False):
        """(addresses, count, /80 bases, prefix count) of AssignIpv6Addresses, or of CreateNetworkInterface
        (whose lists are of structures: Ipv6Addresses.N.Ipv6Address, Ipv6Prefix.N.Ipv6Prefix; counts may be 0)."""
        addrs = [model6.parse_ip6(x) for x in p.list("Ipv6Addresses", "Ipv6Address" if create else None)]
        count = p.int("Ipv6AddressCount", default=0)
        prefixes = [model6.parse_prefix6(x) for x in p.list("Ipv6Prefix", "Ipv6Prefix" if create else None)]
        prefix_count = p.int("Ipv6PrefixCount", default=0)
        for name, n in (("Ipv6AddressCount", count), ("Ipv6PrefixCount", prefix_count)):
            if n < 0 or name in p.d and n == 0 and not create:
                raise Ec2Error("InvalidParameterValue", f"Invalid value '{n}' for {name}: must be at least 1.")
        if len(set(addrs)) != len(addrs) or len(set(prefixes)) != len(prefixes):
            raise Ec2Error("InvalidParameterValue", "Duplicate IPv6 addresses or prefixes in the request.")
        return addrs, count, prefixes, prefix_count

    def _create_with_ipv6(self, e, v6):
        """CreateNetworkInterface's IPv6 part: on an EC2 error the new ENI goes again (all or nothing)."""
        if not any(v6):
            return
        try:
            model6.assign(self.world, e, *v6)
        except Ec2Error:
            self.world.delete_eni(e)
            raise

    def assign_ipv6_addresses(self, p):
        w = self.world
        eni_id = p.str("NetworkInterfaceId", required=True)
        v6 = self._ipv6_params(p)
        e = w.eni(eni_id)
        got_a, got_p = model6.assign(w, e, *v6)
        return {"assignedIpv6Addresses": [model6.ip6_str(a) for a in got_a],
                "assignedIpv6PrefixSet": [model6.prefix6_str(b) for b in got_p],   # plain items
                "networkInterfaceId": e.id}

    def unassign_ipv6_addresses(self, p):
        w = self.world
        eni_id = p.str("NetworkInterfaceId", required=True)
        addrs = [model6.parse_ip6(x) for x in p.list("Ipv6Addresses")]
        prefixes = [model6.parse_prefix6(x) for x in p.list("Ipv6Prefix")]
        e = w.eni(eni_id)
        gone_a, gone_p = model6.unassign(w, e, addrs, prefixes)
        return {"networkInterfaceId": e.id,
                "unassignedIpv6Addresses": [model6.ip6_str(a) for a in gone_a],
                "unassignedIpv6PrefixSet": [model6.prefix6_str(b) for b in gone_p]}

    # --- tags and instances ---------------------------------------------------
    def create_tags(self, p):
        w = self.world
        rids = p.list("ResourceId")
        if not rids:
            raise Ec2Error("MissingParameter", "The request must contain the parameter ResourceId")
        tags = p.tags("Tag")
        if not tags:
            raise Ec2Error("MissingParameter", "The request must contain the parameter Tag")
        for k, _ in tags:
            if not k:
                raise Ec2Error("InvalidParameterValue", "Tag key must not be empty")
            if k.lower().startswith("aws:"):
                raise Ec2Error("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
        p.dry_run()
        objs = [w.taggable(r) for r in rids]
        for o in objs:
            if not hasattr(o, "tags"):
                o.tags = {}
            if len(set(o.tags) | {k for k, _ in tags}) > 50:
                raise Ec2Error("TagLimitExceeded", "The maximum number of tags per resource (50) would be exceeded.")
        for o in objs:
            for k, v in tags:
                o.tags[k] = v or ""
        return {"return": True}

    def delete_tags(self, p):
        w = self.world
        rids = p.list("ResourceId")
        if not rids:
            raise Ec2Error("MissingParameter", "The request must contain the parameter ResourceId")
        tags = p.tags("Tag")
        p.dry_run()
        objs = [w.taggable(r) for r in rids]
        for o in objs:
            cur = getattr(o, "tags", {})
            if not tags:
                cur.clear()
            for k, v in tags:
                if k in cur and (v is None or cur[k] == v):
                    del cur[k]
        return {"return": True}

    def terminate_instances(self, p):
        w = self.world
        ids = p.list("InstanceId")
        if not ids:
            raise Ec2Error("MissingParameter", "The request must contain the parameter InstanceId")
        p.dry_run()
        insts = [w.instance(i) for i in ids]
        out = []
        for i in insts:
            prev = w.terminate(i)
            out.append({"instanceId": i.id,
                        "currentState": {"code": ec2xml.STATE_CODES[i.state], "name": i.state},
                        "previousState": {"code": ec2xml.STATE_CODES[prev], "name": prev}})
        return {"instancesSet": out}


def _parse_qs(text):
    return urllib.parse.parse_qsl(text, keep_blank_values=True)

"""EC2 Query API XML: response envelopes, errors and the shapes of resources.

Responses are built from plain dicts whose keys are EC2's element names in
EC2's order (lists render as <xSet><item>...</item></xSet>, booleans as
true/false, None is left out) and wrapped as EC2 does:

  <?xml version="1.0" encoding="UTF-8"?>
  <ActionResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>UUID</requestId>...</ActionResponse>

Errors use EC2's un-namespaced <Response><Errors><Error><Code/><Message/>
</Error></Errors><RequestID/></Response>. The *_shape functions turn model
objects into those dicts (element names from botocore's EC2 model).
"""

from xml.sax.saxutils import escape

from .model import STATE_CODES, ip_str, now_iso
from .model6 import ip6_str, prefix6_str

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def _value(out, name, v):
    if v is None:
        return
    out.append(f"<{name}>")
    if isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, (int, float)):
        out.append(str(v))
    elif isinstance(v, str):
        out.append(escape(v))
    elif isinstance(v, dict):
        for k, x in v.items():
            _value(out, k, x)
    elif isinstance(v, list):
        for x in v:
            _value(out, "item", x)
    else:
        raise TypeError(f"cannot render {type(v)} for {name}")
    out.append(f"</{name}>")


def response(action, request_id, body):
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           f'<{action}Response xmlns="{NS}">', f"<requestId>{request_id}</requestId>"]
    for k, v in body.items():
        _value(out, k, v)
    out.append(f"</{action}Response>")
    return "".join(out).encode()


def error(code, message, request_id):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()


# --- shapes -------------------------------------------------------------------

def tags_shape(tags):
    return [{"key": k, "value": v} for k, v in tags.items()]


def groups_shape(world, groups):
    return [{"groupId": g, "groupName": world.groups.get(g, g)} for g in groups]


def _dns(world, addr):
    return f"ip-{ip_str(addr).replace('.', '-')}.{world.region}.compute.internal"


def eni_shape(world, e):
    att = e.attachment
    return {
        "attachment": None if att is None else {
            "attachTime": now_iso(att.time), "attachmentId": att.id,
            "deleteOnTermination": att.delete_on_termination, "deviceIndex": att.device_index,
            "networkCardIndex": att.card_index, "instanceId": att.instance.id,
            "instanceOwnerId": world.account, "status": att.status},
        "availabilityZone": e.subnet.az,
        "description": e.description,
        "groupSet": groups_shape(world, e.groups),
        "interfaceType": "interface",
        "ipv6AddressesSet": ipv6_addresses_shape(e),
        "macAddress": e.mac,
        "networkInterfaceId": e.id,
        "ownerId": world.account,
        "privateDnsName": _dns(world, e.primary),
        "privateIpAddress": ip_str(e.primary),
        "privateIpAddressesSet": [{"primary": a == e.primary, "privateDnsName": _dns(world, a),
                                   "privateIpAddress": ip_str(a)} for a in [e.primary] + e.secondaries],
        "ipv4PrefixSet": [{"ipv4Prefix": f"{ip_str(p)}/28"} for p in e.prefixes] or None,
        "ipv6PrefixSet": ipv6_prefixes_shape(e),
        "requesterId": None,
        "requesterManaged": e.requester_managed,
        "sourceDestCheck": e.source_dest_check,
        "status": e.status,
        "subnetId": e.subnet.id,
        "tagSet": tags_shape(e.tags),
        "vpcId": world.vpc_id,
        "availabilityZoneId": e.subnet.az_id,
    }


def instance_eni_shape(world, e):
    att = e.attachment
    return {
        "attachment": {"attachTime": now_iso(att.time), "attachmentId": att.id,
                       "deleteOnTermination": att.delete_on_termination, "deviceIndex": att.device_index,
                       "status": att.status, "networkCardIndex": att.card_index},
        "description": e.description,
        "groupSet": groups_shape(world, e.groups),
        "ipv6AddressesSet": ipv6_addresses_shape(e),
        "macAddress": e.mac,
        "networkInterfaceId": e.id,
        "ownerId": world.account,
        "privateDnsName": _dns(world, e.primary),
        "privateIpAddress": ip_str(e.primary),
        "privateIpAddressesSet": [{"primary": a == e.primary, "privateDnsName": _dns(world, a),
                                   "privateIpAddress": ip_str(a)} for a in [e.primary] + e.secondaries],
        "sourceDestCheck": e.source_dest_check,
        "status": e.status,
        "subnetId": e.subnet.id,
        "vpcId": world.vpc_id,
        "interfaceType": "interface",
        "ipv4PrefixSet": [{"ipv4Prefix": f"{ip_str(p)}/28"} for p in e.prefixes] or None,
        "ipv6PrefixSet": ipv6_prefixes_shape(e),
    }


def instance_shape(world, i):
    live = i.state in ("running", "shutting-down")
    p = i.primary_eni
    return {
        "instanceId": i.id,
        "imageId": i.image_id,
        "instanceState": {"code": STATE_CODES[i.state], "name": i.state},
        "privateDnsName": _dns(world, p.primary) if live else "",
        "dnsName": "",
        "reason": "",
        "amiLaunchIndex": 0,
        "productCodes": [],
        "instanceType": i.type.name,
        "launchTime": now_iso(i.launch_time),
        "placement": {"availabilityZone": i.subnet.az, "groupName": "", "tenancy": "default"},
        "monitoring": {"state": "disabled"},
        "subnetId": i.subnet.id if live else None,
        "vpcId": world.vpc_id if live else None,
        "privateIpAddress": ip_str(p.primary) if live else None,
        "sourceDestCheck": True,
        "groupSet": groups_shape(world, i.groups),
        "architecture": "x86_64",
        "rootDeviceType": "ebs",
        "rootDeviceName": "/dev/xvda",
        "blockDeviceMapping": [],
        "virtualizationType": "hvm",
        "clientToken": "",
        "tagSet": tags_shape(i.tags),
        "hypervisor": "xen",            # DescribeInstances says xen for nitro types too
        "networkInterfaceSet": [instance_eni_shape(world, e) for e in i.enis()],
        "ebsOptimized": False,
        "enaSupport": i.type.nitro,
    }


def reservation_shape(world, instances):
    return {"reservationId": "r-" + instances[0].id[2:], "ownerId": world.account,
            "groupSet": [], "instancesSet": [instance_shape(world, i) for i in instances]}


def subnet_shape(world, s):
    return {
        "availabilityZoneId": s.az_id,
        "mapCustomerOwnedIpOnLaunch": False,
        "ownerId": world.account,
        "assignIpv6AddressOnCreation": False,
        "ipv6CidrBlockAssociationSet": subnet_ipv6_shape(s),
        "tagSet": tags_shape(s.tags),
        "subnetArn": f"arn:aws:ec2:{world.region}:{world.account}:subnet/{s.id}",
        "enableDns64": False,
        "ipv6Native": False,
        "subnetId": s.id,
        "state": "available",
        "vpcId": s.vpc_id,
        "cidrBlock": str(s.net),
        "availableIpAddressCount": s.available,
        "availabilityZone": s.az,
        "defaultForAz": False,
        "mapPublicIpOnLaunch": False,
    }


def vpc_shape(world):
    return {
        "ownerId": world.account,
        "instanceTenancy": "default",
        "cidrBlockAssociationSet": [{"associationId": a, "cidrBlock": str(n),
                                     "cidrBlockState": {"state": "associated"}} for a, n in world.vpc_cidrs],
        "ipv6CidrBlockAssociationSet": vpc_ipv6_shape(world),
        "isDefault": False,
        "tagSet": tags_shape(getattr(world, "tags", {})),
        "vpcId": world.vpc_id,
        "state": "available",
        "cidrBlock": str(world.vpc_cidrs[0][1]),
        "dhcpOptionsId": "dopt-0a1b2c3d4e5f60718",
    }


# --- IPv6 (model6.py) ----------------------------------------------------------

def ipv6_addresses_shape(e):
    return [{"ipv6Address": ip6_str(a), "isPrimaryIpv6": False} for a in e.ipv6s]


def ipv6_prefixes_shape(e):
    return [{"ipv6Prefix": prefix6_str(p)} for p in e.prefixes6] or None


def subnet_ipv6_shape(s):
    if s.net6 is None:
        return []
    return [{"associationId": s.ipv6_assoc, "ipv6CidrBlock": str(s.net6),
             "ipv6CidrBlockState": {"state": "associated"}, "ipv6AddressAttribute": "public",
             "ipSource": "amazon"}]


def vpc_ipv6_shape(world):
    return [{"associationId": a, "ipv6CidrBlock": str(n), "ipv6CidrBlockState": {"state": "associated"},
             "networkBorderGroup": world.region, "ipv6Pool": "Amazon", "ipv6AddressAttribute": "public",
             "ipSource": "amazon"} for a, n in world.ipv6_cidrs] or None


def instance_type_shape(t):
    per_card = t.enis // t.cards
    return {
        "instanceType": t.name,
        "currentGeneration": t.hypervisor != "xen",
        "freeTierEligible": t.name in ("t3.micro",),
        "supportedUsageClasses": ["on-demand", "spot"],
        "supportedRootDeviceTypes": ["ebs"],
        "supportedVirtualizationTypes": ["hvm"],
        "bareMetal": t.bare_metal,
        "hypervisor": t.hypervisor or None,
        "processorInfo": {"supportedArchitectures": ["x86_64"], "sustainedClockSpeedInGhz": 3.1},
        "vCpuInfo": {"defaultVCpus": t.vcpus},
        "memoryInfo": {"sizeInMiB": t.memory_mib},
        "instanceStorageSupported": False,
        "networkInfo": {
            "networkPerformance": t.performance,
            "maximumNetworkInterfaces": t.enis,
            "maximumNetworkCards": t.cards,
            "defaultNetworkCardIndex": 0,
            "networkCards": [{"networkCardIndex": c, "networkPerformance": t.performance,
                              "maximumNetworkInterfaces": per_card} for c in range(t.cards)],
            "ipv4AddressesPerInterface": t.ipv4_per_eni,
            "ipv6AddressesPerInterface": t.ipv6_per_eni,
            "ipv6Supported": True,
            "enaSupport": "required" if t.nitro else "unsupported",
            "efaSupported": False,
            "encryptionInTransitSupported": False,
            "enaSrdSupported": False,
        },
        "hibernationSupported": False,
        "burstablePerformanceSupported": t.name.startswith("t"),
        "dedicatedHostsSupported": True,
        "autoRecoverySupported": True,
        "supportedBootModes": ["legacy-bios", "uefi"],
    }

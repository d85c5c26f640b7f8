#!/usr/bin/env python3
"""The emulator's EC2 Query API, driven by botocore: every action, every error path.

One fast world of three t3.medium nodes (3 ENIs x 6 IPv4 each) is shared by
the cases, which run in order. Every response the client receives is also
checked on the wire (harness.check_wire: EC2's envelope, requestId first, a
UUID, <return>true</return>, and every element known to botocore's EC2
model); the last case asserts no response broke that and that every action
and error status was seen.
"""

import base64
import sys
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import harness
from harness import client_error, wait_for


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=3, instance_type="t3.medium")
        self.c = self.W.ec2()
        self.cv = self.W.ec2(validate=False)      # sends what botocore would refuse
        self.rec = harness.WireRecorder(self.c)
        self.nodes = self.W.nodes
        self.subnet = self.W.w["subnets"][0]["id"]
        self.pods = self.W.w["subnets"][1]["id"]


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


def _raw(x, params, secret=None, method="POST"):
    """A hand-signed request: (status, body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    w = x.W.w
    body = urllib.parse.urlencode(params)
    url = w["ec2_endpoint_host"]
    if method == "GET":
        url, body = url + "?" + body, None
    req = AWSRequest(method=method, url=url, data=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(w["credentials"]["access_key_id"], secret or w["credentials"]["secret_access_key"]),
              "ec2", w["region"]).add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body.encode() if isinstance(p.body, str) else p.body,
                               headers=dict(p.headers), method=method)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _code(body):
    return ET.fromstring(body).find("Errors/Error/Code").text


def _eni(x, eni_id):
    return x.c.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]


def _wait_attached(x, eni_id):
    wait_for(lambda: _eni(x, eni_id)["Attachment"]["Status"] == "attached", what=f"{eni_id} attached")


# --- wire format and authentication -------------------------------------------------

def test_wire_success_envelope(x):
    status, body = _raw(x, {"Action": "CreateTags", "Version": "2016-11-15",
                            "ResourceId.1": x.nodes[0]["instance_id"], "Tag.1.Key": "k", "Tag.1.Value": "v"})
    assert status == 200, body
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<CreateTagsResponse '
                           'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>'), text
    assert "<return>true</return>" in text, text
    model = x.c.meta.service_model.operation_model("CreateTags")
    assert harness.check_wire(body, status, model) == []


def test_get_query_requests_work(x):
    status, body = _raw(x, {"Action": "DescribeVpcs", "Version": "2016-11-15"}, method="GET")
    assert status == 200, body
    assert x.W.w["vpc"]["id"] in body.decode()


def test_unknown_action_is_invalid_action(x):
    status, body = _raw(x, {"Action": "LaunchRocket", "Version": "2016-11-15"})
    assert status == 400 and _code(body) == "InvalidAction", (status, body)
    root = ET.fromstring(body)
    assert root.tag == "Response" and harness._is_uuid(root.find("RequestID").text)
    status, body = _raw(x, {"Version": "2016-11-15"})
    assert status == 400 and _code(body) == "MissingAction", body


def test_bad_signature_is_401_authfailure(x):
    status, body = _raw(x, {"Action": "DescribeVpcs", "Version": "2016-11-15"}, secret="not-the-secret")
    assert status == 401 and _code(body) == "AuthFailure", (status, body)
    bad = x.W.ec2(creds={"access_key_id": "AKIANOTKNOWN00000000", "secret_access_key": "x"})
    assert client_error(bad.describe_vpcs) == ("AuthFailure", 401)
    req = urllib.request.Request(x.W.w["ec2_endpoint_host"], data=b"Action=DescribeVpcs&Version=2016-11-15")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("unsigned request accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and _code(e.read()) == "AuthFailure"


def test_instance_role_credentials_need_their_token(x):
    tok = x.W.imds_token(x.nodes[0]["netns"])
    import json
    st, text = x.W.imds(x.nodes[0]["netns"], "iam/security-credentials/" + x.W.w["instance_role"], tok)
    assert st == 200, (st, text)
    role = json.loads(text)
    creds = {"access_key_id": role["AccessKeyId"], "secret_access_key": role["SecretAccessKey"],
             "token": role["Token"]}
    assert x.W.ec2(creds=creds).describe_vpcs()["Vpcs"]
    creds["token"] = None
    assert client_error(x.W.ec2(creds=creds).describe_vpcs) == ("AuthFailure", 401)


def test_ec2_endpoint_from_inside_a_node(x):
    from vpcworld import netns
    node = x.nodes[1]
    c = x.W.ec2(endpoint=x.W.w["ec2_endpoint"])
    r = netns.call_in(node["netns"], c.describe_instances, InstanceIds=[node["instance_id"]])
    inst = r["Reservations"][0]["Instances"][0]
    assert inst["PrivateIpAddress"] == node["primary_ip"]


# --- describes -------------------------------------------------------------------------

def test_describe_instances(x):
    r = x.c.describe_instances()
    insts = [i for res in r["Reservations"] for i in res["Instances"]]
    assert sorted(i["InstanceId"] for i in insts) == sorted(n["instance_id"] for n in x.nodes)
    i0 = next(i for i in insts if i["InstanceId"] == x.nodes[0]["instance_id"])
    assert i0["InstanceType"] == "t3.medium" and i0["State"]["Name"] == "running"
    eni0 = i0["NetworkInterfaces"][0]
    assert eni0["NetworkInterfaceId"] == x.nodes[0]["primary_eni_id"]
    assert eni0["MacAddress"] == x.nodes[0]["primary_mac"]
    assert eni0["Attachment"]["DeviceIndex"] == 0 and eni0["Attachment"]["DeleteOnTermination"] is True
    r = x.c.describe_instances(Filters=[{"Name": "private-ip-address", "Values": [x.nodes[1]["primary_ip"]]}])
    assert [i["InstanceId"] for res in r["Reservations"] for i in res["Instances"]] == [x.nodes[1]["instance_id"]]
    assert client_error(x.c.describe_instances, InstanceIds=["i-0123456789abcdef0"])[0] == "InvalidInstanceID.NotFound"
    assert client_error(x.c.describe_instances, InstanceIds=["bogus"])[0] == "InvalidInstanceID.Malformed"
    pages = x.c.describe_instances(MaxResults=5)
    assert len(pages["Reservations"]) == 3 and "NextToken" not in pages


def test_describe_instance_types_has_real_limits(x):
    want = {"t3.nano": (2, 2), "t3.medium": (3, 6), "t3.large": (3, 12), "m5.large": (3, 10),
            "m5.xlarge": (4, 15), "m5.4xlarge": (8, 30), "c5.18xlarge": (15, 50)}
    r = x.c.describe_instance_types(InstanceTypes=list(want))
    got = {t["InstanceType"]: (t["NetworkInfo"]["MaximumNetworkInterfaces"],
                               t["NetworkInfo"]["Ipv4AddressesPerInterface"]) for t in r["InstanceTypes"]}
    assert got == want, got
    t = x.c.describe_instance_types(InstanceTypes=["t2.medium", "m5.large"])["InstanceTypes"]
    hv = {i["InstanceType"]: i["Hypervisor"] for i in t}
    assert hv == {"t2.medium": "xen", "m5.large": "nitro"}, hv
    assert client_error(x.c.describe_instance_types, InstanceTypes=["x9.huge"]) == ("InvalidInstanceType", 400)


def test_describe_subnets_and_vpcs(x):
    subs = x.c.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [x.W.w["vpc"]["id"]]}])["Subnets"]
    assert {s["SubnetId"] for s in subs} >= {x.subnet, x.pods}
    s = next(s for s in subs if s["SubnetId"] == x.subnet)
    size = 2 ** (32 - int(s["CidrBlock"].split("/")[1]))
    assert s["AvailableIpAddressCount"] == size - 5 - len(x.nodes), s
    assert client_error(x.c.describe_subnets, SubnetIds=["subnet-0123456789abcdef0"])[0] == "InvalidSubnetID.NotFound"
    v = x.c.describe_vpcs()["Vpcs"][0]
    assert v["VpcId"] == x.W.w["vpc"]["id"] and v["CidrBlock"] == x.W.w["vpc"]["cidrs"][0]


# --- ENI lifecycle ------------------------------------------------------------------

def test_create_network_interface(x):
    r = x.c.create_network_interface(
        SubnetId=x.subnet, Description="aws-K8S-test", Groups=[x.W.w["security_group"]],
        SecondaryPrivateIpAddressCount=2,
        TagSpecifications=[{"ResourceType": "network-interface",
                            "Tags": [{"Key": "cluster.k8s.amazonaws.com/name", "Value": "t"}]}])["NetworkInterface"]
    ips = [a["PrivateIpAddress"] for a in r["PrivateIpAddresses"]]
    assert len(ips) == 3 and len(set(ips)) == 3 and r["PrivateIpAddresses"][0]["Primary"] is True
    assert r["Description"] == "aws-K8S-test" and r["TagSet"] == [{"Key": "cluster.k8s.amazonaws.com/name",
                                                                  "Value": "t"}]
    assert r["Groups"][0]["GroupId"] == x.W.w["security_group"]
    assert _eni(x, r["NetworkInterfaceId"])["Status"] == "available"
    for a in ips:          # never the first four addresses nor the last
        last = int(a.split(".")[-1])
        assert last >= 4, a
    fixed = x.c.create_network_interface(SubnetId=x.pods, PrivateIpAddress="10.0.64.200")["NetworkInterface"]
    assert fixed["PrivateIpAddress"] == "10.0.64.200"
    assert client_error(x.c.create_network_interface, SubnetId=x.pods,
                        PrivateIpAddress="10.0.64.200")[0] == "InvalidIPAddress.InUse"
    assert client_error(x.c.create_network_interface, SubnetId=x.pods,
                        PrivateIpAddress="10.0.64.2")[0] == "InvalidParameterValue"      # reserved
    x.c.delete_network_interface(NetworkInterfaceId=fixed["NetworkInterfaceId"])
    assert client_error(x.c.create_network_interface, SubnetId="subnet-0123456789abcdef0")[0] == \
        "InvalidSubnetID.NotFound"
    assert client_error(x.c.create_network_interface, SubnetId=x.subnet,
                        Groups=["sg-0123456789abcdef0"])[0] == "InvalidGroup.NotFound"
    assert client_error(x.c.create_network_interface, SubnetId=x.subnet, SecondaryPrivateIpAddressCount=1,
                        Ipv4PrefixCount=1)[0] == "InvalidParameterCombination"
    with_prefix = x.c.create_network_interface(SubnetId=x.pods, Ipv4PrefixCount=2)["NetworkInterface"]
    pfx = [p["Ipv4Prefix"] for p in with_prefix["Ipv4Prefixes"]]
    assert len(pfx) == 2 and all(p.endswith("/28") and int(p.split("/")[0].split(".")[-1]) % 16 == 0 for p in pfx)
    x.c.delete_network_interface(NetworkInterfaceId=with_prefix["NetworkInterfaceId"])
    x.eni_a = r["NetworkInterfaceId"]


def test_client_token_idempotency(x):
    a = x.c.create_network_interface(SubnetId=x.subnet, ClientToken="tok-1", Description="idem")
    b = x.c.create_network_interface(SubnetId=x.subnet, ClientToken="tok-1", Description="idem")
    assert a["NetworkInterface"]["NetworkInterfaceId"] == b["NetworkInterface"]["NetworkInterfaceId"]
    assert a["ClientToken"] == "tok-1"
    n = len(x.c.describe_network_interfaces(Filters=[{"Name": "description", "Values": ["idem"]}])
            ["NetworkInterfaces"])
    assert n == 1, n
    assert client_error(x.c.create_network_interface, SubnetId=x.subnet, ClientToken="tok-1",
                        Description="other") == ("IdempotentParameterMismatch", 400)
    x.c.delete_network_interface(NetworkInterfaceId=a["NetworkInterface"]["NetworkInterfaceId"])


def test_attach_and_its_refusals(x):
    node = x.nodes[0]
    r = x.c.attach_network_interface(NetworkInterfaceId=x.eni_a, InstanceId=node["instance_id"], DeviceIndex=1)
    assert r["AttachmentId"].startswith("eni-attach-") and r["NetworkCardIndex"] == 0
    _wait_attached(x, x.eni_a)
    e = _eni(x, x.eni_a)
    assert e["Status"] == "in-use" and e["Attachment"]["InstanceId"] == node["instance_id"]
    assert e["Attachment"]["DeleteOnTermination"] is False
    x.att_a = r["AttachmentId"]
    other = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    # attaching an ENI that is in use, at a device index in use, beyond the card
    assert client_error(x.c.attach_network_interface, NetworkInterfaceId=x.eni_a,
                        InstanceId=x.nodes[1]["instance_id"], DeviceIndex=1) == ("InvalidParameterValue", 400)
    assert client_error(x.c.attach_network_interface, NetworkInterfaceId=other,
                        InstanceId=node["instance_id"], DeviceIndex=1) == ("InvalidParameterValue", 400)
    assert client_error(x.c.attach_network_interface, NetworkInterfaceId=other, InstanceId=node["instance_id"],
                        DeviceIndex=2, NetworkCardIndex=1) == ("InvalidParameterValue", 400)
    x.c.attach_network_interface(NetworkInterfaceId=other, InstanceId=node["instance_id"], DeviceIndex=2)
    third = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    code = client_error(x.c.attach_network_interface, NetworkInterfaceId=third,
                        InstanceId=node["instance_id"], DeviceIndex=3)
    assert code == ("AttachmentLimitExceeded", 400), code
    assert client_error(x.c.attach_network_interface, NetworkInterfaceId=third,
                        InstanceId="i-0123456789abcdef0", DeviceIndex=3)[0] == "InvalidInstanceID.NotFound"
    x.c.delete_network_interface(NetworkInterfaceId=third)
    x.eni_b = other


def test_modify_delete_on_termination(x):
    x.c.modify_network_interface_attribute(NetworkInterfaceId=x.eni_a,
                                           Attachment={"AttachmentId": x.att_a, "DeleteOnTermination": True})
    assert _eni(x, x.eni_a)["Attachment"]["DeleteOnTermination"] is True
    assert client_error(x.c.modify_network_interface_attribute, NetworkInterfaceId=x.eni_a,
                        Attachment={"AttachmentId": "eni-attach-0123456789abcdef0",
                                    "DeleteOnTermination": True})[0] == "InvalidAttachmentID.NotFound"
    x.c.modify_network_interface_attribute(NetworkInterfaceId=x.eni_a, Description={"Value": "changed"})
    assert _eni(x, x.eni_a)["Description"] == "changed"
    x.c.modify_network_interface_attribute(NetworkInterfaceId=x.eni_a, Groups=[x.W.w["security_group"]])


def test_assign_and_unassign(x):
    # eni_a: primary + 2 secondaries on a t3.medium (6 per ENI): 3 more fit, the 4th does not
    r = x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni_a, SecondaryPrivateIpAddressCount=2)
    new = [a["PrivateIpAddress"] for a in r["AssignedPrivateIpAddresses"]]
    assert len(new) == 2, r                         # only the new ones, not the whole ENI
    before = {a["PrivateIpAddress"] for a in _eni(x, x.eni_a)["PrivateIpAddresses"]}
    assert set(new) <= before and len(before) == 5
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=x.eni_a,
                        SecondaryPrivateIpAddressCount=2) == ("PrivateIpAddressLimitExceeded", 400)
    r = x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni_a, Ipv4PrefixCount=1)
    assert len(r["AssignedIpv4Prefixes"]) == 1
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=x.eni_a,
                        Ipv4PrefixCount=1)[0] == "PrivateIpAddressLimitExceeded"
    prefix = r["AssignedIpv4Prefixes"][0]["Ipv4Prefix"]
    x.c.unassign_private_ip_addresses(NetworkInterfaceId=x.eni_a, Ipv4Prefixes=[prefix], PrivateIpAddresses=new)
    e = _eni(x, x.eni_a)
    assert len(e["PrivateIpAddresses"]) == 3 and not e.get("Ipv4Prefixes")
    # explicit addresses, and the combination and ownership errors
    x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni_a, PrivateIpAddresses=[new[0]])
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=x.eni_b,
                        PrivateIpAddresses=[new[0]])[0] == "InvalidIPAddress.InUse"
    x.c.assign_private_ip_addresses(NetworkInterfaceId=x.eni_b, PrivateIpAddresses=[new[0]],
                                    AllowReassignment=True)
    assert new[0] in {a["PrivateIpAddress"] for a in _eni(x, x.eni_b)["PrivateIpAddresses"]}
    assert new[0] not in {a["PrivateIpAddress"] for a in _eni(x, x.eni_a)["PrivateIpAddresses"]}
    primary_b = _eni(x, x.eni_b)["PrivateIpAddress"]
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=x.eni_a, PrivateIpAddresses=[primary_b],
                        AllowReassignment=True) == ("InvalidIPAddress.InUse", 400)        # a primary never moves
    assert client_error(x.cv.assign_private_ip_addresses, NetworkInterfaceId=x.eni_a,
                        PrivateIpAddresses=[new[1], new[1]]) == ("InvalidParameterValue", 400)
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=x.eni_a, PrivateIpAddresses=[new[1]],
                        SecondaryPrivateIpAddressCount=1) == ("InvalidParameterCombination", 400)
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=x.eni_a, PrivateIpAddresses=[new[1]],
                        Ipv4PrefixCount=1) == ("InvalidParameterCombination", 400)
    assert client_error(x.c.unassign_private_ip_addresses, NetworkInterfaceId=x.eni_a,
                        PrivateIpAddresses=[new[0]]) == ("InvalidParameterValue", 400)
    primary = _eni(x, x.eni_a)["PrivateIpAddress"]
    assert client_error(x.c.unassign_private_ip_addresses, NetworkInterfaceId=x.eni_a,
                        PrivateIpAddresses=[primary]) == ("InvalidParameterValue", 400)
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId="eni-0123456789abcdef0",
                        SecondaryPrivateIpAddressCount=1) == ("InvalidNetworkInterfaceID.NotFound", 400)
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId="eni-nothex",
                        SecondaryPrivateIpAddressCount=1) == ("InvalidNetworkInterfaceId.Malformed", 400)


def test_prefixes_only_on_nitro_and_explicit(x):
    r = x.c.create_network_interface(SubnetId=x.pods)["NetworkInterface"]
    eni = r["NetworkInterfaceId"]
    x.c.assign_private_ip_addresses(NetworkInterfaceId=eni, Ipv4Prefixes=["10.0.64.48/28"])
    assert [p["Ipv4Prefix"] for p in _eni(x, eni)["Ipv4Prefixes"]] == ["10.0.64.48/28"]
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=eni,
                        Ipv4Prefixes=["10.0.64.56/28"])[0] == "InvalidParameterValue"         # unaligned
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=eni,
                        Ipv4Prefixes=["10.0.64.48/28"])[0] == "InvalidIPAddress.InUse"
    other = x.c.create_network_interface(SubnetId=x.pods)["NetworkInterface"]["NetworkInterfaceId"]
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=other, PrivateIpAddresses=["10.0.64.50"],
                        AllowReassignment=True) == ("InvalidIPAddress.InUse", 400)      # inside eni's prefix
    x.c.delete_network_interface(NetworkInterfaceId=other)
    free = x.c.describe_subnets(SubnetIds=[x.pods])["Subnets"][0]["AvailableIpAddressCount"]
    x.c.delete_network_interface(NetworkInterfaceId=eni)
    assert x.c.describe_subnets(SubnetIds=[x.pods])["Subnets"][0]["AvailableIpAddressCount"] == free + 17


def test_subnet_exhaustion(x):
    s = x.W.ctl("POST", "/subnets", {"cidr": "10.0.200.0/28"})
    assert s["available_ip_address_count"] == 11
    a = x.c.create_network_interface(SubnetId=s["id"], SecondaryPrivateIpAddressCount=9)["NetworkInterface"]
    ips = sorted(int(p["PrivateIpAddress"].split(".")[-1]) for p in a["PrivateIpAddresses"])
    assert ips == list(range(4, 14)), ips
    got = x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]["AvailableIpAddressCount"]
    assert got == 1, got
    b = x.c.create_network_interface(SubnetId=s["id"])["NetworkInterface"]
    assert b["PrivateIpAddress"] == "10.0.200.14"
    assert client_error(x.c.create_network_interface, SubnetId=s["id"]) == \
        ("InsufficientFreeAddressesInSubnet", 400)
    assert x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]["AvailableIpAddressCount"] == 0
    x.c.delete_network_interface(NetworkInterfaceId=b["NetworkInterfaceId"])
    assert x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]["AvailableIpAddressCount"] == 1
    x.c.delete_network_interface(NetworkInterfaceId=a["NetworkInterfaceId"])


def test_prefix_fragmentation(x):
    # a /26: only .16/28 and .32/28 are whole (the first and last /28 hold reserved addresses)
    s = x.W.ctl("POST", "/subnets", {"cidr": "10.0.201.0/26"})
    a = x.c.create_network_interface(SubnetId=s["id"], PrivateIpAddresses=[
        {"PrivateIpAddress": "10.0.201.20", "Primary": True},
        {"PrivateIpAddress": "10.0.201.40", "Primary": False}])["NetworkInterface"]
    free = x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]["AvailableIpAddressCount"]
    assert free == 59 - 2, free
    assert client_error(x.c.assign_private_ip_addresses, NetworkInterfaceId=a["NetworkInterfaceId"],
                        Ipv4PrefixCount=1) == ("InsufficientCidrBlocks", 400)
    x.c.unassign_private_ip_addresses(NetworkInterfaceId=a["NetworkInterfaceId"],
                                      PrivateIpAddresses=["10.0.201.40"])
    r = x.c.assign_private_ip_addresses(NetworkInterfaceId=a["NetworkInterfaceId"], Ipv4PrefixCount=1)
    assert r["AssignedIpv4Prefixes"] == [{"Ipv4Prefix": "10.0.201.32/28"}], r
    assert x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]["AvailableIpAddressCount"] == 59 - 1 - 16
    x.c.delete_network_interface(NetworkInterfaceId=a["NetworkInterfaceId"])


def test_detach_and_delete(x):
    assert client_error(x.c.detach_network_interface, AttachmentId=_eni(
        x, x.nodes[0]["primary_eni_id"])["Attachment"]["AttachmentId"]) == ("OperationNotPermitted", 400)
    assert client_error(x.c.delete_network_interface, NetworkInterfaceId=x.eni_b) == ("InvalidParameterValue", 400)
    att = _eni(x, x.eni_b)["Attachment"]["AttachmentId"]
    x.c.detach_network_interface(AttachmentId=att)
    wait_for(lambda: _eni(x, x.eni_b)["Status"] == "available", what="detached")
    assert "Attachment" not in _eni(x, x.eni_b)
    assert client_error(x.c.detach_network_interface, AttachmentId=att) == ("InvalidAttachmentID.NotFound", 400)
    x.c.delete_network_interface(NetworkInterfaceId=x.eni_b)
    assert client_error(x.c.describe_network_interfaces, NetworkInterfaceIds=[x.eni_b]) == \
        ("InvalidNetworkInterfaceID.NotFound", 400)
    assert client_error(x.c.delete_network_interface, NetworkInterfaceId=x.eni_b) == \
        ("InvalidNetworkInterfaceID.NotFound", 400)
    assert client_error(x.c.delete_network_interface, NetworkInterfaceId="eni-zz") == \
        ("InvalidNetworkInterfaceId.Malformed", 400)


def test_tags(x):
    x.c.create_tags(Resources=[x.eni_a], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    tags = {t["Key"]: t["Value"] for t in _eni(x, x.eni_a)["TagSet"]}
    assert tags["a"] == "1" and tags["b"] == "2"
    x.c.delete_tags(Resources=[x.eni_a], Tags=[{"Key": "a"}, {"Key": "b", "Value": "not-2"}])
    tags = {t["Key"]: t["Value"] for t in _eni(x, x.eni_a)["TagSet"]}
    assert "a" not in tags and tags["b"] == "2"
    assert client_error(x.c.create_tags, Resources=["eni-0123456789abcdef0"],
                        Tags=[{"Key": "a", "Value": "1"}])[0] == "InvalidNetworkInterfaceID.NotFound"
    assert client_error(x.c.create_tags, Resources=["nonsense"], Tags=[{"Key": "a", "Value": "1"}])[0] == "InvalidID"


def test_describe_filters(x):
    n0 = x.nodes[0]["instance_id"]
    x.c.create_tags(Resources=[x.eni_a], Tags=[{"Key": "node.k8s.amazonaws.com/instance_id", "Value": n0}])
    loose = x.c.create_network_interface(SubnetId=x.pods, Description="aws-K8S-loose",
                                         TagSpecifications=[{"ResourceType": "network-interface", "Tags": [
                                             {"Key": "node.k8s.amazonaws.com/instance_id", "Value": n0}]}]
                                         )["NetworkInterface"]["NetworkInterfaceId"]

    def ids(*filters):
        r = x.c.describe_network_interfaces(Filters=[{"Name": k, "Values": v} for k, v in filters])
        return {e["NetworkInterfaceId"] for e in r["NetworkInterfaces"]}

    assert ids(("attachment.instance-id", [n0])) == {x.nodes[0]["primary_eni_id"], x.eni_a}
    assert ids(("attachment.instance-id", [n0]), ("attachment.device-index", ["1"])) == {x.eni_a}
    assert ids(("attachment.status", ["attached"]), ("attachment.instance-id", [n0])) == \
        {x.nodes[0]["primary_eni_id"], x.eni_a}
    assert ids(("status", ["available"]), ("tag-key", ["node.k8s.amazonaws.com/instance_id"])) == {loose}
    assert ids(("tag:node.k8s.amazonaws.com/instance_id", [n0])) == {x.eni_a, loose}
    assert loose in ids(("tag-value", [n0]))
    assert ids(("description", ["aws-K8S-*"]), ("subnet-id", [x.pods])) == {loose}
    assert loose in ids(("vpc-id", [x.W.w["vpc"]["id"]]))
    assert ids(("network-interface-id", [loose])) == {loose}
    assert ids(("status", ["in-use"]), ("attachment.instance-id", ["i-0123456789abcdef0"])) == set()
    assert client_error(x.c.describe_network_interfaces, Filters=[{"Name": "no-such-filter", "Values": ["x"]}]) \
        == ("InvalidParameterValue", 400)
    x.c.delete_network_interface(NetworkInterfaceId=loose)


def test_describe_paging(x):
    made = [x.c.create_network_interface(SubnetId=x.pods, Description="page")["NetworkInterface"]
            ["NetworkInterfaceId"] for _ in range(12)]
    seen, token, pages = [], None, 0
    while True:
        kw = {"NextToken": token} if token else {}
        r = x.c.describe_network_interfaces(Filters=[{"Name": "description", "Values": ["page"]}],
                                            MaxResults=5, **kw)
        assert len(r["NetworkInterfaces"]) <= 5
        seen += [e["NetworkInterfaceId"] for e in r["NetworkInterfaces"]]
        pages += 1
        token = r.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(made) and pages == 3, (pages, len(seen))
    p = x.c.get_paginator("describe_network_interfaces")
    all_ids = [e["NetworkInterfaceId"] for page in p.paginate(PaginationConfig={"PageSize": 7})
               for e in page["NetworkInterfaces"]]
    assert len(all_ids) == len(set(all_ids)) and set(made) <= set(all_ids)
    assert client_error(x.cv.describe_network_interfaces, MaxResults=4) == ("InvalidParameterValue", 400)
    assert client_error(x.cv.describe_network_interfaces, MaxResults=1001) == ("InvalidParameterValue", 400)
    assert client_error(x.c.describe_network_interfaces, MaxResults=5,
                        NetworkInterfaceIds=[made[0]]) == ("InvalidParameterCombination", 400)
    assert client_error(x.c.describe_network_interfaces, MaxResults=5,
                        NextToken=base64.b64encode(b"junk").decode())[0] == "InvalidPaginationToken"
    for e in made:
        x.c.delete_network_interface(NetworkInterfaceId=e)


def test_dry_run_is_412(x):
    calls = [
        (x.c.describe_network_interfaces, {}),
        (x.c.create_network_interface, {"SubnetId": x.subnet}),
        (x.c.attach_network_interface, {"NetworkInterfaceId": x.eni_a, "InstanceId": x.nodes[1]["instance_id"],
                                        "DeviceIndex": 1}),
        (x.c.detach_network_interface, {"AttachmentId": x.att_a}),
        (x.c.delete_network_interface, {"NetworkInterfaceId": x.eni_a}),
        (x.c.modify_network_interface_attribute, {"NetworkInterfaceId": x.eni_a, "Description": {"Value": "d"}}),
        (x.c.create_tags, {"Resources": [x.eni_a], "Tags": [{"Key": "k", "Value": "v"}]}),
        (x.c.delete_tags, {"Resources": [x.eni_a]}),
        (x.c.terminate_instances, {"InstanceIds": [x.nodes[2]["instance_id"]]}),
    ]
    before = x.W.truth()
    for fn, kw in calls:
        assert client_error(fn, DryRun=True, **kw) == ("DryRunOperation", 412), fn
    after = x.W.truth()
    assert before["enis"] == after["enis"] and before["instances"] == after["instances"]


def test_terminate_honours_delete_on_termination(x):
    node = x.nodes[2]
    keep = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    gone = x.c.create_network_interface(SubnetId=x.subnet)["NetworkInterface"]["NetworkInterfaceId"]
    x.c.attach_network_interface(NetworkInterfaceId=keep, InstanceId=node["instance_id"], DeviceIndex=1)
    att = x.c.attach_network_interface(NetworkInterfaceId=gone, InstanceId=node["instance_id"],
                                       DeviceIndex=2)["AttachmentId"]
    x.c.modify_network_interface_attribute(NetworkInterfaceId=gone,
                                           Attachment={"AttachmentId": att, "DeleteOnTermination": True})
    r = x.c.terminate_instances(InstanceIds=[node["instance_id"]])["TerminatingInstances"][0]
    assert r["PreviousState"]["Name"] == "running" and r["CurrentState"]["Name"] == "shutting-down"
    wait_for(lambda: x.c.describe_instances(InstanceIds=[node["instance_id"]])["Reservations"][0]["Instances"][0]
             ["State"]["Name"] == "terminated", what="terminated")
    assert _eni(x, keep)["Status"] == "available"
    for e in (gone, node["primary_eni_id"]):
        assert client_error(x.c.describe_network_interfaces, NetworkInterfaceIds=[e])[0] == \
            "InvalidNetworkInterfaceID.NotFound"
    assert client_error(x.c.attach_network_interface, NetworkInterfaceId=keep, InstanceId=node["instance_id"],
                        DeviceIndex=1) == ("IncorrectInstanceState", 400)
    wait_for(lambda: x.W.links(node["netns"]).keys() == {"lo"}, what="the links gone with the instance")
    x.c.delete_network_interface(NetworkInterfaceId=keep)


def test_tagged_subnets_for_subnet_discovery(x):
    s = x.W.ctl("POST", "/subnets", {"cidr": "10.0.202.0/26", "tags": {"kubernetes.io/role/cni": "1"}})
    assert s["tags"] == {"kubernetes.io/role/cni": "1"} and s["available_ip_address_count"] == 59, s
    az = s["availability_zone"]
    got = x.c.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [x.W.w["vpc"]["id"]]},
                                        {"Name": "availability-zone", "Values": [az]}])["Subnets"]
    mine = next(g for g in got if g["SubnetId"] == s["id"])
    assert mine["Tags"] == [{"Key": "kubernetes.io/role/cni", "Value": "1"}], mine
    x.W.ctl("POST", "/subnets/tags", {"subnet_id": s["id"], "tags": {"kubernetes.io/role/cni": "0"}})
    tagged = x.c.describe_subnets(Filters=[{"Name": "tag:kubernetes.io/role/cni", "Values": ["0"]}])["Subnets"]
    assert [g["SubnetId"] for g in tagged] == [s["id"]], tagged
    r = x.W.ctl("POST", "/subnets/reserve", {"subnet_id": s["id"], "leave": 2})
    assert r["available_ip_address_count"] == 2, r
    assert x.c.describe_subnets(SubnetIds=[s["id"]])["Subnets"][0]["AvailableIpAddressCount"] == 2
    assert client_error(x.c.create_network_interface, SubnetId=s["id"], SecondaryPrivateIpAddressCount=2) == \
        ("InsufficientFreeAddressesInSubnet", 400)


def test_every_response_matches_the_wire_format(x):
    assert x.rec.problems == [], "\n".join(x.rec.problems[:20])
    want = {"DescribeInstances", "DescribeInstanceTypes", "DescribeSubnets", "DescribeVpcs",
            "DescribeNetworkInterfaces", "CreateNetworkInterface", "AttachNetworkInterface",
            "DetachNetworkInterface", "DeleteNetworkInterface", "ModifyNetworkInterfaceAttribute",
            "AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "CreateTags", "DeleteTags",
            "TerminateInstances"}
    assert want <= set(x.rec.seen), want - set(x.rec.seen)
    statuses = set().union(*x.rec.seen.values())
    assert {200, 400, 412} <= statuses, statuses


if __name__ == "__main__":
    t0 = time.monotonic()
    rc = harness.run(globals(), setup, teardown)
    print(f"# {time.monotonic() - t0:.1f}s")
    sys.exit(rc)

#!/usr/bin/env python3
"""IMDSv2 as each node sees it at 169.254.169.254: tokens, every path, EC2 state, lag.

One fast world of two m5.large nodes; requests are made from threads switched
into the node namespaces, so they travel eth0 -> fabric -> IMDS like the
daemon's would.
"""

import json
import sys
import time
import urllib.error
import urllib.request

import harness
from harness import wait_for
from vpcworld import netns


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=2, instance_type="m5.large")
        self.c = self.W.ec2()
        self.n0, self.n1 = self.W.nodes
        self.tok0 = self.W.imds_token(self.n0["netns"])


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


def _req(ns, method, path, headers):
    def go():
        req = urllib.request.Request("http://169.254.169.254" + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
    return netns.call_in(ns, go)


def test_token_is_required(x):
    ns = x.n0["netns"]
    assert x.W.imds(ns, "instance-id", None)[0] == 401
    assert x.W.imds(ns, "instance-id", "not-a-token")[0] == 401
    assert x.W.imds(x.n1["netns"], "instance-id", x.tok0)[0] == 401          # another node's token
    assert x.W.imds(ns, "instance-id", x.tok0) == (200, x.n0["instance_id"])


def test_token_put_rules(x):
    ns = x.n0["netns"]
    assert _req(ns, "PUT", "/latest/api/token", {})[0] == 400
    for bad in ("0", "21601", "x"):
        assert _req(ns, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": bad})[0] == 400
    assert _req(ns, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                 "X-Forwarded-For": "1.2.3.4"})[0] == 403
    short = x.W.imds_token(ns, ttl="1")
    assert x.W.imds(ns, "instance-id", short)[0] == 200
    time.sleep(1.1)
    assert x.W.imds(ns, "instance-id", short)[0] == 401


def test_instance_paths(x):
    ns, tok, w = x.n0["netns"], x.tok0, x.W.w
    want = {
        "instance-id": x.n0["instance_id"], "instance-type": "m5.large", "mac": x.n0["primary_mac"],
        "local-ipv4": x.n0["primary_ip"], "placement/region": w["region"],
        "placement/availability-zone": w["availability_zone"],
        "network/interfaces/macs/": x.n0["primary_mac"] + "/",
        "iam/security-credentials/": w["instance_role"],
    }
    for path, value in want.items():
        assert x.W.imds(ns, path, tok) == (200, value), (path, x.W.imds(ns, path, tok))
    st, listing = x.W.imds(ns, "", tok)
    assert st == 200 and {"network/", "placement/", "instance-id", "iam/"} <= set(listing.split("\n"))
    st, doc = x.W.imds(ns, "/latest/dynamic/instance-identity/document", tok)
    doc = json.loads(doc)
    assert doc["instanceId"] == x.n0["instance_id"] and doc["region"] == w["region"]
    st, cred = x.W.imds(ns, "iam/security-credentials/" + w["instance_role"], tok)
    cred = json.loads(cred)
    assert cred["Code"] == "Success" and cred["AccessKeyId"].startswith("ASIA") and cred["Token"]
    assert x.W.imds(ns, "no/such/path", tok)[0] == 404


def _mac_fields(x, ns, mac):
    base = f"network/interfaces/macs/{mac}/"
    out = {}
    for f in ("device-number", "network-card", "interface-id", "subnet-id", "vpc-id", "security-group-ids",
              "local-ipv4s", "ipv4-prefix", "subnet-ipv4-cidr-block", "vpc-ipv4-cidr-blocks"):
        st, body = x.W.imds(ns, base + f, x.tok0)
        out[f] = body if st == 200 else st
    return out


def _check_against_ec2(x, ns, inst_id):
    enis = x.c.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [inst_id]}])["NetworkInterfaces"]
    subnets = {s["SubnetId"]: s["CidrBlock"] for s in x.c.describe_subnets()["Subnets"]}
    vpc = x.c.describe_vpcs()["Vpcs"][0]
    st, macs = x.W.imds(ns, "network/interfaces/macs/", x.tok0)
    if sorted(m.rstrip("/") for m in macs.split("\n")) != sorted(e["MacAddress"] for e in enis):
        return f"macs {macs!r}"
    for e in enis:
        got = _mac_fields(x, ns, e["MacAddress"])
        want = {
            "device-number": str(e["Attachment"]["DeviceIndex"]),
            "network-card": str(e["Attachment"]["NetworkCardIndex"]),
            "interface-id": e["NetworkInterfaceId"], "subnet-id": e["SubnetId"], "vpc-id": e["VpcId"],
            "security-group-ids": "\n".join(g["GroupId"] for g in e["Groups"]),
            "local-ipv4s": "\n".join(a["PrivateIpAddress"] for a in e["PrivateIpAddresses"]),
            "ipv4-prefix": "\n".join(p["Ipv4Prefix"] for p in e.get("Ipv4Prefixes", [])) or 404,
            "subnet-ipv4-cidr-block": subnets[e["SubnetId"]],
            "vpc-ipv4-cidr-blocks": "\n".join(a["CidrBlock"] for a in vpc["CidrBlockAssociationSet"]),
        }
        if got != want:
            return f"{e['NetworkInterfaceId']}: got {got}, want {want}"
    return None


def test_network_tree_follows_ec2(x):
    ns, inst = x.n0["netns"], x.n0["instance_id"]
    assert _check_against_ec2(x, ns, inst) is None
    eni = x.c.create_network_interface(SubnetId=x.W.w["subnets"][1]["id"], SecondaryPrivateIpAddressCount=2,
                                       )["NetworkInterface"]["NetworkInterfaceId"]
    x.c.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst, DeviceIndex=1)
    x.c.assign_private_ip_addresses(NetworkInterfaceId=eni, Ipv4PrefixCount=2)
    x.c.assign_private_ip_addresses(NetworkInterfaceId=x.n0["primary_eni_id"], SecondaryPrivateIpAddressCount=3)
    wait_for(lambda: _check_against_ec2(x, ns, inst) is None, what="IMDS to match EC2")
    mac = x.c.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["MacAddress"]
    assert len(_mac_fields(x, ns, mac)["ipv4-prefix"].split("\n")) == 2
    x.W.ctl("POST", "/vpc-cidrs", {"add": ["100.64.0.0/16"]})
    wait_for(lambda: "100.64.0.0/16" in x.W.imds(ns, f"network/interfaces/macs/{mac}/vpc-ipv4-cidr-blocks",
                                                 x.tok0)[1], what="the new VPC CIDR in IMDS")
    assert _check_against_ec2(x, ns, inst) is None
    x.eni = eni


def test_imds_lags_ec2(x):
    ns = x.n0["netns"]
    x.W.ctl("POST", "/latency", {"imds_lag": [0.8, 0.8]})
    try:
        path = f"network/interfaces/macs/{x.n0['primary_mac']}/local-ipv4s"
        r = x.c.assign_private_ip_addresses(NetworkInterfaceId=x.n0["primary_eni_id"],
                                            SecondaryPrivateIpAddressCount=1)
        t0 = time.monotonic()
        ip = r["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
        assert ip not in x.W.imds(ns, path, x.tok0)[1], "IMDS showed the address at once"
        wait_for(lambda: ip in x.W.imds(ns, path, x.tok0)[1], timeout=5, what="the address in IMDS")
        lag = time.monotonic() - t0
        assert 0.6 <= lag <= 3.0, lag
        # detaching: IMDS keeps the ENI until the lag has passed
        att = x.c.describe_network_interfaces(NetworkInterfaceIds=[x.eni])["NetworkInterfaces"][0]["Attachment"]
        x.c.detach_network_interface(AttachmentId=att["AttachmentId"])
        assert len(x.W.imds(ns, "network/interfaces/macs/", x.tok0)[1].split("\n")) == 2
        wait_for(lambda: len(x.W.imds(ns, "network/interfaces/macs/", x.tok0)[1].split("\n")) == 1,
                 timeout=5, what="the detached ENI to leave IMDS")
    finally:
        x.W.ctl("POST", "/latency", {"imds_lag": [0, 0]})


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

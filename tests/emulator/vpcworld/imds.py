"""IMDSv2 at 169.254.169.254, answering each node for its own instance, with lag.

Views: after every EC2 change the server publishes each instance's view (a
plain dict, see view()); Views.publish() stamps it visible at now + lag (a
sample of the IMDS lag range, never earlier than the previous view), so
IMDS trails EC2 as the real one does. The handler answers from the newest
view already visible.

Identity: a request's source address is looked up among the ENIs' addresses
(the fabric's source/destination check makes it trustworthy) to find the
instance. Tokens: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-
seconds (1-21600) returns a token bound to that instance; every GET needs a
valid, unexpired token of the same instance, else 401 (IMDSv1 is off). A PUT
carrying X-Forwarded-For is refused (403) as the real service does.
"""

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler

from .model import ip_str, now_iso
from .model6 import ip6_str, prefix6_str

ROLE = "vpc-world-node"


def view(world, inst, creds):
    """The IMDS-visible state of one instance (called under the world lock)."""
    enis = []
    for e in inst.enis():
        if e.attachment.status not in ("attached", "detaching"):
            continue
        enis.append({
            "mac": e.mac, "id": e.id, "device": e.attachment.device_index, "card": e.attachment.card_index,
            "subnet_id": e.subnet.id, "subnet_cidr": str(e.subnet.net), "vpc_id": world.vpc_id,
            "groups": list(e.groups), "group_names": [world.groups.get(g, g) for g in e.groups],
            "ips": [ip_str(a) for a in [e.primary] + e.secondaries],
            "prefixes": [f"{ip_str(p)}/28" for p in e.prefixes], **_eni_view6(e)})
    p = inst.primary_eni
    return {
        "instance_id": inst.id, "instance_type": inst.type.name, "state": inst.state,
        "az": inst.subnet.az, "az_id": inst.subnet.az_id, "region": world.region,
        "account": world.account, "image_id": inst.image_id,
        "local_ipv4": ip_str(p.primary), "mac": p.mac, "launch_time": now_iso(inst.launch_time),
        "hostname": f"ip-{ip_str(p.primary).replace('.', '-')}.{world.region}.compute.internal",
        "vpc_cidrs": [str(n) for _, n in world.vpc_cidrs],
        "enis": enis, "creds": creds, **_view6(world, inst),
    }


def _eni_view6(e):
    return {"ipv6s": [ip6_str(a) for a in e.ipv6s], "prefixes6": [prefix6_str(p) for p in e.prefixes6],
            "subnet_ipv6": [str(e.subnet.net6)] if e.subnet.net6 else []}


def _view6(world, inst):
    p = inst.primary_eni
    return {"vpc_ipv6_cidrs": [str(n) for _, n in world.ipv6_cidrs],
            "ipv6": ip6_str(p.ipv6s[0]) if p.ipv6s else None}


def _tree6(v, e, d):
    """The IPv6 keys of one MAC's directory: each only when there is something to say, as on EC2."""
    for key, values in (("ipv6s", e.get("ipv6s")), ("ipv6-prefix", e.get("prefixes6")),
                        ("subnet-ipv6-cidr-blocks", e.get("subnet_ipv6")),
                        ("vpc-ipv6-cidr-blocks", v.get("vpc_ipv6_cidrs"))):
        if values:            # views of extec2.py (--ec2-endpoint) have no IPv6 keys
            d[key] = "\n".join(values)


class Views:
    def __init__(self, latency):
        self.latency = latency
        self.lock = threading.Lock()
        self.history = {}            # instance id -> [(visible_at, view)]

    def publish(self, inst_id, v, immediate=False):
        with self.lock:
            h = self.history.setdefault(inst_id, [])
            if h and h[-1][1] == v:
                return
            now = time.monotonic()
            at = now if immediate else now + self.latency.effect_delay("imds_lag")
            if h:
                at = max(at, h[-1][0])
            h.append((at, v))
            while len(h) > 1 and h[1][0] <= now:     # drop views already superseded
                h.pop(0)

    def current(self, inst_id):
        with self.lock:
            h = self.history.get(inst_id) or []
            now = time.monotonic()
            best = None
            for at, v in h:
                if at <= now:
                    best = v
            return best


def _tree(v):
    """The meta-data tree of a view: dicts are directories, strings are files."""
    macs = {}
    for e in v["enis"]:
        d = {
            "device-number": str(e["device"]), "network-card": str(e["card"]),
            "network-card-index": str(e["card"]), "interface-id": e["id"],
            "local-hostname": f"ip-{e['ips'][0].replace('.', '-')}.{v['region']}.compute.internal",
            "local-ipv4s": "\n".join(e["ips"]), "mac": e["mac"], "owner-id": v["account"],
            "security-group-ids": "\n".join(e["groups"]), "security-groups": "\n".join(e["group_names"]),
            "subnet-id": e["subnet_id"], "subnet-ipv4-cidr-block": e["subnet_cidr"],
            "vpc-id": e["vpc_id"], "vpc-ipv4-cidr-block": v["vpc_cidrs"][0],
            "vpc-ipv4-cidr-blocks": "\n".join(v["vpc_cidrs"]),
        }
        if e["prefixes"]:
            d["ipv4-prefix"] = "\n".join(e["prefixes"])
        _tree6(v, e, d)
        macs[e["mac"]] = d
    c = v["creds"]
    top = {"ipv6": v["ipv6"]} if v.get("ipv6") else {}
    return {**top,
        "ami-id": v["image_id"], "ami-launch-index": "0", "hostname": v["hostname"],
        "instance-id": v["instance_id"], "instance-type": v["instance_type"],
        "local-hostname": v["hostname"], "local-ipv4": v["local_ipv4"], "mac": v["mac"],
        "placement": {"availability-zone": v["az"], "availability-zone-id": v["az_id"], "region": v["region"]},
        "network": {"interfaces": {"macs": macs}},
        "services": {"domain": "amazonaws.com", "partition": "aws"},
        "iam": {
            "info": json.dumps({"Code": "Success", "LastUpdated": c["updated"],
                                "InstanceProfileArn": f"arn:aws:iam::{v['account']}:instance-profile/{ROLE}",
                                "InstanceProfileId": "AIPAVPCWORLDEXAMPLE00"}, indent=2),
            "security-credentials": {ROLE: json.dumps({
                "Code": "Success", "LastUpdated": c["updated"], "Type": "AWS-HMAC",
                "AccessKeyId": c["access_key_id"], "SecretAccessKey": c["secret_access_key"],
                "Token": c["token"], "Expiration": c["expiration"]}, indent=2)},
        },
    }


def _identity(v):
    return json.dumps({
        "accountId": v["account"], "architecture": "x86_64", "availabilityZone": v["az"],
        "imageId": v["image_id"], "instanceId": v["instance_id"], "instanceType": v["instance_type"],
        "pendingTime": v["launch_time"], "privateIp": v["local_ipv4"], "region": v["region"],
        "version": "2017-09-30"}, indent=2)


class Imds:
    """Token store plus request answering; the server binds it to a handler."""

    def __init__(self, world, views):
        self.world, self.views = world, views
        self.lock = threading.Lock()
        self.tokens = {}             # token -> (instance id, expiry)

    def instance_for(self, addr_text):
        import ipaddress
        try:
            a = int(ipaddress.IPv4Address(addr_text))
        except ValueError:
            return None
        with self.world.lock:
            for s in self.world.subnets.values():
                owner = s.used.get(a)
                if owner:
                    e = self.world.enis.get(owner)
                    if e and e.attachment:
                        return e.attachment.instance.id
        return None

    def put_token(self, inst_id, headers):
        if headers.get("X-Forwarded-For"):
            return 403, ""
        ttl = headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        if not ttl or not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return 400, ""
        tok = secrets.token_urlsafe(42)
        with self.lock:
            now = time.monotonic()
            self.tokens = {t: x for t, x in self.tokens.items() if x[1] > now}
            self.tokens[tok] = (inst_id, now + int(ttl))
        return 200, tok

    def token_ok(self, inst_id, tok):
        with self.lock:
            x = self.tokens.get(tok or "")
        return bool(x) and x[0] == inst_id and x[1] > time.monotonic()

    def get(self, inst_id, path):
        v = self.views.current(inst_id)
        if v is None:
            return 404, ""
        path = path.split("?", 1)[0]
        if path in ("/", "/latest", "/latest/"):
            return 200, "dynamic\nmeta-data"
        if path.rstrip("/") == "/latest/dynamic/instance-identity/document":
            return 200, _identity(v)
        if path.rstrip("/") == "/latest/dynamic":
            return 200, "instance-identity/"
        if path.rstrip("/") == "/latest/dynamic/instance-identity":
            return 200, "document"
        if not path.startswith("/latest/meta-data"):
            return 404, ""
        node = _tree(v)
        for part in [p for p in path[len("/latest/meta-data"):].split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                return 404, ""
            node = node[part]
        if isinstance(node, dict):
            return 200, "\n".join(k + "/" if isinstance(x, dict) else k for k, x in node.items())
        return 200, node


class ImdsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120          # idle keep-alive connections are closed, as EC2 does
    imds = None            # set on a subclass by the server

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, text, extra=None):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def do_PUT(self):
        self._drain()
        inst = self.imds.instance_for(self.client_address[0])
        if self.path.split("?")[0] != "/latest/api/token":
            return self._send(405 if inst else 404, "")
        if inst is None:
            return self._send(404, "")
        status, tok = self.imds.put_token(inst, self.headers)
        extra = {"X-aws-ec2-metadata-token-ttl-seconds": self.headers.get(
            "X-aws-ec2-metadata-token-ttl-seconds", "")} if status == 200 else None
        self._send(status, tok, extra)

    def do_GET(self):
        inst = self.imds.instance_for(self.client_address[0])
        if inst is None:
            return self._send(404, "")
        if not self.imds.token_ok(inst, self.headers.get("X-aws-ec2-metadata-token")):
            return self._send(401, "")
        status, text = self.imds.get(inst, self.path)
        self._send(status, text)

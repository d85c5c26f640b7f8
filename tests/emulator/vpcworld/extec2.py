"""External-EC2 mode: the world's IMDS, links and fabric follow another EC2 (moto, LocalStack).

`vpc-world up --ec2-endpoint moto` runs moto (the image's moto 5.2.1, its
WSGI app behind tests/cloud/moto_run.py's keep-alive bridge) inside this
process, listening on host loopback (port 0) and inside the fabric at the
EC2 address 192.0.2.10:80; `--ec2-endpoint http://127.0.0.1:4566` (a
LocalStack or moto_server already running on loopback) is reached through
a TCP relay: the fabric's 192.0.2.10:80 is forwarded to it. Only loopback
URLs are accepted, so traffic stays on loopback and in the world's
namespaces.

Bring-up uses the ordinary EC2 API there (botocore): CreateVpc, two subnets
(the VPC's first half, `nodes`, and third quarter, `pods`), the VPC's default
security group, and one RunInstances per node in the `nodes` subnet. Then a
poller thread calls DescribeNetworkInterfaces (filter vpc-id) every
POLL seconds, turns every ENI attached to one of the world's instances into
the fabric's desired links and routes (fabric.Fabric.apply, the same code as
the built-in mode) and publishes each instance's IMDS view (imds.Views,
served by imds.ImdsHandler) from that state, with no lag beyond the poll.

What this mode cannot model is left out, not faked: no latency, throttling
or fault control (those control routes answer 400), no IMDS lag. With the
in-process moto, GET /stats counts the calls the nodes made (those reaching
192.0.2.10) per action and HTTP status, and a call moto itself crashes on
(an unimplemented filter) is answered 500 InternalError, as moto_server and
LocalStack answer it, instead of a closed connection. moto hands
out addresses at random from the subnet, so two ENIs may get the same
address, or a subnet's reserved one; the poller reports such addresses in
/truth's `conflicts` (and the log) rather than routing them silently, and
`--unique-addresses` (moto in process only) makes moto redraw them.
"""

import ipaddress
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

from . import imds, netns
from .control import ControlHandler
from .fabric import EC2_IP, IMDS_IP, OUTSIDE_IP, Fabric
from .server import _Http, log
from .model import now_iso

POLL = 0.2
CLOUD = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "cloud"))


class _NoLag:
    @staticmethod
    def effect_delay(kind):
        return 0.0


class _NotModelled:
    """Stands in for latency/throttle/faults/ec2 stats: every use is a 400."""

    def __getattr__(self, name):
        def refuse(*a, **kw):
            raise ValueError("not modelled with --ec2-endpoint (the external EC2 has no such control)")
        return refuse


class _NoThrottle(_NotModelled):
    @staticmethod
    def state():
        return {"enabled": False, "throttled": {}}


class _Stats:
    """Per-action calls moto answered, by HTTP status (the in-process moto only)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}

    def count(self, action, status):
        with self.lock:
            a = self.calls.setdefault(action, {"calls": 0, "status": {}})
            a["calls"] += 1
            a["status"][str(status)] = a["status"].get(str(status), 0) + 1

    def stats_json(self):
        with self.lock:
            return json.loads(json.dumps(self.calls))


def _moto_handler(stats):
    """moto_run.Handler, counting actions and answering moto's own crashes with a 500 as
    moto_server (and LocalStack) do, instead of closing the connection unanswered."""
    sys.path.insert(0, CLOUD)
    import moto_run            # tests/cloud/moto_run.py: moto's app with keep-alive

    class Handler(moto_run.Handler):
        def environ(self, body):
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            self._action = (form.get("Action") or query.get("Action") or ["-"])[0]
            return super().environ(body)

        def send_response(self, code, message=None):
            if stats and getattr(self, "_action", None):
                stats.count(self._action, code)
            super().send_response(code, message)

        def run(self):
            self._action = None
            try:
                super().run()
            except Exception as e:
                log(f"moto failed on {self._action}: {type(e).__name__}: {e}")
                body = (f"<Response><Errors><Error><Code>InternalError</Code><Message>moto: {type(e).__name__}"
                        f"</Message></Error></Errors><RequestID>request-id</RequestID></Response>").encode()
                self.send_response(500)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = run

    return Handler


def _unique_addresses(nodes):
    """Make the in-process moto's random address picks skip what it already handed out.

    moto draws each address at random from the whole subnet (moto/ec2/utils.py
    random_private_ip), so two ENIs, or two addresses of one call, can get the
    same one, or a subnet's reserved one. This keeps moto's draws random but
    redraws an address it handed out before (never reused, even once released),
    a subnet's first four and last, and the next `nodes` (RunInstances hands
    primaries out in order from .4). Nothing else of moto changes."""
    from moto.ec2.models import elastic_network_interfaces as m
    orig, lock, given = m.random_private_ip, threading.Lock(), set()

    def pick(cidr=None, ipv6=False):
        if ipv6 or not cidr:
            return orig(cidr, ipv6)
        net = ipaddress.IPv4Network(cidr)
        base, last = int(net.network_address), int(net.broadcast_address)
        with lock:
            for _ in range(10000):
                ip = orig(cidr)
                a = _ip(ip)
                if a not in given and base + 4 + nodes <= a < last:
                    given.add(a)
                    return ip
        raise RuntimeError(f"no free address left in {cidr}")

    m.random_private_ip = pick


class _Imds(imds.Imds):
    def __init__(self, owner, views):
        super().__init__(None, views)
        self.owner = owner

    def instance_for(self, addr_text):
        return self.owner.owner_of.get(addr_text)


def _ip(text):
    return int(ipaddress.IPv4Address(text))


def _relay(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Relay:
    """Forwards TCP connections accepted on a socket (in the fabric) to host:port on loopback."""

    def __init__(self, sock, host, port):
        self.sock, self.host, self.port = sock, host, port
        self.stopping = False

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection((self.host, self.port), timeout=10)
                up.settimeout(None)
            except OSError as e:
                log(f"relay: cannot reach {self.host}:{self.port}: {e}")
                conn.close()
                continue
            for x, y in ((conn, up), (up, conn)):
                threading.Thread(target=_relay, args=(x, y), daemon=True).start()

    def stop(self):
        self.stopping = True
        self.sock.close()


class ExtServer:
    def __init__(self, directory, prefix, endpoint, nodes=2, instance_type="m5.large",
                 vpc_cidr="10.0.0.0/16", fast=False, region="us-west-2", seed=None, unique=False):
        self.dir, self.prefix, self.endpoint, self.fast = directory, prefix, endpoint, fast
        self.n_nodes, self.itype, self.vpc_cidr, self.region, self.seed = nodes, instance_type, vpc_cidr, region, seed
        self.unique = unique
        self.latency = self.faults = _NotModelled()
        self.throttle = _NoThrottle()
        self.stats = _Stats()
        self.ec2 = self.stats if endpoint == "moto" else _NotModelled()
        self.views = imds.Views(_NoLag())
        self.fabric = Fabric(prefix, log)
        self.fabric_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.stopping = False
        self.httpd, self.relay = [], None
        self.world_json = None
        self.owner_of = {}          # address text -> instance id (IMDS identity)
        self.serials = {}           # eni id -> fabric serial
        self.subnets = {}           # subnet id -> {"cidr", "az", "az_id"}
        self.group_names = {}
        self.instances = {}         # instance id -> {"name", "netns", "type", "image", "launch", ...}
        self.conflicts = []
        self.last_enis = []
        self.creds = {"access_key_id": "AKIAEXTERNALEC2TEST", "secret_access_key": "moto-ignores-signatures"}
        self.role_creds = {"access_key_id": "ASIAEXTERNALEC2TEST", "secret_access_key": secrets.token_urlsafe(30),
                           "token": secrets.token_urlsafe(96), "expiration": now_iso(time.time() + 6 * 3600),
                           "updated": now_iso()}

    # --- the external EC2 ----------------------------------------------------------
    def _client(self, url):
        import botocore.session
        from botocore.config import Config
        return botocore.session.get_session().create_client(
            "ec2", region_name=self.region, endpoint_url=url,
            aws_access_key_id=self.creds["access_key_id"], aws_secret_access_key=self.creds["secret_access_key"],
            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}, read_timeout=30,
                          connect_timeout=5))

    def _start_endpoint(self):
        """The host-loopback URL of the EC2 to follow; the fabric's 192.0.2.10:80 leads to it."""
        fab_sock = netns.listen_in(self.fabric.fab, EC2_IP, 80)
        if self.endpoint == "moto":
            if self.unique:
                _unique_addresses(self.n_nodes)
            loop = socket.create_server(("127.0.0.1", 0))
            self._serve(loop, _moto_handler(None))
            self._serve(fab_sock, _moto_handler(self.stats))    # counts the nodes' calls only
            url = f"http://127.0.0.1:{loop.getsockname()[1]}/"
            if self.seed is not None:   # moto picks addresses at random: make a run reproducible
                urllib.request.urlopen(urllib.request.Request(f"{url}moto-api/seed?a={self.seed}", data=b"",
                                                              method="POST"), timeout=10).read()
            return url
        u = urllib.parse.urlsplit(self.endpoint)
        host = u.hostname or ""
        try:
            loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except (OSError, ValueError):
            loopback = False
        if u.scheme != "http" or not loopback:
            raise ValueError(f"--ec2-endpoint must be 'moto' or an http:// URL on loopback, not {self.endpoint!r}")
        self.relay = Relay(fab_sock, host, u.port or 80)
        threading.Thread(target=self.relay.serve, name="relay", daemon=True).start()
        return f"http://{u.netloc}/"

    def _build_vpc(self):
        c = self.client
        vpc = ipaddress.IPv4Network(self.vpc_cidr)
        if not 16 <= vpc.prefixlen <= 26:
            raise ValueError("the VPC CIDR must be /16../26")
        self.vpc_id = c.create_vpc(CidrBlock=self.vpc_cidr)["Vpc"]["VpcId"]
        # nodes: the first half (moto picks addresses at random across a subnet, so a large one
        # keeps two ENIs from drawing the same address); pods: the third quarter
        quarters = list(vpc.subnets(new_prefix=vpc.prefixlen + 2))
        halves = list(vpc.subnets(new_prefix=vpc.prefixlen + 1))
        az = self.region + "a"
        made = []
        for q, role in ((halves[0], "nodes"), (quarters[2], "pods")):
            s = c.create_subnet(VpcId=self.vpc_id, CidrBlock=str(q), AvailabilityZone=az)["Subnet"]
            c.create_tags(Resources=[s["SubnetId"]], Tags=[{"Key": "Name", "Value": role}])
            made.append((s, role))
        self._refresh_subnets()
        groups = c.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])["SecurityGroups"]
        self.group_names = {g["GroupId"]: g["GroupName"] for g in groups}
        self.default_sg = next((g["GroupId"] for g in groups if g["GroupName"] == "default"), None)
        images = c.describe_images(Owners=["amazon"]).get("Images") or [{"ImageId": "ami-12c6146b"}]
        image = images[0]["ImageId"]
        for i in range(self.n_nodes):
            r = c.run_instances(ImageId=image, InstanceType=self.itype, MinCount=1, MaxCount=1,
                                SubnetId=made[0][0]["SubnetId"],
                                SecurityGroupIds=[self.default_sg] if self.default_sg else [],
                                TagSpecifications=[{"ResourceType": "instance",
                                                    "Tags": [{"Key": "Name", "Value": f"node{i}"}]}])
            inst = r["Instances"][0]
            self.instances[inst["InstanceId"]] = {
                "name": f"node{i}", "netns": self.fabric.node_ns(i), "type": self.itype, "image": image,
                "launch": time.time(), "subnet_id": inst["SubnetId"], "primary_ip": inst["PrivateIpAddress"]}
        return made

    def _refresh_subnets(self):
        for s in self.client.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])["Subnets"]:
            self.subnets[s["SubnetId"]] = {"cidr": s["CidrBlock"], "az": s["AvailabilityZone"],
                                           "az_id": s.get("AvailabilityZoneId", s["AvailabilityZone"])}

    def _describe_enis(self):
        return self.client.describe_network_interfaces(
            Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])["NetworkInterfaces"]

    # --- bring-up -------------------------------------------------------------------------
    def start(self):
        self.fabric.build([self.fabric.node_ns(i) for i in range(self.n_nodes)], [])
        self.url = self._start_endpoint()
        self.client = self._client(self.url)
        made = self._build_vpc()
        self.fabric.set_gateways(_ip(s["cidr"].split("/")[0]) + 1 for s in self.subnets.values())
        self._reconcile()
        imds_h = type("H", (imds.ImdsHandler,), {"imds": _Imds(self, self.views)})
        ctl_h = type("H", (ControlHandler,), {"server_obj": self})
        self._serve(netns.listen_in(self.fabric.fab, IMDS_IP, 80), imds_h)
        ctl = socket.create_server(("127.0.0.1", 0))
        self._serve(ctl, ctl_h)
        self.world_json = self._describe(made, ctl.getsockname()[1])
        threading.Thread(target=self._loop, name="poller", daemon=True).start()
        tmp = os.path.join(self.dir, "world.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.world_json, f, indent=2)
            f.write("\n")
        os.rename(tmp, os.path.join(self.dir, "world.json"))
        log(f"world {self.prefix} ready: {self.n_nodes} x {self.itype} following EC2 at {self.url}")

    def _serve(self, sock, handler):
        h = _Http(sock, handler)
        threading.Thread(target=h.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.httpd.append(h)
        return h

    def _describe(self, made, ctl_port):
        enis = {e["NetworkInterfaceId"]: e for e in self.last_enis}
        nodes = []
        for iid, i in self.instances.items():
            p = next(e for e in enis.values() if (e.get("Attachment") or {}).get("InstanceId") == iid
                     and e["Attachment"].get("DeviceIndex") == 0)
            net = ipaddress.IPv4Network(self.subnets[i["subnet_id"]]["cidr"])
            nodes.append({"name": i["name"], "netns": i["netns"], "instance_id": iid, "instance_type": i["type"],
                          "primary_ip": p["PrivateIpAddress"], "primary_mac": p["MacAddress"],
                          "primary_eni_id": p["NetworkInterfaceId"], "subnet_id": i["subnet_id"],
                          "prefix_length": net.prefixlen, "gateway": str(net.network_address + 1)})
        return {
            "prefix": self.prefix, "fast": self.fast, "server_pid": os.getpid(),
            "external_ec2": self.endpoint,
            "region": self.region, "availability_zone": self.region + "a", "account_id": self._account(),
            "ec2_endpoint": f"http://{EC2_IP}/",
            "ec2_endpoint_host": self.url,
            "imds_endpoint": f"http://{IMDS_IP}/",
            "control_endpoint": f"http://127.0.0.1:{ctl_port}/",
            "credentials": dict(self.creds),
            "instance_role": imds.ROLE,
            "vpc": {"id": self.vpc_id, "cidrs": self.vpc_cidrs},
            "security_group": self.default_sg,
            "subnets": [{"id": s["SubnetId"], "cidr": s["CidrBlock"], "availability_zone": s["AvailabilityZone"],
                         "gateway": str(ipaddress.IPv4Network(s["CidrBlock"]).network_address + 1), "role": role}
                        for s, role in made],
            "fabric_netns": self.fabric.fab,
            "outside": {"netns": self.fabric.out, "ip": OUTSIDE_IP},
            "nodes": nodes,
        }

    def _account(self):
        for e in self.last_enis:
            if e.get("OwnerId"):
                return e["OwnerId"]
        return "123456789012"

    # --- following the external EC2 --------------------------------------------------------
    def _loop(self):
        while not self.stop_event.wait(POLL if self.fast else 2 * POLL):
            if self.stopping:
                return
            try:
                self._reconcile()
            except Exception as e:      # the external EC2 may be briefly away; the log tells
                log(f"poll failed: {type(e).__name__}: {e}")

    def _reconcile(self):
        enis = self._describe_enis()
        vpc = self.client.describe_vpcs(VpcIds=[self.vpc_id])["Vpcs"][0]
        self.vpc_cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
                          if a.get("CidrBlockState", {}).get("State", "associated") == "associated"] \
            or [vpc["CidrBlock"]]
        if any(e["SubnetId"] not in self.subnets for e in enis):
            self._refresh_subnets()
        desired, views, owner_of, seen = {}, {}, {}, {}
        for e in enis:
            att = e.get("Attachment") or {}
            inst = self.instances.get(att.get("InstanceId"))
            if inst is None or att.get("Status") not in ("attached", "attaching", "detaching"):
                continue
            d = self._desired(e, att, inst)
            desired[e["NetworkInterfaceId"]] = d
            for a, _ in d["owned"]:
                seen.setdefault(a, []).append(e["NetworkInterfaceId"])
                owner_of[str(ipaddress.IPv4Address(a))] = att["InstanceId"]
        self.conflicts = self._conflicts(seen, desired)
        for c in self.conflicts:
            log(f"moto conflict: {c}")
        for iid, inst in self.instances.items():
            views[iid] = self._view(iid, inst, [e for e in enis if e["NetworkInterfaceId"] in desired
                                                and e["Attachment"]["InstanceId"] == iid])
        with self.fabric_lock:
            self.fabric.set_gateways(_ip(s["cidr"].split("/")[0]) + 1 for s in self.subnets.values())
            self.fabric.apply(desired)
        self.owner_of = owner_of
        self.last_enis = enis
        for iid, v in views.items():
            self.views.publish(iid, v, immediate=True)

    def _desired(self, e, att, inst):
        eid = e["NetworkInterfaceId"]
        serial = self.serials.setdefault(eid, len(self.serials) + 1)
        card, dev = att.get("NetworkCardIndex", 0), att["DeviceIndex"]
        net = ipaddress.IPv4Network(self.subnets[e["SubnetId"]]["cidr"])
        owned = {(_ip(a["PrivateIpAddress"]), 32) for a in e.get("PrivateIpAddresses", [])}
        owned |= {(_ip(p["Ipv4Prefix"].split("/")[0]), 28) for p in e.get("Ipv4Prefixes", [])}
        return {"serial": serial, "ns": inst["netns"], "ifname": f"eth{dev}" if card == 0 else f"c{card}eth{dev}",
                "mac": e["MacAddress"], "primary": _ip(e["PrivateIpAddress"]), "plen": net.prefixlen,
                "gw": int(net.network_address) + 1, "boot": dev == 0 and card == 0,
                "owned": owned | {(_ip(e["PrivateIpAddress"]), 32)}, "check": e.get("SourceDestCheck", True)}

    def _conflicts(self, seen, desired):
        out = []
        for a, owners in sorted(seen.items()):
            if len(owners) > 1:
                out.append(f"{ipaddress.IPv4Address(a)} is held by {len(owners)} ENIs: {', '.join(owners)}")
        for eid, d in desired.items():
            net = ipaddress.IPv4Network(f"{ipaddress.IPv4Address(d['gw'] - 1)}/{d['plen']}")
            reserved = {int(net.network_address) + k for k in range(4)} | {int(net.broadcast_address)}
            for a, _ in sorted(d["owned"]):
                if a in reserved:
                    out.append(f"{ipaddress.IPv4Address(a)} on {eid} is a reserved address of {net}")
        return out

    def _view(self, iid, inst, enis):
        out = []
        primary = None
        for e in sorted(enis, key=lambda e: (e["Attachment"].get("NetworkCardIndex", 0),
                                             e["Attachment"]["DeviceIndex"])):
            att = e["Attachment"]
            groups = [g["GroupId"] for g in e.get("Groups", [])]
            ips = [e["PrivateIpAddress"]] + [a["PrivateIpAddress"] for a in e.get("PrivateIpAddresses", [])
                                             if a["PrivateIpAddress"] != e["PrivateIpAddress"]]
            out.append({"mac": e["MacAddress"], "id": e["NetworkInterfaceId"], "device": att["DeviceIndex"],
                        "card": att.get("NetworkCardIndex", 0), "subnet_id": e["SubnetId"],
                        "subnet_cidr": self.subnets[e["SubnetId"]]["cidr"], "vpc_id": self.vpc_id,
                        "groups": groups, "group_names": [self.group_names.get(g, g) for g in groups],
                        "ips": ips, "prefixes": [p["Ipv4Prefix"] for p in e.get("Ipv4Prefixes", [])]})
            if att["DeviceIndex"] == 0 and att.get("NetworkCardIndex", 0) == 0:
                primary = e
        sub = self.subnets[inst["subnet_id"]]
        local = primary["PrivateIpAddress"] if primary else inst["primary_ip"]
        return {
            "instance_id": iid, "instance_type": inst["type"], "state": "running",
            "az": sub["az"], "az_id": sub["az_id"], "region": self.region, "account": self._account(),
            "image_id": inst["image"], "local_ipv4": local, "mac": primary["MacAddress"] if primary else "",
            "launch_time": now_iso(inst["launch"]),
            "hostname": f"ip-{local.replace('.', '-')}.{self.region}.compute.internal",
            "vpc_cidrs": self.vpc_cidrs, "enis": out, "creds": self.role_creds}

    # --- control ----------------------------------------------------------------------------
    def truth(self):
        enis = self._describe_enis()
        with self.fabric_lock:
            links, drops = self.fabric.links(), self.fabric.drops()
            outside_drops = self.fabric.outside_drops()
        out = []
        for e in enis:
            a = e.get("Attachment")
            out.append({
                "id": e["NetworkInterfaceId"], "subnet_id": e["SubnetId"], "status": e["Status"],
                "mac": e["MacAddress"], "description": e.get("Description", ""),
                "tags": {t["Key"]: t["Value"] for t in e.get("TagSet", [])},
                "primary_ip": e["PrivateIpAddress"],
                "secondary_ips": [x["PrivateIpAddress"] for x in e.get("PrivateIpAddresses", [])
                                  if not x.get("Primary") and x["PrivateIpAddress"] != e["PrivateIpAddress"]],
                "prefixes": [p["Ipv4Prefix"] for p in e.get("Ipv4Prefixes", [])],
                "source_dest_check": e.get("SourceDestCheck", True),
                "attachment": None if not a else {
                    "id": a.get("AttachmentId"), "instance_id": a.get("InstanceId"),
                    "device_index": a.get("DeviceIndex"), "network_card_index": a.get("NetworkCardIndex", 0),
                    "status": a.get("Status"), "delete_on_termination": a.get("DeleteOnTermination")},
                "link": links.get(e["NetworkInterfaceId"]), "drops": drops.get(e["NetworkInterfaceId"], 0)})
        return {
            "external_ec2": self.endpoint,
            "vpc": {"id": self.vpc_id, "cidrs": self.vpc_cidrs},
            "subnets": [{"id": k, "cidr": v["cidr"], "availability_zone": v["az"]} for k, v in self.subnets.items()],
            "instances": [{"id": iid, "node": i["name"], "netns": i["netns"], "type": i["type"]}
                          for iid, i in self.instances.items()],
            "enis": out,
            "conflicts": list(self.conflicts),
            "fabric": {"drops": drops, "drops_total": sum(drops.values()), "links": links,
                       "outside_drops": outside_drops},
        }

    def terminate(self, inst_id):
        r = self.client.terminate_instances(InstanceIds=[inst_id])["TerminatingInstances"][0]
        return {"instance_id": inst_id, "previous_state": r["PreviousState"]["Name"],
                "state": r["CurrentState"]["Name"]}

    def change_vpc_cidrs(self, add, remove):
        raise ValueError("not modelled with --ec2-endpoint: change the VPC at the external EC2")

    def add_subnet(self, cidr, az=None):
        s = self.client.create_subnet(VpcId=self.vpc_id, CidrBlock=cidr,
                                      AvailabilityZone=az or self.region + "a")["Subnet"]
        self._refresh_subnets()
        return {"id": s["SubnetId"], "cidr": s["CidrBlock"], "availability_zone": s["AvailabilityZone"],
                "gateway": str(ipaddress.IPv4Network(s["CidrBlock"]).network_address + 1)}

    def request_shutdown(self):
        threading.Timer(0.05, self.stop_event.set).start()
        return {"shutting_down": True}

    # --- teardown -------------------------------------------------------------------------------
    def stop(self):
        self.stopping = True
        if self.endpoint != "moto" and self.instances:     # leave a shared LocalStack as found, roughly
            try:
                self.client.terminate_instances(InstanceIds=list(self.instances))
            except Exception as e:
                log(f"terminate at shutdown failed: {e}")
        if self.relay:
            self.relay.stop()
        stoppers = [threading.Thread(target=h.shutdown) for h in self.httpd]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for h in self.httpd:
            h.server_close()
        with self.fabric_lock:
            gone = self.fabric.teardown()
        try:
            os.unlink(os.path.join(self.dir, "world.json"))
        except FileNotFoundError:
            pass
        log(f"world {self.prefix} down ({len(gone)} namespaces deleted)")


def serve(directory, prefix, endpoint, **kw):
    """Run an external-EC2 world in the foreground until SIGTERM/SIGINT or POST /shutdown."""
    s = ExtServer(directory, prefix, endpoint, **kw)
    signal.signal(signal.SIGTERM, lambda *_: s.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: s.stop_event.set())
    try:
        s.start()
    except BaseException as e:
        log(f"start failed: {type(e).__name__}: {e}")
        netns.delete_with_prefix(prefix)
        return 1
    while not s.stop_event.wait(1.0):
        pass
    s.stop()
    return 0

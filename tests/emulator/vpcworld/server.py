"""The world server: wires the model, the fabric, IMDS, EC2 and control together.

Threads: one HTTP server thread per listener (EC2 inside the fabric and on
host loopback, IMDS inside the fabric, control on loopback), each spawning a
thread per connection; and one world thread that runs timed effects
(attachments completing, detaches, terminations) in due order and, after any
change, reconciles the fabric (links, routes, nft) and then publishes the IMDS
views, so a change reaches the links before it reaches IMDS.

Locks: World.lock guards EC2 state; the condition `cond` guards the event
heap and the dirty flag and is never held while taking World.lock;
fabric_lock serialises nft/ip use between the world thread and truth dumps.
"""

import heapq
import ipaddress
import itertools
import json
import os
import secrets
import signal
import socket
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import imds, k8sapi, model6, netns
from .control import ControlHandler
from .ec2api import Drop, Ec2Api
from .fabric import EC2_IP, IMDS_IP, OUTSIDE_IP, OUTSIDE_IP6, OUTSIDE_NET, Fabric
from .faults import Faults, Latency, Throttle
from .instance_types import TYPES
from .model import Hooks, World, ip_str, new_id, now_iso


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, file=sys.stderr, flush=True)


class Ec2Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120          # idle keep-alive connections are closed, as EC2 does
    server_version, sys_version = "AmazonEC2", ""
    api = None             # set on a subclass by the server

    def log_message(self, fmt, *args):
        pass

    def _do(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path, _, query = self.path.partition("?")
        try:
            status, out = self.api.handle(self.command, path, query, self.headers, body)
        except Drop as d:
            if d.delay:
                time.sleep(d.delay)
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("Content-Type", "text/xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _do


class _Http(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock, handler):
        super().__init__(sock.getsockname(), handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock

    def get_request(self):
        conn, addr = self.socket.accept()
        # headers and body go out in two writes: without this, Nagle and
        # delayed ACKs add 40 ms to every keep-alive request
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


def _key(prefix, n):
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(n))


class Server(Hooks):
    def __init__(self, directory, prefix, nodes=2, instance_type="m5.large", vpc_cidr="10.0.0.0/16",
                 fast=False, region="us-west-2", ipv6=False, outside_ipv6=False):
        self.dir, self.prefix, self.fast = directory, prefix, fast
        self.ipv6, self.outside_ipv6 = ipv6, outside_ipv6
        self.n_nodes, self.itype, self.vpc_cidr, self.region = nodes, instance_type, vpc_cidr, region
        self.latency, self.throttle, self.faults = Latency(fast), Throttle(), Faults()
        self.views = imds.Views(self.latency)
        self.fabric = Fabric(prefix, log)
        self.fabric_lock = threading.Lock()
        self.cond = threading.Condition()
        self.events, self.seq, self.dirty = [], itertools.count(), True
        self.stopping = False
        self.stop_event = threading.Event()
        self.httpd = []
        self.world = None
        self.world_json = None
        expiry = now_iso(time.time() + 6 * 3600)
        self.creds = {"access_key_id": _key("AKIA", 16), "secret_access_key": secrets.token_urlsafe(30)}
        self.role_creds = {"access_key_id": _key("ASIA", 16), "secret_access_key": secrets.token_urlsafe(30),
                           "token": secrets.token_urlsafe(96), "expiration": expiry, "updated": now_iso()}

    # --- Hooks (called by the model under World.lock) -------------------------
    def schedule(self, kind, fn):
        due = time.monotonic() + self.latency.effect_delay(kind)
        with self.cond:
            heapq.heappush(self.events, (due, next(self.seq), fn))
            self.cond.notify()

    def changed(self, instance_id=None, eni=None):
        with self.cond:
            self.dirty = True
            self.cond.notify()

    # --- bring-up -----------------------------------------------------------------
    def start(self):
        if self.itype not in TYPES:
            raise ValueError(f"unknown instance type {self.itype}; known: {', '.join(TYPES)}")
        vpc = ipaddress.IPv4Network(self.vpc_cidr)
        reserved = ("169.254.0.0/16", "192.0.2.0/24", OUTSIDE_NET)      # IMDS, EC2, the outside
        if not 16 <= vpc.prefixlen <= 26 or any(vpc.overlaps(ipaddress.IPv4Network(r)) for r in reserved):
            raise ValueError(f"the VPC CIDR must be /16../26 and overlap none of {', '.join(reserved)}")
        w = self.world = World(self.vpc_cidr, self.region, hooks=self)
        quarters = list(vpc.subnets(new_prefix=vpc.prefixlen + 2))
        node_subnet = w.add_subnet(quarters[0])
        node_subnet.tags["Name"] = "nodes"
        pod_subnet = w.add_subnet(quarters[1])
        pod_subnet.tags["Name"] = "pods"
        for i in range(self.n_nodes):
            w.add_instance(self.itype, node_subnet, f"node{i}", self.fabric.node_ns(i))
        if self.ipv6:
            self._start6()
        t0 = time.monotonic()
        self.fabric.build([self.fabric.node_ns(i) for i in range(self.n_nodes)],
                          [s.gateway for s in w.subnets.values()])
        if self.ipv6:
            self.fabric.enable_ipv6([self.fabric.node_ns(i) for i in range(self.n_nodes)], outside=self.outside_ipv6)
        self._reconcile(immediate=True)
        log(f"fabric up in {time.monotonic() - t0:.3f}s")
        self.ec2 = Ec2Api(w, {self.creds["access_key_id"]: (self.creds["secret_access_key"], None),
                              self.role_creds["access_key_id"]: (self.role_creds["secret_access_key"],
                                                                 self.role_creds["token"])},
                          self.latency, self.throttle, self.faults)
        self.views_imds = imds.Imds(w, self.views)
        ec2_h = type("H", (Ec2Handler,), {"api": self.ec2})
        imds_h = type("H", (imds.ImdsHandler,), {"imds": self.views_imds})
        ctl_h = type("H", (ControlHandler,), {"server_obj": self})
        self._serve(netns.listen_in(self.fabric.fab, EC2_IP, 80), ec2_h)
        self._serve(netns.listen_in(self.fabric.fab, IMDS_IP, 80), imds_h)
        loop_ec2 = socket.create_server(("127.0.0.1", 0))
        ctl = socket.create_server(("127.0.0.1", 0))
        self._serve(loop_ec2, ec2_h)
        self._serve(ctl, ctl_h)
        self.k8s = k8sapi.K8sApi(self.dir, EC2_IP)       # the Kubernetes API on 192.0.2.10:443
        self.k8s.start(w, self._serve, self.fabric.fab, netns.listen_in)
        threading.Thread(target=self._loop, name="world", daemon=True).start()
        self.world_json = self._describe(node_subnet, pod_subnet, loop_ec2.getsockname()[1], ctl.getsockname()[1])
        if self.ipv6:
            self._describe6(self.world_json)
        self.world_json["kubernetes"] = self.k8s.describe()
        tmp = os.path.join(self.dir, "world.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.world_json, f, indent=2)
            f.write("\n")
        os.rename(tmp, os.path.join(self.dir, "world.json"))
        log(f"world {self.prefix} ready: {self.n_nodes} x {self.itype}")

    def _serve(self, sock, handler):
        h = _Http(sock, handler)
        threading.Thread(target=h.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.httpd.append(h)
        return h

    def _describe(self, node_subnet, pod_subnet, ec2_port, ctl_port):
        w = self.world
        nodes = []
        for i in w.instances.values():
            p = i.primary_eni
            nodes.append({"name": i.node_name, "netns": i.netns, "instance_id": i.id,
                          "instance_type": i.type.name, "primary_ip": ip_str(p.primary),
                          "primary_mac": p.mac, "primary_eni_id": p.id, "subnet_id": i.subnet.id,
                          "prefix_length": i.subnet.net.prefixlen, "gateway": ip_str(i.subnet.gateway),
                          "k8s_node_name": k8sapi.node_name(i, w.region)})
        return {
            "prefix": self.prefix, "fast": self.fast, "server_pid": os.getpid(),
            "region": w.region, "availability_zone": w.az, "account_id": w.account,
            "ec2_endpoint": f"http://{EC2_IP}/",
            "ec2_endpoint_host": f"http://127.0.0.1:{ec2_port}/",
            "imds_endpoint": f"http://{IMDS_IP}/",
            "control_endpoint": f"http://127.0.0.1:{ctl_port}/",
            "credentials": dict(self.creds),
            "instance_role": imds.ROLE,
            "vpc": {"id": w.vpc_id, "cidrs": [str(n) for _, n in w.vpc_cidrs]},
            "security_group": w.default_sg,
            "subnets": [{"id": s.id, "cidr": str(s.net), "availability_zone": s.az,
                         "gateway": ip_str(s.gateway), "role": role}
                        for s, role in ((node_subnet, "nodes"), (pod_subnet, "pods"))],
            "fabric_netns": self.fabric.fab,
            "outside": {"netns": self.fabric.out, "ip": OUTSIDE_IP,
                        **({"ip6": OUTSIDE_IP6} if self.outside_ipv6 else {})},
            "nodes": nodes,
        }

    # --- the world thread -------------------------------------------------------
    def _loop(self):
        while True:
            with self.cond:
                while not self.stopping and not self.dirty:
                    now = time.monotonic()
                    if self.events and self.events[0][0] <= now:
                        break
                    self.cond.wait(self.events[0][0] - now if self.events else None)
                if self.stopping:
                    return
                now = time.monotonic()
                due = []
                while self.events and self.events[0][0] <= now:
                    due.append(heapq.heappop(self.events)[2])
                self.dirty = False
            for fn in due:
                try:
                    with self.world.lock:
                        fn()
                except Exception as e:  # a broken effect must not stop the world
                    log(f"timed effect failed: {type(e).__name__}: {e}")
            try:
                self._reconcile()
            except Exception as e:      # keep the world alive; the log tells
                log(f"reconcile failed: {e}")

    def _reconcile(self, immediate=False):
        w = self.world
        with w.lock:
            desired = {}
            for e in w.enis.values():
                att = e.attachment
                if not att or att.status not in ("attached", "detaching"):
                    continue
                name = f"eth{att.device_index}" if att.card_index == 0 else f"c{att.card_index}eth{att.device_index}"
                desired[e.id] = {"serial": e.serial, "ns": att.instance.netns, "ifname": name, "mac": e.mac,
                                 "primary": e.primary, "plen": e.subnet.net.prefixlen, "gw": e.subnet.gateway,
                                 "boot": att.device_index == 0 and att.card_index == 0,
                                 "owned": set(e.owned()), "check": e.source_dest_check,
                                 "owned6": model6.owned6(e), "addr6": e.ipv6s[0] if e.ipv6s else None}
            gateways = [s.gateway for s in w.subnets.values()]
            views = {i.id: imds.view(w, i, self.role_creds) for i in w.instances.values()}
        with self.fabric_lock:
            self.fabric.set_gateways(gateways)
            done = self.fabric.apply(desired)
        if not done:                    # a timed-out batch: the world thread tries again
            self.changed()
        for iid, v in views.items():
            self.views.publish(iid, v, immediate)

    # --- control operations ---------------------------------------------------------
    def truth(self):
        with self.fabric_lock:
            drops, links = self.fabric.drops(), self.fabric.links()
            outside_drops = self.fabric.outside_drops()
        w = self.world
        with w.lock:
            enis = []
            for e in w.enis.values():
                a = e.attachment
                enis.append({
                    "id": e.id, "subnet_id": e.subnet.id, "status": e.status, "mac": e.mac,
                    "description": e.description, "tags": dict(e.tags),
                    "primary_ip": ip_str(e.primary), "secondary_ips": [ip_str(x) for x in e.secondaries],
                    "prefixes": [f"{ip_str(p)}/28" for p in e.prefixes],
                    "source_dest_check": e.source_dest_check, "groups": list(e.groups),
                    "attachment": None if a is None else {
                        "id": a.id, "instance_id": a.instance.id, "device_index": a.device_index,
                        "network_card_index": a.card_index, "status": a.status,
                        "delete_on_termination": a.delete_on_termination},
                    "link": links.get(e.id), "drops": drops.get(e.id, 0)})
            instances = []
            for i in w.instances.values():
                att = i.enis()
                instances.append({
                    "id": i.id, "node": i.node_name, "netns": i.netns, "type": i.type.name, "state": i.state,
                    "primary_ip": ip_str(i.primary_eni.primary),
                    "enis": [e.id for e in att],
                    "addresses": [ip_str(a) for e in att for a in [e.primary] + e.secondaries],
                    "prefixes": [f"{ip_str(p)}/28" for e in att for p in e.prefixes]})
            out = {
                "vpc": {"id": w.vpc_id, "cidrs": [str(n) for _, n in w.vpc_cidrs]},
                "subnets": [{"id": s.id, "cidr": str(s.net), "availability_zone": s.az,
                             "available_ip_address_count": s.available, "used": len(s.used),
                             "tags": dict(s.tags)} for s in w.subnets.values()],
                "instances": instances,
                "enis": enis,
                "fabric": {"drops": drops, "drops_total": sum(drops.values()), "links": links,
                           "outside_drops": outside_drops},
                "api": self.ec2.stats_json(),
            }
            self._truth6(out)
            return out

    def terminate(self, inst_id):
        with self.world.lock:
            inst = self.world.instance(inst_id)
            prev = self.world.terminate(inst)
            return {"instance_id": inst.id, "previous_state": prev, "state": inst.state}

    def change_vpc_cidrs(self, add, remove):
        with self.world.lock:
            for c in add:
                self.world.add_vpc_cidr(c)
            for c in remove:
                self.world.remove_vpc_cidr(c)
            return {"cidrs": [str(n) for _, n in self.world.vpc_cidrs]}

    def add_subnet(self, cidr, az=None, tags=None, ipv6=True):
        with self.world.lock:
            s = self.world.add_subnet(cidr, az)
            if ipv6:
                model6.add_subnet_block(self.world, s)     # a no-op unless the VPC has IPv6
            s.tags.update({str(k): str(v) for k, v in (tags or {}).items()})
            return self._subnet_view(s)

    def add_security_group(self, name):
        """A security group of the VPC, for ENIs that name it (custom networking's ENIConfig)."""
        with self.world.lock:
            sg = new_id("sg")
            self.world.groups[sg] = str(name)
            return {"id": sg, "name": str(name)}

    def tag_subnet(self, subnet_id, tags):
        with self.world.lock:
            s = self.world.subnet(subnet_id)
            s.tags.update({str(k): str(v) for k, v in tags.items()})
            return self._subnet_view(s)

    def reserve_in_subnet(self, subnet_id, leave):
        """Take a subnet's free addresses (owner "reserved") until `leave` are left."""
        with self.world.lock:
            s = self.world.subnet(subnet_id)
            s.alloc_ips(max(0, s.available - int(leave)), "reserved")
            return self._subnet_view(s)

    def _subnet_view(self, s):
        return {"id": s.id, "cidr": str(s.net), "availability_zone": s.az, "gateway": ip_str(s.gateway),
                "available_ip_address_count": s.available, "tags": dict(s.tags),
                **({"ipv6_cidr": str(s.net6)} if s.net6 else {})}

    # --- IPv6 (model6.py) -------------------------------------------------------------
    def _start6(self):
        """The VPC's /56, a /64 per subnet, one IPv6 address on each node's primary ENI (as EKS IPv6 nodes)."""
        w = self.world
        model6.enable(w)
        for inst in w.instances.values():
            model6.assign(w, inst.primary_eni, count=1)

    def _describe6(self, out):
        w = self.world
        out["ipv6"] = True
        out["vpc"]["ipv6_cidrs"] = [str(n) for _, n in w.ipv6_cidrs]
        for sj in out["subnets"]:
            sj["ipv6_cidr"] = str(w.subnets[sj["id"]].net6)
        for nj in out["nodes"]:
            nj["primary_ipv6"] = model6.ip6_str(w.instances[nj["instance_id"]].primary_eni.ipv6s[0])

    def _truth6(self, out):
        """Add the IPv6 side to a truth dump (under the world lock)."""
        w = self.world
        if not w.ipv6_cidrs:
            return
        out["vpc"]["ipv6_cidrs"] = [str(n) for _, n in w.ipv6_cidrs]
        for sj in out["subnets"]:
            net6 = w.subnets[sj["id"]].net6
            sj["ipv6_cidr"] = str(net6) if net6 else None
        for ej in out["enis"]:
            e = w.enis[ej["id"]]
            ej["ipv6_addresses"] = [model6.ip6_str(a) for a in e.ipv6s]
            ej["ipv6_prefixes"] = [model6.prefix6_str(p) for p in e.prefixes6]
        for ij in out["instances"]:
            att = w.instances[ij["id"]].enis()
            ij["ipv6_addresses"] = [model6.ip6_str(a) for e in att for a in e.ipv6s]
            ij["ipv6_prefixes"] = [model6.prefix6_str(p) for e in att for p in e.prefixes6]

    def request_shutdown(self):
        threading.Timer(0.05, self.stop_event.set).start()
        return {"shutting_down": True}

    # --- teardown -------------------------------------------------------------------
    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify()
        stoppers = [threading.Thread(target=h.shutdown) for h in self.httpd]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        for h in self.httpd:
            h.server_close()
        with self.fabric_lock:
            gone = self.fabric.teardown()
        for name in ("world.json",):
            try:
                os.unlink(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        log(f"world {self.prefix} down ({len(gone)} namespaces deleted)")


def serve(directory, prefix, **kw):
    """Run a world in the foreground until SIGTERM/SIGINT or POST /shutdown."""
    s = Server(directory, prefix, **kw)
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

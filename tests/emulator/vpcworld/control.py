"""The control API: JSON over HTTP on loopback, for tests to steer and inspect a world.

  GET  /world                 world.json as served
  GET  /truth                 EC2 truth: VPC, subnets, instances, ENIs with
                              addresses, prefixes, attachments, links and
                              per-ENI source/dest-check drops; API stats
  GET  /stats                 per-action calls and error codes, throttled counts
  GET|POST /latency           {"api": {"Action"|"*": s|[lo,hi]}, "attach": .., "detach": .., "imds_lag": ..}
  GET|POST /throttle          {"enabled": bool, "scale": x, "reset": true,
                               "force": {"<category>"|"*": N|"always"|0}}
  GET|POST|DELETE /faults     POST {"action", "kind": error|timeout|lost, "status",
                               "code", "message", "count", "probability", "seconds"}
  POST /terminate             {"instance_id"} (as TerminateInstances, unthrottled)
  POST /vpc-cidrs             {"add": [cidr..], "remove": [cidr..]}
  POST /subnets               {"cidr", "az"?, "tags"?: {key: value}, "ipv6"?: false} -> the new subnet
                              (in an IPv6 world it gets the next /64 unless "ipv6" is false)
  POST /subnets/tags          {"subnet_id", "tags": {key: value}}: add or change tags
  POST /security-groups       {"name"} -> {"id", "name"}: a security group of the VPC
  POST /subnets/reserve       {"subnet_id", "leave"?: n}: take its free addresses but n
  POST /shutdown              tear the world down (as `vpc-world down`)

Errors are {"error": "..."} with 400 (bad input) or 404 (no such path).
"""

import json
from http.server import BaseHTTPRequestHandler

from .model import Ec2Error


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120          # idle keep-alive connections are closed, as EC2 does
    server_obj = None      # the Server, set on a subclass

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, obj):
        body = (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw.strip() else {}

    def _dispatch(self, method):
        s = self.server_obj
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes = {
            ("GET", "/world"): lambda b: s.world_json,
            ("GET", "/truth"): lambda b: s.truth(),
            ("GET", "/stats"): lambda b: {"api": s.ec2.stats_json(), "throttled": s.throttle.state()["throttled"]},
            ("GET", "/latency"): lambda b: s.latency.state(),
            ("POST", "/latency"): lambda b: (s.latency.configure(b), s.latency.state())[1],
            ("GET", "/throttle"): lambda b: s.throttle.state(),
            ("POST", "/throttle"): lambda b: (s.throttle.configure(b), s.throttle.state())[1],
            ("GET", "/faults"): lambda b: s.faults.state(),
            ("POST", "/faults"): lambda b: s.faults.add(b),
            ("DELETE", "/faults"): lambda b: (s.faults.clear(), [])[1],
            ("POST", "/terminate"): lambda b: s.terminate(b["instance_id"]),
            ("POST", "/vpc-cidrs"): lambda b: s.change_vpc_cidrs(b.get("add", []), b.get("remove", [])),
            ("POST", "/subnets"): lambda b: s.add_subnet(b["cidr"], b.get("az"), b.get("tags"),
                                                         b.get("ipv6", True)),
            ("POST", "/subnets/tags"): lambda b: s.tag_subnet(b["subnet_id"], b["tags"]),
            ("POST", "/security-groups"): lambda b: s.add_security_group(b["name"]),
            ("POST", "/subnets/reserve"): lambda b: s.reserve_in_subnet(b["subnet_id"], b.get("leave", 0)),
            ("POST", "/shutdown"): lambda b: s.request_shutdown(),
        }
        fn = routes.get((method, path))
        if fn is None:
            self._body()
            return self._reply(404, {"error": f"no route {method} {path}"})
        try:
            return self._reply(200, fn(self._body()))
        except Ec2Error as e:
            return self._reply(400, {"error": e.message, "code": e.code})
        except (KeyError, ValueError, TypeError) as e:
            return self._reply(400, {"error": f"{type(e).__name__}: {e}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

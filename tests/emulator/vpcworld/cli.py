"""vpc-world: bring an emulated VPC up and down, and talk to its control API.

  vpc-world up --dir DIR [--nodes N] [--instance-type T] [--vpc-cidr C] [--fast] [--ipv6 [--outside-ipv6]] [--timeout S]
               [--ec2-endpoint moto|http://127.0.0.1:PORT [--seed N] [--unique-addresses]]
      Records a run-specific prefix in DIR/prefix first, starts the server
      (`vpc-world serve`, its own session, log in DIR/server.log, PID in
      DIR/server.pid) and returns once DIR/world.json exists. If the server
      dies or times out, everything carrying the prefix is removed. --ipv6:
      the VPC gets an IPv6 /56, each subnet a /64, each node's primary ENI
      one IPv6 address (model6.py); not with --ec2-endpoint. --outside-ipv6
      (with --ipv6): the outside host gets an IPv6 address too (fabric.py).
  vpc-world down --dir DIR
      Stops the server (SIGTERM, then SIGKILL) and deletes every namespace
      carrying the recorded prefix, which takes every veth with it; works
      after a killed `up` or a killed server too. Idempotent.
  vpc-world ctl --dir DIR METHOD PATH [JSON]
      One control API call, e.g. `ctl --dir d GET /truth`.
  vpc-world exec --dir DIR NODE -- COMMAND...
      Run a command inside node NODE (index or name) as a daemon would run
      there: in its namespace, with AWS_ENDPOINT_URL_EC2 set to the world's
      endpoint (region and credentials come from IMDS), and as a pod with a
      service account: KUBERNETES_SERVICE_HOST/_PORT, MY_NODE_NAME, and the
      token and CA at /var/run/secrets/kubernetes.io/serviceaccount in a
      private mount namespace (k8sapi.exec_prefix; the machine's /run is
      never written to).
"""

import argparse
import json
import os
import secrets
import signal
import string
import subprocess
import sys
import time
import urllib.request

from . import k8sapi, netns

SCRIPT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "vpc-world"))


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _is_ours(pid, directory):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    return b"serve" in args and directory.encode() in args


def _pick_prefix():
    existing = netns.list_netns()
    for _ in range(100):
        p = "vw" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(3))
        if not any(n.startswith(p + "-") for n in existing):
            return p
    raise RuntimeError("no free namespace prefix")


def _stop_server(directory):
    pid = _read(os.path.join(directory, "server.pid"))
    if not pid or not pid.isdigit() or not _alive(int(pid)) or not _is_ours(int(pid), directory):
        return
    pid = int(pid)
    os.kill(pid, signal.SIGTERM)
    for sig, wait in ((None, 5.0), (signal.SIGKILL, 2.0)):
        if sig:
            os.kill(pid, sig)
        end = time.monotonic() + wait
        while time.monotonic() < end and _alive(pid):
            time.sleep(0.02)
        if not _alive(pid):
            return


def down(directory):
    directory = os.path.abspath(directory)
    _stop_server(directory)
    prefix = _read(os.path.join(directory, "prefix"))
    left = []
    if prefix:
        netns.delete_with_prefix(prefix)
        left = [n for n in netns.list_netns() if n.startswith(prefix + "-")]
    for name in ("world.json", "world.json.tmp", "server.pid", "prefix"):
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    if left:
        print(f"vpc-world down: namespaces left behind: {' '.join(left)}", file=sys.stderr)
        return 1
    return 0


def up(a):
    directory = os.path.abspath(a.dir)
    os.makedirs(directory, exist_ok=True)
    pid = _read(os.path.join(directory, "server.pid"))
    if pid and pid.isdigit() and _alive(int(pid)) and _is_ours(int(pid), directory):
        print(f"vpc-world up: a world is already up in {directory} (pid {pid})", file=sys.stderr)
        return 1
    down(directory)                      # leftovers of an earlier, killed run
    prefix = _pick_prefix()
    with open(os.path.join(directory, "prefix"), "w") as f:
        f.write(prefix + "\n")
    args = [sys.executable, SCRIPT, "serve", "--dir", directory, "--prefix", prefix,
            "--nodes", str(a.nodes), "--instance-type", a.instance_type, "--vpc-cidr", a.vpc_cidr,
            "--region", a.region] + (["--fast"] if a.fast else []) + (["--ipv6"] if a.ipv6 else []) \
        + (["--outside-ipv6"] if a.outside_ipv6 else [])
    if a.ec2_endpoint:
        args += ["--ec2-endpoint", a.ec2_endpoint] + (["--seed", str(a.seed)] if a.seed is not None else []) \
            + (["--unique-addresses"] if a.unique_addresses else [])
    with open(os.path.join(directory, "server.log"), "a") as logf:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True)
    with open(os.path.join(directory, "server.pid"), "w") as f:
        f.write(f"{proc.pid}\n")
    world = os.path.join(directory, "world.json")
    end = time.monotonic() + (a.timeout or (90.0 if a.ec2_endpoint else 30.0))
    try:
        while time.monotonic() < end:
            if os.path.exists(world):
                print(world)
                return 0
            if proc.poll() is not None:
                break
            time.sleep(0.01)
    except KeyboardInterrupt:
        pass
    log = _read(os.path.join(directory, "server.log")) or ""
    print("vpc-world up: the world did not come up; server log tail:\n" + "\n".join(log.splitlines()[-15:]),
          file=sys.stderr)
    down(directory)
    return 1


def ctl(a):
    w = json.load(open(os.path.join(a.dir, "world.json")))
    data = a.json.encode() if a.json else None
    req = urllib.request.Request(w["control_endpoint"].rstrip("/") + a.path, data=data, method=a.method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            sys.stdout.write(r.read().decode())
            return 0
    except urllib.error.HTTPError as e:
        sys.stdout.write(e.read().decode())
        return 1


def exec_in_node(a):
    w = json.load(open(os.path.join(a.dir, "world.json")))
    nodes = w["nodes"]
    node = next((n for i, n in enumerate(nodes) if a.node in (str(i), n["name"], n["instance_id"])), None)
    if node is None:
        print(f"vpc-world exec: no node {a.node!r}", file=sys.stderr)
        return 2
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        print("vpc-world exec: no command", file=sys.stderr)
        return 2
    mount_ns, k8s_env = k8sapi.exec_prefix(w, node)
    env = ["env", f"AWS_ENDPOINT_URL_EC2={w['ec2_endpoint']}"] + k8s_env
    os.execvp("ip", ["ip", "netns", "exec", node["netns"]] + mount_ns + env + cmd)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="vpc-world", description="An emulated AWS VPC in network namespaces.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True)
        p.add_argument("--nodes", type=int, default=2)
        p.add_argument("--instance-type", default="m5.large")
        p.add_argument("--vpc-cidr", default="10.0.0.0/16")
        p.add_argument("--region", default="us-west-2")
        p.add_argument("--fast", action="store_true", help="near-zero latencies and IMDS lag")
        p.add_argument("--ipv6", action="store_true", help="an IPv6 /56 for the VPC, a /64 per subnet, "
                                                          "an IPv6 address on each node's primary ENI")
        p.add_argument("--outside-ipv6", action="store_true",
                       help="with --ipv6: the outside host gets an IPv6 address too, reachable from nodes' primary "
                            "IPv6 addresses only (IPv6 egress of IPv4 pods)")
        p.add_argument("--ec2-endpoint", help="follow an external EC2: 'moto' (run here) or a loopback URL "
                                              "(LocalStack, moto_server); see extec2.py")
        p.add_argument("--seed", type=int, help="with --ec2-endpoint moto: seed moto's address picks")
        p.add_argument("--unique-addresses", action="store_true",
                       help="with --ec2-endpoint moto: moto redraws an address it handed out or a reserved one")
        if name == "up":
            p.add_argument("--timeout", type=float, help="seconds to wait (30; 90 with --ec2-endpoint)")
        else:
            p.add_argument("--prefix", required=True)
    p = sub.add_parser("down")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("ctl")
    p.add_argument("--dir", required=True)
    p.add_argument("method", choices=["GET", "POST", "DELETE"])
    p.add_argument("path")
    p.add_argument("json", nargs="?")
    p = sub.add_parser("exec")
    p.add_argument("--dir", required=True)
    p.add_argument("node")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    if a.cmd == "up":
        return up(a)
    if a.cmd == "down":
        return down(a.dir)
    if a.cmd == "ctl":
        return ctl(a)
    if a.cmd == "exec":
        return exec_in_node(a)
    # 512: the fleet benchmark's scale (scripts/bench-fleet); the nodes subnet
    # (a quarter of a /16) holds 16,379 addresses, about 30 per node at 512.
    if not 1 <= a.nodes <= 512:
        print("vpc-world: --nodes must be 1..512", file=sys.stderr)
        return 2
    if a.outside_ipv6 and not a.ipv6:
        print("vpc-world: --outside-ipv6 needs --ipv6", file=sys.stderr)
        return 2
    if a.ec2_endpoint and a.ipv6:
        print("vpc-world: --ipv6 is not supported with --ec2-endpoint", file=sys.stderr)
        return 2
    if a.ec2_endpoint:
        from .extec2 import serve as serve_ext
        return serve_ext(os.path.abspath(a.dir), a.prefix, a.ec2_endpoint, nodes=a.nodes,
                         instance_type=a.instance_type, vpc_cidr=a.vpc_cidr, fast=a.fast, region=a.region,
                         seed=a.seed, unique=a.unique_addresses)
    from .server import serve
    return serve(os.path.abspath(a.dir), a.prefix, nodes=a.nodes, instance_type=a.instance_type,
                 vpc_cidr=a.vpc_cidr, fast=a.fast, region=a.region, ipv6=a.ipv6, outside_ipv6=a.outside_ipv6)

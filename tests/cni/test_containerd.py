"""vpc-cni under Debian's containerd, in a node of the emulated VPC. TAP on stdout.

One world with one node; vpc-ipamd runs in the node (tests/daemon/ipamd.py)
and containerd runs in the node's network namespace with a vpc-cni conflist
(tests/cni/ctrd.py: a private mount namespace, everything under a temp dir,
a locally built pause image). Checks:

- `ctr run --cni`, two containers: each one's eth0 holds the address the
  daemon lists for it ("default-<name>"), with vpc-cni's routes, and one
  pings the other; killing the tasks makes ctr run DEL (empty CNI_NETNS,
  prevResult) and the addresses, veths and rules are gone;
- the CRI path (RunPodSandbox, PodSandboxStatus, StopPodSandbox,
  RemovePodSandbox) through tests/cni/cri_client.py: the sandbox is READY
  with the daemon's address, K8S_POD_* reach the daemon, DEL runs twice
  (the second with an empty CNI_NETNS and no prevResult) and both succeed;
- hostPort: a sandbox with a port mapping, through the conflist the
  DaemonSet deploys (scripts/deploy/10-vpc-cni.conflist: vpc-cni, then
  Debian's portmap with "snat": true, then bandwidth): a listener in the pod
  answers on the node's address and on 127.0.0.1 at the host port, from the
  node; before RunPodSandbox and after StopPodSandbox that port refuses;
- bandwidth: a sandbox with the kubernetes.io/{ingress,egress}-bandwidth
  annotations gets the bandwidth plugin's tbf on its host veth and an ifb
  for its egress, found from vpc-cni's result (interfaces with sandbox);
  both go with the sandbox.

Both paths use the deployed conflist (ctr finds the chained plugins in
/usr/lib/cni, the CRI plugin in its bin_dir); portmap's iptables rules and
bandwidth's qdiscs land in the node's namespace, which the world deletes.

When containerd cannot run here every case SKIPs with the reason.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, HERE)

import ctrd  # noqa: E402
from ipamd import Daemon, harness, wait_for  # noqa: E402

CNI = os.environ.get("VPC_CNI", "")
SYS_PYTHON = "/usr/bin/python3"         # Debian's, where python3-grpcio lives
CRI_CLIENT = os.path.join(HERE, "cri_client.py")
DEPLOYED = os.path.join(HERE, "..", "..", "scripts", "deploy", "10-vpc-cni.conflist")


class ChainedContainerd(ctrd.Containerd):
    """ctrd.Containerd with the DaemonSet's conflist (the template filled in as
    the entrypoint does, the plugin's log in the test's dir, and bandwidth
    after portmap as ENABLE_BANDWIDTH_PLUGIN=true adds it: test_entrypoint_ipamd
    checks that entry) and portmap and bandwidth beside the vpc-cni wrapper in
    the CRI plugin's bin_dir."""

    def __init__(self, workdir, node_ns, plugin, plugin_conf, socket):
        super().__init__(workdir, node_ns, plugin, plugin_conf)
        self.socket = socket

    def _files(self):
        super()._files()
        for plugin in ("portmap", "bandwidth"):
            os.symlink("/usr/lib/cni/" + plugin, os.path.join(self.d, "cni-bin", plugin))
        with open(DEPLOYED) as f:
            conf = json.loads(f.read().replace("@VPC_IPAM_SOCKET@", self.socket).replace("@VETH_PREFIX@", "eni"))
        assert [p["type"] for p in conf["plugins"]] == ["vpc-cni", "portmap"], conf
        conf["plugins"][0].update(self.plugin_conf)
        conf["plugins"].append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
        with open(os.path.join(self.d, "cni-conf", "10-vpc.conflist"), "w") as f:
            json.dump(conf, f)


class Env:
    """The world, vpc-ipamd in node 0 and containerd beside it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vpc-ctrd-")
        self.w = self.d = self.c = None
        try:
            self.w = harness.WorldFixture(nodes=1)
            self.ns = self.w.node_ns(0)
            self.d = Daemon(self.w, 0).start()
            wait_for(lambda: self.d.pool()["available"] >= 3, timeout=30, what="a warm pool")
            image = ctrd.build_pause_image(self.dir)
            conf = {"socket": self.d.sock, "logFile": os.path.join(self.dir, "vpc-cni.log"), "logLevel": "info"}
            self.c = ChainedContainerd(self.dir, self.ns, CNI, conf, self.d.sock).start(image)
        except BaseException:
            self.close()
            raise

    def pods(self):
        return {p["container_id"]: p for p in self.d.call({"op": "pods"})["pods"]}

    def node(self, *argv):
        return subprocess.run(["ip", "netns", "exec", self.ns] + list(argv), capture_output=True, text=True)

    def host_state(self):
        links = json.loads(self.node("ip", "-j", "link", "show").stdout)
        veths = [x["ifname"] for x in links if x["ifname"].startswith("eni")]
        rules = [r for r in self.node("ip", "rule", "show").stdout.splitlines() if r.startswith(("512:", "1536:"))]
        return veths, rules

    def close(self):
        if self.c:
            self.c.stop()
        if self.d:
            self.d.stop()
        if self.w:
            self.w.down()
        shutil.rmtree(self.dir, ignore_errors=True)


ENV = None


def env():
    global ENV
    why = ctrd.why_not()
    if why:
        raise harness.Skip(why)
    if ENV is None:
        ENV = Env()
    return ENV


def pod_addr(enter):
    out = subprocess.run(enter + ["ip", "-j", "-4", "addr", "show", "dev", "eth0"],
                         capture_output=True, text=True)
    info = json.loads(out.stdout or "[]")
    return [a["local"] + "/" + str(a["prefixlen"]) for i in info for a in i["addr_info"]]


def pod_routes(enter):
    return subprocess.run(enter + ["ip", "-4", "route", "show"], capture_output=True,
                          text=True).stdout


def test_ctr_run_cni_gets_and_releases_a_vpc_address():
    """Two containers by `ctr run --cni`: each gets a VPC address, they reach
    each other, and stopping them returns both addresses."""
    e = env()
    calls0 = len(e.c.calls())
    names = ("c1", "c2")
    logs = {n: open(os.path.join(e.dir, f"ctr-{n}.log"), "w") for n in names}
    runs = {n: e.c.ctr_bg("run", "--cni", "--rm", ctrd.IMAGE, n, log=logs[n]) for n in names}
    pids, ips = {}, {}
    try:
        for n in names:
            wait_for(lambda: runs[n].poll() is None and e.c.task_pid(n), timeout=30, what=f"task {n} running")
            pids[n] = e.c.task_pid(n)
            wait_for(lambda: f"default-{n}" in e.pods(), timeout=10, what=f"the daemon holding default-{n}")
            ips[n] = e.pods()[f"default-{n}"]["ip"]
            enter = ["nsenter", "-t", str(pids[n]), "-n"]
            assert pod_addr(enter) == [ips[n] + "/32"], (n, pod_addr(enter), ips[n])
            routes = pod_routes(enter)
            assert "default via 169.254.1.1 dev eth0" in routes and "169.254.1.1 dev eth0 scope link" in routes, \
                routes
        veths, rules = e.host_state()
        assert len(veths) == 2 and all(any(f"to {ip} lookup main" in r for r in rules) for ip in ips.values()), \
            (veths, rules)
        assert e.d.pool()["assigned"] == 2
        ping = subprocess.run(["nsenter", "-t", str(pids["c1"]), "-n", "ping", "-c", "2", "-i", "0.2", "-W", "2",
                               "-q", ips["c2"]], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        for n in names:
            e.c.ctr("tasks", "kill", n)
            assert runs[n].wait(timeout=30) == 0, open(logs[n].name).read()
    finally:
        for n in names:
            if runs[n].poll() is None:
                e.c.ctr("tasks", "kill", "-s", "KILL", n, check=False)
                runs[n].wait(timeout=30)
            logs[n].close()
    calls = sorted(e.c.calls()[calls0:])
    want = sorted([f"ADD id=default-{n} netns=/proc/{pids[n]}/ns/net prev=no" for n in names] +
                  [f"DEL id=default-{n} netns= prev=yes" for n in names])
    assert calls == want, calls
    assert not any(f"default-{n}" in e.pods() for n in names), e.pods()
    assert e.d.pool()["assigned"] == 0, e.d.pool()
    # vpc-ipamd deletes the DEL'd veths on its own thread, right after answering
    wait_for(lambda: e.host_state() == ([], []), timeout=5, what=f"no veth or rule left: {e.host_state()}")
    left = e.c.ctr("containers", "ls", "-q").stdout.split()
    assert not set(names) & set(left), left


def cri(*args):
    p = subprocess.run([SYS_PYTHON, CRI_CLIENT, os.path.join(ENV.dir, "containerd.sock")] + list(args),
                       capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout) if p.stdout.strip() else {"error": "no output", "msg": p.stderr[-2000:]}
    assert p.returncode == 0, (args, out)
    return out


def test_cri_sandbox_run_stop_remove():
    e = env()
    if subprocess.run([SYS_PYTHON, "-c", "import grpc"], capture_output=True).returncode != 0:
        raise harness.Skip(f"{SYS_PYTHON} has no grpc module (Debian python3-grpcio, scripts/deps)")
    assert cri("version")["runtime"] == "containerd"
    calls0 = len(e.c.calls())
    t0 = time.monotonic()
    sid = cri("runp", "web-1", "uid-web-1", "shop", "/vpc-ipam-ctrd")["id"]
    runp_ms = (time.monotonic() - t0) * 1000
    try:
        st = cri("status", sid)
        pods = e.pods()
        assert st["state"] == 0 and sid in pods and st["ip"] == pods[sid]["ip"], (st, pods.get(sid))
        p = pods[sid]
        assert (p.get("pod_namespace"), p.get("pod_name")) == ("shop", "web-1"), p
        netns = [c for c in e.c.calls()[calls0:] if c.startswith("ADD")][0].split("netns=")[1].split()[0]
        assert netns.startswith(os.path.join(e.dir, "state")), netns     # under the state dir, not /run/netns
        # the namespace is mounted only in containerd's mount namespace
        assert pod_addr(e.c.ns_cmd("nsenter", "--net=" + netns)) == [st["ip"] + "/32"]
        t0 = time.monotonic()
        cri("stopp", sid)
        stopp_ms = (time.monotonic() - t0) * 1000
        assert sid not in e.pods() and e.d.pool()["assigned"] == 0, e.pods()
        cri("rmp", sid)
    finally:
        cri_cleanup(sid)
    calls = [c for c in e.c.calls()[calls0:] if not c.startswith(("STATUS", "VERSION"))]
    assert calls == [f"ADD id={sid} netns={netns} prev=no", f"DEL id={sid} netns={netns} prev=yes",
                     f"DEL id={sid} netns= prev=no"], calls
    wait_for(lambda: e.host_state() == ([], []), timeout=5, what=f"no veth or rule left: {e.host_state()}")
    assert sid not in cri("list")["ids"]
    print(f"# CRI: RunPodSandbox {runp_ms:.0f} ms, StopPodSandbox {stopp_ms:.0f} ms", flush=True)


def cri_cleanup(sid):
    if sid in cri("list")["ids"]:
        subprocess.run([SYS_PYTHON, CRI_CLIENT, os.path.join(ENV.dir, "containerd.sock"), "stopp", sid],
                       capture_output=True, timeout=120)
        subprocess.run([SYS_PYTHON, CRI_CLIENT, os.path.join(ENV.dir, "containerd.sock"), "rmp", sid],
                       capture_output=True, timeout=120)


# Answers every connection with "<token> <peer address>", once listening says so in a file.
LISTENER = """
import socket, sys
port, token, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(8)
open(ready, "w").close()
while True:
    c, peer = s.accept()
    c.sendall(f"{token} {peer[0]}\\n".encode())
    c.close()
"""

CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    print(c.recv(200).decode().strip())
except OSError as e:
    print(type(e).__name__)
"""


def connect_from_node(e, addr, port):
    """What a TCP client on the node gets from addr:port: the first line
    answered, or the error's name (ConnectionRefusedError, TimeoutError)."""
    p = e.node(SYS_PYTHON, "-c", CONNECT, addr, str(port))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_cri_hostport_reaches_the_pod_from_the_node():
    """A sandbox with hostPort 30080 -> 8080 through the deployed chain: the
    pod's listener answers at the node's address and at 127.0.0.1 (portmap's
    snat), and the port is closed again once the sandbox stops."""
    e = env()
    if subprocess.run([SYS_PYTHON, "-c", "import grpc"], capture_output=True).returncode != 0:
        raise harness.Skip(f"{SYS_PYTHON} has no grpc module (Debian python3-grpcio, scripts/deps)")
    node_ip = e.w.nodes[0]["primary_ip"]
    host_port, port = 30080, 8080
    for addr in (node_ip, "127.0.0.1"):
        assert connect_from_node(e, addr, host_port) == "ConnectionRefusedError", f"{addr}:{host_port} open before"
    calls0 = len(e.c.calls())
    sid = cri("runp", "web-hp", "uid-web-hp", "shop", "/vpc-ipam-ctrd", f"{host_port}:{port}")["id"]
    listener = None
    try:
        st = cri("status", sid)
        assert st["state"] == 0 and st["ip"] == e.pods()[sid]["ip"], (st, e.pods().get(sid))
        netns = [c for c in e.c.calls()[calls0:] if c.startswith("ADD")][0].split("netns=")[1].split()[0]
        ready = os.path.join(e.dir, "listener.ready")
        token = "pod-" + sid[:12]
        listener = subprocess.Popen(e.c.ns_cmd("nsenter", "--net=" + netns, SYS_PYTHON, "-c", LISTENER, str(port),
                                               token, ready), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: os.path.exists(ready) or listener.poll() is not None, timeout=10, what="the pod's listener")
        assert listener.poll() is None, listener.stderr.read()
        # The pod itself, then through portmap's DNAT from the node's own address
        # (OUTPUT) and from 127.0.0.1, which only snat: true makes work.
        assert connect_from_node(e, st["ip"], port).startswith(token + " "), "the pod's listener"
        got = connect_from_node(e, node_ip, host_port)
        assert got == f"{token} {node_ip}", f"{node_ip}:{host_port} answered {got!r}"
        local = connect_from_node(e, "127.0.0.1", host_port)
        assert local.startswith(token + " ") and local != f"{token} 127.0.0.1", \
            f"127.0.0.1:{host_port} answered {local!r}"
        print(f"# hostPort {host_port}: {node_ip} -> {got!r}, 127.0.0.1 -> {local!r}", flush=True)
        assert connect_from_node(e, node_ip, host_port + 1) == "ConnectionRefusedError", "only the mapped port"
        listener.kill()
        listener.wait()
        cri("stopp", sid)
        for addr in (node_ip, "127.0.0.1"):
            got = connect_from_node(e, addr, host_port)
            assert got == "ConnectionRefusedError", f"{addr}:{host_port} after StopPodSandbox: {got!r}"
        assert sid not in e.pods() and e.d.pool()["assigned"] == 0, e.pods()
        cri("rmp", sid)
    finally:
        if listener and listener.poll() is None:
            listener.kill()
            listener.wait()
        cri_cleanup(sid)
    calls = [c for c in e.c.calls()[calls0:] if not c.startswith(("STATUS", "VERSION"))]
    assert calls == [f"ADD id={sid} netns={netns} prev=no", f"DEL id={sid} netns={netns} prev=yes",
                     f"DEL id={sid} netns= prev=no"], calls
    wait_for(lambda: e.host_state() == ([], []), timeout=5, what=f"no veth or rule left: {e.host_state()}")


def qdiscs(e):
    """{device: [qdisc kinds]} in the node's namespace, for tbf and ingress only."""
    out = {}
    for q in json.loads(e.node("tc", "-j", "qdisc", "show").stdout or "[]"):
        if q.get("kind") in ("tbf", "ingress"):
            out.setdefault(q["dev"], []).append(q["kind"])
    return out


def test_cri_bandwidth_annotations_shape_the_pod():
    """bandwidth, chained after vpc-cni and portmap, finds the pod's host veth
    from vpc-cni's result: ingress shaped by a tbf on it, egress redirected to
    an ifb with a tbf; StopPodSandbox takes both away."""
    e = env()
    if subprocess.run([SYS_PYTHON, "-c", "import grpc"], capture_output=True).returncode != 0:
        raise harness.Skip(f"{SYS_PYTHON} has no grpc module (Debian python3-grpcio, scripts/deps)")
    before = qdiscs(e)
    sid = cri("runp", "web-bw", "uid-web-bw", "shop", "/vpc-ipam-ctrd",
              "kubernetes.io/ingress-bandwidth=10M", "kubernetes.io/egress-bandwidth=20M")["id"]
    try:
        assert cri("status", sid)["state"] == 0
        veths, _ = e.host_state()
        assert len(veths) == 1, veths
        added = {dev: kinds for dev, kinds in qdiscs(e).items() if before.get(dev) != kinds}
        ifbs = [dev for dev in added if dev != veths[0]]
        # ingress: tbf on the host veth (traffic towards the pod); egress: the
        # veth's ingress redirected to an ifb that has the tbf.
        assert sorted(added.get(veths[0], [])) == ["ingress", "tbf"] and len(ifbs) == 1 and \
            added[ifbs[0]] == ["tbf"], added
        rates = {}
        for dev in (veths[0], ifbs[0]):
            for q in json.loads(e.node("tc", "-j", "qdisc", "show", "dev", dev).stdout):
                if q["kind"] == "tbf":
                    rates[dev] = q["options"]["rate"]
        assert rates == {veths[0]: 10_000_000 // 8, ifbs[0]: 20_000_000 // 8}, rates
        print(f"# bandwidth: {added}, rates {rates} bytes/s", flush=True)
        cri("stopp", sid)
        assert qdiscs(e) == before, (before, qdiscs(e))
        links = [x["ifname"] for x in json.loads(e.node("ip", "-j", "link", "show").stdout)]
        assert ifbs[0] not in links, links
        cri("rmp", sid)
    finally:
        cri_cleanup(sid)
    wait_for(lambda: e.host_state() == ([], []), timeout=5, what=f"no veth or rule left: {e.host_state()}")


def teardown(_ctx=None):
    global ENV
    if ENV:
        ENV.close()
        ENV = None


if __name__ == "__main__":
    if not CNI or not os.path.exists(CNI):
        print("1..1\nok 1 - vpc-cni under containerd # SKIP VPC_CNI is not set to the built plugin")
        sys.exit(0)
    try:
        sys.exit(harness.run(globals(), teardown=teardown))
    finally:
        teardown()

"""The DaemonSet's entrypoint with the real vpc-ipamd, in a node of the emulated
VPC (tests/emulator) with EC2's default latencies: the image's layout is staged
in a temporary directory (the entrypoint's VPC_IPAM_* path overrides), the
host's /opt/cni/bin and /etc/cni/net.d are directories under it.

Checks that vpc-cni is installed and the conflist appears only once the
daemon serves (and prints how long after start), that the installed plugin
run with the written conflist, as a runtime runs it, wires a pod (ADD) and
unwires it (DEL), that SIGTERM stops both cleanly, that a bad variable is
refused by `vpc-ipamd -n` before anything is installed, and that a daemon
that cannot start (EC2 unreachable) leaves no conflist and its exit status.
TAP on stdout; SKIPs without root.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "emulator"))

import harness  # noqa: E402

ENTRYPOINT = os.path.join(HERE, "..", "..", "scripts", "deploy", "entrypoint")
IPAMD = os.environ.get("VPC_IPAMD", "")
CNI = os.environ.get("VPC_CNI", "")


class Node:
    """A staged image and host root, and the environment the manifest would give."""

    def __init__(self, world, **env):
        self.world = world
        self.dir = tempfile.mkdtemp(prefix="vpc-ipam-deploy-")
        img = os.path.join(self.dir, "img")
        for sub in ("bin", "libexec", "share", "host"):
            os.makedirs(os.path.join(img if sub != "host" else self.dir, sub), exist_ok=True)
        shutil.copy(IPAMD, os.path.join(img, "bin"))
        shutil.copy(os.path.join(os.path.dirname(IPAMD), "vpc-ipamctl"), os.path.join(img, "bin"))
        shutil.copy(CNI, os.path.join(img, "libexec"))
        shutil.copy(os.path.join(HERE, "..", "..", "scripts", "deploy", "10-vpc-cni.conflist"),
                    os.path.join(img, "share"))
        w = world.w
        self.socket = os.path.join(self.dir, "run", "ipamd.sock")
        self.conflist = os.path.join(self.dir, "host", "etc", "cni", "net.d", "10-vpc-cni.conflist")
        self.plugin = os.path.join(self.dir, "host", "opt", "cni", "bin", "vpc-cni")
        self.ctl = os.path.join(img, "bin", "vpc-ipamctl")
        self.env = {
            "PATH": "/usr/bin:/bin",
            "AWS_ACCESS_KEY_ID": w["credentials"]["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": w["credentials"]["secret_access_key"],
            "AWS_ENDPOINT_URL_EC2": w["ec2_endpoint"],
            "VPC_IPAM_SOCKET": self.socket,
            "VPC_IPAM_DB": os.path.join(self.dir, "lib", "pool.db"),
            "INTROSPECTION_BIND_ADDRESS": "unix:" + os.path.join(self.dir, "introspect.sock"),
            "METRICS_BIND_ADDRESS": "unix:" + os.path.join(self.dir, "metrics.sock"),
            "VPC_IPAM_HOST_ROOT": os.path.join(self.dir, "host"),
            "VPC_IPAM_BINDIR": os.path.join(img, "bin"),
            "VPC_IPAM_LIBEXEC": os.path.join(img, "libexec"),
            "VPC_IPAM_SHARE": os.path.join(img, "share"),
        }
        self.env.update(env)
        self.log = os.path.join(self.dir, "entrypoint.log")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.world.node_ns(0), ENTRYPOINT], env=self.env,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.t0 = time.monotonic()
        return self

    def text(self):
        with open(self.log) as f:
            return f.read()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def setup():
    if not IPAMD or not CNI:
        raise RuntimeError("VPC_IPAMD and VPC_CNI must name the built binaries")
    return harness.WorldFixture(nodes=1, fast=False)


def teardown(world):
    world.down()


def test_conflist_only_once_the_daemon_serves(world):
    n = Node(world).start()
    try:
        socket_at = None
        while not os.path.exists(n.conflist) and time.monotonic() - n.t0 < 60:
            if socket_at is None and os.path.exists(n.socket):
                socket_at = time.monotonic() - n.t0
            assert n.proc.poll() is None, f"entrypoint exited {n.proc.returncode}: {n.text()[-800:]}"
            time.sleep(0.005)
        conflist_at = time.monotonic() - n.t0
        assert os.path.exists(n.conflist), f"no conflist after 60 s: {n.text()[-800:]}"
        assert socket_at is not None and socket_at <= conflist_at, "conflist before the daemon's socket"
        print(f"# socket after {socket_at:.2f} s, conflist after {conflist_at:.2f} s", flush=True)
        c = json.load(open(n.conflist))
        assert c["plugins"][0]["type"] == "vpc-cni" and c["plugins"][0]["socket"] == n.socket
        assert os.access(n.plugin, os.X_OK) and open(n.plugin, "rb").read() == open(CNI, "rb").read()
        r = subprocess.run([n.ctl, "--socket", n.socket, "status"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and r.stdout.startswith("ready"), r.stdout + r.stderr
        pod_add_del(n, c)
        n.proc.send_signal(signal.SIGTERM)
        rc = n.proc.wait(timeout=30)
        assert rc == 0, f"exit {rc}: {n.text()[-800:]}"
        assert "vpc-ipamd exited with status 0" in n.text()
        r = subprocess.run([n.ctl, "--socket", n.socket, "status"], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0, "the daemon still answers after the entrypoint exited"
        assert os.path.exists(n.conflist), "the conflist is kept across a restart"
    finally:
        n.close()


def run_plugin(n, conf, cmd, netns):
    """The installed vpc-cni as a runtime runs it: the conflist's entry with
    name and cniVersion injected, in the node's namespace."""
    env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": "deploy-pod", "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": os.path.dirname(n.plugin),
           "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=deploy-pod;IgnoreUnknown=1"}
    entry = dict(conf["plugins"][0], name=conf["name"], cniVersion=conf["cniVersion"],
                 logFile=os.path.join(n.dir, "plugin.log"))   # not the machine's /var/log
    p = subprocess.run(["ip", "netns", "exec", n.world.node_ns(0), n.plugin], env=env, input=json.dumps(entry),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None


def pod_add_del(n, conf):
    sleeper = subprocess.Popen(["ip", "netns", "exec", n.world.node_ns(0), "unshare", "-n", "sleep", "60"])
    try:
        netns = f"/proc/{sleeper.pid}/ns/net"
        node = subprocess.run(["ip", "netns", "exec", n.world.node_ns(0), "readlink", "/proc/self/ns/net"],
                              capture_output=True, text=True).stdout.strip()
        mine = os.readlink("/proc/self/ns/net")
        # The sleeper passes through the node's namespace before unshare makes its own.
        harness.wait_for(lambda: os.readlink(netns) not in (mine, node), timeout=5, what="pod namespace")
        rc, out = run_plugin(n, conf, "ADD", netns)
        assert rc == 0 and out and out.get("ips"), f"ADD: exit {rc}: {out}"
        ip = out["ips"][0]["address"].split("/")[0]
        addrs = subprocess.run(["nsenter", "--net=" + netns, "ip", "-4", "-o", "addr", "show", "eth0"],
                               capture_output=True, text=True).stdout
        assert f"inet {ip}/32" in addrs, f"pod eth0: {addrs!r}, want {ip}"
        rc, out = run_plugin(n, conf, "DEL", netns)
        assert rc == 0, f"DEL: exit {rc}: {out}"
        pods = subprocess.run([n.ctl, "--socket", n.socket, "pods"], capture_output=True, text=True).stdout
        assert ip not in pods, f"the daemon still holds {ip}: {pods}"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_bad_variable_no_conflist(world):
    """Refused by the entrypoint's `vpc-ipamd -n`: the daemon's message, exit 2,
    and nothing installed, created or started."""
    n = Node(world, WARM_ENI_TARGET="lots").start()
    try:
        rc = n.proc.wait(timeout=30)
        assert rc == 2, f"exit {rc}: {n.text()}"
        assert "vpc-ipamd: invalid configuration: WARM_ENI_TARGET=lots: not an integer" in n.text(), n.text()
        assert "vpc-ipamd exited" not in n.text(), "the daemon was started"
        for path in (n.conflist, n.plugin, n.socket, n.env["VPC_IPAM_DB"]):
            assert not os.path.exists(path), f"{path} exists"
        assert not os.path.exists(os.path.dirname(n.env["VPC_IPAM_DB"])), "the store's directory was created"
    finally:
        n.close()


def test_ec2_unreachable_no_conflist(world):
    # Nothing listens on port 9 of the emulated EC2 endpoint's address.
    n = Node(world, AWS_ENDPOINT_URL_EC2="http://192.0.2.10:9/").start()
    try:
        rc = n.proc.wait(timeout=120)
        assert rc == 1, f"exit {rc}: {n.text()[-800:]}"
        assert not os.path.exists(n.conflist), "conflist written although the daemon never served"
    finally:
        n.close()


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup=setup, teardown=teardown))

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
The take-over of /etc/cni/net.d: aws-node's 10-aws.conflist and a 05-foo.conf
(both sort before ours, so containerd would use them) are renamed to
*.vpc-ipam.bak once the daemon serves, a 99-later.conflist is left, the log
names each move, a restart moves nothing more, and a 10-aws.conflist written
again is moved beside the first backup, not over it; portmap (and bandwidth
with ENABLE_BANDWIDTH_PLUGIN=true) are installed and chained after vpc-cni;
VPC_IPAM_CNI_EXCLUSIVE=false only warns.
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
CHAINED = ("portmap", "bandwidth")


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
        for plugin in CHAINED:        # what the Containerfile copies from containernetworking-plugins
            shutil.copy(os.path.join("/usr/lib/cni", plugin), os.path.join(img, "libexec"))
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

    def start(self, log="entrypoint.log"):
        self.log = os.path.join(self.dir, log)
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
    for plugin in CHAINED:
        if not os.path.exists(os.path.join("/usr/lib/cni", plugin)):
            raise RuntimeError(f"/usr/lib/cni/{plugin} is missing: containernetworking-plugins (scripts/deps)")
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


AWS_CONFLIST = {"cniVersion": "0.4.0", "name": "aws-cni", "disableCheck": True, "plugins": [
    {"type": "aws-cni", "vethPrefix": "eni", "mtu": "9001"},
    {"type": "egress-cni", "enabled": "false"},
    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}


def populate(n, files):
    """Write {name: text} into the host's /etc/cni/net.d."""
    d = os.path.dirname(n.conflist)
    os.makedirs(d, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


def net_d(n):
    """{name: content} of the host's /etc/cni/net.d."""
    d = os.path.dirname(n.conflist)
    out = {}
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            out[name] = f.read()
    return out


def runtime_pick(n):
    """The file containerd (go-cni, max_conf_num 1) loads: the first CNI configuration in byte order."""
    return sorted(f for f in os.listdir(os.path.dirname(n.conflist))
                  if f.endswith((".conf", ".conflist", ".json")))[0]


def serve_then_stop(n, log):
    """Start the entrypoint, wait until it has written our conflist, SIGTERM it;
    the log's text. (The moves follow the write in the same shell, which runs
    them to the end before it waits for the daemon: all are done on exit.)"""
    n.start(log)
    harness.wait_for(lambda: "vpc-ipamd is serving; wrote" in n.text() or n.proc.poll() is not None,
                     timeout=60, what="the conflist written")
    assert n.proc.poll() is None, f"entrypoint exited {n.proc.returncode}: {n.text()[-800:]}"
    n.proc.send_signal(signal.SIGTERM)
    rc = n.proc.wait(timeout=30)
    assert rc == 0, f"exit {rc}: {n.text()[-800:]}"
    return n.text()


def test_takeover_moves_configs_that_sort_before_ours(world):
    n = Node(world)
    aws = json.dumps(AWS_CONFLIST, indent=2)
    foo = '{"cniVersion": "0.3.1", "name": "foo", "type": "bridge"}'
    later = '{"cniVersion": "1.0.0", "name": "later", "plugins": [{"type": "ptp"}]}'
    populate(n, {"10-aws.conflist": aws, "05-foo.conf": foo, "99-later.conflist": later,
                 "README": "not a CNI configuration"})
    try:
        text = serve_then_stop(n, "first.log")
        files = net_d(n)
        assert files.get("10-aws.conflist.vpc-ipam.bak") == aws and files.get("05-foo.conf.vpc-ipam.bak") == foo, \
            sorted(files)
        assert files.get("99-later.conflist") == later and files.get("README") == "not a CNI configuration"
        assert sorted(files) == sorted(["05-foo.conf.vpc-ipam.bak", "10-aws.conflist.vpc-ipam.bak",
                                        "10-vpc-cni.conflist", "99-later.conflist", "README"]), sorted(files)
        assert runtime_pick(n) == "10-vpc-cni.conflist"
        for name in ("10-aws.conflist", "05-foo.conf"):
            assert f"moved /etc/cni/net.d/{name} aside to {name}.vpc-ipam.bak" in text, text
        assert "99-later" not in text and "README" not in text, text
        c = json.loads(files["10-vpc-cni.conflist"])
        assert [p["type"] for p in c["plugins"]] == ["vpc-cni", "portmap"], c
        assert c["plugins"][1] == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
        assert "(vpc-cni, portmap)" in text, text
        bindir = os.path.dirname(n.plugin)
        for plugin in CHAINED:
            installed = os.path.join(bindir, plugin)
            assert os.access(installed, os.X_OK), plugin
            assert open(installed, "rb").read() == open(os.path.join("/usr/lib/cni", plugin), "rb").read(), plugin
        assert not [f for f in os.listdir(bindir) if f.startswith(".")], os.listdir(bindir)

        # A restart: nothing more to move, nothing else changed.
        text = serve_then_stop(n, "second.log")
        assert net_d(n) == files, sorted(net_d(n))
        assert "moved /etc/cni" not in text, text

        # aws-node (not deleted) wrote its conflist again, with other content: it
        # is moved beside the first backup, which keeps its content.
        aws2 = aws.replace('"9001"', '"1500"')
        populate(n, {"10-aws.conflist": aws2})
        text = serve_then_stop(n, "third.log")
        again = net_d(n)
        assert again.get("10-aws.conflist.vpc-ipam.bak") == aws, sorted(again)
        assert again.get("10-aws.conflist.vpc-ipam.bak.1") == aws2, sorted(again)
        assert "10-aws.conflist" not in again and runtime_pick(n) == "10-vpc-cni.conflist"
        assert "moved /etc/cni/net.d/10-aws.conflist aside to 10-aws.conflist.vpc-ipam.bak.1" in text, text
    finally:
        n.close()


def test_bandwidth_and_not_exclusive(world):
    n = Node(world, ENABLE_BANDWIDTH_PLUGIN="true", VPC_IPAM_CNI_EXCLUSIVE="false")
    aws = json.dumps(AWS_CONFLIST)
    populate(n, {"10-aws.conflist": aws})
    try:
        text = serve_then_stop(n, "bandwidth.log")
        files = net_d(n)
        assert sorted(files) == ["10-aws.conflist", "10-vpc-cni.conflist"] and files["10-aws.conflist"] == aws, \
            sorted(files)
        assert "warning: /etc/cni/net.d/10-aws.conflist sorts before 10-vpc-cni.conflist" in text, text
        assert "moved /etc/cni" not in text, text
        c = json.loads(files["10-vpc-cni.conflist"])
        assert [p["type"] for p in c["plugins"]] == ["vpc-cni", "portmap", "bandwidth"], c
        assert c["plugins"][2] == {"type": "bandwidth", "capabilities": {"bandwidth": True}}, c
        assert "(vpc-cni, portmap, bandwidth)" in text, text
    finally:
        n.close()
    # A value that is not a boolean is refused before anything is installed.
    for name in ("ENABLE_BANDWIDTH_PLUGIN", "VPC_IPAM_CNI_EXCLUSIVE"):
        n = Node(world, **{name: "yes"})
        try:
            n.start()
            rc = n.proc.wait(timeout=30)
            assert rc == 2, f"{name}: exit {rc}: {n.text()}"
            assert f"invalid configuration: {name}=yes: not a boolean" in n.text(), n.text()
            assert not os.path.exists(n.plugin) and not os.path.exists(n.conflist), f"{name}: installed"
        finally:
            n.close()


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup=setup, teardown=teardown))

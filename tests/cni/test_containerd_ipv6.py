"""vpc-cni under Debian's containerd in IPv6 mode (issue 16). TAP on stdout.

One world of one node brought up with `vpc-world up --ipv6`; vpc-ipamd runs
in the node with ENABLE_IPv6=true, ENABLE_IPv4=false and
ENABLE_PREFIX_DELEGATION=true (as tests/daemon/test_ipv6.py starts it), and
containerd beside it (tests/cni/ctrd.py) with the deployed conflist
(scripts/deploy/10-vpc-cni.conflist, cniVersion 1.0.0, through
test_containerd.ChainedContainerd). containerd 1.6 and plugins 1.1.1 parse
vpc-cni's IPv6 result (the /128 on eth0, the egress address on v4if0, four
interfaces) as CNI 1.0.0. Checks:

- `ctr run --cni`, two containers: each one's eth0 holds the /128 the
  daemon lists for it ("default-<name>"), v4if0 holds its IPv4 egress
  address, each pod has its two veths on the node; one pings the other over
  IPv6; killing the tasks makes ctr run DEL (empty CNI_NETNS, prevResult)
  and the addresses, the four veths, the routes and the rules are gone;
- the CRI path: PodSandboxStatus reports the sandbox's /128 as its IP and no
  additional IP (the egress address is not a pod IP), the sandbox is wired
  the same way; StopPodSandbox and RemovePodSandbox DEL it (twice) and leave
  nothing.

When containerd cannot run here every case SKIPs with the reason; under
CI=true that is a failure instead.
"""

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
sys.path.insert(0, HERE)

import ctrd  # noqa: E402
from ipamd import Daemon, harness, wait_for  # noqa: E402
from test_containerd import CNI, CRI_CLIENT, SYS_PYTHON, ChainedContainerd  # noqa: E402

V6 = {"ENABLE_IPv6": "true", "ENABLE_IPv4": "false", "ENABLE_PREFIX_DELEGATION": "true"}
EGRESS_NET = ipaddress.ip_network("169.254.172.0/22")


def skip(why):
    """A missing prerequisite: SKIP, or a failure under CI=true (scripts/deps must provide it)."""
    if os.environ.get("CI") == "true":
        raise AssertionError(f"would SKIP, but CI=true: {why}")
    raise harness.Skip(why)


class Env:
    """The IPv6 world, vpc-ipamd in IPv6 mode in node 0 and containerd beside it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vpc-ctrd6-")
        self.w = self.d = self.c = None
        try:
            self.w = harness.WorldFixture(nodes=1, extra=["--ipv6"])
            self.ns = self.w.node_ns(0)
            self.d = Daemon(self.w, 0, V6).start()
            wait_for(lambda: (self.d.try_call({"op": "status"}) or {}).get("ready"), timeout=30, interval=0.2,
                     what="vpc-ipamd ready in IPv6 mode")
            image = ctrd.build_pause_image(self.dir)
            conf = {"socket": self.d.sock, "logFile": os.path.join(self.dir, "vpc-cni.log"), "logLevel": "info"}
            self.c = ChainedContainerd(self.dir, self.ns, CNI, conf, self.d.sock).start(image)
        except BaseException:
            self.close()
            raise

    def pods(self):
        return {p["container_id"]: p for p in self.d.call({"op": "pods"})["pods"]}

    def egress_of(self, cid):
        r = self.d.call({"op": "check", "container_id": cid, "ifname": "eth0"})
        assert r["ok"], r
        return r.get("egress_ip")

    def node(self, *argv):
        return subprocess.run(["ip", "netns", "exec", self.ns] + list(argv), capture_output=True, text=True)

    def veths(self):
        """The pods' veths on the node: their aliases ("vpc-cni:eth0:<id>", "vpc-cni-egress:eth0:<id>"),
        or the name of one with the veth prefix and no alias."""
        links = json.loads(self.node("ip", "-j", "-d", "link", "show").stdout)
        return sorted(x.get("ifalias") or x["ifname"] for x in links
                      if (x.get("linkinfo") or {}).get("info_kind") == "veth"
                      and ((x.get("ifalias") or "").startswith("vpc-cni") or x["ifname"].startswith("eni")))

    def leftovers(self, ips, egress):
        """What the node still has for these pods: veths, /128 routes and 512 rules, egress routes
        and addresses (all empty once DEL is done)."""
        routes6 = self.node("ip", "-6", "route", "show", "table", "all").stdout
        rules6 = self.node("ip", "-6", "rule", "show").stdout
        neigh6 = self.node("ip", "-6", "neigh", "show").stdout
        routes4 = self.node("ip", "-4", "route", "show", "table", "all").stdout
        addrs4 = self.node("ip", "-4", "addr", "show").stdout
        left = {"veths": self.veths(),
                "rules6": [r for r in rules6.splitlines() if r.startswith("512:")],
                "routes6": [r for r in routes6.splitlines() if any(mentions(r, ip) for ip in ips)],
                "neigh6": [r for r in neigh6.splitlines() if any(mentions(r, ip) for ip in ips)],
                "routes4": [r for r in routes4.splitlines() if any(mentions(r, ip) for ip in egress)],
                "egress_addrs": [a for a in addrs4.splitlines() if "169.254.172." in a]}
        return {k: v for k, v in left.items() if v}

    def close(self):
        if self.c:
            self.c.stop()
        if self.d:
            self.d.stop()
        if self.w:
            self.w.down()
        shutil.rmtree(self.dir, ignore_errors=True)


def mentions(text, ip):
    return any(tok in (ip, ip + "/128", ip + "/32") for tok in text.split())


ENV = None


def env():
    global ENV
    why = ctrd.why_not()
    if why:
        skip(why)
    if ENV is None:
        ENV = Env()
    return ENV


def addrs(enter, family, dev):
    out = subprocess.run(enter + ["ip", "-j", family, "addr", "show", "dev", dev, "scope", "global"],
                         capture_output=True, text=True)
    info = json.loads(out.stdout or "[]")
    return [(a["local"] + "/" + str(a["prefixlen"]), "tentative" in a) for i in info for a in i["addr_info"]
            if "local" in a]             # ip -j lists the addresses its filter drops as {}


def assert_wired(enter, ip, egress):
    """The pod as vpc-cni wires an IPv6 pod: the /128 on eth0 (DAD done), default via fe80::1;
    the egress address on v4if0 with its default route."""
    assert addrs(enter, "-6", "eth0") == [(ip + "/128", False)], addrs(enter, "-6", "eth0")
    assert addrs(enter, "-4", "eth0") == [], addrs(enter, "-4", "eth0")
    assert addrs(enter, "-4", "v4if0") == [(egress + "/22", False)], addrs(enter, "-4", "v4if0")
    r6 = subprocess.run(enter + ["ip", "-6", "route", "show", "default"], capture_output=True, text=True).stdout
    r4 = subprocess.run(enter + ["ip", "-4", "route", "show", "default"], capture_output=True, text=True).stdout
    assert "default via fe80::1 dev eth0" in r6, r6
    assert "default via 169.254.172.1 dev v4if0" in r4, r4


def daemon_addrs(e, cid):
    """The daemon's /128 and egress address for cid, checked against the /80 and the egress range."""
    ip = e.pods()[cid]["ip"]
    egress = e.egress_of(cid)
    assert ipaddress.ip_address(ip).version == 6 and egress and ipaddress.ip_address(egress) in EGRESS_NET, \
        (cid, ip, egress)
    prefixes = e.w.eni_truth(e.w.nodes[0]["primary_eni_id"]).get("ipv6_prefixes") or []
    assert len(prefixes) == 1 and ipaddress.ip_address(ip) in ipaddress.ip_network(prefixes[0]), (ip, prefixes)
    return ip, egress


def test_ctr_run_cni_ipv6_gets_and_releases_a_128_and_an_egress_address():
    """Two containers by `ctr run --cni` in IPv6 mode: each gets a /128 and an
    egress address, they ping each other over IPv6, and stopping them
    returns both and leaves nothing on the node."""
    e = env()
    calls0 = len(e.c.calls())
    names = ("c1", "c2")
    logs = {n: open(os.path.join(e.dir, f"ctr-{n}.log"), "w") for n in names}
    runs = {n: e.c.ctr_bg("run", "--cni", "--rm", ctrd.IMAGE, n, log=logs[n]) for n in names}
    pids, ips, egress = {}, {}, {}
    try:
        for n in names:
            wait_for(lambda: runs[n].poll() is None and e.c.task_pid(n), timeout=30,
                     what=f"task {n} running ({open(logs[n].name).read()[-500:]!r})")
            pids[n] = e.c.task_pid(n)
            wait_for(lambda: f"default-{n}" in e.pods(), timeout=10, what=f"the daemon holding default-{n}")
            ips[n], egress[n] = daemon_addrs(e, f"default-{n}")
            assert_wired(["nsenter", "-t", str(pids[n]), "-n"], ips[n], egress[n])
        assert len(set(ips.values())) == 2 and len(set(egress.values())) == 2, (ips, egress)
        want = sorted(f"{kind}:{dev}:default-{n}" for n in names for kind, dev in
                      (("vpc-cni", "eth0"), ("vpc-cni-egress", "eth0")))
        assert e.veths() == want, e.veths()         # per pod: its eth0's veth and its v4if0's
        rules = e.node("ip", "-6", "rule", "show").stdout
        assert all(f"512:\tfrom all to {ip} lookup main" in rules for ip in ips.values()), rules
        for ip in ips.values():
            assert f"{ip} dev " in e.node("ip", "-6", "route", "show", ip).stdout
        ping = subprocess.run(["nsenter", "-t", str(pids["c1"]), "-n", "ping", "-6", "-c", "2", "-i", "0.2", "-W",
                               "2", "-q", ips["c2"]], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        print(f"# ctr --cni IPv6: {ips} egress {egress}", flush=True)
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
    wait_for(lambda: not e.leftovers(ips.values(), egress.values()), timeout=5,
             what=f"nothing left on the node: {e.leftovers(ips.values(), egress.values())}")
    left = e.c.ctr("containers", "ls", "-q").stdout.split()
    assert not set(names) & set(left), left


def cri(*args):
    p = subprocess.run([SYS_PYTHON, CRI_CLIENT, os.path.join(ENV.dir, "containerd.sock")] + list(args),
                       capture_output=True, text=True, timeout=120)
    out = json.loads(p.stdout) if p.stdout.strip() else {"error": "no output", "msg": p.stderr[-2000:]}
    assert p.returncode == 0, (args, out)
    return out


def test_cri_sandbox_reports_its_ipv6_address():
    e = env()
    if subprocess.run([SYS_PYTHON, "-c", "import grpc"], capture_output=True).returncode != 0:
        skip(f"{SYS_PYTHON} has no grpc module (Debian python3-grpcio, scripts/deps)")
    calls0 = len(e.c.calls())
    sid = cri("runp", "web6-1", "uid-web6-1", "shop", "/vpc-ipam-ctrd")["id"]
    try:
        st = cri("status", sid)
        ip, egress = daemon_addrs(e, sid)
        # containerd picks the pod IPs from eth0's entries of the result: the /128 only
        assert st["state"] == 0 and st["ip"] == ip and st["additional_ips"] == [], (st, ip, egress)
        p = e.pods()[sid]
        assert (p.get("pod_namespace"), p.get("pod_name")) == ("shop", "web6-1"), p
        netns = [c for c in e.c.calls()[calls0:] if c.startswith("ADD")][0].split("netns=")[1].split()[0]
        assert_wired(e.c.ns_cmd("nsenter", "--net=" + netns), ip, egress)
        assert e.veths() == [f"vpc-cni-egress:eth0:{sid}", f"vpc-cni:eth0:{sid}"], e.veths()
        print(f"# CRI IPv6: PodSandboxStatus {st}, egress {egress}", flush=True)
        cri("stopp", sid)
        assert sid not in e.pods(), e.pods()
        cri("rmp", sid)
    finally:
        if sid in cri("list")["ids"]:
            for op in ("stopp", "rmp"):
                subprocess.run([SYS_PYTHON, CRI_CLIENT, os.path.join(e.dir, "containerd.sock"), op, sid],
                               capture_output=True, timeout=120)
    calls = [c for c in e.c.calls()[calls0:] if not c.startswith(("STATUS", "VERSION"))]
    assert calls == [f"ADD id={sid} netns={netns} prev=no", f"DEL id={sid} netns={netns} prev=yes",
                     f"DEL id={sid} netns= prev=no"], calls
    wait_for(lambda: not e.leftovers([ip], [egress]), timeout=5,
             what=f"nothing left on the node: {e.leftovers([ip], [egress])}")
    assert sid not in cri("list")["ids"]


def teardown(_ctx=None):
    global ENV
    if ENV:
        ENV.close()
        ENV = None


if __name__ == "__main__":
    if not CNI or not os.path.exists(CNI):
        if os.environ.get("CI") == "true":
            print("1..1\nnot ok 1 - vpc-cni under containerd, IPv6 # VPC_CNI is not set to the built plugin")
            sys.exit(1)
        print("1..1\nok 1 - vpc-cni under containerd, IPv6 # SKIP VPC_CNI is not set to the built plugin")
        sys.exit(0)
    try:
        sys.exit(harness.run(globals(), teardown=teardown))
    finally:
        teardown()

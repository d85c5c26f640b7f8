"""The node image, built by scripts/image, run with podman as the DaemonSet runs
it, one container on each of two nodes of the emulated VPC (tests/emulator).

The container's shape is read from scripts/deploy/daemonset.yaml (Debian's
python3-yaml, in a child /usr/bin/python3): host network = the node's
namespace (--network ns:/run/netns/NODE), each hostPath a scratch directory
standing for the host's, the emptyDir /tmp a tmpfs of its size, the env
(plus what IRSA and the cluster would inject: credentials and the emulated
EC2 endpoint), the securityContext (capabilities, no privilege escalation,
read-only root, user 0), the grace period and the probes' commands. The last
case checks podman's view of the running container against the manifest, so
what ran is what the manifest says.

Checks: the entrypoint installs vpc-cni (its libraries) and the chained
plugins into the host's bin dir, and writes the conflist only after the
daemon's socket serves; pods ADDed by running the installed plugins of the
conflist's chain from the host's bin dir, as a runtime does (in a mount
namespace where the scratch dirs are the host's /run/vpc-ipam and
/var/log/vpc-ipam, so the conflist is used unchanged), get addresses and
ping across nodes; the probes pass, and fail while the daemon is frozen
(SIGSTOP: a stuck daemon); `podman stop` ends the daemon cleanly (exit 0)
well within the grace period; a restart keeps every pod's address (the store
is on the hostPath) and DEL releases them. And the machine's own namespace
(links, nft ruleset, iptables) is unchanged by all this: podman ran with
--network host for the build and ns:NODE for the containers.
TAP on stdout; root. No SKIP for a missing podman: setup fails instead.
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
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "emulator"))

import harness  # noqa: E402

MANIFEST = os.path.join(TOP, "scripts", "deploy", "daemonset.yaml")
# VPC_IPAM_TEST_IMAGE names an image already built (by scripts/image) to run
# instead of building one: any change under tests/ is a new build context.
IMAGE = os.environ.get("VPC_IPAM_TEST_IMAGE") or "localhost/vpc-ipam:test"
CONF = "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"

READ_MANIFEST = r"""
import json, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "DaemonSet":
        print(json.dumps(doc["spec"]["template"]["spec"]))
"""


def manifest():
    """The DaemonSet's pod spec, parsed by Debian's python3 with python3-yaml."""
    p = subprocess.run(["/usr/bin/python3", "-c", READ_MANIFEST, MANIFEST], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip(), f"cannot read {MANIFEST}: {p.stderr}"
    return json.loads(p.stdout)


def podman(*args, check=True, timeout=120):
    p = subprocess.run(["podman"] + list(args), capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, CONTAINERS_CONF=CTX_CONF[0]))
    if check and p.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


CTX_CONF = [""]


def host_state():
    """The machine's own namespace as podman could change it."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    names = sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines())
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    ipt = ""
    if shutil.which("iptables-save"):
        out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        ipt = "\n".join(x.split("[")[0] for x in out.splitlines() if not x.startswith("#"))
    return {"links": names, "nft": nft, "iptables": ipt}


def quantity_bytes(q):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for u, m in units.items():
        if q.endswith(u):
            return int(q[:-len(u)]) * m
    return int(q)


class Container:
    """One DaemonSet pod on node i: the manifest's container, run by podman."""

    def __init__(self, ctx, i):
        self.ctx, self.i = ctx, i
        self.ns = ctx.world.node_ns(i)
        self.dir = tempfile.mkdtemp(prefix=f"vpc-ipam-image-node{i}-")
        self.name = f"vpc-ipam-test-{os.getpid()}-node{i}"
        spec = ctx.spec
        c = spec["containers"][0]
        self.c = c
        vols = {v["name"]: v for v in spec["volumes"]}
        self.host = {}              # host path -> scratch dir
        args = ["run", "-d", "--name", self.name, "--pull=never"]
        assert spec.get("hostNetwork") is True
        args += ["--network", f"ns:/run/netns/{self.ns}"]
        sc = c["securityContext"]
        args += ["--cap-drop=" + ",".join(sc["capabilities"]["drop"]).lower()]
        args += ["--cap-add=" + ",".join(sc["capabilities"]["add"])]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt=no-new-privileges"]
        if sc.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        args += ["--user", str(sc["runAsUser"])]
        for m in c["volumeMounts"]:
            v = vols[m["name"]]
            if "hostPath" in v:
                src = os.path.join(self.dir, "host", v["hostPath"]["path"].lstrip("/"))
                assert v["hostPath"]["type"] == "DirectoryOrCreate", v
                os.makedirs(src, exist_ok=True)
                self.host[v["hostPath"]["path"]] = src
                opts = ["ro" if m.get("readOnly") else "rw"]
                if m.get("mountPropagation") == "HostToContainer":
                    opts.append("rslave")
                args += ["-v", f"{src}:{m['mountPath']}:{','.join(opts)}"]
            else:
                assert v["emptyDir"]["medium"] == "Memory", v
                size = quantity_bytes(v["emptyDir"]["sizeLimit"])
                args += ["--tmpfs", f"{m['mountPath']}:rw,size={size}"]
        self.env = [(e["name"], e.get("value", "")) for e in c["env"]]
        w = ctx.world.w
        injected = [("AWS_ACCESS_KEY_ID", w["credentials"]["access_key_id"]),
                    ("AWS_SECRET_ACCESS_KEY", w["credentials"]["secret_access_key"]),
                    ("AWS_ENDPOINT_URL_EC2", w["ec2_endpoint"])]
        for k, v in self.env + injected:
            args += ["-e", f"{k}={v}"]
        args += ["--stop-timeout", str(spec["terminationGracePeriodSeconds"])]
        self.run_args = args + [IMAGE]
        self.env_names = [k for k, _ in self.env]

    def path(self, hostpath, *rest):
        return os.path.join(self.host[hostpath], *rest)

    def start(self):
        self.t0 = time.monotonic()
        podman(*self.run_args)

    def logs(self):
        p = podman("logs", self.name, check=False)
        return p.stdout + p.stderr

    def probe(self, kind):
        pr = self.c[kind]
        try:
            return podman("exec", self.name, *pr["exec"]["command"], check=False,
                          timeout=pr["timeoutSeconds"]).returncode
        except subprocess.TimeoutExpired:
            return "timeout"

    def ctl(self, *args):
        p = podman("exec", self.name, "/usr/bin/vpc-ipamctl", *args, check=False)
        return p.returncode, p.stdout

    def inspect(self):
        return json.loads(podman("inspect", self.name).stdout)[0]

    def close(self):
        podman("rm", "-f", "-t", "5", self.name, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class Ctx:
    pass


def setup():
    if shutil.which("podman") is None:
        raise RuntimeError("podman is not installed (scripts/deps)")
    ctx = Ctx()
    fd, CTX_CONF[0] = tempfile.mkstemp(suffix=".conf", prefix="vpc-ipam-containers-")
    with os.fdopen(fd, "w") as f:
        f.write(CONF)
    ctx.before = host_state()
    if not os.environ.get("VPC_IPAM_TEST_IMAGE"):
        t0 = time.monotonic()
        p = subprocess.run([os.path.join(TOP, "scripts", "image"), IMAGE], capture_output=True, text=True,
                           timeout=1500, env=dict(os.environ, CONTAINERS_CONF=CTX_CONF[0]))
        if p.returncode != 0:
            raise RuntimeError(f"scripts/image failed ({p.returncode}): {p.stderr[-3000:]}")
        for line in [x for x in p.stderr.splitlines() if x.startswith("scripts/image:")] + p.stdout.splitlines()[-9:]:
            print("# " + line, flush=True)
        print(f"# scripts/image took {time.monotonic() - t0:.0f} s", flush=True)
    ctx.spec = manifest()
    ctx.world = harness.WorldFixture(nodes=2, fast=True)
    ctx.nodes = []
    ctx.pods = {}
    return ctx


def teardown(ctx):
    for pod in list(ctx.pods.values()):
        pod["sleeper"].kill()
        pod["sleeper"].wait()
    for n in ctx.nodes:
        n.close()
    ctx.world.down()
    os.unlink(CTX_CONF[0])


def test_installs_then_writes_the_conflist_once_serving(ctx):
    for i in range(2):
        ctx.nodes.append(Container(ctx, i))
        ctx.nodes[-1].start()
    # Both nodes watched at once: each socket, then each conflist.
    socket_at, conflist_at = {}, {}
    while len(conflist_at) < 2 and time.monotonic() - ctx.nodes[0].t0 < 90:
        for n in ctx.nodes:
            now = time.monotonic() - n.t0
            if n.i not in socket_at and os.path.exists(n.path("/run/vpc-ipam", "ipamd.sock")):
                socket_at[n.i] = now
            if n.i not in conflist_at and os.path.exists(n.path("/etc/cni/net.d", "10-vpc-cni.conflist")):
                conflist_at[n.i] = now
        time.sleep(0.005)
    for n in ctx.nodes:
        conflist = n.path("/etc/cni/net.d", "10-vpc-cni.conflist")
        assert n.i in conflist_at, f"node {n.i}: no conflist after 90 s: {n.logs()[-1500:]}"
        assert n.i in socket_at and socket_at[n.i] <= conflist_at[n.i], f"node {n.i}: conflist before the socket"
        print(f"# node {n.i}: socket after {socket_at[n.i]:.2f} s, conflist after {conflist_at[n.i]:.2f} s",
              flush=True)
        assert "vpc-ipamd is serving; wrote /etc/cni/net.d/10-vpc-cni.conflist" in n.logs(), n.logs()[-1500:]
        n.conf = json.load(open(conflist))
        bindir = n.path("/opt/cni/bin")
        types = [p["type"] for p in n.conf["plugins"]]
        assert types[0] == "vpc-cni" and "portmap" in types, types
        wanted = sorted(set(types) | {"bandwidth"})
        sums = podman("exec", n.name, "sha256sum", *[f"/usr/libexec/vpc-ipam/{t}" for t in wanted]).stdout.split()
        for t, digest in zip(wanted, sums[0::2]):
            installed = os.path.join(bindir, t)
            assert os.access(installed, os.X_OK), f"{t} is not installed in the host's bin dir"
            got = subprocess.run(["sha256sum", installed], capture_output=True, text=True).stdout.split()[0]
            assert got == digest, f"{t}: installed copy differs from the image's"
        # libnl is linked in; every other library but glibc's comes from the bundle beside it
        libdir = os.path.join(bindir, "vpc-cni.lib")
        libs = os.listdir(libdir)
        assert any(x.startswith("libcjson") for x in libs), libs
        ldd = subprocess.run(["ldd", os.path.join(bindir, "vpc-cni")], capture_output=True, text=True).stdout
        assert "not found" not in ldd and "libnl" not in ldd, ldd
        for line in ldd.splitlines():
            if "libcjson" in line:
                assert f"=> {libdir}/" in line, ldd
        assert not [f for f in os.listdir(bindir) if f.startswith(".")], os.listdir(bindir)


def test_probes_pass(ctx):
    for n in ctx.nodes:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert n.probe(kind) == 0, f"node {n.i}: {kind} {n.c[kind]['exec']['command']} failed"


def in_host_mounts(n, argv):
    """argv in node n's namespace, in a mount namespace where the host's
    /run/vpc-ipam and /var/log/vpc-ipam are the scratch directories."""
    script = ('mount -t tmpfs none /run && mkdir -p /run/vpc-ipam && mount --bind "$1" /run/vpc-ipam && '
              'mount -t tmpfs none /var/log && mkdir -p /var/log/vpc-ipam && mount --bind "$2" /var/log/vpc-ipam'
              ' && shift 2 && exec "$@"')
    return ["ip", "netns", "exec", n.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
            n.path("/run/vpc-ipam"), n.path("/var/log/vpc-ipam")] + argv


def chain(n, cmd, cid, netns):
    """The conflist's plugins run from the host's bin dir as libcni runs them:
    ADD in order, each given the previous result; DEL in reverse order."""
    conf = n.conf
    plugins = conf["plugins"] if cmd == "ADD" else list(reversed(conf["plugins"]))
    bindir = n.path("/opt/cni/bin")
    env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": bindir, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={cid};IgnoreUnknown=1"}
    prev = None
    for p in plugins:
        entry = dict(p, name=conf["name"], cniVersion=conf["cniVersion"])
        if prev is not None:
            entry["prevResult"] = prev
        r = subprocess.run(in_host_mounts(n, [os.path.join(bindir, p["type"])]), env=env,
                           input=json.dumps(entry), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{cmd} {cid}: {p['type']} exit {r.returncode}: {r.stdout} {r.stderr}"
        if cmd == "ADD":
            prev = json.loads(r.stdout)
    return prev


def new_pod(ctx, n, cid):
    sleeper = subprocess.Popen(["ip", "netns", "exec", n.ns, "unshare", "-n", "sleep", "600"])
    try:
        netns = f"/proc/{sleeper.pid}/ns/net"
        node = subprocess.run(["ip", "netns", "exec", n.ns, "readlink", "/proc/self/ns/net"],
                              capture_output=True, text=True).stdout.strip()
        mine = os.readlink("/proc/self/ns/net")
        harness.wait_for(lambda: os.readlink(netns) not in (mine, node), timeout=5, what="pod namespace")
        res = chain(n, "ADD", cid, netns)
        assert res and res.get("ips"), f"ADD {cid}: {res}"
        ip = res["ips"][0]["address"].split("/")[0]
        addrs = subprocess.run(["nsenter", "--net=" + netns, "ip", "-4", "-o", "addr", "show", "eth0"],
                               capture_output=True, text=True).stdout
        assert f"inet {ip}/32" in addrs, f"{cid} eth0: {addrs!r}, want {ip}"
    except BaseException:
        # never left running: it would hold the test's stdout open, and meson with it
        sleeper.kill()
        sleeper.wait()
        raise
    ctx.pods[cid] = {"node": n, "sleeper": sleeper, "netns": netns, "ip": ip}
    return ip


def del_pod(ctx, cid):
    pod = ctx.pods.pop(cid)
    try:
        chain(pod["node"], "DEL", cid, pod["netns"])
    finally:
        pod["sleeper"].kill()
        pod["sleeper"].wait()


def ping(netns, ip):
    return subprocess.run(["nsenter", "--net=" + netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", ip],
                          capture_output=True).returncode == 0


def host_veths(n):
    """The pods' host-side veths in node n's namespace (the conflist's vethPrefix)."""
    prefix = n.conf["plugins"][0]["vethPrefix"]
    out = subprocess.run(["ip", "-n", n.ns, "-o", "link", "show", "type", "veth"], capture_output=True,
                         text=True, check=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [x for x in names if x.startswith(prefix)]


def test_pods_added_by_the_installed_plugin_ping_across_nodes(ctx):
    a, b = ctx.nodes
    for cid in ("pod-a1", "pod-a2", "pod-a3"):
        new_pod(ctx, a, cid)
    new_pod(ctx, b, "pod-b1")
    p = ctx.pods
    assert ping(p["pod-a1"]["netns"], p["pod-b1"]["ip"]), "node 0 pod -> node 1 pod"
    assert ping(p["pod-b1"]["netns"], p["pod-a2"]["ip"]), "node 1 pod -> node 0 pod"
    assert ping(p["pod-a3"]["netns"], p["pod-a1"]["ip"]), "pod -> pod on the same node"
    gone = p["pod-a3"]["ip"]
    veths = host_veths(a)
    assert len(veths) == 3, f"node 0's host veths: {veths}"
    del_pod(ctx, "pod-a3")
    assert len(host_veths(a)) == 2, f"DEL left node 0's host veths {host_veths(a)}"
    rc, out = a.ctl("pods")
    assert rc == 0 and gone not in out, f"the daemon still holds {gone}: {out}"
    assert p["pod-a1"]["ip"] in out and p["pod-a2"]["ip"] in out, out


def daemon_pid(n):
    """The host PID of vpc-ipamd: the entrypoint's (the container's PID 1) child."""
    pid1 = n.inspect()["State"]["Pid"]
    with open(f"/proc/{pid1}/task/{pid1}/children") as f:
        kids = [int(x) for x in f.read().split()]
    for k in kids:
        with open(f"/proc/{k}/comm") as f:
            if f.read().strip() == "vpc-ipamd":
                return k
    raise AssertionError(f"no vpc-ipamd among {kids}")


def test_probes_fail_while_the_daemon_is_stopped(ctx):
    n = ctx.nodes[1]
    pid = daemon_pid(n)
    os.kill(pid, signal.SIGSTOP)
    try:
        for kind in ("readinessProbe", "livenessProbe"):
            rc = n.probe(kind)
            assert rc != 0, f"{kind} passed with the daemon stopped"
            print(f"# {kind} with the daemon stopped: {rc}", flush=True)
    finally:
        os.kill(pid, signal.SIGCONT)
    harness.wait_for(lambda: n.probe("readinessProbe") == 0, timeout=30, what="readiness after SIGCONT")
    assert n.probe("livenessProbe") == 0


def test_stop_is_clean_and_a_restart_keeps_every_address(ctx):
    grace = ctx.spec["terminationGracePeriodSeconds"]
    before = {}
    for n in ctx.nodes:
        rc, out = n.ctl("pods")
        assert rc == 0, out
        before[n.i] = sorted(line for line in out.splitlines() if line.strip())
        held = [p["ip"] for p in ctx.pods.values() if p["node"] is n]
        assert held and all(ip in out for ip in held), f"node {n.i}: {held} not all in {out}"
    for n in ctx.nodes:
        t0 = time.monotonic()
        podman("stop", "-t", str(grace), n.name, timeout=grace + 30)
        took = time.monotonic() - t0
        st = n.inspect()["State"]
        assert st["ExitCode"] == 0, f"node {n.i}: exit {st['ExitCode']}: {n.logs()[-1500:]}"
        assert took < grace, f"node {n.i}: stop took {took:.1f} s, the grace period is {grace} s"
        assert "vpc-ipamd exited with status 0" in n.logs(), n.logs()[-1500:]
        print(f"# node {n.i}: stopped in {took:.2f} s", flush=True)
    assert os.path.exists(ctx.nodes[0].path("/var/lib/vpc-ipam", "pool.db")), "the store is not on the hostPath"
    for n in ctx.nodes:
        podman("start", n.name)
    for n in ctx.nodes:
        harness.wait_for(lambda: n.probe("readinessProbe") == 0, timeout=90, interval=0.5,
                         what=f"node {n.i} ready after the restart")
        rc, out = n.ctl("pods")
        after = sorted(line for line in out.splitlines() if line.strip())
        assert rc == 0 and after == before[n.i], f"node {n.i}: pods before {before[n.i]}, after {after}"
    p = ctx.pods
    assert ping(p["pod-a1"]["netns"], p["pod-b1"]["ip"]) and ping(p["pod-b1"]["netns"], p["pod-a2"]["ip"])
    for cid in list(p):
        ip, n = p[cid]["ip"], p[cid]["node"]
        del_pod(ctx, cid)
        rc, out = n.ctl("pods")
        assert rc == 0 and ip not in out, f"{cid}: {ip} still held: {out}"


def test_what_ran_is_what_the_manifest_says(ctx):
    c = ctx.spec["containers"][0]
    vols = {v["name"]: v for v in ctx.spec["volumes"]}
    for n in ctx.nodes:
        info = n.inspect()
        hc = info["HostConfig"]
        sc = c["securityContext"]
        want_caps = sorted("CAP_" + x for x in sc["capabilities"]["add"])
        assert sorted(info.get("EffectiveCaps") or []) == want_caps, info.get("EffectiveCaps")
        assert hc["ReadonlyRootfs"] is sc["readOnlyRootFilesystem"]
        assert ("no-new-privileges" in (hc.get("SecurityOpt") or [])) is (not sc["allowPrivilegeEscalation"])
        assert info["Config"]["User"] == str(sc["runAsUser"])
        assert hc["NetworkMode"] == f"ns:/run/netns/{n.ns}", hc["NetworkMode"]
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        for m in c["volumeMounts"]:
            v = vols[m["name"]]
            if "hostPath" in v:
                got = mounts.get(m["mountPath"])
                assert got and got["Source"] == n.host[v["hostPath"]["path"]], (m, got)
                assert got["RW"] is not bool(m.get("readOnly")), (m, got)
            else:
                assert m["mountPath"] in (hc.get("Tmpfs") or {}), (m, hc.get("Tmpfs"))
        env = dict(x.split("=", 1) for x in info["Config"]["Env"])
        for k, v in n.env:
            assert env.get(k) == v, f"{k}: {env.get(k)!r}, manifest {v!r}"
        assert info["Config"]["StopTimeout"] == ctx.spec["terminationGracePeriodSeconds"]
        assert info["ImageName"] == IMAGE


def test_the_machines_namespace_is_unchanged(ctx):
    after = host_state()
    for k in ("links", "nft", "iptables"):
        assert after[k] == ctx.before[k], f"the machine's {k} changed:\nbefore {ctx.before[k]}\nafter {after[k]}"


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup=setup, teardown=teardown))

"""containerd, started by a test inside a node namespace of the emulated VPC.

Everything containerd and ctr touch stays inside what the test made:

- a holder process (`sleep`) entered into the node's network namespace and a
  private mount namespace of its own, where /etc, /opt, /var/lib and /run are
  overlays whose upper layers live in the test's temp dir. So the vpc-cni
  conflist in /etc/cni/net.d and the plugin in /opt/cni/bin that `ctr --cni`
  insists on (no flags change them), /opt/containerd, /var/lib/cni and
  /run/containerd/{s,runc} exist only there and vanish with the namespace;
- containerd, its shims and every ctr are run with `nsenter -t <holder> -m -n`,
  with root/state/sockets under the temp dir; the CRI plugin reads its CNI
  config and binaries from the temp dir and mounts pod namespaces under its
  state dir (netns_mounts_under_state_dir), never in /run/netns;
- the sandbox image is built here (tests/cni/pause.c, gcc -static, an OCI
  layout written by hand) and imported: no registry is reached;
- stop() kills the tasks, containerd, then any process still in the private
  mount namespace (only processes started there: shims, pause) by PID, the
  holder last, and removes the cgroups containerd made that did not exist
  before (/default, /k8s.io and the test's parent under each controller).

The plugin each caller execs is a wrapper that appends one line per call
("DEL id=... netns=... prev=yes") to calls.log, then execs vpc-cni.
"""

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = "docker.io/library/pause:local"
OVERLAID = ("etc", "opt", "var/lib", "run")
CGROUP_NAMES = ("default", "k8s.io", "vpc-ipam-ctrd")


def why_not():
    """None when containerd can run here, else the precise reason."""
    for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "nsenter", "unshare", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/deps: containerd runc containernetworking-plugins gcc)"
    if not os.path.exists("/usr/lib/cni/loopback"):
        return "/usr/lib/cni/loopback missing (containernetworking-plugins)"
    if not any(os.path.exists(p) for p in ("/usr/lib/x86_64-linux-gnu/libc.a", "/usr/lib/aarch64-linux-gnu/libc.a",
                                           "/usr/lib/libc.a")):
        return "no static libc (libc6-dev) to build the pause image"
    return None


def _blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def build_pause_image(workdir):
    """Compile pause.c and write an OCI image archive of it; returns its path."""
    binary = os.path.join(workdir, "pause")
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", binary, os.path.join(HERE, "pause.c")], check=True,
                   capture_output=True)
    layout = os.path.join(workdir, "oci")
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        info = t.gettarinfo(binary, arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(binary, "rb") as f:
            t.addfile(info, f)
    layer_desc = _blob(blobs, layer.getvalue())
    config = {"architecture": "amd64" if os.uname().machine == "x86_64" else "arm64", "os": "linux",
              "config": {"Entrypoint": ["/pause"]},
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = _blob(blobs, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": dict(config_desc, mediaType="application/vnd.oci.image.config.v1+json"),
                "layers": [dict(layer_desc, mediaType="application/vnd.oci.image.layer.v1.tar")]}
    manifest_desc = _blob(blobs, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [dict(manifest_desc, mediaType=manifest["mediaType"], annotations={
        "io.containerd.image.name": IMAGE, "org.opencontainers.image.ref.name": "local"})]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    archive = os.path.join(workdir, "pause-oci.tar")
    with tarfile.open(archive, "w") as t:
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(os.path.join(layout, name), arcname=name)
    return archive


def _config_toml(d):
    return f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni-bin"
    conf_dir = "{d}/cni-conf"
    max_conf_num = 1
"""


WRAPPER = """#!/bin/sh
# logs the call, then runs vpc-cni with the same stdin
in=$(cat)
case "$in" in *'"prevResult"'*) prev=yes ;; *) prev=no ;; esac
echo "$CNI_COMMAND id=$CNI_CONTAINERID netns=$CNI_NETNS prev=$prev" >> {log}
printf '%s' "$in" | exec {real}
"""


class Containerd:
    def __init__(self, workdir, node_ns, plugin, plugin_conf):
        self.d = workdir
        self.node_ns = node_ns
        self.sock = os.path.join(workdir, "containerd.sock")
        self.calls_log = os.path.join(workdir, "calls.log")
        self.plugin = plugin
        self.plugin_conf = plugin_conf
        self.holder = self.proc = self.holder_pid = None
        self.cgroups_before = self._cgroups()

    # --- start ---------------------------------------------------------------------------------
    def _files(self):
        os.makedirs(os.path.join(self.d, "cni-bin"))
        os.makedirs(os.path.join(self.d, "cni-conf"))
        wrapper = os.path.join(self.d, "cni-bin", "vpc-cni")
        with open(wrapper, "w") as f:
            f.write(WRAPPER.format(log=self.calls_log, real=self.plugin))
        os.chmod(wrapper, 0o755)
        os.symlink("/usr/lib/cni/loopback", os.path.join(self.d, "cni-bin", "loopback"))
        conflist = {"cniVersion": "1.0.0", "name": "vpc", "plugins": [dict(self.plugin_conf, type="vpc-cni")]}
        with open(os.path.join(self.d, "cni-conf", "10-vpc.conflist"), "w") as f:
            json.dump(conflist, f)
        with open(os.path.join(self.d, "config.toml"), "w") as f:
            f.write(_config_toml(self.d))

    def _holder_script(self):
        lines = ["set -e"]
        for i, path in enumerate(OVERLAID):
            up, work = os.path.join(self.d, "ov", str(i), "up"), os.path.join(self.d, "ov", str(i), "work")
            lines.append(f"mkdir -p {up} {work}")
            lines.append(f"mount -t overlay overlay -o lowerdir=/{path},upperdir={up},workdir={work} /{path}")
        lines += ["mkdir -p /etc/cni/net.d /opt/cni/bin",
                  f"cp {self.d}/cni-conf/10-vpc.conflist /etc/cni/net.d/",
                  f"ln -s {self.d}/cni-bin/vpc-cni {self.d}/cni-bin/loopback /opt/cni/bin/",
                  f"touch {self.d}/holder.ready",
                  "exec sleep 3600"]
        return "\n".join(lines)

    def start(self, image_archive):
        self._files()
        self.holder = subprocess.Popen(["nsenter", "--net=/run/netns/" + self.node_ns, "unshare", "-m",
                                        "--propagation", "private", "sh", "-c", self._holder_script()],
                                       stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.d, "holder.log"), "w"))
        self.holder_pid = self.holder.pid       # nsenter, unshare and sh exec in place: it ends as the sleep
        self._wait(lambda: os.path.exists(os.path.join(self.d, "holder.ready")), 10, "the holder's mounts",
                   os.path.join(self.d, "holder.log"), self.holder)
        log = open(os.path.join(self.d, "containerd.log"), "w")
        self.proc = subprocess.Popen(self.ns_cmd("containerd", "--config", os.path.join(self.d, "config.toml")),
                                     stdout=log, stderr=subprocess.STDOUT)
        self._wait(lambda: self.ctr("version", check=False).returncode == 0, 20, "containerd serving",
                   os.path.join(self.d, "containerd.log"), self.proc)
        for ns in ("default", "k8s.io"):
            self.ctr("-n", ns, "images", "import", image_archive)
        return self

    def _wait(self, cond, timeout, what, log, proc):
        end = time.monotonic() + timeout
        while not cond():
            if proc.poll() is not None or time.monotonic() > end:
                with open(log) as f:
                    tail = f.read()[-3000:]
                raise AssertionError(f"{what}: not there after {timeout}s (exit {proc.poll()}): {tail}")
            time.sleep(0.05)

    # --- use -----------------------------------------------------------------------------------
    def ns_cmd(self, *argv):
        return ["nsenter", "-t", str(self.holder_pid), "-m", "-n", "--"] + list(argv)

    def ctr(self, *args, check=True, timeout=60):
        p = subprocess.run(self.ns_cmd("ctr", "-a", self.sock, *args), capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)}: {p.returncode}: {p.stderr.strip()}")
        return p

    def ctr_bg(self, *args, log):
        return subprocess.Popen(self.ns_cmd("ctr", "-a", self.sock, *args), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)

    def task_pid(self, name, ns="default"):
        for line in self.ctr("-n", ns, "tasks", "ls").stdout.splitlines()[1:]:
            f = line.split()
            if f and f[0] == name and f[2] == "RUNNING":
                return int(f[1])
        return None

    def calls(self):
        try:
            with open(self.calls_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    # --- stop ----------------------------------------------------------------------------------
    def _mount_ns(self, pid):
        try:
            return os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            return None

    def _left_in_ns(self):
        """PIDs in the holder's private mount namespace other than the holder: started there by us."""
        if not self.holder or self.holder.poll() is not None:
            return []                   # its PID may be anyone's now
        mine = self._mount_ns(self.holder_pid)
        if not mine or mine == self._mount_ns("self"):
            return []                   # never the test's own (the machine's) mount namespace
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != self.holder_pid
                and self._mount_ns(p) == mine]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            for ns in ("default", "k8s.io"):
                for line in self.ctr("-n", ns, "tasks", "ls", check=False).stdout.splitlines()[1:]:
                    if line.split():
                        self.ctr("-n", ns, "tasks", "kill", "-s", "KILL", line.split()[0], check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for _ in range(50):
            left = self._left_in_ns()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.holder and self.holder.poll() is None:
            self.holder.kill()
            self.holder.wait()
        self._remove_cgroups()

    def _cgroups(self):
        out = set()
        root = "/sys/fs/cgroup"
        for ctrl in os.listdir(root) if os.path.isdir(root) else []:
            for name in CGROUP_NAMES:
                if os.path.isdir(os.path.join(root, ctrl, name)):
                    out.add(os.path.join(root, ctrl, name))
        return out

    def _remove_cgroups(self):
        """Cgroups made by this containerd: any process left in them (a container
        whose shim died) is ours; kill it, then remove the directories."""
        for top in self._cgroups() - self.cgroups_before:
            for dirpath, _, files in os.walk(top):
                if "cgroup.procs" in files:
                    with open(os.path.join(dirpath, "cgroup.procs")) as f:
                        for pid in f.read().split():
                            try:
                                os.kill(int(pid), signal.SIGKILL)
                            except ProcessLookupError:
                                pass
        for top in self._cgroups() - self.cgroups_before:
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                for _ in range(20):
                    try:
                        os.rmdir(dirpath)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)

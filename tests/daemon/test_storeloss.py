"""vpc-ipamd losing its store, or its store refusing to commit. TAP on stdout.

One emulated node, the real daemon and the real vpc-cni plugin wiring pods
(named network namespaces). The promise: no address is handed out twice and
the daemon's readiness tells the truth.

  - the store's directory removed with pods live, then a restart: the kernel
    (each pod's host veth: the plugin's alias and a /32 route) witnesses the
    pods' leases, so new pods get other addresses and an old pod's DEL works;
  - the same while running: readiness goes false within a reconciler pass,
    the daemon rebuilds the store from EC2 and the kernel, and is ready again;
  - the disk full under the store (a small tmpfs in a private mount
    namespace): not ready with the reason, CNI STATUS 51, a DEL that could
    not be recorded answers 11; once space returns, ready again by itself,
    no open intent left, and the DEL goes through;
  - the disk full at start: the daemon retries opening and serves once fixed;
  - EC2 not answering: the pool's reason says so within seconds (STATUS 51
    with nothing available) and is cleared once EC2 answers.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ipamd import IPAMD, STARTED, Daemon, harness, stop_all, wait_for  # noqa: E402
from test_ipamd import world  # noqa: E402

CNI = os.environ.get("VPC_CNI", "")
IPAMCTL = os.environ.get("VPC_IPAMCTL", "")
ENV = {"WARM_IP_TARGET": "3", "MINIMUM_IP_TARGET": "6", "IP_COOLDOWN_PERIOD": "1", "VPC_IPAM_ADD_WAIT": "5"}
PASS_S = 5                      # RECONCILER_TICK_MS


class Pods:
    """Pods as a runtime makes them: a named netns, then vpc-cni ADD / DEL."""

    def __init__(self, w):
        self.w = w
        self.ns = w.node_ns(0)
        self.made = []
        self.results = {}

    def cni(self, d, cmd, name, prev=None):
        conf = {"cniVersion": "1.1.0", "name": "storeloss", "type": "vpc-cni", "socket": d.sock}
        if prev:
            conf["prevResult"] = prev
        env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": name, "CNI_NETNS": f"/var/run/netns/{name}",
               "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(CNI),
               "CNI_ARGS": f"K8S_POD_NAMESPACE=storeloss;K8S_POD_NAME={name};IgnoreUnknown=1"}
        p = subprocess.run(["ip", "netns", "exec", self.ns, CNI], env=env, input=json.dumps(conf),
                           capture_output=True, text=True, timeout=60)
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else {})

    def add(self, d, i):
        name = f"{self.w.prefix}-s{i}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.made.append(name)
        rc, out = self.cni(d, "ADD", name)
        assert rc == 0, (name, rc, out, d.tail())
        self.results[name] = out
        return name, out["ips"][0]["address"].split("/")[0]

    def delete(self, d, name):
        return self.cni(d, "DEL", name, self.results.get(name))

    def ip_in_pod(self, name):
        out = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show", "eth0"], capture_output=True,
                             text=True).stdout
        return out.split()[3].split("/")[0] if out.strip() else None

    def down(self):
        for name in self.made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def held(d):
    return {p["container_id"]: p["ip"] for p in d.call({"op": "pods"})["pods"]}


def no_duplicate(pods, names):
    """Every live pod's eth0 address, from the pods themselves: none twice."""
    ips = [pods.ip_in_pod(n) for n in names]
    assert None not in ips, ips
    assert len(ips) == len(set(ips)), f"an address is in two pods: {sorted(ips)}"
    return ips


def status(d):
    return d.try_call({"op": "status"}, timeout=3) or {}


def run(fn, **kw):
    w = world()
    pods = Pods(w)
    try:
        fn(w, pods)
    finally:
        stop_all()
        pods.down()
        w.down()


def store_env(w, sub="state"):
    os.makedirs(os.path.join(w.dir, sub), exist_ok=True)
    return dict(ENV, VPC_IPAM_DB=os.path.join(w.dir, sub, "pool.db"))


# --- the store lost -----------------------------------------------------------------

def test_store_removed_with_pods_live_then_restart():
    def body(w, pods):
        env = store_env(w)
        d = Daemon(w, env=env).start()
        old = dict(pods.add(d, i) for i in range(5))
        d.stop()
        shutil.rmtree(os.path.dirname(env["VPC_IPAM_DB"]))      # the operator's rm -rf
        d = Daemon(w, env=env).start()
        wait_for(lambda: status(d).get("ready"), timeout=30, what="the restarted daemon ready")
        # Every live pod's address is a lease again, for that pod.
        wait_for(lambda: all(held(d).get(n) == ip for n, ip in old.items()), timeout=10,
                 what="the live pods' leases rebuilt from the kernel")
        new = dict(pods.add(d, i) for i in range(5, 10))
        assert not set(new.values()) & set(old.values()), (old, new)
        no_duplicate(pods, list(old) + list(new))
        first = next(iter(old))
        rc, out = pods.delete(d, first)
        assert rc == 0, out
        assert first not in held(d)
    run(body)


def test_store_removed_while_running():
    def body(w, pods):
        env = store_env(w)
        d = Daemon(w, env=env).start()
        old = dict(pods.add(d, i) for i in range(3))
        wait_for(lambda: status(d).get("ready"), timeout=20, what="ready")
        # A slow EC2 (as a real one can be) keeps the rebuild, and so the not-ready window, long enough to see.
        w.ctl("POST", "/latency", {"api": {"DescribeNetworkInterfaces": 2}})
        shutil.rmtree(os.path.dirname(env["VPC_IPAM_DB"]))
        seen = []
        def not_ready():
            st = status(d)
            if st.get("ready") is False:
                seen.append(st)
            return bool(seen)
        try:
            wait_for(not_ready, timeout=PASS_S * 2 + 2, interval=0.05,
                     what="readiness to go false within a reconciler pass")
        except AssertionError as e:
            raise AssertionError(f"{e}: {d.tail(8)}")
        assert "pool store" in seen[0]["reason"], seen[0]
        w.ctl("POST", "/latency", {"api": {"DescribeNetworkInterfaces": 0}})
        wait_for(lambda: status(d).get("ready"), timeout=40, what="readiness back after the rebuild")
        assert os.path.exists(env["VPC_IPAM_DB"]), "the store was not recreated at its path"
        wait_for(lambda: all(held(d).get(n) == ip for n, ip in old.items()), timeout=10,
                 what="the live pods' leases in the new store")
        new = dict(pods.add(d, i) for i in range(3, 6))
        no_duplicate(pods, list(old) + list(new))
        with open(d.log) as f:
            assert "was removed while running" in f.read()
    run(body)


# --- the disk full --------------------------------------------------------------------

class PrivateMounts:
    """A private mount namespace (held by a sleeping process) with a small tmpfs at dir:
    the daemons of a test run in it, and the test fills, empties or remounts it there,
    never touching the machine's own disks."""

    def __init__(self, directory):
        self.dir = directory
        script = 'mount -t tmpfs -o size=16m storeloss "$0" && echo mounted && exec sleep 3600'
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, directory],
                                       stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout.readline().strip() == "mounted", "could not mount the tmpfs"

    def run(self, script):
        return subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "sh", "-c", script],
                              capture_output=True, text=True, timeout=30)

    def fill(self):
        self.run(f'cat /dev/zero > "{self.dir}/filler" 2>/dev/null; true')
        df = self.run(f'df -k "{self.dir}" | tail -1').stdout.split()
        assert df and df[3] == "0", f"the tmpfs is not full: {df}"

    def unfill(self):
        self.run(f'rm -f "{self.dir}/filler"')

    def remount(self, mode):
        p = self.run(f'mount -o remount,{mode} "{self.dir}"')
        assert p.returncode == 0, p.stderr

    def down(self):
        self.holder.kill()
        self.holder.wait()


class MountedDaemon(Daemon):
    """The daemon started inside a PrivateMounts namespace."""

    def __init__(self, w, env, mounts):
        super().__init__(w, env=env)
        self.mounts = mounts

    def start(self, wait=True):
        w = self.world.w
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "AWS_ACCESS_KEY_ID": w["credentials"]["access_key_id"],
               "AWS_SECRET_ACCESS_KEY": w["credentials"]["secret_access_key"],
               "AWS_ENDPOINT_URL_EC2": w["ec2_endpoint"], "AWS_REGION": w["region"],
               "VPC_IPAM_SOCKET": self.sock, "INTROSPECTION_BIND_ADDRESS": "unix:" + self.introspect,
               "METRICS_BIND_ADDRESS": "unix:" + self.metrics, "AWS_VPC_K8S_CNI_LOGLEVEL": "debug"}
        env.update(self.env)
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(["nsenter", "-t", str(self.mounts.holder.pid), "-m", "--",
                                      "ip", "netns", "exec", self.ns, IPAMD],
                                     env=env, stdout=self.logf, stderr=subprocess.STDOUT)
        STARTED.append(self)
        if wait:
            wait_for(lambda: self.alive_or_raise() and self.try_call({"op": "status"}) is not None,
                     timeout=10, what="vpc-ipamd serving")
        return self


def run_mounted(fn):
    def body(w, pods):
        env = store_env(w, "tmpfs")
        mounts = PrivateMounts(os.path.dirname(env["VPC_IPAM_DB"]))
        try:
            fn(w, pods, env, mounts)
        finally:
            stop_all()
            mounts.down()
    run(body)


def test_disk_full_is_not_ready_and_recovers():
    def body(w, pods, env, mounts):
        d = MountedDaemon(w, env, mounts).start()
        wait_for(lambda: status(d).get("ready") and status(d).get("available", 0) > 0, timeout=30,
                 what="ready with addresses")
        name, ip = pods.add(d, 0)
        mounts.fill()
        wait_for(lambda: status(d).get("ready") is False, timeout=PASS_S * 2 + 5, interval=0.1,
                 what="not ready while the store cannot commit")
        st = status(d)
        assert "cannot commit" in st["reason"], st
        rc, out = pods.cni(d, "STATUS", "status")
        assert rc != 0 and out.get("code") == 51, (rc, out)
        # A DEL whose release cannot be recorded is not a success: the runtime must repeat it.
        rc, out = pods.delete(d, name)
        assert rc != 0 and out.get("code") == 11, (rc, out)
        assert held(d).get(name) == ip
        if IPAMCTL:     # alive all the same: restarting would not make room
            p = subprocess.run([IPAMCTL, "--socket", d.sock, "live", "--max-stall", "60"], capture_output=True,
                               text=True, timeout=10)
            assert p.returncode == 0, p.stdout + p.stderr
        mounts.unfill()
        wait_for(lambda: status(d).get("ready"), timeout=PASS_S * 3 + 30, what="ready again once writes succeed")
        wait_for(lambda: d.call({"op": "intents"})["intents"] == [], timeout=30, what="no open intent")
        rc, out = pods.delete(d, name)
        assert rc == 0, (rc, out)
        assert name not in held(d)
        pods.add(d, 1)
    run_mounted(body)


def test_store_unwritable_at_start_recovers_by_itself():
    def body(w, pods, env, mounts):
        d = MountedDaemon(w, env, mounts).start()
        wait_for(lambda: status(d).get("ready") and status(d).get("available", 0) > 0, timeout=30,
                 what="ready with addresses")
        d.stop()
        mounts.fill()
        d = MountedDaemon(w, env, mounts).start(wait=False)
        # Not ready (not serving, or serving not ready) and still running: retrying, not exiting.
        def retrying():
            with open(d.log) as f:
                return d.alive_or_raise() and not status(d).get("ready") and "retrying" in f.read()
        wait_for(retrying, timeout=PASS_S * 2 + 10, what="not ready and retrying while the store cannot commit")
        mounts.unfill()
        wait_for(lambda: d.alive_or_raise() and status(d).get("ready"), timeout=90,
                 what="ready again, without a restart, once the store is writable")
        name, ip = pods.add(d, 0)
        assert held(d).get(name) == ip
    run_mounted(body)


# --- EC2 unreachable ----------------------------------------------------------------------

def test_ec2_unreachable_is_reported_at_once_and_cleared():
    def body(w, pods):
        d = Daemon(w, env={"WARM_IP_TARGET": "1", "MINIMUM_IP_TARGET": "2", "VPC_IPAM_ADD_WAIT": "1"}).start()
        wait_for(lambda: status(d).get("ready") and d.pool()["available"] >= 2, timeout=30, what="a warm pool")
        w.ctl("POST", "/faults", {"action": "*", "kind": "timeout", "seconds": 8, "count": 100000})
        i = 0
        while d.pool()["available"] > 0:       # take every free address: the pool must grow through EC2
            assert d.add(f"p{i}")["ok"]
            i += 1
        # Within a few seconds, not after the client's retries run out (18-50 s).
        wait_for(lambda: "EC2" in d.pool()["reason"], timeout=PASS_S + 5, interval=0.1,
                 what="the pool's reason to name EC2 while it does not answer")
        st = status(d)
        assert "EC2" in st["reason"] and st["available"] == 0, st
        rc, out = pods.cni(d, "STATUS", "status")
        assert rc != 0 and out.get("code") == 51, (rc, out)
        w.ctl("DELETE", "/faults")
        wait_for(lambda: d.pool()["reason"] == "" and d.pool()["available"] > 0, timeout=60,
                 what="the EC2 reason cleared once EC2 answers")
    run(body)


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

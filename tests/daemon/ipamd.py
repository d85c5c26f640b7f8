"""Test support for vpc-ipamd's integration suites: run the real daemon inside
a node of an emulated VPC and talk to it the way the plugin does.

Daemon(world, node, env) starts `vpc-ipamd` with `ip netns exec <node ns>` —
it then reaches IMDS and EC2 exactly as on an instance — with its socket,
store and introspection socket in the world's directory. stop() sends SIGTERM
and kill() SIGKILL, to the PID it started. call() sends one request over the
SOCK_SEQPACKET socket; http() reads the introspection/metrics endpoints over
their Unix sockets.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "emulator"))

import harness  # noqa: E402
from harness import wait_for  # noqa: E402,F401

IPAMD = os.environ.get("VPC_IPAMD", "")

# Every daemon a test started, so a failing test cannot leave one running.
STARTED = []


def stop_all():
    while STARTED:
        STARTED.pop().stop()


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


class Daemon:
    def __init__(self, world, node=0, env=None, name=None, k8s=False):
        self.world = world
        self.k8s = k8s           # run as `vpc-world exec` does: service account, MY_NODE_NAME, API server
        self.node = node
        self.ns = world.node_ns(node)
        base = os.path.join(world.dir, name or f"n{node}")
        self.sock = base + ".sock"
        self.db = base + ".db"
        self.introspect = base + "-introspect.sock"
        self.metrics = base + "-metrics.sock"
        self.log = base + ".log"
        self.env = dict(env or {})
        self.proc = None

    def start(self, wait=True, gate=False):
        """Start the daemon; with gate, `ip netns exec` and a shell are set up now and the shell execs the
        daemon (same PID) only at release(): many daemons can then start within milliseconds."""
        w = self.world.w
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_ACCESS_KEY_ID": w["credentials"]["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": w["credentials"]["secret_access_key"],
            "AWS_ENDPOINT_URL_EC2": w["ec2_endpoint"],
            "AWS_REGION": w["region"],
            "VPC_IPAM_SOCKET": self.sock,
            "VPC_IPAM_DB": self.db,
            "INTROSPECTION_BIND_ADDRESS": "unix:" + self.introspect,
            "METRICS_BIND_ADDRESS": "unix:" + self.metrics,
            "AWS_VPC_K8S_CNI_LOGLEVEL": "debug",
        }
        prefix = []
        if self.k8s:
            from vpcworld import k8sapi
            prefix, k8s_env = k8sapi.exec_prefix(w, w["nodes"][self.node])
            env.update(kv.split("=", 1) for kv in k8s_env)
        env.update(self.env)
        self.logf = open(self.log, "a")
        argv = ["ip", "netns", "exec", self.ns] + (["sh", "-c", 'read -r _ && exec "$0" "$@"'] if gate else [])
        self.proc = subprocess.Popen(argv + prefix + [IPAMD], env=env, stdin=subprocess.PIPE if gate else None,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        STARTED.append(self)
        if wait:
            wait_for(lambda: self.alive_or_raise() and self.try_call({"op": "status"}) is not None,
                     timeout=10, what="vpc-ipamd serving")
        return self

    def release(self):
        """Let a daemon started with gate=True exec."""
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()

    def alive_or_raise(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"vpc-ipamd exited with {self.proc.returncode}: {self.tail()}")
        return True

    def tail(self, n=30):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and not self.logf.closed:
            self.logf.close()
        return self.proc.returncode if self.proc else None

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def try_call(self, req, timeout=5):
        try:
            return self.call(req, timeout)
        except OSError:
            return None

    def call(self, req, timeout=15):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(timeout)
        try:
            s.connect(self.sock)
            s.send(json.dumps(dict({"v": 1}, **req)).encode())
            return json.loads(s.recv(65536))
        finally:
            s.close()

    def add(self, cid, ifname="eth0", timeout=15):
        return self.call({"op": "add", "container_id": cid, "ifname": ifname, "netns": "/var/run/netns/" + cid,
                          "pod_namespace": "default", "pod_name": cid, "pod_uid": "", "pod_infra_container_id": cid},
                         timeout)

    def delete(self, cid, ifname="eth0"):
        return self.call({"op": "del", "container_id": cid, "ifname": ifname, "reason": "PodDeleted"})

    def pool(self):
        return self.call({"op": "pool"})["pool"]

    def http(self, path, metrics=False):
        c = UnixHTTP(self.metrics if metrics else self.introspect)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    def metric(self, name):
        """One unlabelled sample of /metrics, as a number (AssertionError when absent)."""
        st, body = self.http("/metrics", metrics=True)
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no {name} in /metrics (status {st})")

    def wait_passes(self, n=2, timeout=15):
        """Wait until the reconciler has begun n more passes (vpcipam_reconciles_total, counted as a
        pass plans): with n=2, one whole pass (plan, then housekeeping) ran after this call. The
        evidence that a "nothing happened" assertion gave the reconciler its chance."""
        start = self.metric("vpcipam_reconciles_total")
        wait_for(lambda: self.alive_or_raise() and self.metric("vpcipam_reconciles_total") >= start + n,
                 timeout=timeout, interval=0.05, what=f"{n} reconciler passes after {start:.0f}")


def secondary_ips(world, instance_id):
    """EC2's truth: {eni_id: set(secondary IPs)} of ENIs attached to the instance."""
    out = {}
    for e in world.truth()["enis"]:
        att = e.get("attachment") or {}
        if att.get("instance_id") == instance_id:
            out[e["id"]] = set(e.get("secondary_ips") or [])
    return out

"""A Kubernetes API stand-in: Nodes and ENIConfigs over HTTPS, as the real API shapes them.

At world start make_pki() creates a CA and a server certificate with the
openssl CLI (in DIR/k8s/), and a service-account directory that node
processes see at the standard path (see exec_prefix()):

  DIR/k8s/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}

The API listens on 192.0.2.10:443 inside the fabric (KUBERNETES_SERVICE_HOST
and _PORT for node processes) and on 127.0.0.1 (tests on the host). It
serves, for the bearer token in the token file only (anything else: 401):

  GET /version
  GET /api/v1/nodes/<name>                                   one per world node,
                                                             named like its private DNS name
  GET /apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/<name>

and enforces the DaemonSet's RBAC (scripts/deploy/daemonset.yaml: get nodes,
get eniconfigs): any other verb (list, create, update, patch, delete, watch)
or resource is a 403 Status, as RBAC answers it. Missing objects are 404
Status objects with the real message, reason and details.

A plain-HTTP control API on 127.0.0.1 (world.json kubernetes.control_endpoint):

  GET  /nodes, GET /eniconfigs          the objects as served
  POST /nodes/<name>                    {"labels": {k: v|null}, "annotations": {k: v|null},
                                         "unschedulable": bool} (a cordon adds the
                                         node.kubernetes.io/unschedulable:NoSchedule taint)
  PUT  /eniconfigs/<name>               {"subnet", "securityGroups": [..]} create or replace
  DELETE /eniconfigs/<name>
  POST /token                           {"revoke_old": bool}: rotate the token file
  GET  /stats                           requests by (verb, path, status)
  POST /faults                          {"status": 5xx|429, "count": N, "delay": s}
                                        (count 0 or absent: until DELETE /faults)
  DELETE /faults
"""

import copy
import json
import os
import secrets
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler

from .model import ip_str

API_PORT = 443
SA_SUBPATH = "secrets/kubernetes.io/serviceaccount"
SA_PATH = "/var/run/" + SA_SUBPATH
ACCOUNT = "system:serviceaccount:kube-system:vpc-ipam"
CRD_GROUP = "crd.k8s.amazonaws.com"
CRD_PREFIX = f"/apis/{CRD_GROUP}/v1alpha1/eniconfigs"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

# Run inside `ip netns exec NODE unshare -m --propagation private`: /run is
# replaced, in this mount namespace only, by DIR/k8s/run (shared by every
# process of the world, so a socket one creates is seen by the others), into
# which each entry of the machine's /run is bind-mounted back. The machine's
# /run is never written to; secrets/ comes from the world's directory.
_EXEC_SCRIPT = r"""
set -e
run="$1"; old="$2"; shift 2
mount --rbind /run "$old"
mount --bind "$run" /run
for e in "$old"/* "$old"/.[!.]*; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  n=${e##*/}
  [ "$n" = secrets ] && continue
  # best effort per entry: one that vanishes meanwhile, or a concurrent exec
  # creating the same mount point, must not fail the command
  if [ -L "$e" ]; then
    [ -L "/run/$n" ] || ln -sfn "$(readlink "$e")" "/run/$n" || true
  elif [ -d "$e" ]; then
    mkdir -p "/run/$n" && mount --rbind "$e" "/run/$n" || true
  else
    { [ -e "/run/$n" ] || : > "/run/$n"; } && mount --bind "$e" "/run/$n" || true
  fi
done
umount -l "$old"
exec "$@"
"""


def _now_iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t if t is not None else time.time()))


def _status(code, reason, message, details=None):
    s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details is not None:
        s["details"] = details
    return s


def _openssl(args, cwd):
    p = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {p.stderr.strip()}")


def make_pki(directory, hosts):
    """A CA and a server certificate for hosts (IP addresses and names) in directory."""
    os.makedirs(directory, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
                                      "-subj", "/CN=vpc-world-kubernetes-ca",
                                      "-addext", "basicConstraints=critical,CA:TRUE",
                                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    _openssl(["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"],
             directory)
    san = ",".join(("IP:" if h[0].isdigit() else "DNS:") + h for h in hosts)
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
              "-out", "server.crt", "-days", "7", "-extfile", "server.ext"], directory)


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Store:
    """The objects, the token and the faults; one lock guards them."""

    def __init__(self, sa_dir):
        self.lock = threading.Lock()
        self.sa_dir = sa_dir
        self.nodes, self.eniconfigs = {}, {}
        self.rv = 1000
        self.tokens = set()
        self.fault = None            # {"status", "count", "delay"}
        self.stats = {}

    def _next_rv(self):
        self.rv += 1
        return str(self.rv)

    def _meta(self, name):
        return {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(),
                "creationTimestamp": _now_iso()}

    def rotate_token(self, revoke_old=False):
        with self.lock:
            tok = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(96)     # opaque to clients, JWT-looking
            if revoke_old:
                self.tokens.clear()
            self.tokens.add(tok)
            _write_atomic(os.path.join(self.sa_dir, "token"), tok)
            return {"tokens_valid": len(self.tokens)}

    def add_node(self, name, inst, region):
        t = inst.type
        ip = ip_str(inst.primary_eni.primary)
        pods = str(min(t.enis * (t.ipv4_per_eni - 1) + 2, 250))
        node = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": dict(self._meta(name), labels={
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": t.name,
                "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": t.name,
                "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": inst.subnet.az,
                "vpc-world/node": inst.node_name},
                annotations={"alpha.kubernetes.io/provided-node-ip": str(ip),
                             "node.alpha.kubernetes.io/ttl": "0",
                             "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
            "spec": {"providerID": f"aws:///{inst.subnet.az}/{inst.id}"},
            "status": {
                "capacity": {"cpu": str(t.vcpus), "ephemeral-storage": "83873772Ki", "hugepages-1Gi": "0",
                             "hugepages-2Mi": "0", "memory": f"{t.memory_mib * 1024}Ki", "pods": pods},
                "allocatable": {"cpu": f"{t.vcpus * 1000 - 70}m", "ephemeral-storage": "76224326324",
                                "memory": f"{t.memory_mib * 1024 - 600000}Ki", "pods": pods},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": _now_iso(),
                                "lastTransitionTime": _now_iso(), "reason": "KubeletReady",
                                "message": "kubelet is posting ready status"}],
                "addresses": [{"type": "InternalIP", "address": str(ip)},
                              {"type": "InternalDNS", "address": name}, {"type": "Hostname", "address": name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": inst.id[2:].ljust(32, "0"), "systemUUID": str(uuid.uuid4()),
                             "bootID": str(uuid.uuid4()), "kernelVersion": "6.1.115-126.197.amzn2023.x86_64",
                             "osImage": "Amazon Linux 2023.6.20241121",
                             "containerRuntimeVersion": "containerd://1.7.23",
                             "kubeletVersion": "v1.31.2-eks-94953ac", "kubeProxyVersion": "v1.31.2-eks-94953ac",
                             "operatingSystem": "linux", "architecture": "amd64"}}}
        with self.lock:
            self.nodes[name] = node

    def modify_node(self, name, body):
        with self.lock:
            node = self.nodes[name]
            meta, spec = node["metadata"], node["spec"]
            for field in ("labels", "annotations"):
                for k, v in (body.get(field) or {}).items():
                    if v is None:
                        meta.setdefault(field, {}).pop(k, None)
                    elif isinstance(v, str):
                        meta.setdefault(field, {})[k] = v
                    else:
                        raise ValueError(f"{field}.{k}: a string or null")
            if "unschedulable" in body:
                self._cordon(spec, bool(body["unschedulable"]))
            meta["resourceVersion"] = self._next_rv()
            return copy.deepcopy(node)

    @staticmethod
    def _cordon(spec, on):
        taints = [t for t in spec.get("taints", []) if t["key"] != UNSCHEDULABLE_TAINT]
        spec.pop("unschedulable", None)       # omitted when false, as the API does
        if on:
            spec["unschedulable"] = True
            taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": _now_iso()})
        spec.pop("taints", None)
        if taints:
            spec["taints"] = taints

    def put_eniconfig(self, name, body):
        spec = {}
        if "subnet" in body:
            if not isinstance(body["subnet"], str):
                raise ValueError("subnet: a string")
            spec["subnet"] = body["subnet"]
        if "securityGroups" in body:
            sgs = body["securityGroups"]
            if not isinstance(sgs, list) or not all(isinstance(s, str) for s in sgs):
                raise ValueError("securityGroups: a list of strings")
            spec["securityGroups"] = list(sgs)
        with self.lock:
            old = self.eniconfigs.get(name)
            if old:
                meta = old["metadata"]
                meta["generation"] += 1
                meta["resourceVersion"] = self._next_rv()
            else:
                meta = dict(self._meta(name), generation=1)
            obj = {"apiVersion": f"{CRD_GROUP}/v1alpha1", "kind": "ENIConfig", "metadata": meta, "spec": spec}
            self.eniconfigs[name] = obj
            return copy.deepcopy(obj)

    def delete_eniconfig(self, name):
        with self.lock:
            return self.eniconfigs.pop(name)

    def count(self, verb, path, status):
        with self.lock:
            k = f"{verb} {path} {status}"
            self.stats[k] = self.stats.get(k, 0) + 1

    def take_fault(self):
        with self.lock:
            f = self.fault
            if not f:
                return None
            if f.get("count"):
                f["count"] -= 1
                if f["count"] == 0:
                    self.fault = None
            return dict(f)


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server_version, sys_version = "kube-apiserver", ""
    store = None            # set on a subclass
    ssl_ctx = None

    def setup(self):
        self.request.settimeout(10)
        self.refused = False
        try:
            self.request = self.ssl_ctx.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):      # a client that does not trust our CA, say
            self.refused = True
        super().setup()

    def handle(self):
        if not self.refused:
            super().handle()

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self):
        auth = self.headers.get("Authorization") or ""
        tok = auth[7:] if auth.startswith("Bearer ") else None
        with self.store.lock:
            return tok in self.store.tokens

    def _route(self, verb, path, query):
        """(status, object) for an authenticated request."""
        s = self.store
        if path in ("/version", "/version/") and verb == "get":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.2-eks-7f9249a",
                         "gitCommit": "a3a5e8d0f5a2d1b3c4e5f6a7b8c9d0e1f2a3b4c5", "gitTreeState": "clean",
                         "buildDate": "2024-11-20T00:00:00Z", "goVersion": "go1.22.8", "compiler": "gc",
                         "platform": "linux/amd64"}
        for prefix, kind, group, table in (("/api/v1/nodes", "nodes", "", s.nodes),
                                           (CRD_PREFIX, "eniconfigs", CRD_GROUP, s.eniconfigs)):
            if path != prefix and not path.startswith(prefix + "/"):
                continue
            name = path[len(prefix) + 1:]
            if name == "" and verb == "get":
                verb = "watch" if "watch=" in query else "list"
            if verb != "get" or "/" in name:
                sub = f" in API group \"{group}\"" + (" at the cluster scope" if "/" not in name else "")
                what = f"{kind} \"{name}\"" if name else kind
                return 403, _status(403, "Forbidden", f"{what} is forbidden: User \"{ACCOUNT}\" cannot {verb} "
                                    f"resource \"{kind}\"{sub}",
                                    dict({"name": name} if name else {}, kind=kind,
                                         **({"group": group} if group else {})))
            with s.lock:
                obj = copy.deepcopy(table.get(name))
            if obj is None:
                full = f"{kind}.{group}" if group else kind
                details = dict(name=name, kind=kind, **({"group": group} if group else {}))
                return 404, _status(404, "NotFound", f"{full} \"{name}\" not found", details)
            return 200, obj
        return 404, _status(404, "NotFound", "the server could not find the requested resource", {})

    def _do(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        path, _, query = self.path.partition("?")
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(self.command, self.command.lower())
        fault = self.store.take_fault()
        if fault and fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault and fault.get("status"):
            st = int(fault["status"])
            reason = "TooManyRequests" if st == 429 else "InternalError"
            status, obj = st, _status(st, reason, "injected by vpc-world")
        elif not self._authorised():
            status, obj = 401, _status(401, "Unauthorized", "Unauthorized")
        else:
            status, obj = self._route(verb, path, query)
        self.store.count(self.command, path, status)
        self._send(status, obj)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _do


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    store = None

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, obj):
        body = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, method):
        s = self.store
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        path = self.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")[1:]
        try:
            b = json.loads(raw) if raw.strip() else {}
            if method == "GET" and parts in (["nodes"], ["eniconfigs"]):
                with s.lock:
                    return self._reply(200, copy.deepcopy(s.nodes if parts == ["nodes"] else s.eniconfigs))
            if method == "GET" and parts == ["stats"]:
                with s.lock:
                    return self._reply(200, dict(s.stats))
            if method == "POST" and len(parts) == 2 and parts[0] == "nodes":
                return self._reply(200, s.modify_node(parts[1], b))
            if method == "PUT" and len(parts) == 2 and parts[0] == "eniconfigs":
                return self._reply(200, s.put_eniconfig(parts[1], b))
            if method == "DELETE" and len(parts) == 2 and parts[0] == "eniconfigs":
                return self._reply(200, s.delete_eniconfig(parts[1]))
            if method == "POST" and parts == ["token"]:
                return self._reply(200, s.rotate_token(bool(b.get("revoke_old"))))
            if method == "POST" and parts == ["faults"]:
                with s.lock:
                    s.fault = {"status": b.get("status"), "count": int(b.get("count") or 0),
                               "delay": float(b.get("delay") or 0)}
                return self._reply(200, s.fault)
            if method == "DELETE" and parts == ["faults"]:
                with s.lock:
                    s.fault = None
                return self._reply(200, {})
        except KeyError as e:
            return self._reply(404, {"error": f"no such object {e}"})
        except (ValueError, TypeError) as e:
            return self._reply(400, {"error": f"{type(e).__name__}: {e}"})
        return self._reply(404, {"error": f"no route {method} {path}"})

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")


def node_name(inst, region):
    """The Node's name: the instance's private DNS name, as EKS names nodes."""
    ip = ip_str(inst.primary_eni.primary)
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"ip-{ip.replace('.', '-')}.{domain}"


class K8sApi:
    def __init__(self, directory, api_ip):
        self.dir = os.path.join(directory, "k8s")
        self.api_ip = api_ip
        self.run_dir = os.path.join(self.dir, "run")
        self.sa_dir = os.path.join(self.run_dir, SA_SUBPATH)
        self.store = Store(self.sa_dir)
        self.names = {}          # instance id -> Node name

    def start(self, world, serve, fabric_ns, listen_in):
        """Make the PKI and the service account, add a Node per instance, and listen."""
        import socket
        shutil.rmtree(self.dir, ignore_errors=True)
        make_pki(self.dir, [self.api_ip, "127.0.0.1", "kubernetes", "kubernetes.default",
                            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"])
        os.makedirs(self.sa_dir)
        os.makedirs(os.path.join(self.dir, "oldrun"))
        shutil.copy(os.path.join(self.dir, "ca.crt"), os.path.join(self.sa_dir, "ca.crt"))
        _write_atomic(os.path.join(self.sa_dir, "namespace"), "kube-system")
        self.store.rotate_token()
        for inst in world.instances.values():
            name = node_name(inst, world.region)
            self.names[inst.id] = name
            self.store.add_node(name, inst, world.region)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(os.path.join(self.dir, "server.crt"), os.path.join(self.dir, "server.key"))
        api_h = type("H", (ApiHandler,), {"store": self.store, "ssl_ctx": ctx})
        ctl_h = type("H", (ControlHandler,), {"store": self.store})
        serve(listen_in(fabric_ns, self.api_ip, API_PORT), api_h)
        loop_api = socket.create_server(("127.0.0.1", 0))
        loop_ctl = socket.create_server(("127.0.0.1", 0))
        serve(loop_api, api_h)
        serve(loop_ctl, ctl_h)
        self.ports = (loop_api.getsockname()[1], loop_ctl.getsockname()[1])

    def describe(self):
        """world.json's "kubernetes" section."""
        return {"service_host": self.api_ip, "service_port": API_PORT,
                "endpoint_host": f"https://127.0.0.1:{self.ports[0]}",
                "control_endpoint": f"http://127.0.0.1:{self.ports[1]}/",
                "ca": os.path.join(self.sa_dir, "ca.crt"), "token_file": os.path.join(self.sa_dir, "token"),
                "run_dir": self.run_dir, "sa_path": SA_PATH}


def exec_prefix(world_json, node):
    """(argv prefix, env list) for `vpc-world exec`: a private mount namespace
    in which /var/run/secrets/kubernetes.io/serviceaccount is the world's, and
    the in-cluster variables. Empty when the world has no Kubernetes API."""
    k = world_json.get("kubernetes")
    if not k:
        return [], []
    old = os.path.join(os.path.dirname(k["run_dir"]), "oldrun")
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", _EXEC_SCRIPT, "sh", k["run_dir"], old]
    env = [f"KUBERNETES_SERVICE_HOST={k['service_host']}", f"KUBERNETES_SERVICE_PORT={k['service_port']}",
           f"MY_NODE_NAME={node['k8s_node_name']}"]
    return argv, env

#!/usr/bin/env python3
"""The emulator's Kubernetes API stand-in (vpcworld/k8sapi.py), checked by
independent clients, and vpc-ipam's own client through `vpc-world exec`.

The JSON shapes are checked with Debian's python3-kubernetes (scripts/deps):
the official client, run by /usr/bin/python3 (the pyenv python3 of this
suite does not have it), reads the Nodes with CoreV1Api and an ENIConfig with
CustomObjectsApi over HTTPS with the world's CA and token, and every key of
the raw bodies is checked against the client's API models (V1Node, V1Status).
Then k8s-probe (cloud/k8s.c; its path is argv[1]) runs inside a node through
`vpc-world exec`, configured in-cluster from the service-account files that
appear at /var/run/secrets/kubernetes.io/serviceaccount there only.
"""

import json
import os
import subprocess
import sys
import urllib.request

import harness

PROBE = sys.argv[1] if len(sys.argv) > 1 else None
DEBIAN_PY = "/usr/bin/python3"
SA = "/var/run/secrets/kubernetes.io/serviceaccount"

# Run by Debian's python3: argv = endpoint, CA, token file, ENIConfig name, Node names...
KUBE_CLIENT = r'''
import json, re, sys
import kubernetes.client as k8s
from kubernetes.client.rest import ApiException

endpoint, ca, token_file, eniconfig = sys.argv[1:5]
nodes = sys.argv[5:]


def check(obj, typ, path, problems):
    """Every key of obj a field of the API model typ, every scalar of its type."""
    scalars = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if typ in scalars or typ in ("object", "datetime"):
        want = scalars.get(typ)
        if want and (not isinstance(obj, want) or (typ == "int" and isinstance(obj, bool))):
            problems.append(f"{path}: {obj!r} is not {typ}")
        return
    m = re.match(r"list\[(.+)\]$", typ)
    if m:
        for i, v in enumerate(obj if isinstance(obj, list) else problems.append(f"{path}: not a list") or []):
            check(v, m.group(1), f"{path}[{i}]", problems)
        return
    m = re.match(r"dict\(str, (.+)\)$", typ)
    if m:
        for k, v in (obj if isinstance(obj, dict) else problems.append(f"{path}: not a map") or {}).items():
            check(v, m.group(1), f"{path}.{k}", problems)
        return
    cls = getattr(k8s, typ)
    if not isinstance(obj, dict):
        problems.append(f"{path}: not an object ({typ})")
        return
    fields = {j: a for a, j in cls.attribute_map.items()}
    for k, v in obj.items():
        if k not in fields:
            problems.append(f"{path}.{k}: not a field of {typ}")
        else:
            check(v, cls.openapi_types[fields[k]], f"{path}.{k}", problems)


def client(token):
    c = k8s.Configuration()
    c.host = endpoint
    c.ssl_ca_cert = ca
    c.verify_ssl = True
    c.api_key = {"authorization": token}
    c.api_key_prefix = {"authorization": "Bearer"}
    return k8s.ApiClient(c)


def error(fn):
    try:
        fn()
    except ApiException as e:
        body = json.loads(e.body)
        problems = []
        check(body, "V1Status", "Status", problems)
        return {"status": e.status, "body": body, "problems": problems}
    return None


token = open(token_file).read().strip()
api = client(token)
core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
out = {"version": k8s.VersionApi(api).get_code().git_version, "nodes": {}}
for name in nodes:
    n = core.read_node(name)                    # the typed model: required fields present
    raw = json.loads(core.read_node(name, _preload_content=False).data)
    problems = []
    check(raw, "V1Node", "Node", problems)
    out["nodes"][name] = {
        "name": n.metadata.name, "labels": n.metadata.labels, "annotations": n.metadata.annotations,
        "provider_id": n.spec.provider_id, "unschedulable": n.spec.unschedulable,
        "taints": [[t.key, t.effect] for t in (n.spec.taints or [])],
        "pods": n.status.capacity["pods"], "ready": [c.status for c in n.status.conditions if c.type == "Ready"],
        "addresses": {a.type: a.address for a in n.status.addresses}, "problems": problems}
ec = custom.get_cluster_custom_object("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs", eniconfig)
out["eniconfig"] = ec
problems = []
check(ec["metadata"], "V1ObjectMeta", "ENIConfig.metadata", problems)
out["eniconfig_problems"] = problems
out["missing_eniconfig"] = error(lambda: custom.get_cluster_custom_object(
    "crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs", "no-such-config"))
out["missing_node"] = error(lambda: core.read_node("no-such-node"))
out["list_nodes"] = error(lambda: core.list_node())
out["bad_token"] = error(lambda: k8s.CoreV1Api(client("not-the-token")).read_node(nodes[0]))
wrong_ca = k8s.Configuration()
wrong_ca.host, wrong_ca.ssl_ca_cert = endpoint, "/etc/ssl/certs/ca-certificates.crt"
try:
    k8s.CoreV1Api(k8s.ApiClient(wrong_ca)).read_node(nodes[0])
    out["system_ca"] = "accepted"
except Exception as e:                      # urllib3 MaxRetryError wrapping SSLError
    out["system_ca"] = type(e).__name__ + ": " + str(e)[:2000]
print(json.dumps(out))
'''


class Ctx:
    def __init__(self):
        self.W = harness.WorldFixture(nodes=2, instance_type="m5.large")
        self.k = self.W.w["kubernetes"]

    def kctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.k["control_endpoint"].rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def kube_client(self, eniconfig):
        if not os.access(DEBIAN_PY, os.X_OK) or subprocess.run(
                [DEBIAN_PY, "-c", "import kubernetes"], capture_output=True).returncode != 0:
            raise harness.Skip("python3-kubernetes is not installed (scripts/deps installs it)")
        names = [n["k8s_node_name"] for n in self.W.nodes]
        p = subprocess.run([DEBIAN_PY, "-c", KUBE_CLIENT, self.k["endpoint_host"], self.k["ca"],
                            self.k["token_file"], eniconfig] + names, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"python3-kubernetes failed: {p.stderr[-2000:]}"
        return json.loads(p.stdout)

    def exec_probe(self, node, eniconfig, *extra):
        p = subprocess.run([sys.executable, harness.VPC_WORLD, "exec", "--dir", self.W.dir, node["name"], "--"]
                           + list(extra) + [PROBE, eniconfig], capture_output=True, text=True, timeout=60)
        assert p.stdout.strip(), f"k8s-probe printed nothing (exit {p.returncode}): {p.stderr}"
        return p.returncode, json.loads(p.stdout)


def setup():
    return Ctx()


def teardown(x):
    x.W.down()


ENICONFIG = {"subnet": "subnet-0a1b2c3d4e5f60718", "securityGroups": ["sg-0aaa", "sg-0bbb"]}


def test_official_client_reads_nodes_and_eniconfig(x):
    x.kctl("PUT", "/eniconfigs/us-west-2a", ENICONFIG)
    out = x.kube_client("us-west-2a")
    assert out["version"].startswith("v1."), out["version"]
    assert sorted(out["nodes"]) == sorted(n["k8s_node_name"] for n in x.W.nodes)
    for n in x.W.nodes:
        got = out["nodes"][n["k8s_node_name"]]
        assert got["problems"] == [], got["problems"]
        assert got["name"] == f"ip-{n['primary_ip'].replace('.', '-')}.{x.W.w['region']}.compute.internal"
        assert got["labels"]["topology.kubernetes.io/zone"] == x.W.w["availability_zone"]
        assert got["labels"]["node.kubernetes.io/instance-type"] == "m5.large"
        assert got["provider_id"] == f"aws:///{x.W.w['availability_zone']}/{n['instance_id']}"
        assert got["pods"] == "29"                      # m5.large: 3 ENIs x (10 - 1) + 2
        assert got["addresses"]["InternalIP"] == n["primary_ip"]
        assert got["ready"] == ["True"] and got["unschedulable"] is None and got["taints"] == []
    ec = out["eniconfig"]
    assert out["eniconfig_problems"] == [], out["eniconfig_problems"]
    assert ec["apiVersion"] == "crd.k8s.amazonaws.com/v1alpha1" and ec["kind"] == "ENIConfig"
    assert ec["metadata"]["name"] == "us-west-2a" and ec["spec"] == ENICONFIG


def test_errors_are_status_objects(x):
    out = x.kube_client("us-west-2a")
    me = out["missing_eniconfig"]
    assert me["status"] == 404 and me["problems"] == [], me
    assert me["body"]["reason"] == "NotFound"
    assert me["body"]["message"] == 'eniconfigs.crd.k8s.amazonaws.com "no-such-config" not found'
    assert me["body"]["details"] == {"name": "no-such-config", "group": "crd.k8s.amazonaws.com",
                                     "kind": "eniconfigs"}
    mn = out["missing_node"]
    assert mn["status"] == 404 and mn["body"]["message"] == 'nodes "no-such-node" not found', mn
    # the DaemonSet's RBAC: get only, so a list is forbidden
    ln = out["list_nodes"]
    assert ln["status"] == 403 and ln["body"]["reason"] == "Forbidden" and ln["problems"] == [], ln
    assert "cannot list resource \"nodes\"" in ln["body"]["message"]
    bt = out["bad_token"]
    assert bt["status"] == 401 and bt["body"]["reason"] == "Unauthorized", bt
    assert "CERTIFICATE_VERIFY_FAILED" in out["system_ca"], out["system_ca"]


def test_control_changes_node_and_eniconfig(x):
    name = x.W.nodes[1]["k8s_node_name"]
    x.kctl("POST", f"/nodes/{name}", {"labels": {"k8s.amazonaws.com/eniConfig": "pods-b"},
                                      "annotations": {"note": "x"}, "unschedulable": True})
    x.kctl("PUT", "/eniconfigs/pods-b", {"subnet": "subnet-0bbb"})
    x.kctl("PUT", "/eniconfigs/pods-b", {"subnet": "subnet-0ccc", "securityGroups": ["sg-1"]})
    out = x.kube_client("pods-b")
    got = out["nodes"][name]
    assert got["problems"] == [], got["problems"]
    assert got["labels"]["k8s.amazonaws.com/eniConfig"] == "pods-b" and got["annotations"]["note"] == "x"
    assert got["unschedulable"] is True
    assert got["taints"] == [["node.kubernetes.io/unschedulable", "NoSchedule"]]
    assert out["eniconfig"]["spec"] == {"subnet": "subnet-0ccc", "securityGroups": ["sg-1"]}
    assert out["eniconfig"]["metadata"]["generation"] == 2
    x.kctl("POST", f"/nodes/{name}", {"labels": {"k8s.amazonaws.com/eniConfig": None}, "unschedulable": False})
    x.kctl("DELETE", "/eniconfigs/pods-b")
    node = x.kctl("GET", "/nodes")[name]
    assert "k8s.amazonaws.com/eniConfig" not in node["metadata"]["labels"]
    assert "unschedulable" not in node["spec"] and "taints" not in node["spec"]
    assert "pods-b" not in x.kctl("GET", "/eniconfigs")


def _need_probe():
    if not PROBE or not os.access(PROBE, os.X_OK):
        raise harness.Skip("k8s-probe was not built (run through meson)")


def test_vpc_ipam_client_in_a_node_reads_in_cluster(x):
    _need_probe()
    x.kctl("PUT", "/eniconfigs/us-west-2a", ENICONFIG)
    n = x.W.nodes[0]
    rc, out = x.exec_probe(n, "us-west-2a")
    assert rc == 0, out
    assert out["server"] == "https://192.0.2.10:443"
    assert out["node"]["name"] == n["k8s_node_name"]
    assert out["node"]["labels"]["topology.kubernetes.io/zone"] == x.W.w["availability_zone"]
    assert out["node"]["capacity_pods"] == 29 and out["node"]["unschedulable"] is False
    assert out["eniconfig"] == {"name": "us-west-2a", "subnet": ENICONFIG["subnet"],
                                "security_groups": ENICONFIG["securityGroups"]}
    # a missing ENIConfig: named, -ENOENT
    rc, out = x.exec_probe(n, "us-west-2z")
    assert rc == 1 and out["node"]["name"] == n["k8s_node_name"], out
    assert out["eniconfig_error"]["code"] == -2
    assert out["eniconfig_error"]["message"] == "eniconfig us-west-2z not found (HTTP 404)"


def test_service_account_only_inside_exec(x):
    _need_probe()
    n = x.W.nodes[0]
    seen = subprocess.run([sys.executable, harness.VPC_WORLD, "exec", "--dir", x.W.dir, n["name"], "--",
                           "sh", "-c", f"cat {SA}/namespace; echo; readlink /proc/self/ns/net; ls /run/netns"],
                          capture_output=True, text=True, timeout=30)
    assert seen.returncode == 0, seen.stderr
    lines = seen.stdout.splitlines()
    assert lines[0] == "kube-system"
    node_ns = subprocess.run(["ip", "netns", "exec", n["netns"], "readlink", "/proc/self/ns/net"],
                             capture_output=True, text=True).stdout.strip()
    assert lines[1] == node_ns, (lines, node_ns)             # in the node's network namespace
    assert n["netns"] in lines[2:], lines                   # the machine's /run/netns still seen through
    assert not os.path.exists("/run/secrets/kubernetes.io"), "the machine's /run was written to"
    # outside exec, a node process has no service account: in-cluster config fails
    p = subprocess.run(["ip", "netns", "exec", n["netns"], "env", "KUBERNETES_SERVICE_HOST=192.0.2.10",
                        "KUBERNETES_SERVICE_PORT=443", PROBE, "us-west-2a"], capture_output=True, text=True,
                       timeout=30)
    out = json.loads(p.stdout)
    assert p.returncode == 1 and out["config_error"]["code"] == -2, out
    assert SA in out["config_error"]["message"]


def test_token_rotation_seen_in_the_node(x):
    _need_probe()
    x.kctl("PUT", "/eniconfigs/us-west-2a", ENICONFIG)
    old = open(x.k["token_file"]).read()
    x.kctl("POST", "/token", {"revoke_old": True})
    assert open(x.k["token_file"]).read() != old
    rc, out = x.exec_probe(x.W.nodes[1], "us-west-2a")
    assert rc == 0 and out["node"]["name"] == x.W.nodes[1]["k8s_node_name"], out
    stats = x.kctl("GET", "/stats")
    assert stats.get(f"GET /api/v1/nodes/{x.W.nodes[1]['k8s_node_name']} 200", 0) >= 1, stats


def test_api_faults_retried_by_the_client(x):
    _need_probe()
    x.kctl("PUT", "/eniconfigs/us-west-2a", ENICONFIG)
    before = x.kctl("GET", "/stats")
    x.kctl("POST", "/faults", {"status": 503, "count": 2})
    rc, out = x.exec_probe(x.W.nodes[0], "us-west-2a")
    assert rc == 0, out
    after = x.kctl("GET", "/stats")
    name = x.W.nodes[0]["k8s_node_name"]
    key = f"GET /api/v1/nodes/{name} 503"
    assert after.get(key, 0) - before.get(key, 0) == 2, after


if __name__ == "__main__":
    sys.exit(harness.run(globals(), setup, teardown))

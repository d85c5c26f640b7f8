#!/usr/bin/python3
"""tests/deploy: the cluster and node artifacts under scripts/deploy/ against
the code they deploy.

Checks that the DaemonSet manifest sets only variables the daemon reads, with
values it accepts and defaults it has (the built `vpc-ipamd -n` lists the
variables and checks and shows the values); that `-n` refuses what a start
refuses, with the same message, creating nothing; that
its host paths are the daemon's and the plugin's; that the conflist is one
vpc-cni accepts; that the IAM policy grants exactly the EC2 actions the code
calls; that the Containerfile installs what the binaries link; that the
entrypoint writes the conflist only once the daemon serves; and that
scripts/install stages the expected files, idempotently, refusing what it
must.

Runs with Debian's /usr/bin/python3 because it parses YAML with PyYAML
(Debian's python3-yaml, a real YAML 1.1 parser as kubectl's is) and checks
the objects against the Kubernetes API models of python3-kubernetes (both
installed by scripts/deps); the pyenv python3 of the other suites has
neither. Prints TAP.
Nothing here touches the machine: every file goes to a temporary directory,
every daemon started is a fake, `vpc-ipamd -n`, or one refused by its
configuration (IMDS is 127.0.0.1:9 should one get further).
"""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_ROOT") or os.path.join(SRC, "build", "normal")
DEPLOY = os.path.join(SRC, "scripts", "deploy")
IPAMD = os.environ.get("VPC_IPAMD") or os.path.join(BUILD, "daemon", "vpc-ipamd")
IPAMCTL = os.path.join(os.path.dirname(IPAMD), "vpc-ipamctl")
CNI = os.environ.get("VPC_CNI") or os.path.join(BUILD, "cni-shim", "vpc-cni")

_n = 0
_failed = 0


def tap(name, fn):
    global _n, _failed
    _n += 1
    try:
        skip = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported, with its text
        _failed += 1
        print(f"not ok {_n} - {name}")
        for line in f"{type(e).__name__}: {e}".splitlines():
            print(f"#   {line}")
        return
    if skip:
        print(f"ok {_n} - {name} # SKIP {skip}")
    else:
        print(f"ok {_n} - {name}")


def read(*parts):
    with open(os.path.join(SRC, *parts)) as f:
        return f.read()


# --- what the code says ---------------------------------------------------------

def check(env, *args):
    """`vpc-ipamd -n -j` with exactly env: (exit status, {name: {"value", "set"}} or None, stderr)."""
    if not os.access(IPAMD, os.X_OK):
        raise AssertionError(f"{IPAMD} is not built")
    p = subprocess.run([IPAMD, "-n", "-j", *args], env=env, capture_output=True, text=True, timeout=30)
    return p.returncode, json.loads(p.stdout) if p.returncode == 0 else None, p.stderr


def daemon_rows():
    """{name: effective default} of every variable the built daemon reads (its
    table and the pool's), as `vpc-ipamd -n` prints them with no variable set."""
    rc, settings, err = check({})
    assert rc == 0, f"vpc-ipamd -n with no variable: exit {rc}: {err}"
    rows = {name: s["value"] for name, s in settings.items()}
    if len(rows) < 30 or "WARM_ENI_TARGET" not in rows or "VPC_IPAM_SOCKET" not in rows:
        raise AssertionError(f"vpc-ipamd -n lists too few variables: {sorted(rows)}")
    return rows


def sdk_variables():
    """Variables cloud/ reads (region, endpoints, credentials), and the proxy
    variables libcurl reads for it (docs/cloud.md)."""
    names = set()
    for f in os.listdir(os.path.join(SRC, "cloud")):
        if f.endswith(".c"):
            names |= set(re.findall(r'\b(?:getenv|env)\("([A-Z][A-Z0-9_]*)"\)', read("cloud", f)))
    if "HTTPS_PROXY" in read("docs", "cloud.md"):
        names |= {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"}
    return names


def ec2_actions_called():
    """The EC2 actions behind every ec2_* call in daemon/, mapped through cloud/ec2.c."""
    ec2c = read("cloud", "ec2.c")
    names = dict(re.findall(r"\[(EC2_[A-Z0-9_]+)\]\s*=\s*\"(\w+)\"", read("cloud", "ec2-parse.c")))
    fn_action = {}
    fn_body = {}
    for m in re.finditer(r"^int (ec2_\w+)\((.*?)^\}", ec2c, re.S | re.M):
        fn_body[m.group(1)] = m.group(2)
        acts = re.findall(r"\brun\(c,\s*(EC2_[A-Z0-9_]+)", m.group(2))
        if acts:
            fn_action[m.group(1)] = names[acts[0]]
    called = set()
    for f in sorted(os.listdir(os.path.join(SRC, "daemon"))):
        if f.endswith(".c"):
            called |= set(re.findall(r"\b(ec2_\w+)\(", read("daemon", f)))
    actions = {fn_action[fn] for fn in called if fn in fn_action}
    # Tags given at creation (TagSpecification) are authorised as ec2:CreateTags.
    if "ec2_create_eni" in called and "TagSpecification" in fn_body.get("ec2_create_eni", ""):
        actions.add("CreateTags")
    if len(actions) < 5:
        raise AssertionError(f"found too few EC2 calls in daemon/: {sorted(called)}")
    return actions


# --- the manifest ------------------------------------------------------------------

def manifest():
    import yaml
    with open(os.path.join(DEPLOY, "daemonset.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}, \
        f"kinds: {sorted(by_kind)}"
    return by_kind


def pod_spec():
    return manifest()["DaemonSet"]["spec"]["template"]["spec"]


def container():
    cs = pod_spec()["containers"]
    assert len(cs) == 1, f"{len(cs)} containers"
    return cs[0]


# Variables the manifest fills from the downward API: name -> fieldPath.
DOWNWARD = {"MY_NODE_NAME": "spec.nodeName"}


def env():
    out = {}
    for e in container()["env"]:
        if e["name"] in DOWNWARD:
            continue
        assert set(e) == {"name", "value"}, f"{e}: only name and value are expected"
        assert isinstance(e["value"], str), f'{e["name"]}: value {e["value"]!r} is a {type(e["value"]).__name__}, ' \
                                            "not a string (quote it: Kubernetes refuses it)"
        assert e["name"] not in out, f'{e["name"]} set twice'
        out[e["name"]] = e["value"]
    return out


def t_manifest_shape():
    m = manifest()
    sa, ds = m["ServiceAccount"], m["DaemonSet"]
    assert sa["metadata"]["namespace"] == ds["metadata"]["namespace"] == "kube-system"
    spec = ds["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    ps = spec["template"]["spec"]
    assert ps["serviceAccountName"] == sa["metadata"]["name"]
    assert ps["hostNetwork"] is True, "hostNetwork must be true"
    assert ps["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in ps["tolerations"], "tolerate every taint, as aws-node"
    res = container()["resources"]
    assert "cpu" in res["requests"] and "memory" in res["requests"] and "memory" in res["limits"]


def check_k8s(obj, typ, path, problems):
    """Check obj against the Kubernetes API model typ (python3-kubernetes): every
    key a field of its object, every scalar of its type."""
    import kubernetes.client as k8s
    scalars = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if typ in scalars or typ in ("object", "datetime"):
        want = scalars.get(typ)
        if want and (not isinstance(obj, want) or (typ == "int" and isinstance(obj, bool))):
            problems.append(f"{path}: {obj!r} is not {typ}")
        return
    m = re.match(r"list\[(.+)\]$", typ)
    if m:
        if not isinstance(obj, list):
            problems.append(f"{path}: not a list")
            return
        for i, v in enumerate(obj):
            check_k8s(v, m.group(1), f"{path}[{i}]", problems)
        return
    m = re.match(r"dict\(str, (.+)\)$", typ)
    if m:
        if not isinstance(obj, dict):
            problems.append(f"{path}: not a map")
            return
        for key, v in obj.items():
            check_k8s(v, m.group(1), f"{path}.{key}", problems)
        return
    cls = getattr(k8s, typ)
    if not isinstance(obj, dict):
        problems.append(f"{path}: not an object ({typ})")
        return
    fields = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    for key, v in obj.items():
        if key not in fields:
            problems.append(f"{path}.{key}: not a field of {typ}")
        else:
            check_k8s(v, cls.openapi_types[fields[key]], f"{path}.{key}", problems)


def t_manifest_schema():
    try:
        import kubernetes.client  # noqa: F401
    except ImportError:
        return "python3-kubernetes is not installed (scripts/deps installs it)"
    problems = []
    for kind, doc in manifest().items():
        check_k8s(doc, "V1" + kind, kind, problems)
    assert not problems, "; ".join(problems)
    # The checker itself: a misspelt field and a wrongly typed value are caught.
    bad = manifest()["DaemonSet"]
    bad["spec"]["template"]["spec"]["hostNetwork"] = "true"
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    problems = []
    check_k8s(bad, "V1DaemonSet", "DaemonSet", problems)
    assert len(problems) == 2, problems


def t_env_known():
    known = set(daemon_rows()) | sdk_variables()
    unknown = sorted(set(env()) - known)
    assert not unknown, f"the daemon does not read: {unknown}"


def t_downward_api():
    """MY_NODE_NAME from the pod's node, and the token mounted (the API client reads both)."""
    got = {e["name"]: e for e in container()["env"] if e["name"] in DOWNWARD}
    assert set(got) == set(DOWNWARD), f"missing {sorted(set(DOWNWARD) - set(got))}"
    for name, path in DOWNWARD.items():
        assert got[name] == {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}, got[name]
    assert pod_spec()["automountServiceAccountToken"] is True
    assert manifest()["ServiceAccount"]["automountServiceAccountToken"] is True


def t_env_complete():
    missing = sorted(set(daemon_rows()) - set(env()) - set(DOWNWARD))
    assert not missing, f"daemon variables missing from the manifest: {missing}"
    # Each variable is introduced by a comment (one comment may lead a group).
    text = open(os.path.join(DEPLOY, "daemonset.yaml")).read()
    block = text.split("          env:\n", 1)[1].split("\n          ports:", 1)[0]
    first = re.findall(r"^\s*(#.*|- name: (\w+))$", block, re.M)
    assert first and first[0][0].startswith("#"), "the env list opens with a comment"


def t_env_defaults():
    """The manifest's values leave every setting at the daemon's default (-n
    shows the effective values: "" for POD_MTU is the ENI MTU, "info" is info)."""
    rows = daemon_rows()
    rc, settings, err = check(env())
    assert rc == 0, f"exit {rc}: {err}"
    wrong = [f'{name}={settings[name]["value"]!r} (daemon default {default!r})'
             for name, default in rows.items() if settings[name]["value"] != default]
    assert not wrong, "not the daemon's defaults: " + ", ".join(wrong)
    # -n marks what the environment set: every non-empty value of the manifest.
    marked = {name for name, s in settings.items() if s["set"]}
    assert marked == {name for name, v in env().items() if v}, f"set: {sorted(marked)}"


def sandbox_env(d, **extra):
    """The manifest's environment with the store and the socket in d (which must
    stay empty) and IMDS on a closed loopback port."""
    e = dict(env(), PATH="/usr/bin:/bin", AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9",
             VPC_IPAM_DB=os.path.join(d, "lib", "pool.db"), VPC_IPAM_SOCKET=os.path.join(d, "run", "s.sock"))
    e.update(extra)
    return e


def t_env_accepted():
    """vpc-ipamd -n accepts the manifest's values, lists every variable, and
    creates nothing (no store, no socket, no directory for them)."""
    with tempfile.TemporaryDirectory() as d:
        e = sandbox_env(d)
        rc, settings, err = check(e)
        assert rc == 0, f"exit {rc}: {err.strip()[-400:]}"
        assert "configuration OK" in err, err
        assert set(env()) <= set(settings), f"not listed: {sorted(set(env()) - set(settings))}"
        assert settings["VPC_IPAM_DB"] == {"value": e["VPC_IPAM_DB"], "set": True}
        assert not os.listdir(d), f"vpc-ipamd -n created {os.listdir(d)}"
        # The human form: one "set|default NAME=value" line per variable.
        p = subprocess.run([IPAMD, "-n"], env=e, capture_output=True, text=True, timeout=30)
        lines = p.stdout.splitlines()
        assert p.returncode == 0 and len(lines) == len(settings), p.stdout + p.stderr
        for line in lines:
            m = re.match(r"^(set|default) +(\w+)=(.*)$", line)
            assert m and settings[m.group(2)] == {"value": m.group(3), "set": m.group(1) == "set"}, line
        assert not os.listdir(d), f"vpc-ipamd -n created {os.listdir(d)}"


def bad_settings(d):
    """(variable named, extra environment) that a start must refuse."""
    with open(os.path.join(d, "file"), "w"):
        pass
    return [
        ("WARM_ENI_TARGET", {"WARM_ENI_TARGET": "lots"}),
        ("ENABLE_PREFIX_DELEGATION", {"ENABLE_PREFIX_DELEGATION": "true"}),
        ("AWS_VPC_K8S_CNI_VETHPREFIX", {"AWS_VPC_K8S_CNI_VETHPREFIX": 'a"b'}),
        ("VPC_IPAM_DB", {"VPC_IPAM_DB": "lib/pool.db"}),
        ("VPC_IPAM_DB", {"VPC_IPAM_DB": os.path.join(d, "file", "pool.db")}),
        ("VPC_IPAM_DB", {"VPC_IPAM_DB": d}),
        ("VPC_IPAM_SOCKET", {"VPC_IPAM_SOCKET": os.path.join(d, "s" * 120)}),
        ("VPC_IPAM_SOCKET", {"VPC_IPAM_DB": os.path.join(d, "x"), "VPC_IPAM_SOCKET": os.path.join(d, "x")}),
        ("METRICS_BIND_ADDRESS", {"METRICS_BIND_ADDRESS": "127.0.0.1:61679"}),
        ("AWS_VPC_K8S_CNI_LOG_FILE", {"AWS_VPC_K8S_CNI_LOG_FILE": os.path.join(d, "file", "log")}),
    ]


def t_check_refuses():
    """A bad setting: -n exits 2 with exactly the message a start prints (which
    also exits 2), naming the variable; neither creates anything."""
    with tempfile.TemporaryDirectory() as d:
        for name, extra in bad_settings(d):
            e = sandbox_env(d, **extra)
            rc, _, err = check(e)
            assert rc == 2 and name in err and "invalid configuration" in err, f"{extra}: exit {rc}: {err}"
            start = subprocess.run([IPAMD], env=e, capture_output=True, text=True, timeout=30)
            assert start.returncode == 2 and start.stderr == err, \
                f"{extra}: a start exits {start.returncode} with {start.stderr!r}, -n printed {err!r}"
            assert sorted(os.listdir(d)) == ["file"], f"{extra}: created {os.listdir(d)}"


def t_arguments():
    usage = subprocess.run([IPAMD, "--help"], capture_output=True, text=True, timeout=10)
    assert usage.returncode == 0 and "-n" in usage.stdout, usage.stdout + usage.stderr
    assert subprocess.run([IPAMD, "-h"], capture_output=True, text=True, timeout=10).stdout == usage.stdout
    for args, says in ((["-x"], "unknown option '-x'"), (["--bogus"], "unknown option '--bogus'"),
                       (["run"], "unexpected argument 'run'"), (["-j"], "-j needs -n")):
        p = subprocess.run([IPAMD, *args], env={}, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and says in p.stderr and not p.stdout, f"{args}: exit {p.returncode}: {p.stderr}"


def volumes():
    """{mountPath: hostPath} of the container's hostPath mounts."""
    vols = {v["name"]: v for v in pod_spec()["volumes"]}
    out = {}
    for m in container()["volumeMounts"]:
        v = vols[m["name"]]
        if "hostPath" in v:
            assert v["hostPath"].get("type") in ("Directory", "DirectoryOrCreate"), f'{v["name"]}: a directory'
            out[m["mountPath"]] = v["hostPath"]["path"]
    return out


def conflist(socket="/run/vpc-ipam/ipamd.sock", veth="eni"):
    text = open(os.path.join(DEPLOY, "10-vpc-cni.conflist")).read()
    return json.loads(text.replace("@VPC_IPAM_SOCKET@", socket).replace("@VETH_PREFIX@", veth))


def t_host_paths():
    rows, e, mounts = daemon_rows(), env(), volumes()
    sock_dir = os.path.dirname(rows["VPC_IPAM_SOCKET"])
    db_dir = os.path.dirname(rows["VPC_IPAM_DB"])
    assert e["VPC_IPAM_SOCKET"] == rows["VPC_IPAM_SOCKET"] and e["VPC_IPAM_DB"] == rows["VPC_IPAM_DB"]
    # The socket and the store at the same path inside as on the host.
    assert mounts.get(sock_dir) == sock_dir, f"socket dir {sock_dir} not mounted at itself: {mounts}"
    assert mounts.get(db_dir) == db_dir, f"store dir {db_dir} not mounted at itself: {mounts}"
    # Gone pods are detected by their namespace path: the runtime's netns dir, seen as on the host.
    assert mounts.get("/var/run/netns") == "/var/run/netns", f"/var/run/netns not mounted at itself: {mounts}"
    # aws-node's checkpoint, at the path the daemon reads by default (awsnode-import.h).
    cp = re.search(r'IPAMD_AWSNODE_CHECKPOINT_DEFAULT "([^"]+)"', read("include", "ipamd-config.h")).group(1)
    assert mounts.get(os.path.dirname(cp)) == os.path.dirname(cp), f"{cp}'s directory not mounted: {mounts}"
    # What the entrypoint writes, under its host root.
    ep = open(os.path.join(DEPLOY, "entrypoint")).read()
    root = re.search(r"host=\$\{VPC_IPAM_HOST_ROOT:-(/[^}]*)\}", ep).group(1)
    plugin = conflist()["plugins"][0]
    for host_dir in ("/opt/cni/bin", "/etc/cni/net.d", os.path.dirname(plugin["logFile"])):
        assert mounts.get(root + host_dir) == host_dir, f"{host_dir} not mounted at {root}{host_dir}: {mounts}"
    # The plugin's default socket (cni-shim) is the daemon's.
    proto = read("include", "protocol.h")
    assert f'"{rows["VPC_IPAM_SOCKET"]}"' in proto, "PROTO_SOCKET_DEFAULT differs from the daemon's socket"


def t_security_and_probes():
    c = container()
    sc = c["securityContext"]
    assert not sc.get("privileged"), "no privileged container"
    assert sc["capabilities"]["add"] == ["NET_ADMIN"] and sc["capabilities"]["drop"] == ["ALL"]
    assert sc.get("allowPrivilegeEscalation") is False
    usage = subprocess.run([IPAMCTL, "--help"], capture_output=True, text=True, timeout=10).stdout
    commands = set(re.findall(r"^  (\w+) ", usage, re.M))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        cmd = c[probe]["exec"]["command"]
        assert cmd[0] == "/usr/bin/vpc-ipamctl" and cmd[1] in commands, f"{probe}: {cmd} (commands {commands})"
        # vpc-ipamctl gives up after 5 s: the probe must not time out first.
        assert c[probe]["timeoutSeconds"] > 5, f"{probe}: timeoutSeconds"
    assert c["readinessProbe"]["exec"]["command"][1] == "status"
    assert c["ports"][0]["containerPort"] == int(env()["METRICS_BIND_ADDRESS"].rsplit(":", 1)[1])


def t_conflist():
    c = conflist()
    assert c["cniVersion"] and c["name"]
    # vpc-cni, then portmap as in aws-node's conflist (the entrypoint adds bandwidth on request).
    assert [x["type"] for x in c["plugins"]] == ["vpc-cni", "portmap"], c["plugins"]
    assert c["plugins"][1] == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    p = c["plugins"][0]
    rows = daemon_rows()
    assert p["type"] == "vpc-cni"
    assert p["socket"] == rows["VPC_IPAM_SOCKET"] and p["vethPrefix"] == rows["AWS_VPC_K8S_CNI_VETHPREFIX"]
    # vpc-cni itself accepts it: STATUS parses the configuration, then finds no daemon
    # (50); a configuration it refuses would answer 7.
    with tempfile.TemporaryDirectory() as d:
        p = dict(p, cniVersion="1.1.0", name=c["name"], socket=os.path.join(d, "none.sock"),
                 logFile=os.path.join(d, "plugin.log"))
        r = subprocess.run([CNI], input=json.dumps(p), env={"CNI_COMMAND": "STATUS", "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=30)
        out = json.loads(r.stdout)
        assert out.get("code") == 50, f"vpc-cni answered {r.stdout.strip()}"


def k8s_calls():
    """(verb, group, resource) of every Kubernetes API path cloud/k8s.c builds,
    checked against the K8S_RBAC table of include/k8s.h, which must agree."""
    code = read("cloud", "k8s.c")
    methods = set(re.findall(r'awshttp_request\(c->http,\s*"([A-Z]+)"', code))
    assert methods == {"GET"}, f"cloud/k8s.c sends {sorted(methods)}: only GET (get) is read-only"
    calls = set()
    for m in re.finditer(r'"/api/v1/([a-z]+)"', code):
        calls.add(("get", "", m.group(1)))
    for m in re.finditer(r'"/apis/([a-z0-9.-]+)/v[0-9a-z]+/([a-z]+)"', code):
        calls.add(("get", m.group(1), m.group(2)))
    table = set()
    for verb, res, group in re.findall(r"K8S_RBAC:\s*(\w+)\s+(\w+)\s+(\S+)", read("include", "k8s.h")):
        table.add((verb, "" if group == '""' else group, res))
    assert len(calls) >= 2, f"found too few API paths in cloud/k8s.c: {calls}"
    assert calls == table, f"cloud/k8s.c calls {sorted(calls)}, include/k8s.h K8S_RBAC lists {sorted(table)}"
    return calls


def t_rbac():
    m = manifest()
    role, binding, sa = m["ClusterRole"], m["ClusterRoleBinding"], m["ServiceAccount"]
    granted = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"{rule}: no resourceNames, URLs or extras"
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    assert "*" not in (g, r, v), f"{rule}: no wildcards"
                    granted.add((v, g, r))
    needed = k8s_calls()
    assert granted == needed, f"missing {sorted(needed - granted)}, not called {sorted(granted - needed)}"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]


def t_iam_policy():
    with open(os.path.join(DEPLOY, "iam-policy.json")) as f:
        pol = json.load(f)
    granted = set()
    for st in pol["Statement"]:
        assert st["Effect"] == "Allow"
        acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for a in acts:
            assert a.startswith("ec2:") and "*" not in a, f"{a}: EC2 actions by name only"
            granted.add(a[4:])
        if acts == ["ec2:CreateTags"]:
            assert st["Condition"]["StringEquals"]["ec2:CreateAction"] == "CreateNetworkInterface", \
                "CreateTags only on ENIs being created"
    needed = ec2_actions_called()
    assert granted == needed, f"missing {sorted(needed - granted)}, not called {sorted(granted - needed)}"
    doc = read("docs", "operations.md")
    undocumented = [a for a in needed if f"ec2:{a}" not in doc]
    assert not undocumented, f"docs/operations.md does not explain: {undocumented}"


def t_containerfile():
    text = open(os.path.join(DEPLOY, "Containerfile")).read()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].startswith("docker.io/library/debian:12 AS build") and \
        stages[1].startswith("docker.io/library/debian:12-slim"), "build on debian:12, run on debian:12-slim"

    def apt(stage):
        m = re.search(r"apt-get install -y --no-install-recommends\s*\\\n(.*?)\s*\\\n\s*&&", stage, re.S)
        return set(m.group(1).replace("\\", " ").split())
    build_pkgs, run_pkgs = apt(stages[0]), apt(stages[1])
    # Build: every pkg-config dependency of meson.build comes from a listed package.
    for dep in re.findall(r"dependency\('([\w.-]+)'\)", read("meson.build")):
        if dep == "threads":
            continue
        pc = subprocess.run(["pkg-config", "--variable=pcfiledir", dep], capture_output=True, text=True).stdout.strip()
        owner = subprocess.run(["dpkg", "-S", os.path.join(pc, dep + ".pc")], capture_output=True,
                               text=True).stdout.split(":")[0]
        assert owner in build_pkgs, f"{dep}: {owner} is not installed in the build stage"
    # Run: every library the daemon and vpc-ipamctl load directly comes from a listed package.
    for binary in (IPAMD, IPAMCTL):
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(["readelf", "-d", binary],
                                                                       capture_output=True, text=True).stdout)
        for so in needed:
            owner = subprocess.run(["dpkg", "-S", f"*/{so}"], capture_output=True, text=True).stdout
            pkgs = {line.split(":")[0] for line in owner.splitlines()}
            assert pkgs & (run_pkgs | {"libc6"}), f"{os.path.basename(binary)} needs {so} ({pkgs}), not installed"
    # The plugins the conflist chains after vpc-cni go beside it, from Debian's package.
    assert "containernetworking-plugins" in build_pkgs, "portmap and bandwidth come from containernetworking-plugins"
    assert re.search(r'install -m 0755 /usr/lib/cni/portmap /usr/lib/cni/bandwidth "\$cni/"', stages[0]), \
        "portmap and bandwidth are not copied beside vpc-cni"
    # Every folder the top-level meson.build enters is copied in.
    copied = set(re.findall(r"^COPY (\S+) \1$", stages[0], re.M))
    for d in re.findall(r"subdir\('(\w[\w-]*)'\)", read("meson.build")) + ["include"]:
        assert d in copied, f"{d}/ is not copied into the build stage"
    assert "ca-certificates" in run_pkgs, "EC2 is HTTPS: the runtime needs ca-certificates"


def t_docs_operations():
    """docs/operations.md names every metric, vpc-ipamctl command and CNI error code."""
    doc = read("docs", "operations.md")
    intro = read("daemon", "introspect.c")
    metrics = set(re.findall(r'metric\(&?t, "(\w+)"', intro)) | set(re.findall(r'\{ "((?:awscni|vpcipam)_\w+)", "', intro))
    metrics |= set(re.findall(r'const char \*n = "(\w+)"', intro))
    assert len(metrics) > 20, f"found only {sorted(metrics)} in daemon/introspect.c"
    missing = sorted(m for m in metrics if f"`{m}" not in doc)
    assert not missing, f"metrics not documented: {missing}"
    paths = set(re.findall(r'"(/v1/[\w-]+)"', intro))
    assert paths and all(f"`{p}`" in doc for p in paths), f"introspection paths: {sorted(paths)}"
    usage = subprocess.run([IPAMCTL, "--help"], capture_output=True, text=True, timeout=10).stdout
    commands = set(re.findall(r"^  (\w+) ", usage, re.M))
    missing = sorted(c for c in commands if f"| `{c}` |" not in doc)
    assert commands and not missing, f"vpc-ipamctl commands not documented: {missing}"
    codes = {int(c) for c in re.findall(r"CNI_ERR_\w+ = (\d+)", read("include", "cni-config.h"))}
    documented = set()
    for first, second in re.findall(r"^\| (\d+)(?: / (\d+))? \|", doc, re.M):
        documented |= {int(x) for x in (first, second) if x}
    missing = sorted(codes - documented - {2})   # 2 (unsupported field) is never answered
    assert not missing, f"CNI error codes not in the troubleshooting table: {missing}"


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def entrypoint_sandbox(d, daemon_script):
    """A fake image under d: a vpc-ipamd that runs daemon_script but checks its
    configuration (-n) with the real one, a fake vpc-ipamctl, a vpc-cni, the
    template."""
    for sub in ("bin", "libexec/vpc-cni.lib", "share", "host"):
        os.makedirs(os.path.join(d, sub))
    write_exe(os.path.join(d, "bin", "vpc-ipamd"),
              f'#!/bin/sh\n[ "$1" = -n ] && exec {IPAMD} "$@"\n' + daemon_script.split("\n", 1)[1])
    # Ready once the test creates "serving"; the socket flag must be passed. Each poll is noted.
    write_exe(os.path.join(d, "bin", "vpc-ipamctl"),
              f'#!/bin/sh\n[ "$1" = --socket ] && [ "$3" = status ] || exit 2\necho "$2" >> {d}/polls\n'
              f'[ -e {d}/serving ]\n')
    for plugin in ("vpc-cni", "portmap", "bandwidth"):
        write_exe(os.path.join(d, "libexec", plugin), f"#!/bin/sh\necho {plugin}\n")
    with open(os.path.join(d, "libexec", "vpc-cni.lib", "libfake.so.1"), "w") as f:
        f.write("lib")
    shutil.copy(os.path.join(DEPLOY, "10-vpc-cni.conflist"), os.path.join(d, "share"))
    return dict(os.environ, VPC_IPAM_HOST_ROOT=os.path.join(d, "host"), VPC_IPAM_BINDIR=os.path.join(d, "bin"),
                VPC_IPAM_LIBEXEC=os.path.join(d, "libexec"), VPC_IPAM_SHARE=os.path.join(d, "share"),
                VPC_IPAM_SOCKET="/run/x/ipamd.sock", AWS_VPC_K8S_CNI_VETHPREFIX="pod",
                VPC_IPAM_DB=os.path.join(d, "lib", "pool.db"))


def polls(d):
    try:
        with open(os.path.join(d, "polls")) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_for(cond, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.02)


def t_entrypoint_waits_for_daemon():
    with tempfile.TemporaryDirectory() as d:
        # The fake daemon runs until SIGTERM, then exits 0 after noting it.
        e = entrypoint_sandbox(d, f"#!/bin/sh\ntrap 'echo term > {d}/stopped; exit 0' TERM\n"
                                  "while :; do sleep 0.1; done\n")
        conf = os.path.join(d, "host", "etc", "cni", "net.d", "10-vpc-cni.conflist")
        p = subprocess.Popen([os.path.join(DEPLOY, "entrypoint")], env=e, stderr=subprocess.PIPE, text=True)
        try:
            plugin = os.path.join(d, "host", "opt", "cni", "bin", "vpc-cni")
            wait_for(lambda: os.path.exists(plugin), "vpc-cni installed")
            assert stat.S_IMODE(os.stat(plugin).st_mode) == 0o755
            assert os.path.exists(os.path.join(d, "host", "opt", "cni", "bin", "vpc-cni.lib", "libfake.so.1"))
            # The entrypoint has asked three times whether the daemon serves, and heard no.
            wait_for(lambda: len(polls(d)) >= 3, "three readiness polls")
            assert not os.path.exists(conf), "conflist written before the daemon serves"
            assert p.poll() is None, "entrypoint exited while the daemon runs"
            assert set(polls(d)) == {"/run/x/ipamd.sock"}, f"polled {set(polls(d))}"
            open(os.path.join(d, "serving"), "w").close()
            wait_for(lambda: os.path.exists(conf), "conflist once the daemon serves")
            c = json.load(open(conf))
            assert c["plugins"][0]["socket"] == "/run/x/ipamd.sock" and c["plugins"][0]["vethPrefix"] == "pod"
            leftovers = [f for f in os.listdir(os.path.dirname(conf)) if f != "10-vpc-cni.conflist"]
            assert not leftovers, f"temporary files left: {leftovers}"
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=10)
            assert open(os.path.join(d, "stopped")).read().strip() == "term", "SIGTERM not passed on"
            assert rc == 0, f"exit {rc} after the daemon stopped cleanly"
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def t_entrypoint_daemon_fails():
    with tempfile.TemporaryDirectory() as d:
        e = entrypoint_sandbox(d, "#!/bin/sh\necho 'vpc-ipamd: cannot learn the node from IMDS' >&2\nexit 1\n")
        conf = os.path.join(d, "host", "etc", "cni", "net.d", "10-vpc-cni.conflist")
        plugin = os.path.join(d, "host", "opt", "cni", "bin", "vpc-cni")
        r = subprocess.run([os.path.join(DEPLOY, "entrypoint")], env=e, capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "IMDS" in r.stderr, f"exit {r.returncode}: {r.stderr}"
        assert os.path.exists(plugin) and not os.path.exists(conf)
        shutil.rmtree(os.path.join(d, "host", "opt"))
        if os.path.exists(os.path.join(d, "polls")):
            os.unlink(os.path.join(d, "polls"))
        # A bad variable: vpc-ipamd -n refuses it, in its words, before anything is installed.
        for name, value, says in (("AWS_VPC_K8S_CNI_VETHPREFIX", 'a"b', 'AWS_VPC_K8S_CNI_VETHPREFIX=a"b'),
                                  ("WARM_ENI_TARGET", "lots", "WARM_ENI_TARGET=lots: not an integer"),
                                  # accepted by the daemon, but not in a conflist
                                  ("VPC_IPAM_SOCKET", "/run/x|y.sock", "VPC_IPAM_SOCKET=/run/x|y.sock: only")):
            r = subprocess.run([os.path.join(DEPLOY, "entrypoint")], env=dict(e, **{name: value}),
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and says in r.stderr, f"{name}={value}: exit {r.returncode}: {r.stderr}"
            assert not os.path.exists(plugin) and not os.path.exists(conf), f"{name}={value}: installed"
            assert not polls(d), "the daemon was started"


def t_env_file():
    """scripts/install's /etc/default/vpc-ipamd lists the manifest's variables."""
    text = open(os.path.join(DEPLOY, "vpc-ipamd.env")).read()
    names = re.findall(r"^#([A-Za-z][A-Za-z0-9_]*)=", text, re.M)
    assert not re.findall(r"^[A-Za-z]", text, re.M), "every variable stays commented out"
    unknown = set(names) - set(daemon_rows()) - sdk_variables()
    assert not unknown, f"unknown: {sorted(unknown)}"
    assert set(env()) <= set(names), f"missing: {sorted(set(env()) - set(names))}"


INSTALLED = {
    "/usr/bin/vpc-ipamd": 0o755, "/usr/bin/vpc-ipamctl": 0o755, "/opt/cni/bin/vpc-cni": 0o755,
    "/etc/cni/net.d/10-vpc-cni.conflist": 0o644, "/etc/systemd/system/vpc-ipamd.service": 0o644,
    "/etc/default/vpc-ipamd": 0o644,
}


def install(destdir, *args, check=True):
    r = subprocess.run([os.path.join(SRC, "scripts", "install"), "--build", BUILD, *args],
                       env=dict(os.environ, DESTDIR=destdir), capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"scripts/install exit {r.returncode}: {r.stderr}")
    return r


def snapshot(root):
    out = {}
    for dp, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dp, f)
            st = os.stat(p)
            out["/" + os.path.relpath(p, root)] = (stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_ino)
    return out


def t_install():
    with tempfile.TemporaryDirectory() as d:
        root = os.path.join(d, "root")
        install(root, "--prefix", "/usr")
        first = snapshot(root)
        assert {k: v[0] for k, v in first.items()} == INSTALLED, f"installed: {sorted(first)}"
        assert open(os.path.join(root, "usr/bin/vpc-ipamd"), "rb").read() == open(IPAMD, "rb").read()
        unit = open(os.path.join(root, "etc/systemd/system/vpc-ipamd.service")).read()
        assert "ExecStart=/usr/bin/vpc-ipamd\n" in unit and "@" not in unit
        c = json.load(open(os.path.join(root, "etc/cni/net.d/10-vpc-cni.conflist")))
        assert c["plugins"][0]["socket"] == daemon_rows()["VPC_IPAM_SOCKET"]
        # No portmap is installed here, so none is chained.
        assert [p["type"] for p in c["plugins"]] == ["vpc-cni"], c["plugins"]
        # Again: nothing rewritten (same inode and mtime), and it says so.
        r = install(root, "--prefix", "/usr")
        assert snapshot(root) == first, "a second run changed files"
        assert "0 file(s) installed" in r.stdout, r.stdout
        # The admin's /etc/default/vpc-ipamd survives; a changed file is replaced.
        with open(os.path.join(root, "etc/default/vpc-ipamd"), "w") as f:
            f.write("WARM_IP_TARGET=5\n")
        with open(os.path.join(root, "opt/cni/bin/vpc-cni"), "w") as f:
            f.write("old")
        install(root, "--prefix", "/usr")
        assert open(os.path.join(root, "etc/default/vpc-ipamd")).read() == "WARM_IP_TARGET=5\n"
        assert open(os.path.join(root, "opt/cni/bin/vpc-cni"), "rb").read() == open(CNI, "rb").read()
        assert not [f for f in os.listdir(os.path.join(root, "opt/cni/bin")) if f.startswith(".")]


def t_install_unit_verifies():
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        return "systemd-analyze is not installed"
    with tempfile.TemporaryDirectory() as d:
        root = os.path.join(d, "root")
        install(root, "--prefix", "/usr")
        unit = open(os.path.join(root, "etc/systemd/system/vpc-ipamd.service")).read()
        # Point at the staged binaries so verify can check they are executable.
        unit = unit.replace("/usr/bin/", os.path.join(root, "usr/bin") + "/")
        path = os.path.join(d, "vpc-ipamd.service")
        with open(path, "w") as f:
            f.write(unit)
        r = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stderr + r.stdout


def t_install_refuses():
    with tempfile.TemporaryDirectory() as d:
        root = os.path.join(d, "root")
        r = subprocess.run([os.path.join(SRC, "scripts", "install"), "--build", os.path.join(d, "nobuild")],
                           env=dict(os.environ, DESTDIR=root), capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "missing" in r.stderr and "build" in r.stderr, r.stderr
        assert not os.path.exists(root), "a refused install wrote files"
        r = install(root, "--prefix", "relative", check=False)
        assert r.returncode != 0 and "absolute" in r.stderr and not os.path.exists(root), r.stderr
    # Without DESTDIR and without root it refuses before touching anything.
    cmd = [os.path.join(SRC, "scripts", "install"), "--build", BUILD]
    e = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            return "running as root and setpriv is missing: cannot try a non-root install"
        cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
    r = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "Permission denied" in r.stderr:
        return f"nobody cannot read the tree: {r.stderr.strip()[:120]}"
    assert r.returncode != 0 and "root" in r.stderr and "DESTDIR" in r.stderr, f"exit {r.returncode}: {r.stderr}"


def main():
    try:
        import yaml  # noqa: F401
    except ImportError:
        print("1..1\nnot ok 1 - import yaml: install python3-yaml (scripts/deps) and run with /usr/bin/python3")
        return 1
    tests = [
        ("manifest: a ServiceAccount and a hostNetwork DaemonSet in kube-system", t_manifest_shape),
        ("manifest: every field and type is Kubernetes' (python3-kubernetes API models)", t_manifest_schema),
        ("manifest: every variable is one the daemon or the AWS SDK chain reads", t_env_known),
        ("manifest: every daemon variable is there", t_env_complete),
        ("manifest: MY_NODE_NAME from the downward API, the token mounted", t_downward_api),
        ("manifest: values are the daemon's defaults", t_env_defaults),
        ("manifest: vpc-ipamd -n accepts every value, lists every variable, creates nothing", t_env_accepted),
        ("vpc-ipamd -n: a bad value, path or conflict exits 2 with a start's message, creating nothing",
         t_check_refuses),
        ("vpc-ipamd: -h, and unknown options or arguments refused with exit 2", t_arguments),
        ("manifest: host paths are the daemon's, the plugin's and the entrypoint's", t_host_paths),
        ("manifest: NET_ADMIN only; probes run vpc-ipamctl commands that exist", t_security_and_probes),
        ("conflist: JSON, type vpc-cni, the daemon's socket, accepted by vpc-cni", t_conflist),
        ("iam-policy.json: exactly the EC2 actions daemon/ calls, each documented", t_iam_policy),
        ("RBAC: a ClusterRole granting exactly the Kubernetes calls cloud/k8s.c makes, bound to the account",
         t_rbac),
        ("Containerfile: build and runtime packages cover what meson and the binaries need", t_containerfile),
        ("entrypoint: installs vpc-cni, writes the conflist only once the daemon serves, passes SIGTERM",
         t_entrypoint_waits_for_daemon),
        ("entrypoint: a daemon that fails leaves no conflist and its exit status", t_entrypoint_daemon_fails),
        ("vpc-ipamd.env: the manifest's variables, all commented out", t_env_file),
        ("docs/operations.md: every metric, introspection path, vpc-ipamctl command and CNI code", t_docs_operations),
        ("scripts/install: the files into DESTDIR, idempotent, keeps /etc/default", t_install),
        ("scripts/install: the unit passes systemd-analyze verify", t_install_unit_verifies),
        ("scripts/install: refuses a missing build, a relative prefix, and non-root without DESTDIR",
         t_install_refuses),
    ]
    print(f"1..{len(tests)}")
    for name, fn in tests:
        tap(name, fn)
    return 1 if _failed else 0


if __name__ == "__main__":
    sys.exit(main())

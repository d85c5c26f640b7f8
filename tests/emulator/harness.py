"""Test support for the emulator's suites: a TAP runner and a world fixture.

run(globals()) runs every test_* function of a module in definition order and
prints TAP ("1..N", "ok N - name", "not ok N - name" with the traceback as
comments, "ok N - name # SKIP reason"). A suite needs root and `ip netns`
(unless run with needs_root=False); without them every case is skipped with
the reason.

WorldFixture brings a world up in a private temp dir (`vpc-world up`) and
always takes it down, and offers: ec2() a botocore client (host loopback
endpoint, or from inside a node namespace), ctl() control API calls,
imds() IMDSv2 reads from inside a node, ip() and sh() in a namespace, and
wait_for() polling with a deadline.
"""

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from vpcworld import netns  # noqa: E402

VPC_WORLD = os.path.join(HERE, "vpc-world")


class Skip(Exception):
    pass


def _why_not():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None or shutil.which("nft") is None:
        return "needs iproute2 and nftables (scripts/deps)"
    try:
        import botocore  # noqa: F401
    except ImportError:
        return "needs botocore (the image's pyenv python3)"
    return None


def run(module_globals, setup=None, teardown=None, needs_root=True):
    tests = [(n, f) for n, f in module_globals.items() if n.startswith("test_") and inspect.isfunction(f)]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    print(f"1..{len(tests)}", flush=True)
    why = _why_not() if needs_root else None
    failed = 0
    ctx = None
    try:
        if why is None and setup:
            ctx = setup()
        for i, (name, fn) in enumerate(tests, 1):
            label = name[5:]
            if why:
                print(f"ok {i} - {label} # SKIP {why}", flush=True)
                continue
            t0 = time.monotonic()
            try:
                fn(ctx) if ctx is not None else fn()
                print(f"ok {i} - {label} ({time.monotonic() - t0:.2f}s)", flush=True)
            except Skip as s:
                print(f"ok {i} - {label} # SKIP {s}", flush=True)
            except BaseException:
                failed += 1
                print(f"not ok {i} - {label}", flush=True)
                for line in traceback.format_exc().splitlines():
                    print("# " + line, flush=True)
    finally:
        if teardown and ctx is not None:
            teardown(ctx)
    return 1 if failed else 0


def wait_for(cond, timeout=5.0, interval=0.02, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def client_error(fn, *args, **kw):
    """Call a botocore operation that must fail; return (code, HTTP status)."""
    from botocore.exceptions import ClientError
    try:
        fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded but should have failed")


class WorldFixture:
    def __init__(self, nodes=2, instance_type="m5.large", fast=True, extra=()):
        self.dir = tempfile.mkdtemp(prefix="vpc-world-test-")
        args = [sys.executable, VPC_WORLD, "up", "--dir", self.dir, "--nodes", str(nodes),
                "--instance-type", instance_type] + (["--fast"] if fast else []) + list(extra)
        t0 = time.monotonic()
        p = subprocess.run(args, capture_output=True, text=True, timeout=60 + nodes)
        self.up_seconds = time.monotonic() - t0
        if p.returncode != 0:
            self.down()
            raise RuntimeError(f"vpc-world up failed: {p.stderr}")
        with open(os.path.join(self.dir, "world.json")) as f:
            self.w = json.load(f)
        self.prefix = self.w["prefix"]
        self.nodes = self.w["nodes"]

    def down(self):
        subprocess.run([sys.executable, VPC_WORLD, "down", "--dir", self.dir], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- EC2 ------------------------------------------------------------------
    def ec2(self, endpoint=None, creds=None, retries=1, read_timeout=10, validate=True):
        import botocore.session
        from botocore.config import Config
        c = creds or self.w["credentials"]
        s = botocore.session.get_session()
        return s.create_client(
            "ec2", region_name=self.w["region"], endpoint_url=endpoint or self.w["ec2_endpoint_host"],
            aws_access_key_id=c["access_key_id"], aws_secret_access_key=c["secret_access_key"],
            aws_session_token=c.get("token"),
            config=Config(retries={"total_max_attempts": retries, "mode": "standard"},
                          read_timeout=read_timeout, connect_timeout=5, parameter_validation=validate))

    # --- control API ----------------------------------------------------------------
    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.w["control_endpoint"].rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"control {method} {path}: {e.code} {e.read().decode()}") from None

    def truth(self):
        return self.ctl("GET", "/truth")

    def eni_truth(self, eni_id):
        for e in self.truth()["enis"]:
            if e["id"] == eni_id:
                return e
        return None

    # --- inside namespaces -------------------------------------------------------------
    def node_ns(self, i):
        return self.nodes[i]["netns"]

    def ip(self, ns, *args, check=True):
        return netns.run(["ip", "-n", ns] + list(args), check=check)

    def sh(self, ns, args, check=True):
        return netns.in_ns(ns, args, check=check)

    def links(self, ns):
        out = json.loads(self.ip(ns, "-j", "link", "show").stdout)
        return {x["ifname"]: x for x in out}

    def imds_token(self, ns, ttl="60"):
        def put():
            req = urllib.request.Request("http://169.254.169.254/latest/api/token", method="PUT",
                                         headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.read().decode()
        return netns.call_in(ns, put)

    def imds(self, ns, path, token):
        """(status, body) of GET /latest/meta-data/<path> from inside ns."""
        def get():
            headers = {"X-aws-ec2-metadata-token": token} if token else {}
            url = path if path.startswith("/") else "/latest/meta-data/" + path
            req = urllib.request.Request("http://169.254.169.254" + url, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        return netns.call_in(ns, get)


# --- strict wire checks against botocore's EC2 model ------------------------------

EC2_NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


def _is_uuid(s):
    import uuid
    try:
        return str(uuid.UUID(s)) == s
    except (ValueError, TypeError):
        return False


def _check_elem(elem, shape, path, problems):
    import datetime
    kids = list(elem)
    t = shape.type_name
    if t == "structure":
        names = {m.serialization.get("name", n): m for n, m in shape.members.items()}
        for c in kids:
            tag = c.tag.replace(EC2_NS, "")
            if tag not in names:
                problems.append(f"{path}/{tag}: not in the model's {shape.name}")
                continue
            _check_elem(c, names[tag], f"{path}/{tag}", problems)
    elif t == "list":
        want = shape.member.serialization.get("name", "item")
        for c in kids:
            tag = c.tag.replace(EC2_NS, "")
            if tag != want:
                problems.append(f"{path}/{tag}: list item should be <{want}>")
            _check_elem(c, shape.member, f"{path}/{want}", problems)
    else:
        text = elem.text or ""
        if kids:
            problems.append(f"{path}: scalar {t} has children")
        try:
            if t == "boolean" and text not in ("true", "false"):
                raise ValueError(text)
            if t in ("integer", "long"):
                int(text)
            if t in ("double", "float"):
                float(text)
            if t == "timestamp":
                datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            problems.append(f"{path}: {text!r} is not a valid {t}")


def check_wire(body, status, op_model):
    """Problems (strings) of one EC2 response body against EC2's format and the model."""
    import xml.etree.ElementTree as ET
    problems = []
    if not body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'):
        problems.append("no XML declaration")
    root = ET.fromstring(body)
    if status >= 300:
        if root.tag != "Response" or [c.tag for c in root] != ["Errors", "RequestID"]:
            problems.append(f"error envelope is {root.tag}/{[c.tag for c in root]}")
            return problems
        errs = list(root.find("Errors"))
        if len(errs) != 1 or errs[0].tag != "Error" or [c.tag for c in errs[0]] != ["Code", "Message"]:
            problems.append("error body is not Errors/Error/{Code,Message}")
        if not _is_uuid(root.find("RequestID").text):
            problems.append("RequestID is not a UUID")
        return problems
    if root.tag != f"{EC2_NS}{op_model.name}Response":
        problems.append(f"root is {root.tag}")
    kids = list(root)
    if not kids or kids[0].tag != EC2_NS + "requestId" or not _is_uuid(kids[0].text):
        problems.append("requestId (a UUID) is not the first element")
    shape = op_model.output_shape
    for c in kids[1:]:
        tag = c.tag.replace(EC2_NS, "")
        if tag == "return" and (shape is None or "Return" in shape.members):
            if c.text != "true":
                problems.append("<return> is not true")
            continue
        if shape is None:
            problems.append(f"{tag}: the model has no output for {op_model.name}")
            continue
        _check_elem(_wrap(c), shape, op_model.name, problems)
    return problems


def _wrap(elem):
    import xml.etree.ElementTree as ET
    w = ET.Element("wrapper")
    w.append(elem)
    return w


class WireRecorder:
    """Hooks a botocore client; checks every response it receives with check_wire()."""

    def __init__(self, client):
        self.seen = {}          # operation -> set of statuses
        self.problems = []
        client.meta.events.register("before-parse.ec2.*", self._hook)

    def _hook(self, operation_model, response_dict, **kw):
        status = response_dict["status_code"]
        self.seen.setdefault(operation_model.name, set()).add(status)
        for p in check_wire(response_dict["body"], status, operation_model):
            self.problems.append(f"{operation_model.name} {status}: {p}")

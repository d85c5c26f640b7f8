"""vpc-ipamd and vpc-cni end to end against moto (LocalStack's EC2 engine). TAP on stdout.

One world (`vpc-world up --ec2-endpoint moto`, tests/emulator/vpcworld/extec2.py)
for the whole suite: moto runs inside the world and is EC2 for everyone —
the world created the VPC, subnets and two instances there with RunInstances,
and its IMDS, ENI links and fabric follow moto's DescribeNetworkInterfaces.
vpc-ipamd runs in node 0 pointed at moto (AWS_ENDPOINT_URL_EC2); node 1
runs no daemon and is the remote host that pings the pods across the fabric
(and its source/destination check). Pods are added with the real vpc-cni.

The cases run in order on the same daemon and pods: cold start; 20 pods
ADDed over several ENIs and pinged; a daemon restart keeps every lease;
DEL of all leaves no veth, rule or lease. After each step EC2's truth is
read from moto itself (botocore on its loopback URL): the store's addresses
per ENI equal moto's secondary addresses, no pod holds an ENI's primary
address (moto's Assign reply lists the primary too), and no address is
held twice or reserved (`conflicts`). moto draws addresses at random from
the whole subnet, which hands one out twice in a few percent of runs; the
world runs with --unique-addresses (moto redraws those; nothing else of moto
changes) and a seed.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cni"))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))

from ipamd import Daemon, harness, wait_for  # noqa: E402
from test_vpc_cni_ipamd import CNI, Node, ping  # noqa: E402

PODS = 20
SEED = "20261206"


class Ctx:
    pass


def setup():
    c = Ctx()
    c.w = harness.WorldFixture(nodes=2, extra=["--ec2-endpoint", "moto", "--seed", SEED,
                                                     "--unique-addresses", "--timeout", "60"])
    c.n = Node(c.w, 0)
    c.iid = c.w.nodes[0]["instance_id"]
    c.ec2 = c.w.ec2()
    c.pods = {}                 # container id -> (netns path, ip, route table, result)
    return c


def teardown(c):
    try:
        c.n.close()
    finally:
        c.w.down()


def moto_enis(c):
    """moto's truth for node 0: {eni id: (primary, {secondary addresses})}."""
    out = {}
    r = c.ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [c.iid]}])
    for e in r["NetworkInterfaces"]:
        out[e["NetworkInterfaceId"]] = (e["PrivateIpAddress"],
                                        {a["PrivateIpAddress"] for a in e["PrivateIpAddresses"] if not a["Primary"]})
    return out


def store_enis(c):
    r = c.n.d.try_call({"op": "enis"})
    if not r or not r.get("ok"):
        return None
    return {e["id"]: {b.split("/")[0] for b in e.get("blocks", []) if b.endswith("/32")} for e in r["enis"]}


def agree(c):
    truth, mine = moto_enis(c), store_enis(c)
    return mine is not None and {k: v[1] for k, v in truth.items()} == mine


def check_ec2_truth(c, what):
    """The store equals moto ENI by ENI; no pod holds a primary; moto handed out no address twice."""
    try:
        wait_for(lambda: agree(c), timeout=20, interval=0.2, what=f"store == moto ({what})")
    except AssertionError:
        raise AssertionError(f"{what}: store {store_enis(c)} != moto {moto_enis(c)}") from None
    primaries = {p for p, _ in moto_enis(c).values()}
    held = c.n.held()
    assert not primaries & set(held.values()), f"{what}: a pod holds an ENI primary: {held} {primaries}"
    assert not primaries & set().union(*store_enis(c).values()), f"{what}: an ENI primary is pooled"
    conflicts = c.w.truth()["conflicts"]
    assert conflicts == [], f"{what}: moto handed out conflicting addresses: {conflicts}"


def imds_matches_moto(c):
    ns = c.w.node_ns(0)
    tok = c.w.imds_token(ns)
    r = c.ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [c.iid]}])
    for e in r["NetworkInterfaces"]:
        base = f"network/interfaces/macs/{e['MacAddress']}/"
        ips = [e["PrivateIpAddress"]] + sorted(a["PrivateIpAddress"] for a in e["PrivateIpAddresses"]
                                               if not a["Primary"])
        st, got = c.w.imds(ns, base + "local-ipv4s", tok)
        if st != 200 or got.split("\n")[0] != ips[0] or sorted(got.split("\n")[1:]) != ips[1:]:
            return False
        for leaf, want in (("interface-id", e["NetworkInterfaceId"]), ("subnet-id", e["SubnetId"]),
                           ("device-number", str(e["Attachment"]["DeviceIndex"])),
                           ("vpc-ipv4-cidr-block", "10.0.0.0/16"), ("subnet-ipv4-cidr-block", "10.0.0.0/17"),
                           ("security-group-ids", "\n".join(g["GroupId"] for g in e["Groups"]))):
            if c.w.imds(ns, base + leaf, tok) != (200, want):
                return False
    return True


def ping_all(c, label):
    """Each pod pings the next pod (on its node) and node 1 pings every pod (across the fabric)."""
    pods = list(c.pods.values())
    remote = c.w.node_ns(1)

    def from_remote(ip):
        return subprocess.run(["ip", "netns", "exec", remote, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", ip],
                              capture_output=True).returncode == 0

    jobs = [(f"{a[1]} -> {b[1]}", lambda a=a, b=b: ping(a[0], b[1])) for a, b in zip(pods, pods[1:] + pods[:1])]
    jobs += [(f"node1 -> {p[1]}", lambda p=p: from_remote(p[1])) for p in pods]
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda j: (j[0], j[1]()), jobs))
    failed = [name for name, ok in results if not ok]
    assert not failed, f"{label}: pings failed: {failed}"
    assert c.w.truth()["fabric"]["drops_total"] == 0, c.w.truth()["fabric"]


def test_cold_start_against_moto(c):
    c.n.d.start()
    wait_for(lambda: c.n.d.pool()["total"] >= 9, timeout=30, what="a warm ENI's worth of addresses")
    check_ec2_truth(c, "cold start")
    wait_for(lambda: imds_matches_moto(c), timeout=10, interval=0.2, what="IMDS following moto")


def test_twenty_pods_added_and_pinged(c):
    for i in range(PODS):
        ns = c.n.pod()
        rc, out = c.n.cni("ADD", f"p{i}", ns)
        assert rc == 0, (f"p{i}", out, c.n.d.tail())
        ip = out["ips"][0]["address"].split("/")[0]
        table = c.n.d.call({"op": "check", "container_id": f"p{i}", "ifname": "eth0"})["route_table"]
        c.pods[f"p{i}"] = (ns, ip, table, out)
    ips = [p[1] for p in c.pods.values()]
    assert len(set(ips)) == PODS, ips
    tables = {p[2] for p in c.pods.values()}
    assert 254 in tables and len(tables) >= 2, f"pods on one ENI only: {tables}"
    links = c.w.links(c.w.node_ns(0))
    assert {"eth1"} <= set(links), f"no secondary ENI hot-plugged: {sorted(links)}"
    check_ec2_truth(c, "20 pods")
    wait_for(lambda: imds_matches_moto(c), timeout=10, interval=0.2, what="IMDS following moto")
    ping_all(c, "20 pods")
    for cid, (ns, ip, table, out) in c.pods.items():
        rc, res = c.n.cni("CHECK", cid, ns, prev=out)
        assert rc == 0, (cid, res)


MUTATING = ("CreateNetworkInterface", "AttachNetworkInterface", "AssignPrivateIpAddresses",
            "UnassignPrivateIpAddresses", "DetachNetworkInterface", "DeleteNetworkInterface")


def calls(c):
    """What node 0's daemon asked moto, per action (the world counts calls reaching 192.0.2.10)."""
    return {a: v["calls"] for a, v in c.w.ctl("GET", "/stats")["api"].items()}


def test_daemon_restart_keeps_every_lease(c):
    before = c.n.held()
    assert len(before) == PODS, before
    assert c.n.d.stop() == 0, c.n.d.tail()
    api_before = calls(c)
    c.n.d = Daemon(c.w, 0, c.n.d.env)
    c.n.d.start()
    wait_for(lambda: c.n.d.pool()["ready"], timeout=30, what="the restarted daemon ready")
    assert c.n.held() == before, (before, c.n.held())
    check_ec2_truth(c, "after restart")
    ping_all(c, "after restart")
    api_after = calls(c)
    changed = {a: api_after.get(a, 0) - api_before.get(a, 0) for a in MUTATING
               if api_after.get(a, 0) != api_before.get(a, 0)}
    assert changed == {}, f"a restart with every address in use changed EC2: {changed}"
    modify = api_after.get("ModifyNetworkInterfaceAttribute", 0) - api_before.get("ModifyNetworkInterfaceAttribute", 0)
    print(f"# restart: {modify} ModifyNetworkInterfaceAttribute (moto ignores Attachment.DeleteOnTermination, "
          f"so each resync sets it again)", flush=True)


def test_del_of_all_leaves_nothing(c):
    for cid, (ns, ip, table, out) in c.pods.items():
        rc, res = c.n.cni("DEL", cid, ns, prev=out)
        assert rc == 0, (cid, res)
    wait_for(lambda: c.n.veths() == [], timeout=15, what="vpc-ipamd deleting the DEL'd veths")
    left = [r for r in c.n.rules().splitlines() if r.startswith(("512:", "1536:"))]
    assert left == [], left
    assert c.n.held() == {}, c.n.held()
    assert c.n.d.pool()["assigned"] == 0, c.n.d.pool()
    check_ec2_truth(c, "after DEL of all")
    failed = {a: v["status"] for a, v in c.w.ctl("GET", "/stats")["api"].items()
              if set(v["status"]) - {"200"}}
    assert failed == {}, f"moto refused or failed calls of the daemon: {failed}"
    log = open(c.n.d.log).read()
    bad = [ln for ln in log.splitlines() if '"level":"error"' in ln]
    assert bad == [], bad


if __name__ == "__main__":
    if not CNI or not os.path.exists(CNI) or not os.path.exists(os.environ.get("VPC_IPAMD", "")):
        print("1..1\nnot ok 1 - moto end to end: VPC_CNI and VPC_IPAMD must name the built binaries")
        sys.exit(1)
    try:
        import moto  # noqa: F401
    except ImportError:
        print("1..1\nok 1 - moto end to end # SKIP moto is not installed (the image's pyenv python3 has it)")
        sys.exit(0)
    sys.exit(harness.run(globals(), setup=setup, teardown=teardown))

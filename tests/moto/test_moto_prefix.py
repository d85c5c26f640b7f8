"""ENABLE_PREFIX_DELEGATION=true against moto, which has no prefix delegation. TAP on stdout.

moto answers AssignPrivateIpAddresses{Ipv4PrefixCount} and
CreateNetworkInterface{Ipv4PrefixCount} with success and assigns no prefix
(../shared/reference/moto.md). A user pointing vpc-ipamd at it (or at
LocalStack) with prefix delegation on must get pods served, each with a
secondary address moto lists and never an ENI's primary, and a log that says
why there are no prefixes — not a daemon asking for prefixes every pass, nor
one handing out addresses moto never gave. The world is test_moto_e2e.py's
(`vpc-world up --ec2-endpoint moto`, two nodes, vpc-ipamd in node 0, node 1
pings the pods); its checks of moto's truth are reused. The cases run in
order on one daemon: cold start (the warning, the fallback counter, /32s
only); 20 pods through vpc-cni, pinged; past the 60 s back-off, with most pods
gone, prefixes are asked for again, moto again gives none, and the pods left
keep their addresses; DEL of all leaves nothing and no error in the log.
"""

import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import test_moto_e2e as e2e  # noqa: E402  (also puts tests/cni and tests/daemon on sys.path)
from ipamd import harness, wait_for  # noqa: E402
from test_vpc_cni_ipamd import CNI, Node  # noqa: E402

PODS = 20
KEPT = ("p0", "p1")
PD = {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "IP_COOLDOWN_PERIOD": "1",
      "VPC_IPAM_SHRINK_DELAY": "3"}
NONE_GIVEN = "EC2 accepted Ipv4PrefixCount but assigned no prefix"
RETRY_S = 60                    # ENIOPS_PREFIX_RETRY_MS


def setup():
    c = e2e.Ctx()
    c.w = harness.WorldFixture(nodes=2, extra=["--ec2-endpoint", "moto", "--seed", e2e.SEED,
                                                     "--unique-addresses", "--timeout", "60"])
    c.n = Node(c.w, 0, PD)
    c.iid = c.w.nodes[0]["instance_id"]
    c.ec2 = c.w.ec2()
    c.pods = {}
    return c


def teardown(c):
    e2e.teardown(c)


def log_lines(c, text):
    with open(c.n.d.log) as f:
        return [ln for ln in f if text in ln]


def logged_at(line):
    return datetime.datetime.fromisoformat(json.loads(line)["time"].replace("Z", "+00:00"))


def moto_prefixes(c):
    r = c.ec2.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [c.iid]}])
    return [p for e in r["NetworkInterfaces"] for p in e.get("Ipv4Prefixes", [])]


def assert_no_prefix_anywhere(c, what):
    assert moto_prefixes(c) == [], f"{what}: moto lists prefixes: {moto_prefixes(c)}"
    r = c.n.d.call({"op": "enis"})
    blocks = [b for e in r["enis"] for b in e.get("blocks", [])]
    assert blocks and all(b.endswith("/32") for b in blocks), f"{what}: the store holds {blocks}"
    assert c.n.d.metric("awscni_total_ipv4_prefixes") == 0


def test_cold_start_falls_back_to_secondary_addresses(c):
    c.n.d.start()
    # WARM_PREFIX_TARGET=1 wants 16 free addresses: with no prefix, 16 /32s (two ENIs' worth)
    wait_for(lambda: c.n.d.pool()["available"] >= 16, timeout=40, what="16 free addresses as /32s")
    said = log_lines(c, NONE_GIVEN)
    assert said and '"level":"warn"' in said[0], f"no clear warning: {c.n.d.tail()}"
    assert f'"retry_s":{RETRY_S}' in said[0], said[0]
    assert c.n.d.metric("vpcipam_prefix_fallbacks_total") >= 1
    assert_no_prefix_anywhere(c, "cold start")
    e2e.check_ec2_truth(c, "cold start")
    # one Assign with Ipv4PrefixCount on the primary ENI, the rest /32s: not a retry every pass
    c.n.d.wait_passes()
    assert len(log_lines(c, NONE_GIVEN)) == 1, log_lines(c, NONE_GIVEN)


def test_twenty_pods_on_secondary_addresses_pinged(c):
    for i in range(PODS):
        ns = c.n.pod()
        rc, out = c.n.cni("ADD", f"p{i}", ns)
        assert rc == 0, (f"p{i}", out, c.n.d.tail())
        c.pods[f"p{i}"] = (ns, out["ips"][0]["address"].split("/")[0], None, out)
    ips = [p[1] for p in c.pods.values()]
    assert len(set(ips)) == PODS, ips
    e2e.check_ec2_truth(c, "20 pods")       # every pod address is a secondary moto lists, none a primary
    assert_no_prefix_anywhere(c, "20 pods")
    e2e.ping_all(c, "20 pods")


def test_prefixes_asked_again_after_the_back_off(c):
    """Most pods go; once the back-off is over the pool, idle, tries to replace its free /32s by a
    prefix (PD's mixed-pool shrink). moto again assigns none: warned again, nothing of the pods'
    changes, the store still equals moto."""
    for cid in [k for k in c.pods if k not in KEPT]:
        ns, ip, _, out = c.pods.pop(cid)
        rc, res = c.n.cni("DEL", cid, ns, prev=out)
        assert rc == 0, (cid, res)
    wait_for(lambda: len(log_lines(c, NONE_GIVEN)) >= 2, timeout=RETRY_S + 60, interval=1,
             what=f"prefixes asked for again after the back-off ({c.n.d.pool()})")
    first, again = log_lines(c, NONE_GIVEN)[:2]
    waited = (logged_at(again) - logged_at(first)).total_seconds()
    assert waited >= RETRY_S, f"prefixes asked again {waited:.1f} s after moto gave none (back-off {RETRY_S} s)"
    e2e.check_ec2_truth(c, "after the retry")
    assert_no_prefix_anywhere(c, "after the retry")
    held = c.n.held()
    assert held == {cid: v[1] for cid, v in c.pods.items()}, held
    for cid, (ns, ip, _, out) in c.pods.items():
        rc, res = c.n.cni("CHECK", cid, ns, prev=out)
        assert rc == 0, (cid, res)
    e2e.ping_all(c, "after the retry")


def test_del_of_all_leaves_nothing(c):
    e2e.test_del_of_all_leaves_nothing(c)


if __name__ == "__main__":
    if not CNI or not os.path.exists(CNI) or not os.path.exists(os.environ.get("VPC_IPAMD", "")):
        print("1..1\nnot ok 1 - moto prefix delegation: VPC_CNI and VPC_IPAMD must name the built binaries")
        sys.exit(1)
    try:
        import moto  # noqa: F401
    except ImportError:
        print("1..1\nok 1 - moto prefix delegation # SKIP moto is not installed (the image's pyenv python3 has it)")
        sys.exit(0)
    sys.exit(harness.run(globals(), setup=setup, teardown=teardown))

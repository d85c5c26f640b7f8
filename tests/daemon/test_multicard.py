"""Multi-card instance types with the real vpc-ipamd in the emulated VPC. TAP on stdout.

A p4d.24xlarge has 60 ENIs across 4 network cards, 15 on each. vpc-ipamd attaches ENIs on card 0
only (aws-node with ENABLE_MULTI_NIC=false, its default), so its limit is card 0's 15, as aws-node's
ENILimit (the default card's MaximumNetworkInterfaces), not the instance-wide 60. Checks: a pool
asking for more than 15 ENIs hold stops at 15, all on card 0, without one refused attach, and says
so; /v1/pool and `vpc-ipamctl max-pods` count 15 ENIs.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ipamd import Daemon, harness, wait_for  # noqa: E402

IPAMCTL = os.environ.get("VPC_IPAMCTL", "")


def attached(w):
    inst = w.nodes[0]["instance_id"]
    return [e for e in w.truth()["enis"] if (e.get("attachment") or {}).get("instance_id") == inst]


def test_p4d_limits_are_card_0s():
    w = harness.WorldFixture(nodes=1, instance_type="p4d.24xlarge")
    # 15 ENIs x 49 addresses = 735: ask for more than card 0 can hold
    d = Daemon(w, 0, {"WARM_IP_TARGET": "800"})
    try:
        d.start()
        try:
            wait_for(lambda: "ENI limit reached" in d.pool()["reason"], timeout=120, interval=0.5,
                     what="the ENI limit")
        except AssertionError as e:
            raise AssertionError(f"{e}: {d.pool()} {len(attached(w))} ENIs\n{d.tail(30)}") from None
        enis = attached(w)
        assert len(enis) == 15, len(enis)
        assert {e["attachment"]["network_card_index"] for e in enis} == {0}, enis
        assert sorted(e["attachment"]["device_index"] for e in enis) == list(range(15))
        assert "15 ENIs" in d.pool()["reason"], d.pool()
        api = w.ctl("GET", "/stats")["api"]
        refused = api.get("AttachNetworkInterface", {}).get("errors", {})
        assert refused == {}, refused
        d.wait_passes(2, timeout=30)
        assert len(attached(w)) == 15
        st, body = d.http("/v1/pool")
        pool = json.loads(body)
        assert st == 200 and pool["max_enis"] == 15 and pool["max_pods"] == 250, pool  # min(250, 15 * 49 + 2): 96 vCPUs
    finally:
        d.stop()
        w.down()


def test_max_pods_counts_the_default_card():
    out = subprocess.run([IPAMCTL, "--json", "max-pods", "--instance-type", "p4d.24xlarge"],
                         capture_output=True, text=True, timeout=10)
    got = json.loads(out.stdout)
    assert got["max_pods"] == 250, got          # 15 x 49 + 2 = 737, capped at 250 (96 vCPUs)
    out = subprocess.run([IPAMCTL, "--json", "max-pods", "--instance-type", "p4d.24xlarge", "--max-eni", "4",
                          "--custom-networking"], capture_output=True, text=True, timeout=10)
    assert json.loads(out.stdout)["max_pods"] == 3 * 49 + 2, out.stdout


if __name__ == "__main__":
    import ipamd
    harness.run(globals(), teardown=ipamd.stop_all)

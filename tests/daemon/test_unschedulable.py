"""AWS_MANAGE_ENIS_NON_SCHEDULABLE with the real vpc-ipamd in the emulated VPC and its Kubernetes API
stand-in. TAP on stdout.

The daemon runs as `vpc-world exec` runs a pod of the DaemonSet (service account, MY_NODE_NAME,
the in-cluster variables), so it reads its Node. aws-node's rule: with the taint
node.kubernetes.io/unschedulable:NoSchedule (a cordon) and AWS_MANAGE_ENIS_NON_SCHEDULABLE=false
(the default), no ENI is attached or detached. Checks:
  - cordoned at start, a pool that needs a second ENI fills the primary only, says why in its
    status, and makes no ENI; uncordoned, it makes one;
  - cordoned again with a pool that should now shrink away a secondary ENI (older than aws-node's
    one-minute minimum): it stays attached; uncordoned, it goes;
  - with AWS_MANAGE_ENIS_NON_SCHEDULABLE=true, a cordoned node makes its ENI at once, and the API
    server (whose address and token the daemon has) receives no request at all;
  - the API server failing at start: no ENI while the first read of the Node is pending, then
    (failed twice and 10 s on) the pool grows all the same, and the ENI stays once the Node,
    read at last, says cordoned.
"""

import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ipamd import Daemon, harness, wait_for  # noqa: E402

# The primary ENI of an m5.large holds 9 secondary addresses: 12 free needs a second ENI.
GROW = {"WARM_IP_TARGET": "12"}


def k8s(w, method, path, body=None):
    url = w.w["kubernetes"]["control_endpoint"].rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def cordon(w, on):
    k8s(w, "POST", f"/nodes/{w.nodes[0]['k8s_node_name']}", {"unschedulable": on})


def secondary(w):
    inst = w.nodes[0]["instance_id"]
    return [e for e in w.truth()["enis"]
            if (e.get("attachment") or {}).get("instance_id") == inst and e["attachment"]["device_index"] > 0]


def log_size(d):
    return os.path.getsize(d.log) if os.path.exists(d.log) else 0


def read_node(d, unschedulable, since=0):
    """Wait until the daemon has read its Node with this taint state (logged past offset since)."""
    want = f'"unschedulable":{"true" if unschedulable else "false"}'

    def seen():
        with open(d.log) as f:
            f.seek(since)
            return any("read the node from the Kubernetes API" in line and want in line for line in f)
    wait_for(lambda: d.alive_or_raise() and seen(), timeout=40, what=f"the daemon reading its Node ({want})")


def wait_enis(w, d, n, what, timeout=40):
    try:
        wait_for(lambda: len(secondary(w)) == n, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: {d.pool()}\n{d.tail(40)}") from None


def test_cordoned_node_attaches_and_detaches_no_eni():
    w = harness.WorldFixture(nodes=1)
    d = Daemon(w, 0, GROW, k8s=True)
    try:
        cordon(w, True)
        d.start()
        read_node(d, True)
        wait_for(lambda: d.pool()["available"] >= 9, timeout=30, what="the primary ENI filled")
        d.wait_passes(2, timeout=30)
        assert secondary(w) == [], secondary(w)
        assert "unschedulable" in d.pool()["reason"], d.pool()
        cordon(w, False)
        wait_enis(w, d, 1, "the ENI once uncordoned")
        born = time.monotonic()
        eni = secondary(w)[0]["id"]
        # Cordoned again; once the ENI is past aws-node's one-minute minimum age, the pool is
        # made to want 1 free address: without the rule the secondary ENI is deleted at once.
        since = log_size(d)
        cordon(w, True)
        read_node(d, True, since)
        while time.monotonic() < born + 65:
            d.wait_passes(2, timeout=30)
        d.stop()
        d.env = {"WARM_IP_TARGET": "1", "VPC_IPAM_SHRINK_DELAY": "1"}
        since = log_size(d)
        d.start()
        read_node(d, True, since)
        wait_for(lambda: d.pool()["total"] <= 4, timeout=30, what="the primary's surplus released")
        for _ in range(3):
            d.wait_passes(2, timeout=30)
            assert [e["id"] for e in secondary(w)] == [eni], "an ENI detached from a cordoned node"
        cordon(w, False)
        wait_enis(w, d, 0, "the ENI deleted once uncordoned", timeout=60)
    finally:
        cordon(w, False)
        d.stop()
        w.down()


def test_manage_non_schedulable_true_grows_a_cordoned_node():
    w = harness.WorldFixture(nodes=1)
    d = Daemon(w, 0, dict(GROW, AWS_MANAGE_ENIS_NON_SCHEDULABLE="true"), k8s=True)
    try:
        cordon(w, True)
        d.start()
        wait_for(lambda: len(secondary(w)) == 1, timeout=40, what="the ENI of a cordoned node")
        assert "unschedulable" not in d.pool()["reason"]
        assert "reading the node from the Kubernetes API" not in d.tail(200), "an API client it does not need"
        # it had the service account and the API server's address, and sent it nothing
        d.wait_passes(2, timeout=30)
        assert k8s(w, "GET", "/stats") == {}, k8s(w, "GET", "/stats")
    finally:
        cordon(w, False)
        d.stop()
        w.down()



def test_api_server_down_at_start_delays_the_eni_then_lets_it_go():
    w = harness.WorldFixture(nodes=1)
    d = Daemon(w, 0, GROW, k8s=True)
    try:
        cordon(w, True)
        k8s(w, "POST", "/faults", {"status": 503})
        t0 = time.monotonic()
        d.start()
        wait_for(lambda: "first read of the Node" in d.pool()["reason"], timeout=30,
                 what="the reason naming the pending read")
        assert secondary(w) == [], "an ENI before the Node was read"
        wait_enis(w, d, 1, "the ENI once the API server stayed away", timeout=60)
        assert time.monotonic() - t0 >= 9, "the ENI did not wait out the first read's grace"
        assert "could not read from the Kubernetes API" in d.tail(300)
        eni = secondary(w)[0]["id"]
        since = log_size(d)
        k8s(w, "DELETE", "/faults")
        read_node(d, True, since)
        d.wait_passes(2, timeout=30)
        assert [e["id"] for e in secondary(w)] == [eni]
    finally:
        k8s(w, "DELETE", "/faults")
        cordon(w, False)
        d.stop()
        w.down()


if __name__ == "__main__":
    import ipamd
    harness.run(globals(), teardown=ipamd.stop_all)

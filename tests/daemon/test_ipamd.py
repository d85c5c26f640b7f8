"""vpc-ipamd against the emulated VPC: the daemon inside a node namespace, real
netlink, the emulator as EC2 and IMDS. Each test brings up its own fast world
and takes it down. TAP on stdout.

Checks: bad configuration refused; cold start reaches the warm targets with
exact counts in EC2's truth; an ADD on an empty pool waits and is served;
the ENI limit is named when the pool cannot grow; a SIGKILL and restart keep
every lease and agree with EC2; churn keeps the target with few EC2 calls;
introspection and metrics answer.
"""

import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ipamd import IPAMD, Daemon, harness, stop_all, secondary_ips, wait_for  # noqa: E402


def world(**kw):
    kw.setdefault("nodes", 1)
    return harness.WorldFixture(**kw)


def in_ec2_matches_store(w, d):
    """EC2's secondary addresses of the node equal the daemon's blocks, ENI by ENI."""
    truth = secondary_ips(w, w.nodes[d.node]["instance_id"])
    r = d.try_call({"op": "enis"})
    if not r or not r.get("ok"):
        return False
    mine = {e["id"]: {b.split("/")[0] for b in e.get("blocks", []) if b.endswith("/32")} for e in r["enis"]}
    return truth == mine


def test_bad_configuration_is_refused():
    for var, frag in [("WARM_IP_TARGET=abc", "WARM_IP_TARGET=abc: not an integer"),
                      ("MAX_ENI=0", "MAX_ENI=0: out of range"),
                      ("ENABLE_IPv6=true", "ENABLE_IPv6=true: IPv4 and IPv6 are both enabled"),
                      ("VPC_IPAM_ADD_WAIT=forever", "VPC_IPAM_ADD_WAIT=forever"),
                      ("AWS_VPC_ENI_MTU=100", "AWS_VPC_ENI_MTU=100: out of range")]:
        k, v = var.split("=", 1)
        p = subprocess.run([IPAMD], env={"PATH": "/usr/bin:/bin", k: v}, capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (var, p.returncode, p.stderr)
        assert frag in p.stderr, (var, p.stderr)


def test_cold_start_default_warm_eni():
    w = world()
    d = Daemon(w)
    try:
        t0 = time.monotonic()
        d.start()
        serving = time.monotonic() - t0
        wait_for(lambda: d.pool()["total"] == 9, timeout=10, what="9 addresses (one m5.large ENI's worth)")
        truth = secondary_ips(w, w.nodes[0]["instance_id"])
        assert list(truth) == [w.nodes[0]["primary_eni_id"]], truth
        assert len(truth[w.nodes[0]["primary_eni_id"]]) == 9
        assert in_ec2_matches_store(w, d)
        print(f"# serving after {serving * 1000:.0f} ms (including ip netns exec)")
    finally:
        stop_all()
        w.down()


def test_cold_start_ip_targets_two_enis_set_up():
    w = world()
    d = Daemon(w, env={"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"})
    try:
        d.start()
        wait_for(lambda: d.pool()["total"] == 12 and d.pool()["enis"] == 2, timeout=15, what="12 addresses on 2 ENIs")
        truth = secondary_ips(w, w.nodes[0]["instance_id"])
        assert sorted(len(v) for v in truth.values()) == [3, 9], truth
        assert in_ec2_matches_store(w, d)
        # The new ENI's link: up, its own table with the gateway routes, a rule for its primary address.
        enis = {e["id"]: e for e in d.call({"op": "enis"})["enis"]}
        second = next(e for e in enis.values() if not e["primary"])
        assert second["device_index"] == 1 and second["route_table"] == 2, second
        links = w.links(w.node_ns(0))
        assert "eth1" in links and "UP" in links["eth1"]["flags"], links.get("eth1")
        routes = w.ip(w.node_ns(0), "-j", "route", "show", "table", "2").stdout
        assert '"dst":"default"' in routes.replace(" ", ""), routes
        rules = w.ip(w.node_ns(0), "rule", "show").stdout
        assert f"from {second['primary_ip']} lookup 2" in rules, rules
    finally:
        stop_all()
        w.down()


def test_add_on_empty_pool_waits_and_is_served():
    w = world()
    d = Daemon(w, env={"WARM_IP_TARGET": "1", "VPC_IPAM_ADD_WAIT": "10"})
    try:
        d.start()
        wait_for(lambda: d.pool()["total"] >= 1, timeout=10, what="the first warm address")
        results = {}

        def add(i):
            results[i] = d.add(f"burst{i}")

        threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        ips = [r.get("ip") for r in results.values()]
        assert all(r["ok"] for r in results.values()), results
        assert len(set(ips)) == 6, ips
        assert d.pool()["assigned"] == 6, (d.pool(), results)
        st, metrics = d.http("/metrics", metrics=True)
        waited = [ln for ln in metrics.splitlines() if ln.startswith("vpcipam_add_waited_total ")]
        assert waited and int(float(waited[0].split()[1])) >= 1, waited  # they really found the pool empty
        print(f"# 6 concurrent ADDs on a 1-address pool all served in {took * 1000:.0f} ms; {waited[0]}")
        wait_for(lambda: in_ec2_matches_store(w, d), timeout=10, what="store and EC2 agree")
    finally:
        stop_all()
        w.down()


def test_eni_limit_is_named():
    w = world(instance_type="t3.nano")  # 2 ENIs x 2 addresses: 1 secondary each
    d = Daemon(w, env={"VPC_IPAM_ADD_WAIT": "3", "IP_COOLDOWN_PERIOD": "0"})
    try:
        d.start()
        got = [d.add(f"p{i}") for i in range(2)]
        assert all(g["ok"] for g in got), got
        r = d.add("p-too-many")
        assert not r["ok"] and r["error"]["code"] == "no_address" and r["error"]["retry"], r
        assert "ENI limit" in r["error"]["msg"], r["error"]["msg"]
        assert d.delete("p0")["ok"]
        assert d.add("p-too-many")["ok"]  # a freed address serves the next pod
    finally:
        stop_all()
        w.down()


def test_sigkill_and_restart_keep_every_lease():
    w = world()
    d = Daemon(w)
    d2 = Daemon(w)
    try:
        d.start()
        wait_for(lambda: d.pool()["total"] == 9, timeout=10, what="warm pool")
        leases = {f"k{i}": d.add(f"k{i}")["ip"] for i in range(4)}
        d.kill()
        d2.start()
        again = {c: d2.add(c)["ip"] for c in leases}  # ADD is idempotent: the same address
        assert again == leases, (again, leases)
        pods = {p["container_id"]: p["ip"] for p in d2.call({"op": "pods"})["pods"]}
        assert pods == leases
        wait_for(lambda: in_ec2_matches_store(w, d2) and d2.call({"op": "intents"})["intents"] == [],
                 timeout=15, what="store and EC2 agree, no EC2 operation left open")
    finally:
        stop_all()
        w.down()


def test_churn_keeps_target_with_few_ec2_calls():
    w = world()
    d = Daemon(w, env={"WARM_IP_TARGET": "3", "IP_COOLDOWN_PERIOD": "0"})
    try:
        d.start()
        wait_for(lambda: d.pool()["available"] >= 3, timeout=10, what="warm target")
        before = w.ctl("GET", "/stats")
        for i in range(60):
            assert d.add(f"c{i}")["ok"]
            if i >= 2:
                assert d.delete(f"c{i - 2}")["ok"]
        wait_for(lambda: d.pool()["available"] >= 3, timeout=10, what="target kept")
        d.wait_passes()  # whatever the churn left the reconciler to do, it has done
        after = w.ctl("GET", "/stats")

        def mutations(s):
            return sum(v.get("calls", 0) for k, v in s["api"].items()
                       if isinstance(v, dict) and k in ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses",
                                                         "CreateNetworkInterface", "DeleteNetworkInterface"))
        calls = mutations(after) - mutations(before)
        print(f"# 118 pod operations cost {calls} EC2 mutations")
        assert calls <= 6, json.dumps(after)[:2000]
    finally:
        stop_all()
        w.down()


def test_no_provisioning_uses_what_imds_shows():
    w = world()
    ec2 = w.ec2()
    eni = w.nodes[0]["primary_eni_id"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=3)
    d = Daemon(w, env={"DISABLE_NETWORK_RESOURCE_PROVISIONING": "true", "WARM_IP_TARGET": "10"})
    try:
        before = w.ctl("GET", "/stats")["api"]
        d.start()
        wait_for(lambda: d.pool()["total"] == 3, timeout=10, what="the 3 addresses IMDS lists")
        assert d.add("a")["ok"]
        d.wait_passes()  # the ADD woke the reconciler: had it wanted to grow, it has tried by now
        after = w.ctl("GET", "/stats")["api"]
        reads = ("Describe",)
        mutations = {a: v["calls"] for a, v in after.items() if not a.startswith(reads)}
        assert mutations == {"AssignPrivateIpAddresses": 1}, f"vpc-ipamd changed EC2: {after} (before {before})"
        assert "DescribeNetworkInterfaces" not in after, "the ENI view must come from IMDS"
        assert d.pool()["total"] == 3  # it does not grow
    finally:
        stop_all()
        w.down()


def test_leaked_enis_are_cleaned_at_start():
    import datetime
    w = world()
    ec2 = w.ec2()
    inst = w.nodes[0]["instance_id"]
    subnet = w.nodes[0]["subnet_id"]
    old = (datetime.datetime.utcnow() - datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")

    def eni(created, description="vpc-ipam-" + inst, instance=inst):
        tags = [{"Key": "node.k8s.amazonaws.com/instance_id", "Value": instance},
                {"Key": "node.k8s.amazonaws.com/createdAt", "Value": created}]
        return ec2.create_network_interface(SubnetId=subnet, Description=description, TagSpecifications=[
            {"ResourceType": "network-interface", "Tags": tags}])["NetworkInterface"]["NetworkInterfaceId"]

    leaked = eni(old)
    young = eni(new)                                   # under 5 minutes: may still be on its way
    foreign = eni(old, description="someone else's")   # not ours by description
    other = eni(old, instance="i-0123456789abcdef0")   # another node's
    d = Daemon(w)
    try:
        d.start()
        ids = lambda: {e["id"] for e in w.truth()["enis"]}  # noqa: E731
        wait_for(lambda: leaked not in ids(), timeout=10, what="the leaked ENI deleted")
        # the start-up cleanup runs to its end before the first planner pass
        wait_for(lambda: d.metric("vpcipam_reconciles_total") >= 1, timeout=10, what="the first planner pass")
        assert {young, foreign, other} <= ids(), ids()
        st, body = d.http("/metrics", metrics=True)
        assert "vpcipam_leaked_enis_deleted_total 1" in body
    finally:
        stop_all()
        w.down()


def test_introspection_and_metrics():
    w = world()
    d = Daemon(w)
    try:
        d.start()
        wait_for(lambda: d.pool()["total"] == 9, timeout=10, what="warm pool")
        d.add("m1")
        st, body = d.http("/v1/pool")
        pool = json.loads(body)
        assert st == 200 and pool["assigned"] == 1 and pool["max_pods"] == 29, body
        st, body = d.http("/v1/enis")
        enis = json.loads(body)
        assert st == 200 and enis[0]["id"] == w.nodes[0]["primary_eni_id"] and len(enis[0]["blocks"]) == 9, body
        st, body = d.http("/v1/ipamd-env-settings")
        assert st == 200 and json.loads(body)["WARM_ENI_TARGET"] == 1, body
        st, body = d.http("/nope")
        assert st == 404
        st, body = d.http("/metrics", metrics=True)
        assert st == 200, body
        for line in ("awscni_total_ip_addresses 9", "awscni_assigned_ip_addresses 1", "awscni_add_ip_req_count 1",
                     "awscni_eni_max 3", "awscni_ip_max 27", "awscni_total_ipv4_prefixes 0"):
            assert line in body, (line, body[:1500])
        # the 9 addresses came from AssignPrivateIpAddresses, counted in its throttling category
        sent = [ln for ln in body.splitlines() if ln.startswith('awscni_ec2api_req_count{category="eni_address"} ')]
        assert sent and float(sent[0].split()[1]) >= 1, (sent, body[:1500])
    finally:
        stop_all()
        w.down()


def test_sigterm_stops_cleanly():
    w = world()
    d = Daemon(w)
    d2 = Daemon(w)
    try:
        d.start()
        wait_for(lambda: d.pool()["total"] == 9, timeout=10, what="warm pool")
        assert d.stop() == 0, d.tail()
        assert not os.path.exists(d.sock), "the socket is removed on a clean stop"
        d2.start()  # a restart resumes from the store at once
        assert d2.pool()["total"] == 9
    finally:
        stop_all()
        w.down()


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

"""Custom networking (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG) with the real vpc-ipamd and vpc-cni in the
emulated VPC and its Kubernetes API stand-in. TAP on stdout.

Each world gets a second VPC CIDR, 100.64.0.0/16, a pods subnet in it in the nodes' AZ, a security
group "pods", and (per test) an ENIConfig named after the AZ, chosen by
ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone. The daemon runs as `vpc-world exec` runs a pod of
the DaemonSet: the service account at the standard path, MY_NODE_NAME, the in-cluster variables.
Checks:
  - new ENIs go in the pods subnet with the ENIConfig's group; pods get its addresses; the primary
    ENI holds no pod address; each ENI's table routes via the pods subnet's gateway; pods ping a pod
    on another node (node subnet) and a pod in the pods subnet on a third node, both ways, and the
    node-subnet pod sees their own address (no SNAT inside the VPC), while the host outside the VPC
    sees the node's primary address (SNAT beyond it); /v1/pool's max_pods counts one ENI less;
  - every request the API server received is one the DaemonSet's ClusterRole grants, and it grants
    nothing that was not requested;
  - the API server slow (answering late) and then failing (503) during the run, and failing at a
    restart: ADDs keep being served, and the pool still grows from the ENIConfig already read; an
    ENIConfig without security groups gives new ENIs the primary ENI's;
  - an ENIConfig whose subnet is in another AZ, then none at all: no ENI, no pod address, a status
    reason naming the cause; once it is right, the pool grows in the pods subnet; changed to another
    subnet, the next new ENI goes there and the existing one stays;
  - changed just after a periodic read, with the next one CUSTOMNET_REFRESH_MS (15 s) away: the ENI
    the pool makes right then goes in the new subnet (the create reads the ENIConfig again first).
"""

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cni"))

from ipamd import Daemon, harness, wait_for  # noqa: E402
from test_vpc_cni_ipamd import Node, ping  # noqa: E402

ZONE_LABEL = "topology.kubernetes.io/zone"
CN_ENV = {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true", "ENI_CONFIG_LABEL_DEF": ZONE_LABEL,
          "WARM_IP_TARGET": "3"}

ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    d, peer = s.recvfrom(100); s.sendto((peer[0] + "\n").encode(), peer)
"""

ASK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); s.sendto(b"?", (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(100)[0].decode().strip())
"""


def k8s(w, method, path, body=None):
    url = w.w["kubernetes"]["control_endpoint"].rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def setup_vpc(w):
    """The second CIDR, the pods subnet in the nodes' AZ, one in another AZ, and the "pods" group."""
    w.ctl("POST", "/vpc-cidrs", {"add": ["100.64.0.0/16"]})
    node_subnet = next(x for x in w.w["subnets"] if x["role"] == "nodes")
    az = node_subnet["availability_zone"] if "availability_zone" in node_subnet else w.w["availability_zone"]
    pods = w.ctl("POST", "/subnets", {"cidr": "100.64.0.0/19", "az": az})
    other = w.ctl("POST", "/subnets", {"cidr": "100.64.32.0/19", "az": az[:-1] + "b"})
    sg = w.ctl("POST", "/security-groups", {"name": "pods"})
    return {"az": az, "pods": pods, "other": other, "sg": sg, "node": node_subnet}


def cn_node(w, i, env=None):
    n = Node(w, i)
    n.d = Daemon(w, i, dict(CN_ENV, **(env or {})), k8s=True)
    return n


def instance(w, i):
    return w.nodes[i]["instance_id"]


def enis_of(w, i):
    return [e for e in w.truth()["enis"] if (e.get("attachment") or {}).get("instance_id") == instance(w, i)]


def secondary(w, i):
    return [e for e in enis_of(w, i) if e["attachment"]["device_index"] > 0]


def primary_secondary_ips(w, i):
    return [ip for e in enis_of(w, i) if e["attachment"]["device_index"] == 0 for ip in e.get("secondary_ips") or []]


def in_net(ip, cidr):
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)


def wait_served(n, what, timeout=30):
    try:
        wait_for(lambda: n.d.pool()["available"] > 0, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: {n.d.pool()} {n.d.tail(30)}") from None


def rbac_granted():
    """(verb, API group, resource) the ClusterRole of scripts/deploy/daemonset.yaml grants."""
    import yaml
    with open(os.path.join(HERE, "..", "..", "scripts", "deploy", "daemonset.yaml")) as f:
        role = next(d for d in yaml.safe_load_all(f) if d and d["kind"] == "ClusterRole")
    return {(v, g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


def requests_made(w):
    """(verb, API group, resource) of every request the API server received, from its /stats."""
    made = set()
    for key in k8s(w, "GET", "/stats"):
        method, path, status = key.split(" ")
        assert status != "403", f"the API server refused {method} {path}: RBAC forbids it"
        m = re.fullmatch(r"/api/v1/([a-z]+)(/[^/]+)?", path) or \
            re.fullmatch(r"/apis/([a-z0-9.-]+)/v[0-9a-z]+/([a-z]+)(/[^/]+)?", path)
        assert m and method == "GET", f"a request no ClusterRole rule can grant: {key}"
        group, res, name = ("", *m.groups()) if path.startswith("/api/") else m.groups()
        made.add(("get" if name else "list", group, res))
    return made


def echo_sees(server, client, ip):
    """The source address a UDP echo server in pod `server` (at ip) saw from pod `client`."""
    p = subprocess.Popen(["nsenter", "--net=" + server, sys.executable, "-c", ECHO, "7777"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        q = subprocess.run(["nsenter", "--net=" + client, sys.executable, "-c", ASK, ip, "7777"],
                           capture_output=True, text=True, timeout=10)
        return q.stdout.strip()
    finally:
        p.kill()
        p.wait()


def test_pods_in_the_eniconfig_subnet_talk_without_snat_and_survive_the_api_server():
    w = harness.WorldFixture(nodes=3)
    n0 = cn_node(w, 0)
    n1 = Node(w, 1)
    n2 = cn_node(w, 2)
    try:
        v = setup_vpc(w)
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": v["pods"]["id"], "securityGroups": [v["sg"]["id"]]})
        n0.d.start()
        n1.d.start()
        wait_served(n0, "node 0's pool from the ENIConfig's subnet")
        enis = secondary(w, 0)
        assert enis and {e["subnet_id"] for e in enis} == {v["pods"]["id"]}, enis
        assert all(e["groups"] == [v["sg"]["id"]] for e in enis), enis
        ns0 = n0.pod()
        ip0, _ = n0.add("cn0", ns0)
        assert in_net(ip0, v["pods"]["cidr"]), (ip0, v["pods"])
        assert primary_secondary_ips(w, 0) == [], "the primary ENI holds pod addresses"
        routes = n0.sh("ip", "route", "show", "table", "all").stdout
        assert f"default via {v['pods']['gateway']}" in routes, routes
        wait_served(n1, "node 1's pool")
        ns1 = n1.pod()
        ip1, _ = n1.add("plain", ns1)
        assert in_net(ip1, v["node"]["cidr"]), (ip1, v["node"])
        assert ping(ns0, ip1), "pods-subnet pod -> node-subnet pod on the other node"
        assert ping(ns1, ip0), "node-subnet pod -> pods-subnet pod"
        assert echo_sees(ns1, ns0, ip1) == ip0, "the pod's packets were NATed inside the VPC"
        n2.d.start()
        wait_served(n2, "node 2's pool from the ENIConfig's subnet")
        ns2 = n2.pod()
        ip2, _ = n2.add("cn2", ns2)
        assert in_net(ip2, v["pods"]["cidr"]) and primary_secondary_ips(w, 2) == [], ip2
        assert ping(ns0, ip2) and ping(ns2, ip0), "pods-subnet pods on two nodes"
        assert echo_sees(ns2, ns0, ip2) == ip0, "NATed between two pods-subnet pods"
        outside = w.w["outside"]
        assert echo_sees("/run/netns/" + outside["netns"], ns0, outside["ip"]) == w.nodes[0]["primary_ip"], \
            "beyond the VPC the pod is not seen as its node's primary address"
        st, body = n0.d.http("/v1/pool")
        pool = json.loads(body)
        assert st == 200 and pool["max_pods"] == (pool["max_enis"] - 1) * (pool["ipv4_per_eni"] - 1) + 2, pool

        # The API server slow (each answer 3 s late, within the client's timeout): ADDs are served
        # at once. Then failing (503): ADDs are served, and the pool grows to a new ENI in the pods
        # subnet all the same, from the ENIConfig already read.
        key = f"GET /apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/{v['az']} 200"
        k8s(w, "POST", "/faults", {"delay": 3})
        before = k8s(w, "GET", "/stats").get(key, 0)
        ips = [ip0]
        for i in range(3):
            wait_served(n0, "an address while the API server is slow")
            t0 = time.monotonic()
            ip, _ = n0.add(f"slow{i}", n0.pod())
            assert time.monotonic() - t0 < 3, "an ADD waited on the slow API server (3 s an answer)"
            ips.append(ip)
        wait_for(lambda: k8s(w, "GET", "/stats").get(key, 0) > before, timeout=30, what="a slow answer read")
        k8s(w, "DELETE", "/faults")
        k8s(w, "POST", "/faults", {"status": 503})
        wait_for(lambda: "503" in n0.d.tail(200), timeout=40, what="the daemon meeting the 503s")
        for i in range(12):
            if len(secondary(w, 0)) >= 2:
                break
            wait_served(n0, "an address while the API server fails")
            t0 = time.monotonic()
            ip, _ = n0.add(f"more{i}", n0.pod())
            assert time.monotonic() - t0 < 3, "an ADD waited on the API server"
            ips.append(ip)
        assert len(secondary(w, 0)) >= 2, secondary(w, 0)
        assert {e["subnet_id"] for e in secondary(w, 0)} == {v["pods"]["id"]}
        assert all(in_net(ip, v["pods"]["cidr"]) for ip in ips), ips
        assert primary_secondary_ips(w, 0) == []
        k8s(w, "DELETE", "/faults")
        granted, made = rbac_granted(), requests_made(w)
        assert made == granted, f"requested {sorted(made)}, the DaemonSet grants {sorted(granted)}"
    finally:
        k8s(w, "DELETE", "/faults")
        n0.close()
        n1.close()
        n2.close()
        w.down()


def test_api_server_slow_or_down_at_start_and_during_the_run():
    w = harness.WorldFixture(nodes=1)
    n = cn_node(w, 0)
    try:
        v = setup_vpc(w)
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": v["pods"]["id"]})
        # an ENIConfig that lists no security group: the primary ENI's (not EC2's default), as aws-node
        mine = [w.w["security_group"], w.ctl("POST", "/security-groups", {"name": "nodes-extra"})["id"]]
        w.ec2().modify_network_interface_attribute(NetworkInterfaceId=w.nodes[0]["primary_eni_id"], Groups=mine)
        n.d.start()
        wait_served(n, "the pool from the ENIConfig's subnet")
        assert secondary(w, 0) and all(e["groups"] == mine for e in secondary(w, 0)), (mine, secondary(w, 0))
        ip, _ = n.add("before", n.pod())
        n.d.stop()
        # down at the restart: the pool the store holds is served at once
        k8s(w, "POST", "/faults", {"status": 503})
        n.d.start()
        t0 = time.monotonic()
        ip2, _ = n.add("during-503", n.pod())
        assert time.monotonic() - t0 < 10 and in_net(ip2, v["pods"]["cidr"]), ip2
        # slow (each answer 20 s late, beyond the client's timeout) while running: still served
        k8s(w, "DELETE", "/faults")
        k8s(w, "POST", "/faults", {"status": 503, "delay": 20})
        t0 = time.monotonic()
        for i in range(3):
            wait_served(n, "an address while the API server is slow", timeout=20)
            n.add(f"slow{i}", n.pod())
        assert time.monotonic() - t0 < 40
        # this process never read the ENIConfig: no ENI was made anywhere else meanwhile
        assert {e["subnet_id"] for e in secondary(w, 0)} == {v["pods"]["id"]}, secondary(w, 0)
        assert primary_secondary_ips(w, 0) == []
        assert n.d.alive_or_raise()
    finally:
        k8s(w, "DELETE", "/faults")
        n.close()
        w.down()


def test_wrong_az_or_missing_eniconfig_serves_no_pod_until_fixed():
    w = harness.WorldFixture(nodes=1)
    n = cn_node(w, 0)
    try:
        v = setup_vpc(w)
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": v["other"]["id"]})
        n.d.start()
        wait_for(lambda: "is in " + v["az"][:-1] + "b" in n.d.pool()["reason"], timeout=30,
                 what="the other-AZ reason")
        assert "custom networking" in n.d.pool()["reason"]
        k8s(w, "DELETE", f"/eniconfigs/{v['az']}")
        wait_for(lambda: "not found" in n.d.pool()["reason"], timeout=40, what="the missing-ENIConfig reason")
        assert v["az"] in n.d.pool()["reason"], n.d.pool()
        assert secondary(w, 0) == [] and primary_secondary_ips(w, 0) == []
        # an ADD gets no address from the wrong subnet: none at all
        r = n.d.add("nowhere", timeout=20)
        assert r["ok"] is False and r["error"]["code"] == "no_address" and "ip" not in r, r
        assert "custom networking" in r["error"]["msg"], r
        assert "error" in n.d.tail(300) and "custom networking: no new ENI" in n.d.tail(300)
        # the log says the API answered (the object is missing), not that it could not be reached
        assert "the Kubernetes API says the Node or its ENIConfig is missing" in n.d.tail(300), n.d.tail(30)
        # fixed: the pool grows in the pods subnet
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": v["pods"]["id"]})
        wait_served(n, "the pool once the ENIConfig exists", timeout=60)
        assert {e["subnet_id"] for e in secondary(w, 0)} == {v["pods"]["id"]}
        ip, _ = n.add("fixed", n.pod())
        assert in_net(ip, v["pods"]["cidr"]), ip
        wait_for(lambda: "custom networking" not in n.d.pool()["reason"], timeout=20, what="the reason cleared")
        # changed: ENIs made after the next read go in the new subnet; the existing one stays as it is
        first = secondary(w, 0)[0]["id"]
        pods2 = w.ctl("POST", "/subnets", {"cidr": "100.64.64.0/19", "az": v["az"]})
        since = os.path.getsize(n.d.log)
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": pods2["id"]})

        def reread():
            with open(n.d.log) as f:
                f.seek(since)
                return pods2["id"] in f.read()
        wait_for(reread, timeout=40, what="the daemon reading the changed ENIConfig")
        for i in range(12):
            if len(secondary(w, 0)) >= 2:
                break
            wait_served(n, "an address")
            n.add(f"c{i}", n.pod())
        by_id = {e["id"]: e for e in secondary(w, 0)}
        assert len(by_id) == 2 and by_id[first]["subnet_id"] == v["pods"]["id"], by_id
        assert [e["subnet_id"] for k, e in by_id.items() if k != first] == [pods2["id"]], by_id
    finally:
        n.close()
        w.down()


def test_an_eni_made_right_after_a_change_goes_in_the_new_subnet():
    w = harness.WorldFixture(nodes=1)
    n = cn_node(w, 0)
    try:
        v = setup_vpc(w)
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": v["pods"]["id"]})
        n.d.start()
        wait_served(n, "the first ENI's addresses", timeout=60)
        assert [e["subnet_id"] for e in secondary(w, 0)] == [v["pods"]["id"]], secondary(w, 0)
        pods2 = w.ctl("POST", "/subnets", {"cidr": "100.64.64.0/19", "az": v["az"]})
        key = f"GET /apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs/{v['az']} 200"
        before = k8s(w, "GET", "/stats").get(key, 0)
        wait_for(lambda: k8s(w, "GET", "/stats").get(key, 0) > before, timeout=20, interval=0.05,
                 what="a periodic read of the ENIConfig")
        t0 = time.monotonic()
        k8s(w, "PUT", f"/eniconfigs/{v['az']}", {"subnet": pods2["id"]})
        for i in range(20):
            if len(secondary(w, 0)) >= 2:
                break
            wait_served(n, "an address")
            n.add(f"c{i}", n.pod())
        wait_for(lambda: len(secondary(w, 0)) >= 2, timeout=20, what="a second ENI")
        took = time.monotonic() - t0
        by_sub = sorted(e["subnet_id"] for e in secondary(w, 0))
        assert by_sub == sorted([v["pods"]["id"], pods2["id"]]), (by_sub, n.d.tail(40))
        # made well before the next periodic read: only the create's own read can have told of pods2
        assert took < 12, f"the second ENI took {took:.1f} s: too slow to tell"
        assert k8s(w, "GET", "/stats").get(key, 0) >= before + 2
    finally:
        n.close()
        w.down()


if __name__ == "__main__":
    import ipamd
    harness.run(globals(), teardown=ipamd.stop_all)

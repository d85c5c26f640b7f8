"""Taking over a node aws-node ran: vpc-ipamd and vpc-cni in the emulated VPC,
started on a node whose pods aws-node wired and still run. TAP on stdout.

The node is built as aws-node leaves it: a second ENI made through the
emulator's EC2 API with aws-node's description and tags, attached as device
1 and set up as aws-node does (address, table 2 with the gateway routes,
"from <ENI IP> lookup 2" at 32765); pods in namespaces with host veths named
eni + sha1("ns.pod")[:11], their /32 routes and rules (512 "to", 1536
"from" for the secondary ENI's pod); aws-node's nft table `ip aws-cni`; and
the checkpoint /var/run/aws-node/ipam.json (here a file in the world's
directory, VPC_IPAM_AWS_NODE_CHECKPOINT).

Checks: every old pod keeps its address, its rules and its connectivity
(ping from the node, and between an old and a new pod both ways); new pods
get other addresses; an allocation whose address no ENI holds is logged and
skipped; DEL of an old pod through vpc-cni removes its rules, route and veth
and frees its address; a restart does not import the checkpoint again; an
unknown checkpoint version stops the daemon with exit 2 naming file and
version; aws-node's nft table is removed.
"""

import hashlib
import ipaddress
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ipamd import Daemon, harness, stop_all, wait_for  # noqa: E402

CNI = os.environ.get("VPC_CNI", "")


def aws_veth(ns, pod):
    return "eni" + hashlib.sha1(f"{ns}.{pod}".encode()).hexdigest()[:11]


class AwsNodeNode:
    """Node 0 of a world, wired as aws-node would have wired it."""

    def __init__(self, w):
        self.w = w
        self.n = w.nodes[0]
        self.ns = w.node_ns(0)
        self.ec2 = w.ec2()
        self.sleepers = []
        self.pods = {}   # container id -> dict(ip, netns, veth, table)

    def sh(self, *args, check=True):
        p = subprocess.run(["ip", "netns", "exec", self.ns] + list(args), capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"{args}: {p.stderr}")
        return p

    def link_by_mac(self, mac):
        for name, link in self.w.links(self.ns).items():
            if link.get("address") == mac:
                return name
        return None

    def aws_node_eni(self, device_index, n_ips):
        """An ENI as aws-node creates, attaches and sets up: (eni id, ENI primary IP, secondary IPs, table)."""
        inst = self.n["instance_id"]
        tags = [{"Key": "node.k8s.amazonaws.com/instance_id", "Value": inst},
                {"Key": "node.k8s.amazonaws.com/createdAt", "Value": "2026-12-01T00:00:00Z"}]
        e = self.ec2.create_network_interface(
            SubnetId=self.n["subnet_id"], Description="aws-K8S-" + inst, SecondaryPrivateIpAddressCount=n_ips,
            TagSpecifications=[{"ResourceType": "network-interface", "Tags": tags}])["NetworkInterface"]
        self.ec2.attach_network_interface(NetworkInterfaceId=e["NetworkInterfaceId"], InstanceId=inst,
                                          DeviceIndex=device_index)
        mac = e["MacAddress"]
        wait_for(lambda: self.link_by_mac(mac), timeout=10, what="the attached ENI's link")
        link, primary = self.link_by_mac(mac), e["PrivateIpAddress"]
        table, gw, plen = device_index + 1, self.n["gateway"], self.n["prefix_length"]
        subnet = ipaddress.ip_network(f"{primary}/{plen}", strict=False)
        self.sh("ip", "link", "set", link, "mtu", "9001", "up")
        self.sh("ip", "addr", "add", f"{primary}/{plen}", "dev", link)
        self.sh("ip", "route", "del", str(subnet), "dev", link)
        self.sh("ip", "route", "add", f"{gw}/32", "dev", link, "scope", "link", "table", str(table))
        self.sh("ip", "route", "add", "default", "via", gw, "dev", link, "table", str(table))
        self.sh("ip", "rule", "add", "from", primary, "lookup", str(table), "prio", "32765")
        secondaries = [a["PrivateIpAddress"] for a in e["PrivateIpAddresses"] if not a["Primary"]]
        return e["NetworkInterfaceId"], primary, secondaries, table

    def new_netns(self):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, "unshare", "-n", "sleep", "600"])
        self.sleepers.append(p)
        node = subprocess.run(["ip", "netns", "exec", self.ns, "readlink", "/proc/self/ns/net"],
                              capture_output=True, text=True).stdout.strip()
        mine = os.readlink("/proc/self/ns/net")
        wait_for(lambda: os.readlink(f"/proc/{p.pid}/ns/net") not in (mine, node), timeout=5, what="pod namespace")
        return p.pid

    def aws_node_pod(self, cid, name, ip, table):
        """A pod wired as aws-node's plugin wires one (no vpc-cni alias on its veth)."""
        pid = self.new_netns()
        veth = aws_veth("default", name)
        self.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(pid))
        self.sh("ip", "link", "set", veth, "up")
        mac = self.w.links(self.ns)[veth]["address"]
        pod = ["nsenter", f"--net=/proc/{pid}/ns/net", "ip"]
        for args in (["link", "set", "eth0", "up"], ["addr", "add", f"{ip}/32", "dev", "eth0"],
                     ["route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
                     ["route", "add", "default", "via", "169.254.1.1", "dev", "eth0"],
                     ["neigh", "add", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent"]):
            subprocess.run(pod + args, check=True, capture_output=True)
        self.sh("ip", "route", "add", f"{ip}/32", "dev", veth, "scope", "link")
        self.sh("ip", "rule", "add", "to", ip, "lookup", "main", "prio", "512")
        if table != 254:
            self.sh("ip", "rule", "add", "from", ip, "lookup", str(table), "prio", "1536")
        self.pods[cid] = {"ip": ip, "netns": f"/proc/{pid}/ns/net", "veth": veth, "table": table, "name": name}

    def cni(self, d, cmd, cid, netns, name):
        conf = {"cniVersion": "1.1.0", "name": "aws-cni", "type": "vpc-cni", "socket": d.sock}
        env = {"CNI_COMMAND": cmd, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
               "CNI_PATH": "/opt/cni/bin",
               "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};IgnoreUnknown=1"}
        p = subprocess.run(["ip", "netns", "exec", self.ns, CNI], env=env, input=json.dumps(conf),
                           capture_output=True, text=True, timeout=60)
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None)

    def rules(self):
        return self.sh("ip", "rule", "show").stdout

    def close(self):
        for s in self.sleepers:
            s.kill()
            s.wait()


def ping(netns, ip):
    return subprocess.run(["nsenter", "--net=" + netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", ip],
                          capture_output=True, text=True).returncode == 0


def ping_from_node(node, ip):
    return node.sh("ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", ip, check=False).returncode == 0


def checkpoint(path, allocations, version="vpc-cni-ipam/1"):
    with open(path, "w") as f:
        json.dump({"version": version, "allocations": allocations}, f, separators=(",", ":"))


def alloc(cid, ip, name):
    return {"networkName": "aws-cni", "containerID": cid, "ifName": "eth0", "ipv4": ip,
            "allocationTimestamp": 1764979200123456789,
            "metadata": {"k8sPodNamespace": "default", "k8sPodName": name, "interfacesCount": 1}}


def build(w):
    """aws-node's node: pods on the primary ENI (table main) and on its own ENI (table 2)."""
    node = AwsNodeNode(w)
    primary_eni = w.nodes[0]["primary_eni_id"]
    r = node.ec2.assign_private_ip_addresses(NetworkInterfaceId=primary_eni, SecondaryPrivateIpAddressCount=3)
    on_primary = [a["PrivateIpAddress"] for a in r["AssignedPrivateIpAddresses"]]
    eni, eni_ip, on_eni, table = node.aws_node_eni(1, 3)
    node.sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    node.aws_node_pod("c-old-a", "web-a", on_primary[0], 254)
    node.aws_node_pod("c-old-b", "web-b", on_eni[0], table)
    node.aws_node_pod("c-old-c", "web-c", on_eni[1], table)
    node.sh("nft", "add table ip aws-cni; add chain ip aws-cni snat-mark { type nat hook postrouting priority srcnat; }")
    path = os.path.join(w.dir, "ipam.json")
    checkpoint(path, [alloc(c, p["ip"], p["name"]) for c, p in node.pods.items()] +
               [alloc("c-stale", "10.255.255.250", "gone-0")])
    return node, path, eni, eni_ip, table


def test_takeover_keeps_old_pods_and_frees_deleted_ones():
    w = harness.WorldFixture(nodes=1)
    node = None
    try:
        node, path, eni, eni_ip, table = build(w)
        old_ips = {c: p["ip"] for c, p in node.pods.items()}
        for c, p in node.pods.items():
            assert ping_from_node(node, p["ip"]), f"aws-node's pod {c} unreachable before the takeover"
        d = Daemon(w, env={"VPC_IPAM_AWS_NODE_CHECKPOINT": path}).start()
        held = {p["container_id"]: p["ip"] for p in d.call({"op": "pods"})["pods"]}
        assert held == old_ips, (held, old_ips)
        assert "allocation not imported" in d.tail(200) and "10.255.255.250" in d.tail(200), d.tail(200)
        # adopted: the ENI is the daemon's with aws-node's table; the pods' rules are untouched
        enis = {e["id"]: e for e in d.call({"op": "enis"})["enis"]}
        assert enis[eni]["route_table"] == table, enis
        wait_for(lambda: d.metric("vpcipam_reconciles_total") >= 2, timeout=20, what="two reconciler passes")
        rules = node.rules()
        for c, p in node.pods.items():
            assert f"from all to {p['ip']} lookup main" in rules, (c, rules)
            if p["table"] != 254:
                assert f"from {p['ip']} lookup {table}" in rules, (c, rules)
        assert f"from {eni_ip} lookup {table}" in rules, rules
        for c, p in node.pods.items():
            assert ping_from_node(node, p["ip"]), f"old pod {c} unreachable from the node after the takeover"
        # aws-node's SNAT table is gone; vpc-ipam's own is the only one
        tables = node.sh("nft", "list", "tables").stdout
        assert "aws-cni" not in tables, tables
        # new pods: other addresses, and they talk with the old ones
        new = {}
        for i in range(4):
            ns = f"/proc/{node.new_netns()}/ns/net"
            rc, out = node.cni(d, "ADD", f"c-new-{i}", ns, f"new-{i}")
            assert rc == 0, out
            new[f"c-new-{i}"] = (ns, out["ips"][0]["address"].split("/")[0])
        assert not {ip for _, ip in new.values()} & set(old_ips.values()), (new, old_ips)
        nns, nip = new["c-new-0"]
        for c, p in node.pods.items():
            assert ping(p["netns"], nip), f"old pod {c} -> new pod"
            assert ping(nns, p["ip"]), f"new pod -> old pod {c}"
        # DEL of an old pod (on the secondary ENI) through vpc-cni: rules, route, veth and address go
        b = node.pods["c-old-b"]
        assigned = d.pool()["assigned"]
        rc, out = node.cni(d, "DEL", "c-old-b", b["netns"], b["name"])
        assert rc == 0, out
        rules = node.rules()
        assert f"to {b['ip']} lookup" not in rules and f"from {b['ip']} lookup" not in rules, rules
        assert f"{b['ip']} dev" not in node.sh("ip", "route", "show", "table", "main").stdout
        wait_for(lambda: b["veth"] not in node.w.links(node.ns), timeout=5, what="the old pod's host veth deleted")
        held = {p["container_id"]: p["ip"] for p in d.call({"op": "pods"})["pods"]}
        assert "c-old-b" not in held and d.pool()["assigned"] == assigned - 1, (held, d.pool())
        # the others are untouched by it
        assert ping(node.pods["c-old-c"]["netns"], nip) and ping_from_node(node, node.pods["c-old-a"]["ip"])
        # a restart: the checkpoint still lists c-old-b, but the import happened once
        assert d.stop() == 0
        d = Daemon(w, env={"VPC_IPAM_AWS_NODE_CHECKPOINT": path}).start()
        held = {p["container_id"]: p["ip"] for p in d.call({"op": "pods"})["pods"]}
        assert "c-old-b" not in held and held["c-old-a"] == old_ips["c-old-a"], held
        assert d.tail(10000).count("took over aws-node's pods") == 1, d.tail(60)
        assert ping(node.pods["c-old-c"]["netns"], nip)
    finally:
        stop_all()
        if node:
            node.close()
        w.down()


def test_unknown_checkpoint_version_is_refused():
    w = harness.WorldFixture(nodes=1)
    try:
        path = os.path.join(w.dir, "ipam.json")
        checkpoint(path, [], version="vpc-cni-ipam/2")
        d = Daemon(w, env={"VPC_IPAM_AWS_NODE_CHECKPOINT": path}).start(wait=False)
        d.proc.wait(timeout=20)
        d.stop()
        assert d.proc.returncode == 2, (d.proc.returncode, d.tail())
        assert path in d.tail() and "vpc-cni-ipam/2" in d.tail(), d.tail()
    finally:
        stop_all()
        w.down()


def test_missing_checkpoint_is_a_fresh_node():
    w = harness.WorldFixture(nodes=1)
    try:
        d = Daemon(w, env={"VPC_IPAM_AWS_NODE_CHECKPOINT": os.path.join(w.dir, "absent.json")}).start()
        wait_for(lambda: d.pool()["total"] == 9, timeout=10, what="the warm pool")
        assert d.call({"op": "pods"})["pods"] == [] and "took over" not in d.tail(200)
    finally:
        stop_all()
        w.down()


def test_leak_cleanup_covers_aws_node_enis_and_the_cluster():
    import datetime
    w = harness.WorldFixture(nodes=1)
    ec2 = w.ec2()
    inst, subnet = w.nodes[0]["instance_id"], w.nodes[0]["subnet_id"]
    gone = "i-0123456789abcdef0"    # a terminated node of the cluster
    old = (datetime.datetime.utcnow() - datetime.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")

    def eni(instance, cluster=None, created=old):
        tags = [{"Key": "node.k8s.amazonaws.com/instance_id", "Value": instance},
                {"Key": "node.k8s.amazonaws.com/createdAt", "Value": created}]
        if cluster:
            tags.append({"Key": "cluster.k8s.amazonaws.com/name", "Value": cluster})
        return ec2.create_network_interface(SubnetId=subnet, Description="aws-K8S-" + instance, TagSpecifications=[
            {"ResourceType": "network-interface", "Tags": tags}])["NetworkInterface"]["NetworkInterfaceId"]

    mine = eni(inst)                                # aws-node's, this instance: deleted
    cluster_gone = eni(gone, "blue")                # the cluster's, a terminated node: deleted
    other_cluster = eni(gone, "green")              # another cluster's: kept
    no_cluster = eni(gone)                          # no cluster tag: kept
    young = eni(gone, "blue", created=new)          # under 5 minutes: kept
    d = Daemon(w, env={"CLUSTER_NAME": "blue"})
    try:
        d.start()
        ids = lambda: {e["id"] for e in w.truth()["enis"]}  # noqa: E731
        wait_for(lambda: not {mine, cluster_gone} & ids(), timeout=10, what="the leaked aws-node ENIs deleted")
        wait_for(lambda: d.metric("vpcipam_reconciles_total") >= 1, timeout=10, what="the first planner pass")
        assert {other_cluster, no_cluster, young} <= ids(), ids()
        assert d.metric("vpcipam_leaked_enis_deleted_total") == 2
    finally:
        stop_all()
        w.down()


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

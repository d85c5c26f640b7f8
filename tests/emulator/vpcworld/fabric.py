"""The VPC fabric: node namespaces, ENIs as veths, routes, and the source/dest check.

Layout for run prefix P (a short run-specific name):
  P-fab  the fabric: one veth end per attached ENI (named P e<serial>),
         every subnet's gateway (.1), IMDS 169.254.169.254 and the EC2
         endpoint on lo; proxy ARP on (answering at once: proxy_delay 0
         per link), forwarding on, redirects off.
  P-nI   node I: its ENIs appear as eth<device index> (c<card>eth<dev> on
         network cards > 0) with the ENI's MAC and MTU 9001; eth0 gets the primary IP,
         the subnet prefix and a default route via .1 as the OS would.
  P-out  a host outside the VPC (OUTSIDE_IP) behind the fabric, for egress.

Delivery: each ENI's primary address gets a /32 route and a permanent
neighbour entry (the ENI's MAC) on its veth; secondaries and /28 prefixes are
routed via that primary, so the fabric never ARPs for them. The check:
nftables table `ip vpc` sends packets arriving from each ENI's veth to a
chain that drops (and counts, in counter d<serial>) those whose source the
ENI does not own (set o<serial>); an ENI with SourceDestCheck=false is not
checked. The way out: like an internet gateway, which only translates
addresses that have a public IP mapping, the fabric forwards to the outside
host only packets whose source is some node's primary address (set `nodes`,
one element per attached primary ENI); others are dropped and counted in
counter `outside_drops` (a pod address that was not SNATed ends there).

IPv6 (enable_ipv6, for `up --ipv6`): the fabric forwards IPv6 too; each
ENI's veth end carries the VPC router's link-local address ROUTER_LL6 and a
permanent neighbour entry for the ENI's EUI-64 link-local address (its MAC),
and every IPv6 address (/128) and /80 prefix EC2 lists on the ENI is routed
via that link-local address, so the fabric never solicits for them. The
primary ENI boots with its first IPv6 address as a /128 and `default via
ROUTER_LL6` (the subnet's /64 is not on-link: proxy NDP cannot answer for
whole /80s, and every packet then meets the check). The check is table
`ip6 vpc6`, built like `ip vpc`: per ENI a set o<serial> of its IPv6
addresses and /80s and a chain dropping other sources into counter
d<serial> (counted with the IPv4 drops of the same ENI); link-local and
unspecified sources (neighbour discovery) pass. The outside host stays
IPv4-only: IPv6 is off on its link and in its namespace; with outside=True
(`up --ipv6 --outside-ipv6`) it also has OUTSIDE_IP6 behind OUTSIDE_GW6 and,
like the IPv4 way out, the fabric forwards to it only IPv6 packets whose
source is some node's primary IPv6 address (set `nodes6` of `ip6 vpc6`),
counting the rest in `outside_drops` too.

Fabric.apply(desired) diffs the wanted ENI links and addresses against what
it applied before and runs the minimum of ip/nft commands: one `ip -batch`
in the fabric, one per node touched, one nft transaction.
"""

import ipaddress
import json
import subprocess

from . import netns

IMDS_IP = "169.254.169.254"
EC2_IP = "192.0.2.10"          # the EC2 endpoint as nodes see it (TEST-NET-1)
OUTSIDE_NET = "198.51.100.0/24"
OUTSIDE_GW = "198.51.100.1"
OUTSIDE_IP = "198.51.100.10"
ENI_MTU = 9001                 # as EC2's ENIs; the outside link keeps 1500 (an internet path)
ROUTER_LL6 = "fe80::ec2:1"     # the VPC router's link-local address on every ENI's link
OUTSIDE_GW6 = "2001:db8:51::1"  # with enable_ipv6(outside=True): the outside link's IPv6
OUTSIDE_IP6 = "2001:db8:51::10"

_NFT_BASE = """
table ip vpc {
  map ifs { type ifname : verdict; }
  set nodes { type ipv4_addr; }
  counter outside_drops { }
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    iifname vmap @ifs
  }
  chain gateway {
    type filter hook forward priority 0; policy accept;
    oifname "OIF" ip saddr != @nodes counter name outside_drops drop
  }
}
"""


_NFT_BASE6 = """
table ip6 vpc6 {
  map ifs { type ifname : verdict; }
  set nodes6 { type ipv6_addr; }
  counter outside_drops { }
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    iifname vmap @ifs
  }
  chain gateway {
    type filter hook forward priority 0; policy accept;
    oifname "OIF" ip6 saddr != @nodes6 counter name outside_drops drop
  }
}
"""


def _ip(a):
    return str(ipaddress.IPv4Address(a))


def _ip6(a):
    return str(ipaddress.IPv6Address(a))


def eui64_ll(mac):
    """The link-local address the kernel derives from a MAC (EUI-64)."""
    b = [int(x, 16) for x in mac.split(":")]
    b = [b[0] ^ 2] + b[1:3] + [0xff, 0xfe] + b[3:]
    return _ip6((0xfe80 << 112) | int.from_bytes(bytes(b), "big"))


class Fabric:
    def __init__(self, prefix, log):
        self.prefix = prefix
        self.fab = f"{prefix}-fab"
        self.out = f"{prefix}-out"
        self.log = log
        self.applied = {}             # eni id -> dict (see apply)
        self.gateways = set()
        self.dropped_before = {}      # eni id -> drops counted on links now gone
        self.ipv6 = False             # enable_ipv6() was called
        self.unsure = set()           # eni ids whose link add timed out: delete, then add again

    def node_ns(self, index):
        return f"{self.prefix}-n{index}"

    # --- bring-up and teardown ---------------------------------------------
    def build(self, node_namespaces, gateways):
        names = [self.fab, self.out] + list(node_namespaces)
        netns.ip_batch(None, [f"netns add {n}" for n in names])
        netns.in_ns(self.fab, ["sysctl", "-q", "-w",
                               "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                               "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.all.proxy_arp=1",
                               "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
                               "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        oif = f"{self.prefix}o"
        netns.ip_batch(self.fab, [
            "link set lo up",
            f"addr add {IMDS_IP}/32 dev lo",
            f"addr add {EC2_IP}/32 dev lo",
            f"link add {oif} type veth peer name eth0 netns {self.out}",
            f"addr add {OUTSIDE_GW}/24 dev {oif}",
            f"link set {oif} up",
        ])
        netns.ip_batch(self.out, [
            "link set lo up", f"addr add {OUTSIDE_IP}/24 dev eth0", "link set eth0 up",
            f"route add default via {OUTSIDE_GW}",
        ])
        for ns in node_namespaces:
            netns.ip_batch(ns, ["link set lo up"])
        netns.nft(self.fab, _NFT_BASE.replace("OIF", oif))
        self.set_gateways(gateways)

    def set_gateways(self, gateways):
        gateways = set(gateways)
        lines = [f"addr add {_ip(g)}/32 dev lo" for g in sorted(gateways - self.gateways)]
        lines += [f"addr del {_ip(g)}/32 dev lo" for g in sorted(self.gateways - gateways)]
        netns.ip_batch(self.fab, lines)
        self.gateways = gateways

    def teardown(self):
        return netns.delete_with_prefix(self.prefix)

    # --- reconciliation ------------------------------------------------------
    def apply(self, desired):
        """desired: eni id -> {serial, ns, ifname, mac, primary, plen, gw, boot, owned, check}.

        Removals run before additions (an address moving between ENIs is
        deleted from the old one first); each batch runs to its end even if
        a line fails (ip -force), and failures are logged, not raised, so one
        bad link cannot stall the rest of the fabric. A batch that times out (a
        busy kernel: rtnl is shared by every namespace) leaves the links it was
        adding unknown: they are forgotten and made again, deleted first, on the
        next call; apply() returns False then, so the caller calls it again."""
        rm, add, nodes, nft_rm, nft_add = [], [], {}, [], []
        gone = [e for e in self.applied if e not in desired or self._moved(self.applied[e], desired[e])]
        if gone:
            self._bank_drops(gone)
        for eni_id in gone:
            a = self.applied.pop(eni_id)
            rm.append(f"link del {a['fif']}")
            s = a["serial"]
            if a["check"]:
                nft_rm.append(f"delete element ip vpc ifs {{ \"{a['fif']}\" : jump c{s} }}")
            if a["boot"]:
                nft_rm.append(f"delete element ip vpc nodes {{ {_ip(a['primary'])} }}")
            nft_rm += [f"flush chain ip vpc c{s}", f"delete chain ip vpc c{s}",
                       f"delete set ip vpc o{s}", f"delete counter ip vpc d{s}"]
            if self.ipv6:
                nft_rm += self._remove6(a)
        new = []
        for eni_id, d in desired.items():
            a = self.applied.get(eni_id)
            if a is None:
                new.append(eni_id)
                a = self._add_link(eni_id, d, add, nodes, nft_add)
            self._sync_addresses(a, d, rm, add, nft_add)
            if self.ipv6:
                self._sync6(a, d, rm, add, nft_add)
        self._run(lambda: netns.ip_batch(self.fab, rm, force=True))
        if not self._run(lambda: netns.ip_batch(self.fab, add, force=True)):
            for eni_id in new:
                self.applied.pop(eni_id, None)
            self.unsure.update(new)
            return False
        for ns, lines in nodes.items():
            self._run(lambda: netns.ip_batch(ns, lines, force=True))
        if nft_rm:
            self._run(lambda: netns.nft(self.fab, "\n".join(nft_rm) + "\n"))
        if nft_add:
            self._run(lambda: netns.nft(self.fab, "\n".join(nft_add) + "\n"))
        self.unsure -= set(new)
        return True

    def _run(self, fn):
        """False only when the command timed out (a failing line is logged, the rest ran: ip -force)."""
        try:
            fn()
        except netns.CommandError as e:
            self.log(f"fabric: {e}")
        except subprocess.TimeoutExpired as e:
            self.log(f"fabric: timed out: {' '.join(e.cmd)}")
            return False
        return True

    @staticmethod
    def _moved(a, d):
        return a["ns"] != d["ns"] or a["ifname"] != d["ifname"]

    def _add_link(self, eni_id, d, fab, nodes, nft):
        s = d["serial"]
        fif = f"{self.prefix}e{s}"
        p = _ip(d["primary"])
        if eni_id in self.unsure:       # a timed-out batch may have made it
            fab.append(f"link del {fif}")
        fab += [f"link add {fif} mtu {ENI_MTU} type veth peer name {d['ifname']} address {d['mac']} "
                f"mtu {ENI_MTU} netns {d['ns']}",
                f"link set {fif} up",
                f"ntable change name arp_cache dev {fif} proxy_delay 0",
                f"neigh replace {p} lladdr {d['mac']} dev {fif} nud permanent",
                f"route replace {p}/32 dev {fif}"]
        if d["boot"]:   # the primary ENI: configured as the OS does at boot
            nodes.setdefault(d["ns"], []).extend([
                f"link set {d['ifname']} up",
                f"addr add {p}/{d['plen']} dev {d['ifname']}",
                f"route add default via {_ip(d['gw'])} dev {d['ifname']}"])
            nft.append(f"add element ip vpc nodes {{ {p} }}")
        nft += [f"add set ip vpc o{s} {{ type ipv4_addr; flags interval; }}",
                f"add counter ip vpc d{s}",
                f"add chain ip vpc c{s}",
                f"add rule ip vpc c{s} ip saddr != @o{s} counter name d{s} drop"]
        a = {"serial": s, "fif": fif, "ns": d["ns"], "ifname": d["ifname"], "primary": d["primary"],
             "owned": {(d["primary"], 32)}, "check": False, "set": set(), "boot": d["boot"]}
        self.applied[eni_id] = a
        if self.ipv6:
            self._add_link6(a, d, fab, nodes, nft)
        return a

    def _sync_addresses(self, a, d, rm, add, nft):
        fif, p, s = a["fif"], _ip(a["primary"]), a["serial"]
        for base, plen in sorted(d["owned"] - a["owned"]):
            add.append(f"route replace {_ip(base)}/{plen} via {p} dev {fif}")
        for base, plen in sorted(a["owned"] - d["owned"]):
            rm.append(f"route del {_ip(base)}/{plen} via {p} dev {fif}")
        a["owned"] = set(d["owned"])
        if d["owned"] != a["set"]:
            elems = ", ".join(f"{_ip(b)}/{n}" if n != 32 else _ip(b) for b, n in sorted(d["owned"]))
            nft.append(f"flush set ip vpc o{s}")
            nft.append(f"add element ip vpc o{s} {{ {elems} }}")
            a["set"] = set(d["owned"])
        if d["check"] != a["check"]:
            verb = "add" if d["check"] else "delete"
            nft.append(f"{verb} element ip vpc ifs {{ \"{fif}\" : jump c{s} }}")
            a["check"] = d["check"]

    # --- IPv6 ------------------------------------------------------------------
    def enable_ipv6(self, node_namespaces, outside=False):
        """Forward IPv6 in the fabric and check its sources; call after build(), before apply().
        outside: the outside host gets OUTSIDE_IP6 (see the top)."""
        oif = f"{self.prefix}o"
        off = "0" if outside else "1"
        netns.in_ns(self.fab, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0",
                               "net.ipv6.conf.default.disable_ipv6=0", "net.ipv6.conf.all.forwarding=1",
                               "net.ipv6.conf.default.forwarding=1", "net.ipv6.conf.default.accept_dad=0",
                               "net.ipv6.conf.all.accept_redirects=0", f"net.ipv6.conf.{oif}.disable_ipv6={off}"])
        netns.in_ns(self.out, ["sysctl", "-q", "-w", f"net.ipv6.conf.all.disable_ipv6={off}",
                               f"net.ipv6.conf.default.disable_ipv6={off}", f"net.ipv6.conf.eth0.disable_ipv6={off}"])
        if outside:
            netns.ip_batch(self.fab, [f"addr add {OUTSIDE_GW6}/64 dev {oif} nodad"])
            netns.ip_batch(self.out, [f"addr add {OUTSIDE_IP6}/64 dev eth0 nodad",
                                      f"route add ::/0 via {OUTSIDE_GW6} dev eth0"])
        for ns in node_namespaces:
            netns.in_ns(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=0",
                             "net.ipv6.conf.default.disable_ipv6=0"])
        netns.nft(self.fab, _NFT_BASE6.replace("OIF", oif))
        self.ipv6 = True

    def _add_link6(self, a, d, fab, nodes, nft):
        fif, s, ll = a["fif"], a["serial"], eui64_ll(d["mac"])
        fab += [f"addr add {ROUTER_LL6}/64 dev {fif} nodad",
                f"neigh replace {ll} lladdr {d['mac']} dev {fif} nud permanent"]
        if d["boot"] and d.get("addr6") is not None:    # the primary ENI, as the OS configures it at boot
            nodes.setdefault(d["ns"], []).extend([
                f"addr add {_ip6(d['addr6'])}/128 dev {d['ifname']} nodad",
                f"route add ::/0 via {ROUTER_LL6} dev {d['ifname']}"])
            nft.append(f"add element ip6 vpc6 nodes6 {{ {_ip6(d['addr6'])} }}")
            a["node6"] = d["addr6"]
        nft += [f"add set ip6 vpc6 o{s} {{ type ipv6_addr; flags interval; }}",
                f"add counter ip6 vpc6 d{s}",
                f"add chain ip6 vpc6 c{s}",
                f"add rule ip6 vpc6 c{s} ip6 saddr {{ ::, fe80::/10 }} accept",
                f"add rule ip6 vpc6 c{s} ip6 saddr != @o{s} counter name d{s} drop"]
        a.update({"ll6": ll, "owned6": set(), "set6": set(), "check6": False})

    def _sync6(self, a, d, rm, add, nft):
        fif, s, ll = a["fif"], a["serial"], a["ll6"]
        want = d.get("owned6", set())
        for base, plen in sorted(want - a["owned6"]):
            add.append(f"route replace {_ip6(base)}/{plen} via {ll} dev {fif}")
        for base, plen in sorted(a["owned6"] - want):
            rm.append(f"route del {_ip6(base)}/{plen} via {ll} dev {fif}")
        a["owned6"] = set(want)
        if want != a["set6"]:
            nft.append(f"flush set ip6 vpc6 o{s}")
            if want:
                elems = ", ".join(f"{_ip6(b)}/{n}" for b, n in sorted(want))
                nft.append(f"add element ip6 vpc6 o{s} {{ {elems} }}")
            a["set6"] = set(want)
        if d["check"] != a["check6"]:
            verb = "add" if d["check"] else "delete"
            nft.append(f"{verb} element ip6 vpc6 ifs {{ \"{fif}\" : jump c{s} }}")
            a["check6"] = d["check"]

    @staticmethod
    def _remove6(a):
        s = a["serial"]
        out = [f"delete element ip6 vpc6 ifs {{ \"{a['fif']}\" : jump c{s} }}"] if a["check6"] else []
        if a.get("node6") is not None:
            out.append(f"delete element ip6 vpc6 nodes6 {{ {_ip6(a['node6'])} }}")
        return out + [f"flush chain ip6 vpc6 c{s}", f"delete chain ip6 vpc6 c{s}",
                      f"delete set ip6 vpc6 o{s}", f"delete counter ip6 vpc6 d{s}"]

    # --- counters --------------------------------------------------------------
    def _counters(self):
        """Counter name -> packets: d<serial> per ENI (IPv4 and IPv6 together), and outside_drops."""
        out = {}
        for family, table in [("ip", "vpc")] + ([("ip6", "vpc6")] if self.ipv6 else []):
            p = netns.in_ns(self.fab, ["nft", "-j", "list", "counters", "table", family, table], check=False)
            if p.returncode != 0:
                continue
            for obj in json.loads(p.stdout).get("nftables", []):
                c = obj.get("counter")
                if c:
                    out[c["name"]] = out.get(c["name"], 0) + c["packets"]
        return out

    def _bank_drops(self, eni_ids):
        counts = self._counters()
        for e in eni_ids:
            s = self.applied[e]["serial"]
            self.dropped_before[e] = self.dropped_before.get(e, 0) + counts.get(f"d{s}", 0)

    def drops(self):
        """Packets dropped by the source/destination check, per ENI id."""
        counts = self._counters()
        out = dict(self.dropped_before)
        for e, a in list(self.applied.items()):
            out[e] = out.get(e, 0) + counts.get(f"d{a['serial']}", 0)
        return out

    def outside_drops(self):
        """Packets towards the outside host dropped for a source that is no node's primary address."""
        return self._counters().get("outside_drops", 0)

    def links(self):
        return {e: {"netns": a["ns"], "ifname": a["ifname"], "fabric_ifname": a["fif"]}
                for e, a in self.applied.items()}

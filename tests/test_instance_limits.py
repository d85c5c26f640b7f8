#!/usr/bin/env python3
"""vpc-ipamctl max-pods against the emulator's instance table: no daemon, no network.

ipam/instance-limits.c is a compiled-in copy of
tests/emulator/vpcworld/instance_types.py; this suite fails when the two
drift (a type missing on either side, or any limit different), and checks
every type's max-pods, in each mode, against EKS's max-pods-calculator formula
(../shared/reference/aws-vpc-cni-modes.md §5) written out again here.
Usage: test_instance_limits.py VPC_IPAMCTL INSTANCE_LIMITS_C. TAP on stdout.
"""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator"))

import harness  # noqa: E402
from vpcworld.instance_types import TYPES  # noqa: E402

CTL, TABLE_C = sys.argv[1], sys.argv[2]


def ctl(*args, check=True):
    r = subprocess.run([CTL, *args], capture_output=True, text=True, timeout=10)
    if check:
        assert r.returncode == 0, f"{args}: rc {r.returncode}: {r.stderr}"
    return r


def calculator(t, pd=False, cn=False, max_eni=None, cni_before_1_9=False):
    enis = t.enis_per_card(0)
    if max_eni:
        enis = min(enis, max_eni)
    if cn:
        enis -= 1
    ips = t.ipv4_per_eni - 1
    if pd and t.nitro and not cni_before_1_9:
        ips *= 16
    n = enis * ips + 2
    return min(n, 110 if t.vcpus <= 30 else 250)


def test_same_types_on_both_sides():
    with open(TABLE_C) as f:
        names = set(re.findall(r'^\s*\{ "([a-z0-9.]+)",', f.read(), re.M))
    assert names == set(TYPES), f"only in C: {names - set(TYPES)}; only in Python: {set(TYPES) - names}"


def test_every_type_matches_the_emulator_and_the_formula():
    for t in TYPES.values():
        for flags in ([], ["--prefix-delegation"], ["--custom-networking"],
                      ["--prefix-delegation", "--custom-networking"], ["--max-eni", "2"],
                      ["--prefix-delegation", "--cni-version", "1.8.4"]):
            got = json.loads(ctl("--json", "max-pods", "--instance-type", t.name, *flags).stdout)
            assert (got["enis"], got["ipv4_per_eni"], got["vcpus"], got["nitro"]) == \
                (t.enis_per_card(0), t.ipv4_per_eni, t.vcpus, t.nitro), f"{t.name}: {got}"
            want = calculator(t, pd="--prefix-delegation" in flags, cn="--custom-networking" in flags,
                              max_eni=2 if "--max-eni" in flags else None, cni_before_1_9="1.8.4" in flags)
            assert got["max_pods"] == want, f"{t.name} {flags}: {got['max_pods']} != {want}"


def test_published_values():
    # The calculator's worked table (reference §5) and the EKS docs' m5.large/t3.small figures.
    for args, want in ((["m5.large"], 29), (["m5.large", "--prefix-delegation"], 110), (["t3.small"], 11),
                       (["t3.medium", "--custom-networking"], 12), (["m5.4xlarge"], 110),
                       (["c5.18xlarge"], 250), (["c5.18xlarge", "--prefix-delegation"], 250),
                       (["m5.large", "--prefix-delegation", "--cni-version", "v1.7.5"], 29)):
        out = ctl("max-pods", "--instance-type", *args).stdout
        assert out == f"{want}\n", f"{args}: {out!r}"


def test_json_after_the_command():
    got = json.loads(ctl("max-pods", "--instance-type", "m5.large", "--prefix-delegation", "--json").stdout)
    assert got["max_pods"] == 110 and got["prefix_delegation"] is True, got


def test_ipv6():
    # IPv6 is prefix delegation only: the PD figure on nitro; no answer where aws-node would not start.
    for t in TYPES.values():
        r = ctl("--json", "max-pods", "--instance-type", t.name, "--ipv6", check=False)
        if not t.nitro:
            assert r.returncode == 2 and r.stdout == "" and "not nitro" in r.stderr, (t.name, r)
            continue
        got = json.loads(r.stdout)
        assert got["ipv6"] is True and got["max_pods"] == calculator(t, pd=True), (t.name, got)
    assert ctl("max-pods", "--instance-type", "m5.large", "--ipv6").stdout == "110\n"
    assert ctl("max-pods", "--instance-type", "c5.18xlarge", "--ipv6").stdout == "250\n"
    for extra in (["--custom-networking"], ["--cni-version", "1.8.4"]):
        r = ctl("max-pods", "--instance-type", "m5.large", "--ipv6", *extra, check=False)
        assert r.returncode == 2 and r.stdout == "" and "--ipv6" in r.stderr, (extra, r)


def test_xen_types_get_no_prefix_delegation():
    r = ctl("max-pods", "--instance-type", "t2.medium", "--prefix-delegation")
    assert r.stdout == "17\n" and "not nitro" in r.stderr, r


def test_bad_arguments_are_refused():
    for args in (["max-pods"], ["max-pods", "--instance-type", "x9.huge"],
                 ["max-pods", "--instance-type", "m5.large", "--max-eni", "0"],
                 ["max-pods", "--instance-type", "m5.large", "--cni-version", "latest"],
                 ["max-pods", "--instance-type", "m5.large", "--bogus"]):
        r = ctl(*args, check=False)
        assert r.returncode == 2 and r.stdout == "" and "max-pods:" in r.stderr, (args, r)


def test_no_type_and_no_daemon_to_ask():
    # without --instance-type the node's type comes from vpc-ipamd (test_prefix.py); no daemon: say so
    for args in (["--socket", "/nonexistent/ipamd.sock", "max-pods"],
                 ["max-pods", "--prefix-delegation", "--socket", "/nonexistent/ipamd.sock"]):
        r = ctl(*args, check=False)
        assert r.returncode == 2 and r.stdout == "", (args, r)
        assert "--instance-type T is needed" in r.stderr and "/nonexistent/ipamd.sock" in r.stderr, (args, r)


if __name__ == "__main__":
    sys.exit(harness.run(globals(), needs_root=False))

"""The one-minute soak for scripts/test (TAP): one node, pods churning through
vpc-cni at 5 operations/s with the daemon's defaults, an EC2 fault every 15 s
and one SIGKILL + restart of vpc-ipamd; it fails on an address handed out
twice, an address or ENI leaked (the store against EC2's truth once every pod
is DELeted), or descriptors, RSS or the store growing past bounds
(bench_soak.growth_problems). It must have exercised what it claims: 100
ADDs, the SIGKILL, a fault that fired. The long run is `scripts/bench-soak
--minutes M` (docs/benchmarks.md, "Soak")."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_soak  # noqa: E402
from ipamd import harness  # noqa: E402


def test_one_minute_soak_leaks_nothing_and_stays_flat():
    seed = int(os.environ.get("SOAK_SEED", time.time()))
    rc, s = bench_soak.run(["--minutes", "1", "--kill-every", "20", "--fault-first", "5", "--fault-every", "15",
                            "--sample", "10", "--warmup", "1", "--seed", str(seed), "--check-growth", "--tap"])
    assert not s["violations"], f"seed {seed}: {s['violations']}"
    assert not s["growth"], f"seed {seed}: {s['growth']}"
    assert rc == 0, f"seed {seed}"
    assert s["adds"] >= 100 and s["kills"] >= 1 and s["faults_fired"] >= 1, f"seed {seed}: not exercised: {s}"


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

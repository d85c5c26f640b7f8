"""The bounded chaos run for scripts/test (TAP): 150 pod operations through
vpc-cni with EC2 faults and SIGKILLs of vpc-ipamd; every invariant of
chaos.py must hold, and the run must have exercised what it claims (at least
one SIGKILL, 5 EC2 faults, 37 successful ADDs: chaos.py's defaults for 150
operations, printed as a "# exercised:" line). The long run (>= 1,000
operations) is `python3 tests/chaos/chaos.py --ops 1000` (see
docs/operations.md)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import chaos  # noqa: E402
from ipamd import harness  # noqa: E402


def test_bounded_chaos_run_has_no_violation():
    seed = int(os.environ.get("CHAOS_SEED", time.time()))
    assert chaos.main(["--ops", "150", "--seconds", "120", "--seed", str(seed)]) == 0, f"violations (seed {seed})"


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

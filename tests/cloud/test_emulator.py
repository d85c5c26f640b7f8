#!/usr/bin/env python3
"""The cloud client against the project's emulated VPC (tests/emulator).

moto models no throttling, faults, limits or prefixes; the emulated VPC
does. This brings up a one-node --fast world with tests/emulator/vpc-world
(which creates and deletes its own namespaces), runs emu-faults (argv[1])
against the world's EC2 and control APIs on host loopback, and always brings
the world down, even on failure. Prints TAP; SKIPs with the reason when the
test is not root (a failure under CI: scripts/lib/test-summary.py). A missing
tests/emulator/vpc-world is a failure, never a skip.

usage: test_emulator.py EMU_FAULTS_EXE VPC_WORLD_SCRIPT
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile


def skip(reason):
    print("1..1")
    print(f"ok 1 - cloud client against the emulated VPC # SKIP {reason}")
    return 0


def main():
    exe, world = sys.argv[1], sys.argv[2]
    if not os.path.exists(world):
        print("1..1")
        print(f"not ok 1 - cloud client against the emulated VPC: {world} is missing")
        return 1
    if os.geteuid() != 0:
        return skip("needs root (the emulated VPC builds network namespaces)")
    # meson stops a test that runs too long with SIGTERM: turn it into an exception
    # so that the finally below still brings the world (its own session) down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    d = tempfile.mkdtemp(prefix="cloud-emu-")
    lines, rc = [], 1
    try:
        up = subprocess.run([sys.executable, world, "up", "--dir", d, "--nodes", "1", "--fast"],
                            capture_output=True, text=True, timeout=90)
        if up.returncode != 0:
            lines.append(("not ok", f"vpc-world up: {up.stderr.strip()[-300:]}"))
        else:
            w = json.load(open(os.path.join(d, "world.json")))
            env = dict(os.environ, AWS_ACCESS_KEY_ID=w["credentials"]["access_key_id"],
                       AWS_SECRET_ACCESS_KEY=w["credentials"]["secret_access_key"])
            env.pop("AWS_SESSION_TOKEN", None)
            node = w["nodes"][0]
            p = subprocess.run([exe, w["ec2_endpoint_host"], w["control_endpoint"], w["region"],
                                node["subnet_id"], node["instance_id"]],
                               capture_output=True, text=True, timeout=120, env=env)
            for line in p.stdout.splitlines():
                for verdict in ("not ok", "ok"):
                    if line.startswith(verdict + " "):
                        lines.append((verdict, line.split(" - ", 1)[1]))
                        break
            if p.returncode != 0 and all(v == "ok" for v, _ in lines):
                lines.append(("not ok", f"emu-faults exited {p.returncode}: {p.stderr.strip()[-300:]}"))
            rc = 0 if p.returncode == 0 else 1
    finally:
        down = subprocess.run([sys.executable, world, "down", "--dir", d], capture_output=True, text=True,
                              timeout=90)
        lines.append(("ok" if down.returncode == 0 else "not ok", "world brought down"))
        rc = rc or (down.returncode != 0)
        shutil.rmtree(d, ignore_errors=True)
    print(f"1..{len(lines)}")
    for i, (verdict, name) in enumerate(lines, 1):
        print(f"{verdict} {i} - {name}")
    return rc


if __name__ == "__main__":
    sys.exit(main())

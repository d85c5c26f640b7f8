#!/usr/bin/env python3
"""Counts test cases across meson test logs and prints the one closing line.

Every suite in vpc-ipam speaks TAP (Check's TAP writer, the Python suites' TAP
runner). A test case is one "ok"/"not ok" line; "# SKIP reason" marks a skip,
which is listed with its reason and never counted as passed. A suite that
failed without reporting any failing case (it crashed, timed out, or printed
no plan) counts as one failure of its own, so a crash cannot hide.

A plain test (one that prints no TAP, such as a bounded fuzz run) counts as
one case by its result. --failed-steps N adds N failures for steps that never
reached a test (a build that failed).

usage: test-summary.py [--failed-steps N] testlog.json [testlog.json ...]
"""
import json
import re
import sys

TAP_LINE = re.compile(r"^(not ok|ok)\b[^#]*(#\s*(SKIP|TODO)\b(.*))?", re.IGNORECASE)


def count(path, totals, skipped, failed):
    with open(path) as f:
        for raw in f:
            try:
                rec = json.loads(raw)
            except ValueError:
                totals["failed"] += 1
                failed.append(f"{path}: an unreadable test log line")
                continue
            name = f"{rec.get('name')} ({path.split('/')[-3] if path.count('/') >= 2 else path})"
            out = rec.get("stdout") or ""
            n_fail_before = totals["failed"]
            n_cases = 0
            for line in out.splitlines():
                m = TAP_LINE.match(line.strip())
                if not m:
                    continue
                n_cases += 1
                verdict, directive = m.group(1).lower(), (m.group(3) or "").upper()
                if directive == "SKIP":
                    totals["skipped"] += 1
                    skipped.append(f"{name}: {line.strip()}")
                elif verdict == "ok":
                    totals["passed"] += 1
                else:
                    totals["failed"] += 1
                    failed.append(f"{name}: {line.strip()}")
            if n_cases == 0 and rec.get("result") == "OK":
                totals["passed"] += 1  # a plain (non-TAP) test, such as a bounded fuzz run
                continue
            if n_cases == 0 and rec.get("result") == "SKIP":
                totals["skipped"] += 1
                skipped.append(f"{name}: {(out.strip().splitlines() or ['no reason printed'])[-1]}")
                continue
            if rec.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and totals["failed"] == n_fail_before:
                totals["failed"] += 1
                failed.append(f"{name}: suite ended with {rec.get('result')} (exit {rec.get('returncode')})")


def main():
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    skipped, failed = [], []
    args = sys.argv[1:]
    if args[:1] == ["--failed-steps"]:
        totals["failed"] += int(args[1])
        failed.extend(["a build step failed (see above)"] * int(args[1]))
        args = args[2:]
    for path in args:
        count(path, totals, skipped, failed)
    for s in skipped:
        print(f"skipped: {s}")
    for f in failed:
        print(f"FAILED: {f}")
    line = f"{totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        line += f", {totals['skipped']} skipped"
    print(line)
    return 1 if totals["failed"] or not totals["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())

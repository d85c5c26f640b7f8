#!/usr/bin/env python3
"""Counts what scripts/test ran, per build, and prints its two closing lines.

Each --build NAME DIR STATUS names a build directory and the exit status of
`meson test` in it. The summary reads DIR/meson-logs/testlog.json (what ran)
and DIR/meson-info/intro-tests.json (how each test speaks: TAP or exit code,
and its suites). A case is one (build, test, TAP case number); one that shows
up twice is counted once, so the count is of distinct (build, case) pairs.

- A TAP test counts its "ok"/"not ok" lines (column 0; a subtest's indented
  lines are not cases). "# SKIP reason" is a skip, never a pass; "# TODO" is
  not a pass either. A TAP test that printed no case, or that ended badly
  (crash, timeout, bad plan, non-zero exit) with no failing case, fails once.
- An exit-code test (a bounded fuzz run) is one case, by its result.
- Under CI=true every skip is a failure, listed with its reason: a missing
  prerequisite is a bug of scripts/deps, and CI must not pass on skips.
- A build whose testlog.json is missing or empty, a `meson test` that exited
  non-zero though its log shows no failure, two tests that run the same
  command (their cases would count twice), and each --failed-step (a build
  that failed) are failures.

Prints each skip and failure (a failing case with the comment lines under
it, its traceback, which meson's --print-errorlogs does not show for TAP; a
suite that ended badly with its last lines), then a line per kind of suite
and build ("unit 412 passed (normal), 412 passed (asan); python 101 passed
(normal); fuzz 5 targets passed (fuzz); 0 failed"), then exactly
"N passed, N failed[, N skipped]". Exits 1 on any failure or when nothing
passed.

usage: test-summary.py [--failed-step TEXT]... --build NAME DIR STATUS [--build ...]
"""
import argparse
import json
import os
import re
import sys

CASE = re.compile(r"^(not ok|ok)\b\s*(\d*)(.*)$")
DIRECTIVE = re.compile(r"#\s*(SKIP|TODO)\b\s*(.*)$", re.IGNORECASE)
PLAN_SKIP = re.compile(r"^1\.\.0\b\s*#\s*SKIP\b\s*(.*)$", re.IGNORECASE)
KIND_ORDER = ("unit", "netns", "python", "fuzz")


def kind_of(suites):
    """The group a test's cases are reported under, from its meson suites."""
    names = {s.split(":", 1)[-1] for s in suites}
    for k in ("fuzz", "python", "netns"):
        if k in names:
            return k
    return "unit"


class Tally:
    def __init__(self, ci):
        self.ci = ci
        self.cases = {}         # (build, test, case id) -> (verdict, text, kind)
        self.failed = []        # failures that are not cases: a build step, a missing log
        self.skip_notes = []

    def case(self, build, test, cid, verdict, text, kind):
        key = (build, test, cid)
        rank = {"pass": 0, "skip": 1, "fail": 2}
        old = self.cases.get(key)
        if old is None or rank[verdict] > rank[old[0]]:
            self.cases[key] = (verdict, text, kind)

    def problem(self, text):
        self.failed.append(text)


def load_json_lines(path, build, t):
    recs = []
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                recs.append(json.loads(raw))
            except ValueError:
                t.problem(f"{build}: {path} line {n} is not JSON")
    return recs


def diagnostics(after, limit=40):
    """The comment lines under a failing TAP case (its traceback), indented.

    meson test --print-errorlogs shows a TAP test's stderr but not these."""
    got = []
    for line in after:
        if CASE.match(line):
            break
        if line.startswith("#"):
            got.append("    " + line)
    if len(got) > limit:
        got = got[:limit] + [f"    # ... {len(got) - limit} more lines in testlog.json"]
    return "".join("\n" + g for g in got)


def tail(rec, limit=20):
    """The last lines a suite that ended badly wrote that are not TAP cases."""
    text = (rec.get("stdout") or "").splitlines() + (rec.get("stderr") or "").splitlines()
    got = [line for line in text if line.strip() and not CASE.match(line)][-limit:]
    return "".join("\n    " + g for g in got)


def count_tap(build, test, kind, rec, t):
    out = rec.get("stdout") or ""
    result = rec.get("result")
    label = f"{test} ({build})"
    n, any_fail = 0, False
    lines = out.splitlines()
    for i, line in enumerate(lines):
        m = CASE.match(line)
        if not m:
            continue
        n += 1
        verdict, num, rest = m.group(1), m.group(2), m.group(3)
        cid = int(num) if num else n
        d = DIRECTIVE.search(rest)
        if d and d.group(1).upper() == "SKIP":
            t.case(build, test, cid, "skip", f"{label}: {line.strip()}", kind)
        elif d:  # TODO: a known-broken case is evidence of nothing
            any_fail = True
            t.case(build, test, cid, "fail", f"{label}: {line.strip()} (a TODO case is not a pass)", kind)
        elif verdict == "ok":
            t.case(build, test, cid, "pass", label, kind)
        else:
            any_fail = True
            t.case(build, test, cid, "fail", f"{label}: {line.strip()}" + diagnostics(lines[i + 1:]), kind)
    if n == 0:
        plan = next((PLAN_SKIP.match(l) for l in out.splitlines() if PLAN_SKIP.match(l)), None)
        if plan and result == "SKIP":
            t.case(build, test, 0, "skip", f"{label}: whole suite # SKIP {plan.group(1) or 'no reason printed'}", kind)
        else:
            t.case(build, test, "end", "fail",
                   f"{label}: printed no TAP case (ended {result}, exit {rec.get('returncode')})" + tail(rec), kind)
        return
    if result not in ("OK", "SKIP") and not any_fail:
        t.case(build, test, "end", "fail",
               f"{label}: every case passed but the suite ended {result} (exit {rec.get('returncode')})" + tail(rec),
               kind)


def count_plain(build, test, kind, rec, t):
    result = rec.get("result")
    label = f"{test} ({build})"
    last = ((rec.get("stdout") or "").strip().splitlines() or ["no reason printed"])[-1]
    if result in ("OK", "EXPECTEDFAIL"):
        t.case(build, test, 0, "pass", label, kind)
    elif result == "SKIP":
        t.case(build, test, 0, "skip", f"{label}: # SKIP {last}", kind)
    else:
        t.case(build, test, 0, "fail", f"{label}: ended {result} (exit {rec.get('returncode')})", kind)


def count_build(name, bdir, status, t):
    log = os.path.join(bdir, "meson-logs", "testlog.json")
    intro = os.path.join(bdir, "meson-info", "intro-tests.json")
    if not os.path.isfile(log):
        t.problem(f"{name}: no {log}: meson test ran no test there (exit {status})")
        return
    try:
        with open(intro) as f:
            registered = json.load(f)
    except (OSError, ValueError) as e:
        t.problem(f"{name}: cannot read {intro}: {e}")
        return
    tests = {}
    for r in registered:
        if r["name"] in tests:
            t.problem(f"{name}: two tests are registered as {r['name']!r}")
        tests[r["name"]] = r
    recs = load_json_lines(log, name, t)
    if not recs:
        t.problem(f"{name}: {log} lists no test")
    before = sum(1 for (b, _, _), v in t.cases.items() if b == name and v[0] == "fail")
    commands = {}
    for rec in recs:
        test = (rec.get("name") or "?").split(" / ")[-1]
        reg = tests.get(test)
        if reg is None:
            t.problem(f"{name}: {test!r} ran but is not in {intro}")
            continue
        same = json.dumps([reg.get("cmd"), reg.get("env"), reg.get("workdir")], sort_keys=True)
        other = commands.setdefault(same, test)
        if other != test:
            t.problem(f"{name}: {other!r} and {test!r} run the same command: their cases would count twice")
            continue
        kind = kind_of(reg.get("suite") or [])
        if reg.get("protocol") == "tap":
            count_tap(name, test, kind, rec, t)
        else:
            count_plain(name, test, kind, rec, t)
    after = sum(1 for (b, _, _), v in t.cases.items() if b == name and v[0] == "fail")
    if status != 0 and after == before:
        t.problem(f"{name}: meson test exited {status} though its log shows no failing case")


def group_line(t, builds, total_failed):
    """'unit 412 passed (normal), 412 passed (asan); python ...; N failed'."""
    per = {}
    for (b, _, _), (verdict, _, kind) in t.cases.items():
        per.setdefault(kind, {}).setdefault(b, {"pass": 0, "fail": 0, "skip": 0})[verdict] += 1
    parts = []
    for kind in KIND_ORDER:
        if kind not in per:
            continue
        noun = " targets" if kind == "fuzz" else ""
        bits = []
        for b in builds:
            c = per[kind].get(b)
            if c is None:
                continue
            s = f"{c['pass']}{noun} passed"
            if c["fail"]:
                s += f", {c['fail']} failed"
            if c["skip"]:
                s += f", {c['skip']} skipped"
            bits.append(f"{s} ({b})")
        parts.append(f"{kind} " + ", ".join(bits))
    parts.append(f"{total_failed} failed")
    return "; ".join(parts)


def main(argv):
    ap = argparse.ArgumentParser(description="scripts/test's closing lines")
    ap.add_argument("--failed-step", action="append", default=[], metavar="TEXT",
                    help="a step that never reached its tests (a build that failed)")
    ap.add_argument("--build", action="append", nargs=3, default=[], metavar=("NAME", "DIR", "STATUS"),
                    help="a build directory and the exit status of meson test in it")
    a = ap.parse_args(argv)
    t = Tally(os.environ.get("CI") == "true")
    for step in a.failed_step:
        t.problem(step)
    for name, bdir, status in a.build:
        count_build(name, bdir, int(status), t)
    if not a.build:
        t.problem("no build ran a test (did a selector match nothing?)")

    passed = sum(1 for v in t.cases.values() if v[0] == "pass")
    skipped = [v[1] for v in t.cases.values() if v[0] == "skip"]
    failed = [v[1] for v in t.cases.values() if v[0] == "fail"] + t.failed
    if t.ci:
        failed += [f"{s} (CI=true: a skip is a failure; a missing prerequisite belongs in scripts/deps)"
                   for s in skipped]
        skipped = []
    for s in skipped:
        print(f"skipped: {s}")
    for f in failed:
        print(f"FAILED: {f}")
    print(group_line(t, [b[0] for b in a.build], len(failed)))
    line = f"{passed} passed, {len(failed)} failed"
    if skipped:
        line += f", {len(skipped)} skipped"
    print(line)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""scripts/lib/test-summary.py against small fixture build directories.

Each case writes a meson-logs/testlog.json and a meson-info/intro-tests.json
(the two files the summary reads) into a temporary directory, runs the
summary on them with CI unset or CI=true, and checks its exit status and
closing lines: a failing case, a crash with every case ok, a missing or empty
testlog, a skip under CI=true, a non-zero `meson test` status, two tests
running the same command, a TAP test with no case and a failed build step
each fail the run; passes, skips outside CI and a case seen in two builds are
counted as they are. TAP on stdout.

usage: test_summary.py SCRIPTS/LIB/TEST-SUMMARY.PY
"""
import json
import os
import subprocess
import sys
import tempfile
import traceback

SUMMARY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "..", "scripts", "lib", "test-summary.py")

TAP_OK = "1..2\nok 1 - a: Passed\nok 2 - b: Passed\n"


def t(name, stdout=TAP_OK, result="OK", rc=0, suite=("unit",), protocol="tap", cmd=None):
    """One test: its intro-tests.json entry and its testlog.json record."""
    return {"name": name, "stdout": stdout, "result": result, "returncode": rc,
            "suite": ["vpc-ipam:" + s for s in suite], "protocol": protocol,
            "cmd": cmd or ["/build/tests/test-" + name]}


def build(root, bname, tests, log=True, registered=None):
    d = os.path.join(root, bname)
    os.makedirs(os.path.join(d, "meson-info"))
    os.makedirs(os.path.join(d, "meson-logs"))
    with open(os.path.join(d, "meson-info", "intro-tests.json"), "w") as f:
        json.dump([{"name": x["name"], "suite": x["suite"], "protocol": x["protocol"], "cmd": x["cmd"],
                    "env": {}, "workdir": None} for x in (registered or tests)], f)
    if log:
        with open(os.path.join(d, "meson-logs", "testlog.json"), "w") as f:
            for x in tests:
                f.write(json.dumps({"name": "vpc-ipam:" + "+".join(s.split(":")[1] for s in x["suite"]) +
                                    " / " + x["name"], "stdout": x["stdout"], "result": x["result"],
                                    "returncode": x["returncode"], "env": {}, "command": x["cmd"]}) + "\n")
    return d


def summary(builds, ci=False, steps=(), statuses=None):
    """(exit status, output lines) of the summary over [(name, dir)]."""
    args = [sys.executable, SUMMARY]
    for s in steps:
        args += ["--failed-step", s]
    for i, (name, d) in enumerate(builds):
        args += ["--build", name, d, str((statuses or {}).get(name, 0))]
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=30)
    assert not p.stderr, p.stderr
    return p.returncode, p.stdout.splitlines()


def case_all_pass(tmp):
    d = build(tmp, "normal", [t("log"), t("ipamd", suite=("netns", "python"))])
    rc, out = summary([("normal", d)])
    assert rc == 0, out
    assert out[-1] == "4 passed, 0 failed", out
    assert out[-2] == "unit 2 passed (normal); python 2 passed (normal); 0 failed", out


def case_failing_case(tmp):
    d = build(tmp, "normal", [t("log", "1..3\nok 1 - a\nnot ok 2 - b: boom\n# Traceback:\n#   AssertionError: x\n"
                                       "ok 3 - c\n# not b's\n", "FAIL", 1)])
    rc, out = summary([("normal", d)], statuses={"normal": 1})
    assert rc == 1, out
    i = out.index("FAILED: log (normal): not ok 2 - b: boom")
    assert out[i + 1:i + 3] == ["    # Traceback:", "    #   AssertionError: x"], out   # its traceback, shown
    assert "    # not b's" not in out, out
    assert out[-1] == "2 passed, 1 failed", out


def case_crash_after_ok_cases(tmp):
    d = build(tmp, "normal", [t("store", "1..3\nok 1 - a\nok 2 - b\n", "ERROR", -6)])
    rc, out = summary([("normal", d)], statuses={"normal": 1})
    assert rc == 1 and out[-1] == "2 passed, 1 failed", out
    assert any("store (normal): every case passed but the suite ended ERROR" in x for x in out), out


def case_missing_testlog(tmp):
    good = build(tmp, "normal", [t("log")])
    gone = build(tmp, "asan", [t("log")], log=False)
    rc, out = summary([("normal", good), ("asan", gone)])
    assert rc == 1, out
    assert any(x.startswith("FAILED: asan: no ") and "testlog.json" in x for x in out), out
    assert out[-1] == "2 passed, 1 failed", out


def case_empty_testlog(tmp):
    d = build(tmp, "normal", [], registered=[t("log")])
    rc, out = summary([("normal", d)])
    assert rc == 1 and out[-1] == "0 passed, 1 failed", out


SKIPPED = "1..2\nok 1 - moto: Passed\nok 2 - moto integration # SKIP moto/boto3 not importable by python3\n"


def case_skip_outside_ci(tmp):
    d = build(tmp, "normal", [t("ec2-moto", SKIPPED)])
    rc, out = summary([("normal", d)])
    assert rc == 0, out
    assert "skipped: ec2-moto (normal): ok 2 - moto integration # SKIP moto/boto3 not importable by python3" \
        in out, out
    assert out[-1] == "1 passed, 0 failed, 1 skipped", out


def case_skip_under_ci(tmp):
    d = build(tmp, "normal", [t("ec2-moto", SKIPPED)])
    rc, out = summary([("normal", d)], ci=True)
    assert rc == 1, out
    assert any(x.startswith("FAILED: ec2-moto (normal): ok 2 - moto integration # SKIP moto/boto3")
               and "CI=true" in x for x in out), out
    assert out[-1] == "1 passed, 1 failed", out


def case_whole_suite_skipped_under_ci(tmp):
    d = build(tmp, "normal", [t("log"), t("cloud-emulator", "1..0 # SKIP needs root\n", "SKIP",
                                         suite=("netns", "python"))])
    rc, out = summary([("normal", d)], ci=True)
    assert rc == 1 and out[-1] == "2 passed, 1 failed", out
    assert any("cloud-emulator (normal): whole suite # SKIP needs root" in x for x in out), out


def case_meson_status_kept(tmp):
    d = build(tmp, "normal", [t("log")])
    rc, out = summary([("normal", d)], statuses={"normal": 125})
    assert rc == 1 and out[-1] == "2 passed, 1 failed", out
    assert "FAILED: normal: meson test exited 125 though its log shows no failing case" in out, out


def case_same_command_twice(tmp):
    d = build(tmp, "normal", [t("snat", cmd=["/b/test-snat"]), t("snat-again", cmd=["/b/test-snat"]),
                              t("snat-kernel", cmd=["/b/test-snat", "--kernel"], suite=("netns",))])
    rc, out = summary([("normal", d)])
    assert rc == 1, out
    assert any("'snat' and 'snat-again' run the same command" in x for x in out), out
    assert out[-1] == "4 passed, 1 failed", out   # snat's 2 cases and snat-kernel's 2, once each


def case_tap_without_cases(tmp):
    d = build(tmp, "normal", [t("log"), t("planner", "1..0\n")])
    rc, out = summary([("normal", d)])
    assert rc == 1 and out[-1] == "2 passed, 1 failed", out
    assert any("planner (normal): printed no TAP case" in x for x in out), out


def case_counted_once_per_build(tmp):
    tests = [t("log", TAP_OK + "    ok 1 - an indented subtest line is no case\n"),
             t("fuzz-protocol", "INFO: Done 3000 runs\n", protocol="exitcode", suite=("fuzz",))]
    n = build(tmp, "normal", tests[:1] * 2, registered=tests[:1])   # one record twice counts once
    a = build(tmp, "asan", tests[:1])
    f = build(tmp, "fuzz", tests[1:])
    rc, out = summary([("normal", n), ("asan", a), ("fuzz", f)])
    assert rc == 0, out
    assert out[-2] == "unit 2 passed (normal), 2 passed (asan); fuzz 1 targets passed (fuzz); 0 failed", out
    assert out[-1] == "5 passed, 0 failed", out


def case_failed_build_step(tmp):
    d = build(tmp, "normal", [t("log")])
    rc, out = summary([("normal", d)], steps=["the sanitizer build failed (see above)"])
    assert rc == 1 and "FAILED: the sanitizer build failed (see above)" in out, out
    assert out[-1] == "2 passed, 1 failed", out


def case_nothing_ran(tmp):
    rc, out = summary([])
    assert rc == 1 and out[-1] == "0 passed, 1 failed", out


def case_plain_test_failing(tmp):
    d = build(tmp, "fuzz", [t("fuzz-imds", "crash-123\n", "FAIL", 1, protocol="exitcode", suite=("fuzz",))])
    rc, out = summary([("fuzz", d)], statuses={"fuzz": 1})
    assert rc == 1 and out[-1] == "0 passed, 1 failed", out


def main():
    cases = [(n[5:], f) for n, f in globals().items() if n.startswith("case_")]
    print(f"1..{len(cases)}", flush=True)
    failed = 0
    for i, (name, fn) in enumerate(cases, 1):
        with tempfile.TemporaryDirectory(prefix="test-summary-") as tmp:
            try:
                fn(tmp)
                print(f"ok {i} - {name}", flush=True)
            except Exception:  # noqa: BLE001 - every failure is reported with its traceback
                failed += 1
                print(f"not ok {i} - {name}", flush=True)
                for line in traceback.format_exc().splitlines():
                    print("# " + line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

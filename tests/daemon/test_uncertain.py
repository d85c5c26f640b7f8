"""vpc-ipamd when the world answers late. TAP on stdout.

A CreateNetworkInterface whose answer never came (the daemon SIGKILLed while
waiting, or every retry unanswered) may be applied by EC2 seconds later. The
daemon settles such a create by issuing it again with the same ClientToken
(EC2 then returns the one ENI, or makes it once), never by one early look:
once the late call has landed, no ENI of the node may be left `available`,
and only one ENI was made for the token.

IMDS not answering at start: the daemon retries with back-off (one log line
per attempt) instead of exiting, and starts once IMDS answers.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ipamd import Daemon, harness, stop_all, wait_for  # noqa: E402
from test_ipamd import in_ec2_matches_store, world  # noqa: E402

# (tests/emulator/test_faults.py shadows this directory's on sys.path: its helpers are repeated here.)
TAG_INSTANCE = "node.k8s.amazonaws.com/instance_id"


def leaked(w, instance_id):
    """ENIs of this instance that nothing holds (status available)."""
    return [e["id"] for e in w.truth()["enis"]
            if e["status"] == "available" and (e.get("tags") or {}).get(TAG_INSTANCE) == instance_id]


def converge(w, d, total, enis, timeout=20):
    def ok():
        p = d.pool()
        return (p["total"] == total and p["enis"] == enis and in_ec2_matches_store(w, d)
                and d.call({"op": "intents"})["intents"] == [] and not leaked(w, w.nodes[0]["instance_id"])
                and p["releasing"] == 0)
    wait_for(ok, timeout=timeout, interval=0.1, what=f"convergence to {total} addresses on {enis} ENIs")


def wait_intent(d, kind, timeout=10):
    def open_one():
        r = d.try_call({"op": "intents"}, timeout=2)
        return r and any(i["kind"] == kind for i in r["intents"])
    wait_for(open_one, timeout=timeout, interval=0.01, what=f"an open {kind} intent")

ENV = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"}


def late_create(w, count, apply_after, hold):
    return w.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "lost", "count": count,
                                     "apply_after": apply_after, "hold": hold})["id"]


def applied_late(w, rule):
    return next(r["applied_late"] for r in w.ctl("GET", "/faults") if r["id"] == rule)


def ours(w):
    """The node's ENIs other than its primary (the ones vpc-ipamd made)."""
    inst = w.nodes[0]["instance_id"]
    return [e for e in w.truth()["enis"] if (e.get("tags") or {}).get(TAG_INSTANCE) == inst]


def settled_after(w, d, rule, late):
    wait_for(lambda: applied_late(w, rule) == late, timeout=30, interval=0.1, what="EC2 applying the lost creates")
    converge(w, d, total=12, enis=2, timeout=40)
    assert not leaked(w, w.nodes[0]["instance_id"]), w.truth()["enis"]


def test_sigkill_during_create_applied_after_the_restart():
    w = world()
    try:
        # The create is held 2 s unanswered and applied 8 s after it came: the daemon is
        # killed while waiting, and the restart settles the intent before EC2 applies it.
        rule = late_create(w, 1, apply_after=8, hold=2)
        d = Daemon(w, env=ENV).start()
        wait_intent(d, "create_eni")
        d.kill()
        d2 = Daemon(w, env=ENV).start()
        wait_for(lambda: "resolved an interrupted operation" in open(d2.log).read(), timeout=10,
                 what="the restart resolving the create intent")
        assert applied_late(w, rule) == 0, "EC2 applied the create before the restart resolved it: no race tested"
        settled_after(w, d2, rule, 1)
        assert len(ours(w)) == 1, ours(w)
    finally:
        stop_all()
        w.down()


def test_create_unanswered_on_every_retry_applied_afterwards():
    w = world()
    try:
        # More creates than the client's attempts (libcurl may re-send one on a dead connection)
        # are held 0.5 s and dropped; each is applied 3 s after it came.
        rule = late_create(w, 8, apply_after=3, hold=0.5)
        d = Daemon(w, env=ENV).start()
        settled_after(w, d, rule, 8)
        assert len(ours(w)) == 1, ours(w)
        with open(d.log) as f:
            log = f.read()
        assert "re-issued a create whose outcome was unknown" in log, \
            "".join(x for x in log.splitlines(True) if "reate" in x)
    finally:
        stop_all()
        w.down()


# A TCP relay to the world's IMDS, run inside the node's namespace once "IMDS" should come up.
RELAY = """
import socket, sys, threading
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(64)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("169.254.169.254", 80))
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
"""


def log_count(d, text):
    try:
        with open(d.log) as f:
            return f.read().count(text)
    except OSError:
        return 0


def test_imds_down_at_start_then_up():
    w = world()
    relay = None
    port = 18080
    try:
        d = Daemon(w, env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{port}"})
        d.start(wait=False)
        wait_for(lambda: d.alive_or_raise() and log_count(d, "IMDS does not answer yet") >= 3, timeout=20,
                 interval=0.05, what="three attempts at IMDS, logged")
        relay = subprocess.Popen(["ip", "netns", "exec", d.ns, sys.executable, "-c", RELAY, str(port)])
        wait_for(lambda: d.alive_or_raise() and d.try_call({"op": "status"}) is not None, timeout=30,
                 interval=0.1, what="vpc-ipamd serving once IMDS answers")
        assert log_count(d, "node discovered") == 1, d.tail()
    finally:
        if relay:
            relay.kill()
            relay.wait()
        stop_all()
        w.down()


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

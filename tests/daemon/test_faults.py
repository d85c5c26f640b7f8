"""vpc-ipamd under EC2 faults and SIGKILL, in the emulated VPC. TAP on stdout.

Faults (throttling, 5xx, timeouts, lost responses) must end in convergence
with exact counts and no duplicate ENI; the subnet running out is named. A
SIGKILL during each EC2 mutation (create, attach, assign, unassign, detach /
delete), then a restart, must leave store, kernel and EC2 in agreement: no
leaked ENI, no lost or duplicated address, no open intent.
"""

import os
import sqlite3
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ipamd import Daemon, harness, stop_all, secondary_ips, wait_for  # noqa: E402
from test_ipamd import in_ec2_matches_store, world  # noqa: E402

TAG_INSTANCE = "node.k8s.amazonaws.com/instance_id"


def leaked(w, instance_id):
    """ENIs of this instance that nothing holds (status available)."""
    return [e["id"] for e in w.truth()["enis"]
            if e["status"] == "available" and (e.get("tags") or {}).get(TAG_INSTANCE) == instance_id]


def settled(w, d):
    return (in_ec2_matches_store(w, d) and d.call({"op": "intents"})["intents"] == []
            and not leaked(w, w.nodes[0]["instance_id"]) and d.pool()["releasing"] == 0)


def converge(w, d, total=None, enis=None, timeout=20):
    def ok():
        p = d.pool()
        return ((total is None or p["total"] == total) and (enis is None or p["enis"] == enis)
                and settled(w, d))
    wait_for(ok, timeout=timeout, interval=0.1, what=f"convergence to {total} addresses on {enis} ENIs")


def wait_intent(d, kind, timeout=10):
    def open_one():
        r = d.try_call({"op": "intents"}, timeout=2)
        return r and any(i["kind"] == kind for i in r["intents"])
    wait_for(open_one, timeout=timeout, interval=0.01, what=f"an open {kind} intent")


def run_world(fn, env, **kw):
    w = world(**kw)
    d = Daemon(w, env=env)
    try:
        fn(w, d)
    finally:
        stop_all()
        w.down()


# --- faults --------------------------------------------------------------------------

def test_throttling_then_converges():
    def body(w, d):
        w.ctl("POST", "/throttle", {"force": {"ip-eni": 3}})
        d.start()
        # Each throttle halves the node's eni_address rate (0.5/s at the default
        # share 0.1) as it is then and drops its saved tokens; it climbs back
        # with time: the retries wait about 4, 5 and 6 s for a token, so allow
        # 45 s rather than the usual 20.
        converge(w, d, total=5, enis=1, timeout=45)
        assert len(secondary_ips(w, w.nodes[0]["instance_id"])) == 1
        st, body = d.http("/metrics", metrics=True)
        def gauge(name):
            return [float(l.split()[-1]) for l in body.splitlines()
                    if l.startswith(name + '{category="eni_address"}')]
        rate, throttled = gauge("vpcipam_ec2_rate_per_second"), gauge("vpcipam_ec2_throttled_total")
        # between the floor (1/10 of the share) and the share, whenever read
        assert st == 200 and len(rate) == 1 and 0.05 <= rate[0] <= 0.5, (st, rate)
        assert throttled == [3.0], throttled
    run_world(body, {"WARM_IP_TARGET": "5"})


def test_server_errors_then_converge():
    def body(w, d):
        w.ctl("POST", "/faults", {"action": "AssignPrivateIpAddresses", "kind": "error", "status": 500,
                                  "code": "InternalError", "count": 2})
        w.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "error", "status": 503,
                                  "code": "Unavailable", "count": 2})
        d.start()
        converge(w, d, total=12, enis=2)
    run_world(body, {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"})


def test_lost_assign_response_loses_no_address():
    def body(w, d):
        w.ctl("POST", "/faults", {"action": "AssignPrivateIpAddresses", "kind": "lost", "count": 1})
        d.start()
        # The first Assign was applied but unanswered; the retry assigned more: the store must know all.
        wait_for(lambda: in_ec2_matches_store(w, d) and d.pool()["total"] >= 5, timeout=20, interval=0.1,
                 what="every address EC2 assigned known to the store")
    run_world(body, {"WARM_IP_TARGET": "5"})


def test_lost_create_response_makes_no_second_eni():
    def body(w, d):
        w.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "lost", "count": 1})
        d.start()
        converge(w, d, total=12, enis=2)
        assert len([e for e in w.truth()["enis"] if (e.get("tags") or {}).get(TAG_INSTANCE)]) == 1
    run_world(body, {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"})


def test_lost_attach_response_keeps_the_eni():
    def body(w, d):
        w.ctl("POST", "/faults", {"action": "AttachNetworkInterface", "kind": "lost", "count": 1})
        d.start()
        converge(w, d, total=12, enis=2)
    run_world(body, {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"})


def test_timeouts_then_converge():
    def body(w, d):
        w.ctl("POST", "/faults", {"action": "CreateNetworkInterface", "kind": "timeout", "seconds": 1, "count": 1})
        w.ctl("POST", "/faults", {"action": "AssignPrivateIpAddresses", "kind": "timeout", "seconds": 1,
                                  "count": 1})
        d.start()
        converge(w, d, total=12, enis=2, timeout=40)
    run_world(body, {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"})


def test_subnet_exhaustion_is_named():
    def body(w, d):
        d.start()
        wait_for(lambda: "exhausted" in d.pool()["reason"], timeout=15, what="the exhaustion reason")
        total = d.pool()["total"]
        for i in range(total):
            assert d.add(f"p{i}")["ok"]
        r = d.add("one-too-many")
        assert not r["ok"] and r["error"]["code"] == "no_address", r
        assert "InsufficientFreeAddressesInSubnet" in r["error"]["msg"] or "exhausted" in r["error"]["msg"], r
        assert settled(w, d)
    # A /26 VPC: the nodes subnet is a /28 with 10 free addresses after the node's own.
    run_world(body, {"MINIMUM_IP_TARGET": "20", "VPC_IPAM_ADD_WAIT": "2"}, extra=["--vpc-cidr", "10.0.0.0/26"])


# --- SIGKILL during each mutation -------------------------------------------------------

def ec2_connections(w):
    """The node's TCP connections to the emulated EC2 endpoint that EC2 has not closed yet. After
    the daemon died, its kernel closed them (FIN); the emulator closes each when its handler is
    done, so one still here is a call the emulator has not finished. (Closed ones linger only as
    time-wait, which is left out.)"""
    host = urllib.parse.urlparse(w.w["ec2_endpoint"]).hostname
    states = ["syn-sent", "established", "fin-wait-1", "fin-wait-2", "closing", "last-ack"]
    p = subprocess.run(["ip", "netns", "exec", w.node_ns(0), "ss", "-Htn"] + [x for st in states for x in ("state", st)]
                       + ["dst", host], capture_output=True, text=True, timeout=10, check=True)
    return [line for line in p.stdout.splitlines() if line.strip()]


def kill_during(w, d, env, kind, latency, then_total, then_enis):
    w.ctl("POST", "/latency", latency)
    d.start()
    wait_intent(d, kind)
    d.kill()
    # The emulator finishes the call the dead daemon made (and any attach or detach it set
    # going) before a new daemon looks: the restart must find it applied, not racing it.
    wait_for(lambda: not ec2_connections(w), timeout=10, interval=0.05,
             what="the emulator to finish the dead daemon's calls")
    wait_for(lambda: not [e["id"] for e in w.truth()["enis"]
                          if (e.get("attachment") or {}).get("status") in ("attaching", "detaching")],
             timeout=10, interval=0.05, what="no attach or detach under way in EC2")
    w.ctl("POST", "/latency", {"api": {k: 0 for k in latency.get("api", {})}, "attach": 0, "detach": 0})
    d2 = Daemon(w, env=env).start()
    converge(w, d2, total=then_total, enis=then_enis)
    return d2


def test_sigkill_during_create():
    env = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"}
    w = world()
    d = Daemon(w, env=env)
    try:
        d = kill_during(w, d, env, "create_eni", {"api": {"CreateNetworkInterface": 1.5}}, 12, 2)
    finally:
        stop_all()
        w.down()


def test_sigkill_during_attach():
    env = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"}
    w = world()
    d = Daemon(w, env=env)
    try:
        d = kill_during(w, d, env, "attach_eni", {"api": {"AttachNetworkInterface": 1.5}}, 12, 2)
    finally:
        stop_all()
        w.down()


def test_sigkill_during_assign():
    env = {"WARM_IP_TARGET": "5"}
    w = world()
    d = Daemon(w, env=env)
    try:
        d = kill_during(w, d, env, "assign_ips", {"api": {"AssignPrivateIpAddresses": 1.5}}, None, 1)
        assert d.pool()["total"] >= 5
    finally:
        stop_all()
        w.down()


def test_sigkill_during_unassign():
    w = world()
    d = Daemon(w, env={"MINIMUM_IP_TARGET": "9"})
    try:
        d.start()
        converge(w, d, total=9, enis=1)
        d.stop()
        env = {"WARM_IP_TARGET": "1"}  # 9 free, want 1: release the surplus
        d = kill_during(w, Daemon(w, env=env), env, "unassign_ips",
                        {"api": {"UnassignPrivateIpAddresses": 1.5}}, None, 1)
    finally:
        stop_all()
        w.down()


def test_sigkill_during_detach():
    w = world()
    d = Daemon(w, env={"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "12"})
    try:
        d.start()
        converge(w, d, total=12, enis=2)
        d.stop()
        # Age the second ENI past aws-node's one-minute minimum, as time would.
        db = sqlite3.connect(d.db)
        db.execute("UPDATE enis SET created_ms = created_ms - 300000")
        db.commit()
        db.close()
        env = {"WARM_IP_TARGET": "1"}
        d = kill_during(w, Daemon(w, env=env), env, "delete_eni",
                        {"api": {"DetachNetworkInterface": 0.5}, "detach": 1.5}, None, None)
        # Whichever way it went, nothing leaked and the pool still serves.
        assert d.add("after")["ok"]
    finally:
        stop_all()
        w.down()


def test_open_intent_of_an_older_daemon_is_closed():
    """An older daemon wrote detach_eni intents; one left open (a crash) is
    closed at the next start, with a log, and changes nothing in EC2."""
    w = world()
    d = Daemon(w, env={"MINIMUM_IP_TARGET": "9"})
    try:
        d.start()
        converge(w, d, total=9, enis=1)
        d.stop()
        db = sqlite3.connect(d.db)
        eni = db.execute("SELECT id FROM enis ORDER BY device_index LIMIT 1").fetchone()[0]
        db.execute("INSERT INTO intents (kind, eni_id, params, state, created_ms)"
                   " VALUES ('detach_eni', ?, '{}', 'open', 0)", (eni,))
        db.commit()
        db.close()
        d2 = Daemon(w, env={"MINIMUM_IP_TARGET": "9"}).start()
        converge(w, d2, total=9, enis=1)
        d2.stop()
        db = sqlite3.connect(d.db)
        states = db.execute("SELECT state FROM intents WHERE kind = 'detach_eni'").fetchall()
        db.close()
        assert states == [("done",)], states
        with open(d2.log) as f:
            assert "no longer makes" in f.read()
    finally:
        stop_all()
        w.down()


if __name__ == "__main__":
    sys.exit(harness.run(globals()))

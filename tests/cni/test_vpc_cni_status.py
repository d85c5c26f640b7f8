"""vpc-cni STATUS against the real vpc-ipamd in the emulated VPC. TAP on stdout.

CNI 1.1: 0 = ready, 50 = the plugin is not available, 51 = available but it
cannot serve new ADDs now. One node (m5.large) whose vpc-ipamd may use one
ENI only (MAX_ENI=1: 9 secondary addresses) and keeps no cooldown:

- warm pool: STATUS 0;
- every address held by a pod (taken through the daemon's socket): the
  daemon answers but is at its ENI limit, STATUS 51 naming the limit;
- one pod gone: 0 again;
- the daemon stopped: 50 naming the socket.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))

from ipamd import Daemon, harness, wait_for  # noqa: E402

CNI = os.environ.get("VPC_CNI", "")


def status(sock):
    conf = {"cniVersion": "1.1.0", "name": "vpc", "type": "vpc-cni", "socket": sock}
    p = subprocess.run([CNI], env={"CNI_COMMAND": "STATUS", "CNI_PATH": "/opt/cni/bin"}, input=json.dumps(conf),
                       capture_output=True, text=True, timeout=30)
    out = json.loads(p.stdout) if p.stdout.strip() else {}
    return (p.returncode, out.get("code", 0), out.get("msg", ""))


def test_status_0_51_50_from_the_real_daemon():
    w = harness.WorldFixture(nodes=1, instance_type="m5.large")
    d = Daemon(w, 0, {"MAX_ENI": "1", "IP_COOLDOWN_PERIOD": "0"})
    try:
        d.start()
        wait_for(lambda: d.pool()["available"] >= 9, timeout=30, what="the primary ENI's 9 addresses")
        st, body = d.http("/v1/pool")
        pool = json.loads(body)     # kubelet's maxPods must not exceed max_pods: MAX_ENI counts
        assert st == 200 and (pool["max_enis"], pool["max_pods"]) == (1, 9 + 2), pool
        assert status(d.sock) == (0, 0, ""), status(d.sock)
        for i in range(9):
            r = d.add(f"fill{i}")
            assert r["ok"], r
        wait_for(lambda: status(d.sock)[1] == 51, timeout=20, what="STATUS 51 at the ENI limit")
        rc, code, msg = status(d.sock)
        assert rc == 1 and "ENI limit" in msg, (rc, code, msg)
        print(f"# {msg}", flush=True)
        assert d.delete("fill0")["ok"]
        wait_for(lambda: status(d.sock)[1] == 0, timeout=20, what="STATUS 0 with a free address")
        d.stop()
        rc, code, msg = status(d.sock)
        assert (rc, code) == (1, 50) and d.sock in msg, (rc, code, msg)
    finally:
        d.stop()
        w.down()


if __name__ == "__main__":
    if not CNI or not os.path.exists(CNI):
        print("1..1\nok 1 - vpc-cni STATUS # SKIP VPC_CNI is not set to the built plugin")
        sys.exit(0)
    sys.exit(harness.run(globals()))

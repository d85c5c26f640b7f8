"""A minimal CRI (runtime.v1) client for tests/cni/test_containerd.py.

Debian 12 has no crictl and no cri-api package, so this speaks gRPC with
Debian's python3-grpcio (run it with /usr/bin/python3, where that package
lives) and encodes the few protobuf messages it needs by hand: field numbers
from kubernetes/cri-api pkg/apis/runtime/v1/api.proto.

    cri_client.py SOCKET version
    cri_client.py SOCKET runp NAME UID NAMESPACE CGROUP_PARENT [HOSTPORT:PORT | KEY=VALUE ...]
                                                                 -> {"id": ...}
      (HOSTPORT:PORT a TCP port mapping, KEY=VALUE an annotation)
    cri_client.py SOCKET status ID              -> {"state": 0|1, "ip": ..., "additional_ips": [...]}
    cri_client.py SOCKET stopp ID | rmp ID                       -> {}
    cri_client.py SOCKET list                                    -> {"ids": [...]}

Prints one JSON object; a gRPC error exits 1 with {"error": code, "msg": ...}.
"""

import json
import sys

SERVICE = "/runtime.v1.RuntimeService/"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """A length-delimited field (string or message) or a varint field (int)."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def parse(buf):
    """{field number: [values]}; length-delimited values stay bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(msg, num, default=b""):
    return msg.get(num, [default])[0]


def run_pod_sandbox(call, name, uid, namespace, cgroup_parent, *extra):
    metadata = field(1, name) + field(2, uid) + field(3, namespace) + field(4, 0)
    linux = field(1, cgroup_parent)                         # LinuxPodSandboxConfig.cgroup_parent
    config = field(1, metadata) + field(2, name) + field(8, linux)
    for x in extra:
        if "=" in x:                                        # PodSandboxConfig.annotations, a map entry
            key, value = x.split("=", 1)
            config += field(7, field(1, key) + field(2, value))
        else:                                               # PodSandboxConfig.port_mappings, TCP (0)
            host, container = (int(p) for p in x.split(":"))
            config += field(5, field(1, 0) + field(2, container) + field(3, host))
    reply = parse(call("RunPodSandbox", field(1, config)))
    return {"id": first(reply, 1).decode()}


def sandbox_status(call, sid):
    reply = parse(call("PodSandboxStatus", field(1, sid)))
    status = parse(first(reply, 1))                         # PodSandboxStatus
    network = parse(first(status, 5))                       # PodSandboxNetworkStatus
    return {"state": first(status, 3, 0), "ip": first(network, 1).decode(),
            "additional_ips": [first(parse(a), 1).decode() for a in network.get(2, [])]}


def main(argv):
    import grpc
    sock, op, args = argv[1], argv[2], argv[3:]
    channel = grpc.insecure_channel("unix://" + sock)

    def call(method, request):
        fn = channel.unary_unary(SERVICE + method, request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
        return fn(request, timeout=60)

    try:
        if op == "version":
            reply = parse(call("Version", field(1, "v1")))
            out = {"runtime": first(reply, 2).decode(), "version": first(reply, 3).decode()}
        elif op == "runp":
            out = run_pod_sandbox(call, *args)
        elif op == "status":
            out = sandbox_status(call, args[0])
        elif op == "stopp":
            call("StopPodSandbox", field(1, args[0]))
            out = {}
        elif op == "rmp":
            call("RemovePodSandbox", field(1, args[0]))
            out = {}
        elif op == "list":
            reply = parse(call("ListPodSandbox", b""))
            out = {"ids": [first(parse(s), 1).decode() for s in reply.get(1, [])]}
        else:
            raise SystemExit(f"unknown op {op}")
    except grpc.RpcError as e:
        print(json.dumps({"error": e.code().name, "msg": e.details()}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

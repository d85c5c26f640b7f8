"""Latency, EC2-style throttling and injected faults: how the world misbehaves.

Latency: per EC2 action a delay before the call is applied and answered, plus
the delays of effects that happen later (an attachment until the link
appears, a detach until it goes, IMDS trailing EC2). Each is a [lo, hi] range
in seconds sampled uniformly. DEFAULTS model EC2; FAST makes them small.

Throttling: token buckets per category as EC2 documents them (capacity,
refill per second); a request that finds its bucket empty is refused with
503 RequestLimitExceeded. Buckets can be scaled, disabled, or forced to
refuse the next N requests of a category (or all of them).

Faults: rules matched by action ('*' for any) firing a number of times or
with a probability: 'error' (an EC2 error with a status, code and message;
not applied), 'timeout' (hold the connection for some seconds, then close it
unanswered; not applied), 'lost' (apply the call, then close the connection
unanswered: the response is lost). A 'lost' rule with apply_after > 0 closes
the connection unanswered (after `hold` seconds, 0 by default) and applies
the call only apply_after seconds after it came: EC2 finishing a request its
caller has given up on.
"""

import random
import threading
import time

DEFAULTS = {
    "api": {
        "CreateNetworkInterface": [0.25, 0.35], "DeleteNetworkInterface": [0.15, 0.25],
        "AttachNetworkInterface": [0.1, 0.2], "DetachNetworkInterface": [0.1, 0.2],
        "AssignPrivateIpAddresses": [0.15, 0.25], "UnassignPrivateIpAddresses": [0.1, 0.2],
        "AssignIpv6Addresses": [0.15, 0.25], "UnassignIpv6Addresses": [0.1, 0.2],
        "ModifyNetworkInterfaceAttribute": [0.05, 0.15], "CreateTags": [0.03, 0.08],
        "DeleteTags": [0.03, 0.08], "TerminateInstances": [0.15, 0.25],
        "*": [0.02, 0.06],
    },
    "attach": [1.0, 2.0],        # AttachNetworkInterface until the link appears
    "detach": [1.0, 2.0],        # DetachNetworkInterface/terminate until the link goes
    "imds_lag": [1.0, 3.0],      # an EC2 change until IMDS shows it
}

FAST = {"api": {"*": [0.0, 0.0]}, "attach": [0.0, 0.01], "detach": [0.0, 0.01], "imds_lag": [0.0, 0.0]}

# (capacity, refill per second), peers-cni-spec-ec2.md §5
BUCKETS = {
    "non-mutating": (100, 20),
    "unfiltered-describe": (50, 10),
    "mutating": (50, 5),
    "ip-eni": (100, 5),
    "create-tags": (100, 10),
}

_IP_ENI = {"AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "CreateNetworkInterface",
           "DeleteNetworkInterface", "ModifyNetworkInterfaceAttribute", "AssignIpv6Addresses",
           "UnassignIpv6Addresses"}


def category(action, params):
    """The throttling bucket an EC2 request draws from."""
    if action in ("DescribeNetworkInterfaces", "DescribeInstances"):
        narrowed = any(k.startswith(("Filter.", "NetworkInterfaceId.", "InstanceId.")) or k == "MaxResults"
                       for k in params)
        return "non-mutating" if narrowed else "unfiltered-describe"
    if action.startswith("Describe"):
        return "non-mutating"
    if action in _IP_ENI:
        return "ip-eni"
    if action == "CreateTags":
        return "create-tags"
    return "mutating"


def _range(v):
    if isinstance(v, (int, float)):
        return [float(v), float(v)]
    lo, hi = float(v[0]), float(v[1])
    if lo < 0 or hi < lo:
        raise ValueError(f"bad latency range {v}")
    return [lo, hi]


class Latency:
    def __init__(self, fast=False):
        self.lock = threading.Lock()
        base = FAST if fast else DEFAULTS
        self.api = {k: _range(v) for k, v in base["api"].items()}
        self.effects = {k: _range(base[k]) for k in ("attach", "detach", "imds_lag")}

    def configure(self, spec):
        with self.lock:
            for k, v in (spec.get("api") or {}).items():
                self.api[k] = _range(v)
            for k in ("attach", "detach", "imds_lag"):
                if k in spec:
                    self.effects[k] = _range(spec[k])

    def api_delay(self, action):
        with self.lock:
            lo, hi = self.api.get(action) or self.api.get("*", [0.0, 0.0])
        return random.uniform(lo, hi)

    def effect_delay(self, kind):
        with self.lock:
            lo, hi = self.effects[kind]
        return random.uniform(lo, hi)

    def state(self):
        with self.lock:
            return {"api": dict(self.api), **self.effects}


class _Bucket:
    def __init__(self, capacity, refill):
        self.capacity, self.refill = capacity, refill
        self.tokens, self.t = float(capacity), time.monotonic()

    def take(self, scale):
        now = time.monotonic()
        cap = self.capacity * scale
        self.tokens = min(cap, self.tokens + (now - self.t) * self.refill * scale)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Throttle:
    def __init__(self):
        self.lock = threading.Lock()
        self.enabled, self.scale = True, 1.0
        self.buckets = {c: _Bucket(*cr) for c, cr in BUCKETS.items()}
        self.forced = {}                    # category or '*' -> remaining (-1: always)
        self.throttled = {c: 0 for c in BUCKETS}

    def configure(self, spec):
        with self.lock:
            if "enabled" in spec:
                self.enabled = bool(spec["enabled"])
            if "scale" in spec:
                if float(spec["scale"]) <= 0:
                    raise ValueError("scale must be > 0")
                self.scale = float(spec["scale"])
            if spec.get("reset"):
                self.buckets = {c: _Bucket(*cr) for c, cr in BUCKETS.items()}
                self.forced = {}
            for c, n in (spec.get("force") or {}).items():
                if c != "*" and c not in BUCKETS:
                    raise ValueError(f"unknown category {c}")
                n = -1 if n == "always" or n is True else int(n)     # not `in`: 1 == True
                if n == 0:
                    self.forced.pop(c, None)
                else:
                    self.forced[c] = n

    def allow(self, cat):
        with self.lock:
            for key in (cat, "*"):
                n = self.forced.get(key)
                if n is not None:
                    if n > 0:
                        self.forced[key] = n - 1
                        if n == 1:
                            del self.forced[key]
                    self.throttled[cat] += 1
                    return False
            if self.enabled and not self.buckets[cat].take(self.scale):
                self.throttled[cat] += 1
                return False
            return True

    def state(self):
        with self.lock:
            return {"enabled": self.enabled, "scale": self.scale, "forced": dict(self.forced),
                    "buckets": {c: {"capacity": b.capacity, "refill_per_s": b.refill,
                                    "tokens": round(b.tokens, 2)} for c, b in self.buckets.items()},
                    "throttled": dict(self.throttled)}


_KINDS = {"error", "timeout", "lost"}


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.next_id = 1

    def add(self, spec):
        kind = spec.get("kind", "error")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}")
        status = int(spec.get("status", 500))
        rule = {
            "id": 0, "action": spec.get("action", "*"), "kind": kind,
            "status": status,
            "code": spec.get("code") or ("Unavailable" if status == 503 else "InternalError"),
            "message": spec.get("message") or ("The service is unavailable. Please try again shortly."
                                               if status == 503 else "An internal error has occurred"),
            "count": None if spec.get("count") is None else int(spec["count"]),
            "probability": float(spec.get("probability", 1.0)),
            "seconds": float(spec.get("seconds", 30.0)),
            "apply_after": float(spec.get("apply_after", 0.0)),
            "hold": float(spec.get("hold", 0.0)),
            "fired": 0, "applied_late": 0,
        }
        with self.lock:
            rule["id"] = self.next_id
            self.next_id += 1
            self.rules.append(rule)
        return dict(rule)

    def clear(self):
        with self.lock:
            self.rules = []

    def pick(self, action):
        """The rule that fires for this request, if any (consumes one count)."""
        with self.lock:
            for r in self.rules:
                if r["action"] not in ("*", action) or r["count"] == 0:
                    continue
                if random.random() >= r["probability"]:
                    continue
                if r["count"] is not None:
                    r["count"] -= 1
                r["fired"] += 1
                return dict(r)
        return None

    def note_applied_late(self, rule_id):
        """A 'lost' call with apply_after has been applied (state() counts them per rule)."""
        with self.lock:
            for r in self.rules:
                if r["id"] == rule_id:
                    r["applied_late"] += 1

    def state(self):
        with self.lock:
            return [dict(r) for r in self.rules]

#!/usr/bin/env python3
"""A virtual-time model of N nodes' client-side eni_address limiters (cloud/ratelimit.c) against
the account's eni_address bucket (100 tokens, 5/s), for trying the limiter's rules before the
heavy real run (scripts/bench-fleet). Not a test and not a benchmark: its figures only compare
rule sets with each other. OLD is cloud/ratelimit.c's rules; NEW the ones tried on 2026-12-06
(a start at half, the climb back only while in use, the burst shrunk with the rate, 40 s and a
token of debt from the third cut in a row): the model halved the throttles, the real 50-node
runs did not, and were 10 s slower (docs/benchmarks.md, Fleet), so NEW was not kept.

Each node is the fleet bench's m5.xlarge at the defaults, reduced to its eni_address calls: it
starts serving at uniform(1.5, 3) s (a quiet machine) and makes one Assign and one ENI (Create,
Attach 0.1-0.2 s, Modify, link 1-2 s); the pods arrive 0.2 s after the last node serves, and each
node makes two more ENIs one after the other, 1-4 s apart (the pods taking the last ENI's
addresses); at 150 s + uniform(0, 30) s it deletes three ENIs; at 330 s it makes three ENIs
again, likewise. A call takes 0.15-0.35 s; a throttled one is retried by the client's backoff
(uniform(0, min(5, 0.1 * 2^n)) s, 5 attempts, then the plan is retried 1 s later). The other
categories (Attach, Describe*) are left out. It ranks rules; its absolute figures are rough: with
the old rules it throws ~390 eni_address throttles where the real runs threw 210-315, and takes
59 s (real: 55-60 s).

usage: limiter_model.py [--nodes 50] [--seeds 12]
"""
import argparse
import heapq
import random

CAP, RATE = 10.0, 0.5           # a node's eni_address share at 0.1: 10 tokens, 0.5/s
OLD = dict(start=False, in_use=False, burst_follows_rate=False, streak_free=99, debt_from=99, streak_max=0)
NEW = dict(start=True, in_use=True, burst_follows_rate=True, streak_free=1, debt_from=2, streak_max=2)


class Limiter:
    """cloud/ratelimit.c's rules, integrated in 50 ms steps (the C code integrates exactly)."""

    def __init__(self, rules):
        self.r = rules
        self.level = CAP * 0.5 if rules["start"] else CAP
        self.cut_rate, self.T, self.p = (RATE * 0.5, 20.0, 0.0) if rules["start"] else (RATE, 20.0, 20.0)
        self.cut, self.cut_t, self.streak, self.last, self.busy_until = False, -1e9, 0, 0.0, -1e9

    def rate(self, p=None):
        p = self.p if p is None else p
        return RATE if p >= self.T else self.cut_rate + (RATE - self.cut_rate) * p / self.T

    def cap(self):
        return max(1.0, CAP * self.rate() / RATE) if self.r["burst_follows_rate"] else CAP

    def advance(self, t):
        if t <= self.last:
            return
        n = max(1, int((t - self.last) / 0.05))
        dt, x = (t - self.last) / n, self.last
        for _ in range(n):
            if x < self.busy_until or not self.r["in_use"]:
                self.p += dt
            if self.level < self.cap():
                self.level = min(self.cap(), self.level + self.rate() * dt)
            x += dt
        self.last = t

    def take(self, t):
        self.advance(t)
        wait = 0.0
        if self.level < 1:
            need, p = 1 - self.level, self.p
            while need > 0:
                need -= self.rate(p) * 0.01
                wait += 0.01
                p += 0.01
        self.level -= 1
        self.busy_until = max(self.busy_until, t + wait + 5.0)
        return wait

    def throttled(self, t, sent):
        self.advance(t)
        if self.cut and sent < self.cut_t:
            return
        in_a_row = self.cut and self.p < self.T
        self.streak = min(self.streak + 1, self.r["streak_max"]) if in_a_row else 0
        self.T = 20.0 * 2 ** max(0, self.streak - self.r["streak_free"])
        self.cut_rate = max(self.rate() * 0.5, RATE / 10)
        self.p, self.cut, self.cut_t = 0.0, True, t
        self.level = min(self.level, 0.0)
        if self.streak >= self.r["debt_from"]:
            self.level = min(self.level, -1.0)


def run(rules, nodes, seed):
    rng = random.Random(seed)
    queue, seq, now = [], [0], [0.0]
    account = {"tokens": 100.0, "t": 0.0, "calls": 0, "throttled": 0}
    done = {}

    def at(t, gen):
        seq[0] += 1
        heapq.heappush(queue, (t, seq[0], gen))

    def allow(t):
        account["tokens"] = min(100.0, account["tokens"] + (t - account["t"]) * 5)
        account["t"] = t
        account["calls"] += 1
        if account["tokens"] >= 1:
            account["tokens"] -= 1
            return True
        account["throttled"] += 1
        return False

    def call(lim):
        n = 0
        while True:
            if n:
                yield rng.uniform(0, min(5.0, 0.1 * 2 ** (n - 1)))
            wait = lim.take(now[0])
            if wait:
                yield wait
            sent = now[0]
            yield rng.uniform(0.15, 0.35)
            if allow(sent):
                return
            lim.throttled(now[0], sent)
            n += 1
            if n >= 5:
                yield 1.0
                n = 0

    def eni(lim):
        yield from call(lim)                    # Create
        yield rng.uniform(0.1, 0.2)             # Attach
        yield from call(lim)                    # Modify
        yield rng.uniform(1, 2)                 # the link

    def node(i, lim, serve, pods):
        yield serve
        at(now[0], eni(lim))
        yield from call(lim)                    # Assign on the primary ENI
        yield max(0.0, pods - now[0])
        yield from eni(lim)
        yield rng.uniform(1, 4)
        yield from eni(lim)
        done[i, 1] = now[0]
        yield max(0.0, 150 - now[0]) + rng.uniform(0, 30)
        for _ in range(3):
            yield from call(lim)                # Delete
            yield 0.5
        yield max(0.0, 330 - now[0])
        for _ in range(3):
            yield from eni(lim)
            yield rng.uniform(1, 4)
        done[i, 2] = now[0] - 330

    serve = [rng.uniform(1.5, 3.0) for _ in range(nodes)]
    for i in range(nodes):
        at(0.0, node(i, Limiter(rules), serve[i], max(serve) + 0.2))
    while queue:
        t, _, gen = heapq.heappop(queue)
        now[0] = t
        try:
            at(t + next(gen), gen)
        except StopIteration:
            pass
    return (account["calls"], account["throttled"], max(v for k, v in done.items() if k[1] == 1),
            max(v for k, v in done.items() if k[1] == 2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=16)
    a = ap.parse_args()
    print(f"{a.nodes} nodes, {a.seeds} seeds (means): eni_address calls, throttled, fleet addressed, "
          "again from the pods' arrival (the model's 1-4 s gaps included)")
    for name, rules in (("old rules", OLD), ("new rules", NEW)):
        res = [run(rules, a.nodes, s) for s in range(a.seeds)]
        mean = lambda k: sum(r[k] for r in res) / len(res)     # noqa: E731
        print(f"{name}: {mean(0):.0f} calls, {mean(1):.0f} throttled, {mean(2):.1f} s, {mean(3):.1f} s")


if __name__ == "__main__":
    main()

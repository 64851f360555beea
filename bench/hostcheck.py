#!/usr/bin/env python3
"""How steady is this machine's CPU? A fixed piece of work, timed over and over.

    bench/hostcheck.py [SECONDS]

On a virtual machine the host may slow the guest's CPUs down for a while (other guests on the
same cores, throttling). A latency target such as "p99 ≤ 5 ms" means little when, for a tenth
of the time, every instruction takes five times as long. This runs a fixed loop of arithmetic
(about 0.2 ms) with short sleeps between, on an otherwise idle machine, and reports the
baseline time of one unit, the 50 ms windows in which the average unit took more than twice as
long, how much of the time they cover, and how far apart they come. bench/run.sh records it
before the cells.
"""
import json
import sys
import time


def unit():
    x = 1
    for _ in range(2000):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 8.0
    samples = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        a = time.perf_counter()
        unit()
        b = time.perf_counter()
        samples.append((a - start, b - a))
        time.sleep(0.0002)
    base = sorted(d for _, d in samples)[len(samples) // 10]
    windows = {}
    for at, d in samples:
        windows.setdefault(int(at / 0.05), []).append(d)
    slow = sorted(k for k, ds in windows.items() if sum(ds) / len(ds) > 2 * base)
    # runs of adjacent slow windows are one slowdown
    episodes = []
    for k in slow:
        if episodes and k - episodes[-1][-1] <= 2:
            episodes[-1].append(k)
        else:
            episodes.append([k])
    starts = [e[0] * 0.05 for e in episodes]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    worst = max((sum(ds) / len(ds) / base for ds in windows.values()), default=1.0)
    print(json.dumps({
        "seconds": round(seconds, 1),
        "unit_ms": round(base * 1000, 3),
        "slow_windows": len(slow),
        "slow_fraction": round(len(slow) * 0.05 / seconds, 3),
        "slowdowns": len(episodes),
        "median_gap_s": round(sorted(gaps)[len(gaps) // 2], 2) if gaps else None,
        "worst_window_slowdown": round(worst, 1),
    }))


if __name__ == "__main__":
    main()

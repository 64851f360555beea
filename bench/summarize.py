#!/usr/bin/env python3
"""The tables of a bench/run.sh run: one row per cell (the median over its rounds, each round's
value beside it), then the issue's targets, each judged on the median over the rounds and
counted round by round.

    bench/summarize.py results.jsonl [freeradius.jsonl [hostcheck.json [privacyidea.jsonl]]]

A ratio target (event definitions against none, 100,000 tokens against 1,000) compares the
cells of the same round, which ran back to back; the machine's speed drifts between rounds.
"""
import json
import os
import statistics
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def freeradius_floor(path):
    if not path or not os.path.exists(path):
        return None
    for d in load(path):
        if d.get("kind") == "peak" and "1 radclient" in d.get("label", ""):
            return d
    return None


def privacyidea_runs(path):
    """The privacyIDEA anchor's direct peak runs by configuration (`none-ev-off`, ...)."""
    if not path or not os.path.exists(path):
        return {}
    runs = {}
    for d in load(path):
        label = d.get("label", "")
        if d.get("kind") == "peak" and label.startswith("B-direct [") and label.endswith("]"):
            runs[label[len("B-direct ["):-1]] = d
    return runs


def by_label(rows):
    cells = {}
    for d in rows:
        cells.setdefault(d["label"], []).append(d)
    return cells


def median(values):
    return statistics.median(values) if values else float("nan")


def spread(values, fmt):
    return " / ".join(fmt % v for v in values)


def cell_table(cells, fr):
    floor = fr.get("server_cpu_ms_per_req") if fr else None
    head = "| run | rounds | accepted/s (median; each round) | server CPU ms/login | p50 ms | p99 ms | RSS MiB (max) | accepted / rejected / lost |"
    rule = "|---|---|---|---|---|---|---|---|"
    if floor:
        head += " CPU vs FreeRADIUS |"
        rule += "---|"
    print(head)
    print(rule)
    for label, rs in cells.items():
        rate = [d["accepted_per_second"] for d in rs]
        cpu = [d.get("server_cpu_ms_per_login") or 0.0 for d in rs]
        p50 = [d["p50_ms"] for d in rs]
        p99 = [d["p99_ms"] for d in rs]
        rss = max(d.get("server_rss_mib") or 0.0 for d in rs)
        each = f" ({spread(rate, '%.0f')})" if len(rs) > 1 else ""
        line = (
            f"| {label} | {len(rs)} | {median(rate):.0f}{each} | {median(cpu):.4f} | "
            f"{median(p50):.2f} | {median(p99):.2f} | {rss:.1f} | "
            f"{sum(d['accepted'] for d in rs)} / {sum(d['rejected'] for d in rs)} / "
            f"{sum(d['lost'] for d in rs)} |"
        )
        if floor:
            line += f" {median(cpu) / floor:.2f}x |"
        print(line)
    if fr:
        print(
            f"\nFreeRADIUS 3.2 PAP from a users file, same run: {fr['rps']:.0f} req/s, "
            f"{fr['server_cpu_ms_per_req']} ms server CPU per request."
        )


def privacyidea_table(cells, pi):
    """privacyIDEA and otpgate side by side: the same login, server CPU measured the same way
    (the server processes' CPU time over the requests answered)."""
    def ours(label, key):
        return median([d.get(key) or 0.0 for d in cells.get(label, [])])

    rows = (
        ("OTP only", "none-ev-off", "sqlite otppin=none events=none"),
        ("OTP only, event handlers (privacyIDEA: one; otpgate: a Counter and a Logging "
         "definition)", "none-ev-on", "sqlite otppin=none events=2-matching"),
        ("token PIN (argon2id: privacyIDEA 64 MiB × 9, otpgate 19 MiB × 2)", "default",
         "sqlite otppin=pin events=none"),
    )
    print("| login | privacyIDEA 3.14: CPU ms/login | req/s (accepted / rejected) "
          "| otpgate, SQLite: CPU ms/login | logins/s | privacyIDEA's CPU / otpgate's |")
    print("|---|---|---|---|---|---|")
    for name, config, label in rows:
        p = pi.get(config)
        if not p or label not in cells:
            continue
        cpu = ours(label, "server_cpu_ms_per_login")
        ratio = f"{p['server_cpu_ms_per_req'] / cpu:,.0f}x" if cpu else "-"
        print(
            f"| {name} | {p['server_cpu_ms_per_req']:.2f} | {p['rps']:.1f} "
            f"({p['accepted']:.0f} / {p['rejected']:.0f}) | {cpu:.4f} | "
            f"{ours(label, 'accepted_per_second'):.0f} | {ratio} |"
        )
    base, ev = pi.get("none-ev-off"), pi.get("none-ev-on")
    if base and ev and base["server_cpu_ms_per_req"]:
        print(
            f"\nprivacyIDEA's event handler adds "
            f"{(ev['server_cpu_ms_per_req'] / base['server_cpu_ms_per_req'] - 1) * 100:+.0f} % "
            "CPU per login in this run (direct HTTP /validate/check, gunicorn with 4 workers, "
            "SQLite; ../shared/anchors/bench-privacyidea.sh)."
        )


def per_round(cells, label):
    return {d["round"]: d for d in cells.get(label, [])}


def ratios(cells, base, variant, key):
    """variant/base - 1 in percent, for every round that has both, in round order."""
    b, v = per_round(cells, base), per_round(cells, variant)
    out = []
    for r in sorted(set(b) & set(v)):
        if b[r][key]:
            out.append((v[r][key] / b[r][key] - 1.0) * 100.0)
    return out


class Targets:
    def __init__(self):
        self.rows = []

    def add(self, target, values, fmt, within, judge=median):
        """values: one per round; within(v) says whether v meets the target."""
        if not values:
            return
        verdict = "met" if within(judge(values)) else "**missed**"
        ok = sum(1 for v in values if within(v))
        self.rows.append(
            (target, fmt % judge(values), spread(values, fmt), f"{ok} of {len(values)}", verdict)
        )

    def print(self):
        print("| target | median | each round | rounds within | |")
        print("|---|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")


def targets(cells, pi):
    t = Targets()
    none = {b: f"{b} otppin=none events=none" for b in ("sqlite", "postgres")}

    def values(label, key):
        return [d[key] for d in sorted(cells.get(label, []), key=lambda d: d["round"])]

    # (target, cell, value, format, within)
    absolute = [
        ("SQLite otppin=none: server CPU ≤ 0.1 ms per login", none["sqlite"],
         "server_cpu_ms_per_login", "%.4f ms", lambda v: v <= 0.1),
        ("SQLite: ≥ 10,000 accepted logins/s closed loop", none["sqlite"],
         "accepted_per_second", "%.0f/s", lambda v: v >= 10_000),
        ("SQLite: p99 ≤ 5 ms at 5,000/s open loop", "sqlite open loop 5000/s",
         "p99_ms", "%.2f ms", lambda v: v <= 5.0),
        ("PostgreSQL: ≥ 5,000 accepted logins/s", none["postgres"],
         "accepted_per_second", "%.0f/s", lambda v: v >= 5_000),
    ]
    for target, label, key, fmt, within in absolute:
        t.add(target, values(label, key), fmt, within)
    pi_otp = pi.get("none-ev-off")
    if pi_otp:
        t.add(
            "SQLite otppin=none: server CPU per login 1000× less than privacyIDEA's, same run",
            [pi_otp["server_cpu_ms_per_req"] / v
             for v in values(none["sqlite"], "server_cpu_ms_per_login") if v],
            "%.0fx",
            lambda v: v >= 1000,
        )
    cores = os.cpu_count() or 1
    for backend in ("sqlite", "postgres"):
        label = f"{backend} otppin=pin events=none"
        t.add(
            f"{backend}, token PIN: ≥ 40 accepted logins/s per core ({cores} cores)",
            [v / cores for v in values(label, "accepted_per_second")],
            "%.1f/s",
            lambda v: v >= 40,
        )
    for backend in ("sqlite", "postgres"):
        for ev, limit in (("20-nonmatching", 10), ("2-matching", 20)):
            t.add(
                f"{backend}: {ev} definitions cost ≤ {limit} % throughput",
                ratios(cells, none[backend], f"{backend} otppin=none events={ev}",
                       "accepted_per_second"),
                "%+.1f %%",
                lambda v, limit=limit: v >= -limit,
            )
    for target, base, variant in (
        ("SQLite: 100,000 tokens change p50 by ≤ 10 %, closed loop", none["sqlite"],
         "sqlite 100000 tokens"),
        ("SQLite: 100,000 tokens change p50 by ≤ 10 %, 5,000/s open loop",
         "sqlite open loop 5000/s", "sqlite 100000 tokens open loop 5000/s"),
    ):
        t.add(target, ratios(cells, base, variant, "p50_ms"), "%+.1f %%", lambda v: v <= 10)
    # every 100,000-token cell: the open loop's queues grow during a disk stall, and reply
    # attributes make every reply the duplicate cache keeps larger
    rss_100k = [per_round(cells, label) for label in (
        "sqlite 100000 tokens", "sqlite 100000 tokens reply attributes",
        "sqlite 100000 tokens open loop 5000/s")]
    t.add(
        "RSS ≤ 64 MiB at 100,000 tokens (the largest round; closed loop with and without "
        "reply attributes, open loop)",
        [max(c[r].get("server_rss_mib") or 0.0 for c in rss_100k if r in c)
         for r in sorted(set().union(*rss_100k))],
        "%.1f MiB",
        lambda v: v <= 64.0,
        judge=max,
    )
    t.add(
        "SQLite: users from LDAP (cached lookups) cost ≤ 10 % throughput, otppin=none",
        ratios(cells, none["sqlite"], "sqlite ldap users otppin=none", "accepted_per_second"),
        "%+.1f %%",
        lambda v: v >= -10,
    )
    t.add(
        "import 100,000 tokens < 60 s (the slowest round)",
        values("sqlite 100000 tokens", "import_seconds"),
        "%.1f s",
        lambda v: v < 60.0,
        judge=max,
    )
    t.print()
    print(
        "\nRatios compare the cells of one round, which ran back to back: −10 % = 10 % fewer "
        "logins/s than that round's baseline; +10 % = a 10 % higher p50."
    )


def directory_table(cells):
    """The LDAP cells beside the file cells of the same rounds, with slapd's CPU."""
    pairs = [
        ("otppin=none", "sqlite otppin=none events=none", "sqlite ldap users otppin=none"),
        ("token PIN", "sqlite otppin=pin events=none", "sqlite ldap users otppin=pin"),
        ("userstore (a bind a login)", None, "sqlite ldap users otppin=userstore"),
    ]
    if not any(cells.get(ldap) for _, _, ldap in pairs):
        return
    print("\n| users from | file: logins/s | LDAP: logins/s | file: otpgate CPU ms | "
          "LDAP: otpgate CPU ms | slapd CPU ms/login |")
    print("|---|---|---|---|---|---|")

    def med(label, key):
        return median([d.get(key) or 0.0 for d in cells.get(label, [])]) if label else None

    def f(v, fmt):
        return "-" if v is None or v != v else fmt % v

    for name, file_label, ldap_label in pairs:
        if not cells.get(ldap_label):
            continue
        print(f"| {name} | {f(med(file_label, 'accepted_per_second'), '%.0f')} | "
              f"{f(med(ldap_label, 'accepted_per_second'), '%.0f')} | "
              f"{f(med(file_label, 'server_cpu_ms_per_login'), '%.4f')} | "
              f"{f(med(ldap_label, 'server_cpu_ms_per_login'), '%.4f')} | "
              f"{f(med(ldap_label, 'slapd_cpu_ms_per_login'), '%.4f')} |")


def main():
    rows = load(sys.argv[1])
    fr = freeradius_floor(sys.argv[2] if len(sys.argv) > 2 else None)
    pi = privacyidea_runs(sys.argv[4] if len(sys.argv) > 4 else None)
    cells = by_label(rows)
    cell_table(cells, fr)
    directory_table(cells)
    if pi:
        print()
        privacyidea_table(cells, pi)
    print()
    targets(cells, pi)
    host = sys.argv[3] if len(sys.argv) > 3 else None
    if host and os.path.exists(host):
        with open(host) as f:
            h = json.load(f)
        print(
            f"\nHost CPU before the cells (bench/hostcheck.py, {h['seconds']} s idle): "
            f"{h['slowdowns']} slowdowns, {h['slow_fraction']:.0%} of the time in 50 ms windows "
            f"at more than twice the baseline, the worst {h['worst_window_slowdown']}x."
        )


if __name__ == "__main__":
    main()

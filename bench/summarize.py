#!/usr/bin/env python3
"""Summarize bench/run.sh measurements: medians per (tool, op), ratios to restic/borg.
Input: a TSV with run, tool, op, seconds, rss_kb, bytes (repo growth or size), mib (input)."""
import collections
import json
import statistics
import sys

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
meas = collections.defaultdict(list)
loads = collections.defaultdict(list)
cpus = collections.defaultdict(list)
for row in rows:
    run, tool, op, sec, rss, nbytes, mib = row[:7]
    meas[(tool, op)].append((float(sec), int(rss), int(nbytes), float(mib)))
    if len(row) > 7:  # 1-min load average before the step (newer run.sh)
        loads[(tool, op)].append(float(row[7]))
    if len(row) > 8:  # user + system CPU seconds of the step
        cpus[(tool, op)].append(float(row[8]))

def med(tool, op, i):
    v = [m[i] for m in meas.get((tool, op), [])]
    return statistics.median(v) if v else None

ops = ["initial", "incremental", "incremental-ct", "ct-1pct-chunks", "restore", "random", "shifted"]
tools = ["cairn", "restic", "borg"]
out = {"runs": max(int(r[0]) for r in rows), "results": {}}
lines = []
lines.append("| operation | tool | median s | MiB/s | CPU s (user+sys) | peak RSS MiB | repo bytes (MiB) | n | load before |")
lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
for op in ops:
    for tool in tools:
        if (tool, op) not in meas:
            continue
        s, rss, nb, mib = (med(tool, op, i) for i in range(4))
        n = len(meas[(tool, op)])
        out["results"].setdefault(op, {})[tool] = {
            "seconds": s, "mib_s": mib / s if s else None, "rss_mib": rss / 1024, "bytes": nb, "n": n}
        ld = loads.get((tool, op))
        cp = statistics.median(cpus[(tool, op)]) if cpus.get((tool, op)) else None
        out["results"][op][tool]["load"] = ld
        out["results"][op][tool]["cpu_s"] = cp
        lines.append("| %s | %s | %.2f | %.0f | %s | %.0f | %.1f | %d | %s |" % (
            op, tool, s, mib / s if s else 0, "%.2f" % cp if cp is not None else "-",
            rss / 1024, nb / 2**20, n,
            " ".join("%.1f" % x for x in ld) if ld else "-"))
lines.append("")
lines.append("| operation | cairn vs restic (speed) | cairn vs borg (speed) | bytes cairn/restic | bytes cairn/borg | peak RSS cairn/restic | peak RSS cairn/borg |")
lines.append("|---|---:|---:|---:|---:|---:|---:|")
# cairn's change-tracked runs have no restic/borg equivalent: compare them with the tools'
# plain incremental of the same change
versus = {"incremental-ct": "incremental"}
for op in ops:
    r = out["results"].get(op, {})
    if "cairn" not in r:
        continue
    c = r["cairn"]
    o = out["results"].get(versus.get(op, op), {})
    def sp(t):
        return "%.2fx" % (o[t]["seconds"] / c["seconds"]) if t in o and c["seconds"] else "-"
    def by(t):
        return "%.2f" % (c["bytes"] / o[t]["bytes"]) if t in o and o[t]["bytes"] else "-"
    def rs(t):
        return "%.2f" % (c["rss_mib"] / o[t]["rss_mib"]) if t in o and o[t].get("rss_mib") else "-"
    name = op + (" (vs their %s)" % versus[op] if op in versus else "")
    lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (name, sp("restic"), sp("borg"), by("restic"), by("borg"), rs("restic"), rs("borg")))
def g(op, tool, k):
    return out["results"].get(op, {}).get(tool, {}).get(k)

def check(name, ok, detail):
    lines.append("| %s | %s | %s |" % (name, "met" if ok else "MISSED", detail))

lines.append("")
lines.append("| target | result | measured |")
lines.append("|---|---|---|")
try:
    r = g("initial", "restic", "seconds") / g("initial", "cairn", "seconds")
    b = g("initial", "cairn", "bytes") / g("initial", "restic", "bytes")
    check("initial >= 3x restic throughput", r >= 3, "%.2fx" % r)
    check("initial repo <= 1.1x restic", b <= 1.1, "%.2fx" % b)
    r = g("incremental", "restic", "seconds") / g("incremental", "cairn", "seconds")
    b = g("incremental", "cairn", "bytes") / max(1, g("incremental", "restic", "bytes"))
    check("incremental (1% blocks) >= 3x faster than restic", r >= 3, "%.2fx" % r)
    check("incremental adds <= restic's bytes", b <= 1.0, "%.2fx" % b)
    f = g("ct-1pct-chunks", "cairn", "seconds") / g("initial", "cairn", "seconds")
    check("CT, change in 1% of chunks: <= 5% of full backup time", f <= 0.05, "%.1f%%" % (100 * f))
    f = g("incremental-ct", "cairn", "seconds") / g("initial", "cairn", "seconds")
    lines.append("| (record) CT on vm1-changed (1%% of blocks, ~92%% of chunks) | - | %.0f%% of full |" % (100 * f))
    r = g("restore", "restic", "seconds") / g("restore", "cairn", "seconds")
    check("restore >= 2.5x restic", r >= 2.5, "%.2fx" % r)
    r = g("random", "restic", "seconds") / g("random", "cairn", "seconds")
    check("random data >= 3x restic", r >= 3, "%.2fx" % r)
    m = max(v["cairn"]["rss_mib"] for v in out["results"].values() if "cairn" in v)
    check("cairn peak RSS <= 256 MiB", m <= 256, "%.0f MiB" % m)
except (TypeError, ZeroDivisionError):
    lines.append("(targets need cairn and restic results)")
# The machine is shared and its speed drifts between runs: the ratio within each run (cairn
# and restic measured minutes apart) is the steadier figure, so list it too.
per_run = collections.defaultdict(dict)
for row in rows:
    per_run[(row[2], row[1])][row[0]] = float(row[3])
lines.append("")
lines.append("| operation | restic s / cairn s, per run | median |")
lines.append("|---|---|---:|")
for op in ops:
    c, r = per_run.get((op, "cairn"), {}), per_run.get((op, "restic"), {})
    runs = sorted(set(c) & set(r), key=int)
    if not runs:
        continue
    v = [r[k] / c[k] for k in runs if c[k] > 0]
    out["results"][op]["per_run_ratio_restic"] = v
    lines.append("| %s | %s | %.2fx |" % (op, " ".join("%.2f" % x for x in v), statistics.median(v)))
print("\n".join(lines))
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1)

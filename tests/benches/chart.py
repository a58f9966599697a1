#!/usr/bin/env python3
"""BENCHMARKS' headline comparison as a picture: reads what
`cargo bench -p certgate-tests --bench builds` printed and writes an SVG bar
chart of Envoy's CPU per request as a ratio to no filter (the least of each
variant's rounds, with the round-by-round spread).

    python3 tests/benches/chart.py tests/benches/results/builds.txt > docs/src/images/builds.svg

No dependencies: the standard library writes the SVG, so the same input
always gives the same bytes (a test compares the committed chart with what
this script makes of the committed output).
"""
import re
import sys
from xml.sax.saxutils import escape

# a row: name, CPU, req/s, p50, p99, the ratio to no filter (spread), and
# for certgate's builds the ratio to their own floor, which the chart leaves out
ROW = re.compile(r"^(?P<name>.+?)\s+(?P<cpu>[\d.]+)\s+(?P<rps>\d+)\s+(?P<p50>\d+)\s+(?P<p99>\d+)\s+(?P<r>[\d.]+) \((?P<lo>[\d.]+)–(?P<hi>[\d.]+)\)(\s+[\d.]+ × .*)?\s*$")


def rows(text):
    """The variants of the results table: (name, cpu, ratio, lo, hi)."""
    out = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            out.append((m["name"].strip(), float(m["cpu"]), float(m["r"]), float(m["lo"]), float(m["hi"])))
    return out


def header(text):
    for line in text.splitlines():
        if "rounds alternating" in line:
            return line.strip()
    return ""


def svg(text):
    data = rows(text)
    if not data:
        raise SystemExit("no results table in the input")
    bar_h, gap, left, width = 22, 8, 230, 420
    top = 56
    scale_max = max(2.0, max(hi for *_, hi in data))
    height = top + len(data) * (bar_h + gap) + 40
    x = lambda v: left + v / scale_max * width
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}" font-family="sans-serif" font-size="13">',
        f'<text x="10" y="20" font-size="15" font-weight="bold">Envoy CPU per request, × no filter (least of the rounds; lines: spread)</text>',
        f'<text x="10" y="40" fill="#555">{escape(header(text))}</text>',
    ]
    for tick in [i * 0.5 for i in range(int(scale_max / 0.5) + 1)]:
        out.append(f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height - 34}" stroke="#ddd"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{height - 18}" text-anchor="middle" fill="#555">{tick:.1f}</text>')
    for i, (name, cpu, r, lo, hi) in enumerate(data):
        y = top + i * (bar_h + gap)
        # (a)-(d), (x), (s) and (A) are the others: no filter, RBAC, Lua, the empty Wasm filter, XFCC only, the network filter only
        certgate = name[:1] not in "abcdxsA"
        fill = "#2b6cb0" if certgate else "#a0aec0"
        out.append(f'<text x="{left - 8}" y="{y + bar_h - 6}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{x(r) - left:.1f}" height="{bar_h}" fill="{fill}"/>')
        out.append(f'<line x1="{x(lo):.1f}" y1="{y + bar_h / 2}" x2="{x(hi):.1f}" y2="{y + bar_h / 2}" stroke="#1a202c"/>')
        out.append(f'<text x="{x(max(r, hi)) + 6:.1f}" y="{y + bar_h - 6}">{r:.2f} ({cpu:.0f} µs)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        sys.stdout.write(svg(f.read()))

#!/usr/bin/env python3
"""The book's two diagrams as SVG: the data path (drawn from the description
below) and the crate map (drawn from `cargo metadata`, so it is the
workspace's real dependency graph).

    cargo metadata --format-version 1 --no-deps | python3 docs/diagrams.py docs/src/images

No dependencies: the standard library writes the SVG, so the same input
always gives the same bytes (tests/tests/system/book.rs compares the committed
pictures with what this script draws).
"""
import json
import os
import sys
from xml.sax.saxutils import escape, quoteattr

FONT = "font-family='DejaVu Sans Mono, monospace' font-size='12'"
CHAR = 7.3  # the width of a 12px monospace character
# the folders of the design card, each in its own colour
FOLDERS = [
    ("filter", "#dbeafe", "what runs inside the proxy"),
    ("host-harness", "#dcfce7", "what runs a filter locally"),
    ("pki", "#ffedd5", "the issuer: the CA and the EST server"),
    ("cli", "#fef3c7", "the certgate command and OCI packaging"),
    ("net", "#e0f2fe", "what every server certgate runs shares"),
    ("tests", "#f3e8ff", "tests and their support"),
    ("fixtures", "#fce7f3", "the fixtures generator"),
]


def svg(width, height, body, title):
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}' role='img' aria-label={quoteattr(title)}>\n"
        f"<title>{escape(title)}</title>\n"
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' orient='auto'>"
        "<path d='M0,0 L10,5 L0,10 z' fill='#475569'/></marker></defs>\n"
        f"<rect width='100%' height='100%' fill='white'/>\n{body}</svg>\n"
    )


def box(x, y, w, h, lines, fill="#f1f5f9", bold_first=True):
    out = [f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h:.1f}' rx='6' fill='{fill}' stroke='#475569'/>"]
    top = y + h / 2 - (len(lines) - 1) * 8 + 4
    for i, line in enumerate(lines):
        weight = " font-weight='bold'" if i == 0 and bold_first else ""
        out.append(f"<text x='{x + w / 2:.1f}' y='{top + i * 16:.1f}' text-anchor='middle' {FONT}{weight}>{escape(line)}</text>")
    return "\n".join(out) + "\n"


def arrow(x1, y1, x2, y2, label=None, dashed=False, label_dy=-6):
    dash = " stroke-dasharray='5,4'" if dashed else ""
    out = f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='#475569' stroke-width='1.4' marker-end='url(#arrow)'{dash}/>\n"
    if label:
        out += f"<text x='{(x1 + x2) / 2:.1f}' y='{(y1 + y2) / 2 + label_dy:.1f}' text-anchor='middle' {FONT}>{escape(label)}</text>\n"
    return out


def data_path():
    """A request's way: the client's TLS to Envoy, which verifies the chain;
    certgate between Envoy's TLS and the application; a deny back to the
    client; the decision as filter state for the access log."""
    w, h = 980, 330
    body = ""
    body += box(20, 110, 120, 60, ["client", "certificate"])
    body += box(210, 90, 220, 100, ["Envoy", "TLS: verifies the chain", "and the CRLs", "(listener)"])
    body += box(500, 70, 250, 140, ["certgate", "1. strip client's", "   identity headers", "2. read the peer", "3. decide by the policy", "4. set identity headers"], fill="#dbeafe")
    body += box(830, 110, 130, 60, ["application", "reads headers"])
    body += arrow(140, 140, 210, 140, "mTLS")
    body += arrow(430, 140, 500, 140, "request")
    body += arrow(750, 140, 830, 140, "allowed")
    # what Envoy tells the filter
    body += box(215, 230, 210, 56, ["connection properties,", "x-forwarded-client-cert"], bold_first=False)
    body += arrow(425, 258, 560, 210, dashed=True)
    # a deny goes back
    body += f"<path d='M625,70 C625,20 80,20 80,108' fill='none' stroke='#b91c1c' stroke-width='1.4' marker-end='url(#arrow)'/>\n"
    body += f"<text x='360' y='30' text-anchor='middle' {FONT} fill='#b91c1c'>denied: 403 or 401 with the reason, JSON or HTML</text>\n"
    # the published decision
    body += box(560, 240, 190, 56, ["filter state:", "the decision"], bold_first=False)
    body += arrow(655, 210, 655, 240)
    body += f"<text x='770' y='272' {FONT}>access log, metrics</text>\n"
    return svg(w, h, body, "certgate's data path")


def crate_map(metadata):
    """The workspace's crates in rows by their depth: a crate's row is one
    above the deepest crate it depends on, so every arrow points down."""
    root = metadata["workspace_root"]
    members = {p["name"]: p for p in metadata["packages"] if p["id"] in metadata["workspace_members"]}
    deps = {
        name: sorted({d["name"] for d in p["dependencies"] if d["name"] in members and d["kind"] is None and d["name"] != name})
        for name, p in members.items()
    }
    # the transitive reduction: an arrow a longer path implies is left out
    def reaches(a, b, skip):
        todo = [d for d in deps[a] if d != skip]
        seen = set()
        while todo:
            n = todo.pop()
            if n == b:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(deps[n])
        return False

    deps = {n: [d for d in ds if not reaches(n, d, d)] for n, ds in deps.items()}
    rank = {}

    def depth(n):
        if n not in rank:
            rank[n] = 1 + max((depth(d) for d in deps[n]), default=-1)
        return rank[n]

    for n in members:
        depth(n)
    # an arrow across more than one row passes through a waypoint in each
    # row between, so it runs between the boxes, not behind them
    chain = {}  # (crate, dependency): the nodes the arrow goes through
    links = {n: list(ds) for n, ds in deps.items()}
    for n in sorted(members):
        for d in deps[n]:
            path = [n] + [f"{n}>{d}@{r}" for r in range(rank[n] - 1, rank[d], -1)] + [d]
            for w in path[1:-1]:
                rank[w] = int(w.rsplit("@", 1)[1])
            links[n] = [x for x in links[n] if x != d] + [path[1]]
            for a, b in zip(path[1:-1], path[2:]):
                links[a] = [b]
            chain[(n, d)] = path
    nodes = sorted(rank)
    rows = [sorted(n for n in nodes if rank[n] == r) for r in range(max(rank.values()) + 1)]
    # order each row by where its neighbours sit, sweeping up and down a few
    # times (by name to start: the same input, the same picture)
    users = {n: [m for m in nodes if n in links.get(m, [])] for n in nodes}
    pos = {n: i for row in rows for i, n in enumerate(row)}

    def sweep(order, near):
        for r in order:
            rows[r].sort(key=lambda n: (sum(pos[m] for m in near[n]) / len(near[n]) if near.get(n) else pos[n], n))
            pos.update({n: i for i, n in enumerate(rows[r])})

    both = {n: links.get(n, []) + users[n] for n in nodes}
    for _ in range(6):
        sweep(range(1, len(rows)), links)
        sweep(range(len(rows) - 2, -1, -1), users)
    for _ in range(3):
        sweep(range(len(rows)), both)

    def folder(n):
        rel = os.path.relpath(os.path.dirname(members[n]["manifest_path"]), root)
        return rel.split(os.sep)[0]

    colour = {f: c for f, c, _ in FOLDERS}
    bw, bh, gap_x, gap_y, margin, ww = max(len(n) for n in members) * CHAR + 24, 34, 18, 70, 20, 12

    def w(n):
        return bw if n in members else ww

    row_w = [sum(w(n) + gap_x for n in row) - gap_x for row in rows]
    width = max(row_w) + 2 * margin
    legend_h = 16 * len(FOLDERS) + 10
    height = len(rows) * (bh + gap_y) - gap_y + 2 * margin + legend_h
    at = {}  # a node's centre
    for r, row in enumerate(reversed(rows)):
        x = margin + (width - 2 * margin - row_w[len(rows) - 1 - r]) / 2
        for n in row:
            at[n] = (x + w(n) / 2, margin + legend_h + r * (bh + gap_y) + bh / 2)
            x += w(n) + gap_x
    body = ""
    for (n, d), path in sorted(chain.items()):
        points = [(at[n][0], at[n][1] + bh / 2)] + [at[v] for v in path[1:-1]] + [(at[d][0], at[d][1] - bh / 2)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body += f"<polyline points='{line}' fill='none' stroke='#94a3b8' stroke-width='1' marker-end='url(#arrow)'/>\n"
    for n in sorted(members):
        x, y = at[n]
        body += box(x - bw / 2, y - bh / 2, bw, bh, [n], fill=colour.get(folder(n), "#f1f5f9"), bold_first=False)
    for i, (f, c, what) in enumerate(FOLDERS):
        y = margin - 6 + i * 16
        body += f"<rect x='{margin}' y='{y}' width='12' height='12' fill='{c}' stroke='#475569'/>"
        body += f"<text x='{margin + 18}' y='{y + 10}' {FONT}>{escape(f + '/: ' + what)}</text>\n"
    return svg(width, height, body, "certgate's crates: an arrow is 'depends on' (one a longer path implies is left out)")


def main():
    out = sys.argv[1]
    metadata = json.load(sys.stdin)
    for name, picture in [("data-path.svg", data_path()), ("crates.svg", crate_map(metadata))]:
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(picture)


if __name__ == "__main__":
    main()

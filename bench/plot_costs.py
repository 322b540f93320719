"""Draws how cost grows with input length and batch size from a `scripts/bench` report.

    python3 bench/plot_costs.py target/bench-report.md bench/cost.svg

Left: p50 latency per text against input tokens (edge classify table: native tract, in the
component, end to end over HTTP, onnxruntime on the student and on the teacher). Right: ms per
text against batch size (heavy tier table: each engine). Plain SVG, no plotting library.
"""

import re
import sys

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def parse(report):
    lengths, series = [], {"native tract": [], "in component": [], "HTTP end to end": [],
                           "onnxruntime student": []}
    teacher = []
    heavy = {}
    section = None
    for line in report.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section == "Edge classify" and len(cells) == 7 and cells[0].isdigit():
            lengths.append(int(cells[0]))
            series["native tract"].append(float(cells[1].split("/")[0]))
            series["in component"].append(float(cells[2]))
            series["onnxruntime student"].append(float(cells[4]) if cells[4][0].isdigit() else None)
            series["HTTP end to end"].append(float(cells[6].split("/")[0]))
        if section == "Edge classify" and "running the teacher" in line:
            teacher = [float(x) for x in re.findall(r"([\d.]+) ms \(component", line)]
        if section == "Heavy tier" and len(cells) == 8 and cells[2].isdigit():
            name = cells[0]
            heavy.setdefault(name, []).append((int(cells[2]), float(cells[6])))
    if teacher:
        series["onnxruntime teacher"] = teacher
    return lengths, series, heavy


def panel(x0, title, xlabel, ylabel, xs_all, lines, log_x=False):
    w, h, left, bottom = 420, 300, 55, 45
    out = [f'<g transform="translate({x0},0)">',
           f'<text x="{left + (w - left) / 2}" y="18" text-anchor="middle" font-weight="bold">{title}</text>']
    ys = [y for _, pts in lines for _, y in pts if y is not None]
    ymax = max(ys) * 1.1
    xmin, xmax = min(xs_all), max(xs_all)
    import math
    fx = (lambda v: math.log2(v)) if log_x else (lambda v: v)
    sx = lambda v: left + (fx(v) - fx(xmin)) / (fx(xmax) - fx(xmin)) * (w - left - 10)
    sy = lambda v: h - bottom - v / ymax * (h - bottom - 30)
    out.append(f'<line x1="{left}" y1="{h - bottom}" x2="{w - 10}" y2="{h - bottom}" stroke="#333"/>')
    out.append(f'<line x1="{left}" y1="30" x2="{left}" y2="{h - bottom}" stroke="#333"/>')
    for x in xs_all:
        out.append(f'<text x="{sx(x)}" y="{h - bottom + 16}" text-anchor="middle" font-size="11">{x}</text>')
    for i in range(5):
        v = ymax * i / 4
        out.append(f'<text x="{left - 6}" y="{sy(v) + 4}" text-anchor="end" font-size="11">{v:.0f}</text>')
        out.append(f'<line x1="{left}" y1="{sy(v)}" x2="{w - 10}" y2="{sy(v)}" stroke="#eee"/>')
    out.append(f'<text x="{left + (w - left) / 2}" y="{h - 8}" text-anchor="middle" font-size="12">{xlabel}</text>')
    out.append(f'<text transform="translate(14,{(h - bottom) / 2 + 20}) rotate(-90)" text-anchor="middle" font-size="12">{ylabel}</text>')
    for i, (name, pts) in enumerate(lines):
        pts = [(x, y) for x, y in pts if y is not None]
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{left + 8}" y="{44 + 14 * i}" font-size="11" fill="{color}">{name}</text>')
    out.append("</g>")
    return out


def main():
    report, target = sys.argv[1], sys.argv[2]
    lengths, series, heavy = parse(open(report).read())
    if not lengths or not heavy:
        sys.exit(f"{report} has no edge classify or heavy tier table")
    left = [(name, list(zip(lengths, ys))) for name, ys in series.items()]
    right = [(name, [(b, 1000.0 / rate) for b, rate in pts]) for name, pts in heavy.items()]
    batches = sorted({b for _, pts in heavy.items() for b, _ in pts})
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="860" height="300" font-family="sans-serif">',
           '<rect width="860" height="300" fill="white"/>']
    svg += panel(0, "Edge classify: p50 per text (batch 1)", "input tokens", "ms", lengths, left)
    svg += panel(430, "Heavy tier: cost per text by batch", "texts per batch (log)", "ms per text",
                 batches, right, log_x=True)
    svg.append("</svg>")
    open(target, "w").write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

"""Probe reports: a self-contained HTML page with inline SVG plots, JSON, and JUnit XML.

The HTML has no external assets and no scripts: plots are SVG drawn here (histograms, a CDF, bar
charts with interval whiskers), styles are inline. Every plot is an ``<svg class="plot"
data-plot="NAME">`` so tools (and the rendering test) can find them.
"""

from __future__ import annotations

import html
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pollama.testing.probe import ProbeRun

__all__ = ["render_html", "render_junit", "to_json", "write_reports"]

W, H = 460, 220
PAD_L, PAD_R, PAD_T, PAD_B = 52, 14, 18, 40
COLORS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#9a6700"}
BAR = "#3b6fd6"
BAR2 = "#e08a1e"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if unit == "s":
        return f"{x * 1000:.0f} ms" if abs(x) < 1 else f"{x:.2f} s"
    if unit == "%":
        return f"{x * 100:.0f}%"
    return f"{x:.3g}{' ' + unit if unit else ''}"


# --------------------------------------------------------------------------- SVG primitives


def _frame(name: str, title: str, body: list[str], xlabel: str = "", ylabel: str = "") -> str:
    parts = [
        f'<svg class="plot" data-plot="{_e(name)}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#444"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#444"/>',
        *body,
    ]
    if xlabel:
        parts.append(f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" font-size="11" text-anchor="middle">{_e(xlabel)}</text>')
    if ylabel:
        parts.append(f'<text x="12" y="{(PAD_T + H - PAD_B) / 2}" font-size="11" text-anchor="middle" '
                     f'transform="rotate(-90 12 {(PAD_T + H - PAD_B) / 2})">{_e(ylabel)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _empty(name: str, title: str) -> str:
    return _frame(name, title, [f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" font-size="12" fill="#666">no data</text>'])


def _sx(v: float, lo: float, hi: float) -> float:
    return PAD_L + (v - lo) / (hi - lo or 1) * (W - PAD_L - PAD_R)


def _sy(v: float, lo: float, hi: float) -> float:
    return H - PAD_B - (v - lo) / (hi - lo or 1) * (H - PAD_T - PAD_B)


def _ticks(lo: float, hi: float, axis: str, unit: str = "") -> list[str]:
    out = []
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        label = _fmt(v, unit)
        if axis == "x":
            x = _sx(v, lo, hi)
            out.append(f'<line x1="{x:.1f}" y1="{H - PAD_B}" x2="{x:.1f}" y2="{H - PAD_B + 4}" stroke="#444"/>'
                       f'<text x="{x:.1f}" y="{H - PAD_B + 15}" font-size="10" text-anchor="middle">{_e(label)}</text>')
        else:
            y = _sy(v, lo, hi)
            out.append(f'<line x1="{PAD_L - 4}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                       f'<text x="{PAD_L - 6}" y="{y + 3:.1f}" font-size="10" text-anchor="end">{_e(label)}</text>')
    return out


def svg_histogram(name: str, title: str, values: Sequence[float], unit: str = "", bins: int = 12,
                  marks: Sequence[tuple[str, float]] = ()) -> str:
    """Histogram with optional vertical marks (e.g. p50, p95)."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return _empty(name, title)
    lo, hi = min(xs), max(xs)
    if hi == lo:
        lo, hi = lo * 0.9, hi * 1.1 + 1e-9
    bins = max(1, min(bins, len(xs)))
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in xs:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    top = max(counts)
    body = _ticks(0, top, "y") + _ticks(lo, hi, "x", unit)
    for i, c in enumerate(counts):
        x0, x1 = _sx(lo + i * width, lo, hi), _sx(lo + (i + 1) * width, lo, hi)
        y = _sy(c, 0, top)
        body.append(f'<rect class="bar" x="{x0 + 1:.1f}" y="{y:.1f}" width="{max(1.0, x1 - x0 - 2):.1f}" '
                    f'height="{H - PAD_B - y:.1f}" fill="{BAR}"><title>{c} samples</title></rect>')
    for label, v in marks:
        if lo <= v <= hi:
            x = _sx(v, lo, hi)
            body.append(f'<line x1="{x:.1f}" y1="{PAD_T}" x2="{x:.1f}" y2="{H - PAD_B}" stroke="{BAR2}" stroke-dasharray="4 3"/>'
                        f'<text x="{x + 3:.1f}" y="{PAD_T + 10}" font-size="10" fill="{BAR2}">{_e(label)}</text>')
    return _frame(name, title, body, f"{title} ({unit})" if unit else title, "count")


def svg_cdf(name: str, title: str, series: Sequence[tuple[str, Sequence[float]]], unit: str = "") -> str:
    """Empirical CDFs (step lines), one per named series."""
    data = [(label, sorted(v for v in vals if v is not None and math.isfinite(v))) for label, vals in series]
    data = [(label, xs) for label, xs in data if xs]
    if not data:
        return _empty(name, title)
    lo = min(xs[0] for _, xs in data)
    hi = max(xs[-1] for _, xs in data)
    if hi == lo:
        hi = lo + 1e-3
    body = _ticks(0, 1, "y", "%") + _ticks(lo, hi, "x", unit)
    for k, (label, xs) in enumerate(data):
        color = (BAR, BAR2, "#6f42c1", "#1a7f37")[k % 4]
        pts = [f"{_sx(lo, lo, hi):.1f},{_sy(0, 0, 1):.1f}"]
        n = len(xs)
        for i, v in enumerate(xs):
            x = _sx(v, lo, hi)
            pts.append(f"{x:.1f},{_sy(i / n, 0, 1):.1f}")
            pts.append(f"{x:.1f},{_sy((i + 1) / n, 0, 1):.1f}")
        body.append(f'<polyline class="cdf" points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="2"/>')
        body.append(f'<text x="{W - PAD_R - 4}" y="{PAD_T + 14 + 13 * k}" font-size="11" text-anchor="end" fill="{color}">{_e(label)}</text>')
    return _frame(name, title, body, f"{title} ({unit})" if unit else title, "fraction ≤ x")


def svg_bars(name: str, title: str, items: Sequence[tuple[str, float, float | None, float | None]],
             ymax: float = 1.0, unit: str = "%", threshold: float | None = None) -> str:
    """Vertical bars with interval whiskers: ``(label, value, lo, hi)``."""
    if not items:
        return _empty(name, title)
    body = _ticks(0, ymax, "y", unit)
    slot = (W - PAD_L - PAD_R) / len(items)
    for i, (label, v, lo, hi) in enumerate(items):
        x = PAD_L + i * slot + slot * 0.2
        w = slot * 0.6
        val = 0.0 if v is None or math.isnan(v) else min(v, ymax)
        y = _sy(val, 0, ymax)
        body.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{H - PAD_B - y:.1f}" fill="{BAR}">'
                    f"<title>{_e(label)}: {_e(_fmt(v, unit))}</title></rect>")
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            cx = x + w / 2
            y0, y1 = _sy(min(lo, ymax), 0, ymax), _sy(min(hi, ymax), 0, ymax)
            body.append(f'<line class="ci" x1="{cx:.1f}" y1="{y0:.1f}" x2="{cx:.1f}" y2="{y1:.1f}" stroke="#111" stroke-width="1.5"/>'
                        f'<line x1="{cx - 5:.1f}" y1="{y0:.1f}" x2="{cx + 5:.1f}" y2="{y0:.1f}" stroke="#111"/>'
                        f'<line x1="{cx - 5:.1f}" y1="{y1:.1f}" x2="{cx + 5:.1f}" y2="{y1:.1f}" stroke="#111"/>')
        body.append(f'<text x="{x + w / 2:.1f}" y="{H - PAD_B + 14}" font-size="10" text-anchor="middle">{_e(label)}</text>')
    if threshold is not None:
        y = _sy(threshold, 0, ymax)
        body.append(f'<line x1="{PAD_L}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="{BAR2}" stroke-dasharray="5 3"/>')
    return _frame(name, title, body)


# --------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#0d1117;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header .meta{color:#9da7b3;font-size:13px}main{padding:18px 28px;max-width:1280px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 18px;margin:0 0 18px}
h2{font-size:17px;margin:2px 0 10px}table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border-bottom:1px solid #eaeef2;padding:4px 10px;text-align:left;vertical-align:top}th{background:#f6f8fa}
.v{font-weight:700;padding:2px 8px;border-radius:10px;color:#fff;font-size:12px;white-space:nowrap}
.PASS{background:#1a7f37}.FAIL{background:#cf222e}.INCONCLUSIVE{background:#9a6700}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}.plots figcaption{font-size:12px;color:#57606a}
.badges span{margin-right:8px}.note{color:#57606a;font-size:12px}code,pre{font-size:12px;white-space:pre-wrap}
ul.diag{margin:4px 0 8px 18px;font-size:13px}details{font-size:13px;margin:4px 0}
"""


def _verdict(v: str) -> str:
    return f'<span class="v {_e(v)}">{_e(v)}</span>'


def _checks_table(d: dict[str, Any]) -> str:
    rows = ["<tr><th>observation</th><th>check</th><th>estimate</th><th>interval</th><th>n</th><th>bound</th><th>verdict</th><th>how to loosen</th></tr>"]
    for c in d["checks"]:
        unit = c["unit"] if c["unit"] else ""
        lo, hi = c["interval"]
        rows.append(
            f"<tr><td>{_e(c['group'])}</td><td>{_e(c['name'])}</td><td>{_e(_fmtv(c['estimate'], unit))}</td>"
            f"<td>[{_e(_fmtv(lo, unit))}, {_e(_fmtv(hi, unit))}]</td><td>{c['n']}</td>"
            f"<td>{'≤' if c['direction'] == 'at_most' else '≥'} {_e(_fmtv(c['threshold'], unit))}</td>"
            f"<td>{_verdict(c['verdict'])}</td><td class='note'>{_e(c['describe'].partition(' — ')[2])}</td></tr>")
    return "<table class='checks'>" + "".join(rows) + "</table>"


def _fmtv(x: Any, unit: str) -> str:
    if x is None:
        return "–"
    if x in ("inf", "-inf"):
        return "∞" if x == "inf" else "−∞"
    return _fmt(float(x), unit)


def _latency_section(d: dict[str, Any]) -> str:
    lat = d.get("latency")
    if not lat:
        return ""
    samples = lat["samples"]
    col = {k: [s[k] for s in samples if s.get(k) is not None] for k in ("ttft", "wall", "total", "gen_rate", "prompt_rate")}
    summ = lat["summary"]
    marks = [(f"p{q}", summ["ttft"][f"p{q}"][0]) for q in (50, 95)] if "ttft" in summ else []
    plots = [
        ("latency-hist", "Time to first token", svg_histogram("latency-hist", "TTFT", col["ttft"], "s", marks=marks)),
        ("latency-cdf", "Latency CDF (TTFT and total)", svg_cdf("latency-cdf", "latency", [("TTFT", col["ttft"]), ("wall", col["wall"])], "s")),
        ("tokens-per-s", "Generation rate (server eval_count / eval_duration)", svg_histogram("tokens-per-s", "generation rate", col["gen_rate"], "tok/s")),
    ]
    rows = ["<tr><th>metric</th><th>n</th>" + "".join(f"<th>p{q} [95% CI]</th>" for q in (50, 90, 95, 99)) + "</tr>"]
    for metric, row in summ.items():
        unit = row["unit"]
        cells = "".join(f"<td>{_e(_fmt(row[f'p{q}'][0], unit))} <span class='note'>[{_e(_fmt(row[f'p{q}'][1], unit))}, "
                        f"{_e(_fmt(row[f'p{q}'][2], unit))}]</span></td>" for q in (50, 90, 95, 99))
        rows.append(f"<tr><td>{_e(metric)}</td><td>{row['n']}</td>{cells}</tr>")
    cold = lat.get("cold")
    cold_html = ""
    if cold:
        cold_html = ("<p><b>Cold start</b> (first call after unloading, not among the warm samples): "
                     f"load {_e(_fmt(cold.get('load'), 's'))}, TTFT {_e(_fmt(cold.get('ttft'), 's'))}, "
                     f"total {_e(_fmt(cold.get('wall'), 's'))}.</p>")
    return (f"<section id='latency'><h2>2 · Latency (warm calls; server timings + client TTFT)</h2>{cold_html}"
            f"<div class='plots'>{_figures(plots)}</div>"
            f"<table>{''.join(rows)}</table><p class='note'>Bootstrap intervals; tail percentiles of small samples "
            "are optimistic, and a verdict on them stays INCONCLUSIVE until the order-statistic bound exists.</p></section>")


def _figures(plots: list[tuple[str, str, str]]) -> str:
    return "".join(f"<figure>{svg}<figcaption>{_e(cap)}</figcaption></figure>" for _, cap, svg in plots)


def _determinism_section(d: dict[str, Any]) -> str:
    det = d.get("determinism")
    if not det:
        return ""
    conds = det["conditions"]
    items = [(c["name"], c["agreement"], None, None) for c in conds.values()]
    distinct = [(c["name"], c["distinct"] / c["n"], None, None) for c in conds.values()]
    plots = [("determinism", "Pairwise agreement by setting", svg_bars("determinism", "agreement", items)),
             ("determinism-distinct", "Distinct outputs / samples", svg_bars("determinism-distinct", "distinct", distinct))]
    rows = ["<tr><th>setting</th><th>n</th><th>distinct</th><th>agreement</th><th>first divergence</th></tr>"]
    for c in conds.values():
        div = c["divergence"]
        dv = "–" if not div else f"char {div['char']}, token {div['token']}: <code>{_e(div['excerpt'])}</code>"
        rows.append(f"<tr><td>{_e(c['label'])}</td><td>{c['n']}</td><td>{c['distinct']}</td>"
                    f"<td>{_e(_fmt(c['agreement'], '%'))}</td><td>{dv}</td></tr>")
    diag = "".join(f"<li>{_e(x)}</li>" for x in det["diagnosis"])
    samples = "".join(
        f"<details><summary>{_e(c['label'])} outputs</summary><pre>{_e(chr(10).join(c['outputs']))}</pre></details>"
        for c in conds.values())
    return (f"<section id='determinism'><h2>3 · Determinism</h2><p>Prompt: <code>{_e(det['prompt'])}</code></p>"
            f"<ul class='diag'>{diag}</ul><div class='plots'>{_figures(plots)}</div><table>{''.join(rows)}</table>{samples}</section>")


def _structured_section(d: dict[str, Any]) -> str:
    st = d.get("structured")
    if not st:
        return ""
    items = [(m, v["rate"], *v["interval"]) for m, v in st["modes"].items()]
    plot = svg_bars("validity", "schema validity", items, threshold=d["settings"].get("validity_at_least"))
    rows = ["<tr><th>mode</th><th>valid / n</th><th>rate [95% CI]</th><th>re-asks</th><th>first errors</th></tr>"]
    for m, v in st["modes"].items():
        lo, hi = v["interval"]
        errs = "; ".join(v["errors"][:2])
        rows.append(f"<tr><td>{_e(m)}</td><td>{v['valid']} / {v['n']}</td><td>{_e(_fmt(v['rate'], '%'))} "
                    f"[{_e(_fmt(lo, '%'))}, {_e(_fmt(hi, '%'))}]</td><td>{v['reasks']}</td><td class='note'>{_e(errs[:300])}</td></tr>")
    return (f"<section id='structured'><h2>3 · Structured-output contract</h2><p>Prompt: <code>{_e(st['prompt'])}</code> "
            f"schema <code>{_e(json.dumps(st['schema'], ensure_ascii=False))}</code></p>"
            f"<div class='plots'><figure>{plot}<figcaption>Validity rate by mode (Wilson 95% CI)</figcaption></figure></div>"
            f"<table>{''.join(rows)}</table></section>")


def _clarification_section(d: dict[str, Any]) -> str:
    cl = d.get("clarification")
    if not cl:
        return ""
    rates = cl["rates"]
    items = []
    for kind in ("ambiguous", "clear"):
        for label, short in (("asks", "asks"), ("assumes", "assumes"), ("answers", "answers")):
            r = rates[f"{kind}.{label}"]
            items.append((f"{kind[:3]}·{short}", r["rate"] or 0.0, *r["interval"]))
    plot = svg_bars("clarification", "clarification", items, threshold=d["settings"].get("over_inference_at_most"))
    judge = cl.get("judge")
    jtxt = ""
    if judge:
        jtxt = (f"<p>Judge <code>{_e(judge['model'])}</code>: agreement with the heuristic "
                f"{_e(_fmt(judge.get('agreement'), '%'))} (κ = {_e(_fmt(judge.get('kappa')))}, n = {judge['n']}).</p>")
    ratio = cl.get("length_ratio")
    rows = ["<tr><th>pair</th><th>kind</th><th>prompt</th><th>label</th><th>reply</th></tr>"]
    for r in cl["replies"]:
        rows.append(f"<tr><td>{_e(r['pair'])}</td><td>{_e(r['kind'])}</td><td>{_e(r['prompt'])}</td><td>{_e(r['label'])}"
                    f"{' / judge ' + _e(r['judge']) if r.get('judge') else ''}</td><td class='note'>{_e(r['text'][:400])}</td></tr>")
    return (f"<section id='clarification'><h2>4 · Ambiguous prompts: over-inference and clarification</h2>"
            f"<p>Each reply is labelled <i>asks</i> (for clarification), <i>assumes</i> (states assumptions) or "
            f"<i>answers</i> (as if the context existed). Length ratio ambiguous/clear: {_e(_fmt(ratio))}.</p>{jtxt}"
            f"<div class='plots'><figure>{plot}<figcaption>Label rates for ambiguous (amb) and clear (cle) prompts, "
            f"Wilson 95% CI; dashed: over-inference bound</figcaption></figure></div>"
            f"<details><summary>all replies</summary><table>{''.join(rows)}</table></details></section>")


def render_html(run: ProbeRun | dict[str, Any]) -> str:
    """The report as one self-contained HTML document."""
    d = run.as_dict() if isinstance(run, ProbeRun) else run
    counts = d["verdicts"]
    badges = "".join(f"<span>{_verdict(k)} {v}</span>" for k, v in counts.items())
    fp = d.get("fingerprint") or {}
    meta = (f"{_e(d['model'])} at {_e(d['url'])} · server {_e(fp.get('server_version', '?'))} · "
            f"digest {_e(str(fp.get('digest') or '?')[:19])} · {_e(d['started'])} · {d['duration_s']:.0f} s")
    basic = ""
    if d.get("basic"):
        b = d["basic"][0]
        basic = (f"<section id='basic'><h2>1 · The call works</h2><p>Example answer to "
                 f"<code>请用一句话解释什么是操作系统。</code> ({_e(b['done_reason'])}):</p><pre>{_e(b['text'][:600])}</pre></section>")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>pollama probe: {_e(d['model'])}</title><style>{CSS}</style></head><body>"
        f"<header><h1>pollama probe · {_e(d['model'])}</h1><div class='meta'>{meta}</div></header><main>"
        f"<section id='summary'><h2>Summary</h2><div class='badges'>{badges}</div>{_checks_table(d)}"
        "<p class='note'>Every check is an estimate with a 95% interval; PASS or FAIL only when the whole interval is on "
        "one side of the bound, otherwise INCONCLUSIVE (collect more samples).</p></section>"
        f"{basic}{_latency_section(d)}{_determinism_section(d)}{_structured_section(d)}{_clarification_section(d)}"
        "</main></body></html>"
    )


def render_junit(run: ProbeRun | dict[str, Any]) -> str:
    """JUnit XML: one testcase per check; FAIL and INCONCLUSIVE are failures (with ``type``),
    and every case carries estimate, interval, n and verdict as properties."""
    d = run.as_dict() if isinstance(run, ProbeRun) else run
    counts = d["verdicts"]
    suite = ET.Element("testsuite", name=f"pollama probe {d['model']}", tests=str(len(d["checks"])),
                       failures=str(counts["FAIL"] + counts["INCONCLUSIVE"]), errors="0", skipped="0",
                       time=f"{d['duration_s']:.3f}", timestamp=d["started"])
    props = ET.SubElement(suite, "properties")
    for k in ("url", "model"):
        ET.SubElement(props, "property", name=k, value=str(d[k]))
    for k, v in (d.get("fingerprint") or {}).items():
        if isinstance(v, (str, int, float)):
            ET.SubElement(props, "property", name=f"fingerprint.{k}", value=str(v))
    for c in d["checks"]:
        case = ET.SubElement(suite, "testcase", classname=f"probe.{c['group']}", name=c["name"], time="0")
        cp = ET.SubElement(case, "properties")
        for k in ("estimate", "n", "verdict", "threshold", "direction"):
            ET.SubElement(cp, "property", name=k, value=str(c[k]))
        ET.SubElement(cp, "property", name="interval", value=json.dumps(c["interval"]))
        if c["verdict"] != "PASS":
            f = ET.SubElement(case, "failure", type=c["verdict"], message=c["describe"])
            f.text = c["describe"]
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_reports(run: ProbeRun, out_dir: str | Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``STEM.html``, ``STEM.json`` and ``STEM.junit.xml`` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = stem or "probe-" + "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in run.model)
    d = run.as_dict()
    paths = {"html": out / f"{name}.html", "json": out / f"{name}.json", "junit": out / f"{name}.junit.xml"}
    paths["html"].write_text(render_html(d), encoding="utf-8")
    paths["json"].write_text(to_json(run), encoding="utf-8")
    paths["junit"].write_text(render_junit(d), encoding="utf-8")
    return paths


def _clean(o: Any) -> Any:
    """JSON-safe copy: NaN becomes null and infinities the strings "inf"/"-inf"."""
    if isinstance(o, float):
        if math.isnan(o):
            return None
        if math.isinf(o):
            return "inf" if o > 0 else "-inf"
        return o
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def to_json(run: ProbeRun) -> str:
    return json.dumps(_clean(run.as_dict()), ensure_ascii=False, indent=1, allow_nan=False, default=str)

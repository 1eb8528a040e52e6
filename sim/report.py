"""Rendering a simulation's result: a text summary for the terminal, canonical JSON, and a
self-contained HTML page with SVG plots (no scripts, no external files).

JSON is canonical (sorted keys, floats rounded to the microsecond) so that the same seed and
arguments give byte-identical output.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Mapping):
        return {str(k): _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    return value


def to_json(result: Mapping[str, Any]) -> str:
    return json.dumps(_round(result), sort_keys=True, indent=2) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def to_text(result: Mapping[str, Any]) -> str:
    d = result["detection"]
    r = result["recovery"]
    load = result["load"]
    lines = [
        f"scenario {result['scenario']}  seed {result['seed']}  "
        f"{result['agents']} agents / {result['regions']} regions  "
        f"{result['duration_s']:.0f} s simulated",
        "",
        "detection (s after the failure)      median    p99    max",
        f"  first suspicion                    {_fmt(d['first_suspect_s']['p50']):>6} "
        f"{_fmt(d['first_suspect_s']['p99']):>6} {_fmt(d['first_suspect_s']['max']):>6}",
        f"  dead at every survivor             {_fmt(d['dead_everywhere_s']['p50']):>6} "
        f"{_fmt(d['dead_everywhere_s']['p99']):>6} {_fmt(d['dead_everywhere_s']['max']):>6}",
        f"  failed agents detected             {d['detected']}/{d['failed']}",
        f"  false positives (healthy declared dead): {d['false_dead']}"
        f"   (suspicions of healthy agents: {d['false_suspect']})",
        "",
        f"projects: {r['projects']}   max with zero live servos: {r['max_zero_live']}   "
        f"max under-replicated: {r['max_under_replicated']}",
        "every project back at desired count: "
        + (f"after {_fmt(r['all_restored_s'])} s" if r["all_restored_s"] is not None else "NO"),
    ]
    if r["unrestorable"]:
        lines.append(f"cannot be restored ({len(r['unrestorable'])}):")
        for item in r["unrestorable"][:10]:
            lines.append(f"  {item['project']}: {item['missing']} missing - {item['why']}")
        if len(r["unrestorable"]) > 10:
            lines.append(f"  ... and {len(r['unrestorable']) - 10} more")
    lines += [
        f"recovery: {r['created']} servos re-created, {r['removed']} extras removed, "
        f"{r['placement_retries']} placement retries, {r['conflicts']} conflicts",
        f"load per agent: {_fmt(load['msgs_per_agent_s'])} msgs/s, "
        f"{_fmt(load['bytes_per_agent_s'])} bytes/s ({_fmt(load['kbit_per_agent_s'])} kbit/s)",
    ]
    return "\n".join(lines) + "\n"


def _svg_series(
    title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]], str]], x_max: float
) -> str:
    w, h, pad = 640, 220, 40
    y_max = max([1.0] + [y for _, pts, _ in series for _, y in pts])
    x_max = max(x_max, 1e-9)

    def sx(x: float) -> float:
        return pad + (w - 2 * pad) * x / x_max

    def sy(y: float) -> float:
        return h - pad - (h - 2 * pad) * y / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">',
        f'<text x="{pad}" y="18" font-size="14">{html.escape(title)}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>',
        f'<text x="{pad}" y="{h - 10}" font-size="11">0 s</text>',
        f'<text x="{w - pad - 30}" y="{h - 10}" font-size="11">{x_max:.0f} s</text>',
        f'<text x="4" y="{pad + 4}" font-size="11">{y_max:.0f}</text>',
    ]
    for i, (label, pts, colour) in enumerate(series):
        if pts:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
            )
        parts.append(
            f'<text x="{w - pad - 200}" y="{pad + 14 * i}" font-size="11" fill="{colour}">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(result: Mapping[str, Any]) -> str:
    series = result["series"]
    dur = float(result["duration_s"])
    projects_plot = _svg_series(
        "projects over time",
        [
            ("zero live servos", [(p[0], p[1]) for p in series["projects"]], "#c0392b"),
            ("under-replicated", [(p[0], p[2]) for p in series["projects"]], "#e67e22"),
        ],
        dur,
    )
    members_plot = _svg_series(
        "membership as seen by survivors (mean per agent)",
        [
            ("alive", [(p[0], p[1]) for p in series["members"]], "#27ae60"),
            ("suspect", [(p[0], p[2]) for p in series["members"]], "#f1c40f"),
            ("dead", [(p[0], p[3]) for p in series["members"]], "#7f8c8d"),
        ],
        dur,
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Shoal simulation: {html.escape(str(result['scenario']))}</title>"
        "<style>body{font-family:sans-serif;max-width:760px;margin:2em auto}"
        "pre{background:#f4f4f4;padding:1em}</style></head><body>"
        f"<h1>Shoal simulation: {html.escape(str(result['scenario']))}</h1>"
        f"<pre>{html.escape(to_text(result))}</pre>"
        f"{projects_plot}{members_plot}"
        "<h2>Raw result</h2>"
        f"<pre>{html.escape(to_json(result))}</pre>"
        "</body></html>\n"
    )

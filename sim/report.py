"""Rendering a simulation's result: a text summary for the terminal, canonical JSON, and a
self-contained HTML report (inline SVG, no scripts, no external files) an operator can forward:
the verdict first (projects at zero, time until all restored, what cannot be restored and
why), then the detection-latency distribution, the recovery timeline with the failure and the
restore marked, capacity per region before and after, and the raw JSON folded away.

JSON is canonical (sorted keys, floats rounded to the microsecond) so that the same seed and
arguments give byte-identical output.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sim.svg_plot import Marker, Series, cdf_points, chart


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


def _fleet_lines(result: Mapping[str, Any]) -> list[str]:
    """For `--from-cluster`: whose fleet, what fails, what was left out."""
    fleet = result.get("fleet")
    if not fleet:
        return []
    target = result.get("target", {})
    lines = [
        f"fleet of {fleet['source']}: {_scenario_title(result)} "
        f"(region {target.get('region')}, zone {target.get('zone')})"
    ]
    lines += [f"  left out: {note}" for note in fleet.get("notes", [])]
    return lines


def to_text(result: Mapping[str, Any]) -> str:
    d = result["detection"]
    r = result["recovery"]
    load = result["load"]
    lines = [
        f"scenario {result['scenario']}  seed {result['seed']}  "
        f"{result['agents']} agents / {result['regions']} regions  "
        f"{result['duration_s']:.0f} s simulated",
        *_fleet_lines(result),
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
        f"{_fmt(load['bytes_per_agent_s'])} bytes/s ({_fmt(load['kbit_per_agent_s'])} kbit/s), "
        f"{load.get('inventory_pulls', 0)} inventory pulls",
    ]
    return "\n".join(lines) + "\n"


def _scenario_title(result: Mapping[str, Any]) -> str:
    """What was asked, in the operator's words."""
    target = result.get("target") or {"region": "r0", "zone": "r0-z0"}
    args = result.get("args", {})
    region, zone = target["region"], target["zone"]
    return {
        "region-outage": f"What if region {region} goes down?",
        "zone-outage": f"What if zone {zone} goes down?",
        "region-partition": f"What if region {region} is cut off for "
        f"{_fmt(args.get('heal_after_s'))} s?",
        "rolling-failures": f"What if {args.get('failures', '?')} agents crash, one every "
        f"{_fmt(args.get('interval_s'))} s?",
        "slow-nodes": "What if some agents stall now and then?",
        "capacity-crunch": f"What if region {region} goes down on a nearly full fleet?",
    }.get(str(result["scenario"]), str(result["scenario"]))


def _restored_text(r: Mapping[str, Any], duration_s: float, fail_at_s: float) -> str:
    if r["all_restored_s"] is not None:
        return f"after {_fmt(r['all_restored_s'])} s"
    return f"not within the run ({duration_s - fail_at_s:.0f} s after the failure)"


def _headline(result: Mapping[str, Any]) -> str:
    r, d = result["recovery"], result["detection"]
    zero, projects = r["max_zero_live"], r["projects"]
    parts = [
        f"{d['failed']} of {result['agents']} agents failed." if d["failed"] else "No agent failed."
    ]
    if zero:
        parts.append(f"At the worst moment {zero} of {projects} projects had no live servo.")
    else:
        parts.append(f"No project lost all its servos (of {projects}).")
    if r["unrestorable"]:
        parts.append(f"{len(r['unrestorable'])} could not be restored (see below).")
    elif r["all_restored_s"] is not None:
        parts.append(f"Every project was whole again {_fmt(r['all_restored_s'])} s after.")
    else:
        parts.append("Recovery had not finished when the run ended.")
    return " ".join(parts)


UNRESTORABLE_NAMES = 8  # project names listed per reason before the rest fold away


def _by_reason(items: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Unrestorable projects grouped by why: a region outage on a full fleet gives hundreds of
    projects with the same one reason, which is one line to read, not hundreds."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for u in items:
        groups.setdefault(str(u["why"]), []).append(u)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def _verdict(result: Mapping[str, Any]) -> str:
    r, d = result["recovery"], result["detection"]
    esc = html.escape
    duration = float(result["duration_s"])
    fail_at = float(result.get("fail_at_s", result.get("args", {}).get("fail_at_s", 0.0)))
    fs, de = d["first_suspect_s"], d["dead_everywhere_s"]
    bad = "bad" if r["max_zero_live"] or r["unrestorable"] else "good"
    rows = [
        (
            "Projects with zero live servos (worst moment)",
            "max_zero_live",
            f"{r['max_zero_live']} of {r['projects']}",
        ),
        (
            "Projects under-replicated (worst moment)",
            "max_under_replicated",
            f"{r['max_under_replicated']} of {r['projects']}",
        ),
        (
            "Every project back at its desired count",
            "all_restored_s",
            _restored_text(r, duration, fail_at),
        ),
        ("Projects that cannot be restored", "unrestorable", str(len(r["unrestorable"]))),
        (
            "Failure first suspected",
            "first_suspect_s",
            f"median {_fmt(fs['p50'])} s, p99 {_fmt(fs['p99'])} s, max {_fmt(fs['max'])} s",
        ),
        (
            "Failed agents dead at every survivor",
            "dead_everywhere_s",
            f"{d['detected']} of {d['failed']}; median {_fmt(de['p50'])} s, "
            f"max {_fmt(de['max'])} s",
        ),
        (
            "Healthy agents declared dead (false positives)",
            "false_dead",
            f"{d['false_dead']} (suspected: {d['false_suspect']})",
        ),
    ]
    out = [
        f'<section id="verdict" class="verdict {bad}"><h2>Verdict</h2>',
        f'<p class="headline">{esc(_headline(result))}</p><table class="figures">',
    ]
    out += [
        f'<tr><th>{esc(label)}</th><td data-key="{key}">{esc(value)}</td></tr>'
        for label, key, value in rows
    ]
    out.append("</table>")
    if r["unrestorable"]:
        out.append(
            '<h3>Cannot be restored, and why</h3><table class="unrestorable">'
            "<tr><th>why</th><th>projects</th><th>servos missing</th></tr>"
        )
        for why, items in _by_reason(r["unrestorable"]).items():
            names = [str(u["project"]) for u in items]
            shown = esc(", ".join(names[:UNRESTORABLE_NAMES]))
            if len(names) > UNRESTORABLE_NAMES:
                rest = ", ".join(names[UNRESTORABLE_NAMES:])
                shown += (
                    f"<details><summary>and {len(names) - UNRESTORABLE_NAMES} more</summary>"
                    f"{esc(rest)}</details>"
                )
            out.append(
                f'<tr><td>{esc(why)}</td><td data-count="{len(names)}">{len(names)}: '
                f"{shown}</td><td>{sum(int(u['missing']) for u in items)}</td></tr>"
            )
        out.append("</table>")
    fleet = result.get("fleet")
    if fleet:
        out.append(f'<p class="fleet">Fleet read from <code>{esc(str(fleet["source"]))}</code>.')
        if fleet.get("notes"):
            out.append(" Left out: " + esc("; ".join(fleet["notes"])) + ".")
        out.append("</p>")
    out.append("</section>")
    return "".join(out)


def _detection_plot(result: Mapping[str, Any]) -> str:
    samples = result["detection"].get("samples") or {}
    suspect = samples.get("first_suspect_s") or []
    dead = samples.get("dead_everywhere_s") or []
    if not suspect and not dead:
        return "<p>No agent failed in this scenario: nothing to detect.</p>"
    x_max = max([1.0, *suspect, *dead])
    return chart(
        "Detection latency: share of failed agents detected within t",
        [
            Series("first suspicion", cdf_points(suspect), "#e67e22", step=True),
            Series("dead at every survivor", cdf_points(dead), "#c0392b", step=True),
        ],
        "seconds after the failure",
        "failed agents (%)",
        (0.0, x_max * 1.05),
        (0.0, 100.0),
        y_fmt=lambda v: f"{v:g}%",
    )


def _markers(result: Mapping[str, Any]) -> list[Marker]:
    fail_at = float(result.get("fail_at_s", result.get("args", {}).get("fail_at_s", 0.0)))
    marks = [Marker(fail_at, "failure", "#c0392b", "failure")]
    if result["scenario"] == "region-partition":
        heal = fail_at + float(result.get("args", {}).get("heal_after_s", 0.0))
        marks.append(Marker(heal, "healed", "#2980b9", "heal"))
    restored = result["recovery"]["all_restored_s"]
    if restored is not None:
        marks.append(Marker(fail_at + float(restored), "all restored", "#27ae60", "restore"))
    return marks


def _timeline_plots(result: Mapping[str, Any]) -> str:
    series = result["series"]
    dur = float(result["duration_s"])
    zero = [(p[0], p[1]) for p in series["projects"]]
    under = [(p[0], p[2]) for p in series["projects"]]
    projects = chart(
        "Recovery timeline: projects short of servos",
        [
            Series("zero live servos", zero, "#c0392b", step=True),
            Series("under-replicated", under, "#e67e22", step=True),
        ],
        "seconds since the run started",
        "projects",
        (0.0, dur),
        markers=_markers(result),
    )
    members = chart(
        "Membership as seen by survivors (mean per agent)",
        [
            Series("alive", [(p[0], p[1]) for p in series["members"]], "#27ae60"),
            Series("suspect", [(p[0], p[2]) for p in series["members"]], "#f1c40f"),
            Series("dead", [(p[0], p[3]) for p in series["members"]], "#7f8c8d"),
        ],
        "seconds since the run started",
        "members",
        (0.0, dur),
        markers=_markers(result),
    )
    return projects + members


def _bar(used: int, total: int) -> str:
    share = 0.0 if total <= 0 else min(1.0, used / total)
    colour = "#27ae60" if share < 0.7 else "#e67e22" if share < 0.9 else "#c0392b"
    return (
        f'<span class="bar"><span style="width:{share * 100:.0f}%;background:{colour}">'
        f"</span></span> {share * 100:.0f}%"
    )


def _capacity(result: Mapping[str, Any]) -> str:
    cap = result.get("capacity")
    if not cap:
        return ""
    esc = html.escape
    rows = [
        '<table class="capacity"><tr><th>region</th><th>agents up</th>'
        "<th>memory before</th><th>memory after</th><th>CPU before</th><th>CPU after</th></tr>"
    ]
    for region, before in cap["before"].items():
        after = cap["after"].get(region, {})

        def mem(c: Mapping[str, int]) -> str:
            used, total = c.get("memory_used_mb", 0), c.get("memory_total_mb", 0)
            return f"{_bar(used, total)}<br><small>{used:,} of {total:,} MiB</small>"

        def cpu(c: Mapping[str, int]) -> str:
            used, total = c.get("millicpus_used", 0), c.get("millicpus_total", 0)
            return f"{_bar(used, total)}<br><small>{used / 1000:g} of {total / 1000:g}</small>"

        rows.append(
            f'<tr data-region="{esc(region)}"><td>{esc(region)}</td>'
            f"<td>{before['agents_up']} → {after.get('agents_up', 0)} of {before['agents']}</td>"
            f"<td>{mem(before)}</td><td>{mem(after)}</td><td>{cpu(before)}</td>"
            f"<td>{cpu(after)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:820px;margin:2em auto;color:#222}"
    "h1{font-size:1.5em}.verdict{border-left:6px solid #27ae60;padding:.2em 1em;"
    "background:#f4fbf6}.verdict.bad{border-color:#c0392b;background:#fdf3f2}"
    ".headline{font-size:1.15em;font-weight:600}table{border-collapse:collapse;margin:.5em 0}"
    "th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #ddd;vertical-align:top}"
    ".bar{display:inline-block;width:90px;height:9px;background:#eee;vertical-align:middle}"
    ".bar span{display:block;height:100%}svg.chart{display:block;margin:1em 0;max-width:100%}"
    "svg .title{font-size:14px;font-weight:600}svg .tick,svg .legend,svg .label,svg .marker"
    "{font-size:11px}svg .grid{stroke:#eee}svg .axis{stroke:#888}"
    "details pre{background:#f4f4f4;padding:1em;max-height:30em;overflow:auto}"
)


def to_html(result: Mapping[str, Any]) -> str:
    """The report, verdict first: what the operator forwards. Raw JSON folded at the end."""
    esc = html.escape
    title = _scenario_title(result)
    args = result.get("args", {})
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Shoal what-if: {esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f'<p class="run">Scenario <b>{esc(str(result["scenario"]))}</b>, seed {result["seed"]}, '
        f"{result['agents']} agents in {result['regions']} regions, "
        f"{_fmt(float(result['duration_s']))} s simulated, failure at "
        f"{_fmt(float(result.get('fail_at_s', args.get('fail_at_s', 0.0))))} s, "
        f"packet loss {_fmt(float(args.get('loss', 0.0)))}.</p>"
        f"{_verdict(result)}"
        "<h2>Detection</h2>"
        f"{_detection_plot(result)}"
        "<h2>Recovery</h2>"
        f"{_timeline_plots(result)}"
        f"<p>{esc(_load_text(result))}</p>"
        "<h2>Capacity per region, before and after</h2>"
        f"{_capacity(result)}"
        "<h2>Raw result</h2>"
        "<details><summary>The run's JSON (what <code>--json</code> prints)</summary>"
        f"<pre>{esc(to_json(result))}</pre></details>"
        "</body></html>\n"
    )


def _load_text(result: Mapping[str, Any]) -> str:
    r, load = result["recovery"], result["load"]
    return (
        f"Recovery: {r['created']} servos re-created, {r['removed']} extras removed, "
        f"{r['placement_retries']} placement retries, {r['conflicts']} conflicts. "
        f"Gossip load per agent: {_fmt(load['msgs_per_agent_s'])} msgs/s, "
        f"{_fmt(load['kbit_per_agent_s'])} kbit/s."
    )

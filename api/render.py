"""Readable terminal output for the CLI: member and project tables with status colours and
capacity bars. `--json` bypasses all of this and prints the API's objects as they are."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from api.fit_table import Column, FittedTable

STATUS_STYLE = {
    "alive": "green",
    "running": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "suspect": "yellow",
    "draining": "yellow",
    "stopped": "blue",
    "left": "blue",
    "dead": "red",
    "failed": "red",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, "white"))


def bar(used: int, total: int, width: int = 12) -> Text:
    """A capacity bar: filled for the share in use, coloured by how full."""
    share = 0.0 if total <= 0 else min(1.0, max(0.0, used / total))
    filled = round(share * width)
    style = "green" if share < 0.7 else "yellow" if share < 0.9 else "red"
    text = Text("█" * filled, style=style)
    text.append("░" * (width - filled), style="grey50")
    text.append(f" {share * 100:3.0f}%")
    return text


def _capacity_column(header: str, used_total: list[tuple[int, int]]) -> Column:
    """A bar 12 wide; at narrow widths 4 wide, the percentage always whole."""
    return Column(
        header,
        [bar(u, t) for u, t in used_total],
        narrow=Column(header, [bar(u, t, width=4) for u, t in used_total]),
    )


def members_table(members: list[dict[str, Any]]) -> FittedTable:
    """Name and status are never cut; at 80 columns the API URL goes first (`--json` has it)."""
    mem, cpu = [], []
    for m in members:
        cap = m.get("capacity", {})
        mem_total = int(cap.get("memory_total_mb", 0))
        cpu_total = int(cap.get("millicpus_total", 0))
        mem.append((mem_total - int(cap.get("memory_free_mb", 0)), mem_total))
        cpu.append((cpu_total - int(cap.get("millicpus_free", 0)), cpu_total))
    return FittedTable(
        "members",
        [
            Column("name", [m["name"] for m in members]),
            Column("status", [status_text(m["status"]) for m in members]),
            Column("region", [m.get("region", "") for m in members]),
            Column("zone", [m.get("zone", "") for m in members], drop=2),
            Column("api", [m.get("api", "") for m in members], drop=3, fit="fold"),
            _capacity_column("memory", mem),
            _capacity_column("cpu", cpu),
            Column("servos", [str(m.get("servos", "")) for m in members], drop=1),
        ],
    )


def projects_table(projects: list[dict[str, Any]]) -> FittedTable:
    rows: list[tuple[str, str, str, str, Text, str]] = []
    for p in projects:
        spec = p["spec"]
        running = sum(
            1 for s in p["servos"] if s["state"] == "running" and s.get("node_status") == "alive"
        )
        state = (
            "stopped"
            if spec.get("stopped")
            else ("running" if running >= spec["replicas"] else "starting")
        )
        rows.append(
            (
                p["name"],
                spec["image"],
                str(spec["replicas"]),
                f"{running}/{spec['replicas']}",
                status_text(state),
                spec.get("spread", ""),
            )
        )
    return FittedTable(
        "projects",
        [
            Column("name", [r[0] for r in rows]),
            Column("image", [r[1] for r in rows], fit="fold"),
            Column("replicas", [r[2] for r in rows], drop=2),
            Column("running", [r[3] for r in rows]),
            Column("state", [r[4] for r in rows]),
            Column("spread", [r[5] for r in rows], drop=1),
        ],
    )


def last_exit_text(exit_: dict[str, Any] | None) -> str:
    if not exit_:
        return "-"
    return f"{exit_['reason']} {exit_['code']} at {str(exit_['at'])[11:19]}"


def servos_table(project: dict[str, Any]) -> FittedTable:
    """Servo id, node and state are never cut; endpoints and the last exit wrap; when room runs
    out the generation (in the title too) goes first, then restarts, last exit, endpoints."""
    gen = project.get("generation", project.get("spec", {}).get("generation", ""))
    servos = project["servos"]

    def state_text(s: dict[str, Any], fake_mark: str) -> Text:
        state = status_text(s["state"])
        if s.get("node_status") not in (None, "alive"):
            state.append(f" (node {s['node_status']})", style="red")
        if s.get("fake"):
            state.append(fake_mark, style="grey50")
        return state

    endpoints = [
        ", ".join(
            f"{e['host']}:{e['host_port']}->{e['container_port']}" for e in s.get("endpoints", [])
        )
        or "-"
        for s in servos
    ]
    return FittedTable(
        f"servos of {project['name']} (generation {gen})",
        [
            Column("servo", [s["id"] for s in servos]),
            Column("node", [s["node"] for s in servos]),
            # the state word leads; the notes after it wrap at spaces, never inside a word
            Column(
                "state",
                [state_text(s, " [fake runtime]") for s in servos],
                fit="words",
                narrow=Column("state", [state_text(s, " [fake]") for s in servos], fit="words"),
            ),
            Column("gen", [str(s.get("generation", "")) for s in servos], drop=4),
            Column("restarts", [str(s.get("restarts", 0)) for s in servos], drop=3),
            Column(
                "last exit",
                [last_exit_text(s.get("last_exit")) for s in servos],
                fit="words",
                drop=2,
            ),
            Column("endpoints", endpoints, fit="fold", drop=1),
        ],
    )


def print_status(console: Console, project: dict[str, Any], logs: list[dict[str, Any]]) -> None:
    """A project's servos, then the last log lines of each failed one (why it failed)."""
    console.print(servos_table(project))
    for item in logs:
        console.print(f"[red]{item['servo']}[/red] on {item['node']} failed; last log lines:")
        text = str(item.get("logs") or "").rstrip() or "(no output)"
        for line in text.splitlines()[-20:]:
            console.print(f"  {line}", markup=False, highlight=False)


def volumes_table(body: dict[str, Any]) -> Table:
    table = Table(title="kept volumes", title_justify="left")
    for col in ("node", "project", "servo", "size", "since", "volume"):
        table.add_column(col)
    for v in body.get("volumes", []):
        size = v.get("size_bytes")
        table.add_row(
            str(v.get("node", "")),
            str(v.get("project", "")),
            str(v.get("servo", "")),
            "?" if size is None else f"{int(size) / 1e6:.1f} MB",
            str(v.get("since", ""))[:19],
            str(v.get("volume", "")),
        )
    if body.get("unreachable"):
        table.caption = "not answering: " + ", ".join(body["unreachable"])
    return table


def print_deploy(console: Console, project: dict[str, Any]) -> None:
    console.print(servos_table(project))
    deploy = project.get("deploy", {})
    if deploy.get("missing"):
        console.print(f"[red]missing {deploy['missing']} servo(s)[/red]")
        for f in deploy.get("failures", []):
            console.print(f"  {f['node']}: {f['reason']} - {f['detail']}")
        expl = deploy.get("placement", {})
        for node, reason in sorted((expl.get("reasons") or expl.get("refusals") or {}).items()):
            console.print(f"  {node}: {reason}")


def history_table(body: dict[str, Any]) -> Table:
    table = Table(
        title=f"history of {body['name']} (now generation {body['generation']})",
        title_justify="left",
    )
    for col in ("generation", "at", "change", "image"):
        table.add_column(col)
    for h in body.get("history", []):
        at = _dt.datetime.fromtimestamp(h["at_ms"] / 1000, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        mark = " *" if h["generation"] == body["generation"] else ""
        table.add_row(f"{h['generation']}{mark}", at, h["change"], str(h["spec"].get("image", "")))
    return table

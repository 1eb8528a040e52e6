"""The CLI's tables at 80 columns: every name and status whole, on one line, nothing past the
edge; on a wide terminal nothing is left out."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType

from api.render import members_table, projects_table, servos_table

NAMES = [f"3f9c2a71b0-agent-{region}-{i}" for region in ("eu-west", "us-east") for i in range(3)]
STATUSES = ["alive", "suspect", "dead", "left", "alive", "alive"]


def members() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "status": status,
            "region": name.split("-")[2] + "-" + name.split("-")[3],
            "zone": name.split("-")[2] + "-" + name.split("-")[3] + "-1",
            "addr": f"10.231.77.{10 + i}:7946",
            "api": f"http://10.231.77.{10 + i}:7070",
            "capacity": {
                "memory_total_mb": 16384,
                "memory_free_mb": 16384 - 1024 * i,
                "millicpus_total": 8000,
                "millicpus_free": 8000 - 500 * i,
            },
            "servos": i,
        }
        for i, (name, status) in enumerate(zip(NAMES, STATUSES, strict=True))
    ]


def project(name: str = "checkout-frontend") -> dict[str, Any]:
    return {
        "name": name,
        "generation": 4,
        "spec": {
            "image": "registry.internal.example.com/shop/checkout-frontend:2026.11.25-1",
            "replicas": 3,
            "spread": "region",
        },
        "servos": [
            {
                "id": f"{name}-4-{slot}-9a8b7c6d",
                "node": NAMES[slot],
                "state": state,
                "node_status": node_status,
                "generation": 4,
                "restarts": slot,
                "last_exit": {"reason": "exited", "code": 137, "at": "2026-11-25T21:40:00Z"},
                "endpoints": [
                    {"host": "10.231.77.10", "host_port": 31000 + slot, "container_port": 8080}
                ],
                "fake": True,
            }
            for slot, (state, node_status) in enumerate(
                [("running", "alive"), ("starting", "suspect"), ("failed", "dead")]
            )
        ],
    }


def row_block(lines: list[str], key: str) -> str:
    """The lines of the table row whose first line holds `key` (its cells wrap below it)."""
    start = next(i for i, line in enumerate(lines) if key in line)
    block = [lines[start]]
    for line in lines[start + 1 :]:
        first_cell = line.split("│")[1] if line.count("│") > 1 else "x"
        if first_cell.strip():  # the next row, or the bottom border
            break
        block.append(line)
    return "\n".join(block)


def column_text(lines: list[str], header: str) -> str:
    """Everything drawn in one column, pieces of folded cells joined back together."""
    head = next(line for line in lines if header in line and "┃" in line)
    index = [cell.strip() for cell in head.split("┃")].index(header)
    return "".join(line.split("│")[index].strip() for line in lines if line.count("│") > index)


def render(renderable: RenderableType, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_members_at_80_columns_keep_every_name_and_status_whole() -> None:
    lines = render(members_table(members()), 80)
    assert all(len(line) <= 80 for line in lines)
    for name, status in zip(NAMES, STATUSES, strict=True):
        row = next((line for line in lines if name in line), None)
        assert row is not None, f"{name} cut or wrapped:\n" + "\n".join(lines)
        assert f" {status} " in row
    header = next(line for line in lines if "name" in line and "status" in line)
    assert "memory" in header and "cpu" in header  # capacity stays, as short bars
    assert "%" in next(line for line in lines if NAMES[0] in line)


def test_members_on_a_wide_terminal_show_every_column() -> None:
    lines = render(members_table(members()), 200)
    header = next(line for line in lines if "name" in line and "status" in line)
    for col in ("region", "zone", "api", "memory", "cpu", "servos"):
        assert col in header
    assert any("http://10.231.77.10:7070" in line for line in lines)


def test_projects_at_80_columns_keep_names_counts_and_states() -> None:
    projects = [project("checkout-frontend"), project("payments-api-worker")]
    lines = render(projects_table(projects), 80)
    assert all(len(line) <= 80 for line in lines)
    for name in ("checkout-frontend", "payments-api-worker"):
        row = next(line for line in lines if name in line)
        assert "1/3" in row and "starting" in row
    # the long image wraps instead of being cut: every piece of it is on the page
    image = projects[0]["spec"]["image"]
    assert column_text(lines, "image") == image * 2


def test_status_at_80_columns_keeps_servo_ids_nodes_and_states_whole() -> None:
    p = project()
    lines = render(servos_table(p), 80)
    assert all(len(line) <= 80 for line in lines)
    for s in p["servos"]:
        row = next((line for line in lines if s["id"] in line), None)
        assert row is not None, "\n".join(lines)
        assert s["node"] in row and f" {s['state']} " in row
        assert "[fake" in row_block(lines, s["id"])  # the fake runtime still says so
    dead_state = " ".join(
        line.split("│")[3].strip() for line in row_block(lines, p["servos"][2]["id"]).splitlines()
    )
    assert dead_state == "failed (node dead) [fake]"

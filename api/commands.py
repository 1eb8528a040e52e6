"""The client commands of the `shoal` CLI: each maps to one API call and prints a table (or JSON
with `--json`). Failures print one line on stderr and exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.client import ClientError, ShoalClient
from api.commands_stream import STREAM_COMMANDS
from api.render import (
    history_table,
    members_table,
    print_deploy,
    print_status,
    projects_table,
    servos_table,
    volumes_table,
)

DEPLOY_WAIT_S = 120.0


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"--env wants KEY=VALUE, got {item!r}")
        env[key] = value
    spec: dict[str, Any] = {
        "image": args.image,
        "replicas": args.replicas,
        "memory": args.memory,
        "cpus": float(args.cpus) if args.cpus.replace(".", "", 1).isdigit() else args.cpus,
        "ports": args.ports,
        "env": env,
        "spread": args.spread,
    }
    if getattr(args, "servo_command", None):
        spec["command"] = args.servo_command
    if getattr(args, "health", None):
        spec["health"] = _health(args.health)
    return spec


def _health(text: str) -> dict[str, Any]:
    """`http:8080/healthz` or `tcp:5432` as a health check."""
    kind, _, rest = text.partition(":")
    port, slash, path = rest.partition("/")
    if kind not in ("http", "tcp") or not port.isdigit():
        raise ClientError(f"--health wants http:PORT/PATH or tcp:PORT, got {text!r}")
    check: dict[str, Any] = {"type": kind, "port": int(port)}
    if kind == "http":
        check["path"] = "/" + path if slash else "/"
    return check


def _all_running(project: dict[str, Any]) -> bool:
    running = [
        s for s in project["servos"] if s["state"] == "running" and s.get("node_status") == "alive"
    ]
    return len(running) >= int(project["spec"]["replicas"])


def _deploy(client: ShoalClient, args: argparse.Namespace, console: Console) -> int:
    spec = _spec(args)
    with console.status(
        f"deploying {args.project}: placing {args.replicas} servo(s)...", spinner="dots"
    ):
        result = client.deploy(args.project, spec, args.idempotency_key)
    if not args.json and not args.detach:
        result = _follow(client, args.project, result, console)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_deploy(console, result)
    rollout = result.get("rollout") or {}
    if rollout.get("state") in ("failed", "rolled_back"):
        console.print(
            f"[red]rollout of generation {rollout['generation']} {rollout['state']}: "
            f"{rollout.get('reason', '')}[/red]"
        )
        return 1
    return 0 if result.get("complete", True) else 1


def _follow(
    client: ShoalClient, name: str, result: dict[str, Any], console: Console
) -> dict[str, Any]:
    """Show the rollout (or the first start) live until it ends, `DEPLOY_WAIT_S` at most."""
    deploy = result.get("deploy")
    deadline = time.monotonic() + DEPLOY_WAIT_S
    replicas = int(result["spec"]["replicas"])
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{name}: starting", total=max(1, replicas))
        while time.monotonic() < deadline:
            rollout = result.get("rollout")
            if rollout is not None and rollout.get("generation") == result.get("generation"):
                done = rollout["state"] != "in_progress"
                progress.update(
                    task,
                    description=f"{name}: generation {rollout['generation']} "
                    f"({rollout['updated']} updated)",
                    completed=rollout["healthy"],
                    total=max(1, replicas),
                )
            elif rollout is not None and rollout.get("state") in ("rolled_back", "failed"):
                done = True
            else:
                running = sum(1 for s in result["servos"] if s["state"] == "running")
                progress.update(task, completed=min(running, replicas))
                done = _all_running(result) or bool((deploy or {}).get("missing"))
            if done:
                break
            time.sleep(0.5)
            result = client.project(name)
    result["deploy"] = deploy
    return result


Command = Callable[[ShoalClient, argparse.Namespace], Any]

# command -> (the API call, how to render its answer; None prints the JSON)
COMMANDS: dict[str, tuple[Command, Callable[[Any], RenderableType] | None]] = {
    "members": (lambda c, a: c.members(), members_table),
    "projects": (lambda c, a: c.projects(), projects_table),
    "scale": (lambda c, a: c.scale(a.project, a.replicas), servos_table),
    "stop": (lambda c, a: c.stop(a.project), servos_table),
    "start": (lambda c, a: c.start(a.project), servos_table),
    "destroy": (lambda c, a: c.destroy(a.project, a.keep_volumes), None),
    "drain": (lambda c, a: c.drain(a.node), None),
    "undrain": (lambda c, a: c.undrain(a.node), None),
    "leave": (lambda c, a: c.leave(a.node), None),
    "history": (lambda c, a: c.history(a.project), history_table),
    "rollback": (lambda c, a: c.rollback(a.project, a.to), servos_table),
}


def _volumes(client: ShoalClient, args: argparse.Namespace) -> tuple[Any, Any]:
    if args.action == "prune":
        return client.prune_volumes(args.node, args.project, args.older_than), None
    return client.volumes(args.node), volumes_table


def _status(client: ShoalClient, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """The project's servos, and the last log lines of each failed one."""
    result: dict[str, Any] = client.project(args.project)
    if not args.json:
        failed = [s for s in result["servos"] if s["state"] == "failed"]
        logs = [item for s in failed for item in client.logs(args.project, s["id"], 20)["servos"]]
        print_status(console, result, logs)
    return result


def _join_token(client: ShoalClient, args: argparse.Namespace) -> int:
    """The token alone on stdout (one line, never wrapped: `T=$(shoal join-token)`); how to use
    it on stderr."""
    result = client.request("POST", "/v1/join-token", json={"ttl_s": args.ttl})
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(result["token"])
    print(
        f"valid until {result['expires_at']}; on the new host run:\n  {result['command']}",
        file=sys.stderr,
    )
    return 0


def run_client_command(args: argparse.Namespace) -> int:
    console = Console()
    cmd = args.command
    render: Callable[[Any], RenderableType] | None
    try:
        with ShoalClient(args.api, args.token) as client:
            if cmd in STREAM_COMMANDS:
                return STREAM_COMMANDS[cmd](client, args)
            if cmd == "deploy":
                return _deploy(client, args, console)
            if cmd == "join-token":
                return _join_token(client, args)
            if cmd == "status":
                result = _status(client, args, console)
                if not args.json:
                    return 0
                render = None
            elif cmd == "volumes":
                result, render = _volumes(client, args)
            elif cmd in COMMANDS:
                call, render = COMMANDS[cmd]
                result = call(client, args)
            else:  # pragma: no cover - argparse restricts the choices
                raise ClientError(f"unknown command {cmd}")
    except ClientError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    if args.json or render is None:
        print(json.dumps(result, indent=2))
    else:
        console.print(render(result))
    if cmd == "scale" and result.get("complete") is False:
        return 1
    return 0

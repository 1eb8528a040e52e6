"""The client commands of the `shoal` CLI: each maps to one API call and prints a table (or JSON
with `--json`). Failures print one line on stderr and exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from api.client import ClientError, ShoalClient
from api.render import (
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
    return {
        "image": args.image,
        "replicas": args.replicas,
        "memory": args.memory,
        "cpus": float(args.cpus) if args.cpus.replace(".", "", 1).isdigit() else args.cpus,
        "ports": args.ports,
        "env": env,
        "spread": args.spread,
    }


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
    if not args.json:
        deadline = time.monotonic() + DEPLOY_WAIT_S
        with console.status("waiting for servos to run...", spinner="dots") as status:
            while (
                not _all_running(result)
                and time.monotonic() < deadline
                and not result["deploy"]["missing"]
            ):
                running = sum(1 for s in result["servos"] if s["state"] == "running")
                status.update(f"waiting for servos to run... {running}/{spec['replicas']}")
                time.sleep(0.5)
                deploy = result.get("deploy")
                result = client.project(args.project)
                result["deploy"] = deploy
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_deploy(console, result)
    return 0 if result.get("complete", True) else 1


def run_client_command(args: argparse.Namespace) -> int:
    console = Console()
    try:
        with ShoalClient(args.api, args.token) as client:
            cmd = args.command
            render: Callable[[Any], Table] | None
            if cmd == "deploy":
                return _deploy(client, args, console)
            if cmd == "members":
                result = client.members()
                render = members_table
            elif cmd == "projects":
                result = client.projects()
                render = projects_table
            elif cmd == "status":
                result = client.project(args.project)
                if not args.json:
                    failed = [s for s in result["servos"] if s["state"] == "failed"]
                    logs = [
                        item
                        for s in failed
                        for item in client.logs(args.project, s["id"], 20)["servos"]
                    ]
                    print_status(console, result, logs)
                    return 0
                render = None
            elif cmd == "scale":
                result = client.scale(args.project, args.replicas)
                render = servos_table
            elif cmd == "stop":
                result = client.stop(args.project)
                render = servos_table
            elif cmd == "start":
                result = client.start(args.project)
                render = servos_table
            elif cmd == "destroy":
                result = client.destroy(args.project, args.keep_volumes)
                render = None
            elif cmd == "drain":
                result = client.drain(args.node)
                render = None
            elif cmd == "undrain":
                result = client.undrain(args.node)
                render = None
            elif cmd == "leave":
                result = client.leave(args.node)
                render = None
            elif cmd == "volumes":
                if args.action == "prune":
                    result = client.prune_volumes(args.node, args.project, args.older_than)
                    render = None
                else:
                    result = client.volumes(args.node)
                    render = volumes_table
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

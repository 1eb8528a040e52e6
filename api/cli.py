"""The `shoal` command line: `shoal agent` runs a server's agent; the rest talk to any agent."""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from node.config import DEFAULT_API_PORT, DEFAULT_GOSSIP_PORT, AgentConfig
from node.units import UnitError, parse_memory_mb, parse_millicpus


def _agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run this server's agent")
    p.add_argument("--name", help="node name (default: hostname)")
    p.add_argument("--region", default="default")
    p.add_argument("--zone", default="", help="default: REGION-1")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--advertise", default="", help="address peers use (default: --bind)")
    p.add_argument("--gossip-port", type=int, default=DEFAULT_GOSSIP_PORT)
    p.add_argument("--api-port", type=int, default=DEFAULT_API_PORT)
    p.add_argument("--data-dir", type=Path, default=Path("./shoal-data"))
    p.add_argument("--runtime", choices=["docker", "fake"], default="fake")
    p.add_argument("--memory", help="memory servos may use, e.g. 4G (default: detected)")
    p.add_argument("--cpus", help="CPUs servos may use, e.g. 1.5 (default: detected)")
    p.add_argument("--join", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--cluster-key-file", type=Path)
    p.add_argument("--api-token", default=os.environ.get("SHOAL_API_TOKEN"))
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--drain", action="store_true", help="move servos off before leaving")


def _client_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--api", default=None, help="agent URL (default: $SHOAL_API or %(default)s)"
    )
    parent.add_argument("--token", default=None, help="API token (default: $SHOAL_API_TOKEN)")
    parent.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _agent_parser(sub)
    kg = sub.add_parser("keygen", help="print a new cluster key (base64)")
    kg.add_argument("--out", type=Path, help="also write it to this file (mode 0600)")
    client = _client_parent()
    sub.add_parser("members", parents=[client], help="list the cluster's members")
    dp = sub.add_parser("deploy", parents=[client], help="create or update a project")
    dp.add_argument("project")
    dp.add_argument("--image", required=True)
    dp.add_argument("--replicas", type=int, default=1)
    dp.add_argument("--memory", default="256M")
    dp.add_argument("--cpus", default="0.5")
    dp.add_argument("--port", type=int, action="append", default=[], dest="ports")
    dp.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    dp.add_argument("--spread", choices=["region", "zone", "host"], default="region")
    dp.add_argument("--idempotency-key", default=None)
    sub.add_parser("projects", parents=[client], help="list projects")
    for name, text in (
        ("status", "show a project and its servos"),
        ("stop", "stop a project's servos, keeping its spec"),
        ("start", "start a stopped project again"),
        ("destroy", "remove a project, its servos and volumes everywhere"),
    ):
        p = sub.add_parser(name, parents=[client], help=text)
        p.add_argument("project")
        if name == "destroy":
            p.add_argument("--keep-volumes", action="store_true")
    sc = sub.add_parser("scale", parents=[client], help="change a project's replica count")
    sc.add_argument("project")
    sc.add_argument("replicas", type=int)
    dr = sub.add_parser("drain", parents=[client], help="move every servo off an agent")
    dr.add_argument("node")
    sm = sub.add_parser("sim", help="run the region-outage simulator")
    sm.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _config_from_args(args: argparse.Namespace) -> AgentConfig:
    import socket

    return AgentConfig(
        name=args.name or socket.gethostname(),
        region=args.region,
        zone=args.zone,
        bind=args.bind,
        advertise=args.advertise,
        gossip_port=args.gossip_port,
        api_port=args.api_port,
        data_dir=args.data_dir,
        runtime=args.runtime,
        memory_mb=parse_memory_mb(args.memory) if args.memory else None,
        millicpus=parse_millicpus(args.cpus) if args.cpus else None,
        join=tuple(args.join),
        cluster_key_file=args.cluster_key_file,
        api_token=args.api_token,
        log_level=args.log_level,
        drain=args.drain,
    )


def keygen() -> str:
    """A fresh 256-bit AES-GCM cluster key, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "agent":
            from node.agent import main as agent_main

            return agent_main(_config_from_args(args))
        if args.command == "keygen":
            key = keygen()
            if args.out:
                fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(key + "\n")
            print(key)
            return 0
        if args.command == "sim":
            try:
                from sim.cli import main as sim_main  # type: ignore[import-not-found,unused-ignore]
            except ImportError:
                print("shoal: the simulator is not built yet", file=sys.stderr)
                return 2
            result: int = sim_main(args.args)
            return result
        from api.commands import run_client_command

        return run_client_command(args)
    except UnitError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())

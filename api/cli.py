"""The `shoal` command line: `shoal agent` runs a server's agent; the rest talk to any agent."""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from api.auth import TokenFileError, add_token_arguments, token_settings
from api.commands_keys import add_keys_command
from api.commands_stream import add_stream_commands
from node.config import (
    DEFAULT_API_PORT,
    DEFAULT_CLI_BIND,
    DEFAULT_GOSSIP_PORT,
    DEFAULT_INGRESS_DOMAIN,
    AgentConfig,
)
from node.units import UnitError, parse_memory_mb, parse_millicpus


def _agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run this server's agent")
    p.add_argument("--name", help="node name (default: hostname)")
    p.add_argument("--region", default="default")
    p.add_argument("--zone", default="", help="default: REGION-1")
    p.add_argument(
        "--bind",
        default=DEFAULT_CLI_BIND,
        help="address gossip listens on (default: %(default)s, every address)",
    )
    p.add_argument(
        "--advertise",
        default="",
        metavar="ADDR",
        help="address peers use to reach this agent (default: --bind; for 0.0.0.0 the address "
        "that routes to the first --join peer, else the primary interface's)",
    )
    p.add_argument(
        "--api-bind",
        default="",
        metavar="ADDR",
        help="address the HTTP API listens on (default: --bind, or 127.0.0.1 when --bind is "
        "0.0.0.0); peers' /internal/ calls are served on --advertise as well",
    )
    p.add_argument("--gossip-port", type=int, default=DEFAULT_GOSSIP_PORT)
    p.add_argument("--api-port", type=int, default=DEFAULT_API_PORT)
    p.add_argument("--data-dir", type=Path, default=Path("./shoal-data"))
    p.add_argument("--runtime", choices=["docker", "fake"], default="fake")
    p.add_argument("--memory", help="memory servos may use, e.g. 4G (default: detected)")
    p.add_argument("--cpus", help="CPUs servos may use, e.g. 1.5 (default: detected)")
    p.add_argument("--join", action="append", default=[], metavar="HOST:PORT")
    p.add_argument(
        "--cluster-key-file",
        type=Path,
        help="the cluster key ring (default: DATA_DIR/cluster.key, made on first start)",
    )
    p.add_argument(
        "--join-token",
        default=os.environ.get("SHOAL_JOIN_TOKEN", ""),
        metavar="TOKEN",
        help="join with a token from `shoal join-token` (seeds and cluster key; "
        "also $SHOAL_JOIN_TOKEN)",
    )
    add_token_arguments(p)  # --api-token, --api-token-file, --api-read-token(-file), hosts
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--drain", action="store_true", help="on stop, move servos off first (implies leaving)"
    )
    p.add_argument(
        "--leave-on-stop",
        action="store_true",
        help="on stop, leave the cluster (peers replace this agent's servos at once); "
        "by default a stop is a restart: peers wait --restart-grace first",
    )
    p.add_argument(
        "--restart-grace",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how long peers hold the servos of an agent that stopped gracefully "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--volume-retention",
        type=_seconds,
        default=7 * 24 * 3600.0,
        metavar="DURATION",
        help="how long a removed servo's volume is kept before it is pruned: seconds, or "
        "with a unit (30m, 12h, 7d; default: 7d)",
    )
    p.add_argument(
        "--ingress-port",
        type=int,
        default=None,
        metavar="PORT",
        help="run an HTTP ingress (Traefik) on --bind:PORT for every project of the cluster",
    )
    p.add_argument(
        "--ingress-domain",
        default=DEFAULT_INGRESS_DOMAIN,
        metavar="DOMAIN",
        help="the ingress routes Host: <project>.DOMAIN (default: %(default)s)",
    )


def _seconds(text: str) -> float:
    """A duration: plain seconds, or a number with s/m/h/d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    scale = units.get(raw[-1:])
    number = raw[:-1] if scale is not None else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90, 30m, 7d)") from None
    if not 0 <= value < 10 * 365 * 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return value


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
    ver = sub.add_parser("version", help="print the installed version and git commit")
    ver.add_argument("--json", action="store_true", help="print JSON for scripts")
    kg = sub.add_parser("keygen", help="print a new cluster key (base64)")
    kg.add_argument("--out", type=Path, help="also write it to this file (mode 0600)")
    client = _client_parent()
    sub.add_parser("members", parents=[client], help="list the cluster's members")
    jt = sub.add_parser(
        "join-token",
        parents=[client],
        help="print a short-lived token that lets a new host join (it carries the cluster key)",
    )
    jt.add_argument(
        "--ttl",
        type=_seconds,
        default=3600.0,
        metavar="DURATION",
        help="how long the token is valid (default: 1h)",
    )
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
    dp.add_argument(
        "--health",
        default=None,
        metavar="http:PORT/PATH|tcp:PORT",
        help="health check run by each servo's host (e.g. http:8080/healthz)",
    )
    dp.add_argument(
        "--cmd", nargs="+", default=None, dest="servo_command", help="the container's command"
    )
    dp.add_argument(
        "--detach", action="store_true", help="return at once instead of following the rollout"
    )
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
    hi = sub.add_parser("history", parents=[client], help="a project's last generations")
    hi.add_argument("project")
    rb = sub.add_parser(
        "rollback", parents=[client], help="roll a project back to an earlier generation"
    )
    rb.add_argument("project")
    rb.add_argument("--to", type=int, default=None, help="generation (default: the last good)")
    dr = sub.add_parser("drain", parents=[client], help="move every servo off an agent")
    dr.add_argument("node")
    ud = sub.add_parser("undrain", parents=[client], help="let a drained agent take servos again")
    ud.add_argument("node")
    lv = sub.add_parser(
        "leave", parents=[client], help="drain an agent, take it out of the cluster and stop it"
    )
    lv.add_argument("node")
    vo = sub.add_parser(
        "volumes",
        parents=[client],
        help="list the volumes kept after their servos were removed (or `volumes prune`)",
    )
    vo.add_argument("action", nargs="?", choices=["list", "prune"], default="list")
    vo.add_argument("--node", default=None, help="only this agent")
    vo.add_argument("--project", default=None, help="prune: only this project's volumes")
    vo.add_argument(
        "--older-than",
        type=_seconds,
        default=None,
        metavar="DURATION",
        help="prune: only volumes kept longer than this (e.g. 12h, 7d)",
    )
    add_stream_commands(sub, client)  # logs, events
    add_keys_command(sub, client)  # keys list|install|use|remove
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
        api_bind=args.api_bind,
        gossip_port=args.gossip_port,
        api_port=args.api_port,
        data_dir=args.data_dir,
        runtime=args.runtime,
        memory_mb=parse_memory_mb(args.memory) if args.memory else None,
        millicpus=parse_millicpus(args.cpus) if args.cpus else None,
        join=tuple(args.join),
        cluster_key_file=args.cluster_key_file,
        join_token=args.join_token,
        **token_settings(args),
        log_level=args.log_level,
        drain=args.drain,
        leave_on_stop=args.leave_on_stop,
        restart_grace_s=args.restart_grace,
        volume_retention_s=args.volume_retention,
        ingress_port=args.ingress_port,
        ingress_domain=args.ingress_domain,
    )


def keygen() -> str:
    """A fresh 256-bit AES-GCM cluster key, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "agent":
            from api.server import serve_api
            from node.agent import main as agent_main

            return agent_main(_config_from_args(args), serve_api)
        if args.command == "version":
            from api.version import version_info, version_line

            info = version_info()
            print(json.dumps(info) if args.json else version_line(info))
            return 0
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
        if args.command == "keys":
            from api.commands_keys import run_keys

            return run_keys(args)
        from api.commands import run_client_command

        return run_client_command(args)
    except (UnitError, TokenFileError) as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())

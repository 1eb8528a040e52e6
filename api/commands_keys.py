"""`shoal keys list|install|use|remove`: rotate the cluster key on every agent at once.

The procedure (Serf's): `shoal keys install NEW` (every agent accepts NEW), `shoal keys use NEW`
(every agent sends with NEW), `shoal keys remove OLD`. Each step prints one line per agent; the
command fails (status 1) when any agent did not take the step, and `use`/`remove` change nothing
when some agent is not ready for them (status 1, the reason per agent).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from api.client import ClientError, ShoalClient


def add_keys_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], client: argparse.ArgumentParser
) -> None:
    kp = sub.add_parser(
        "keys", parents=[client], help="list, install, use or remove cluster keys everywhere"
    )
    kp.add_argument("action", choices=["list", "install", "use", "remove"])
    kp.add_argument("key", nargs="?", default=None, help="the key in base64 (`shoal keygen`)")


def _rows(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, row in sorted(results.items()):
        if row.get("ok"):
            what = "changed" if row.get("changed", True) else "unchanged"
            persisted = row.get("persisted", True)
            note = "" if persisted is True or persisted is None else f" ({persisted})"
            lines.append(f"  {name}: ok, {what}{note}")
        else:
            lines.append(f"  {name}: FAILED: {row.get('error', 'unknown error')}")
    return lines


def run_keys(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.key:
        print(f"shoal: `shoal keys {args.action}` needs a KEY", file=sys.stderr)
        return 2
    try:
        with ShoalClient(args.api, args.token) as client:
            if args.action == "list":
                result = client.request("GET", "/v1/keys")
            else:
                result = client.request("POST", f"/v1/keys/{args.action}", json={"key": args.key})
    except ClientError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        if args.json and body:
            print(json.dumps(body, indent=2))
        else:
            print(f"shoal: {exc}", file=sys.stderr)
            for line in _rows(body.get("results", {})):
                print(line, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "list":
        print(f"{result['agents']} agents")
        for k in result["keys"]:
            print(f"  {k['key']}  on {k['agents']}  primary on {k['primary_on']}")
        for line in _rows({n: r for n, r in result["results"].items() if not r.get("ok", True)}):
            print(line)
    else:
        print(f"{args.action} {result['key']}:")
        for line in _rows(result["results"]):
            print(line)
    return 0 if result.get("ok") else 1

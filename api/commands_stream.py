"""`shoal logs` and `shoal events`: the two client commands that can follow a stream.

Lines are printed as they come, flushed, as plain text (a log line is never read as markup);
`--json` prints one JSON object per line. A followed stream that closes (the agent restarted,
a server or proxy timeout cut it) is reopened from the last line or event printed, so nothing
is repeated or missed; Ctrl-C ends a follow with status 0.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from api.client import ClientError, ShoalClient, StreamEnded

RECONNECT_S = 1.0
RECONNECT_TRIES = 30  # in a row with nothing received: the agent is gone for good


def add_stream_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], client: argparse.ArgumentParser
) -> None:
    lg = sub.add_parser(
        "logs", parents=[client], help="a project's log lines, from whichever hosts run it"
    )
    lg.add_argument("project")
    lg.add_argument("--servo", default=None, metavar="ID", help="only this servo")
    lg.add_argument("--tail", type=_tail, default=50, metavar="N", help="last N lines (50)")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing lines as they come")
    ev = sub.add_parser(
        "events", parents=[client], help="what happened: members, servos, projects, rollouts"
    )
    ev.add_argument("--since", type=int, default=None, metavar="ID", help="after this event id")
    ev.add_argument("--limit", type=int, default=50, metavar="N", help="at most N recent (50)")
    ev.add_argument(
        "-f", "--follow", action="store_true", help="keep printing events as they happen"
    )


def _tail(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("--tail is 1 to 10000 lines")
    return value


def _emit(args: argparse.Namespace, item: dict[str, Any], text: str) -> None:
    print(json.dumps(item) if args.json else text, flush=True)


def log_text(line: dict[str, Any]) -> str:
    gap = "[lines skipped] " if line.get("skipped") else ""
    return f"{line['servo']} | {gap}{line['line']}"


def event_text(event: dict[str, Any]) -> str:
    return f"{str(event.get('at', ''))[11:19]}  {event['kind']:<18} {event['text']}"


def follow_forever(
    open_stream: Callable[[], Iterator[dict[str, Any]]],
    show: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print what `open_stream` yields; reopen it when it ends (`open_stream` resumes from the
    last item shown), giving up after `RECONNECT_TRIES` opens in a row that fail."""
    failures = 0
    while True:
        try:
            for item in open_stream():
                failures = 0
                show(item)
        except StreamEnded:
            pass  # reopened at once: it was cut, not refused
        except ClientError as exc:
            if exc.status is not None or failures >= RECONNECT_TRIES:
                raise  # refused (4xx/5xx), or the agent is gone for good
            failures += 1
            sleep(RECONNECT_S)
        except KeyboardInterrupt:
            return 0


def run_logs(client: ShoalClient, args: argparse.Namespace) -> int:
    if not args.follow:
        result = client.logs(args.project, args.servo, args.tail)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        for servo in result["servos"]:
            print(f"==> {servo['servo']} on {servo['node']} ({servo['state']}) <==")
            if servo["logs"]:
                print(servo["logs"])
        return 0
    since: str | None = None

    def open_stream() -> Iterator[dict[str, Any]]:
        return client.follow_logs(args.project, args.servo, args.tail, since)

    def show(line: dict[str, Any]) -> None:
        nonlocal since
        since = max(since or "", str(line.get("at") or "")) or None
        _emit(args, line, log_text(line))

    return follow_forever(open_stream, show)


def run_events(client: ShoalClient, args: argparse.Namespace) -> int:
    if not args.follow:
        events = client.events(args.since, args.limit)
        if args.json:
            print(json.dumps(events, indent=2))
        for event in [] if args.json else events:
            print(event_text(event))
        return 0
    last: int | None = args.since
    if last is None:  # start from the recent ones, as without --follow
        recent = client.events(None, args.limit)
        for event in recent:
            _emit(args, event, event_text(event))
        last = recent[-1]["id"] if recent else 0

    def open_stream() -> Iterator[dict[str, Any]]:
        return client.follow_events(last)

    def show(event: dict[str, Any]) -> None:
        nonlocal last
        last = int(event["id"])
        _emit(args, event, event_text(event))

    return follow_forever(open_stream, show)


STREAM_COMMANDS: dict[str, Callable[[ShoalClient, argparse.Namespace], int]] = {
    "logs": run_logs,
    "events": run_events,
}

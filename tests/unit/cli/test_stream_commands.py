"""A followed stream that is cut is reopened from where it was; a refusal ends the command."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.cli import build_parser
from api.client import ClientError, StreamEnded
from api.commands_stream import RECONNECT_TRIES, event_text, follow_forever, log_text


def scripted(*runs: list[Any]) -> tuple[Any, list[int]]:
    """`open_stream` whose n-th opening yields run n's items; an exception item is raised."""
    opened: list[int] = []

    def open_stream() -> Iterator[dict[str, Any]]:
        opened.append(1)
        for item in runs[len(opened) - 1]:
            if isinstance(item, BaseException):
                raise item
            yield item

    return open_stream, opened


def test_a_cut_stream_is_reopened_and_ctrl_c_ends_with_zero() -> None:
    open_stream, opened = scripted(
        [{"n": 1}, {"n": 2}, StreamEnded("cut")], [{"n": 3}, KeyboardInterrupt()]
    )
    shown: list[int] = []
    assert follow_forever(open_stream, lambda item: shown.append(item["n"])) == 0
    assert (shown, len(opened)) == ([1, 2, 3], 2)


def test_an_agent_that_is_away_for_a_while_is_waited_for() -> None:
    away = ClientError("cannot connect")
    open_stream, opened = scripted([away], [away], [{"n": 1}, KeyboardInterrupt()])
    slept: list[float] = []
    shown: list[int] = []
    assert follow_forever(open_stream, lambda i: shown.append(i["n"]), slept.append) == 0
    assert (shown, len(slept), len(opened)) == ([1], 2, 3)


def test_a_refusal_or_an_agent_gone_for_good_ends_the_follow() -> None:
    open_stream, _ = scripted([ClientError("not_found: no project", 404)])
    with pytest.raises(ClientError, match="not_found"):
        follow_forever(open_stream, lambda i: None, lambda s: None)
    gone = [[ClientError("cannot connect")] for _ in range(RECONNECT_TRIES + 1)]
    open_stream, opened = scripted(*gone)
    with pytest.raises(ClientError, match="cannot connect"):
        follow_forever(open_stream, lambda i: None, lambda s: None)
    assert len(opened) == RECONNECT_TRIES + 1


def test_lines_as_printed() -> None:
    line = {"servo": "web-1-0-ab", "node": "a", "at": "t", "line": "[red]not markup"}
    assert log_text(line) == "web-1-0-ab | [red]not markup"
    assert log_text(line | {"skipped": True}) == "web-1-0-ab | [lines skipped] [red]not markup"
    event = {"at": "2026-11-25T21:48:50.123Z", "kind": "member.dead", "text": "b1 is dead"}
    assert event_text(event) == "21:48:50  member.dead        b1 is dead"


@pytest.mark.parametrize("tail", ["0", "10001", "ten"])
def test_tail_is_bounded(tail: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["logs", "web", "--tail", tail])
    assert exc.value.code == 2
    assert "--tail" in capsys.readouterr().err


def test_the_commands_parse() -> None:
    args = build_parser().parse_args(["logs", "web", "--servo", "s1", "-f", "--tail", "5"])
    assert (args.project, args.servo, args.follow, args.tail) == ("web", "s1", True, 5)
    args = build_parser().parse_args(["events", "--follow", "--since", "12"])
    assert (args.follow, args.since) == (True, 12)

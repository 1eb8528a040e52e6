"""The pure restart policy and state table of node/servo_lifecycle.py, table-driven."""

from __future__ import annotations

import pytest

from node.runtime import SERVO_STATES
from node.servo_lifecycle import (
    SERVO_EVENTS,
    TRANSITIONS,
    CrashHistory,
    IllegalTransition,
    RestartPolicy,
    backoff_s,
    exit_reason,
    on_exit,
    on_started,
    started_event,
    transition,
)

POLICY = RestartPolicy()


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        ("starting", "started", "running"),
        ("running", "exited", "restarting"),
        ("restarting", "started", "running"),
        ("restarting", "gave_up", "failed"),
        ("running", "gave_up", "failed"),
        ("running", "relaunch", "starting"),
        ("running", "stop", "stopped"),
        ("restarting", "stop", "stopped"),
        ("stopped", "start", "starting"),
        ("failed", "start", "starting"),
        ("failed", "stop", "failed"),
        # with a health check: launched -> starting, the first pass -> running
        ("starting", "launched", "starting"),
        ("restarting", "launched", "starting"),
        ("running", "launched", "starting"),
        ("starting", "healthy", "running"),
        ("starting", "exited", "restarting"),  # an `unhealthy` stop before it ever passed
    ],
)
def test_legal_transitions(state: str, event: str, after: str) -> None:
    assert transition(state, event) == after


@pytest.mark.parametrize(
    ("state", "event"),
    [
        ("failed", "exited"),  # a failed servo is not watched: its exits are nobody's news
        ("stopped", "exited"),  # a deliberate stop is not an exit
        ("failed", "started"),  # only an operator's start brings a failed servo back
        ("stopped", "gave_up"),
        ("restarting", "exited"),  # one exit is counted once
        ("running", "start"),
        ("running", "healthy"),  # only the first pass after a start is news
        ("restarting", "healthy"),  # a verdict on a container that is gone
        ("stopped", "launched"),
    ],
)
def test_illegal_transitions_raise(state: str, event: str) -> None:
    with pytest.raises(IllegalTransition):
        transition(state, event)


def test_the_table_covers_exactly_the_states_and_events() -> None:
    assert {s for s, _ in TRANSITIONS} == set(SERVO_STATES)
    assert {e for _, e in TRANSITIONS} == set(SERVO_EVENTS)
    assert set(TRANSITIONS.values()) <= set(SERVO_STATES)


def test_a_checked_servo_is_launched_not_started() -> None:
    assert (started_event(False), started_event(True)) == ("started", "launched")


@pytest.mark.parametrize(
    ("code", "oom", "reason"),
    [
        (137, True, "oom"),
        (1, True, "oom"),
        (137, False, "killed"),
        (3, False, "exited"),
        (0, False, "exited"),
    ],
)
def test_exit_reason(code: int, oom: bool, reason: str) -> None:
    assert exit_reason(code, oom) == reason


@pytest.mark.parametrize(
    ("step", "delay_s"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (9, 256.0), (10, 300.0), (1000, 300.0)],
)
def test_backoff_doubles_from_one_second_to_the_cap(step: int, delay_s: float) -> None:
    assert backoff_s(POLICY, step) == delay_s


def crash_loop(policy: RestartPolicy, gaps_s: list[float]) -> list[float | None]:
    """Exits `gap` seconds after each (re)start; the verdicts' delays, None = gave up."""
    history, now, delays = CrashHistory(), 0.0, []
    history = on_started(history, now)
    for gap in gaps_s:
        now += gap
        verdict = on_exit(policy, history, now)
        delays.append(verdict.restart_in_s)
        if verdict.give_up:
            break
        history = verdict.history
        now += verdict.restart_in_s or 0.0
        history = on_started(history, now)
    return delays


@pytest.mark.parametrize(
    ("gaps_s", "delays"),
    [
        # exits at once: 1, 2, 4, 8 s, and the fifth exit within 10 minutes gives up
        ([0, 0, 0, 0, 0, 0], [1.0, 2.0, 4.0, 8.0, None]),
        # runs 2 minutes each time: exits at 120, 241, 363, 487, 615 are five within 600 s
        ([120, 120, 120, 120, 120], [1.0, 2.0, 4.0, 8.0, None]),
        # runs 2.5 minutes: exits at 150, 301, 453, 607, 765, 931; the window never holds five
        ([150, 150, 150, 150, 150, 150], [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        # ten minutes of running resets the backoff (and the exits before it are forgotten)
        ([0, 0, 0, 600, 0], [1.0, 2.0, 4.0, 1.0, 2.0]),
        # just under ten minutes does not (the third delay is 4 s, not 1 s)
        ([0, 0, 599, 0], [1.0, 2.0, 4.0, 8.0]),
    ],
)
def test_crash_loops(gaps_s: list[float], delays: list[float | None]) -> None:
    assert crash_loop(POLICY, gaps_s) == delays


def test_backoff_reaches_the_cap_when_exits_are_spread_out() -> None:
    policy = RestartPolicy(max_exits=100)
    delays = crash_loop(policy, [0] * 12)
    assert delays[-3:] == [300.0, 300.0, 300.0]


def test_history_stays_bounded() -> None:
    history = CrashHistory()
    policy = RestartPolicy(max_exits=3, window_s=1e9)
    for i in range(2):
        history = on_exit(policy, history, float(i)).history
    assert len(history.exits_s) == 2
    assert on_exit(policy, history, 3.0).give_up


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(AssertionError):
        RestartPolicy(backoff_initial_s=10, backoff_max_s=1)

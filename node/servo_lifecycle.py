"""A servo's life on its host: the state table and the restart policy, with no I/O.

Everything that decides what happens to a servo when its container exits lives in this one
module, as h11's `_state.py` keeps its whole state machine in one file: the legal transitions are
one dict (an illegal one raises, it is our bug), and the policy is a few pure functions that are
handed the time (seconds on a monotonic clock) instead of reading it. `node/host.py` is the
I/O shell that feeds them what the engine reports and carries out what they answer.

The policy is Kubernetes' CrashLoopBackOff (kubelet `pod_workers`/`backOff`): an exited container
is restarted in place, with its volume, after a delay that starts at 1 s and doubles up to a
300 s cap; ten minutes of running resets the delay. Unlike the kubelet we give up: the fifth exit
within ten minutes makes the servo `failed`, so the project's owner replaces it on another host
rather than letting it loop here for ever. A restart the engine refuses is also final.

    starting ──started──▶ running ──exited──▶ restarting ──started──▶ running
        │                    │  ▲                 │
        └──────gave_up───────┴──┼──────gave_up────┴──▶ failed ──start──▶ starting
                                │
    any live state ──stop──▶ stopped ──start──▶ starting

A servo with a health check (node/health.py) is not `running` when its container starts but when
its check first passes: its container's start is `launched` (-> `starting`), the first passing
check is `healthy` (-> `running`), and a verdict of `unhealthy` is an `exited` like any other.

    starting/running/restarting ──launched──▶ starting ──healthy──▶ running
"""

from __future__ import annotations

import attrs

from node.runtime import EXIT_REASONS, SERVO_STATES


class IllegalTransition(Exception):
    """A transition the table does not allow: a bug in the caller, never an engine's doing."""


# What happened to a servo, as the host names it to the table.
SERVO_EVENTS = (
    "started",  # the engine reports its container running (created, restarted, or found so)
    "launched",  # ... the same, for a servo with a health check: it waits for its first pass
    "healthy",  # its health check passed for the first time since its container started
    "exited",  # its container stopped without being asked to; a restart is scheduled
    "relaunch",  # its container is gone (a reboot, someone removed it): re-create it in place
    "gave_up",  # too many exits, or the engine refuses to start it: the servo is failed
    "stop",  # an operator stop
    "start",  # an operator start (also of a failed servo: it is admitted again)
)

# (state, event) -> next state. Every legal transition is here; nothing else is legal.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("starting", "started"): "running",
    ("starting", "launched"): "starting",
    ("starting", "healthy"): "running",
    ("starting", "exited"): "restarting",
    ("starting", "relaunch"): "starting",
    ("starting", "gave_up"): "failed",
    ("starting", "stop"): "stopped",
    ("running", "started"): "running",
    ("running", "launched"): "starting",  # found running after a reboot: checked again first
    ("running", "exited"): "restarting",
    ("running", "relaunch"): "starting",
    ("running", "gave_up"): "failed",
    ("running", "stop"): "stopped",
    ("restarting", "started"): "running",
    ("restarting", "launched"): "starting",
    ("restarting", "relaunch"): "starting",
    ("restarting", "gave_up"): "failed",
    ("restarting", "stop"): "stopped",
    ("stopped", "start"): "starting",
    ("stopped", "stop"): "stopped",
    ("failed", "start"): "starting",
    ("failed", "stop"): "failed",  # a failed servo holds nothing; stopping it changes nothing
}

assert {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values()) == set(SERVO_STATES)
assert {e for _, e in TRANSITIONS} == set(SERVO_EVENTS)

# States that hold a reservation on the host (every state but `failed`).
HOLDING_STATES = frozenset(SERVO_STATES) - {"failed"}
# States whose container the host keeps running (restarting: it will be, after the backoff).
LIVE_STATES = frozenset({"starting", "running", "restarting"})


def started_event(checked: bool) -> str:
    """What its container's start is to a servo: `launched` if a health check must pass first."""
    return "launched" if checked else "started"


def transition(state: str, event: str) -> str:
    """The state after `event`; raises `IllegalTransition` if the table does not allow it."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"servo in state {state!r} cannot take event {event!r}") from None


OOM_EXIT_CODE = 137  # 128 + SIGKILL: the kernel's OOM killer and `docker kill` look alike


def exit_reason(exit_code: int, oom_killed: bool) -> str:
    """Why a container stopped: the engine's OOM flag first, then SIGKILL, then anything else.

    (`unhealthy` and `start_failed` are the host's own verdicts, never read off an exit code.)"""
    if oom_killed:
        return "oom"
    if exit_code == OOM_EXIT_CODE:
        return "killed"
    return "exited"


assert {"oom", "killed", "exited", "start_failed", "unhealthy"} == set(EXIT_REASONS)


@attrs.frozen
class RestartPolicy:
    """The numbers of the policy; HostService takes them so tests can shrink them."""

    backoff_initial_s: float = 1.0  # delay before the first restart after a clean run
    backoff_max_s: float = 300.0  # the doubling stops here (the kubelet's cap)
    reset_after_s: float = 600.0  # running this long forgives every earlier exit
    max_exits: int = 5  # this many exits within `window_s` make the servo failed
    window_s: float = 600.0

    def __attrs_post_init__(self) -> None:
        assert 0 < self.backoff_initial_s <= self.backoff_max_s
        assert self.max_exits >= 1 and self.window_s > 0 and self.reset_after_s > 0


@attrs.frozen
class CrashHistory:
    """What the policy remembers of one servo; held in memory, forgotten by a reboot."""

    exits_s: tuple[float, ...] = ()  # times of exits still inside the window, oldest first
    step: int = 0  # exits since the backoff was last reset; the next delay doubles with it
    running_since_s: float | None = None  # when its container last started, if it runs


@attrs.frozen
class ExitVerdict:
    history: CrashHistory
    restart_in_s: float | None  # None: give up, the servo is failed

    @property
    def give_up(self) -> bool:
        return self.restart_in_s is None


def backoff_s(policy: RestartPolicy, step: int) -> float:
    """Delay before the restart that follows the `step`-th consecutive exit (step >= 1)."""
    assert step >= 1
    # Bound the exponent so the power never overflows; the cap is reached long before.
    return min(policy.backoff_max_s, policy.backoff_initial_s * 2.0 ** min(step - 1, 60))


def on_started(history: CrashHistory, now_s: float) -> CrashHistory:
    """Its container is running (again) from `now_s`."""
    return attrs.evolve(history, running_since_s=now_s)


def on_exit(policy: RestartPolicy, history: CrashHistory, now_s: float) -> ExitVerdict:
    """An exit at `now_s`: restart after a backoff, or give up."""
    ran_s = now_s - history.running_since_s if history.running_since_s is not None else 0.0
    if ran_s >= policy.reset_after_s:
        history = CrashHistory()  # a long healthy run forgives the past (kubelet's reset)
    recent = (*(t for t in history.exits_s if now_s - t < policy.window_s), now_s)
    step = history.step + 1
    if len(recent) >= policy.max_exits:
        return ExitVerdict(CrashHistory(recent, step, None), None)
    # Never keep more than the policy can use: the window check needs max_exits - 1 of them.
    kept = recent[-(policy.max_exits - 1) :] if policy.max_exits > 1 else ()
    return ExitVerdict(CrashHistory(kept, step, None), backoff_s(policy, step))

"""No false death under real packet loss (issue 14, point 6, the half that can be a test).

Ten real agents (fake runtime) share one network namespace whose loopback drops 20 % of every
packet, UDP and TCP alike (iptables `statistic --mode random`; tests/integration/lossy_netns.py
says why not netem). Every agent's /v1/members is polled every 0.5 s for a quiet interval: no
agent may ever call a live member dead, and no agent's log may record such a death (a death
refuted between two polls). Then one agent is killed with SIGKILL and every
survivor must call it dead, still without calling anyone else dead. No timing is asserted (the
machine is shared); bench/gossip_loss.py measures the times, beside Serf.

The test's own API ports are exempt from the drop, so the poller sees what the agents believe,
not its own retransmits; the gossip ports (UDP and TCP) are not exempt.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RUN_ID, docker_required
from tests.integration.agents import Agent, Cluster, make_cluster, wait_until
from tests.integration.lossy_netns import (
    LossyNamespace,
    NamespaceError,
    inside,
    lossy_namespace,
    missing_tools,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]

AGENTS = 10
DROP = 0.20
QUIET_S = 30.0
POLL_EVERY_S = 0.5
DEAD_LINE = re.compile(r"member\.dead\b.*?member=(\S+).*")


@pytest.fixture
def lossy_ns() -> Iterator[LossyNamespace]:
    missing = missing_tools()
    if missing:
        msg = f"lossy netns test needs {', '.join(missing)}"
        if docker_required():
            pytest.fail(msg + " [SHOAL_REQUIRE_DOCKER=1]")
        pytest.skip(msg)
    try:
        with lossy_namespace(f"shoal-loss-{RUN_ID}") as ns:
            yield ns
    except NamespaceError as exc:  # pragma: no cover - depends on the machine
        pytest.fail(str(exc))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with contextlib.contextmanager(make_cluster)(tmp_path) as c:
        yield c


class Watch:
    """Every (observer, member) pair ever seen dead, and how many polls saw what."""

    def __init__(self, ns: LossyNamespace, agents: list[Agent]) -> None:
        self.ns, self.agents = ns, agents
        self.dead_seen: dict[tuple[str, str], float] = {}
        self.polls = 0
        self.suspect_views = 0
        self.unanswered = 0
        # one client, its keep-alive connections opened (and reopened) only inside the namespace
        # short: a hung agent must cost a poll, not stretch the quiet interval tenfold
        self.http = httpx.Client(timeout=5)

    def poll(self, t0: float) -> dict[str, dict[str, str]]:
        views: dict[str, dict[str, str]] = {}
        with inside(self.ns.name):
            for a in self.agents:
                if not a.running():
                    continue
                try:
                    r = self.http.get(a.api + "/v1/members")
                    r.raise_for_status()
                    views[a.name] = {m["name"]: m["status"] for m in r.json()}
                except httpx.HTTPError:
                    self.unanswered += 1  # a busy machine: counted, the next poll asks again
        for observer, view in views.items():
            for member, status in view.items():
                if status == "dead":
                    self.dead_seen.setdefault((observer, member), time.monotonic() - t0)
                self.suspect_views += status == "suspect"
        self.polls += 1
        return views

    def close(self) -> None:
        self.http.close()

    def false_deaths(self, killed: set[str]) -> dict[tuple[str, str], float]:
        return {k: t for k, t in self.dead_seen.items() if k[1] not in killed}


def dead_log_lines(agents: list[Agent]) -> str:
    return "\n".join(
        f"{a.name}: {m.group(0)}" for a in agents for m in DEAD_LINE.finditer(a.log_text())
    )


def logged_dead(agents: list[Agent]) -> list[tuple[str, str]]:
    """(observer, member) for every death in the agents' logs: a complete record, where the
    polls could miss a death refuted between two of them."""
    return [(a.name, m.group(1)) for a in agents for m in DEAD_LINE.finditer(a.log_text())]


def test_ten_agents_at_20_percent_loss_no_false_death_and_kill9_detected(
    lossy_ns: LossyNamespace, cluster: Cluster, request: pytest.FixtureRequest
) -> None:
    prefix = lossy_ns.exec_prefix()
    quiet = ["--log-level", "info"]  # member.dead is logged at info: evidence on failure
    first = cluster.add("l0", prefix=prefix, extra=quiet)
    for i in range(1, AGENTS):
        cluster.add(f"l{i}", join=[first], prefix=prefix, extra=quiet)
    agents = cluster.agents
    lossy_ns.exempt([a.api_port for a in agents])
    with inside(lossy_ns.name):
        cluster.wait_healthy(timeout_s=60)
        cluster.wait_all_alive(timeout_s=60)

    lossy_ns.set_drop(DROP)
    watch = Watch(lossy_ns, agents)
    request.addfinalizer(watch.close)
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < QUIET_S:  # on a grid: a slow poll does not shift the next
        watch.poll(t0)
        k = max(k + 1, int((time.monotonic() - t0) / POLL_EVERY_S) + 1)  # no burst to catch up
        time.sleep(max(0.0, t0 + k * POLL_EVERY_S - time.monotonic()))
    assert not watch.false_deaths(set()), (
        f"live members called dead at {DROP:.0%} loss: {watch.false_deaths(set())}\n"
        + dead_log_lines(agents)
    )
    assert not logged_dead(agents), "a death between polls:\n" + dead_log_lines(agents)
    dropped = lossy_ns.dropped_packets()
    assert dropped > 100, f"the drop rule took only {dropped} packets: no real loss"
    polls_due = int(QUIET_S / POLL_EVERY_S)
    assert watch.polls >= polls_due // 3, f"{watch.polls} polls of {polls_due}: machine too busy"
    assert watch.unanswered <= watch.polls * AGENTS // 10, f"{watch.unanswered} polls unanswered"

    victim = agents[AGENTS // 2]
    survivors = [a for a in agents if a is not victim]
    victim.kill9()

    def every_survivor_sees_it_dead() -> bool:
        views = watch.poll(t0)
        return len(views) == len(survivors) and all(
            v.get(victim.name) == "dead" for v in views.values()
        )

    wait_until(f"every survivor to call {victim.name} dead", every_survivor_sees_it_dead, 90, 0.5)
    assert not watch.false_deaths({victim.name}), (
        f"live members called dead: {watch.false_deaths({victim.name})}\n" + dead_log_lines(agents)
    )
    # the log check above means something only if a death does reach the logs
    wait_until(
        "every survivor to log the victim's death",
        lambda: (
            {o for o, m in logged_dead(survivors) if m == victim.name}
            == {a.name for a in survivors}
        ),
        10,
    )
    assert {m for _, m in logged_dead(agents)} == {victim.name}, dead_log_lines(agents)
    assert all(a.running() for a in survivors), "a survivor exited:\n" + cluster.logs()

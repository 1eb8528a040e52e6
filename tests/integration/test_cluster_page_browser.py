"""The cluster page in a real headless browser (Debian's `chromium`, driven by Playwright):
three real agents behind an API token; the page asks for the token once, shows every agent and
every servo, a rolling update's progress and end; after a kill -9 of one agent it shows that
agent dead and the replacement servo, with no reload (the event stream drives it).

Needs `chromium` (apt) and `playwright` (pip, the test extra): `make test` installs both. When
either is missing the test is skipped saying which, or fails with SHOAL_REQUIRE_DOCKER=1 (CI).
With SHOAL_SCREENSHOT=path it also saves the page, as docs/cluster-map.png was made.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import docker_required
from tests.integration.agents import Agent, Cluster, make_cluster, wait_until

pytestmark = pytest.mark.slow

TOKEN = "page-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DETECT_AND_RECOVER_S = 90  # death is seen in ~5-10 s and recovered shortly after: be generous


def chromium_path() -> str:
    """Debian's chromium, or a skip (a failure in CI) naming exactly what is missing."""
    problems = []
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        problems.append("Debian's `chromium` is not installed (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("Python's `playwright` is not installed (pip install -e '.[test]')")
    if problems:
        msg = "; ".join(problems) + "; `make test` installs both"
        if docker_required():
            pytest.fail(msg + " [SHOAL_REQUIRE_DOCKER=1]")
        pytest.skip(msg)
    assert path is not None
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(tmp_path)


def get(agent: Agent, path: str) -> Any:
    return agent.get(path, headers=AUTH)


def put(agent: Agent, path: str, body: dict[str, Any]) -> Any:
    resp = httpx.put(agent.api + path, json=body, headers=AUTH, timeout=30)
    resp.raise_for_status()
    return resp.json()


def running_servos(agent: Agent, project: str) -> dict[str, str]:
    """servo id -> node, of the project's running servos on alive nodes, as `agent` sees it."""
    body = get(agent, f"/v1/projects/{project}")
    return {
        s["id"]: s["node"]
        for s in body["servos"]
        if s["state"] == "running" and s["node_status"] == "alive"
    }


def start_cluster(cluster: Cluster) -> list[Agent]:
    extra = ["--api-token", TOKEN]
    a0 = cluster.add("a0", region="eu", extra=extra)
    a1 = cluster.add("a1", region="us", join=[a0], extra=extra)
    a2 = cluster.add("a2", region="ap", join=[a0], extra=extra)
    agents = [a0, a1, a2]
    cluster.wait_healthy(agents)
    names = {a.name for a in agents}
    wait_until(
        "every agent to see every other alive",
        lambda: all(
            names <= {m["name"] for m in get(a, "/v1/members") if m["status"] == "alive"}
            for a in agents
        ),
        30,
    )
    return agents


def deploy(through: Agent, seen_by: Agent, name: str, replicas: int, memory: str = "256M") -> None:
    spec = {"image": "shoal-servo:latest", "replicas": replicas, "memory": memory, "cpus": 0.5}
    put(through, f"/v1/projects/{name}", spec | {"spread": "region", "max_per_host": 2})
    wait_until(
        f"{name}'s {replicas} servos running, as {seen_by.name} sees it",
        lambda: len(running_servos(seen_by, name)) == replicas,
        30,
    )


def test_the_page_shows_every_agent_and_servo_and_follows_a_kill_without_reload(
    cluster: Cluster,
) -> None:
    chromium = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    a0, a1, a2 = start_cluster(cluster)
    deploy(a1, a0, "web", 3)
    deploy(a2, a0, "api", 2, memory="512M")
    deploy(a0, a0, "worker", 1, memory="1G")
    first = running_servos(a0, "web")
    assert sorted(first.values()) == sorted(a.name for a in (a0, a1, a2))
    on_a2 = next(sid for sid, node in first.items() if node == a2.name)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(a0.api + "/")

            # behind the token: the page asks once, then keeps it for the tab
            token_form = page.locator("#token-form")
            expect(token_form).to_be_visible(timeout=15_000)
            page.fill("#token-input", TOKEN)
            page.click("#token-form button")
            expect(token_form).to_be_hidden(timeout=15_000)
            expect(page.locator("#live")).to_have_text("live", timeout=15_000)

            for agent in (a0, a1, a2):
                host = page.locator(f'.host[data-node="{agent.name}"]')
                expect(host).to_have_attribute("data-status", "alive", timeout=15_000)
            for sid, node in first.items():
                chip = page.locator(f'.host[data-node="{node}"] .servo[data-servo="{sid}"]')
                expect(chip).to_have_attribute("data-state", "running", timeout=15_000)
            expect(page.locator('#projects tr[data-project="web"]')).to_contain_text("3/3")

            # a reload would lose this mark: it must still be there at the end
            page.evaluate("window.__sameDocument = 'yes'")

            # a rolling update of api: its progress, then how it ended, as it happens
            update = {"healthy_for_s": 2}
            spec = {"image": "shoal-servo:latest", "replicas": 2, "memory": "512M", "cpus": 0.5}
            spec |= {"spread": "region", "max_per_host": 2, "env": {"V": "2"}, "update": update}
            put(a1, "/v1/projects/api", spec)
            api_row = page.locator('#projects tr[data-project="api"]')
            expect(api_row.locator('[data-rollout="in_progress"]')).to_contain_text(
                "gen 2", timeout=30_000
            )
            expect(api_row.locator('[data-rollout="succeeded"]')).to_contain_text(
                "gen 2", timeout=60_000
            )
            expect(page.locator('#feed [data-kind="rollout.succeeded"]')).to_contain_text("api")
            a2.kill9()

            dead = page.locator(f'.host[data-node="{a2.name}"]')
            expect(dead).to_have_attribute(
                "data-status", "dead", timeout=DETECT_AND_RECOVER_S * 1000
            )
            expect(page.locator('#feed [data-kind="member.dead"]').first).to_contain_text(a2.name)

            # the replacement: a new servo of web on a survivor, drawn in that host's card
            wait_until(
                "the replacement servo on the page",
                lambda: len(replacements(page, set(first))) == 1,
                DETECT_AND_RECOVER_S,
                every_s=0.5,
            )
            replacement = replacements(page, set(first))[0]
            assert replacement["node"] in (a0.name, a1.name)
            # the API agrees with what the page drew
            assert replacement["servo"] in running_servos(a0, "web")
            assert on_a2 not in running_servos(a0, "web")
            moved = page.locator("#feed [data-kind='servo.moved']").filter(has_text="web")
            expect(moved).to_have_count(1)
            expect(page.locator('#projects tr[data-project="web"]')).to_contain_text("3/3")
            assert page.evaluate("window.__sameDocument") == "yes", "the page was reloaded"

            # a project's panel: its servos and their recent log lines
            page.click('#projects a:text("web")')
            panel = page.locator("#project-panel")
            expect(panel).to_be_visible()
            rows = panel.locator("#panel-servos tbody tr")
            expect(rows.filter(has_text=replacement["servo"])).to_have_count(1)
            assert rows.count() >= 3
            expect(panel.locator(".log").first).to_be_visible()

            if os.environ.get("SHOAL_SCREENSHOT"):
                page.screenshot(path=os.environ["SHOAL_SCREENSHOT"], full_page=True)
            assert errors == [], errors
        finally:
            browser.close()


def replacements(page: Any, before: set[str]) -> list[dict[str, str]]:
    """Running servos of web the page draws on a host card that were not there at first."""
    found: list[dict[str, str]] = page.evaluate(
        """() => [...document.querySelectorAll('.host .servo[data-project="web"]')]
              .filter((c) => c.dataset.state === 'running')
              .map((c) => ({servo: c.dataset.servo, node: c.closest('.host').dataset.node,
                            status: c.closest('.host').dataset.status}))"""
    )
    return [f for f in found if f["servo"] not in before and f["status"] == "alive"]

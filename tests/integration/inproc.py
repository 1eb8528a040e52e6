"""Real agents inside the test's own Trio run: the whole `run_agent` (gossip on loopback UDP and
TCP, the HTTP API, the loops) with the fake runtime, so a test can reach into an agent's parts,
patch the engine for all of them at once, and stop one gracefully or abruptly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
import trio

from api.cli import keygen
from api.server import serve_api
from node.agent import run_agent, stop_gracefully
from node.config import AgentConfig
from node.context import AgentContext
from tests.conftest import RUN_ID, free_port


@attrs.define
class Running:
    config: AgentConfig
    ctx: AgentContext
    scope: trio.CancelScope


@attrs.define
class InProcCluster:
    nursery: trio.Nursery
    base: Path
    key_file: Path
    agents: dict[str, Running] = attrs.field(factory=dict)

    async def add(
        self,
        short: str,
        region: str = "eu",
        join: Sequence[str] = (),
        **extra: object,
    ) -> AgentContext:
        name = f"{RUN_ID}-{short}"
        seeds = tuple(f"127.0.0.1:{self.agents[f'{RUN_ID}-{j}'].config.gossip_port}" for j in join)
        config = AgentConfig(
            name=name,
            region=region,
            gossip_port=free_port(),
            api_port=free_port(),
            data_dir=self.base / short,
            runtime="fake",
            memory_mb=4096,
            millicpus=4000,
            join=seeds,
            cluster_key_file=self.key_file,
            **extra,  # type: ignore[arg-type]
        )
        return await self.start(config)

    async def start(self, config: AgentConfig) -> AgentContext:
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[AgentContext]) -> None:
            with scope:
                await run_agent(config, serve_api, task_status=task_status)

        ctx: AgentContext = await self.nursery.start(run)
        self.agents[config.name] = Running(config, ctx, scope)
        return ctx

    def ctx(self, short: str) -> AgentContext:
        return self.agents[f"{RUN_ID}-{short}"].ctx

    async def stop(self, short: str, graceful: bool = True) -> AgentConfig:
        """Stop an agent: gracefully (announce a restart, as SIGTERM does) or abruptly (as a
        crash: no last words). Returns its config, to start it again."""
        running = self.agents.pop(f"{RUN_ID}-{short}")
        if graceful:
            await stop_gracefully(running.ctx)
        running.scope.cancel()
        await trio.sleep(0.1)
        return running.config

    def contexts(self) -> list[AgentContext]:
        return [r.ctx for r in self.agents.values()]


async def wait_for(what: str, check: Callable[[], object], timeout_s: float = 30) -> None:
    """Poll `check` (state spread over several agents' loops: no one event to wait on)."""
    deadline = trio.current_time() + timeout_s
    while not check():
        if trio.current_time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await trio.sleep(0.1)


async def all_see_alive(cluster: InProcCluster, n: int, timeout_s: float = 30) -> None:
    """Wait until every agent of `cluster` sees `n` members alive (itself included)."""
    await wait_for(
        f"every agent to see {n} alive",
        lambda: all(sum(p.status == "alive" for p in c.peers()) == n for c in cluster.contexts()),
        timeout_s,
    )


def make_key(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    key = base / "cluster.key"
    key.write_text(keygen() + "\n")
    return key

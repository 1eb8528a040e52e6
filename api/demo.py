"""`make run`: a local three-agent cluster in two regions with a demo project deployed.

Agents are real `shoal agent` processes on loopback; the Docker runtime is used when the engine
answers and the servo image is built, otherwise the fake runtime (and it says so). The demo
project is deployed through the second agent, to show that any agent takes the request. Ctrl-C
destroys the demo project and stops the agents.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from api.cli import keygen
from api.client import ClientError, ShoalClient
from api.render import members_table, servos_table

AGENTS = (
    ("demo-1", "eu", 17071, 17946),
    ("demo-2", "eu", 17072, 17947),
    ("demo-3", "us", 17073, 17948),
)
IMAGE = "shoal-servo:latest"
INGRESS_PORT = 17080  # the first agent runs the ingress: http://hello.shoal.localhost:17080/


def docker_ready() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.images.get(IMAGE)
        client.close()
        return True
    except Exception:
        return False


def start_agents(base: Path, runtime: str, log: Any) -> list[subprocess.Popen[bytes]]:
    key = base / "cluster.key"
    key.write_text(keygen() + "\n")
    key.chmod(0o600)
    procs = []
    seed = f"127.0.0.1:{AGENTS[0][3]}"
    for name, region, api_port, gossip_port in AGENTS:
        cmd = [
            sys.executable,
            "-m",
            "api.cli",
            "agent",
            "--name",
            name,
            "--region",
            region,
            "--api-port",
            str(api_port),
            "--gossip-port",
            str(gossip_port),
            "--data-dir",
            str(base / name),
            "--runtime",
            runtime,
            "--bind",  # a local demo: gossip on loopback too (the agent's default is 0.0.0.0)
            "127.0.0.1",
            "--cluster-key-file",
            str(key),
            "--memory",
            "2G",
            "--cpus",
            "2",
        ]
        if name != AGENTS[0][0]:
            cmd += ["--join", seed]
        else:
            cmd += ["--ingress-port", str(INGRESS_PORT)]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))
    return procs


def _members_once_gossiped(client: ShoalClient, project: dict[str, Any]) -> list[dict[str, Any]]:
    """The member list once every host's gossip metadata counts the servos just created (a
    second or so), so the table agrees with the placements printed under it."""
    placed = len(project.get("servos", []))
    deadline = time.monotonic() + 5.0
    while True:
        members: list[dict[str, Any]] = list(client.members())
        if sum(int(m.get("servos") or 0) for m in members) >= placed:
            return members
        if time.monotonic() > deadline:
            return members  # print what gossip says now rather than hang the demo
        time.sleep(0.2)


def _ingress_serves(project: str, timeout_s: float = 10.0) -> bool:
    """Whether demo-1's ingress answers for the project (its proxy pulls routes every second)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = httpx.get(
                f"http://127.0.0.1:{INGRESS_PORT}/",
                headers={"Host": f"{project}.shoal.localhost"},
                timeout=2,
            )
            if r.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def wait_for_cluster(
    console: Console, procs: list[subprocess.Popen[bytes]], timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    with console.status("waiting for three agents to join...") as status:
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"an agent exited early (status {p.returncode}); see the log")
            try:
                with ShoalClient(f"http://127.0.0.1:{AGENTS[0][2]}", timeout_s=2) as c:
                    members = c.members()
                alive = [m for m in members if m["status"] == "alive"]
                status.update(f"waiting for three agents to join... {len(alive)}/3 alive")
                if len(alive) == len(AGENTS):
                    return
            except ClientError:
                pass
            time.sleep(0.3)
    raise SystemExit("the agents did not form a cluster in time; see the log")


def main() -> int:
    console = Console()
    base = Path(tempfile.mkdtemp(prefix="shoal-demo-"))
    runtime = "docker" if docker_ready() else "fake"
    if runtime == "docker":
        console.print(
            f"[green]Docker Engine answers: servos run as real containers of {IMAGE}[/green]"
        )
    else:
        console.print(
            "[yellow]No Docker Engine or image: using the fake runtime "
            "(servos are records only)[/yellow]"
        )
    log_path = base / "agents.log"
    console.print(f"agent logs: {log_path}")
    with open(log_path, "ab") as log:
        procs = start_agents(base, runtime, log)
        try:
            wait_for_cluster(console, procs)
            api2 = f"http://127.0.0.1:{AGENTS[1][2]}"
            with ShoalClient(api2) as client:
                with console.status("deploying project 'hello' (3 replicas) through demo-2..."):
                    project = client.deploy(
                        "hello",
                        {
                            "image": IMAGE,
                            "replicas": 3,
                            "memory": "64M",
                            "cpus": 0.1,
                            "ports": [8080],
                            "env": {"GREETING": "hi"},
                            "spread": "region",
                        },
                    )
                console.print(members_table(_members_once_gossiped(client, project)))
            console.print(servos_table(project))
            console.print("\nTry:")
            for _, _, api_port, _ in AGENTS:
                console.print(f"  curl -s http://127.0.0.1:{api_port}/v1/members")
            console.print(f"  curl -s http://127.0.0.1:{AGENTS[0][2]}/v1/projects/hello")
            for s in project["servos"]:
                for e in s.get("endpoints", []):
                    if runtime == "docker":
                        console.print(f"  curl -s http://{e['host']}:{e['host_port']}/")
            if runtime == "docker" and _ingress_serves("hello"):
                # through demo-1's ingress, to whichever servo is healthy
                console.print(
                    f"  curl -s -H 'Host: hello.shoal.localhost' http://127.0.0.1:{INGRESS_PORT}/"
                )
            console.print(f"  SHOAL_API={api2} .venv/bin/shoal projects")
            console.print("\n[bold]Running. Ctrl-C stops the cluster.[/bold]")
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
            console.print("[red]an agent exited; stopping[/red]")
        except KeyboardInterrupt:
            console.print("\nstopping...")
        finally:
            _shutdown(console, procs)
    return 0


def _shutdown(console: Console, procs: list[subprocess.Popen[bytes]]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ShoalClient(f"http://127.0.0.1:{AGENTS[0][2]}", timeout_s=60) as c:
            c.destroy("hello")
            console.print("demo project destroyed")
    except ClientError as exc:
        console.print(f"could not destroy the demo project: {exc}")
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    console.print("stopped cleanly")


if __name__ == "__main__":
    sys.exit(main())

"""`shoal agent` starts, logs its identity and capacity, serves health, and stops on SIGINT."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port


def test_agent_starts_logs_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "agent",
            "--name",
            "t-agent",
            "--region",
            "eu",
            "--api-port",
            str(port),
            "--gossip-port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "d"),
            "--memory",
            "2G",
            "--cpus",
            "1.5",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "agent never answered"
                time.sleep(0.1)
        assert r.json()["name"] == "t-agent"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    started = next(line for line in err.splitlines() if "agent.started" in line)
    assert " t-agent agent.started " in started
    assert "memory_mb=2048" in started and "millicpus=1500" in started and "region=eu" in started
    assert "agent.stopped" in err
    assert "Traceback" not in err

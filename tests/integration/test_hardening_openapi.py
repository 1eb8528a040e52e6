"""Issue 13, point 8: the OpenAPI document tells the truth. schemathesis (every check, the
coverage, fuzzing and stateful phases) runs against a live agent (fake runtime, the real
server, behind a token) and must find nothing.

Two settings, each with its reason:
- `PUT /v1/projects/{name}` may answer 422 to a body the schema allows: a spec has rules across
  fields that JSON Schema cannot state (a health check's port must be one of `ports`, its
  `timeout_s` at most its `interval_s`, a secret may not share a name with an env variable);
  the operation's description says so. Everything else about it is checked as for the rest.
- Endless event streams (`.../stream`, Server-Sent Events) are left out: a fuzzer reads a
  response to its end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from tests.integration.inproc import InProcCluster, make_key

TOKEN = "openapi-token"
CONFIG = """
[[operations]]
include-path = "/v1/projects/{name}"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["2XX", "401", "403", "404", "409", "422"]
"""
RUN_LIMIT_S = 150  # a wedged run fails the test rather than hanging the suite


async def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    st = Path(sys.executable).parent / "st"
    assert st.exists(), "schemathesis is a test dependency: pip install -e '.[test]'"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    async with trio.open_nursery() as nursery:
        cluster = InProcCluster(nursery, tmp_path, make_key(tmp_path))
        ctx = await cluster.add("st", api_token=TOKEN)
        with trio.fail_after(RUN_LIMIT_S):
            result = await trio.run_process(
                [
                    str(st),
                    "--config-file",
                    str(config),
                    "run",
                    f"{ctx.api_url}/openapi.json",
                    "--checks",
                    "all",
                    "--phases",
                    "coverage,fuzzing,stateful",
                    "--max-examples",
                    "5",
                    "--seed",
                    "13",
                    "--header",
                    f"Authorization: Bearer {TOKEN}",
                    "--exclude-path-regex",
                    "/stream$",
                    "--no-color",
                ],
                capture_stdout=True,
                check=False,
                cwd=tmp_path,
            )
        nursery.cancel_scope.cancel()
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out[-6000:]

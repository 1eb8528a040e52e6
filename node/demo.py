"""`make run`: start a local Shoal agent and keep it running until Ctrl-C."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from node.agent import main as agent_main
from node.config import AgentConfig


def main() -> int:
    data = Path(tempfile.mkdtemp(prefix="shoal-demo-"))
    return agent_main(AgentConfig(name="demo-1", region="eu", data_dir=data, api_port=7070))


if __name__ == "__main__":
    sys.exit(main())

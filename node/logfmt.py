"""The agent's one log format: readable by eye, parseable by `key=value` tools.

    2026-11-25T02:50:33.123Z INFO  node-a  agent.started region=eu zone=eu-1 memory_mb=2048

Every line carries a UTC timestamp, the level, the node name, an event name (dotted, stable, meant
to be grepped) and key=value fields. Values with spaces or quotes are quoted so a line always
splits back into the same fields.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from gossip.eventlog import FIELDS_ATTR, EventLogger, get_logger

__all__ = ["EventLogger", "LogfmtFormatter", "configure_logging", "get_logger"]

_NODE = {"name": "-"}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' \t\n"='):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    """Renders records as `ts LEVEL node event k=v ...`; the message is the event name."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        ms = int(record.msecs)
        fields: dict[str, Any] = getattr(record, FIELDS_ATTR, {})
        parts = [
            f"{ts}.{ms:03d}Z",
            f"{record.levelname:<5}",
            _NODE["name"],
            record.getMessage(),
        ]
        parts.extend(f"{k}={_quote(v)}" for k, v in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(node_name: str, level: str = "info", stream: TextIO | None = None) -> None:
    """Install the format on the root logger; `level` is a name (debug, info, warning, error)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    _NODE["name"] = node_name
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in ("hypercorn.access", "httpx", "httpcore", "urllib3", "docker"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))

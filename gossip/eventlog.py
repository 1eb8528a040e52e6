"""Event logging for every package that logs: `log.info("event.name", key=value, ...)`.

It lives at the bottom of the layers that log (gossip, then node and api above it) so that the
gossip shell can log without importing the agent; `node.logfmt` renders these records in the
agent's one line format and re-exports `get_logger`.
"""

from __future__ import annotations

import logging
from typing import Any

FIELDS_ATTR = "shoal_fields"  # the record attribute that holds an event's key=value fields


class EventLogger:
    """A logger whose calls are `log.info("event.name", key=value, ...)`."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, fields: dict[str, Any], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={FIELDS_ATTR: fields}, exc_info=exc)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields, exc=True)


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))

import io
import logging
import re

from node.logfmt import configure_logging, get_logger

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+)\s+(\S+) (\S+)(.*)$")


def test_line_has_timestamp_level_node_event_and_fields() -> None:
    out = io.StringIO()
    configure_logging("node-a", "info", out)
    get_logger("t").info("agent.started", region="eu", note="two words", n=3)
    get_logger("t").debug("hidden.event")
    m = LINE.match(out.getvalue().strip())
    assert m, out.getvalue()
    level, node, event, rest = m.groups()
    assert (level, node, event) == ("INFO", "node-a", "agent.started")
    assert rest.strip() == 'region=eu note="two words" n=3'
    assert "hidden.event" not in out.getvalue()


def test_level_is_configurable() -> None:
    out = io.StringIO()
    configure_logging("n", "debug", out)
    get_logger("t").debug("seen.event")
    assert "DEBUG n seen.event" in out.getvalue()
    configure_logging("n", "warning", out)
    assert logging.getLogger().level == logging.WARNING


def test_unknown_level_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("n", "loud")

"""Parsing of the human units users type: memory sizes ("256M", "1G", 512) and CPU counts (0.5).

Internally memory is whole MiB and CPU whole millicpus, so sums and comparisons are exact.
"""

from __future__ import annotations

import re

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_MB_PER_UNIT = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


class UnitError(ValueError):
    """A value a user typed that is not a size or CPU count we understand."""


def parse_memory_mb(value: str | int | float) -> int:
    """`256M`, `1G`, `1.5g`, `512` (MiB) -> whole MiB (at least 1)."""
    if isinstance(value, bool):
        raise UnitError(f"memory must be a size like 256M or 1G, not {value!r}")
    if isinstance(value, int | float):
        mb = float(value)
    else:
        m = _MEMORY_RE.match(value)
        if not m:
            raise UnitError(f"memory must be a size like 256M or 1G, not {value!r}")
        mb = float(m.group(1)) * _MB_PER_UNIT[m.group(2).lower()]
    if mb < 1 or mb != mb:
        raise UnitError(f"memory must be at least 1M, not {value!r}")
    return int(mb)


def parse_millicpus(value: str | int | float) -> int:
    """`0.5`, `2`, `"1.25"`, `"500m"` -> millicpus (at least 1)."""
    if isinstance(value, bool):
        raise UnitError(f"cpus must be a number like 0.5, not {value!r}")
    try:
        if isinstance(value, str) and value.strip().endswith("m"):
            milli = float(value.strip()[:-1])
        else:
            milli = float(value) * 1000
    except ValueError:
        raise UnitError(f"cpus must be a number like 0.5, not {value!r}") from None
    if not milli >= 1:
        raise UnitError(f"cpus must be at least 0.001, not {value!r}")
    return round(milli)

"""Parsing of the human units users type: memory sizes ("256M", "1G", 512) and CPU counts (0.5).

Internally memory is whole MiB and CPU whole millicpus, so sums and comparisons are exact.
"""

from __future__ import annotations

import math
import re

from node.spec_rules import MAX_MEMORY_MB, MAX_MILLICPUS

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_MB_PER_UNIT = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


class UnitError(ValueError):
    """A value a user typed that is not a size or CPU count we understand."""


def parse_memory_mb(value: str | int | float) -> int:
    """`256M`, `1G`, `1.5g`, `512` (MiB) -> whole MiB (at least 1, at most `MAX_MEMORY_MB`:
    a 400-digit size once overflowed into a 500)."""
    if isinstance(value, bool):
        raise UnitError(f"memory must be a size like 256M or 1G, not {value!r}")
    if isinstance(value, int):
        mb = float(min(value, MAX_MEMORY_MB + 1))  # a huge int would overflow float()
    elif isinstance(value, float):
        mb = value
    else:
        m = _MEMORY_RE.match(value) if len(value) <= 64 else None
        if not m:
            raise UnitError(f"memory must be a size like 256M or 1G, not {value!r}")
        mb = float(m.group(1)) * _MB_PER_UNIT[m.group(2).lower()]
    if not math.isfinite(mb) or mb < 1:
        raise UnitError(f"memory must be at least 1M, not {value!r}")
    if mb > MAX_MEMORY_MB:
        raise UnitError(f"memory must be at most {MAX_MEMORY_MB // (1024 * 1024)}T")
    return int(mb)


def parse_millicpus(value: str | int | float) -> int:
    """`0.5`, `2`, `"1.25"`, `"500m"` -> millicpus (at least 1, at most `MAX_MILLICPUS`;
    "inf" and "nan" are not CPU counts)."""
    if isinstance(value, bool):
        raise UnitError(f"cpus must be a number like 0.5, not {value!r}")
    try:
        if isinstance(value, int):
            milli = float(min(value, MAX_MILLICPUS)) * 1000
        elif isinstance(value, str) and len(value) > 64:
            raise ValueError
        elif isinstance(value, str) and value.strip().endswith("m"):
            milli = float(value.strip()[:-1])
        else:
            milli = float(value) * 1000
    except ValueError:
        raise UnitError(f"cpus must be a number like 0.5, not {value!r}") from None
    if not math.isfinite(milli) or not milli >= 1:
        raise UnitError(f"cpus must be a finite number of at least 0.001, not {value!r}")
    if milli > MAX_MILLICPUS:
        raise UnitError(f"cpus must be at most {MAX_MILLICPUS // 1000}")
    return round(milli)

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.units import UnitError, parse_memory_mb, parse_millicpus


@pytest.mark.parametrize(
    ("text", "mb"), [("256M", 256), ("1G", 1024), ("1.5g", 1536), (512, 512), ("64MiB", 64)]
)
def test_memory(text: str | int, mb: int) -> None:
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize("bad", ["", "lots", "-1M", "0", "1X", True])
def test_bad_memory_is_refused(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_memory_mb(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "milli"), [("0.5", 500), (2, 2000), ("250m", 250), (0.001, 1)])
def test_cpus(text: str | float, milli: int) -> None:
    assert parse_millicpus(text) == milli


@pytest.mark.parametrize("bad", ["", "many", "0", -1, "nan", True])
def test_bad_cpus_are_refused(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_millicpus(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**7))
def test_memory_integers_round_trip(mb: int) -> None:
    assert parse_memory_mb(f"{mb}M") == mb == parse_memory_mb(mb)

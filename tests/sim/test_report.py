"""The HTML report an operator forwards: the verdict first with the run's own numbers, the
detection distribution and the timeline on real axes with the failure and restore marked,
capacity per region before and after, and the raw JSON folded away, not dumped."""

from __future__ import annotations

import html
import itertools
import json
import math
import re
from typing import Any

import pytest

from sim.report import to_html, to_json
from sim.run import SimArgs, simulate
from sim.svg_plot import nice_ticks

SMALL = {"agents": 30, "projects": 30, "duration_s": 60.0, "seed": 3}


@pytest.fixture(scope="module")
def outage() -> dict[str, Any]:
    return simulate(SimArgs("region-outage", **SMALL))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def crunch() -> dict[str, Any]:
    return simulate(SimArgs("capacity-crunch", **{**SMALL, "projects": 60}))  # type: ignore[arg-type]


def cell(page: str, key: str) -> str:
    match = re.search(rf'<td data-key="{key}">(.*?)</td>', page)
    assert match, f"no verdict figure {key}"
    return html.unescape(match.group(1))


def test_the_verdict_comes_first_and_says_what_the_run_measured(outage: dict[str, Any]) -> None:
    page = to_html(outage)
    r, d = outage["recovery"], outage["detection"]
    assert page.index('id="verdict"') < page.index("<svg")
    assert "What if region r0 goes down?" in page
    assert cell(page, "max_zero_live") == f"{r['max_zero_live']} of {r['projects']}"
    assert r["all_restored_s"] is not None
    assert cell(page, "all_restored_s") == f"after {r['all_restored_s']:.2f} s"
    assert cell(page, "unrestorable") == "0"
    assert cell(page, "dead_everywhere_s").startswith(f"{d['detected']} of {d['failed']}; ")
    assert f"median {d['first_suspect_s']['p50']:.2f} s" in cell(page, "first_suspect_s")


def test_what_cannot_be_restored_is_listed_with_why(crunch: dict[str, Any]) -> None:
    page = to_html(crunch)
    lost = crunch["recovery"]["unrestorable"]
    assert lost, "the crunch must leave projects it cannot restore"
    assert cell(page, "unrestorable") == str(len(lost))
    assert "not within the run" in cell(page, "all_restored_s")
    counts = [int(c) for c in re.findall(r'data-count="(\d+)"', page)]
    assert sum(counts) == len(lost)
    for why in {u["why"] for u in lost}:
        assert html.escape(why) in page


def test_plots_have_real_axes_and_mark_the_failure_and_the_restore(
    outage: dict[str, Any],
) -> None:
    page = to_html(outage)
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(charts) == 3  # detection CDF, projects timeline, membership
    for svg in charts:
        x_ticks = re.findall(r'class="tick x"[^>]*>([^<]+)<', svg)
        y_ticks = re.findall(r'class="tick y"[^>]*>([^<]+)<', svg)
        assert len(x_ticks) >= 3 and len(y_ticks) >= 3, svg[:200]
        assert 'class="label x"' in svg and 'class="label y"' in svg
    detection, timeline = charts[0], charts[1]
    assert "100%" in detection and "seconds after the failure" in detection
    fail = re.search(r'class="marker failure" data-x="([\d.]+)"', timeline)
    restore = re.search(r'class="marker restore" data-x="([\d.]+)"', timeline)
    assert fail and float(fail.group(1)) == outage["fail_at_s"]
    assert restore
    expected = outage["fail_at_s"] + outage["recovery"]["all_restored_s"]
    assert float(restore.group(1)) == pytest.approx(expected, abs=1e-3)
    assert [float(t) for t in re.findall(r'class="tick x"[^>]*>([^<]+)<', timeline)] == (
        nice_ticks(0.0, outage["duration_s"])
    )


def test_capacity_per_region_before_and_after(outage: dict[str, Any]) -> None:
    page = to_html(outage)
    for region, before in outage["capacity"]["before"].items():
        after = outage["capacity"]["after"][region]
        row = re.search(rf'<tr data-region="{region}">(.*?)</tr>', page)
        assert row, region
        assert f"{before['agents_up']} → {after['agents_up']} of {before['agents']}" in row.group(1)
        assert f"{before['memory_used_mb']:,} of {before['memory_total_mb']:,} MiB" in row.group(1)
    assert outage["capacity"]["after"]["r0"]["agents_up"] == 0  # the region that went down


def test_the_raw_json_is_folded_and_whole(outage: dict[str, Any]) -> None:
    page = to_html(outage)
    folded = re.search(
        r"<details><summary>[^<]*(?:<code>[^<]*</code>[^<]*)?</summary><pre>(.*?)</pre></details>",
        page,
        re.S,
    )
    assert folded, "the raw JSON must sit inside <details>"
    assert json.loads(html.unescape(folded.group(1))) == json.loads(to_json(outage))
    assert page.count("<pre>") == 1  # no other dump


@pytest.mark.parametrize(("lo", "hi"), [(0, 60), (0, 100), (0, 7.3), (0, 0.42), (5, 1234)])
def test_nice_ticks_are_round_and_cover_the_range(lo: float, hi: float) -> None:
    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 11
    step = ticks[1] - ticks[0]
    assert ticks[0] <= lo < ticks[0] + step  # the axis covers the range, no more than a step
    assert ticks[-1] - step < hi <= ticks[-1]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5)
    assert all(abs((b - a) - step) < 1e-9 for a, b in itertools.pairwise(ticks))


def test_axes_waste_no_room_past_round_data() -> None:
    assert nice_ticks(0, 120) == [0, 20, 40, 60, 80, 100, 120]
    assert nice_ticks(0, 60) == [0, 10, 20, 30, 40, 50, 60]
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]

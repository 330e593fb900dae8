"""The lab curve's goal verdict at the full pool: each part for the arm with the best Δ, then the arms that meet the most,
with a part that was not measured (no oracle on these units, no recorded weights) said so rather than counted as missed."""

from __future__ import annotations

import math

from benchmarks.transferbench.curve import Point, Pool, verdict
from benchmarks.transferbench.pool import ALL
from benchmarks.transferbench.stats import Delta

FULL = Pool(ALL, 200, [])
NO_ORACLE = Delta(math.nan, math.nan, math.nan, 0)
REFERENCE = Delta(0.0, 0.0, 0.0, 20)


def point(arm: str, gain: Delta, oracle: Delta = NO_ORACLE, junk: float = 0.0) -> Point:
    return Point(arm, FULL, gain, gain, gain, ("t", gain.mean), oracle, 1.0, junk)


def test_the_verdict_names_an_arm_that_meets_more_parts_than_the_best_delta() -> None:
    text = verdict(
        [
            point("cos@20", Delta(15.3, 7.5, 23.8, 20), Delta(66.0, 50.0, 80.0, 10), 10.2),
            point("el2n@20", Delta(14.5, 6.9, 22.6, 20), Delta(61.0, 45.0, 75.0, 10), 2.1),
            point("average", Delta(5.2, -1.0, 11.0, 20), junk=0.0),  # under 5 % junk, but its Δ part is not met: not a leader
            point("random-pool", REFERENCE, junk=30.0),
        ]
    )
    assert text.startswith(
        "Goal at the full pool, best arm cos@20: Δ vs random-pool +15.3 [+7.5, +23.8] over 20 units, share of the oracle +66.0 [+50.0, +80.0] %, "
        "weight on junk 10.2 %. Δ ≥ +5 with the interval above 0: met; ≥ 80 % of the oracle: not met; < 5 % junk: not met."
    )
    assert text.endswith("No arm meets every part; of those meeting the Δ part, the most met (2 of 3): el2n@20 (Δ ≥ +5 with the interval above 0, < 5 % junk).")


def test_a_part_not_measured_is_said_so_and_not_counted_as_missed() -> None:
    text = verdict([point("loss@20", Delta(9.0, 2.0, 16.0, 10), junk=1.0), point("el2n", Delta(8.0, 1.0, 15.0, 10), junk=math.nan)])
    assert "share of the oracle –, weight on junk 1.0 %. Δ ≥ +5 with the interval above 0: met; ≥ 80 % of the oracle: not measured; < 5 % junk: met." in text
    assert text.endswith("Arms meeting every part: loss@20 (≥ 80 % of the oracle: not measured), el2n (≥ 80 % of the oracle, < 5 % junk: not measured).")
    assert "nan" not in text


def test_the_verdict_names_every_arm_that_meets_the_whole_goal() -> None:
    text = verdict([point("el2n", Delta(9.0, 2.0, 16.0, 20), Delta(85.0, 70.0, 99.0, 10), 1.0), point("loss", Delta(8.0, 1.0, 15.0, 20), junk=40.0)])
    assert text.endswith("Arms meeting every part: el2n.")


def test_no_arm_meeting_the_delta_part_is_said_plainly() -> None:
    assert verdict([point("el2n@20", Delta(3.7, -3.7, 10.3, 10), junk=0.4)]).endswith("No arm meets the Δ part.")
    assert verdict([point("random-pool", REFERENCE, junk=30.0)]) == "Goal at the full pool: no arm besides random-pool has run there yet."

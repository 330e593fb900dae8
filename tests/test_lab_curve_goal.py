"""The lab curve's goal verdict at the full pool names the best arm by Δ and also the arms that meet the most parts."""

from __future__ import annotations

import math

from benchmarks.transferbench.curve import Point, Pool, verdict
from benchmarks.transferbench.pool import ALL
from benchmarks.transferbench.stats import Delta

FULL = Pool(ALL, 200, [])
NONE = Delta(math.nan, math.nan, math.nan, 0)


def point(arm: str, gain: Delta, oracle: Delta, junk: float) -> Point:
    return Point(arm, FULL, gain, gain, gain, ("t", gain.mean), oracle, 1.0, junk)


def test_the_verdict_names_an_arm_that_meets_more_parts_than_the_best_delta() -> None:
    text = verdict(
        [
            point("cos@20", Delta(15.3, 7.5, 23.8, 20), Delta(66.0, 50.0, 80.0, 10), 10.2),
            point("el2n@20", Delta(14.5, 6.9, 22.6, 20), Delta(61.0, 45.0, 75.0, 10), 2.1),
            point("average", Delta(5.2, -1.0, 11.0, 20), NONE, 0.0),
            point("random-pool", Delta(0.0, 0.0, 0.0, 20), NONE, 30.0),
        ]
    )
    assert text.startswith("Goal at the full pool, best arm cos@20: Δ vs random-pool +15.3 [+7.5, +23.8] over 20 units")
    assert "Δ ≥ +5 with the interval above 0: met; ≥ 80 % of the oracle: not met; < 5 % junk: not met." in text
    assert text.endswith("No arm meets every part; the most met (2 of 3): el2n@20 (Δ ≥ +5 with the interval above 0, < 5 % junk).")


def test_the_verdict_names_every_arm_that_meets_the_whole_goal() -> None:
    text = verdict([point("el2n", Delta(9.0, 2.0, 16.0, 20), Delta(85.0, 70.0, 99.0, 10), 1.0), point("loss", Delta(8.0, 1.0, 15.0, 20), NONE, 1.0)])
    assert text.endswith("Arms meeting every part: el2n.")


def test_the_verdict_waits_for_an_arm_besides_random_pool() -> None:
    assert verdict([point("random-pool", Delta(0.0, 0.0, 0.0, 20), NONE, 30.0)]) == "Goal at the full pool: no arm besides random-pool has run there yet."

"""The oracle's arms of one cell: every source alone, or at lab scale a subset of the sources.

The oracle is the best single source per (target, seed), by test accuracy. At lab scale a cell has
about 200 sources, one training each: too many for 2 CPU cores. There the oracle is taken over a
subset (`Settings.oracle_subset`, (nearest, drawn)): the `nearest` sources by dataset-embedding
similarity to the target's k-shot sample, plus `drawn` of the others at random, seeded by (target,
shots, seed). The similarity embeds the sample's train examples only and the draw reads nothing of
the target, so the subset is the same on every rerun, and the report recomputes it from the cell's
stored similarities. The best source of a subset is at most the best of all: over a subset the
oracle is a lower bound.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ensembling.strategies import single_of


class Source(NamedTuple):
    """What the oracle reads of a source: its task, its module, its dataset-embedding similarity to the target's sample."""

    task: str
    module_id: int | None  # None in a cell line stored before module ids were recorded
    similarity: float | None  # None for a module pushed without a dataset


def oracle_sources(sources: Sequence[Source], subset: tuple[int, int] | None, target: str, shots: int, seed: int) -> list[Source]:
    """Every source (subset None), else the `nearest` most similar plus `drawn` of the others drawn at random."""
    if subset is None:
        return list(sources)
    nearest, drawn = subset
    # A source without a similarity is never among the nearest, but may be drawn; ties go to the lower module id.
    ranked = sorted(sources, key=lambda source: (math.inf if source.similarity is None else -source.similarity, source.module_id))
    # The draw is over the others in module-id order, so it does not depend on the order the sources came in.
    others = sorted(ranked[nearest:], key=lambda source: source.module_id)
    return ranked[:nearest] + random.Random(f"oracle:{target}:{shots}:{seed}").sample(others, min(drawn, len(others)))


def arm_names(sources: Sequence[Source]) -> list[str]:
    """Each source's single arm: `single:<task>`, or `single:<task>#<module id>` for all when a task has several modules (the lab pool)."""
    by_module = len({source.task for source in sources}) < len(sources)
    return [single_of(source.task, source.module_id if by_module else None) for source in sources]


def oracle_arms(sources: Sequence[Source], subset: tuple[int, int] | None, target: str, shots: int, seed: int) -> list[str]:
    """The cell's oracle arms, in name order."""
    chosen = set(oracle_sources(sources, subset, target, shots, seed))
    return sorted(arm for arm, source in zip(arm_names(sources), sources) if source in chosen)


def cell_sources(cell: Mapping) -> list[Source]:
    """The sources of a stored cell line (the rows of `protocol.source_diagnostics`)."""
    return [Source(row["source"], row.get("module_id"), row.get("similarity")) for row in cell["sources"]]


def stored_oracle_arms(rows: Sequence[Mapping], subset: tuple[int, int]) -> dict[tuple[str, str, int, int], set[str]]:
    """Per (target, method, shots, seed): the oracle arms of its latest cell line under `subset`.

    A cell line stored before module ids were recorded gives none: its subset cannot be drawn again.
    """
    cells = {(row["target"], row["method"], row["shots"], row["seed"]): cell_sources(row) for row in rows if row["kind"] == "cell"}
    return {
        unit: set(oracle_arms(sources, subset, unit[0], unit[2], unit[3]))
        for unit, sources in cells.items()
        if all(source.module_id is not None for source in sources)
    }


def subset_text(subset: tuple[int, int] | None, trained: Sequence[int], pooled: Sequence[int]) -> str:
    """How the oracle was computed, where it is not over every source: over how many sources per (target, seed), which, and what that means.

    `trained` and `pooled`: per (target, seed), the single arms reported and the sources of its cell.
    """
    if all(count == pool for count, pool in zip(trained, pooled)):
        return ""
    which = (
        "every source whose single-source run is stored"
        if subset is None
        else f"the {subset[0]} nearest by dataset embedding to the k-shot sample plus {subset[1]} of the others drawn at random (seeded by target, shots and seed)"
    )
    return (
        f"It is over {span(trained)} of {span(pooled)} sources per (target, seed): {which}; so it is a lower bound on the oracle "
        "over every source, and a positive % of oracle below overstates the share of that oracle."
    )


def span(counts: Sequence[int]) -> str:
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"

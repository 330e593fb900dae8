"""`ModuleQuery`, the one definition of list_modules' filters: the SQL it selects, its wire format, its split."""

from __future__ import annotations

from pathlib import Path

import pytest
import synthetic

from store.module_query import ModuleQuery
from store.registry import Registry, resolve_location, upgrade_registry


def test_the_wire_format_reads_back_as_the_same_query() -> None:
    query = ModuleQuery(base_model="minilm", method="lora", category="taxonomy", task="wn-isa-plant", dataset_ids=[3, 1], ids=(7,))
    assert query.to_params() == {"base_model": "minilm", "method": "lora", "category": "taxonomy", "task": "wn-isa-plant", "dataset_ids": "3,1", "ids": "7"}
    assert ModuleQuery.from_params(query.to_params()) == query
    assert ModuleQuery.from_params({}) == ModuleQuery() and ModuleQuery().to_params() == {}
    assert ModuleQuery.from_params({"ids": ""}) == ModuleQuery(ids=())  # an empty list matches nothing, as locally


@pytest.mark.parametrize("bad", ["1;DROP", "1,,2", "-1", "x", "1 ,2"])
def test_a_malformed_id_list_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="comma-separated ids"):
        ModuleQuery.from_params({"ids": bad})


def test_split_keeps_every_other_filter_and_covers_every_id() -> None:
    query = ModuleQuery(method="lora", ids=range(10), dataset_ids=range(3))
    parts = query.split(4)
    assert [(len(part.ids), len(part.dataset_ids)) for part in parts] == [(4, 3), (4, 3), (2, 3)]
    assert all(part.method == "lora" and part.dataset_ids == (0, 1, 2) for part in parts)
    assert sorted(i for part in parts for i in part.ids) == list(range(10))
    assert ModuleQuery(task="t").split(4) == [ModuleQuery(task="t")]


def test_the_catalog_selects_what_every_filter_says(tmp_path: Path) -> None:
    location = resolve_location(tmp_path / "registry")
    upgrade_registry(location)
    registry = Registry(location)
    try:
        # synthetic.module(seed) is in category-{seed % 3}; every module is a LoRA of synthetic.BASE.
        records = {seed: synthetic.push(registry, seed)[0] for seed in (1, 2, 4)}
        listed = registry.catalog.list_modules
        assert [r.task for r in listed()] == ["synthetic-1", "synthetic-2", "synthetic-4"]
        assert [r.task for r in listed(ModuleQuery(category="category-1"))] == ["synthetic-1", "synthetic-4"]
        assert [r.task for r in listed(ModuleQuery(category="category-1", task="synthetic-4", method="lora"))] == ["synthetic-4"]
        assert [r.task for r in listed(ModuleQuery(ids=[records[4].id, records[1].id]))] == ["synthetic-1", "synthetic-4"]
        assert [r.task for r in listed(ModuleQuery(dataset_ids=[records[2].dataset_id], base_model=synthetic.BASE.name))] == ["synthetic-2"]
        assert listed(ModuleQuery(method="prefix")) == [] and listed(ModuleQuery(base_model="other")) == []
    finally:
        registry.close()

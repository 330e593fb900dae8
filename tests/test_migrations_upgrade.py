"""`adapters db upgrade` upgrades a registry in place: one filled at the first migration keeps every row."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import torch
from alembic import command
from sqlalchemy import MetaData, inspect, text
from typer.testing import CliRunner

from cli.main import app
from hub import Hub
from hub.datasets import load_dataset
from hub.embeddings import parameter_sketch
from hub.methods import method_for_config, read_config
from store.blobs import BlobStore
from store.db import alembic_config, current_revision, head_revision, make_engine, upgrade
from store.models import vector_bytes
from store.tensors import schema_hash, tensor_schema, to_bytes

runner = CliRunner()
FIRST = "0001"


def fill_at_first_migration(url: str, blobs: Path, session_hub: Hub, trained_folders: dict[str, Path], suite: Path) -> dict:
    """Write real modules with the 0001 schema only (reflected tables), as an old deltahub would have."""
    engine = make_engine(url)
    upgrade(engine, FIRST)
    meta = MetaData()
    meta.reflect(engine)
    assert "registry_id" not in meta.tables["registry_state"].c and "created_host" not in meta.tables["modules"].c
    t = meta.tables
    now = datetime.now(UTC)
    expected: dict = {"modules": {}, "datasets": {}}
    blobs.mkdir(parents=True, exist_ok=True)
    store = BlobStore(blobs)
    with engine.begin() as connection:
        base_id = connection.execute(
            t["base_models"]
            .insert()
            .values(name="sentence-transformers/all-MiniLM-L6-v2", revision="", kind="cross-encoder", arch_hash="a" * 64, created_at=now)
        ).inserted_primary_key[0]
        module_ids = []
        for task_name, folder in trained_folders.items():
            method = method_for_config(read_config(folder))
            config, tensors = method.read_folder(folder)
            data = load_dataset(suite / task_name)
            blob = to_bytes(tensors)
            digest = store.put(blob)
            embedding = session_hub.encoder.embed(data)
            task_id = connection.execute(
                t["tasks"]
                .insert()
                .values(name=data.card.name, category=data.card.category, format=data.card.format, description="", labels=dict(data.card.labels))
            ).inserted_primary_key[0]
            dataset_id = connection.execute(
                t["datasets"]
                .insert()
                .values(fingerprint=data.fingerprint, task_id=task_id, size=data.size, source="", embedding=vector_bytes(embedding), created_at=now)
            ).inserted_primary_key[0]
            schema = tensor_schema(tensors)
            sketch = parameter_sketch(tensors)
            module_id = connection.execute(
                t["modules"]
                .insert()
                .values(
                    base_model_id=base_id,
                    dataset_id=dataset_id,
                    method=method.name,
                    config={k: v for k, v in config.items() if k != "base_model_name_or_path"},
                    tensor_schema=schema,
                    schema_hash=schema_hash(schema),
                    num_params=sum(x.numel() for x in tensors.values()),
                    blob_digest=digest,
                    metrics={"acc": 0.5},
                    param_embedding=vector_bytes(sketch),
                    kind="trained",
                    created_at=now,
                    created_by="old-release",
                )
            ).inserted_primary_key[0]
            connection.execute(t["module_tags"].insert().values(module_id=module_id, tag="v1"))
            module_ids.append(module_id)
            expected["modules"][module_id] = (task_name, digest, tensors, sketch)
            expected["datasets"][dataset_id] = embedding
        # A composed init with provenance over the first two modules.
        init_id = module_ids[-1]
        ensemble_id = connection.execute(
            t["ensembles"].insert().values(module_id=init_id, target_dataset_id=dataset_id, strategy="el2n", temperature=0.1, top_k=None, created_at=now)
        ).inserted_primary_key[0]
        for position, source in enumerate(module_ids[:2]):
            connection.execute(
                t["ensemble_sources"]
                .insert()
                .values(
                    ensemble_id=ensemble_id,
                    position=position,
                    source_module_id=source,
                    source_digest=expected["modules"][source][1],
                    score=-1.0 - position,
                    weight=0.7 - 0.4 * position,
                )
            )
        connection.execute(t["registry_state"].update().values(generation=len(module_ids) + 1))
        expected["init"] = (init_id, module_ids[:2])
    assert current_revision(engine) == FIRST
    engine.dispose()
    return expected


def test_db_upgrade_keeps_every_module_embedding_and_provenance_row(registry_url, session_hub: Hub, trained_folders: dict[str, Path], suite: Path) -> None:
    if registry_url.backend == "sqlite":
        directory = Path(registry_url.url)
        directory.mkdir(parents=True)
        url, blobs, args = f"sqlite:///{directory / 'registry.db'}", directory / "blobs", ["--registry", str(directory)]
    else:
        url, blobs, args = registry_url.url, registry_url.blobs, registry_url.args()
    expected = fill_at_first_migration(url, blobs, session_hub, trained_folders, suite)

    # The new code refuses the old schema with a pointer to the fix, and changes nothing.
    refused = runner.invoke(app, ["list", *args])
    assert refused.exit_code == 1 and "adapters db upgrade" in refused.output

    result = runner.invoke(app, ["db", "upgrade", *args])
    assert result.exit_code == 0, result.output
    assert f"{FIRST} -> {head_revision()}" in result.output

    opened = Hub(str(directory)) if registry_url.backend == "sqlite" else Hub(registry_url.url, blobs)
    with opened as hub:
        hub._backbones = session_hub._backbones
        hub._encoder = session_hub._encoder
        modules = {m.id: m for m in hub.list()}
        assert set(modules) == set(expected["modules"])
        for module_id, (task, digest, tensors, sketch) in expected["modules"].items():
            record = hub.show(module_id)
            assert (record.task, record.blob_digest, record.tags, record.created_by, record.created_host) == (task, digest, ("v1",), "old-release", "")
            # The columns once named `kind` keep their values under their new names.
            assert (record.origin, record.base_model_family) == ("trained", "cross-encoder")
            loaded = hub.load_tensors(record)
            assert set(loaded) == set(tensors) and all(torch.equal(loaded[k], tensors[k]) for k in tensors)
            # Its parameter embedding is intact: a search by the module finds the others, scored by the stored sketches.
            assert [hit.module.id for hit in hub.search(module=module_id, top_k=5)] == sorted(
                (m for m in expected["modules"] if m != module_id), key=lambda m: -float(expected["modules"][m][3] @ sketch)
            )
        for dataset_id, embedding in expected["datasets"].items():
            hits = dict(hub.registry.indexes.search_datasets(embedding, 5))
            assert abs(hits[dataset_id] - 1.0) < 1e-5
        init_id, sources = expected["init"]
        provenance = hub.show(init_id).provenance
        assert provenance is not None and provenance.strategy == "el2n" and provenance.temperature == 0.1
        assert [s.module_id for s in provenance.sources] == sources
        assert [s.digest for s in provenance.sources] == [expected["modules"][s][1] for s in sources]
        assert [round(s.weight, 6) for s in provenance.sources] == [0.7, 0.3]
        assert provenance.combine == "linear"  # made before operators existed: composed linearly
        # The upgraded registry has its id, and its blob directory carries it.
        assert hub.registry.registry_id and (blobs / "REGISTRY").read_text().strip() == hub.registry.registry_id
        # And it takes new pushes.
        record = hub.push(trained_folders["wn-isa-animal"], suite / "wn-supersense-noun-c")
        assert record.created_host
        report = hub.verify()
        assert report.healthy, report
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_kind_columns_are_renamed_in_place_and_back(registry_url) -> None:
    """0003 renames modules.kind to origin and base_models.kind to family, keeping the values; its downgrade undoes it."""
    if registry_url.backend == "sqlite":
        Path(registry_url.url).mkdir(parents=True)
        url = f"sqlite:///{Path(registry_url.url) / 'registry.db'}"
    else:
        url = registry_url.url
    engine = make_engine(url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO base_models (name, revision, kind, arch_hash, created_at) VALUES ('m', '', 'seq2seq', 'h', CURRENT_TIMESTAMP)")
            )
        upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT family FROM base_models")).scalar_one() == "seq2seq"
            assert "origin" in {column["name"] for column in inspect(connection).get_columns("modules")}
        command.downgrade(alembic_config(engine), "0002")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT kind FROM base_models")).scalar_one() == "seq2seq"
            assert "kind" in {column["name"] for column in inspect(connection).get_columns("modules")}
    finally:
        engine.dispose()

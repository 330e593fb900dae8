"""Hub ids resolved from a real Hugging Face cache, offline.

The cache is built here in huggingface_hub's documented layout (models--ORG--NAME/{blobs,refs,snapshots/SHA});
it holds a tiny random BERT (with the packaged MiniLM's tokenizer) at two commits. Modules are real PEFT
LoRA folders on it with seeded random tensors; two carry cards as the Hub writes them (base_model,
library_name, license, tags, datasets, prose; no deltahub field), and one repo is corrupted (a snapshot
file whose blob is gone). Nothing is downloaded: HF_HUB_OFFLINE=1 (conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import TARGET, cli, one_line_error, snapshot, tiny
from huggingface_hub import constants

from hub import Hub, TransferOptions
from hub.backbones import packaged_minilm_path, resolve_base_model
from hub.errors import HubError

BASE = "lab/tiny-bert"
SHA_MAIN = "a" * 40
SHA_V1 = "b" * 40
# Adapter repos: (commit sha, model card front matter or None for no README.md).
CARDED = "lab/lora-carded"
PLAIN = "lab/lora-plain"
ORPHAN = "lab/lora-orphan"  # its base model is not cached
PICKLED = "lab/lora-pickled"  # only a pickle checkpoint
HUB_CARDED = "lab/lora-isa-bird"  # a card as the Hub writes it, naming its dataset
HUB_BARE = "lab/lora-synonyms"  # a card as the Hub writes it, naming no dataset
BROKEN = "lab/lora-broken"  # corrupted in the cache: its weights' blob is gone
# The front matter `huggingface_hub` and PEFT write for an adapter repo: nothing of deltahub's.
HUB_FRONT_MATTER = (
    "base_model: lab/tiny-bert\nlibrary_name: peft\nlicense: apache-2.0\npipeline_tag: text-classification\n"
    "tags:\n- base_model:adapter:lab/tiny-bert\n- lora\n- transformers\n- birds"
)
HUB_BODY = "# Model Card for lora-isa-bird\n\nA LoRA adapter the lab trained to tell birds from other animals.\n"
ADAPTERS = {
    CARDED: ("c" * 40, "datasets:\n- lab-isa-fish\ndeltahub:\n  category: taxonomy"),
    PLAIN: ("d" * 40, None),
    ORPHAN: ("e" * 40, "datasets:\n- lab-orphan\ndeltahub:\n  category: taxonomy"),
    PICKLED: ("f" * 40, "datasets:\n- lab-pickled\ndeltahub:\n  category: taxonomy"),
    HUB_CARDED: ("1" * 40, f"{HUB_FRONT_MATTER}\ndatasets:\n- lab/isa-bird"),
    HUB_BARE: ("2" * 40, HUB_FRONT_MATTER),
    BROKEN: ("3" * 40, None),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def cache_repo(cache: Path, repo_id: str, sha: str, files: Path, refs: tuple[str, ...] = ("main",), plain: tuple[str, ...] = ()) -> Path:
    """Put a folder's files into the cache as snapshot `sha` of `repo_id`: blobs named by content, snapshot files linking to them (those in `plain` copied)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot_dir = repo / "snapshots" / sha
    snapshot_dir.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in sorted(files.iterdir()):
        content = file.read_bytes()
        if file.name in plain:
            (snapshot_dir / file.name).write_bytes(content)
            continue
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        (snapshot_dir / file.name).symlink_to(Path("..", "..", "blobs", blob.name))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(sha)  # huggingface_hub writes the sha with no newline
    return snapshot_dir


def tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(packaged_minilm_path() / name, folder / name)
    return folder


def lora_folder(hub: Hub, base_model: str, seed: int, folder: Path) -> Path:
    """A PEFT LoRA folder on `base_model` holding seeded random tensors."""
    module = hub.new_module(base_model, "lora", {"r": 2})
    generator = torch.Generator().manual_seed(seed)
    module.method.set_tensors(module.model, {name: torch.randn(t.shape, generator=generator) * 0.05 for name, t in module.tensors().items()})
    return module.save(folder)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache holding the tiny base at two commits (main and tag v1), and huggingface_hub pointed at it."""
    root = tmp_path_factory.mktemp("hf")
    cache = root / "hub"
    base = tiny_bert(root / "base")
    cache_repo(cache, BASE, SHA_MAIN, base, plain=("vocab.txt",))
    cache_repo(cache, BASE, SHA_V1, base, refs=("v1",))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(root))
        patch.setenv("HF_HUB_CACHE", str(cache))
        # huggingface_hub reads its environment once, at import.
        patch.setattr(constants, "HF_HUB_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="module")
def adapter_repos(hf_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four adapter repos of ADAPTERS put into the cache (README.md as a plain file, the rest as blob links); their snapshot folders."""
    out = tmp_path_factory.mktemp("adapters")
    snapshots = {}
    with Hub(out / "scratch") as hub:
        for seed, (repo_id, (sha, card)) in enumerate(ADAPTERS.items(), start=10):
            folder = lora_folder(hub, BASE, seed, out / repo_id)
            (folder / "README.md").unlink(missing_ok=True)  # PEFT's template card, where it wrote one
            if card is not None:
                body = HUB_BODY if repo_id == HUB_CARDED else "# a lab's adapter\n"
                (folder / "README.md").write_text(f"---\n{card}\n---\n\n{body}")
            if repo_id == ORPHAN:
                config = json.loads((folder / "adapter_config.json").read_text())
                (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "other/uncached-base"}))
            if repo_id == PICKLED:
                (folder / "adapter_model.safetensors").unlink()
                (folder / "adapter_model.bin").write_bytes(pickle.dumps({"never": "opened"}))
            snapshots[repo_id] = cache_repo(hf_cache, repo_id, sha, folder, plain=("README.md",))
            if repo_id == BROKEN:
                (snapshots[repo_id] / "adapter_model.safetensors").resolve().unlink()
    return snapshots


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_args, **_kwargs):
        raise AssertionError("a pickle checkpoint was opened")

    monkeypatch.setattr(pickle, "load", never)
    monkeypatch.setattr(pickle, "loads", never)
    monkeypatch.setattr(torch, "load", never)


@pytest.fixture(scope="module")
def folders(hf_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("folders")
    with Hub(out / "scratch") as hub:
        return {"one": lora_folder(hub, BASE, 1, out / "one"), "two": lora_folder(hub, BASE, 2, out / "two")}


def test_a_base_model_resolves_by_id_branch_tag_and_sha_from_the_cache(hf_cache: Path):
    main = resolve_base_model(BASE)
    assert (main.name, main.revision, main.family.name) == (BASE, SHA_MAIN, "cross-encoder")
    assert main.path == hf_cache.resolve() / f"models--{BASE.replace('/', '--')}" / "snapshots" / SHA_MAIN
    assert resolve_base_model(f"{BASE}@v1").revision == SHA_V1
    assert resolve_base_model(f"{BASE}@{SHA_V1}").revision == SHA_V1
    assert resolve_base_model("minilm").revision is None  # the packaged default is unchanged
    with pytest.raises(HubError, match=r"base model lab/tiny-bert@v9 is not in the local Hugging Face cache; run `hf download lab/tiny-bert --revision v9`"):
        resolve_base_model(f"{BASE}@v9")
    with pytest.raises(HubError, match="base model lab/absent is not in the local Hugging Face cache; run `hf download lab/absent`"):
        resolve_base_model("lab/absent")


def test_push_pins_the_base_revision_and_an_uncached_revision_is_one_line(hf_cache: Path, folders: dict[str, Path], tmp_path: Path):
    registry = tmp_path / "registry"
    result = cli("push", str(folders["one"]), "--task", "lab-one", "--category", "taxonomy", "--json", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert (record["base_model"], record["base_revision"]) == (BASE, SHA_MAIN)  # from the config's base_model_name_or_path
    before = snapshot(registry)
    args = ("--task", "lab-two", "--category", "taxonomy", "--registry", str(registry))
    line = one_line_error(cli("push", str(folders["two"]), "--base-model", f"{BASE}@v9", *args))
    assert "base model lab/tiny-bert@v9 is not in the local Hugging Face cache" in line and "hf download lab/tiny-bert --revision v9" in line
    assert snapshot(registry) == before


def test_composition_refuses_sources_of_another_base_revision(hf_cache: Path, folders: dict[str, Path], suite: Path, tmp_path: Path):
    registry = tmp_path / "registry"
    with Hub(registry) as hub:
        on_main = hub.push(folders["one"], task="lab-one", category="taxonomy")
        on_v1 = hub.push(folders["two"], task="lab-two", category="taxonomy", base_model=f"{BASE}@v1")
    assert (on_main.base_revision, on_v1.base_revision) == (SHA_MAIN, SHA_V1)
    target = tiny(suite, TARGET, tmp_path / "data")
    before = snapshot(registry)
    line = one_line_error(cli("ensemble", str(target), "--base-model", BASE, "-s", "average", "--registry", str(registry)))
    assert f"module {on_v1.id} was trained on {BASE}@{SHA_V1}, but the base model here is {BASE}@{SHA_MAIN}" in line
    assert snapshot(registry) == before


def pulled(registry: Path, *args: str) -> dict:
    result = cli("pull", *args, "--json", "--registry", str(registry))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_pull_registers_a_cached_adapter_repo_with_its_card_and_source(adapter_repos: dict[str, Path], no_pickle, tmp_path: Path):
    registry = tmp_path / "registry"
    carded = pulled(registry, CARDED)
    sha = ADAPTERS[CARDED][0]
    assert (carded["task"], carded["category"], carded["dataset_id"]) == ("lab-isa-fish", "taxonomy", None)
    assert (carded["source"], carded["base_model"], carded["base_revision"]) == (f"hf://{CARDED}@{sha}", BASE, SHA_MAIN)
    assert pulled(registry, f"{CARDED}@{sha}")["id"] == carded["id"]  # by commit sha: the same module
    plain = pulled(registry, PLAIN, "--task", "lab-plain", "--category", "synonymy")
    assert (plain["task"], plain["source"]) == ("lab-plain", f"hf://{PLAIN}@{ADAPTERS[PLAIN][0]}")
    shown = cli("show", str(carded["id"]), "--registry", str(registry))
    assert shown.exit_code == 0, shown.output
    assert any(line.split() == ["│", "source", "│", f"hf://{CARDED}@{sha}", "│"] for line in shown.output.splitlines()), shown.output

    assert pulled(registry, PLAIN)["id"] == plain["id"]  # registered already: no --task needed to say so

    before = snapshot(registry)
    empty = tmp_path / "empty"
    line = one_line_error(cli("pull", PLAIN, "--registry", str(empty)))
    assert "is pushed without --dataset, but neither --task nor its model card (README.md) names its task" in line
    refusals = {
        f"{CARDED}@v9": f"adapter repo {CARDED}@v9 is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; run `hf download {CARDED} --revision v9`",
        "lab/absent": "adapter repo lab/absent is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
        ORPHAN: "base model other/uncached-base is not in the local Hugging Face cache; run `hf download other/uncached-base`",
        PICKLED: "adapter_model.bin is a pickle checkpoint, which deltahub never loads",
        "not-a-repo-id": "'not-a-repo-id' is not a Hub repo id; pass ORG/NAME or ORG/NAME@REVISION",
    }
    for repo, message in refusals.items():
        assert message in one_line_error(cli("pull", repo, "--registry", str(registry))), repo
    assert snapshot(registry) == before


def test_the_export_of_an_init_names_each_sources_repo(adapter_repos: dict[str, Path], suite: Path, tmp_path: Path):
    from huggingface_hub import ModelCard

    registry = tmp_path / "registry"
    with Hub(registry) as hub:
        carded = hub.pull(CARDED)
        plain = hub.pull(PLAIN, task="lab-plain", category="synonymy")
        init = hub.ensemble(tiny(suite, TARGET, tmp_path / "data"), TransferOptions(base_model=BASE, strategy="average")).record
        hub.export(init.id, tmp_path / "out")
    own = ModelCard.load(tmp_path / "out" / "README.md").data.to_dict()["deltahub"]
    assert own["base_model_revision"] == SHA_MAIN and "source" not in own  # the init itself was composed here
    assert {row["module_id"]: row["source"] for row in own["provenance"]["sources"]} == {carded.id: carded.source, plain.id: plain.source}


def imported(registry: Path, *args: str) -> tuple[int, dict[str, dict]]:
    """`adapters import --hf-cache ARGS --json`: its exit code and its rows by source."""
    result = cli("import", "--hf-cache", *args, "--json", "--registry", str(registry))
    report = json.loads(result.output)
    rows = {row["source"]: row for row in report["folders"]}
    assert len(rows) == len(report["folders"]) and sum(report[key] for key in ("imported", "already_there", "refused", "skipped")) == len(rows)
    return result.exit_code, rows


def test_import_of_the_hf_cache_takes_every_adapter_repo_with_its_source(adapter_repos: dict[str, Path], no_pickle, tmp_path: Path):
    registry = tmp_path / "registry"
    sources = {repo: f"hf://{repo}@{sha}" for repo, (sha, _card) in ADAPTERS.items()}
    broken = f"hf://{BROKEN}"  # the scan cannot read its revisions, so its source has no commit
    code, rows = imported(registry)
    assert code == 1  # refused repos make the exit code say so
    # The base model's repo holds no adapter: not listed.
    assert {source: row["status"] for source, row in rows.items()} == {
        sources[CARDED]: "imported",
        sources[PLAIN]: "refused",
        sources[HUB_CARDED]: "refused",
        sources[HUB_BARE]: "refused",
        sources[ORPHAN]: "refused",
        sources[PICKLED]: "refused",
        broken: "skipped",
    }
    assert rows[sources[CARDED]]["folder"] == str(adapter_repos[CARDED])
    assert (rows[sources[CARDED]]["task"], rows[sources[CARDED]]["task_from"]) == ("lab-isa-fish", "model card")
    assert "base model other/uncached-base is not in the local Hugging Face cache" in rows[sources[ORPHAN]]["reason"]
    assert "adapter_model.bin is a pickle checkpoint, which deltahub never loads" in rows[sources[PICKLED]]["reason"]
    for repo in (PLAIN, HUB_CARDED, HUB_BARE):
        assert "neither --category nor its model card (README.md) names its category" in rows[sources[repo]]["reason"], repo
    assert "the Hugging Face cache scan finds it corrupted (Blob missing (broken symlink)" in rows[broken]["reason"]
    assert rows[broken]["folder"].endswith("models--lab--lora-broken")

    # Cards as the Hub writes them name no category: --category gives one to every repo, the task comes from the card or the repo name.
    code, rows = imported(registry, "--category", "taxonomy")
    assert code == 1
    assert {source: (row["status"], row["task"], row["task_from"]) for source, row in rows.items() if row["status"] != "refused"} == {
        sources[CARDED]: ("already there", "lab-isa-fish", ""),
        sources[PLAIN]: ("imported", "lora-plain", "repo name"),
        sources[HUB_CARDED]: ("imported", "lab/isa-bird", "model card"),
        sources[HUB_BARE]: ("imported", "lora-synonyms", "repo name"),
        broken: ("skipped", None, ""),
    }
    with Hub(registry) as hub:
        records = {record.source: record for record in hub.list()}
    assert set(records) == {sources[repo] for repo in (CARDED, PLAIN, HUB_CARDED, HUB_BARE)}
    assert {record.category for record in records.values()} == {"taxonomy"} and records[sources[HUB_CARDED]].tags == ("birds",)

    # Imported again, with no option: every registered repo is already there (not refused for its card), and nothing is written.
    before = snapshot(registry)
    again = cli("import", "--hf-cache", "--registry", str(registry))
    assert again.exit_code == 1, again.output
    text = " ".join(again.output.split())
    assert "import of 7 module folders" in text and "0 imported, 4 already there, 2 refused, 1 skipped" in text
    assert f"refused {sources[PICKLED]}: " in text and f"skipped {broken}: " in text
    assert sources[CARDED] in text  # the table names a cache repo by its source, not its snapshot path
    assert snapshot(registry) == before

    # Every repo imported with one --task: the option names the task.
    code, rows = imported(tmp_path / "other", "--task", "lab-birds", "--category", "taxonomy")
    assert {row["task"] for row in rows.values() if row["status"] == "imported"} == {"lab-birds"}
    assert {row["task_from"] for row in rows.values() if row["status"] == "imported"} == {"--task"}


def test_export_keeps_the_hub_card_and_adds_deltahubs_fields(adapter_repos: dict[str, Path], tmp_path: Path):
    from huggingface_hub import ModelCard

    registry = tmp_path / "registry"
    with Hub(registry) as hub:
        record = hub.pull(HUB_CARDED, category="taxonomy")
        hub.export(record.id, tmp_path / "out")
    card = ModelCard.load(tmp_path / "out" / "README.md")
    data = card.data.to_dict()
    assert (data["license"], data["pipeline_tag"], data["library_name"]) == ("apache-2.0", "text-classification", "peft")  # the user's
    assert (data["base_model"], data["datasets"], data["deltahub"]["category"]) == (BASE, ["lab/isa-bird"], "taxonomy")  # deltahub's
    assert data["deltahub"]["source"] == record.source and set(data["tags"]) == {"birds", "deltahub", "lora"}
    assert card.text.strip() == HUB_BODY.strip()  # the user's prose, whole
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["inference_mode"] is False


def test_import_takes_folders_or_the_hf_cache(hf_cache: Path, tmp_path: Path):
    assert "pass the folders to import or --hf-cache, not both or neither" in one_line_error(cli("import", "--registry", str(tmp_path / "r")))
    line = one_line_error(cli("import", str(tmp_path), "--hf-cache", "--registry", str(tmp_path / "r")))
    assert "not both or neither" in line


def test_publish_offline_reaches_huggingface_hubs_own_refusal_and_uploads_nothing(adapter_repos: dict[str, Path], monkeypatch, tmp_path: Path):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    registry = tmp_path / "registry"
    with Hub(registry) as hub:
        module_id = hub.pull(CARDED).id
    calls: list[tuple[str, dict]] = []
    create_repo = HfApi.create_repo

    def recorded(name: str, real):
        def call(self, *args, **kwargs):
            calls.append((name, {"args": args, **kwargs}))
            return real(self, *args, **kwargs)

        return call

    monkeypatch.setattr(HfApi, "create_repo", recorded("create_repo", create_repo))
    monkeypatch.setattr(HfApi, "upload_folder", recorded("upload_folder", HfApi.upload_folder))
    line = one_line_error(cli("publish", str(module_id), "lab/published", "--private", "--registry", str(registry)))
    assert "cannot publish to lab/published: HF_HUB_OFFLINE is set, so nothing was uploaded" in line
    assert calls == [("create_repo", {"args": ("lab/published",), "private": True, "exist_ok": True})]  # the upload was never reached

    with Hub(registry) as hub, pytest.raises(HubError) as refused:
        hub.publish(module_id, "lab/published")
    # huggingface_hub's own request layer refused the request to the Hub's API.
    assert isinstance(refused.value.__cause__, OfflineModeIsEnabled) and "huggingface.co/api/repos/create" in str(refused.value.__cause__)
    assert "not a Hub repo id to publish to" in one_line_error(cli("publish", str(module_id), "lab/published@v1", "--registry", str(registry)))

"""`adapters train`: inits (random, a module, a strategy), push with provenance, and bad input."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import adapters, one_line_error, snapshot

FAST = ("--shots", "4", "--batch-size", "4", "--max-steps", "2", "--epochs", "1", "--json")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, trained_folders: dict[str, Path], suite: Path) -> Path:
    root = tmp_path_factory.mktemp("train") / "registry"
    for task in ("wn-supersense-noun-a", "wn-isa-animal"):
        result = adapters(root, "push", str(trained_folders[task]), "--dataset", str(suite / task))
        assert result.exit_code == 0, result.output
    return root


def trained(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_train_from_random_pushes_metrics_without_provenance(registry: Path, suite: Path) -> None:
    summary = trained(adapters(registry, "train", str(suite / "wn-isa-plant"), *FAST, "--push"))
    assert summary["train_examples"] == 8 and summary["steps"] == 2
    shown = json.loads(adapters(registry, "show", str(summary["module_id"]), "--json").output)
    assert shown["task"] == "wn-isa-plant" and shown["origin"] == "trained"
    assert shown["metrics"]["test_acc"] == pytest.approx(summary["test_acc"])
    assert shown["provenance"] is None


def test_method_options_reach_the_trained_module(registry: Path, suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "module"
    summary = trained(adapters(registry, "train", str(suite / "wn-isa-plant"), *FAST, "--method-option", "r=2", "-O", "lora_alpha=4", "--out", str(out)))
    assert summary["steps"] == 2
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"]) == (2, 4)


def test_train_from_a_module_records_it_as_the_init(registry: Path, suite: Path) -> None:
    source = json.loads(adapters(registry, "list", "--task", "wn-isa-animal", "--json").output)[0]
    summary = trained(adapters(registry, "train", str(suite / "wn-isa-artifact"), *FAST, "--init", str(source["id"]), "--push"))
    provenance = json.loads(adapters(registry, "show", str(summary["module_id"]), "--json").output)["provenance"]
    assert provenance["strategy"] == "module"
    assert [(s["module_id"], s["weight"]) for s in provenance["sources"]] == [(source["id"], 1.0)]


def test_train_from_a_strategy_records_the_ensemble_and_registers_nothing_else(registry: Path, suite: Path) -> None:
    before = {m["id"] for m in json.loads(adapters(registry, "list", "--json").output)}
    summary = trained(adapters(registry, "train", str(suite / "wn-supersense-noun-b"), *FAST, "--init", "el2n", "--push"))
    after = {m["id"] for m in json.loads(adapters(registry, "list", "--json").output)}
    assert after - before == {summary["module_id"]}, "only the trained module is registered"
    provenance = json.loads(adapters(registry, "show", str(summary["module_id"]), "--json").output)["provenance"]
    assert provenance["strategy"] == "el2n"
    assert sum(source["weight"] for source in provenance["sources"]) == pytest.approx(1.0)
    assert {source["module_id"] for source in provenance["sources"]} <= before


def test_train_from_a_composed_init_by_id_says_how_it_was_made(registry: Path, suite: Path) -> None:
    target = str(suite / "wn-supersense-noun-b")
    made = json.loads(adapters(registry, "ensemble", target, "-s", "guarded", "--shots", "4", "--max-steps", "2", "--json").output)
    shown = adapters(registry, "train", target, *[arg for arg in FAST if arg != "--json"], "--init", str(made["module_id"]))
    assert shown.exit_code == 0, shown.output
    assert f"init {made['module_id']} (guarded): {made['rationale']}" in " ".join(shown.output.split())


def fails_unchanged(registry: Path, *args: str) -> str:
    before = snapshot(registry)
    message = one_line_error(adapters(registry, "train", *args))
    assert snapshot(registry) == before
    return message


def test_cuda_without_a_gpu(registry: Path, suite: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("a GPU is present: --device cuda is valid here")
    assert "no GPU" in fails_unchanged(registry, str(suite / "wn-isa-plant"), *FAST, "--device", "cuda", "--push")


def test_dataset_without_train_split_or_too_few_shots(registry: Path, suite: Path, tmp_path: Path) -> None:
    no_train = Path(shutil.copytree(suite / "wn-isa-plant", tmp_path / "no-train"))
    (no_train / "train.jsonl").unlink()
    assert "no train split" in fails_unchanged(registry, str(no_train), "--push", "--json")
    assert "fewer than 2 x --shots 1000" in fails_unchanged(registry, str(suite / "wn-isa-plant"), "--shots", "1000", "--push", "--json")


def test_init_module_of_another_method(registry: Path, suite: Path) -> None:
    source = json.loads(adapters(registry, "list", "--task", "wn-isa-animal", "--json").output)[0]
    message = fails_unchanged(registry, str(suite / "wn-isa-plant"), *FAST, "--init", str(source["id"]), "--method", "prefix", "--push")
    assert "is a lora module, not prefix" in message


def test_nan_loss_stops_and_pushes_nothing(registry: Path, suite: Path) -> None:
    message = fails_unchanged(registry, str(suite / "wn-isa-plant"), "--shots", "16", "--max-steps", "20", "--lr", "1e30", "--push", "--json")
    assert "training diverged" in message


def _default_sigint() -> None:
    # A test run started as a background job of a non-interactive shell (`bash .ci/run &`, nohup) passes SIGINT on as
    # ignored, and Python keeps an ignored SIGINT ignored: Ctrl-C is what this test sends, so the child must take it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_until(process: subprocess.Popen, text: bytes, timeout_s: float) -> bytes:
    """The child's output up to and including `text` (raw bytes: a progress bar redraws in place, without newlines)."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and process.poll() is None, seen.decode(errors="replace")
        if select.select([process.stdout], [], [], left)[0]:
            seen += os.read(process.stdout.fileno(), 4096)
    return seen


def test_ctrl_c_during_training_leaves_the_registry_unchanged(registry: Path, suite: Path) -> None:
    before = snapshot(registry)
    command = [str(Path(sys.executable).with_name("adapters")), "train", str(suite / "wn-supersense-noun-a"), "--registry", str(registry)]
    # Rich draws the progress bar only on a terminal; these make the pipe one, so the bar says when training runs.
    terminal = {"COLUMNS": "200", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    process = subprocess.Popen(
        [*command, "--epochs", "50", "--push"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **terminal}, preexec_fn=_default_sigint
    )
    try:
        shown = read_until(process, b"training", timeout_s=300)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    output = (shown + rest).decode(errors="replace")
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert snapshot(registry) == before

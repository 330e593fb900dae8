"""The training loop (hub/training.py): repeatable on CPU, keeps the best dev epoch, stops on divergence,
respects max_steps and the progress switch, and agrees across processes under a distributed launch."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hub.datasets import Example, load_dataset
from hub.errors import HubError
from hub.formulations.cross_encoder import CrossEncoderFormulation
from hub.methods import get_method
from hub.training import TrainConfig, evaluate, resolve_device, train

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "wordnet"


# --- a tiny cross-encoder (random BERT, MiniLM's tokenizer): the loop's logic in milliseconds -------


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    from hub.backbones import load_tokenizer, resolve_base_model

    return load_tokenizer(resolve_base_model("minilm"))


def tiny_module(tokenizer, seed: int = 0):
    """A tiny BERT cross-encoder with LoRA r=4; dropout off so that only the loop decides what happens."""
    from transformers import BertConfig, BertForSequenceClassification

    from hub.backbones import resolve_base_model

    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    method = get_method("lora")
    model = method.attach(BertForSequenceClassification(config), method.default_config(resolve_base_model("minilm"), {"r": 4}))
    return model, method


def yes_examples(count: int, offset: int = 0, gold: str = "yes") -> list[Example]:
    """The gold candidate is always `gold`, in either position: learnable in a few steps."""
    return [
        Example(text=f"item number {offset + i}", choices=("yes", "no") if i % 2 else ("no", "yes"), label=(1 - i % 2) ^ (gold == "no")) for i in range(count)
    ]


class CountingFormulation(CrossEncoderFormulation):
    """Counts training steps (each calls `loss` once) and can script the loss of chosen steps."""

    def __init__(self, tokenizer, script=None) -> None:
        super().__init__(tokenizer)
        self.calls = 0
        self.script = script or (lambda step, loss: loss)

    def loss(self, model, batch):
        self.calls += 1
        return self.script(self.calls, super().loss(model, batch))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


QUIET = {"progress": False, "device": "cpu"}


# --- repeatability on the real MiniLM --------------------------------------------------------------


def test_same_seed_gives_identical_module_on_cpu(session_hub) -> None:
    examples = load_dataset(SUITE / "wn-isa-animal").split("train")[:4]
    session_hub.new_module("minilm", "lora", {"r": 4})  # loads the base model, which reseeds for its head

    def run(seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        torch.manual_seed(0)  # the same default init every time
        module = session_hub.new_module("minilm", "lora", {"r": 4})
        before = module.tensors()
        train(module.model, module.method, module.formulation, examples, (), TrainConfig(epochs=2, batch_size=2, lr=1e-2, seed=seed, **QUIET))
        return before, module.tensors()

    init, first = run(seed=1)
    init_again, second = run(seed=1)
    _, other = run(seed=2)
    assert same(init, init_again)
    assert not same(init, first), "training changed nothing, so the comparison proves nothing"
    assert same(first, second)
    assert not same(first, other), "the seed should decide the data order"


# --- best dev epoch ----------------------------------------------------------------------------------


def test_best_dev_epoch_is_kept_when_a_later_epoch_degrades(tokenizer) -> None:
    model, method = tiny_module(tokenizer)
    # The gold answer is the one the fresh model does not prefer, so there is something to learn.
    gold = "no" if evaluate(model, CountingFormulation(tokenizer), yes_examples(16, offset=100)) > 0.5 else "yes"
    train_examples, dev_examples = yes_examples(16, gold=gold), yes_examples(16, offset=100, gold=gold)
    steps_per_epoch = 4  # 16 examples, batch 4
    # Epoch 1 learns; from epoch 2 on the loss is negated, so gradient ascent unlearns it.
    degrade = CountingFormulation(tokenizer, lambda step, loss: loss if step <= steps_per_epoch else -loss)
    config = TrainConfig(epochs=3, batch_size=4, lr=3e-2, seed=0, patience=5, **QUIET)
    result = train(model, method, degrade, train_examples, dev_examples, config)

    devs = [row["dev"] for row in result.history]
    assert devs[1] > devs[0] and devs[-1] < devs[1], f"the scenario did not happen: dev by epoch {devs}"
    assert result.best_dev == max(devs) == devs[1]
    assert result.epochs_run == 3
    assert evaluate(model, degrade, dev_examples) == result.best_dev

    # The kept module is exactly epoch 1's: the same run stopped after one epoch.
    reference, _ = tiny_module(tokenizer)
    train(reference, method, CountingFormulation(tokenizer), train_examples, dev_examples, dataclasses.replace(config, epochs=1))
    assert same(method.get_tensors(model), method.get_tensors(reference))


# --- divergence --------------------------------------------------------------------------------------


def test_nan_loss_stops_with_one_line_error_and_pushes_nothing(session_hub) -> None:
    full = load_dataset(SUITE / "wn-isa-animal")
    small = dataclasses.replace(full, splits={"train": full.few_shot(2, seed=0).split("train"), "dev": full.split("dev")[:4]})
    catalog, blobs = session_hub.registry.catalog, session_hub.registry.blobs
    before = ([m.id for m in session_hub.list()], catalog.generation(), sorted(blobs.digests()))
    module = session_hub.new_module("minilm", "lora", {"r": 4})
    with pytest.raises(HubError) as caught:
        session_hub.train(module, small, TrainConfig(epochs=3, batch_size=2, lr=1e30, **QUIET), push=True)
    message = str(caught.value)
    assert message.startswith("training diverged: loss is ") and "\n" not in message, message
    assert ([m.id for m in session_hub.list()], catalog.generation(), sorted(blobs.digests())) == before
    assert all(bool(torch.isfinite(t).all()) for t in module.tensors().values()), "the model should hold its best (finite) module"


def test_infinite_loss_names_the_step_and_restores_the_best_module(tokenizer) -> None:
    model, method = tiny_module(tokenizer)
    initial = method.get_tensors(model)
    blow_up = CountingFormulation(tokenizer, lambda step, loss: loss * float("inf") if step == 3 else loss)
    with pytest.raises(HubError, match=r"^training diverged: loss is inf at step 3; lower --lr"):
        train(model, method, blow_up, yes_examples(16), (), TrainConfig(epochs=2, batch_size=4, lr=1e-2, **QUIET))
    assert blow_up.calls == 3, "training should stop at the diverging step"
    # No epoch finished, so the best module is the one training started from.
    assert same(method.get_tensors(model), initial)


# --- devices -----------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_gpu_is_a_one_line_error(tokenizer, name: str) -> None:
    with pytest.raises(HubError, match="no GPU is visible; use --device cpu or auto") as caught:
        resolve_device(name)
    assert "\n" not in str(caught.value)
    model, method = tiny_module(tokenizer)
    initial = method.get_tensors(model)
    with pytest.raises(HubError, match="no GPU is visible"):
        train(model, method, CountingFormulation(tokenizer), yes_examples(4), (), TrainConfig(device=name, progress=False))
    assert same(method.get_tensors(model), initial)


def test_unknown_device_is_a_one_line_error() -> None:
    with pytest.raises(HubError, match="unknown device 'tpu'; use auto, cpu or cuda"):
        resolve_device("tpu")


# --- max_steps and progress --------------------------------------------------------------------------


@pytest.mark.parametrize(("examples", "max_steps", "epochs_run"), [(20, 3, 1), (8, 3, 2), (8, 4, 2)])
def test_max_steps_is_respected(tokenizer, examples: int, max_steps: int, epochs_run: int) -> None:
    counting = CountingFormulation(tokenizer)
    model, method = tiny_module(tokenizer)
    result = train(model, method, counting, yes_examples(examples), (), TrainConfig(epochs=5, batch_size=4, max_steps=max_steps, patience=10, **QUIET))
    assert counting.calls == result.steps == max_steps
    assert result.epochs_run == epochs_run == len(result.history) - 1


def test_early_stopping_after_patience_epochs(tokenizer) -> None:
    # Frozen module (an lr far below float32 resolution): dev accuracy and loss never beat the start,
    # so training stops after `patience` evaluations.
    model, method = tiny_module(tokenizer)
    result = train(
        model, method, CountingFormulation(tokenizer), yes_examples(8), yes_examples(8, 50), TrainConfig(epochs=9, batch_size=4, lr=1e-30, patience=2, **QUIET)
    )
    assert result.epochs_run == 2 and result.steps == 4 and result.best_step == 0
    assert result.stopped_by == "patience"


@pytest.mark.parametrize("min_steps", [0, 5, 9])
def test_patience_counts_only_after_min_steps(tokenizer, min_steps: int) -> None:
    # The frozen module again: without min_steps it stops by patience after 2 evaluations (4 steps);
    # with it, no run ends by patience before min_steps, and a min_steps past the cap runs to the cap.
    model, method = tiny_module(tokenizer)
    config = TrainConfig(epochs=9, batch_size=4, lr=1e-30, patience=2, min_steps=min_steps, max_steps=8, **QUIET)
    result = train(model, method, CountingFormulation(tokenizer), yes_examples(8), yes_examples(8, 50), config)
    expected = {0: (4, "patience"), 5: (6, "patience"), 9: (8, "cap")}[min_steps]
    assert (result.steps, result.stopped_by) == expected
    assert [row["seconds"] for row in result.history] == sorted(row["seconds"] for row in result.history)


def test_eval_every_evaluates_by_steps_and_breaks_accuracy_ties_by_dev_loss(tokenizer) -> None:
    model, method = tiny_module(tokenizer)
    config = TrainConfig(epochs=4, batch_size=4, lr=1e-2, eval_every=3, patience=100, **QUIET)
    result = train(model, method, CountingFormulation(tokenizer), yes_examples(16), yes_examples(8, 50), config)
    assert [row["step"] for row in result.history] == [0, 3, 6, 9, 12, 15, 16]
    best = max(result.history, key=lambda row: (row["dev"], -row["dev_loss"]))
    assert result.best_step == best["step"] and result.best_dev == best["dev"]


def test_bad_training_numbers_are_refused_in_one_line(tokenizer) -> None:
    model, method = tiny_module(tokenizer)
    for bad, message in (
        (dict(lr=0.0), "--lr must be a positive number"),
        (dict(epochs=-1), "--epochs must be at least 1"),
        (dict(eval_every=0), "--eval-every must be at least 1"),
        (dict(min_steps=-1), "--min-steps must be 0 or more"),
    ):
        with pytest.raises(HubError, match=message):
            train(model, method, CountingFormulation(tokenizer), yes_examples(4), (), TrainConfig(**{**QUIET, **bad}))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("where", ["terminal", "log", "off"])
def test_progress_is_a_bar_on_a_terminal_lines_in_a_log_and_nothing_when_off(
    tokenizer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], where: str
) -> None:
    stream = Terminal() if where == "terminal" else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    model, method = tiny_module(tokenizer)
    config = TrainConfig(epochs=2, batch_size=4, progress=where != "off", device="cpu", label="training toy")
    train(model, method, CountingFormulation(tokenizer), yes_examples(8), yes_examples(4, 50), config)
    written = stream.getvalue()
    captured = capfd.readouterr()
    assert captured.out == ""
    if where == "terminal":
        assert "training toy" in written and "\x1b[" in written  # drawn with terminal control codes
    elif where == "log":
        # The first and the last update at least, as plain lines: "training toy: 1/4 ... (0 s)" ... "training toy: 4/4 ...".
        lines = written.splitlines()
        assert lines[0].startswith("training toy: 1/4") and lines[-1].startswith("training toy: 4/4") and "\x1b[" not in written
    else:
        assert written == "" and captured.err == ""


# --- several processes -------------------------------------------------------------------------------


def distributed_run(batch_size: int) -> dict:
    """What one process of the distributed test trains and reports (also run alone, in-process)."""
    from hub.backbones import load_tokenizer, resolve_base_model

    tokenizer = load_tokenizer(resolve_base_model("minilm"))
    model, method = tiny_module(tokenizer)
    # 24 train examples: 3 steps of 8 an epoch on one process, or 3 steps of 2 x 4 on two; 13 dev examples split 7 / 6.
    config = TrainConfig(epochs=3, batch_size=batch_size, lr=1e-2, seed=4, device="cpu", progress=False)
    result = train(model, method, CountingFormulation(tokenizer), yes_examples(24), yes_examples(13, 100), config, yes_examples(5, 200))
    return {
        "rank": int(os.environ.get("RANK", 0)), "main": result.main_process, "steps": result.steps,
        # Wall-clock seconds differ between processes; everything else in a history row must agree.
        "history": [{key: value for key, value in row.items() if key != "seconds"} for row in result.history],
        "best": result.best_dev, "test": result.test, "tensors": {name: tensor.tolist() for name, tensor in method.get_tensors(model).items()},
    }  # fmt: skip


# Each process writes its own file: two processes printing long lines into one pipe may interleave them.
WORKER = """
import json, os, sys
sys.path[:0] = [{tests!r}, {root!r}]
from test_training import distributed_run
result = distributed_run(int(sys.argv[1]))
with open(os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".json"), "w") as out:
    json.dump(result, out)
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch has no torch.distributed")
def test_two_processes_agree_and_match_one_process_with_twice_the_batch(tmp_path: Path) -> None:
    """Under a distributed launch (gloo on CPU; NCCL on GPUs runs the same code) the processes split the
    batches and the dev set, reduce the scores, and so decide early stopping and the best epoch together."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(ROOT / "tests"), root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), "4", str(tmp_path)]
    done = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    pair = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    single = distributed_run(8)

    assert [row["rank"] for row in pair] == [0, 1] and [row["main"] for row in pair] == [True, False]
    first, second = pair
    for key in ("steps", "history", "best", "test", "tensors"):
        assert first[key] == second[key], f"the processes disagree on {key}"
    assert first["steps"] == single["steps"] == 9
    assert first["best"] == single["best"] and first["test"] == single["test"]
    assert [row["dev"] for row in first["history"]] == [row["dev"] for row in single["history"]]
    assert [row["loss"] for row in first["history"][1:]] == pytest.approx([row["loss"] for row in single["history"][1:]], abs=1e-5)
    # The kept module is trained (the dev loss breaks the accuracy tie), and 9 Adam steps at lr 1e-2 turn
    # the float noise of reducing over two processes into differences of ~2e-4.
    for name, values in single["tensors"].items():
        assert torch.allclose(torch.tensor(first["tensors"][name]), torch.tensor(values), atol=1e-3), name

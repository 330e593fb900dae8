"""Training throughput: deltahub's `hub.training.train` against plain PEFT + `transformers.Trainer`.

Both sides train the same LoRA module (the paper's r=10, alpha=16) on the
packaged all-MiniLM-L6-v2 cross-encoder, on a WordNet task, with the same batch
size, number of steps, learning rate, data order and loss:

    python benchmarks/train_speed.py --task wn-isa-animal --steps 30 --batch-size 8 --repeats 2

(b) is what a user would write without deltahub: `get_peft_model` on
`AutoModelForSequenceClassification`, a torch Dataset of examples, the data
collator `CrossEncoderFormulation.collate` and a `compute_loss` doing the softmax
over each example's candidates. Trainer runs with its evaluation, saving and
logging off, a constant learning rate and no gradient clipping (deltahub clips
nothing), and reads the examples sequentially in the order deltahub draws them.
Only `trainer.train()` is timed, while deltahub's whole `train()` call is
(setup included), which favours the Trainer.

Each measurement runs in a fresh process (so peak RSS is its own), alternating
a, b, a, b, ...; the table shows the median. Besides wall time it shows the
process's CPU time over the timed region, which other load on a shared machine
disturbs less. On a GPU peak memory is
`torch.cuda.max_memory_allocated` over the timed region; on a CPU it is the
process's peak RSS (`resource.getrusage`), whose growth during training is
shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hub.devices import AUTO_DEVICE  # noqa: E402

IMPLEMENTATIONS = ("deltahub", "trainer")
LR = 5e-4
WEIGHT_DECAY = 0.01  # torch.optim.AdamW's default, which deltahub uses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="wn-isa-animal", help="a task folder under suites/wordnet")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each implementation, alternating")
    parser.add_argument("--device", default=AUTO_DEVICE, help="auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args)), flush=True)
        return

    runs: dict[str, list[dict]] = {name: [] for name in IMPLEMENTATIONS}
    for repeat in range(args.repeats):
        for name in IMPLEMENTATIONS:
            row = run_worker(name, args)
            runs[name].append(row)
            print(
                f"run {repeat + 1}/{args.repeats} {name:8s} {row['examples_per_s']:8.2f} examples/s  {row['seconds']:7.2f} s  "
                f"{row['cpu_seconds']:7.2f} CPU s  peak {row['peak_mib']:7.0f} MiB",
                flush=True,
            )
    checksums = {row["init_checksum"] for rows in runs.values() for row in rows}
    if len(checksums) != 1:
        sys.exit(f"the two sides did not start from the same module (init checksums {sorted(checksums)}); the comparison is void")
    report(runs, args)


def run_worker(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--task", args.task, "--steps", str(args.steps)]
    command += ["--batch-size", str(args.batch_size), "--device", args.device, "--seed", str(args.seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{name} worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(runs: dict[str, list[dict]], args: argparse.Namespace) -> None:
    first = runs["deltahub"][0]
    print()
    print(f"task {args.task}, {args.steps} steps of batch {args.batch_size}, device {first['device']}, {args.repeats} runs each (median)")
    memory = "peak GPU MiB" if first["device"].startswith("cuda") else "peak RSS MiB  RSS growth MiB"
    print(f"{'implementation':30s} {'examples/s':>10s} {'seconds':>8s} {'CPU s':>8s}  {memory}")
    medians = {}
    for name, label in zip(IMPLEMENTATIONS, ("deltahub hub.training.train", "PEFT + transformers.Trainer")):
        rows = runs[name]
        medians[name] = statistics.median(row["examples_per_s"] for row in rows)
        seconds = statistics.median(row["seconds"] for row in rows)
        cpu_seconds = statistics.median(row["cpu_seconds"] for row in rows)
        peak = statistics.median(row["peak_mib"] for row in rows)
        extra = f"  {statistics.median(row['growth_mib'] for row in rows):14.0f}" if "growth_mib" in rows[0] else ""
        print(f"{label:30s} {medians[name]:10.2f} {seconds:8.2f} {cpu_seconds:8.2f}  {peak:12.0f}{extra}")
    ratio = medians["deltahub"] / medians["trainer"]
    print(f"ratio deltahub / Trainer (examples/s): {ratio:.3f}  ({'not slower' if ratio >= 1.0 else 'SLOWER'})")
    cpu_ratio = statistics.median(row["cpu_seconds"] for row in runs["trainer"]) / statistics.median(row["cpu_seconds"] for row in runs["deltahub"])
    print(f"ratio Trainer / deltahub (CPU seconds of the process; steadier than wall time on a shared machine): {cpu_ratio:.3f}")


# --- one measurement, in its own process ---------------------------------------------------------


def measure(name: str, args: argparse.Namespace) -> dict:
    import torch

    from hub.backbones import load_tokenizer, resolve_base_model
    from hub.datasets import load_dataset
    from hub.formulations.cross_encoder import CrossEncoderFormulation
    from hub.training import resolve_device

    device = resolve_device(args.device)
    ref = resolve_base_model("minilm")
    formulation = CrossEncoderFormulation(load_tokenizer(ref))
    train_examples = list(load_dataset(ROOT / "suites" / "wordnet" / args.task).split("train"))
    epochs = -(-args.steps * args.batch_size // len(train_examples))
    model = build_model(name, ref, args.seed)
    init_checksum = checksum(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = peak_rss_mib()
    if name == "deltahub":
        seconds, cpu_seconds, steps = train_deltahub(model, formulation, train_examples, epochs, device, args)
    else:
        seconds, cpu_seconds, steps = train_trainer(model, formulation, deltahub_order(train_examples, epochs, args.seed), device, args)
    if steps != args.steps:
        raise SystemExit(f"{name} ran {steps} steps, not {args.steps}")
    row = {
        "impl": name,
        "device": str(device),
        "steps": steps,
        "seconds": seconds,
        "examples_per_s": steps * args.batch_size / seconds,
        "cpu_seconds": cpu_seconds,
        "init_checksum": init_checksum,
    }
    if device.type == "cuda":
        row["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        row["peak_mib"] = peak_rss_mib()
        row["growth_mib"] = row["peak_mib"] - rss_before
    return row


def build_model(name: str, ref, seed: int):
    """The same module on both sides: the seeded one-logit head, then LoRA attached under the same seed."""
    import torch

    if name == "deltahub":
        from hub.backbones import load_base_model
        from hub.methods import get_method

        method = get_method("lora")
        base = load_base_model(ref)  # seeds its head with 0
        torch.manual_seed(seed)
        return method.attach(base, method.default_config(ref))
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(ref.path, num_labels=1, local_files_only=True)
    torch.manual_seed(seed)
    return get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=10, lora_alpha=16, lora_dropout=0.0))


def checksum(model) -> str:
    import hashlib

    digest = hashlib.sha256()
    for parameter_name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            digest.update(parameter_name.encode())
            digest.update(parameter.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def deltahub_order(examples: list, epochs: int, seed: int) -> list:
    """The examples in the order deltahub's train() draws them (one seeded shuffle per epoch)."""
    order = random.Random(seed)
    sequence = []
    for _ in range(epochs):
        shuffled = list(examples)
        order.shuffle(shuffled)
        sequence += shuffled
    return sequence


def train_deltahub(model, formulation, examples, epochs, device, args) -> tuple[float, float, int]:
    from hub.methods import get_method
    from hub.training import TrainConfig, train

    config = TrainConfig(epochs=epochs, lr=LR, batch_size=args.batch_size, seed=args.seed, device=str(device), max_steps=args.steps, progress=False)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = train(model, get_method("lora"), formulation, examples, (), config)
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, result.steps


def train_trainer(model, formulation, ordered_examples, device, args) -> tuple[float, float, int]:
    import torch
    from transformers import Trainer, TrainingArguments

    from hub.formulations.base import Batch

    class Examples(torch.utils.data.Dataset):
        def __init__(self, examples):
            self.examples = examples

        def __len__(self):
            return len(self.examples)

        def __getitem__(self, index):
            return self.examples[index]

    def collate(examples):
        batch = formulation.collate(examples)
        return {**batch.inputs, **batch.extras}

    class CrossEncoderTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            extras = {key: inputs.pop(key) for key in ("owner", "position", "gold", "width")}
            loss = formulation.loss(model, Batch(inputs=inputs, extras=extras, size=len(extras["gold"])))
            return (loss, None) if return_outputs else loss

    precision = {}
    if device.type == "cuda":
        precision = {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=args.batch_size,
            max_steps=args.steps,
            learning_rate=LR,
            weight_decay=WEIGHT_DECAY,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
            optim="adamw_torch",
            seed=args.seed,
            train_sampling_strategy="sequential",  # the order deltahub drew, given by the dataset
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            use_cpu=device.type == "cpu",
            **precision,
        )
        trainer = CrossEncoderTrainer(model=model, args=training_args, train_dataset=Examples(ordered_examples), data_collator=collate)
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train()
        sync(device)
        return time.perf_counter() - start, time.process_time() - cpu_start, trainer.state.global_step


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    main()

"""Training a module on a task: AdamW on the module's parameters, dev evaluation, best-state keeping.

One loop serves a CPU, one GPU, and several GPUs under `accelerate launch`. An
`accelerate.Accelerator` wraps the model for data parallelism and mixed precision
(bf16 where the GPU has it, else fp16 with a gradient scaler) and carries the
collectives; on a single CPU process it adds nothing, so a seed gives the same
module every time.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hub.datasets import Example
from hub.devices import AUTO_DEVICE
from hub.errors import HubError
from hub.formulations import Formulation
from hub.methods import Method
from hub.progress import progress


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the paper's (lr 5e-4, batch 8).

    `batch_size` is per process: under `accelerate launch` with N processes a step sees N × batch_size examples.
    """

    epochs: int = 10
    lr: float = 5e-4
    batch_size: int = 8
    seed: int = 0
    device: str = AUTO_DEVICE
    patience: int = 3  # dev evaluations without improvement before stopping
    # Patience starts counting only after this many steps: a default init often needs a while before its
    # dev score first moves, and stopping it then would compare a slow start with a finished run.
    min_steps: int = 0
    max_steps: int | None = None
    eval_every: int | None = None  # steps between dev evaluations; None: once an epoch
    eval_batch_size: int = 32
    progress: bool = True
    label: str = "training"  # what the progress bar or log line calls this training

    def check(self) -> TrainConfig:
        """Refuse values no training can run with, in one line naming the option."""
        for name, value in (("epochs", self.epochs), ("batch-size", self.batch_size), ("patience", self.patience), ("eval-batch-size", self.eval_batch_size)):
            if value < 1:
                raise HubError(f"--{name} must be at least 1, got {value}")
        if self.min_steps < 0:
            raise HubError(f"--min-steps must be 0 or more, got {self.min_steps}")
        for name, value in (("max-steps", self.max_steps), ("eval-every", self.eval_every)):
            if value is not None and value < 1:
                raise HubError(f"--{name} must be at least 1, got {value}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise HubError(f"--lr must be a positive number, got {self.lr}")
        return self


@dataclass(frozen=True)
class DevScore:
    """Accuracy, with the mean loss of the gold answers to break ties (few-shot dev sets tie often)."""

    accuracy: float
    loss: float

    def beats(self, other: DevScore) -> bool:
        return self.accuracy > other.accuracy or (self.accuracy == other.accuracy and self.loss < other.loss)


@dataclass
class TrainResult:
    """`best_dev` is the kept checkpoint's dev accuracy; `history` one row per evaluation (step 0: the init).

    `stopped_by` says what ended the run: "patience" (no better dev score for `patience` evaluations
    after `min_steps`), or "cap" (the step or epoch budget ran out first).
    """

    best_dev: float
    test: float | None
    steps: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    module_id: int | None = None  # set when the trained module was pushed
    main_process: bool = True  # False on the other processes of an `accelerate launch`: only the main one should push
    stopped_by: str = "cap"


def resolve_device(name: str) -> torch.device:
    if name == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HubError("--device cuda was asked for but no GPU is visible; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise HubError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def mixed_precision(device: torch.device) -> str:
    """bf16 on GPUs that support it, fp16 on older ones; full precision on CPU."""
    if device.type != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast(device: torch.device):
    """The autocast context matching `mixed_precision` (for evaluation outside `train`)."""
    precision = mixed_precision(device)
    if precision == "no":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@torch.no_grad()
def measure(
    model: nn.Module,
    formulation: Formulation,
    examples: Sequence[Example],
    batch_size: int = 32,
    device: torch.device | None = None,
    accelerator=None,
) -> DevScore:
    """Accuracy (the share of examples whose gold candidate is chosen) and the mean gold-answer loss.

    With an `accelerator` of several processes each one scores its own share of the
    examples and the sums are reduced, so every process returns the same numbers.
    `model` must then be the unwrapped module: a DDP forward is a collective, and the
    shares may differ in batch count.
    """
    device = device or next(model.parameters()).device
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    mine = examples[rank::world] if world > 1 else examples
    was_training = model.training
    model.eval()
    # Summed on the device and read once: a read per batch would wait for the GPU every batch.
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for batch in formulation.batches(mine, batch_size):
        batch = batch.to(device)
        with autocast(device):
            chosen, loss = formulation.choose_with_loss(model, batch)
        sums[0] += (chosen == batch.extras["gold"]).sum()
        sums[1] += loss.double() * batch.size
        sums[2] += batch.size
    model.train(was_training)
    if world > 1:
        sums = accelerator.reduce(sums, reduction="sum")
    correct, loss, total = sums.tolist()
    return DevScore(correct / max(total, 1), loss / max(total, 1))


def evaluate(
    model: nn.Module, formulation: Formulation, examples: Sequence[Example], batch_size: int = 32, device: torch.device | None = None, accelerator=None
) -> float:
    """Accuracy on `examples` (see `measure`)."""
    return measure(model, formulation, examples, batch_size, device, accelerator).accuracy


def make_accelerator(device: torch.device):
    """An Accelerator for this device; `device_placement=False` because `train` places the model itself."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    precision = mixed_precision(device)
    # Accelerate keeps its state in per-process singletons that refuse to change device or precision,
    # but one process may train on CPU and later on a GPU (tests, notebooks). A single process has no
    # process group to lose, so it starts afresh; a launched one keeps its group and renews the rest.
    process = PartialState._shared_state
    if process and process.get("num_processes", 1) == 1 and process["device"].type != device.type:
        AcceleratorState._reset_state(reset_partial_state=True)
    elif AcceleratorState._shared_state.get("_mixed_precision", precision) != precision:
        AcceleratorState._reset_state()
    # cpu=True is what makes a launch without GPUs (torchrun, `accelerate launch --cpu`) a multi-CPU one.
    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision, device_placement=False)


def train(
    model: nn.Module,
    method: Method,
    formulation: Formulation,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    config: TrainConfig,
    test_examples: Sequence[Example] = (),
) -> TrainResult:
    """Train in place; the model ends holding the module of the best dev epoch (also when training fails)."""
    if not train_examples:
        raise HubError("nothing to train on: the train split is empty")
    config.check()
    device = resolve_device(config.device)
    accelerator = make_accelerator(device)
    rank, world = accelerator.process_index, accelerator.num_processes
    if world > 1:
        if accelerator.device.type != device.type:
            raise HubError(
                f"--device {config.device} does not match this accelerate launch, whose processes run on {accelerator.device.type}; use --device auto"
            )
        device = accelerator.device  # this process's own GPU
    seed_everything(config.seed)
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    best_tensors = method.get_tensors(model)
    # `wrapped` runs the training forward (DDP across processes, autocast on GPU); `model` stays the
    # plain module whose tensors are read and written, and runs evaluation.
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    # Every process draws the same order and takes its own batches of it.
    order = random.Random(config.seed)
    steps_per_epoch = math.ceil(math.ceil(len(train_examples) / config.batch_size) / world)
    total = config.epochs * steps_per_epoch if config.max_steps is None else min(config.max_steps, config.epochs * steps_per_epoch)
    # Reading the loss makes the CPU wait for the GPU; every few steps lets it prepare the next batches
    # meanwhile. On a CPU the read is free, so each step is checked and divergence stops at once.
    check_every = 1 if device.type == "cpu" else 16

    def dev_score(train_loss: float) -> DevScore:
        if dev_examples:
            return measure(model, formulation, dev_examples, config.eval_batch_size, device, accelerator)
        # No dev split: the lowest training loss since the last evaluation stands in for dev.
        return DevScore(0.0, train_loss)

    eval_every = config.eval_every or steps_per_epoch
    started = time.perf_counter()
    stopped_by = "cap"
    try:
        best = dev_score(math.inf)
        best_step = 0
        history: list[dict[str, float]] = [
            {"step": 0, "epoch": 0, "loss": math.nan, "dev": best.accuracy if dev_examples else math.nan, "dev_loss": best.loss, "seconds": 0.0}
        ]
        steps, stale, epochs_run = 0, 0, 0
        losses: list[float] = []
        pending: list[torch.Tensor] = []
        stop = False
        with progress(config.label, total, enabled=config.progress and accelerator.is_main_process) as bar:
            status = ""
            for epoch in range(1, config.epochs + 1):
                wrapped.train()
                shuffled = list(train_examples)
                order.shuffle(shuffled)
                chunks = [shuffled[start : start + config.batch_size] for start in range(0, len(shuffled), config.batch_size)]
                # Processes take turns through the chunks; the last turn wraps round so all do the same number of steps.
                mine = [chunks[(turn * world + rank) % len(chunks)] for turn in range(steps_per_epoch)]
                for examples in mine:
                    batch = formulation.collate(examples).to(device)
                    loss = formulation.loss(wrapped, batch)
                    optimizer.zero_grad(set_to_none=True)
                    accelerator.backward(loss)
                    optimizer.step()
                    pending.append(loss.detach())
                    steps += 1
                    last = steps >= total
                    evaluating = steps % eval_every == 0 or last
                    if len(pending) >= check_every or evaluating:
                        losses += _read_losses(accelerator, pending, steps)
                        pending = []
                        status = f"loss {losses[-1]:.3f}  best dev {best.accuracy:.3f}"
                    bar.update(steps, status)
                    if evaluating:
                        mean_loss = float(np.mean(losses))
                        losses = []
                        score = dev_score(mean_loss)
                        history.append(
                            {
                                "step": steps,
                                "epoch": epoch,
                                "loss": mean_loss,
                                "dev": score.accuracy if dev_examples else math.nan,
                                "dev_loss": score.loss,
                                "seconds": time.perf_counter() - started,
                            }
                        )
                        if score.beats(best):
                            best, best_step, best_tensors, stale = score, steps, method.get_tensors(model), 0
                        else:
                            stale += 1
                        wrapped.train()
                        # The score is the same on every process (reduced sums, or the reduced losses), so all stop together.
                        patient = stale >= config.patience and steps >= config.min_steps
                        stopped_by = "patience" if patient else "cap"
                        stop = patient or last
                    if stop:
                        break
                epochs_run = epoch
                if stop:
                    break
    finally:
        # Hand back the best module, also when training stopped on divergence or Ctrl-C, and leave no
        # accelerate wrapper behind: not the autocast forward patched onto the model, nor (across
        # processes) the DDP wrapper, whose gradient hooks would make any later backward through
        # `model` (a gradient-norm score, another training) wait for the other processes.
        method.set_tensors(model, {name: tensor.to(device) for name, tensor in best_tensors.items()})
        model.eval()
        accelerator.unwrap_model(wrapped, keep_fp32_wrapper=False)
        if world > 1:
            wrapped = optimizer = None
            accelerator.free_memory()  # drops accelerate's own references, then collects
    test = evaluate(model, formulation, test_examples, config.eval_batch_size, device, accelerator) if test_examples else None
    best_dev = best.accuracy if dev_examples else -best.loss
    return TrainResult(
        best_dev=best_dev,
        test=test,
        steps=steps,
        epochs_run=epochs_run,
        history=history,
        best_step=best_step,
        main_process=accelerator.is_main_process,
        stopped_by=stopped_by,
    )


def _read_losses(accelerator, pending: list[torch.Tensor], steps: int) -> list[float]:
    """The losses of the last few steps (averaged over processes); a NaN or Inf among them stops training.

    The losses are float32 even under autocast (the formulation takes log-softmax in float32),
    so an overflow shows up here as Inf or NaN rather than being rounded away.
    """
    values = torch.stack(pending).float()
    if accelerator.num_processes > 1:
        values = accelerator.reduce(values, reduction="mean")  # a NaN on any process reaches all of them
    losses = values.tolist()
    for offset, value in enumerate(losses):
        if not math.isfinite(value):
            step = steps - len(losses) + offset + 1
            raise HubError(f"training diverged: loss is {value} at step {step}; lower --lr (nothing was pushed)")
    return losses

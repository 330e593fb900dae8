"""Training a module on a task: AdamW on the module's parameters, dev evaluation, best-state keeping."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

from hub.datasets import Example
from hub.errors import HubError
from hub.formulations import Formulation
from hub.methods import Method


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults are the paper's (lr 5e-4, batch 8)."""

    epochs: int = 10
    lr: float = 5e-4
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    patience: int = 3
    max_steps: int | None = None
    eval_batch_size: int = 32
    progress: bool = True


@dataclass
class TrainResult:
    best_dev: float
    test: float | None
    steps: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    module_id: int | None = None  # set when the trained module was pushed


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HubError("--device cuda was asked for but no GPU is visible; use --device cpu or auto")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise HubError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device):
    """bf16 autocast on GPUs that support it, fp16 on older ones; full precision on CPU."""
    if device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, formulation: Formulation, examples: Sequence[Example], batch_size: int = 32, device: torch.device | None = None) -> float:
    """Accuracy: the share of examples whose gold candidate is chosen."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for batch in formulation.batches(examples, batch_size):
        batch = batch.to(device)
        with autocast(device):
            chosen = formulation.choose(model, batch)
        correct += int((chosen == batch.extras["gold"]).sum())
    model.train(was_training)
    return correct / max(len(examples), 1)


def train(
    model: nn.Module,
    method: Method,
    formulation: Formulation,
    train_examples: Sequence[Example],
    dev_examples: Sequence[Example],
    config: TrainConfig,
    test_examples: Sequence[Example] = (),
) -> TrainResult:
    """Train in place; the model ends holding the module of the best dev epoch."""
    if not train_examples:
        raise HubError("nothing to train on: the train split is empty")
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr)
    order = random.Random(config.seed)
    best_dev = evaluate(model, formulation, dev_examples, config.eval_batch_size, device) if dev_examples else -math.inf
    best_tensors = method.get_tensors(model)
    history: list[dict[str, float]] = [{"epoch": 0, "loss": math.nan, "dev": best_dev}]
    steps, stale, epochs_run = 0, 0, 0
    steps_per_epoch = math.ceil(len(train_examples) / config.batch_size)
    total = config.epochs * steps_per_epoch if config.max_steps is None else min(config.max_steps, config.epochs * steps_per_epoch)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(), disable=not config.progress, transient=True)
    with progress:
        bar = progress.add_task("training", total=total, status="")
        for epoch in range(1, config.epochs + 1):
            model.train()
            shuffled = list(train_examples)
            order.shuffle(shuffled)
            losses = []
            for batch in formulation.batches(shuffled, config.batch_size):
                batch = batch.to(device)
                with autocast(device):
                    loss = formulation.loss(model, batch)
                if not torch.isfinite(loss):
                    raise HubError(f"training diverged: loss is {float(loss)} at step {steps + 1}; lower --lr (nothing was pushed)")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                steps += 1
                progress.update(bar, advance=1, status=f"loss {losses[-1]:.3f}  dev {best_dev:.3f}")
                if config.max_steps is not None and steps >= config.max_steps:
                    break
            epochs_run = epoch
            dev = evaluate(model, formulation, dev_examples, config.eval_batch_size, device) if dev_examples else -float(np.mean(losses))
            history.append({"epoch": epoch, "loss": float(np.mean(losses)), "dev": dev})
            if dev > best_dev:
                best_dev, best_tensors, stale = dev, method.get_tensors(model), 0
            else:
                stale += 1
            if stale >= config.patience or (config.max_steps is not None and steps >= config.max_steps):
                break
    method.set_tensors(model, {name: tensor.to(device) for name, tensor in best_tensors.items()})
    model.eval()
    test = evaluate(model, formulation, test_examples, config.eval_batch_size, device) if test_examples else None
    return TrainResult(best_dev=best_dev, test=test, steps=steps, epochs_run=epochs_run, history=history)

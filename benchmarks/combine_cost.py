"""What each composition operator (`--combine`) costs to build an init, against `linear`.

Composes N sources of MiniLM's LoRA shape (6 layers, query and value, rank 10, a one-logit head)
with uniform weights under every operator and prints the median seconds over repeats.

    python benchmarks/combine_cost.py --sources 19 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ensembling.candidates import Candidate
from ensembling.operators import OPERATORS, combine, parse_operator

SHAPES = {
    **{f"layer.{i}.{target}.lora_{ab}.weight": (10, 384) if ab == "A" else (384, 10) for i in range(6) for target in ("query", "value") for ab in "AB"},
    "classifier.weight": (1, 384),
}


def source(index: int) -> Candidate:
    generator = torch.Generator().manual_seed(index)
    tensors = {name: torch.randn(shape, generator=generator) * 0.05 for name, shape in SHAPES.items()}
    return Candidate(index, f"task-{index}", "c", f"{index:064d}", tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=19)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sources = [source(index) for index in range(args.sources)]
    weights = [1 / args.sources] * args.sources
    print(f"{args.sources} sources, {len(SHAPES) // 2} LoRA pairs of rank 10 (MiniLM, query and value); median of {args.repeats}")
    for name in OPERATORS:
        operator = parse_operator(name)
        seconds = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            combine(sources, weights, operator, seed=repeat)
            seconds.append(time.perf_counter() - started)
        print(f"{operator.label:>24}: {statistics.median(seconds):7.3f} s")


if __name__ == "__main__":
    main()

"""How closely the parameter sketch (hub.embeddings.parameter_sketch) tracks the cosine between modules.

Draws pairs of LoRA-shaped modules (MiniLM's 6 layers, q/v, rank 10) whose true
flattened cosine spans -0.95..0.95, and prints the absolute error of the sketch
cosine for several sketch sizes.

    python benchmarks/sketch.py
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hub.embeddings import SKETCH_DIM, parameter_sketch

SHAPES = {f"layer.{i}.{target}.lora_{ab}.weight": (10, 384) if ab == "A" else (384, 10) for i in range(6) for target in ("query", "value") for ab in "AB"}


def pair(cosine: float, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    base = {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}
    noise = {name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()}
    return base, {name: cosine * base[name] + (1 - cosine**2) ** 0.5 * noise[name] for name in SHAPES}


def flat_cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    x = torch.cat([a[name].reshape(-1) for name in sorted(a)])
    y = torch.cat([b[name].reshape(-1) for name in sorted(b)])
    return float(x @ y / (x.norm() * y.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--dims", default=f"128,256,{SKETCH_DIM},1024")
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    pairs = [pair(float(c), generator) for c in np.linspace(-0.95, 0.95, args.pairs)]
    truth = np.array([flat_cosine(a, b) for a, b in pairs])
    print(f"{len(pairs)} module pairs of {sum(np.prod(s) for s in SHAPES.values()):,} parameters; true cosine {truth.min():.2f}..{truth.max():.2f}")
    print(f"{'sketch dim':>10} {'mean |err|':>11} {'p95 |err|':>10} {'max |err|':>10} {'pearson r':>10}")
    for dim in (int(d) for d in args.dims.split(",")):
        sketched = np.array([float(parameter_sketch(a, dim) @ parameter_sketch(b, dim)) for a, b in pairs])
        error = np.abs(sketched - truth)
        default = "  (default)" if dim == SKETCH_DIM else ""
        print(f"{dim:>10} {error.mean():>11.4f} {np.percentile(error, 95):>10.4f} {error.max():>10.4f} {np.corrcoef(sketched, truth)[0, 1]:>10.4f}{default}")


if __name__ == "__main__":
    main()

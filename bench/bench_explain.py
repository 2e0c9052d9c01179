"""IntegratedGradients (50 steps) over 600 genes with the DeepChrome CNN on 2 cores.

Batched (all genes x steps in large internal batches, as `deepchrome explain` does) against a
Python loop over genes (one captum call per gene), in the same run.

Run: python bench/bench_explain.py
"""

from __future__ import annotations

import time

import torch

from deepchrome.interpret import attribute
from deepchrome.models import DeepChromeCNN


def main() -> None:
    torch.manual_seed(0)
    net = DeepChromeCNN(n_marks=5, n_bins=100).eval()
    x = torch.log1p(torch.poisson(torch.full((600, 5, 100), 3.0)))
    start = time.perf_counter()
    batched = attribute(net, x, n_steps=50)
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    looped = [attribute(net, x[i : i + 1], n_steps=50).values for i in range(len(x))]
    loop_seconds = time.perf_counter() - start
    same = torch.allclose(torch.from_numpy(batched.values), torch.cat([torch.from_numpy(v) for v in looped]), atol=1e-5)
    print(f"IntegratedGradients, 50 steps, 600 genes x 5 marks x 100 bins, {torch.get_num_threads()} threads")
    print(f"{'batched (deepchrome explain)':<32}{batched_seconds:>8.2f} s")
    print(f"{'loop over genes':<32}{loop_seconds:>8.2f} s")
    print(f"batched is {loop_seconds / batched_seconds:.1f}x faster; identical attributions: {same}")


if __name__ == "__main__":
    main()

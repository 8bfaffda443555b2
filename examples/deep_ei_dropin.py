"""deep-ei's README examples on JAX: the same torch code, one import line changed.

The code below is deep-ei 0.7.0's README, block by block, with ``from deep_ei import ...``
changed to ``from bridges.deep_ei import ...``. Two additions, so that the two runs can be
compared: ``torch.manual_seed`` before each network is built (the same weights in both runs;
``--seed K`` builds other ones),
and ``// S`` on the sample counts (``S = 1``; ``--fast`` sets ``S = 10`` for CI). One fix: the
README's ``ei_parts_matrix(..., samles=50000, ...)`` is a typo that makes deep-ei itself raise
``TypeError``; it is spelled ``samples`` here.

    python examples/deep_ei_dropin.py                 # bridges.deep_ei (JAX)
    python examples/deep_ei_dropin.py --fast          # a tenth of the samples (CI)
    .venv-ref/bin/python examples/deep_ei_dropin.py --deep-ei   # deep-ei 0.7.0 itself

Each run prints the README's results and the wall time.
"""

import argparse
import os
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="a tenth of the samples (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--deep-ei", action="store_true", help="run deep-ei 0.7.0 itself (its own venv)")
    p.add_argument("--seed", type=int, default=0, help="build other networks (seeds 10*seed + 1..6)")
    p.add_argument("--out", default=None, help="unused; accepted like the other examples")
    args = p.parse_args(argv)
    S = 10 if args.fast else 1
    t0 = time.perf_counter()

    import torch
    import torch.nn as nn
    if args.deep_ei:
        from deep_ei import topology_of, ei, ei_parts, ei_parts_matrix, sensitivity
    else:
        from bridges.deep_ei import topology_of, ei, ei_parts, ei_parts_matrix, sensitivity
    results = {}

    # --- README block 1: EI of a 5 -> 5 dense layer with a sigmoid ---------------------------
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dtype = torch.float32
    torch.set_default_dtype(dtype)
    torch.manual_seed(10 * args.seed + 1)
    network = nn.Linear(5, 5, bias=False).to(device)
    top = topology_of(network, input=torch.zeros((1, 5)).to(device))
    EI = ei(network, top,
            samples=int(1e5) // S,
            batch_size=100,
            in_range=(0, 1),
            in_bins=8,
            out_range=(0, 1),
            out_bins=8,
            activation=nn.Sigmoid(),
            device=device)
    results["ei"] = EI

    # --- README block 2: ranges and activations from the topology ----------------------------
    torch.manual_seed(10 * args.seed + 2)
    network = nn.Sequential(
        nn.Linear(20, 10, bias=False),
        nn.Sigmoid(),
        nn.Linear(10, 5, bias=False),
        nn.Tanh()
    )
    top = topology_of(network, input=torch.zeros((1, 20)).to(device))
    layer1, _, layer2, _ = network
    EI_layer1 = ei(layer1, top,
                   samples=int(1e5) // S,
                   batch_size=100,
                   in_range=(0, 1),
                   in_bins=8,
                   out_bins=8,
                   device=device)
    EI_layer2 = ei(layer2, top,
                   samples=int(1e5) // S,
                   batch_size=100,
                   in_bins=8,
                   out_bins=8,
                   device=device)
    results["ei_layer1"], results["ei_layer2"] = EI_layer1, EI_layer2

    # --- README block 3: EI_parts with a fixed number of samples -----------------------------
    torch.manual_seed(10 * args.seed + 3)
    network = nn.Linear(5, 5, bias=False).to(device)
    top = topology_of(network, input=torch.zeros((1, 5)).to(device))
    EI_parts = ei_parts(network, top,
                        samples=int(1e5) // S,
                        batch_size=100,
                        in_range=(0, 1),
                        in_bins=8,
                        out_range=(0, 1),
                        out_bins=8,
                        activation=nn.Sigmoid(),
                        device=device)
    results["ei_parts"] = EI_parts

    # --- README block 4: EI_parts in the automatic (threshold) mode --------------------------
    torch.manual_seed(10 * args.seed + 4)
    network = nn.Linear(10, 10, bias=False).to(device)
    top = topology_of(network, input=torch.zeros((1, 10)).to(device))
    EI = ei_parts(network, top,
                  threshold=0.05,
                  batch_size=100,
                  in_range=(0, 1),
                  in_bins=64,
                  out_range=(0, 1),
                  out_bins=64,
                  activation=nn.Sigmoid(),
                  device=device)
    results["ei_parts_auto"] = EI

    # --- README block 5: sensitivity ---------------------------------------------------------
    torch.manual_seed(10 * args.seed + 5)
    network = nn.Linear(10, 10, bias=False).to(device)
    top = topology_of(network, input=torch.zeros((1, 10)).to(device))
    sensitivity = sensitivity(network, top,
                              samples=1000 // S,
                              batch_size=100,
                              in_range=(0, 1),
                              in_bins=64,
                              out_range=(0, 1),
                              out_bins=64,
                              activation=nn.Sigmoid(),
                              device=device)
    results["sensitivity"] = sensitivity

    # --- README block 6: the matrix of EI_parts' terms ---------------------------------------
    torch.manual_seed(10 * args.seed + 6)
    network = nn.Linear(20, 10, bias=False).to(device)
    top = topology_of(network, input=torch.zeros((1, 20)).to(device))
    EI = ei_parts_matrix(network, top,
                         samples=50000 // S,   # the README spells it "samles" (a TypeError)
                         batch_size=100,
                         in_range=(0, 1),
                         in_bins=64,
                         out_range=(0, 1),
                         out_bins=64,
                         activation=nn.Sigmoid(),
                         device=device)
    results["matrix"] = EI

    seconds = time.perf_counter() - t0
    who = "deep-ei 0.7.0" if args.deep_ei else "bridges.deep_ei"
    for name, value in results.items():
        if name == "matrix":
            print(f"{who}: {name}: shape {tuple(value.shape)}, sum {float(value.sum()):.4f}")
        else:
            print(f"{who}: {name}: {value:.4f}")
    print(f"{who}: {seconds:.1f} s in all")
    results["seconds"] = seconds
    return results


if __name__ == "__main__":
    main()

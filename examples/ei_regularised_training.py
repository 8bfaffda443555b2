"""Training with EI in the loss: the exact EI_parts is differentiable, the sampled one is not.

The paper's Iris network (4-5-5-3, sigmoid, no bias, its initialisation) trained twice with
full-batch Adam on the summed squared error: plainly, and with ``- lam * sum_layers EI_parts``
added to the loss (the exact EI_parts of every layer at 8 bins, from
``ei_jax.exact.exact_ei_parts_matrix`` -- a smooth function of the weights, so ``jax.grad``
gives its true gradient; the sampled estimate has zero gradient almost everywhere). Every
``--every`` steps each layer's exact (sensitivity, degeneracy) point is recorded; the two runs
end in different places of the causal plane.

    python examples/ei_regularised_training.py --out docs/    # writes ei_regularised_training.png
    python examples/ei_regularised_training.py --fast         # a few steps (CI)
"""

import argparse
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ei_jax import exact
from ei_jax.experiments.datasets import load_iris
from ei_jax.experiments.paper_nets import mlp

BINS = 8
KW = dict(activation="sigmoid", in_range=(0, 1), in_bins=BINS, out_range=(0, 1), out_bins=BINS)
#: A fixed number of series terms for EI_parts (4- and 5-input layers: error < 1e-7 bits), so
#: the measurements during training reuse one compiled program instead of choosing per weights.
TERMS = 512


def kernels(params):
    return [params["params"][k]["kernel"] for k in sorted(params["params"])]


def ei_total(params):
    """Sum over layers of the exact EI_parts (bits): differentiable in the weights."""
    return sum(exact.exact_ei_parts_matrix(k, None, terms=TERMS, **KW).sum() for k in kernels(params))


def plane(params):
    """Exact (sensitivity, degeneracy) of each layer, float64 on the host."""
    pts = []
    with jax.enable_x64(True):
        for k in kernels(params):
            k = np.asarray(k, np.float64)
            e = float(np.asarray(exact.exact_ei_parts_matrix(k, None, terms=TERMS, **KW)).sum())
            s = float(np.asarray(exact.exact_sensitivity_matrix(k, None, **KW)).sum())
            pts.append((s, s - e))
    return pts


def train(lam, *, steps, every, seed=0):
    data = load_iris(jax.random.key(seed))
    model = mlp((4, 5, 5, 3))
    params = model.init(jax.random.key(seed + 1), jnp.zeros((1, 4)))
    opt = optax.adam(0.01)
    state = opt.init(params)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)

    def loss(p):
        sse = jnp.sum((model.apply(p, x) - y) ** 2)
        return sse - lam * ei_total(p) if lam else sse

    @jax.jit
    def step(p, s):
        val, g = jax.value_and_grad(loss)(p)
        # optax's Adam mixes Python floats with its int32 step count: standard promotion, so the
        # example also runs where a program sets jax_numpy_dtype_promotion="strict" (the tests do)
        with jax.numpy_dtype_promotion("standard"):
            upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, val

    history = [plane(params)]
    for t in range(1, steps + 1):
        params, state, _ = step(params, state)
        if t % every == 0 or t == steps:
            history.append(plane(params))
    pred = model.apply(params, jnp.asarray(data.x_test))
    acc = float(jnp.mean(jnp.argmax(pred, 1) == jnp.argmax(jnp.asarray(data.y_test), 1)))
    return np.array(history), acc


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="a few steps (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--lam", type=float, default=2.0, help="weight of the EI_parts term")
    p.add_argument("--out", default=".", help="directory for ei_regularised_training.png")
    args = p.parse_args(argv)
    steps, every = (10, 10) if args.fast else (1500, 100)
    runs = {"plain": train(0.0, steps=steps, every=every),
            f"+{args.lam:g} x EI_parts": train(args.lam, steps=steps, every=every)}
    names = ["X → T1", "T1 → T2", "T2 → Y"]
    print(f"{'run':>18s} {'test acc':>8s}  " + "  ".join(f"{n:>22s}" for n in names))
    for run, (hist, acc) in runs.items():
        end = hist[-1]
        print(f"{run:>18s} {acc:8.2f}  " + "  ".join(f"S={s:6.3f} D={d:6.3f} EI={s - d:5.3f}" for s, d in end))

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    for li, ax in enumerate(axes):
        for ri, (run, (hist, _)) in enumerate(runs.items()):
            s, d = hist[:, li, 0], hist[:, li, 1]
            ax.plot((s - d) / np.sqrt(2), (s + d) / np.sqrt(2), "o-", ms=3, color=f"C{ri}", label=run)
            ax.plot([(s[0] - d[0]) / np.sqrt(2)], [(s[0] + d[0]) / np.sqrt(2)], "k*", ms=8)
        ax.set_title(names[li])
        ax.set_xlabel("(S − D)/√2 = EI/√2")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("(S + D)/√2")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Iris 4-5-5-3 in the causal plane (exact, {BINS} bins): plain vs EI-regularised training")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "ei_regularised_training.png", dpi=120)
    print(f"wrote {out / 'ei_regularised_training.png'}")
    return {run: dict(history=h, accuracy=a) for run, (h, a) in runs.items()}


if __name__ == "__main__":
    main()

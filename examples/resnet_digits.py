"""A small ResNet-style CNN (BatchNorm, an identity skip, average pooling) trained on digits,
every layer measured and drawn in the causal plane.

scikit-learn's 8x8 digits (bundled, no download), all ten classes; a stem convolution, one
basic residual block (conv-BN-relu-conv-BN + identity, relu), 2x2 average pooling and a dense
read-out, trained briefly with optax Adam (BatchNorm in training mode, then measured in eval
mode). ``ei_jax.topology_of`` traces the network and cuts it at its convolutions and dense
product; each layer is measured exactly where it folds to ``f(x @ W + b)`` (BatchNorm folds),
else by sampling with a standard error. The plot shows every layer at initialisation (o) and
after training (filled), with error bars for the sampled ones.

    python examples/resnet_digits.py --out /tmp/resnet      # writes resnet_digits.png
    python examples/resnet_digits.py --fast                 # a short run (CI)
"""

import argparse
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import ei_jax
from ei_jax import exact
from ei_jax.errors import DefaultRangeWarning, ExactUnavailableError

BINS = 8


def options(argv, doc):
    """``(fast, out, steps, samples)`` from the command line (``--fast``: a short run)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--fast", action="store_true", default=os.environ.get("EI_JAX_EXAMPLES_FAST") == "1",
                   help="few steps and samples (also: EI_JAX_EXAMPLES_FAST=1)")
    p.add_argument("--out", default=None, help="directory for the PNG (default: a temporary one)")
    p.add_argument("--steps", type=int, default=None)
    a = p.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="ei_jax_example_"))
    return a.fast, out, a.steps or (100 if a.fast else 1_500), 1_000 if a.fast else 20_000


def digits(key, *, images: bool):
    """scikit-learn's 8x8 digits in [0, 1]: ``(x_train, y_train, x_test, y_test)``, integer labels;
    ``x`` ``(N, 8, 8, 1)`` (``images``) or ``(N, 64)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    x = x[..., None] if images else x.reshape(len(x), -1)
    perm = np.asarray(jax.random.permutation(key, len(x)))
    x, y = x[perm], d.target[perm].astype(np.int32)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def train(key, model, variables, data, *, steps, lr=1e-2, batch=64, mutable=()):
    """Adam on softmax cross-entropy; ``mutable`` collections (BatchNorm statistics) updated."""
    x, y = (jnp.asarray(a) for a in data[:2])
    params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    opt = optax.adam(lr)

    def loss(p, s, xb, yb):
        out = model.apply({"params": p, **s}, xb, mutable=list(mutable)) if mutable else \
            (model.apply({"params": p, **s}, xb), s)
        logits, new = out
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), new

    @jax.jit
    def step(p, s, o, k):
        idx = jax.random.randint(k, (batch,), 0, len(x))
        (_, s), g = jax.value_and_grad(loss, has_aux=True)(p, s, x[idx], y[idx])
        with jax.numpy_dtype_promotion("standard"):   # Adam's int step count to a float power
            u, o = opt.update(g, o, p)
        return optax.apply_updates(p, u), {**s}, o

    o = opt.init(params)
    for t in range(steps):
        params, state, o = step(params, state, o, jax.random.fold_in(key, t))
    return {"params": params, **state}


def accuracy(model, variables, x, y) -> float:
    return float(jnp.mean(jnp.argmax(model.apply(variables, jnp.asarray(x)), -1) == jnp.asarray(y)))


def plane(key, top, *, samples, in_range=(0.0, 1.0)):
    """``{layer: (x, y, x_err, y_err, how)}``: each layer's causal-plane point (bits), exact where
    it applies (no error bar), else sampled with ``stderr=True``. The first layer's input range
    is the data's ``in_range``; the others use the topology's (deep-ei's (-10, 10) where guessed;
    sampled values outside it are clipped into the edge bins, ``clip=True``)."""
    out = {}
    for i, name in enumerate(top):
        rng = dict(in_range=in_range) if i == 0 else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DefaultRangeWarning)
            try:
                p = exact.causal_plane(top, name, in_bins=BINS, out_bins=BINS, **rng)
                out[name] = (p.x, p.y, 0.0, 0.0, "exact")
            except ExactUnavailableError:
                p = ei_jax.causal_plane(jax.random.fold_in(key, i), top, name, samples=samples,
                                        in_bins=BINS, out_bins=BINS, stderr=True, clip=True, **rng)
                s, e = p.sensitivity.stderr, p.ei.stderr
                out[name] = (p.x, p.y, e / math.sqrt(2), math.hypot(2 * s, e) / math.sqrt(2),
                             "sampled")
    return out


def report(before, after):
    """Prints every layer's point (and where it started, when ``before`` was measured)."""
    for name, (x, y, xe, ye, how) in after.items():
        x0, y0 = before[name][:2] if before else (math.nan, math.nan)
        print(f"  {name:12s} {how:7s} x = EI_parts/sqrt2 {x0:7.2f} -> {x:7.2f} ± {xe:.2f}   "
              f"y {y0:7.2f} -> {y:7.2f} ± {ye:.2f} bits")


def plane_png(path, before, after, title):
    """The causal plane: every layer after training (filled, error bars) and, when ``before``
    was measured, at initialisation (o)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    for i, name in enumerate(after):
        c = colormaps["viridis"](i / max(1, len(after) - 1))
        x, y, xe, ye, how = after[name]
        if before:
            x0, y0 = before[name][:2]
            ax.plot([x0], [y0], "o", mfc="none", color=c)
            ax.annotate("", (x, y), (x0, y0), arrowprops=dict(arrowstyle="->", color=c, alpha=0.5))
        ax.errorbar([x], [y], xerr=[xe], yerr=[ye], fmt="s", color=c, capsize=3,
                    label=f"{name} ({how})")
    ax.set_xlabel(r"$EI_{parts}/\sqrt{2}$ (bits)")
    ax.set_ylabel(r"(sensitivity + degeneracy)$/\sqrt{2}$ (bits)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


class ResNet(nn.Module):
    """stem conv-BN-relu, a basic block (conv-BN-relu-conv-BN + identity, relu), 2x2 average
    pooling, dense read-out; ``train``: BatchNorm uses (and updates) the batch's statistics."""

    channels: int = 4
    train: bool = False

    @nn.compact
    def __call__(self, x):
        def conv_bn(h):
            h = nn.Conv(self.channels, (3, 3), use_bias=False)(h)
            return nn.BatchNorm(use_running_average=not self.train, momentum=0.9)(h)

        h = nn.relu(conv_bn(x))                  # stem
        r = nn.relu(conv_bn(h))                  # the block's first convolution
        h = nn.relu(h + conv_bn(r))              # its second, plus the identity skip
        b, hh, ww, c = h.shape                   # 2x2 average pooling (as nn.avg_pool)
        h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
        return nn.Dense(10)(h.reshape(b, -1))


def main(argv=None):
    fast, out, steps, samples = options(argv, __doc__)
    t0 = time.perf_counter()
    k_data, k_init, k_train, k_measure = jax.random.split(jax.random.key(0), 4)
    data = digits(k_data, images=True)
    x0 = jnp.zeros((1, 8, 8, 1))
    net = ResNet(channels=2 if fast else 4)       # fast: 2 channels, not measured at init
    variables = ResNet(net.channels, train=True).init(k_init, x0)
    top = ei_jax.topology_of(net, variables, x0)
    print(f"layers: {list(top)}")
    before = None if fast else plane(k_measure, top, samples=samples)
    variables = train(k_train, ResNet(net.channels, train=True), variables, data, steps=steps,
                      mutable=("batch_stats",))
    acc = accuracy(net, variables, *data[2:])
    top = ei_jax.topology_of(net, variables, x0)
    after = plane(k_measure, top, samples=samples)
    print(f"test accuracy after {steps} steps: {acc:.3f}")
    report(before, after)
    png = out / "resnet_digits.png"
    plane_png(png, before, after, f"ResNet-style CNN on 8x8 digits ({steps} steps, test acc {acc:.2f})")
    print(f"wrote {png} in {time.perf_counter() - t0:.0f} s")
    return dict(accuracy=acc, before=before, after=after, png=png)


if __name__ == "__main__":
    main()

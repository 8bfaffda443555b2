"""A pre-LN transformer MLP block (LayerNorm -> Dense -> GELU -> Dense, plus the residual)
trained on digits, every layer measured and drawn in the causal plane.

scikit-learn's 8x8 digits as 64 inputs in [0, 1]: a dense embedding into a 16-wide residual
stream, one pre-LN MLP block ``h + W2 gelu(W1 LayerNorm(h))`` (4x wide) and a dense read-out
to the ten classes, trained briefly with optax Adam. ``ei_jax.topology_of`` traces it and cuts
it at its four dense products: the layer holding the LayerNorm's normalisation is sampled (with
a standard error), the others fold to ``f(x @ W + b)`` and are exact -- the GELU layer's bins
have unions of intervals as preimages, and the residual add is an affine map of the layer's two
inputs ``[u, h]`` whose copies of ``h`` have all their spread in one input (integrated
analytically rather than by a series that would need too many terms). The plot shows every
layer at initialisation (o) and after training (filled), with error bars for the sampled ones.

    python examples/transformer_mlp.py --out /tmp/mlp      # writes transformer_mlp.png
    python examples/transformer_mlp.py --fast              # a short run (CI)
"""

import runpy
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

import ei_jax

# The data, training loop, measuring and plotting are resnet_digits.py's.
_R = runpy.run_path(str(Path(__file__).with_name("resnet_digits.py")))
options, digits, train, accuracy, plane, report, plane_png = (
    _R[k] for k in ("options", "digits", "train", "accuracy", "plane", "report", "plane_png"))


class PreLNBlock(nn.Module):
    """Embedding, one pre-LN MLP block with its residual, read-out."""

    width: int = 16

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.width)(x)                                    # the residual stream
        u = nn.gelu(nn.Dense(4 * self.width)(nn.LayerNorm()(h)), approximate=False)
        h = h + nn.Dense(self.width)(u)                                # the block's residual add
        return nn.Dense(10)(h)


def main(argv=None):
    fast, out, steps, samples = options(argv, __doc__)
    t0 = time.perf_counter()
    k_data, k_init, k_train, k_measure = jax.random.split(jax.random.key(0), 4)
    data = digits(k_data, images=False)
    x0 = jnp.zeros((1, 64))
    net = PreLNBlock(width=8 if fast else 16)
    variables = net.init(k_init, x0)
    top = ei_jax.topology_of(net, variables, x0)
    print(f"layers: {list(top)}")
    before = None if fast else plane(k_measure, top, samples=samples)
    variables = train(k_train, net, variables, data, steps=steps, lr=3e-3)
    acc = accuracy(net, variables, *data[2:])
    top = ei_jax.topology_of(net, variables, x0)
    after = plane(k_measure, top, samples=samples)
    print(f"test accuracy after {steps} steps: {acc:.3f}")
    report(before, after)
    png = out / "transformer_mlp.png"
    plane_png(png, before, after, f"Pre-LN MLP block on 8x8 digits ({steps} steps, test acc {acc:.2f})")
    print(f"wrote {png} in {time.perf_counter() - t0:.0f} s")
    return dict(accuracy=acc, before=before, after=after, png=png)


if __name__ == "__main__":
    main()

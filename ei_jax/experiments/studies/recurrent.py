"""Study ``recurrent``: EI of a recurrent layer over training, on a memory task.

deep-ei's open question 4: can EI be measured in recurrent networks? A vanilla tanh RNN
(``flax.linen.SimpleCell``, ``n_h`` units, 1 input) reads a sequence of ``T`` random signs
``x_t`` and must report the first one at the end (a delayed recall: the transition has to
keep information about ``h_1`` for ``T - 1`` steps). The recurrent layer is measured as
defined in :mod:`ei_jax._src.model.recurrent`: the one-step transition ``h_t -> h_{t+1}`` (input at
the baseline 0), the transition with the input intervened too (both exact), and the
``T``-step unrolled span ``h_0 -> h_T`` (sampled vector EI and EI_parts).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ei_jax.experiments.studies import measure as sm
from ei_jax.experiments.studies import report as rep
from ei_jax.experiments.checkpoints import save_checkpoint
from ei_jax._src.model.recurrent import cell_topology
from ei_jax.experiments.studies.driver import StudyResult, write_study

QUESTION = ("Can EI be measured in recurrent networks, and how does a recurrent layer's EI "
            "change as it learns to remember? (deep-ei's README, open question 4.)")

LABELS = ("h_t → h_t+1", "(h_t, x_t) → h_t+1", "h_0 → h_T")


@dataclasses.dataclass(frozen=True)
class RecurrentSettings:
    hidden: int = 4
    length: int = 8
    steps: int = 2_000
    every: int = 100
    lr: float = 1e-2
    batch_size: int = 64
    bins: int = 8
    span_bins: int = 4
    span_samples: int = 100_000

    def measured_steps(self) -> list[int]:
        return sorted(set(range(0, self.steps + 1, self.every)) | {self.steps})


def config(*, fast: bool, seeds: int | None):
    if fast:
        return RecurrentSettings(length=5, steps=200, every=100, span_samples=5_000), seeds or 2
    return RecurrentSettings(), seeds or 5


def logits(params, xs, hidden):
    """Readout logits ``(B, 2)`` after running the cell over ``xs`` ``(B, T, 1)`` from h = 0."""
    cell = nn.SimpleCell(hidden)
    h = jnp.zeros((xs.shape[0], hidden), xs.dtype)
    for t in range(xs.shape[1]):
        h, _ = cell.apply({"params": params["cell"]}, h, xs[:, t])
    return h @ params["readout"]["kernel"] + params["readout"]["bias"][None, :]


def task(key, n, length):
    """``n`` sequences of random signs ``(n, length, 1)`` and the first sign as a class (0/1)."""
    xs = jnp.where(jax.random.bernoulli(key, 0.5, (n, length, 1)), 1.0, -1.0)
    return xs, (xs[:, 0, 0] > 0).astype(jnp.int32)


def _init(key, s: RecurrentSettings):
    cell = nn.SimpleCell(s.hidden)
    x = jnp.zeros((1, 1))
    k1, k2 = jax.random.split(key)
    return {"cell": cell.init(k1, jnp.zeros((1, s.hidden)), x)["params"],
            "readout": {"kernel": jax.random.normal(k2, (s.hidden, 2)) / np.sqrt(s.hidden),
                        "bias": jnp.zeros((2,))}}


def _trainer(s: RecurrentSettings):
    opt = optax.adam(s.lr)

    def loss(p, xs, y):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(p, xs, s.hidden), y))

    def one(p, o, key, step0, n):
        def step(t, state):
            p, o = state
            xs, y = task(jax.random.fold_in(key, t), s.batch_size, s.length)
            u, o = opt.update(jax.grad(loss)(p, xs, y), o, p)
            return optax.apply_updates(p, u), o
        return jax.lax.fori_loop(step0, step0 + n, step, (p, o))

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None))), opt


def _rows(key, params, s, seeds, step, acc, ckpt):
    cell = nn.SimpleCell(s.hidden)
    x0 = jnp.zeros((1, 1))
    w_hh, b = params["cell"]["h"]["kernel"], params["cell"]["i"]["bias"]
    w_cat = jnp.concatenate([w_hh, params["cell"]["i"]["kernel"]], axis=1)
    exact = [sm.exact_layer_measures(w_hh, b, activation="tanh", in_range=(-1.0, 1.0), bins=s.bins),
             sm.exact_layer_measures(w_cat, b, activation="tanh", in_range=(-1.0, 1.0), bins=s.bins)]
    rows = []
    for i in range(seeds):
        v = {"params": jax.tree.map(lambda a: a[i], params["cell"])}
        top = cell_topology(cell, v, x0, steps=s.length)
        k = jax.random.fold_in(key, i)
        span = dict(in_layer="step_1", in_range=(-1.0, 1.0), bins=s.span_bins, samples=s.span_samples)
        vec, vec_se, vec_plugin = sm.sampled_ei(k, top, f"step_{s.length}", **span)
        parts = sm.sampled_ei_parts(k, top, f"step_{s.length}", **span)
        nan = float("nan")
        measured = [{f: float(m[f][i]) for f in m} for m in exact]
        measured.append(dict(ei_parts=parts, sensitivity=nan, degeneracy=nan, plane_x=nan, plane_y=nan))
        for label, m, n_in in zip(LABELS, measured, (s.hidden, s.hidden + 1, s.hidden)):
            rows.append(dict(arm="vanilla RNN", seed=i, step=step, layer=label, label=label,
                             n_in=n_in, n_out=s.hidden, train_accuracy=float(acc[i]),
                             test_accuracy=float(acc[i]), **m,
                             vector_ei=vec if label == LABELS[2] else nan,
                             vector_ei_stderr=vec_se if label == LABELS[2] else nan,
                             vector_ei_plugin=vec_plugin if label == LABELS[2] else nan,
                             max_ei_parts=sm.max_ei_parts(n_in, s.hidden, s.span_bins if label == LABELS[2]
                                                             else s.bins), checkpoint=ckpt))
    return rows


def train_and_measure_rnns(key, s: RecurrentSettings, seeds: int, staging) -> list[dict]:
    """Trains ``seeds`` RNNs (vmapped) and measures the recurrent layer at every measured step."""
    k_init, k_train, k_test, k_measure = jax.random.split(key, 4)
    params = jax.vmap(lambda i: _init(jax.random.fold_in(k_init, i), s))(jnp.arange(seeds))
    train, opt = _trainer(s)
    opt_state = jax.vmap(opt.init)(params)
    keys = jax.vmap(lambda i: jax.random.fold_in(k_train, i))(jnp.arange(seeds))
    xs, y = task(k_test, 1_000, s.length)
    acc_fn = jax.vmap(lambda p: jnp.mean(jnp.argmax(logits(p, xs, s.hidden), -1) == y))
    (staging / "checkpoints" / "rnn").mkdir(parents=True, exist_ok=True)
    rows, done = [], 0
    for step in s.measured_steps():
        if step > done:
            with jax.numpy_dtype_promotion("standard"):  # optax Adam: float ** int32 count
                params, opt_state = train(params, opt_state, keys, done, step - done)
            done = step
        ckpt = f"checkpoints/rnn/step_{step:06d}.msgpack"
        save_checkpoint(staging / ckpt, {"params": params})
        rows += _rows(k_measure, params, s, seeds, step, np.asarray(acc_fn(params)), ckpt)
    return rows


def findings(rows) -> list[str]:
    step = rep.final_step(rows)
    acc0 = rep.mean_se(rep.per_seed(rows, "test_accuracy", step=0, label=LABELS[0]))
    acc1 = rep.mean_se(rep.per_seed(rows, "test_accuracy", step=step, label=LABELS[0]))
    out = [f"recall accuracy {rep.fmt(*acc0)} at initialisation, {rep.fmt(*acc1)} at step {step}"]
    for lb in LABELS:
        for f, name in (("ei_parts", "EI_parts"), ("vector_ei", "vector EI")):
            a = rep.per_seed(rows, f, step=0, label=lb)
            b = rep.per_seed(rows, f, step=step, label=lb)
            if np.all(np.isfinite(a)):
                out.append(f"{lb} {name}: {rep.fmt(*rep.mean_se(a))} bits at initialisation, "
                           f"{rep.fmt(*rep.mean_se(b))} at step {step} (change "
                           f"{rep.fmt(*rep.mean_se(b - a))} bits)")
    return out


def run(out, *, seeds: int | None = None, fast: bool = False, progress: bool = True,
        seed: int = 0, command: str = "") -> StudyResult:
    """Runs the recurrent study into ``out`` (see the module docstring).

    Example:
      >>> r = run("runs/study-recurrent", fast=True, progress=False)   # doctest: +SKIP
      >>> sorted({row["label"] for row in r.rows})[0]                   # doctest: +SKIP
      '(h_t, x_t) → h_t+1'
    """
    s, seeds = config(fast=fast, seeds=seeds)
    setup = (f"flax.linen SimpleCell, {s.hidden} tanh units, 1 input, linear readout of h_T; "
             f"task: report the first of {s.length} random signs; {seeds} seeds, optax Adam (lr "
             f"{s.lr}, batch {s.batch_size}) for {s.steps} steps. Recurrent EI "
             f"(ei_jax._src.model.recurrent): the one-step transition under do(h_t ~ U(-1, 1)^{s.hidden}) "
             f"with x_t = 0, and with x_t ~ U(-1, 1) intervened too (exact, {s.bins} bins); the "
             f"{s.length}-step unrolled span h_0 → h_T (sampled, {s.span_samples:,} samples, "
             f"{s.span_bins} bins).")
    meta = dict(settings=dataclasses.asdict(s), seeds=seeds)
    return write_study(
        out, name="recurrent", title="EI of a recurrent layer", question=QUESTION, setup=setup,
        meta=meta, produce=lambda st: train_and_measure_rnns(jax.random.key(seed), s, seeds, st),
        findings=findings, command=command, extra_plots=[(
            "vector_ei.png", lambda rows: rep.over_training_png(
                [r for r in rows if r["label"] == LABELS[2]], "EI of a recurrent layer",
                field="vector_ei", ylabel="vector EI (bits, sampled)"),
            "Vector EI of the unrolled span h_0 → h_T over training; bands: ± s.e. over seeds")])

"""The ``reproduce`` run: train the paper's network, measure its layers over training, and
write the table, the plots and the checkpoints atomically.

:func:`reproduce` saves, per measured epoch, the Flax checkpoint (msgpack) and a table row
per layer, whose numbers are exactly what the ``ei_jax`` functions return for that
checkpoint with the stored key. The run writes into its output directory as it goes and is
resumable after an interruption (:mod:`ei_jax.experiments.run_state`).
"""

import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import ei_jax
from ei_jax.experiments.checkpoints import atomic_write, save_checkpoint
from ei_jax.experiments.datasets import Dataset, load_digits, load_iris, load_mnist
from ei_jax._src.base.errors import LoadDatasetError, SampleLimitedWarning
from ei_jax.experiments.table_columns import ROW_FIELDS
from ei_jax.experiments.measure_rows import MeasureSettings, measure_network
from ei_jax.experiments.paper_nets import ACTIVATION, evaluate, layer_labels, paper_network
from ei_jax.experiments.run_state import RunState, check_resumable, interrupted, normalize, read_finished
from ei_jax._src.base.progress import progress_bar
from ei_jax._src.measures.vector_uncertainty import limited_summary

TABLE_COLUMNS = ("epoch", "batches", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "layer", "label",
                 "n_in", "n_out", *sorted(ROW_FIELDS, key=lambda f: "_corrected" not in f), "key", "checkpoint")


@dataclasses.dataclass(frozen=True)
class ReproduceConfig:
    """One training run: the dataset, the network, SGD and the measurement settings."""

    dataset: str
    widths: tuple[int, ...]
    epochs: int
    every: int
    batch_size: int
    lr: float
    seed: int = 0
    measure: MeasureSettings = MeasureSettings()
    mnist: str | None = None

    def measured_epochs(self) -> list[int]:
        return sorted(set(range(0, self.epochs + 1, self.every)) | {self.epochs})


def run_keys(seed: int):
    """``(init, data split, shuffling, measuring)`` keys of a run: ``split(key(seed), 4)``."""
    return tuple(jax.random.split(jax.random.key(seed), 4))


def load_dataset(config: ReproduceConfig, key) -> Dataset:
    if config.dataset == "iris":
        return load_iris(key)
    if config.dataset == "digits":
        return load_mnist(config.mnist) if config.mnist else load_digits(key)
    raise LoadDatasetError(f"Unknown dataset {config.dataset!r}; expected 'iris' or 'digits'.")


@dataclasses.dataclass
class RunOutput:
    """What a run wrote: its directory, table rows, settings and run time (seconds)."""

    out: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    seconds: float


@dataclasses.dataclass
class Run(RunOutput):
    """What :func:`reproduce` produced; ``files`` are the paths written inside ``out``."""

    files: list[str]


def table_csv(rows, columns=TABLE_COLUMNS) -> str:
    """The rows as CSV text with ``columns`` (a row's ``key`` as two space-separated ints)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "key": " ".join(str(k) for k in r["key"])})
    return buf.getvalue()


def read_table_csv(path) -> list[dict[str, Any]]:
    """Reads ``measurements.csv`` back (numbers as float/int, ``key`` as two ints)."""
    ints = {"epoch", "batches", "n_in", "n_out"}
    text = {"layer", "label", "checkpoint", *(f for f in ROW_FIELDS if f.endswith("_method"))}
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out.append({k: (v if k in text else [int(t) for t in v.split()] if k == "key"
                            else int(v) if k in ints else float(v)) for k, v in r.items()})
    return out


def _train_and_measure(config, data, out: Path, progress, on_measure, state: RunState):
    """Trains and measures, resuming after the last step ``state`` holds; returns the rows
    (all of them, as stored), the layer names and labels."""
    k_init, _, k_shuffle, k_measure = run_keys(config.seed)
    model, train, opt = paper_network(tuple(config.widths), config.lr, config.batch_size)
    x0 = jnp.zeros((1, config.widths[0]), jnp.float32)
    params = model.init(k_init, x0)["params"]
    opt_state = opt.init(params)
    layers = list(ei_jax.topology_of(model, {"params": params}, x0))
    done = 0
    restored = state.restore("training", (params, opt_state))
    if restored is not None:  # the saved state of the last measured epoch: train on from it
        done, (params, opt_state) = restored[0], jax.tree.map(jnp.asarray, restored[1])
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    n_batches = -(-len(x_train) // config.batch_size)
    labels = layer_labels(len(config.widths) - 1)
    (out / "checkpoints").mkdir(exist_ok=True)
    bar = progress_bar(config.epochs, enabled=progress, unit="epoch",
                       desc=f"{config.dataset} {'-'.join(map(str, config.widths))}")
    bar.update(done)
    try:
        for epoch in config.measured_epochs():
            if state.is_done(f"epoch {epoch}"):
                continue
            if epoch > done:
                params, opt_state = train(params, opt_state, x_train, y_train, k_shuffle, done,
                                          epoch - done)
                bar.update(epoch - done)
                done = epoch
            bar.set_postfix_str(f"measuring epoch {epoch}", refresh=True)
            v = {"params": params}
            ckpt = f"checkpoints/epoch_{epoch:06d}.msgpack"
            top = ei_jax.topology_of(model, v, x0)
            tr, tr_acc = evaluate(model, params, data.x_train, data.y_train)
            te, te_acc = evaluate(model, params, data.x_test, data.y_test)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SampleLimitedWarning)
                layer_rows = measure_network(k_measure, top, config.measure)
            for w in caught:  # one summary line for the run instead of one warning per layer
                if issubclass(w.category, SampleLimitedWarning):
                    state.data["limited"] = state.data.get("limited", 0) + 1
                    state.data.setdefault("limited_figures", []).append(vars(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            save_checkpoint(out / ckpt, v)
            state.record(f"epoch {epoch}", [
                dict(epoch=epoch, batches=epoch * n_batches, train_loss=tr, train_accuracy=tr_acc,
                     test_loss=te, test_accuracy=te_acc, label=label, checkpoint=ckpt, **r)
                for r, label in zip(layer_rows, labels)],
                unit="training", index=epoch, train_state=(params, opt_state))
            bar.set_postfix_str(f"loss {tr:.3g} acc {te_acc:.2f} EI_parts "
                                + " ".join(f"{r['ei_parts_corrected']:.2f}" for r in layer_rows), refresh=True)
            if on_measure is not None:
                on_measure(epoch, layer_rows)
    finally:
        bar.close()
    rows = state.rows
    if state.data.get("limited"):
        warnings.warn(limited_summary(state.data["limited"], len(rows), config.measure.samples, config.measure.bins,
                                      state.data.get("limited_figures", ())), SampleLimitedWarning, stacklevel=3)
    return rows, layers, labels


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def check_out_dir(out, *, force: bool = False, resume: bool = False,
                  finished: str | None = "measurements.json") -> Path:
    """``out`` as a Path, or ``OSError`` now (before any training) if the run cannot be written.

    The run writes into ``out``, so ``out`` and ``out/checkpoints`` must be writable if they
    exist, else the nearest existing parent. A directory that holds an interrupted run
    (``progress.json``) is refused unless ``resume`` or ``force``; one that holds a finished
    run (its file ``finished``) unless ``force`` (or ``resume``: the run is reported as is).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory; choose another --out.")
    check_resumable(out, resume=resume, force=force, finished=finished)
    for d in (out, out / "checkpoints"):
        if d.exists() and not _writable_dir(d):
            raise PermissionError(f"Cannot write into {d}: it is not a writable directory; choose "
                                  "another --out or fix its permissions.")
    p = out.absolute().parent
    while not p.exists():
        p = p.parent
    if not _writable_dir(p):
        raise PermissionError(f"Cannot create {out}: {p} is not a writable directory; choose "
                              "another --out.")
    return out


def _described(config, data) -> dict[str, Any]:
    """The settings a run's ``measurements.json`` describes (as read back from JSON)."""
    return normalize(dict(
        dataset=data.describe(),
        model=dict(widths=list(config.widths), activation=ACTIVATION, bias=False,
                   init="U(-1/sqrt(fan_in), 1/sqrt(fan_in))", api="flax.linen Sequential"),
        training=dict(optimizer="optax.sgd", lr=config.lr, batch_size=config.batch_size,
                      loss="summed squared error per batch", epochs=config.epochs,
                      every=config.every, seed=config.seed),
        measure=dict(**dataclasses.asdict(config.measure),
                     functions="ei_parts, sensitivity: ei_jax.exact.ei_parts / .sensitivity(top, "
                               "layer, in_range=in_range if first layer else None, in_bins=bins, "
                               "out_bins=bins) where exact applies and not sampled, else "
                               "ei_jax.vector_and_pairwise_ei(key, top, layer, samples=samples, "
                               "stderr=True, ...) and ei_jax.sensitivity(..., samples="
                               "sensitivity_samples, stderr=True); vector_ei: ei_jax.ei(key, "
                               "..., samples=samples, stderr=True) (same samples); degeneracy "
                               "= sensitivity - ei_parts; <column>_corrected: the value (bias-"
                               "corrected, or exact), <column>_stderr: its standard error (0 when "
                               "exact), <column>_plugin: deep-ei's plug-in estimate (the exact "
                               "value when exact), <column>_method: exact or sampled",
                     key="row key = jax.random.key_data(fold_in(k_measure, layer index)), "
                         "k_measure = jax.random.split(jax.random.key(seed), 4)[3]"),
    ))


#: The files of a finished run besides its checkpoints.
RUN_FILES = ("measurements.csv", "measurements.json", "ei_over_training.png", "causal_plane.png")


def reproduce(config: ReproduceConfig, out, *, progress: bool = True, command: str = "",
              on_measure=None, data: Dataset | None = None, plots: bool = True,
              force: bool = False, resume: bool = False) -> Run:
    """Trains the paper's network on ``config.dataset`` and measures its layers over training.

    Writes into ``out``: ``measurements.csv`` and ``measurements.json`` (one row per measured
    epoch and layer; the JSON also holds the settings), ``ei_over_training.png``,
    ``causal_plane.png`` (only if ``plots``) and ``checkpoints/epoch_NNNNNN.msgpack``. ``data``
    defaults to :func:`load_dataset` with the run's data key.

    Resumable (:mod:`ei_jax.experiments.run_state`): each measured epoch's checkpoint, then
    ``out/progress.json``, is written atomically as it completes. ``resume`` continues an
    interrupted run from its last measured epoch (same settings required; same tables as an
    uninterrupted run), starts one if there is none, returns a finished one as it is. An
    ``out`` holding a run is refused (``FileExistsError``) unless ``resume`` or ``force``.

    Row ``key`` is the key passed to ``ei_jax.vector_and_pairwise_ei`` and
    ``ei_jax.sensitivity`` for that layer (the same for every epoch: common random numbers,
    so the curves show the change of the weights, not of the noise).
    """
    from ei_jax.experiments import plotting

    t0 = time.perf_counter()
    out = check_out_dir(out, force=force, resume=resume)
    if data is None:
        data = load_dataset(config, run_keys(config.seed)[1])
    if data.x_train.shape[1] != config.widths[0]:
        raise LoadDatasetError(f"{data.name} has {data.x_train.shape[1]} features; the network "
                               f"expects {config.widths[0]}.")
    described = _described(config, data)
    if resume and not force and not interrupted(out) and (out / "measurements.json").is_file():
        meta = read_finished(out / "measurements.json", described)
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        return Run(out, meta.pop("rows"), meta, time.perf_counter() - t0, files)
    settings = dict(config=dataclasses.asdict(config), dataset=data.describe())
    state = RunState.open(out, "reproduce", settings, len(config.measured_epochs()),
                          resume=resume and not force)
    for name in RUN_FILES:  # a replaced run's tables must not describe the new checkpoints
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
    rows, layers, labels = _train_and_measure(config, data, out, progress, on_measure, state)
    meta = dict(command=command, ei_jax_version=ei_jax.__version__, jax_version=jax.__version__,
                **described, layers=[dict(name=n, label=lb) for n, lb in zip(layers, labels)])
    title = f"{data.name}: {' → '.join(map(str, config.widths))}, {ACTIVATION}, seed {config.seed}"
    if plots:
        atomic_write(out / "ei_over_training.png",
                     plotting.ei_over_training_png(rows, title, settings=config.measure))
        atomic_write(out / "causal_plane.png",
                     plotting.causal_plane_png(rows, title, settings=config.measure))
    atomic_write(out / "measurements.csv", table_csv(rows))
    atomic_write(out / "measurements.json", json.dumps({**meta, "rows": rows}, indent=1))
    ckpts = _remove_stale(out, config.measured_epochs())
    state.finish()
    files = ckpts + [f for f in RUN_FILES if (out / f).is_file()]
    return Run(out, rows, meta, time.perf_counter() - t0, sorted(files))


_STALE = re.compile(r"epoch_\d{6}\.msgpack")


def _remove_stale(out: Path, epochs) -> list[str]:
    """Removes the checkpoints of an earlier run that this run did not write; returns this
    run's checkpoint paths (relative to ``out``)."""
    keep = {f"epoch_{e:06d}.msgpack" for e in epochs}
    for old in (out / "checkpoints").iterdir():
        if _STALE.fullmatch(old.name) and old.name not in keep:
            old.unlink()
    return [f"checkpoints/{n}" for n in sorted(keep)]

"""The ``reproduce`` run: train the paper's network, measure its layers over training, and
write the table, the plots and the checkpoints atomically.

:func:`reproduce` saves, per measured epoch, the Flax checkpoint (msgpack) and a table row
per layer, whose numbers are exactly what the ``ei_jax`` functions return for that
checkpoint with the stored key. Everything is written to a staging directory beside the
output and moved into place only when the run has succeeded.
"""

import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import tempfile
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
from ei_jax.experiments.table_columns import COLUMNS, ROW_FIELDS
from ei_jax.experiments.measure_rows import MeasureSettings, measure_network
from ei_jax.experiments.paper_nets import ACTIVATION, evaluate, layer_labels, paper_network
from ei_jax._src.base.progress import progress_bar
from ei_jax._src.measures.vector_uncertainty import limited_summary

TABLE_COLUMNS = ("epoch", "batches", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                 "layer", "label", "n_in", "n_out", *COLUMNS,
                 *(f for f in ROW_FIELDS if f not in COLUMNS), "key", "checkpoint")


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
class Run:
    """What :func:`reproduce` produced (paths are inside ``out``)."""

    out: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    files: list[str]
    seconds: float


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


def _train_and_measure(config, data, staging: Path, progress, on_measure):
    k_init, _, k_shuffle, k_measure = run_keys(config.seed)
    model, train, opt = paper_network(tuple(config.widths), config.lr, config.batch_size)
    x0 = jnp.zeros((1, config.widths[0]), jnp.float32)
    params = model.init(k_init, x0)["params"]
    opt_state = opt.init(params)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    n_batches = -(-len(x_train) // config.batch_size)
    labels = layer_labels(len(config.widths) - 1)
    (staging / "checkpoints").mkdir()
    rows, done, limited = [], 0, 0
    bar = progress_bar(config.epochs, enabled=progress, unit="epoch",
                       desc=f"{config.dataset} {'-'.join(map(str, config.widths))}")
    try:
        for epoch in config.measured_epochs():
            if epoch > done:
                params, opt_state = train(params, opt_state, x_train, y_train, k_shuffle, done,
                                          epoch - done)
                bar.update(epoch - done)
                done = epoch
            bar.set_postfix_str(f"measuring epoch {epoch}", refresh=True)
            v = {"params": params}
            ckpt = f"checkpoints/epoch_{epoch:06d}.msgpack"
            save_checkpoint(staging / ckpt, v)
            top = ei_jax.topology_of(model, v, x0)
            tr, tr_acc = evaluate(model, params, data.x_train, data.y_train)
            te, te_acc = evaluate(model, params, data.x_test, data.y_test)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SampleLimitedWarning)
                layer_rows = measure_network(k_measure, top, config.measure)
            for w in caught:  # one summary line for the run instead of one warning per layer
                if issubclass(w.category, SampleLimitedWarning):
                    limited += 1
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            for r, label in zip(layer_rows, labels):
                rows.append(dict(epoch=epoch, batches=epoch * n_batches, train_loss=tr,
                                 train_accuracy=tr_acc, test_loss=te, test_accuracy=te_acc,
                                 label=label, checkpoint=ckpt, **r))
            bar.set_postfix_str(f"loss {tr:.3g} acc {te_acc:.2f} EI_parts "
                                + " ".join(f"{r['ei_parts']:.2f}" for r in layer_rows), refresh=True)
            if on_measure is not None:
                on_measure(epoch, layer_rows)
    finally:
        bar.close()
    if limited:
        warnings.warn(limited_summary(limited, len(rows), config.measure.samples, config.measure.bins),
                      SampleLimitedWarning, stacklevel=3)
    return rows, list(top), labels


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def check_out_dir(out, *, force: bool = False) -> Path:
    """``out`` as a Path, or ``OSError`` now (before any training) if the run cannot be written.

    The run is staged beside ``out`` and moved into it, so the nearest existing parent must be
    writable, and ``out`` and ``out/checkpoints`` too if they exist. A directory that already
    holds a run (``measurements.json``) is refused unless ``force``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory; choose another --out.")
    if (out / "measurements.json").exists() and not force:
        raise FileExistsError(f"--out {out} already holds a run (measurements.json); pass --force to "
                              "replace it, or choose another --out.")
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


def reproduce(config: ReproduceConfig, out, *, progress: bool = True, command: str = "",
              on_measure=None, data: Dataset | None = None, plots: bool = True,
              force: bool = False) -> Run:
    """Trains the paper's network on ``config.dataset`` and measures its layers over training.

    Writes into ``out``: ``measurements.csv`` and ``measurements.json`` (one row per measured
    epoch and layer; the JSON also holds the settings), ``ei_over_training.png``,
    ``causal_plane.png`` (only if ``plots``) and ``checkpoints/epoch_NNNNNN.msgpack``. An
    ``out`` that already holds a run is refused (``FileExistsError``) unless ``force``. ``data``
    defaults to :func:`load_dataset` with the run's data key. Everything is first written to
    a temporary directory beside ``out`` and moved into place (``os.replace``) only when the
    run has succeeded, so a failed or interrupted run leaves no partial output.

    Row ``key`` is the key passed to ``ei_jax.vector_and_pairwise_ei`` and
    ``ei_jax.sensitivity`` for that layer (the same for every epoch: common random numbers,
    so the curves show the change of the weights, not of the noise).
    """
    from ei_jax.experiments import plotting

    t0 = time.perf_counter()
    out = check_out_dir(out, force=force)
    if data is None:
        data = load_dataset(config, run_keys(config.seed)[1])
    if data.x_train.shape[1] != config.widths[0]:
        raise LoadDatasetError(f"{data.name} has {data.x_train.shape[1]} features; the network "
                               f"expects {config.widths[0]}.")
    created = _make_parents(out.parent)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        rows, layers, labels = _train_and_measure(config, data, staging, progress, on_measure)
        meta = dict(
            command=command, ei_jax_version=ei_jax.__version__, jax_version=jax.__version__,
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
                                   "= sensitivity - ei_parts; <column>_method says exact or "
                                   "sampled, <column>_stderr is the standard error of "
                                   "<column>_corrected (0 when exact)",
                         key="row key = jax.random.key_data(fold_in(k_measure, layer index)), "
                             "k_measure = jax.random.split(jax.random.key(seed), 4)[3]"),
            layers=[dict(name=n, label=lb) for n, lb in zip(layers, labels)],
        )
        title = f"{data.name}: {' → '.join(map(str, config.widths))}, {ACTIVATION}, seed {config.seed}"
        atomic_write(staging / "measurements.csv", table_csv(rows))
        atomic_write(staging / "measurements.json", json.dumps({**meta, "rows": rows}, indent=1))
        if plots:
            atomic_write(staging / "ei_over_training.png",
                         plotting.ei_over_training_png(rows, title, settings=config.measure))
            atomic_write(staging / "causal_plane.png",
                         plotting.causal_plane_png(rows, title, settings=config.measure))
        files = _commit(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return Run(out, rows, meta, files, time.perf_counter() - t0)


def _make_parents(path: Path) -> list[Path]:
    missing = []
    p = path.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
    return list(reversed(missing))


_STALE = re.compile(r"epoch_\d{6}\.msgpack")


def _commit(staging: Path, out: Path) -> list[str]:
    out.mkdir(exist_ok=True)
    (out / "checkpoints").mkdir(exist_ok=True)
    files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
    ckpts = [f for f in files if f.startswith("checkpoints/")]
    for f in ckpts + [f for f in files if f not in ckpts]:
        os.replace(staging / f, out / f)
    keep = {Path(f).name for f in ckpts}
    for old in (out / "checkpoints").iterdir():
        if _STALE.fullmatch(old.name) and old.name not in keep:
            old.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return files

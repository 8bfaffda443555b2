"""``ei-jax measure`` (one checkpoint, or many of one architecture in one go) and the tables
both commands print. Called by :mod:`ei_jax.cli`, which parses and checks the arguments."""

import math
import sys
import textwrap
import warnings

from ei_jax.cli import args as A


def measure_settings(args, base, in_range=None):
    import ei_jax.experiments as ex

    return ex.MeasureSettings(
        samples=args.samples or base.samples,
        sensitivity_samples=args.sensitivity_samples or base.sensitivity_samples,
        bins=args.bins or base.bins,
        in_range=tuple(in_range or base.in_range),
        sampled=bool(getattr(args, "sampled", False)) or base.sampled,
        exact_vector_work=float(getattr(args, "exact_vector_work", None) or base.exact_vector_work),
    )


def describe(settings, seed) -> str:
    return (f"bits; {settings.bins} bins per neuron, {settings.samples:,} samples "
            f"({settings.sensitivity_samples:,} per input for sensitivity), seed {seed}")


def print_table(header, rows, text=2):
    """Prints a table: the first ``text`` columns left-aligned, numbers with 4 decimals."""
    cells = [list(header)] + [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for i, c in enumerate(cells):
        print("  ".join(v.ljust(w) if j < text else v.rjust(w) for j, (v, w) in enumerate(zip(c, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def error_header(names) -> tuple:
    """Each column name followed by its ``±`` and ``plug-in`` columns."""
    return tuple(x for n in names for x in (n, "±", "plug-in"))


def with_errors(row, columns) -> tuple:
    """``(value, ±, plug-in)`` cells per column: the value is ``<c>_corrected`` (bias-corrected,
    or exact), ``±`` its standard error (``exact`` for an exact value), ``plug-in`` deep-ei's
    plug-in estimate ``<c>_plugin`` (``-`` for an exact value). Rows of runs from before
    these fields show their bare ``<c>`` with ``n/a``."""
    cells = []
    for c in columns:
        if f"{c}_corrected" not in row or f"{c}_plugin" not in row:      # an old run's row
            cells += [row[c], "n/a", "n/a"]
            continue
        s = row.get(f"{c}_stderr", math.nan)
        exact = row.get(f"{c}_method") == "exact"
        err = "exact" if exact else f"{s:.4f}" if math.isfinite(s) else "n/a"
        cells += [row[f"{c}_corrected"], err, "-" if exact else row[f"{c}_plugin"]]
    return tuple(cells)


def print_note(settings, rows):
    """The note under a table: which columns are exact, what ± is, why sensitivity ~0 and
    negative degeneracy are not bugs (:func:`ei_jax.experiments.table_columns.table_note`)."""
    from ei_jax.experiments.table_columns import table_note

    print()
    print(textwrap.fill(table_note(settings, rows), 100))


def _load(args, parser):
    """``(paths, nets, activation, in_range)`` of the command's checkpoints."""
    from ei_jax.cli import loader

    if args.arch is not None:
        return _load_with_architecture(args, parser)
    if args.input_shape is not None:
        parser.error("--input-shape goes with --arch (the architecture it is an input of); a "
                     "chain of dense layers takes its input width from its first kernel")
    paths = loader.expand(args.checkpoint)
    acts = {A.display(loader.activation_of(p, args.activation) or "") for p in paths}
    if "" in acts:
        parser.error(f"{next(p for p in paths if not loader.activation_of(p, None))} stores weights, "
                     "not the activations between its layers: pass --activation NAME (after every "
                     "layer, e.g. --activation sigmoid) or one per layer (--activation sigmoid,tanh)")
    if len(acts) > 1:
        parser.error(f"the checkpoints' runs used different activations ({', '.join(sorted(acts))}); "
                     "measure them separately or pass --activation")
    activation = A.activation(acts.pop())
    run = loader.run_settings(paths[0])
    in_range = args.in_range or (run["measure"]["in_range"] if run and "measure" in run else (0.0, 1.0))
    if not in_range[0] < in_range[1]:
        parser.error(f"--in-range needs LO < HI, got {in_range[0]:g} {in_range[1]:g}")
    nets = _each(args, paths, lambda path: loader.load_any_checkpoint(path, activation=activation))
    return paths, nets, activation, tuple(in_range)


def _each(args, paths, load) -> list:
    from ei_jax._src.base.progress import progress_bar

    nets = []
    with progress_bar(len(paths), enabled=len(paths) > 1 and not args.no_progress, desc="loading",
                      unit="checkpoint") as bar:
        for path in paths:
            nets.append(load(path))
            bar.update(1)
    return nets


def _load_with_architecture(args, parser):
    """``_load`` with ``--arch``: each checkpoint loaded into the architecture, with its
    topology; the activations are the architecture's own."""
    from ei_jax.cli import loader
    from ei_jax.cli.architecture import load_architecture, load_with_architecture

    if args.activation is not None:
        parser.error("--activation does not apply with --arch: the architecture's own "
                     "activations are measured")
    if args.input_shape is None:
        parser.error("--arch needs --input-shape: one example's shape as the architecture takes "
                     "it (torch: C,H,W for images, e.g. --input-shape 1,8,8)")
    in_range = tuple(args.in_range or (0.0, 1.0))
    if not in_range[0] < in_range[1]:
        parser.error(f"--in-range needs LO < HI, got {in_range[0]:g} {in_range[1]:g}")
    paths = loader.expand(args.checkpoint)
    arch = load_architecture(args.arch)
    nets = _each(args, paths, lambda path: load_with_architecture(path, arch, args.input_shape))
    return paths, nets, None, in_range


def resumed(out, args) -> None:
    """Says on stderr that the run in ``out`` is resumed (with ``--resume``, if interrupted)."""
    from ei_jax.experiments import run_state

    if getattr(args, "resume", False) and not args.force and run_state.interrupted(out):
        print(f"ei-jax: resuming the run in {out} ({run_state.summary(out)})", file=sys.stderr)


#: ``measure --out``: checkpoints measured per step of a resumable run (always the same chunks,
#: so a resumed run measures each checkpoint in the same stack as an uninterrupted one).
CHUNK = 4


def _measure_rows(key, top, nets, paths, settings, *, progress) -> list[dict]:
    """The table rows of ``nets`` (one per checkpoint and layer)."""
    import ei_jax.experiments as ex
    from ei_jax.cli import loader

    if nets[0].topology is not None:    # --arch: each checkpoint alone, with the same keys
        shapes = [_layout(n.topology) for n in nets]
        for path, got in zip(paths[1:], shapes[1:]):
            if got != shapes[0]:
                from ei_jax._src.base.errors import CheckpointShapeError

                raise CheckpointShapeError(
                    f"{path} has layers {got}, but {paths[0]} has {shapes[0]}: measure "
                    "checkpoints of one architecture together (one command per architecture).")
        per_checkpoint = [ex.measure_network(key, n.topology, settings) for n in nets]
    elif len(nets) == 1:
        per_checkpoint = [ex.measure_network(key, top, settings)]
    else:
        per_checkpoint = ex.measure_stack(key, top, loader.stack(nets, paths), settings,
                                          labels=[str(p) for p in paths], progress=progress)
    return [dict(checkpoint=str(path), checkpoint_name=name, **r)
            for path, net, layer_rows in zip(paths, nets, per_checkpoint)
            for name, r in zip(net.names, layer_rows)]


def _layout(top) -> list:
    """``[(layer, input shape, output shape)]`` of a topology."""
    return [(n, top.nodes[n]["input"]["shape"], top.nodes[n]["output"]["shape"]) for n in top]


def _resumable_rows(args, out, key, top, nets, paths, settings, described) -> list[dict]:
    """``_measure_rows`` in chunks of :data:`CHUNK`, each saved in ``out/progress.json``."""
    from ei_jax.experiments.run_state import RunState

    starts = range(0, len(paths), CHUNK)
    state = RunState.open(out, "measure", described, len(starts), resume=args.resume and not args.force)
    for name in ("measurements.csv", "measurements.json"):
        (out / name).unlink(missing_ok=True)
    for i in starts:
        step = f"checkpoints {i + 1}-{min(i + CHUNK, len(paths))}"
        if not state.is_done(step):
            state.record(step, _measure_rows(key, top, nets[i:i + CHUNK], paths[i:i + CHUNK], settings,
                                             progress=not args.no_progress))
    return state


def measure(args, parser) -> int:
    import jax
    import numpy as np

    import ei_jax
    import ei_jax.experiments as ex
    from ei_jax.experiments import run_state
    from ei_jax._src.measures.vector_uncertainty import limited_summary

    if args.out is None and (args.resume or args.force):
        parser.error("--resume and --force apply to a run written with --out DIR")
    for out in (args.json, args.csv):
        if out is not None:
            ex.check_writable(out)
    out = None if args.out is None else ex.check_out_dir(args.out, force=args.force, resume=args.resume)
    args.resumable_out = out
    paths, nets, activation, in_range = _load(args, parser)
    settings = measure_settings(args, ex.MeasureSettings(), in_range)
    top = nets[0].topology
    if top is None:
        top = ei_jax.topology_of(nets[0].model, nets[0].variables,
                                 np.zeros((1, nets[0].n_in), np.float32))
    key = ex.run_keys(args.seed)[3]
    network = (dict(activation=A.display(activation)) if args.arch is None else
               dict(architecture=args.arch, input_shape=list(args.input_shape)))
    described = dict(checkpoints=[str(p) for p in paths], **network, seed=args.seed,
                     measure=dict(samples=settings.samples, sensitivity_samples=settings.sensitivity_samples,
                                  bins=settings.bins, in_range=list(settings.in_range),
                                  sampled=settings.sampled))
    meta = dict(**described, devices=jax.device_count(), ei_jax_version=ei_jax.__version__,
                jax_version=jax.__version__)
    state = None
    finished = (out is not None and args.resume and not args.force and not run_state.interrupted(out)
                and (out / "measurements.json").is_file())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if finished:  # --resume of a finished run: its table
            rows = run_state.read_finished(out / "measurements.json", described)["rows"]
        elif out is not None:
            resumed(out, args)
            state = _resumable_rows(args, out, key, top, nets, paths, settings, described)
            rows = state.rows
        else:
            rows = _measure_rows(key, top, nets, paths, settings, progress=not args.no_progress)
    many = len(paths) > 1
    is_limited = [issubclass(w.category, ei_jax.SampleLimitedWarning) for w in caught]
    for w in dict.fromkeys(str(w.message) for w, lim in zip(caught, is_limited) if not (many and lim)):
        print(f"ei-jax: warning: {w}", file=sys.stderr)
    if many and any(is_limited):  # one line for the batch, not one per checkpoint and layer
        summary = limited_summary(sum(is_limited), len(paths) * len(top), settings.samples, settings.bins,
                                  [w.message for w, lim in zip(caught, is_limited) if lim])
        print(f"ei-jax: warning: {summary}", file=sys.stderr)
    print(f"ei-jax measure: {len(top)} layers of {len(paths)} checkpoint{'s' * (len(paths) > 1)}; "
          f"{describe(settings, args.seed)}; "
          f"{'activation ' + A.display(activation) if args.arch is None else 'architecture ' + args.arch}"
          ", first-layer "
          f"in_range ({in_range[0]:g}, {in_range[1]:g})")
    cols = ("ei_parts", "vector_ei", "sensitivity", "degeneracy", "plane_x", "plane_y")
    header = (("checkpoint",) * many + ("layer", "shape") + error_header(
        ("EI_parts", "vector EI", "sensitivity", "degeneracy", "plane x", "plane y")))
    print_table(header, [(r["checkpoint"],) * many + (r["checkpoint_name"], f"{r['n_in']}→{r['n_out']}")
                         + with_errors(r, cols) for r in rows], text=2 + many)
    print_note(settings, rows)
    import json

    targets = [(args.json, "json"), (args.csv, "csv")]
    if state is not None:
        targets += [(out / "measurements.csv", "csv"), (out / "measurements.json", "json")]
    for path, kind in targets:
        if path is not None:
            ex.atomic_write(path, json.dumps({**meta, "rows": rows}, indent=1) if kind == "json"
                            else ex.table_csv(rows, MEASURE_COLUMNS))
            print(f"wrote {path}")
    if state is not None:
        state.finish()
    return 0


def _measure_columns():
    from ei_jax.experiments.table_columns import ROW_FIELDS

    return ("checkpoint", "checkpoint_name", "layer", "n_in", "n_out",
            *(f for f in ROW_FIELDS if f.endswith("_corrected")),
            *(f for f in ROW_FIELDS if not f.endswith("_corrected")), "key")


#: measure's CSV columns: the measures' _corrected values, then their _stderr / _plugin /
#: _method fields.
MEASURE_COLUMNS = _measure_columns()

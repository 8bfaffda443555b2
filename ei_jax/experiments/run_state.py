"""Resumable runs: the progress file a long run keeps in its output directory.

A run (``ei-jax reproduce``, ``ei-jax study``, ``ei-jax measure --out``) writes straight into
its ``--out`` directory. After every completed step (a measured epoch, a measured training
step of one study arm, a chunk of checkpoints) it saves that step's checkpoint and then
rewrites ``progress.json`` atomically (:func:`~ei_jax.experiments.checkpoints.atomic_write`):
the run's settings, the steps done, every table row so far and, for training runs, the
training state (parameters and optimizer state, Flax msgpack, base64) at the last step. A
run killed at any point (Ctrl-C, SIGTERM, SIGKILL) leaves a directory whose
``progress.json`` describes a consistent prefix of the run; ``--resume`` continues from it.
The final tables are built from the rows as stored (JSON), so a resumed run writes the same
bytes as an uninterrupted one. When the run has written its outputs, ``progress.json`` is
removed: a directory with it is an interrupted run, without it a finished one (or none).
"""

import base64
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import flax.serialization

from ei_jax.experiments.checkpoints import atomic_write

#: The progress file of a run that has not finished.
PROGRESS = "progress.json"
_FORMAT = "ei-jax progress 1"


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM (treated as Ctrl-C)."""


def _on_sigterm(signum, frame):
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def sigterm_raises():
    """Within the block SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``), so a run
    stops as on Ctrl-C: the step in progress is abandoned, the completed ones stay saved."""
    try:
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def normalize(value, default=None):
    """``value`` as it reads back from JSON (tuples -> lists, numpy scalars -> Python)."""
    return json.loads(json.dumps(value, default=default))


def _json_default(v):
    return v.item() if hasattr(v, "item") else str(v)


def interrupted(out) -> bool:
    """Whether ``out`` holds an interrupted run (a ``progress.json``)."""
    return (Path(out) / PROGRESS).is_file()


def check_resumable(out: Path, *, resume: bool, force: bool, finished: str | None) -> None:
    """Refuses (``FileExistsError``) an ``out`` holding an interrupted run unless ``resume`` or
    ``force``, and one holding a finished run (its file ``finished`` exists) unless ``force``
    or ``resume`` (which then reports the finished run)."""
    if interrupted(out) and not (resume or force):
        raise FileExistsError(
            f"--out {out} holds an interrupted run ({summary(out)}); pass --resume to continue "
            "it, or --force to discard it and start again.")
    if finished and (out / finished).exists() and not interrupted(out) and not (force or resume):
        raise FileExistsError(f"--out {out} already holds a run ({finished}); pass --force to "
                              "replace it, or choose another --out.")


def read_finished(path: Path, expect: dict[str, Any]) -> dict[str, Any]:
    """The JSON of a finished run (``--resume`` of a run that has finished), if its settings
    are ``expect`` (each key's value equal); else ``FileExistsError`` naming the difference."""
    meta = json.loads(Path(path).read_text())
    differ = sorted(k for k, v in normalize(expect, _json_default).items() if meta.get(k) != v)
    if differ:
        raise FileExistsError(f"--out {Path(path).parent} holds a finished run with other settings "
                              f"({', '.join(differ)}); pass --force to replace it, or choose another --out.")
    return meta


def summary(out) -> str:
    """``"3 of 9 steps done"`` for the interrupted run in ``out`` (or why it cannot be read)."""
    try:
        data = json.loads((Path(out) / PROGRESS).read_text())
        return f"{len(data['done'])} of {data['total']} steps done"
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {PROGRESS}"


class RunState:
    """The progress of one run in ``out`` (see the module docstring).

    Steps are named by strings (``"epoch 10"``, ``"p=0.2 step 400"``); :meth:`record` appends
    a step's rows and saves the file; :attr:`rows` are all rows so far, as read back from JSON.
    """

    def __init__(self, out: Path, data: dict[str, Any]):
        self.out, self.data = out, data

    @classmethod
    def open(cls, out, run: str, settings: dict[str, Any], total: int, *, resume: bool) -> "RunState":
        """Starts a run in ``out`` (a fresh progress file), or with ``resume`` continues the
        interrupted one there. A resume with other settings raises ``ValueError`` naming them."""
        out = Path(out)
        settings = normalize(settings, _json_default)
        if resume and interrupted(out):
            try:
                data = json.loads((out / PROGRESS).read_text())
                old = data["settings"] if data.get("format") == _FORMAT and data.get("run") == run else None
            except (OSError, ValueError, KeyError, TypeError):
                old = None
            if old is None:
                raise FileExistsError(f"{out / PROGRESS} is not the progress of an `ei-jax {run}` run; "
                                      "pass --force instead of --resume to start again.")
            if old != settings:
                diff = ", ".join(f"{k} {old.get(k)!r} then, {settings.get(k)!r} now"
                                 for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k))
                raise FileExistsError(f"--out {out} holds an interrupted run with other settings "
                                      f"({diff}); resume it with the same settings, or pass --force "
                                      "to discard it.")
            data["total"] = total
            state = cls(out, data)
            state.clean_temporaries()
            return state
        state = cls(out, dict(format=_FORMAT, run=run, settings=settings, total=total, done=[],
                              rows=[], train=None))
        out.mkdir(parents=True, exist_ok=True)
        state.clean_temporaries()
        state.save()
        return state

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.data["rows"]

    def is_done(self, step: str) -> bool:
        return step in self.data["done"]

    def restore(self, unit: str, template):
        """``(step, tree)``: the training state of ``unit`` saved with its last step (``tree``
        shaped like ``template``), or ``None`` if ``unit`` has none."""
        train = self.data.get("train")
        if not train or train["unit"] != unit:
            return None
        raw = base64.b64decode(train["state"])
        return train["step"], flax.serialization.from_bytes(template, raw)

    def record(self, step: str, rows, *, unit: str | None = None, index: int | None = None,
               train_state=None) -> list[dict[str, Any]]:
        """Marks ``step`` done with its ``rows`` (and ``unit``'s training state at ``index``)
        and saves the file atomically. Returns the rows as stored (read back from JSON)."""
        rows = normalize(list(rows), _json_default)
        self.data["rows"].extend(rows)
        self.data["done"].append(step)
        if train_state is not None:
            self.data["train"] = dict(unit=unit, step=index, state=base64.b64encode(
                flax.serialization.to_bytes(train_state)).decode("ascii"))
        self.save()
        return rows

    def save(self) -> None:
        atomic_write(self.out / PROGRESS, json.dumps(self.data))

    def finish(self) -> None:
        """The run's outputs are written: removes the progress file (the run is finished)."""
        with contextlib.suppress(FileNotFoundError):
            (self.out / PROGRESS).unlink()

    def clean_temporaries(self) -> None:
        """Removes the temporary files of writes a killed process left (``.NAME.XXXX.tmp``)."""
        for p in self.out.rglob(".*.tmp"):
            if p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()

"""Fault injection: `ei-jax reproduce`, `ei-jax study` and `ei-jax measure --out` killed
(SIGKILL, SIGTERM) after some completed steps and continued with `--resume` write exactly the
tables of an uninterrupted run, leave no hidden folders, and refuse an interrupted --out
without --resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Several measured epochs, each quick to measure but slow enough to be killed in between.
REPRODUCE = ["reproduce", "iris", "--epochs", "40", "--every", "10", "--samples", "20000",
             "--sensitivity-samples", "500", "--no-progress"]
STUDY = ["study", "depth", "--fast", "--no-progress"]
# Fields that legitimately differ between an uninterrupted and a resumed run.
VARYING = {"command", "seconds", "devices"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One compilation cache for every process of this module (the programs compile once)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("EI_JAX_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS", "EI_JAX_NO_CACHE")}
    env["PYTHONPATH"] = str(REPO)
    env["EI_JAX_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax-cache"))
    return env


def ei_jax(env, *argv, timeout=300):
    return subprocess.run([sys.executable, "-m", "ei_jax.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=timeout)


def start(env, *argv):
    return subprocess.Popen([sys.executable, "-m", "ei_jax.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def steps_done(out: Path) -> int:
    try:
        return len(json.loads((out / "progress.json").read_text())["done"])
    except (OSError, ValueError):
        return 0


def kill_after(proc, out: Path, steps: int, sig) -> str:
    """Sends ``sig`` to ``proc`` once ``out`` records ``steps`` completed steps; its stderr."""
    deadline = time.monotonic() + 300
    while steps_done(out) < steps:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 143), err
    assert (out / "progress.json").is_file(), "killed after the run finished: slow the steps down"
    return err


def table(out: Path, name: str):
    """The run's JSON without the fields that may differ, and its CSV text."""
    doc = json.loads((out / f"{name}.json").read_text())
    return {k: v for k, v in doc.items() if k not in VARYING}, (out / f"{name}.csv").read_text()


def no_hidden(*dirs):
    for d in dirs:
        assert not [p for p in Path(d).rglob(".*")], list(Path(d).rglob(".*"))


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "iris"
    p = ei_jax(env, *REPRODUCE, "--out", str(out))
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.parametrize("sig, steps", [(signal.SIGKILL, 1), (signal.SIGTERM, 3)])
def test_reproduce_killed_and_resumed(env, reference, tmp_path, sig, steps):
    out = tmp_path / "iris"
    err = kill_after(start(env, *REPRODUCE, "--out", str(out)), out, steps, sig)
    if sig == signal.SIGTERM:  # stops cleanly with one line saying how to resume
        assert "ei-jax: terminated (SIGTERM); progress saved in" in err and "--resume" in err
        assert "Traceback" not in err
    else:  # refused without --resume, naming --resume and --force; nothing changed
        before = (out / "progress.json").read_bytes()
        p = ei_jax(env, *REPRODUCE, "--out", str(out))
        assert p.returncode == 2 and "interrupted run" in p.stderr, p.stderr
        assert "--resume" in p.stderr and "--force" in p.stderr
        assert (out / "progress.json").read_bytes() == before
    p = ei_jax(env, *REPRODUCE, "--out", str(out), "--resume")
    assert p.returncode == 0, p.stderr
    assert "resuming the run in" in p.stderr
    assert table(out, "measurements") == table(reference, "measurements")
    assert sorted(os.listdir(out)) == sorted(os.listdir(reference))
    for ck in os.listdir(reference / "checkpoints"):
        assert (out / "checkpoints" / ck).read_bytes() == (reference / "checkpoints" / ck).read_bytes()
    no_hidden(tmp_path)
    # Resuming with other settings is refused with a clear message.
    q = ei_jax(env, *REPRODUCE[:3], "30", *REPRODUCE[4:], "--out", str(out), "--resume")
    assert q.returncode == 2 and "other settings" in q.stderr, q.stderr


def test_measure_folder_killed_and_resumed(env, reference, tmp_path):
    argv = ["measure", str(reference / "checkpoints"), "--samples", "20000", "--sensitivity-samples",
            "500", "--no-progress"]
    whole = ei_jax(env, *argv, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    kill_after(start(env, *argv, "--out", str(out)), out, 1, signal.SIGKILL)
    p = ei_jax(env, *argv, "--out", str(out))
    assert p.returncode == 2 and "--resume" in p.stderr and "--force" in p.stderr, p.stderr
    p = ei_jax(env, *argv, "--out", str(out), "--resume")
    assert p.returncode == 0, p.stderr
    assert table(out, "measurements") == table(tmp_path / "whole", "measurements")
    assert sorted(os.listdir(out)) == ["measurements.csv", "measurements.json"]
    rows = list(csv.DictReader(open(out / "measurements.csv")))
    assert len(rows) == 5 * 3  # five checkpoints of three layers
    no_hidden(tmp_path)


def test_study_killed_and_resumed(env, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "killed"
    err = kill_after(start(env, *STUDY, "--out", str(out)), out, 2, signal.SIGTERM)
    assert "resume with: ei-jax study depth" in err
    p = ei_jax(env, *STUDY, "--out", str(out))
    assert p.returncode == 2 and "--resume" in p.stderr and "--force" in p.stderr, p.stderr
    # The resumed and the uninterrupted run side by side (two cores).
    resumed, whole = start(env, *STUDY, "--out", str(out), "--resume"), start(env, *STUDY, "--out", str(ref))
    for proc in (resumed, whole):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    assert table(out, "table") == table(ref, "table")
    assert sorted(str(f.relative_to(out)) for f in out.rglob("*")) == sorted(
        str(f.relative_to(ref)) for f in ref.rglob("*"))
    for f in (ref / "checkpoints").rglob("*.msgpack"):
        assert (out / f.relative_to(ref)).read_bytes() == f.read_bytes()
    no_hidden(tmp_path)

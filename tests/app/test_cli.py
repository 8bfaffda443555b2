"""The ``ei-jax`` command: help, end-to-end runs, batch measurement, runtime setup, and
one-line errors for bad input."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from ei_jax import cli
from ei_jax.cli import setup as _cli_setup
import ei_jax.experiments as ex

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    """In this process JAX has started (the device count is fixed) and no cache is turned on."""
    jax.devices()
    monkeypatch.setenv(_cli_setup.NO_CACHE_ENV, "1")

# The sample counts of tests/app/test_experiments.py: the compiled measures are shared.
SMALL = ["--samples", "20000", "--sensitivity-samples", "500"]


def run_cli(*argv):
    """The exit status of ``ei-jax ARGV``, run in this process (output: capsys)."""
    return cli.main(list(argv))


def test_help(capsys):
    for argv in ([], ["reproduce"], ["measure"]):
        with pytest.raises(SystemExit) as e:
            cli.main([*argv, "--help"])
        assert e.value.code == 0
    text = capsys.readouterr().out
    for words in ("reproduce", "measure", "--samples", "--paper", "--mnist", "--out", "--seed",
                  "--every", "--epochs", "--bins", "--json", "--activation", "--in-range", "1e7",
                  "scikit-learn", "bits", "--devices", "--no-cache", "--force", "--csv", "glob",
                  "sigmoid,tanh"):
        assert words in text, words


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "iris"
    rc = cli.main(["reproduce", "iris", "--epochs", "20", "--every", "10", *SMALL, "--seed", "7",
                   "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_reproduce_iris(cli_run, capsys):
    files = sorted(str(p.relative_to(cli_run)) for p in cli_run.rglob("*") if p.is_file())
    assert files == ["causal_plane.png", "checkpoints/epoch_000000.msgpack",
                     "checkpoints/epoch_000010.msgpack", "checkpoints/epoch_000020.msgpack",
                     "ei_over_training.png", "measurements.csv", "measurements.json"]
    results = json.loads((cli_run / "measurements.json").read_text())
    assert results["training"] == dict(optimizer="optax.sgd", lr=0.01, batch_size=10,
                                       loss="summed squared error per batch", epochs=20, every=10,
                                       seed=7)
    assert results["measure"]["samples"] == 20000 and results["measure"]["bins"] == 8
    assert results["command"].startswith("ei-jax reproduce iris --epochs 20")


def test_measure_reproduces_the_table(cli_run, tmp_path, capsys):
    """`ei-jax measure` with the run's seed and settings prints the run's numbers."""
    out_json = tmp_path / "m.json"
    ckpt = cli_run / "checkpoints/epoch_000020.msgpack"
    assert run_cli("measure", str(ckpt), *SMALL, "--seed", "7", "--json", str(out_json)) == 0
    printed = capsys.readouterr().out
    assert "layers_0" in printed and "EI_parts" in printed and "bits" in printed
    got = json.loads(out_json.read_text())["rows"]
    table = [r for r in ex.read_table_csv(cli_run / "measurements.csv") if r["epoch"] == 20]
    for g, t in zip(got, table, strict=True):
        for c in ("ei_parts", "vector_ei", "sensitivity", "degeneracy", "plane_x", "plane_y"):
            for k in (f"{c}_corrected", f"{c}_stderr", f"{c}_plugin"):
                assert g[k] == t[k], k
        assert g["key"] == t["key"]


def test_measure_safetensors_through_bridges(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    path = tmp_path / "net.safetensors"
    save_file({"0.weight": rng.normal(size=(5, 4)).astype(np.float32),
               "2.weight": rng.normal(size=(3, 5)).astype(np.float32)}, str(path))
    assert run_cli("measure", str(path), *SMALL, "--activation", "sigmoid") == 0
    out = capsys.readouterr().out
    assert "4→5" in out and "5→3" in out and "8 bins" in out


BAD = [
    (["reproduce", "cifar10"], "invalid choice"),
    (["reproduce", "iris", "--samples", "0"], "positive integer"),
    (["reproduce", "iris", "--samples", "lots"], "positive integer"),
    (["reproduce", "iris", "--epochs", "1.5"], "positive integer"),
    (["reproduce", "iris", "--bins", "100000"], "at most"),
    (["reproduce", "iris", "--lr", "-1"], "positive number"),
    (["reproduce", "iris", "--seed", "x"], "seed"),
    (["reproduce", "iris", "--mnist", "somewhere"], "--mnist only applies"),
    (["reproduce", "digits", "--mnist", "/does/not/exist"], "does not exist"),
    (["reproduce", "iris", "--bogus"], "unrecognized arguments"),
    (["measure"], "required"),
    (["measure", "/does/not/exist.msgpack"], "does not exist"),
    (["measure", "/does/not/exist.pt"], "does not exist"),
    (["measure", "CKPT", "--in-range", "1", "0"], "LO < HI"),
    (["measure", "CKPT", "--in-range", "0", "nan"], "finite"),
    (["measure", "CKPT", "--activation", "softmax"], "invalid choice"),
    (["measure", "CKPT", "--json", "/does/not/exist/m.json"], "does not exist"),
    (["measure", "CORRUPT", "--activation", "sigmoid"], "not a Flax msgpack"),
    (["measure", "CORRUPT"], "--activation"),  # weights only: the activations are not guessed
    (["measure", "CKPT", "--activation", "sigmoid,gelu"], "invalid choice 'gelu'"),
    (["measure", "/does/not/*.msgpack"], "No checkpoint matches"),
    (["reproduce", "iris", "--out", "RUN"], "already holds a run"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_error_no_output(argv, message, cli_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CORRUPT").write_bytes(b"\x93NUMPY not a checkpoint")
    ckpt = str(cli_run / "checkpoints/epoch_000000.msgpack")
    argv = [{"CKPT": ckpt, "RUN": str(cli_run)}.get(a, a) for a in argv]
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and message in lines[0], err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CORRUPT"]  # nothing written


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("keep me")
    assert run_cli("reproduce", "iris", "--out", str(f), "--no-progress") == 2
    assert "not a directory" in capsys.readouterr().err
    assert f.read_text() == "keep me" and [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_console_script_errors_without_traceback(tmp_path):
    """The entry point as a process (python -m ei_jax.cli): one line on stderr, exit 2."""
    p = subprocess.run([sys.executable, "-m", "ei_jax.cli", "reproduce", "cifar10"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "invalid choice" in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == []


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("ei-jax 0.1.0 (jax ") and jax.__version__ in out


def test_batch_equals_each_checkpoint_alone(cli_run, tmp_path, capsys):
    """A run's checkpoints/ folder in one command: the table is, row for row, what measuring
    each checkpoint alone gives (same key); a glob gives the same; CSV = JSON."""
    args = (*SMALL, "--seed", "7")
    assert run_cli("measure", str(cli_run / "checkpoints"), *args, "--json", str(tmp_path / "all.json"),
                   "--csv", str(tmp_path / "all.csv")) == 0
    captured = capsys.readouterr()
    assert "3 layers of 3 checkpoints" in captured.out and "8 bins" in captured.out
    assert "measuring 3 checkpoints" in captured.err and "\r" not in captured.err  # not a terminal
    # 20,000 samples at 8 bins: vector EI is sample-limited; one summary line, not one per layer
    assert captured.err.count("sample-limited") == 1 and " of 9 layer measurements" in captured.err
    batch = json.loads((tmp_path / "all.json").read_text())
    assert batch["checkpoints"] == [str(cli_run / f"checkpoints/epoch_0000{e:02d}.msgpack") for e in (0, 10, 20)]
    assert batch["activation"] == "sigmoid"  # from the run's measurements.json
    alone = []
    for path in batch["checkpoints"]:
        assert run_cli("measure", path, *args, "--json", str(tmp_path / "one.json")) == 0
        alone += json.loads((tmp_path / "one.json").read_text())["rows"]
    assert len(batch["rows"]) == len(alone) == 9
    for b, a in zip(batch["rows"], alone):
        # the stack's exact columns come from one vmapped call, alone's from an unbatched one:
        # equal to float64 rounding; everything else (sampled columns, methods, keys) exactly
        floats = {k for k, v in a.items() if isinstance(v, float)}
        assert {k: v for k, v in b.items() if k not in floats} == {k: v for k, v in a.items() if k not in floats}
        assert [b[k] for k in sorted(floats)] == pytest.approx([a[k] for k in sorted(floats)], rel=1e-12, abs=1e-12)
        assert b["ei_parts_method"] == "exact" and b["vector_ei_method"] == "sampled"
    table = [r for r in ex.read_table_csv(cli_run / "measurements.csv")]
    for r, t in zip(alone, table, strict=True):  # and what the run itself measured
        cols = ("ei_parts_corrected", "vector_ei_corrected", "vector_ei_plugin", "sensitivity_corrected")
        assert [r[c] for c in cols] == [t[c] for c in cols]
    with open(tmp_path / "all.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["ei_parts_corrected"]) for r in rows] == [r["ei_parts_corrected"] for r in batch["rows"]]
    assert run_cli("measure", str(cli_run / "checkpoints/epoch_*.msgpack"), *args, "--json",
                   str(tmp_path / "glob.json")) == 0
    assert json.loads((tmp_path / "glob.json").read_text())["rows"] == batch["rows"]


def test_sampled_flag_and_the_table_note(cli_run, tmp_path, capsys):
    """--sampled: deep-ei's plug-in for every column, each with its standard error (the same
    samples as the exact run's vector EI); the note under the table says so."""
    path = str(cli_run / "checkpoints/epoch_000020.msgpack")
    assert run_cli("measure", path, *SMALL, "--seed", "7", "--json", str(tmp_path / "e.json")) == 0
    exact_out = capsys.readouterr().out
    assert run_cli("measure", path, *SMALL, "--seed", "7", "--sampled", "--json", str(tmp_path / "s.json")) == 0
    out = capsys.readouterr().out
    assert "Sampled: EI_parts, sensitivity, degeneracy, vector EI." in " ".join(out.split())
    assert "Exact (infinite-sample) values: EI_parts, sensitivity, degeneracy;" in " ".join(exact_out.split())
    assert "20,000 samples (500 per input neuron" in " ".join(out.split()) and "bin edge" in out
    sampled = json.loads((tmp_path / "s.json").read_text())
    exact = json.loads((tmp_path / "e.json").read_text())["rows"]
    assert sampled["measure"]["sampled"] is True
    for s, e in zip(sampled["rows"], exact, strict=True):
        assert {s[f"{c}_method"] for c in ("ei_parts", "sensitivity", "degeneracy")} == {"sampled"}
        assert s["ei_parts_stderr"] > 0 and s["vector_ei_plugin"] == e["vector_ei_plugin"]
        # the sampled estimate covers the exact value (5 stderr: chance failure 5.7e-7 each)
        for c in ("ei_parts", "sensitivity"):
            assert abs(s[f"{c}_corrected"] - e[f"{c}_corrected"]) <= 5 * s[f"{c}_stderr"] + 1e-9, c


def _sigmoid_tanh(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    path = tmp_path / "net.safetensors"
    save_file({"0.weight": rng.normal(0, 2, (6, 4)).astype(np.float32),
               "1.weight": rng.normal(0, 2, (5, 6)).astype(np.float32)}, str(path))
    return path


def test_activation_per_layer_is_not_guessed(tmp_path, capsys):
    """sigmoid,tanh: the second layer is measured as tanh (range (-1, 1)), as bridges builds it."""
    pytest.importorskip("safetensors")
    import bridges
    import ei_jax

    path = _sigmoid_tanh(tmp_path)
    with pytest.raises(SystemExit) as e:  # argparse-style usage error
        run_cli("measure", str(path), *SMALL)
    assert e.value.code == 2 and "--activation" in capsys.readouterr().err
    got = {}
    for act in ("sigmoid,tanh", "sigmoid"):
        assert run_cli("measure", str(path), *SMALL, "--activation", act, "--json", str(tmp_path / "m.json")) == 0
        got[act] = json.loads((tmp_path / "m.json").read_text())["rows"]
    model, variables = bridges.load_checkpoint(path, activation=("sigmoid", "tanh"))
    top = ei_jax.topology_of(model, variables, np.zeros((1, 4), np.float32))
    want = ex.measure_network(ex.run_keys(0)[3], top, ex.MeasureSettings(samples=20_000, sensitivity_samples=500))
    assert [top.nodes[n]["output"]["activation"] for n in top] == ["sigmoid", "tanh"]
    assert [r["ei_parts_corrected"] for r in got["sigmoid,tanh"]] == [r["ei_parts_corrected"] for r in want]
    assert got["sigmoid,tanh"][1]["ei_parts_corrected"] != got["sigmoid"][1]["ei_parts_corrected"]


def test_reproduce_force_and_unwritable_out(cli_run, tmp_path, capsys, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    before = (run / "measurements.json").read_text()
    assert run_cli("reproduce", "iris", "--out", str(run), "--epochs", "10", "--every", "10",
                   *SMALL, "--no-progress", "--force") == 0
    after = json.loads((run / "measurements.json").read_text())
    assert after["training"]["epochs"] == 10 and (run / "measurements.json").read_text() != before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_000000.msgpack",
                                                                      "epoch_000010.msgpack"]
    # An existing --out that cannot be written fails at once, before any training.
    (tmp_path / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p).name == "ro" else real_access(p, mode))
    monkeypatch.setattr(ex, "reproduce", None)  # training would fail loudly: it must not start
    capsys.readouterr()
    assert run_cli("reproduce", "iris", "--out", str(tmp_path / "ro"), "--no-progress") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a writable directory" in err[0]


def test_os_errors_are_one_line_without_errno():
    e = PermissionError(13, "Permission denied", "/runs/iris/measurements.csv")
    assert cli.commands._one_line(e) == "/runs/iris/measurements.csv: Permission denied"
    e = OSError(18, "Invalid cross-device link", "/a", None, "/b")
    assert cli.commands._one_line(e) == "/a -> /b: Invalid cross-device link"
    assert cli.commands._one_line(FileExistsError("--out x exists")) == "--out x exists"


def _measure_process(ckpt, out_json, env, *extra):
    env = {k: v for k, v in {**os.environ, **env}.items()
           if k not in ("EI_JAX_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS", _cli_setup.NO_CACHE_ENV)}
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run([sys.executable, "-m", "ei_jax.cli", "measure", str(ckpt), *SMALL, "--json",
                        str(out_json), *extra], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(Path(out_json).read_text()), p.stderr


def test_devices_and_compilation_cache(cli_run, tmp_path):
    """Processes: --devices 1 and the default (one device per core) give the same table; the cache fills a writable directory,
    and a directory that cannot be written only turns it off (with a note)."""
    ckpt = cli_run / "checkpoints/epoch_000020.msgpack"
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:  # independent processes: run them at the same time
        first = pool.submit(_measure_process, ckpt, tmp_path / "one.json",
                            {"XDG_CACHE_HOME": str(tmp_path / "cache")}, "--devices", "1")
        second = pool.submit(_measure_process, ckpt, tmp_path / "two.json", {"XDG_CACHE_HOME": "/dev/null/cache"})
        (one, _), (two, err) = first.result(), second.result()
    assert (one["devices"], two["devices"]) == (1, _cli_setup.core_count())  # default: every core
    assert one["rows"] == two["rows"]
    assert any((tmp_path / "cache").rglob("*")), "the compilation cache wrote nothing"
    assert "compilation cache" in err and "Traceback" not in err

"""The ``ei-jax`` command: help, end-to-end runs, and one-line errors for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from ei_jax import cli
from ei_jax._src import experiments as ex

# The sample counts of tests/test_experiments.py: the compiled measures are shared.
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
                  "scikit-learn", "bits"):
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
    got = json.loads(out_json.read_text())["layers"]
    table = [r for r in ex.read_table_csv(cli_run / "measurements.csv") if r["epoch"] == 20]
    for g, t in zip(got, table, strict=True):
        for k in ("ei_parts", "vector_ei", "sensitivity", "degeneracy", "plane_x", "plane_y"):
            assert g[k] == t[k], k
        assert g["key"] == t["key"]


def test_measure_safetensors_through_bridges(tmp_path, capsys):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    path = tmp_path / "net.safetensors"
    save_file({"0.weight": rng.normal(size=(5, 4)).astype(np.float32),
               "2.weight": rng.normal(size=(3, 5)).astype(np.float32)}, str(path))
    assert run_cli("measure", str(path), *SMALL) == 0
    out = capsys.readouterr().out
    assert "4→5" in out and "5→3" in out


BAD = [
    (["reproduce", "mnist"], "invalid choice"),
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
    (["measure", "CORRUPT"], "not a Flax msgpack"),
    (["frobnicate"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_error_no_output(argv, message, cli_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "CORRUPT").write_bytes(b"\x93NUMPY not a checkpoint")
    ckpt = str(cli_run / "checkpoints/epoch_000000.msgpack")
    argv = [ckpt if a == "CKPT" else a for a in argv]
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
    p = subprocess.run([sys.executable, "-m", "ei_jax.cli", "reproduce", "mnist"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "invalid choice" in p.stderr, p.stderr
    assert list(tmp_path.iterdir()) == []

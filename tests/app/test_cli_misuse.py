"""Misuse of the ``ei-jax`` command: exit status 2 and a one-line message on stderr that says
what is wrong in the command's own terms (its options, not the library's keyword arguments)."""

import numpy as np
import pytest

from ei_jax.cli import main
from ei_jax.cli import setup as cli_setup


def _misuse(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        status = main(list(argv))
        raise SystemExit(status)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def test_an_empty_folder_holds_no_checkpoint(tmp_path, capsys):
    line = _misuse(capsys, "measure", str(tmp_path), "--activation", "sigmoid", "--no-cache")
    assert "holds no checkpoint" in line and "_METADATA" not in line


def test_a_missing_checkpoint(tmp_path, capsys):
    line = _misuse(capsys, "measure", str(tmp_path / "nope.msgpack"), "--no-cache")
    assert "does not exist" in line


def test_advice_names_the_commands_option_not_a_keyword(tmp_path, capsys):
    from ei_jax.experiments.checkpoints import save_checkpoint

    path = tmp_path / "net.msgpack"
    save_checkpoint(str(path), {"params": {"layers_0": {"kernel": np.ones((5, 3), np.float32)}}})
    line = _misuse(capsys, "measure", str(path), "--no-cache")
    assert "architecture=" not in line and "activation=" not in line
    assert "--activation" in line


@pytest.mark.parametrize("argv", [
    ("measure", "x.msgpack", "--bins", "0"),
    ("measure", "x.msgpack", "--samples", "many"),
    ("measure", "x.msgpack", "--devices", "-1"),
    ("measure", "x.msgpack", "--in-range", "1", "nan"),
    ("measure", "x.msgpack", "--activation", "softmax"),
    ("measure", "x.msgpack", "--seed", "-3"),
])
def test_bad_option_values(capsys, argv):
    _misuse(capsys, *argv)


def test_more_devices_than_cores_are_lowered_with_a_note(monkeypatch):
    import jax

    cores = jax.device_count("cpu")  # JAX has started here: the note is all that can change
    monkeypatch.setattr(cli_setup, "core_count", lambda: cores)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    note = cli_setup.set_cpu_devices(64, explicit=True)
    assert note is not None and "--devices 64" in note and f"using {cores}" in note
    assert cli_setup.set_cpu_devices(cores, explicit=True) is None

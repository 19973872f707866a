"""``poolkit lab train`` and ``poolkit lab claims`` on a reduced setting, and the lab's helpers.

The commands run in-process through ``poolkit.cli.main`` with ``add_lab`` among its COMMANDS (added
here for the test if the command line does not list it yet).  Their files are checked: valid PNG
(opened by Pillow, not blank), a ``.npz`` state_dict that loads into a fresh model and gives the
reported accuracy, JSON with the promised keys, and ``claims.md`` with its six sections and numbers.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
PIL_Image = pytest.importorskip("PIL.Image")

import poolkit.cli as pk_cli  # noqa: E402
from poolkit import nn  # noqa: E402
from poolkit.nn.lab import data as D  # noqa: E402
from poolkit.nn.lab import models, train  # noqa: E402
from poolkit.nn.lab.claims import compare, compute_cost, receptive_field_closed_form  # noqa: E402
from poolkit.nn.lab.cli import add_lab  # noqa: E402


@pytest.fixture
def lab_main(monkeypatch):
    if add_lab not in pk_cli.COMMANDS:
        monkeypatch.setattr(pk_cli, "COMMANDS", pk_cli.COMMANDS + [add_lab])

    def run(argv, capsys):
        code = pk_cli.main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with PIL_Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float64)
    assert arr.shape[0] > 200 and arr.shape[1] > 400
    assert arr.std() > 10  # not blank


@pytest.fixture(scope="module")
def digits():
    return D.load_digits()


def test_digits_are_the_stratified_split(digits):
    assert digits.x_train.shape == (1347, 1, 20, 20) and digits.x_test.shape == (450, 1, 20, 20)
    assert digits.x_train.dtype == np.float32 and 0 <= digits.x_train.min() and digits.x_train.max() <= 1
    assert set(np.bincount(digits.y_test)) <= {43, 44, 45, 46}  # stratified: a quarter of each class
    assert not digits.x_train[:, :, :2].any() and not digits.x_train[:, :, :, -2:].any()  # the 2-pixel margin
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    b = load_digits()
    _, x_te, _, y_te = train_test_split(b.images, b.target, test_size=0.25, random_state=0, stratify=b.target)
    np.testing.assert_array_equal(y_te, digits.y_test)
    # upscaling is PyTorch's bilinear interpolation (align_corners=False), then a 2-pixel zero margin
    torch = pytest.importorskip("torch")
    up = torch.nn.functional.interpolate(torch.tensor(x_te[:, None] / 16), size=(16, 16), mode="bilinear",
                                         align_corners=False).numpy()
    np.testing.assert_allclose(digits.x_test[:, :, 2:-2, 2:-2], up, rtol=1e-6, atol=1e-6)


def test_transforms():
    x = np.zeros((2, 1, 9, 9), dtype=np.float32)
    x[:, 0, 4, 4] = 1
    s = D.shift(x, [1, -2], [0, 3])
    assert s[0, 0, 5, 4] == 1 and s[1, 0, 2, 7] == 1 and s.sum() == 2
    np.testing.assert_allclose(D.affine(x, 0.0, 1.0), x, atol=1e-12)
    r = D.affine(x, 90.0)
    assert r[0, 0, 4, 4] == pytest.approx(1)
    wide = D.affine(np.ones((1, 1, 9, 9)), 0.0, 0.5)   # shrinking leaves a zero border
    assert wide[0, 0, 4, 4] == pytest.approx(1) and wide[0, 0, 0, 0] == 0


def test_motif_task():
    task = D.make_motif_task(n_train=200, n_test=100, seed=3)
    assert len(task.train) == 200 and set(np.unique(task.y_train)) == {0, 1, 2, 3}
    for seq, label in zip(task.train + task.test, np.concatenate([task.y_train, task.y_test])):
        found = [i for i, m in enumerate(task.motifs)
                 if any(tuple(seq[j:j + 3]) == m for j in range(len(seq) - 2))]
        assert found == [label]
        assert seq.min() >= 1
    assert max(len(s) for s in task.test) > 60 >= max(len(s) for s in task.train)
    tok, lengths = D.pad_batch(task.test[:5])
    assert tok.shape == (5, lengths.max()) and (tok[np.arange(tok.shape[1])[None] >= lengths[:, None]] == 0).all()


@pytest.mark.parametrize("pool", models.POOLS)
def test_models_build_and_train_a_step(pool, digits):
    model = models.make_lenet(pool, rng=np.random.default_rng(0))
    logits = model(digits.x_train[:4])
    assert logits.shape == (4, 10)
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(logits, digits.y_train[:4])
    assert model.backward(loss_fn.backward()).shape == (4, 1, 20, 20)
    feats = models.feature_extractor(model)(digits.x_train[:2])
    assert feats.ndim == 4


def test_compute_cost_and_closed_form():
    cost = compute_cost(models.make_lenet("none", rng=np.random.default_rng(0)))
    assert cost["multiply_adds"] == 20 * 20 * 8 * 9 + 20 * 20 * 16 * 8 * 9 + 16 * 20 * 20 * 10
    assert cost["pool_reads"] == 0
    # conv 3 -> pool 2 -> conv 3 -> pool 2: 3, 4, 8, 10
    g = [(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1), (2, 2, 0, 1)]
    assert [receptive_field_closed_form(g[:i], 0)[0] for i in range(1, 5)] == [3, 4, 8, 10]
    assert receptive_field_closed_form([(3, 1, 0, 2)], 4) == (5, 4)  # dilation
    assert compare([1.0], [0.5])["relation"] == "higher"


def test_lab_train(lab_main, capsys, tmp_path, digits):
    out = tmp_path / "run"
    js = tmp_path / "result.json"
    code, stdout, err = lab_main(["lab", "train", "--epochs", "2", "--seed", "1", "--out", str(out),
                                  "--json", str(js)], capsys)
    assert code == 0, err
    assert re.search(r"epoch 1/2 .*loss \d\.\d+ .*train acc 0\.\d+ .*test acc 0\.\d+", stdout)
    assert "test accuracy" in stdout
    res = json.loads(js.read_text())
    assert set(res) == {"pool", "test_accuracy", "train_accuracy", "seconds", "epochs"}
    assert res["pool"] == "max" and res["epochs"] == 2 and res["seconds"] > 0
    assert 0.3 < res["test_accuracy"] <= 1 and 0.3 < res["train_accuracy"] <= 1  # chance is 0.1
    check_png(out / "lenet-max.png")
    model = models.make_lenet("max", rng=np.random.default_rng(99))
    with np.load(out / "lenet-max.npz") as state:
        assert sorted(state.files) == sorted(model.state_dict())
        model.load_state_dict(state)
    assert train.accuracy(model, digits.x_test, digits.y_test) == pytest.approx(res["test_accuracy"])


def test_lab_train_other_pool(lab_main, capsys, tmp_path):
    code, stdout, err = lab_main(["lab", "train", "--pool", "maxblur", "--epochs", "1", "--out", str(tmp_path)],
                                 capsys)
    assert code == 0, err
    assert (tmp_path / "lenet-maxblur.npz").is_file() and (tmp_path / "lenet-maxblur.png").is_file()


def test_lab_claims_quick(lab_main, capsys, tmp_path):
    code, stdout, err = lab_main(["lab", "claims", "--quick", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "verdicts" in stdout and "[6/6] none" in stdout
    res = json.loads((tmp_path / "claims.json").read_text())
    assert res["pools"] == list(models.POOLS)
    for pool in models.POOLS:
        per = res["per_pool"][pool]
        assert 0.1 < per["test_accuracy_mean_std"][0] <= 1
        assert per["cost"]["parameters"] > 0 and per["seconds_per_epoch"] > 0
        assert 0 <= per["consistency_mean_std"]["shift"][0] <= 1
        assert per["cosine"]["shift"]["mean"][0] == pytest.approx(1.0)
    assert res["verdicts"]["receptive_field"]["verdict"] == "AGREE"
    text = res["text"][0]
    assert text["pooled_length_shortest"] == text["pooled_length_longest"] == 32
    assert text["masked_prediction_mismatches"] == 0 and text["masked_max_abs_logit_difference"] < 1e-5
    md = (tmp_path / "claims.md").read_text()
    heads = re.findall(r"^## (\d)\. ", md, flags=re.M)
    assert heads == ["1", "2", "3", "4", "5", "6"]
    for section in md.split("\n## ")[1:]:
        assert re.search(r"^\| \w+ \|.*\d", section, flags=re.M), section[:60]  # a table row with numbers
        assert "Verdict" in section
    check_png(tmp_path / "claims.png")


@pytest.mark.parametrize("argv, message", [
    (["lab", "train", "--pool", "median"], "invalid choice"),
    (["lab", "train", "--epochs", "0"], "--epochs must be >= 1"),
    (["lab", "train", "--lr", "-1"], "--lr must be > 0"),
    (["lab", "claims", "--seeds", "x"], "--seeds must be an int"),
    (["lab"], "required"),
])
def test_lab_usage_errors(lab_main, capsys, argv, message):
    code, out, err = lab_main(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_lab_out_must_be_a_directory(lab_main, capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, out, err = lab_main(["lab", "train", "--out", str(f)], capsys)
    assert code == 2 and "is not a directory" in err
    code, out, err = lab_main(["lab", "train", "--json", str(tmp_path / "missing" / "r.json")], capsys)
    assert code == 2 and "does not exist" in err

"""Every registered detector: a smoke test over the registry, plus a hand-computed value each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _cli import SCORE
from _scoring_toys import MEAN, STD, ToyNet, toy_images

from oodbench import detectors, metrics
from oodbench.cli import main
from oodbench.detectors import Detector, NotFittedError, Param
from oodbench.detectors.params import fmt
from oodbench.errors import UserError
from oodbench.scoring.extract import Outputs, extract, read_metadata


@pytest.fixture(scope="module")
def toy() -> dict:
    model = ToyNet().eval()
    sets = {
        "train": toy_images(400, 0),
        "id": toy_images(120, 1),
        "noise": toy_images(120, 2, True),
    }
    outs = {k: extract(model, v, MEAN, STD, batch_size=64) for k, v in sets.items()}
    return {"model": model, "sets": sets, "outs": outs}


def test_registry_has_the_required_detectors() -> None:
    required = {"msp", "maxlogit", "energy", "entropy", "gen", "odin", "gradnorm", "mahalanobis",
                "rmd", "knn", "vim", "react", "ash", "dice"}  # fmt: skip
    assert required <= set(detectors.names())
    assert "odin" not in detectors.names(include_model=False)
    for _, cls in detectors.DETECTORS.items():
        assert cls.paper and cls.__doc__ and set(cls.needs) <= set(detectors.NEEDS)


def test_all_scores_each_computation_once_and_aliases_stay_usable() -> None:
    every = [d.name for d in detectors.build(["all"])]
    assert "ash" not in every and "ash-s" in every and len(every) >= 32
    assert every == detectors.names(include_aliases=False)
    assert [d.name for d in detectors.build(["ash", "all"])][0] == "ash"  # named: scored
    assert detectors.DETECTORS.get("ash").alias_of == "ash-s"
    aliases = [n for n, c in detectors.DETECTORS.items() if c.alias_of]
    assert all(detectors.DETECTORS.get(n).alias_of in every for n in aliases)


# Model detectors the toy net cannot run (its features are not a spatial map), with the
# one-line error they give on it; each is smoke-tested on spatial maps in its own test file.
NOT_ON_TOY = {"rankfeat": "needs a spatial feature map"}  # tests/test_detectors_b.py


@pytest.mark.parametrize("name", detectors.names())
def test_every_detector_separates_id_from_noise(name: str, toy: dict) -> None:
    det = detectors.create(name)
    det.fit(toy["outs"]["train"])
    scores = {}
    for split in ("id", "noise"):
        if "model" in det.needs:
            data = toy["sets"][split]
            if name in NOT_ON_TOY:
                with pytest.raises(UserError, match=NOT_ON_TOY[name]):
                    det.score_inputs(toy["model"], data.images, MEAN, STD)
                return
            scores[split] = det.score_inputs(toy["model"], data.images, MEAN, STD)
        else:
            scores[split] = det.score(toy["outs"][split])
        assert scores[split].shape == (120,)
        assert torch.isfinite(scores[split]).all()
    assert metrics.auroc(scores["id"], scores["noise"]) > 0.9


# ---------------------------------------------------------------- hand-computed values

RNG = np.random.default_rng(0)
LOGITS = np.array([[2.0, 0.0, -1.0], [0.5, 0.4, 0.3], [-3.0, 4.0, 1.0]])


def outs(logits: np.ndarray, feats: np.ndarray | None = None, labels=None, w=None, b=None):
    f = feats if feats is not None else np.zeros((len(logits), 1))
    lab = labels if labels is not None else np.zeros(len(logits), dtype=np.int64)

    def t(a):
        return None if a is None else torch.tensor(a, dtype=torch.float32)

    return Outputs(t(logits), t(f), torch.tensor(lab), t(w), t(b))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def lse(z: np.ndarray) -> np.ndarray:
    return np.log(np.exp(z).sum(1))


def score(name: str, o: Outputs, train: Outputs | None = None, **hp) -> np.ndarray:
    det = detectors.create(name, **hp)
    det.fit(train if train is not None else o)
    return det.score(o).numpy()


def test_logit_detectors_by_hand() -> None:
    o, p = outs(LOGITS), softmax(LOGITS)
    np.testing.assert_allclose(score("msp", o), p.max(1), rtol=1e-6)
    np.testing.assert_allclose(score("maxlogit", o), [2.0, 0.5, 4.0])
    np.testing.assert_allclose(score("energy", o, temperature=2.0), 2 * lse(LOGITS / 2), rtol=1e-6)
    np.testing.assert_allclose(score("entropy", o), (p * np.log(p)).sum(1), rtol=1e-6)
    top2 = np.sort(p, 1)[:, ::-1][:, :2]
    gen = -(top2**0.1 * (1 - top2) ** 0.1).sum(1)
    np.testing.assert_allclose(score("gen", o, m=2), gen, rtol=1e-6)


def gaussian_fit(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    means = np.stack([f[y == c].mean(0) for c in np.unique(y)])
    centred = f - means[y]
    return means, np.linalg.inv(centred.T @ centred / len(f))


def test_mahalanobis_and_rmd_by_hand() -> None:
    f = RNG.normal(size=(60, 3)) + np.repeat(np.eye(3) * 4, 20, axis=0)
    y = np.repeat(np.arange(3), 20)
    q = RNG.normal(size=(5, 3)) * 3
    means, prec = gaussian_fit(f, y)
    md = np.array([[(x - m) @ prec @ (x - m) for m in means] for x in q])
    train, test = outs(np.zeros((60, 3)), f, y), outs(np.zeros((5, 3)), q)
    np.testing.assert_allclose(score("mahalanobis", test, train), -md.min(1), rtol=1e-5)
    mu0, prec0 = gaussian_fit(f, np.zeros(60, dtype=int))
    md0 = np.array([(x - mu0[0]) @ prec0 @ (x - mu0[0]) for x in q])
    np.testing.assert_allclose(score("rmd", test, train), -(md - md0[:, None]).min(1), rtol=1e-5)


def test_knn_by_hand_and_k_validation() -> None:
    bank, q = RNG.normal(size=(30, 4)), RNG.normal(size=(6, 4))
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    dist = np.linalg.norm(unit(q)[:, None] - unit(bank)[None], axis=2)
    expect = -np.sort(dist, 1)[:, 6]  # the 7th nearest
    train, test = outs(np.zeros((30, 2)), bank), outs(np.zeros((6, 2)), q)
    np.testing.assert_allclose(score("knn", test, train, k=7), expect, rtol=1e-4, atol=1e-5)
    with pytest.raises(UserError, match="larger than the 30"):
        detectors.create("knn", k=31).fit(train)
    for bad in (0, -3, 2.5):
        with pytest.raises(UserError, match="k must be"):
            detectors.create("knn", k=bad)


def head_problem(n: int = 50, d: int = 6, k: int = 3):
    feats = np.abs(RNG.normal(size=(n, d))) * np.linspace(0.5, 2, d)
    w, b = RNG.normal(size=(k, d)), RNG.normal(size=k)
    return feats, w, b, feats @ w.T + b


def test_react_ash_dice_by_hand() -> None:
    f, w, b, z = head_problem()
    o = outs(z, f, w=w, b=b)
    c = np.percentile(f.ravel(), 90)
    np.testing.assert_allclose(score("react", o), lse(np.minimum(f, c) @ w.T + b), rtol=1e-6)
    # ASH-S @ p=50 on 6 features: keep the top 3 per sample, scale by exp(sum / kept sum).
    ash = []
    for x in f:
        kept = np.where(x >= np.sort(x)[-3], x, 0.0)
        ash.append(kept * np.exp(x.sum() / kept.sum()))
    np.testing.assert_allclose(score("ash", o, percentile=50.0), lse(np.array(ash) @ w.T + b),
                               rtol=1e-6)  # fmt: skip
    contrib = w * f.mean(0)
    masked = w * (contrib > np.percentile(contrib, 70))
    np.testing.assert_allclose(score("dice", o, percentile=70.0), lse(f @ masked.T + b), rtol=1e-6)


def test_vim_by_hand() -> None:
    f, w, b, z = head_problem(n=80, d=8, k=3)
    origin = -np.linalg.pinv(w) @ b
    centred = f - origin
    vals, vecs = np.linalg.eigh(centred.T @ centred / len(f))
    null = vecs[:, np.argsort(vals)[:4]]  # D - dim = 8 - 4 least-variance directions
    resid = np.linalg.norm((f - origin) @ null, axis=1)
    alpha = z.max(1).mean() / resid.mean()
    o = outs(z, f, w=w, b=b)
    np.testing.assert_allclose(score("vim", o), lse(z) - alpha * resid, rtol=1e-5)
    with pytest.raises(UserError, match="dim must be between"):
        score("vim", o, dim=8)


@pytest.mark.parametrize("bias", [False, True])
def test_gradnorm_closed_form_matches_autograd(bias: bool) -> None:
    torch.manual_seed(0)
    fc = torch.nn.Linear(5, 4, bias=True)
    h = torch.rand(7, 5) * 3
    expect = []
    for x in h:  # the authors' loss: cross-entropy to the uniform target, one sample at a time
        fc.zero_grad()
        loss = -(torch.log_softmax(fc(x[None]) / 2.0, dim=1)).mean()
        loss.backward()
        norm = fc.weight.grad.abs().sum() + (fc.bias.grad.abs().sum() if bias else 0.0)
        expect.append(norm.item())
    with torch.no_grad():
        o = Outputs(fc(h), h, torch.zeros(7, dtype=torch.int64), fc.weight, fc.bias)
    got = score("gradnorm", o, temperature=2.0, include_bias=bias)
    np.testing.assert_allclose(got, expect, rtol=1e-5)


def test_odin_by_hand_on_a_linear_model() -> None:
    """For f = W h(x) with h = relu(x + 1) > 0, d CE / dx = W^T (p - onehot) / T elementwise."""
    model = ToyNet(scale=1.0, bias=False).eval()
    data = toy_images(5, 3)
    t, eps = 10.0, 0.01
    x = (data.images.float() / 255 - 0.5) / 0.5
    h = torch.relu(x.flatten(1) + 1)
    w = model.fc.weight.detach()
    p = torch.softmax(h @ w.T / t, 1)
    onehot = torch.nn.functional.one_hot(p.argmax(1), 4).float()
    grad = ((p - onehot) @ w / t) * (h > 0).float()
    xp = x.flatten(1) - eps * torch.where(grad >= 0, 1.0, -1.0) / 0.5
    expect = torch.softmax(torch.relu(xp + 1) @ w.T / t, 1).max(1).values
    det = detectors.create("odin", temperature=t, epsilon=eps)
    got = det.score_inputs(model, data.images, MEAN, STD)
    np.testing.assert_allclose(got.numpy(), expect.numpy(), rtol=1e-5)
    with pytest.raises(UserError, match="score_inputs"):
        det.score(outs(LOGITS))


def test_bad_names_and_hyperparameters() -> None:
    with pytest.raises(UserError, match="did you mean 'energy'"):
        detectors.create("energi")
    with pytest.raises(UserError, match="does not take k"):
        detectors.create("msp", k=3)
    with pytest.raises(UserError, match="temperature must be"):
        detectors.create("energy", temperature=0)
    with pytest.raises(UserError, match="percentile"):
        detectors.create("react", percentile=100)
    assert detectors.create("knn", k=10).label == "knn[k=10]"
    assert detectors.create("knn").label == "knn"


def test_head_detectors_need_a_linear_head() -> None:
    f, w, b, z = head_problem()
    with pytest.raises(UserError, match="linear classifier"):
        detectors.create("react").fit(outs(z, f))


# ---------------------------------------------------------------- declared hyperparameters

PARAMS = [(n, p) for n, cls in detectors.DETECTORS.items() for p in cls.params()]


def out_of_range(param: Param) -> list[object]:
    """Values ``param`` must reject: the wrong type, and one step past each bound."""
    if param.type is bool:
        return [1, "maybe", None]  # "true"/"false" strings are parsed, as the CLI gives them
    bad: list[object] = ["abc", True, float("nan"), float("inf")]
    if param.low is not None:
        bad.append(param.low if param.low_open else param.low - 1)
    if param.high is not None:
        bad.append(param.high if param.high_open else param.high + 1)
    if param.type is int:
        bad.append(param.default + 0.5)
    return bad


@pytest.mark.parametrize(("name", "key"), PARAMS)
def test_every_declared_default_is_in_range_and_out_of_range_is_refused(
    name: str, key: str
) -> None:
    cls = detectors.DETECTORS.get(name)
    param = cls.params()[key]
    assert isinstance(param.default, param.type)
    for value in (param.default, *param.grid):
        assert param.check(value) == value  # the grid a tuner will try is valid too
    assert getattr(detectors.create(name), key) == param.default
    for bad in out_of_range(param):
        with pytest.raises(UserError) as err:
            detectors.create(name, **{key: bad})
        message = str(err.value)
        assert f"{name}.{key}" in message and repr(bad) in message, message
        allowed = param.describe() if param.choices else param.range_text()
        assert allowed in message or param.type is bool, message


@pytest.mark.parametrize("name", [n for n in detectors.names() if detectors.create(n).needs_fit])
def test_scoring_before_fit_is_a_clear_error(name: str, toy: dict) -> None:
    det = detectors.create(name)
    with pytest.raises(NotFittedError, match=f"{name} is not fitted: call fit"):
        det.score(toy["outs"]["id"])
    assert isinstance(NotFittedError("x"), UserError)  # the CLI prints it as one line, exit 2
    det.fit(toy["outs"]["train"])
    assert det.score(toy["outs"]["id"]).shape == (120,)


def test_params_are_typed_attributes_and_assignment_is_validated() -> None:
    knn = detectors.create("knn", k=7.0)  # a whole float is the whole number it means
    assert knn.k == 7 and type(knn.k) is int
    assert knn.params_text == "k=7" and knn.label == "knn[k=7]"
    with pytest.raises(UserError, match=r"knn.k must be a whole number in \[1, inf\), got 0"):
        knn.k = 0
    assert knn.k == 7
    odin = detectors.create("odin")
    assert odin.params_text == "temperature=1000,epsilon=0.0014" and odin.label == "odin"
    assert detectors.create("msp").params_text == ""
    assert (
        detectors.create("energy", temperature=0.1 + 0.2).label
        == "energy[temperature=0.30000000000000004]"
    )


def test_build_applies_params_and_the_flag_shorthand() -> None:
    dets = detectors.build(
        ["all"], ["knn.k=200", "react.percentile=95", "gradnorm.include_bias=true"]
    )
    by_name = {d.name: d for d in dets}
    assert by_name["knn"].k == 200 and by_name["react"].percentile == 95.0
    assert by_name["gradnorm"].include_bias is True and by_name["ash-s"].percentile == 90.0
    both = detectors.build(["energy", "odin"], [], {"temperature": 2.0, "k": None})
    assert [d.temperature for d in both] == [2.0, 2.0]
    with pytest.raises(UserError, match=r"knn.k is set twice \(7 and 10\)"):
        detectors.build(["knn"], ["knn.k=10"], {"k": 7})


# ---------------------------------------------------------------- --param on the command line

BAD_PARAMS = [
    (["-d", "knn", "--param", "knnn.k=3"], "did you mean 'knn'"),
    (["-d", "knn", "--param", "knn.kk=3"], "did you mean 'k'"),
    (["-d", "msp", "--param", "msp.k=3"], "takes no hyperparameters"),
    (["-d", "knn", "--param", "knn.k=abc"], "knn.k must be a whole number in [1, inf), got 'abc'"),
    (["-d", "knn", "--param", "knn.k=2.5"], "got 2.5"),
    (["-d", "knn", "--param", "knn.k=0"], "knn.k must be a whole number in [1, inf), got 0"),
    (["-d", "react", "--param", "react.percentile=100"], "in [0, 100), got 100.0"),
    (["-d", "gradnorm", "--param", "gradnorm.include_bias=maybe"], "true or false"),
    (["-d", "knn", "--param", "knn=3"], "DETECTOR.NAME=VALUE"),
    (["-d", "energy", "--param", "knn.k=3"], "not among the chosen detectors (energy)"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_PARAMS)
def test_bad_param_is_one_line_exit_2_before_any_work(
    args: list[str], needle: str, scored_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (scored_run / "metrics.csv").read_bytes()
    assert main(["score", str(scored_run), *args, *SCORE]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert (scored_run / "metrics.csv").read_bytes() == before


def test_bench_checks_params_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    assert main(["bench", "--out", str(out), "--param", "vim.dim=-1", "-q"]) == 2
    err = capsys.readouterr().err
    assert "vim.dim must be a whole number in [0, inf), got -1" in err and not out.exists()


DOCS = Path(__file__).parents[1] / "docs" / "detectors.md"


def documented_detector(monkeypatch: pytest.MonkeyPatch) -> type[Detector]:
    """The class of docs/detectors.md's "Add your own detector", defined by running that very
    code block; ``@register`` registers it for this test only."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Add your own detector") :]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    made: list[type[Detector]] = []

    def register(cls: type[Detector]) -> type[Detector]:
        monkeypatch.setitem(detectors.DETECTORS._items, cls.name, cls)
        made.append(cls)
        return cls

    monkeypatch.setattr(detectors, "register", register)
    exec(compile(code, str(DOCS), "exec"), {"__name__": "docs_example"})
    assert len(made) == 1
    return made[0]


def test_the_documented_detector_is_scored_through_the_cli(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One class with one tunable value, scored with --param and recorded in metrics.csv."""
    top_mass = documented_detector(monkeypatch)
    assert top_mass.name == "topmass" and detectors.create("topmass").top == 2
    assert main(["detectors"]) == 0
    assert "top=2 in [1, inf)" in capsys.readouterr().out
    argv = ["score", str(run), "-d", "topmass", "--ood", "gaussian", *SCORE]
    assert main([*argv, "--param", "topmass.top=1"]) == 0
    table = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    rows = table[table["ood_dataset"] == "gaussian"].set_index("detector")
    assert rows.loc["topmass[top=1]", "params"] == "top=1"
    assert rows.loc["msp", "params"] == ""  # no hyperparameters: an empty cell
    for col in ("fpr95", "auroc", "aupr_in", "aupr_out"):  # top = 1 is MSP, bit for bit
        assert rows.loc["topmass[top=1]", col] == rows.loc["msp", col]
    report = run.parent / "report.md"
    assert main(["report", str(run), "--format", "markdown", "--out", str(report)]) == 0
    assert "Non-default hyperparameters: topmass[top=1] ran top=1." in report.read_text()
    assert main(argv) == 0  # the default, top = 2: a row of its own
    table = pd.read_csv(run / "metrics.csv", keep_default_na=False)
    assert (
        table.set_index(["detector", "ood_dataset"]).loc[("topmass", "gaussian"), "params"]
        == "top=2"
    )


def test_a_row_scored_with_other_values_is_rescored(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A default that changed between releases: the row says energy ran with T = 3, today's
    default is T = 1, so resuming recomputes it instead of keeping the old number."""
    path = run / "metrics.csv"
    table = pd.read_csv(path, keep_default_na=False, dtype={"weights_hash": str})
    energy = table["detector"] == "energy"
    auroc = table.loc[energy, "auroc"].tolist()
    table.loc[energy, "params"] = "temperature=3"
    table.loc[energy, "auroc"] = -1.0
    table.to_csv(path, index=False)
    argv = ["score", str(run), "-d", "energy", "--ood", "gaussian", "--ood", "mnist-5k", *SCORE]
    assert main(argv) == 0
    new = pd.read_csv(path, keep_default_na=False)
    energy = new["detector"] == "energy"
    assert (new.loc[energy, "params"] == "temperature=1").all()
    assert new.loc[energy, "auroc"].tolist() == auroc
    saved = read_metadata(run / "scores" / "energy" / "gaussian.safetensors")
    assert saved["detector"] == "energy" and saved["params"] == "temperature=1"


def test_rows_of_010_without_params_still_read_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.1.0 wrote no params column; its rows count as scored with today's defaults (the same
    as 0.1.0's), so resuming keeps them and fills the column in."""
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "v010"
    run = Path(shutil.copytree(fixture, tmp_path / "v010"))
    assert "params" not in pd.read_csv(run / "metrics.csv").columns
    argv = ["score", str(run), "-d", "knn", "-d", "msp", "--ood", "gaussian", "--protocol", "paper"]
    assert main([*argv, *SCORE]) == 0
    assert "already in metrics.csv" in capsys.readouterr().err  # nothing was recomputed


def test_the_docs_table_lists_every_declared_hyperparameter() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, cls in detectors.DETECTORS.items():
        for key, p in cls.params().items():
            grid = ", ".join(fmt(g) for g in p.grid) or "-"
            allowed = p.range_text().replace("|", "\\|")  # a choice list's | would split the cell
            cells = [f"`{name}.{key}`", p.type.__name__, fmt(p.default), f"`{allowed}`"]
            row = "| " + " | ".join([*cells, grid, p.help]) + " |"
            assert row in text, row

"""Every registered detector: a smoke test over the registry, plus a hand-computed value each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _scoring_toys import MEAN, STD, ToyNet, toy_images

from oodbench import detectors, metrics
from oodbench.errors import UserError
from oodbench.scoring.extract import Outputs, extract


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


@pytest.mark.parametrize("name", detectors.names())
def test_every_detector_separates_id_from_noise(name: str, toy: dict) -> None:
    det = detectors.create(name)
    det.fit(toy["outs"]["train"])
    scores = {}
    for split in ("id", "noise"):
        if "model" in det.needs:
            data = toy["sets"][split]
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

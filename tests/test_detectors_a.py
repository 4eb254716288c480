"""tempscale, klm, openmax, dml, she, scale, nnguide, fdbd and the ASH variants, each checked
twice: (1) a value worked out by hand on a tiny example, (2) against the reference
implementation's formula (OpenOOD, pytorch-ood, the ASH authors' code, openhaiv), written
again here in that code's own style (numpy loops, its order of operations) and run on the
same synthetic features. Where each reference lives: docs/detectors.md. The registry-wide
smoke test (fit, score, shape, finite, orientation) is tests/test_detectors.py's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import exponweib, spearmanr

from oodbench import detectors
from oodbench.models.outputs import Outputs

RNG = np.random.default_rng(14)


def outs(logits, feats=None, labels=None, w=None, b=None) -> Outputs:
    logits = np.asarray(logits, dtype=np.float64)
    feats = np.zeros((len(logits), 1)) if feats is None else np.asarray(feats)
    labels = np.zeros(len(logits), dtype=np.int64) if labels is None else np.asarray(labels)

    def t(a):
        return None if a is None else torch.tensor(np.asarray(a), dtype=torch.float64)

    return Outputs(t(logits), t(feats), torch.tensor(labels), t(w), t(b))


def run(name: str, test: Outputs, fit: Outputs | None = None, **hp) -> np.ndarray:
    det = detectors.create(name, **hp)
    det.fit(fit if fit is not None else test)
    return det.score(test).numpy()


def lse(z: np.ndarray) -> np.ndarray:
    m = z.max(1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def classifier(n: int = 300, d: int = 16, k: int = 5, seed: int = 0):
    """Features of k classes (non-negative, like post-ReLU ones), a head, labels, logits."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = np.abs(rng.normal(size=(k, d))) * 2
    h = np.abs(centres[y] + rng.normal(size=(n, d)))
    # A head that points at the class centres, with noise: mostly right, some errors.
    w = centres - centres.mean(0) + rng.normal(size=(k, d)) * 0.5
    b = rng.normal(size=k) * 0.1
    return h, y, w, b, h @ w.T + b


def same_ranking(a: np.ndarray, b: np.ndarray) -> None:
    assert spearmanr(a, b).statistic > 0.999


# ---------------------------------------------------------------- tempscale


def test_tempscale_by_hand() -> None:
    """Every sample has margin 2 and 3 of 4 are right: the NLL is minimal where
    sigmoid(2 / T) = 3/4, so T = 2 / ln 3, and a [2, 0] sample scores 0.75."""
    val = outs([[2.0, 0.0]] * 4, labels=[0, 0, 0, 1])
    det = detectors.create("tempscale").fit(val)
    assert det.temperature == pytest.approx(2 / math.log(3), rel=1e-5)
    np.testing.assert_allclose(det.score(outs([[2.0, 0.0]])).numpy(), [0.75], rtol=1e-5)
    assert detectors.create("tempscale").fit_split == "val"


def lbfgs_temperature(z: np.ndarray, y: np.ndarray, lr: float, max_iter: int) -> float:
    """OpenOOD temp_scaling_postprocessor.py: T = nn.Parameter(1.5), one LBFGS step
    (lr, max_iter) on CrossEntropyLoss(logits / T, labels)."""
    logits, labels = torch.tensor(z, dtype=torch.float32), torch.tensor(y)
    temperature = torch.nn.Parameter(torch.ones(1) * 1.5)
    optimizer = torch.optim.LBFGS([temperature], lr=lr, max_iter=max_iter)
    nll = torch.nn.CrossEntropyLoss()

    def closure():
        optimizer.zero_grad()
        loss = nll(logits / temperature, labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(temperature.item())


def test_tempscale_matches_openood_fit_run_to_convergence() -> None:
    """OpenOOD's settings (lr = 0.01, max_iter = 50) stop short of the minimum on an
    over-confident model; the same LBFGS run to convergence (lr = 1) finds our T, whose NLL
    is lower. conf = max softmax(logits / T) in both."""
    h, y, w, b, z = classifier(seed=1)
    z = z * 3  # over-confident, so T is far from 1
    det = detectors.create("tempscale").fit(outs(z, labels=y))
    t_ref = lbfgs_temperature(z, y, lr=1.0, max_iter=50)
    assert det.temperature == pytest.approx(t_ref, rel=1e-4)
    t_openood = lbfgs_temperature(z, y, lr=0.01, max_iter=50)

    def nll(t: float) -> float:
        return float(-np.log(softmax(z / t)[np.arange(len(y)), y]).mean())

    assert nll(det.temperature) < nll(t_openood)
    test = classifier(seed=2)[4] * 3
    ref = softmax(test / t_ref).max(1)
    np.testing.assert_allclose(det.score(outs(test)).numpy(), ref, rtol=1e-4)
    same_ranking(det.score(outs(test)).numpy(), ref)


# ---------------------------------------------------------------- klm


def test_klm_by_hand() -> None:
    """Templates are mean softmax vectors per predicted class; a sample whose softmax equals
    a template scores 0 (the largest possible), others -KL to the nearest template."""
    val = np.log(np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.8, 0.1]]))
    d0, d1 = np.array([0.6, 0.25, 0.15]), np.array([0.1, 0.8, 0.1])
    test = np.log(np.array([[0.6, 0.25, 0.15], [0.2, 0.2, 0.6]]))
    q = np.array([0.2, 0.2, 0.6])
    kl = [sum(q * np.log(q / d)) for d in (d0, d1)]
    got = run("klm", outs(test), outs(val))
    np.testing.assert_allclose(got, [0.0, -min(kl)], atol=1e-12)


def test_klm_matches_openood() -> None:
    """OpenOOD kl_matching_postprocessor.py: templates per predicted class, then
    -pairwise_distances_argmin_min(softmax, templates, metric=kl)[1]."""
    from sklearn.metrics import pairwise_distances_argmin_min

    _, _, _, _, z_val = classifier(seed=3)
    _, _, _, _, z_test = classifier(n=60, seed=4)

    def kl(p, q):
        return np.sum(np.where(p != 0, p * np.log(p / q), 0))

    softmax_val = softmax(z_val)
    pred = softmax_val.argmax(-1)
    mean_softmax_val = [softmax_val[pred == i].mean(axis=0) for i in range(z_val.shape[1])]
    ref = -pairwise_distances_argmin_min(softmax(z_test), np.array(mean_softmax_val), metric=kl)[1]
    np.testing.assert_allclose(run("klm", outs(z_test), outs(z_val)), ref, rtol=1e-9)


# ---------------------------------------------------------------- openmax


def openmax_problem():
    h, y, w, b, z = classifier(n=400, k=4, seed=8)  # every class has right answers
    test = np.concatenate([classifier(n=80, k=4, seed=9)[4], RNG.normal(size=(40, 4)) * 8])
    return outs(z, labels=y), z, y, test


def test_openmax_by_hand() -> None:
    """v = (3, 1), alpha = 2 (ω = 1, 1/2), every w-score 1/2: revised (1.5, 0.75), unknown
    logit 1.5 + 0.25; far from every MAV all w-scores are 1 and, with alpha = 1, the top
    logit moves to the unknown class whole."""
    v = np.array([[3.0, 1.0], [1.0, 3.0]] * 20)
    train = outs(v + RNG.normal(size=v.shape) * 0.1, labels=[0, 1] * 20)
    det = detectors.create("openmax", alpha=2).fit(train)

    class Half:
        def cdf(self, dist: torch.Tensor) -> torch.Tensor:
            return torch.full_like(dist, 0.5)

    det.weibull = Half()
    e = np.exp([1.5, 0.75, 1.75])
    got = det.score(outs([[3.0, 1.0]])).numpy()
    np.testing.assert_allclose(got, [-e[2] / e.sum()], rtol=1e-12)  # -P(unknown), the default
    det.statistic = "max-known"
    np.testing.assert_allclose(det.score(outs([[3.0, 1.0]])).numpy(), [e[0] / e.sum()], rtol=1e-12)
    det = detectors.create("openmax", alpha=1, statistic="max-known").fit(train)
    far = np.array([[60.0, 0.0]])
    expect = 1 / (2 + math.exp(60))  # revised (0, 0), unknown 60
    np.testing.assert_allclose(det.score(outs(far)).numpy(), [expect], rtol=1e-6)
    det.statistic = "unknown"  # OpenOOD v1.5: -P(unknown), near -1 far from every MAV
    np.testing.assert_allclose(det.score(outs(far)).numpy(), [-(1 - 2 * expect)], rtol=1e-6)


def test_openmax_weibull_fit_matches_libnotmr() -> None:
    """pytorch-ood's LibNotMR (checked against libmr there): exponweib.fit(tail + 10000 -
    min(tail), floc=0, f0=1); w_score = exponweib.cdf(d + 10000 - min(tail))."""
    from oodbench.detectors.calibrated import _Weibull

    tail = np.sort(np.abs(RNG.normal(size=200)) * 3 + 1)[-20:]
    ours = _Weibull([tail])
    shifted = tail + 10000 - tail.min()
    params = exponweib.fit(shifted, floc=0, f0=1)
    probe = np.linspace(0, tail.max() + 2, 50)
    ref = exponweib.cdf(probe + 10000 - tail.min(), a=1, c=params[1], loc=0, scale=params[3])
    got = ours.cdf(torch.tensor(probe)[:, None]).numpy()[:, 0]
    np.testing.assert_allclose(got, ref, atol=2e-3)

    # Ours is the exact maximum-likelihood fit: its log-likelihood is at least scipy's.
    def loglik(c, s):
        return exponweib.logpdf(shifted, a=1, c=c, loc=0, scale=s).sum()

    assert loglik(ours.shape[0], ours.scale[0]) >= loglik(params[1], params[3]) - 1e-6


def test_openmax_matches_openood() -> None:
    """OpenOOD openmax_postprocessor.py (tag v1.5): MAVs of correctly classified training
    logits, euclidean distances, Weibull on the 20 largest (LibNotMR in place of libmr),
    alpha = 3, one sample at a time; conf = -1 * the unknown class's OpenMax probability."""
    train, z, y, test = openmax_problem()
    nc, alpha, tailsize = z.shape[1], 3, 20
    scores = [z[(z.argmax(1) == y) & (y == c)][:, None, :] for c in range(nc)]
    mavs = np.array([np.mean(x, axis=0) for x in scores])
    models = []
    for mav, score in zip(mavs, scores, strict=True):
        dist = np.array([np.linalg.norm(mav[0] - s[0]) for s in score])
        tail = np.sort(dist)[-tailsize:]
        params = exponweib.fit(tail + 10000 - tail.min(), floc=0, f0=1)
        models.append((tail.min(), params[1], params[3]))
    ref = []
    for v in test:
        ranked = v.argsort()[::-1][:alpha]
        omega = np.zeros(nc)
        omega[ranked] = [((alpha + 1) - i) / float(alpha) for i in range(1, alpha + 1)]
        revised, unknown = [], []
        for c in range(nc):
            low, shape, scale = models[c]
            d = np.linalg.norm(v - mavs[c][0])
            wscore = exponweib.cdf(d + 10000 - low, a=1, c=shape, loc=0, scale=scale)
            revised.append(v[c] * (1 - wscore * omega[c]))
            unknown.append(v[c] - revised[-1])
        channel = np.exp(revised)
        total = np.sum(channel) + np.exp(np.sum(unknown))
        ref.append(np.array([*(channel / total), np.exp(np.sum(unknown)) / total]))
    ref = np.array(ref)
    det = detectors.create("openmax").fit(train)
    got = det.probabilities(torch.tensor(test)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-3)
    conf = -1 * ref[:, -1]  # v1.5: conf = -1 * torch.from_numpy(np.array(score_openmax))[:, -1]
    np.testing.assert_allclose(det.score(outs(test)).numpy(), conf, atol=1e-3)
    same_ranking(det.score(outs(test)).numpy(), conf)
    det.statistic = "max-known"
    same_ranking(det.score(outs(test)).numpy(), ref[:, :-1].max(1))


# ---------------------------------------------------------------- dml


def test_dml_by_hand() -> None:
    """h = (3, 4): cosines 0.6 and 0.8 with the unit axes, ||h|| = 5."""
    o = outs([[0.0, 0.0]], [[3.0, 4.0]], w=[[2.0, 0.0], [0.0, 0.5]], b=[1.0, -1.0])
    np.testing.assert_allclose(run("dml", o), [0.8 + 0.002 * 5], rtol=1e-12)
    np.testing.assert_allclose(run("dml", o, lam=0.1), [0.8 + 0.5], rtol=1e-12)


def test_dml_matches_openhaiv() -> None:
    """HAIV-Lab/openhaiv ncdia/algorithms/ood/methods.py dml(): w = F.normalize(fc weight),
    MaxCosine = max cosine to w, MaxNorm = ||feature||, conf = MaxCosine + 0.002 MaxNorm."""
    h, y, w, b, z = classifier(seed=7)
    feat = torch.tensor(h)
    wn = torch.nn.functional.normalize(torch.tensor(w), p=2, dim=1)
    cosine = torch.nn.functional.normalize(feat, p=2, dim=1) @ wn.T
    ref = (cosine.max(dim=1).values + 0.002 * torch.norm(feat, p=2, dim=1)).numpy()
    np.testing.assert_allclose(run("dml", outs(z, h, w=w, b=b)), ref, rtol=1e-12)


# ---------------------------------------------------------------- she


def test_she_by_hand() -> None:
    """Patterns: class 0 from its correctly classified samples only (the third is wrong)."""
    feats = [[1.0, 0.0], [3.0, 2.0], [9.0, 9.0], [0.0, 2.0]]
    logits = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    train = outs(logits, feats, [0, 0, 0, 1])
    test = outs([[5.0, 0.0], [0.0, 5.0]], [[1.0, 1.0], [2.0, 3.0]])
    np.testing.assert_allclose(run("she", test, train), [2.0 + 1.0, 6.0], rtol=1e-12)
    # Everything predicted 0: class 1 is never right, its pattern is the mean of all its
    # samples, (4.5, 5.5) (OpenOOD: NaN).
    wrong = outs([[1.0, 0.0]] * 4, feats, [0, 0, 1, 1])
    np.testing.assert_allclose(run("she", test, wrong), [3.0, 2 * 4.5 + 3 * 5.5], rtol=1e-12)


def test_she_matches_openood() -> None:
    """OpenOOD she_postprocessor.py: activation_log[i] = mean feature of training samples with
    label i predicted i; conf = sum(feature * activation_log[pred]) (inner_product)."""
    h, y, w, b, z = classifier(seed=8)
    ht, _, _, _, zt = classifier(n=50, seed=9)
    pred = z.argmax(1)
    patterns = np.stack([h[(y == i) & (pred == i)].mean(0) for i in range(z.shape[1])])
    ref = np.sum(np.multiply(ht, patterns[zt.argmax(1)]), axis=1)
    np.testing.assert_allclose(run("she", outs(zt, ht), outs(z, h, y)), ref, rtol=1e-12)


# ---------------------------------------------------------------- scale and ASH


def head_problem(n: int = 40, d: int = 10, k: int = 3):
    f = np.abs(RNG.normal(size=(n, d))) * np.linspace(0.5, 2, d)
    w, b = RNG.normal(size=(k, d)), RNG.normal(size=k)
    return f, w, b, outs(f @ w.T + b, f, w=w, b=b)


def test_scale_and_ash_variants_by_hand() -> None:
    """p = 70 on 10 features: the top 3 are kept (no ties in continuous data)."""
    f, w, b, o = head_problem()
    top = np.array([np.where(x >= np.sort(x)[-3], x, 0.0) for x in f])
    ratio = f.sum(1) / top.sum(1)
    cases = {
        "scale": f * np.exp(ratio)[:, None],  # the unpruned h, scaled
        "ash-s": top * np.exp(ratio)[:, None],  # pruned and scaled
        "ash-p": top,
        "ash-b": (top > 0) * (f.sum(1) / 3)[:, None],
    }
    for name, shaped in cases.items():
        got = run(name, o, percentile=70.0)
        np.testing.assert_allclose(got, lse(shaped @ w.T + b), rtol=1e-10, err_msg=name)
    np.testing.assert_array_equal(run("ash", o), run("ash-s", o))  # the 0.1.0 name


def authors_ash(x: torch.Tensor, variant: str, percentile: float) -> torch.Tensor:
    """ash_b / ash_p / ash_s of andrijazz/ash ash.py (= OpenOOD ash_net.py) on B x C x 1 x 1."""
    b, c, hh, ww = x.shape
    s1 = x.sum(dim=[1, 2, 3])
    n = x.shape[1:].numel()
    k = n - int(np.round(n * percentile / 100.0))
    t = x.view((b, c * hh * ww))
    v, i = torch.topk(t, k, dim=1)
    if variant == "b":
        fill = (s1 / k).unsqueeze(dim=1).expand(v.shape)
        t.zero_().scatter_(dim=1, index=i, src=fill)
        return x
    t.zero_().scatter_(dim=1, index=i, src=v)
    if variant == "p":
        return x
    s2 = x.sum(dim=[1, 2, 3])
    return x * torch.exp((s1 / s2)[:, None, None, None])


def openood_scale(x: torch.Tensor, percentile: float) -> torch.Tensor:
    """OpenOOD scale_net.py: the scale factor from the pruned copy, applied to the input."""
    inp = x.clone()
    s1 = x.sum(dim=[1, 2, 3])
    n = x.shape[1:].numel()
    k = n - int(np.round(n * percentile / 100.0))
    t = x.view((x.shape[0], -1))
    v, i = torch.topk(t, k, dim=1)
    t.zero_().scatter_(dim=1, index=i, src=v)
    s2 = x.sum(dim=[1, 2, 3])
    return inp * torch.exp((s1 / s2)[:, None, None, None])


@pytest.mark.parametrize(
    ("name", "percentile"), [("ash-s", 90.0), ("ash-b", 90.0), ("ash-p", 65.0), ("scale", 85.0)]
)
def test_scale_and_ash_match_the_reference_code(name: str, percentile: float) -> None:
    """Defaults included: the energy of fc(shaped pooled features), as OpenOOD's ASHNet /
    ScaleNet forward_threshold and the ASH authors' energy score."""
    h, y, w, b, z = classifier(n=60, d=64, seed=10)
    x = torch.tensor(h)[:, :, None, None]
    fc = torch.nn.Linear(64, w.shape[0]).double()
    with torch.no_grad():
        fc.weight.copy_(torch.tensor(w))
        fc.bias.copy_(torch.tensor(b))
        shaped = (
            openood_scale(x, percentile)
            if name == "scale"
            else authors_ash(x, name[-1], percentile)
        )
        ref = torch.logsumexp(fc(shaped.view(shaped.size(0), -1)), dim=1).numpy()
    assert detectors.create(name).percentile == percentile  # the default is the one checked
    np.testing.assert_allclose(run(name, outs(z, h, w=w, b=b)), ref, rtol=1e-10)


# ---------------------------------------------------------------- nnguide


def test_nnguide_by_hand() -> None:
    """Bank of 2 unit features scaled by their energies; k = 1 takes the larger product."""
    train = outs([[0.0, 0.0], [math.log(3), 0.0]], [[2.0, 0.0], [0.0, 5.0]])
    e = [math.log(2), math.log(4)]  # logsumexp of the training logits
    test = outs([[0.0, 0.0]], [[3.0, 4.0]])  # unit (0.6, 0.8), energy log 2
    got = run("nnguide", test, train, k=1, alpha=1.0)
    np.testing.assert_allclose(got, [max(0.6 * e[0], 0.8 * e[1]) * math.log(2)], rtol=1e-12)
    got = run("nnguide", test, train, k=2, alpha=1.0)
    np.testing.assert_allclose(got, [(0.6 * e[0] + 0.8 * e[1]) / 2 * math.log(2)], rtol=1e-12)


def test_nnguide_matches_openood() -> None:
    """OpenOOD nnguide_postprocessor.py: normalizer = x / ||x|| + 1e-10; bank_guide =
    normalizer(feats) * logsumexp(logits); conf = mean of the top-K inner products (faiss
    IndexFlatIP; an exact sort here); score = conf * logsumexp(logit). alpha = 1: every
    training sample is in the bank, so both banks are the same."""
    from scipy.special import logsumexp

    def normalizer(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True) + 1e-10

    h, y, w, b, z = classifier(seed=11)
    ht, _, _, _, zt = classifier(n=50, seed=12)
    bank_guide = normalizer(h) * logsumexp(z, axis=-1)[:, None]
    sims = normalizer(ht) @ bank_guide.T
    conf = np.sort(sims, axis=1)[:, ::-1][:, :100].mean(axis=1)
    ref = conf * logsumexp(zt, axis=-1)
    got = run("nnguide", outs(zt, ht), outs(z, h), alpha=1.0)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    same_ranking(got, ref)


def test_nnguide_matches_pytorch_ood_040() -> None:
    """pytorch-ood 0.4.0 (PyPI wheel) nnguide.py: bank = F.normalize(z) * logsumexp(head(z));
    guidance = mean of the k largest F.normalize(x) @ bank.T; outlier score = -(guidance *
    logsumexp(head(x))), k = 10. Fitted on the whole split, as alpha = 1."""
    import torch.nn.functional as F

    h, y, w, b, z = classifier(seed=13)
    ht, _, _, _, zt = classifier(n=50, seed=14)
    feats, test = torch.tensor(h), torch.tensor(ht)
    bank = F.normalize(feats, dim=1) * torch.logsumexp(torch.tensor(z), dim=1)[:, None]
    top = (F.normalize(test, dim=1) @ bank.T).topk(10, dim=1).values
    outlier = -(top.mean(dim=1) * torch.logsumexp(torch.tensor(zt), dim=1))
    got = run("nnguide", outs(zt, ht), outs(z, h), alpha=1.0, k=10)
    np.testing.assert_allclose(got, -outlier.numpy(), rtol=1e-9)


# ---------------------------------------------------------------- fdbd


def test_fdbd_by_hand() -> None:
    """Two classes, w0 = (1, 0), w1 = (0, 1), no bias: |f1 - f0| / sqrt(2) / ||h - mu||."""
    train = outs([[0.0, 0.0]] * 2, [[1.0, 1.0], [1.0, 3.0]])  # mu = (1, 2)
    h = np.array([[4.0, 6.0]])
    test = outs(h @ np.eye(2), h, w=np.eye(2), b=[0.0, 0.0])
    expect = 2 / math.sqrt(2) / 5  # ||(3, 4)|| = 5
    np.testing.assert_allclose(run("fdbd", test, train), [expect], rtol=1e-12)
    plain = run("fdbd", test, train, distance_as_normalizer=False)
    np.testing.assert_allclose(plain, [2 / math.sqrt(2) / math.sqrt(52)], rtol=1e-12)


@pytest.mark.parametrize("normalizer", [True, False])
def test_fdbd_matches_openood(normalizer: bool) -> None:
    """OpenOOD fdbd_postprocessor.py: denominator_matrix[p, i] = ||w_p - w_i|| (1 on the
    diagonal); values = |logits - max logit| / denominator_matrix[pred]; score = sum over
    classes / ||feature - train_mean|| (or / ||feature||)."""
    h, y, w, b, z = classifier(seed=13)
    ht, _, _, _, zt = classifier(n=50, seed=14)
    zt = ht @ w.T + b
    nc = w.shape[0]
    denominator = np.zeros((nc, nc))
    for p in range(nc):
        wp = w[p, :]
        for i in range(nc):
            denominator[p, i] = 1 if i == p else np.linalg.norm(w[i, :] - wp)
    pred = zt.argmax(1)
    values = np.abs(zt - zt[np.arange(len(zt)), pred][:, None]) / denominator[pred]
    norm = np.linalg.norm(ht - h.mean(0), axis=1) if normalizer else np.linalg.norm(ht, axis=1)
    ref = values.sum(1) / norm
    got = run("fdbd", outs(zt, ht, w=w, b=b), outs(z, h), distance_as_normalizer=normalizer)
    np.testing.assert_allclose(got, ref, rtol=1e-10)

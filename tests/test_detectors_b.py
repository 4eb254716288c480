"""Detectors of issue 14, part B: nci, neco, relation, mahalanobis-norm, gmm, residual, vra,
mc-dropout, rankfeat.

Each is checked (1) against a value worked out by hand on a tiny example and (2) against its
reference implementation's formula (OpenOOD, pytorch-ood, mueller-mp/maha-norm), written again
here in the reference's own style (numpy / sklearn, its order of operations) and run on the same
synthetic features. The registry-wide smoke test in test_detectors.py covers (3).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _cli import SCORE

from oodbench import detectors
from oodbench.cli import main
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs

RNG = np.random.default_rng(14)


def outs(feats, logits=None, labels=None, w=None, b=None) -> Outputs:
    f = np.asarray(feats, dtype=np.float64)
    z = np.zeros((len(f), 2)) if logits is None else np.asarray(logits, dtype=np.float64)
    lab = np.zeros(len(f), dtype=np.int64) if labels is None else np.asarray(labels)

    def t(a):
        return None if a is None else torch.tensor(np.asarray(a), dtype=torch.float32)

    return Outputs(t(z), t(f), torch.tensor(lab), t(w), t(b))


def fitted(name: str, train: Outputs, **hp) -> detectors.Detector:
    return detectors.create(name, **hp).fit(train)


def score(name: str, test: Outputs, train: Outputs, **hp) -> np.ndarray:
    return fitted(name, train, **hp).score(test).numpy()


def problem(n: int = 300, d: int = 12, k: int = 4, seed: int = 0):
    """Non-negative class-clustered features (like post-ReLU ones), a head, and queries."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = np.abs(rng.normal(size=(k, d))) * 2
    f = np.abs(centres[y] + rng.normal(size=(n, d)) * np.linspace(0.3, 1.5, d))
    w, b = rng.normal(size=(k, d)), rng.normal(size=k) * 0.1
    q = np.abs(np.concatenate([centres[rng.integers(0, k, 40)] + rng.normal(size=(40, d)),
                               rng.normal(size=(40, d)) * 3]))  # fmt: skip
    f, q, w, b = (a.astype(np.float32).astype(np.float64) for a in (f, q, w, b))  # as stored
    train = outs(f, f @ w.T + b, y, w, b)
    test = outs(q, q @ w.T + b, None, w, b)
    return f, y, w, b, q, train, test


def lse(z: np.ndarray) -> np.ndarray:
    m = z.max(1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# ---------------------------------------------------------------- NCI


def test_nci_by_hand() -> None:
    w, b = np.array([[1.0, 0.0], [0.0, 2.0]]), np.zeros(2)
    train = outs([[1.0, 0.0], [3.0, 2.0]], w=w, b=b)  # mean (2, 1)
    q = np.array([[5.0, 1.0], [2.0, 4.0]])
    # (5,1): class 0, (w_0 . (3, 0)) / 3 = 1, plus 0.1 * 6; (2,4): class 1, (2 * 3) / 3 = 2, + 0.6
    got = score("nci", outs(q, q @ w.T, w=w, b=b), train, alpha=0.1)
    np.testing.assert_allclose(got, [1.6, 2.6], rtol=1e-12)


def test_nci_matches_openood() -> None:
    f, _, w, _, q, train, test = problem()
    # OpenOOD nci_postprocessor.py: w[nn_idx] * (feature - train_mean) summed / ||.|| + a ||.||_1
    train_mean = np.mean(f.astype(np.float32), axis=0)
    feature, output = q.astype(np.float32), test.logits.numpy()
    nn_idx = output.argmax(1)
    ref = np.sum(w.astype(np.float32)[nn_idx] * (feature - train_mean), axis=1) / np.linalg.norm(
        feature - train_mean, axis=1
    ) + 0.001 * np.linalg.norm(feature, ord=1, axis=1)
    np.testing.assert_allclose(score("nci", test, train, alpha=0.001), ref, rtol=1e-5)


# ---------------------------------------------------------------- NECO


def test_neco_by_hand() -> None:
    # Standardised training features (/sqrt5, /1) have principal axis (1, 1)/sqrt2.
    train = outs([[3.0, 1.0], [-3.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    s5 = math.sqrt(5)
    q = outs([[s5, 1.0], [s5, -1.0], [0.0, 2.0]], logits=[[2.0, 1.0], [0.0, 1.0], [3.0, -1.0]])
    # standardised: (1, 1) lies on the axis, (1, -1) across it, (0, 2) at 45 degrees
    np.testing.assert_allclose(
        score("neco", q, train, dim=1), [1, 0, 1 / math.sqrt(2)], atol=1e-6
    )  # fmt: skip  (features are stored as float32)
    got = score("neco", q, train, dim=1, max_logit=True)
    np.testing.assert_allclose(got, [2, 0, 3 / math.sqrt(2)], atol=1e-6)


def test_neco_matches_the_authors_evaluation_and_pytorch_ood() -> None:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    f, _, _, _, q, train, test = problem(d=16)
    f[:, 3] = 0.0  # a dead unit: StandardScaler leaves it unscaled
    train = outs(f, train.logits.numpy(), train.labels.numpy(), train.weight, train.bias)
    # The authors' evaluate_neco (as ported in util/ood_methods.py): 90% explained variance.
    ss = StandardScaler().fit(f)
    pca = PCA().fit(ss.transform(f))
    neco_dim = np.where(np.cumsum(pca.explained_variance_ratio_) >= 0.90)[0][0] + 1
    x = ss.transform(q)
    ref = np.linalg.norm(pca.transform(x)[:, :neco_dim], axis=1) / np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(score("neco", test, train), ref, rtol=1e-8)
    ref_ml = ref * test.logits.numpy().max(1)
    np.testing.assert_allclose(score("neco", test, train, max_logit=True), ref_ml, rtol=1e-5)
    # pytorch-ood neco.py: eigh of the /(n-1) covariance, top d, ||proj|| / max(||s||, 1e-12)
    s_train = (f - f.mean(0)) / np.where(f.std(0) <= 1e-12, 1.0, f.std(0))
    cov = np.cov(s_train - s_train.mean(0), rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, np.argsort(vals)[::-1]][:, :5]
    s = (q - f.mean(0)) / np.where(f.std(0) <= 1e-12, 1.0, f.std(0))
    ref5 = np.linalg.norm((s - s_train.mean(0)) @ comps, axis=1) / np.linalg.norm(s, axis=1)
    np.testing.assert_allclose(score("neco", test, train, dim=5), ref5, rtol=1e-8)
    assert (score("neco", test, train, dim=768) > 1 - 1e-9).all()  # capped at D: all variance


# ---------------------------------------------------------------- relation


def test_relation_by_hand() -> None:
    train = outs([[1.0, 0.0], [0.0, 1.0]], logits=[[0.0, 0.0], [math.log(3), 0.0]])
    # q1: z = (.6, .8), p = (.5, .5): edges .6 * .5 = .3 and .8 * (.375 + .125) = .4
    # q2: the first edge is clamped at 0, the second (about .005) is under the 0.03 cut
    q = outs([[3.0, 4.0], [-1.0, 0.01]], logits=[[0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(score("relation", q, train), [0.7, 0.0], rtol=1e-6)
    np.testing.assert_allclose(score("relation", q, train, pow=2), [0.25, 0.0], rtol=1e-6)


def test_relation_matches_openood() -> None:
    f, _, _, _, q, train, test = problem()

    def normalize(feat):  # relation_postprocessor.py
        return feat / np.sqrt((feat**2).sum(-1) + 1e-10).reshape(-1, 1)

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    for pw in (1, 4):
        feat_t, prob_t = normalize(f), softmax(train.logits.numpy().astype(np.float64))
        dot = np.clip(normalize(q) @ feat_t.T, 0.0, None)
        rel = dot * (softmax(test.logits.numpy().astype(np.float64)) @ prob_t.T)
        rel_mask = (np.abs(rel) > 0.03) * rel
        ref = (np.sign(rel_mask) * np.abs(rel_mask) ** pw).sum(-1)
        np.testing.assert_allclose(score("relation", test, train, pow=pw), ref, rtol=1e-4)


# ---------------------------------------------------------------- Mahalanobis++


def test_mahalanobis_norm_by_hand() -> None:
    # normalised: class 0 at (1,0), (0,1); class 1 at (-1,0), (0,-1). Pooled covariance
    # [[.25,-.25],[-.25,.25]], pseudo-inverse [[1,-1],[-1,1]]. (3,3) -> (.71,.71): z - mu_0 is
    # along (1,1), in the null space: distance 0. (10,0) -> (1,0): distance 1 to both means.
    train = outs([[2.0, 0.0], [0.0, 3.0], [-4.0, 0.0], [0.0, -1.0]], labels=[0, 0, 1, 1])
    got = score("mahalanobis-norm", outs([[3.0, 3.0], [10.0, 0.0]]), train)
    np.testing.assert_allclose(got, [0.0, -1.0], atol=1e-9)


def test_mahalanobis_norm_matches_the_authors_code() -> None:
    from sklearn.covariance import EmpiricalCovariance

    f, y, _, _, q, train, test = problem()
    # mueller-mp/maha-norm mdsn_postprocessor.py (float64 here, theirs is float32)
    feats = f / np.linalg.norm(f, axis=1, keepdims=True)
    means = [feats[y == c].mean(0) for c in range(4)]
    centered = np.concatenate([feats[y == c] - means[c] for c in range(4)])
    prec = EmpiricalCovariance(assume_centered=False).fit(centered).precision_
    x = q / np.linalg.norm(q, axis=1, keepdims=True)
    ref = np.max([-np.einsum("nd,de,ne->n", x - m, prec, x - m) for m in means], axis=0)
    np.testing.assert_allclose(score("mahalanobis-norm", test, train), ref, rtol=1e-6)


# ---------------------------------------------------------------- GMM


def test_gmm_by_hand() -> None:
    # one component on 1-d features 0 and 2: mean 1, variance 1 (+ sklearn's 1e-6 reg_covar)
    got = score("gmm", outs([[3.0], [1.0]]), outs([[0.0], [2.0]]), components=1, dim=0)
    np.testing.assert_allclose(got, [-2.0, 0.0], rtol=1e-5, atol=1e-9)


def test_gmm_matches_openood() -> None:
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    f, _, _, _, q, train, test = problem(d=12)
    q = q[:40]  # near the training clusters: OpenOOD's float sum does not underflow there
    # gmm_postprocessor.py: PCA components_.T as the transform (no centring), tied GMM
    transform = PCA(n_components=6).fit(f).components_.T
    gm = GaussianMixture(n_components=5, random_state=0, covariance_type="tied")
    gm.fit(f @ transform)
    z = q @ transform
    prob = np.zeros(len(z))
    for k in range(5):
        diff = z - gm.means_[k]
        prob += gm.weights_[k] * np.exp(-0.5 * np.einsum("nd,de,ne->n", diff, gm.precisions_, diff))
    ref = np.log(prob + 1e-45)
    got = score("gmm", outs(q), train, components=5, dim=6)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    capped = score("gmm", outs(q), train, components=5, dim=13)  # capped at D = 12
    np.testing.assert_allclose(capped, score("gmm", outs(q), train, components=5, dim=12))


# ---------------------------------------------------------------- residual


def test_residual_by_hand() -> None:
    w, b = np.eye(2), np.zeros(2)  # origin 0
    train = outs([[2.0, 0.0], [-2.0, 0.0], [0.0, 1.0], [0.0, -1.0]], w=w, b=b)
    # variance 2 along x, 0.5 along y: with dim = 1 the residual is |y|
    got = score("residual", outs([[3.0, 4.0], [1.0, -0.5]], w=w, b=b), train, dim=1)
    np.testing.assert_allclose(got, [-4.0, -0.5], rtol=1e-12)
    with pytest.raises(UserError, match="dim must be between 1 and 1"):
        fitted("residual", train, dim=2)


def test_residual_matches_openood() -> None:
    from sklearn.covariance import EmpiricalCovariance

    f, _, w, b, q, train, test = problem(d=12)
    # residual_postprocessor.py
    u = -np.matmul(np.linalg.pinv(w), b)
    ec = EmpiricalCovariance(assume_centered=True)
    ec.fit(f - u)
    eig_vals, eigen_vectors = np.linalg.eig(ec.covariance_)
    ns = np.ascontiguousarray((eigen_vectors.T[np.argsort(eig_vals * -1)[5:]]).T)
    ref = -np.linalg.norm(np.matmul(q - u, ns), axis=-1)
    np.testing.assert_allclose(score("residual", test, train, dim=5), ref, rtol=1e-6)
    # dim = 0: ViM's rule, D // 2 for D < 768
    default = np.ascontiguousarray((eigen_vectors.T[np.argsort(eig_vals * -1)[6:]]).T)
    ref6 = -np.linalg.norm(np.matmul(q - u, default), axis=-1)
    np.testing.assert_allclose(score("residual", test, train), ref6, rtol=1e-6)


# ---------------------------------------------------------------- VRA


def test_vra_by_hand() -> None:
    w, b = np.eye(2), np.zeros(2)
    train = outs(np.arange(10.0).reshape(5, 2), w=w, b=b)  # percentiles 10 / 90: 0.9, 8.1
    got = score("vra", outs([[0.0, 9.0], [5.0, 5.0]], w=w, b=b), train)
    expect = [math.log(math.exp(0.9) + math.exp(8.1)), math.log(2 * math.exp(5.0))]
    np.testing.assert_allclose(got, expect, rtol=1e-7)  # 0.9 and 8.1 as float32 percentiles
    with pytest.raises(UserError, match="percentile_low .50. must be below percentile_high"):
        fitted("vra", train, percentile_low=50.0, percentile_high=50.0)


def test_vra_matches_openood() -> None:
    f, _, w, b, q, train, test = problem()
    # vra_postprocessor.py: thresholds over the flattened log, clip, fc, logsumexp
    log = f.astype(np.float32)
    hi, lo = np.percentile(log.flatten(), 95), np.percentile(log.flatten(), 5)
    ref = lse(np.clip(q, lo, hi) @ w.T + b)
    got = score("vra", test, train, percentile_high=95.0, percentile_low=5.0)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


# ---------------------------------------------------------------- MC dropout


def test_mc_dropout_by_hand() -> None:
    w, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.5])
    q = outs([[2.0, 0.0]], w=w, b=b)
    p = math.exp(2) / (math.exp(2) + math.exp(0.5))  # p = 0: plain MSP of W h + b
    np.testing.assert_allclose(score("mc-dropout", q, q, p=0.0), [p], rtol=1e-12)
    # p = 0.5, one pass: h1 = 2 is kept (x2 -> 4) or dropped (0), per the seeded mask
    keep = torch.rand((1, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    h1 = 4.0 if keep[0, 0] >= 0.5 else 0.0
    expect = max(math.exp(h1), math.exp(0.5)) / (math.exp(h1) + math.exp(0.5))
    np.testing.assert_allclose(score("mc-dropout", q, q, times=1), [expect], rtol=1e-12)


def test_mc_dropout_matches_openood() -> None:
    f, _, w, b, q, train, test = problem()
    # dropout_net.py + dropout_postprocessor.py: mean of the LOGITS over the passes, then MSP.
    # Same masks: drawn from the seeded generator in the detector's order.
    gen = torch.Generator().manual_seed(3)
    logits_list = []
    for _ in range(7):
        mask = torch.rand(q.shape, generator=gen, dtype=torch.float64).numpy() >= 0.3
        logits_list.append((q * mask / 0.7) @ w.T + b)
    logits_mean = np.stack(logits_list).mean(0)
    e = np.exp(logits_mean - logits_mean.max(1, keepdims=True))
    ref = (e / e.sum(1, keepdims=True)).max(1)
    got = score("mc-dropout", test, train, p=0.3, times=7, seed=3)
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    again = score("mc-dropout", test, train, p=0.3, times=7, seed=3)
    assert (got == again).all()  # reproducible


# ---------------------------------------------------------------- RankFeat


class MapNet(torch.nn.Module):
    """timm-like: forward_features = an optional conv on the input, forward_head = average
    pooling then a linear classifier."""

    def __init__(self, channels: int, classes: int, conv: bool, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1) if conv else None
        self.fc = torch.nn.Linear(channels, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x * 255 if self.conv is None else torch.relu(self.conv(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        h = x.mean(dim=(2, 3))
        return h if pre_logits else self.fc(h)


def test_rankfeat_by_hand() -> None:
    net = MapNet(2, 2, conv=False)
    with torch.no_grad():
        net.fc.weight.copy_(torch.eye(2))
        net.fc.bias.zero_()
    # map [[3, 0], [0, 1]] (C = 2, HW = 2): s1 u1 v1^T = [[3, 0], [0, 0]], leaving [[0,0],[0,1]],
    # pooled (0, 0.5): energy log(1 + e^0.5). A rank-1 map [[2, 2], [1, 1]] leaves nothing.
    images = torch.tensor([[[[3, 0]], [[0, 1]]], [[[2, 2]], [[1, 1]]]], dtype=torch.uint8)
    det = detectors.create("rankfeat")
    got = det.score_inputs(net, images, (0.0, 0.0), (1.0, 1.0)).numpy()
    np.testing.assert_allclose(got, [math.log(1 + math.exp(0.5)), math.log(2)], rtol=1e-6)
    with pytest.raises(UserError, match="score_inputs"):
        det.score(outs([[1.0, 2.0]]))


def test_rankfeat_matches_openood() -> None:
    net = MapNet(6, 5, conv=True, seed=1).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (9, 6, 5, 4), generator=g, dtype=torch.uint8)
    mean, std = (0.4,) * 6, (0.25,) * 6
    with torch.no_grad():
        x = (images.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(
            1, -1, 1, 1
        )
        feat1 = net.forward_features(x).numpy().astype(np.float64)
    # rankfeat_postprocessor.py, block-4 branch: feat - s[0] u[:, 0] v[0] per sample, then
    # avgpool, fc and T * logsumexp(logits / T)
    b_, c, h, w = feat1.shape
    flat = feat1.reshape(b_, c, h * w)
    u, s, v = np.linalg.svd(flat, full_matrices=False)
    removed = flat - s[:, 0:1][:, :, None] * (u[:, :, 0:1] @ v[:, 0:1, :])
    pooled = removed.reshape(b_, c, h, w).mean(axis=(2, 3))
    logits = pooled @ net.fc.weight.detach().numpy().T + net.fc.bias.detach().numpy()
    ref = 2.0 * lse(logits / 2.0)
    got = detectors.create("rankfeat", temperature=2.0).score_inputs(net, images, mean, std)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4)
    flat_map = MapNet(6, 5, conv=False)  # a 1 x 1 map: removing rank 1 would erase it
    with pytest.raises(UserError, match="needs a spatial feature map"):
        detectors.create("rankfeat").score_inputs(flat_map, images[:, :, :1, :1], mean, std)


@pytest.mark.slow  # tens of seconds: CI runs it in the slow pass
def test_rankfeat_is_scored_through_the_cli(run: Path) -> None:
    """The model path of ``score``: the run's small_cnn reruns on both sets, rows are written."""
    argv = ["score", str(run), "-d", "rankfeat", "-d", "nci", "--ood", "gaussian", *SCORE]
    assert main(argv) == 0
    table = pd.read_csv(run / "metrics.csv", keep_default_na=False).set_index("detector")
    for name in ("rankfeat", "nci"):
        row = table.loc[name]
        assert row["ood_dataset"] == "gaussian" and 0 <= row["auroc"] <= 100
    assert table.loc["rankfeat", "params"] == "temperature=1"


def test_rankfeat_smoke_on_spatial_maps() -> None:
    """The registry smoke test's checks on maps where RankFeat's premise holds (the toy net
    there has no spatial map): an OOD map dominated by one flat rank-1 part, ID maps with class
    evidence beyond their top singular component. Plain energy ranks these OOD maps first, so
    the check fails if the wrong component is removed or the sign is flipped."""
    g = torch.Generator().manual_seed(0)
    n, c = 120, 4
    labels = torch.arange(n) % c
    ident = torch.randint(0, 3, (n, c, 2, 2), generator=g)
    ident[torch.arange(n), labels, 0] += 20  # channel y on the top row
    ident[torch.arange(n), (labels + 1) % c, 1] += 18  # channel y + 1 on the bottom row
    ood = torch.randint(0, 3, (n, c, 2, 2), generator=g) + 30  # flat: all channels, everywhere
    net = MapNet(c, c, conv=False)
    with torch.no_grad():
        net.fc.weight.copy_(0.5 * torch.eye(c))
        net.fc.bias.zero_()
    det = detectors.create("rankfeat")
    scores = {}
    for split, images in (("id", ident), ("ood", ood)):
        scores[split] = det.score_inputs(net, images.to(torch.uint8), (0.0,) * c, (1.0,) * c)
        assert scores[split].shape == (n,) and torch.isfinite(scores[split]).all()
    from oodbench import metrics

    assert metrics.auroc(scores["id"], scores["ood"]) > 0.9
    with torch.no_grad():
        plain = {
            k: torch.logsumexp(net.forward_head(v.float()), 1)
            for k, v in (("id", ident), ("ood", ood))
        }
    assert metrics.auroc(plain["id"].double(), plain["ood"].double()) < 0.1

"""Gradient detectors: ODIN (needs the model and the input images) and GradNorm (closed form).

ODIN is the only detector that runs the network again: ``score_inputs(model, images_uint8,
mean, std)``. GradNorm's last-layer gradient has a closed form, so it reads the cache.
"""

from __future__ import annotations

import torch

from oodbench.data.augment import normalize
from oodbench.detectors.base import Detector, ModelDetector, as_float, register
from oodbench.detectors.params import Param
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs


@register
class ODIN(ModelDetector):
    """max_k softmax(f(x~) / T)_k with x~ = x - eps * sign(-grad_x log S_yhat(x; T)) / std.

    The step is taken in normalised space and divided by the dataset's per-channel std, so it
    equals eps in [0, 1] pixel units (as in the authors' code). T = 1000, eps = 0.0014 (the
    LogitNorm paper's setting; Liang et al. tune them per OOD set).
    """

    name = "odin"
    paper = "Liang, Li & Srikant, ICLR 2018"
    # grids: OpenOOD's odin.yml postprocessor_sweep (commit 0e99b9d6)
    temperature = Param(
        1000.0, low=0, low_open=True, grid=(1.0, 10.0, 100.0, 1000.0), help="T, softmax temperature"
    )
    epsilon = Param(0.0014, low=0, grid=(0.0014, 0.0028), help="input step in [0, 1] pixel units")

    def score_inputs(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> torch.Tensor:
        """Score one batch of uint8 NCHW images (already in the model's geometry)."""
        device = next(model.parameters()).device
        t, eps = self.temperature, self.epsilon
        std_t = torch.tensor(std, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        with torch.inference_mode(False), torch.enable_grad():
            x = normalize(images.to(device), mean, std).clone().requires_grad_(True)
            logits = _forward(model, x) / t
            loss = torch.nn.functional.cross_entropy(logits, logits.argmax(dim=1), reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        # sign with 0 -> +1, as torch.ge(grad, 0) in the authors' code.
        step = (grad >= 0).float() * 2 - 1
        with torch.no_grad():
            perturbed = x.detach() - eps * step / std_t
            return as_float(_forward(model, perturbed) / t).softmax(dim=1).max(dim=1).values.cpu()


def _forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    h = model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)
    return model.get_classifier()(h)


@register
class GradNorm(Detector):
    """L1 norm of the gradient of KL(uniform || softmax(f / T)) w.r.t. the last-layer weight W.

    d/df = (softmax(f / T) - 1/K) / T, so dW = (p - 1/K) h^T / T and
    ||dW||_1 = ||p - 1/K||_1 * ||h||_1 / T per sample (checked against autograd in the tests).
    ``include_bias`` adds the bias gradient's norm ||p - 1/K||_1 / T; the paper and the
    authors' code use W only (the default). T = 1.
    """

    name = "gradnorm"
    needs = ("logits", "features")
    paper = "Huang, Geng & Li, NeurIPS 2021"
    temperature = Param(1.0, low=0, low_open=True, help="T, softmax temperature")
    include_bias = Param(False, help="add the bias gradient's norm")

    def score(self, outputs: Outputs) -> torch.Tensor:
        t = self.temperature
        p = as_float(outputs.logits / t).softmax(dim=1)
        dz = (p - 1.0 / p.shape[1]).abs().sum(dim=1) / t
        h_norm = as_float(outputs.features).abs().sum(dim=1)
        if self.include_bias:
            if outputs.weight is not None and outputs.bias is None:
                raise UserError("gradnorm: include_bias=True but the head has no bias")
            h_norm = h_norm + 1.0
        return dz * h_norm

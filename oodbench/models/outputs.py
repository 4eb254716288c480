"""``Outputs``: what one forward pass says about a dataset.

The contract between extraction and detectors. It lives with the models, below both
``scoring`` (which writes it) and ``detectors`` (which read it), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from oodbench.errors import UserError


@dataclass(frozen=True)
class Outputs:
    """What a model says about one dataset: ``logits`` N x K, ``features`` N x D, ``labels`` N.

    ``weight`` (K x D) and ``bias`` (K) are the linear classifier, so that
    ``logits == features @ weight.T + bias``; they are None when the head is not linear.
    """

    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def subset(self, index: torch.Tensor | slice) -> Outputs:
        return replace(
            self,
            logits=self.logits[index],
            features=self.features[index],
            labels=self.labels[index],
        )

    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W, b) of the linear head; b is zeros when the head has no bias."""
        if self.weight is None:
            raise UserError(
                "this detector needs the model's linear classifier weights, but the cache has "
                "none (the head is not nn.Linear); choose a logit detector instead"
            )
        bias = self.bias if self.bias is not None else torch.zeros(self.weight.shape[0])
        return self.weight, bias

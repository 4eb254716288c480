"""The Detector interface and its registry. Higher scores always mean more in-distribution."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from oodbench.detectors.params import Param, fmt
from oodbench.errors import UserError
from oodbench.models.outputs import Outputs
from oodbench.registry import Registry

NEEDS = ("logits", "features", "head", "model")


# The label suffix of a detector tuned per model (metrics rows, reports, report.verdicts).
TUNED = "[tuned]"


class NotFittedError(UserError):
    """A detector that learns from training data was asked to score before ``fit``."""


class Detector:
    """A post-hoc OOD detector: ``fit(train_outputs)`` once, then ``score(outputs) -> Tensor[N]``.

    Subclasses set ``name``, ``needs`` (a subset of NEEDS: "head" = the linear classifier's
    W and b, stored with the cached outputs; "model" = the network and the input images),
    ``paper`` (where the formula and defaults come from), and declare each hyperparameter as a
    class attribute ``k = Param(50, low=1)``; ``self.k`` is then the validated value.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ("logits",)
    paper: ClassVar[str] = ""
    alias_of: ClassVar[str | None] = None  # an old name of another detector: left out of "all"
    # What ``fit`` receives when scoring a run: "train" (the ID training split) or "val" (the
    # ID validation split, e.g. a temperature; the training split when the run holds none out).
    fit_split: ClassVar[str] = "train"
    defaults: ClassVar[dict[str, Any]] = {}  # filled from the declared Params

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.defaults = {n: p.default for n, p in cls.params().items()}
        # The fitted check lives here, once, instead of in every detector's score().
        for method in ("score", "score_inputs"):
            if method in cls.__dict__:
                setattr(cls, method, _requires_fit(cls.__dict__[method]))
        if "fit" in cls.__dict__:
            cls.fit = _marks_fitted(cls.__dict__["fit"])  # type: ignore[method-assign]

    def __init__(self, **hyperparams: Any) -> None:
        params = self.params()
        unknown = sorted(set(hyperparams) - set(params))
        if unknown:
            raise UserError(unknown_param_message(type(self), unknown[0]))
        for key, value in {**self.defaults, **hyperparams}.items():
            setattr(self, key, value)  # Param.__set__ validates
        self.fitted = False
        self.tuned = False  # True when scoring.tune chose the values on validation data

    @classmethod
    def params(cls) -> dict[str, Param[Any]]:
        """The declared hyperparameters, base classes' first, in declaration order."""
        found: dict[str, Param[Any]] = {}
        for klass in reversed(cls.__mro__):
            found.update({k: v for k, v in vars(klass).items() if isinstance(v, Param)})
        return found

    @property
    def hyperparams(self) -> dict[str, Any]:
        """This detector's hyperparameter values, by name."""
        return {name: getattr(self, name) for name in self.params()}

    @property
    def params_text(self) -> str:
        """Every value, e.g. ``k=50`` or ``temperature=1000,epsilon=0.0014`` (metrics rows)."""
        return ",".join(f"{k}={fmt(v)}" for k, v in self.hyperparams.items())

    @property
    def label(self) -> str:
        """Name plus any non-default hyperparameters, e.g. ``knn[k=10]`` (a metrics row key), or
        ``react[tuned]`` when tuned per model (the values are in the params column)."""
        if self.tuned:
            return f"{self.name}{TUNED}"
        changed = {k: v for k, v in self.hyperparams.items() if v != self.defaults[k]}
        if not changed:
            return self.name
        return f"{self.name}[{','.join(f'{k}={fmt(v)}' for k, v in changed.items())}]"

    @property
    def needs_fit(self) -> bool:
        """True when ``fit`` does something, so callers can skip extracting training data."""
        return type(self).fit is not Detector.fit

    def fit(self, train: Outputs) -> Detector:
        """Fit on the ID training split; the default does nothing."""
        return self

    def score(self, outputs: Outputs) -> torch.Tensor:
        raise NotImplementedError


def unknown_param_message(cls: type[Detector], key: str) -> str:
    import difflib

    params = list(cls.params())
    if not params:
        return f"detector {cls.name!r} does not take {key}; it takes no hyperparameters"
    close = difflib.get_close_matches(key, params, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"detector {cls.name!r} does not take {key}: {hint}it takes {', '.join(params)}"


def _requires_fit(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def checked(self: Detector, *args: Any, **kwargs: Any) -> Any:
        if self.needs_fit and not self.fitted:
            raise NotFittedError(
                f"{self.name} is not fitted: call fit(train_outputs) before scoring"
            )
        return method(self, *args, **kwargs)

    return checked


def _marks_fitted(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def fit(self: Detector, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self.fitted = True
        return result

    return fit


DETECTORS: Registry[type[Detector]] = Registry("detector")


def register(cls: type[Detector]) -> type[Detector]:
    DETECTORS.add(cls.name, cls)
    return cls


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy T * logsumexp(f / T) (Liu et al., NeurIPS 2020)."""
    return temperature * torch.logsumexp(logits / temperature, dim=1)


def as_float(t: torch.Tensor) -> torch.Tensor:
    """Scores are computed in float64: ties and tiny differences matter for FPR95."""
    return t.detach().to(torch.float64)


class ModelDetector(Detector):
    """A detector that reruns the network on the images (input perturbation, gradients,
    feature maps): it scores batches with ``score_inputs``, never cached outputs."""

    needs = ("model",)

    def score(self, outputs: Outputs) -> torch.Tensor:
        raise UserError(f"{self.name} needs the model and the input images: use score_inputs()")

    def score_inputs(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> torch.Tensor:
        """Score one batch of uint8 NCHW images (already in the model's geometry)."""
        raise NotImplementedError

"""The loss registry: the base class, the only list of loss names, parameters and labels.

A loss class declares its registry ``name`` (the CLI name), its display ``title``, its
hyperparameters (``params``: name, type, default, allowed range, help, and how they appear in
labels and run names) and ``forward``. Everything else derives from the class: the names
``--loss`` accepts, ``--loss-param`` validation, the run-name suffix (``-t0.04``) and the report
label (``LogitNorm τ=0.04``). A loss sees the logits, the targets and, when it sets
``needs_features``, the penultimate features and the linear head ``(weight, bias)``, so
feature-level losses need no change to the loop. See docs/training.md, "Add your own loss".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch

from oodbench.config import LEGACY_LOSS_PARAMS, TrainConfig
from oodbench.errors import UserError
from oodbench.registry import Param, Registry

Head = tuple[torch.Tensor, torch.Tensor | None]  # the classifier's weight (C x D) and bias (C)


class Loss:
    """Base class: ``loss(logits, targets, features=None, head=None) -> scalar``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # CE, LogitNorm: the label without the parameter values
    params: ClassVar[tuple[Param, ...]] = ()
    needs_features: ClassVar[bool] = False  # True: the loop passes features and head
    mixes_inputs: ClassVar[bool] = False  # True: the loop asks mix_inputs for each batch

    def __init__(self, **values: Any) -> None:
        self.values = resolve_params(self.name, values)

    def forward(
        self,
        logits: torch.Tensor,
        targets: Any,  # the labels, or what mix_inputs returned
        features: torch.Tensor | None,
        head: Head | None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def inference_head(self, weight: torch.Tensor, bias: torch.Tensor | None) -> Head | None:
        """The linear head detectors score with, from the trained ``(weight, bias)``; None (every
        loss but T2FNorm): the trained head as it is. The features stay the raw penultimate ones."""
        return None

    def mix_inputs(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, Any]:
        """For a loss that sets ``mixes_inputs``: the images the step feeds the model and the
        targets it passes to this loss, from the augmented batch ``x``, its labels ``y`` and a
        seed that is a pure function of (run seed, epoch, step, rank), so resume stays bitwise.
        The first ``len(y)`` rows of the output must be the clean batch (the loop's accuracy)."""
        return x, y

    def __call__(
        self,
        logits: torch.Tensor,
        targets: Any,
        features: torch.Tensor | None = None,
        head: Head | None = None,
    ) -> torch.Tensor:
        return self.forward(logits, targets, features, head)

    @property
    def label(self) -> str:
        return label(self.name, self.values)


LOSSES: Registry[type[Loss]] = Registry("loss")


def register(cls: type[Loss]) -> type[Loss]:
    """Class decorator: add ``cls`` to LOSSES under ``cls.name``."""
    LOSSES.add(cls.name, cls)
    return cls


# --------------------------------------------------------------- params, labels, run names


def declaring(param: str) -> list[type[Loss]]:
    """The registered losses that declare a parameter called ``param``."""
    return [cls for _, cls in LOSSES.items() if any(p.name == param for p in cls.params)]


def _where(name: str) -> str:
    # --tau and --penalty are the 0.1.0 spellings; every other parameter comes as --loss-param
    return f"--{name}" if name in LEGACY_LOSS_PARAMS else f"--loss-param {name}"


def resolve_params(
    loss: str, given: Mapping[str, Any], optional: Iterable[str] = ()
) -> dict[str, float]:
    """Every parameter of ``loss``, validated: ``given`` values over the declared defaults.

    A given name the loss does not declare is an error, unless it is in ``optional`` (the
    0.1.0 ``--tau``/``--penalty`` and presets, which apply only to a loss that declares them):
    those are still checked against the loss that declares them, then dropped.
    """
    cls = LOSSES.get(loss)
    declared = {p.name: p for p in cls.params}
    for key, value in given.items():
        if key in declared:
            continue
        owners = declaring(key)
        if key in optional and owners:
            next(p for p in owners[0].params if p.name == key).check(
                value, where=_where(key), explain=True
            )
            continue
        raise UserError(unknown_param_message(loss, key))
    return {
        n: p.check(given.get(n, p.default), where=_where(n), explain=True)
        for n, p in declared.items()
    }


def unknown_param_message(loss: str, key: str) -> str:
    names = [p.name for p in LOSSES.get(loss).params]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    owners = [cls.name for cls in declaring(key)]
    hint = (
        f"did you mean {close[0]!r}? "
        if close
        else f"it belongs to --loss {' or '.join(owners)}; "
        if owners
        else ""
    )
    takes = f"it takes {', '.join(names)}" if names else "it takes none"
    return f"loss {loss!r} has no parameter {key!r}: {hint}{takes}"


def parse_loss_params(loss: str, items: Iterable[str]) -> dict[str, float]:
    """``--loss-param NAME=VALUE`` strings, checked against the parameters ``loss`` declares."""
    cls = LOSSES.get(loss)
    out: dict[str, float] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--loss-param needs NAME=VALUE, got {item!r} (e.g. tau=0.04)")
        param = next((p for p in cls.params if p.name == key), None)
        if param is None:
            raise UserError(unknown_param_message(loss, key))
        out[key] = param.check(text.strip(), where=f"--loss-param {key}", explain=True)
    return out


def configure(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``loss_params`` holding exactly its loss's parameters, validated."""
    from dataclasses import replace

    params = resolve_params(cfg.loss, cfg.loss_params, optional=LEGACY_LOSS_PARAMS)
    return replace(cfg, loss_params=params)


def _values(loss: str, params: Mapping[str, Any]) -> list[tuple[Param, Any]]:
    return [(p, params[p.name]) for p in LOSSES.get(loss).params if p.name in params]


def label(loss: str, params: Mapping[str, Any]) -> str:
    """The report label, ``CE``, ``LogitNorm τ=0.04``; an unregistered loss shows its name."""
    if loss not in LOSSES:
        return " ".join([loss, *(f"{k}={v}" for k, v in params.items())])
    values = (f"{p.symbol or p.name}={float(v):g}" for p, v in _values(loss, params))
    return " ".join([LOSSES.get(loss).title, *values])


def title(loss: str) -> str:
    """``CE``, ``LogitNorm``: the label without values (the loss name if not registered)."""
    return LOSSES.get(loss).title if loss in LOSSES else loss


def default_name(cfg: TrainConfig) -> str:
    """The run name when --name is not given: ``fashion-mnist-small_cnn-logitnorm-t0.04``."""
    params = configure(cfg).loss_params
    suffix = "".join(f"-{p.tag or p.name}{float(v):g}" for p, v in _values(cfg.loss, params))
    return f"{cfg.dataset}-{cfg.model}-{cfg.loss}{suffix}"


def make_loss(name: str, **params: Any) -> Loss:
    """The loss registered as ``name``, its parameters validated (0.1.0 callers pass both
    ``tau`` and ``penalty``; each loss keeps the ones it declares)."""
    return LOSSES.get(name)(**resolve_params(name, params, optional=LEGACY_LOSS_PARAMS))

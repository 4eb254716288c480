"""Run configuration as frozen, validated dataclasses, saved as JSON in every run dir."""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from oodbench.errors import UserError

# Loss hyperparameters that 0.1.0 kept as TrainConfig fields: config.json files, presets and
# --tau/--penalty still give them at top level. They go to loss_params, and the train stage
# (oodbench.losses, the loss registry) keeps those the chosen loss declares.
LEGACY_LOSS_PARAMS = ("tau", "penalty")
SCHEDULES = ("cosine", "multistep")
DEVICES = ("auto", "cpu", "cuda")
PROTOCOLS = ("full", "paper")
POSITIVES = ("id", "ood")
# auto = bf16 autocast on CUDA, fp32 on CPU (what 0.1.0 did); see oodbench.models.precision
PRECISIONS = ("auto", "fp32", "bf16")
# The linear head detectors score with: the loss's inference head (T2FNorm: W / tau, as
# OpenOOD scores it) or the trained one as it is (oodbench.scoring.inputs.load_network).
HEADS = ("inference", "raw")
SHIFT_SIZE = 2000  # --shift-size: images per covariate-shifted set (= data shifted.SAMPLE)
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")
_PARAM = re.compile(r"^([A-Za-z0-9_-]+)\.([A-Za-z_][A-Za-z0-9_]*)=(.+)$")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    bad = not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)
    if bad:
        need = ">= 0" if allow_zero else "> 0"
        raise UserError(f"{name} must be a finite number {need}, got {value}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}{hint}")


def split_param(text: str) -> tuple[str, str, str]:
    """``knn.k=200`` -> ("knn", "k", "200"); the value is checked by the detector's registry
    in the scoring stage (this module does not import the detectors)."""
    match = _PARAM.match(text.strip())
    if not match:
        raise UserError(f"--param takes DETECTOR.NAME=VALUE, e.g. knn.k=200; got {text!r}")
    det, name, value = match.groups()
    return det, name, value.strip()


def check_run_name(name: str) -> str:
    """A run name is one path component: no separators, no '..', not absolute."""
    if not _RUN_NAME.match(name) or ".." in name:
        raise UserError(
            f"invalid run name {name!r}: use letters, digits and . _ = + - only "
            "(no path separators, no '..')"
        )
    return name


def resolve_in(base: Path, name: str) -> Path:
    """``base / name`` after checking that ``name`` cannot escape ``base``."""
    return base / check_run_name(name)


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "fashion-mnist"
    model: str = "small_cnn"
    loss: str = "ce"  # a name in oodbench.losses.LOSSES, checked by the train stage
    loss_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"tau": 0.04}
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    milestones: tuple[int, ...] = (80, 140)
    gamma: float = 0.1
    warmup_epochs: int = 0
    val_size: int = 5000
    subset: int | None = None
    seed: int = 0
    device: str = "auto"
    compile: bool = False
    precision: str = "auto"  # 0.1.0 configs (no field) load as auto: fp32 on CPU
    crop_padding: int = 2
    flip: bool = True
    root: str | None = None
    download: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("--schedule", self.schedule, SCHEDULES)
        check_choice("--device", self.device, DEVICES)
        check_choice("--precision", self.precision, PRECISIONS)
        check_positive("--epochs", self.epochs)
        check_positive("--batch-size", self.batch_size)
        check_positive("--lr", self.lr)
        check_positive("--weight-decay", self.weight_decay, allow_zero=True)
        check_positive("--val-size", self.val_size, allow_zero=True)
        check_positive("--warmup-epochs", self.warmup_epochs, allow_zero=True)
        check_positive("--crop-padding", self.crop_padding, allow_zero=True)
        if self.subset is not None:
            check_positive("--subset", self.subset)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "milestones" in values:
            values["milestones"] = tuple(values["milestones"])
        values["loss_params"] = loss_params_of(data)
        return cls(**values)

    @property
    def tau(self) -> float | None:
        """The ``tau`` column of summary.json and metrics.csv (kept for 0.1.0 readers)."""
        return self.loss_params.get("tau")


def loss_params_of(config: dict[str, Any]) -> dict[str, Any]:
    """The loss parameters in a config.json or options dict: ``loss_params``, and the 0.1.0
    top-level ``tau``/``penalty`` (which win: they are what --tau/--penalty and presets set)."""
    params = dict(config.get("loss_params") or {})
    legacy = {k: config[k] for k in LEGACY_LOSS_PARAMS if config.get(k) is not None}
    return params | legacy


@dataclass(frozen=True)
class ScoreConfig:
    """What ``oodbench score`` does: which run, detectors, OOD sets, protocol and convention.

    ``run_dir`` None = the most recently trained run under ``runs_dir``; ``ood`` empty = every
    offline OOD set available; ``detectors`` may hold "all". ``k`` and ``temperature`` (None =
    each detector's default) go to the chosen detectors that take them; ``params`` holds
    ``DETECTOR.NAME=VALUE`` texts (``--param``), checked against the detector registry.
    """

    run_dir: str | None = None
    runs_dir: str = "runs"
    detectors: tuple[str, ...] = ("energy",)
    ood: tuple[str, ...] = ()
    protocol: str = "full"
    positive: str = "id"
    k: int | None = None
    temperature: float | None = None
    batch_size: int = 512
    device: str = "auto"
    root: str | None = None
    download: bool = False
    overwrite: bool = False
    paper_draws: int = 10
    paper_seed: int = 0
    params: tuple[str, ...] = ()
    precision: str = "fp32"  # of extraction; bf16 caches are kept apart from fp32 ones
    tune: bool = False  # --tune: each tunable detector's grid searched on validation data
    val_ood: tuple[str, ...] = ()  # --val-ood sets or groups; empty = scoring.tune.DEFAULT_VAL
    head: str = "inference"  # --head, one of HEADS
    allow_data_change: bool = False  # score although the ID data differs from training's
    shift: bool = True  # the covariate-shifted ID sets: shift.csv, the mix's failure rows, FSOOD
    shift_size: int = SHIFT_SIZE  # --shift-size: test images per shifted set (0: all)

    def __post_init__(self) -> None:
        check_choice("--protocol", self.protocol, PROTOCOLS)
        check_choice("--head", self.head, HEADS)
        check_choice("--positive", self.positive, POSITIVES)
        check_choice("--precision", self.precision, PRECISIONS)
        check_choice("--device", self.device, DEVICES)
        check_positive("--batch-size", self.batch_size)
        check_positive("paper_draws", self.paper_draws)
        check_positive("--shift-size", self.shift_size, allow_zero=True)
        if not self.detectors:
            raise UserError("choose at least one --detector (or --detector all)")
        k = self.k
        if k is not None and (isinstance(k, bool) or int(k) != k or k <= 0):
            raise UserError(f"--k must be a whole number >= 1, got {self.k}")
        if self.temperature is not None:
            check_positive("--temperature", self.temperature)
        for text in self.params:
            split_param(text)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def convention(self) -> str:
        return f"{self.positive}-positive"


# Fits `make demo` in 20 minutes on 2 CPU cores, install included (docs/results.md).
OFFLINE_DEMO_EPOCHS = 15
PAPER_OOD = ("textures", "svhn", "places365", "lsun-crop", "lsun-resize", "isun")


# The paper's recipe (Wei et al., ICML 2022; official code hongxin001/logitnorm_ood:
# WRN-40-2, dropout 0.3, SGD 0.1 momentum 0.9 without Nesterov, wd 5e-4, batch 128, 200 epochs,
# MultiStepLR [80, 140] x 0.1). tau = 0.04 is the paper's CIFAR-10 value; for CIFAR-100 see
# docs/training.md (the official code gives none; OpenOOD v1.5 uses 0.04).
_PAPER_RECIPE: dict[str, Any] = {
    "model": "wrn_40_2",
    "epochs": 200,
    "schedule": "multistep",
    "milestones": (80, 140),
    "nesterov": False,
    "lr": 0.1,
    "batch_size": 128,
    "weight_decay": 5e-4,
    "tau": 0.04,
    "crop_padding": 4,
    # The paper trains on all 50,000 images: no hold-out unless --val-size N asks for one (then
    # temperature scaling and --tune have an ID validation split; see docs/training.md).
    "val_size": 0,
}
# The offline settings of issue 26 (docs/training.md): recipe, ood, val_ood, tracks.
SETTINGS: dict[str, dict[str, Any]] = {
    name: {k: tuple(v) if isinstance(v, list) else v for k, v in fields_.items()}
    for name, fields_ in json.loads((Path(__file__).parent / "settings.json").read_text()).items()
}
# TrainConfig fields each `--preset` sets, shared by `oodbench train` and `oodbench bench`.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "paper-cifar10": _PAPER_RECIPE | {"dataset": "cifar10"},
    "paper-cifar100": _PAPER_RECIPE | {"dataset": "cifar100"},
    **{name: setting["recipe"] for name, setting in SETTINGS.items()},
}
# A preset's tau is LogitNorm's; every other loss (T2FNorm too) keeps its declared default.
PRESET_TAU_LOSS = "logitnorm"


def preset_for_loss(recipe: dict[str, Any], loss: str) -> dict[str, Any]:
    """The preset's TrainConfig fields for a run of ``loss``: without its tau unless the loss
    is LogitNorm (a tau typed on the command line still applies to the chosen loss)."""
    if loss == PRESET_TAU_LOSS:
        return dict(recipe)
    return {k: v for k, v in recipe.items() if k != "tau"}


@dataclass(frozen=True)
class Preset:
    """A benchmark setting: the training recipe (TrainConfig fields) and the OOD sets."""

    recipe: dict[str, Any]
    ood: tuple[str, ...]  # empty = the offline OOD sets
    # --param defaults of the setting: the KNN paper (Sun et al., ICML 2022) uses k = 50 for
    # CIFAR-10 and k = 200 for CIFAR-100; a --param the user types wins.
    params: tuple[str, ...] = ()
    val_ood: tuple[str, ...] = ()  # empty = the default validation sets (scoring.tune)
    tracks: tuple[str, ...] = ("far",)  # the tracks the setting has (near: NEAR_SPLITS)
    offline: bool = False  # its data must be on this machine: check_data before any work

    def check_data(self, name: str, root: str | None) -> None:
        """One line naming what to install when a dataset of this setting is missing."""
        from oodbench.data import DATASETS

        for dataset in (self.recipe["dataset"], *self.ood, *self.val_ood):
            spec = DATASETS.get(dataset)
            if not spec.available(Path(root) if root else None):
                how = spec.install or "run 'make data'"
                raise UserError(f"--preset {name} needs {dataset}, not on this machine: {how}")


def offline_ood() -> tuple[str, ...]:
    from oodbench.data import OFFLINE_OOD

    return tuple(OFFLINE_OOD)


# LogitNorm's offline tau, chosen on validation data only by the sweep of scripts/study.sh
# (`oodbench bench --tau-sweep 0.01,0.04,0.1,0.5,1.0 -d msp -d energy --subset 20000 --epochs 15`,
# seed 0): among the taus whose validation accuracy stays within 1 point of CE's, the lowest MSP
# FPR95 averaged over the validation OOD sets (bench/tausweep.py; docs/results.md). The paper's
# CIFAR value is 0.04.
OFFLINE_TAU = 0.1
_OFFLINE_RECIPE = {"dataset": "fashion-mnist", "model": "small_cnn", "epochs": OFFLINE_DEMO_EPOCHS,
                   "tau": OFFLINE_TAU, "schedule": "cosine", "crop_padding": 2}  # fmt: skip
PRESETS: dict[str, Preset] = {
    "offline": Preset(_OFFLINE_RECIPE, ()),
    "paper-cifar10": Preset(TRAIN_PRESETS["paper-cifar10"], PAPER_OOD, ("knn.k=50",)),
    "paper-cifar100": Preset(TRAIN_PRESETS["paper-cifar100"], PAPER_OOD, ("knn.k=200",)),
    **{
        name: Preset(s["recipe"], s["ood"], (), s["val_ood"], s["tracks"], offline=True)
        for name, s in SETTINGS.items()
    },
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
    return PRESETS[name]


TRACKS = ("far", "near")
# The ID set of the near-OOD track for each full ID set (data/sources/classsplit.py).
NEAR_SPLITS = {"fashion-mnist": "fashion-mnist-known6", "icons-ctx8": "icons-ctx8-known5",
               "alnum-fonts": "alnum-fonts-known50"}  # fmt: skip
# Near-OOD test sets of an ID set that are other datasets, not class splits: OpenOOD v1.5's
# near-OOD for CIFAR-10 is CIFAR-100 + TinyImageNet, for CIFAR-100 CIFAR-10 + TinyImageNet
# (its configs/datasets/cifar*/cifar*_ood.yml; TinyImageNet, read through OpenOOD's own image
# lists, is not offered). The same models serve both tracks, so the bench scores these sets on
# the far-OOD runs instead of training again (docs/datasets.md).
NEAR_SETS = {"cifar10": ("cifar100",), "cifar100": ("cifar10",)}


@dataclass(frozen=True)
class BenchConfig:
    """What ``oodbench bench`` runs. ``None`` fields take the preset's value."""

    preset: str = "offline"
    out: str = "runs/bench"
    epochs: int | None = None
    tau: float | None = None
    seeds: tuple[int, ...] = (0,)
    tau_sweep: tuple[float, ...] = ()
    detectors: tuple[str, ...] = ("all",)
    ood: tuple[str, ...] = ()
    subset: int | None = None
    val_size: int | None = None  # None: the preset's (5,000 offline, 0 for the paper presets)
    device: str = "auto"
    root: str | None = None
    download: bool = False
    resume: bool = False
    overwrite: bool = False
    params: tuple[str, ...] = ()  # --param DETECTOR.NAME=VALUE, as in ScoreConfig
    tune: bool = True  # --no-tune keeps the papers' defaults
    shift: bool = True  # --no-shift: no covariate-shifted sets (ScoreConfig.shift)
    shift_size: int = SHIFT_SIZE  # as in ScoreConfig
    precision: str = "auto"  # training's (TrainConfig.precision); scoring gets bf16 only if bf16
    val_ood: tuple[str, ...] = ()  # as in ScoreConfig
    # --losses: names in the loss registry (checked by the bench stage); empty = CE and LogitNorm
    losses: tuple[str, ...] = ()
    # far: the preset's ID set against other datasets; near: a class split of it (held-out
    # classes as OOD, NEAR_SPLITS). Several tracks put each in its own folder under --out.
    tracks: tuple[str, ...] = ("far",)

    def __post_init__(self) -> None:
        check_positive("--shift-size", self.shift_size, allow_zero=True)
        preset = get_preset(self.preset)
        if preset.offline:
            preset.check_data(self.preset, self.root)
        for track in self.tracks:
            check_choice("--tracks", track, TRACKS)
        if not self.tracks or len(set(self.tracks)) != len(self.tracks):
            raise UserError(f"--tracks needs distinct values among {', '.join(TRACKS)}")
        if len(set(self.losses)) != len(self.losses):
            raise UserError(f"--losses has duplicates: {', '.join(self.losses)}")
        if self.losses and self.tau_sweep:
            raise UserError("--losses and --tau-sweep are two different studies; pass one")
        check_choice("--device", self.device, DEVICES)
        check_choice("--precision", self.precision, PRECISIONS)
        if self.epochs is not None:
            check_positive("--epochs", self.epochs)
        if self.tau is not None:
            check_positive("--tau", self.tau)
        for tau in self.tau_sweep:
            check_positive("--tau-sweep value", tau)
        if not self.seeds:
            raise UserError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"--seeds has duplicates: {self.seeds}")
        if self.resume and self.overwrite:
            raise UserError("--resume and --overwrite contradict each other; pass one")
        for text in self.params:
            split_param(text)
        dataset = self.train_config().dataset  # after the checks it relies on (seeds)
        if "near" in self.tracks and dataset not in NEAR_SPLITS and dataset not in NEAR_SETS:
            raise UserError(
                f"--tracks near needs near-OOD sets for {dataset}; they exist for "
                f"{', '.join([*NEAR_SPLITS, *NEAR_SETS])}: choose such a preset, or --tracks far"
            )
        if self.tune and self.train_config().val_size == 0:
            raise UserError(
                f"--tune chooses on the ID validation split, and --preset {self.preset} holds "
                "none out (the paper trains on every image): pass --val-size 5000, or --no-tune "
                "for the papers' detector defaults"
            )

    @property
    def preset_spec(self) -> Preset:
        return get_preset(self.preset)

    def ood_sets(self) -> tuple[str, ...]:
        return self.ood or self.preset_spec.ood or offline_ood()

    def val_sets(self) -> tuple[str, ...]:
        """--val-ood, else the preset's validation sets (empty: scoring's default)."""
        return self.val_ood or self.preset_spec.val_ood

    def detector_params(self) -> tuple[str, ...]:
        """The preset's --param defaults (KNN's k) for the chosen detectors, under the ones the
        user typed."""
        typed = {split_param(t)[:2] for t in self.params}
        chosen = set(self.detectors)
        kept = tuple(
            t
            for t in self.preset_spec.params
            if split_param(t)[:2] not in typed and ("all" in chosen or split_param(t)[0] in chosen)
        )
        return kept + self.params

    def train_config(self) -> TrainConfig:
        given = {"epochs": self.epochs, "tau": self.tau}
        return TrainConfig.from_json(
            self.preset_spec.recipe
            | {k: v for k, v in given.items() if v is not None}
            | ({} if self.val_size is None else {"val_size": self.val_size})
            | {"subset": self.subset, "seed": self.seeds[0],
               "device": self.device, "root": self.root, "download": self.download,
               "precision": self.precision}
        )  # fmt: skip

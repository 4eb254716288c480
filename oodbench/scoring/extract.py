"""One forward pass per (checkpoint, dataset) -> logits + penultimate features, cached on disk.

Every logit and feature detector is computed from these ``Outputs``, so ten detectors cost one
forward pass. The cache file ``RUN_DIR/cache/<dataset>-<split>.safetensors`` holds the tensors
``logits``, ``features``, ``labels`` (and the linear head ``head_weight``/``head_bias``, which
ReAct, ASH, DICE, ViM and GradNorm need) with the metadata ``weights_hash`` and ``data_hash``:
a retrained model or changed data never gets a stale cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from oodbench.data.augment import normalize
from oodbench.data.imageset import ImageSet
from oodbench.errors import UserError
from oodbench.io import atomic_write_with, file_lock
from oodbench.models import precision as amp
from oodbench.models.outputs import Outputs
from oodbench.runs import cache_file, cache_lock

CACHE_FORMAT = "oodbench-outputs-1"
Progress = Callable[[int], None]  # called with the number of samples just processed


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's raw bytes as a buffer (no copy for a contiguous CPU tensor)."""
    return memoryview(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())


def weights_hash(model: torch.nn.Module) -> str:
    """Hash of every parameter and buffer (names, dtypes, shapes, values)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def data_hash(
    data: ImageSet, mean: tuple[float, ...], std: tuple[float, ...], geometry: tuple[int, ...]
) -> str:
    """Hash of the images, labels, the normalisation and the geometry they are adapted to."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{data.name}|{tuple(data.images.shape)}|{mean}|{std}|{geometry}".encode())
    h.update(_tensor_bytes(data.images))
    h.update(_tensor_bytes(data.labels))
    return h.hexdigest()


def linear_head(model: torch.nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    head = model.get_classifier()
    if not isinstance(head, torch.nn.Linear):
        return None, None
    bias = head.bias.detach().float().cpu() if head.bias is not None else None
    return head.weight.detach().float().cpu(), bias


def batches(
    data: ImageSet, batch_size: int, like: ImageSet | None = None, rows: range | None = None
) -> Iterator[tuple[int, ImageSet]]:
    """Yield (start, chunk); chunks are adapted to ``like``'s geometry one at a time, so an
    up-sized or colourised OOD set never exists in memory as a whole.

    ``rows`` restricts the pass to a contiguous range (one rank's shard); ``start`` is then
    relative to ``rows.start``. Chunks start at ``rows.start + i * batch_size``, so a shard
    that starts on a batch boundary sees exactly the batches a single process would.
    """
    from oodbench.data import adapt

    differs = like is not None and (data.channels, data.size) != (like.channels, like.size)
    if differs and "synthetic" in data.meta:
        # Noise is regenerated from its seed, not resized: per chunk it would repeat itself.
        data, differs = adapt(data, like), False
    rows = range(len(data)) if rows is None else rows
    for start in range(rows.start, rows.stop, batch_size):
        chunk = data.subset(slice(start, min(start + batch_size, rows.stop)))
        yield start - rows.start, adapt(chunk, like) if differs else chunk


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d inside an nn.Sequential
    into that conv (in place): one op less per layer at inference, about 1e-6 relative change.

    Only Sequential containers are touched, where child order is execution order; pre-activation
    blocks (BN before conv) are left as they are.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in model.modules() if isinstance(m, torch.nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = seq._modules[a], seq._modules[b]
            if (
                isinstance(conv, torch.nn.Conv2d)
                and type(bn) is torch.nn.BatchNorm2d
                and bn.track_running_stats
                and not bn.training
            ):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = torch.nn.Identity()
    return model


def inference_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` for extraction: BatchNorm folded, channels_last for conv nets.

    Measured on CPU (docs/performance.md): small_cnn extracts ~1.5x faster with both. The
    caller's model is left untouched (ODIN and GradNorm still use it for gradients).
    """
    import copy

    net = fold_batchnorm(copy.deepcopy(model).eval())
    if _has_conv(net):
        net = net.to(memory_format=torch.channels_last)
    return net


def extract(
    model: torch.nn.Module,
    data: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 512,
    like: ImageSet | None = None,
    progress: Progress | None = None,
    rows: range | None = None,
    *,
    precision: str = "fp32",
) -> Outputs:
    """One inference-mode pass: features = forward_head(forward_features(x), pre_logits=True),
    logits = classifier(features). Results are written into preallocated CPU tensors.

    ``rows`` limits the pass to that range of ``data`` (a rank's shard, see scoring.sharded).
    ``precision`` bf16 runs the network under bf16 autocast (outputs are stored as float32).
    """
    if len(data) == 0:
        raise UserError(f"dataset {data.name!r} has zero samples; nothing to score")
    rows = range(len(data)) if rows is None else rows
    net = inference_model(model)
    device = next(net.parameters()).device
    precision = amp.resolve(precision, device)
    channels_last = _has_conv(net)
    logits = features = None
    with torch.inference_mode(), amp.autocast(precision, device):
        for start, chunk in batches(data, batch_size, like, rows):
            x = normalize(chunk.images.to(device, non_blocking=True), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            h = net.forward_head(net.forward_features(x), pre_logits=True).flatten(1)
            z = net.get_classifier()(h)
            if logits is None:
                logits = torch.empty(len(rows), z.shape[1])
                features = torch.empty(len(rows), h.shape[1])
            logits[start : start + len(chunk)] = z.float().cpu()
            features[start : start + len(chunk)] = h.float().cpu()
            if progress:
                progress(len(chunk))
    weight, bias = linear_head(model)
    assert logits is not None and features is not None  # len(rows) > 0 is the caller's job
    return Outputs(logits, features, data.labels[rows.start : rows.stop].clone(), weight, bias)


def _has_conv(net: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def write_outputs(path: Path, out: Outputs, metadata: dict[str, str]) -> None:
    tensors = {"logits": out.logits, "features": out.features, "labels": out.labels}
    if out.weight is not None:
        tensors["head_weight"] = out.weight
    if out.bias is not None:
        tensors["head_bias"] = out.bias
    meta = {"format": CACHE_FORMAT, **metadata}
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def read_outputs(path: str | Path) -> Outputs:
    """Load a cache file; a truncated or corrupt file raises UserError naming it."""
    path = Path(path)
    try:
        t = load_file(str(path))
        out = Outputs(
            t["logits"], t["features"], t["labels"], t.get("head_weight"), t.get("head_bias")
        )
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"cache file {path} is corrupt or truncated ({exc}); delete it") from exc
    if not (len(out.features) == len(out.labels) == len(out)):
        raise UserError(f"cache file {path} holds tensors of different lengths; delete it")
    return out


def valid_cache(path: Path, expected: dict[str, str]) -> Outputs | None:
    """The cached outputs if the file is readable and its hashes match, else None."""
    if not path.is_file():
        return None
    try:
        meta = read_metadata(path)
        if any(meta.get(k) != v for k, v in expected.items()):
            return None
        if meta.get("precision", "fp32") != expected.get("precision", "fp32"):
            return None  # an fp32 pass never reuses a bf16 cache, nor the other way round
        return read_outputs(path)
    except (SafetensorError, OSError, ValueError, RuntimeError, UserError):
        from oodbench.console import stderr

        stderr.print(f"[yellow]warning:[/] cache {path} is corrupt; recomputing it")
        return None


def cache_expectation(
    data: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    model_hash: str,
    like: ImageSet | None = None,
    precision: str = "fp32",
) -> dict[str, str]:
    """The metadata a valid cache file for these inputs carries (fp32 files carry no
    ``precision``, as before 0.2, so their caches stay valid)."""
    geometry = (like.channels, *like.size) if like is not None else (data.channels, *data.size)
    expected = {
        "format": CACHE_FORMAT,
        "weights_hash": model_hash,
        "data_hash": data_hash(data, mean, std, geometry),
    }
    return expected | ({"precision": precision} if precision != "fp32" else {})


def cached_outputs(
    cache_dir: Path,
    key: str,
    model: torch.nn.Module,
    data: ImageSet,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    model_hash: str,
    batch_size: int = 512,
    like: ImageSet | None = None,
    progress: Progress | None = None,
    *,
    compute: Callable[[], Outputs | None] | None = None,
    on_lookup: Callable[[bool], None] | None = None,
    precision: str = "fp32",
) -> tuple[Outputs, bool]:
    """Outputs for ``data`` from ``cache_dir/<key>.safetensors`` or one forward pass.

    Returns (outputs, hit). The lock makes a concurrent process wait and then reuse the file
    rather than repeat the same forward pass. ``compute`` replaces the forward pass (the
    torchrun path shards it) and ``on_lookup(hit)`` hears the decision before it runs.
    """
    precision = amp.resolve(precision, next(model.parameters()).device)  # auto -> fp32/bf16
    if precision != "fp32":  # its own folder: fp32 files stay where 0.1.0 readers look
        cache_dir = cache_dir / precision
        cache_dir.mkdir(parents=True, exist_ok=True)
    expected = cache_expectation(data, mean, std, model_hash, like, precision)
    path = cache_file(cache_dir, key)
    with file_lock(cache_lock(cache_dir, key)):  # hidden lock file beside the cache
        hit = valid_cache(path, expected)
        if on_lookup is not None:
            on_lookup(hit is not None)
        if hit is not None:
            return hit, True
        if compute is None:
            out = extract(model, data, mean, std, batch_size, like, progress, precision=precision)
        else:
            out = compute()
            assert out is not None  # the caller's compute returns the outputs here
        write_outputs(path, out, {k: v for k, v in expected.items() if k != "format"})
    return out, False

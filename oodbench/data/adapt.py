"""``adapt``: the one place an OOD set is converted to the ID set's geometry.

Channels: grey -> RGB repeats the channel; RGB -> grey uses ITU-R 601 luma (torchvision's
``rgb_to_grayscale``). Size: an antialiased bilinear resize to the ID height x width. Synthetic
noise is regenerated at the ID geometry instead, because resizing would blur it. Pixels stay
the OOD set's own: the consumer always normalises with the *ID* set's mean/std.
Every step is recorded in ``meta["adaptation"]``.
"""

from __future__ import annotations

from dataclasses import replace

from oodbench.data.imageset import ImageSet
from oodbench.data.sources.common import channel_stats


def adapt(ood: ImageSet, like: ImageSet) -> ImageSet:
    """Return ``ood`` with ``like``'s channels and size; ``meta["adaptation"]`` says how."""
    target = (like.channels, *like.size)
    source = (ood.channels, *ood.size)
    done = list(ood.meta.get("adaptation", []))
    if source == target:
        return replace(ood, meta={**ood.meta, "adaptation": done})
    if "synthetic" in ood.meta:
        from oodbench.data.sources.synthetic import generate

        fresh = generate(ood.meta["synthetic"], target, len(ood))
        step = f"regenerated {_geom(source)} -> {_geom(target)} (same seed)"
        return replace(fresh, meta={**fresh.meta, "adaptation": [*done, step]})
    from torchvision.transforms.v2 import functional as TF  # torchvision only when adapting

    images, steps = ood.images, []
    if ood.size != like.size:
        images = TF.resize(images, list(like.size), antialias=True)
        steps.append(
            f"resize {ood.size[0]}x{ood.size[1]} -> {like.size[0]}x{like.size[1]} "
            "(bilinear, antialias)"
        )
    if ood.channels == 1 and like.channels == 3:
        images = images.expand(-1, 3, -1, -1)
        steps.append("grey -> RGB (channel repeated)")
    elif ood.channels == 3 and like.channels == 1:
        images = TF.rgb_to_grayscale(images)
        steps.append("RGB -> grey (ITU-R 601 luma)")
    images = images.contiguous()
    mean, std = channel_stats(images)
    return replace(
        ood, images=images, mean=mean, std=std, meta={**ood.meta, "adaptation": done + steps}
    )


def _geom(g: tuple[int, ...]) -> str:
    return "x".join(map(str, g))

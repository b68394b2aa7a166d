"""Choosing where scoring runs: `MOVIEREC_DEVICE=auto|cpu|gpu`.

The CPU path is numpy and needs no ML framework at all; `auto` chooses it. A GPU is used, only when asked for
with `gpu`, through Keras 3 (`keras.ops`) on whatever backend is installed (JAX, TensorFlow or PyTorch);
Keras is imported only then, so a CPU deployment never pays for it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


class DeviceUnavailableError(RuntimeError):
    """`MOVIEREC_DEVICE=gpu` on a machine where no GPU is visible."""


def _nvidia_present() -> bool:
    # Cheap pre-check so `auto` does not import a framework on machines that plainly have no GPU.
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


def visible_gpus() -> list[str]:
    """Names of GPUs visible to the installed Keras backend (empty without Keras or without a GPU)."""
    if not _nvidia_present() or importlib.util.find_spec("keras") is None:
        return []
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform == "gpu"]
        if backend == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if backend == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:  # a broken CUDA install must not take the service down in `auto`
        log.warning("GPU probe through the %s backend failed: %s", backend, exc)
    return []


def resolve_device(requested: str) -> str:
    """`cpu` or `gpu` for a requested `auto|cpu|gpu`; `gpu` with none visible fails start-up clearly.

    `auto` is the CPU. The device path computes a batch of lists on the GPU end to end
    (movierec/scoring/device_lists.py) but has never been measured against the pruned numpy path, so a GPU
    is used for serving only when asked for by name (compose's `api-gpu` does). GPUs also serve training
    (`make train` with the train-gpu extra).
    """
    if requested in ("cpu", "auto"):
        return "cpu"
    gpus = visible_gpus()
    if gpus:
        log.info("scoring on GPU: %s", ", ".join(gpus))
        return "gpu"
    raise DeviceUnavailableError(
        "MOVIEREC_DEVICE=gpu but no GPU is visible (needs an NVIDIA driver and Keras with a CUDA-enabled "
        "backend, e.g. the train-gpu extra); set MOVIEREC_DEVICE=cpu or auto"
    )

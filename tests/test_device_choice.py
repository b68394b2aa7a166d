"""`MOVIEREC_DEVICE`: `auto` serves from the CPU (GPU serving is unmeasured, so never chosen by itself)."""

from __future__ import annotations

import pytest

from app import device
from app.device import DeviceUnavailableError, resolve_device


def test_auto_and_cpu_serve_from_the_cpu_even_with_a_gpu_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "visible_gpus", lambda: ["cuda:0"])
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("gpu") == "gpu"


def test_gpu_without_one_fails_start_up_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "visible_gpus", lambda: [])
    with pytest.raises(DeviceUnavailableError, match="MOVIEREC_DEVICE=cpu or auto"):
        resolve_device("gpu")

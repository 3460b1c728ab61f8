"""One fast convolution path for dense and compact execution (docs/design.md §2.6).

For small batch-1 ``conv3d`` calls eager PyTorch picks its native ``slow_conv3d`` kernel instead
of oneDNN (2.5-10x slower); pruned (narrower) layers fall into that path more often. On CPU
float32 tensors :func:`conv3d` therefore calls oneDNN (``aten.mkldnn_convolution``) directly, and
:func:`fast_conv_backend` routes every ``F.conv3d`` of a model (stem, shortcuts, dense blocks)
there too, so dense baselines and compact execution are compared through the same backend. A
1x1x1 conv (a residual block's shortcut) runs there as one matrix product over its strided
positions instead, which oneDNN is 2-3x slower at. Other devices and dtypes use ``F.conv3d``
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

Triple = Sequence[int]


def _use_onednn(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available()


def _triple(value: int | Sequence[int]) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (tuple, list)) else [int(value)] * 3


def conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    stride: int | Triple = 1,
    padding: int | Triple = 0,
    dilation: int | Triple = 1,
    groups: int = 1,
) -> torch.Tensor:
    """``F.conv3d`` through oneDNN on CPU float32 (any batch size; a 1x1x1 conv as a matrix product),
    ``F.conv3d`` elsewhere."""
    if _use_onednn(x) and not isinstance(padding, str):
        if weight.shape[2:] == (1, 1, 1) and groups == 1 and _triple(padding) == [0, 0, 0]:
            return _pointwise(x, weight, bias, _triple(stride))
        return torch.ops.aten.mkldnn_convolution(
            x.contiguous(), weight, bias, _triple(padding), _triple(stride), _triple(dilation), groups
        )
    return F.conv3d(x, weight, bias, stride, padding, dilation, groups)


def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int]) -> torch.Tensor:
    """A 1x1x1 conv as one matrix product over the strided positions: oneDNN takes 2-3x longer on the small
    strided shortcut convs of residual blocks."""
    picked = x[:, :, :: stride[0], :: stride[1], :: stride[2]]
    batch, channels, *grid = picked.shape
    matrix = weight.view(1, weight.shape[0], channels).expand(batch, -1, -1)
    columns = picked.reshape(batch, channels, -1)
    out = torch.bmm(matrix, columns) if bias is None else torch.baddbmm(bias.view(1, -1, 1), matrix, columns)
    return out.view(batch, weight.shape[0], *grid)


_CONV3D_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


class _FastConvMode(TorchFunctionMode):
    """Redirects ``F.conv3d`` / ``torch.conv3d`` calls to :func:`conv3d`."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv3d or func is torch.conv3d:
            bound = dict(zip(_CONV3D_ARGS, args, strict=False), **kwargs)
            x, weight = bound["input"], bound["weight"]
            if _use_onednn(x) and not isinstance(bound.get("padding", 0), str):
                return conv3d(
                    x,
                    weight,
                    bound.get("bias"),
                    stride=bound.get("stride", 1),
                    padding=bound.get("padding", 0),
                    dilation=bound.get("dilation", 1),
                    groups=bound.get("groups", 1),
                )
        return func(*args, **kwargs)


@contextmanager
def fast_conv_backend(enabled: bool = True) -> Iterator[None]:
    """Inside: every ``F.conv3d`` on CPU float32 runs through oneDNN (no-op when ``enabled`` is False)."""
    if not enabled:
        yield
        return
    with _FastConvMode():
        yield

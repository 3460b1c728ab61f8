"""Dynamic model: a backbone whose residual blocks are gated per clip by a stem-fed controller.

Frame semantics ("compressed clip", docs/design.md §2.1): a block's residual branch runs on the clip made of
the input frames under its kept output frames only, as if they were contiguous, and its output
lands at the kept frames; skipped frames get the shortcut alone. Removing a pause from a clip
thus changes nothing for the frames around it, and compact execution computes exactly the kept
frames, with no temporal halo. Channels gate the branch's inner activations; tiles mask the
branch output (computed with its spatial halo).

Execution modes (``set_execution_mode``):

- ``train``: hard decisions in the forward pass, straight-through surrogate gradients
  (``sigmoid(logit)``) to the controller in the backward pass;
- ``simulate``: the same hard decisions applied as 0/1 masks on dense tensors (the numerical
  reference; no gradient to the controller);
- ``compact``: real sparse execution (eval mode only): skipped frames, channels and tiles are not
  computed (:mod:`dance3d.dynamic.compact`); convs run through oneDNN on CPU
  (:mod:`dance3d.dynamic.compact_backend`).

All three give the same forward outputs (compact to float tolerance).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from controllers import (
    GateSpec,
    StemController,
    StemControllerOutput,
    keep_counts,
    keep_mask_host,
    level_counts,
    ste_mask,
    topk_mask,
)
from dance3d.dynamic.accounting import GatedConv, MacRecorder, block_macs, gate_side
from dance3d.dynamic.adapters import (
    BlockAdapter,
    find_residual_blocks,
    find_stem,
    replace_module,
    stem_temporal_padding,
)
from dance3d.dynamic.compact import BlockRuntime, CompactRun, HostDecision, compact_block, host_decisions
from dance3d.dynamic.compact_backend import fast_conv_backend
from dance3d.dynamic.compact_calibration import CompactCalibration
from dance3d.dynamic.config import DynamicConfig
from dance3d.dynamic.decisions import BlockDecision, GateLevels, TileGrid
from dance3d.dynamic.gate_keys import KEEP_AXES, gate_key
from dance3d.errors import ConfigError

ExecutionMode = Literal["train", "simulate", "compact"]
EXECUTION_MODES: tuple[str, ...] = ("train", "simulate", "compact")


@dataclass
class _Masks:
    frames: torch.Tensor  # (B, T) float, STE-carrying in train mode
    channels: torch.Tensor  # (B, C)
    tiles: torch.Tensor  # (B, n_tiles)

    @classmethod
    def of(cls, decision: BlockDecision) -> _Masks:
        return cls(decision.frames.float(), decision.channels.float(), decision.tiles.float())


@dataclass
class _Context:
    """State shared by the controller hook and the gated blocks during one forward pass."""

    probing: bool = False
    counterfactual: bool = False  # train mode: skipped frames carry the dense residual for the STE gradient
    masks: list[_Masks] = field(default_factory=list)  # empty in compact mode: made from ``decisions`` if needed
    decisions: list[BlockDecision] = field(default_factory=list)
    position_fraction: dict[int, torch.Tensor] = field(default_factory=dict)
    channel_fraction: dict[int, torch.Tensor] = field(default_factory=dict)
    record_inner: bool = False
    inner: dict[int, torch.Tensor] = field(default_factory=dict)
    probe: dict[int, dict[str, Any]] = field(default_factory=dict)
    compact: CompactRun | None = None


class GatedBlock(nn.Module):
    """Wraps one residual block; skips frames/tiles of its residual branch and inner channels."""

    def __init__(self, index: int, block: nn.Module, adapter: BlockAdapter, context: _Context) -> None:
        super().__init__()
        self.index = index
        self.block = block
        self.adapter = adapter
        self._context = context
        self.grid: TileGrid | None = None
        self.frame_stride: int | None = None  # input frames per output frame; None: frames are not gated
        self.compact_runtime = BlockRuntime()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self._context
        if ctx.probing:
            return self._probe(x)
        if ctx.compact is not None:  # MACs are accounted from the host decisions after the forward
            if ctx.compact.host[self.index].keeps_everything():  # the block as it is: no compact bookkeeping
                return self.block(x)
            with torch._C.DisableTorchFunction():  # no per-op Python dispatch of fast_conv_backend in here
                out = compact_block(self, x, ctx.compact)
            if out is not None:
                return out
        masks = ctx.masks[self.index] if ctx.masks else _Masks.of(ctx.decisions[self.index])
        residual = self._residual(x, masks)
        if tuple(residual.shape[2:]) != (masks.frames.shape[1], self.grid.height, self.grid.width):
            raise ConfigError(
                f"gated block {self.index}: output {tuple(residual.shape[2:])} does not match the clip shape the "
                f"model was converted for ({masks.frames.shape[1]}, {self.grid.height}, {self.grid.width})"
            )
        positions = masks.frames[:, None, :, None, None] * self.grid.expand(masks.tiles)[:, None, None]
        ctx.position_fraction[self.index] = positions.mean(dim=(1, 2, 3, 4))
        ctx.channel_fraction[self.index] = masks.channels.mean(dim=1)
        shortcut = self.adapter.shortcut(self.block, x)
        return self.adapter.fuse(self.block, shortcut, residual * positions.to(residual.dtype))

    def _branch(self, x: torch.Tensor, channel_mask: torch.Tensor, *, record: bool) -> torch.Tensor:
        ctx = self._context

        def gate(h: torch.Tensor) -> torch.Tensor:
            if record and ctx.record_inner and self.index not in ctx.inner:
                ctx.inner[self.index] = h
            return h * channel_mask.to(h.dtype)

        return self.adapter.residual(self.block, x, gate)

    def _residual(self, x: torch.Tensor, masks: _Masks) -> torch.Tensor:
        """The residual branch with compressed-clip frame semantics; zero at skipped frames."""
        channel_mask = masks.channels[:, :, None, None, None]
        kept = masks.frames.detach() > 0.5
        if bool(kept.all()):
            return self._branch(x, channel_mask, record=True)
        counts = kept.sum(dim=1)
        residual = None
        for count in counts.unique().tolist():
            clips = (counts == count).nonzero().squeeze(1)
            out_frames = kept[clips].nonzero()[:, 1].view(len(clips), count)
            in_frames = out_frames[:, :, None] * self.frame_stride + torch.arange(self.frame_stride, device=x.device)
            compressed = x[clips[:, None], :, in_frames.flatten(1)].transpose(1, 2)  # (n, C, stride * count, H, W)
            part = self._branch(compressed, channel_mask[clips], record=False)
            if part.shape[2] != count:
                raise ConfigError(
                    f"gated block {self.index}: its branch maps {compressed.shape[2]} frames to {part.shape[2]}, "
                    f"not {count}; frame gating needs a temporal output length of input length / {self.frame_stride}"
                )
            if residual is None:
                residual = part.new_zeros(len(x), part.shape[1], kept.shape[1], *part.shape[3:])
            residual[clips[:, None], :, out_frames] = part.transpose(1, 2)
        if self._context.counterfactual:  # what keeping a skipped frame would add: its STE gradient
            with torch.no_grad():
                dense = self._branch(x, channel_mask, record=False)
            residual = residual + dense * (~kept)[:, None, :, None, None].to(dense.dtype)
        return residual

    def _probe(self, x: torch.Tensor) -> torch.Tensor:
        events: list[str] = []
        record = self._context.probe.setdefault(self.index, {})
        handles = [
            m.register_forward_hook(lambda _m, _i, _o, n=name: events.append(n))
            for name, m in self.block.named_modules()
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)
        ]

        def gate(h: torch.Tensor) -> torch.Tensor:
            events.append("<gate>")
            record["inner_channels"] = h.shape[1]
            return h

        try:
            residual = self.adapter.residual(self.block, x, gate)
        finally:
            for handle in handles:
                handle.remove()
        record["events"] = events
        record["input_frames"] = x.shape[2]
        record["output_shape"] = tuple(residual.shape[2:])
        return self.adapter.fuse(self.block, self.adapter.shortcut(self.block, x), residual)


class DynamicModel(nn.Module):
    """Backbone with gated residual blocks + :class:`controllers.StemController`."""

    def __init__(self, backbone: nn.Module, *, clip_shape: tuple[int, int, int], config: DynamicConfig) -> None:
        super().__init__()
        self.config = config
        self.clip_shape = tuple(clip_shape)
        self.mode: ExecutionMode = "simulate"
        self._context = _Context()
        self.stem_name, stem = find_stem(backbone)
        blocks = find_residual_blocks(backbone)
        if not blocks:
            raise ConfigError(f"no supported residual blocks found in {type(backbone).__name__}")
        self.block_names = [name for name, _, _ in blocks]
        self.gated: list[GatedBlock] = []
        for index, (name, block, adapter) in enumerate(blocks):
            gated = GatedBlock(index, block, adapter, self._context)
            replace_module(backbone, name, gated)
            self.gated.append(gated)
        self.backbone = backbone
        with MacRecorder(backbone) as recorder:
            self.gate_specs, self.levels, self.gated_convs, self.stem_shape = self._probe(stem, config)
        self._dense_layer_macs = recorder.macs  # per clip, of the probe forward: the clip shape is fixed
        self.controller = StemController(
            self.stem_shape[0],
            self.gate_specs,
            hidden=config.controller_hidden,
            init_logit=config.init_logit,
            prior_weight=config.prior_weight,
            temporal_edge=stem_temporal_padding(stem),
        )
        self.controller_macs_per_clip = self.controller.macs_per_clip(self.stem_shape)  # the clip shape is fixed
        self.register_buffer("logit_offsets", torch.zeros(len(self.gate_specs), 3), persistent=False)
        self.last_decisions: list[BlockDecision] = []
        self.last_controller_output: StemControllerOutput | None = None  # the controller's logits, last forward
        self.dense_macs: int = sum(self._dense_layer_macs.values())
        gated_names = {conv.name for convs in self.gated_convs for conv in convs}
        self._fixed_macs = sum(v for k, v in self._dense_layer_macs.items() if k not in gated_names)  # counted dense
        self._counted_convs = [[c for c in convs if c.name in self._dense_layer_macs] for convs in self.gated_convs]
        self._macs: torch.Tensor | None = None  # last_macs
        self._block_macs: list[torch.Tensor] = []  # last_block_macs
        self._unaccounted: tuple[CompactRun, int] | None = None  # a compact forward's host decisions, controller MACs
        self._pending: list[BlockDecision] | None = None
        self._controller_macs = 0
        self.compact_calibration: CompactCalibration | None = None
        self._compiled: dict[str, Callable] = {}  # not a submodule: stays out of state_dict
        self._offsets_on_host: tuple | None = None  # (buffer, its version, host copy)

    # -- construction -------------------------------------------------------------------------
    def _probe(self, stem: nn.Module, config: DynamicConfig):
        """One forward on a zero clip: stem shape, each block's output shape, inner width, conv order."""
        ctx = self._context
        ctx.probing, ctx.probe = True, {}
        stem_shapes: list[tuple[int, ...]] = []
        handle = stem.register_forward_hook(lambda _m, _i, out: stem_shapes.append(tuple(out.shape[1:])))
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                self.backbone(torch.zeros(1, 3, *self.clip_shape))
        finally:
            ctx.probing = False
            handle.remove()
            self.backbone.train(was_training)
        specs, levels, convs = [], [], []
        for index, gated in enumerate(self.gated):
            record = ctx.probe[index]
            if "inner_channels" not in record:
                raise ConfigError(f"block {self.block_names[index]}: its adapter never gated an inner activation")
            frames, height, width = record["output_shape"]
            gated.grid = TileGrid.for_map(height, width, config.tile_size)
            stride = record["input_frames"] // frames
            gated.frame_stride = stride if stride * frames == record["input_frames"] else None
            spec = GateSpec(frames, record["inner_channels"], (gated.grid.rows, gated.grid.cols))
            specs.append(spec)
            levels.append(
                GateLevels(
                    frames=level_counts(frames, config.frame_keep_fractions if gated.frame_stride else (1.0,)),
                    channels=level_counts(
                        spec.num_channels, config.channel_keep_fractions, multiple=config.channel_multiple
                    ),
                    tiles=level_counts(spec.num_tiles, config.tile_keep_fractions),
                )
            )
            convs.append(self._classify(index, record["events"]))
        return specs, levels, convs, stem_shapes[0]

    def _classify(self, index: int, events: list[str]) -> list[GatedConv]:
        prefix = f"{self.block_names[index]}.block."
        out = []
        for i, event in enumerate(events):
            if event == "<gate>":
                continue
            conv = self.gated[index].block.get_submodule(event)
            gated_in = i > 0 and events[i - 1] == "<gate>"
            gated_out = i + 1 < len(events) and events[i + 1] == "<gate>"
            out.append(GatedConv(prefix + event, gate_side(conv, gated_in=gated_in, gated_out=gated_out)))
        return out

    # -- forward --------------------------------------------------------------------------------
    def forward(self, clips: torch.Tensor, *, decisions: list[BlockDecision] | None = None) -> torch.Tensor:
        """Logits; ``decisions`` (e.g. :meth:`full_decisions`) replace the controller's."""
        if tuple(clips.shape[2:]) != self.clip_shape:
            raise ConfigError(f"dynamic model was built for clips {self.clip_shape}, got {tuple(clips.shape[2:])}")
        if self.mode == "compact" and self.training:
            raise ConfigError("compact execution needs eval mode (BatchNorm running statistics): call model.eval()")
        ctx = self._context
        ctx.masks, ctx.decisions, ctx.inner, ctx.compact = [], [], {}, None
        ctx.counterfactual = self.mode == "train" and torch.is_grad_enabled()
        ctx.position_fraction, ctx.channel_fraction = {}, {}
        self._pending = decisions
        handle = self.backbone.get_submodule(self.stem_name).register_forward_hook(self._decide)
        try:
            with fast_conv_backend(self.mode == "compact"):
                logits = self.backbone(clips)
        finally:
            handle.remove()
            run, ctx.compact = ctx.compact, None
        self._account(run)
        return logits

    def decide(self, stem: torch.Tensor) -> list[BlockDecision]:
        """The controller's decisions on a stem output, made the way the current mode makes them in a forward."""
        self._pending = None
        with torch._C.DisableTorchFunction():
            self._decide_now(stem)
        self._context.compact = None
        return self.last_decisions

    def _decide(self, module: nn.Module, inputs: tuple, stem: torch.Tensor) -> None:
        with torch._C.DisableTorchFunction():  # the controller has no conv3d for fast_conv_backend
            self._decide_now(stem)

    def _decide_now(self, stem: torch.Tensor) -> None:
        ctx = self._context
        if self._pending is not None:
            self.last_decisions = ctx.decisions = list(self._pending)
            self.last_controller_output = None  # given decisions: the controller did not run
            self._controller_macs = 0
            if self.mode == "compact":
                ctx.compact = CompactRun(host_decisions(self.last_decisions), self.compact_calibration)
            else:
                ctx.masks = [_Masks.of(d) for d in self._pending]
            return
        self._controller_macs = self.controller_macs_per_clip
        if self.mode == "compact":
            self.last_controller_output = self._compiled.get("controller", self.controller)(stem)
            host = self._decide_on_host(self.last_controller_output)
            self.last_decisions = ctx.decisions = [
                h.to_decision(g.grid, stem.device) for h, g in zip(host, self.gated, strict=True)
            ]
            ctx.compact = CompactRun(host, self.compact_calibration)
            return
        out = self.last_controller_output = self.controller(stem)
        decisions, masks = [], []
        for i, levels in enumerate(self.levels):
            hard = []
            soft = []
            offsets = self.logit_offsets[i]  # run-time knobs (dance3d.dynamic.knobs), 0 = as trained
            for logits, allowed in (
                (out.frame_logits[i] + offsets[0], levels.frames),
                (out.channel_logits[i] + offsets[1], levels.channels),
                (out.tile_logits[i] + offsets[2], levels.tiles),
            ):
                mask = topk_mask(logits.detach(), keep_counts(logits.detach(), allowed))
                hard.append(mask)
                soft.append(
                    ste_mask(mask, logits, temperature=self.config.ste_temperature) if self.mode == "train" else mask
                )
            decisions.append(BlockDecision(hard[0].bool(), hard[1].bool(), hard[2].bool(), self.gated[i].grid))
            masks.append(_Masks(*soft))
        self.last_decisions = ctx.decisions = decisions
        ctx.masks = masks

    def _decide_on_host(self, out: StemControllerOutput) -> list[HostDecision]:
        """Compact mode: the controller's logits in one host copy, decisions in NumPy."""
        flat = out.logits.detach().cpu().numpy()
        offsets = self._host_offsets()
        layout, host = out.layout, []
        for i, levels in enumerate(self.levels):
            masks = [
                keep_mask_host(flat[:, where] + offsets[i, axis], allowed)
                for axis, (where, allowed) in enumerate(
                    (
                        (layout.frames[i], levels.frames),
                        (layout.channels[i], levels.channels),
                        (layout.tiles[i], levels.tiles),
                    )
                )
            ]
            host.append(HostDecision.of(*masks))
        return host

    def _host_offsets(self) -> np.ndarray:
        """The run-time logit offsets as a host array, copied again only when they change."""
        buffer, cached = self.logit_offsets, self._offsets_on_host
        if cached is None or cached[0] is not buffer or cached[1] != buffer._version:
            self._offsets_on_host = (buffer, buffer._version, buffer.cpu().numpy().copy())
        return self._offsets_on_host[2]

    def _account(self, run: CompactRun | None) -> None:
        """MACs of the forward that just ran, from its mask tensors (differentiable in train mode); a compact
        forward's (``run``) are counted from its host decisions on first access, off the clip's critical path."""
        self._unaccounted = None
        if run is not None:
            self._unaccounted = (run, self._controller_macs)
            return
        ctx = self._context
        self._block_macs = [
            block_macs(convs, self._dense_layer_macs, position_fraction=ctx.position_fraction[i],
                       channel_fraction=ctx.channel_fraction[i])
            for i, convs in enumerate(self._counted_convs)
        ]  # fmt: skip
        self._macs = sum(self._block_macs) + (self._fixed_macs + self._controller_macs)

    def _account_on_host(self) -> None:
        run, controller_macs = self._unaccounted
        self._unaccounted = None
        per_block = [
            block_macs(convs, self._dense_layer_macs, position_fraction=host.position_fraction(gated.grid),
                       channel_fraction=host.channel_fraction())
            for convs, host, gated in zip(self._counted_convs, run.host, self.gated, strict=True)
        ]  # fmt: skip
        device = self.logit_offsets.device
        self._macs = torch.from_numpy(sum(per_block) + (self._fixed_macs + controller_macs)).to(device)
        self._block_macs = [torch.from_numpy(macs).to(device) for macs in per_block]

    @property
    def last_macs(self) -> torch.Tensor | None:
        """Per-clip MACs (B,) of the last forward (differentiable in train mode); None before the first."""
        if self._unaccounted is not None:
            self._account_on_host()
        return self._macs

    @property
    def last_block_macs(self) -> list[torch.Tensor]:
        """Per gated block, its branch's MACs (B,) in the last forward."""
        if self._unaccounted is not None:
            self._account_on_host()
        return self._block_macs

    def last_keep_counts(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per gated block, the kept (frames, channels, tiles) counts (B,) of the last forward; in train mode
        they carry the straight-through surrogate gradient to the controller, like :attr:`last_mac_fraction`."""
        masks = self._context.masks or [_Masks.of(d) for d in self.last_decisions]
        return [(m.frames.sum(dim=1), m.channels.sum(dim=1), m.tiles.sum(dim=1)) for m in masks]

    @property
    def last_mac_fraction(self) -> torch.Tensor:
        """Per-clip MAC fraction (B,) of the last forward vs the dense model (differentiable in train mode)."""
        return self.last_macs / self.dense_macs

    # -- decisions, stats -----------------------------------------------------------------------
    def channel_filter_norms(self) -> list[torch.Tensor]:
        """Per gated block, the L1 norm of each inner channel's producing conv filter (magnitude importance)."""
        norms = []
        for convs in self.gated_convs:
            producer = next(c for c in convs if c.side in ("out", "both", "depthwise"))
            weight = self.backbone.get_submodule(producer.name).weight.detach()
            norms.append(weight.abs().flatten(1).sum(1).cpu())
        return norms

    def full_decisions(self, batch_size: int, device: torch.device | str = "cpu") -> list[BlockDecision]:
        """Keep everything (reproduces the dense model)."""
        return [
            BlockDecision(
                torch.ones(batch_size, s.num_frames, dtype=torch.bool, device=device),
                torch.ones(batch_size, s.num_channels, dtype=torch.bool, device=device),
                torch.ones(batch_size, s.num_tiles, dtype=torch.bool, device=device),
                g.grid,
            )
            for s, g in zip(self.gate_specs, self.gated, strict=True)
        ]

    def clip_stats(self) -> list[dict[str, float]]:
        """Per clip of the last forward: ``macs``, ``mac_fraction`` and keep rates (overall and per gate)."""
        if self.last_macs is None:
            return []
        macs = self.last_macs.detach().cpu()
        rows = []
        for b in range(len(macs)):
            row: dict[str, float] = {"macs": float(macs[b]), "mac_fraction": float(macs[b]) / self.dense_macs}
            keeps: dict[str, list[float]] = {axis: [] for axis in KEEP_AXES}
            for i, d in enumerate(self.last_decisions):
                for key, mask in zip(KEEP_AXES, (d.frames, d.channels, d.tiles), strict=True):
                    value = float(mask[b].float().mean())
                    row[gate_key(i, key)] = value
                    keeps[key].append(value)
                row[gate_key(i, "mac_fraction")] = float(self.last_block_macs[i][b].detach()) / self.dense_macs
            row.update({key: sum(v) / len(v) for key, v in keeps.items()})
            rows.append(row)
        return rows

    def inner_activations(self) -> dict[int, torch.Tensor]:
        """Gated inner activations of the last forward (only with ``record_inner(True)``)."""
        return dict(self._context.inner)

    def record_inner(self, enabled: bool) -> None:
        self._context.record_inner = enabled

    def compile_controller(self, enabled: bool = True) -> None:
        """Compact mode: run the controller through ``torch.compile`` (fused reductions, no per-op Python; 40-60%
        less time with its decisions on the 2-core CPU VM). Compiles on the first forward of each batch size; CPU
        needs a C++ compiler."""
        if enabled:
            self._compiled["controller"] = torch.compile(self.controller, dynamic=False, fullgraph=True)
        else:
            self._compiled.pop("controller", None)


def set_execution_mode(model: DynamicModel, mode: str) -> None:
    """Switch between ``train`` (STE gradients), ``simulate`` (hard masks, reference numerics) and
    ``compact`` (real sparse execution, eval mode)."""
    if mode not in EXECUTION_MODES:
        raise ConfigError(f"execution mode {mode!r} is not one of {', '.join(EXECUTION_MODES)}")
    model.mode = mode


def convert_model(
    model: nn.Module, *, clip_shape: tuple[int, int, int], config: DynamicConfig | None = None
) -> DynamicModel:
    """Wrap ``model`` (modified in place: its residual blocks become :class:`GatedBlock`)."""
    return DynamicModel(model, clip_shape=clip_shape, config=config or DynamicConfig())

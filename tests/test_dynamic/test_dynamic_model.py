import copy

import pytest
import torch
from dynamic_helpers import CLIP, dynamic_tiny_test, frame_sensitive, make_dense, partly_static_clip

from dance3d.dynamic import DynamicConfig, convert_model, set_execution_mode
from dance3d.errors import ConfigError
from dance3d.models import create_model


@pytest.mark.parametrize("name", ["tiny-test", "tiny-test-deep"])
def test_fully_kept_reproduces_dense_outputs(name):
    dense = make_dense(name)
    clips = torch.rand(3, 3, *CLIP)
    with torch.no_grad():
        expected = dense(clips)
        model = convert_model(copy.deepcopy(dense), clip_shape=CLIP).eval()
        out = model(clips, decisions=model.full_decisions(3))
        fresh = model(clips)  # a fresh controller keeps everything too (positive initial logits)
    assert torch.allclose(out, expected, rtol=0, atol=1e-6)
    assert torch.allclose(fresh, expected, rtol=0, atol=1e-6)
    assert all(d.frames.all() and d.channels.all() and d.tiles.all() for d in model.last_decisions)


def test_pruned_decisions_change_outputs_and_skip_frames_through_the_shortcut():
    model = frame_sensitive(dynamic_tiny_test())
    clips = torch.stack([partly_static_clip(0, 3), partly_static_clip(1, 5)])
    with torch.no_grad():
        dense = model(clips, decisions=model.full_decisions(2))
        pruned = model(clips)
    assert any(not d.frames.all() for d in model.last_decisions)
    assert not torch.allclose(dense, pruned)


def test_converter_finds_blocks_generically_and_keeps_r3d18_exact():
    torch.manual_seed(0)
    dense = create_model("r3d_18", num_classes=8).eval()
    clips = torch.rand(1, 3, 4, 32, 32)
    with torch.no_grad():
        expected = dense(clips)
        model = convert_model(dense, clip_shape=(4, 32, 32)).eval()
        out = model(clips, decisions=model.full_decisions(1))
    assert model.block_names == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert [s.num_channels for s in model.gate_specs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert torch.allclose(out, expected, rtol=0, atol=1e-5)


def test_simulate_and_train_forward_agree_for_hard_decisions():
    model = frame_sensitive(dynamic_tiny_test())
    clips = torch.stack([partly_static_clip(2, 2), partly_static_clip(3, 6)])
    set_execution_mode(model, "simulate")
    with torch.no_grad():
        simulated = model(clips)
    sim_decisions = [d.frames.clone() for d in model.last_decisions]
    sim_macs = model.last_macs.clone()
    set_execution_mode(model, "train")
    trained = model(clips)
    assert any(not d.all() for d in sim_decisions)  # decisions really prune something
    assert torch.equal(trained.detach(), simulated)
    assert all(torch.equal(a, d.frames) for a, d in zip(sim_decisions, model.last_decisions, strict=True))
    assert torch.equal(model.last_macs.detach(), sim_macs) and model.last_macs.requires_grad


def test_gradients_reach_the_controller_only_in_train_mode():
    model = frame_sensitive(dynamic_tiny_test())
    clips = torch.stack([partly_static_clip(4, 3), partly_static_clip(5, 6)])
    set_execution_mode(model, "train")
    loss = model(clips).logsumexp(1).sum() + model.last_mac_fraction.sum()
    loss.backward()
    grads = {n: p.grad for n, p in model.controller.named_parameters()}
    assert grads["frame_weights.0.weight"] is not None and grads["frame_weights.0.weight"].abs().sum() > 0
    assert grads["channel_heads.0.bias"].abs().sum() > 0
    model.zero_grad(set_to_none=True)
    set_execution_mode(model, "simulate")
    loss = model(clips).logsumexp(1).sum()
    loss.backward()
    assert model.controller.frame_weights[0].weight.grad is None


def test_decisions_depend_on_the_input_clip():
    model = frame_sensitive(dynamic_tiny_test())
    clips = torch.stack([partly_static_clip(6, 2), partly_static_clip(6, 8)])  # static tail vs fully moving
    with torch.no_grad():
        model(clips)
    first = model.last_decisions[0]
    assert not torch.equal(first.frames[0], first.frames[1])
    assert first.kept_frames[0] < first.kept_frames[1]
    stats = model.clip_stats()
    assert stats[0]["mac_fraction"] < stats[1]["mac_fraction"]


def test_kept_counts_are_discrete_levels():
    model = dynamic_tiny_test()
    with torch.no_grad():
        for head in model.controller.channel_heads:
            head.bias.copy_(torch.linspace(-1, 1, head.bias.numel()))
        model(torch.rand(4, 3, *CLIP))
    for levels, decision in zip(model.levels, model.last_decisions, strict=True):
        assert set(decision.kept_channels.tolist()) <= set(levels.channels)
        assert set(decision.kept_frames.tolist()) <= set(levels.frames)
        assert all(c % 4 == 0 for c in decision.kept_channels.tolist())
    assert any(d.kept_channels.max() < d.channels.shape[1] for d in model.last_decisions)


def test_tiles_are_at_least_tile_size_and_wrong_clip_shape_is_rejected():
    model = convert_model(make_dense("tiny-test"), clip_shape=(8, 64, 64), config=DynamicConfig(tile_size=8))
    grids = [g.grid for g in model.gated]
    assert (grids[0].rows, grids[0].cols, grids[0].tile_h) == (2, 2, 8)
    assert all(g.tile_h >= 8 or g.rows == 1 for g in grids)
    with pytest.raises(ConfigError):
        model(torch.rand(1, 3, *CLIP))
    with pytest.raises(ConfigError):
        set_execution_mode(model, "sparse")


def test_converter_handles_pytorchvideo_x3d_bottlenecks():
    torch.manual_seed(0)
    dense = create_model("x3d_xs", num_classes=8).eval()
    clips = torch.rand(1, 3, 4, 160, 160)
    with torch.no_grad():
        expected = dense(clips)
        model = convert_model(dense, clip_shape=(4, 160, 160)).eval()
        out = model(clips, decisions=model.full_decisions(1))
    assert model.stem_name == "blocks.0" and len(model.gated) >= 10
    sides = {c.name.rsplit(".", 1)[-1]: c.side for c in model.gated_convs[0]}
    assert sides["conv_a"] == "out" and sides["conv_c"] == "in"
    assert torch.allclose(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-test", "r2plus1d_18"])
def test_skipped_frames_compress_the_clip_each_block_sees(name):
    """A block that skips frames runs its branch on the input frames under the kept frames only, as one
    shorter clip; skipped frames get the shortcut alone. Checked on every block, strided ones included."""
    clip = (8, 32, 32) if name == "tiny-test" else (4, 32, 32)
    model = convert_model(make_dense(name), clip_shape=clip, config=DynamicConfig(channel_multiple=4)).eval()
    clips = torch.rand(2, 3, *clip, generator=torch.Generator().manual_seed(0))
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [
        g.register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, (a[0], o))) for i, g in enumerate(model.gated)
    ]
    decisions = model.full_decisions(2)
    for d, levels in zip(decisions, model.levels, strict=True):
        if len(levels.frames) > 1:
            d.frames[0, 1::2] = False  # clip 0: every other frame
            d.frames[1, : levels.frames[0]] = False  # clip 1: a leading run
            d.frames[1, -1] = True
    with torch.no_grad():
        model(clips, decisions=decisions)
    for handle in handles:
        handle.remove()
    strided = 0
    for i, (gated, d) in enumerate(zip(model.gated, decisions, strict=True)):
        x, y = seen[i]
        strided += gated.frame_stride == 2
        for b in range(2):
            kept = d.frames[b].nonzero().squeeze(1)
            skipped = (~d.frames[b]).nonzero().squeeze(1)
            inputs = (kept[:, None] * gated.frame_stride + torch.arange(gated.frame_stride)).flatten()
            with torch.no_grad():
                shortcut = gated.adapter.shortcut(gated.block, x[b : b + 1])
                residual = gated.adapter.residual(gated.block, x[b : b + 1, :, inputs], lambda h: h)
                expected_kept = gated.adapter.fuse(gated.block, shortcut[:, :, kept], residual)
                expected_skipped = gated.adapter.fuse(
                    gated.block, shortcut[:, :, skipped], torch.zeros_like(shortcut[:, :, skipped])
                )
            assert torch.allclose(y[b : b + 1, :, kept], expected_kept, atol=1e-5)
            assert torch.allclose(y[b : b + 1, :, skipped], expected_skipped, atol=1e-6)
    assert strided > 0


def test_train_mode_gives_skipped_frames_a_gradient():
    """The STE gradient of a skipped frame's logit is what keeping it would change (its dense residual)."""
    model = frame_sensitive(dynamic_tiny_test())
    clips = torch.stack([partly_static_clip(4, 3), partly_static_clip(5, 6)])
    set_execution_mode(model, "train")
    grads: dict[int, torch.Tensor] = {}
    controller_forward = model.controller.forward

    def recording_forward(stem):
        out = controller_forward(stem)
        for i, logits in enumerate(out.frame_logits):
            logits.register_hook(lambda g, i=i: grads.__setitem__(i, g))
        return out

    model.controller.forward = recording_forward
    model(clips).logsumexp(1).sum().backward()
    skipped = [~d.frames for d in model.last_decisions]
    assert any(s.any() for s in skipped)
    assert sum(int((grads[i][s] != 0).sum()) for i, s in enumerate(skipped)) > 0

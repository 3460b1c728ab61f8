"""Structure extraction on every supported architecture, and materialised (physically smaller) models."""

import pytest
import torch
import torch.nn as nn
from mdp_helpers import randomize_bn

from dance3d.mdp.graph import extract_structure
from dance3d.mdp.materialize import materialize
from dance3d.mdp.plan import PrunePlan, full_plan
from dance3d.models import create_model

CASES = {  # name: (clip shape, groups, removable blocks)
    "tiny-test": ((3, 8, 32, 32), 7, 4),
    "tiny-test-deep": ((3, 8, 32, 32), 6, 3),
    "tiny": ((3, 8, 32, 32), 7, 4),
    "r3d_18": ((3, 4, 32, 32), 12, 8),
    "r2plus1d_18": ((3, 4, 32, 32), 29, 8),
    "x3d_xs": ((3, 4, 16, 16), 48, 26),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    torch.manual_seed(0)
    model = randomize_bn(create_model(request.param, num_classes=5)).eval()
    clip_shape, groups, blocks = CASES[request.param]
    return request.param, model, extract_structure(model, clip_shape), groups, blocks


def _half_plan(structure, *, remove: int = 1) -> PrunePlan:
    removed = tuple(list(structure.blocks)[:remove])
    gone = {g for b in removed for g in structure.blocks[b].groups}
    widths = {g: 0 if g in gone else max(1, info.width // 2) for g, info in structure.groups.items()}
    return PrunePlan(widths, removed)


def test_groups_and_blocks_found(case):
    _, _, structure, groups, blocks = case
    assert len(structure.groups) == groups
    assert len(structure.blocks) == blocks
    for block in structure.blocks.values():
        assert block.groups and all(structure.groups[g].block == block.name for g in block.groups)
    # Every residual stream spans several producers (stem/shortcut and each block's last conv).
    streams = [g for g in structure.groups.values() if g.stream and g.block is None]
    assert streams and all(len(g.producers) >= 2 for g in streams)


def test_everything_kept_reproduces_dense_outputs_exactly(case):
    _, model, structure, _, _ = case
    clip = torch.randn(1, *structure.clip_shape)
    with torch.no_grad():
        assert torch.equal(materialize(structure, full_plan(structure)).eval()(clip), model(clip))


def test_pruned_model_runs_with_the_solved_widths(case):
    _, model, structure, _, _ = case
    plan = _half_plan(structure)
    pruned = materialize(structure, plan).eval()
    with torch.no_grad():
        out = pruned(torch.randn(1, *structure.clip_shape))
    assert out.shape == (1, 5)
    modules = dict(pruned.named_modules())
    for name, layer in structure.layers.items():
        if layer.block in plan.removed_blocks:
            assert name not in modules  # the branch is gone
            continue
        if layer.out_group is not None:
            out_channels = getattr(modules[name], "out_channels", None)
            assert out_channels == plan.widths[layer.out_group], name
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_materialising_does_not_touch_the_dense_model(case):
    _, model, structure, _, _ = case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    materialize(structure, _half_plan(structure))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_r2plus1d_mid_channels_are_their_own_groups():
    structure = extract_structure(create_model("r2plus1d_18", num_classes=5), (3, 4, 32, 32))
    block = structure.blocks["layer2.1"]
    # Two (2+1)D mid groups and the inner width between them, all inside the block.
    assert set(block.groups) == {"layer2.1.conv1.0.0", "layer2.1.conv1.0.3", "layer2.1.conv2.0.0"}
    spatial = structure.layers["layer2.1.conv1.0.0"]
    temporal = structure.layers["layer2.1.conv1.0.3"]
    assert spatial.out_group == temporal.in_group == "layer2.1.conv1.0.0"


def test_x3d_depthwise_and_squeeze_excitation_share_the_inner_group():
    model = create_model("x3d_xs", num_classes=5)
    structure = extract_structure(model, (3, 4, 32, 32))
    name = "blocks.1.res_blocks.0.branch2"
    depthwise = structure.layers[f"{name}.conv_b"]
    assert depthwise.depthwise and depthwise.in_group == depthwise.out_group == f"{name}.conv_a"
    excite = structure.layers[f"{name}.norm_b.1.block.2"]  # SE expand conv writes the inner channels
    assert excite.out_group == f"{name}.conv_a"
    assert set(structure.blocks[name].groups) == {f"{name}.conv_a", f"{name}.norm_b.1.block.0"}


def test_concatenation_is_not_pruned():
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv3d(3, 8, 1)
            self.b = nn.Conv3d(3, 8, 1)
            self.c = nn.Conv3d(16, 4, 1)

        def forward(self, x):
            return self.c(torch.cat([self.a(x), self.b(x)], 1))

    structure = extract_structure(Cat(), (3, 2, 4, 4))
    assert structure.groups == {} and structure.blocks == {}

"""Structure extraction from the model graph (torch.fx): channel groups, prunable layers, removable blocks.

Every activation tensor carries a *channel space*: the identity of its channel axis. A conv with
``groups=1`` (or a linear layer) starts a new space; BN, activations, pooling, dropout, permutes and
reshapes that keep the channel axis pass it on; a depthwise conv keeps its input's space; adding or
multiplying two tensors joins their spaces (union-find), which is how the residual stream of a
stage, a (2+1)D conv's mid channels or an X3D block's depthwise + squeeze-excitation channels
become one group. Spaces the analysis does not understand (concatenations, grouped convs, the
input, the logits) are marked *fixed* and never pruned. A residual add whose one operand is a
branch that starts at the other operand's source, and that exclusively holds at least one group,
is a removable block: with its groups at width zero the branch disappears and the shortcut stays.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn as nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from dance3d.errors import ConfigError

_BINARY = {operator.add, operator.mul, operator.sub, torch.add, torch.mul, torch.sub, "add", "mul", "sub"}
_RESHAPE = {"flatten", "view", "reshape", torch.flatten, torch.reshape}
_PERMUTE = {"permute", torch.permute}


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that must be pruned together (same kept indices in every member)."""

    name: str  # the first conv producing it, e.g. "blocks.0.conv_a"
    width: int
    stream: bool  # joined across a residual add or a channel-wise product
    block: str | None  # the removable block whose branch holds it exclusively
    bns: tuple[str, ...]  # BatchNorm modules over these channels
    producers: tuple[str, ...]  # conv/linear modules whose output channels these are


@dataclass(frozen=True)
class PrunableLayer:
    """A conv or linear layer whose cost depends on the widths of at most two groups."""

    name: str
    op: str  # "conv" or "linear"
    in_group: str | None  # None: a fixed (unprunable) channel axis
    out_group: str | None
    in_channels: int
    out_channels: int
    depthwise: bool
    input_shape: tuple[int, ...]  # dense input, batch 1
    followers: tuple[str, ...]  # BN/activation modules right after it, timed with it
    block: str | None

    @property
    def axes(self) -> tuple[str, ...]:
        """The distinct prunable groups its cost depends on (0, 1 or 2)."""
        return tuple(dict.fromkeys(g for g in (self.in_group, self.out_group) if g is not None))


@dataclass(frozen=True)
class RemovableBlock:
    """A residual branch that can be removed whole (the shortcut remains)."""

    name: str  # the common module prefix of the branch, e.g. "layer2.1"
    groups: tuple[str, ...]  # groups held exclusively by the branch
    add_node: str  # fx node names in the traced graph
    branch_node: str
    shortcut_node: str


@dataclass
class Structure:
    """The prunable structure of a model at a given clip shape."""

    graph_module: fx.GraphModule
    clip_shape: tuple[int, int, int, int]
    groups: dict[str, ChannelGroup]
    layers: dict[str, PrunableLayer]
    blocks: dict[str, RemovableBlock]
    bn_groups: dict[str, str] = field(default_factory=dict)  # BN module -> group

    def full_widths(self) -> dict[str, int]:
        return {name: g.width for name, g in self.groups.items()}


class _Tracer(fx.Tracer):
    """Convs, BNs and linears (and their subclasses) and parameter-free leaf modules are graph leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (_ConvNd, _BatchNorm, nn.Linear)):
            return True
        has_own_params = any(True for _ in m.parameters(recurse=False))
        return super().is_leaf_module(m, qualname) or (not list(m.children()) and not has_own_params)


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` (its modules are shared, not copied)."""
    try:
        graph = _Tracer().trace(model)
    except Exception as exc:  # fx raises many types for untraceable Python
        raise ConfigError(f"cannot trace {type(model).__name__} with torch.fx: {exc}") from exc
    return fx.GraphModule(model, graph)


class _Spaces:
    """Union-find over channel spaces with sizes and a fixed flag."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.fixed: list[bool] = []
        self.joined: list[bool] = []

    def new(self, size: int, *, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        self.joined.append(False)
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] != self.size[rb]:  # cannot happen for tensors that broadcast channel to channel
            self.fixed[ra] = True
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]
        self.joined[ra] = True
        return ra

    def fix(self, s: int) -> None:
        self.fixed[self.find(s)] = True


@dataclass
class _TensorInfo:
    space: int
    cdim: int
    shape: tuple[int, ...]


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


class _Analysis:
    """One pass over the traced graph in topological order."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.spaces = _Spaces()
        self.info: dict[fx.Node, _TensorInfo] = {}
        self.module_io: dict[str, tuple[int | None, int | None]] = {}  # module -> (in space, out space)
        self.layer_nodes: dict[str, fx.Node] = {}
        self.bn_space: dict[str, int] = {}
        self.producer_space: dict[str, int] = {}
        self.depthwise: set[str] = set()

    def run(self) -> None:
        for node in self.gm.graph.nodes:
            self.visit(node)

    def tensor_args(self, node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if a in self.info]

    def new_fixed(self, node: fx.Node) -> None:
        shape = _shape(node)
        if shape is not None and len(shape) >= 1:
            cdim = 1 if len(shape) > 1 else 0
            self.info[node] = _TensorInfo(self.spaces.new(shape[cdim], fixed=True), cdim, shape)

    def pass_through(self, node: fx.Node, source: fx.Node) -> None:
        src = self.info[source]
        shape = _shape(node)
        self.info[node] = _TensorInfo(src.space, src.cdim, shape or src.shape)

    def fallback(self, node: fx.Node) -> None:
        """Same channel axis and size as the single tensor input: pass; otherwise fix everything."""
        args = self.tensor_args(node)
        shape = _shape(node)
        if shape is not None and args:
            first = self.info[args[0]]
            same_space = all(self.spaces.find(self.info[a].space) == self.spaces.find(first.space) for a in args)
            if same_space and len(shape) == len(first.shape) and shape[first.cdim] == first.shape[first.cdim]:
                self.pass_through(node, args[0])
                return
        for a in args:
            self.spaces.fix(self.info[a].space)
        self.new_fixed(node)

    def visit(self, node: fx.Node) -> None:
        if node.op == "placeholder":
            self.new_fixed(node)
        elif node.op == "output":
            for a in self.tensor_args(node):
                self.spaces.fix(self.info[a].space)
        elif node.op == "call_module":
            self.visit_module(node, self.gm.get_submodule(node.target))
        elif node.op in ("call_function", "call_method"):
            self.visit_function(node)

    def visit_module(self, node: fx.Node, module: nn.Module) -> None:
        name = str(node.target)
        if name in self.module_io and isinstance(module, (_ConvNd, _BatchNorm, nn.Linear)):
            raise ConfigError(f"module {name} is called twice; MDP needs each layer used once")
        args = self.tensor_args(node)
        if not args:
            self.new_fixed(node)
            return
        src = self.info[args[0]]
        if isinstance(module, _ConvNd):
            self.visit_conv(node, name, module, src)
        elif isinstance(module, _BatchNorm):
            if src.cdim != 1:
                self.spaces.fix(src.space)
            self.pass_through(node, args[0])
            self.bn_space[name] = src.space
            self.module_io[name] = (src.space, src.space)
        elif isinstance(module, nn.Linear):
            if src.cdim != len(src.shape) - 1:
                self.spaces.fix(src.space)
            shape = _shape(node) or (*src.shape[:-1], module.out_features)
            out = self.spaces.new(module.out_features, fixed=True)
            self.info[node] = _TensorInfo(out, len(shape) - 1, shape)
            self.module_io[name] = (src.space, out)
            self.layer_nodes[name] = node
        else:
            self.fallback(node)

    def visit_conv(self, node: fx.Node, name: str, conv: _ConvNd, src: _TensorInfo) -> None:
        if src.cdim != 1:
            self.spaces.fix(src.space)
        shape = _shape(node)
        if conv.groups == 1:
            out = self.spaces.new(conv.out_channels)
            self.producer_space[name] = out
        elif conv.groups == conv.in_channels == conv.out_channels:
            out = src.space
            self.depthwise.add(name)
        else:  # grouped conv: channel groups would have to be pruned evenly; not supported
            self.spaces.fix(src.space)
            out = self.spaces.new(conv.out_channels, fixed=True)
        self.info[node] = _TensorInfo(out, 1, shape or ())
        self.module_io[name] = (src.space, out)
        self.layer_nodes[name] = node

    def visit_function(self, node: fx.Node) -> None:
        target = node.target
        args = self.tensor_args(node)
        if not args:
            return  # shapes, sizes and other non-tensor values
        if target in _BINARY and len(args) == 2:
            self.visit_binary(node, args)
        elif target in _BINARY and len(args) == 1:
            self.pass_through(node, args[0])
        elif target in _PERMUTE:
            self.visit_permute(node, args[0])
        elif target in _RESHAPE:
            self.visit_reshape(node, args[0])
        else:
            self.fallback(node)

    def visit_binary(self, node: fx.Node, args: list[fx.Node]) -> None:
        a, b = (self.info[x] for x in args)
        shape = _shape(node)
        if shape is None or a.cdim != b.cdim or len(a.shape) != len(b.shape):
            self.fallback(node)
            return
        ca, cb = a.shape[a.cdim], b.shape[b.cdim]
        if ca == cb == shape[a.cdim]:
            space = self.spaces.union(a.space, b.space)
        elif cb == 1 and ca == shape[a.cdim]:
            space = a.space
        elif ca == 1 and cb == shape[b.cdim]:
            space = b.space
        else:
            self.fallback(node)
            return
        self.info[node] = _TensorInfo(space, a.cdim, shape)

    def visit_permute(self, node: fx.Node, source: fx.Node) -> None:
        dims = [d for d in node.args[1:]] if node.op == "call_method" else list(node.args[1])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = list(dims[0])
        src = self.info[source]
        shape = _shape(node)
        if shape is None or not all(isinstance(d, int) for d in dims):
            self.fallback(node)
            return
        dims = [d % len(src.shape) for d in dims]
        self.info[node] = _TensorInfo(src.space, dims.index(src.cdim), shape)

    def visit_reshape(self, node: fx.Node, source: fx.Node) -> None:
        """Keep the channel axis only when nothing after it is merged into it (trailing dims of size 1)."""
        src = self.info[source]
        shape = _shape(node)
        if shape is None or math.prod(src.shape[src.cdim + 1 :]) != 1:
            self.fallback(node)
            return
        before = math.prod(src.shape[: src.cdim])
        for d in range(len(shape)):
            if math.prod(shape[:d]) == before and shape[d] == src.shape[src.cdim] and math.prod(shape[d + 1 :]) == 1:
                self.info[node] = _TensorInfo(src.space, d, shape)
                return
        self.fallback(node)


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.all_input_nodes)
    return seen


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    prefix = []
    for column in zip(*parts, strict=False):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    if prefix and all(len(p) == len(prefix) for p in parts):
        prefix = prefix[:-1]  # a single module is not its own block
    return ".".join(prefix)


def _analyze(model: nn.Module, clip_shape: tuple[int, int, int, int]) -> tuple[fx.GraphModule, _Analysis]:
    gm = trace(model)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *clip_shape))
    model.train(was_training)
    analysis = _Analysis(gm)
    analysis.run()
    return gm, analysis


def extract_structure(model: nn.Module, clip_shape: tuple[int, int, int, int]) -> Structure:
    """Groups, layers and removable blocks of ``model`` on clips of ``clip_shape`` (C, T, H, W)."""
    gm, an = _analyze(model, clip_shape)
    sp = an.spaces
    roots = sorted({sp.find(s) for s in an.producer_space.values()})
    prunable = [r for r in roots if not sp.fixed[r]]
    producers = {r: [n for n, s in an.producer_space.items() if sp.find(s) == r] for r in prunable}
    root_name = {r: producers[r][0] for r in prunable}
    node_space = {node: sp.find(info.space) for node, info in an.info.items()}
    blocks = _find_blocks(gm, an, node_space, root_name)
    block_of_group = {g: b.name for b in blocks.values() for g in b.groups}
    branch_nodes = {b.name: _branch_set(gm, b) for b in blocks.values()}

    def group_of(space: int | None) -> str | None:
        return None if space is None or sp.fixed[sp.find(space)] else root_name[sp.find(space)]

    groups = {}
    for r in prunable:
        name = root_name[r]
        bns = tuple(n for n, s in an.bn_space.items() if sp.find(s) == r)
        groups[name] = ChannelGroup(name, sp.size[r], sp.joined[r], block_of_group.get(name), bns, tuple(producers[r]))
    layers = {}
    for name, node in an.layer_nodes.items():
        in_space, out_space = an.module_io[name]
        module = gm.get_submodule(name)
        is_conv = isinstance(module, _ConvNd)
        block = next((b for b, nodes in branch_nodes.items() if node in nodes), None)
        layers[name] = PrunableLayer(
            name=name,
            op="conv" if is_conv else "linear",
            in_group=group_of(in_space),
            out_group=group_of(out_space),
            in_channels=module.in_channels if is_conv else module.in_features,
            out_channels=module.out_channels if is_conv else module.out_features,
            depthwise=name in an.depthwise,
            input_shape=an.info[node.all_input_nodes[0]].shape,
            followers=_followers(gm, node),
            block=block,
        )
    bn_groups = {n: group_of(s) for n, s in an.bn_space.items() if group_of(s) is not None}
    return Structure(gm, clip_shape, groups, layers, blocks, bn_groups)


def _followers(gm: fx.GraphModule, node: fx.Node) -> tuple[str, ...]:
    """What runs right after ``node`` on its output alone: one BN, then activation modules or ``relu``.

    Module followers are named by their module; a functional ``torch.relu`` is ``"relu"``.
    """
    out: list[str] = []
    current = node
    while len(current.users) == 1:
        (user,) = current.users
        if user.op == "call_function" and user.target in (torch.relu, torch.nn.functional.relu):
            out.append("relu")
        elif user.op != "call_module":
            break
        else:
            module = gm.get_submodule(user.target)
            is_bn = isinstance(module, _BatchNorm) and not out
            if not (is_bn or isinstance(module, _ACTIVATIONS) or _is_custom_activation(module)):
                break
            out.append(str(user.target))
        current = user
    return tuple(out)


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Sigmoid, nn.Hardswish, nn.GELU, nn.LeakyReLU)


def _is_custom_activation(module: nn.Module) -> bool:
    """A parameter-free leaf module from outside torch.nn named like an activation (e.g. X3D's Swish)."""
    is_leaf = not list(module.children()) and not any(True for _ in module.parameters())
    return is_leaf and not type(module).__module__.startswith("torch.") and "swish" in type(module).__name__.lower()


def _branch_set(gm: fx.GraphModule, block: RemovableBlock) -> set[fx.Node]:
    nodes = {n.name: n for n in gm.graph.nodes}
    return _ancestors(nodes[block.branch_node]) - _ancestors(nodes[block.shortcut_node])


def _find_blocks(
    gm: fx.GraphModule, an: _Analysis, node_space: dict[fx.Node, int], root_name: dict[int, str]
) -> dict[str, RemovableBlock]:
    found: list[tuple[set[fx.Node], RemovableBlock]] = []
    for node in gm.graph.nodes:
        if node.target not in (operator.add, torch.add, "add"):
            continue
        args = [a for a in node.all_input_nodes if a in an.info]
        if len(args) != 2:
            continue
        candidates = []
        for branch, shortcut in ((args[0], args[1]), (args[1], args[0])):
            result = _branch(an, node, branch, shortcut, node_space, root_name)
            if result is not None:
                candidates.append(result)
        if len(candidates) == 1:
            found.append(candidates[0])
    # Nested candidates: keep the innermost.
    blocks = {}
    for nodes, block in found:
        if not any(other is not nodes and other < nodes for other, _ in found):
            blocks[block.name] = block
    return blocks


def _branch(
    an: _Analysis,
    add: fx.Node,
    branch: fx.Node,
    shortcut: fx.Node,
    node_space: dict[fx.Node, int],
    root_name: dict[int, str],
) -> tuple[set[fx.Node], RemovableBlock] | None:
    shortcut_anc = _ancestors(shortcut)
    nodes = _ancestors(branch) - shortcut_anc
    entries = {a for n in nodes for a in n.all_input_nodes if a not in nodes and a in an.info}
    if len(entries) != 1 or not entries <= shortcut_anc:
        return None
    if any(u not in nodes and u is not add for n in nodes for u in n.users):
        return None
    exclusive = {r for r in root_name if (m := {n for n, s in node_space.items() if s == r}) and m <= nodes}
    layers = [n for n in nodes if n.op == "call_module" and str(n.target) in an.layer_nodes]
    if not exclusive or any(not {node_space[n], node_space[n.all_input_nodes[0]]} & exclusive for n in layers):
        return None
    modules = sorted(str(n.target) for n in nodes if n.op == "call_module")
    name = _common_prefix(modules) or add.name
    block = RemovableBlock(name, tuple(sorted(root_name[r] for r in exclusive)), add.name, branch.name, shortcut.name)
    return nodes, block

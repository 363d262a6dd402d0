"""Loop-invariant code motion for exported ONNX graphs.

The TensorFlow-to-ONNX conversion of a Keras GRU gives a ``Loop`` that carries the layer's weights
from one iteration to the next as loop state and slices the recurrent kernel into its gates again
at every step. ONNX Runtime does not look across the loop boundary, so each step copies and slices
weights that never change. :func:`hoist_loop_invariants` rewrites each top-level ``Loop``:

1. a loop-carried value that every iteration passes on unchanged is read from the outer graph,
   and is no longer carried unless the graph returns its final value;
2. body nodes whose inputs are then all outside the loop (or constants of the body) move before
   the loop, where ONNX Runtime folds them into constants when it loads the graph.

The rewrite changes where values are computed, never what is computed; the export checks the
result against the Keras model.
"""
from __future__ import annotations

import onnx

IMPURE_OPS = frozenset({
    "Bernoulli", "Dropout", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
})
"""Ops whose output may differ from one call to the next: never moved."""


def hoist_loop_invariants(graph: onnx.GraphProto) -> int:
    """Rewrite every ``Loop`` node of ``graph`` as the module says; returns how many values and nodes moved."""
    moved = 0
    position = 0
    while position < len(graph.node):
        loop = graph.node[position]
        if loop.op_type == "Loop":
            body = _body(loop)
            moved += _read_pass_through_from_outside(graph, loop, body)
            hoisted = _move_invariant_nodes(graph, body)
            for offset, node in enumerate(hoisted):
                graph.node.insert(position + offset, node)
            position += len(hoisted)
            moved += len(hoisted)
        position += 1
    return moved


def _body(loop: onnx.NodeProto) -> onnx.GraphProto:
    return next(attribute.g for attribute in loop.attribute if attribute.name == "body")


def _subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [attribute.g for attribute in node.attribute if attribute.HasField("g")] + [
        graph for attribute in node.attribute for graph in attribute.graphs]


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every read of ``old`` in ``graph`` and its subgraphs reads ``new`` instead."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        for subgraph in _subgraphs(node):
            _rename_input(subgraph, old, new)


def _passes_through(body: onnx.GraphProto, inner_in: str, inner_out: str) -> bool:
    """Whether the body hands ``inner_in`` on unchanged as ``inner_out`` (the same name, or an Identity of it)."""
    if inner_in == inner_out:
        return True
    return any(node.op_type == "Identity" and list(node.input) == [inner_in] and list(node.output) == [inner_out]
               for node in body.node)


def _read_pass_through_from_outside(graph: onnx.GraphProto, loop: onnx.NodeProto, body: onnx.GraphProto) -> int:
    """The body and the loop's users read the outer value of each loop-carried value that no iteration changes;
    returns how many carried values were dropped."""
    carried = len(loop.input) - 2  # Loop inputs: trip count, condition, then the carried values
    graph_outputs = {value.name for value in graph.output}
    drop = []
    for i in range(carried):
        outer, inner_in, inner_out = loop.input[2 + i], body.input[2 + i].name, body.output[1 + i].name
        final = loop.output[i] if i < len(loop.output) else ""
        if not outer or not _passes_through(body, inner_in, inner_out):
            continue
        _rename_input(body, inner_in, outer)
        if final not in graph_outputs:  # a graph output keeps its name, so the loop still produces it
            if final:
                _rename_input(graph, final, outer)
            drop.append(i)
    if not drop:
        return 0
    removed_outputs = {body.output[1 + i].name for i in drop}
    for i in reversed(drop):
        del loop.input[2 + i]
        del body.input[2 + i]
        del body.output[1 + i]
        if i < len(loop.output):
            del loop.output[i]
    _remove_unread_identities(body, removed_outputs)
    return len(drop)


def _remove_unread_identities(body: onnx.GraphProto, names: set[str]) -> None:
    read = {name for node in body.node for name in node.input} | {value.name for value in body.output}
    for node in list(body.node):
        if node.op_type == "Identity" and node.output[0] in names and node.output[0] not in read:
            body.node.remove(node)


def _move_invariant_nodes(graph: onnx.GraphProto, body: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Take out of ``body`` the nodes that read nothing the iterations change, in order; their body constants
    are copied into ``graph`` under new names."""
    changing = {value.name for value in body.input}
    body_outputs = {value.name for value in body.output}
    constants = {tensor.name: tensor for tensor in body.initializer}
    moving = []
    for node in body.node:
        reads_changing = any(name in changing for name in node.input if name)
        if reads_changing or node.op_type in IMPURE_OPS or _subgraphs(node) or body_outputs & set(node.output):
            changing.update(node.output)
        else:
            moving.append(node)
    if not moving:
        return []
    outer_names = {tensor.name for tensor in graph.initializer} | {value.name for value in graph.input}
    outer_names |= {name for node in graph.node for name in node.output}
    copies: dict[str, str] = {}
    for node in moving:
        body.node.remove(node)
        for position, name in enumerate(node.input):
            if name in constants:
                if name not in copies:
                    copies[name] = _unique(f"{name}__hoisted", outer_names)
                    tensor = onnx.TensorProto()
                    tensor.CopyFrom(constants[name])
                    tensor.name = copies[name]
                    graph.initializer.append(tensor)
                node.input[position] = copies[name]
    still_read = {name for node in body.node for name in node.input}
    for name in copies:
        if name not in still_read:
            body.initializer.remove(constants[name])
    moved_names = {name for node in moving for name in node.output}
    for value in [value for value in body.value_info if value.name in moved_names]:
        body.value_info.remove(value)
    return moving


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    taken.add(candidate)
    return candidate

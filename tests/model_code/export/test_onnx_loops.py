"""Loop-invariant code motion on ONNX graphs: small hand-built loops against NumPy, and the real exported scorer."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from model_code import artifacts
from model_code.export.onnx_loops import hoist_loop_invariants

STEPS, BATCH, WIDTH = 4, 3, 5


def loop_model(weights_out: bool = False, noise: bool = False) -> onnx.ModelProto:
    """h <- tanh(h + X[t] @ W[:, :WIDTH]) for t < STEPS, with W carried through the loop as TensorFlow's
    export carries it. ``weights_out`` makes W's final value a graph output; ``noise`` adds a random
    term drawn inside the body."""
    constants = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                 (("starts", [0]), ("ends", [WIDTH]), ("axes", [1]))]
    nodes = [
        helper.make_node("Gather", ["x", "t"], ["x_t"], axis=0),
        helper.make_node("Slice", ["w_in", "starts", "ends", "axes"], ["w_part"]),
        helper.make_node("MatMul", ["x_t", "w_part"], ["projected"]),
        helper.make_node("Add", ["h_in", "projected"], ["summed"]),
        helper.make_node("Tanh", ["summed"], ["h_out"]),
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        helper.make_node("Identity", ["w_in"], ["w_out"]),
    ]
    if noise:
        nodes[3:4] = [
            helper.make_node("RandomUniform", [], ["jitter"], shape=[BATCH, WIDTH], low=0.0, high=0.0),
            helper.make_node("Add", ["h_in", "jitter"], ["h_jittered"]),
            helper.make_node("Add", ["h_jittered", "projected"], ["summed"]),
        ]
    body = helper.make_graph(
        nodes, "body",
        [helper.make_tensor_value_info("t", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [BATCH, WIDTH]),
         helper.make_tensor_value_info("w_in", TensorProto.FLOAT, [WIDTH, 2 * WIDTH])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [BATCH, WIDTH]),
         helper.make_tensor_value_info("w_out", TensorProto.FLOAT, [WIDTH, 2 * WIDTH])],
        initializer=constants,
    )
    weights = np.random.default_rng(0).standard_normal((WIDTH, 2 * WIDTH)).astype(np.float32)
    outer = [
        helper.make_node("Loop", ["steps", "", "h0", "w"], ["h_final", "w_final"], body=body),
        helper.make_node("Identity", ["h_final"], ["h"]),
    ]
    outputs = [helper.make_tensor_value_info("h", TensorProto.FLOAT, [BATCH, WIDTH])]
    if weights_out:
        outputs.append(helper.make_tensor_value_info("w_final", TensorProto.FLOAT, [WIDTH, 2 * WIDTH]))
    graph = helper.make_graph(
        outer,
        "loop",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [STEPS, BATCH, WIDTH]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [BATCH, WIDTH]),
        ],
        outputs,
        initializer=[
            numpy_helper.from_array(weights, "w"),
            numpy_helper.from_array(np.array(STEPS, np.int64), "steps"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, x: np.ndarray, h0: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, "h0": h0})


def numpy_reference(model: onnx.ModelProto, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    weights = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "w"))
    h = h0
    for x_t in x:
        h = np.tanh(h + x_t @ weights[:, :WIDTH])
    return h


def loop_body(model: onnx.ModelProto) -> onnx.GraphProto:
    loop = next(node for node in model.graph.node if node.op_type == "Loop")
    return loop.attribute[0].g


@pytest.fixture
def inputs():
    rng = np.random.default_rng(1)
    return (rng.standard_normal((STEPS, BATCH, WIDTH)).astype(np.float32),
            rng.standard_normal((BATCH, WIDTH)).astype(np.float32))


def test_weights_leave_the_loop_and_the_result_stays(inputs):
    model = loop_model()
    before = run(model, *inputs)[0]
    assert hoist_loop_invariants(model.graph) == 2  # W no longer carried; its Slice moved out
    onnx.checker.check_model(model, full_check=True)
    body = loop_body(model)
    assert [value.name for value in body.input] == ["t", "cond_in", "h_in"]
    assert [node.op_type for node in body.node] == ["Gather", "MatMul", "Add", "Tanh", "Identity"]
    assert [node.op_type for node in model.graph.node] == ["Slice", "Loop", "Identity"]
    after = run(model, *inputs)[0]
    np.testing.assert_allclose(after, numpy_reference(model, *inputs), rtol=1e-6)
    np.testing.assert_array_equal(after, before)


def test_a_carried_value_the_graph_returns_stays_carried(inputs):
    model = loop_model(weights_out=True)
    assert hoist_loop_invariants(model.graph) == 1  # the body reads W from outside, so its Slice moves out
    onnx.checker.check_model(model, full_check=True)
    assert [value.name for value in loop_body(model).input] == ["t", "cond_in", "h_in", "w_in"]
    assert "Slice" not in [node.op_type for node in loop_body(model).node]
    h, w_final = run(model, *inputs)
    np.testing.assert_allclose(h, numpy_reference(model, *inputs), rtol=1e-6)
    np.testing.assert_array_equal(w_final, numpy_helper.to_array(model.graph.initializer[0]))


def test_random_ops_stay_in_the_loop(inputs):
    model = loop_model(noise=True)
    hoist_loop_invariants(model.graph)
    assert "RandomUniform" in [node.op_type for node in loop_body(model).node]
    np.testing.assert_allclose(run(model, *inputs)[0], numpy_reference(model, *inputs), rtol=1e-6)


def test_exported_scorer_carries_only_what_changes(tiny_model):
    graph = onnx.load(str(tiny_model[0] / artifacts.SCORER_FILE)).graph
    weights = {tensor.name for tensor in graph.initializer if len(tensor.dims) == 2}
    loops = [node for node in graph.node if node.op_type == "Loop"]
    assert loops
    for loop in loops:
        carried = set(loop.input[2:])
        assert not carried & weights, "a weight matrix is still carried through the loop"
        body = loop.attribute[0].g
        assert not [node for node in body.node if node.op_type == "Slice" and node.input[0] in weights]

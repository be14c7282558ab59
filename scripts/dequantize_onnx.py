"""Turns a block-quantised int8 ONNX model into a float32 one that OpenCV 4.6 loads.

Every DequantizeLinear whose inputs are constant weights is applied once, here, and replaced by
the float32 weights it yields; a Reshape of a constant is folded the same way. Nothing else in
the graph changes, so the result is deterministic for a given input and onnx version.

    /usr/bin/python3 scripts/dequantize_onnx.py IN.onnx OUT.onnx
"""

import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize(x, scale, zero_point, axis, block_size):
    x = x.astype(np.float32)
    zp = zero_point.astype(np.float32) if zero_point is not None else np.zeros_like(scale)
    if scale.ndim == 0 or scale.size == 1:
        return (x - zp.reshape(())) * scale.reshape(()).astype(np.float32)
    axis = axis % x.ndim
    if block_size:
        # One scale per block of `block_size` along `axis`.
        scale = np.repeat(scale, block_size, axis=axis)
        zp = np.repeat(zp, block_size, axis=axis)
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, x.shape[axis])
        scale, zp = scale[tuple(index)], zp[tuple(index)]
    else:
        # One scale per slice along `axis`.
        shape = [1] * x.ndim
        shape[axis] = x.shape[axis]
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((x - zp) * scale).astype(np.float32)


def main():
    src, dst = sys.argv[1:3]
    model = onnx.load(src)
    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    keep = []
    folded = 0
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            x = consts[node.input[0]]
            scale = consts[node.input[1]]
            zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            consts[node.output[0]] = dequantize(
                x, scale, zp, attrs.get("axis", 1), attrs.get("block_size", 0)
            )
            folded += 1
        elif node.op_type == "Reshape" and all(i in consts for i in node.input):
            data, shape = consts[node.input[0]], consts[node.input[1]].astype(np.int64)
            shape = [d if d != 0 else data.shape[i] for i, d in enumerate(shape)]
            consts[node.output[0]] = data.reshape(shape)
            folded += 1
        else:
            keep.append(node)
    used = {i for n in keep for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(v, k) for k, v in sorted(consts.items()) if k in used
    )
    # Initializers listed as graph inputs (older IR) that are gone now.
    inputs = [i for i in graph.input if i.name in used]
    del graph.input[:]
    graph.input.extend(inputs)
    left = [n.op_type for n in keep if n.op_type == "DequantizeLinear"]
    if left:
        sys.exit(f"{src}: {len(left)} DequantizeLinear on non-constant inputs remain")
    onnx.save(model, dst)
    print(f"{dst}: {folded} constant nodes folded, {len(keep)} nodes left")


if __name__ == "__main__":
    main()

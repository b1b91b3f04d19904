"""ONNX through onnxruntime: anything converted with skl2onnx, torch.onnx or tf2onnx.

Why ONNX for "everything else": the file is a graph of standard operators, so loading
runs no code of the model's author. LedgerML's metadata goes into the graph's
`metadata_props` (a plain ONNX field). The graph must take one float tensor of the
features and give a probability of the positive class: a (rows, 2) `probabilities`
output as skl2onnx writes with `zipmap=False`, or a (rows,) / (rows, 1) probability.
No native contributions: reasons use the model-agnostic `OCCLUSION` method.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ledgerml.mlops.models._base import META_KEY, OCCLUSION, Model, meta_json, refused

if TYPE_CHECKING:
    import numpy as np


class OnnxModel(Model):
    def _predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        sess, in_name, out_name = self._impl
        out = np.asarray(sess.run([out_name], {in_name: x.astype(np.float32)})[0], np.float64)
        if out.ndim == 2 and out.shape[1] == 2:
            return out[:, 1]
        return out.reshape(-1)


def _probability_output(sess: Any) -> str | None:
    outs = sess.get_outputs()
    for o in outs:
        if "prob" in o.name.lower() and o.type == "tensor(float)":
            return str(o.name)
    floats = [o for o in outs if o.type == "tensor(float)"]
    return str(floats[-1].name) if floats else None


class OnnxFormat:
    name = "onnx"
    explanation = f"model-agnostic: {OCCLUSION}"

    def sniff(self, raw: bytes) -> bool:
        # ModelProto field 1 (ir_version, varint) comes first in every exporter we know
        return raw[:1] == b"\x08" and len(raw) > 16

    def accepts(self, obj: Any) -> bool:
        return type(obj).__module__.startswith("onnx") and type(obj).__name__ == "ModelProto"

    def dump(self, obj: Any, *, features: list[str], reference: dict[str, Any]) -> bytes:
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(obj)
        keep = [p for p in model.metadata_props if p.key != META_KEY]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        onnx.helper.set_model_props(
            model, {**{p.key: p.value for p in keep}, META_KEY: meta_json(features, reference)}
        )
        return bytes(model.SerializeToString(deterministic=True))

    def load(self, cid: str, raw: bytes, *, source: str) -> OnnxModel:
        import onnxruntime as ort

        try:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            sess = ort.InferenceSession(raw, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, InvalidGraph …
            raise refused(source, f"not a readable ONNX model ({type(exc).__name__})") from None
        meta = json.loads(sess.get_modelmeta().custom_metadata_map.get(META_KEY) or "{}")
        inputs = sess.get_inputs()
        out = _probability_output(sess)
        if len(inputs) != 1 or inputs[0].type != "tensor(float)" or out is None:
            raise refused(
                source, "the ONNX graph must take one float tensor and give a float probability"
            )
        width = inputs[0].shape[-1] if inputs[0].shape else None
        names = tuple(meta.get("features") or ())
        if not names:
            if not isinstance(width, int):
                raise refused(source, "the ONNX model names no features and has no fixed width")
            names = tuple(f"f{i}" for i in range(width))
        if isinstance(width, int) and width != len(names):
            raise refused(source, f"the graph takes {width} features, metadata names {len(names)}")
        return OnnxModel(
            cid,
            self.name,
            names,
            meta.get("reference", {}),
            self.explanation,
            (sess, inputs[0].name, out),
        )

    def framework(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

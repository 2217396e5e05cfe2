"""scikit-learn classifiers to ONNX and back, and the curves every training report draws.

Shared by the alarm detector and the show ranker: the input is one float32 tensor named
``features``; outputs are the label and the class probabilities as a plain tensor (no ZipMap).
"""

from __future__ import annotations

import io

import numpy as np

from models.native_import import import_on_python_thread

ONNX_INPUT = "features"


def to_onnx(model, n_features: int) -> bytes:
    """float32 ``features`` (N, n_features) in; ``label`` and ``probabilities`` (N, classes)
    out, in label-index order (no ZipMap, so serving gets a plain tensor)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(model, initial_types=[(ONNX_INPUT, FloatTensorType([None, n_features]))],
                          options={id(model): {"zipmap": False}}, target_opset=17,
                          name=type(model).__name__)  # not a random uuid: same model, same bytes
    return onx.SerializeToString()


def onnx_runtime():
    """The ``onnxruntime`` module (a pybind11 extension: see ``models.native_import``)."""
    return import_on_python_thread("onnxruntime")


class OnnxScorer:
    """Class probabilities from an ONNX session (or bytes), one vectorised call per batch."""

    def __init__(self, session_or_bytes):
        if isinstance(session_or_bytes, bytes):
            ort = onnx_runtime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session_or_bytes = ort.InferenceSession(session_or_bytes, options,
                                                    providers=["CPUExecutionProvider"])
        self.session = session_or_bytes
        self.output = next(o.name for o in self.session.get_outputs()
                           if o.name.startswith("prob"))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros((0, 0), np.float32)
        return self.session.run([self.output], {ONNX_INPUT: x.astype(np.float32)})[0]


def parity(model, scorer: OnnxScorer, x: np.ndarray) -> float:
    """Largest absolute difference between scikit-learn's and ONNX's probabilities."""
    x32 = x.astype(np.float32)
    return float(np.max(np.abs(model.predict_proba(x32) - scorer(x32)))) if len(x) else 0.0


def curves_png(y_true: np.ndarray, alarm_p: np.ndarray, title: str) -> bytes:
    """ROC and precision/recall curves of a holdout (binary labels, positive-class scores), as PNG
    bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    fpr, tpr, _ = roc_curve(y_true, alarm_p)
    a.plot(fpr, tpr)
    a.plot([0, 1], [0, 1], "k:", lw=0.8)
    a.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    precision, recall, _ = precision_recall_curve(y_true, alarm_p)
    b.plot(recall, precision)
    b.set(xlabel="recall", ylabel="precision", title="precision / recall")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()

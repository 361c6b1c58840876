"""``DecisionLabel``: a ``gr.Label`` whose headline is given, not the most confident class.

In a module of its own because Gradio writes a type stub (``<module>.pyi``, a copy of the module's
source) next to any module that defines a component class, when it is first imported; here that stub
is small and stays true (it is git-ignored)."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # must be set before gradio is imported

import gradio as gr  # noqa: E402


class DecisionLabel(gr.Label):
    """``gr.Label`` (same front end) whose headline is the value's ``"label"``, not its most confident
    class: the headline must follow the decision (``AccentResult.label``, p_native vs the threshold),
    which at a threshold other than 0.5 can differ from the larger of P(native) and P(non-native).

    Value: ``{"label": headline, "confidences": {class: confidence}}``, or anything ``gr.Label`` takes."""

    is_template = True  # rendered by gr.Label's Svelte component

    def postprocess(self, value):  # type: ignore[override]
        if isinstance(value, dict) and set(value) == {"label", "confidences"} and isinstance(value["confidences"], dict):
            data = super().postprocess(value["confidences"])
            return data.model_copy(update={"label": str(value["label"])})
        return super().postprocess(value)

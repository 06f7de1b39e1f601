"""Export stage: a RecursiveModel becomes ONNX graphs in an artefact folder.

`export_forms` is the stage's entry point: for each precision it writes the encode / step / readout graphs
(the unit the host-loop runtime, quantization and TensorRT step engines use), and on request the single-graph
ONNX Loop form and the fixed-budget unrolled form. It returns the manifest entries describing what it wrote.
"""

from .forms import FORMS, PRECISIONS, ExportPlan, export_forms

__all__ = ["FORMS", "PRECISIONS", "ExportPlan", "export_forms"]

"""Export: a run folder handed to the tools teams already run (MLflow, TensorBoard, ONNX), and the live
MLflow logging of `nnlab train --log-to mlflow`.

An entry-point layer just under the CLI, above `api` and `starter`: it may import anything below (the api to
rebuild a model for ONNX, runstore, report, core), and nothing imports it but the CLI. The run folder stays the source of truth: every
export reads it (scalars.py) and can be repeated without duplicating what it wrote. MLflow, TensorBoard,
onnx and onnxruntime are optional extras, imported only inside the export that uses them; the MLflow and
TensorBoard exports never import torch.
"""

"""FP32 evaluation of a trained model through the same path the pipeline's torch reference
uses: the plugin's partition executed eagerly on the CPU, detections scored by the devkit."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..errors import BevDeployError


class _Prepared(torch.utils.data.Dataset):
    """Item i -> (model inputs, sample): ``prepare`` (image decoding, the CPU-bound part) in
    DataLoader workers while the main process runs the model."""

    def __init__(self, dataset, prepare, model: torch.nn.Module) -> None:
        self.dataset, self.prepare, self.model = dataset, prepare, model

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        sample = self.dataset[i]
        with torch.inference_mode():
            inputs = self.prepare(self.model, sample)
        sample._image_loader = None
        return inputs, sample


def detect(model: torch.nn.Module, spec, variant: str, dataset, workers: int = 0) -> dict[str, Any]:
    """Detections by sample token of an eval-mode CPU copy of ``model`` over ``dataset``
    (inputs prepared by ``workers`` processes when > 0)."""
    from .._defaults import execute_graph, module_outputs
    from ..manager import get_plugin_manager
    from ..specs.run import RunSpec
    from .data import loader

    cpu = copy.deepcopy(model).cpu().eval()
    graph = get_plugin_manager().hook.bevdeploy_partition(model=cpu, spec=RunSpec(model=spec.name, variant=variant))
    if graph is None:
        raise BevDeployError(f"no plugin partitions model {spec.name!r}; cannot evaluate it")
    for sg in graph.subgraphs:
        sg.module.eval()
    dets = {}
    with torch.inference_mode():
        for batch in loader(_Prepared(dataset, spec.prepare, cpu), [[i] for i in range(len(dataset))], workers):
            (inputs,), (sample,) = batch
            dets[sample.token] = execute_graph(graph, module_outputs, inputs)[graph.output]
    return dets


def evaluate_model(model: torch.nn.Module, spec, variant: str, dataset, workers: int = 0) -> dict[str, Any]:
    """nuScenes metrics (mAP, NDS, per class, TP errors) of ``model`` on ``dataset``."""
    from ..eval import evaluate_detections

    m = evaluate_detections(detect(model, spec, variant, dataset, workers), dataset)
    keep = ("mAP", "NDS", "tp_errors", "per_class", "num_samples", "num_gt_boxes", "num_pred_boxes", "split")
    return {k: m[k] for k in keep if k in m}

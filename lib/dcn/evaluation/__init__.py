"""Evaluators: objects with ``reset()``, ``process(...)`` per image and ``evaluate() -> dict``
(:class:`~dcn.evaluation.detection.DatasetEvaluator`).

- :mod:`dcn.evaluation.detection`: detection (``all_boxes``, VOC / COCO rules of the data set).
- :mod:`dcn.evaluation.sem_seg`: semantic segmentation (confusion matrix, IoU, mIoU).
"""
from .detection import DatasetEvaluator, DetectionEvaluator

__all__ = ['DatasetEvaluator', 'DetectionEvaluator']

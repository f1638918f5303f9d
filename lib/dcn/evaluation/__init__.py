"""Evaluators: objects with ``reset()``, ``process(...)`` per image and ``evaluate() -> dict``.

- :mod:`dcn.evaluation.sem_seg`: semantic segmentation (confusion matrix, IoU, mIoU).
"""

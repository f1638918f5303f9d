"""Non-maximum suppression (numpy, Cython CPU, soft-NMS, CUDA when built)."""
from .nms import (cpu_nms_wrapper, gpu_nms_wrapper, original_soft_nms, py_nms, py_nms_wrapper,
                  soft_nms, soft_nms_wrapper)

__all__ = ['py_nms', 'py_nms_wrapper', 'cpu_nms_wrapper', 'soft_nms', 'soft_nms_wrapper',
           'original_soft_nms', 'gpu_nms_wrapper']

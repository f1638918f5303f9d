"""Model assembly: registries of parts (backbones, proposal generators, RoI heads,
semantic-segmentation heads), the name table of a task's graph, and the meta-architectures
that assemble a network from registered parts (see docs/DESIGN.md)."""
from .registry import (BACKBONES, PROPOSAL_GENERATORS, ROI_HEADS, SEM_SEG_HEADS, Registry,
                       ShapeSpec)
from .names import DETECTION, NameTable, output_name
from .meta_arch import Detector, FasterRCNN, RFCN, TwoStageDetector, sym_ops
from .fpn import FPNRCNN
from dcn.symbols.resnet import ResNetSpec, RESNET_V1_101, RESNET_V1_50, RESNET_V1_18_SMALL

__all__ = ['BACKBONES', 'PROPOSAL_GENERATORS', 'ROI_HEADS', 'SEM_SEG_HEADS', 'Registry',
           'ShapeSpec', 'DETECTION', 'NameTable', 'output_name', 'Detector', 'FasterRCNN',
           'RFCN', 'TwoStageDetector', 'FPNRCNN', 'sym_ops', 'ResNetSpec', 'RESNET_V1_101',
           'RESNET_V1_50', 'RESNET_V1_18_SMALL']

"""Faster R-CNN (2fc head) and Deformable Faster R-CNN: symbols under faster_rcnn.symbols."""

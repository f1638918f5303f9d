"""DeepLab and Deformable DeepLab (semantic segmentation): symbols under deeplab.symbols."""

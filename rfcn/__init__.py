"""R-FCN and Deformable R-FCN (Dai et al., 2016 / 2017): symbols under rfcn.symbols."""

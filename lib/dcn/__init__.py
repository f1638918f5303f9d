"""Deformable ConvNets detection core: configuration, datasets, image and box utilities,
operators, networks, training and testing for R-FCN and Faster R-CNN on MXNet."""

#!/usr/bin/env bash
# Train then test: deeplab_resnet_v1_101_cityscapes_segmentation_base
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/deeplab/deeplab_train_test.py --cfg experiments/deeplab/cfgs/deeplab_resnet_v1_101_cityscapes_segmentation_base.yaml "$@"

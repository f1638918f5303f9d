#!/usr/bin/env bash
# Train then test: resnet_v1_101_coco_trainval_rcnn_dcn_end2end
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/faster_rcnn/rcnn_end2end_train_test.py --cfg experiments/faster_rcnn/cfgs/resnet_v1_101_coco_trainval_rcnn_dcn_end2end.yaml "$@"

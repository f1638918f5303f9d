#!/usr/bin/env bash
# Train then test: resnet_v1_101_coco_trainval_fpn_dcn_end2end_ohem
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/fpn/fpn_end2end_train_test.py --cfg experiments/fpn/cfgs/resnet_v1_101_coco_trainval_fpn_dcn_end2end_ohem.yaml "$@"

#!/usr/bin/env bash
# Train then test: shapes_mini_rcnn_dcn
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/faster_rcnn/rcnn_end2end_train_test.py --cfg experiments/faster_rcnn/cfgs/shapes_mini_rcnn_dcn.yaml "$@"

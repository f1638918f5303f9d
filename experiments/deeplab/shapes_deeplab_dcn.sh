#!/usr/bin/env bash
# Train then test: shapes_deeplab_dcn
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/deeplab/deeplab_train_test.py --cfg experiments/deeplab/cfgs/shapes_deeplab_dcn.yaml "$@"

#!/usr/bin/env bash
# Train then test: shapes_mini_fpn
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/fpn/fpn_end2end_train_test.py --cfg experiments/fpn/cfgs/shapes_mini_fpn.yaml "$@"

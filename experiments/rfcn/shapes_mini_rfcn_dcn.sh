#!/usr/bin/env bash
# Train then test: shapes_mini_rfcn_dcn
set -e
cd "$(dirname "$0")/../.."
${PYTHON:-.venv/bin/python} experiments/rfcn/rfcn_end2end_train_test.py --cfg experiments/rfcn/cfgs/shapes_mini_rfcn_dcn.yaml "$@"

#!/usr/bin/env bash
# Plain vs deformable R-FCN and Faster R-CNN on Shapes, 2 seeds each (8 trainings), then the
# table (mAP@0.5, mAP@0.7: mean and spread; test-time ratio). Extra arguments go to
# dcn.tools.paper_table (e.g. --seeds 0 1 2, --detectors rfcn, --collect).
set -e
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD/lib:$PWD${PYTHONPATH:+:$PYTHONPATH}" ${PYTHON:-.venv/bin/python} -m dcn.tools.paper_table "$@"

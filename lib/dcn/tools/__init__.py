"""Command-line mains shared by the ``rfcn/`` and ``faster_rcnn/`` entry points."""
from dcn.tools.main import test_main, train_end2end_main, train_test_main

__all__ = ['train_end2end_main', 'test_main', 'train_test_main']

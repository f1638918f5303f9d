"""Command-line mains shared by the ``rfcn/`` and ``faster_rcnn/`` entry points."""
from dcn.tools.main import (alternate_train_test_main, rcnn_train_test_main,
                            rpn_train_test_main, test_main, test_rpn_main, train_end2end_main,
                            train_rcnn_main, train_rpn_main, train_test_main)

__all__ = ['train_end2end_main', 'test_main', 'train_test_main', 'train_rpn_main',
           'test_rpn_main', 'rpn_train_test_main', 'train_rcnn_main', 'rcnn_train_test_main',
           'alternate_train_test_main']

"""One name table for a task's graph: its inputs, labels and outputs.

Loaders name the arrays they provide after it, metrics look the outputs up by these names
(``<name>_output`` in a module), the tester reads the test outputs by name and the
checkpoint rules take the box-regression layers from the RoI head. A new task (e.g.
semantic segmentation) defines its own :class:`NameTable`.
"""
__all__ = ['NameTable', 'DETECTION', 'RPN_ONLY', 'RCNN_ONLY', 'output_name']


def output_name(name):
    """The name MXNet gives the output of layer ``name`` (``<name>_output``)."""
    return name if name.endswith('_output') else name + '_output'


class NameTable(object):
    """Names of one task's graph inputs and outputs (plain attributes, tuples of str).

    train_data / train_labels: the training data and label inputs, in loader order;
    train_outputs: the training symbol's outputs (layer names, without ``_output``);
    test_data / test_outputs: the test symbol's inputs and outputs;
    extra: further task-specific names (e.g. the proposals input without an RPN).
    """

    def __init__(self, task, train_data, train_labels, train_outputs, test_data,
                 test_outputs, **extra):
        self.task = task
        self.train_data = tuple(train_data)
        self.train_labels = tuple(train_labels)
        self.train_outputs = tuple(train_outputs)
        self.test_data = tuple(test_data)
        self.test_outputs = tuple(test_outputs)
        self.extra = dict(extra)

    def test_output_names(self):
        return tuple(output_name(n) for n in self.test_outputs)

    def train_output_names(self):
        return tuple(output_name(n) for n in self.train_outputs)

    def __repr__(self):
        return 'NameTable(%s)' % self.task


#: two-stage detection (RPN + RoI head): R-FCN, Faster R-CNN (and FPN)
DETECTION = NameTable(
    'detection',
    train_data=('data', 'im_info', 'gt_boxes'),
    train_labels=('label', 'bbox_target', 'bbox_weight'),
    train_outputs=('rpn_cls_prob', 'rpn_bbox_loss', 'cls_prob_reshape', 'bbox_loss_reshape',
                   'rcnn_label'),
    test_data=('data', 'im_info'),
    test_outputs=('rois', 'cls_prob_reshape', 'bbox_pred_reshape'),
    # TEST.HAS_RPN false: the test symbol takes the proposals and has no rois output
    test_data_given_rois=('data', 'rois'),
    test_outputs_given_rois=('cls_prob_reshape', 'bbox_pred_reshape'),
)

#: the RPN alone (RPN-only training, proposal generation): the test symbol outputs the
#: proposals and their scores (the original's ``rois_output``, ``rois_score``)
RPN_ONLY = NameTable(
    'rpn',
    train_data=('data',),
    train_labels=('label', 'bbox_target', 'bbox_weight'),
    train_outputs=('rpn_cls_prob', 'rpn_bbox_loss'),
    test_data=('data', 'im_info'),
    test_outputs=('rois', 'rois_score'),
)

#: the RoI head on given proposals (training and testing from precomputed proposals):
#: ``rois`` (N, R, 5), labels per RoI (N, R), box targets and weights (N, R, 4 * K)
RCNN_ONLY = NameTable(
    'rcnn',
    train_data=('data', 'rois'),
    train_labels=('label', 'bbox_target', 'bbox_weight'),
    train_outputs=('cls_prob_reshape', 'bbox_loss_reshape', 'rcnn_label'),
    test_data=('data', 'rois'),
    test_outputs=('cls_prob_reshape', 'bbox_pred_reshape'),
)

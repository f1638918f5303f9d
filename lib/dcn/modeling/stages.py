"""Stage views of a two-stage detector: the RPN alone and the RoI head on given proposals.

The original trains and tests these graphs on their own (``get_symbol_rpn``,
``get_symbol_rfcn`` / ``get_symbol_rcnn``) for RPN-only training, proposal generation,
training from precomputed proposals and alternate training. A view offers the symbol class
API the training loop uses (``get_symbol``, ``init_weight``, ``build_train_loader``,
``train_metrics``, ``names``, ``bbox_layers``, ``infer_shape``) over the detector's stage
graph, so that :func:`dcn.train.train_net` trains either stage as it trains the whole
network.
"""
from .names import RCNN_ONLY, RPN_ONLY

__all__ = ['RPNStage', 'RCNNStage', 'stage_view', 'STAGES']


class _Stage(object):
    names = None

    def __init__(self, model):
        self.model = model
        self.sym = None
        self.arg_shape_dict = self.out_shape_dict = self.aux_shape_dict = None

    def __getattr__(self, name):  # anything else: the detector's (e.g. anchor_levels)
        if name == 'model':
            raise AttributeError(name)
        return getattr(self.model, name)

    def _build(self, cfg, is_train):
        raise NotImplementedError

    def get_symbol(self, cfg, is_train=False):
        saved = self.model.sym
        try:
            self.sym = self._build(cfg, is_train)
        finally:
            self.model.sym = saved
        return self.sym

    def infer_shape(self, data_shape_dict):
        arg_shapes, out_shapes, aux_shapes = self.sym.infer_shape(**data_shape_dict)
        self.arg_shape_dict = dict(zip(self.sym.list_arguments(), arg_shapes))
        self.out_shape_dict = dict(zip(self.sym.list_outputs(), out_shapes))
        self.aux_shape_dict = dict(zip(self.sym.list_auxiliary_states(), aux_shapes))
        return self.arg_shape_dict, self.out_shape_dict, self.aux_shape_dict

    def train_metrics(self, cfg):
        """The detection metrics of this stage's outputs."""
        from dcn.metric import get_train_metrics
        return get_train_metrics(cfg, self.names)

    def init_weight(self, cfg, arg_params, aux_params):
        """The detector's initialisation rules for the missing parameters, restricted (in
        place) to the parameters of this stage's graph (built last by get_symbol)."""
        self.model.init_weight(cfg, arg_params, aux_params)
        if self.sym is not None:
            args = set(self.sym.list_arguments())
            auxs = set(self.sym.list_auxiliary_states())
            for name in [n for n in arg_params if n not in args]:
                del arg_params[name]
            for name in [n for n in aux_params if n not in auxs]:
                del aux_params[name]
        return arg_params, aux_params


class RPNStage(_Stage):
    """The RPN alone (backbone to the RPN's feature, RPN layers)."""

    names = RPN_ONLY
    bbox_layers = ()

    def _build(self, cfg, is_train):
        return self.model.get_symbol_rpn(cfg, is_train)

    def build_train_loader(self, sym, roidb, cfg, batch_size, ctx, seed):
        return self.model.anchor_loader(sym, roidb, cfg, batch_size, ctx, seed,
                                        data_names=RPN_ONLY.train_data)


class RCNNStage(_Stage):
    """The RoI head on given proposals (backbone, RoI head)."""

    names = RCNN_ONLY

    @property
    def bbox_layers(self):
        return self.model.bbox_layers

    def _build(self, cfg, is_train):
        return self.model.get_symbol_rcnn(cfg, is_train)

    def build_train_loader(self, sym, roidb, cfg, batch_size, ctx, seed):
        from dcn.loader import ROILoader
        return ROILoader(roidb, cfg, batch_size=batch_size, shuffle=cfg.TRAIN.SHUFFLE, ctx=ctx,
                         aspect_grouping=cfg.TRAIN.ASPECT_GROUPING, seed=seed)


STAGES = {'rpn': RPNStage, 'rcnn': RCNNStage}


def stage_view(model, stage):
    """The view of ``model`` for ``stage`` ('rpn' or 'rcnn'; None or 'end2end': ``model``)."""
    if stage in (None, 'end2end'):
        return model
    if stage not in STAGES:
        raise ValueError('unknown training stage %r (expected rpn, rcnn or end2end)' % (stage,))
    return STAGES[stage](model)

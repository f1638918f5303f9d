"""The base of every model (meta-architecture) class: what the detectors and the
segmentation networks share.

:class:`Model` holds the symbol class API's common part (see docs/DESIGN.md):
``build_backbone`` (the registered backbone ``backbone_name``), ``param_shapes`` /
``infer_shape`` (shapes of the learned parameters and of the last built symbol),
``get_fixed_params`` (the original's FIXED_PARAMS rule) and ``init_weight`` (the
initialisation rules of the missing parameters: the head layers' table, zero offsets, and
from scratch MSRA convolutions, BN gamma 1 / beta 0, moving mean 0 / var 1). A subclass
provides ``get_symbol(cfg, is_train)``, its name table ``names``, its head-initialisation
tables and its task's training pieces (``load_train_db``, ``build_train_loader``,
``train_metrics``, ``max_train_shapes``), which :func:`dcn.train.train_net` calls.
"""
import logging

import mxnet as mx
import numpy as np

from dcn.symbols.resnet import RESNET_V1_101

from .registry import BACKBONES

__all__ = ['Model', 'layer_of']

logger = logging.getLogger(__name__)

_SUFFIXES = ('_weight', '_bias', '_gamma', '_beta', '_moving_mean', '_moving_var')


def layer_of(name):
    """(layer, kind) of a parameter name: ``'fc6_weight'`` -> ``('fc6', 'weight')``."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)], suffix[1:]
    return name, ''


def _he_normal(rng, shape):
    """MSRA / He: normal(0, sqrt(2 / fan_in)), fan_in = in_channels * kh * kw."""
    std = np.sqrt(2.0 / float(np.prod(shape[1:])))
    return rng.normal(0.0, std, size=shape).astype(np.float32)


class Model(object):
    """Common part of the model classes (:class:`~dcn.modeling.meta_arch.TwoStageDetector`,
    :class:`~dcn.symbols.deeplab.DeepLab`).

    Class attributes: ``names`` (the task's :class:`~dcn.modeling.names.NameTable`),
    ``backbone_name`` / ``backbone`` / ``deformable`` (the registered backbone, its spec and
    whether res5 is deformable); the head layers' initialisation: ``head_std`` (layer ->
    normal std), ``zero_layers`` (layers starting at zero; so does every ``*_offset`` layer
    and every head bias), ``head_init`` (layer -> function of the shape giving its fixed
    initial value), ``hidden_head_layers`` (hidden ReLU layers that get He initialisation
    instead of ``head_std`` when training from scratch); ``bbox_layers`` (box-regression
    layers stored un-normalised in the checkpoints; none by default).
    """

    names = None
    backbone_name = 'resnet_v1'
    backbone = RESNET_V1_101
    deformable = False
    head_std = {}
    zero_layers = ()
    head_init = {}
    #: BatchNorm layers of the head (part of no pretrained model): gamma 1, beta 0, moving
    #: mean 0, variance 1, with or without a pretrained backbone
    head_norm_layers = ()
    hidden_head_layers = ()
    bbox_layers = ()

    def __init__(self):
        self.sym = None
        self.arg_shape_dict = None
        self.out_shape_dict = None
        self.aux_shape_dict = None

    # ------------------------------------------------------------------ parts
    def backbone_options(self):
        """Keyword arguments of the registered backbone builder."""
        return {'spec': self.backbone, 'deformable': self.deformable}

    def build_backbone(self, data, cfg, is_train, ops):
        """(features, output spec) of the registered backbone ``backbone_name``."""
        return BACKBONES.get(self.backbone_name)(data, cfg, is_train, ops,
                                                 **self.backbone_options())

    def get_symbol(self, cfg, is_train=False):
        """The training or test graph (inputs and outputs named by ``names``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ training pieces
    # what dcn.train.train_net asks the model for; the loop itself is the engine's
    def load_train_db(self, cfg, image_set):
        """The training records of ``image_set`` (e.g. a roidb or a segdb)."""
        raise NotImplementedError

    def build_train_loader(self, sym, records, cfg, batch_size, ctx, seed):
        """The task's training data iterator (``provide_data`` / ``provide_label`` named by
        ``names``, ``iters_per_epoch``, ``set_epoch(seed, epoch)``, ``close()``)."""
        raise NotImplementedError

    def train_metrics(self, cfg):
        """The ``mx.metric.EvalMetric`` of the training outputs."""
        raise NotImplementedError

    def max_train_shapes(self, cfg, loader, batch_size):
        """(data shapes, label shapes) of the largest training batch (the module is bound
        to them once)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shapes
    @property
    def input_names(self):
        """Arguments of the graphs that are inputs, not parameters."""
        n = self.names
        return tuple(n.test_data) + tuple(n.train_data) + tuple(n.train_labels)

    def param_symbol_cfg(self, cfg):
        """The configuration of the graph that holds every learned parameter (the test
        graph of ``cfg`` here)."""
        return cfg

    def param_input_shapes(self, cfg, data_shape):
        """{input: shape} given to infer_shape on the test graph; ``data_shape`` may be None
        (a 224 x 224 image)."""
        return {'data': tuple(data_shape or (1, 3, 224, 224))}

    def param_shapes(self, cfg, data_shape=None):
        """(arg shape dict, aux shape dict) of the learned parameters, from infer_shape on
        the test symbol (parameter shapes do not depend on the input size). Leaves the
        symbol built last by get_symbol (``self.sym``) untouched."""
        cfg = self.param_symbol_cfg(cfg)
        saved = self.sym
        try:
            sym = self.get_symbol(cfg, is_train=False)
        finally:
            self.sym = saved
        arg_shapes, _, aux_shapes = sym.infer_shape(**self.param_input_shapes(cfg, data_shape))
        if arg_shapes is None:
            raise RuntimeError('%s: could not infer parameter shapes' % type(self).__name__)
        args = dict(zip(sym.list_arguments(), arg_shapes))
        for n in self.input_names:
            args.pop(n, None)
        return args, dict(zip(sym.list_auxiliary_states(), aux_shapes))

    def infer_shape(self, data_shape_dict):
        """Infer shapes of the last built symbol; fills arg/out/aux shape dicts."""
        if self.sym is None:
            raise RuntimeError('call get_symbol before infer_shape')
        arg_shapes, out_shapes, aux_shapes = self.sym.infer_shape(**data_shape_dict)
        if arg_shapes is None:
            raise ValueError('%s: cannot infer shapes from %s' % (type(self).__name__,
                                                                  data_shape_dict))
        self.arg_shape_dict = dict(zip(self.sym.list_arguments(), arg_shapes))
        self.out_shape_dict = dict(zip(self.sym.list_outputs(), out_shapes))
        self.aux_shape_dict = dict(zip(self.sym.list_auxiliary_states(), aux_shapes))
        return self.arg_shape_dict, self.out_shape_dict, self.aux_shape_dict

    # ------------------------------------------------------------------ parameters
    def get_fixed_params(self, cfg):
        """Learned argument names containing any of ``network.FIXED_PARAMS``."""
        prefixes = list(cfg.network.FIXED_PARAMS)
        args, _ = self.param_shapes(cfg)
        return [n for n in sorted(args) if any(p in n for p in prefixes)]

    def _is_head_layer(self, layer):
        return (layer in self.head_std or layer in self.zero_layers or layer in self.head_init
                or layer in self.head_norm_layers or layer.endswith('_offset'))

    def _head_value(self, layer, kind, shape, pretrained, rng):
        """Initial value of a head parameter (NumPy float32 or NDArray)."""
        if layer in self.head_init:
            return self.head_init[layer](shape)
        if layer in self.head_norm_layers:
            return (np.ones if kind == 'gamma' else np.zeros)(shape, np.float32)
        if layer.endswith('_offset') or layer in self.zero_layers or kind == 'bias':
            return np.zeros(shape, np.float32)
        if not pretrained and layer in self.hidden_head_layers:
            return _he_normal(rng, shape)
        return rng.normal(0.0, self.head_std[layer], size=shape).astype(np.float32)

    def init_weight(self, cfg, arg_params, aux_params, seed=None):
        """Initialise, in place, every parameter missing from ``arg_params``/``aux_params``.

        Head layers by the class's tables (``head_std``, ``zero_layers``, ``head_init``;
        offsets and biases zero; from scratch, i.e. ``network.pretrained`` empty, the
        ``hidden_head_layers`` get He initialisation). Backbone parameters are initialised
        (MSRA convolutions, BN gamma 1 / beta 0, moving mean 0 / var 1) only from scratch;
        with a pretrained model a missing backbone parameter is a KeyError. Parameters
        already present must have the inferred shape. The draws come from one
        ``RandomState(seed or TRAIN.seed)`` in the sorted order of the names. Returns
        (arg_params, aux_params).
        """
        if arg_params is None or aux_params is None:
            raise ValueError('arg_params and aux_params must be dicts (possibly empty)')
        arg_shapes, aux_shapes = self.param_shapes(cfg)
        pretrained = str(cfg.network.get('pretrained', '') or '')
        rng = np.random.RandomState(seed if seed is not None else cfg.TRAIN.get('seed', 0))
        missing, created = [], []
        for name, shape in _missing('arg_params', arg_params, arg_shapes):
            layer, kind = layer_of(name)
            if self._is_head_layer(layer):
                value = self._head_value(layer, kind, shape, pretrained, rng)
            elif pretrained:
                missing.append(name)
                continue
            elif kind == 'gamma':
                value = np.ones(shape, np.float32)
            elif kind in ('beta', 'bias'):
                value = np.zeros(shape, np.float32)
            elif kind == 'weight':
                value = _he_normal(rng, shape)
            else:
                raise ValueError('no initialisation rule for parameter %r' % name)
            arg_params[name] = value if isinstance(value, mx.nd.NDArray) else mx.nd.array(value)
            created.append(name)
        for name, shape in _missing('aux_params', aux_params, aux_shapes):
            layer, kind = layer_of(name)
            if pretrained and layer not in self.head_norm_layers:
                missing.append(name)
                continue
            if kind == 'moving_mean':
                aux_params[name] = mx.nd.zeros(shape)
            elif kind == 'moving_var':
                aux_params[name] = mx.nd.ones(shape)
            else:
                raise ValueError('no initialisation rule for auxiliary state %r' % name)
            created.append(name)
        if missing:
            raise KeyError('pretrained model %r lacks %d backbone parameter(s) of %s, e.g. %s'
                           % (pretrained, len(missing), type(self).__name__,
                              ', '.join(missing[:5])))
        if created:
            logger.info('%s: initialised %d parameters (%s%s)', type(self).__name__,
                        len(created), ', '.join(created[:8]), ', ...' if len(created) > 8 else '')
        return arg_params, aux_params


def _missing(what, params, shapes):
    """(name, shape) of the entries of ``shapes`` absent from ``params``, in sorted order;
    a present entry must have its shape (a ValueError naming it otherwise)."""
    for name, shape in sorted(shapes.items()):
        shape = tuple(shape)
        if name not in params:
            yield name, shape
            continue
        have = tuple(params[name].shape)
        if have != shape:
            raise ValueError('%s[%r] has shape %s, the network expects %s'
                             % (what, name, have, shape))

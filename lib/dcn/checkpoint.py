"""Reading and writing parameter files (``PREFIX-%04d.params``, ``PREFIX-symbol.json``).

Files are the ones ``mx.model.save_checkpoint`` writes (an ``mx.nd.save`` dict
with ``arg:NAME`` / ``aux:NAME`` keys), so the released models load unchanged.
Every write goes to a temporary file in the destination directory, is flushed
and fsync'ed, then renamed over the destination: an interrupted write never
leaves a truncated file and never destroys the previous version.

Box-regression layers are stored un-normalised (``BBOX_STDS`` / ``BBOX_MEANS``
folded into the weights, as in the released models); during training they are
kept normalised in memory.  :func:`unnormalize_bbox_params` and
:func:`normalize_bbox_params` convert between the two.  Layouts:

* ``bbox_pred`` (Faster R-CNN, fully connected): output channel ``c`` is
  coordinate ``c % 4`` of regression class ``c // 4``.
* ``rfcn_bbox`` (R-FCN, 1x1 convolution feeding position-sensitive pooling with
  ``group_size`` g = 7): output channel ``c = (k * 4 + j) * g * g + bin``, i.e.
  the pooling's output dimension ``k * 4 + j`` (class ``k``, coordinate ``j``)
  is the slowest index, followed by the g x g spatial bins.
"""
import json
import os
import pickle

import mxnet as mx
import numpy as np

from dcn.fileio import atomic_write

__all__ = ['param_path', 'symbol_path', 'atomic_write', 'save_params', 'save_checkpoint',
           'load_param', 'load_checkpoint', 'check_param_shapes', 'list_epochs', 'last_epoch',
           'bbox_param_scales', 'unnormalize_bbox_params', 'normalize_bbox_params',
           'BBOX_LAYERS', 'states_path', 'save_training_state', 'load_training_state',
           'split_test_copies', 'symbol_argument_order', 'read_mxnet_optimizer_states',
           'TrainingStateFormatError', 'combine_model']

#: box-regression layers whose parameters are stored un-normalised, with the number of
#: channels that share one (class, coordinate) pair: the union of the ``bbox_layers`` the
#: RoI heads declare (dcn.modeling.roi_heads), used when no network is at hand
BBOX_LAYERS = (('bbox_pred', 1), ('rfcn_bbox', 49))


def param_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, int(epoch))


def states_path(prefix, epoch):
    return '%s-%04d.states' % (prefix, int(epoch))


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def save_params(path, arg_params, aux_params):
    """Atomically write ``arg:``/``aux:`` parameters to ``path``."""
    save_dict = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    save_dict.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in (aux_params or {}).items()})
    return atomic_write(path, lambda tmp: mx.nd.save(tmp, save_dict))


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params):
    """Write ``PREFIX-symbol.json`` (when ``symbol`` is given) and ``PREFIX-%04d.params``."""
    if symbol is not None:
        atomic_write(symbol_path(prefix), lambda tmp: symbol.save(tmp))
    return save_params(param_path(prefix, epoch), arg_params, aux_params)


def load_param(prefix, epoch, convert=False, ctx=None, process=False):
    """Load ``PREFIX-%04d.params`` -> (arg_params, aux_params).

    :param convert: copy the arrays to ``ctx`` (default CPU)
    :param process: rename ``NAME_test`` parameters (older checkpoints) to ``NAME``
    """
    path = param_path(prefix, epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError('parameter file not found: %s (prefix %r, epoch %d)'
                                % (path, prefix, int(epoch)))
    try:
        save_dict = mx.nd.load(path)
    except mx.base.MXNetError as exc:
        raise ValueError('cannot read parameter file %s (truncated or not an MXNet .params '
                         'file): %s' % (path, _last_line(exc))) from None
    if not isinstance(save_dict, dict):
        raise ValueError('parameter file %s holds a list of arrays, not named parameters' % path)
    arg_params, aux_params = {}, {}
    for key, value in save_dict.items():
        kind, sep, name = key.partition(':')
        if not sep or kind not in ('arg', 'aux'):
            raise ValueError('parameter file %s: key %r is neither arg:NAME nor aux:NAME'
                             % (path, key))
        if convert:
            value = value.as_in_context(ctx or mx.cpu())
        (arg_params if kind == 'arg' else aux_params)[name] = value
    if process:
        for name in [k for k in arg_params if k.endswith('_test')]:
            arg_params[name[:-len('_test')]] = arg_params.pop(name)
    return arg_params, aux_params


def combine_model(prefix1, epoch1, prefix2, epoch2, prefix_out, epoch_out):
    """Merge two checkpoints into ``prefix_out``-``epoch_out``.params, the parameters of the
    second winning where both hold one (the original's ``combine_model``: the RPN's
    checkpoint first, the detector's second). Returns (arg_params, aux_params)."""
    args1, auxs1 = load_param(prefix1, epoch1)
    args2, auxs2 = load_param(prefix2, epoch2)
    args, auxs = dict(args1), dict(auxs1)
    args.update(args2)
    auxs.update(auxs2)
    save_params(param_path(prefix_out, epoch_out), args, auxs)
    return args, auxs


def _last_line(exc):
    """The informative line of an MXNet error (its message ends the traceback it carries)."""
    lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
    return lines[-1] if lines else type(exc).__name__


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) as ``mx.model.load_checkpoint``, with clear errors."""
    path = symbol_path(prefix)
    if not os.path.isfile(path):
        raise FileNotFoundError('symbol file not found: %s' % path)
    try:
        symbol = mx.sym.load(path)
    except (mx.base.MXNetError, ValueError) as exc:  # ValueError: undecodable error text
        raise ValueError('cannot read symbol file %s (truncated, not a symbol JSON file, or '
                         'an operator of it is not registered): %s'
                         % (path, _last_line(exc))) from None
    arg_params, aux_params = load_param(prefix, epoch)
    return symbol, arg_params, aux_params


def check_param_shapes(sym, arg_params, aux_params, data_shapes, source=None,
                       allow_extra=True):
    """Check ``arg_params``/``aux_params`` against the shapes ``sym`` infers from ``data_shapes``.

    :param data_shapes: dict or list of (name, shape) for the symbol's data/label inputs
    :param source: file name used in error messages
    Raises ``ValueError`` naming the first missing or mis-shaped parameter.
    """
    shapes = dict(data_shapes)
    arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
    if arg_shapes is None:
        raise ValueError('cannot infer parameter shapes from data shapes %r' % (shapes,))
    where = ' in %s' % source if source else ''
    for kind, names, inferred, params in (
            ('arg', sym.list_arguments(), arg_shapes, arg_params),
            ('aux', sym.list_auxiliary_states(), aux_shapes, aux_params)):
        for name, shape in zip(names, inferred):
            if name in shapes:
                continue
            if name not in params:
                raise ValueError('parameter %s (%s, expected shape %s) is missing%s'
                                 % (name, kind, tuple(shape), where))
            got = tuple(params[name].shape)
            if got != tuple(shape):
                raise ValueError('parameter %s (%s) has shape %s%s but the network expects %s'
                                 % (name, kind, got, where, tuple(shape)))
    if not allow_extra:
        known = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
        extra = sorted((set(arg_params) | set(aux_params)) - known)
        if extra:
            raise ValueError('parameter %s%s is not used by the network' % (extra[0], where))


_STATE_FORMAT = 'dcn-training-state-1'


class TrainingStateFormatError(ValueError):
    """A ``.states`` file that is not this project's training state."""


def save_training_state(prefix, epoch, optimizer_states, exact_params=None):
    """Atomically write ``PREFIX-%04d.states``: what resuming needs besides the parameters.

    :param optimizer_states: bytes of the optimizer's per-parameter state (momentum), as
        ``mx.optimizer.Updater.get_states(False)`` returns them (None if unavailable)
    :param exact_params: dict name -> array of in-memory parameters the ``.params`` file
        does not hold bit for bit (the normalised box-regression layers)
    """
    state = {'format': _STATE_FORMAT, 'epoch': int(epoch), 'optimizer': optimizer_states,
             'params': {k: (v.asnumpy() if hasattr(v, 'asnumpy') else np.asarray(v))
                        for k, v in (exact_params or {}).items()}}

    def _write(tmp):
        with open(tmp, 'wb') as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    return atomic_write(states_path(prefix, epoch), _write)


def load_training_state(prefix, epoch):
    """(optimizer state bytes or None, dict of exact parameters as numpy) from
    ``PREFIX-%04d.states``; ``FileNotFoundError`` if absent, ``ValueError`` if unreadable."""
    path = states_path(prefix, epoch)
    if not os.path.isfile(path):
        raise FileNotFoundError('training state file not found: %s' % path)
    try:
        with open(path, 'rb') as f:
            state = pickle.load(f)
    except Exception as exc:  # truncated / foreign file
        raise ValueError('cannot read training state file %s: %s' % (path, exc))
    if not isinstance(state, dict) or state.get('format') != _STATE_FORMAT:
        raise TrainingStateFormatError('%s is not a training state file written by this '
                                       'project' % path)
    if int(state.get('epoch', -1)) != int(epoch):
        raise ValueError('training state file %s is for epoch %r, not %d'
                         % (path, state.get('epoch'), int(epoch)))
    return state.get('optimizer'), dict(state.get('params') or {})


def list_epochs(prefix):
    """Sorted epochs for which ``PREFIX-%04d.params`` exists."""
    directory = os.path.dirname(os.path.abspath(prefix))
    base = os.path.basename(prefix) + '-'
    epochs = []
    if os.path.isdir(directory):
        for fname in os.listdir(directory):
            if fname.startswith(base) and fname.endswith('.params'):
                num = fname[len(base):-len('.params')]
                if num.isdigit():
                    epochs.append(int(num))
    return sorted(epochs)


def last_epoch(prefix):
    """Largest saved epoch for ``prefix`` or None."""
    epochs = list_epochs(prefix)
    return epochs[-1] if epochs else None


def bbox_param_scales(num_channels, means, stds, channels_per_value=1):
    """Per-output-channel (stds, means) for a box-regression layer of ``num_channels``.

    ``means``/``stds`` have 4 values (or 4 * num_reg_classes); each value covers
    ``channels_per_value`` consecutive channels (49 for ``rfcn_bbox``).
    """
    means = np.asarray(means, dtype=np.float32).ravel()
    stds = np.asarray(stds, dtype=np.float32).ravel()
    if num_channels % channels_per_value != 0:
        raise ValueError('box regression layer has %d channels, not a multiple of %d'
                         % (num_channels, channels_per_value))
    values = num_channels // channels_per_value
    if means.size != stds.size or values % means.size != 0:
        raise ValueError('BBOX_MEANS/BBOX_STDS of %d values do not fit a layer of %d outputs'
                         % (means.size, values))
    reps = values // means.size
    means = np.repeat(np.tile(means, reps), channels_per_value)
    stds = np.repeat(np.tile(stds, reps), channels_per_value)
    return stds, means


def _convert_bbox(arg_params, means, stds, inverse, layers=None):
    out = dict(arg_params)
    for layer, per_value in (BBOX_LAYERS if layers is None else layers):
        wname, bname = layer + '_weight', layer + '_bias'
        if wname not in arg_params or bname not in arg_params:
            continue
        weight, bias = arg_params[wname], arg_params[bname]
        s, m = bbox_param_scales(bias.shape[0], means, stds, per_value)
        ctx = weight.context
        s_nd = mx.nd.array(s, ctx=ctx)
        m_nd = mx.nd.array(m, ctx=ctx)
        w_shape = (-1,) + (1,) * (len(weight.shape) - 1)
        if not inverse:
            out[wname] = mx.nd.broadcast_mul(weight, s_nd.reshape(w_shape))
            out[bname] = bias * s_nd + m_nd
        else:
            out[wname] = mx.nd.broadcast_div(weight, s_nd.reshape(w_shape))
            out[bname] = (bias - m_nd) / s_nd
    return out


def unnormalize_bbox_params(arg_params, means, stds, layers=None):
    """Copy of ``arg_params`` with weight*stds and bias*stds+means for the box regression
    ``layers`` ((layer name, channels per value) pairs: the network's ``bbox_layers``, which
    its RoI head declares; default :data:`BBOX_LAYERS`, the layers of every head here)."""
    return _convert_bbox(arg_params, means, stds, inverse=False, layers=layers)


def normalize_bbox_params(arg_params, means, stds, layers=None):
    """Inverse of :func:`unnormalize_bbox_params` (to resume training from a saved file)."""
    return _convert_bbox(arg_params, means, stds, inverse=True, layers=layers)


def split_test_copies(arg_params):
    """(``arg_params`` without the ``NAME_test`` entries, the names removed).

    The original's training saves, beside each box-regression layer as trained (normalised
    targets), an un-normalised copy ``NAME_test`` for testing: such a file holds the exact
    in-memory training weights under ``NAME``.
    """
    copies = sorted(n for n in arg_params
                    if n.endswith('_test') and n[:-len('_test')] in arg_params)
    return {k: v for k, v in arg_params.items() if k not in copies}, copies


def symbol_argument_order(path):
    """Variable names of the symbol JSON ``path`` in the order of ``list_arguments`` (and
    auxiliary states), read from the file without building the operators: the graph's
    nodes are stored in depth-first order, the order MXNet lists its inputs in."""
    try:
        with open(path) as f:
            nodes = json.load(f)['nodes']
        return [n['name'] for n in nodes if n.get('op') == 'null']
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError('cannot read the symbol file %s: %s' % (path, exc)) from None


def _state_shape(state):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        shapes = [_state_shape(s) for s in state]
        shapes = [sh for sh in shapes if sh is not None]
        return shapes[-1] if shapes else None
    return tuple(state.shape) if hasattr(state, 'shape') else None


def read_mxnet_optimizer_states(path, param_names=None, param_shapes=None):
    """{parameter name: state} from MXNet optimizer states (``Updater.get_states``, what the
    original's ``Module.save_optimizer_states`` writes as ``PREFIX-%04d.states``).

    The states are keyed by parameter name (kvstore updates of recent MXNet) or by index:
    ``i`` (one device, or updates on the kvstore) or ``i * num_devices + k`` (local updates
    on several devices), ``i`` indexing ``param_names``, the training module's parameters
    (the symbol's arguments less its data and labels). The device count is the one for
    which every state has the shape of its parameter (``param_shapes``: name -> shape); the
    state of device 0 is returned. Raises ``ValueError`` saying why when the file cannot be
    read or mapped.
    """
    try:
        with open(path, 'rb') as f:
            obj = pickle.loads(f.read(), encoding='latin1')
    except Exception as exc:  # truncated / foreign file
        raise ValueError('cannot read %s as MXNet optimizer states: %s' % (path, exc)) from None
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], dict):
        obj = obj[0]  # (states, optimizer): get_states(dump_optimizer=True)
    if not isinstance(obj, dict):
        raise ValueError('%s holds a %s, not MXNet optimizer states' % (path, type(obj).__name__))
    shapes = {k: tuple(v) for k, v in (param_shapes or {}).items()}

    def check(by_name):
        for name, state in by_name.items():
            if name not in shapes:
                return 'parameter %s is not in the network' % name
            got = _state_shape(state)
            if got is not None and got != shapes[name]:
                return 'the state of %s has shape %s, the parameter %s' % (name, got,
                                                                           shapes[name])
        return None

    if all(isinstance(k, str) for k in obj):
        problem = check(obj) if shapes else None
        if problem:
            raise ValueError('%s: %s' % (path, problem))
        return dict(obj)
    if not all(isinstance(k, int) for k in obj):
        raise ValueError('%s: optimizer state keys are neither names nor indices' % path)
    if not param_names:
        raise ValueError('%s: optimizer states are indexed by parameter position, and the '
                         'parameter order is unknown' % path)
    problem = 'no state'
    for num_devices in range(1, 65):
        if obj and max(obj) // num_devices >= len(param_names):
            continue
        by_name = {param_names[k // num_devices]: v for k, v in obj.items()
                   if k % num_devices == 0}
        if len(by_name) * num_devices != len(obj):
            problem = 'the indices do not form groups of %d devices' % num_devices
            continue
        problem = check(by_name)
        if problem is None:
            return by_name
    raise ValueError('%s: the optimizer states do not match the parameters in their order '
                     '(%s)' % (path, problem))

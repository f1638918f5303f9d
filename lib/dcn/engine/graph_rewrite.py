"""Bind-time graph rewrites: one config gives one graph on every host; what depends on
the host is decided when the graph is bound.

:func:`fuse_offset_pooling` (CPU contexts, our operators): each ``no_trans``
``DeformablePSROIPooling`` of a 1x1 ``Convolution`` used by nothing else (the part-offset
branches ``rfcn_cls_offset_t`` -> ``rfcn_cls_offset`` of Deformable R-FCN) becomes one
``Conv1x1DeformablePSROIPooling`` node of the same name, taking the same parameters
(``<conv>_weight`` / ``_bias``), that never computes the convolution's full output map.
It applies where the pooling has at least :data:`FUSE_MIN_OUTPUT_DIM` outputs per bin:
below that, pooling the input vectors costs more than the convolution saves (the 2-output
box offsets of R-FCN stay as they are; docs/PERFORMANCE.md has the measurements).
"""
import json

import mxnet as mx

__all__ = ['fuse_offset_pooling', 'FUSE_MIN_OUTPUT_DIM', 'uses_our_ops']

FUSE_MIN_OUTPUT_DIM = 16
_FUSED_ATTRS = ('spatial_scale', 'output_dim', 'group_size', 'pooled_size', 'part_size',
                'sample_per_part')


def _op_prefix():
    from dcn.ops import OP_PREFIX
    return OP_PREFIX


def uses_our_ops(sym):
    """Whether ``sym`` has nodes of the compiled operator library (``dcn.ops``)."""
    prefix = _op_prefix()
    return any(n['op'].startswith(prefix) for n in json.loads(sym.tojson())['nodes'])


def _true(v):
    return str(v).strip().lower() in ('1', 'true')


def _is_plain_1x1(node):
    a = node.get('attrs', {})
    return (node['op'] == 'Convolution' and a.get('kernel', '').replace(' ', '') in ('(1,1)', '[1,1]')
            and a.get('stride', '(1,1)').replace(' ', '') in ('(1,1)', '[1,1]')
            and a.get('pad', '(0,0)').replace(' ', '') in ('(0,0)', '[0,0]')
            and a.get('dilate', '(1,1)').replace(' ', '') in ('(1,1)', '[1,1]')
            and int(a.get('num_group', '1')) == 1 and not _true(a.get('no_bias', 'False'))
            and len(node['inputs']) == 3)


def _fused_node(name, attrs):
    """The JSON node of a Conv1x1DeformablePSROIPooling named ``name`` (attributes as the
    library's symbol function writes them)."""
    from dcn.ops import sym as ops_sym
    params = {k: attrs[k] for k in _FUSED_ATTRS if k in attrs}
    params = {k: (float(v) if k == 'spatial_scale' else int(float(v))) for k, v in params.items()}
    s = ops_sym.Conv1x1DeformablePSROIPooling(
        data=mx.sym.var('d'), rois=mx.sym.var('r'), weight=mx.sym.var('w'),
        bias=mx.sym.var('b'), name=name, **params)
    nodes = json.loads(s.tojson())['nodes']
    node = [n for n in nodes if n['op'] != 'null'][-1]
    order = [nodes[i[0]]['name'] for i in node['inputs']]
    return node, order


def fuse_offset_pooling(sym, min_output_dim=FUSE_MIN_OUTPUT_DIM):
    """(rewritten symbol, names of the fused nodes); ``sym`` itself when nothing fits."""
    graph = json.loads(sym.tojson())
    nodes = graph['nodes']
    prefix = _op_prefix()
    consumers = {}
    for i, n in enumerate(nodes):
        for src in n['inputs']:
            consumers.setdefault(src[0], []).append(i)
    for h in graph['heads']:
        consumers.setdefault(h[0], []).append(-1)
    drop, replace, fused = set(), {}, []
    for j, ident in enumerate(nodes):
        if ident['op'] != '_copy' and ident['op'] != 'identity':
            continue
        if len(ident['inputs']) != 1:
            continue
        i = ident['inputs'][0][0]
        pool = nodes[i]
        a = pool.get('attrs', {})
        if pool['op'] != prefix + 'DeformablePSROIPooling' or pool['name'] != ident['name'] + '_pool':
            continue
        if not _true(a.get('no_trans', 'False')) or int(a.get('output_dim', 0)) < min_output_dim:
            continue
        if consumers.get(i) != [j]:
            continue
        c = pool['inputs'][0][0]
        if not _is_plain_1x1(nodes[c]) or consumers.get(c) != [i]:
            continue
        node, order = _fused_node(ident['name'], a)
        conv_in = nodes[c]['inputs']
        by_role = {'d': conv_in[0], 'w': conv_in[1], 'b': conv_in[2], 'r': pool['inputs'][1]}
        node['inputs'] = [list(by_role[k]) for k in order]
        for role, rank in (('w', 4), ('b', 1)):
            # a variable feeding one of our operators declares its rank (see dcn.ops.sym)
            var = nodes[by_role[role][0]]
            if var['op'] == 'null' and '__shape__' not in var.get('attrs', {}):
                var.setdefault('attrs', {})['__shape__'] = str((-1 if mx.util.is_np_shape()
                                                                 else 0,) * rank)
        replace[j] = node
        drop.update((i, c))
        fused.append(ident['name'])
    if not fused:
        return sym, []
    keep = [k for k in range(len(nodes)) if k not in drop]
    new_id = {old: new for new, old in enumerate(keep)}
    out_nodes = []
    for old in keep:
        n = replace.get(old, nodes[old])
        n = dict(n)
        n['inputs'] = [[new_id[s[0]]] + list(s[1:]) for s in n['inputs']]
        out_nodes.append(n)
    graph['nodes'] = out_nodes
    graph['arg_nodes'] = [k for k, n in enumerate(out_nodes) if n['op'] == 'null']
    graph['heads'] = [[new_id[h[0]]] + list(h[1:]) for h in graph['heads']]
    graph.pop('node_row_ptr', None)
    return mx.sym.load_json(json.dumps(graph)), fused

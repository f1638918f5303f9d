#!/usr/bin/env python
"""End-to-end CPU timings of the detection networks (random weights).

(a) ResNet-101 test networks at 600x1000, 300 proposals: Deformable R-FCN and plain R-FCN
    (experiments/rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn[_dcn]_end2end_ohem.yaml), time per
    image measured interleaved in one process (best of N) and their ratio (goal <= 1.10);
    the same with network.BUILTIN_OPS true (MXNet's contrib operators) for comparison.
(b) Shapes configs (shapes_rfcn_dcn, shapes_rfcn, faster_rcnn shapes_rcnn_dcn): inference
    time per image on a real Shapes test image and training time per iteration
    (forward + backward + SGD update on a real Shapes training batch, after warm-up).
(c) --train101: ResNet-101 Deformable R-FCN training time per iteration (slow).

Each (ISA, thread count) runs in its own subprocess with OMP_NUM_THREADS set (and
DCN_CPU_ISA, see benchmarks/_isa.py).

    PYTHONPATH=lib:. python benchmarks/bench_e2e.py [--threads 2] [--quick] [--repeat 3]
        [--parts a b c] [--isa auto avx512 avx2 generic] [--baseline-isa match|native]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _isa  # noqa: E402
R101 = {
    'R-FCN (deformable)': ('rfcn', 'experiments/rfcn/cfgs/'
                           'resnet_v1_101_coco_trainval_rfcn_dcn_end2end_ohem.yaml'),
    'R-FCN (plain)': ('rfcn', 'experiments/rfcn/cfgs/'
                      'resnet_v1_101_coco_trainval_rfcn_end2end_ohem.yaml'),
}
SHAPES = [
    ('rfcn', 'experiments/rfcn/cfgs/shapes_rfcn_dcn.yaml'),
    ('rfcn', 'experiments/rfcn/cfgs/shapes_rfcn.yaml'),
    ('faster_rcnn', 'experiments/faster_rcnn/cfgs/shapes_rcnn_dcn.yaml'),
]


def _load_cfg(path, builtin=False, proposals=300):
    from dcn.config import load_config
    cfg = load_config(os.path.join(ROOT, path))
    cfg.gpus = ''
    cfg.network.pretrained = ''
    cfg.network.BUILTIN_OPS = bool(builtin)
    if proposals is not None:
        cfg.TEST.RPN_POST_NMS_TOP_N = proposals
    cfg.dataset.root_path = os.path.join(ROOT, str(cfg.dataset.root_path or 'data'))
    if not os.path.isabs(str(cfg.dataset.dataset_path)):
        cfg.dataset.dataset_path = os.path.join(ROOT, str(cfg.dataset.dataset_path))
    return cfg


def _test_module(package, cfg, data_shape):
    import mxnet as mx
    from dcn.train import get_symbol_instance
    inst = get_symbol_instance(package, cfg)
    sym = inst.get_symbol(cfg, is_train=False)
    arg, aux = inst.init_weight(cfg, {}, {}) or ({}, {})
    mod = mx.mod.Module(sym, data_names=['data', 'im_info'], label_names=None,
                        context=[mx.cpu()])
    mod.bind([('data', data_shape), ('im_info', (1, 3))], None, for_training=False)
    mod.init_params(arg_params=arg, aux_params=aux, allow_missing=False)
    return mod


def _forward_fn(mod, data, im_info):
    import mxnet as mx
    batch = mx.io.DataBatch(data=[mx.nd.array(data), mx.nd.array(im_info)])

    def run():
        mod.forward(batch, is_train=False)
        for o in mod.get_outputs():
            o.wait_to_read()
    return run


def _interleaved(fns, repeat):
    """best-of-repeat seconds per function, measured round-robin (one warm-up each)."""
    for f in fns.values():
        f()
    best = {k: float('inf') for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def part_a(args):
    import numpy as np
    H, W = (304, 512) if args.quick else (600, 1000)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((1, 3, H, W)).astype(np.float32) * 50
    im_info = np.array([[H, W, 1.0]], np.float32)
    fns = {}
    for builtin in (False, True):
        for name, (pkg, path) in R101.items():
            cfg = _load_cfg(path, builtin)
            mod = _test_module(pkg, cfg, (1, 3, H, W))
            fns[(name, builtin)] = _forward_fn(mod, data, im_info)
    best = _interleaved(fns, args.repeat)
    return dict(shape=[H, W], rows=[dict(net=k[0], builtin=k[1], t=v) for k, v in best.items()])


def _shapes_infer(pkg, path):
    import numpy as np
    from dcn.dataset import get_imdb
    from dcn.image import get_image
    cfg = _load_cfg(path, proposals=None)
    imdb = get_imdb(cfg.dataset.dataset, cfg.dataset.test_image_set, cfg.dataset.root_path,
                    cfg.dataset.dataset_path)
    roidb = imdb.gt_roidb()[:1]
    ims, new = get_image(roidb, cfg)
    im = ims[0]
    im_info = np.array([new[0]['im_info']], np.float32)
    mod = _test_module(pkg, cfg, im.shape)
    return _forward_fn(mod, im, im_info), list(im.shape[2:])


def _shapes_train(pkg, path):
    import mxnet as mx
    from dcn.dataset import filter_roidb, load_gt_roidb
    from dcn.loader import AnchorLoader
    from dcn.train import fixed_param_names, get_symbol_instance
    cfg = _load_cfg(path, proposals=None)
    inst = get_symbol_instance(pkg, cfg)
    sym = inst.get_symbol(cfg, is_train=True)
    feat = sym.get_internals()['rpn_cls_score_output']
    _, roidb = load_gt_roidb(cfg, cfg.dataset.image_set, flip=False)
    roidb = filter_roidb(roidb)[:8]
    loader = AnchorLoader(feat, roidb, cfg, batch_size=1, shuffle=False, ctx=[mx.cpu()],
                          feat_stride=cfg.network.RPN_FEAT_STRIDE,
                          anchor_scales=cfg.network.ANCHOR_SCALES,
                          anchor_ratios=cfg.network.ANCHOR_RATIOS,
                          allowed_border=cfg.TRAIN.get('RPN_ALLOWED_BORDER', 0),
                          aspect_grouping=False, seed=0)
    batches = [b for _, b in zip(range(4), loader)]
    loader.close()
    data_names = [d.name for d in loader.provide_data]
    label_names = [d.name for d in loader.provide_label]
    arg, aux = inst.init_weight(cfg, {}, {}) or ({}, {})
    mod = mx.mod.Module(sym, data_names=data_names, label_names=label_names,
                        context=[mx.cpu()],
                        fixed_param_names=fixed_param_names(sym, cfg.network.FIXED_PARAMS,
                                                            data_names + label_names))
    mod.bind(batches[0].provide_data, batches[0].provide_label, for_training=True)
    mod.init_params(arg_params=arg, aux_params=aux, allow_missing=False, force_init=True)
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 1e-4,
                                                          'momentum': 0.9, 'wd': 1e-4})
    state = {'i': 0}

    def run():
        b = batches[state['i'] % len(batches)]
        state['i'] += 1
        mod.forward_backward(b)
        mod.update()
        mx.nd.waitall()
    return run


def part_b(args):
    rows = []
    for pkg, path in SHAPES:
        infer, shape = _shapes_infer(pkg, path)
        train = _shapes_train(pkg, path)
        best = _interleaved({'infer': infer, 'train': train}, max(args.repeat, 3))
        rows.append(dict(cfg=path, shape=shape, infer=best['infer'], train=best['train']))
    return dict(rows=rows)


def part_c(args):
    import mxnet as mx
    import numpy as np
    from dcn.train import fixed_param_names, get_symbol_instance
    pkg, path = R101['R-FCN (deformable)']
    cfg = _load_cfg(path)
    H, W = (304, 512) if args.quick else (600, 1000)
    inst = get_symbol_instance(pkg, cfg)
    sym = inst.get_symbol(cfg, is_train=True)
    fh, fw = (H + 15) // 16, (W + 15) // 16
    A = len(cfg.network.ANCHOR_SCALES) * len(cfg.network.ANCHOR_RATIOS)
    rng = np.random.default_rng(0)
    data = [mx.nd.array(rng.standard_normal((1, 3, H, W)) * 50),
            mx.nd.array([[H, W, 1.0]]),
            mx.nd.array([[[50, 60, 250, 300, 1], [300, 100, 500, 280, 2]]])]
    label = [mx.nd.array(rng.integers(-1, 2, (1, A * fh * fw))),
             mx.nd.zeros((1, 4 * A, fh, fw)), mx.nd.zeros((1, 4 * A, fh, fw))]
    dn = ['data', 'im_info', 'gt_boxes']
    ln = ['label', 'bbox_target', 'bbox_weight']
    arg, aux = inst.init_weight(cfg, {}, {}) or ({}, {})
    mod = mx.mod.Module(sym, data_names=dn, label_names=ln, context=[mx.cpu()],
                        fixed_param_names=fixed_param_names(sym, cfg.network.FIXED_PARAMS,
                                                            dn + ln))
    mod.bind(list(zip(dn, [d.shape for d in data])), list(zip(ln, [l.shape for l in label])),
             for_training=True)
    mod.init_params(arg_params=arg, aux_params=aux, allow_missing=False, force_init=True)
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 1e-5})
    batch = mx.io.DataBatch(data=data, label=label)

    def run():
        mod.forward_backward(batch)
        mod.update()
        mx.nd.waitall()
    best = _interleaved({'train': run}, 1)
    return dict(shape=[H, W], train=best['train'])


def worker(args):
    sys.path.insert(0, os.path.join(ROOT, 'lib'))
    sys.path.insert(0, ROOT)
    import logging
    logging.disable(logging.WARNING)
    import dcn.layers  # noqa: F401  (registers the CustomOps)
    res = {}
    if 'a' in args.parts:
        res['a'] = part_a(args)
    if 'b' in args.parts:
        res['b'] = part_b(args)
    if 'c' in args.parts:
        res['c'] = part_c(args)
    res['info'] = _isa.worker_description()
    print(json.dumps(res))


def report(nt, res, repeat):
    print('\nOMP_NUM_THREADS=%d  %s' % (nt, _isa.header(res['info'])))
    if 'a' in res:
        a = res['a']
        t = {(r['net'], r['builtin']): r['t'] for r in a['rows']}
        print('\nOMP_NUM_THREADS=%d  (a) ResNet-101 test network, %dx%d, 300 proposals, random '
              'weights, best of %d, interleaved' % (nt, a['shape'][0], a['shape'][1], repeat))
        print('%-22s %14s %14s' % ('network', 'dcn.ops (ms)', 'built-in (ms)'))
        for net in R101:
            print('%-22s %14.1f %14.1f' % (net, t[(net, False)] * 1e3, t[(net, True)] * 1e3))
        for b, lab in ((False, 'dcn.ops'), (True, 'built-in')):
            ratio = t[('R-FCN (deformable)', b)] / t[('R-FCN (plain)', b)]
            print('deformable / plain (%s): %.3f%s' % (lab, ratio, '   goal <= 1.10: %s'
                                                       % ('met' if ratio <= 1.10 else 'NOT met')
                                                       if not b else ''))
    if 'b' in res:
        print('\nOMP_NUM_THREADS=%d  (b) Shapes configs (random init, real images), best of %d'
              % (nt, max(repeat, 3)))
        print('%-50s %10s %14s %16s' % ('config', 'image', 'infer ms/img', 'train ms/iter'))
        for r in res['b']['rows']:
            print('%-50s %10s %14.1f %16.1f' % (r['cfg'], 'x'.join(map(str, r['shape'])),
                                               r['infer'] * 1e3, r['train'] * 1e3))
    if 'c' in res:
        c = res['c']
        print('\nOMP_NUM_THREADS=%d  (c) ResNet-101 Deformable R-FCN training, %dx%d: %.0f ms/iter'
              ' (one timed iteration after one warm-up)' % (nt, c['shape'][0], c['shape'][1],
                                                            c['train'] * 1e3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, nargs='+', default=[2])
    ap.add_argument('--repeat', type=int, default=3, help='best of N (default 3)')
    ap.add_argument('--quick', action='store_true', help='ResNet-101 at 304x512, best of 2')
    ap.add_argument('--parts', nargs='+', default=['a', 'b'], choices=['a', 'b', 'c'])
    ap.add_argument('--train101', action='store_true', help='also run part (c)')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    _isa.add_arguments(ap)
    args = ap.parse_args()
    if args.quick:
        args.repeat = min(args.repeat, 2)
    if args.train101 and 'c' not in args.parts:
        args.parts.append('c')
    if args.worker:
        worker(args)
        return
    print('CPU: %s' % _isa.cpu_description())
    for isa in args.isa:
        for nt in args.threads:
            env = _isa.worker_env(dict(os.environ, OMP_NUM_THREADS=str(nt)), isa,
                                  args.baseline_isa)
            env['PYTHONPATH'] = os.pathsep.join([os.path.join(ROOT, 'lib'), ROOT,
                                                 env.get('PYTHONPATH', '')])
            cmd = [sys.executable, os.path.abspath(__file__), '--worker', '--repeat',
                   str(args.repeat), '--parts'] + args.parts + (['--quick'] if args.quick else [])
            out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE,
                                 cwd=ROOT).stdout
            report(nt, json.loads(out.decode().strip().splitlines()[-1]), args.repeat)

if __name__ == '__main__':
    main()

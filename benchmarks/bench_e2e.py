#!/usr/bin/env python
"""End-to-end CPU timings of the networks (random weights).

Inference runs through the shared predictor (``dcn.engine.predictor.Predictor``, the one
the tester and the demos use: the same bind-time graph rewrites, the same inputs and
outputs); a timing is one ``Predictor.predict`` of a prepared batch (the network forward
and its outputs as NumPy arrays, as the tester gets them), per image.

(a) ResNet-101 test networks at 600x1000, 300 proposals: Deformable R-FCN and plain R-FCN
    (experiments/rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn[_dcn]_end2end_ohem.yaml), time per
    image measured interleaved in one process (best of N) and their ratio (goal <= 1.10);
    the same with network.BUILTIN_OPS true (MXNet's contrib operators) for comparison.
(b) Shapes configs (shapes_rfcn_dcn, shapes_rfcn, faster_rcnn shapes_rcnn_dcn, fpn
    shapes_fpn_dcn, shapes_fpn): inference time per image on the first Shapes test image
    (as the tester's loader prepares it) and training time per iteration (forward + backward
    + SGD update on real Shapes training batches from the model's own training loader, after
    warm-up).
(c) --train101: ResNet-101 Deformable R-FCN training time per iteration (slow).
(d) DeepLab test networks (experiments/deeplab/cfgs/deeplab_resnet_v1_101_*_segmentation_
    {dcn,base}.yaml): Deformable DeepLab and DeepLab, PASCAL VOC at its config's scale 360x600
    and Cityscapes at 512x1024 (half its config's 1024x2048), interleaved, and their ratios.
(f) ResNet-101 FPN test networks (experiments/fpn/cfgs/resnet_v1_101_coco_trainval_fpn[_dcn]_
    end2end_ohem.yaml) at the config's single test scale 800x1280 (SCALES; its multi-scale
    testing runs six such scales), the config's 2000 proposals: Deformable FPN and FPN,
    interleaved, and their ratio. MXNet has no built-in FPN RoI pooling: dcn.ops only.

--quick: (a) at 304x512, (f) at 320x512, (d) at 240x400 / 256x512, best of 2.
Each (ISA, thread count) runs in its own subprocess with OMP_NUM_THREADS set (and
DCN_CPU_ISA, see benchmarks/_isa.py).

    PYTHONPATH=lib:. python benchmarks/bench_e2e.py [--threads 2] [--quick] [--repeat 3]
        [--parts a b d f] [--shapes CFG ...] [--isa auto avx512 avx2 generic]
        [--baseline-isa match|native]
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _isa  # noqa: E402
import _timing  # noqa: E402

R101 = {
    'R-FCN (deformable)': 'experiments/rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn_dcn_end2end_ohem.yaml',
    'R-FCN (plain)': 'experiments/rfcn/cfgs/resnet_v1_101_coco_trainval_rfcn_end2end_ohem.yaml',
}
SHAPES = [
    'experiments/rfcn/cfgs/shapes_rfcn_dcn.yaml',
    'experiments/rfcn/cfgs/shapes_rfcn.yaml',
    'experiments/faster_rcnn/cfgs/shapes_rcnn_dcn.yaml',
    'experiments/fpn/cfgs/shapes_fpn_dcn.yaml',
    'experiments/fpn/cfgs/shapes_fpn.yaml',
]
FPN101 = {
    'FPN (deformable)': 'experiments/fpn/cfgs/resnet_v1_101_coco_trainval_fpn_dcn_end2end_ohem.yaml',
    'FPN (plain)': 'experiments/fpn/cfgs/resnet_v1_101_coco_trainval_fpn_end2end_ohem.yaml',
}
#: (data set, size, quick size, {network: config})
DEEPLAB = [
    ('VOC', (360, 600), (240, 400), {
        'DeepLab (deformable)': 'experiments/deeplab/cfgs/'
                                'deeplab_resnet_v1_101_voc12_segmentation_dcn.yaml',
        'DeepLab (plain)': 'experiments/deeplab/cfgs/'
                           'deeplab_resnet_v1_101_voc12_segmentation_base.yaml'}),
    ('Cityscapes', (512, 1024), (256, 512), {
        'DeepLab (deformable)': 'experiments/deeplab/cfgs/'
                                'deeplab_resnet_v1_101_cityscapes_segmentation_dcn.yaml',
        'DeepLab (plain)': 'experiments/deeplab/cfgs/'
                           'deeplab_resnet_v1_101_cityscapes_segmentation_base.yaml'}),
]
PARTS = ('a', 'b', 'c', 'd', 'f')
DEFAULT_PARTS = ['a', 'b', 'd', 'f']


def package_of(path):
    """The family package of an experiment file ``experiments/<family>/cfgs/*.yaml``."""
    parts = os.path.normpath(path).split(os.sep)
    if 'experiments' not in parts or parts.index('experiments') + 1 >= len(parts) - 1:
        raise ValueError('%s: expected experiments/<family>/cfgs/<name>.yaml' % path)
    return parts[parts.index('experiments') + 1]


def load_cfg(path, builtin=False, proposals=None):
    """Experiment file ``path`` (relative to the repository) as the command-line mains load
    it (family package imported first, its own defaults), on the CPU, random weights."""
    from dcn.tools.main import load_family_config
    cfg = load_family_config(package_of(path), os.path.join(ROOT, path))
    cfg.gpus = ''
    cfg.network.pretrained = ''
    cfg.network.BUILTIN_OPS = bool(builtin)
    if proposals is not None:
        cfg.TEST.RPN_POST_NMS_TOP_N = proposals
    cfg.dataset.root_path = os.path.join(ROOT, str(cfg.dataset.root_path or 'data'))
    if not os.path.isabs(str(cfg.dataset.dataset_path)):
        cfg.dataset.dataset_path = os.path.join(ROOT, str(cfg.dataset.dataset_path))
    return cfg


def random_params(package, cfg):
    """(symbol instance, test symbol, arg_params, aux_params): the network's own seeded
    initialisation (``init_weight``, from scratch)."""
    from dcn.train import get_symbol_instance
    inst = get_symbol_instance(package, cfg)
    sym = inst.get_symbol(cfg, is_train=False)
    arg, aux = inst.init_weight(cfg, {}, {}) or ({}, {})
    return inst, sym, arg, aux


class Forward(object):
    """One timed unit: ``predictor.predict(batch)`` on a batch prepared once. Calling it
    runs the forward and returns the outputs (dict name -> NumPy array)."""

    def __init__(self, predictor, inputs):
        import mxnet as mx
        self.predictor = predictor
        self.inputs = inputs
        names = predictor.data_names
        self.batch = mx.io.DataBatch(
            data=[mx.nd.array(inputs[n]) for n in names],
            provide_data=[mx.io.DataDesc(n, inputs[n].shape) for n in names])

    def __call__(self):
        return self.predictor.predict(self.batch)


def detection_forward(package, cfg, data, im_info, params=None):
    """:class:`Forward` of the detection test network of ``cfg`` on (data, im_info): the
    shared predictor bound for that input, as the tester binds it (``params``: (arg, aux),
    default the network's random initialisation)."""
    import mxnet as mx
    from dcn.engine.predictor import Predictor
    _, sym, arg, aux = random_params(package, cfg)
    if params is not None:
        arg, aux = params
    names = ['data', 'im_info']
    inputs = {'data': data, 'im_info': im_info}
    predictor = Predictor(sym, names, [], context=[mx.cpu()],
                          max_data_shapes=[(n, inputs[n].shape) for n in names],
                          arg_params=arg, aux_params=aux)
    return Forward(predictor, inputs)


def segmentation_forward(package, cfg, data):
    """:class:`Forward` of the segmentation test network of ``cfg`` on ``data`` through the
    segmentation tester's predictor (``dcn.engine.seg_tester.seg_predictor``)."""
    import mxnet as mx
    import numpy as np
    from dcn.engine.seg_tester import seg_predictor
    _, sym, arg, aux = random_params(package, cfg)
    predictor = seg_predictor(sym, arg, aux, [mx.cpu()], data_shape=data.shape)
    label = np.zeros((data.shape[0], data.shape[2] * data.shape[3]), np.float32)
    return Forward(predictor, {'data': data, 'softmax_label': label})


def first_test_batch(cfg):
    """(data, im_info) of the first image of ``cfg.dataset.test_image_set``, as the tester's
    loader (``dcn.loader.TestLoader``) gives it."""
    from dcn.dataset import get_imdb
    from dcn.loader import TestLoader
    imdb = get_imdb(cfg.dataset.dataset, cfg.dataset.test_image_set, cfg.dataset.root_path,
                    cfg.dataset.dataset_path)
    loader = TestLoader(imdb.gt_roidb()[:1], cfg, batch_size=1, shuffle=False)
    try:
        batch = next(iter(loader))
    finally:
        loader.close()
    names = [d.name for d in loader.provide_data]
    return (batch.data[names.index('data')].asnumpy(),
            batch.data[names.index('im_info')].asnumpy())


def _interleaved(fns, repeat):
    """seconds of every timed round per function ({key: [round 1, ..., round repeat]}),
    measured round-robin after one warm-up each: round i of every function ran back to
    back, so two functions' times of one round saw the same machine."""
    for f in fns.values():
        f()
    rounds = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            rounds[k].append(time.perf_counter() - t)
    return rounds


def _best(rounds):
    """best of N per function, from :func:`_interleaved`'s rounds."""
    return {k: min(v) for k, v in rounds.items()}


def _random_image(h, w):
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.standard_normal((1, 3, h, w)).astype(np.float32) * 50


def part_a(args):
    import numpy as np
    H, W = (304, 512) if args.quick else (600, 1000)
    data = _random_image(H, W)
    im_info = np.array([[H, W, 1.0]], np.float32)
    fns = {}
    for builtin in (False, True):
        for name, path in R101.items():
            cfg = load_cfg(path, builtin, proposals=300)
            fns[(name, builtin)] = detection_forward(package_of(path), cfg, data, im_info)
    rounds = _interleaved(fns, args.repeat)
    return dict(shape=[H, W], rows=[dict(net=k[0], builtin=k[1], rounds=v)
                                    for k, v in rounds.items()])


def shapes_inference(path):
    """(:class:`Forward`, image shape) of config ``path`` on its first test image."""
    cfg = load_cfg(path)
    data, im_info = first_test_batch(cfg)
    return detection_forward(package_of(path), cfg, data, im_info), list(data.shape[2:])


def shapes_training(path, iterations=4):
    """One training iteration (forward + backward + SGD update) of config ``path`` on
    ``iterations`` real Shapes batches in turn, from the model's own training loader
    (``build_train_loader``: single- or multi-level anchor targets), no flips, no shuffle."""
    import mxnet as mx
    from dcn.dataset import filter_roidb, load_gt_roidb
    from dcn.train import fixed_param_names, get_symbol_instance
    package = package_of(path)
    cfg = load_cfg(path)
    cfg = copy.deepcopy(cfg)
    cfg.TRAIN.SHUFFLE = False
    cfg.TRAIN.ASPECT_GROUPING = False
    inst = get_symbol_instance(package, cfg)
    sym = inst.get_symbol(cfg, is_train=True)
    _, roidb = load_gt_roidb(cfg, cfg.dataset.image_set, flip=False)
    roidb = filter_roidb(roidb)[:2 * iterations]
    loader = inst.build_train_loader(sym, roidb, cfg, 1, [mx.cpu()], 0)
    try:
        batches = [b for _, b in zip(range(iterations), loader)]
        data_names = [d.name for d in loader.provide_data]
        label_names = [d.name for d in loader.provide_label]
    finally:
        loader.close()
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
    for path in args.shapes or SHAPES:
        infer, shape = shapes_inference(path)
        train = shapes_training(path)
        best = _best(_interleaved({'infer': infer, 'train': train}, max(args.repeat, 3)))
        rows.append(dict(cfg=path, shape=shape, infer=best['infer'], train=best['train']))
    return dict(rows=rows)


def part_c(args):
    import mxnet as mx
    import numpy as np
    from dcn.train import fixed_param_names, get_symbol_instance
    path = R101['R-FCN (deformable)']
    cfg = load_cfg(path, proposals=300)
    H, W = (304, 512) if args.quick else (600, 1000)
    inst = get_symbol_instance(package_of(path), cfg)
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
    best = _best(_interleaved({'train': run}, 1))
    return dict(shape=[H, W], train=best['train'])


def part_d(args):
    rows = []
    for dataset, size, quick, nets in DEEPLAB:
        H, W = quick if args.quick else size
        data = _random_image(H, W)
        fns = {name: segmentation_forward(package_of(path), load_cfg(path), data)
               for name, path in nets.items()}
        rounds = _interleaved(fns, args.repeat)
        rows.extend(dict(dataset=dataset, shape=[H, W], net=k, rounds=v)
                    for k, v in rounds.items())
    return dict(rows=rows)


def part_f(args):
    import numpy as np
    from dcn.config import get_scales
    fns, shape, proposals = {}, None, None
    for name, path in FPN101.items():
        cfg = load_cfg(path)
        stride = int(cfg.network.IMAGE_STRIDE or 1)
        if args.quick:
            H, W = 320, 512
        else:  # the single test scale (SCALES[0]); sides padded to the image stride
            H, W = (-(-s // stride) * stride for s in get_scales(cfg)[0])
        if shape is None:
            shape, proposals = [H, W], int(cfg.TEST.RPN_POST_NMS_TOP_N)
            data = _random_image(H, W)
            im_info = np.array([[H, W, 1.0]], np.float32)
        fns[name] = detection_forward(package_of(path), cfg, data, im_info)
    rounds = _interleaved(fns, args.repeat)
    return dict(shape=shape, proposals=proposals,
                rows=[dict(net=k, rounds=v) for k, v in rounds.items()])


def worker(args):
    sys.path.insert(0, os.path.join(ROOT, 'lib'))
    sys.path.insert(0, ROOT)
    import logging
    logging.disable(logging.WARNING)
    import dcn.layers  # noqa: F401  (registers the CustomOps)
    res = {}
    for part in PARTS:
        if part in args.parts:
            res[part] = globals()['part_' + part](args)
    res['info'] = _isa.worker_description()
    print(json.dumps(res))


def _ratio_line(rounds, num, den, what, goal=None):
    """best-of-N ratio of rounds[num] over rounds[den], the goal, and the per-round median"""
    ratio = min(rounds[num]) / min(rounds[den])
    met = ''
    if goal is not None:
        met = '   goal <= %.2f: %s' % (goal, 'met' if ratio <= goal else 'NOT met')
    paired = _timing.paired_summary(rounds[num], rounds[den])
    return 'deformable / plain%s: %.3f%s%s' % (what, ratio, met,
                                               '   (%s)' % paired if paired else '')


def report(nt, res, repeat):
    print('\nOMP_NUM_THREADS=%d  %s' % (nt, _isa.header(res['info'])))
    if 'a' in res:
        a = res['a']
        rounds = {(r['net'], r['builtin']): r['rounds'] for r in a['rows']}
        t = _best(rounds)
        print('\nOMP_NUM_THREADS=%d  (a) ResNet-101 test network, %dx%d, 300 proposals, random '
              'weights, best of %d, interleaved' % (nt, a['shape'][0], a['shape'][1], repeat))
        print('%-22s %14s %14s' % ('network', 'dcn.ops (ms)', 'built-in (ms)'))
        for net in R101:
            print('%-22s %14.1f %14.1f' % (net, t[(net, False)] * 1e3, t[(net, True)] * 1e3))
        for b, lab in ((False, 'dcn.ops'), (True, 'built-in')):
            print(_ratio_line(rounds, ('R-FCN (deformable)', b), ('R-FCN (plain)', b),
                              ' (%s)' % lab, None if b else 1.10))
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
    if 'd' in res:
        print('\nOMP_NUM_THREADS=%d  (d) ResNet-101 DeepLab test networks, random weights, best '
              'of %d, interleaved per data set' % (nt, repeat))
        print('%-12s %10s %-22s %10s' % ('data set', 'image', 'network', 'ms/image'))
        by_set = {}
        for r in res['d']['rows']:
            by_set.setdefault(r['dataset'], {})[r['net']] = r['rounds']
            print('%-12s %10s %-22s %10.1f' % (r['dataset'], 'x'.join(map(str, r['shape'])),
                                               r['net'], min(r['rounds']) * 1e3))
        for dataset, rounds in by_set.items():
            print(_ratio_line(rounds, 'DeepLab (deformable)', 'DeepLab (plain)',
                              ' (%s)' % dataset))
    if 'f' in res:
        f = res['f']
        rounds = {r['net']: r['rounds'] for r in f['rows']}
        t = _best(rounds)
        print('\nOMP_NUM_THREADS=%d  (f) ResNet-101 FPN test network, %dx%d, %d proposals, random '
              'weights, best of %d, interleaved' % (nt, f['shape'][0], f['shape'][1],
                                                    f['proposals'], repeat))
        print('%-22s %14s' % ('network', 'dcn.ops (ms)'))
        for net in FPN101:
            print('%-22s %14.1f' % (net, t[net] * 1e3))
        print(_ratio_line(rounds, 'FPN (deformable)', 'FPN (plain)', ''))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, nargs='+', default=[2])
    ap.add_argument('--repeat', type=int, default=3, help='best of N (default 3)')
    ap.add_argument('--quick', action='store_true',
                    help='smaller images for (a), (d), (f), best of 2 at most')
    ap.add_argument('--parts', nargs='+', default=list(DEFAULT_PARTS), choices=PARTS,
                    help='a: ResNet-101 R-FCN; b: Shapes; c: ResNet-101 training; '
                         'd: DeepLab; f: ResNet-101 FPN (default: %s)' % ' '.join(DEFAULT_PARTS))
    ap.add_argument('--shapes', nargs='+', metavar='CFG',
                    help='experiment files for part (b), relative to the repository '
                         '(default: the five Shapes configs)')
    ap.add_argument('--train101', action='store_true', help='also run part (c)')
    ap.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    _isa.add_arguments(ap)
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error('--repeat must be at least 1')
    for path in args.shapes or ():
        if not os.path.isfile(os.path.join(ROOT, path)):
            ap.error('--shapes: no experiment file %s' % path)
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
            if args.shapes:
                cmd += ['--shapes'] + list(args.shapes)
            out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE,
                                 cwd=ROOT).stdout
            report(nt, json.loads(out.decode().strip().splitlines()[-1]), args.repeat)


if __name__ == '__main__':
    main()

"""The paper's Table 1 in miniature: plain vs deformable detectors on the Shapes set.

Trains and tests the plain and the deformable Shapes configuration of each detector with
several seeds (``TRAIN.seed``; everything else as in the experiment file, so the two
variants of a detector share one schedule), then prints mAP@0.5 and mAP@0.7 (mean and
spread over the seeds) and the ratio of the per-image test times (network only).

Each run is a configuration file written under ``<output>/cfgs`` as a delta
(``_BASE_``) over the experiment file; its results land in
``<output>/<config name>/test/test_results.json``. A run whose results file exists is not
repeated, so an interrupted table continues where it stopped.

    python -m dcn.tools.paper_table --seeds 0 1            # all runs, then the table
    python -m dcn.tools.paper_table --collect              # the table of what exists
"""
import argparse
import json
import math
import os
import subprocess
import sys

from dcn.fileio import atomic_write_text

__all__ = ['EXPERIMENTS', 'PAPER', 'Run', 'plan_runs', 'write_run_config', 'summarize',
           'format_table', 'main']

# detector -> (family folder, train+test script, plain config, deformable config)
EXPERIMENTS = {
    'rfcn': ('rfcn', 'rfcn_end2end_train_test.py', 'shapes_rfcn.yaml', 'shapes_rfcn_dcn.yaml'),
    'faster_rcnn': ('faster_rcnn', 'rcnn_end2end_train_test.py', 'shapes_rcnn.yaml',
                    'shapes_rcnn_dcn.yaml'),
}
NAMES = {'rfcn': 'R-FCN', 'faster_rcnn': 'Faster R-CNN'}
# the paper's Table 1 (ResNet-101): plain -> deformable
PAPER = {'rfcn': 'VOC 07 test mAP@0.5: 79.6 -> 82.3',
         'faster_rcnn': 'COCO test-dev AP: 30.3 -> 35.0'}
METRICS = ('mAP@0.5', 'mAP@0.7')


class Run(object):
    """One training + test: detector, variant ('plain' | 'deformable'), seed."""

    def __init__(self, root, output, detector, variant, seed):
        family, script, plain, dcn = EXPERIMENTS[detector]
        self.detector, self.variant, self.seed = detector, variant, int(seed)
        self.script = os.path.join(root, 'experiments', family, script)
        self.base = os.path.join(root, 'experiments', family, 'cfgs',
                                 plain if variant == 'plain' else dcn)
        self.name = '%s_seed%d' % (os.path.splitext(os.path.basename(self.base))[0], self.seed)
        self.output = os.path.abspath(output)
        self.cfg_path = os.path.join(self.output, 'cfgs', self.name + '.yaml')
        self.results_path = os.path.join(self.output, self.name, 'test', 'test_results.json')

    def command(self, python):
        return [python, self.script, '--cfg', self.cfg_path]

    def results(self):
        """The results JSON of this run, or None when it has not finished."""
        try:
            with open(self.results_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def plan_runs(root, output, detectors, seeds):
    return [Run(root, output, d, v, s) for d in detectors for v in ('plain', 'deformable')
            for s in seeds]


def write_run_config(run):
    """The run's configuration: the experiment file with another seed and output path."""
    text = ('# %s, seed %d (written by dcn.tools.paper_table)\n'
            '_BASE_: %s\noutput_path: "%s"\nTRAIN:\n  seed: %d\n'
            % (os.path.basename(run.base), run.seed, run.base, run.output, run.seed))
    os.makedirs(os.path.dirname(run.cfg_path), exist_ok=True)
    atomic_write_text(run.cfg_path, text)
    return run.cfg_path


def _stats(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {'n': n, 'mean': mean, 'std': std, 'min': min(values), 'max': max(values)}


def summarize(runs):
    """{detector: {variant: {metric: stats, 'seconds_per_image': stats}}} over finished runs;
    a detector with both variants also gets 'time_ratio' (deformable / plain mean time)."""
    table = {}
    for run in runs:
        res = run.results()
        if res is None:
            continue
        metrics = res.get('metrics', {})
        entry = table.setdefault(run.detector, {}).setdefault(run.variant, {})
        for key in METRICS + ('seconds_per_image',):
            if key in metrics:
                entry.setdefault(key, []).append(float(metrics[key]))
    for det in table.values():
        for variant in list(det):
            det[variant] = {k: _stats(v) for k, v in det[variant].items()}
        if 'plain' in det and 'deformable' in det:
            t = [det[v].get('seconds_per_image', {}).get('mean') for v in ('plain', 'deformable')]
            if t[0] and t[1]:
                det['time_ratio'] = t[1] / t[0]
    return table


def _fmt(stats):
    if not stats:
        return 'n/a'
    if stats['n'] == 1:
        return '%.3f (1 seed)' % stats['mean']
    return '%.3f ± %.3f (%.3f-%.3f)' % (stats['mean'], stats['std'], stats['min'], stats['max'])


def format_table(table):
    """Markdown table: mean ± sample std (min-max) over seeds; time in ms per image."""
    lines = ['| detector | variant | seeds | mAP@0.5 | mAP@0.7 | test ms/image | paper (ResNet-101) |',
             '|---|---|---|---|---|---|---|']
    for det in ('rfcn', 'faster_rcnn'):
        if det not in table:
            continue
        for variant in ('plain', 'deformable'):
            stats = table[det].get(variant)
            if not stats:
                continue
            n = max(s['n'] for s in stats.values())
            t = stats.get('seconds_per_image')
            lines.append('| %s | %s | %d | %s | %s | %s | %s |' % (
                NAMES[det], variant, n, _fmt(stats.get('mAP@0.5')), _fmt(stats.get('mAP@0.7')),
                '%.1f' % (1000 * t['mean']) if t else 'n/a',
                PAPER[det] if variant == 'plain' else ''))
        if 'time_ratio' in table[det]:
            lines.append('| %s | deformable / plain time | | | | %.3f | |'
                         % (NAMES[det], table[det]['time_ratio']))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--detectors', nargs='+', choices=sorted(EXPERIMENTS),
                        default=['rfcn', 'faster_rcnn'])
    parser.add_argument('--output', default='./output/paper_table')
    parser.add_argument('--python', default=sys.executable)
    parser.add_argument('--collect', action='store_true',
                        help='print the table of the finished runs, train nothing')
    parser.add_argument('--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
    runs = plan_runs(root, args.output, args.detectors, args.seeds)
    if not args.collect:
        for run in runs:
            if run.results() is not None:
                print('done already: %s' % run.name)
                continue
            write_run_config(run)
            cmd = run.command(args.python)
            print(' '.join(cmd), flush=True)
            if args.dry_run:
                continue
            rc = subprocess.call(cmd, cwd=root)
            if rc != 0:
                sys.stderr.write('error: run %s failed (exit status %d); the finished runs are '
                                 'kept, run the same command again to continue\n' % (run.name, rc))
                return rc
    table = summarize(runs)
    text = format_table(table)
    print(text)
    if table and not args.dry_run:
        os.makedirs(args.output, exist_ok=True)
        atomic_write_text(os.path.join(args.output, 'table.md'), text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

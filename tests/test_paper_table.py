"""The plain-vs-deformable table (dcn.tools.paper_table): the two variants of a detector share
one schedule, a run's configuration changes only the seed and the output, and the table is
the mean and spread of what the runs wrote."""
import json
import math
import os
import subprocess
import sys

import pytest

from dcn.config import load_config
from dcn.tester import write_results
from dcn.tools import paper_table

from _util import ROOT, flat

# keys that may differ between the plain and the deformable experiment of one detector
VARIANT_KEYS = {'symbol', 'config_name'}


def _flat(d):
    return flat(d, lambda v: v.tolist() if hasattr(v, 'tolist') else v)


def _cfg(detector, variant):
    family, _, plain, dcn = paper_table.EXPERIMENTS[detector]
    name = plain if variant == 'plain' else dcn
    return _flat(load_config(os.path.join(ROOT, 'experiments', family, 'cfgs', name)))


@pytest.mark.parametrize('detector', sorted(paper_table.EXPERIMENTS))
def test_plain_and_deformable_share_one_schedule(detector):
    plain, dcn = _cfg(detector, 'plain'), _cfg(detector, 'deformable')
    assert set(plain) == set(dcn)
    differ = sorted(k for k in plain if plain[k] != dcn[k])
    assert set(differ) <= VARIANT_KEYS | {'TRAIN.model_prefix'}, differ
    assert plain['symbol'] != dcn['symbol'] and dcn['symbol'].endswith('_dcn')


# the other families' Shapes pairs, whose plain / deformable figures the README compares
OTHER_PAIRS = [('fpn', 'shapes_fpn.yaml', 'shapes_fpn_dcn.yaml'),
               ('deeplab', 'shapes_deeplab.yaml', 'shapes_deeplab_dcn.yaml')]


@pytest.mark.parametrize('family,plain,dcn', OTHER_PAIRS)
def test_other_families_share_one_schedule(family, plain, dcn):
    import importlib
    sys.path.insert(0, ROOT)
    load = getattr(importlib.import_module(family), 'load_config', load_config)
    cfgs = [_flat(load(os.path.join(ROOT, 'experiments', family, 'cfgs', n))) for n in (plain, dcn)]
    assert set(cfgs[0]) == set(cfgs[1])
    differ = sorted(k for k in cfgs[0] if cfgs[0][k] != cfgs[1][k])
    assert set(differ) <= VARIANT_KEYS | {'TRAIN.model_prefix'}, differ
    assert '_dcn' in cfgs[1]['symbol'] and '_dcn' not in cfgs[0]['symbol']


def test_run_config_changes_only_seed_and_output(tmp_path):
    run = paper_table.Run(ROOT, str(tmp_path), 'rfcn', 'deformable', 3)
    paper_table.write_run_config(run)
    base = _flat(load_config(run.base))
    got = _flat(load_config(run.cfg_path))
    differ = sorted(k for k in base if base[k] != got[k])
    assert differ == ['TRAIN.seed', 'config_name', 'output_path']
    assert got['TRAIN.seed'] == 3 and got['config_name'] == 'shapes_rfcn_dcn_seed3'
    assert got['output_path'] == str(tmp_path)


def _fake_run(tmp_path, detector, variant, seed, map50, map70, sec):
    run = paper_table.Run(ROOT, str(tmp_path), detector, variant, seed)
    os.makedirs(os.path.dirname(run.results_path))
    write_results(run.results_path, {'mAP@0.5': map50, 'mAP@0.7': map70,
                                     'seconds_per_image': sec, 'AP@0.5/star': 0.1})
    return run


def test_table_is_mean_and_spread_of_the_runs(tmp_path):
    runs = [_fake_run(tmp_path, 'rfcn', 'plain', 0, 0.50, 0.40, 0.020),
            _fake_run(tmp_path, 'rfcn', 'plain', 1, 0.70, 0.50, 0.030),
            _fake_run(tmp_path, 'rfcn', 'deformable', 0, 0.80, 0.60, 0.050),
            paper_table.Run(ROOT, str(tmp_path), 'rfcn', 'deformable', 1)]  # not finished
    table = paper_table.summarize(runs)
    plain = table['rfcn']['plain']['mAP@0.5']
    assert plain['n'] == 2 and math.isclose(plain['mean'], 0.6)
    assert math.isclose(plain['std'], math.sqrt(0.02))            # sample std of 0.5, 0.7
    assert (plain['min'], plain['max']) == (0.5, 0.7)
    assert table['rfcn']['deformable']['mAP@0.7']['n'] == 1
    assert math.isclose(table['rfcn']['time_ratio'], 0.050 / 0.025)
    text = paper_table.format_table(table)
    assert '0.600 ± 0.141 (0.500-0.700)' in text and '| 2.000 |' in text
    assert 'faster' not in text.lower()


def test_dry_run_plans_every_run_and_trains_nothing(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, 'lib')]))
    proc = subprocess.run([sys.executable, '-m', 'dcn.tools.paper_table', '--dry-run',
                           '--output', str(tmp_path)], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 0, proc.stdout
    cmds = [l for l in proc.stdout.splitlines() if '--cfg' in l]
    assert len(cmds) == 8                              # 2 detectors x 2 variants x 2 seeds
    assert sum('rcnn_end2end_train_test.py' in c for c in cmds) == 4
    cfgs = sorted(os.listdir(str(tmp_path / 'cfgs')))
    assert cfgs[0] == 'shapes_rcnn_dcn_seed0.yaml' and len(cfgs) == 8
    assert not any(os.path.isdir(str(tmp_path / c[:-5])) for c in cfgs)   # nothing trained

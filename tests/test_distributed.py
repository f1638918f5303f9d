"""Distributed training with the parameter-server kvstore and the ``dcn.tools.launch`` launcher.

The job tests start real ps-lite processes (scheduler, server, workers) on 127.0.0.1.
"""
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml

from dcn.tools import launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI_CFG = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')
TRAIN_TEST = os.path.join(ROOT, 'experiments', 'rfcn', 'rfcn_end2end_train_test.py')

# a tiny dist_sync job: every worker pushes (rank + 1) and pulls the summed-gradient update
KV_SCRIPT = textwrap.dedent('''
    import os, sys, time
    from dcn.tools.launch import serve_if_server
    serve_if_server()
    import mxnet as mx
    kv = mx.kv.create('dist_sync')
    kv.init(3, mx.nd.zeros((2, 2)))
    kv.set_optimizer(mx.optimizer.SGD(learning_rate=0.1, rescale_grad=1.0))
    out = mx.nd.zeros((2, 2))
    steps = int(os.environ.get('KV_STEPS', '3'))
    for i in range(steps):
        kv.push(3, mx.nd.ones((2, 2)) * (kv.rank + 1))
        kv.pull(3, out=out)
        print('rank %d step %d value %.4f' % (kv.rank, i, out.asnumpy()[0, 0]), flush=True)
        time.sleep(float(os.environ.get('KV_SLEEP', '0')))
    print('rank %d of %d done' % (kv.rank, kv.num_workers), flush=True)
''')

# worker command wrapper: dumps the parameters a worker holds at every epoch end (the last
# dump is the final state), then runs the training script as __main__
DUMP_WRAPPER = textwrap.dedent('''
    import os, runpy, sys
    if os.environ.get('DMLC_ROLE', 'worker') == 'worker':
        import mxnet as mx
        _get_params = mx.mod.Module.get_params

        def get_params(self):
            arg, aux = _get_params(self)
            kv = self._kvstore
            rank = kv.rank if kv is not None else 0
            saved = {'arg:' + k: v for k, v in arg.items()}
            saved.update({'aux:' + k: v for k, v in aux.items()})
            mx.nd.save(os.path.join(os.environ['DUMP_DIR'], 'rank%d.params' % rank), saved)
            return arg, aux
        mx.mod.Module.get_params = get_params
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name='__main__')
''')


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([os.path.join(ROOT, 'lib'), ROOT,
                                         env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    env['OMP_NUM_THREADS'] = '1'
    env.pop('DMLC_ROLE', None)
    return env


def _launch(args, timeout, env=None):
    """Run the launcher; returns (exit status, output, seconds)."""
    cmd = [sys.executable, '-m', 'dcn.tools.launch'] + args
    tic = time.time()
    res = subprocess.run(cmd, cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=timeout)
    return res.returncode, res.stdout.decode('utf-8', 'replace'), time.time() - tic


def _started_pids(text):
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'started (\w+(?: \d+)?) \(pid (\d+)\)', text)}


def _assert_gone(pids, within=10.0):
    end = time.time() + within
    alive = list(pids)
    while alive and time.time() < end:
        alive = [p for p in alive if _alive(p)]
        time.sleep(0.1)
    assert not alive, 'processes still running: %s' % alive


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        with open('/proc/%d/stat' % pid) as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except OSError:
        return False


# ---------------------------------------------------------------------------------------
# command construction (no processes)
# ---------------------------------------------------------------------------------------
def test_plan_env_and_hostfile(tmp_path):
    hostfile = tmp_path / 'hosts'
    hostfile.write_text('# cluster\nnode1\n\nalice@node2  # second\n')
    hosts = launch.parse_hostfile(str(hostfile))
    assert hosts == ['node1', 'alice@node2']
    specs = launch.plan_processes(3, 2, hosts)
    assert [(s.role, s.index, s.host) for s in specs] == [
        ('scheduler', 0, 'node1'), ('server', 0, 'node1'), ('server', 1, 'alice@node2'),
        ('worker', 0, 'node1'), ('worker', 1, 'alice@node2'), ('worker', 2, 'node1')]
    env = launch.job_env(specs[4], 3, 2, 'node1', 9091, verbose=1)
    assert env == {'DMLC_ROLE': 'worker', 'DMLC_PS_ROOT_URI': 'node1', 'DMLC_PS_ROOT_PORT': '9091',
                   'DMLC_NUM_SERVER': '2', 'DMLC_NUM_WORKER': '3', 'DMLC_NODE_HOST': 'node2',
                   'PS_VERBOSE': '1'}
    local = launch.plan_processes(2, 1)
    assert all(s.host is None for s in local)
    assert launch.job_env(local[0], 2, 1, '127.0.0.1', 1234)['DMLC_NODE_HOST'] == '127.0.0.1'
    with pytest.raises(ValueError, match='at least one worker and one server'):
        launch.plan_processes(2, 0)
    empty = tmp_path / 'empty'
    empty.write_text('# nothing\n')
    with pytest.raises(ValueError, match='names no host'):
        launch.parse_hostfile(str(empty))


def test_parse_args_splits_the_command():
    args = launch.parse_args(['-n', '2', '--timeout', '5', '--env', 'A=1 2', '--', 'python',
                              'x.py', '--cfg', 'c.yaml', '-n', '7'])
    assert args.num_workers == 2 and args.num_servers == 2 and args.timeout == 5
    assert args.command == ['python', 'x.py', '--cfg', 'c.yaml', '-n', '7']
    assert args.env == [('A', '1 2')]
    with pytest.raises(SystemExit):
        launch.parse_args(['-n', '2'])  # no command


def test_ssh_command_line(tmp_path):
    launcher = launch.Launcher(['python', 'train.py', '--cfg', "my cfg's.yaml"], 2, 1,
                               hosts=['node1', 'bob@node2'], port=9100, ssh='ssh -p 2222',
                               workdir='/srv/dcn work', extra_env={'OMP_NUM_THREADS': '4'})
    argv, env = launcher.argv_env(launcher.specs[-1])  # worker 1 on bob@node2
    assert env is None
    assert argv[:5] == ['ssh', '-p', '2222', '-o', 'BatchMode=yes']
    assert argv[5] == 'bob@node2' and len(argv) == 7
    remote = argv[6]
    assert remote.startswith("cd '/srv/dcn work' || exit 127;")
    for item in ('DMLC_ROLE=worker', 'DMLC_PS_ROOT_URI=node1', 'DMLC_PS_ROOT_PORT=9100',
                 'DMLC_NUM_WORKER=2', 'DMLC_NUM_SERVER=1', 'DMLC_NODE_HOST=node2',
                 'OMP_NUM_THREADS=4'):
        assert item in remote
    assert "python train.py --cfg 'my cfg'\"'\"'s.yaml'" in remote
    # the scheduler runs on the first host; the address is the host-file entry's
    argv, _ = launcher.argv_env(launcher.specs[0])
    assert argv[5] == 'node1' and 'DMLC_ROLE=scheduler' in argv[6]


def test_remote_text_runs_in_workdir_with_env_and_stops_when_stdin_closes(tmp_path):
    """What ssh runs on a host, run here by sh: working directory, inline environment and
    exit status; the command is stopped when the connection (standard input) closes."""
    work = tmp_path / 'w d'
    work.mkdir()
    text = launch.remote_shell_command(
        ['sh', '-c', 'echo "$DMLC_ROLE|$X|$(pwd)"; exit 3'], {'DMLC_ROLE': 'server', 'X': "a 'b"},
        str(work))
    proc = subprocess.Popen(['sh', '-c', text], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:  # the connection stays open while the command runs
        output = proc.stdout.read()
        assert proc.wait(timeout=20) == 3
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert output.decode().strip() == "server|a 'b|%s" % work
    text = launch.remote_shell_command([sys.executable, '-c', 'import time; print("up", '
                                        'flush=True); time.sleep(60)'], {}, str(work))
    proc = subprocess.Popen(['sh', '-c', text], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == b'up'
        tic = time.time()
        proc.stdin.close()  # the ssh connection goes away
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
        assert time.time() - tic < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dry_run_prints_every_process(capsys):
    assert launch.main(['-n', '2', '-s', '1', '--port', '9555', '--dry-run', '--', 'python',
                        'x.py']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(']')[0] for ln in lines] == ['[scheduler', '[server 0', '[worker 0',
                                                  '[worker 1']
    assert all('DMLC_PS_ROOT_URI=127.0.0.1' in ln and 'DMLC_PS_ROOT_PORT=9555' in ln
               and ln.endswith('python x.py') for ln in lines)


# ---------------------------------------------------------------------------------------
# sharding
# ---------------------------------------------------------------------------------------
def test_shard_roidb_equal_iterations():
    from dcn.loader import _grouped_order
    from dcn.train import shard_roidb
    rng = np.random.RandomState(0)
    roidb = [{'id': i, 'width': int(rng.choice([300, 500])), 'height': 400} for i in range(23)]
    for workers in (1, 2, 3, 4, 5):
        shards = [shard_roidb(roidb, r, workers) for r in range(workers)]
        assert len({len(s) for s in shards}) == 1
        assert len(shards[0]) == -(-23 // workers)
        assert {e['id'] for s in shards for e in s} == set(range(23))  # every image is used
        for batch in (1, 2, 3):  # aspect grouping gives every shard as many batches
            counts = {len(_grouped_order(s, batch, True, True, np.random.RandomState(r)))
                      for r, s in enumerate(shards)}
            assert counts == {len(shards[0]) // batch}
    with pytest.raises(ValueError, match='rank 2 is not in'):
        shard_roidb(roidb, 2, 2)


# ---------------------------------------------------------------------------------------
# real jobs on 127.0.0.1
# ---------------------------------------------------------------------------------------
def _kv_script(tmp_path):
    path = tmp_path / 'kvjob.py'
    path.write_text(KV_SCRIPT)
    return str(path)


def test_kvstore_job_through_hostfile_and_ssh_stand_in(tmp_path):
    """Host-file mode with an ssh stand-in that runs the remote text here and records the
    host: two "hosts", a real dist_sync exchange between the workers."""
    _kv_script(tmp_path)
    log = tmp_path / 'ssh.log'
    fake_ssh = tmp_path / 'fake_ssh'
    fake_ssh.write_text('#!/bin/sh\nwhile [ $# -gt 2 ]; do shift; done\n'
                        'echo "$1" >> %s\nexec sh -c "$2"\n' % shlex.quote(str(log)))
    fake_ssh.chmod(0o755)
    hostfile = tmp_path / 'hosts'
    hostfile.write_text('127.0.0.1\nme@127.0.0.1\n')
    env = _env()
    code, out, secs = _launch(['-n', '2', '-s', '1', '--hostfile', str(hostfile),
                               '--ssh', str(fake_ssh), '--workdir', str(tmp_path),
                               '--env', 'PYTHONPATH=' + env['PYTHONPATH'], '--env',
                               'OMP_NUM_THREADS', '--timeout', '90', '--',
                               sys.executable, 'kvjob.py'], timeout=150, env=env)
    assert code == 0, out
    # sum of the pushes (1 + 2) per step, learning rate 0.1
    for rank in (0, 1):
        assert 'rank %d step 2 value -0.9000' % rank in out
        assert 'rank %d of 2 done' % rank in out
    assert re.search(r'^\[worker [01]\] rank 0 of 2 done', out, re.M)
    # scheduler, server 0 and worker 0 on the first host, worker 1 on the second
    assert sorted(log.read_text().split()) == ['127.0.0.1'] * 3 + ['me@127.0.0.1']
    assert 'all 2 workers finished' in out
    _assert_gone(_started_pids(out).values())


def test_killed_worker_stops_the_job_with_a_clear_error(tmp_path):
    script = _kv_script(tmp_path)
    env = _env()
    env.update(KV_STEPS='100000', KV_SLEEP='0.05')
    cmd = [sys.executable, '-m', 'dcn.tools.launch', '-n', '2', '-s', '1', '--timeout', '120',
           '--', sys.executable, script]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines = []
    try:
        deadline = time.time() + 90
        while time.time() < deadline:  # wait until both workers exchange gradients
            line = proc.stdout.readline().decode('utf-8', 'replace')
            if not line:
                break
            lines.append(line)
            text = ''.join(lines)
            if re.search(r'rank 0 step 2 ', text) and re.search(r'rank 1 step 2 ', text):
                break
        pids = _started_pids(''.join(lines))
        assert 'worker 1' in pids, ''.join(lines)
        tic = time.time()
        os.kill(pids['worker 1'], signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        elapsed = time.time() - tic
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = ''.join(lines) + rest.decode('utf-8', 'replace')
    assert proc.returncode == launch.EXIT_FAILED, out
    assert elapsed < 30
    assert re.search(r'FAILED: worker 1 \(pid %d\) was killed by SIGKILL; stopping the job'
                     % pids['worker 1'], out), out
    _assert_gone(pids.values())


def test_timeout_stops_the_job(tmp_path):
    """Also runs the scheduler and server with the generic server entry (--serve)."""
    script = _kv_script(tmp_path)
    env = _env()
    env.update(KV_STEPS='100000', KV_SLEEP='0.05')
    code, out, secs = _launch(['-n', '1', '-s', '1', '--timeout', '8', '--server-command',
                               '%s -m dcn.tools.launch --serve' % shlex.quote(sys.executable),
                               '--', sys.executable, script], timeout=90, env=env)
    assert code == launch.EXIT_TIMEOUT, out
    assert re.search(r'rank 0 step 3 ', out), out  # the servers served
    assert 'FAILED: timeout of 8s reached (still running: scheduler, server 0, worker 0)' in out
    assert secs < 40
    _assert_gone(_started_pids(out).values())


def test_ctrl_c_stops_every_process(tmp_path):
    script = _kv_script(tmp_path)
    env = _env()
    env.update(KV_STEPS='100000', KV_SLEEP='0.05')
    # started with SIGINT ignored, as a job a non-interactive shell puts in the background:
    # the launcher must still stop on it
    proc = subprocess.Popen([sys.executable, '-m', 'dcn.tools.launch', '-n', '2', '-s', '1',
                             '--timeout', '120', '--', sys.executable, script], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = []
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            line = proc.stdout.readline().decode('utf-8', 'replace')
            if not line or re.search(r'rank 1 step 1 ', line):
                break
            lines.append(line)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = ''.join(lines) + rest.decode('utf-8', 'replace')
    assert proc.returncode == launch.EXIT_INTERRUPTED, out
    assert 'interrupted; stopping the job' in out
    pids = _started_pids(out)
    assert len(pids) == 4
    _assert_gone(pids.values())


def test_dist_sync_training_two_workers(tmp_path):
    """2 workers + 1 server train the tiny Shapes R-FCN for 2 epochs with dist_sync through the
    experiment's train+test script: equal shards, identical learned parameters on both
    workers, falling loss, checkpoints and testing from rank 0 only."""
    from dcn.dataset.shapes import generate_shapes
    data = tmp_path / 'data'
    for image_set in ('minitrain', 'minitest'):  # generated once, not by both workers at once
        generate_shapes(str(data / 'shapes'), image_set)
    # the mini config as the base, with what this job changes
    cfg = {'_BASE_': os.path.abspath(MINI_CFG), 'default': {'kvstore': 'dist_sync'},
           'output_path': str(tmp_path / 'out'),
           'dataset': {'root_path': str(data), 'dataset_path': str(data / 'shapes')},
           'TRAIN': {'end_epoch': 2, 'lr_step': '2'}, 'TEST': {'test_epoch': 2}}
    cfg_path = tmp_path / 'dist_mini.yaml'
    cfg_path.write_text(yaml.safe_dump(cfg))
    wrapper = tmp_path / 'dump_wrapper.py'
    wrapper.write_text(DUMP_WRAPPER)
    dump = tmp_path / 'dump'
    dump.mkdir()
    code, out, secs = _launch(['-n', '2', '-s', '1', '--timeout', '240', '--env',
                               'DUMP_DIR=%s' % dump, '--', sys.executable, str(wrapper),
                               TRAIN_TEST, '--cfg', str(cfg_path)], timeout=300)
    assert code == 0, out[-5000:]
    # equal shards of the 16 images; the schedule counts global iterations (8 per epoch)
    assert len(re.findall(r'worker [01] of 2: 8 images in this shard', out)) == 2
    assert len(re.findall(r'steps at iterations \[16\], warmup True', out)) == 2
    import mxnet as mx
    params = [mx.nd.load(str(dump / ('rank%d.params' % r))) for r in (0, 1)]
    args = [{k: v.asnumpy() for k, v in p.items() if k.startswith('arg:')} for p in params]
    assert sorted(args[0]) == sorted(args[1]) and len(args[0]) > 20
    for name in args[0]:
        np.testing.assert_array_equal(args[0][name], args[1][name], err_msg=name)
    # the loss fell on both workers (epoch averages)
    for worker in ('0', '1'):
        per_epoch = [float(re.search(r'^\[worker %s\] .*Epoch\[%d\] Train-RPNLogLoss=([0-9.]+)'
                                     % (worker, e), out, re.M).group(1)) for e in (0, 1)]
        assert per_epoch[1] < per_epoch[0] - 0.05, per_epoch
    # rank 0 wrote the checkpoints and tested; the other worker did not test
    final = tmp_path / 'out' / 'dist_mini' / 'minitrain'
    assert (final / 'rfcn_dcn_shapes_mini-0002.params').is_file()
    assert out.count('testing is left to the worker of rank 0') == 1
    assert out.count('mAP@0.5:') == 1
    assert any(f.startswith('dist_mini_train_rank1_') for f in os.listdir(final))
    assert 'all 2 workers finished' in out
    _assert_gone(_started_pids(out).values())

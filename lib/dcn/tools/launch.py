"""Start a distributed (parameter-server) training job: one scheduler, S servers, N workers.

Usage::

    python -m dcn.tools.launch -n 2 -s 1 [--hostfile HOSTS] [--timeout SEC] \\
        -- python experiments/rfcn/rfcn_end2end_train_test.py --cfg CFG.yaml

Every process runs the command after ``--`` with the ps-lite environment
(``DMLC_ROLE``, ``DMLC_PS_ROOT_URI``, ``DMLC_PS_ROOT_PORT``, ``DMLC_NUM_SERVER``,
``DMLC_NUM_WORKER``, ``DMLC_NODE_HOST``). The training entry points of this
project turn a process whose role is ``server`` or ``scheduler`` into a kvstore
server before anything else happens (see :func:`serve_if_server`); workers train
with the ``dist_*`` kvstore named by ``default.kvstore`` in the configuration.

Without ``--hostfile`` everything runs on this machine, on 127.0.0.1. With a host
file (one host per line, ``HOST`` or ``USER@HOST``, ``#`` comments) the
scheduler runs on the first host and servers and workers are placed on the hosts
in turn; each is started as ``ssh HOST 'cd WORKDIR && env VAR=... COMMAND'``.

The output of every process is forwarded line by line with a ``[worker 0]`` /
``[server 0]`` / ``[scheduler]`` prefix. When a process fails (a worker exits
with a non-zero status, or a server or the scheduler ends before the workers)
or on Ctrl-C, SIGTERM or ``--timeout``, every process group is stopped and the
launcher exits non-zero with a message naming the process.
"""
import argparse
import importlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ['main', 'parse_args', 'parse_hostfile', 'plan_processes', 'job_env',
           'remote_shell_command', 'ssh_command', 'free_port', 'serve_if_server', 'run_server',
           'Launcher', 'Spec']

LOCALHOST = '127.0.0.1'
EXIT_FAILED = 1
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


def _say(msg):
    sys.stderr.write('[launch] %s\n' % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------
# server side
# ---------------------------------------------------------------------------------------
def serve_if_server(preload=('dcn.train',)):
    """Run a kvstore server/scheduler and exit when ``DMLC_ROLE`` says so; else return.

    Call this before anything imports mxnet: with ``DMLC_ROLE=server`` mxnet starts
    serving from inside ``import mxnet`` (half-imported), where the optimizer sent by
    the workers (with its ``dcn.train`` learning-rate scheduler) cannot be unpickled.
    """
    if os.environ.get('DMLC_ROLE') in ('server', 'scheduler'):
        run_server(preload)


def run_server(preload=('dcn.train',)):
    """Import mxnet (and ``preload``) completely as a worker would, then serve; never returns."""
    role = os.environ.get('DMLC_ROLE')
    if role not in ('server', 'scheduler'):
        raise RuntimeError('run_server: DMLC_ROLE must be server or scheduler, got %r' % role)
    if 'mxnet' in sys.modules:
        raise RuntimeError('run_server: mxnet was imported before the server was started')
    del os.environ['DMLC_ROLE']  # import mxnet without turning into a server half-way
    try:
        import mxnet  # noqa: F401
        for name in preload:
            importlib.import_module(name)
    finally:
        os.environ['DMLC_ROLE'] = role
    from mxnet.kvstore import kvstore_server
    kvstore_server._init_kvstore_server_module()  # serves until the workers finish
    sys.exit(0)


# ---------------------------------------------------------------------------------------
# job description
# ---------------------------------------------------------------------------------------
class Spec(object):
    """One process of the job: role ('scheduler', 'server', 'worker'), index and host
    (None: this machine)."""

    def __init__(self, role, index, host=None):
        self.role, self.index, self.host = role, index, host

    @property
    def label(self):
        return self.role if self.role == 'scheduler' else '%s %d' % (self.role, self.index)

    def __repr__(self):
        return 'Spec(%r, %r, %r)' % (self.role, self.index, self.host)


def parse_hostfile(path):
    """Hosts of a host file: the first word of each line, blank lines and ``#`` comments skipped."""
    hosts = []
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                hosts.append(line.split()[0])
    if not hosts:
        raise ValueError('host file %s names no host' % path)
    return hosts


def host_address(host):
    """Network address of a host-file entry (``USER@HOST`` -> ``HOST``)."""
    return host.rsplit('@', 1)[-1]


def plan_processes(num_workers, num_servers, hosts=None):
    """Scheduler, servers and workers; with ``hosts`` the scheduler is on the first host and
    servers and workers are placed on the hosts in turn."""
    if num_workers < 1 or num_servers < 1:
        raise ValueError('need at least one worker and one server (got -n %d -s %d)'
                         % (num_workers, num_servers))
    hosts = list(hosts) if hosts else [None]
    specs = [Spec('scheduler', 0, hosts[0])]
    specs += [Spec('server', i, hosts[i % len(hosts)]) for i in range(num_servers)]
    specs += [Spec('worker', i, hosts[i % len(hosts)]) for i in range(num_workers)]
    return specs


def job_env(spec, num_workers, num_servers, root_uri, root_port, verbose=0):
    """ps-lite environment of one process."""
    env = {'DMLC_ROLE': spec.role,
           'DMLC_PS_ROOT_URI': str(root_uri),
           'DMLC_PS_ROOT_PORT': str(int(root_port)),
           'DMLC_NUM_SERVER': str(int(num_servers)),
           'DMLC_NUM_WORKER': str(int(num_workers)),
           'DMLC_NODE_HOST': host_address(spec.host) if spec.host else LOCALHOST}
    if verbose:
        env['PS_VERBOSE'] = str(int(verbose))
    return env


def remote_shell_command(command, env, workdir):
    """Shell text run by ssh on a remote host: change to ``workdir``, run ``command`` with
    ``env`` set inline, and stop it when the connection (its standard input) closes."""
    assigns = ' '.join('%s=%s' % (k, shlex.quote(str(v))) for k, v in sorted(env.items()))
    cmd = ' '.join(shlex.quote(c) for c in command)
    # fd 3 keeps the connection's stdin for the watcher (a background job's stdin would be
    # /dev/null); the watcher holds no output open, so ssh ends when the command ends
    return ('cd %s || exit 127; exec 3<&0; env %s %s </dev/null 3<&- & pid=$!; '
            '(cat <&3 >/dev/null 2>&1; kill -TERM $pid 2>/dev/null) >/dev/null 2>&1 & '
            'watch=$!; exec 3<&-; wait $pid; rc=$?; kill $watch 2>/dev/null; exit $rc'
            % (shlex.quote(workdir), assigns, cmd))


def ssh_command(host, remote, ssh='ssh'):
    """Argument list running shell text ``remote`` on ``host`` (``ssh`` may carry options)."""
    return shlex.split(ssh) + ['-o', 'BatchMode=yes', host, remote]


def free_port(host=LOCALHOST):
    """A TCP port nobody listens on at the moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------
class _Terminated(Exception):
    pass


class Launcher(object):
    """Starts the processes of :func:`plan_processes`, forwards their output and watches them."""

    def __init__(self, command, num_workers, num_servers=1, hosts=None, port=None,
                 root_uri=None, timeout=None, ssh='ssh', workdir=None, extra_env=None,
                 server_command=None, verbose=0, grace=30.0, out=None):
        if not command:
            raise ValueError('no command given (put it after --)')
        self.command = list(command)
        self.server_command = list(server_command) if server_command else self.command
        self.hosts = list(hosts) if hosts else None
        self.specs = plan_processes(num_workers, num_servers, self.hosts)
        self.num_workers, self.num_servers = num_workers, num_servers
        if root_uri is None:
            root_uri = host_address(self.hosts[0]) if self.hosts else LOCALHOST
        self.root_uri = root_uri
        self.port = int(port) if port else free_port()
        self.timeout = timeout
        self.ssh = ssh
        self.workdir = workdir or os.getcwd()
        self.extra_env = dict(extra_env or {})
        self.verbose = verbose
        self.grace = grace
        self.out = out if out is not None else sys.stdout
        self.procs = []  # (spec, Popen)
        self._lock = threading.Lock()
        self._threads = []

    def argv_env(self, spec):
        """(argument list, full environment or None for ssh) of one process."""
        command = self.command if spec.role == 'worker' else self.server_command
        env = dict(self.extra_env)
        env.update(job_env(spec, self.num_workers, self.num_servers, self.root_uri, self.port,
                           self.verbose))
        if spec.host is None:
            full = dict(os.environ)
            full.update(env)
            return command, full
        return ssh_command(spec.host, remote_shell_command(command, env, self.workdir),
                           self.ssh), None

    def _forward(self, spec, stream):
        prefix = ('[%s] ' % spec.label).encode()
        out = getattr(self.out, 'buffer', None)
        for line in iter(stream.readline, b''):
            if not line.endswith(b'\n'):
                line += b'\n'
            with self._lock:
                if out is not None:
                    out.write(prefix + line)
                    out.flush()
                else:
                    self.out.write((prefix + line).decode('utf-8', 'replace'))
                    self.out.flush()
        stream.close()

    def start(self):
        for spec in self.specs:
            argv, env = self.argv_env(spec)
            popen = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            self.procs.append((spec, popen))
            where = 'on %s' % spec.host if spec.host else 'locally'
            _say('started %s (pid %d) %s' % (spec.label, popen.pid, where))
            t = threading.Thread(target=self._forward, args=(spec, popen.stdout), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, sig_wait=5.0):
        """Stop every process group still running: SIGTERM, then SIGKILL."""
        alive = [(s, p) for s, p in self.procs if p.poll() is None]
        for _, p in alive:
            _signal_group(p, signal.SIGTERM)
        end = time.time() + sig_wait
        while time.time() < end and any(p.poll() is None for _, p in alive):
            time.sleep(0.05)
        for _, p in self.procs:  # also the groups of processes that have exited themselves
            _signal_group(p, signal.SIGKILL)
        for _, p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            if p.stdin:
                try:
                    p.stdin.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=2)

    def _describe(self, spec, popen, rc):
        where = ' on %s' % spec.host if spec.host else ''
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = 'signal %d' % -rc
            how = 'was killed by %s' % name
        else:
            how = 'exited with status %d' % rc
        return '%s (pid %d%s) %s' % (spec.label, popen.pid, where, how)

    def watch(self):
        """Wait for the job; returns the exit status of the launcher."""
        start = time.time()
        workers = [(s, p) for s, p in self.procs if s.role == 'worker']
        others = [(s, p) for s, p in self.procs if s.role != 'worker']
        finished_at = None
        while True:
            for s, p in workers:
                rc = p.poll()
                if rc not in (None, 0):
                    _say('FAILED: %s; stopping the job' % self._describe(s, p, rc))
                    return EXIT_FAILED
            workers_done = all(p.poll() == 0 for _, p in workers)
            if not workers_done:
                # a server or the scheduler ends normally (status 0) once every worker has
                # released its kvstore, which may be before a worker ends (e.g. rank 0 tests)
                for s, p in others:
                    rc = p.poll()
                    if rc not in (None, 0):
                        _say('FAILED: %s while workers were running; stopping the job'
                             % self._describe(s, p, rc))
                        return EXIT_FAILED
            else:
                if finished_at is None:
                    finished_at = time.time()
                if all(p.poll() is not None for _, p in others):
                    _say('all %d workers finished' % len(workers))
                    return 0
                if time.time() - finished_at > self.grace:
                    _say('all workers finished; stopping servers still running after %gs'
                         % self.grace)
                    return 0
            if self.timeout and time.time() - start > self.timeout:
                running = [s.label for s, p in self.procs if p.poll() is None]
                _say('FAILED: timeout of %gs reached (still running: %s); stopping the job'
                     % (self.timeout, ', '.join(running)))
                return EXIT_TIMEOUT
            time.sleep(0.1)

    def run(self):
        """Start, watch and stop; returns the exit status."""
        handlers = {}

        def _on_signal(signum, frame):
            raise _Terminated(signum)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                handlers[sig] = signal.signal(sig, _on_signal)
            except (ValueError, OSError):  # not in the main thread
                pass
        try:  # Ctrl-C stops the job even where SIGINT came in ignored (a shell's background job)
            handlers[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        except (ValueError, OSError):
            pass
        try:
            _say('scheduler at %s:%d, %d server(s), %d worker(s)%s'
                 % (self.root_uri, self.port, self.num_servers, self.num_workers,
                    ' on %d host(s)' % len(self.hosts) if self.hosts else ' on this machine'))
            self.start()
            return self.watch()
        except KeyboardInterrupt:
            _say('interrupted; stopping the job')
            return EXIT_INTERRUPTED
        except _Terminated as exc:
            _say('received signal %d; stopping the job' % exc.args[0])
            return EXIT_INTERRUPTED
        finally:
            self.stop()
            for sig, h in handlers.items():
                signal.signal(sig, h)


def _signal_group(popen, sig):
    try:
        os.killpg(popen.pid, sig)  # start_new_session: the group id is the pid
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def _env_arg(text):
    if '=' in text:
        key, value = text.split('=', 1)
    else:
        key, value = text, os.environ.get(text)
        if value is None:
            raise argparse.ArgumentTypeError('--env %s: not set in this environment' % text)
    if not key.isidentifier():
        raise argparse.ArgumentTypeError('--env: bad variable name %r' % key)
    return key, value


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = []
    if '--' in argv:
        i = argv.index('--')
        argv, command = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(
        prog='python -m dcn.tools.launch',
        description='Run a distributed (kvstore dist_sync / dist_device_sync / dist_async) job: '
                    'one scheduler, S servers and N workers, here or on the hosts of a host '
                    'file over ssh. The command follows "--".')
    parser.add_argument('-n', '--num-workers', type=int, required=True)
    parser.add_argument('-s', '--num-servers', type=int, default=None,
                        help='number of servers (default: number of workers)')
    parser.add_argument('-H', '--hostfile', default=None,
                        help='file with one host per line (HOST or USER@HOST); without it, '
                             'every process runs here on 127.0.0.1')
    parser.add_argument('--port', type=int, default=None,
                        help='scheduler port (default: a free port of this machine)')
    parser.add_argument('--scheduler-uri', default=None,
                        help='address the others reach the scheduler at (default: 127.0.0.1, '
                             'or the first host of the host file)')
    parser.add_argument('--timeout', type=float, default=None,
                        help='stop the whole job after this many seconds (exit status 124)')
    parser.add_argument('--ssh', default='ssh',
                        help='ssh command with its options, e.g. "ssh -p 2222" (host file only)')
    parser.add_argument('--workdir', default=None,
                        help='working directory on the hosts (default: the current directory)')
    parser.add_argument('--env', action='append', type=_env_arg, default=[],
                        metavar='VAR[=VALUE]',
                        help='set VAR for every process (its value here when no VALUE); '
                             'repeatable')
    parser.add_argument('--server-command', default=None,
                        help='command of the scheduler and servers (default: the worker '
                             'command; "python -m dcn.tools.launch --serve" works for any '
                             'worker command)')
    parser.add_argument('--grace', type=float, default=30.0,
                        help='seconds the servers get to exit after the workers finished')
    parser.add_argument('-v', '--verbose', type=int, default=0, help='PS_VERBOSE level (0-2)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the command of every process and exit')
    if argv[:1] == ['--serve']:
        return argparse.Namespace(serve=True)
    args = parser.parse_args(argv)
    args.serve = False
    if not command:
        parser.error('no command: put the worker command after "--"')
    if args.num_servers is None:
        args.num_servers = args.num_workers
    args.command = command
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.serve:
        run_server()
    hosts = parse_hostfile(args.hostfile) if args.hostfile else None
    server_command = shlex.split(args.server_command) if args.server_command else None
    launcher = Launcher(args.command, args.num_workers, args.num_servers, hosts=hosts,
                        port=args.port, root_uri=args.scheduler_uri, timeout=args.timeout,
                        ssh=args.ssh, workdir=args.workdir, extra_env=dict(args.env),
                        server_command=server_command, verbose=args.verbose, grace=args.grace)
    if args.dry_run:
        for spec in launcher.specs:
            argv, env = launcher.argv_env(spec)
            if env is not None:
                shown = dict(launcher.extra_env)
                shown.update(job_env(spec, launcher.num_workers, launcher.num_servers,
                                     launcher.root_uri, launcher.port, launcher.verbose))
                assigns = ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(shown.items()))
                print('[%s] %s %s' % (spec.label, assigns, ' '.join(map(shlex.quote, argv))))
            else:
                print('[%s] %s' % (spec.label, ' '.join(map(shlex.quote, argv))))
        return 0
    return launcher.run()


if __name__ == '__main__':
    sys.exit(main())

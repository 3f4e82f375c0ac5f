"""Network-namespace fault injection for Sluice clusters.

A `Network` is a set of hosts, each a network namespace with one address (10.77.0.x/24) on a
veth pair whose other end is a port of a bridge that lives in a namespace of its own. The
machine's own namespace is never touched, so runs cannot disturb it or each other.

    with Network() as net:
        cluster = Cluster(net, server_binary, workers=2)      # master + 2 workers, own hosts
        client = Client(net, cluster.target)                  # client on a host of its own
        client.request({"cmd": "init"})
        with net.partition(cluster.workers[0].host, cluster.workers[1].host):
            result = client.request({"cmd": "train"})       # runs while partitioned
        ...                                                   # healed here

Faults (each returns a `Fault`, healed by `heal()` or on leaving a `with` block):
  partition(a, b)        silent partition: each side drops what comes from the other (iptables)
  loss(a, b, p)          random loss, probability p each way (iptables -m statistic)
  cut(host)              the host's link to the bridge goes down (ip link set down)
  DelayProxy(...)        a TCP proxy adding a one-way delay (the kernel has no netem)

Everything is cleaned up on `Network.close()` (processes: SIGTERM then SIGKILL; faults healed;
namespaces deleted), on interpreter exit (atexit), and, for namespaces a killed run left
behind, by the next run (names carry the creating pid). Every server, proxy and client started
here holds a pipe to this process on its stdin and exits when it closes, so nothing outlives a
harness that is killed. Every wait has a deadline.
"""

import atexit
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

_NS_PREFIX = "slnt"  # Namespace names: slnt<pid>n<network>-<host>.
_SUBNET = "10.77.0"
CONTROL_PORT = 7000  # Every host has its own address, so every task can use the same ports.
DATA_PORT = 7001
_HERE = os.path.dirname(os.path.abspath(__file__))
_network_ids = itertools.count()
_SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "WARNING: ThreadSanitizer")
_open_networks = set()


def full_form():
    """SLUICE_NETNS_FULL=1 selects the tests' full form: more repetitions, longer windows."""
    return os.environ.get("SLUICE_NETNS_FULL", "") not in ("", "0")


class Unavailable(Exception):
    """Network namespaces cannot be made here; the message says why (tests skip with it)."""


def _run(argv, timeout=10, check=True):
    """Runs a short command (ip, iptables) with a deadline; returns CompletedProcess."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError("{} failed (exit {}): {}".format(
            " ".join(argv), result.returncode, result.stderr.strip()))
    return result


def check_prerequisites():
    """Raises Unavailable unless this process can make namespaces and iptables rules."""
    if os.geteuid() != 0:
        raise Unavailable("network namespaces need root (euid {})".format(os.geteuid()))
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            raise Unavailable("'{}' is not installed (tools/setup.sh installs it)".format(tool))
    probe = "{}{}probe".format(_NS_PREFIX, os.getpid())
    try:
        made = _run(["ip", "netns", "add", probe], check=False)
        if made.returncode != 0:
            raise Unavailable("cannot create a network namespace: " + made.stderr.strip())
        rule = _run(["ip", "netns", "exec", probe, "iptables", "-A", "INPUT", "-m", "statistic",
                     "--mode", "random", "--probability", "0.5", "-j", "DROP"], check=False)
        if rule.returncode != 0:
            raise Unavailable("cannot add iptables rules in a namespace: " + rule.stderr.strip())
    finally:
        _run(["ip", "netns", "del", probe], check=False)


def remove_stale_namespaces():
    """Deletes namespaces left by harness runs whose process is gone (a SIGKILLed run)."""
    listing = _run(["ip", "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(_NS_PREFIX):
            continue
        digits = "".join(itertools.takewhile(str.isdigit, name[len(_NS_PREFIX):]))
        if digits and int(digits) != os.getpid() and not os.path.exists("/proc/" + digits):
            _run(["ip", "netns", "del", name], check=False)


def output_dir():
    """Where logs and results go: Bazel's undeclared outputs, $SLUICE_NETNS_OUT, or a temp dir."""
    path = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or os.environ.get("SLUICE_NETNS_OUT")
    if not path:
        path = os.path.join(tempfile.gettempdir(), "sluice-netns-{}".format(os.getpid()))
    os.makedirs(path, exist_ok=True)
    return path


def record(scenario, **data):
    """Appends one scenario's observations to results.jsonl and prints them (pytest -rA shows)."""
    entry = dict(scenario=scenario, **data)
    with open(os.path.join(output_dir(), "results.jsonl"), "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
    print("RESULT " + json.dumps(entry, sort_keys=True), flush=True)


def wait_for(condition, timeout, what, interval=0.05):
    """Polls `condition()` until it returns a true value (returned) or `timeout` seconds pass
    (TimeoutError naming `what`). The poll interval grows to 0.5 s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after {:.1f} s waiting for {}".format(timeout, what))
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.5)


def percentile(values, p):
    """The p-th percentile (nearest rank) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


class Host:
    """One host: a network namespace with one address on the network's bridge."""

    def __init__(self, name, netns, address, bridge_port):
        self.name = name
        self.netns = netns
        self.address = address
        self.bridge_port = bridge_port  # The veth end in the bridge's namespace.

    def command(self, argv):
        """`argv` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns] + list(argv)

    def __repr__(self):
        return "<Host {} {}>".format(self.name, self.address)


class Process:
    """A process started in a host's namespace by `Network.start`: stdin is a lifeline pipe,
    stdout lines are kept (and matched for a ready line), stderr goes to a log file."""

    def __init__(self, name, host, argv, log_path, env=None):
        self.name = name
        self.host = host
        self.argv = list(argv)
        self.log_path = log_path
        self.returncode = None
        self._lines = queue.Queue()
        self._stdout = []
        with open(log_path, "ab") as log:
            log.write("\n=== {} started: {}\n".format(name, " ".join(argv)).encode())
            log.flush()
            self._popen = subprocess.Popen(host.command(argv), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=log, env=env)
        self.pid = self._popen.pid  # `ip netns exec` execs the command: this is its pid.
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self):
        for raw in self._popen.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self._stdout.append(line)
            self._lines.put(line)
        self._lines.put(None)  # End of output.

    def next_line(self, timeout, what):
        """The next stdout line; TimeoutError after `timeout` s, EOFError if the process ended."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("{}: no {} within {:.1f} s; log {}:\n{}".format(
                self.name, what, timeout, self.log_path, self.log_tail())) from None
        if line is None:
            self._lines.put(None)  # Later calls see the end too.
            raise EOFError("{} exited (status {}) before {}; log {}:\n{}".format(
                self.name, self.wait(timeout=5), what, self.log_path, self.log_tail()))
        return line

    def wait_for_line(self, prefix, timeout):
        """The first stdout line starting with `prefix` (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.0, deadline - time.monotonic()), repr(prefix))
            if line.startswith(prefix):
                return line

    def send_line(self, text):
        self._popen.stdin.write((text + "\n").encode())
        self._popen.stdin.flush()

    def alive(self):
        return self._popen.poll() is None

    def wait(self, timeout):
        """The exit status (negative: killed by that signal); TimeoutError if still running."""
        try:
            self.returncode = self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("{} still running after {:.1f} s".format(
                self.name, timeout)) from None
        return self.returncode

    def cpu_seconds(self):
        """User + system CPU time used so far (0 once the process is gone)."""
        try:
            with open("/proc/{}/stat".format(self.pid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self):
        """SIGKILL, as a crashed machine; returns the exit status."""
        if self.alive():
            self._popen.kill()
        return self.wait(timeout=10)

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after `timeout` s. Returns (exit status, seconds to exit after
        SIGTERM, whether SIGKILL was needed)."""
        start = time.monotonic()
        if not self.alive():
            return self.wait(timeout=1), 0.0, False
        self._popen.send_signal(signal.SIGTERM)
        try:
            status = self.wait(timeout)
            return status, time.monotonic() - start, False
        except TimeoutError:
            self._popen.kill()
            return self.wait(timeout=10), time.monotonic() - start, True
        finally:
            self._close_stdin()

    def _close_stdin(self):
        try:
            self._popen.stdin.close()
        except OSError:
            pass

    def log_tail(self, max_bytes=3000):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                return f.read().decode(errors="replace")
        except OSError as e:
            return "(no log: {})".format(e)


class Fault:
    """Rules or link states applied by a Network; `heal()` undoes them (idempotent)."""

    def __init__(self, network, description, undo):
        self.network = network
        self.description = description
        self._undo = undo  # Commands that undo it, run in reverse order.
        self.healed = False

    def heal(self):
        if self.healed:
            return
        self.healed = True
        for argv in reversed(self._undo):
            _run(argv, check=False)
        self.network._faults.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.heal()
        return False

    def __repr__(self):
        return "<Fault {}{}>".format(self.description, " (healed)" if self.healed else "")


class Network:
    """Hosts on one bridge, each in its own namespace; see the module docstring."""

    def __init__(self, log_dir=None):
        check_prerequisites()
        remove_stale_namespaces()
        self.id = "{}{}n{}".format(_NS_PREFIX, os.getpid(), next(_network_ids))
        self.log_dir = log_dir or os.path.join(output_dir(), self.id)
        os.makedirs(self.log_dir, exist_ok=True)
        self.hosts = {}
        self.processes = []
        self._faults = set()
        self._bridge_ns = self.id + "-br"
        self._namespaces = []
        self._closed = False
        _open_networks.add(self)
        try:
            self._add_namespace(self._bridge_ns)
            self._ip(self._bridge_ns, "link", "add", "br0", "type", "bridge")
            self._ip(self._bridge_ns, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, name):
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)
        self._ip(name, "link", "set", "lo", "up")

    @staticmethod
    def _ip(netns, *args):
        _run(["ip", "-n", netns] + list(args))

    def add_host(self, name):
        """A new host `name` with the next address on the bridge."""
        if name in self.hosts:
            raise ValueError("host {!r} exists".format(name))
        index = len(self.hosts)
        if index > 200:
            raise ValueError("too many hosts")
        netns = "{}-{}".format(self.id, name)
        port = "v{}".format(index)
        address = "{}.{}".format(_SUBNET, index + 2)
        self._add_namespace(netns)
        self._ip(self._bridge_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                 "netns", netns)
        self._ip(self._bridge_ns, "link", "set", port, "master", "br0", "up")
        self._ip(netns, "addr", "add", address + "/24", "dev", "eth0")
        self._ip(netns, "link", "set", "eth0", "up")
        host = Host(name, netns, address, port)
        self.hosts[name] = host
        return host

    def start(self, name, host, argv, env=None):
        """A Process running `argv` on `host`; its stderr is logged to <log_dir>/<name>.log."""
        proc = Process(name, host, argv, os.path.join(self.log_dir, name + ".log"), env=env)
        self.processes.append(proc)
        return proc

    # Faults. Rules go in the hosts' INPUT chains only: packets leave and vanish on the way, as
    # in a real partition (a DROP in OUTPUT would fail the sender's writes with EPERM at once).

    def _drop_rules(self, receiver, sender, extra):
        spec = ["INPUT", "-s", sender.address] + extra + [
            "-m", "comment", "--comment", self.id, "-j", "DROP"]
        _run(receiver.command(["iptables", "-A"] + spec))
        return receiver.command(["iptables", "-D"] + spec)

    def _fault(self, description, apply_steps):
        undo = []
        fault = Fault(self, description, undo)
        self._faults.add(fault)
        try:
            for step in apply_steps:
                undo.append(step())
        except BaseException:
            fault.heal()
            raise
        return fault

    def partition(self, a, b):
        """Silent partition between hosts `a` and `b`, both directions."""
        return self._fault("partition {}<->{}".format(a.name, b.name), [
            lambda: self._drop_rules(a, b, []),
            lambda: self._drop_rules(b, a, []),
        ])

    def loss(self, a, b, probability):
        """Random loss of `probability` on each packet between `a` and `b`, both directions."""
        extra = ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
        return self._fault("{:.0%} loss {}<->{}".format(probability, a.name, b.name), [
            lambda: self._drop_rules(a, b, extra),
            lambda: self._drop_rules(b, a, extra),
        ])

    def cut(self, host):
        """Takes `host`'s link to the bridge down (the host is cut from every other one)."""
        def down():
            self._ip(self._bridge_ns, "link", "set", host.bridge_port, "down")
            return ["ip", "-n", self._bridge_ns, "link", "set", host.bridge_port, "up"]
        return self._fault("link of {} down".format(host.name), [down])

    def heal_all(self):
        for fault in list(self._faults):
            fault.heal()

    def close(self):
        """Heals faults, stops every process (SIGTERM, then SIGKILL), deletes the namespaces.
        Returns {process name: exit status} of the processes it stopped."""
        if self._closed:
            return {}
        self._closed = True
        statuses = {}
        try:
            self.heal_all()
        finally:
            for proc in self.processes:
                try:
                    statuses[proc.name] = proc.stop(timeout=5)[0]
                except Exception as e:  # noqa: BLE001 - clean up the rest regardless
                    statuses[proc.name] = "stop failed: {}".format(e)
            for netns in reversed(self._namespaces):
                _run(["ip", "netns", "del", netns], check=False)
            _open_networks.discard(self)
        return statuses

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@atexit.register
def _close_open_networks():
    for net in list(_open_networks):
        net.close()


def install_signal_cleanup():
    """On SIGTERM (Bazel's test timeout, a CI cancel) clean up before dying: atexit alone does
    not run when a signal kills the interpreter."""
    def on_signal(signum, frame):
        _close_open_networks()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    signal.signal(signal.SIGTERM, on_signal)


def python_env():
    """The environment for Python processes on the hosts: this one's, with PYTHONPATH made
    absolute and led by the directory this process imports sluice from, if it can."""
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    try:
        import sluice
        paths.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(sluice.__file__))))
    except ImportError:
        pass  # The proxy and the harness's own tests do not need it.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class DelayProxy:
    """delay_proxy.py on `host`: connections to `address` go to `target` ("host:port"), each
    chunk delayed `delay_ms` each way."""

    def __init__(self, net, host, target, delay_ms, port=0, name=None):
        self.process = net.start(
            name or "proxy-{}".format(host.name), host,
            [sys.executable, "-u", os.path.join(_HERE, "delay_proxy.py"),
             "--listen", "{}:{}".format(host.address, port), "--target", target,
             "--delay_ms", str(delay_ms)], env=python_env())
        line = self.process.wait_for_line("PROXY_READY ", timeout=30)
        self.address = line.split("listen=", 1)[1].strip()


class Server:
    """One sluice_server task on its host, on the fixed ports, as `Cluster` starts it."""

    def __init__(self, cluster, job, task, host, extra_flags):
        self.cluster = cluster
        self.job = job
        self.task = task
        self.host = host
        self.extra_flags = list(extra_flags)
        self.process = None
        self.control_address = "{}:{}".format(host.address, CONTROL_PORT)

    @property
    def name(self):
        return "{}{}".format(self.job, self.task)

    def start(self, spec=None, timeout=60):
        argv = [self.cluster.server_binary, "--job=" + self.job, "--task={}".format(self.task),
                "--host=" + self.host.address, "--port={}".format(CONTROL_PORT),
                "--data_port={}".format(DATA_PORT), "--exit_on_stdin_eof"]
        if spec is not None:
            argv.append("--cluster_spec=" + json.dumps(spec))
        # $SLUICE_NETNS_SERVER_FLAGS: extra flags for every server, to try a setting by hand
        # (e.g. --credit_window=64); the scenarios themselves use the defaults.
        env_flags = os.environ.get("SLUICE_NETNS_SERVER_FLAGS", "").split()
        self.process = self.cluster.net.start(self.name, self.host,
                                              argv + self.extra_flags + env_flags)
        self.process.wait_for_line("SLUICE_SERVER_READY", timeout=timeout)
        return self

    def kill(self):
        return self.process.kill()

    def alive(self):
        return self.process is not None and self.process.alive()


class Cluster:
    """A master and `workers` workers, each sluice_server on a host of its own.

    `worker_address` maps a worker index to the control address the master's cluster spec
    gives for it (default: the worker's own), e.g. a DelayProxy's address in front of it; call
    `start_master()` yourself after setting that up when `start=False`."""

    def __init__(self, net, server_binary, workers=2, worker_flags=(), master_flags=(),
                 start=True):
        self.net = net
        self.server_binary = server_binary
        self.workers = [Server(self, "worker", i, net.add_host("worker{}".format(i)), worker_flags)
                        for i in range(workers)]
        self.master = Server(self, "master", 0, net.add_host("master"), master_flags)
        self.worker_address = {}
        if start:
            self.start_workers()
            self.start_master()

    def start_workers(self):
        for w in self.workers:
            w.start()

    def start_master(self):
        spec = {"worker": [self.worker_address.get(i, w.control_address)
                           for i, w in enumerate(self.workers)],
                "master": [self.master.control_address]}
        self.master.start(spec=spec)

    @property
    def target(self):
        return "grpc://" + self.master.control_address

    def servers(self):
        return self.workers + [self.master]

    def restart_worker(self, index):
        """Starts worker `index` again (after a kill) on the same host and ports."""
        w = self.workers[index]
        if w.alive():
            raise RuntimeError("{} is still running".format(w.name))
        return w.start()

    def dead_servers(self):
        """{name: exit status} of servers that are not running."""
        return {s.name: s.process.returncode if s.process else None
                for s in self.servers() if not s.alive()}

    def stop(self, timeout=10.0):
        """SIGTERMs every server; returns {name: (exit status, seconds, needed SIGKILL)}."""
        return {s.name: s.process.stop(timeout) for s in self.servers() if s.process}

    def check_health(self):
        """Problems seen so far: servers not running, sanitizer reports in their logs. Empty
        when all is well."""
        problems = ["{} is not running (exit status {})".format(name, status)
                    for name, status in self.dead_servers().items()]
        for s in self.servers():
            if s.process is None:
                continue
            with open(s.process.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
            for marker in _SANITIZER_MARKERS:
                if marker in text:
                    problems.append("{}: '{}' in {}".format(s.name, marker, s.process.log_path))
        return problems

    def logs(self):
        """The tails of every server's log, for failure messages."""
        return "\n".join("--- {} ({}):\n{}".format(s.name, s.process.log_path,
                                                   s.process.log_tail(1500))
                         for s in self.servers() if s.process)


class Client:
    """netns_client.py on a host of its own (or `host`): sends JSON commands, reads replies.
    With wait=False the constructor returns at once; call `wait_ready()` before anything else
    (starting many clients, then waiting for all, overlaps their start-up)."""

    def __init__(self, net, target, name="client", host=None, step_timeout_s=30.0, prefix="",
                 wait=True):
        self.host = host or net.hosts.get(name) or net.add_host(name)
        self.name = name
        self.process = net.start(
            name, self.host,
            [sys.executable, "-u", os.path.join(_HERE, "netns_client.py"), "--target", target,
             "--step_timeout_s", str(step_timeout_s), "--prefix", prefix], env=python_env())
        self.step_timeout_s = step_timeout_s
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=90.0):
        """Waits until the client has imported sluice and the master answered it."""
        self.request({"cmd": "ping"}, timeout=timeout)

    def send(self, command):
        """Sends a command without waiting for its reply (see `reply`)."""
        self.process.send_line(json.dumps(command))

    def reply(self, timeout):
        line = self.process.next_line(timeout, "reply")
        reply = json.loads(line)
        if "fatal" in reply:
            raise RuntimeError("{} failed: {}".format(self.process.name, reply["fatal"]))
        return reply

    def request(self, command, timeout=None):
        """Sends `command` and returns its reply; by default waits the client's step deadline
        plus a margin for every step it asks for."""
        if timeout is None:
            timeout = (self.step_timeout_s + 15) * int(command.get("steps", 1))
        self.send(command)
        return self.reply(timeout)

    def step(self, command, timeout=None):
        """One step's result: the reply itself, or the only result of a "train" command."""
        reply = self.request(command, timeout)
        return reply["results"][0] if "results" in reply else reply

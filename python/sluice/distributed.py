"""Clusters: `LocalCluster` starts real sluice_server processes on this machine, `Server` runs
one server task in this process, and `sl.Session(target)` runs a graph on either.

    with sl.LocalCluster(workers=2) as cluster:              # 1 master + 2 worker processes
        with sl.Session(cluster.target, graph=g) as sess:    # target: "grpc://127.0.0.1:port"
            sess.run(init)

    # One task of a cluster described by a spec (job -> list of "host:port", one per task):
    spec = sl.train.ClusterSpec({"ps": ["127.0.0.1:5000"],
                                 "worker": ["127.0.0.1:5001", "127.0.0.1:5002"]})
    server = sl.train.Server(spec, job_name="worker", task_index=1)
    with sl.Session(server.target) as sess:                  # any task serves sessions
        ...
    server.join()

Every server binds loopback unless told otherwise. A task's data plane listens on a port the OS
chooses, advertised to the other tasks over the control plane, so a spec needs one address per
task (consecutive ports are fine). Given a spec, every task serves sessions that run on all the
spec's tasks (except a job "master", which only serves sessions); a step waits (60 s, printing a
line every 5 s) for tasks not started yet. The sluice_server binary LocalCluster starts is, in
order: the `server_binary` argument, the SLUICE_SERVER_BINARY environment variable, or the
`sluice_server` beside the compiled module (tools/python_env.sh puts it there).
"""

import json
import os
import secrets

from sluice._core import core as _core

_TARGET_PREFIX = "grpc://"


def _master_address(target):
    """"grpc://host:port" -> "host:port"; ValueError for anything else."""
    if not isinstance(target, str) or not target.startswith(_TARGET_PREFIX):
        raise ValueError("session target {!r}: expected '' (in-process) or "
                         "'grpc://host:port' (a cluster's master)".format(target))
    address = target[len(_TARGET_PREFIX):]
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("session target {!r}: expected 'grpc://host:port'".format(target))
    return address


class ClusterSpec:
    """The tasks of a cluster: job name -> list of "host:port", task i at index i (TF1's
    tf.train.ClusterSpec). Built from a dict (lists, or TF's {index: address}), another
    ClusterSpec or the text form "worker=h:p,h:p;ps=h:p"; the engine validates the addresses
    when a Server starts."""

    def __init__(self, cluster):
        if isinstance(cluster, ClusterSpec):
            cluster = cluster.as_dict()
        if isinstance(cluster, str):
            cluster = {job.strip(): [a.strip() for a in tasks.split(",") if a.strip()]
                       for job, _, tasks in (entry.partition("=")
                                             for entry in cluster.split(";") if entry.strip())}
        if not isinstance(cluster, dict):
            raise TypeError("ClusterSpec: expected a dict {{job: [addresses]}}, a ClusterSpec "
                            "or a spec string, got {!r}".format(cluster))
        self._jobs = {}
        for job, addresses in cluster.items():
            if isinstance(addresses, dict):  # TF's sparse form {index: address}.
                if sorted(addresses) != list(range(len(addresses))):
                    raise ValueError("ClusterSpec job {!r}: task indices {} are not 0..{}".format(
                        job, sorted(addresses), len(addresses) - 1))
                addresses = [addresses[i] for i in range(len(addresses))]
            if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
                raise TypeError("cluster spec job {!r}: expected a list of 'host:port' "
                                "addresses, got {!r}".format(job, addresses))
            self._jobs[str(job)] = [str(a) for a in addresses]

    @property
    def jobs(self):
        """The job names, sorted."""
        return sorted(self._jobs)

    def as_dict(self):
        return {job: list(tasks) for job, tasks in self._jobs.items()}

    def num_tasks(self, job_name):
        return len(self._job(job_name))

    def task_indices(self, job_name):
        return list(range(self.num_tasks(job_name)))

    def task_address(self, job_name, task_index):
        tasks = self._job(job_name)
        if not 0 <= task_index < len(tasks):
            raise ValueError("job {!r} has {} tasks, no task {}".format(
                job_name, len(tasks), task_index))
        return tasks[task_index]

    def job_tasks(self, job_name):
        return list(self._job(job_name))

    def _job(self, job_name):
        if job_name not in self._jobs:
            raise ValueError("no job {!r} in the cluster spec (jobs: {})".format(
                job_name, ", ".join(self.jobs)))
        return self._jobs[job_name]

    def __eq__(self, other):
        return isinstance(other, ClusterSpec) and self._jobs == other._jobs

    def __repr__(self):
        return "ClusterSpec({!r})".format(self._jobs)


def _cluster_spec_text(cluster):
    """A cluster spec as the engine reads it: a dict {job: ["host:port", ...]} or a ClusterSpec
    becomes JSON; a string (JSON or "job=h:p,h:p;job=h:p") is passed through; None is no spec."""
    if cluster is None:
        return ""
    if isinstance(cluster, ClusterSpec):
        cluster = cluster.as_dict()
    if isinstance(cluster, str):
        return cluster
    if isinstance(cluster, dict):
        spec = {}
        for job, addresses in cluster.items():
            if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
                raise TypeError("cluster spec job {!r}: expected a list of 'host:port' "
                                "addresses, got {!r}".format(job, addresses))
            spec[str(job)] = [str(a) for a in addresses]
        return json.dumps(spec)
    raise TypeError("cluster spec: expected a dict {{job: [addresses]}} or a string, got "
                    "{!r}".format(cluster))


def find_server_binary(server_binary=None):
    """The path of the sluice_server binary to start (see the module docstring)."""
    explicit = server_binary or os.environ.get("SLUICE_SERVER_BINARY")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise FileNotFoundError(
                "sluice_server binary {!r} is not an executable file".format(explicit))
        return explicit
    beside = os.path.join(os.path.dirname(os.path.abspath(_core.__file__)), "sluice_server")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    raise FileNotFoundError(
        "cannot find the sluice_server binary: pass server_binary=, set SLUICE_SERVER_BINARY, "
        "or run  eval \"$(tools/python_env.sh)\"  which installs it beside the module")


def set_cluster_token(token=None, file=None):
    """Sets this process's cluster token (from `token`, or the owner-only `file`): every call
    it makes to a cluster carries it, as servers started with that token require
    (docs/security.md). `set_cluster_token("")` clears it. Sessions and LocalClusters also
    take it from the SLUICE_CLUSTER_TOKEN or SLUICE_CLUSTER_TOKEN_FILE environment variable."""
    if file is not None:
        token = _core._load_cluster_token(str(file))
    _core._set_cluster_token("" if token is None else str(token))


_tls_files = ("", "", "", False)  # This process's TLS files, as last set (set_tls).


def set_tls(cert=None, key=None, ca=None, require_client_cert=False):
    """Sets this process's TLS files (PEM paths) for channels (and servers) built from now on:
    `ca` verifies the servers it calls; `cert` and `key` are presented as its client
    certificate (mutual TLS) and served by an sl.Server. All None: plaintext again. Raises
    NotFoundError, PermissionDeniedError (a key others may read) or InvalidArgumentError naming
    the file or the missing piece."""
    global _tls_files
    files = (str(cert or ""), str(key or ""), str(ca or ""), bool(require_client_cert))
    _core._set_tls(*files)
    _tls_files = files


def make_test_certificates(directory, hosts=("127.0.0.1", "localhost"), days=2):
    """A throwaway CA and, signed by it, a server certificate naming `hosts` (also good as a
    client certificate) and a client certificate, written to `directory` with the `openssl`
    command. For tests and local clusters, not for production (keys unprotected on disk).
    Returns {"ca", "ca_key", "server", "server_key", "client", "client_key"}: file paths."""
    import subprocess
    d = str(directory)
    paths = {k: os.path.join(d, v) for k, v in (
        ("ca", "ca.pem"), ("ca_key", "ca.key"), ("server", "server.pem"),
        ("server_key", "server.key"), ("client", "client.pem"), ("client_key", "client.key"))}
    key_args = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    run("req", "-x509", *key_args, "-keyout", paths["ca_key"], "-out", paths["ca"],
        "-days", str(days), "-subj", "/CN=sluice test CA")
    sans = ",".join(("IP:" if h.replace(".", "").isdigit() or ":" in h else "DNS:") + h
                    for h in hosts)
    for who, usage, extra in (("server", "serverAuth,clientAuth", "subjectAltName=" + sans),
                              ("client", "clientAuth", "")):
        ext = os.path.join(d, who + ".ext")
        with open(ext, "w") as f:
            f.write("extendedKeyUsage={}\n{}\n".format(usage, extra))
        csr = os.path.join(d, who + ".csr")
        run("req", *key_args, "-keyout", paths[who + "_key"], "-out", csr,
            "-subj", "/CN=sluice test " + who)
        run("x509", "-req", "-in", csr, "-CA", paths["ca"], "-CAkey", paths["ca_key"],
            "-CAcreateserial", "-out", paths[who], "-days", str(days), "-extfile", ext)
    for k in ("ca_key", "server_key", "client_key"):
        os.chmod(paths[k], 0o600)
    return paths


def _token_from_environment():
    """Applies SLUICE_CLUSTER_TOKEN(_FILE) from the environment, if set."""
    if os.environ.get("SLUICE_CLUSTER_TOKEN_FILE"):
        set_cluster_token(file=os.environ["SLUICE_CLUSTER_TOKEN_FILE"])
    elif os.environ.get("SLUICE_CLUSTER_TOKEN"):
        set_cluster_token(os.environ["SLUICE_CLUSTER_TOKEN"])


class LocalCluster:
    """A Sluice cluster on this machine: one master, `workers` worker processes and `ps`
    parameter-server processes, each a real sluice_server on free loopback ports. Stopped by
    `stop()` or on leaving a `with` block.

    Args:
      workers: number of worker tasks ("/job:worker/task:0" ... ).
      server_binary: path of sluice_server (default: see the module docstring).
      worker_flags, master_flags: extra sluice_server flags, e.g. ["--credit_window=2"]
        (worker_flags go to the ps tasks too).
      ps: number of parameter-server tasks ("/job:ps/task:0" ...), default none.
      cluster_token: a token every call to the cluster must carry (docs/security.md): "auto"
        for a random one, or a string; the servers get it through their environment and this
        process signs its calls with it (set_cluster_token). Default: none, unless
        SLUICE_CLUSTER_TOKEN(_FILE) is set in the environment.
      tls: True for TLS on every plane: a throwaway CA and certificates
        (make_test_certificates) in a temporary directory (`tls_files` names them); this
        process calls the cluster with the CA and the client certificate (set_tls) until
        stop(). require_client_cert: the servers also refuse clients without a certificate
        from that CA (mutual TLS).

    Attributes:
      target: the session target of the master, "grpc://127.0.0.1:port".
    """

    def __init__(self, workers=2, server_binary=None, worker_flags=(), master_flags=(), ps=0,
                 cluster_token=None, tls=False, require_client_cert=False):
        if int(workers) < 1:
            raise ValueError("LocalCluster needs at least one worker, got {}".format(workers))
        if int(ps) < 0:
            raise ValueError("LocalCluster's ps count must be >= 0, got {}".format(ps))
        if cluster_token == "auto":
            cluster_token = secrets.token_hex(16)
        self._environment = None  # What to restore on stop, when this cluster set a token.
        if cluster_token is not None:
            # The servers inherit it through their environment (never their command line).
            self._environment = {k: os.environ.get(k) for k in
                                 ("SLUICE_CLUSTER_TOKEN", "SLUICE_CLUSTER_TOKEN_FILE")}
            os.environ["SLUICE_CLUSTER_TOKEN"] = str(cluster_token)
            os.environ.pop("SLUICE_CLUSTER_TOKEN_FILE", None)
        _token_from_environment()
        self.tls_files, self._tls_before = None, None
        if tls:
            import tempfile
            self.tls_files = make_test_certificates(tempfile.mkdtemp(prefix="sluice-tls-"))
            f = self.tls_files
            flags = ["--tls_cert=" + f["server"], "--tls_key=" + f["server_key"],
                     "--tls_ca=" + f["ca"]] + (["--require_client_cert"] if require_client_cert
                                               else [])
            worker_flags, master_flags = list(worker_flags) + flags, list(master_flags) + flags
            self._tls_before = _tls_files
            set_tls(f["client"], f["client_key"], f["ca"])
        try:
            self._cluster = _core.LocalCluster(find_server_binary(server_binary), int(workers),
                                               [str(f) for f in worker_flags],
                                               [str(f) for f in master_flags], int(ps))
        except BaseException:
            self.stop()
            raise
        self.target = _TARGET_PREFIX + self._cluster.master_address

    @property
    def num_workers(self):
        """The number of worker tasks."""
        return self._live().num_workers

    @property
    def num_ps(self):
        """The number of parameter-server tasks (job "ps")."""
        return self._live().num_ps

    def ps_address(self, index):
        """(control address, data address) of parameter-server task `index`."""
        return self._live().ps_addresses(index)

    def worker_address(self, index):
        """(control address, data address) of worker `index`."""
        return self._live().worker_addresses(index)

    def metrics_url(self, job="worker", index=0):
        """http://host:port/metrics of a task started with "--metrics_port=0" among its flags
        (Prometheus' text format: steps, step latency, bytes per plane and peer, mailbox
        bytes); None when it serves none."""
        address = self._live().metrics_address(job, index)
        return "http://{}/metrics".format(address) if address else None

    def ps_pid(self, index):
        """The process id of parameter-server task `index`."""
        return self._live().ps_pid(index)

    def worker_pid(self, index):
        """The process id of worker `index`."""
        return self._live().worker_pid(index)

    def cpu_seconds(self, job="worker", index=0):
        """The CPU time (user + system, every thread) task `index` of `job` ("master",
        "worker" or "ps") has used so far, in seconds (Linux /proc)."""
        live = self._live()
        if job == "master":
            pid = live.master_pid
        elif job == "worker":
            pid = live.worker_pid(index)
        elif job == "ps":
            pid = live.ps_pid(index)
        else:
            raise ValueError("LocalCluster has jobs 'master', 'worker' and 'ps', not {!r}".format(
                job))
        with open("/proc/{}/stat".format(pid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill_ps(self, index):
        """Kills parameter-server task `index` with SIGKILL; steps using it fail naming it."""
        self._live().kill_ps(index)

    def restart_ps(self, index):
        """Starts ps task `index` again on its ports (its variables are gone: restore them)."""
        self._live().restart_ps(index)

    def kill_worker(self, index):
        """Kills worker `index` with SIGKILL, as a crashed machine; steps using it fail."""
        self._live().kill_worker(index)

    def restart_worker(self, index):
        """Starts a killed worker again on its ports (a new incarnation the master rejoins)."""
        self._live().restart_worker(index)

    def stop(self):
        """Stops every server process (SIGTERM) and waits for them. Idempotent. A token this
        cluster set is taken back (the environment's, if any, applies again)."""
        self._cluster = None
        if self._tls_before is not None:
            set_tls(*self._tls_before)
            self._tls_before = None
        if self._environment is not None:
            for key, value in self._environment.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._environment = None
            set_cluster_token("")
            _token_from_environment()

    def _live(self):
        if self._cluster is None:
            raise RuntimeError("the LocalCluster is stopped")
        return self._cluster

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

    def __repr__(self):
        state = "stopped" if self._cluster is None else "{} workers".format(self.num_workers)
        return "<sluice.LocalCluster {} {}>".format(self.target, state)


class Server:
    """One task of a Sluice cluster, served from this process until `stop()` (TF1's
    tf.train.Server).

    Args:
      cluster: the cluster spec: a ClusterSpec, {job: ["host:port", ...]} or its text form. It
        gives this task's control port (unless `port` is given) and the tasks the sessions this
        server serves run on. None: no spec (a worker started with `port`, serving no sessions).
      job_name: this task's job ("worker", "ps", ...; "master" serves sessions only); may be
        omitted when the spec has a single job.
      task_index: this task's index in its job; may be omitted when the job has one task.
      host: interface to bind (loopback by default).
      port: control port overriding the spec's (0: the OS chooses).
      data_port: the data plane's port (default: the OS chooses; advertised to the others).
      protocol, config: accepted for TF1 compatibility ("grpc" only; config is ignored).
      Server.from_environment() takes cluster, job and task from SLUICE_CONFIG or Slurm.
      start: False delays listening until `start()`.
      wait_for_tasks_ms: how long a step waits for tasks of the spec not started yet.

    Attributes:
      target: "grpc://control address", the session target of this task.
    """

    @classmethod
    def from_environment(cls, **kwargs):
        """A Server for the task the environment names: SLUICE_CONFIG's JSON ({"cluster":
        {job: ["host:port", ...]}, "task": {"type": job, "index": i}}) or, without it, Slurm's
        variables (docs/deploy.md); `kwargs` go to the constructor (host, ...). ValueError when
        neither is set; InvalidArgumentError naming what is malformed."""
        config = _core._config_from_environment()
        if config is None:
            raise ValueError("neither SLUICE_CONFIG nor Slurm's SLURM_PROCID is set")
        cluster, job, task = config
        return cls(cluster, job_name=job, task_index=task, **kwargs)

    def __init__(self, cluster, job_name=None, task_index=None, host="127.0.0.1", port=None,
                 data_port=None, protocol=None, config=None, start=True,
                 wait_for_tasks_ms=60000):
        del config
        if protocol not in (None, "grpc"):
            raise ValueError("Server protocol {!r}: only 'grpc' is supported".format(protocol))
        spec = ClusterSpec(cluster) if isinstance(cluster, (dict, ClusterSpec)) else None
        if job_name is None:
            if spec is None or len(spec.jobs) != 1:
                raise ValueError("Server needs job_name= unless the cluster spec has one job")
            job_name = spec.jobs[0]
        if task_index is None:
            if spec is not None and job_name in spec.jobs and spec.num_tasks(job_name) > 1:
                raise ValueError("Server needs task_index= for job {!r}, which has {} "
                                 "tasks".format(job_name, spec.num_tasks(job_name)))
            task_index = 0
        self.job_name = str(job_name)
        self.task_index = int(task_index)
        self._args = (_cluster_spec_text(cluster), self.job_name, self.task_index, host,
                      -1 if port is None else int(port), 0 if data_port is None else int(data_port),
                      int(wait_for_tasks_ms))
        self._server = None
        self.target = None
        if start:
            self.start()

    def start(self):
        """Starts listening (a no-op when already started)."""
        if self._server is None:
            spec, job, task, host, port, data_port, wait_ms = self._args
            self._server = _core.Server(spec, job, task, host=host, control_port=port,
                                        data_port=data_port, wait_for_tasks_ms=wait_ms)
            self.target = _TARGET_PREFIX + self._server.control_address

    @property
    def data_address(self):
        """The address of this task's data plane."""
        return self._server.data_address

    def join(self):
        """Blocks until the server is stopped (from another thread)."""
        self._server.join()

    def stop(self):
        """Stops serving: cancels running steps and closes both ports. Idempotent."""
        if self._server is not None:
            self._server.stop()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        return False

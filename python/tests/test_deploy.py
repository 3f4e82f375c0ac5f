"""Tasks that find their cluster in the environment: sluice_server processes started with only
SLUICE_CONFIG (TF_CONFIG's layout) form a cluster that runs a step across workers, and
sl.Server.from_environment() serves the task the variable names; malformed configurations are
refused naming the problem."""

import json
import os
import socket
import subprocess

import numpy as np
import pytest

import sluice as sl
from sluice import distributed


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_servers_started_from_sluice_config_form_a_cluster():
    ports = free_ports(3)
    cluster = {"master": ["127.0.0.1:%d" % ports[0]],
               "worker": ["127.0.0.1:%d" % p for p in ports[1:]]}
    binary = distributed.find_server_binary(None)
    procs = []
    try:
        for job, index in (("worker", 0), ("worker", 1), ("master", 0)):
            env = dict(os.environ, SLUICE_CONFIG=json.dumps(
                {"cluster": cluster, "task": {"type": job, "index": index}}))
            procs.append(subprocess.Popen([binary, "--exit_on_stdin_eof"], env=env,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True))
        for p in procs:  # Each says where it listens once ready.
            line = p.stdout.readline()
            assert line.startswith("SLUICE_SERVER_READY"), line
        assert "job=master task=0 control=127.0.0.1:%d" % ports[0] in line
        g = sl.Graph()
        with g.as_default():
            with sl.device("/job:worker/task:0"):
                a = sl.constant([1.0, 2.0])
            with sl.device("/job:worker/task:1"):
                b = a * 10.0
        with sl.Session("grpc://127.0.0.1:%d" % ports[0], graph=g) as sess:
            np.testing.assert_array_equal(sess.run(b), [10, 20])
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=30)


def test_server_from_environment_and_bad_configurations(monkeypatch):
    (port,) = free_ports(1)
    monkeypatch.setenv("SLUICE_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:%d" % port]}, "task": {"type": "worker", "index": 0}}))
    server = sl.Server.from_environment()
    try:
        assert server.target == "grpc://127.0.0.1:%d" % port
        assert (server.job_name, server.task_index) == ("worker", 0)
    finally:
        server.stop()
    monkeypatch.setenv("SLUICE_CONFIG", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps",'
                                        ' "index": 0}}')
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match="SLUICE_CONFIG: the cluster has no job 'ps' for this task"):
        sl.Server.from_environment()
    binary = distributed.find_server_binary(None)
    out = subprocess.run([binary], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode != 0
    assert "SLUICE_CONFIG: the cluster has no job 'ps' for this task" in out.stderr
    monkeypatch.delenv("SLUICE_CONFIG")
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    with pytest.raises(ValueError, match="neither SLUICE_CONFIG nor Slurm's SLURM_PROCID"):
        sl.Server.from_environment()

"""TLS on every plane, on real server processes: a LocalCluster with mutual TLS runs a step that
crosses workers (control and data planes encrypted); a plaintext client, a client trusting
another CA and a client without a certificate are refused on the master's, a worker's control
and a worker's data port; bad TLS files are refused with the reason."""

import os

import numpy as np
import pytest

import sluice as sl
from sluice._core import core as _core


def two_worker_graph():
    g = sl.Graph()
    with g.as_default():
        with sl.device("/job:worker/task:0"):
            a = sl.constant(np.arange(4, dtype=np.float32))
        with sl.device("/job:worker/task:1"):
            b = a + 1.0
    return g, b


def ports(cluster):
    master = cluster.target[len("grpc://"):]
    control, data = cluster.worker_address(1)
    return {"master": master, "control": control, "data": data}


def test_mutual_tls_cluster_runs_and_refuses_strangers(tmp_path):
    with sl.LocalCluster(workers=2, tls=True, require_client_cert=True) as cluster:
        g, b = two_worker_graph()
        with sl.Session(cluster.target, graph=g) as sess:
            np.testing.assert_array_equal(sess.run(b), [1, 2, 3, 4])
        f = cluster.tls_files
        addresses = ports(cluster)
        # With the cluster's CA and a client certificate: the control ports answer, and the
        # data port speaks TLS too (it serves no Heartbeat: UNIMPLEMENTED, not a handshake
        # failure).
        assert _core._heartbeat(addresses["master"]) == "OK"
        assert _core._heartbeat(addresses["control"]) == "OK"
        assert _core._heartbeat(addresses["data"]).startswith("UNIMPLEMENTED")
        other = sl.distributed.make_test_certificates(tmp_path)
        strangers = {"plaintext": {}, "another CA": {"ca": other["ca"]},
                     "no client certificate": {"ca": f["ca"]},
                     "a certificate from another CA": {"cert": other["client"],
                                                       "key": other["client_key"],
                                                       "ca": f["ca"]}}
        try:
            for who, files in strangers.items():
                sl.set_tls(**files)
                for port, address in addresses.items():
                    status = _core._heartbeat(address)
                    assert status.startswith("UNAVAILABLE"), (who, port, status)
        finally:
            sl.set_tls(f["client"], f["client_key"], f["ca"])
        assert _core._heartbeat(addresses["control"]) == "OK"
    # The cluster gave this process's configuration back: plaintext again.
    with sl.LocalCluster(workers=1) as plain:
        assert _core._heartbeat(plain.worker_address(0)[0]) == "OK"


def test_server_authenticated_tls_needs_no_client_certificate():
    with sl.LocalCluster(workers=2, tls=True) as cluster:
        sl.set_tls(ca=cluster.tls_files["ca"])
        g, b = two_worker_graph()
        with sl.Session(cluster.target, graph=g) as sess:
            np.testing.assert_array_equal(sess.run(b), [1, 2, 3, 4])


def test_bad_tls_files_are_refused_with_the_reason(tmp_path):
    f = sl.distributed.make_test_certificates(tmp_path)
    with pytest.raises(sl.errors.NotFoundError, match="TLS CA file .*missing.pem does not exist"):
        sl.set_tls(ca=str(tmp_path / "missing.pem"))
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match="a TLS certificate needs its key and a key its certificate"):
        sl.set_tls(cert=f["server"], ca=f["ca"])
    os.chmod(f["server_key"], 0o644)
    with pytest.raises(sl.errors.PermissionDeniedError,
                       match="TLS key file .*server.key may be read by group or others"):
        sl.set_tls(cert=f["server"], key=f["server_key"], ca=f["ca"])
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(sl.errors.InvalidArgumentError, match="holds no PEM block"):
        sl.set_tls(ca=str(tmp_path / "empty.pem"))
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match="requiring client certificates needs the CA"):
        sl.set_tls(require_client_cert=True)
    sl.set_tls()  # Plaintext.


def test_a_session_belongs_to_the_certificate_that_created_it(tmp_path):
    """Under mutual TLS a session is bound to its creator's certificate: another member of the
    cluster (a certificate from the same CA) that learns the handle cannot close it."""
    import subprocess
    with sl.LocalCluster(workers=2, tls=True, require_client_cert=True) as cluster:
        f = cluster.tls_files
        g, b = two_worker_graph()
        master = cluster.target[len("grpc://"):]
        with sl.Session(cluster.target, graph=g) as sess:
            sess.run(b)
            handle = sess._session.handle
            assert len(handle.rsplit("-", 1)[1]) == 32  # 128 random bits.
            key, csr, cert = (str(tmp_path / n) for n in ("other.key", "other.csr", "other.pem"))
            subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                            csr, "-subj", "/CN=another member"], check=True, capture_output=True)
            subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", f["ca"], "-CAkey",
                            f["ca_key"], "-CAcreateserial", "-out", cert, "-days", "1"],
                           check=True, capture_output=True)
            os.chmod(key, 0o600)
            try:
                sl.set_tls(cert, key, f["ca"])
                assert _core._close_session(master, handle) == (
                    "PERMISSION_DENIED: session '{}' belongs to the client that created it "
                    "(another certificate)".format(handle))
            finally:
                sl.set_tls(f["client"], f["client_key"], f["ca"])
            np.testing.assert_array_equal(sess.run(b), [1, 2, 3, 4])  # Still its owner's.
            assert _core._close_session(master, handle) == "OK"

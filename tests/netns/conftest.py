"""Fixtures of the netns fault tests: the sluice_server binary and one fresh Network per test
(skipped, with the reason, where network namespaces cannot be made)."""

import os
import re

import pytest

import netns_harness as nh

nh.install_signal_cleanup()


@pytest.fixture(scope="session")
def server_binary():
    try:
        nh.check_prerequisites()
    except nh.Unavailable as e:
        pytest.skip("network namespaces unavailable: {}".format(e))
    # Imported here, not above: the harness's own tests run without the module.
    from sluice.distributed import find_server_binary
    return find_server_binary()


@pytest.fixture
def net(server_binary, request):
    log_dir = os.path.join(nh.output_dir(), re.sub(r"[^\w.-]", "_", request.node.name))
    with nh.Network(log_dir=log_dir) as network:
        yield network

"""Shared fixtures: every test builds into a fresh graph of its own."""

import pytest

import sluice as sl


@pytest.fixture
def graph():
    """A fresh Graph, installed as the default graph for the test."""
    g = sl.Graph()
    with g.as_default():
        yield g


@pytest.fixture
def sess(graph):
    """An in-process Session on the test's graph."""
    with sl.Session(graph=graph) as s:
        yield s

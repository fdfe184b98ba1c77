"""The local SLURM cluster helper without starting it: when is a node ready, what is left behind."""

from __future__ import annotations

import pytest
import slurm_cluster
from slurm_cluster import LocalSlurm, node_ready


@pytest.mark.parametrize(
    ("sinfo", "ready"),
    [
        ("idle\n", True),
        ("idle\nidle\n", True),
        ("  idle  \n\n", True),
        ("idle*\n", False),  # registered but not responding: jobs would pend
        ("idle~\n", False),  # powered off
        ("idle#\n", False),  # powering up
        ("down*\n", False),
        ("unknown\n", False),
        ("mixed\n", False),
        ("idle\nidle*\n", False),  # every node must be ready
        ("", False),  # slurmctld not answering yet
    ],
)
def test_node_ready_only_for_plainly_idle_nodes(sinfo, ready):
    assert node_ready(sinfo) is ready


@pytest.fixture
def etc(tmp_path, monkeypatch):
    """The cluster's fixed paths (/etc/munge/munge.key, /etc/slurm/slurm.conf) moved under tmp_path/etc."""
    monkeypatch.setattr(slurm_cluster, "MUNGE_KEY", tmp_path / "etc/munge/munge.key")
    monkeypatch.setattr(slurm_cluster, "SLURM_CONF", tmp_path / "etc/slurm/slurm.conf")
    cluster = LocalSlurm(tmp_path / "state")
    cluster.socket = tmp_path / "munge.socket"
    return tmp_path / "etc", cluster


def test_exit_removes_every_file_and_folder_it_created(etc):
    root, cluster = etc
    cluster._write_munge_key()
    cluster._write_conf()
    assert slurm_cluster.MUNGE_KEY.exists() and slurm_cluster.SLURM_CONF.exists()
    cluster.__exit__(None, None, None)
    assert not root.exists()


def test_exit_keeps_what_was_there_before(etc):
    root, cluster = etc
    slurm_cluster.MUNGE_KEY.parent.mkdir(parents=True)
    slurm_cluster.MUNGE_KEY.write_bytes(b"the site's key")
    slurm_cluster.SLURM_CONF.parent.mkdir(parents=True)
    slurm_cluster.SLURM_CONF.write_text("the site's conf")
    cluster._write_munge_key()
    cluster._write_conf()
    assert "SlurmctldHost" in slurm_cluster.SLURM_CONF.read_text()
    cluster.__exit__(None, None, None)
    assert slurm_cluster.MUNGE_KEY.read_bytes() == b"the site's key"
    assert slurm_cluster.SLURM_CONF.read_text() == "the site's conf"
    assert sorted(p.name for p in root.rglob("*")) == ["munge", "munge.key", "slurm", "slurm.conf"]

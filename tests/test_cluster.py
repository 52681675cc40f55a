"""A study on a real multi-node Ray cluster, and a unit whose disk is full.

One cluster per module, started on this machine with Ray's own ``ray.cluster_utils.Cluster``: a head
without CPUs (as on a cluster whose head only schedules) and two worker nodes of one CPU each, one of
which declares a GPU (there is none: Ray only places by the resource). Units are the test-only kinds of
tests/cluster_units.py (sleep, write bytes, say where they ran), which each test job's workers import
through ``worker_process_setup_hook``; ``--address`` is tested with the CLI and a real (tiny) study.
The test that removes a node runs last: the module's cluster has one worker node after it.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import cluster_units
import pytest
import ray
from cluster_units import log_lines, setup_worker, setup_worker_with_file_size_limit, step
from ray.cluster_utils import Cluster
from test_study import train_only_config

import stitchkit
from stitchkit.study import Store, run_study
from stitchkit.study import runner as runner_module
from stitchkit.study.integrity import store_problem
from stitchkit.study.units import unit_dir

pytestmark = pytest.mark.cluster

TESTS = Path(__file__).resolve().parent
SRC = Path(stitchkit.__file__).resolve().parents[1]
WORKER = re.compile(r"^\S+:\d+ node=([0-9a-f]{12})$")


@pytest.fixture(scope="module")
def cluster():
    """Head (0 CPUs) + a GPU node + a CPU node. Their workers import this checkout's stitchkit and
    tests/cluster_units.py (PYTHONPATH is inherited by the node processes)."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(SRC)] + ([previous] if previous else []))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    gpu = c.add_node(num_cpus=1, num_gpus=1)
    cpu = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    try:
        yield c, gpu, cpu
    finally:
        ray.shutdown()
        c.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


@contextlib.contextmanager
def job(cluster, hook=setup_worker):
    """This process as a Ray driver on the cluster; the job's workers run ``hook`` when they start."""
    own_print = builtins.print  # ray.init replaces it with Ray's own; later tests in this process expect Python's
    ray.init(address=cluster.address, runtime_env={"worker_process_setup_hook": hook}, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        builtins.print = own_print


def study(tmp_path, monkeypatch, units, device="cpu"):
    """A study config (only its [study] section matters) whose plan is ``units``."""
    config = train_only_config(tmp_path, seeds=(0,))
    config.write_text(config.read_text().replace('device = "cpu"', f'device = "{device}"'))
    monkeypatch.setattr(runner_module, "plan_study", lambda config, study_dir: list(units))
    return config


def records(study_dir):
    with Store(Path(study_dir) / "study.sqlite") as store:
        return store.all()


def node_of(record) -> str:
    match = WORKER.match(record.worker or "")
    assert match, f"worker {record.worker!r} does not name a Ray node"
    return match.group(1)


def test_units_spread_over_the_nodes_and_the_store_records_where(cluster, tmp_path, monkeypatch):
    c, gpu, cpu = cluster
    log = str(tmp_path / "log")
    units = [step(f"u{i}", log, seconds=2.0) for i in range(4)]  # long enough to overlap however slowly workers start
    config = study(tmp_path, monkeypatch, units)
    with job(c):
        summary = run_study(config, tmp_path / "s", executor="ray", address=c.address, progress=False)
    assert summary.counts["done"] == 4 and summary.ran == 4
    rows = records(tmp_path / "s")
    nodes = {r.label: node_of(r) for r in rows}
    assert set(nodes.values()) == {gpu.node_id[:12], cpu.node_id[:12]}  # both worker nodes, never the CPU-less head
    for r in rows:
        assert r.metrics["node"][:12] == nodes[r.label]  # the store names the node the unit itself ran on
    assert (
        max_in_flight(log) == 2
    )  # --address: as many units at once as the cluster has CPUs (workers=1 sizes a local Ray only)


def max_in_flight(log: str) -> int:
    running, most = 0, 0
    for event, *_ in log_lines(log):
        running += 1 if event == "start" else -1
        most = max(most, running)
    return most


def test_gpu_units_go_to_the_gpu_node_unless_the_study_runs_on_the_cpu(cluster, tmp_path, monkeypatch):
    c, gpu, cpu = cluster
    log = str(tmp_path / "log")
    units = [step(f"g{i}", log, seconds=0.5, gpu=True) for i in range(2)] + [step(f"c{i}", log) for i in range(2)]
    with job(c):
        run_study(
            study(tmp_path, monkeypatch, units, device="auto"),
            tmp_path / "auto",
            executor="ray",
            address=c.address,
            progress=False,
        )
        by_label = {r.label: r for r in records(tmp_path / "auto")}
        for name in ("g0", "g1"):
            assert node_of(by_label[name]) == gpu.node_id[:12] and by_label[name].metrics["gpu_ids"] == ["0"]
        assert by_label["c0"].metrics["gpu_ids"] == [] and by_label["c1"].metrics["gpu_ids"] == []
        # device = "cpu": a kind that uses a GPU asks for none, so both nodes take such units
        cpu_units = [step(f"k{i}", log, seconds=1.0, gpu=True) for i in range(2)]
        run_study(
            study(tmp_path, monkeypatch, cpu_units, device="cpu"),
            tmp_path / "cpu",
            executor="ray",
            address=c.address,
            progress=False,
        )
        rows = records(tmp_path / "cpu")
        assert all(r.status == "done" and r.metrics["gpu_ids"] == [] for r in rows)
        assert {node_of(r) for r in rows} == {gpu.node_id[:12], cpu.node_id[:12]}


def assert_sound(study_dir, planned):
    """Exactly one row per planned unit, no partial folder, a sound store."""
    study_dir = Path(study_dir)
    rows = records(study_dir)
    assert sorted(r.id for r in rows) == sorted(u.id for u in planned)
    assert not list((study_dir / "units").glob(".tmp-*"))
    assert store_problem(study_dir / "study.sqlite") is None
    return {r.label: r for r in rows}


def test_a_full_disk_fails_one_unit_cleanly_and_freeing_space_completes_it(cluster, tmp_path, monkeypatch):
    c, _, _ = cluster
    log = str(tmp_path / "log")
    big = cluster_units.FULL_DISK_LIMIT * 3
    units = [step("small0", log), step("big", log, nbytes=big), step("small1", log)]
    config = study(tmp_path, monkeypatch, units)
    out = tmp_path / "s"
    with job(c, hook=setup_worker_with_file_size_limit):
        summary = run_study(config, out, executor="ray", address=c.address, progress=False)
    assert summary.counts == {"pending": 0, "running": 0, "done": 2, "failed": 1}
    rows = assert_sound(out, units)
    error = rows["big"].error
    folder = unit_dir(out.absolute(), units[1])
    assert error.startswith(f"the file size limit (ulimit -f) was reached while writing {folder}"), error
    assert "free space and run the study again" in error
    assert not folder.exists()  # nothing half-written under the final name
    assert rows["small0"].status == rows["small1"].status == "done"
    # space freed: a new job's workers have no limit, and only the failed unit runs again
    with job(c):
        summary = run_study(config, out, executor="ray", address=c.address, progress=False)
    assert summary.ran == 1 and summary.counts["done"] == 3
    assert_sound(out, units)
    assert (folder / "data.bin").stat().st_size == big


def test_address_joins_an_existing_cluster_from_the_cli(cluster, tmp_path):
    c, gpu, cpu = cluster
    config = train_only_config(tmp_path, seeds=(0,))
    config.write_text(config.read_text().replace("train_subset = 160", "train_subset = 64"))
    out = tmp_path / "s"
    # a relative --out: the workers (whose working folder is not the driver's) must write where the driver looks
    cmd = [
        sys.executable,
        "-m",
        "stitchkit",
        "study",
        config.name,
        "--executor",
        "ray",
        "--address",
        c.address,
        "--out",
        "s",
        "--no-progress",
        "--no-report",
        "--json",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1])["counts"]["done"] == 1
    (row,) = records(out)
    assert row.kind == "train" and row.status == "done"
    assert node_of(row) in {gpu.node_id[:12], cpu.node_id[:12]}  # ran on the cluster, not on a Ray of its own
    assert (out / "units" / f"train-{row.id}" / row.artifacts["checkpoint"]).is_file()


def _remove_node_running(c, log: str, name: str, removed: list) -> None:
    """Wait until unit ``name`` has started, then kill the node it runs on (no graceful drain)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = [line for line in log_lines(log) if line[:2] == ["start", name]]
        if started:
            node = next(n for n in c.worker_nodes if n.node_id == started[0][2])
            c.remove_node(node, allow_graceful=False)
            removed.append(node.node_id)
            return
        time.sleep(0.05)


def test_a_node_lost_mid_unit_is_run_again_elsewhere_and_nothing_is_half_written(cluster, tmp_path, monkeypatch):
    """Runs last: it takes one of the module cluster's two worker nodes away."""
    c, _, _ = cluster
    log = str(tmp_path / "log")
    units = [step("slow", log, seconds=4.0), step("quick0", log, seconds=0.5), step("quick1", log, seconds=0.5)]
    config = study(tmp_path, monkeypatch, units)
    out = tmp_path / "s"
    removed: list[str] = []
    killer = threading.Thread(target=_remove_node_running, args=(c, log, "slow", removed))
    with job(c):
        killer.start()
        summary = run_study(config, out, executor="ray", address=c.address, progress=False)
        killer.join()
        assert removed, "the slow unit never started"
        assert summary.counts["done"] == 3 and summary.counts["failed"] == 0
        rows = assert_sound(out, units)
        assert node_of(rows["slow"]) != removed[0][:12]  # finished on the node that is left
        print(
            f"removed node {removed[0][:12]}; units ran:",
            {label: r.worker for label, r in rows.items()},
            "log:",
            log_lines(log),
        )  # pytest -rP
        events = [line[:2] for line in log_lines(log)]
        assert events.count(["start", "slow"]) == 2 and events.count(["end", "slow"]) == 1
        assert (unit_dir(out.absolute(), units[0]) / "data.bin").is_file()
        again = run_study(config, out, executor="ray", address=c.address, progress=False)
    assert again.ran == 0 and again.counts["done"] == 3  # nothing is computed twice
    with sqlite3.connect(out / "study.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM units").fetchone() == (3, 3)

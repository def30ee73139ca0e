"""One run per digest, even in a race: leases, and real concurrent `rose generate` / `rose train` processes on
SQLite and on a tracking server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes import SHARED_DATA, mlflow_server, use_tracking_db
from tests.tiny import make_tiny_classifier

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    return use_tracking_db(tmp_path, monkeypatch)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A real `mlflow server` on 127.0.0.1 (SQLite behind it), as the tracking URI of this test."""
    with mlflow_server(tmp_path, monkeypatch) as uri:
        yield uri


def _runs(experiment: str, **tags) -> list:
    from rose.tracking import search_runs

    return search_runs(experiment, finished_only=False, **tags)


# --- the lease itself ------------------------------------------------------------------------------------------
def test_a_live_run_is_never_taken_for_crashed(store):
    import mlflow

    from rose import lease, tracking

    exp = tracking.setup("lease")
    client = mlflow.MlflowClient()
    base = tracking.tags("generate", "topic", "cy", digest="d")

    def make(**lease_tags):
        return client.create_run(exp, tags={**base, **lease_tags}).info.run_id

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = f"{time.time():.3f}"
    live = make(**{lease.HOST_TAG: lease.HOST, lease.PID_TAG: str(os.getpid()), lease.HEARTBEAT_TAG: now})
    gone = make(**{lease.HOST_TAG: lease.HOST, lease.PID_TAG: str(dead.pid), lease.HEARTBEAT_TAG: now})
    stale = make(**{lease.HOST_TAG: "elsewhere", lease.PID_TAG: "1", lease.HEARTBEAT_TAG: f"{time.time() - 3600}"})
    old = make()  # a RUNNING run from before leases: nobody vouches for it
    state = {r.info.run_id: lease.is_live(r) for r in _runs("lease")}
    assert state == {live: True, gone: False, stale: False, old: False}
    assert tracking.unfinished("lease", "generate", "d").info.run_id in {gone, stale, old}
    for run_id in (gone, stale, old):
        client.delete_run(run_id)
    assert tracking.unfinished("lease", "generate", "d") is None  # the live one is not offered


def test_claim_waits_for_a_live_twin_then_reuses_it(store, monkeypatch):
    import threading

    import mlflow

    from rose import lease, tracking

    monkeypatch.setattr(lease, "POLL_S", 0.2)
    exp = tracking.setup("lease")
    tags = tracking.tags("generate", "topic", "cy", digest="d2")
    first = tracking.claim("lease", "generate", "d2", tags, "first")
    assert first.finished is None and not first.adopted
    done = threading.Event()

    def finish_later():
        time.sleep(1.5)
        with tracking.run("first", tags, run_id=first.run_id, lease=first.lease):
            pass
        done.set()

    threading.Thread(target=finish_later).start()
    started = time.perf_counter()
    second = tracking.claim("lease", "generate", "d2", tags, "second")
    assert done.is_set() and time.perf_counter() - started >= 1.0
    assert second.finished is not None and second.finished.info.run_id == first.run_id
    runs = mlflow.MlflowClient().search_runs([exp])
    assert [r.info.run_id for r in runs] == [first.run_id]  # no second run was left behind


def test_a_crashed_run_is_taken_over(store):
    import mlflow

    from rose import lease, tracking

    exp = tracking.setup("lease")
    tags = tracking.tags("train", "topic", "cy", digest="d3")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client = mlflow.MlflowClient()
    crashed = client.create_run(exp, tags={**tags, lease.HOST_TAG: lease.HOST, lease.PID_TAG: str(dead.pid),
                                           lease.HEARTBEAT_TAG: f"{time.time():.3f}"}).info.run_id  # fmt: skip
    claim = tracking.claim("lease", "train", "d3", tags, "again")
    try:
        assert claim.adopted and claim.run_id == crashed
        run = client.get_run(crashed)
        assert run.data.tags[lease.PID_TAG] == str(os.getpid()) and lease.is_live(run)
        assert [r.info.run_id for r in client.search_runs([exp])] == [crashed]
    finally:
        claim.lease.release()


# --- real processes racing -------------------------------------------------------------------------------------
def _env(uri: str, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID")}
    return {**env, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri, **extra}


def _together(commands: list[list[str]], cwd: Path, env: dict) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]  # fmt: skip
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return out


def _race_generate(uri: str, folder: Path) -> None:
    cmd = [sys.executable, "-m", "rose.cli", "generate", "--task", "topic", "--language", "cy",
           "--generator", "fake-lm", "--strategy", "target_demos", "--backend", "fake", "--per-label", "4",
           "--examples-per-request", "2", "--source", str(SHARED_DATA), "--experiment", "race",
           "--cache-dir", str(folder / "cache")]  # fmt: skip
    done = _together([cmd, cmd], folder, _env(uri, ROSE_FAKE_DELAY="0.15"))
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
    ids = {line.split()[2] for p in done for line in p.stdout.splitlines() if line.startswith("run id:")}
    assert len(ids) == 1, [p.stdout for p in done]
    assert sum("identical finished run reused" in p.stdout for p in done) == 1
    runs = _runs("race", stage="generate")
    assert [(r.info.run_id, r.info.status) for r in runs] == [(ids.pop(), "FINISHED")]


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["store", "server"])  # SQLite, and a real mlflow server on 127.0.0.1
def test_two_identical_generate_commands_end_with_one_run(tracking, tmp_path, request):
    _race_generate(request.getfixturevalue(tracking), tmp_path)


def _race_train(uri: str, folder: Path) -> None:
    tiny = make_tiny_classifier(folder / "tiny")
    cmd = [sys.executable, "-m", "rose.cli", "train", "--task", "topic", "--language", "cy",
           "--data", f"human:{SHARED_DATA}", "--classifier", str(tiny), "--seeds", "1,2,3", "--per-label", "8",
           "--max-epochs", "2", "--experiment", "race", "--log-models", "false", "--num-threads", "1"]  # fmt: skip
    done = _together([cmd, cmd], folder, _env(uri))
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
    parents = [r for r in _runs("race", stage="train", role="setting")]
    assert [r.info.status for r in parents] == ["FINISHED"]
    seeds = Counter(r.data.tags["rose.seed"] for r in _runs("race", stage="train", role="seed"))
    assert seeds == {"1": 1, "2": 1, "3": 1}  # every seed run exactly once
    said = {line.split()[2] for p in done for line in p.stdout.splitlines() if line.startswith("parent run ")}
    assert said == {parents[0].info.run_id}


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["store", "server"])  # SQLite, and a real mlflow server on 127.0.0.1
def test_two_trainings_of_one_setting_run_each_seed_once(tracking, tmp_path, request):
    _race_train(request.getfixturevalue(tracking), tmp_path)


def _race_cells(uri: str, folder: Path) -> None:
    tiny = make_tiny_classifier(folder / "tiny")
    env = _env(uri)
    train = [sys.executable, "-m", "rose.cli", "train", "--task", "topic", "--language", "cy",
             "--data", f"human:{SHARED_DATA}", "--classifier", str(tiny), "--seeds", "1,2", "--per-label", "8",
             "--max-epochs", "1", "--experiment", "race", "--num-threads", "1"]  # fmt: skip
    done = subprocess.run(train, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (parent,) = _runs("race", stage="train", role="setting")
    cmd = [sys.executable, "-m", "rose.cli", "evaluate", "--train-run", parent.info.run_id,
           "--data", f"human:{SHARED_DATA}", "--experiment", "race"]  # fmt: skip
    done = _together([cmd, cmd], folder, env)
    for proc in done:
        assert proc.returncode == 0, proc.stderr[-3000:]
    cells = _runs("race", stage="evaluate")
    assert [r.info.status for r in cells] == ["FINISHED"]  # one cell run, whichever command computed it
    said = {line.split()[-1] for p in done for line in p.stdout.splitlines() if line.startswith("cell on ")}
    assert said == {cells[0].info.run_id}
    assert cells[0].info.run_name == "evaluate · human on human"


@pytest.mark.slow
@pytest.mark.parametrize("tracking", ["store", "server"])  # SQLite, and a real mlflow server on 127.0.0.1
def test_two_evaluations_of_one_cell_end_with_one_run(tracking, tmp_path, request):
    _race_cells(request.getfixturevalue(tracking), tmp_path)


def test_a_claim_waits_for_a_live_twin_only_so_long(store, monkeypatch):
    """A twin whose heartbeat still beats (its process may hang) holds a claimer at most ROSE_CLAIM_WAIT s."""
    from rose import lease, tracking
    from rose.errors import RoseError

    monkeypatch.setattr(lease, "POLL_S", 0.2)
    monkeypatch.setenv("ROSE_CLAIM_WAIT", "1")
    tracking.setup("lease")
    tags = tracking.tags("generate", "topic", "cy", digest="d9")
    first = tracking.claim("lease", "generate", "d9", tags, "first")
    started = time.perf_counter()
    try:
        with pytest.raises(RoseError, match=r"has worked on the same configuration for over 1 s \(ROSE_CLAIM_WAIT\)"):
            tracking.claim("lease", "generate", "d9", tags, "second")
    finally:
        first.lease.release()
    assert 1.0 <= time.perf_counter() - started < 30


def test_the_settle_pause_scales_with_the_store_round_trip(monkeypatch):
    """Five times what creating a run and searching took, within 0.2 to 1 s; ROSE_LEASE_SETTLE fixes it."""
    from rose import lease

    monkeypatch.delenv("ROSE_LEASE_SETTLE", raising=False)
    assert lease.settle_s(0.005) == lease.SETTLE_MIN_S == 0.2  # a local SQLite store
    assert lease.settle_s(0.1) == pytest.approx(0.5)  # a tracking server 100 ms away
    assert lease.settle_s(3.0) == lease.SETTLE_S == 1.0
    monkeypatch.setenv("ROSE_LEASE_SETTLE", "2.5")
    assert lease.settle_s(0.005) == 2.5

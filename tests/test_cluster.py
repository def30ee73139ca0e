"""A study on a real two-node Ray cluster with a real ``mlflow server``, where the nodes cannot read the study folder.

The two nodes are started with ``ray start`` (a head with one CPU and no GPU; a second node with its own temporary
folder, two CPUs and two GPUs Ray is told it has: no CUDA is needed, the GPUs are accounted for and handed out as
``CUDA_VISIBLE_DEVICES``). Each node runs in its own mount namespace where the study folder is an empty tmpfs, and
its working directory is another folder: every file input must reach the workers by content. The driver is the
``rose pipeline`` command, run from the study folder. The cluster is torn down by killing the processes it started
(found by a marker in their environment), never with ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.fakes import mlflow_server, tracking_db
from tests.tiny import BUNDLED, make_tiny_classifier

ROOT = Path(__file__).resolve().parents[1]
MARK = "ROSE_TEST_CLUSTER"
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}  # `ray start --head` turns token authentication on by default (Ray 2.5x+)
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_hide(folder: Path) -> bool:
    """Whether a process can be given a mount namespace where ``folder`` is empty (root, or user namespaces)."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            f'mount -t tmpfs none "{folder}" && test -z "$(ls -A "{folder}")"'],
                           capture_output=True)  # fmt: skip
    return probe.returncode == 0


def _cluster_processes(marker: str) -> list:
    import psutil

    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(MARK) == marker:
                out.append(proc)
        except (psutil.Error, OSError):
            continue
    return out


@contextlib.contextmanager
def two_nodes(hidden: Path, workdir: Path, log: Path, extra_env: dict | None = None):
    """A head node (1 CPU) and a second node (2 CPUs, 2 GPUs Ray is told of), each with its own temporary folder
    (their workers get ``extra_env`` too); yields (address, whether the study folder is hidden from them)."""
    import psutil

    marker = uuid.uuid4().hex[:8]
    temp = Path(f"/tmp/rr{marker}")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), MARK: marker, "RAY_USAGE_STATS_ENABLED": "0", **NO_TOKEN,
           **(extra_env or {})}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)  # the workers get it from the driver, explicitly
    ray = str(Path(sys.executable).parent / "ray")
    hide = _can_hide(hidden)

    def start(name: str, *args: str) -> None:
        cmd = [ray, "start", *args, f"--temp-dir={temp / name}", "--node-ip-address=127.0.0.1",
               "--object-store-memory=100000000", "--disable-usage-stats"]  # fmt: skip
        if hide:
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f'mount -t tmpfs none "{hidden}" && exec "$@"', "sh", *cmd]  # fmt: skip
        done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
        with log.open("a") as out:
            out.write(done.stdout + done.stderr)
        assert done.returncode == 0, f"ray start {name} failed: {(done.stdout + done.stderr)[-3000:]}"

    try:
        start("head", "--head", f"--port={port}", "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false")
        start("node", f"--address=127.0.0.1:{port}", "--num-cpus=2", "--num-gpus=2")
        yield f"127.0.0.1:{port}", hide
    finally:
        procs = _cluster_processes(marker)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=20)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(temp, ignore_errors=True)


def _study(folder: Path, classifier: Path, generate_limit: float) -> Path:
    for lang in ("en", "de"):  # two cases; German is the English topic sentences, which the fake model never reads
        shutil.copytree(BUNDLED / "sib200" / "en", folder / "data" / "sib200" / lang, dirs_exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        experiment: cluster
        tasks: [topic]
        languages: [en, de]
        source: data                    # relative: a worker resolving it from its own folder finds nothing
        candidates:
          - {{generator: fake-a, strategy: zero_shot}}
          - {{generator: "fake-b@de:1s", strategy: zero_shot}}   # German: held while the hold file exists
        generate: {{backend: fake, per_label: 6, examples_per_request: 6}}
        train: {{classifier: {classifier}, seeds: [1, 2], per_label: 6, max_epochs: 2, patience: 2,
                learning_rate: 1.0e-3}}
        score: {{reference_lm: "", embedding_model: "", tokenizer: "", bootstrap: 20}}
        resources:
          generate: {{timeout_s: {generate_limit}, max_retries: 1}}
          train: {{gpus: 0.5, cpus: 1}}
        """)
    )
    return path


def _runs(experiment: str, finished: bool = True) -> list:
    from rose.tracking import search_runs

    return search_runs(experiment, finished_only=finished)


def _driver(study: Path, address: str, env: dict, output: Path) -> subprocess.Popen:
    """``rose pipeline`` on the cluster; what it prints goes to ``output`` (a file: a pipe nobody reads while the
    test watches the store would fill up and stop the driver)."""
    cmd = [sys.executable, "-m", "rose.cli", "pipeline", "--config", "study.yaml", "--executor", "ray",
           "--ray-address", address]  # fmt: skip
    with output.open("w") as sink:
        return subprocess.Popen(cmd, cwd=study.parent, env=env, stdout=sink, stderr=subprocess.STDOUT, text=True)


def _ended(driver: subprocess.Popen, output: Path, timeout: float) -> str:
    """Wait for the driver (``timeout``: a guard against a hang, far above what a slow machine needs)."""
    try:
        driver.wait(timeout=timeout)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    return output.read_text()


def _kill_a_training_worker(driver: subprocess.Popen) -> str | None:
    """Kill -9 the worker of a training in the middle of its unit; returns the run id (None: the driver ended first).

    A training is in the middle of its unit while its run is RUNNING and its lease names a live worker process of
    this cluster. The run is read again just before the kill and after it: still RUNNING after its worker died, the
    unit was cut in the middle (a unit that ended in between is not counted, and the next training is tried)."""
    import mlflow
    import psutil

    client = mlflow.MlflowClient()
    while driver.poll() is None:
        for run in _runs("cluster", finished=False):
            tags = run.data.tags
            pid = tags.get("rose.lease.pid", "")
            if tags.get("rose.stage") != "train" or run.info.status != "RUNNING" or not pid.isdigit():
                continue
            try:
                if MARK not in psutil.Process(int(pid)).environ():
                    continue  # not a worker of this cluster
            except psutil.Error:
                continue  # gone already: a crashed run waiting for its retry
            if client.get_run(run.info.run_id).info.status != "RUNNING":
                continue
            os.kill(int(pid), signal.SIGKILL)
            if client.get_run(run.info.run_id).info.status == "RUNNING":
                return run.info.run_id
        time.sleep(1.0)
    return None


def test_a_study_on_two_nodes_runs_every_unit_once_and_survives_faults(tmp_path, monkeypatch):
    classifier = make_tiny_classifier(tmp_path / "models" / "tiny")
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    # Nothing here waits on how fast the machine is. The German fake-b generation is held (its fake model waits
    # while the hold file exists) until its time limit ends it, twice: so it fails whatever the load, and the
    # English trainings, which need only the English generations, start before it ends. Every other generation
    # takes seconds on an idle machine: the limit leaves them minutes. Driver timeouts only guard against hangs.
    limit = 300
    hold = tmp_path / "hold"
    hold.touch()
    path = _study(study_dir, classifier, generate_limit=limit)
    started = time.perf_counter()
    (tmp_path / "server").mkdir()
    migrated = tracking_db(tmp_path / "server").removeprefix("sqlite:///")  # the server starts without migrating
    shutil.move(migrated, tmp_path / "server" / "server.db")
    held = {"ROSE_FAKE_HOLD": str(hold)}
    with mlflow_server(tmp_path / "server", monkeypatch) as uri, \
            two_nodes(study_dir, workdir, tmp_path / "ray.log", held) as (address, hidden):  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri, **NO_TOKEN}
        output = tmp_path / "driver.log"
        # 0. a SQLite store with a cluster of two nodes: refused in one line before anything runs
        local = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'local.db'}"}
        refused = _driver(path, address, local, output)
        out = _ended(refused, output, 900)
        assert refused.returncode == 2 and "is a file on this machine and the Ray cluster has 2 nodes" in out, out
        assert not _runs("cluster", finished=False)
        # 1. German's held generation passes its limit twice and fails for good; English runs to its end, and a
        #    training worker killed in the middle of its unit is retried
        driver = _driver(path, address, env, output)
        try:
            killed = _kill_a_training_worker(driver)
        finally:
            out = _ended(driver, output, 3600)
        assert driver.returncode == 1, out[-4000:]
        assert killed, f"no training was seen running: {out[-4000:]}"
        study_text = path.read_text()
        path.unlink()  # the study file is gone from the driver's folder too: resuming needs it back
        assert "FAILED g" in out and f"past its time limit of {limit} s" in out, out[-4000:]
        assert "Resume the study (what is done is kept): rose pipeline --config study.yaml --executor ray" in out
        runs = _runs("cluster")
        english = [r for r in runs if r.data.tags.get("rose.language") == "en"]
        stages = Counter(r.data.tags["rose.stage"] for r in english if r.data.tags.get("rose.role") != "seed")
        assert stages == {"generate": 2, "train": 3, "evaluate": 5, "score": 1}  # English: every unit, once
        assert killed in {r.info.run_id for r in english}  # the killed training's run, taken over by its retry
        german = Counter(r.data.tags["rose.stage"] for r in runs if r.data.tags.get("rose.language") == "de")
        assert german == {"generate": 1}  # its trainings wait for its cut, which waits for the failed generation
        failed = [r for r in _runs("cluster", finished=False) if r.info.status == "FAILED"
                  and r.data.tags.get("rose.stage") == "generate"]  # fmt: skip
        assert len(failed) == 1 and "past its time limit" in failed[0].data.tags["rose.error"]
        # a training of one case started before the last generation of the other ended (held to its limit twice)
        trains = [r for r in english if r.data.tags.get("rose.role") == "setting"]
        assert min(r.info.start_time for r in trains) < failed[0].info.end_time
        # GPU accounting: trainings asked for half a GPU and saw the one Ray gave them; the others saw none
        for run in runs:
            tags = run.data.tags
            if tags.get("mlflow.parentRunId") or tags["rose.stage"] == "pipeline":
                continue
            seen = tags["rose.worker.cuda_visible_devices"]
            assert seen in ({"0", "1"} if tags["rose.stage"] == "train" else {"none"}), (tags["rose.stage"], seen)
        # 2. resumed with a longer limit: only what was left runs, and every unit exists once
        hold.unlink()  # German's generation is let go: it takes seconds now
        path.write_text(study_text.replace(f"timeout_s: {limit}", "timeout_s: 900"))
        driver = _driver(path, address, env, output)
        out = _ended(driver, output, 2400)
        assert driver.returncode == 0, out[-4000:]
        assert "RoSE leaderboard" in out
        runs = _runs("cluster")
        top = Counter((r.data.tags["rose.stage"], r.data.tags["rose.language"]) for r in runs
                      if not r.data.tags.get("mlflow.parentRunId") and r.data.tags["rose.stage"] != "pipeline")  # fmt: skip
        assert top == {(s, lang): n for lang in ("en", "de")
                       for s, n in (("generate", 2), ("train", 3), ("evaluate", 5), ("score", 1))}  # fmt: skip
        seeds = Counter((r.data.tags["rose.language"], r.data.tags["rose.train_data"], r.data.tags["rose.seed"])
                        for r in runs if r.data.tags.get("rose.role") == "seed")  # fmt: skip
        assert set(seeds.values()) == {1} and len(seeds) == 2 * 3 * 2  # no duplicate seed run after the kill
        wall = time.perf_counter() - started
        # 3. seeds 2 -> 3: only seed 3 is trained, and only its cells are computed, on the same runs
        grown_at = time.time() * 1000
        path.write_text(path.read_text().replace("seeds: [1, 2]", "seeds: [1, 2, 3]"))
        driver = _driver(path, address, env, output)
        out = _ended(driver, output, 2400)
        assert driver.returncode == 0, out[-4000:]
        after = _runs("cluster")
        seeds = Counter((r.data.tags["rose.language"], r.data.tags["rose.train_data"], r.data.tags["rose.seed"])
                        for r in after if r.data.tags.get("rose.role") == "seed")  # fmt: skip
        assert set(seeds.values()) == {1} and len(seeds) == 2 * 3 * 3
        new_seeds = [r for r in after if r.data.tags.get("rose.role") == "seed" and r.info.start_time > grown_at]
        assert {r.data.tags["rose.seed"] for r in new_seeds} == {"3"} and len(new_seeds) == 6
        cells = [r for r in after if r.data.tags["rose.stage"] == "evaluate"]
        assert len(cells) == 10 and all("seed/3/macro_f1" in r.data.metrics for r in cells)
        for parent in (r for r in after if r.data.tags.get("rose.role") == "setting"):
            own = [r.data.metrics["dev/macro_f1"] for r in after if r.data.tags.get("mlflow.parentRunId")
                   == parent.info.run_id]  # fmt: skip
            assert len(own) == 3 and parent.data.metrics["dev/macro_f1_mean"] == pytest.approx(sum(own) / 3)
        assert Counter(r.data.tags["rose.stage"] for r in after if r.data.tags.get("rose.role") != "seed") == {
            "generate": 4,
            "train": 6,
            "evaluate": 10,
            "score": 4,
            "pipeline": 2,
        }  # a new score per case
    print(
        f"two-node study: {wall:.0f} s wall for the failing run and its resumption; study folder hidden "
        f"from the nodes: {hidden}"
    )

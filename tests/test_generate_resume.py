"""Nothing lost, nothing twice: a generate run killed with SIGKILL and started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import tracking_db

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
CHILD = f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(TESTS)!r})
from fakes import generate_config
from rose.generate.backends import FakeBackend
from rose.generate.run import generate
tmp, delay = Path(sys.argv[1]), float(sys.argv[2])
config = generate_config(tmp, strategy="target_demos_revision", per_label=8, examples_per_request=4, batch_size=2)
result = generate(config, backend=FakeBackend(delay=delay, calls_file=tmp / "calls.jsonl"))
print(json.dumps({{"run_id": result.run_id, "path": str(result.dataset_path)}}))
"""


def _start(tmp: Path, delay: float) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_db(tmp))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp), str(delay)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out.strip().splitlines()[-1])


def _calls(tmp: Path) -> list[str]:
    path = tmp / "calls.jsonl"
    return [json.loads(line)["key"] for line in path.read_text().splitlines()] if path.exists() else []


def test_kill_and_resume_loses_nothing_and_asks_nothing_twice(tmp_path):
    from fakes import generate_config

    from rose.generate.backends import FakeBackend
    from rose.generate.cache import CompletionCache
    from rose.generate.run import run_strategy
    from rose.generated_data import EXAMPLE_FIELDS

    # the uninterrupted run, in this process and without tracking: its requests and its dataset
    whole = FakeBackend(calls_file=tmp_path / "whole.jsonl")
    config = generate_config(
        tmp_path / "whole", strategy="target_demos_revision", per_label=8, examples_per_request=4, batch_size=2
    )
    cache = CompletionCache(tmp_path / "whole" / "completions.sqlite")
    state, _ = run_strategy(config, whole, cache)
    cache.close()
    whole_calls = [r.key(whole.name, whole.model) for r in whole.calls]
    want = "".join(
        json.dumps({k: ex.get(k) for k in EXAMPLE_FIELDS}, ensure_ascii=False) + "\n" for ex in state.examples
    )

    run_dir = tmp_path / "killed"
    proc = _start(run_dir, 0.03)
    deadline = time.time() + 120
    while len(_calls(run_dir)) < 30 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cache = CompletionCache(run_dir / "cache" / "completions.sqlite")
    stored = cache.keys()
    cache.close()
    first_calls = _calls(run_dir)
    assert 0 < len(stored) < len(set(whole_calls)), "the kill should land mid-run"

    resumed = _finish(_start(run_dir, 0.0))
    second_calls = _calls(run_dir)[len(first_calls) :]
    assert not set(second_calls) & stored, "a request whose answer was stored was asked again"
    assert len(second_calls) == len(set(second_calls))
    assert stored | set(second_calls) == set(whole_calls)  # exactly the uninterrupted run's requests

    got = Path(resumed["path"]).read_text()
    assert got == want  # identical dataset
    rows = [json.loads(line) for line in got.splitlines()]
    assert len(rows) == 7 * 8 and len({(r["label"], r["text"]) for r in rows}) == len(rows)

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{run_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["rose"], output_format="list")
    assert [r.info.run_id for r in runs] == [resumed["run_id"]] and runs[0].info.status == "FINISHED"

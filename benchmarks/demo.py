"""Time and peak memory of the offline demo (configs/demo.yaml) from a fresh tracking store.

    python benchmarks/demo.py [--config configs/demo.yaml] [--keep DIR]

Runs `rose pipeline` in a child process, in a scratch directory holding a copy of the project's MLproject (so the
SQLite store and artifacts land there, not in your checkout), and reports wall time and the peak memory of the
whole study: the total resident memory of the driver and every worker process under it (``--max-parallel``, Ray),
sampled every 0.2 s with psutil, beside the largest single process's peak; then the seconds per stage, the share of
the stages other than generation, and the human-data baseline's human-test macro-F1. The frozen-trunk cache starts
cold too (``ROSE_TRUNK_CACHE`` in the scratch directory). Targets on a 2-core CPU: 5 minutes, the stages other than
generation at most a third of the wall time, 4 GiB, a baseline of at least 0.70. The offline models must be fetched
first (`rose assets fetch`), which is not timed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S, TARGET_GIB, TARGET_SHARE, TARGET_F1 = 5 * 60, 4.0, 1 / 3, 0.70


class TreeMemory:
    """Peak total RSS of a process and all its descendants, and the peak of the largest single one (bytes)."""

    def __init__(self, pid: int, every: float = 0.2):
        import psutil

        self.root, self.every = psutil.Process(pid), every
        self.total = self.single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        while not self._stop.is_set():
            rss = []
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for proc in procs:
                try:
                    rss.append(proc.memory_info().rss)
                except psutil.Error:  # ended between listing and reading
                    pass
            if rss:
                self.total, self.single = max(self.total, sum(rss)), max(self.single, max(rss))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _line(text: str, prefix: str) -> str:
    return next((line for line in text.splitlines() if line.startswith(prefix)), "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--keep", default="", help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--max-parallel", type=int, default=1, help="units at once (worker processes when > 1)")
    args = parser.parse_args()
    # beside the checkout, so that ../shared/data is found as it is from the repository root
    work = Path(args.keep or tempfile.mkdtemp(prefix="rose-demo-bench-", dir=ROOT.parent))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "MLproject", work / "MLproject")
    if not (work.parent / "shared").exists():
        print(f"note: {work.parent}/shared is absent; the demo uses the hub or rose's own examples")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["ROSE_TRUNK_CACHE"] = str(work / "trunk")  # a fresh store: no frozen-trunk output computed before
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cmd = [sys.executable, "-m", "rose.cli", "pipeline", "--config", str(Path(args.config).resolve())]
        cmd += ["--max-parallel", str(args.max_parallel)]
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=err, text=True)
        memory = TreeMemory(proc.pid)
        returncode = proc.wait()
        memory.stop()
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    peak_gib, single_gib = memory.total / 1024**3, memory.single / 1024**3
    print(stdout[-4000:])
    if returncode != 0:
        print(stderr[-4000:], file=sys.stderr)
        return returncode
    print(f"demo wall time: {wall / 60:.1f} min (target {TARGET_S / 60:.0f} min)")
    print(
        f"demo peak memory: {peak_gib:.2f} GiB, driver and workers together (target {TARGET_GIB:.0f} GiB); "
        f"largest single process {single_gib:.2f} GiB"
    )
    stages = dict(re.findall(r"(generate|train|evaluate|score) (\d+) s", _line(stdout, "time per stage:")))
    stage_s = {k: float(v) for k, v in stages.items()}
    other = sum(v for k, v in stage_s.items() if k != "generate")
    share = other / wall if wall else 0.0
    print(f"time per stage: {', '.join(f'{k} {v:.0f} s' for k, v in stage_s.items())}; stages other than "
          f"generation {other:.0f} s = {share:.0%} of the wall time (target at most {TARGET_SHARE:.0%})")
    found = re.search(r"human-test macro-F1 (\d\.\d+)", stdout)
    baseline = float(found[1]) if found else float("nan")
    print(f"human-data baseline: human-test macro-F1 {baseline:.3f} (target at least {TARGET_F1:.2f})")
    print(f"cores: {os.cpu_count()}; load average before/after: see uptime; store: {work}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = wall <= TARGET_S and peak_gib <= TARGET_GIB and share <= TARGET_SHARE and baseline >= TARGET_F1
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

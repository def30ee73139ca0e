"""Time and peak memory of the offline demo (configs/demo.yaml) from a fresh tracking store.

    python benchmarks/demo.py [--config configs/demo.yaml] [--keep DIR]

Runs `rose pipeline` in a child process, in a scratch directory holding a copy of the project's MLproject (so the
SQLite store and artifacts land there, not in your checkout), and reports wall time and the child's peak resident
memory (the pipeline runs every unit in that one process with the default executor). Targets on a 2-core CPU:
15 minutes and 4 GiB. The offline models must be fetched first (`rose assets fetch`), which is not timed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S, TARGET_GIB = 15 * 60, 4.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    parser.add_argument("--keep", default="", help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    # beside the checkout, so that ../shared/data is found as it is from the repository root
    work = Path(args.keep or tempfile.mkdtemp(prefix="rose-demo-bench-", dir=ROOT.parent))
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "MLproject", work / "MLproject")
    if not (work.parent / "shared").exists():
        print(f"note: {work.parent}/shared is absent; the demo uses the hub or rose's own examples")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rose.cli", "pipeline", "--config", str(Path(args.config).resolve())],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(proc.stdout[-4000:])
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    print(f"demo wall time: {wall / 60:.1f} min (target {TARGET_S / 60:.0f} min)")
    print(f"demo peak memory: {peak_gib:.2f} GiB (target {TARGET_GIB:.0f} GiB)")
    print(f"cores: {os.cpu_count()}; store: {work}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = wall <= TARGET_S and peak_gib <= TARGET_GIB
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

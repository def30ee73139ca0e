"""The README's two MLflow UI screenshots, taken from a study's tracking store in headless Chromium.

    python scripts/ui_screenshots.py [--store sqlite:///mlflow.db] [--experiment rose-demo] [--out docs]

Starts ``mlflow server`` on the store (after ``./bootstrap demo`` that is ``mlflow.db`` in the repository) and
photographs the experiment's training runs (``docs/ui-training-runs.png``) and its classifiers compared on each
dataset (``docs/ui-models.png``), as a user who opens the address rose prints sees them. Needs Chromium
(Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rose.mlflow_ui import CLOSE_ASSISTANT, SHOW_SCORES, experiment_url, screenshot, serve  # noqa: E402

SHOTS = {"runs": ("ui-training-runs.png", CLOSE_ASSISTANT), "models": ("ui-models.png", SHOW_SCORES)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=f"sqlite:///{ROOT / 'mlflow.db'}", help="the tracking store (a URI)")
    parser.add_argument("--experiment", default="rose-demo")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNG files")
    parser.add_argument("--size", default="1600x1000", help="window size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    import mlflow

    exp = mlflow.MlflowClient(args.store).get_experiment_by_name(args.experiment)
    if exp is None:
        print(f"no experiment {args.experiment!r} in {args.store}: run the demo first (./bootstrap demo)")
        return 2
    width, height = (int(v) for v in args.size.lower().split("x"))
    with serve(args.store) as base:
        for tab, (name, script) in SHOTS.items():
            url = experiment_url(base, exp.experiment_id, tab)
            path = screenshot(url, args.out / name, (width, height), script=script)
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {tab} of {args.experiment}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

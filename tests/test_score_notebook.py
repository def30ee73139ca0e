"""The analysis notebook runs end to end against a small tracking store (library calls only)."""

import nbformat
import pytest

from rose.score import report

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


@pytest.mark.slow
def test_analysis_notebook_executes(tmp_path, monkeypatch):
    from nbclient import NotebookClient
    from test_score_mlflow import build_store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    build_store(tmp_path)
    nb = nbformat.read(report.__file__.replace("rose/score/report.py", "notebooks/analysis.ipynb"), as_version=4)
    nb.cells[1].source = 'EXPERIMENT = "rose"\nTASKS = ["topic"]\nLANGUAGES = ["all"]\nBOOTSTRAP = 100'
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "('topic', 'cy', 'b__simple')" in text and "RoSE leaderboard" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # heatmap and scatter
    assert not [o for o in outputs if o.output_type == "error"]

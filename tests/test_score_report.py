"""The report: markdown and HTML tables, escaping of data-derived text, and a real browser render (slow)."""

import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from rose.score import label_free, report
from rose.score.collect import Tracked
from rose.score.pool import clean
from rose.score.tables import build_case, summary

EVIL = "<script>alert('x')</script>"


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def case():
    names = ["a__simple", "b<i>__evil"]
    evals = pd.DataFrame([
        {"task": "topic", "language": "th", "train_candidate": i, "eval_candidate": j, "seed": s, "run_id": "r",
         "macro_f1": 0.5 + 0.1 * (i == names[0]) + 0.01 * s} for i in names for j in names for s in (1, 2)
    ])  # fmt: skip
    generate = pd.DataFrame(
        {
            "task": "topic",
            "language": "th",
            "candidate": names,
            "run_id": ["g1", "g2"],
            "generator": ["x", EVIL],
            "strategy": "simple",
            "start_time": 0,
            "distinct_1": [0.3, 0.4],
        }
    )
    seeds = pd.DataFrame(
        {
            "task": "topic",
            "language": "th",
            "candidate": names * 2,
            "seed": [1, 1, 2, 2],
            "run_id": ["s1", "s2", "s3", "s4"],
            "dev_f1": 0.9,
            "human_f1": [0.7, 0.6, 0.7, 0.6],
        }
    )
    free = selectors(names)
    c = build_case(Tracked(generate, seeds, evals), "topic", "th", names, bootstrap=50, selectors=free.within)
    c.label_free = free
    return c


def selectors(names: list[str]) -> label_free.LabelFree:
    """Every label-free selector on two small candidates and a pool named with markup (no models: ATC and agreement
    are not available)."""
    rng = np.random.default_rng(0)
    vectors: dict[str, np.ndarray] = {}

    def embed(texts):
        return np.stack([vectors.setdefault(t, rng.normal(size=8)) for t in texts])

    data = {n: label_free.CandidateData([f"{n} text {k}" for k in range(6)], ["sports", "travel"] * 3) for n in names}
    pool = clean([f"pool {k}" for k in range(10)], f"{EVIL}.jsonl")
    return label_free.compute(data, ["sports", "travel"], embed=embed, pool=pool)


def test_markdown_table():
    md = report.to_markdown(pd.DataFrame({"name": ["a|b"], "x": [0.123456]}))
    assert md.splitlines() == ["| name | x |", "|---|---|", "| a\\|b | 0.1235 |"]


def test_html_escapes_everything_from_data(tmp_path):
    c = case()
    samples = {("topic", "th", "a__simple"): [{"text": EVIL + " แมว", "label": "<b>sports</b>"}]}
    page = report.write(tmp_path, [c], summary([c]), samples, messages=[f"missing {EVIL}"])
    parser = Elements()
    parser.feed(page.read_text(encoding="utf-8"))
    assert "script" not in parser.tags and "i" not in parser.tags and "b" in parser.tags  # <b> only from rose
    text = "".join(parser.text)
    assert EVIL + " แมว" in text and "b<i>__evil" in text and "<b>sports</b>" in text
    assert parser.tags.count("img") == 2  # heatmap and scatter, inlined
    assert "data:image/png;base64," in page.read_text() and 'src="http' not in page.read_text()
    assert {"matrix_topic_th.csv", "leaderboard_topic_th.csv", "heatmap_topic_th.png", "scatter_topic_th.png",
            "selection_topic_th.csv", "selectors_topic_th.csv", "report.md"} <= {p.name for p in tmp_path.iterdir()}  # fmt: skip
    assert "Label-free selectors" in text and f"unlabelled pool {EVIL}.jsonl: 10 texts of 10 read" in text
    table = pd.read_csv(tmp_path / "selectors_topic_th.csv").set_index("selector")
    assert table.loc["atc_target", "status"].startswith("not available: the trained seeds' models cannot be loaded")
    assert table.loc["mmd_target", "status"] == "available" and table.loc["mmd_target", "better"] == "lower"


def test_terminal_leaderboard():
    text = report.terminal(case())
    assert text.splitlines()[0].startswith("RoSE leaderboard: task topic, language th (champion: a__simple)")
    assert "human_f1" in text.splitlines()[1]
    assert "Human-data baseline" not in text  # no baseline in this case: no gap column, no line
    with_baseline = case()
    board = with_baseline.leaderboard
    with_baseline.leaderboard = board.assign(gap_to_human=board["human_f1"] - 0.8)
    assert "Human-data baseline (the same classifier on as many human examples per label, same seeds): " \
           "human-test macro-F1 0.8000" in report.terminal(with_baseline)  # fmt: skip


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    c = case()
    samples = {("topic", "th", "a__simple"): [{"text": EVIL, "label": "sports"}]}
    page = report.write(tmp_path / "r", [c], summary([c]), samples)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<table>" in dom and "&lt;script&gt;alert" in dom and "<script>" not in dom
    assert "Label-free selectors" in dom and "mmd_target" in dom and "rose_probe" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()], capture_output=True,
                   timeout=120)  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 10_000

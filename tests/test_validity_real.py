"""The real-generator section of benchmarks/validity.py: finding the publisher's files, reading its published
ranking, comparing rankings; and the multigen task files importing the five generators' data as published."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.tiny import ROOT, SHARED_DATA

MULTIGEN = SHARED_DATA / "multigen"
needs_multigen = pytest.mark.skipif(not MULTIGEN.exists(), reason="needs ../shared/data/multigen")


def _validity():
    spec = importlib.util.spec_from_file_location("validity", ROOT / "benchmarks" / "validity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validity = _validity()


def test_published_files_take_the_methods_final_file_of_the_round(tmp_path: Path):
    for gen, names in {"gpt": ["news_prompt.csv", "news_1_prompt.csv", "news_taboo.csv", "news_0_seeds.csv"],
                       "mistral": ["ag_news_prompt.csv", "fb_1_prompt.csv", "ag_news_hints.csv"]}.items():  # fmt: skip
        (tmp_path / gen / "0").mkdir(parents=True)
        (tmp_path / gen / "1").mkdir(parents=True)
        for name in names:
            (tmp_path / gen / "0" / name).write_text("text,label\n", encoding="utf-8")
        (tmp_path / gen / "1" / names[0]).write_text("text,label\n", encoding="utf-8")
    files = validity.published_files(tmp_path, ["gpt", "mistral"], "prompt", 0)
    assert {g: (p.parent.name, p.name) for g, p in files.items()} == {
        "gpt": ("0", "news_prompt.csv"), "mistral": ("0", "ag_news_prompt.csv")}  # fmt: skip
    with pytest.raises(SystemExit, match="expected one \\*_chaining.csv file of gpt, found none"):
        validity.published_files(tmp_path, ["gpt"], "chaining", 0)


def test_published_ranking_is_read_from_the_readme(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(textwrap.dedent("""\
        Published downstream results (a BERT classifier ...):
        - atis: play 83.5, gpt 82.9, llama 82.9
        - ag_news: mistral 83.4, llama 81.1
        - not a ranking: see the table
        """), encoding="utf-8")  # fmt: skip
    assert validity.read_published(readme) == {"atis": {"play": 83.5, "gpt": 82.9, "llama": 82.9},
                                               "ag_news": {"mistral": 83.4, "llama": 81.1}}  # fmt: skip
    assert validity.read_published(tmp_path / "absent.md") == {}


@needs_multigen
def test_the_shared_readme_ranks_five_generators_per_task():
    published = validity.read_published(MULTIGEN / "README.md")
    assert set(published) == {"atis", "ag_news"}
    assert all(set(v) == {"gpt", "gpt4", "llama", "mistral", "play"} for v in published.values())


def test_rankings_side_by_side_and_their_agreement():
    candidates = pd.DataFrame({"case": ["atis"] * 3, "candidate": ["a", "b", "c"], "human_f1": [0.7, 0.9, 0.8],
                               "rose": [0.5, 0.4, 0.6]})  # fmt: skip
    rankings, agreement = validity.compare_rankings(candidates, {"atis": {"a": 70.0, "b": 80.0, "c": 75.0}},
                                                    {"atis": "atis"})  # fmt: skip
    assert rankings["published"].tolist() == ["b 80.0", "c 75.0", "a 70.0"]
    assert rankings["rose_human_f1"].tolist() == ["b 0.900", "c 0.800", "a 0.700"]
    assert rankings["rose_score"].tolist() == ["c 0.600", "a 0.500", "b 0.400"]
    rho = agreement.set_index("rose_ranking")["spearman_with_published"]
    assert rho["human-test F1"] == pytest.approx(1.0) and rho["RoSE"] == pytest.approx(-0.5)


def test_the_real_section_writes_one_study_per_case(tmp_path: Path):
    raw = yaml.safe_load((ROOT / "benchmarks" / "validity_real.yaml").read_text(encoding="utf-8"))
    source = tmp_path / "data"
    for case in raw["cases"].values():
        for gen in raw["generators"]:
            folder = source / case["folder"] / gen / "0"
            folder.mkdir(parents=True)
            (folder / f"x_{raw['method']}.csv").write_text("text,label\n", encoding="utf-8")
    for name, case in raw["cases"].items():
        path, task = validity.write_real_study(raw, case, source, tmp_path)
        study = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert task == name and study["tasks"] == [str(ROOT / case["task"])]
        assert [c["name"] for c in study["candidates"]] == list(raw["generators"])
        assert all(Path(c["data"]).name == "x_prompt.csv" and c["strategy"] == "prompt" for c in study["candidates"])
        assert not set(validity.REAL_KEYS) & set(study)


def test_largest_model_is_known_only_for_public_sizes():
    raw = yaml.safe_load((ROOT / "benchmarks" / "validity_real.yaml").read_text(encoding="utf-8"))
    sizes = {gen: validity._parameters(model) for gen, model in raw["generators"].items()}
    assert sizes["llama"] == sizes["play"] == 7e10 and sizes["mistral"] == 7e9
    assert pd.isna(sizes["gpt"]) and pd.isna(sizes["gpt4"])  # ChatGPT's and GPT-4's sizes are not public


def test_the_largest_model_note_names_unknown_sizes_and_ties():
    candidates = pd.DataFrame({"case": ["atis"] * 4 + ["pooled"], "candidate": ["gpt", "llama", "mistral", "play", "gpt"],
                               "parameters": [float("nan"), 7e10, 7e9, 7e10, float("nan")]})  # fmt: skip
    (note,) = validity.largest_note(candidates)
    assert "llama 70B, play 70B, mistral 7B" in note and "gpt (size not public) is left out" in note
    assert "llama and play tie at the largest size and the tie goes to the first name (llama)" in note


@pytest.mark.parametrize("files, baseline", [("{test: test.csv}", False), ("{train: train.csv, test: test.csv}", True)])
def test_a_task_with_only_a_human_test_file_plans_no_baseline(tmp_path: Path, files: str, baseline: bool):
    from rose.pipeline import plan
    from rose.pipeline.study import load_study

    for name in ("train.csv", "test.csv", "made.csv"):
        (tmp_path / name).write_text("text,label\nthe match ended,0\nthe markets fell,1\n", encoding="utf-8")
    (tmp_path / "news.yaml").write_text(textwrap.dedent(f"""\
        name: news
        description: news articles, classified by topic
        label_map: {{0: sports, 1: business}}
        labels: [sports, business]
        human_data: {{files: {files}}}
        """), encoding="utf-8")  # fmt: skip
    (tmp_path / "study.yaml").write_text(textwrap.dedent(f"""\
        experiment: s
        tasks: [{tmp_path / "news.yaml"}]
        languages: [en]
        source: {tmp_path}
        candidates:
          - {{data: {tmp_path / "made.csv"}, name: made}}
        train: {{seeds: [1]}}
        """), encoding="utf-8")  # fmt: skip
    built = plan.build(load_study(tmp_path / "study.yaml"))
    trains = [u.who for u in built.units if u.stage == "train"]
    cells = [(u.who, u.on) for u in built.units if u.stage == "evaluate"]
    assert trains == (["made", "human (baseline)"] if baseline else ["made"])
    assert cells == ([("made", "human"), ("human (baseline)", "human")] if baseline else [("made", "human")])
    assert any("no human-data baseline" in note for note in built.notes) is not baseline


# --- label-free selectors and the pre-race (both sections) ---------------------------------------------------------
def _news_task(tmp_path: Path, rows: int = 11):
    from rose.tasks import get_task

    (tmp_path / "data" / "news").mkdir(parents=True)
    lines = ["text,label"] + [f"story number {i},{i % 2}" for i in range(rows)]
    (tmp_path / "data" / "news" / "test.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "news.yaml").write_text(textwrap.dedent("""\
        name: news
        description: news articles, classified by topic
        label_map: {0: sports, 1: business}
        labels: [sports, business]
        human_data: {files: {test: news/test.csv}}
        """), encoding="utf-8")  # fmt: skip
    return get_task(str(tmp_path / "news.yaml"))


def test_the_human_test_set_splits_into_a_disjoint_pool_and_oracle(tmp_path: Path):
    from rose.human_data import load_split

    task = _news_task(tmp_path)
    split = validity.half_split(task, tmp_path / "data", tmp_path / "halves")
    assert (split["test_rows"], split["pool_rows"], split["oracle_rows"]) == (11, 5, 6)
    pool = pd.read_csv(split["pool_file"])["text"].tolist()
    oracle = load_split(task, "en", "test", split["oracle_root"])  # where the task file says, same format
    assert len(pool) == 5 and len(oracle.texts) == 6 and not set(pool) & set(oracle.texts)
    assert sorted(pool + oracle.texts) == sorted(f"story number {i}" for i in range(11))
    assert set(oracle.labels) <= {"sports", "business"}
    again = validity.half_split(task, tmp_path / "data", tmp_path / "again")  # a fixed seed: the same halves
    assert pd.read_csv(again["pool_file"])["text"].tolist() == pool
    other = validity.half_split(task, tmp_path / "data", tmp_path / "other", seed=1)
    assert pd.read_csv(other["pool_file"])["text"].tolist() != pool


def _case(probe: dict, champion: str, human: dict):
    from types import SimpleNamespace

    names = list(probe)
    seeds = pd.DataFrame([{"candidate": n, "seed": s, "run_id": f"t-{n}-{s}"} for n in names for s in (1, 2)])
    evals = pd.DataFrame([{"train_candidate": a, "eval_candidate": b, "seed": s, "run_id": f"e-{a}-{b}"}
                          for a in names for b in names if a != b for s in (1, 2)])  # fmt: skip
    free = SimpleNamespace(values=pd.DataFrame({"rose_probe": probe}),
                           seconds={"embedding": 2.0, "rose_probe": 1.0, "mmd_target": 0.5, "atc_target": 3.0})  # fmt: skip
    return SimpleNamespace(task="news", candidates=names, champion=champion, human=pd.Series(human), seeds=seeds,
                           evals=evals, label_free=free)  # fmt: skip


def test_the_pre_race_keeps_the_best_by_rose_probe_and_counts_the_compute_it_uses():
    case = _case({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.1}, champion="b", human={"a": 0.5, "b": 0.6, "c": 0.4, "d": 0.7})
    durations = {f"t-{n}-{s}": {"a": 10, "b": 10, "c": 10, "d": 70}[n] for n in "abcd" for s in (1, 2)}
    durations |= {f"e-{a}-{b}": 5.0 for a in "abcd" for b in "abcd" if a != b}
    race = validity.pre_race(case, durations, keep=3)
    assert race["kept"] == "a, b, c" and race["champion_kept"] == 1.0
    assert race["oracle_best"] == "d" and race["oracle_best_kept"] == 0.0
    assert race["fine_tunes_kept"] == "6/8" and race["cells_kept"] == "6/12"
    assert race["compute_share"] == pytest.approx((60 + 6 * 5) / (200 + 12 * 5))
    two = validity.pre_race(case, durations, keep=1)
    assert two["kept"] == "a" and two["champion_kept"] == 0.0
    costs = validity.selector_seconds(case, durations)
    assert costs["rose_probe"] == 3.0 and costs["mmd_target"] == 2.5 and costs["atc_target"] == 3.0
    assert costs["rose"] == 200 + 12 * 5 and costs["random"] == 0.0


def test_every_selector_is_a_row_with_a_number_or_not_available():
    rows = [{"case": c, "metric": m, "top1": 1.0, "regret": 0.0, "spearman": 0.5, "kendall": 0.4, "pick": "a",
             "oracle": "a", "seconds": 1.0} for c in ("news",) for m in ["rose", *validity.SELECTOR_ROWS, "random"]]  # fmt: skip
    table = pd.DataFrame(rows)
    table.loc[table["metric"] == "mauve_target", ["top1", "regret", "spearman", "kendall"]] = np.nan
    table = pd.concat([table, table.assign(case="pooled", cases=1)], ignore_index=True)
    table["available"] = table["top1"].notna()
    races = pd.DataFrame([{"case": "news", "kept": "a, b", "champion_kept": 1.0, "compute_share": 0.4}])
    splits = pd.DataFrame([{"case": "news", "test_rows": 10, "pool_rows": 5, "oracle_rows": 5}])
    text = validity.half_markdown(table, races, splits)
    for name in validity.SELECTOR_ROWS:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| pooled | {name} |"))
        assert ("not available" in line) is (name == "mauve_target"), line
    assert "compute_share" in text and "pool_rows" in text and "oracle_rows" in text

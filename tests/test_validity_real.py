"""The real-generator section of benchmarks/validity.py: finding the publisher's files, reading its published
ranking, comparing rankings; and the multigen task files importing the five generators' data as published."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

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

"""Bad input is refused before work starts, with one line that says what to fix, on every entry surface.

The table of constraints is checked three ways: the ``rose`` command line, the MLproject entry points (the
command MLflow's own project code builds from ``-P`` parameters, run as a process) and a study config (both
``load_study`` and ``rose pipeline --dry-run``).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rose.errors import RoseError
from tests.fakes import LANGUAGE, SOURCE, use_tracking_db

ROOT = Path(__file__).resolve().parents[1]

REQUIRED = {
    "generate": {"task": "topic", "language": LANGUAGE, "generator": "fake-a", "backend": "fake",
                 "source": str(SOURCE)},
    "train": {"task": "topic", "language": LANGUAGE, "data": f"human:{SOURCE}"},
}  # fmt: skip

# (stage, setting, value on the command line / MLproject, value in a study's YAML, what the message says)
CASES = [
    ("generate", "per_label", "0", 0, "must be >= 1, got 0"),
    ("generate", "per_label", "-1", -1, "must be >= 1, got -1"),
    ("generate", "examples_per_request", "0", 0, "must be >= 1, got 0"),
    ("generate", "temperature", "-1", -1, "must be >= 0, got -1.0"),
    ("generate", "top_p", "2", 2, "must be > 0 and <= 1, got 2.0"),
    ("generate", "per_label", "1000000000", 1000000000, "more than the limit of 100,000"),
    ("generate", "seed", "-3", -3, "must be >= 0, got -3"),
    ("generate", "encoding", "no-such-codec", "no-such-codec", "is not a text encoding"),
    ("train", "seeds", "1,1", [1, 1], "lists 1 more than once"),
    ("train", "seeds", "-1", [-1], "must be >= 0, got -1"),
    ("train", "dev_fraction", "0", 0, "must be > 0 and < 1, got 0.0"),
    ("train", "dropout", "1.5", 1.5, "must be >= 0 and < 1, got 1.5"),
    ("train", "learning_rate", "0", 0, "must be > 0, got 0.0"),
    ("train", "max_epochs", "0", 0, "must be >= 1, got 0"),
]
IDS = [f"{stage}-{key}={cli}" for stage, key, cli, _, _ in CASES]


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    use_tracking_db(tmp_path, monkeypatch)
    return tmp_path


def _flags(values: dict) -> list[str]:
    return [part for key, value in values.items() for part in ("--" + key.replace("_", "-"), str(value))]


def _runs(experiment: str) -> list:
    import mlflow
    from mlflow.entities import ViewType

    exp = mlflow.MlflowClient().get_experiment_by_name(experiment)
    if exp is None:
        return []
    return mlflow.MlflowClient().search_runs([exp.experiment_id], run_view_type=ViewType.ALL)


# --- the table, three surfaces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stage, key, cli, yaml_value, message", CASES, ids=IDS)
def test_command_line_refuses(store, capsys, stage, key, cli, yaml_value, message):
    from rose.cli import main

    code = main([stage, *_flags({**REQUIRED[stage], "experiment": "v"}), "--" + key.replace("_", "-"), cli])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"rose {stage}: error: ")
    assert _runs("v") == []  # refused before anything was tracked


@pytest.mark.parametrize("stage, key, cli, yaml_value, message", CASES, ids=IDS)
def test_mlproject_parameters_refuse(store, stage, key, cli, yaml_value, message):
    from mlflow.projects import _project_spec

    entry = _project_spec.load_project(str(ROOT)).get_entry_point(stage)
    command = entry.compute_command({**REQUIRED[stage], "experiment": "v", key: cli}, str(store))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (command, done.stderr[-2000:])
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def _study(folder: Path, stage: str, key: str, value) -> Path:
    import yaml

    settings = {"generate": {"backend": "fake", "per_label": 4}, "train": {"seeds": [1, 2]}}
    settings[stage][key] = value
    text = textwrap.dedent(f"""\
        experiment: v
        tasks: [topic]
        languages: [{LANGUAGE}]
        source: {SOURCE}
        candidates:
          - {{generator: fake-a, strategy: zero_shot}}
          - {{generator: fake-b, strategy: zero_shot}}
        """) + yaml.safe_dump({"generate": settings["generate"], "train": settings["train"]}, sort_keys=False)
    path = folder / "study.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("stage, key, cli, yaml_value, message", CASES, ids=IDS)
def test_study_config_refuses(store, capsys, stage, key, cli, yaml_value, message):
    from rose.cli import main
    from rose.pipeline.study import load_study

    path = _study(store, stage, key, yaml_value)
    with pytest.raises(RoseError, match=r"study\.yaml:\d+: ") as info:
        load_study(path)
    assert message in str(info.value) and (key in str(info.value) or key.replace("_", "-") in str(info.value))
    line = int(str(info.value).split(":")[1])
    assert path.read_text().splitlines()[line - 1].strip().startswith((f"{key}:", stage, "-")), str(info.value)
    assert main(["pipeline", "--config", str(path), "--dry-run"]) == 2
    assert message in capsys.readouterr().err
    assert _runs("v") == []


def test_a_candidate_option_is_checked_with_its_line(store):
    from rose.pipeline.study import load_study

    path = _study(store, "generate", "per_label", 4)
    path.write_text(path.read_text().replace("{generator: fake-b, strategy: zero_shot}",
                                             "{generator: fake-b, strategy: zero_shot, temperature: -2}"))  # fmt: skip
    with pytest.raises(RoseError, match=r"study\.yaml:7: .*fake-b__zero_shot.*temperature must be >= 0"):
        load_study(path)


def test_a_missing_source_is_refused_by_the_dry_run(store):
    from rose.pipeline.study import load_study

    path = _study(store, "generate", "per_label", 4)
    path.write_text(path.read_text().replace(f"source: {SOURCE}", "source: /no/such/data"))
    with pytest.raises(RoseError, match=r"study\.yaml:4: no data at /no/such/data"):
        load_study(path)


def test_the_request_bound_can_be_lifted(store):
    from rose.config import from_mapping
    from rose.generate.config import GenerateConfig, planned_requests

    values = {**REQUIRED["generate"], "per_label": 1_000_000_000}
    with pytest.raises(RoseError, match="--max-planned-requests"):
        from_mapping(GenerateConfig, values)
    config = from_mapping(GenerateConfig, {**values, "max_planned_requests": 0})
    assert planned_requests(config) == 7 * (3 * 50_000_000 + 3)


def test_new_fields_carry_no_constraint_unless_they_say_so():
    """The mechanism is generic: any field works; metadata alone decides the checks."""
    import dataclasses

    from rose.config import field, from_mapping

    @dataclasses.dataclass
    class Demo:
        count: int = field(1, help="a count", min=1)
        names: list[str] = field([], help="names", distinct=True)
        free: str = field("", help="anything")

    assert from_mapping(Demo, {"free": "x", "names": "a,b"}).names == ["a", "b"]
    with pytest.raises(RoseError, match="--names lists a more than once"):
        from_mapping(Demo, {"names": "a,a"})
    with pytest.raises(RoseError, match="here: count must be >= 1, got 0"):
        from_mapping(Demo, {"count": "0"}, where="here")


# --- encodings ----------------------------------------------------------------------------------------------------
def _latin1_file(folder: Path) -> Path:
    path = folder / "sib200" / "cy"
    path.mkdir(parents=True)
    rows = [{"text": f"Sentence number {i} about sport", "label": "sports"} for i in range(3)]
    rows.append({"text": "Café culture in the city centre", "label": "travel"})
    lines = [__import__("json").dumps(r, ensure_ascii=False) for r in rows]
    (path / "train.jsonl").write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    return path / "train.jsonl"


def test_a_non_utf8_byte_names_file_line_and_encoding(tmp_path):
    from rose.human_data import load_split

    path = _latin1_file(tmp_path / "data")
    with pytest.raises(RoseError) as info:
        load_split("topic", "cy", "train", tmp_path / "data")
    assert str(info.value).startswith(f"{path}:4: byte 0xe9 is not valid utf-8: pass --encoding")
    data = load_split("topic", "cy", "train", tmp_path / "data", encoding="latin-1")
    assert "Café culture in the city centre" in data.texts


def test_encoding_flag_reaches_the_reader(store, capsys):
    from rose.cli import main

    _latin1_file(store / "data")
    args = ["train", "--task", "topic", "--language", "cy", "--data", f"human:{store / 'data'}", "--experiment", "v"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:4: byte 0xe9 is not valid utf-8" in err and len(err.strip().splitlines()) == 1
    assert _runs("v") == []


# --- the tracking store --------------------------------------------------------------------------------------------
def _generate_args(experiment: str = "v") -> list[str]:
    return ["generate", *_flags({**REQUIRED["generate"], "per_label": 2, "examples_per_request": 2}),
            "--experiment", experiment]  # fmt: skip


def test_empty_experiment_name_gives_mlflows_message(store, capsys):
    from rose.cli import main

    assert main([*_generate_args(), "--experiment", ""]) == 2
    err = capsys.readouterr().err
    assert "Invalid experiment name" in err and "AttributeError" not in err


@pytest.mark.parametrize(
    "uri, message",
    [
        ("sqlite:////no/such/folder/mlflow.db", "the folder /no/such/folder does not exist"),
        # a folder that exists and that permissions say root may write, where no file can be made
        pytest.param(
            "sqlite:////proc/x.db",
            "cannot create the database in /proc",
            marks=pytest.mark.skipif(not Path("/proc").is_dir(), reason="no /proc"),
        ),
        ("http://127.0.0.1:9", "cannot reach the tracking server http://127.0.0.1:9"),
    ],
)
def test_a_store_that_cannot_be_created_or_reached_fails_in_seconds(tmp_path, monkeypatch, capsys, uri, message):
    from rose.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    assert main(_generate_args()) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - started < 15
    assert message in err and uri in err and len(err.strip().splitlines()) == 1, err


def test_a_locked_store_fails_in_seconds(store, monkeypatch, capsys):
    from rose import tracking
    from rose.cli import main

    monkeypatch.setattr(tracking, "PROBE_TIMEOUT_S", 1.0)
    db = store / "mlflow.db"
    holder = sqlite3.connect(str(db))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.perf_counter()
        assert main(_generate_args()) == 2
        elapsed = time.perf_counter() - started
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert "is locked by another process" in err and str(db) in err and elapsed < 15, err


# --- no run behind an input error, a FAILED run that says why behind a failure during work ---------------------------
def test_an_input_error_leaves_no_run(store, capsys):
    from rose.cli import main

    empty = store / "empty"
    (empty / "sib200" / LANGUAGE).mkdir(parents=True)
    (empty / "sib200" / LANGUAGE / "train.jsonl").write_text("")
    args = _generate_args()
    args[args.index("--source") + 1] = str(empty)
    assert main([*args, "--strategy", "target_demos"]) == 2
    assert "the file is empty" in capsys.readouterr().err
    assert _runs("v") == []


def test_a_failure_during_work_leaves_a_failed_run_that_says_why(store):
    from rose.generate.backends import FakeBackend
    from rose.generate.run import generate
    from tests.fakes import generate_config

    def broken(request):
        raise ConnectionError("the model server went away")

    config = generate_config(store, experiment="v", strategy="zero_shot")
    with pytest.raises(ConnectionError):
        generate(config, backend=FakeBackend(script=broken))
    (run,) = _runs("v")
    assert run.info.status == "FAILED" and run.data.tags["rose.error"] == "the model server went away"
    import mlflow

    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/error.txt")
    assert "ConnectionError" in text


def test_ctrl_c_ends_the_run_killed(store):
    import mlflow

    from rose import tracking

    tracking.setup("v")
    with pytest.raises(KeyboardInterrupt), tracking.run("x", tracking.tags("score", "topic", "cy")):
        raise KeyboardInterrupt
    (run,) = _runs("v")
    assert run.info.status == "KILLED" and run.data.tags["rose.error"].startswith("interrupted")
    assert mlflow.active_run() is None


# --- messages that point the right way ------------------------------------------------------------------------------
def test_score_on_an_unknown_experiment_creates_nothing(store, capsys):
    import mlflow

    from rose.cli import main

    assert main(["score", "--task", "topic", "--language", "cy", "--experiment", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no experiment 'nope'" in err and "rose generate" in err
    assert mlflow.MlflowClient().get_experiment_by_name("nope") is None


def test_score_with_unknown_candidates_lists_the_known_ones(store, monkeypatch, capsys):
    from rose.cli import main
    from tests.fakes import fake_generate

    fake_generate(store, monkeypatch, experiment="v", generator="fake-a", strategy="zero_shot")
    args = ["score", "--task", "topic", "--language", LANGUAGE, "--experiment", "v", "--candidates", "a,b"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "candidate(s) a, b" in err and "known candidates are fake-a__zero_shot" in err


def test_the_loader_names_the_column_flags_that_exist(tmp_path):
    from rose.cli import build_parser
    from rose.human_data import load_split

    path = tmp_path / "mine.jsonl"
    path.write_text('{"sentence": "hello", "topic": "sports"}\n')
    with pytest.raises(RoseError, match="no column 'text'") as info:
        load_split("topic", "en", "train", path)
    flags = [f for f in ("--text-column", "--label-column") if f in str(info.value)]
    parser = build_parser()
    for command in ("train", "generate"):
        sub = parser._subparsers._group_actions[0].choices[command]
        known = {s for a in sub._actions for s in a.option_strings}
        assert all(f in known for f in flags) or not flags, (command, flags)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-parallel", "-1"], "--max-parallel must be 1 or more"),
        (["--gpus-per-generator", "-1"], "--gpus-per-generator must be 0 or more"),
    ],
)
def test_run_pipeline_refuses_bad_executor_settings(store, capsys, flags, message):
    from rose.cli import main

    path = _study(store, "generate", "per_label", 4)
    assert main(["pipeline", "--config", str(path), *flags]) == 2
    assert message in capsys.readouterr().err
    assert _runs("v") == []


def test_an_unreachable_generation_server_leaves_no_run(store, capsys):
    from rose.cli import main

    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [*_generate_args(), "--backend", "openai", "--base-url", f"http://127.0.0.1:{port}/v1", "--timeout", "2"]
    assert main([*args, "--strategy", "zero_shot"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the OpenAI-compatible server at http://127.0.0.1:{port}/v1" in err
    assert _runs("v") == []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

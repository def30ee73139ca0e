"""Settings of ``rose score``: one dataclass, mapped one to one onto flags and MLproject parameters."""

from __future__ import annotations

from dataclasses import dataclass

from rose.config import field
from rose.languages import known_language
from rose.tasks import tracked_task


@dataclass
class ScoreConfig:
    """What to score and how.

    Reference: Cegin et al. 2025, RoSE (arXiv 2510.06143).
    """

    task: list[str] = field(help="task(s) to score, comma-separated: names of tracked tasks (topic, ...; 'all') or "
                                 "task files (.yaml: only runs of that content are scored)",
                            nonempty=True, check=lambda t: None if t == "all" else tracked_task(t))  # fmt: skip
    language: list[str] = field(help="language code(s), comma-separated (e.g. th,cy; 'all' for every one tracked)",
                                nonempty=True, check=lambda c: None if c == "all" else known_language(c))  # fmt: skip
    experiment: str = field("rose", help="MLflow experiment holding the generate and train runs")
    candidates: list[str] = field([], help="candidate names to compare (default: every tracked candidate)",
                                  distinct=True)  # fmt: skip
    reference_lm: str = field(
        "gemma-3-270m", help="multilingual causal LM for perplexity (short name, hub id, path; '' skips)"
    )
    reference_lm_languages: list[str] = field(
        [], help="languages the reference LM reads (default: rose's table of known LMs); perplexity is not "
                 "reported for other languages"
    )  # fmt: skip
    reference_lm_dtype: str = field(
        "auto", help="the reference LM's weights and arithmetic: auto (bfloat16 where the hardware computes it "
                     "natively, else float32), float32 or bfloat16; recorded with the perplexity it gave",
        choices=["auto", "float32", "bfloat16"])  # fmt: skip
    embedding_model: str = field("multilingual-e5-small", help="embedding model for diversity ('' skips)")
    tokenizer: str = field("multilingual-e5-small", help="subword tokenizer for distinct-n, self-BLEU, lengths")
    intrinsic: bool = field(True, help="compute intrinsic metrics of generate runs that lack them")
    recompute: bool = field(False, help="recompute intrinsic metrics even where a generate run has them")
    intrinsic_sample: int = field(1000, help="texts per dataset for the costly metrics (embeddings, perplexity)",
                                  min=1)  # fmt: skip
    group_by: str = field("none", help="also score within groups of candidates: strategy (each strategy's "
                          "generators, as RoSE), generator (each generator's strategies), both, or none",
                          choices=["none", "strategy", "generator", "both"])  # fmt: skip
    fill_missing: bool = field(True, help="compute missing cross-evaluation cells from the logged classifiers "
                                          "(false, or --no-fill: print the commands that would)")  # fmt: skip
    train_runs: list[str] = field([], help="train setting runs to score (default: per candidate, the newest training "
                                           "on its current dataset with the settings most candidates share)")  # fmt: skip
    human_test: str = field("", help="human test set to judge on, human:<data folder> (default: the one most "
                                     "classifiers were evaluated on)")  # fmt: skip
    bootstrap: int = field(1000, help="bootstrap resamples of seeds for RoSE's confidence interval", min=1)
    seed: int = field(0, help="seed of the bootstrap, samples and the random baseline", min=0)
    register_champion: bool = field(True, help="register the picked candidate's best seed with alias 'champion'")
    model_name: str = field("rose-{task}-{language}", help="registered model name ({task} and {language} filled in)")
    output_dir: str = field("", help="folder for the report files (default: a temporary folder, logged to MLflow)")
    unlabelled: str = field("", help="unlabelled target-language text for the label-free selectors (mmd_target, "
                                     "pad_target, mauve_target, atc_target, agreement_target): a CSV/JSONL/parquet "
                                     "file or hub dataset with a text column, or human-train (the human train split, "
                                     "labels dropped; human-train:<folder> names its data folder)")  # fmt: skip
    unlabelled_column: str = field("text", help="text column of the --unlabelled file or dataset")
    unlabelled_sample: int = field(2000, help="at most this many pool texts (a seeded sample)", min=1)
    selectors: bool = field(True, help="compute the label-free selectors (dcscore and rose_probe need only the "
                                       "embedding model; the others need --unlabelled)")  # fmt: skip

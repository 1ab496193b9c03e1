"""Canonical model bytes, the model's record, and the one way to load a model from disk.

Same inputs must give the same file. Pickle is deterministic for a fixed protocol, except
for attributes that record the machine or the process rather than the model; those are
normalised here before the bytes are written.
"""

import json
import pickle
import pickletools
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .determinism import canonicalize as canonicalize_library_state
from .dvcfiles import recorded_md5
from .errors import ModelFileError
from .hashing import bytes_digest, file_digest
from .io import atomic_write_bytes, write_json

PICKLE_PROTOCOL = 5
RECORD_SUFFIX = ".json"

# (class name, attribute) -> canonical value; DELETE removes the attribute.
DELETE = object()
VOLATILE_ATTRIBUTES = {
    # Thread count of the machine that fitted the model; predictions do not depend on it.
    ("_BinMapper", "n_threads"): None,
    ("KMeans", "_n_threads"): 1,
    ("MiniBatchKMeans", "_n_threads"): 1,
    # id() of the stop-word list: different in every process.
    ("CountVectorizer", "_stop_words_id"): DELETE,
    ("TfidfVectorizer", "_stop_words_id"): DELETE,
    ("HashingVectorizer", "_stop_words_id"): DELETE,
}


def canonicalize(model: Any) -> Any:
    """Normalise, in place, every volatile attribute reachable from ``model``; return it."""
    seen: set[int] = set()
    pending = [model]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
        elif hasattr(node, "__dict__") and (
            type(node).__module__.startswith("sklearn") or hasattr(node, "get_params")
        ):
            canonicalize_library_state(node)
            _intern_attribute_names(node)
            for attribute in list(vars(node)):
                canonical = VOLATILE_ATTRIBUTES.get((type(node).__name__, attribute))
                if canonical is DELETE:
                    delattr(node, attribute)
                elif (type(node).__name__, attribute) in VOLATILE_ATTRIBUTES:
                    setattr(node, attribute, canonical)
            pending.extend(vars(node).values())
    return model


def _intern_attribute_names(node: Any) -> None:
    """Give ``node`` attribute names that are the interned strings. Pickle writes a string it
    has seen as a reference to it, by identity: an estimator unpickled earlier in the process
    (scikit-learn's ``__setstate__`` keeps the stream's key strings, and instances of a class
    share their key table) left later instances of its class with names equal to, but not
    the same objects as, other estimators' names, and so other model bytes."""
    state = vars(node)
    if any(type(name) is str and sys.intern(name) is not name for name in state):
        node.__dict__ = {
            sys.intern(name) if type(name) is str else name: value for name, value in state.items()
        }


def model_bytes(model: Any) -> bytes:
    """The canonical serialisation: normalised attributes, pinned protocol, no unused memo."""
    return pickletools.optimize(pickle.dumps(canonicalize(model), protocol=PICKLE_PROTOCOL))


def save_model(model: Any, path: str | Path) -> str:
    """Write the canonical bytes of ``model`` atomically; return their sha256."""
    data = model_bytes(model)
    atomic_write_bytes(path, data)
    return bytes_digest(data)


def checked_bytes(path: str | Path, expected_sha256: str) -> bytes:
    """A model file's bytes, refused unless their sha256 is ``expected_sha256``."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no model file here; run `dvc repro` or `dvc pull`")
    data = path.read_bytes()
    actual = bytes_digest(data)
    if actual != expected_sha256:
        raise ModelFileError(
            f"{path}: sha256 {actual} is not the recorded {expected_sha256}; refusing to load "
            "it. Fix: `dvc checkout` (or `dvc pull`) restores the recorded file."
        )
    return data


def load_model(path: str | Path, expected_sha256: str) -> Any:
    """Load a model file: the only place the project unpickles.

    The bytes are checked against ``expected_sha256`` before anything is unpickled, so a
    tampered file never runs its payload; a model pickled by another scikit-learn is refused.
    """
    data = checked_bytes(path, expected_sha256)
    import warnings

    from sklearn.exceptions import InconsistentVersionWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            # The one sanctioned unpickle in the project: the bytes were just verified.
            return pickle.loads(data)
        except InconsistentVersionWarning as mismatch:
            raise ModelFileError(
                f"{path}: pickled by scikit-learn {mismatch.original_sklearn_version}, but this "
                f"environment has {mismatch.current_sklearn_version}. Fix: `make setup` to "
                "restore the locked environment, or `dvc repro` to retrain."
            ) from None


def resolved_params(config: Any) -> dict:
    """The parameters that shaped the model: everything but where files live."""
    params = asdict(config)
    params.pop("paths")
    return params


def data_version(path: str | Path) -> dict:
    """The md5 of a raw input: DVC's own (from its ``.dvc`` file) when it has one, so a large
    table is not read again for a digest DVC already computed."""
    md5 = recorded_md5(path)
    return {"md5": md5 if md5 is not None else file_digest(path, "md5")}


def training_record(config: Any) -> dict:
    """What the train stage records beside the model's hash: data version, parameters and
    the environment's fingerprint (nothing time- or path-dependent, so dvc.lock stays put)."""
    from .environment import fingerprint

    raw = config.paths.raw_data
    return {
        "data": {Path(raw).as_posix(): data_version(raw)},
        "params": resolved_params(config),
        "environment": fingerprint(),
    }


def record_path(model_path: str | Path) -> Path:
    """Where a model's record lives: beside it, with the suffix ``.json`` (models/model.pkl,
    models/model.json), so verification and rebuild find it from the model alone."""
    return Path(model_path).with_suffix(RECORD_SUFFIX)


def write_record(path: str | Path, model_path: str | Path, sha256: str, **extra) -> Path:
    """The model's record: what the loader checks before it unpickles anything."""
    if Path(path) != record_path(model_path):
        raise ModelFileError(
            f"the record of {model_path} must be {record_path(model_path)}, not {path}. Fix: "
            "set conf/paths model_record to that path."
        )
    record = {"model": {"path": Path(model_path).as_posix(), "sha256": sha256}, **extra}
    return write_json(path, record)


def read_record(record_path: str | Path) -> dict:
    path = Path(record_path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no model record here; run `dvc repro` or `dvc pull`")
    return json.loads(path.read_text(encoding="utf-8"))


def _described(model_path: str | Path, record: str | Path, root) -> tuple[Path, str]:
    """(where the model file is, the sha256 its record holds), once the record is checked to
    describe ``model_path``; ``root`` is where that path starts (the working directory by
    default, a scratch copy for verification)."""
    described = read_record(record)
    if Path(described["model"]["path"]) != Path(model_path):
        raise ModelFileError(f"{record} describes {described['model']['path']}, not {model_path}")
    located = Path(root) / model_path if root is not None else Path(model_path)
    return located, described["model"]["sha256"]


def recorded_sha256(
    model_path: str | Path, record: str | Path, root: str | Path | None = None
) -> str:
    """The sha256 that ``record`` holds for ``model_path``, once the file is checked to have
    those bytes: what comparing two models needs when nothing is to be unpickled."""
    located, sha256 = _described(model_path, record, root)
    checked_bytes(located, sha256)
    return sha256


def load_recorded_model(
    model_path: str | Path, record: str | Path, root: str | Path | None = None
) -> Any:
    """Load the model that ``record`` describes, checked against its recorded sha256."""
    located, sha256 = _described(model_path, record, root)
    return load_model(located, expected_sha256=sha256)

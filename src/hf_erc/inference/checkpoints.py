"""Loading a checkpoint (a folder or a Hub repository) without running anything it ships.

A checkpoint of one of hf_erc's model types loads with the package's own classes, whatever Python files it carries;
the code a checkpoint ships (``auto_map`` in its ``config.json``) runs only when the caller opts in with
``trust_remote_code=True`` (``--trust-remote-code`` on the command line). Weights load from safetensors only: a
pickled ``pytorch_model.bin`` can run code when it is read. Every refusal is a :class:`CheckpointError` whose
one-line message names the checkpoint and the fix.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from huggingface_hub import hf_hub_download
from safetensors import safe_open
from transformers import AutoModel, AutoProcessor

from ..models.registry import MODEL_FAMILIES, known_model_types

__all__ = [
    "CheckpointError",
    "ENDPOINT_HANDLER_FILE",
    "ENDPOINT_HANDLER_SOURCE",
    "checkpoint_file",
    "foreign_code_files",
    "load_checkpoint_model",
    "load_checkpoint_processor",
    "one_line",
    "read_checkpoint_json",
    "ships_code",
]

CONFIG_FILE = "config.json"
PROCESSOR_FILE = "processor_config.json"
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = re.compile(r"^(pytorch_)?model.*\.(bin|pt|pth|ckpt)$")  # pytorch_model.bin, model.pt, ...
# A Hub repository id ("org/name"); any other name that is not a folder here is a missing folder.
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The Inference Endpoints handler every checkpoint ships: this package's endpoint_handler.py, copied verbatim
# (hf_erc.hub.write_endpoint_files).
ENDPOINT_HANDLER_FILE = "handler.py"
ENDPOINT_HANDLER_SOURCE = Path(__file__).with_name("endpoint_handler.py")
OPT_IN = "--trust-remote-code (hf-erc predict, hf-erc demo) or trust_remote_code=True (hf_erc.pipeline)"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, or not without running its code; the message names it and the fix."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters (library messages span several lines)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def foreign_code_files(folder: str | os.PathLike) -> list[str]:
    """The Python files in a checkpoint folder that are not byte for byte hf_erc's own files of that name: its model
    files, and the endpoint handler (``handler.py``).

    Empty for a checkpoint ``scripts/train.py`` wrote: its shipped code is then the package's, and loading it with
    ``trust_remote_code=True`` (as the quickstart does to prove the checkpoint loads without hf_erc) runs nothing
    foreign.
    """
    models = Path(__file__).resolve().parents[1] / "models"
    foreign = []
    for shipped in sorted(Path(folder).glob("*.py")):
        if shipped.name == ENDPOINT_HANDLER_FILE:
            own = [ENDPOINT_HANDLER_SOURCE]
        else:
            own = list(models.glob(f"*/{shipped.name}"))
        if len(own) != 1 or own[0].read_bytes() != shipped.read_bytes():
            foreign.append(shipped.name)
    return foreign


def checkpoint_file(name_or_path: str | os.PathLike, filename: str) -> str | None:
    """The local path of ``filename`` in a checkpoint folder or Hub repository, ``None`` when it has none."""
    name_or_path = os.fspath(name_or_path)
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, filename)
        return path if os.path.isfile(path) else None
    if not HUB_REPO_ID.match(name_or_path):
        return None
    try:
        return hf_hub_download(name_or_path, filename)
    except Exception:  # not a repository id, no such file, offline: all mean "not there"
        return None


def read_checkpoint_json(name_or_path: str | os.PathLike, filename: str = CONFIG_FILE) -> dict:
    """A checkpoint's JSON file (``config.json``, ``processor_config.json``) as a dict, or a clear error."""
    name = os.fspath(name_or_path)
    if os.path.isfile(name):
        raise CheckpointError(f"{name} is a file: pass the checkpoint folder that holds it (save_pretrained's output).")
    if not os.path.isdir(name) and not HUB_REPO_ID.match(name):
        raise CheckpointError(f"Checkpoint folder {name} does not exist.")
    path = checkpoint_file(name, filename)
    if path is None:
        if not os.path.isdir(name):
            raise CheckpointError(
                f"{name} is not a folder here, and no Hub repository {name} with a {filename} could be reached."
            )
        raise CheckpointError(
            f"{name} has no {filename}: not a checkpoint folder (save_pretrained writes config.json and "
            "model.safetensors)."
        )
    try:
        with open(path, encoding="utf-8") as file:
            values = json.load(file)
    except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, nested too deep
        raise CheckpointError(f"{path} is not a valid JSON file ({one_line(error, 200)}).") from error
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(values).__name__}.")
    return values


def ships_code(name_or_path) -> bool:
    """Whether a model folder or Hub repository asks, in its ``config.json``, for the Python code it ships."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        return False
    try:
        return "auto_map" in read_checkpoint_json(name_or_path)
    except CheckpointError:  # no readable config.json: nothing asks for code
        return False


def _processor_class_names() -> list[str]:
    """The processor classes of the model registry's families, by name (``processor_config.json`` names its class)."""
    classes = (family.processor_class for family in MODEL_FAMILIES.values() if family.processor_class is not None)
    return sorted({processor_class.__name__ for processor_class in classes})


def _references(auto_map) -> list[str]:
    """The ``module.Class`` references of an ``auto_map`` (values are a string or a list of them)."""
    if not isinstance(auto_map, dict):
        return []
    values = []
    for value in auto_map.values():
        values += [item for item in (value if isinstance(value, list) else [value]) if isinstance(item, str)]
    return [value.split("--")[-1] for value in values]


def _check_known(name: str, what: str, known: list[str], auto_map, trust_remote_code: bool) -> None:
    """Refuse a checkpoint whose ``what`` (``model_type 'x'``, ``processor_class 'X'``) hf_erc does not know,
    unless it ships code for it (``auto_map``) and the caller opted in to running that code."""
    if auto_map is None:
        raise CheckpointError(
            f"{name}: its {what} is not one of hf_erc's ({', '.join(known)}) and the checkpoint ships no code for it "
            "(no auto_map): it is not an hf_erc emotion-recognition checkpoint."
        )
    if not trust_remote_code:
        shipped = sorted({reference.split(".")[0] + ".py" for reference in _references(auto_map)})
        raise CheckpointError(
            f"{name}: its {what} is not one of hf_erc's ({', '.join(known)}), so loading it would run the Python "
            f"code the checkpoint ships ({', '.join(shipped) or 'auto_map'}). Nothing was run. If you trust that "
            f"code, opt in with {OPT_IN}."
        )


def _check_weights(name: str) -> None:
    """A local folder must offer safetensors weights that open; pickled weights alone are refused."""
    if not os.path.isdir(name):
        return  # a Hub repository: from_pretrained(use_safetensors=True) refuses pickled weights itself
    files = sorted(os.listdir(name))
    if not any(filename in files for filename in SAFETENSORS_FILES):
        pickled = [filename for filename in files if PICKLED_WEIGHTS.match(filename)]
        if pickled:
            raise CheckpointError(
                f"{name} offers its weights only as pickled {', '.join(pickled)}, which can run code when loaded; "
                "hf_erc loads safetensors weights only: re-save the model with save_pretrained (safetensors is its "
                "default) where you trust the file."
            )
        raise CheckpointError(f"{name} has no model.safetensors: the checkpoint's weights are missing.")
    single = os.path.join(name, SAFETENSORS_FILES[0])
    if os.path.isfile(single):
        try:
            with safe_open(single, framework="pt"):
                pass
        except Exception as error:  # SafetensorError: truncated, not safetensors at all
            raise CheckpointError(
                f"{single} is damaged ({one_line(error)}): the file is truncated or corrupt; download or save the "
                "checkpoint again."
            ) from error


def load_checkpoint_model(model_name_or_path: str | os.PathLike, trust_remote_code: bool = False):
    """The model of a checkpoint, through ``AutoModel`` with hf_erc's registered classes and safetensors weights.

    A checkpoint of another model type loads only with ``trust_remote_code=True`` and the code it ships; any
    failure is a one-line :class:`CheckpointError` naming the checkpoint.
    """
    name = os.fspath(model_name_or_path)
    config = read_checkpoint_json(name)
    known = known_model_types()
    if config.get("model_type") not in known:
        _check_known(name, f"model_type {config.get('model_type')!r}", known, config.get("auto_map"), trust_remote_code)
    _check_weights(name)
    try:
        return AutoModel.from_pretrained(name, trust_remote_code=trust_remote_code, use_safetensors=True)
    except Exception as error:
        if type(error).__name__ == "SafetensorError":
            raise CheckpointError(f"{name}: its safetensors weights are damaged ({one_line(error)}).") from error
        if isinstance(error, OSError) and "safetensors" in str(error) and not os.path.isdir(name):
            raise CheckpointError(
                f"{name} offers no safetensors weights (model.safetensors); hf_erc loads safetensors weights only, "
                "never pickled ones."
            ) from error
        raise CheckpointError(
            f"{name} cannot be loaded as a {config.get('model_type')!r} model ({type(error).__name__}: "
            f"{one_line(error)})."
        ) from error


def load_checkpoint_processor(model_name_or_path: str | os.PathLike, trust_remote_code: bool = False):
    """The processor saved with a checkpoint (TelME, MAGTKD), through ``AutoProcessor`` with hf_erc's classes; a
    processor class of someone else's loads only with ``trust_remote_code=True``."""
    name = os.fspath(model_name_or_path)
    settings = read_checkpoint_json(name, PROCESSOR_FILE)
    processor_class, known = settings.get("processor_class"), _processor_class_names()
    if processor_class not in known:
        _check_known(name, f"processor_class {processor_class!r}", known, settings.get("auto_map"), trust_remote_code)
    try:
        return AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise CheckpointError(
            f"{name}: its processor cannot be loaded ({type(error).__name__}: {one_line(error)})."
        ) from error

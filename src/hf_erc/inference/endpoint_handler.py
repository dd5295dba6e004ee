"""Hugging Face Inference Endpoints handler of an hf_erc checkpoint: one emotion per utterance of a conversation.

Every checkpoint that ``scripts/train.py`` writes (and every repository pushed from one) carries this file, copied
verbatim, as ``handler.py`` beside ``requirements.txt`` (:func:`hf_erc.hub.write_endpoint_files`); an endpoint
installs the requirements, imports ``handler.py`` and calls :class:`EndpointHandler`. It serves what
``hf_erc.pipeline(repository)`` serves: feature-level checkpoints (SDT, CMATH) and checkpoints saved with a processor
(TelME, MAGTKD stage models).

Request (JSON)::

    {"inputs": {"utterances": [{"speaker": "Maya", "text": "I got the job!"}, ...]},
     "parameters": {"online": false, "top_k": 3}}

``inputs`` is a conversation dict or the list of its utterances alone; an utterance may name ``audio``/``video``
files inside the repository (paths relative to it) with ``start``/``end`` in seconds. ``parameters`` is optional:

- ``online`` (bool, default false): label each utterance from itself and the turns before it only, as a live
  system does (the pipeline's ``stream``); a causal checkpoint, and a TelME or MAGTKD stage model (which reads only
  the past), gives the same labels either way.
- ``top_k`` (int >= 1): keep the ``top_k`` most probable emotions in each row's ``probabilities``, most probable
  first (``emotion`` and ``score`` are unchanged).

Response: the pipeline's rows, one per utterance, ``{"speaker", "text", "start", "end", "emotion", "score",
"probabilities"}`` (plus ``flags`` when a medium could not be read). A bad request is answered with ``{"error":
"..."}`` naming what is wrong and what to send, never a traceback: the handler returns it rather than raising, so
clients check for the ``error`` key. A checkpoint the pipeline cannot load fails when the endpoint starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

try:
    import hf_erc
    from hf_erc.inference.checkpoints import one_line
    from hf_erc.inference.conversations import read_conversation, short_repr
except ImportError as error:  # the endpoint did not install hf_erc (or one of its dependencies)
    raise ImportError(
        f"handler.py serves an hf_erc checkpoint and needs the hf_erc package ({error}): list it in the repository's "
        "requirements.txt, e.g. 'hf-erc @ git+https://github.com/<org>/hf_erc' or the URL of its wheel."
    ) from error

REQUEST_EXAMPLE = (
    '{"inputs": {"utterances": [{"speaker": "A", "text": "..."}, ...]}, "parameters": {"online": false, "top_k": 3}}'
)
MEDIA = ("audio", "video")


class EndpointHandler:
    """The Inference Endpoints contract: ``EndpointHandler(repository)(request) -> rows or {"error": ...}``."""

    def __init__(self, path: str = ""):
        self.repository = Path(path or Path(__file__).parent).resolve()
        self.pipeline = hf_erc.pipeline(str(self.repository))

    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]] | dict[str, str]:
        """The pipeline's rows for ``data["inputs"]``, or ``{"error": message}`` for a request it cannot serve."""
        try:
            utterances, online, top_k = self._read_request(data)
            rows = list(self.pipeline.stream(utterances)) if online else self.pipeline(utterances)
        except (ValueError, OSError) as error:  # a bad request: the message says what is wrong, then what to send
            return {"error": f"{one_line(error, limit=500)} Send {REQUEST_EXAMPLE}"}
        return rows if top_k is None else [_most_probable(row, top_k) for row in rows]

    def _read_request(self, data) -> tuple[list, bool, int | None]:
        """The request's utterances (media resolved inside the repository), ``online`` and ``top_k``."""
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError(f"The request must be a JSON object with an 'inputs' key, got {_kind(data)}.")
        inputs = data["inputs"]
        if not isinstance(inputs, (dict, list)):  # a string would be a file path on the server: never read
            raise ValueError(f"'inputs' must be a conversation object or a list of utterances, got {_kind(inputs)}.")
        if isinstance(inputs, dict) and "utterances" not in inputs:
            raise ValueError(
                f"'inputs' must hold 'utterances' (a list of {{'speaker', 'text'}} objects), got keys {sorted(inputs)}."
            )
        utterances = read_conversation(inputs)
        for position, utterance in enumerate(utterances):
            for modality in MEDIA:
                if getattr(utterance, modality):
                    setattr(utterance, modality, self._media_file(getattr(utterance, modality), modality, position))
        parameters = {} if data.get("parameters") is None else data["parameters"]
        if not isinstance(parameters, dict):
            raise ValueError(f"'parameters' must be an object, got {_kind(parameters)}.")
        unknown = sorted(set(parameters) - {"online", "top_k"})
        if unknown:
            raise ValueError(f"Unknown parameters {unknown}: this endpoint takes 'online' (true/false), 'top_k' (int).")
        online, top_k = parameters.get("online", False), parameters.get("top_k")
        if not isinstance(online, bool):
            raise ValueError(f"'online' must be true or false, got {_kind(online)}.")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"'top_k' must be a whole number >= 1, got {_kind(top_k)}.")
        return utterances, online, top_k

    def _media_file(self, name: str, modality: str, position: int) -> str:
        """The absolute path of a media file the request names, which must be a readable file of the repository:
        a request never makes the endpoint read a file outside it."""
        path = (self.repository / name).resolve()
        if not path.is_relative_to(self.repository):
            raise ValueError(
                f"utterance {position}: its {modality} {name!r} is outside the repository; an endpoint reads only the "
                "media files the repository holds, named by their path inside it."
            )
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ValueError(f"utterance {position}: its {modality} {name!r} is not a readable file in the repository.")
        return str(path)


def _most_probable(row: dict[str, Any], top_k: int) -> dict[str, Any]:
    """``row`` with only its ``top_k`` most probable emotions in ``probabilities``, most probable first."""
    ranked = sorted(row["probabilities"].items(), key=lambda item: item[1], reverse=True)
    return {**row, "probabilities": dict(ranked[:top_k])}


def _kind(value) -> str:
    """A value as error messages show it: its type and its value, cut short."""
    return f"{type(value).__name__} {short_repr(value)}"

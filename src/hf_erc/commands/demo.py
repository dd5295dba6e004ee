"""``hf-erc demo``: a Gradio app to try a checkpoint in the browser.

Two tabs: type or edit a conversation in a table, or upload a video with its ``.srt``/``.vtt`` subtitles; pick a
checkpoint; run; see one row per utterance (speaker, times, emotion, its probability, text, flags) and the emotion
timeline picture. The top-level ``app.py`` serves the same app as a Hugging Face Space. Users are served one
labelling at a time (``--concurrency``), the others wait in a bounded queue (``--max-queued``) and are told to try
again past it; ``scripts/bench_demo.py`` measures that under concurrent users (see :data:`CONCURRENT_LABELLINGS`).

Gradio is an optional dependency (``pip install "hf-erc[demo]"``): it is imported only when the demo is built, so
``hf-erc`` and its other sub-commands work without it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import uuid
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..data.media import MediaDecodeError
from ..inference.checkpoints import HUB_REPO_ID
from ..inference.pipelines import pipeline
from ..inference.timeline import plot_timeline

# What `hf-erc quickstart` trains, relative to the folder it ran in.
QUICKSTART_CHECKPOINT = "outputs/quickstart/sdt-meld-text"
SAMPLE_CONVERSATION = Path(__file__).resolve().parents[1] / "resources" / "sample_conversation.json"
CONVERSATION_COLUMNS = ["speaker", "text"]
RESULT_COLUMNS = ["speaker", "start", "end", "emotion", "probability", "text", "flags"]

# How many users are served at once. Both Run buttons share one pool of CONCURRENT_LABELLINGS workers
# (concurrency_id LABELLING; Gradio's default is one worker per button, so a conversation and a video would run
# side by side). A labelling is CPU-bound torch whose intra-op threads already use every core, so a second one at
# once only splits the cores: scripts/bench_demo.py (16 users, 160 requests half of them malformed, the tiny
# text-only checkpoint, 2 cores shared with other jobs, twice each) served 5.2 and 5.5 requests/s with 1 worker
# (labelling p50 3.2 / 3.0 s, p99 4.2 / 4.9 s) and 5.3 and 5.7 with 2 (p50 3.3 / 3.1 s, p99 6.2 / 5.3 s): no
# throughput beyond the noise, a longer tail and about 20 MiB more memory. One worker also never runs a pipeline (its
# tokenizer, its model) from two threads at once. Raise it with ``hf-erc demo --concurrency`` on a GPU or many
# cores. Requests beyond the workers wait in the queue, malformed ones too; past MAX_QUEUED waiting, a request is
# refused at once (the page says "This application is currently busy. Please try again.", gradio_client raises
# "Queue is full! Please try again.") instead of waiting for minutes: at about 0.2 to 0.4 s a request, the last
# of 64 waits some 15 to 25 s.
CONCURRENT_LABELLINGS = 1
MAX_QUEUED = 64
LABELLING = "labelling"

__all__ = [
    "CONCURRENT_LABELLINGS",
    "MAX_QUEUED",
    "QUICKSTART_CHECKPOINT",
    "RESULT_COLUMNS",
    "DemoBackend",
    "build_demo",
    "default_checkpoint",
    "register",
]


def _import_gradio():
    """Gradio, or an ImportError saying how to install it (it is the optional ``demo`` extra)."""
    try:
        import gradio  # optional (pip install "hf-erc[demo]"): hf-erc works without it
    except ImportError as error:
        raise ImportError(
            'The demo needs Gradio, which is not installed: pip install "hf-erc[demo]" (or pip install gradio).'
        ) from error
    return gradio


def default_checkpoint() -> str | None:
    """The quickstart checkpoint when ``hf-erc quickstart`` has trained it here, else ``None``."""
    return QUICKSTART_CHECKPOINT if os.path.isdir(QUICKSTART_CHECKPOINT) else None


def sample_table() -> list[list[str]]:
    """The packaged sample conversation as ``[speaker, text]`` rows, to prefill the conversation table."""
    utterances = json.loads(SAMPLE_CONVERSATION.read_text(encoding="utf-8"))["utterances"]
    return [[item["speaker"], item["text"]] for item in utterances]


def conversation_from_table(table: Any) -> dict[str, list[dict[str, str]]]:
    """A ``{"utterances": [...]}`` conversation from the table's rows (a list of ``[speaker, text]`` rows or a
    pandas DataFrame). Blank rows (the table's "add row" leaves them) are skipped; a row that is not two cells, a
    text without a speaker and a speaker without a text are errors naming the row, so nothing the user typed is
    dropped silently."""
    if hasattr(table, "values") and hasattr(table, "columns"):  # a pandas DataFrame
        table = table.values.tolist()
    utterances = []
    for number, row in enumerate(table or [], start=1):
        cells = ["" if cell is None else str(cell).strip() for cell in list(row)]
        if not any(cells):
            continue
        if len(cells) != len(CONVERSATION_COLUMNS):
            shown = ", ".join(map(repr, cells))[:80]
            raise ValueError(
                f"Conversation row {number} has {len(cells)} cell{'s' * (len(cells) != 1)} ({shown}): the table "
                f"takes {len(CONVERSATION_COLUMNS)} columns, {' and '.join(CONVERSATION_COLUMNS)}; put each "
                "utterance's speaker and text in them."
            )
        speaker, text = cells
        if not text:
            raise ValueError(f"Conversation row {number} ({speaker[:40]!r}) has no text: type it or delete the row.")
        if not speaker:
            raise ValueError(f"Conversation row {number} ({text[:40]!r}) has no speaker: fill in its speaker cell.")
        utterances.append({"speaker": speaker, "text": text})
    if not utterances:
        raise ValueError("The conversation is empty: type at least one row with a speaker and a text.")
    return {"utterances": utterances}


def with_turn_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without times get their turn index as time, one second per turn, so a conversation typed without
    times still draws as a timeline; rows with times are kept."""
    if all(row.get("start") is not None and row.get("end") is not None for row in rows):
        return rows
    return [{**row, "start": float(index), "end": float(index + 1)} for index, row in enumerate(rows)]


def result_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The result rows as the demo's table: speaker, start, end, emotion, probability, text, flags."""
    return [
        [
            row["speaker"],
            None if row.get("start") is None else round(float(row["start"]), 2),
            None if row.get("end") is None else round(float(row["end"]), 2),
            row["emotion"],
            round(float(row["score"]), 3),
            row["text"],
            "; ".join(row.get("flags") or []),
        ]
        for row in rows
    ]


def _checked_checkpoint(checkpoint: str | None) -> str:
    """The checkpoint to load: an existing folder or a Hub repository id; a clear error otherwise (before any
    download is tried)."""
    checkpoint = (checkpoint or "").strip()
    if not checkpoint:
        raise ValueError(
            f"No checkpoint: pick or type one (a checkpoint folder such as {QUICKSTART_CHECKPOINT}, trained by "
            "`hf-erc quickstart`, or a Hub repository id)."
        )
    if os.path.isdir(checkpoint):
        return os.path.abspath(checkpoint)
    looks_local = os.path.exists(checkpoint) or os.path.isdir(checkpoint.split("/")[0])  # e.g. outputs/typo
    if looks_local or not HUB_REPO_ID.match(checkpoint):
        hint = " Run `hf-erc quickstart` to train it." if checkpoint.rstrip("/").endswith(QUICKSTART_CHECKPOINT) else ""
        raise FileNotFoundError(f"Checkpoint folder {checkpoint} does not exist.{hint}")
    return checkpoint


class DemoBackend:
    """The demo's work without its widgets: load a checkpoint's pipeline (once per checkpoint; the cache lives in
    this object, so each demo has its own), label a conversation table or a video with its subtitles, and draw the
    timeline into this backend's image folder. ``trust_remote_code`` lets a checkpoint of a model type that is not
    hf_erc's run the code it ships (see :func:`hf_erc.pipeline`)."""

    def __init__(
        self,
        device: str | None = None,
        image_dir: str | os.PathLike | None = None,
        trust_remote_code: bool = False,
    ):
        self.device = device
        self.trust_remote_code = trust_remote_code
        self.image_dir = Path(image_dir or tempfile.mkdtemp(prefix="hf-erc-demo-"))
        self.pipelines: dict[str, Any] = {}
        self._lock = threading.Lock()

    def labeller(self, checkpoint: str | None):
        """The cached pipeline of ``checkpoint``, loaded on first use."""
        key = _checked_checkpoint(checkpoint)
        with self._lock:
            if key not in self.pipelines:
                self.pipelines[key] = pipeline(key, device=self.device, trust_remote_code=self.trust_remote_code)
            return self.pipelines[key]

    def label_conversation(self, checkpoint: str | None, table: Any) -> tuple[list[dict[str, Any]], Path]:
        """Label the table's conversation: result rows (turn indices as times) and the timeline PNG's path."""
        conversation = conversation_from_table(table)
        labeller = self.labeller(checkpoint)
        rows = with_turn_times(labeller(conversation))
        return rows, self._plot(labeller, rows, "Conversation: emotions by speaker (one second per turn)")

    def label_video(
        self, checkpoint: str | None, video: str | os.PathLike | None, subtitles: str | os.PathLike | None
    ) -> tuple[list[dict[str, Any]], Path]:
        """Label every subtitle cue of ``video``: result rows and the timeline PNG's path."""
        if not video:
            raise ValueError("No video: upload the video to label.")
        if not subtitles:
            raise ValueError("No subtitles: upload the video's .srt or .vtt file (every cue is one utterance).")
        labeller = self.labeller(checkpoint)
        rows = labeller(video=os.fspath(video), subtitles=os.fspath(subtitles))
        return rows, self._plot(labeller, rows, f"{Path(video).name}: emotions by speaker")

    def _plot(self, labeller, rows: list[dict[str, Any]], title: str) -> Path:
        labels = [labeller.id2label[index] for index in sorted(labeller.id2label)]
        path = self.image_dir / f"timeline-{uuid.uuid4().hex[:12]}.png"
        return plot_timeline(rows, path, title=title, labels=labels)


def build_demo(
    default_model: str | None,
    models: list[str] | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    concurrency: int = CONCURRENT_LABELLINGS,
    max_queued: int | None = MAX_QUEUED,
):
    """The demo as a ``gradio.Blocks``: a checkpoint picker, a "Conversation" and a "Video" tab with a Run button
    each, and the result table and timeline picture they fill.

    ``default_model`` is the checkpoint picked at start (``None``: the quickstart checkpoint when it exists);
    ``models`` more checkpoints to offer (any other folder or Hub id can be typed). The handlers are also on
    ``demo.hf_erc`` (``label_conversation(checkpoint, table)``, ``label_video(checkpoint, video, subtitles)``, each
    returning ``(table rows, image path)``, and ``backend``) so they can be called without a browser.
    ``trust_remote_code`` (off by default) lets checkpoints of other model types run the code they ship.
    ``concurrency`` labellings run at once, over both buttons; at most ``max_queued`` more wait (``None``: no
    bound), and a request past that is refused at once with Gradio's "busy, try again" (see
    :data:`CONCURRENT_LABELLINGS`).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
    gr = _import_gradio()
    backend = DemoBackend(device=device, trust_remote_code=trust_remote_code)
    default_model = default_model or default_checkpoint()
    choices = list(dict.fromkeys([model for model in [default_model, *(models or [])] if model]))

    def run(work, *arguments, uploads=()):
        """Run a labelling, turning data errors (whose messages name the file, cue or row) into Gradio errors;
        an uploaded file is named as the user knows it, not by its path in Gradio's upload cache."""
        try:
            rows, image = work(*arguments)
        except (ValueError, OSError, MediaDecodeError) as error:
            message = str(error)
            for upload in uploads:
                if upload:
                    message = message.replace(os.fspath(upload), Path(upload).name)
            raise gr.Error(message, duration=None) from error
        return result_table(rows), str(image)

    def label_conversation(checkpoint, table):
        return run(backend.label_conversation, checkpoint, table)

    def label_video(checkpoint, video, subtitles):
        return run(backend.label_video, checkpoint, video, subtitles, uploads=(video, subtitles))

    with gr.Blocks(title="hf_erc: emotion recognition in conversation", analytics_enabled=False) as demo:
        gr.Markdown(
            "# Emotion recognition in conversation\n"
            "Label every utterance of a conversation with an emotion: type or edit the conversation, or upload a "
            "video with its subtitles (every cue is an utterance; the speaker comes from a leading `NAME:` or a "
            "WebVTT `<v NAME>`)."
        )
        checkpoint = gr.Dropdown(
            choices=choices,
            value=default_model,
            allow_custom_value=True,
            label="Checkpoint",
            info=f"A checkpoint folder (hf-erc quickstart trains {QUICKSTART_CHECKPOINT}) or a Hub repository id.",
            elem_id="checkpoint",
        )
        with gr.Tabs():
            with gr.Tab("Conversation", id="conversation", elem_id="conversation-tab"):
                table = gr.Dataframe(
                    value=sample_table(),
                    headers=CONVERSATION_COLUMNS,
                    datatype=["str", "str"],
                    type="array",
                    interactive=True,
                    label="Conversation (edit the cells; add or remove rows)",
                    elem_id="conversation-table",
                )
                run_conversation = gr.Button("Run", variant="primary", elem_id="run-conversation")
            with gr.Tab("Video", id="video", elem_id="video-tab"):
                with gr.Row():
                    video = gr.Video(label="Video", sources=["upload"], height=260, elem_id="video-upload")
                    subtitles = gr.File(
                        label="Subtitles (.srt or .vtt)", file_types=[".srt", ".vtt"], elem_id="subtitles-upload"
                    )
                run_video = gr.Button("Run", variant="primary", elem_id="run-video")
        results = gr.Dataframe(
            headers=RESULT_COLUMNS,
            datatype=["str", "number", "number", "str", "number", "str", "str"],
            interactive=False,
            wrap=True,
            label="Emotions (start/end in seconds; a typed conversation counts one second per turn)",
            elem_id="results",
        )
        timeline = gr.Image(
            type="filepath", format="png", label="Emotion timeline", interactive=False, elem_id="timeline"
        )
        serving = {"concurrency_limit": concurrency, "concurrency_id": LABELLING}
        run_conversation.click(label_conversation, [checkpoint, table], [results, timeline], **serving)
        run_video.click(label_video, [checkpoint, video, subtitles], [results, timeline], **serving)
    demo.queue(max_size=max_queued)

    demo.hf_erc = SimpleNamespace(
        backend=backend, label_conversation=label_conversation, label_video=label_video
    )
    weakref.finalize(demo, shutil.rmtree, backend.image_dir, True)  # the timeline PNGs go with the demo
    return demo


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _at_least_one(value: str) -> int:
    """A whole number of at least 1 (workers, queue places), or argparse's error saying so."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def register(subparsers) -> None:
    """Add ``hf-erc demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="Start the Gradio demo: label a typed conversation or a video with subtitles in the browser.",
        description=__doc__,
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="CKPT",
        help=f"Checkpoint folder or Hub repository (repeat to offer several; the first is picked). Default: "
        f"{QUICKSTART_CHECKPOINT} when it exists.",
    )
    parser.add_argument("--port", type=int, default=7860, help="Port to serve on (default 7860).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (0.0.0.0: every interface).")
    parser.add_argument(
        "--share", type=_flag, nargs="?", const=True, default=False, metavar="BOOL",
        help="Also open a temporary public gradio.live link (needs internet; default false).",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument(
        "--concurrency",
        type=_at_least_one,
        default=CONCURRENT_LABELLINGS,
        metavar="N",
        help=f"Labellings run at once (default {CONCURRENT_LABELLINGS}: one already uses every CPU core; raise it on "
        "a GPU or many cores).",
    )
    parser.add_argument(
        "--max-queued",
        type=_at_least_one,
        default=MAX_QUEUED,
        metavar="N",
        help=f"Requests that may wait for a worker (default {MAX_QUEUED}); past that a user is told the app is busy "
        "and to try again.",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Let checkpoints whose model type is not hf_erc's run the Python code they ship (only for code you "
        "trust). hf_erc's own checkpoints never need it.",
    )
    parser.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    models = [_checked_checkpoint(model) for model in args.model or []]  # a named folder that is wrong stops here
    default = models[0] if models else default_checkpoint()
    if default is None:
        print(
            f"hf-erc demo: no --model given and {QUICKSTART_CHECKPOINT} does not exist (run `hf-erc quickstart`); "
            "type a checkpoint in the page."
        )
    try:
        demo = build_demo(
            default,
            models=models[1:],
            device=args.device,
            trust_remote_code=args.trust_remote_code,
            concurrency=args.concurrency,
            max_queued=args.max_queued,
        )
    except ImportError as error:  # Gradio missing: say how to install it, without a traceback
        print(f"hf-erc demo: error: {error}", file=sys.stderr)
        return 2
    demo.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0

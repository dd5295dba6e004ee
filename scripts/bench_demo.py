"""Concurrent users of ``hf-erc demo``: requests per second, latency, errors and memory under load.

It starts ``hf-erc demo`` on 127.0.0.1 (a free port, in its own process) with a checkpoint, waits until the page
answers and one labelling has loaded the checkpoint, then drives it with ``--clients`` concurrent
``gradio_client.Client`` users sending ``--requests`` requests in all through the demo's two API endpoints, as the
page sends them: typed conversations (``/label_conversation``) and a video with its subtitles (``/label_video``), in
a fixed mix where half the requests are malformed on purpose (an empty table, a row without text, a row without
speaker, a row of three cells, a file that is not SRT/VTT, an ``.srt`` without cues, subtitles without their video).

It reports requests per second, latency percentiles (of the labellings and of the malformed requests), the errors
split into expected ones (every malformed request must get its own clear message, listed) and unexpected ones
(anything else: a crash, a wrong or missing message, a labelling without its rows, no answer in ``--timeout``
seconds; must be 0), the requests refused because the queue was full (Gradio's "busy, try again"), the server's
resident memory (RSS) before and after the load, and whether the server still labels a normal request afterwards.
The exit status is 1 when anything unexpected happened.

    python scripts/bench_demo.py                          # 16 clients, 160 requests
    python scripts/bench_demo.py --clients 4 --requests 28 --concurrency 2 --json results.json
    python scripts/bench_demo.py --model outputs/quickstart/sdt-meld-text --json -   # JSON on stdout

The checkpoint is ``--model``, else ``outputs/quickstart/sdt-meld-text`` when ``hf-erc quickstart`` has trained
it, else an untrained tiny text-only SDT on MiniLM features written to a temporary folder: its emotions mean
nothing, but its work per request (MiniLM encoding every utterance, the dialogue model, the timeline picture) is
the quickstart checkpoint's. ``--concurrency`` and ``--max-queued`` are passed to ``hf-erc demo`` (default: the
demo's own). Nothing but 127.0.0.1 is reached: the server and the clients run with ``HF_HUB_OFFLINE=1`` and
``GRADIO_ANALYTICS_ENABLED=False``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

from hf_erc.commands.demo import (
    CONCURRENT_LABELLINGS, CONVERSATION_COLUMNS, MAX_QUEUED, QUICKSTART_CHECKPOINT, sample_table,
)  # fmt: skip
from hf_erc.data.planted_media import ClipSpec, write_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
# The server's and the clients' environment: nothing is fetched from the Hub, and no analytics leave the machine.
OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
START_TIMEOUT_S = 180  # importing torch, transformers and gradio on 2 busy cores takes a while
# (start, end, text) of the subtitle cues of the benchmark's video: three cues, two speakers.
CUES = [(0.5, 2.0, "JOEY: How you doin'?"), (2.5, 4.0, "RACHEL: Oh, I'm fine."), (4.5, 6.0, "JOEY: Seriously?")]
VIDEO_SECONDS = 7.0


@dataclass(frozen=True)
class BenchInputs:
    """The files the requests upload, written by :func:`write_inputs`."""

    video: Path
    subtitles: Path
    not_subtitles: Path  # a .txt file: not .srt or .vtt
    subtitles_without_cues: Path  # an .srt that holds prose


@dataclass(frozen=True)
class RequestKind:
    """One kind of request: its endpoint, its arguments after the checkpoint, and what must come back: ``rows``
    result rows for a good request, or an error whose message matches ``message`` for a malformed one."""

    name: str
    endpoint: str
    arguments: Callable[[BenchInputs], tuple]
    rows: int | None = None
    message: str | None = None


def _table(rows: list[list[Any]], headers: list[str] = CONVERSATION_COLUMNS) -> dict[str, Any]:
    """A conversation table as the Dataframe endpoint takes it."""
    return {"headers": list(headers), "data": rows, "metadata": None}


REQUEST_KINDS = {
    kind.name: kind
    for kind in [
        RequestKind(
            "conversation", "/label_conversation", lambda _: (_table(sample_table()),), rows=len(sample_table())
        ),
        RequestKind(
            "video+subtitles",
            "/label_video",
            lambda inputs: (handle_file(inputs.video), handle_file(inputs.subtitles)),
            rows=len(CUES),
        ),
        RequestKind("empty table", "/label_conversation", lambda _: (_table([]),), message="The conversation is empty"),
        RequestKind(
            "row without text",
            "/label_conversation",
            lambda _: (_table([["Maya", "Guess what!"], ["Leo", ""]]),),
            message=r"row 2 \('Leo'\) has no text",
        ),
        RequestKind(
            "row without speaker",
            "/label_conversation",
            lambda _: (_table([["Maya", "Guess what!"], ["", "Who says this?"]]),),
            message=r"row 2 \('Who says this\?'\) has no speaker",
        ),
        RequestKind(
            "three columns",
            "/label_conversation",
            lambda _: (_table([["Maya", "Guess what!", "joy"]], headers=["speaker", "text", "emotion"]),),
            message="row 1 has 3 cells .*takes 2 columns, speaker and text",
        ),
        RequestKind(
            "not .srt/.vtt",
            "/label_video",
            lambda inputs: (handle_file(inputs.video), handle_file(inputs.not_subtitles)),
            message=r"Invalid file type.*\.srt.*\.vtt",
        ),
        RequestKind(
            ".srt without cues",
            "/label_video",
            lambda inputs: (handle_file(inputs.video), handle_file(inputs.subtitles_without_cues)),
            message=r"prose\.srt has no timed cues",
        ),
        RequestKind(
            "subtitles without video",
            "/label_video",
            lambda inputs: (None, handle_file(inputs.subtitles)),
            message="No video: upload the video",
        ),
    ]
}
# The order requests are sent in, over and over: half good (conversations and videos), half malformed.
REQUEST_MIX = [
    "conversation", "empty table", "video+subtitles", "row without text", "conversation", "row without speaker",
    "conversation", "three columns", "video+subtitles", "not .srt/.vtt", "conversation", ".srt without cues",
    "video+subtitles", "subtitles without video",
]  # fmt: skip
BUSY = "busy"  # the queue was full: the request was refused at once


@dataclass
class Outcome:
    """What one request got: ``status`` is ``ok`` (a labelling with its rows), ``expected`` (a malformed request
    with its message), ``busy`` (refused: the queue was full) or ``unexpected`` (anything else)."""

    kind: str
    status: str
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class DemoServer:
    """A running ``hf-erc demo``: its address, its process id, and the checkpoint it serves."""

    url: str
    pid: int
    model: str


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_untrained_checkpoint(folder: str | os.PathLike) -> Path:
    """An untrained tiny text-only SDT checkpoint on MiniLM features in ``folder``, with its encoder record: the
    quickstart checkpoint's kind and work per utterance, in a second and without training."""
    import torch

    from hf_erc.features.encoders import TextEncoder
    from hf_erc.features.extract import save_encoder_specs
    from hf_erc.models import SDTConfig, SDTForEmotionRecognition

    folder = Path(folder)
    torch.manual_seed(0)
    config = SDTConfig.for_dataset("meld", modalities=["text"], text_dim=384, hidden_size=32, num_attention_heads=2)
    SDTForEmotionRecognition(config).save_pretrained(folder)
    save_encoder_specs({"text": TextEncoder("minilm").spec}, folder)
    return folder


def default_model(work_dir: Path) -> str:
    """The quickstart checkpoint when it exists here, else an untrained tiny one written under ``work_dir``."""
    quickstart = REPO_ROOT / QUICKSTART_CHECKPOINT
    if quickstart.is_dir():
        return str(quickstart)
    return str(write_untrained_checkpoint(work_dir / "untrained-sdt-text"))


def _clock(seconds: float) -> str:
    whole, millis = divmod(round(seconds * 1000), 1000)
    return f"00:{whole // 60:02d}:{whole % 60:02d},{millis:03d}"


def write_inputs(folder: str | os.PathLike) -> BenchInputs:
    """The video (7 s, H.264 and AAC), its SubRip subtitles (:data:`CUES`) and the two malformed subtitle files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "talk.mp4"
    write_clip(ClipSpec(str(video), VIDEO_SECONDS, audio_emotion="neutral", video_emotion="joy", seed=(0,)))
    subtitles = folder / "talk.srt"
    blocks = [f"{n}\n{_clock(start)} --> {_clock(end)}\n{text}\n" for n, (start, end, text) in enumerate(CUES, 1)]
    subtitles.write_text("\n".join(blocks), encoding="utf-8")
    not_subtitles = folder / "notes.txt"
    not_subtitles.write_text("Joey: how you doin'?\n", encoding="utf-8")
    subtitles_without_cues = folder / "prose.srt"
    subtitles_without_cues.write_text("Dear diary,\ntoday nobody wrote any timestamps.\n", encoding="utf-8")
    return BenchInputs(video, subtitles, not_subtitles, subtitles_without_cues)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def serve_demo(
    model: str,
    log_path: str | os.PathLike,
    concurrency: int = CONCURRENT_LABELLINGS,
    max_queued: int = MAX_QUEUED,
    device: str | None = None,
) -> Iterator[DemoServer]:
    """``hf-erc demo --model MODEL`` on 127.0.0.1 at a free port, in its own process (output in ``log_path``),
    once its page answers; stopped on leaving (as by Ctrl+C). A server that exits or does not answer within
    :data:`START_TIMEOUT_S` is a RuntimeError carrying the end of its log."""
    port = free_port()
    command = [sys.executable, "-m", "hf_erc.cli", "demo", "--model", model, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--concurrency", str(concurrency), "--max-queued", str(max_queued)]
    command += ["--device", device] if device else []
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **OFFLINE_ENVIRONMENT}, cwd=REPO_ROOT
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = Path(log_path).read_text(encoding="utf-8", errors="replace")[-3000:]
                    state = f"exited with status {process.returncode}" if process.poll() is not None else (
                        f"did not answer within {START_TIMEOUT_S} s"
                    )
                    raise RuntimeError(f"hf-erc demo {state} ({' '.join(command)}); its log ends:\n{tail}")
                time.sleep(0.5)
            yield DemoServer(url, process.pid, model)
        finally:
            process.send_signal(signal.SIGINT)  # as Ctrl+C: the demo closes and removes its timeline folder
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def make_client(server: DemoServer, download_dir: str | os.PathLike) -> Client:
    """A user of the demo: a gradio_client Client of its own session, saving the timeline pictures it receives
    (as the page loads them) under ``download_dir``. Refused unless ``GRADIO_ANALYTICS_ENABLED=False`` is set (as
    :func:`main` does): a Client reports to api.gradio.app otherwise, whatever its ``analytics_enabled`` says."""
    if os.environ.get("GRADIO_ANALYTICS_ENABLED") != "False":
        raise RuntimeError("Set GRADIO_ANALYTICS_ENABLED=False first: the benchmark reaches nothing but 127.0.0.1.")
    return Client(server.url, verbose=False, download_files=str(download_dir), analytics_enabled=False)


def send(client: Client, server: DemoServer, kind: RequestKind, inputs: BenchInputs, timeout: float) -> Outcome:
    """Send one request of ``kind`` and judge what came back (see :class:`Outcome`)."""
    started = time.perf_counter()

    def outcome(status: str, message: str = "") -> Outcome:
        return Outcome(kind.name, status, time.perf_counter() - started, message)

    job = None
    try:
        job = client.submit(server.model, *kind.arguments(inputs), api_name=kind.endpoint)
        table, picture = job.result(timeout=timeout)
    except QueueError as error:
        return outcome(BUSY, str(error))
    except AppError as error:
        message = str(error)
        if kind.message is not None and re.search(kind.message, message):
            return outcome("expected", message)
        return outcome("unexpected", f"error {message!r}" + (f" (expected /{kind.message}/)" if kind.message else ""))
    except concurrent.futures.TimeoutError:  # TimeoutError itself from Python 3.11
        if job is not None:
            job.cancel()
        return outcome("unexpected", f"no answer within {timeout:g} s")
    except Exception as error:  # anything else the client raises is what the benchmark exists to catch
        return outcome("unexpected", f"{type(error).__name__}: {error}")
    if kind.rows is None:
        return outcome("unexpected", f"labelled ({len(table['data'])} rows) instead of the error /{kind.message}/")
    if len(table["data"]) != kind.rows or not Path(picture).is_file():
        return outcome("unexpected", f"{len(table['data'])} rows (expected {kind.rows}), timeline {picture!r}")
    return outcome("ok")


def server_rss_mib(pid: int) -> float:
    """The server process's resident memory, in MiB."""
    return psutil.Process(pid).memory_info().rss / 2**20


def percentiles(seconds: list[float]) -> dict[str, float | int | None]:
    """Count, p50, p95, p99 and max of some latencies (None where there are none)."""
    if not seconds:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
    return {"n": len(seconds), "p50": float(p50), "p95": float(p95), "p99": float(p99), "max": max(seconds)}


def run_benchmark(
    server: DemoServer, inputs: BenchInputs, clients: int, requests: int, timeout: float = 300.0
) -> dict[str, Any]:
    """Drive ``server`` with ``clients`` concurrent users sending ``requests`` requests in all (kinds in the order of
    :data:`REQUEST_MIX`, from the first); the results as a JSON-ready dict (see :func:`format_table`).

    A first conversation is labelled before the clock starts (it loads the checkpoint), and the server's RSS is
    read after it ("before") and after the load; last, one more conversation checks the server still answers."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-downloads-") as download_dir:
        warm_client = make_client(server, download_dir)
        warm_up = send(warm_client, server, REQUEST_KINDS["conversation"], inputs, timeout)
        if warm_up.status != "ok":
            raise RuntimeError(f"the demo did not label a first conversation: {warm_up.message}")
        rss_before = server_rss_mib(server.pid)
        users = [make_client(server, download_dir) for _ in range(clients)]
        counter, lock = iter(range(requests)), threading.Lock()
        load_average = os.getloadavg()[0]  # the machine may be shared: say how busy it was

        def next_kind() -> RequestKind | None:
            with lock:
                index = next(counter, None)
            return None if index is None else REQUEST_KINDS[REQUEST_MIX[index % len(REQUEST_MIX)]]

        def user(client: Client) -> list[Outcome]:
            outcomes = []
            while (kind := next_kind()) is not None:
                outcomes.append(send(client, server, kind, inputs, timeout))
            return outcomes

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            outcomes = [outcome for outcomes in pool.map(user, users) for outcome in outcomes]
        wall = time.perf_counter() - started
        rss_after = server_rss_mib(server.pid)
        after = send(warm_client, server, REQUEST_KINDS["conversation"], inputs, timeout)
        for client in [warm_client, *users]:
            client.close()

    statuses = Counter(outcome.status for outcome in outcomes)
    expected = Counter((outcome.kind, outcome.message) for outcome in outcomes if outcome.status == "expected")
    malformed_kinds = [outcome.kind for outcome in outcomes if REQUEST_KINDS[outcome.kind].message is not None]
    return {
        "model": server.model,
        "cpus": os.cpu_count(),
        "load_average_before": load_average,
        "clients": clients,
        "requests": len(outcomes),
        "good_requests": len(outcomes) - len(malformed_kinds),
        "malformed_requests": len(malformed_kinds),
        "wall_s": wall,
        "requests_per_s": len(outcomes) / wall,
        "labellings_per_s": statuses["ok"] / wall,
        "latency_s": {
            "labelled": percentiles([o.seconds for o in outcomes if o.status == "ok"]),
            "malformed": percentiles([o.seconds for o in outcomes if o.status == "expected"]),
            "busy": percentiles([o.seconds for o in outcomes if o.status == BUSY]),
            "all": percentiles([o.seconds for o in outcomes]),
        },
        "labelled": statuses["ok"],
        "expected_errors": statuses["expected"],
        "expected_messages": [
            {"kind": kind, "message": message, "count": count} for (kind, message), count in sorted(expected.items())
        ],
        "malformed_without_their_message": sum(
            1 for o in outcomes if REQUEST_KINDS[o.kind].message is not None and o.status != "expected"
        ),
        "busy": statuses[BUSY],
        "busy_messages": sorted({o.message for o in outcomes if o.status == BUSY}),
        "unexpected_errors": statuses["unexpected"],
        "unexpected": [asdict(o) for o in outcomes if o.status == "unexpected"],
        "server_rss_mib": {"before": rss_before, "after": rss_after},
        "answers_after_load": after.status == "ok",
        "after_load": asdict(after),
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(results: dict[str, Any], settings: str = "") -> str:
    """The results as a plain-text report: throughput, a latency table, the errors by kind, memory, the check
    after the load."""
    lines = [
        f"{results['clients']} clients, {results['requests']} requests ({results['good_requests']} to label, "
        f"{results['malformed_requests']} malformed){settings}",
        f"checkpoint {results['model']}; {results['cpus']} CPUs, load average {results['load_average_before']:.1f} "
        "when the load began",
        f"wall {results['wall_s']:.1f} s: {results['requests_per_s']:.2f} requests/s, "
        f"{results['labellings_per_s']:.2f} labellings/s",
        "",
        f"{'latency (s)':<12} {'n':>5} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7}",
    ]
    for name, row in results["latency_s"].items():
        values = " ".join(f"{_seconds(row[key]):>7}" for key in ("p50", "p95", "p99", "max"))
        lines.append(f"{name:<12} {row['n']:>5} {values}")
    lines += [
        "",
        f"labelled {results['labelled']}, expected errors {results['expected_errors']}, busy {results['busy']}, "
        f"unexpected errors {results['unexpected_errors']}",
    ]
    lines += [f"  {item['count']:>4} x {item['kind']}: {item['message']}" for item in results["expected_messages"]]
    lines += [f"  busy: {message}" for message in results["busy_messages"]]
    lines += [f"  UNEXPECTED {item['kind']}: {item['message']}" for item in results["unexpected"]]
    rss = results["server_rss_mib"]
    after = results["after_load"]
    lines += [
        "",
        f"server RSS: {rss['before']:.0f} MiB before the load, {rss['after']:.0f} MiB after "
        f"({rss['after'] - rss['before']:+.0f})",
        "after the load: a conversation "
        + (f"labelled in {after['seconds']:.2f} s" if results["answers_after_load"] else f"FAILED: {after['message']}"),
    ]
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="Concurrent users (default 16).")
    parser.add_argument(
        "--requests", type=int, default=160, help=f"Requests in all (default 160; the mix repeats every "
        f"{len(REQUEST_MIX)}, half of them malformed).",
    )  # fmt: skip
    parser.add_argument("--model", default=None, help="Checkpoint folder (default: see above).")
    parser.add_argument(
        "--concurrency", type=int, default=CONCURRENT_LABELLINGS,
        help=f"hf-erc demo --concurrency: labellings at once (default {CONCURRENT_LABELLINGS}, the demo's).",
    )  # fmt: skip
    parser.add_argument(
        "--max-queued", type=int, default=MAX_QUEUED,
        help=f"hf-erc demo --max-queued: requests that may wait (default {MAX_QUEUED}, the demo's).",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="hf-erc demo --device (default: its own).")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds a request may take (default 300).")
    parser.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="FILE",
        help="Also write the results as JSON to FILE (- or no FILE: on stdout instead of the table).",
    )  # fmt: skip
    arguments = parser.parse_args(argv)
    if arguments.clients < 1 or arguments.requests < 1:
        parser.error("--clients and --requests must be at least 1")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    os.environ.update(OFFLINE_ENVIRONMENT)
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as work_dir:
        work_dir = Path(work_dir)
        model = arguments.model or default_model(work_dir)
        inputs = write_inputs(work_dir / "inputs")
        log_path = work_dir / "server.log"
        options = {"concurrency": arguments.concurrency, "max_queued": arguments.max_queued}
        with serve_demo(model, log_path, device=arguments.device, **options) as server:
            results = run_benchmark(server, inputs, arguments.clients, arguments.requests, arguments.timeout)
    results["server_options"] = options
    settings = f", server --concurrency {arguments.concurrency} --max-queued {arguments.max_queued}"
    if arguments.json == "-":
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results, settings))
        if arguments.json:
            Path(arguments.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if results["unexpected_errors"] == 0 and results["answers_after_load"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The Gradio demo (`hf-erc demo`, app.py): its labelling handlers called directly, its errors, its command, the
page driven in a real headless Chromium (upload a video and its subtitles, run, read the table back), and several
users at once through its API (scripts/bench_demo.py's load, small).

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; without them it
is skipped with the reason (``.ci/run`` installs them). ``HF_ERC_WRITE_DOCS=1`` also saves its screenshot as
``docs/images/demo.png``, labelled by the quickstart checkpoint when ``outputs/quickstart/sdt-meld-text`` exists.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hf_erc.cli import main as cli_main
from hf_erc.labels import MELD_EMOTIONS
from tests.conftest import REPO_ROOT
from tests.utils.media_fixtures import write_mp4
from tests.utils.scripts import registered_script
from tests.utils.subtitle_files import SCENE, srt_text, write_subtitles

GRADIO_MISSING = 'gradio is not installed: pip install "hf-erc[demo]"'
WAIT_S = 60  # every wait on the page is bounded by this
SAMPLE = REPO_ROOT / "src" / "hf_erc" / "resources" / "sample_conversation.json"
QUICKSTART = REPO_ROOT / "outputs" / "quickstart" / "sdt-meld-text"
BENCH_SCRIPT = REPO_ROOT / "scripts" / "bench_demo.py"
WRITE_DOCS = os.environ.get("HF_ERC_WRITE_DOCS") == "1"


def _speakers(cues) -> list[str]:
    """The speaker of each cue as the subtitle reader gives it: a cue without one carries the previous one on."""
    speakers, last = [], None
    for _, _, speaker, _ in cues:
        last = speaker or last
        speakers.append(last)
    return speakers


def _docs_scene():
    """The sample conversation as timed cues: a fuller picture for the README's screenshot."""
    utterances = json.loads(SAMPLE.read_text(encoding="utf-8"))["utterances"]
    return [(0.5 + 2.2 * i, 2.3 + 2.2 * i, u["speaker"], u["text"]) for i, u in enumerate(utterances)]


@pytest.fixture(scope="module")
def gr():
    return pytest.importorskip("gradio", reason=GRADIO_MISSING)


@pytest.fixture(scope="module")
def demo(gr, text_only_checkpoint):
    from hf_erc.commands.demo import build_demo

    return build_demo(str(text_only_checkpoint), device="cpu")


def test_a_typed_conversation_gives_its_table_and_timeline(demo, text_only_checkpoint):
    from hf_erc.commands.demo import RESULT_COLUMNS, sample_table

    table = sample_table() + [["", ""]]  # a blank row, as the table's "add row" leaves one: skipped
    rows, image = demo.hf_erc.label_conversation(str(text_only_checkpoint), table)
    assert len(rows) == len(table) - 1 and all(len(row) == len(RESULT_COLUMNS) for row in rows)
    assert [row[0] for row in rows] == [speaker for speaker, _ in table[:-1]]
    assert [row[5] for row in rows] == [text for _, text in table[:-1]]
    assert [(row[1], row[2]) for row in rows] == [(i, i + 1) for i in range(len(rows))]  # one second per turn
    assert all(row[3] in MELD_EMOTIONS and 0 < row[4] <= 1 and row[6] == "" for row in rows)
    assert Path(image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The pipeline is loaded once per text_only_checkpoint, and kept by this demo.
    labeller = demo.hf_erc.backend.pipelines[str(text_only_checkpoint.resolve())]
    again, _ = demo.hf_erc.label_conversation(str(text_only_checkpoint), table)
    assert again == rows and list(demo.hf_erc.backend.pipelines.values()) == [labeller]


def test_a_video_with_subtitles_gives_one_row_per_cue(demo, text_only_checkpoint, talk):
    rows, image = demo.hf_erc.label_video(str(text_only_checkpoint), str(talk / "talk.mp4"), str(talk / "talk.srt"))
    assert [row[0] for row in rows] == _speakers(SCENE)
    assert [(row[1], row[2], row[5]) for row in rows] == [(start, end, text) for start, end, _, text in SCENE]
    expected = demo.hf_erc.backend.labeller(str(text_only_checkpoint))(
        video=str(talk / "talk.mp4"), subtitles=str(talk / "talk.srt")
    )
    assert [row[3] for row in rows] == [row["emotion"] for row in expected]
    assert Path(image).stat().st_size > 0


def test_errors_are_shown_in_the_page_with_the_file_and_cue(gr, demo, text_only_checkpoint, talk, tmp_path):
    backwards = write_subtitles(tmp_path / "bad.srt", "1\n00:00:03,000 --> 00:00:02,000\nJOEY: backwards\n")
    with pytest.raises(gr.Error, match=r"cue 1 \(line 1\)") as error:
        demo.hf_erc.label_video(str(text_only_checkpoint), str(talk / "talk.mp4"), str(backwards))
    assert error.value.message.startswith("bad.srt: cue 1")  # named as uploaded, not by its path on the server
    with pytest.raises(gr.Error, match="No subtitles"):
        demo.hf_erc.label_video(str(text_only_checkpoint), str(talk / "talk.mp4"), None)
    missing = tmp_path / "no" / "such-checkpoint"
    with pytest.raises(gr.Error, match=re.escape(f"{missing} does not exist")):
        demo.hf_erc.label_conversation(str(missing), [["A", "hi"]])
    with pytest.raises(gr.Error, match="row 2 .* has no speaker"):
        demo.hf_erc.label_conversation(str(text_only_checkpoint), [["A", "hi"], ["", "who says this?"]])
    with pytest.raises(gr.Error, match=r"row 2 \('B'\) has no text: type it or delete the row"):
        demo.hf_erc.label_conversation(str(text_only_checkpoint), [["A", "hi"], ["B", " "]])  # not dropped silently
    with pytest.raises(gr.Error, match=r"row 1 has 3 cells \('A', 'hi', 'joy'\): the table takes 2 columns"):
        demo.hf_erc.label_conversation(str(text_only_checkpoint), [["A", "hi", "joy"]])
    with pytest.raises(gr.Error, match="conversation is empty"):
        demo.hf_erc.label_conversation(str(text_only_checkpoint), [["", ""]])


def test_without_gradio_the_demo_says_how_to_install_it(monkeypatch, capsys):
    from hf_erc.commands.demo import build_demo

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    with pytest.raises(ImportError, match=r'pip install "hf-erc\[demo\]"'):
        build_demo(None)
    assert cli_main(["demo"]) == 2
    assert 'pip install "hf-erc[demo]"' in capsys.readouterr().err


def test_hf_erc_demo_launches_with_its_options(gr, text_only_checkpoint, monkeypatch):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **options: launched.update(options, blocks=self))
    arguments = ["demo", "--model", str(text_only_checkpoint), "--port", "7999", "--host", "0.0.0.0", "--share", "false"]
    assert cli_main(arguments + ["--device", "cpu", "--concurrency", "2", "--max-queued", "5"]) == 0
    assert {key: launched[key] for key in ("server_name", "server_port", "share")} == {
        "server_name": "0.0.0.0",
        "server_port": 7999,
        "share": False,
    }
    blocks = launched["blocks"]
    assert isinstance(blocks, gr.Blocks) and blocks._queue.max_size == 5
    # Both Run buttons share one pool of --concurrency workers (Gradio's default is one pool per button).
    labellings = [fn for fn in blocks.fns.values() if fn.name in ("label_conversation", "label_video")]
    assert len(labellings) == 2
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in labellings} == {("labelling", 2)}


def test_hf_erc_demo_stops_on_a_named_checkpoint_that_does_not_exist(gr, tmp_path, monkeypatch, capsys):
    """A --model folder that is wrong is an error naming it before any server starts (no fallback, no page that
    fails on the first request)."""
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **options: pytest.fail("the demo started"))
    missing = tmp_path / "no-such-checkpoint"
    assert cli_main(["demo", "--model", str(missing)]) != 0
    assert f"Checkpoint folder {missing} does not exist" in capsys.readouterr().err


def test_hf_erc_demo_refuses_a_concurrency_below_one(capsys):
    with pytest.raises(SystemExit):
        cli_main(["demo", "--concurrency", "0"])
    assert "--concurrency: expected a whole number of at least 1, got '0'" in capsys.readouterr().err


# --- the page in a real browser ----------------------------------------------------------------------------------

# The result table read from the page: column names from the header cells' titles, body cells by their data-row and
# data-col (Gradio 5 draws a <table>, Gradio 6 a grid of divs; both mark the cells so).
READ_TABLE = """
const root = document.querySelector('#results');
if (!root) return null;
const headers = [...new Set([...root.querySelectorAll('th[title]')].map(header => header.getAttribute('title')))];
const rows = {};
for (const cell of root.querySelectorAll('[data-testid^="cell-"][data-row][data-col]')) {
  const row = Number(cell.dataset.row), column = Number(cell.dataset.col);
  (rows[row] = rows[row] || [])[column] = cell.innerText.trim();
}
return {headers: headers, rows: Object.keys(rows).map(Number).sort((a, b) => a - b).map(key => rows[key])};
"""

# The timeline picture is loaded and nothing still fades in (Gradio dims outputs while an event is pending).
SETTLED = """
const image = document.querySelector('#timeline img');
if (image === null || !image.complete || image.naturalWidth === 0) return false;
const shown = element => element === null || getComputedStyle(element).opacity === '1';
let element = image;
while (element !== null) { if (!shown(element)) return false; element = element.parentElement; }
return document.querySelector('#results .pending, #timeline .pending, .pending#timeline, .pending#results') === null;
"""


def _browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver, or a skip saying what is missing (the test installs nothing itself)."""
    pytest.importorskip("selenium", reason='selenium is not installed: pip install -e ".[test]"')
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if path is None]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not found on PATH: the demo's browser test needs Debian's chromium and "
            "chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    return chromium, driver


def _whole_page_png(browser) -> bytes:
    """A PNG of the whole page, below the window's fold too (Chromium's DevTools screenshot)."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1}
    options = {"format": "png", "captureBeyondViewport": True, "clip": clip}
    return base64.b64decode(browser.execute_cdp_cmd("Page.captureScreenshot", options)["data"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(gr, text_only_checkpoint):
    """The demo served on 127.0.0.1 at a free port from this process, as `hf-erc demo` builds it (its queue too):
    ``demo``, ``url`` and the ``model`` picked. With ``HF_ERC_WRITE_DOCS=1`` and the quickstart checkpoint trained,
    that checkpoint, named as `hf-erc demo` run in the repository names it (the README's screenshot shows it)."""
    from hf_erc.commands.demo import build_demo

    with pytest.MonkeyPatch.context() as patch:
        model = text_only_checkpoint
        if WRITE_DOCS and QUICKSTART.is_dir():
            patch.chdir(REPO_ROOT)
            model = QUICKSTART.relative_to(REPO_ROOT)
        demo = build_demo(str(model), device="cpu")
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True, quiet=True)
        try:
            yield SimpleNamespace(demo=demo, url=url, model=str(model))
        finally:
            demo.close()


def test_the_page_labels_an_uploaded_video_in_headless_chromium(served, tmp_path, monkeypatch):
    chromium, chromedriver = _browser_paths()
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    cues = _docs_scene() if WRITE_DOCS else SCENE
    video = write_mp4(tmp_path / "talk.mp4", seconds=cues[-1][1] + 0.5, fps=10, size=(90, 160))
    subtitles = write_subtitles(tmp_path / "talk.srt", srt_text(cues))
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,1000", "--lang=en-US"):  # fmt: skip
        options.add_argument(argument)
    browser = None
    try:
        browser = webdriver.Chrome(service=Service(chromedriver), options=options)
        browser.set_page_load_timeout(WAIT_S)
        wait = WebDriverWait(browser, WAIT_S)
        browser.get(served.url)
        wait.until(lambda b: b.find_elements(By.XPATH, "//button[@role='tab'][normalize-space()='Video']"))
        browser.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='Video']").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#subtitles-upload input[type=file]"))
        browser.find_element(By.CSS_SELECTOR, "#video-upload input[type=file]").send_keys(str(video))
        browser.find_element(By.CSS_SELECTOR, "#subtitles-upload input[type=file]").send_keys(str(subtitles))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#video-upload video"))
        # Uploaded: the file's name (shown as stem and suffix) is listed.
        wait.until(lambda b: "talk.srt" in re.sub(r"\s+", "", b.find_element(By.ID, "subtitles-upload").text))
        browser.find_element(By.ID, "run-video").click()

        def finished(b):
            """The result table once it holds a row per cue; an error toast fails at once with its message."""
            toasts = [toast.text for toast in b.find_elements(By.CSS_SELECTOR, "[data-testid=toast-body]")]
            if toasts:
                pytest.fail(f"the page showed an error: {toasts}")
            table = b.execute_script(READ_TABLE)
            return table if table and len(table["rows"]) == len(cues) else False

        try:
            table = wait.until(finished)
            wait.until(lambda b: b.execute_script(SETTLED))
        except TimeoutException:
            browser.save_screenshot(str(tmp_path / "timeout.png"))
            pytest.fail(f"no result table with {len(cues)} rows within {WAIT_S} s (see {tmp_path / 'timeout.png'})")

        screenshot = tmp_path / "demo.png"
        screenshot.write_bytes(_whole_page_png(browser))
        if WRITE_DOCS:
            target = REPO_ROOT / "docs" / "images" / "demo.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(screenshot, target)
    finally:
        if browser is not None:
            browser.quit()

    columns = {name: index for index, name in enumerate(table["headers"])}
    speakers = [row[columns["speaker"]] for row in table["rows"]]
    emotions = [row[columns["emotion"]] for row in table["rows"]]
    assert speakers == _speakers(cues)
    assert [row[columns["text"]] for row in table["rows"]] == [text for _, _, _, text in cues]
    expected = served.demo.hf_erc.backend.labeller(served.model)(video=str(video), subtitles=str(subtitles))
    assert emotions == [row["emotion"] for row in expected]  # what the page shows is what the pipeline says
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- several users at once -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench(gr):
    """scripts/bench_demo.py as a module."""
    with registered_script(BENCH_SCRIPT) as module:
        yield module


def test_concurrent_users_get_rows_or_their_error_and_the_server_answers_after(bench, served, tmp_path, monkeypatch):
    """scripts/bench_demo.py's load, small: 4 users send one round of its mix (half of it malformed) at once."""
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client's Client reports to api.gradio.app else
    server = bench.DemoServer(served.url, os.getpid(), served.model)  # served from this process
    results = bench.run_benchmark(server, bench.write_inputs(tmp_path), clients=4, requests=len(bench.REQUEST_MIX))

    assert results["unexpected_errors"] == 0, results["unexpected"]
    assert results["busy"] == 0 and results["requests"] == len(bench.REQUEST_MIX)
    assert results["labelled"] == results["good_requests"] > 0  # every good request got its rows and picture
    assert results["expected_errors"] == results["malformed_requests"] > 0
    malformed = {name for name, kind in bench.REQUEST_KINDS.items() if kind.message is not None}
    assert {item["kind"] for item in results["expected_messages"]} == malformed  # each one with its own message
    assert results["malformed_without_their_message"] == 0 and results["answers_after_load"]
    assert "unexpected errors 0" in bench.format_table(results)

"""An emotion timeline picture of a labelled video: one lane per speaker, one coloured band per subtitle cue.

``hf-erc predict --video ... --subtitles ... --plot FILE.png`` draws it with :func:`plot_timeline`. Each cue is a
mapping with ``speaker``, ``text``, ``start`` and ``end`` (seconds), ``emotion`` (a label name), ``probabilities``
(label -> probability; a pipeline's ``scores``/``score`` are read too) and optionally ``flags`` (strings such as
``"no audio"``). The band's colour is the emotion, its opacity (0.35 to 1.0) and the number printed in or above it
the emotion's probability; flagged cues are hatched.

The figure is drawn on matplotlib's Agg canvas, without pyplot, so it never touches pyplot's global backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, MultipleLocator

from hf_erc.labels import IEMOCAP_EMOTIONS, MELD_EMOTIONS

# Okabe-Ito's colour-blind-safe palette, with synonyms sharing a colour (joy/happy, sadness/sad, anger/angry) so a
# MELD and an IEMOCAP picture read alike; the two IEMOCAP-only labels take Okabe-Ito's yellow and Tol's wine.
EMOTION_PALETTE: dict[str, str] = {
    "neutral": "#999999",  # grey
    "surprise": "#56B4E9",  # sky blue
    "fear": "#CC79A7",  # reddish purple
    "sadness": "#0072B2",  # blue
    "joy": "#E69F00",  # orange
    "disgust": "#009E73",  # bluish green
    "anger": "#D55E00",  # vermillion
    "happy": "#E69F00",
    "sad": "#0072B2",
    "angry": "#D55E00",
    "excited": "#F0E442",  # yellow
    "frustrated": "#882255",  # wine
}
# Colours for labels outside the palette, in order: Paul Tol's muted scheme without the wine used above, then
# matplotlib's tab20 (reached only past eight unknown labels), then the cycle repeats.
FALLBACK_COLORS: tuple[str, ...] = (
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#AA4499",
    "#1F77B4", "#AEC7E8", "#FF7F0E", "#FFBB78", "#2CA02C", "#98DF8A", "#D62728", "#FF9896",
    "#9467BD", "#C5B0D5", "#8C564B", "#C49C94", "#E377C2", "#F7B6D2", "#7F7F7F", "#C7C7C7",
    "#BCBD22", "#DBDB8D", "#17BECF", "#9EDAE5",
)  # fmt: skip
# The legend's order when no label set is given: MELD's, then IEMOCAP's labels that MELD lacks.
CANONICAL_ORDER: tuple[str, ...] = tuple(dict.fromkeys(MELD_EMOTIONS + IEMOCAP_EMOTIONS))

MIN_ALPHA, MAX_ALPHA = 0.35, 1.0
MIN_WIDTH_IN, MAX_WIDTH_IN = 8.0, 24.0
DPI = 120
BAND_HEIGHT = 0.56  # of a lane's height of 1
FLAG_HATCH = "////"
FLAG_EDGE = "#222222"
_TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def _key(label: Any) -> str:
    return str(label).strip().lower()


def emotion_colors(labels: Iterable[str]) -> dict[str, str]:
    """``{label: "#RRGGBB"}`` for ``labels``: the fixed palette for known emotion names (any case), and for the
    others the fallback colours in the order the unknown labels come, skipping colours already taken."""
    names = list(dict.fromkeys(labels))
    colors = {name: EMOTION_PALETTE[_key(name)] for name in names if _key(name) in EMOTION_PALETTE}
    free = [color for color in FALLBACK_COLORS if color not in colors.values()] or list(FALLBACK_COLORS)
    unknown = [name for name in names if name not in colors]
    for index, name in enumerate(unknown):
        colors[name] = free[index % len(free)]
    return {name: colors[name] for name in names}


def _number(value: Any, what: str, index: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"row {index}: {what} {value!r} is not a number of seconds") from None
    if not math.isfinite(number):
        raise ValueError(f"row {index}: {what} {value!r} is not a finite number of seconds")
    return number


def _cues(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checked, normalised cues: speaker, start, end, emotion, probability (or None), flags."""
    rows = list(rows) if rows is not None else []
    if not rows:
        raise ValueError("no cues to plot")
    cues = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {index} is a {type(row).__name__}, not a mapping of cue fields")
        missing = [name for name in ("start", "end") if row.get(name) is None]
        if missing:
            raise ValueError(f"row {index} has no {' or '.join(missing)} time")
        start, end = _number(row["start"], "start", index), _number(row["end"], "end", index)
        if end < start:
            raise ValueError(f"row {index} ends ({end:g} s) before it starts ({start:g} s)")
        probabilities = row.get("probabilities", row.get("scores")) or {}
        emotion = row.get("emotion")
        if emotion is None and probabilities:
            emotion = max(probabilities, key=probabilities.get)
        if emotion is None:
            raise ValueError(f"row {index} has no emotion")
        probability = probabilities.get(emotion, row.get("score"))
        if probability is not None:
            probability = min(max(float(probability), 0.0), 1.0)
        flags = row.get("flags") or ()
        speaker = row.get("speaker")
        cues.append(
            {
                "speaker": str(speaker).strip() if speaker not in (None, "") else "(unknown)",
                "start": start,
                "end": end,
                "emotion": str(emotion),
                "probability": probability,
                "flags": [flags] if isinstance(flags, str) else [str(flag) for flag in flags],
            }
        )
    return cues


def band_alpha(probability: float | None) -> float:
    """Opacity of a band: 0.35 at probability 0 up to 1.0 at probability 1 (1.0 when unknown)."""
    if probability is None:
        return MAX_ALPHA
    return MIN_ALPHA + (MAX_ALPHA - MIN_ALPHA) * min(max(probability, 0.0), 1.0)


def format_seconds(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on) for a tick at ``seconds``."""
    total = int(round(seconds))
    sign, total = ("-", -total) if total < 0 else ("", total)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}:{secs:02d}" if hours else f"{sign}{minutes}:{secs:02d}"


def figure_width(span: float) -> float:
    """Inches: 8 for a minute or less, growing with the duration, 24 from about 10 minutes on."""
    return min(max(5.0 + span / 25.0, MIN_WIDTH_IN), MAX_WIDTH_IN)


def _text_color(hex_color: str, alpha: float) -> str:
    """Black or white, whichever reads better on ``hex_color`` at ``alpha`` over white."""
    rgb = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (alpha * c + (1 - alpha) for c in rgb)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def build_timeline_figure(
    rows: Iterable[Mapping[str, Any]], title: str | None = None, labels: Sequence[str] | None = None
):
    """The timeline as a ``matplotlib.figure.Figure`` on an Agg canvas (not registered with pyplot).

    Its single axes holds one ``Rectangle`` per cue in ``ax.patches`` (``gid`` ``"cue-<row index>"``), the
    speakers as y tick labels (first to appear at the top), the emotion legend as ``ax.get_legend()`` and, when
    any cue is flagged, a second legend explaining the hatch. ``labels`` (a model's label names) fixes the legend
    order and the fallback colours; emotions outside it are appended.
    """
    cues = _cues(rows)
    speakers = list(dict.fromkeys(cue["speaker"] for cue in cues))
    lane = {speaker: index for index, speaker in enumerate(speakers)}
    present = set(cue["emotion"] for cue in cues)
    order = list(labels) if labels is not None else list(CANONICAL_ORDER)
    order += [cue["emotion"] for cue in cues if cue["emotion"] not in order]
    colors = emotion_colors(order)
    legend_emotions = [name for name in dict.fromkeys(order) if name in present]
    flags = list(dict.fromkeys(flag for cue in cues for flag in cue["flags"]))

    first, last = min(cue["start"] for cue in cues), max(cue["end"] for cue in cues)
    span = max(last - first, 1.0)
    pad = 0.02 * span
    left, right = (max(first - pad, 0.0) if first >= 0 else first - pad), last + pad

    width = figure_width(span)
    legend_rows = len(legend_emotions) + 1 + (len(flags) + 1 if flags else 0)
    height = max(2.8, 1.5 + 0.65 * len(speakers), 1.0 + 0.24 * legend_rows)
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_gid("timeline")

    bands = _band_rows(cues, lane)
    for index, cue in enumerate(cues):
        bottom, band_height = bands[index]
        color = colors[cue["emotion"]]
        alpha = band_alpha(cue["probability"])
        flagged = bool(cue["flags"])
        duration = max(cue["end"] - cue["start"], span * 0.001)  # a zero-length cue still shows as a sliver
        face = (*(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)), alpha)
        band = Rectangle(
            (cue["start"], bottom),
            duration,
            band_height,
            facecolor=face,
            edgecolor=FLAG_EDGE if flagged else color,
            linewidth=1.0 if flagged else 0.8,
            hatch=FLAG_HATCH if flagged else None,
            gid=f"cue-{index}",
        )
        ax.add_patch(band)

    ax.set_xlim(left, right)
    ax.set_ylim(len(speakers) - 0.5, -0.6)  # inverted: the first speaker on top, room above it for a number
    ax.set_yticks(range(len(speakers)), labels=speakers)
    ax.tick_params(axis="y", length=0, labelsize=10)
    for index in range(1, len(speakers)):
        ax.axhline(index - 0.5, color="#DDDDDD", linewidth=0.8, zorder=0)
    ax.grid(axis="x", color="#E5E5E5", linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    if span > 120:
        target_ticks = max(int(width * 1.1), 4)
        step = next((s for s in _TICK_STEPS if (right - left) / s <= target_ticks), _TICK_STEPS[-1])
        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_seconds(value)))
        ax.set_xlabel("time (m:ss)" if last < 3600 else "time (h:mm:ss)")
    else:
        ax.set_xlabel("time (s)")

    if title is None:
        title = (
            f"Emotion timeline: {len(cues)} cue{'s' * (len(cues) != 1)}, "
            f"{len(speakers)} speaker{'s' * (len(speakers) != 1)}, {format_seconds(last - first)}"
        )
    ax.set_title(title, loc="left", fontsize=12)

    handles = [Patch(facecolor=colors[name], edgecolor=colors[name], label=name) for name in legend_emotions]
    ax.legend(
        handles=handles,
        title="emotion",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=9,
        title_fontsize=9,
        alignment="left",
    )
    if flags:
        flag_handles = [Patch(facecolor="white", edgecolor=FLAG_EDGE, hatch=FLAG_HATCH, label=flag) for flag in flags]
        flag_legend = Legend(
            ax,
            flag_handles,
            flags,
            title="flagged (hatched)",
            loc="lower left",
            bbox_to_anchor=(1.01, 0.0),
            frameon=False,
            fontsize=9,
            title_fontsize=9,
            alignment="left",
        )
        ax.add_artist(flag_legend)  # ax.get_legend() stays the emotion legend
        flag_legend.set_clip_on(False)  # add_artist clips to the axes, which would hide it from tight_layout
    fig.text(
        0.005, 0.005, "opacity and number = probability of the emotion", fontsize=7, color="#666666", va="bottom"
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    _annotate_probabilities(fig, ax, cues, lane, bands)
    return fig


def _band_rows(cues: list[dict[str, Any]], lane: dict[str, int]) -> list[tuple[float, float]]:
    """Each cue's band as ``(top edge, height)`` in lane units. A cue shares its lane's full band height unless other
    cues of the same speaker overlap it in time (two lines of a dual-speaker subtitle cue whose speakers are both
    unknown, say): such cues split the band into stacked rows, one per cue at a time, so none hides another."""
    bands: list[tuple[float, float]] = [(0.0, 0.0)] * len(cues)
    by_speaker: dict[str, list[int]] = {}
    for index, cue in enumerate(cues):
        by_speaker.setdefault(cue["speaker"], []).append(index)
    for speaker, indices in by_speaker.items():
        indices.sort(key=lambda i: (cues[i]["start"], cues[i]["end"]))
        group: list[int] = []
        group_end = -math.inf
        for index in indices + [None]:  # None closes the last group
            if index is not None and cues[index]["start"] < group_end:
                group.append(index)
                group_end = max(group_end, cues[index]["end"])
                continue
            _stack(group, cues, lane[speaker], bands)
            if index is not None:
                group, group_end = [index], cues[index]["end"]
    return bands


def _stack(group: list[int], cues, row: int, bands: list[tuple[float, float]]) -> None:
    """Rows for a group of one speaker's overlapping cues: each cue takes the first row free at its start."""
    if not group:
        return
    row_ends: list[float] = []
    slots = []
    for index in group:
        slot = next((k for k, end in enumerate(row_ends) if end <= cues[index]["start"]), len(row_ends))
        if slot == len(row_ends):
            row_ends.append(cues[index]["end"])
        else:
            row_ends[slot] = cues[index]["end"]
        slots.append(slot)
    height = BAND_HEIGHT / len(row_ends)
    for index, slot in zip(group, slots):
        bands[index] = (row - BAND_HEIGHT / 2 + slot * height, height)


def _annotate_probabilities(fig, ax, cues, lane, bands) -> None:
    """The probability as ``0.82`` inside each band wide enough, else above it unless that would overlap the
    number before it in the lane (the band's opacity still tells it then)."""
    renderer = fig.canvas.get_renderer()
    last_right: dict[int, float] = {}
    placed = sorted(range(len(cues)), key=lambda i: (lane[cues[i]["speaker"]], cues[i]["start"]))
    for index in placed:
        cue = cues[index]
        if cue["probability"] is None:
            continue
        row = lane[cue["speaker"]]
        top, band_height = bands[index]
        label = f"{cue['probability']:.2f}"
        middle = (cue["start"] + cue["end"]) / 2
        color = next(p for p in ax.patches if p.get_gid() == f"cue-{index}").get_facecolor()
        hex_color = "#" + "".join(f"{round(c * 255):02X}" for c in color[:3])
        text = ax.text(
            middle, top + band_height / 2, label, ha="center", va="center", fontsize=7,
            color=_text_color(hex_color, color[3]),
            gid=f"probability-{index}",
        )  # fmt: skip
        box = text.get_window_extent(renderer)
        (x0, y0), (x1, y1) = ax.transData.transform([(cue["start"], top), (cue["end"], top + band_height)])
        if box.width + 4 <= x1 - x0 and box.height + 2 <= abs(y1 - y0):
            if cue["flags"]:  # keep the number readable over the hatch
                backing = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
                text.set(color="black", bbox=backing)
            continue
        text.set(y=row - BAND_HEIGHT / 2 - 0.04, va="bottom", color="#333333")
        box = text.get_window_extent(renderer)
        if box.x0 < last_right.get(row, -math.inf) + 2:
            text.remove()
            continue
        last_right[row] = box.x1


def plot_timeline(
    rows: Iterable[Mapping[str, Any]],
    path: str | Path,
    title: str | None = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Draw the emotion timeline of ``rows`` (see the module's docstring) and write it to ``path`` as a PNG
    (dpi 120, parent folders created). Returns the path. Raises ``ValueError("no cues to plot")`` for no rows and
    a ``ValueError`` naming the row index for a row without ``start``/``end`` or with bad times."""
    fig = build_timeline_figure(rows, title=title, labels=labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path

"""The emotion timeline picture of ``hf-erc predict --plot``: the PNG, its lanes, bands, legend, ticks and colours."""

from __future__ import annotations

import itertools
import re

import pytest

from hf_erc.labels import IEMOCAP_EMOTIONS, MELD_EMOTIONS
from hf_erc.inference.timeline import (
    FALLBACK_COLORS,
    band_alpha,
    build_timeline_figure,
    emotion_colors,
    figure_width,
    format_seconds,
    plot_timeline,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def probabilities(emotion: str, probability: float) -> dict[str, float]:
    rest = (1 - probability) / (len(MELD_EMOTIONS) - 1)
    return {label: probability if label == emotion else rest for label in MELD_EMOTIONS}


def cue(speaker, start, end, emotion, probability, flags=None, text="..."):
    row = {
        "speaker": speaker,
        "text": text,
        "start": start,
        "end": end,
        "emotion": emotion,
        "probabilities": probabilities(emotion, probability),
    }
    if flags is not None:
        row["flags"] = flags
    return row


@pytest.fixture
def conversation():
    """A MELD-like scene: 3 speakers, 6 cues, one flagged, one too short for its number to fit inside."""
    return [
        cue("Monica", 0.5, 3.2, "neutral", 0.82, text="There's nothing to tell!"),
        cue("Joey", 3.4, 6.0, "joy", 0.64, text="C'mon, you're going out with the guy!"),
        cue("Chandler", 6.2, 7.1, "anger", 0.41, flags=["no audio"], text="All right Joey, be nice."),
        cue("Monica", 7.5, 10.8, "surprise", 0.93, text="Okay, everybody relax."),
        cue("Joey", 11.0, 11.3, "sadness", 0.55, text="Oh."),
        cue("Chandler", 12.0, 15.5, "joy", 0.71, flags=[], text="Wow."),
    ]


def rgb(hex_color: str) -> tuple[float, ...]:
    return tuple(int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))


def lab(hex_color: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour, for perceptual colour distances."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb(hex_color)]
    r, g, b = linear
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def bands(ax):
    return [patch for patch in ax.patches if (patch.get_gid() or "").startswith("cue-")]


# --- the PNG ---------------------------------------------------------------------------------------------------


def test_plot_timeline_writes_a_png_of_a_sensible_size(conversation, tmp_path):
    from PIL import Image

    target = tmp_path / "plots" / "scene.png"
    written = plot_timeline(conversation, str(target), title="Friends S01E01")
    assert written == target and target.is_file()
    assert target.read_bytes()[:8] == PNG_MAGIC
    with Image.open(target) as image:
        width, height = image.size
        assert image.format == "PNG"
    assert width == 8 * 120  # a 15-second scene gets the minimum width, at dpi 120
    assert 300 <= height <= 600 and width > height


def test_the_png_is_not_blank(conversation, tmp_path):
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(plot_timeline(conversation, tmp_path / "scene.png"))
    distinct = np.unique(pixels[..., :3].reshape(-1, 3).round(2), axis=0)
    assert len(distinct) > 20  # bands in several colours, text, grid, not one flat colour


# --- what the figure holds -------------------------------------------------------------------------------------


def test_one_lane_per_speaker_in_order_of_first_appearance(conversation):
    ax = build_timeline_figure(conversation).axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["Monica", "Joey", "Chandler"]
    assert list(ax.get_yticks()) == [0, 1, 2]
    assert ax.yaxis_inverted()  # the first speaker is the top lane


def test_one_band_per_cue_in_its_lane_and_time(conversation):
    ax = build_timeline_figure(conversation).axes[0]
    found = bands(ax)
    assert len(found) == len(conversation) == 6
    lanes = {"Monica": 0, "Joey": 1, "Chandler": 2}
    colors = emotion_colors(MELD_EMOTIONS)
    for index, (band, row) in enumerate(zip(found, conversation)):
        assert band.get_gid() == f"cue-{index}"
        assert band.get_x() == pytest.approx(row["start"])
        assert band.get_width() == pytest.approx(row["end"] - row["start"])
        assert band.get_y() + band.get_height() / 2 == pytest.approx(lanes[row["speaker"]])
        assert band.get_facecolor()[:3] == pytest.approx(rgb(colors[row["emotion"]]), abs=1e-6)


def test_one_speakers_cues_on_one_span_share_the_lane_in_stacked_rows():
    """Two lines of a dual-speaker cue whose speakers are both unknown (one span, one lane) are drawn one above the
    other, each half the band's height, neither hiding the other; a later cue of that speaker has the full band."""
    rows = [
        cue("unknown", 1.0, 3.0, "joy", 0.9, text="- Did you get it?"),
        cue("unknown", 1.0, 3.0, "surprise", 0.8, text="- Yes!"),
        cue("Ann", 3.5, 5.0, "neutral", 0.7),
        cue("unknown", 6.0, 8.0, "anger", 0.6),
    ]
    first, second, _, later = bands(build_timeline_figure(rows).axes[0])
    full = later.get_height()
    assert first.get_height() == pytest.approx(full / 2) and second.get_height() == pytest.approx(full / 2)
    assert first.get_y() + first.get_height() == pytest.approx(second.get_y())  # stacked, not overlapping
    assert first.get_y() == pytest.approx(later.get_y())  # together they fill the lane's band
    assert second.get_y() + second.get_height() == pytest.approx(later.get_y() + full)


def test_opacity_follows_the_probability(conversation):
    ax = build_timeline_figure(conversation).axes[0]
    alphas = [band.get_facecolor()[3] for band in bands(ax)]
    probs = [row["probabilities"][row["emotion"]] for row in conversation]
    assert alphas == pytest.approx([0.35 + 0.65 * p for p in probs])
    assert band_alpha(0.0) == 0.35 and band_alpha(1.0) == 1.0 and band_alpha(None) == 1.0
    assert band_alpha(1.7) == 1.0 and band_alpha(-1) == 0.35


def test_flagged_cues_are_hatched_and_explained(conversation):
    ax = build_timeline_figure(conversation).axes[0]
    hatches = [band.get_hatch() for band in bands(ax)]
    assert [bool(h) for h in hatches] == [False, False, True, False, False, False]
    from matplotlib.legend import Legend

    extra = [artist for artist in ax.artists if isinstance(artist, Legend)]
    assert len(extra) == 1 and [t.get_text() for t in extra[0].get_texts()] == ["no audio"]
    assert ax.get_legend() is not extra[0]


def test_no_flag_legend_without_flags(conversation):
    for row in conversation:
        row.pop("flags", None)
    ax = build_timeline_figure(conversation).axes[0]
    assert not ax.artists and not any(band.get_hatch() for band in bands(ax))


def test_the_legend_holds_exactly_the_emotions_present(conversation):
    ax = build_timeline_figure(conversation).axes[0]
    texts = [text.get_text() for text in ax.get_legend().get_texts()]
    assert texts == ["neutral", "surprise", "sadness", "joy", "anger"]  # MELD's order, no fear or disgust
    colors = emotion_colors(MELD_EMOTIONS)
    handles = ax.get_legend().legend_handles
    assert [h.get_facecolor()[:3] for h in handles] == [pytest.approx(rgb(colors[t])) for t in texts]


def test_labels_order_the_legend_and_unknown_emotions_still_show(conversation):
    conversation[0]["emotion"] = "contempt"
    ax = build_timeline_figure(conversation, labels=list(reversed(MELD_EMOTIONS))).axes[0]
    texts = [text.get_text() for text in ax.get_legend().get_texts()]
    assert texts == ["anger", "joy", "sadness", "surprise", "contempt"]
    assert bands(ax)[0].get_facecolor()[:3] == pytest.approx(rgb(FALLBACK_COLORS[0]))
    # the probability of an emotion missing from the probabilities reads as unknown: an opaque band
    assert bands(ax)[0].get_facecolor()[3] == 1.0


def test_probabilities_are_printed_inside_wide_bands_and_above_narrow_ones(conversation):
    ax = build_timeline_figure(conversation).axes[0]
    texts = {text.get_gid(): text for text in ax.texts}
    wide = texts["probability-0"]  # Monica, 2.7 s
    assert wide.get_text() == "0.82"
    assert wide.get_position()[1] == pytest.approx(0)  # the middle of Monica's lane
    narrow = texts["probability-4"]  # Joey, 0.3 s
    assert narrow.get_text() == "0.55"
    assert narrow.get_position()[1] < 1 - 0.25  # above the band in Joey's lane (the y axis is inverted)
    assert sorted(texts) == sorted(f"probability-{i}" for i in range(6))


def test_a_title_is_given_or_made_up(conversation):
    assert build_timeline_figure(conversation, title="Scene 3").axes[0].get_title(loc="left") == "Scene 3"
    made_up = build_timeline_figure(conversation).axes[0].get_title(loc="left")
    assert "6 cues" in made_up and "3 speakers" in made_up


def test_pipeline_style_scores_are_read():
    rows = [
        {"speaker": "A", "text": "hi", "start": 0, "end": 2, "scores": {"joy": 0.2, "anger": 0.8}},
        {"speaker": "B", "text": "ho", "start": 2, "end": 4, "emotion": "joy", "score": 0.5},
    ]
    ax = build_timeline_figure(rows).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["joy", "anger"]
    assert [band.get_facecolor()[3] for band in bands(ax)] == pytest.approx([0.35 + 0.65 * 0.8, 0.35 + 0.65 * 0.5])


# --- time axis and size ----------------------------------------------------------------------------------------


def test_a_five_minute_span_gets_mm_ss_ticks():
    rows = [cue(["Ross", "Rachel"][i % 2], 30.0 * i, 30.0 * i + 20, MELD_EMOTIONS[i % 7], 0.6) for i in range(11)]
    fig = build_timeline_figure(rows)
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    assert len(labels) >= 5
    assert all(re.fullmatch(r"\d+:\d\d", label) for label in labels), labels
    assert "1:00" in labels and "5:00" in labels
    assert "m:ss" in ax.get_xlabel()


def test_a_short_span_is_in_plain_seconds(conversation):
    fig = build_timeline_figure(conversation)
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert labels and not any(":" in label for label in labels)
    assert fig.axes[0].get_xlabel() == "time (s)"


def test_format_seconds():
    assert format_seconds(0) == "0:00"
    assert format_seconds(65) == "1:05"
    assert format_seconds(599.6) == "10:00"
    assert format_seconds(3725) == "1:02:05"


def test_the_width_grows_with_the_duration_within_bounds():
    assert figure_width(10) == 8 and figure_width(60) == 8
    assert 8 < figure_width(180) < figure_width(300) < 24
    assert figure_width(600) == figure_width(7200) == 24
    short = build_timeline_figure([cue("A", 0, 5, "joy", 0.9)])
    long = build_timeline_figure([cue("A", 0, 5, "joy", 0.9), cue("B", 590, 600, "anger", 0.9)])
    assert short.get_figwidth() == 8 and long.get_figwidth() == 24
    assert short.dpi == long.dpi == 120


# --- colours ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [MELD_EMOTIONS, IEMOCAP_EMOTIONS], ids=["meld", "iemocap"])
def test_each_dataset_gets_distinct_colours(labels):
    colors = emotion_colors(labels)
    assert list(colors) == list(labels)
    assert all(re.fullmatch(r"#[0-9A-F]{6}", color) for color in colors.values())
    for a, b in itertools.combinations(labels, 2):
        delta_e = sum((x - y) ** 2 for x, y in zip(lab(colors[a]), lab(colors[b]))) ** 0.5
        assert delta_e > 20, (a, b, colors[a], colors[b])  # CIE76: ~2 is just noticeable, 20+ clearly apart


def test_colours_are_stable_and_keyed_by_name():
    meld = emotion_colors(MELD_EMOTIONS)
    assert meld == emotion_colors(MELD_EMOTIONS)
    assert emotion_colors(reversed(MELD_EMOTIONS)) == meld  # the order of the label set does not matter
    assert emotion_colors(["anger"]) == {"anger": meld["anger"]}
    assert emotion_colors(["Joy", " ANGER "]) == {"Joy": meld["joy"], " ANGER ": meld["anger"]}
    assert meld == {
        "neutral": "#999999",
        "surprise": "#56B4E9",
        "fear": "#CC79A7",
        "sadness": "#0072B2",
        "joy": "#E69F00",
        "disgust": "#009E73",
        "anger": "#D55E00",
    }
    iemocap = emotion_colors(IEMOCAP_EMOTIONS)
    assert iemocap["neutral"] == meld["neutral"]
    assert (iemocap["happy"], iemocap["sad"], iemocap["angry"]) == (meld["joy"], meld["sadness"], meld["anger"])


def test_unknown_labels_take_fallback_colours_that_do_not_clash():
    colors = emotion_colors(["joy", "contempt", "boredom", "joy"])
    assert list(colors) == ["joy", "contempt", "boredom"]
    assert colors["contempt"] == FALLBACK_COLORS[0] and colors["boredom"] == FALLBACK_COLORS[1]
    many = emotion_colors([f"label{i}" for i in range(len(FALLBACK_COLORS))] + list(MELD_EMOTIONS))
    assert len(set(many.values())) == len(many)


# --- bad input -------------------------------------------------------------------------------------------------


def test_no_rows_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="^no cues to plot$"):
        plot_timeline([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="^no cues to plot$"):
        build_timeline_figure(iter(()))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"start": None}, r"row 1 has no start time"),
        ({"end": None}, r"row 1 has no end time"),
        ({"start": "soon"}, r"row 1: start 'soon' is not a number"),
        ({"end": float("nan")}, r"row 1: end nan is not a finite"),
        ({"start": 9.0, "end": 8.0}, r"row 1 ends \(8 s\) before it starts \(9 s\)"),
        ({"emotion": None, "probabilities": {}}, r"row 1 has no emotion"),
    ],
)
def test_a_bad_row_is_named(conversation, tmp_path, change, message):
    conversation[1].update(change)
    with pytest.raises(ValueError, match=message):
        plot_timeline(conversation, tmp_path / "x.png")


def test_a_row_without_times_at_all_is_named(conversation):
    del conversation[3]["start"], conversation[3]["end"]
    with pytest.raises(ValueError, match=r"row 3 has no start or end time"):
        build_timeline_figure(conversation)


def test_a_row_that_is_not_a_mapping_is_named(conversation):
    conversation[2] = ("Chandler", 1, 2)
    with pytest.raises(ValueError, match=r"row 2 is a tuple"):
        build_timeline_figure(conversation)

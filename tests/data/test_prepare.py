"""``load_erc_dataset``, ``summarize``, Parquet export and the ``hf-erc prepare`` command."""

from __future__ import annotations

import contextlib
import csv
import io
import re

import datasets
import pytest

from hf_erc.cli import main
from hf_erc.data import prepare as prepare_module
from hf_erc.data.errors import DataFormatError
from hf_erc.data.export import PushError, push_parquet_repo, save_parquet_repo
from hf_erc.data.meld import build_meld
from hf_erc.data.planted import write_planted_release
from hf_erc.data.prepare import is_prepared_folder, load_erc_dataset
from hf_erc.data.summary import summarize
from tests.utils.media_fixtures import write_corrupt, write_mp4
from tests.utils.meld_files import TINY_ROWS, write_meld_csv
from tests.utils.scripts import load_script


@pytest.fixture(scope="module")
def prepared_meld(meld_csv_dir, tmp_path_factory):
    """``hf-erc prepare meld`` run once on the real CSVs: (output folder, printed text, exit code)."""
    root = tmp_path_factory.mktemp("prepared")
    output = root / "meld"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["prepare", "meld", "--raw-dir", str(meld_csv_dir), "--output", str(output), "--cache-dir", str(root / "cache")]
        )
    return output, printed.getvalue(), code


@pytest.fixture(scope="module")
def real_meld(meld_csv_dir, tmp_path_factory):
    return build_meld(meld_csv_dir, cache_dir=tmp_path_factory.mktemp("meld_cache"))


def test_cli_prints_summary_table(prepared_meld):
    output, printed, code = prepared_meld
    assert code == 0
    lines = printed.splitlines()
    assert re.split(r"\s+", lines[0].strip()) == ["train", "validation", "test", "total"]
    assert re.split(r"\s+", lines[1]) == ["dialogues", "1038", "114", "280", "1432"]
    assert re.split(r"\s+", lines[2]) == ["utterances", "9989", "1109", "2610", "13708"]
    assert lines[3] == "emotion"
    assert re.split(r"\s+", lines[4].strip()) == ["neutral", "4710", "470", "1256", "6436"]
    assert "train: text only (no media files found for its 9989 utterances)" in printed
    assert f"Wrote {output}" in printed
    assert is_prepared_folder(output)
    assert sorted(path.name for path in (output / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]


def test_summarize_matches_dataset(real_meld):
    table = summarize(real_meld).splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    assert rows["utterances"] == ["9989", "1109", "2610", "13708"]
    assert rows["anger"] == ["1109", "153", "345", "1607"]
    assert table[-3].split() == ["missing", "video", "9989", "1109", "2610", "13708"]
    assert table[-1].split() == ["unusable", "video", "0", "0", "0", "0"]


def test_load_dataset_on_prepared_folder_gives_same_rows_and_features(prepared_meld, real_meld, tmp_path):
    output, _, _ = prepared_meld
    loaded = datasets.load_dataset(str(output), cache_dir=str(tmp_path))
    assert list(loaded) == ["train", "validation", "test"]
    for split in real_meld:
        assert loaded[split].features == real_meld[split].features
        assert loaded[split].to_list() == real_meld[split].to_list()
    assert loaded["train"].features["emotion"].names == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]


def test_load_erc_dataset_reads_prepared_folder_and_raw_release(prepared_meld, real_meld, meld_csv_dir, tmp_path):
    output, _, _ = prepared_meld
    from_folder = load_erc_dataset("meld", output, cache_dir=tmp_path / "a")
    from_raw = load_erc_dataset("MELD", meld_csv_dir, check_media=False, cache_dir=tmp_path / "b")
    for split in real_meld:
        assert from_folder[split].features == from_raw[split].features == real_meld[split].features
        assert from_folder[split]["text"] == from_raw[split]["text"] == real_meld[split]["text"]


def test_dataset_card(prepared_meld):
    output, _, _ = prepared_meld
    readme = (output / "README.md").read_text(encoding="utf-8")
    front_matter, body = readme.split("\n---\n", 1)
    assert front_matter.startswith("---\n")
    for field in ("license: gpl-3.0", "- en", "text-classification", "class_label:", "'6': anger",
                  "num_examples: 9989"):  # fmt: skip
        assert field in front_matter, field
    # The shards are found by their names (data/{split}-00000-of-00001.parquet): a `configs: data_files` block would
    # key `load_dataset`'s cache on the folder name and split sizes (test_reprepared_release_loads_fresh_...).
    assert "configs:" not in front_matter and "data_files" not in front_matter
    assert sorted(path.name for path in (output / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet"
    ]
    assert "# MELD: Multimodal EmotionLines Dataset" in body
    assert "0 = neutral, 1 = surprise, 2 = fear, 3 = sadness, 4 = joy, 5 = disgust, 6 = anger" in body
    assert "dia125_utt3.mp4" in body and "dia110_utt7.mp4" in body
    assert "Poria" in body and "GPL-3.0" in body
    assert "| `utterance_id` |" in body


def test_load_erc_dataset_checks_name_and_options(prepared_meld, tmp_path):
    output, _, _ = prepared_meld
    with pytest.raises(DataFormatError, match="does not hold iemocap data"):
        load_erc_dataset("iemocap", output, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset 'cmu-mosei'"):
        load_erc_dataset("cmu-mosei", output)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['seed'\]"):
        load_erc_dataset("meld", output, seed=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_erc_dataset("meld", tmp_path / "absent")


def test_load_erc_dataset_dispatches_iemocap(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(
        prepare_module, "build_iemocap", lambda raw_dir, **options: calls.append((raw_dir, options)) or "built"
    )
    result = load_erc_dataset("iemocap", tmp_path, keep_unlabeled=True, seed=7, cache_dir=tmp_path / "c")
    assert result == "built"
    assert calls == [(tmp_path, {"keep_unlabeled": True, "seed": 7, "cache_dir": tmp_path / "c"})]


def test_load_erc_dataset_is_exported_from_the_data_package():
    """``hf_erc.data.load_erc_dataset(name, dir)`` is the entry point of ``hf_erc.data.prepare``, not a copy."""
    import hf_erc.data
    import hf_erc.data.prepare

    assert hf_erc.data.load_erc_dataset is hf_erc.data.prepare.load_erc_dataset


@pytest.fixture
def tiny_release(tmp_path):
    raw = tmp_path / "MELD.Raw"
    raw.mkdir()
    for csv_name, rows in TINY_ROWS.items():
        write_meld_csv(raw / csv_name, rows)
    (raw / "train_splits").mkdir()
    write_mp4(raw / "train_splits" / "dia0_utt0.mp4", seconds=0.3)
    write_corrupt(raw / "train_splits" / "dia125_utt3.mp4")
    return raw


def test_export_round_trip_keeps_nulls_and_flags(tiny_release, tmp_path):
    built = build_meld(tiny_release, cache_dir=tmp_path / "cache")
    save_parquet_repo(built, tmp_path / "out", "# Tiny\n", license="gpl-3.0")
    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "cache2"))
    for split in built:
        assert loaded[split].features == built[split].features
        assert loaded[split].to_list() == built[split].to_list()
    assert loaded["train"]["has_video"] == [True, False, False, False, False, False]
    assert loaded["train"]["video_path"][1:4] == [None, None, None]


def test_cli_prepare_tiny_release_reports_clips(tiny_release, tmp_path, capsys):
    code = main(
        ["prepare", "meld", "--raw-dir", str(tiny_release), "--output", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert re.search(r"^usable video\s+1\s+0\s+0\s+1$", printed, re.M)
    assert re.search(r"^unusable audio\s+1\s+0\s+0\s+1$", printed, re.M)
    assert re.search(r"^missing video\s+4\s+2\s+2\s+8$", printed, re.M)
    assert (
        "train: 6 utterances, audio usable for 1, video for 1; missing audio/video: 4 "
        "(dia0_utt1, dia2_utt0, dia10_utt0, dia125_utt0); unusable audio/video: 1 (dia125_utt3.mp4)"
    ) in printed
    assert "validation: text only" in printed


def test_cli_errors_are_clean(tmp_path, capsys):
    assert main(["prepare", "meld", "--raw-dir", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")]) == 2
    assert "hf-erc prepare: error: MELD folder" in capsys.readouterr().err
    (tmp_path / "raw").mkdir()
    write_meld_csv(tmp_path / "raw" / "train_sent_emo.csv", [(0, 0, "Hi.", "happy", "positive")])
    assert main(["prepare", "meld", "--raw-dir", str(tmp_path / "raw"), "--output", str(tmp_path / "o")]) == 2
    assert "lacks ['dev_sent_emo.csv', 'test_sent_emo.csv']" in capsys.readouterr().err
    assert main(["prepare", "meld", "--raw-dir", str(tmp_path), "--output", str(tmp_path / "o"), "--seed", "3"]) == 2
    assert "--seed: only for iemocap, not meld." in capsys.readouterr().err


def test_push_offline_says_folder_is_complete(tiny_release, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    output = tmp_path / "out"
    with pytest.raises(PushError) as error:
        push_parquet_repo(output, "someone/meld")
    message = str(error.value)
    assert f"The local dataset folder {output.resolve()} is complete" in message
    assert f"hf upload someone/meld {output.resolve()} --repo-type dataset" in message

    code = main(
        ["prepare", "meld", "--raw-dir", str(tiny_release), "--output", str(output), "--cache-dir",
         str(tmp_path / "cache"), "--no-check-media", "--push-to-hub", "someone/meld", "--private"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert is_prepared_folder(output)
    assert "is complete" in captured.err and "--private" in captured.err


def test_prepare_meld_script(tiny_release, tmp_path, capsys):
    from pathlib import Path

    script = load_script(Path(__file__).resolve().parents[2] / "dataset_scripts" / "meld" / "prepare_meld.py")
    output = tmp_path / "meld"
    assert script.main([str(tiny_release), str(output), "--no-check-media", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "unusable audio/video" not in capsys.readouterr().out  # existence only: the corrupt clip counts
    loaded = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "c2"))
    assert loaded["train"]["has_video"] == [True, False, False, False, False, True]


def test_reprepared_folder_is_never_read_from_a_stale_cache(tmp_path):
    """Two prepared folders with shards of the same names and sizes load as themselves."""
    from datasets import DatasetDict

    from hf_erc.data.contract import contract_features
    from hf_erc.data.export import save_parquet_repo
    from hf_erc.data.prepare import load_erc_dataset

    def folder(name, text):
        rows = {column: [] for column in contract_features("meld", utterance_id="int32")}
        for turn in range(2):
            for column, value in {
                "dialogue_id": "dia0", "turn": turn, "utterance_id": turn, "speaker": "A", "text": f"{text}{turn}",
                "emotion": 0, "sentiment": 0, "audio_path": None, "video_path": None, "start": 0.0, "end": 1.0,
                "has_audio": False, "has_video": False,
            }.items():
                rows[column].append(value)
        split = datasets.Dataset.from_dict(rows, features=contract_features("meld", utterance_id="int32"))
        return save_parquet_repo(DatasetDict({"train": split}), tmp_path / name, "card")

    first = load_erc_dataset("meld", folder("one/data", "aaaa"))
    second = load_erc_dataset("meld", folder("two/data", "bbbb"))
    assert first["train"]["text"] == ["aaaa0", "aaaa1"]
    assert second["train"]["text"] == ["bbbb0", "bbbb1"]
    # `datasets.load_dataset(folder)`, what `hf-erc prepare` prints, through one shared cache: the two folders have
    # the same name, files and sizes, and the second is then rewritten in place.
    for name, text in (("one/data", "aaaa"), ("two/data", "bbbb"), ("two/data", "cccc")):
        loaded = datasets.load_dataset(str(folder(name, text)), cache_dir=str(tmp_path / "datasets_cache"))
        assert loaded["train"]["text"] == [f"{text}0", f"{text}1"], name


def fix_transcript(csv_path, row_number):
    """Rewrite one transcript of a release CSV in place with its letters replaced by ``x`` (a correction that keeps
    its length); returns (old text, new text)."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        header, *rows = csv.reader(handle)
    column = header.index("Utterance")
    old = rows[row_number][column]
    rows[row_number][column] = new = "".join("x" if character.isalpha() else character for character in old)
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows([header, *rows])
    return old, new


def test_reprepared_release_loads_fresh_through_the_call_prepare_prints(tmp_path, capsys):
    """A release prepared, loaded with the `datasets.load_dataset(OUTPUT)` that `hf-erc prepare` prints, then fixed
    in place (a transcript of the same length: same shard sizes) and prepared again into the same folder, loads
    its new rows from a shared `datasets` cache, not the first preparation's copy."""
    raw, output, cache = tmp_path / "MELD.Raw", tmp_path / "meld", str(tmp_path / "datasets_cache")
    write_planted_release(raw, dialogues={"train": 3, "dev": 2, "test": 2}, seed=1, media=False)
    prepare = ["prepare", "meld", "--raw-dir", str(raw), "--output", str(output), "--no-check-media"]
    assert main(prepare + ["--cache-dir", str(tmp_path / "build_cache")]) == 0
    assert f"datasets.load_dataset({str(output)!r})" in capsys.readouterr().out
    before = datasets.load_dataset(str(output), cache_dir=cache)["train"]["text"]

    old, fixed = fix_transcript(raw / "train_sent_emo.csv", 0)
    assert main(prepare + ["--cache-dir", str(tmp_path / "build_cache")]) == 0
    after = datasets.load_dataset(str(output), cache_dir=cache)["train"]["text"]
    assert fixed in after and old not in after
    assert sorted(after) == sorted([fixed if text == old else text for text in before])


def test_cli_prepare_iemocap_reference_split(tmp_path, capsys):
    """``--validation-split reference`` holds out the authors' 12 dialogues; it is refused with random-only flags."""
    from tests.utils.iemocap_release import REFERENCE_VALIDATION, make_release, release_with

    raw_dir = make_release(tmp_path / "raw", release_with(REFERENCE_VALIDATION), media=False)
    output = tmp_path / "out"
    common = ["prepare", "iemocap", "--raw-dir", str(raw_dir), "--output", str(output), "--no-check-media",
              "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert main(common + ["--validation-split", "reference"]) == 0
    printed = capsys.readouterr().out
    assert re.split(r"\s+", printed.splitlines()[1]) == ["dialogues", "5", "12", "2", "19"]
    loaded = load_erc_dataset("iemocap", output)
    assert sorted(set(loaded["validation"]["dialogue_id"])) == sorted(REFERENCE_VALIDATION)
    assert "reference split" in (output / "README.md").read_text(encoding="utf-8")

    assert main(common + ["--validation-split", "reference", "--validation-fraction", "0.2", "--seed", "3"]) == 2
    assert (
        "hf-erc prepare: error: --validation-fraction, --seed: only for --validation-split random; "
        "the reference split is a fixed list of 12 dialogues."
    ) in capsys.readouterr().err

    partial = make_release(tmp_path / "partial", release_with(REFERENCE_VALIDATION[1:]), media=False)
    partial_command = ["prepare", "iemocap", "--raw-dir", str(partial), "--output", str(tmp_path / "o2"),
                       "--no-check-media", "--validation-split", "reference"]  # fmt: skip
    assert main(partial_command + ["--cache-dir", str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err
    assert "1 of the 12 reference validation dialogues" in error and REFERENCE_VALIDATION[0] in error


def test_cli_refuses_validation_split_for_meld(tmp_path, capsys):
    argv = ["prepare", "meld", "--raw-dir", str(tmp_path), "--output", str(tmp_path / "o")]
    assert main(argv + ["--validation-split", "reference"]) == 2
    assert "--validation-split: only for iemocap, not meld." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(argv + ["--validation-split", "fixed"])
    assert "invalid choice: 'fixed'" in capsys.readouterr().err


def test_load_erc_dataset_passes_validation_split(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(
        prepare_module, "build_iemocap", lambda raw_dir, **options: calls.append((raw_dir, options)) or "built"
    )
    assert load_erc_dataset("iemocap", tmp_path, validation_split="reference") == "built"
    assert calls == [(tmp_path, {"validation_split": "reference"})]
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['validation_split'\]"):
        load_erc_dataset("meld", tmp_path, validation_split="reference")

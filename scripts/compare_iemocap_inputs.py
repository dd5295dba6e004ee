#!/usr/bin/env python
"""Check ``hf-erc show-inputs --preprocessing reference`` on IEMOCAP against the text inputs of TelME's or MAGTKD's
released code (GitHub issue 20).

The authors train on CSVs they wrote from the release (TelME: ``dataset/IEMOCAP_full_release/IEMOCAP_{train,dev,
test}.csv`` of yuntaeyang/TelME; MAGTKD: ``datasets/IEMOCAP/IEMOCAP_{train,dev,test}.csv`` of JieLi-dd/MAGTKD). This
script rebuilds from those CSVs the string each utterance's text model reads, and its token ids, the way their
``IEMOCAP/preprocessing.py`` and ``IEMOCAP/utils.py`` do (restated below in our own code), runs hf_erc's
``show-inputs`` code on an IEMOCAP release (raw, read with the reference split, or a folder prepared with
``hf-erc prepare iemocap --validation-split reference``), matches the rows by turn id and prints, per split, how
many prompts and token ids agree, the rows found on one side only and the first differences. Exit status 1 if
anything differs.

    python scripts/compare_iemocap_inputs.py --csv-dir TelME/dataset/IEMOCAP_full_release --model-type telme \\
        --data-dir IEMOCAP_full_release [--tokenizer ROBERTA_LARGE_FOLDER] [--json report.json]

``--tokenizer`` is a folder with roberta-large's ``vocab.json`` and ``merges.txt`` (roberta-base's are the same
files); hf_erc's side loads it with ``AutoTokenizer`` or, for those two files alone, as a ``RobertaTokenizer``.
Without it only the strings are compared.

Without the release, ``--synthesize-release OUT --transcription-dump DIR`` writes a raw-layout stand-in (no media):
``Session*/dialog/transcriptions/<dialogue>.txt`` with every line of a third party's dump of the transcription files
(``DIR/{train,val,test}_6way_utterances.csv``: ``id,utterance`` in file line order, e.g. philhelenina/SenticCrystal
``data/iemocap_6way_data``; times from ``*_6way_with_minus_one.csv`` beside them when present) and
``Session*/dialog/EmoEvaluation/<dialogue>.txt`` labelling the CSVs' turns with the CSVs' labels and times (the
dump's other turns as ``xxx``). Nothing of that dump ships with hf_erc: it is read from the path given.

What the authors' loop does (both models): rows are read in CSV order; a speaker table maps a speaker key to its
1-based marker ``<sK>`` by first appearance; a row whose ``Dialogue_ID`` differs from the previous row's is numbered
against the table the previous dialogue left, and only then is the table emptied (so the first turn of every
dialogue but the file's first is numbered against the previous dialogue's table). TelME's key is the CSV's Speaker
column, which names the turn (``Ses01F_impro01_F000``), so every turn gets a new number; MAGTKD's key is the letter
after the last ``_`` of that column (``F``/``M``). Each utterance reads every turn of its dialogue up to itself, as
``<sK> text `` pieces joined, stripped, then `` </s> Now <sK> feels`` (TelME) or `` </s> Now<sK> feels`` (MAGTKD).
Token ids: roberta-large's slow tokenizer, which cuts the text at its special tokens (keeping the whitespace next
to ``</s>``). TelME adds ``<s1>``..``<s9>`` to it as special tokens (ids after the vocabulary), and the slow tokenizer
drops the whitespace on both sides of those; MAGTKD's data loader (``IEMOCAP/utils.py``) adds none, so its markers
are plain text. The last 511 tokens are kept and ``<mask>`` appended.

Known differences between their CSVs and the release, reported rather than hidden:
- their CSVs may carry U+0092 where the release has ``’`` (a re-encoding of their copy, docs/models/telme.md row 5d):
  normalised here and counted (the IEMOCAP CSVs of both repositories hold none);
- ``Ses05F_impro07_F010`` "Fair enough.": the CSVs keep this turn where COSMIC's and CoMPM's IEMOCAP data (the same
  splits) keep ``Ses05F_impro07_M010`` "I know."; on a release that labels M010 rather than F010 the row is on one
  side only and the prompts after it in that dialogue differ. Named in the report whenever the CSV holds it.
- MAGTKD's CSV only: ``Ses03F_impro07_M027`` reads ``#NAME?`` where the release (and TelME's CSV) has ``-drunk.``
  (a spreadsheet read the text as a formula): that turn's prompt and the later ones of its dialogue differ.
Differences in a dialogue holding such a turn are counted as explained by it, and still make the exit status 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

CSV_FILES = {"train": "IEMOCAP_train.csv", "validation": "IEMOCAP_dev.csv", "test": "IEMOCAP_test.csv"}
MODEL_TYPES = ("telme", "magtkd")
PROMPT_TEMPLATES = {"telme": "{body} </s> Now <s{number}> feels", "magtkd": "{body} </s> Now<s{number}> feels"}
# Their tokenizer: roberta-large plus these special tokens; they keep the last 511 tokens and append <mask>.
AUTHORS_MARKERS = tuple(f"<s{index}>" for index in range(1, 10))
AUTHORS_TOKEN_BUDGET = 511
# The one re-encoding their copy of the texts has: U+0092 (a cp1252 right quote read as latin-1) for U+2019.
REENCODED = {"\u0092": "\u2019"}
# Their marker tokens, added to the tokenizer (TelME) or not (MAGTKD: plain text).
ADDED_MARKERS = {"telme": AUTHORS_MARKERS, "magtkd": ()}
KNOWN_TEXT_DIFFERENCES = {
    "telme": {
        "Ses05F_impro07_F010": (
            'the CSV keeps F010 "Fair enough." where COSMIC\'s and CoMPM\'s IEMOCAP data keep M010 "I know."; '
            "a release labelling M010 instead puts this row on one side only"
        ),
    },
    "magtkd": {
        "Ses05F_impro07_F010": (
            'the CSV keeps F010 "Fair enough." where COSMIC\'s and CoMPM\'s IEMOCAP data keep M010 "I know."; '
            "a release labelling M010 instead puts this row on one side only"
        ),
        "Ses03F_impro07_M027": (
            'the CSV reads "#NAME?" (a spreadsheet\'s formula error) where the release has "-drunk."'
        ),
    },
}
DUMP_FILES = ("train", "val", "test")
NUM_SHOWN = 5


# --- the authors' side, from their CSVs ----------------------------------------------------------------------------
def read_authors_csv(path: Path) -> tuple[list[dict], int]:
    """The rows of one of their CSVs, in file order, and how many U+0092 characters were normalised."""
    rows, reencoded = [], 0
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            text = row["Utterance"]
            for wrong, right in REENCODED.items():
                reencoded += text.count(wrong)
                text = text.replace(wrong, right)
            rows.append({**row, "Utterance": text})
    return rows, reencoded


def speaker_key(row: dict, model_type: str) -> str:
    """What their loop numbers speakers by: the Speaker column (TelME), or its letter after the last ``_`` (MAGTKD)."""
    column = row["Speaker"]
    return column if model_type == "telme" else column.rsplit("_", 1)[-1][:1]


def authors_prompts(rows: list[dict], model_type: str) -> dict[str, str]:
    """``{turn id: prompt}`` as their IEMOCAP loop writes it for the rows of one CSV (see the module docstring)."""
    prompts: dict[str, str] = {}
    table: list[str] = []
    pieces: list[str] = []
    previous_dialogue = None
    for row in rows:
        key = speaker_key(row, model_type)
        if key not in table:
            table.append(key)
        number = table.index(key) + 1
        if previous_dialogue is not None and row["Dialogue_ID"] != previous_dialogue:
            pieces, table = [], []  # a new dialogue: numbered above against the old table, then the table empties
        previous_dialogue = row["Dialogue_ID"]
        pieces.append(f"<s{number}> {row['Utterance']} ")
        body = "".join(pieces).strip()
        prompts[row["Speaker"]] = PROMPT_TEMPLATES[model_type].format(body=body, number=number)
    return prompts


class AuthorsTokenizer:
    """roberta-large's byte-level BPE (``vocab.json``, ``merges.txt``) applied as their slow ``RobertaTokenizer``
    with ``markers`` added (TelME: ``<s1>``..``<s9>``; MAGTKD: none) applies it: the text is cut at the special
    tokens, the whitespace next to an added marker is dropped (``<mask>`` drops it on its left only, the others keep
    it), and each remaining piece is byte-encoded, split by GPT-2's pattern and merged."""

    PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    def __init__(self, folder: str | Path, markers=AUTHORS_MARKERS):
        import regex

        folder = Path(folder)
        self.vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        merges = [
            tuple(line.split())
            for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#version")
        ]
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.markers = {token: len(self.vocab) + index for index, token in enumerate(markers)}
        self.specials = {token: self.vocab[token] for token in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")}
        self.mask_id = self.vocab["<mask>"]
        self.words = regex.compile(self.PATTERN)
        tokens = sorted([*self.markers, *self.specials], key=len, reverse=True)
        self.split_pattern = re.compile("(" + "|".join(map(re.escape, tokens)) + ")")
        # Byte -> printable character map of GPT-2's byte-level BPE.
        printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
        shifted, extra = {}, 0
        for byte in range(256):
            if byte in printable:
                shifted[byte] = chr(byte)
            else:
                shifted[byte] = chr(256 + extra)
                extra += 1
        self.byte_chars = shifted

    @lru_cache(maxsize=None)  # noqa: B019 (one instance per run)
    def _merge(self, word: str) -> tuple[str, ...]:
        parts = list(word)
        while len(parts) > 1:
            pairs = zip(parts, parts[1:])
            rank, index = min((self.ranks.get(pair, float("inf")), index) for index, pair in enumerate(pairs))
            if rank == float("inf"):
                break
            first, second = parts[index], parts[index + 1]
            merged, position = [], 0
            while position < len(parts):  # merge every occurrence of the pair, left to right
                if position < len(parts) - 1 and parts[position] == first and parts[position + 1] == second:
                    merged.append(first + second)
                    position += 2
                else:
                    merged.append(parts[position])
                    position += 1
            parts = merged
        return tuple(parts)

    def _bpe_ids(self, text: str) -> list[int]:
        ids = []
        for word in self.words.findall(text):
            encoded = "".join(self.byte_chars[byte] for byte in word.encode("utf-8"))
            ids.extend(self.vocab.get(piece, self.specials["<unk>"]) for piece in self._merge(encoded))
        return ids

    def __call__(self, prompt: str) -> list[int]:
        pieces = self.split_pattern.split(prompt)
        for index in range(1, len(pieces), 2):  # odd positions are special tokens
            token = pieces[index]
            if token in self.markers:  # added as plain strings: whitespace dropped on both sides
                pieces[index - 1] = pieces[index - 1].rstrip()
                pieces[index + 1] = pieces[index + 1].lstrip()
            elif token == "<mask>":  # lstrip=True
                pieces[index - 1] = pieces[index - 1].rstrip()
        ids = []
        for index, piece in enumerate(pieces):
            if index % 2:
                ids.append(self.markers.get(piece, self.specials.get(piece)))
            elif piece:
                ids.extend(self._bpe_ids(piece))
        return ids[-AUTHORS_TOKEN_BUDGET:] + [self.mask_id]


# --- hf_erc's side -------------------------------------------------------------------------------------------------
def hf_erc_inputs(model_type: str, data_dir: str, split: str, tokenizer: str | None, work_dir: Path) -> list[dict]:
    """The JSON lines ``hf-erc show-inputs --dataset iemocap --preprocessing reference --no-media`` writes for
    ``split`` (a raw release is read with the reference split)."""
    from hf_erc.commands.show_inputs import show_inputs

    output = work_dir / f"{model_type}-{split}.jsonl"
    show_inputs(
        model_type, "iemocap", data_dir, split, str(output), preprocessing="reference", tokenizer=tokenizer,
        with_media=False, validation_split="reference",
    )  # fmt: skip
    with open(output, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def loadable_tokenizer(folder: str, work_dir: Path) -> str:
    """``folder`` if ``AutoTokenizer`` can load it; else (``vocab.json`` and ``merges.txt`` alone) a RoBERTa
    tokenizer built from those two files, saved under ``work_dir``."""
    if any(Path(folder, name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return folder
    from transformers import RobertaTokenizer

    saved = work_dir / "roberta-tokenizer"
    tokenizer = RobertaTokenizer(vocab=str(Path(folder, "vocab.json")), merges=str(Path(folder, "merges.txt")))
    tokenizer.save_pretrained(saved)
    return str(saved)


# --- the comparison ------------------------------------------------------------------------------------------------
def first_difference(a, b) -> int:
    """Index of the first position where sequences ``a`` and ``b`` differ."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    return min(len(a), len(b))


def compare_split(rows: list[dict], lines: list[dict], model_type: str, tokenizer: AuthorsTokenizer | None) -> dict:
    """Counts and first differences of one split: the authors' CSV ``rows`` against hf_erc's JSON ``lines``."""
    theirs = authors_prompts(rows, model_type)
    known = KNOWN_TEXT_DIFFERENCES[model_type]
    # The turns of a dialogue that holds a known text difference (any of them may read it, in either order).
    affected = {row["Dialogue_ID"] for row in rows if row["Speaker"] in known}
    explained = {row["Speaker"] for row in rows if row["Dialogue_ID"] in affected}
    ours = {line["utterance_id"]: line for line in lines}
    common = [turn for turn in theirs if turn in ours]
    report = {
        "rows_csv": len(theirs),
        "rows_hf_erc": len(ours),
        "rows_compared": len(common),
        "prompts_equal": 0,
        "token_ids_compared": 0,
        "token_ids_equal": 0,
        "only_in_csv": [turn for turn in theirs if turn not in ours],
        "only_in_hf_erc": [turn for turn in ours if turn not in theirs],
        "known_text_differences": {turn: note for turn, note in known.items() if turn in theirs},
        "differences_explained_by_known": 0,
        "differences": [],
    }
    csv_texts = {row["Speaker"]: row["Utterance"] for row in rows}
    report["texts_differing"] = [turn for turn in common if csv_texts[turn] != ours[turn]["text"]]
    for turn in common:
        line, prompt = ours[turn], theirs[turn]
        difference = {}
        if line["prompt"] == prompt:
            report["prompts_equal"] += 1
        else:
            at = first_difference(prompt, line["prompt"])
            difference["prompt_at"] = at
            difference["authors"] = prompt[max(0, at - 40) : at + 40]
            difference["hf_erc"] = line["prompt"][max(0, at - 40) : at + 40]
        if tokenizer is not None and "input_ids" in line:
            report["token_ids_compared"] += 1
            ids = tokenizer(prompt)
            if ids == line["input_ids"]:
                report["token_ids_equal"] += 1
            else:
                at = first_difference(ids, line["input_ids"])
                difference["token_ids_at"] = at
                difference["authors_ids"] = ids[max(0, at - 5) : at + 5]
                difference["hf_erc_ids"] = line["input_ids"][max(0, at - 5) : at + 5]
        if difference:
            if turn in explained:
                difference["explained_by_known_text_difference"] = True
                report["differences_explained_by_known"] += 1
            report["differences"].append({"utterance_id": turn, **difference})
    return report


def split_differs(report: dict) -> bool:
    return bool(
        report["differences"] or report["only_in_csv"] or report["only_in_hf_erc"]
        or report["rows_compared"] != report["rows_csv"]
    )  # fmt: skip


def print_report(split: str, report: dict, reencoded: int, file=None) -> None:
    file = file or sys.stdout
    print(
        f"== {split}: {report['rows_compared']} rows compared (CSV {report['rows_csv']}, hf_erc "
        f"{report['rows_hf_erc']}); prompts equal {report['prompts_equal']}/{report['rows_compared']}",
        file=file,
    )
    if report["token_ids_compared"]:
        print(f"   token ids equal {report['token_ids_equal']}/{report['token_ids_compared']}", file=file)
    else:
        print("   token ids not compared (no --tokenizer)", file=file)
    print(f"   U+0092 normalised to U+2019 in the CSV texts: {reencoded}", file=file)
    for name, label in (("only_in_csv", "only in the CSV"), ("only_in_hf_erc", "only in hf_erc"),
                        ("texts_differing", "texts differing")):  # fmt: skip
        if report[name]:
            shown = ", ".join(report[name][:NUM_SHOWN]) + (" ..." if len(report[name]) > NUM_SHOWN else "")
            print(f"   {label}: {len(report[name])}: {shown}", file=file)
    for turn, note in report["known_text_differences"].items():
        print(f"   known text difference {turn}: {note}", file=file)
    if report["differences"]:
        print(f"   rows differing: {len(report['differences'])}, of which {report['differences_explained_by_known']} "
              "in a dialogue holding a known text difference", file=file)  # fmt: skip
    for difference in report["differences"][:NUM_SHOWN]:
        print(f"   differs: {json.dumps(difference, ensure_ascii=False)}", file=file)
    if len(report["differences"]) > NUM_SHOWN:
        print(f"   ... {len(report['differences']) - NUM_SHOWN} more differences", file=file)


# --- a raw-layout stand-in for the release ---------------------------------------------------------------------------
def synthesize_release(csv_dir: Path, dump_dir: Path, output: Path) -> Path:
    """Write ``output/IEMOCAP_full_release`` (label and transcription files, no media) from the authors' CSVs and a
    dump of the transcription files' lines in file order; returns its path."""
    lines: dict[str, list[tuple[str, str]]] = defaultdict(list)  # dialogue -> (line id, text) in file order
    times: dict[str, tuple[float, float]] = {}
    for name in DUMP_FILES:
        with open(dump_dir / f"{name}_6way_utterances.csv", newline="", encoding="utf-8") as file:
            for row in csv.DictReader(file):
                lines[row["id"].rsplit("_", 1)[0]].append((row["id"], row["utterance"]))
        timed = dump_dir / f"{name}_6way_with_minus_one.csv"
        if timed.is_file():
            with open(timed, newline="", encoding="utf-8") as file:
                for row in csv.DictReader(file):
                    times[row["id"]] = (float(row["start"]), float(row["end"]))
    labels: dict[str, dict[str, tuple[str, float, float]]] = defaultdict(dict)  # dialogue -> turn -> label, times
    for file_name in CSV_FILES.values():
        rows, _ = read_authors_csv(csv_dir / file_name)
        for row in rows:
            turn = row["Speaker"]
            labels[turn.rsplit("_", 1)[0]][turn] = (row["Emotion"], float(row["Start_Time"]), float(row["End_Time"]))
    root = output / "IEMOCAP_full_release"
    missing = sorted(set(labels) - set(lines))
    if missing:
        raise SystemExit(f"The transcription dump lacks {len(missing)} dialogues of the CSVs: {missing[:5]}")
    for dialogue, dialogue_lines in sorted(lines.items()):
        session = root / f"Session{int(dialogue[3:5])}" / "dialog"
        (session / "transcriptions").mkdir(parents=True, exist_ok=True)
        (session / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        text = []
        for turn, utterance in dialogue_lines:
            start, end = labels[dialogue].get(turn, (None, *times.get(turn, (0.0, 0.0))))[1:]
            text.append(f"{turn} [{start:08.4f}-{end:08.4f}]: {utterance}")
        (session / "transcriptions" / f"{dialogue}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
        blocks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        numbered = sorted(turn for turn, _ in dialogue_lines if turn[-3:].isdigit())  # F turns, then M turns
        for turn in numbered:
            code, start, end = labels[dialogue].get(turn, ("xxx", *times.get(turn, (0.0, 0.0))))
            blocks += [f"[{start:.4f} - {end:.4f}]\t{turn}\t{code}\t[2.5000, 2.5000, 2.5000]", ""]
        (session / "EmoEvaluation" / f"{dialogue}.txt").write_text("\n".join(blocks) + "\n", encoding="utf-8")
    return root


# --- command line --------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv-dir", required=True, type=Path,
                        help="Folder of the authors' IEMOCAP_{train,dev,test}.csv.")
    parser.add_argument("--model-type", choices=MODEL_TYPES, help="Whose prompts the CSVs are compared as.")
    parser.add_argument("--data-dir", help="An IEMOCAP_full_release folder or a folder hf-erc prepare wrote.")
    parser.add_argument("--tokenizer", help="A folder with roberta-large's vocab.json and merges.txt.")
    parser.add_argument("--splits", nargs="+", choices=list(CSV_FILES), default=list(CSV_FILES))
    parser.add_argument("--json", type=Path, help="Also write the full report (every difference) here.")
    parser.add_argument("--synthesize-release", type=Path, metavar="OUT",
                        help="Write a raw-layout stand-in release under OUT (needs --transcription-dump) and stop.")
    parser.add_argument("--transcription-dump", type=Path, metavar="DIR",
                        help="Folder of {train,val,test}_6way_utterances.csv: every transcription line in file order.")
    return parser.parse_args(argv)  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.synthesize_release is not None:
        if args.transcription_dump is None:
            raise SystemExit("--synthesize-release needs --transcription-dump.")
        print(f"Wrote {synthesize_release(args.csv_dir, args.transcription_dump, args.synthesize_release)}")
        return 0
    if args.model_type is None or args.data_dir is None:
        raise SystemExit("--model-type and --data-dir are needed for a comparison.")
    tokenizer = AuthorsTokenizer(args.tokenizer, ADDED_MARKERS[args.model_type]) if args.tokenizer else None
    reports, differs = {}, False
    with tempfile.TemporaryDirectory() as work_dir:
        ours = loadable_tokenizer(args.tokenizer, Path(work_dir)) if args.tokenizer else None
        for split in args.splits:
            rows, reencoded = read_authors_csv(args.csv_dir / CSV_FILES[split])
            lines = hf_erc_inputs(args.model_type, args.data_dir, split, ours, Path(work_dir))
            report = compare_split(rows, lines, args.model_type, tokenizer)
            report["reencoded_u0092"] = reencoded
            print_report(split, report, reencoded)
            differs |= split_differs(report)
            reports[split] = report
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"model_type": args.model_type, "splits": reports}
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print("DIFFERENT" if differs else "IDENTICAL")
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())

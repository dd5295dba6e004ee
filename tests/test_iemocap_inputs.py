"""IEMOCAP reference prompts (issue 20): ``hf-erc show-inputs``' code on a raw-layout release against prompts derived
by hand from the authors' loop, and the comparison logic of scripts/compare_iemocap_inputs.py on CSVs written here.

The fixture (tests/utils/iemocap_release.py with the 12 reference validation dialogues) gives, with the reference
split, train = Ses01F_impro01, Ses01F_script01_1, Ses01M_impro02, Ses02F_impro01, Ses02M_script01_1b (name order)
and test = Ses05M_impro02, Ses05F_impro01 (the authors' test order). Turns follow the transcription files' lines
(Ses01F_impro01: F000, M000, F002, M001, F001 being ``xxx``; Ses05M_impro02: F000, M000, M001). The authors number
a dialogue's first turn against the table the previous dialogue of the file left, then empty it: TelME keys the
table by turn (the first dialogue of a file leaves one entry per turn, later ones one per turn but their first),
MAGTKD by the F/M letter.
"""

import csv
import json
from pathlib import Path

import pytest

from hf_erc.commands.show_inputs import show_inputs
from tests.utils.iemocap_release import REFERENCE_VALIDATION, make_release, release_with
from tests.utils.scripts import registered_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_iemocap_inputs.py"

# Derived by hand (see the module docstring); {split: {turn id: prompt}}.
EXPECTED = {
    "telme": {
        "train": {
            "Ses01F_impro01_F000": "<s1> Excuse me. </s> Now <s1> feels",
            "Ses01F_impro01_M001": "<s1> Excuse me. <s2> Do you have your forms? <s3> Café? [LAUGHTER] I waited. "
            "<s4> Let me see them. </s> Now <s4> feels",
            # First turn against the 4 entries Ses01F_impro01 left: <s5>; then the table starts again.
            "Ses01F_script01_1_M001": "<s5> Guess what! <s1> We won. </s> Now <s1> feels",
            "Ses01M_impro02_F000": "<s2> I lost it. </s> Now <s2> feels",
            "Ses01M_impro02_M000": "<s2> I lost it. <s1> Lost what? </s> Now <s1> feels",
            "Ses02F_impro01_M000": "<s2> Again? <s1> Sorry. </s> Now <s1> feels",
            "Ses02M_script01_1b_M001": "<s2> Hi. <s1> Hello! <s2> Ok. </s> Now <s2> feels",
        },
        "validation": {
            "Ses01M_impro01_F000": "<s1> Hello. </s> Now <s1> feels",
            "Ses01M_script03_1_M000": "<s3> Hello. <s1> Hi, Ses01M_script03_1. </s> Now <s1> feels",
            "Ses02F_impro02_M000": "<s2> Hello. <s1> Hi, Ses02F_impro02. </s> Now <s1> feels",
        },
        "test": {
            "Ses05M_impro02_F000": "<s1> Finally. </s> Now <s1> feels",
            "Ses05M_impro02_M001": "<s1> Finally. <s2> It's over. <s3> Late line. </s> Now <s3> feels",
            "Ses05F_impro01_F000": "<s4> Next. </s> Now <s4> feels",
            "Ses05F_impro01_M000": "<s4> Next. <s1> No. </s> Now <s1> feels",
        },
    },
    "magtkd": {
        "train": {
            "Ses01F_impro01_F000": "<s1> Excuse me. </s> Now<s1> feels",
            "Ses01F_impro01_M001": "<s1> Excuse me. <s2> Do you have your forms? <s1> Café? [LAUGHTER] I waited. "
            "<s2> Let me see them. </s> Now<s2> feels",
            # M is the table's second entry ([F, M]); then the table starts again with M alone.
            "Ses01F_script01_1_M001": "<s2> Guess what! <s1> We won. </s> Now<s1> feels",
            "Ses01M_impro02_F000": "<s2> I lost it. </s> Now<s2> feels",
            "Ses01M_impro02_M000": "<s2> I lost it. <s1> Lost what? </s> Now<s1> feels",
            "Ses02F_impro01_M000": "<s2> Again? <s1> Sorry. </s> Now<s1> feels",
            # M opens the dialogue and is the carried table's only entry: two speakers both write <s1>.
            "Ses02M_script01_1b_M001": "<s1> Hi. <s1> Hello! <s2> Ok. </s> Now<s2> feels",
        },
        "validation": {
            "Ses01M_impro01_F000": "<s1> Hello. </s> Now<s1> feels",
            "Ses01M_script03_1_M000": "<s1> Hello. <s1> Hi, Ses01M_script03_1. </s> Now<s1> feels",
        },
        "test": {
            "Ses05M_impro02_F000": "<s1> Finally. </s> Now<s1> feels",
            "Ses05M_impro02_M001": "<s1> Finally. <s2> It's over. <s2> Late line. </s> Now<s2> feels",
            "Ses05F_impro01_F000": "<s1> Next. </s> Now<s1> feels",
            "Ses05F_impro01_M000": "<s1> Next. <s1> No. </s> Now<s1> feels",
        },
    },
}
TRAIN_ORDER = [
    "Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_F002", "Ses01F_impro01_M001",
    "Ses01F_script01_1_M000", "Ses01F_script01_1_M001", "Ses01M_impro02_F000", "Ses01M_impro02_M000",
    "Ses02F_impro01_F000", "Ses02F_impro01_M000", "Ses02M_script01_1b_M000", "Ses02M_script01_1b_F000",
    "Ses02M_script01_1b_M001",
]  # fmt: skip
TEST_ORDER = [
    "Ses05M_impro02_F000", "Ses05M_impro02_M000", "Ses05M_impro02_M001", "Ses05F_impro01_F000", "Ses05F_impro01_M000",
]  # fmt: skip


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("iemocap_inputs"), release_with(REFERENCE_VALIDATION), media=False)


@pytest.fixture(scope="module")
def compare():
    with registered_script(SCRIPT) as module:
        yield module


def shown(raw, tmp_path, model_type, split):
    output = tmp_path / f"{model_type}-{split}.jsonl"
    show_inputs(
        model_type, "iemocap", str(raw), split, str(output), preprocessing="reference", with_media=False,
        validation_split="reference",
    )  # fmt: skip
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("model_type", ["telme", "magtkd"])
def test_show_inputs_writes_the_authors_iemocap_prompts(raw, tmp_path, model_type):
    for split, expected in EXPECTED[model_type].items():
        lines = shown(raw, tmp_path, model_type, split)
        prompts = {line["utterance_id"]: line["prompt"] for line in lines}
        assert {turn: prompts[turn] for turn in expected} == expected, split
        if split == "train":
            assert [line["utterance_id"] for line in lines] == TRAIN_ORDER
        if split == "test":
            assert list(prompts) == TEST_ORDER


CSV_HEADER = ["Utterance", "Speaker", "Dialogue_ID", "Start_Time", "End_Time", "Wav_Path", "Video_Path", "Emotion"]
TEST_ROWS = [
    ("Finally.", "Ses05M_impro02_F000", "hap"), ("It's over.", "Ses05M_impro02_M000", "sad"),
    ("Late line.", "Ses05M_impro02_M001", "neu"), ("Next.", "Ses05F_impro01_F000", "neu"),
    ("No.", "Ses05F_impro01_M000", "ang"),
]  # fmt: skip


def write_test_csv(folder: Path, rows):
    """A TelME-style IEMOCAP_test.csv of ``rows`` (text, turn id, label) in the given order."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "IEMOCAP_test.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_HEADER)
        for text, turn, label in rows:
            dialogue = turn.rsplit("_", 1)[0]
            writer.writerow([text, turn, dialogue, 0.0, 1.0, f"{turn}.wav", f"{dialogue}.avi", label])
    return folder


def test_the_script_restates_the_authors_loop(compare):
    rows = [dict(zip(CSV_HEADER, [text, turn, turn.rsplit("_", 1)[0]])) for text, turn, _ in TEST_ROWS]
    for model_type in ("telme", "magtkd"):
        prompts = compare.authors_prompts(rows, model_type)
        assert list(prompts) == TEST_ORDER
        assert {turn: prompts[turn] for turn in EXPECTED[model_type]["test"]} == EXPECTED[model_type]["test"]


def test_the_script_finds_no_difference_then_a_planted_one(compare, raw, tmp_path, capsys):
    same = write_test_csv(tmp_path / "same", TEST_ROWS)
    arguments = ["--model-type", "telme", "--data-dir", str(raw), "--splits", "test"]
    assert compare.main(["--csv-dir", str(same), *arguments]) == 0
    out = capsys.readouterr().out
    assert "prompts equal 5/5" in out and out.rstrip().endswith("IDENTICAL")

    # A re-encoded quote is normalised (to ’, which this release does not have) and counted; a changed text and an
    # extra row are named.
    planted = [*TEST_ROWS[:1], ("It\u0092s over.", "Ses05M_impro02_M000", "sad"), *TEST_ROWS[2:4]]
    planted += [("No!", "Ses05F_impro01_M000", "ang"), ("Bye.", "Ses05F_impro01_M001", "neu")]
    report_path = tmp_path / "report.json"
    folder = write_test_csv(tmp_path / "planted", planted)
    assert compare.main(["--csv-dir", str(folder), *arguments, "--json", str(report_path)]) == 1
    out = capsys.readouterr().out
    assert "prompts equal 2/5" in out and "U+0092 normalised to U+2019 in the CSV texts: 1" in out
    assert "only in the CSV: 1: Ses05F_impro01_M001" in out
    assert "texts differing: 2: Ses05M_impro02_M000, Ses05F_impro01_M000" in out
    report = json.loads(report_path.read_text(encoding="utf-8"))["splits"]["test"]
    differences = {difference["utterance_id"]: difference for difference in report["differences"]}
    assert list(differences) == ["Ses05M_impro02_M000", "Ses05M_impro02_M001", "Ses05F_impro01_M000"]
    assert differences["Ses05M_impro02_M000"]["authors"].endswith("<s2> It\u2019s over. </s> Now <s2> feels")
    assert differences["Ses05F_impro01_M000"]["authors"].endswith("<s4> Next. <s1> No! </s> Now <s1> feels")
    assert differences["Ses05F_impro01_M000"]["hf_erc"].endswith("<s4> Next. <s1> No. </s> Now <s1> feels")


def test_the_script_tokenizes_as_the_authors_slow_tokenizer(compare, tmp_path):
    """Markers drop the spaces next to them, ``</s>`` keeps them (a lone space is the token ``Ġ``), <mask> ends."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "Ġ": 5, "H": 6, "i": 7, "Hi": 8, "N": 9}
    vocab |= {"o": 10, "w": 11, "ĠN": 12, "ĠNo": 13, "ĠNow": 14, "<": 15, "s": 16, "2": 17, "0": 18, ">": 19}
    vocab |= {"Ġ<": 20}
    merges = ["H i", "Ġ N", "ĠN o", "ĠNo w", "Ġ <"]
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = compare.AuthorsTokenizer(tmp_path)
    s1 = len(vocab)  # <s1>, the first added token
    assert tokenizer("<s1> Hi </s> Now <s1> Hi") == [s1, 8, 5, 2, 14, s1, 8, 4]
    # <s20> is not one of their tokens: plain text, its space kept.
    assert tokenizer("Hi <s20>") == [8, 20, 16, 17, 18, 19, 4]
    # MAGTKD's data tokenizer adds no marker: <s1> is plain text too (its "1" is unknown to this vocabulary).
    assert compare.AuthorsTokenizer(tmp_path, markers=())("Hi <s1>") == [8, 20, 16, 3, 19, 4]


def test_show_inputs_writes_the_token_ids_with_a_tokenizer(raw, tmp_path):
    """With a tokenizer each line has the ids the text model reads: the processor's, ending with <mask>."""
    from hf_erc.commands.show_inputs import placeholder_tokenizer

    tokenizer = placeholder_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    output = tmp_path / "test.jsonl"
    show_inputs(
        "telme", "iemocap", str(raw), "test", str(output), preprocessing="reference",
        tokenizer=str(tmp_path / "tokenizer"), with_media=False, validation_split="reference",
    )  # fmt: skip
    line = json.loads(output.read_text(encoding="utf-8").splitlines()[4])
    assert line["utterance_id"] == "Ses05F_impro01_M000"
    assert line["prompt"] == EXPECTED["telme"]["test"]["Ses05F_impro01_M000"]
    # <s4> Next. <s1> No. </s> Now <s1> feels: markers are added tokens (ids 5.. after the 5 of the placeholder), words
    # unknown to it, spaces around the markers dropped; then <mask>.
    unk, sep, mask, s1, s4 = 3, 2, 4, 5, 8
    assert line["input_ids"] == [s4, unk, s1, unk, sep, unk, s1, unk, mask]
    assert line["num_tokens"] == len(line["input_ids"])

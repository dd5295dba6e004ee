"""Tests for dialogue grouping, dialogue context and the two collators."""

from __future__ import annotations

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, List, Value

from hf_erc.data.collators import TELME_SPEAKER_TOKENS, DialogueCollator, PromptCollator, first_appearance_ids
from hf_erc.data.dialogues import add_dialogue_context, group_dialogues
from hf_erc.data.errors import DataFormatError


def _utterances(rows):
    """An utterance-level dataset in the data contract's shape (only the columns these tests need)."""
    features = Features(
        {
            "dialogue_id": Value("string"),
            "turn": Value("int32"),
            "speaker": Value("string"),
            "text": Value("string"),
            "emotion": ClassLabel(names=["neutral", "joy", "anger"]),
            "text_features": List(Value("float32")),
            "audio_features": List(Value("float32")),
        }
    )
    columns = {name: [row[name] for row in rows] for name in features}
    return Dataset.from_dict(columns, features=features)


def _row(dialogue, turn, speaker, text, emotion, audio=True):
    return {
        "dialogue_id": dialogue,
        "turn": turn,
        "speaker": speaker,
        "text": text,
        "emotion": emotion,
        "text_features": [float(turn), 1.0, 2.0, 3.0],
        "audio_features": [10.0 + turn, -1.0] if audio else None,
    }


@pytest.fixture
def utterances():
    return _utterances(
        [
            _row("d1", 0, "Ross", "hi there", 0),
            _row("d1", 1, "Rachel", "hello", 1),
            _row("d1", 2, "Ross", "how are you", 2, audio=False),
            _row("d2", 0, "Joey", "pizza", 1),
            _row("d2", 1, "Chandler", "again", 0),
            _row("d2", 2, "Monica", "no", 2),
            _row("d2", 3, "Joey", "yes", 0),
            _row("d3", 0, "Phoebe", "smelly cat", 1),
        ]
    )


def test_group_dialogues(utterances):
    grouped = group_dialogues(utterances)
    assert grouped["dialogue_id"] == ["d1", "d2", "d3"]
    assert grouped["length"] == [3, 4, 1]
    assert grouped["speaker"][1] == ["Joey", "Chandler", "Monica", "Joey"]
    assert grouped["turn"][0] == [0, 1, 2]
    assert grouped["audio_features"][0] == [[10.0, -1.0], [11.0, -1.0], None]
    assert grouped.features["emotion"] == List(ClassLabel(names=["neutral", "joy", "anger"]))
    assert grouped.features["text_features"] == List(List(Value("float32")))
    only = group_dialogues(utterances, columns=["speaker", "emotion"])
    assert only.column_names == ["dialogue_id", "speaker", "emotion", "length"]
    # Works on a view (select/shuffle keep an indices mapping).
    view = group_dialogues(utterances.select([3, 4, 5, 6, 7]))
    assert view["dialogue_id"] == ["d2", "d3"] and view["text"][0] == ["pizza", "again", "no", "yes"]


def test_group_dialogues_rejects_bad_order(utterances):
    with pytest.raises(DataFormatError, match="'d1' are not contiguous"):
        group_dialogues(utterances.select([0, 1, 3, 2]))
    with pytest.raises(DataFormatError, match="'d2' has turn 1 at row 3 after turn 3"):
        group_dialogues(utterances.select([3, 5, 6, 4]))
    with pytest.raises(DataFormatError, match="no rows"):
        group_dialogues(utterances.select([]))
    empty_id = _utterances([_row("d1", 0, "a", "x", 0), _row("", 0, "b", "y", 1)])
    with pytest.raises(DataFormatError, match="row 1 has an empty dialogue_id"):
        group_dialogues(empty_id)


def test_add_dialogue_context(utterances):
    with_context = add_dialogue_context(utterances)
    assert with_context["context_texts"][:3] == [[], ["hi there"], ["hi there", "hello"]]
    assert with_context["context_speakers"][6] == ["Joey", "Chandler", "Monica"]
    assert with_context["context_texts"][7] == []
    recent = add_dialogue_context(utterances, max_context_turns=1)
    assert recent["context_texts"][5:7] == [["again"], ["no"]]
    assert add_dialogue_context(utterances, max_context_turns=0)["context_texts"][2] == []
    # On a view the context starts at the first selected turn.
    assert add_dialogue_context(utterances.select([5, 6, 7]).select([0, 1]))["context_texts"] == [[], ["no"]]
    with pytest.raises(DataFormatError, match="not contiguous"):
        add_dialogue_context(utterances.select([0, 3, 1]))


def test_dialogue_collator_batch(utterances):
    grouped = group_dialogues(utterances)
    rows = [grouped[0], grouped[1], grouped[2]]
    rows[2] = {**rows[2], "emotion": [None]}  # an unlabelled turn
    batch = DialogueCollator()(rows)

    assert set(batch) == {"text_features", "audio_features", "attention_mask", "speaker_ids", "modality_mask", "labels"}
    assert batch["text_features"].shape == (3, 4, 4) and batch["text_features"].dtype == torch.float32
    assert batch["audio_features"].shape == (3, 4, 2)
    torch.testing.assert_close(batch["text_features"][0, 2], torch.tensor([2.0, 1.0, 2.0, 3.0]))
    assert torch.equal(batch["text_features"][0, 3], torch.zeros(4))  # padding
    assert torch.equal(batch["audio_features"][0, 2], torch.zeros(2))  # missing audio
    torch.testing.assert_close(batch["audio_features"][1, 3], torch.tensor([13.0, -1.0]))
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert batch["attention_mask"].dtype == torch.long
    assert batch["modality_mask"].dtype == torch.bool and batch["modality_mask"].shape == (3, 4, 3)
    assert batch["modality_mask"][0].tolist() == [
        [True, True, False],
        [True, True, False],
        [True, False, False],  # text yes, audio missing, video not collated
        [False, False, False],
    ]
    assert batch["speaker_ids"].tolist() == [[0, 1, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[0, 1, 2, -100], [1, 0, 2, 0], [-100, -100, -100, -100]]


def test_dialogue_collator_options(utterances):
    rows = list(group_dialogues(utterances))
    batch = DialogueCollator(modalities=["audio"], pad_to_multiple_of=8, num_speakers=2, speaker_pad_id=9)(rows)
    assert set(batch) == {"audio_features", "attention_mask", "speaker_ids", "modality_mask", "labels"}
    assert batch["audio_features"].shape == (3, 8, 2)
    assert batch["modality_mask"][..., 0].sum() == 0 and batch["modality_mask"][..., 1].sum() == 7
    assert batch["speaker_ids"][1].tolist() == [0, 1, 1, 0, 9, 9, 9, 9]  # Monica clamped to 1

    truncated = DialogueCollator(max_turns=2)(rows)
    assert truncated["text_features"].shape == (3, 2, 4)
    assert truncated["labels"].tolist() == [[0, 1], [1, 0], [1, -100]]

    vocab = {"Ross": 0, "Rachel": 1, "Joey": 2, "Chandler": 3, "Monica": 4}
    with pytest.raises(DataFormatError, match=r"dialogue d3, turn 0: speaker 'Phoebe' is not in speaker_vocab"):
        DialogueCollator(speaker_vocab=vocab)(rows)
    # The error names the setting and the values that give unknown speakers a row of their own.
    with pytest.raises(DataFormatError, match=r"config_overrides: \{num_speakers: 8, unknown_speaker_id: 7\}"):
        DialogueCollator(speaker_vocab=vocab, num_speakers=7)(rows)
    batch = DialogueCollator(speaker_vocab=vocab, unknown_speaker_id=5)(rows)
    assert batch["speaker_ids"][:, 0].tolist() == [0, 2, 5]
    with pytest.raises(ValueError, match="do not fit num_speakers=3"):
        DialogueCollator(speaker_vocab=vocab, num_speakers=3)

    numpy_rows = list(group_dialogues(utterances).with_format("numpy"))
    numpy_batch = DialogueCollator()(numpy_rows)
    reference = DialogueCollator()(rows)
    for name in reference:
        assert torch.equal(numpy_batch[name], reference[name]), name


def test_dialogue_collator_wrong_dim(utterances):
    rows = list(group_dialogues(utterances))
    rows[1] = {**rows[1], "audio_features": [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0, 3.0], [1.0, 2.0]]}
    with pytest.raises(DataFormatError, match=r"dialogue d2, turn 2: audio feature has size 3, expected 2"):
        DialogueCollator()(rows)
    with pytest.raises(DataFormatError, match=r"dialogue d1, turn 0: text feature has size 4, expected 5"):
        DialogueCollator(feature_dims={"text": 5})(rows)
    uniform = [{**row, "audio_features": [[0.0] * 3] * row["length"]} for row in rows]
    with pytest.raises(DataFormatError, match=r"dialogue d1, turn 0: audio feature has size 3, expected 2"):
        DialogueCollator(feature_dims={"audio": 2})(uniform)
    no_audio = [{**row, "audio_features": [None] * row["length"]} for row in rows]
    with pytest.raises(DataFormatError, match="pass feature_dims"):
        DialogueCollator()(no_audio)
    assert DialogueCollator(feature_dims={"audio": 2})(no_audio)["modality_mask"][..., 1].sum() == 0
    with pytest.raises(DataFormatError, match="disagree on the number of turns"):
        DialogueCollator()([{**rows[0], "speaker": ["a"]}])


def test_first_appearance_ids():
    assert first_appearance_ids(["b", "a", "b", "c", "a"]).tolist() == [0, 1, 0, 2, 1]
    assert first_appearance_ids([]).tolist() == []


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "<mask>", *TELME_SPEAKER_TOKENS]
    words += "Now feels hi there hello how are you pizza again no yes smelly cat".split()
    backend = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(TELME_SPEAKER_TOKENS)})
    return tokenizer


def _prompt_collator(**processor_fields):
    """A PromptCollator over a TelMEProcessor with the word-level tokenizer (the reference's audio and video
    preprocessors, unused here)."""
    from hf_erc.models import TelMEProcessor
    from hf_erc.models.telme.processing_telme import reference_audio_feature_extractor, reference_image_processor

    processor = TelMEProcessor(
        _tiny_tokenizer(), reference_audio_feature_extractor(16000), reference_image_processor(32), **processor_fields
    )
    return PromptCollator(processor)


def test_prompt_collator_telme_format(utterances):
    collator = _prompt_collator()
    tokenizer = collator.processor.tokenizer
    rows = list(add_dialogue_context(utterances))
    assert collator.processor.render_row(rows[2]) == "<s1> hi there <s2> hello <s1> how are you </s> Now <s1> feels"
    assert collator.processor.render_row(rows[5]) == "<s1> pizza <s2> again <s3> no </s> Now <s3> feels"

    batch = collator([rows[0], rows[2], rows[7]])
    assert set(batch) == {"input_ids", "attention_mask", "prompt_positions", "labels"}
    expected = [
        tokenizer.convert_tokens_to_ids(text.split()) + [tokenizer.mask_token_id]
        for text in (
            "<s1> hi there </s> Now <s1> feels",
            "<s1> hi there <s2> hello <s1> how are you </s> Now <s1> feels",
            "<s1> smelly cat </s> Now <s1> feels",
        )
    ]
    width = max(map(len, expected))
    assert batch["input_ids"].shape == (3, width)
    for index, ids in enumerate(expected):  # left padding, as TelME
        padded = [tokenizer.pad_token_id] * (width - len(ids)) + ids
        assert batch["input_ids"][index].tolist() == padded
        assert batch["attention_mask"][index].tolist() == [0] * (width - len(ids)) + [1] * len(ids)
    assert batch["prompt_positions"].tolist() == [width - 1] * 3
    assert (batch["input_ids"][torch.arange(3), batch["prompt_positions"]] == tokenizer.mask_token_id).all()
    assert batch["labels"].tolist() == [0, 2, 1]


def test_prompt_collator_left_truncation_keeps_prompt(utterances):
    collator = _prompt_collator(max_length=10, pad_to_multiple_of=4)
    tokenizer = collator.processor.tokenizer
    row = list(add_dialogue_context(utterances))[6]  # 3 context turns before "Joey: yes"
    batch = collator([row, {**row, "turn": 0, "context_speakers": [], "context_texts": [], "emotion": -1}])
    # "<s1> pizza <s2> again <s3> no <s1> yes </s> Now <s1> feels" is 12 tokens: the oldest 3 go,
    # 9 stay, then the mask; left padding up to 12 (10 rounded up to a multiple of 4).
    assert tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist()) == [
        "<pad>", "<pad>", "again", "<s3>", "no", "<s1>", "yes", "</s>", "Now", "<s1>", "feels", "<mask>"
    ]  # fmt: skip
    assert batch["input_ids"].shape == (2, 12)
    assert batch["attention_mask"][0].tolist() == [0] * 2 + [1] * 10
    assert batch["prompt_positions"].tolist() == [11, 11]
    assert batch["input_ids"][1, batch["prompt_positions"][1]] == tokenizer.mask_token_id
    assert batch["labels"].tolist() == [0, -100]
    with pytest.raises(DataFormatError, match="with_dialogue_context"):
        collator([utterances[0]])

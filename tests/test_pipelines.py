"""Inference on raw conversations, and the README's main job (quickstart) on real MELD text."""

from __future__ import annotations

import json
import re

import pytest
import torch

from hf_erc.labels import MELD_EMOTIONS
from hf_erc.models import SDTConfig, SDTForEmotionRecognition
from hf_erc.inference.pipelines import EmotionRecognitionPipeline, pipeline, read_conversation
from hf_erc.commands.predict import format_predictions
from hf_erc.commands.quickstart import SAMPLE_CONVERSATION, run_quickstart




def test_pipeline_labels_every_utterance(text_only_checkpoint):
    predictions = pipeline(str(text_only_checkpoint), device="cpu")(SAMPLE_CONVERSATION)
    conversation = json.loads(SAMPLE_CONVERSATION.read_text())["utterances"]
    assert [p["text"] for p in predictions] == [u["text"] for u in conversation]
    for item in predictions:
        assert set(item["probabilities"]) == set(MELD_EMOTIONS)
        assert sum(item["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert item["emotion"] == max(item["probabilities"], key=item["probabilities"].get)
    table = format_predictions(predictions)
    assert table.count("\n") == len(conversation)


def test_pipeline_matches_the_model_on_collated_features(text_only_checkpoint):
    """The pipeline is exactly: encode texts, collate one dialogue, run the model, softmax."""
    from hf_erc.data.collators import DialogueCollator

    pipe = EmotionRecognitionPipeline.from_pretrained(str(text_only_checkpoint), device="cpu")
    utterances = [{"speaker": "A", "text": "I can't believe it!"}, {"speaker": "B", "text": "Calm down."}, {"speaker": "A", "text": "No!"}]
    predictions = pipe({"utterances": utterances})
    features = pipe.encoders["text"].encode([u["text"] for u in utterances])
    batch = DialogueCollator(modalities=["text"], num_speakers=9, label_column=None)(
        [{"speaker": [u["speaker"] for u in utterances], "text_features": list(features)}]
    )
    with torch.no_grad():
        expected = pipe.model(**batch).logits.softmax(-1)[0]
    got = torch.tensor([[p["probabilities"][name] for name in MELD_EMOTIONS] for p in predictions])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_batch_of_conversations_gets_the_labels_of_each_conversation_alone(text_only_checkpoint):
    """A list of conversations of different lengths is labelled together: their texts in one call of the text encoder
    (batched by token count across conversations), the conversations in padded batches of the dialogue model. Each
    gets the labels and probabilities it gets alone."""
    labeller = pipeline(str(text_only_checkpoint), device="cpu")
    labeller.dialogue_batch_size = 2  # several padded batches, each of conversations of different lengths
    utterances = json.loads(SAMPLE_CONVERSATION.read_text())["utterances"]
    conversations = [
        {"utterances": utterances},
        {"utterances": utterances[:1]},
        {"utterances": utterances[2:5]},  # texts the first conversation has too
        [{"speaker": "Zoe", "text": "Wait, you're telling me that the whole trip was cancelled and nobody told me?"},
         {"speaker": "Max", "text": "Yes."}],
    ]  # fmt: skip
    alone = [labeller(conversation) for conversation in conversations]
    encoded = []
    encode = labeller.encoders["text"].encode
    labeller.encoders["text"].encode = lambda texts: encoded.append(list(texts)) or encode(texts)
    together = labeller(conversations)
    texts = [[row["text"] for row in rows] for rows in alone]
    assert encoded == [[text for conversation in texts for text in conversation]]  # one call for the whole batch
    assert [[row["text"] for row in rows] for rows in together] == texts
    for rows_together, rows_alone in zip(together, alone):
        for row_together, row_alone in zip(rows_together, rows_alone):
            assert row_together["emotion"] == row_alone["emotion"]
            assert row_together["probabilities"] == pytest.approx(row_alone["probabilities"], abs=1e-6)


def test_conversation_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_conversation(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_conversation(bad)
    with pytest.raises(ValueError, match="non-empty list"):
        read_conversation({"utterances": []})
    with pytest.raises(ValueError, match="utterance 1 needs"):
        read_conversation([{"speaker": "A", "text": "hi"}, {"text": "no speaker"}])


def test_our_checkpoints_load_with_hf_erc_classes_without_remote_code(text_only_checkpoint):
    """hf_erc's model types never need trust_remote_code: the pipeline's default loads the package's own class,
    not the code the checkpoint ships beside its weights."""
    labeller = pipeline(str(text_only_checkpoint), device="cpu")
    assert type(labeller.model) is SDTForEmotionRecognition
    assert (text_only_checkpoint / "modeling_sdt.py").is_file()  # shipped, and not used


def test_checkpoint_without_encoder_record_is_refused(tmp_path):
    SDTForEmotionRecognition(SDTConfig.for_dataset("meld", modalities=["text"], text_dim=8, hidden_size=8, num_attention_heads=2)).save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="feature_encoders.json"):
        pipeline(str(tmp_path))


def test_predict_command(text_only_checkpoint, capsys):
    from hf_erc.cli import main

    assert main(["predict", str(SAMPLE_CONVERSATION), "--model", str(text_only_checkpoint), "--json", "--device", "cpu"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert len(output) == 8 and output[0]["speaker"] == "Maya"


@pytest.mark.slow
def test_quickstart_on_real_meld(meld_csv_dir, tmp_path, capsys):
    """The README's main job, shortened (MiniLM fine-tuned on the first 80 training dialogues, chosen on the first
    20 validation dialogues, SDT for 1 epoch, tested on the first 60 test dialogues), on the real MELD CSVs."""
    from tests.utils.meld_files import write_meld_subset

    meld = write_meld_subset(meld_csv_dir, tmp_path / "meld", {"train_sent_emo.csv": 80, "dev_sent_emo.csv": 20, "test_sent_emo.csv": 60})
    test_metrics = run_quickstart(str(meld), str(tmp_path), epochs=1, train_overrides={"disable_tqdm": True})
    output = capsys.readouterr().out
    last_line = output.strip().splitlines()[-1]
    assert re.fullmatch(r"MELD test weighted F1 \d+\.\d\d, accuracy \d+\.\d\d", last_line), last_line
    assert f"{100 * test_metrics['weighted_f1']:.2f}" in last_line and "Test macro F1" in output
    # The fine-tuned encoder travels inside the checkpoint, and the pipeline labelled the sample with it.
    assert (tmp_path / "minilm-meld" / "fine_tuning.json").is_file()
    assert (tmp_path / "sdt-meld-text" / "text_encoder" / "model.safetensors").is_file()
    assert "max |logits difference| vs. hf_erc = 0.00e+00" in output
    assert "transformers_modules" in output  # loaded through the checkpoint's own code
    results = json.loads((tmp_path / "sdt-meld-text" / "all_results.json").read_text())
    assert results["test_num_utterances"] == 537  # every utterance of the 60 real test dialogues
    assert 0.0 < test_metrics["weighted_f1"] <= 1.0
    checkpoint = tmp_path / "sdt-meld-text"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "modeling_sdt.py").is_file()
    assert (checkpoint / "feature_encoders.json").is_file() and (checkpoint / "README.md").is_file()
    assert not (checkpoint / "training_args.bin").exists() and not list(checkpoint.glob("*.bin"))
    for name in json.loads(SAMPLE_CONVERSATION.read_text())["utterances"][:2]:
        assert name["text"][:40] in output


def test_processor_pipeline_labels_raw_media_as_training_reads_them(tmp_path):
    """A TelME checkpoint saved with its processor: the pipeline decodes each clip through the processor's rules
    (frames, audio window) and gives the model's own probabilities for those inputs."""
    import torch

    from hf_erc.data.collators import MediaCollator
    from hf_erc.models import TelMEForEmotionRecognition
    from hf_erc.inference.pipelines import ProcessorPipeline
    from tests.utils.media_fixtures import write_mp4
    from tests.utils.tiny_telme import tiny_config, tiny_processor

    torch.manual_seed(0)
    model = TelMEForEmotionRecognition(tiny_config()).eval()
    processor = tiny_processor(max_audio_seconds=0.5)
    model.save_pretrained(tmp_path / "telme")
    processor.save_pretrained(tmp_path / "telme")
    clips = [write_mp4(tmp_path / f"clip{index}.mp4", seconds=1.0, fps=10, size=(32, 40)) for index in range(2)]
    conversation = {
        "utterances": [
            {"speaker": "Joey", "text": "hi there", "audio": clips[0], "video": clips[0]},
            {"speaker": "Ross", "text": "hello", "video": clips[1]},
            {"speaker": "Joey", "text": "how are you"},
        ]
    }
    labelled = pipeline(str(tmp_path / "telme"), device="cpu")
    assert isinstance(labelled, ProcessorPipeline)
    # hf_erc's own classes, though model and processor ship their code: no remote code by default.
    assert type(labelled.model) is TelMEForEmotionRecognition and type(labelled.processor) is type(processor)
    results = labelled(conversation)
    assert [item["speaker"] for item in results] == ["Joey", "Ross", "Joey"]

    audio = MediaCollator("audio", processor).decode({"media_path": clips[0], "media_start": None, "media_end": None})
    video = MediaCollator("video", processor)
    frames = [video.decode({"media_path": path, "media_start": None, "media_end": None}) for path in clips]
    inputs = processor(
        speakers=["Joey", "Ross", "Joey"], texts=["hi there", "hello", "how are you"], audio=[audio, None, None],
        videos=[frames[0], frames[1], None], sampling_rate=processor.audio_sampling_rate,
    )  # fmt: skip
    assert inputs["modality_mask"].tolist() == [[True, True, True], [True, False, True], [True, False, False]]
    with torch.no_grad():
        expected = model(**inputs).logits.softmax(-1)
    for item, row in zip(results, expected):
        assert item["probabilities"] == pytest.approx({model.config.id2label[i]: float(p) for i, p in enumerate(row)}, abs=1e-6)


def test_stream_labels_each_utterance_as_it_arrives(tmp_path):
    """TelME reads only the past (its prompt is the dialogue so far, its media the utterance's own): streamed labels
    equal those of the whole conversation labelled at once, and each clip is decoded once."""
    from hf_erc.models import TelMEForEmotionRecognition
    from hf_erc.inference.pipelines import ProcessorPipeline
    from tests.utils.media_fixtures import write_mp4
    from tests.utils.tiny_telme import tiny_config, tiny_processor

    torch.manual_seed(0)
    labeller = ProcessorPipeline(TelMEForEmotionRecognition(tiny_config()).eval(), tiny_processor(max_audio_seconds=0.5))
    clip = write_mp4(tmp_path / "clip.mp4", seconds=1.0, fps=10, size=(32, 40))
    utterances = [
        {"speaker": "Joey", "text": "hi there", "audio": clip, "video": clip},
        {"speaker": "Ross", "text": "hello"},
        {"speaker": "Joey", "text": "how are you", "video": clip},
        {"speaker": "Rachel", "text": "pizza again"},
    ]
    whole = labeller({"utterances": utterances})
    decoded = []
    original = labeller.media["video"].decode
    labeller.media["video"].decode = lambda row: decoded.append(row["media_path"]) or original(row)
    streamed = list(labeller.stream(iter(utterances)))
    assert len(decoded) == 2  # each utterance's clip once, when it arrived
    for online, offline in zip(streamed, whole):
        assert online["emotion"] == offline["emotion"]
        assert online["probabilities"] == pytest.approx(offline["probabilities"], abs=1e-5)


def test_predict_online_prints_one_line_per_utterance(text_only_checkpoint, capsys):
    from hf_erc.cli import main

    arguments = ["predict", str(SAMPLE_CONVERSATION), "--model", str(text_only_checkpoint), "--device", "cpu"]
    assert main(arguments + ["--online", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    conversation = json.loads(SAMPLE_CONVERSATION.read_text())["utterances"]
    assert [line["text"] for line in lines] == [u["text"] for u in conversation]
    # Online, the first utterance is labelled from itself alone: as the whole pipeline labels a one-turn dialogue.
    alone = pipeline(str(text_only_checkpoint), device="cpu")({"utterances": conversation[:1]})[0]
    assert lines[0]["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-5)


def test_stream_with_a_causal_checkpoint_gives_the_whole_conversation_s_labels(tmp_path):
    """A causal SDT (`causal=True`) labels each turn from the turns up to it: streamed one utterance at a time, it
    gives the labels and probabilities of the whole conversation labelled at once (text features reused)."""
    from hf_erc.features.encoders import TextEncoder
    from hf_erc.features.extract import save_encoder_specs

    torch.manual_seed(0)
    config = SDTConfig.for_dataset(
        "meld", modalities=["text"], text_dim=384, hidden_size=32, num_attention_heads=2, causal=True
    )
    SDTForEmotionRecognition(config).save_pretrained(tmp_path)
    save_encoder_specs({"text": TextEncoder("minilm").spec}, tmp_path)
    labeller = pipeline(str(tmp_path), device="cpu")
    utterances = json.loads(SAMPLE_CONVERSATION.read_text())["utterances"]
    whole = labeller({"utterances": utterances})
    encoded = []
    original = labeller.encoders["text"].encode
    labeller.encoders["text"].encode = lambda texts, **kwargs: encoded.extend(texts) or original(texts, **kwargs)
    streamed = list(labeller.stream(utterances))
    assert encoded == [u["text"] for u in utterances]  # each text encoded once, when it arrived
    assert [row["emotion"] for row in streamed] == [row["emotion"] for row in whole]
    for online, offline in zip(streamed, whole):
        assert online["probabilities"] == pytest.approx(offline["probabilities"], abs=1e-5)


def test_a_meld_folder_the_user_names_is_the_one_used(meld_csv_dir, tmp_path, monkeypatch, capsys):
    """`--meld-dir` (or $HF_ERC_MELD_DIR) that lacks the CSVs stops the quickstart with an error naming it, even
    though another MELD copy (../shared/data/meld) is there to be found; the search runs only when nothing is named."""
    from hf_erc.cli import main
    from hf_erc.commands.quickstart import find_meld_dir

    monkeypatch.delenv("HF_ERC_MELD_DIR", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "meld").symlink_to(meld_csv_dir, target_is_directory=True)
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    assert (find_meld_dir() / "train_sent_emo.csv").is_file()  # a copy the search finds (../shared/data/meld)
    missing = tmp_path / "nonexistent"
    with pytest.raises(FileNotFoundError, match=rf"--meld-dir {re.escape(str(missing))} has no train_sent_emo.csv"):
        find_meld_dir(str(missing))
    assert main(["quickstart", "--meld-dir", str(missing), "--output-dir", str(tmp_path / "out")]) != 0
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran
    monkeypatch.setenv("HF_ERC_MELD_DIR", str(missing))
    with pytest.raises(FileNotFoundError, match=r"\$HF_ERC_MELD_DIR .* has no train_sent_emo.csv"):
        find_meld_dir()
    monkeypatch.setenv("HF_ERC_MELD_DIR", str(meld_csv_dir))
    assert find_meld_dir() == meld_csv_dir
    assert find_meld_dir(str(meld_csv_dir)) == meld_csv_dir


@pytest.mark.slow
def test_quickstart_on_an_iemocap_release(tmp_path, capsys):
    """`hf-erc quickstart --dataset iemocap --data-dir IEMOCAP_full_release`, shortened (1 epoch), on a raw-layout
    release: the authors' split is prepared once, MiniLM is fine-tuned on its training turns, text-only SDT trains on
    the features, the checkpoint reloads without hf_erc, and the last line gives the IEMOCAP test scores."""
    from hf_erc.cli import main
    from hf_erc.labels import IEMOCAP_EMOTIONS
    from tests.utils.iemocap_release import REFERENCE_VALIDATION, make_release, release_with

    raw = make_release(tmp_path / "raw", release_with(REFERENCE_VALIDATION), media=False)
    output = tmp_path / "out"
    test_metrics = run_quickstart(
        str(raw), str(output), epochs=1, dataset="iemocap", train_overrides={"disable_tqdm": True}
    )
    printed = capsys.readouterr().out
    last_line = printed.strip().splitlines()[-1]
    assert re.fullmatch(r"IEMOCAP test weighted F1 \d+\.\d\d, accuracy \d+\.\d\d", last_line), last_line
    assert f"{100 * test_metrics['weighted_f1']:.2f}" in last_line and "logistic-regression floor" not in printed
    assert "split as TelME's and MAGTKD's authors did" in printed
    assert "max |logits difference| vs. hf_erc = 0.00e+00" in printed
    results = json.loads((output / "sdt-iemocap-text" / "all_results.json").read_text())
    assert results["test_num_utterances"] == 5  # session 5's labelled turns: 2 + 3
    config = json.loads((output / "sdt-iemocap-text" / "config.json").read_text())
    assert [config["id2label"][str(index)] for index in range(6)] == list(IEMOCAP_EMOTIONS)
    validation = json.loads((output / "sdt-iemocap-text" / "all_results.json").read_text())["eval_num_utterances"]
    assert validation == 2 * len(REFERENCE_VALIDATION)  # the authors' 12 validation dialogues
    assert (output / "minilm-iemocap" / "fine_tuning.json").is_file()

    # No IEMOCAP copy is searched for: the folder is named or it is an error naming what to pass.
    assert main(["quickstart", "--dataset", "iemocap", "--output-dir", str(tmp_path / "none")]) != 0
    assert "--dataset iemocap needs --data-dir" in capsys.readouterr().err
    assert main(["quickstart", "--dataset", "iemocap", "--data-dir", str(tmp_path), "--output-dir", str(output)]) != 0
    assert f"--data-dir {tmp_path} is neither IEMOCAP_full_release" in capsys.readouterr().err

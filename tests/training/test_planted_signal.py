"""Planted-signal checks (issue 19): do the models learn what a planted release puts in each modality, and do the
fusions combine the modalities?

A planted release (:mod:`hf_erc.data.planted`) plants each utterance's emotion independently in its words, its
tone and its hue with known reliabilities, so the best possible accuracy of every input and of their combination
is known exactly (:mod:`hf_erc.data.planted_ceilings`). Every threshold below is derived from those ceilings, from
chance, or from a linear probe on the same inputs, never a recorded score.

- Fusions (MAGTKD's and TelME's), on stage embeddings that carry the planted cues (a noisy prototype of each
  utterance's cue per modality, at very different scales per modality, as stage models of different kinds give):
  the model is built by the real fusion stage class (its default-preprocessing settings, the shipped planted
  config's overrides and schedule; MAGTKD's shortened) and batched by that stage's own training view and collator; only the optimisation loop is a
  plain one (a few seconds instead of a Trainer run). In both regimes (text strongest, and equal reliabilities) the
  fusion must reach a logistic regression on the three concatenated embeddings and beat its best single input by a
  share of what combining the cues can add; blanking the audio through the models' missing-modality mask (the evaluation path's ``BlankModalities``) must
  cost accuracy. A fusion whose audio branch is disconnected fails these checks (asserted).
- The stages that run a trained text model build its prompts with the context window it was trained with (recorded
  in its checkpoint): with another window its embeddings are not what its classifier reads (the cause of the fusions'
  fall below their text input on the planted benchmark, issue 19).
- Media paths: a tiny video model trained on a small planted release with real clips, through the stage's own
  inputs (processor, media collator), is well above chance and near its planted ceiling, and swapping two
  utterances' clips swaps its predictions; a video model that ignores its frames fails that check (asserted).
"""

import copy

import numpy as np
import pytest
import torch
from datasets import Dataset
from sklearn.linear_model import LogisticRegression

from hf_erc.data.collators import BlankModalities
from hf_erc.data.planted import (
    MODALITIES,
    PlantedConfig,
    read_planted_truth,
    sample_planted_release,
    write_planted_release,
)
from hf_erc.data.planted_ceilings import PlantedSplit, planted_ceilings, utterance_posteriors
from hf_erc.models import (
    MAGTKDAudioModel,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDTextModel,
    MAGTKDVideoModel,
    TelMEForEmotionRecognition,
    TelMEAudioStudent,
    TelMEConfig,
    TelMETextTeacher,
    TelMEVideoStudent,
)
from hf_erc.training import RunArguments
from hf_erc.training.recipes import get_recipe
from hf_erc.training.stages.base import text_context_turns
from hf_erc.training.stages.fusion import MAGTKDFusionStage, TelMEFusionStage
from tests.utils.stage_data import HIDDEN, TINY_CONFIG, write_tokenizer

SEED = 0
REGIMES = {
    "text-strongest": {"text": 0.8, "audio": 0.7, "video": 0.6},
    "equal": {"text": 0.6, "audio": 0.6, "video": 0.6},
}
# The benchmark's four emotions. With 0.8/0.7/0.6 the best utterance-level decision is right 85.2 % of the time
# against 80 % for the text alone (hf_erc.data.planted_ceilings.expected_utterance_accuracy); with 0.8/0.6/0.5 it
# was 80.7 %, too little to show that a fusion combines anything.
FUSION_EMOTIONS = 4
# Enough test dialogues that a comparison of accuracies is not lost in sampling noise (about 1,000 utterances).
FUSION_DIALOGUES = {"train": 150, "dev": 1, "test": 150}
# The planted configs' schedules on these 150 dialogues (about 1,000 utterances; a benchmark release has 300 training
# dialogues, about 2,100), sped up to fit the suite's time budget: MAGTKD 12 epochs at lr 1e-3 instead of 30 at 3e-4;
# TelME lr 3e-4 instead of 1e-4 over the config's 20 epochs, half the benchmark's steps (its 40 epochs at 1e-4, the
# benchmark's steps, pass too and take four times as long).
FUSION_TRAINING = {"magtkd": {"num_train_epochs": 12, "learning_rate": 1e-3}, "telme": {"learning_rate": 3e-4}}
# Stage embeddings at very different scales: a fusion must not read the scale as reliability.
EMBEDDING_SCALES = {"text": 0.2, "audio": 5.0, "video": 1.0}
EMBEDDING_NOISE = 0.3
# The fusion must recover this share of what combining the inputs can add over its best single input, in both
# regimes and for both fusions.
SHARE_OF_GAIN = 0.3
# Sampling margin on ~1,000 test utterances (a binomial standard deviation is about 0.015).
MARGIN = 0.03
STAGE_FIELDS = ("text_config", "audio_config", "video_config", "projection_size", "text_max_length")


# ----------------------------------------------------------------------------------------------------------------
# Fusions on stage embeddings that carry the planted cues


def planted_split(utterances, emotions) -> PlantedSplit:
    """The planted truth of sampled utterances (a clip that is missing or corrupt shows no audio or video cue)."""
    index = {name: position for position, name in enumerate(emotions)}
    return PlantedSplit(
        emotions=tuple(emotions),
        dialogue=np.array([row.dialogue for row in utterances]),
        speaker=[row.speaker for row in utterances],
        emotion=np.array([index[row.emotion] for row in utterances]),
        cues={
            m: np.array([-1 if m != "text" and row.clip != "ok" else index[row.cues[m]] for row in utterances])
            for m in MODALITIES
        },
    )


def cue_embeddings(truth: PlantedSplit, prototypes, rng) -> dict[str, list]:
    """``<m>_embeddings`` columns: the prototype of the utterance's cue plus noise, times the modality's scale;
    ``None`` where the cue is unobserved (no clip), as the stages' embedding cache has it."""
    columns = {}
    for modality in MODALITIES:
        columns[f"{modality}_embeddings"] = [
            None
            if cue < 0
            else EMBEDDING_SCALES[modality] * (prototypes[modality][cue] + EMBEDDING_NOISE * rng.normal(size=HIDDEN))
            for cue in truth.cues[modality]
        ]
    return columns


def planted_embeddings(reliabilities, seed=SEED):
    """split -> (truth, utterance view, embedding columns) of a sampled planted release (no files)."""
    config = PlantedConfig.create(FUSION_DIALOGUES, seed, reliabilities, emotions=FUSION_EMOTIONS)
    rng = np.random.default_rng(seed)
    prototypes = {m: rng.normal(size=(len(config.emotions), HIDDEN)) for m in MODALITIES}
    splits = {}
    for split, utterances in sample_planted_release(config).items():
        truth = planted_split(utterances, config.emotions)
        view = Dataset.from_dict(
            {
                "dialogue_id": [f"dia{row.dialogue}" for row in utterances],
                "turn": [row.utterance for row in utterances],
                "speaker": [row.speaker for row in utterances],
                "emotion": truth.emotion.tolist(),
                "row": list(range(len(utterances))),
            }
        )
        splits[split] = (truth, view, cue_embeddings(truth, prototypes, rng))
    return config, splits


def stage_models(model_type):
    """Tiny random stage models (their weights are never used: the embeddings are given), as the stage loads them."""
    if model_type == "magtkd":
        config = MAGTKDConfig.for_dataset("meld", **{name: TINY_CONFIG[name] for name in STAGE_FIELDS})
        classes = {"text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel}
    else:
        config = TelMEConfig.for_dataset("meld", **TINY_CONFIG)
        classes = {"text": TelMETextTeacher, "audio": TelMEAudioStudent, "video": TelMEVideoStudent}
    return {m: model_class(config.stage_config(model_class.config_class)).eval() for m, model_class in classes.items()}


FUSION_STAGES = {"magtkd": MAGTKDFusionStage, "telme": TelMEFusionStage}


def fused_model_and_data(model_type, splits, training=None, **config_overrides):
    """The fusion as its stage builds it from the shipped planted config (default preprocessing), the stage's
    training rows of each split, and its collator."""
    overrides = {"hidden_size": HIDDEN} if model_type == "magtkd" else {}
    arguments = RunArguments.from_config(f"configs/planted/{model_type}-fusion.yaml", **(training or {}))
    arguments.model.config_overrides = {**arguments.model.config_overrides, **overrides, **config_overrides}
    stage, models = FUSION_STAGES[model_type](), stage_models(model_type)
    torch.manual_seed(SEED)
    model = stage.build_model(get_recipe(model_type), arguments, models)
    rows = {
        split: stage.training_view(view, columns, list(MODALITIES)).to_list()
        for split, (_, view, columns) in splits.items()
    }
    return model, rows, stage.collator(model, models), arguments.training


def train_fusion(model, rows, collator, training):
    """Plain AdamW at the config's learning rate, batch size, epochs and weight decay, over the trainable weights."""
    generator = torch.Generator().manual_seed(SEED)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=training.learning_rate, weight_decay=training.weight_decay)
    batch_size = training.per_device_train_batch_size
    model.train()
    for _ in range(int(training.num_train_epochs)):
        order = torch.randperm(len(rows), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            loss = model(**collator([rows[index] for index in order[start : start + batch_size]])).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, training.max_grad_norm)
            optimizer.step()
    return model.eval()


@torch.no_grad()
def fused_accuracy(model, rows, collator, blank=()):
    """Accuracy of the fused prediction over the labelled utterances (``blank``: modalities hidden by their mask)."""
    if blank:
        collator = BlankModalities(collator, list(blank))
    correct = total = 0
    for start in range(0, len(rows), 64):
        batch = collator(rows[start : start + 64])
        labels = batch.pop("labels")
        predictions = model(**batch).logits.argmax(dim=-1)
        labelled = labels != -100
        correct += int((predictions[labelled] == labels[labelled]).sum())
        total += int(labelled.sum())
    return correct / total


def linear_probe_accuracy(splits, modalities=MODALITIES):
    """A logistic regression on the concatenated embeddings of ``modalities`` (zeros where missing), trained on the
    training split: what a linear model makes of the same frozen inputs."""

    def design(split):
        truth, _, columns = splits[split]
        blocks = [
            np.stack([np.zeros(HIDDEN) if value is None else value for value in columns[f"{m}_embeddings"]])
            for m in modalities
        ]
        return np.concatenate(blocks, axis=1), truth.emotion

    probe = LogisticRegression(max_iter=2000).fit(*design("train"))
    features, labels = design("test")
    return float((probe.predict(features) == labels).mean())


def check_fusion(model_type, regime, splits, reliabilities, training=None, **config_overrides):
    """Train the fusion on the planted embeddings and assert what a fusion must do in ``regime``; returns the
    scores. Raises AssertionError when the fusion does not combine the modalities."""
    training = {**FUSION_TRAINING[model_type], **(training or {})}
    model, rows, collator, training = fused_model_and_data(model_type, splits, training, **config_overrides)
    train_fusion(model, rows["train"], collator, training)
    truth = splits["test"][0]
    ceilings = planted_ceilings(truth, reliabilities, persistence=0.0)
    best_single = max(ceilings[m]["accuracy"] for m in MODALITIES)
    bayes = ceilings["all"]["accuracy"]
    without_audio = float(
        (utterance_posteriors(truth, reliabilities, ["text", "video"]).argmax(axis=1) == truth.emotion).mean()
    )
    scores = {
        "fused": fused_accuracy(model, rows["test"], collator),
        "fused_without_audio": fused_accuracy(model, rows["test"], collator, blank=("audio",)),
        "best_single": best_single,
        "best_single_probe": max(linear_probe_accuracy(splits, [m]) for m in MODALITIES),
        "bayes": bayes,
        "probe": linear_probe_accuracy(splits),
    }
    assert bayes - best_single > MARGIN / 2, f"the release leaves fusion nothing to add: {scores}"
    # Never below a linear model on the same inputs, nor below the best input.
    name = f"{model_type} ({regime})"
    assert scores["fused"] >= scores["probe"] - MARGIN, f"{name}: the fusion is below the probe: {scores}"
    assert scores["fused"] >= best_single - MARGIN, f"{name}: the fusion is below its best input: {scores}"
    floor = best_single + SHARE_OF_GAIN * (bayes - best_single)
    assert scores["fused"] >= floor, f"{name}: the fusion is not above its best input ({floor:.3f}): {scores}"
    # Blanking the audio must cost about what the audio cue is worth to the Bayes decision.
    worth = bayes - without_audio
    assert scores["fused_without_audio"] <= scores["fused"] - worth / 2, f"{name}: audio unused: {scores}"
    return scores


@pytest.fixture(scope="module")
def planted_regimes():
    return {regime: planted_embeddings(reliabilities)[1] for regime, reliabilities in REGIMES.items()}


@pytest.mark.parametrize("model_type", ["magtkd", "telme"])
@pytest.mark.parametrize("regime", list(REGIMES))
def test_fusion_combines_the_planted_modalities(planted_regimes, model_type, regime):
    check_fusion(model_type, regime, planted_regimes[regime], REGIMES[regime])


def disconnect_audio(model_type, monkeypatch):
    """Break the fusion's audio branch: it reads zeros whatever the audio embedding is."""
    model_class = MAGTKDForEmotionRecognition if model_type == "magtkd" else TelMEForEmotionRecognition
    key = "audio_features" if model_type == "magtkd" else "audio_embeddings"
    original = model_class.forward

    def forward(self, *args, **kwargs):
        if kwargs.get(key) is not None:
            kwargs[key] = torch.zeros_like(kwargs[key])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(model_class, "forward", forward)


@pytest.mark.parametrize("model_type", ["telme"])  # MAGTKD's too fails it; left out for the suite's time budget
def test_a_fusion_with_its_audio_disconnected_fails_the_check(planted_regimes, model_type, monkeypatch):
    disconnect_audio(model_type, monkeypatch)
    with pytest.raises(AssertionError):
        check_fusion(model_type, "equal", planted_regimes["equal"], REGIMES["equal"])


def test_magtkd_default_fusion_settings_read_the_turn_and_ignore_scales():
    """``normalize_features``: rescaling one modality's features leaves the prediction unchanged.
    ``anchor_reads_aligned_features``: the anchor's reduction reads the turn's own enhanced audio and video, and
    blanking them (modality mask) changes the prediction of that turn."""
    config = MAGTKDConfig.for_dataset(
        "meld", hidden_size=HIDDEN, num_attention_heads=2, speaker_vocab=None, dropout=0.0,
        anchor_reads_aligned_features=True, normalize_features=True,
    )  # fmt: skip
    torch.manual_seed(SEED)
    model = MAGTKDForEmotionRecognition(config).eval()
    assert model.modality_reductions["text"].in_features == 5 * HIDDEN
    assert model.modality_reductions["audio"].in_features == 3 * HIDDEN
    features = {f"{m}_features": torch.randn(2, 4, HIDDEN) for m in MODALITIES}
    with torch.no_grad():
        logits = model(**features).logits
        rescaled = model(**{**features, "audio_features": 10 * features["audio_features"]}).logits
        blanked_mask = torch.ones(2, 4, 3, dtype=torch.bool)
        blanked_mask[0, 1, 1] = False
        blanked = model(**features, modality_mask=blanked_mask).logits
    torch.testing.assert_close(rescaled, logits, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(blanked[0, 1], logits[0, 1])


def test_stages_running_the_text_model_build_its_own_prompts():
    """The text stage records its context window in the checkpoint's config; the fusion and KD stages build the
    text model's prompts with it (``--max_context_turns`` left out), and refuse another one."""
    model = stage_models("magtkd")["text"]
    model.config.text_max_context_turns = 0
    arguments = RunArguments.from_config("configs/planted/magtkd-fusion.yaml", max_context_turns=None)
    assert text_context_turns(arguments, model, "text") == 0
    arguments.data.max_context_turns = 0
    assert text_context_turns(arguments, model, "text") == 0
    arguments.data.max_context_turns = 3
    with pytest.raises(ValueError, match="trained with 0 context turns"):
        text_context_turns(arguments, model, "text")
    model.config.text_max_context_turns = None  # a checkpoint that records none: the run's window
    assert text_context_turns(arguments, model, "text") == 3


# ----------------------------------------------------------------------------------------------------------------
# Media paths: a video model on real planted clips

MEDIA_DIALOGUES = {"train": 8, "dev": 1, "test": 4}
MEDIA_RELIABILITIES = {"text": 0.8, "audio": 0.6, "video": 0.9}
MEDIA_EPOCHS = 12
MEDIA_BATCH_SIZE = 8
# The video path: hue is what a tiny TimeSformer learns in a few steps. (A tiny data2vec-audio needs far more
# steps than the suite's budget allows to learn the planted pitch; the fusion tests cover a disconnected audio.)
MEDIA_MODALITY = "video"


@pytest.fixture(scope="module")
def planted_release(tmp_path_factory):
    """A small planted release with real clips, and a tokenizer (the stages build their processor with it)."""
    root = tmp_path_factory.mktemp("planted-media")
    write_planted_release(root / "release", MEDIA_DIALOGUES, SEED, MEDIA_RELIABILITIES)
    write_tokenizer(root / "tokenizer")
    return root


@pytest.fixture(scope="module")
def media_setup(planted_release):
    """The MAGTKD video stage's setup on the planted release: its randomly initialised model, its rows and the media
    collator (the stage's processor decoding each clip), as training and serving use them."""
    arguments = RunArguments.from_config(
        None, model_type="magtkd", stage=MEDIA_MODALITY, modalities=[MEDIA_MODALITY], dataset_name="meld",
        data_dir=str(planted_release / "release"), tokenizer_name_or_path=str(planted_release / "tokenizer"),
        output_dir=str(planted_release / MEDIA_MODALITY), config_overrides={name: TINY_CONFIG[name] for name in STAGE_FIELDS},
        seed=SEED,
    )  # fmt: skip
    recipe = get_recipe("magtkd")
    _, stage = recipe.stage(MEDIA_MODALITY)
    torch.manual_seed(SEED)  # the model's initialisation
    return stage.setup(recipe, arguments)


def media_batches(setup, split):
    """The split's rows (in order) and their batch, as the stage's collator builds it from the clips."""
    rows = [setup.datasets[split][index] for index in range(len(setup.datasets[split]))]
    return rows, setup.data_collator(rows)


def train_media_model(setup):
    """A copy of the stage's (randomly initialised) model, trained with plain AdamW on the collated training clips."""
    torch.manual_seed(SEED)
    model = copy.deepcopy(setup.model)
    _, batch = media_batches(setup, "train")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(MEDIA_EPOCHS):
        order = torch.randperm(len(batch["labels"]), generator=generator)
        for start in range(0, len(order), MEDIA_BATCH_SIZE):
            rows = order[start : start + MEDIA_BATCH_SIZE]
            loss = model(**{name: value[rows] for name, value in batch.items()}).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(model, batch):
    return model(**{name: value for name, value in batch.items() if name != "labels"}).logits.argmax(dim=-1)


def check_media_model(modality, model, setup, release):
    """Assert that the audio or video model learnt the planted tone or hue: well above chance and near its ceiling
    on the test clips, and reading each utterance's own clip (two clips swapped between utterances swap their
    predictions)."""
    rows, batch = media_batches(setup, "test")
    predictions = predict(model, batch)
    accuracy = float((predictions == batch["labels"]).float().mean())
    truth = read_planted_truth(release, "test")
    # The ceiling over the utterances the stage keeps (those with a clip): the cue itself.
    cues = truth.cues[modality][truth.cues[modality] >= 0]
    ceiling = float((cues == truth.emotion[truth.cues[modality] >= 0]).mean())
    chance = 1 / truth.num_emotions
    assert accuracy >= chance + 0.6 * (ceiling - chance), f"{modality}: accuracy {accuracy:.2f}, ceiling {ceiling:.2f}"

    # Swap the clips of two utterances the model tells apart: each prediction must follow its clip.
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows)) if predictions[i] != predictions[j]]
    assert pairs, f"the {modality} model predicts one emotion for every clip"
    i, j = pairs[0]
    media = ("media_path", "media_start", "media_end")
    swapped = [{**rows[i], **{key: rows[j][key] for key in media}}, {**rows[j], **{key: rows[i][key] for key in media}}]
    assert predict(model, setup.data_collator(swapped)).tolist() == [int(predictions[j]), int(predictions[i])]


@pytest.fixture(scope="module")
def video_model(media_setup):
    return train_media_model(media_setup)


def test_video_model_reads_each_utterance_planted_clip(planted_release, media_setup, video_model):
    check_media_model(MEDIA_MODALITY, video_model, media_setup, planted_release / "release")


def test_a_video_model_blind_to_its_frames_fails_the_check(planted_release, media_setup, video_model, monkeypatch):
    """The disconnected branch: constant embeddings whatever the frames."""
    monkeypatch.setattr(MAGTKDVideoModel, "embed", lambda self, pixel_values: torch.zeros(len(pixel_values), HIDDEN))
    with pytest.raises(AssertionError):
        check_media_model(MEDIA_MODALITY, video_model, media_setup, planted_release / "release")

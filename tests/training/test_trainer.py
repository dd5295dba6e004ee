"""ERCTrainer and the distillation losses, on a tiny dialogue-level model and hand-made dialogues."""

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from safetensors.torch import load_file
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from hf_erc.training import (
    DialogueLengthGroupedSampler,
    DistillationArguments,
    ERCTrainer,
    ERCTrainingArguments,
    compute_erc_metrics,
    dist_kd_loss,
    kd_kl_loss,
    masked_cross_entropy,
    similarity_kd_loss,
)

LABELS = ["neutral", "joy", "anger"]
FEATURE_DIM = 6


class ToyDialogueConfig(PretrainedConfig):
    model_type = "toy-dialogue-erc"

    def __init__(self, text_dim=FEATURE_DIM, hidden_size=8, num_speakers=3, dropout=0.1, **kwargs):
        self.text_dim = text_dim
        self.hidden_size = hidden_size
        self.num_speakers = num_speakers
        self.dropout = dropout
        super().__init__(**kwargs)


@dataclass
class ToyDialogueOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    modality_logits: dict | None = None
    loss_components: dict | None = None
    utterance_embeddings: torch.Tensor | None = None


class ToyDialogueModel(PreTrainedModel):
    """The forward contract of the dialogue-level models (SDT, CMATH), with a tiny MLP over text features."""

    config_class = ToyDialogueConfig

    def __init__(self, config):
        super().__init__(config)
        self.project = nn.Linear(config.text_dim, config.hidden_size)
        self.speaker_embeddings = nn.Embedding(config.num_speakers, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, text_features, attention_mask, speaker_ids, modality_mask=None, labels=None):
        hidden = torch.tanh(self.project(text_features) + self.speaker_embeddings(speaker_ids))
        logits = self.classifier(self.dropout(hidden))
        loss, components = None, None
        if labels is not None:
            fused = masked_cross_entropy(logits, labels)
            # A second, fixed part of the loss, so that components with two names are logged.
            penalty = 1e-3 * hidden.pow(2)[attention_mask.bool()].mean()
            loss = fused + penalty
            components = {"fused_ce": fused, "penalty": penalty}
        return ToyDialogueOutput(
            loss=loss,
            logits=logits,
            modality_logits={"text": logits},
            loss_components=components,
            utterance_embeddings=hidden,
        )


def toy_model(seed=0, **overrides):
    torch.manual_seed(seed)
    config = ToyDialogueConfig(
        id2label=dict(enumerate(LABELS)), label2id={name: index for index, name in enumerate(LABELS)}, **overrides
    )
    return ToyDialogueModel(config)


def toy_dialogues(num_dialogues, seed):
    """Dialogue rows (lists over turns) whose emotion is the argmax of the first 3 feature values."""
    generator = np.random.default_rng(seed)
    rows = {"dialogue_id": [], "text_features": [], "speaker": [], "emotion": [], "length": []}
    for index in range(num_dialogues):
        length = int(generator.integers(1, 7))
        features = generator.normal(size=(length, FEATURE_DIM)).astype(np.float32)
        emotion = features[:, :3].argmax(axis=1).tolist()
        if length > 2:
            emotion[1] = -100  # an unlabelled context turn
        rows["dialogue_id"].append(f"dia{index}")
        rows["text_features"].append(features.tolist())
        rows["speaker"].append(generator.integers(0, 3, size=length).tolist())
        rows["emotion"].append(emotion)
        rows["length"].append(length)
    return Dataset.from_dict(rows)


def collate_dialogues(rows):
    """Pad dialogue rows to [B, T, ...] with the keyword names of the shared collator contract."""
    max_turns = max(row["length"] for row in rows)
    batch_size = len(rows)
    text = torch.zeros(batch_size, max_turns, FEATURE_DIM)
    attention_mask = torch.zeros(batch_size, max_turns, dtype=torch.long)
    speaker_ids = torch.zeros(batch_size, max_turns, dtype=torch.long)
    labels = torch.full((batch_size, max_turns), -100, dtype=torch.long)
    for index, row in enumerate(rows):
        length = row["length"]
        text[index, :length] = torch.tensor(row["text_features"])
        attention_mask[index, :length] = 1
        speaker_ids[index, :length] = torch.tensor(row["speaker"])
        labels[index, :length] = torch.tensor(row["emotion"])
    modality_mask = torch.zeros(batch_size, max_turns, 3, dtype=torch.bool)
    modality_mask[..., 0] = attention_mask.bool()
    return {
        "text_features": text,
        "attention_mask": attention_mask,
        "speaker_ids": speaker_ids,
        "modality_mask": modality_mask,
        "labels": labels,
    }


def training_arguments(output_dir, **overrides):
    settings = dict(
        output_dir=str(output_dir),
        num_train_epochs=4,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=3,
        learning_rate=3e-2,
        seed=0,
        disable_tqdm=True,
        save_total_limit=None,
        dataloader_num_workers=0,
        use_cpu=True,
    )
    settings.update(overrides)
    return ERCTrainingArguments(**settings)


@pytest.fixture(scope="module")
def datasets_small():
    return toy_dialogues(16, seed=1), toy_dialogues(8, seed=2)


def _weights(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


# ---- Training, evaluation, best checkpoint ------------------------------------------------


def test_training_lowers_loss_logs_components_and_keeps_the_best_checkpoint(tmp_path, datasets_small):
    train_dataset, eval_dataset = datasets_small
    trainer = ERCTrainer(
        model=toy_model(),
        args=training_arguments(tmp_path),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collate_dialogues,
    )
    trainer.train()

    history = trainer.state.log_history
    train_logs = [entry for entry in history if "loss" in entry]
    eval_logs = [entry for entry in history if "eval_weighted_f1" in entry]
    assert len(train_logs) == 4 and len(eval_logs) == 4
    assert train_logs[-1]["loss"] < train_logs[0]["loss"]
    # Each part of the model's loss is logged, averaged over the epoch's batches.
    assert all({"loss_fused_ce", "loss_penalty"} <= set(entry) for entry in train_logs)
    assert train_logs[-1]["loss_fused_ce"] < train_logs[0]["loss_fused_ce"]
    for key in ["eval_accuracy", "eval_macro_f1", "eval_loss"] + [f"eval_f1_{name}" for name in LABELS]:
        assert key in eval_logs[0]
    assert all("eval_confusion_matrix" not in entry for entry in history)

    # The best checkpoint is the one with the highest validation weighted F1.
    best = max(eval_logs, key=lambda entry: entry["eval_weighted_f1"])
    assert trainer.state.best_metric == pytest.approx(best["eval_weighted_f1"])
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
    best_weights = load_file(f"{trainer.state.best_model_checkpoint}/model.safetensors")
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(tensor, best_weights[name])

    # A final evaluation writes its confusion matrix; evaluations during training did not.
    assert not (tmp_path / "eval_confusion_matrix.json").exists()
    metrics = trainer.evaluate()
    assert metrics["eval_weighted_f1"] == pytest.approx(best["eval_weighted_f1"])
    counts = json.loads((tmp_path / "eval_confusion_matrix.json").read_text())["counts"]
    assert sum(map(sum, counts)) == metrics["eval_num_utterances"]
    assert (tmp_path / "eval_confusion_matrix.png").stat().st_size > 0
    trainer.predict(eval_dataset, metric_key_prefix="test")
    assert (tmp_path / "test_confusion_matrix.png").exists()


def test_evaluation_across_batches_of_different_lengths_matches_direct_metrics(tmp_path, datasets_small):
    _, eval_dataset = datasets_small
    model = toy_model(seed=3)
    trainer = ERCTrainer(
        model=model,
        args=training_arguments(tmp_path, train_sampling_strategy="sequential", per_device_eval_batch_size=2),
        eval_dataset=eval_dataset,
        data_collator=collate_dialogues,
    )
    metrics = trainer.evaluate()

    model.eval()
    predictions, labels = [], []
    with torch.no_grad():
        for row in eval_dataset:
            batch = collate_dialogues([row])
            predictions.append(model(**batch).logits[0].argmax(-1))
            labels.append(batch["labels"][0])
    direct = compute_erc_metrics(torch.cat(predictions).numpy(), torch.cat(labels).numpy(), LABELS)
    assert metrics["eval_num_utterances"] == direct["num_utterances"]
    assert metrics["eval_weighted_f1"] == pytest.approx(direct["weighted_f1"])
    assert trainer.confusion_matrices["eval"] == direct["confusion_matrix"]


def test_resume_from_checkpoint_reaches_the_same_weights(tmp_path, datasets_small):
    train_dataset, eval_dataset = datasets_small
    arguments = dict(num_train_epochs=3, load_best_model_at_end=False, eval_strategy="no", save_strategy="epoch")

    uninterrupted = ERCTrainer(
        model=toy_model(),
        args=training_arguments(tmp_path / "full", **arguments),
        train_dataset=train_dataset,
        data_collator=collate_dialogues,
    )
    uninterrupted.train()
    steps_per_epoch = math.ceil(len(train_dataset) / 4)

    resumed = ERCTrainer(
        model=toy_model(seed=7),  # different initial weights: the checkpoint must overwrite them
        args=training_arguments(tmp_path / "full", **arguments),
        train_dataset=train_dataset,
        data_collator=collate_dialogues,
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / f"checkpoint-{steps_per_epoch}"))

    assert resumed.state.global_step == uninterrupted.state.global_step == 3 * steps_per_epoch
    final = _weights(uninterrupted.model)
    for name, tensor in resumed.model.state_dict().items():
        torch.testing.assert_close(tensor, final[name])


def test_length_grouped_sampler_depends_only_on_seed_and_epoch():
    lengths = [1, 5, 2, 8, 3, 3, 7, 1, 2, 6, 4, 4]
    first, second = DialogueLengthGroupedSampler(4, lengths, seed=5), DialogueLengthGroupedSampler(4, lengths, seed=5)
    first.set_epoch(2)
    second.set_epoch(2)
    order = list(first)
    assert order == list(second) and sorted(order) == list(range(len(lengths)))
    second.set_epoch(3)
    assert list(second) != order
    # The longest dialogue comes in the first batch (an out-of-memory error shows at once).
    assert max(lengths[index] for index in order[:4]) == max(lengths)


def test_adam_l2_option_uses_coupled_l2_on_every_parameter(tmp_path, datasets_small):
    train_dataset, _ = datasets_small
    trainer = ERCTrainer(
        model=toy_model(),
        args=training_arguments(
            tmp_path, adam_l2_regularization=True, weight_decay=1e-5, eval_strategy="no", load_best_model_at_end=False
        ),
        train_dataset=train_dataset,
        data_collator=collate_dialogues,
    )
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is torch.optim.Adam
    decayed = [group for group in optimizer.param_groups if group["weight_decay"] == 1e-5]
    assert sum(len(group["params"]) for group in decayed) == len(list(trainer.model.parameters()))


def test_decay_all_parameters_applies_adamw_decay_to_biases_and_norms_too(tmp_path, datasets_small):
    train_dataset, _ = datasets_small
    arguments = {"weight_decay": 0.01, "eval_strategy": "no", "load_best_model_at_end": False}
    counts = {}
    for decay_all in (False, True):
        trainer = ERCTrainer(
            model=toy_model(),
            args=training_arguments(tmp_path, decay_all_parameters=decay_all, **arguments),
            train_dataset=train_dataset,
            data_collator=collate_dialogues,
        )
        optimizer = trainer.create_optimizer()
        assert type(optimizer) is torch.optim.AdamW
        decayed = [group for group in optimizer.param_groups if group["weight_decay"] == 0.01]
        counts[decay_all] = sum(len(group["params"]) for group in decayed)
    total = len(list(toy_model().parameters()))
    assert counts[True] == total and counts[False] < total


# ---- Distillation from a frozen teacher ----------------------------------------------------


def test_teacher_distillation_adds_logged_kd_terms_with_gradients_only_into_the_student(tmp_path, datasets_small):
    train_dataset, eval_dataset = datasets_small
    student, teacher = toy_model(seed=0), toy_model(seed=1)
    teacher_before = _weights(teacher)
    distillation = DistillationArguments(
        temperature=2.0, response_kd_weight=0.5, feature_kd_weight=0.25, hidden_state_key="utterance_embeddings"
    )
    trainer = ERCTrainer(
        model=student,
        teacher_model=teacher,
        distillation_args=distillation,
        args=training_arguments(tmp_path, num_train_epochs=2, save_strategy="no", load_best_model_at_end=False),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collate_dialogues,
    )
    assert not teacher.training and not any(parameter.requires_grad for parameter in teacher.parameters())

    batch = collate_dialogues([train_dataset[index] for index in range(4)])
    student.train()
    loss, outputs = trainer.compute_loss(student, batch, return_outputs=True)
    with torch.no_grad():
        teacher_outputs = teacher(**batch)
    mask = batch["attention_mask"].bool()
    expected = (
        outputs.loss
        + 0.5 * kd_kl_loss(outputs.logits, teacher_outputs.logits, 2.0, mask)
        + 0.25 * similarity_kd_loss(outputs.utterance_embeddings, teacher_outputs.utterance_embeddings, 1.0, mask)
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(parameter.grad is not None for parameter in student.parameters())
    assert all(parameter.grad is None for parameter in teacher.parameters())
    student.zero_grad()

    trainer.train()
    train_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    for key in ("loss_response_kd", "loss_feature_kd", "loss_student", "loss_fused_ce"):
        assert all(key in entry and entry[key] > 0 for entry in train_logs)
    for name, tensor in teacher.state_dict().items():
        torch.testing.assert_close(tensor, teacher_before[name])
    assert not teacher.training


# ---- Losses --------------------------------------------------------------------------------


def test_kd_kl_loss_matches_its_formula_and_ignores_masked_positions():
    student, teacher = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    temperature = 3.0
    expected = []
    for b, t in mask.nonzero().tolist():
        p = F.softmax(teacher[b, t] / temperature, -1)
        q = F.softmax(student[b, t] / temperature, -1)
        expected.append((p * (p.log() - q.log())).sum())
    torch.testing.assert_close(kd_kl_loss(student, teacher, temperature, mask), torch.stack(expected).mean() * 9)
    changed = student.clone()
    changed[0, 2] = 100.0
    torch.testing.assert_close(kd_kl_loss(changed, teacher, temperature, mask), kd_kl_loss(student, teacher, temperature, mask))
    assert kd_kl_loss(teacher, teacher, temperature, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_similarity_kd_loss_matches_its_formula():
    student, teacher = torch.randn(5, 4), torch.randn(5, 4)
    s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
    p = F.softmax(t @ t.T / 0.5, dim=1)
    q = F.softmax(t @ s.T / 0.5, dim=1)
    expected = (p * (p.log() - q.log())).sum() / 5
    torch.testing.assert_close(similarity_kd_loss(student, teacher, temperature=0.5), expected)
    # A student whose embeddings point like the teacher's has nothing left to learn.
    assert similarity_kd_loss(3 * teacher, teacher).item() == pytest.approx(0.0, abs=1e-6)
    # Dialogue-shaped inputs use the real utterances of the whole batch as the "batch".
    mask = torch.tensor([[True, True, True], [True, True, False]])
    padded_student = torch.zeros(2, 3, 4)
    padded_teacher = torch.zeros(2, 3, 4)
    padded_student[mask], padded_teacher[mask] = student, teacher
    torch.testing.assert_close(similarity_kd_loss(padded_student, padded_teacher, 0.5, mask), expected)
    with pytest.raises(ValueError, match="project"):
        similarity_kd_loss(torch.randn(5, 3), teacher)


def test_dist_kd_loss_is_zero_for_matching_predictions_and_positive_otherwise():
    teacher = torch.randn(6, 4)
    assert dist_kd_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-3)
    # Inter-class term alone, by hand: 1 - mean Pearson correlation of matching rows, times T².
    student = torch.randn(6, 4)
    ys, yt = F.softmax(student / 2, -1), F.softmax(teacher / 2, -1)
    correlations = [np.corrcoef(ys[i].numpy(), yt[i].numpy())[0, 1] for i in range(6)]
    inter_only = dist_kd_loss(student, teacher, temperature=2.0, intra_weight=0.0)
    assert inter_only.item() == pytest.approx(4 * (1 - np.mean(correlations)), rel=1e-4)
    assert dist_kd_loss(student, teacher).item() > 0


def test_masked_cross_entropy_ignores_padding_and_handles_an_unlabelled_batch():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    labels = torch.tensor([[1, -100, 2], [-100, -100, 0]])
    expected = F.cross_entropy(logits[labels != -100], labels[labels != -100])
    torch.testing.assert_close(masked_cross_entropy(logits, labels), expected)
    empty = masked_cross_entropy(logits, torch.full((2, 3), -100))
    assert empty.item() == 0.0 and empty.requires_grad

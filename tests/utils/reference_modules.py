"""Stand-ins of the TelME and MAGTKD authors' unimodal models, to build fake released checkpoints on tiny encoders.

They have the attribute names (hence state-dict keys) of TelME's ``Teacher_model``, ``Student_Audio`` and
``Student_Video`` (``MELD/model.py``), which MAGTKD's ``Text_model``, ``Audio_model`` and ``Video_model`` share, and
compute what their ``forward`` computes: the text model reads the last position (the ``<mask>`` under left
padding) and projects it with ``W``; a student reads the first hidden state and classifies it with ``W``. Shared by
the TelME and MAGTKD conversion tests.
"""

import torch
from torch import nn
from transformers import Data2VecAudioModel, RobertaModel, TimesformerModel

from .tiny_telme import FRAME_SIZE, NUM_FRAMES, audio_inputs, text_inputs

__all__ = [
    "ReferenceStudent",
    "ReferenceTeacher",
    "reference_unimodal_model",
    "save_released",
    "unimodal_inputs",
    "write_reference_tokenizer",
]

# Words of the tiny tokenizer's vocabulary (with RoBERTa's five special tokens in front).
TOKENIZER_WORDS = "Now feels hi there hello how are you fine okay no yes pizza again".split()


class ReferenceTeacher(nn.Module):
    """``Teacher_model`` (TelME) / ``Text_model`` (MAGTKD): RoBERTa with its pooler, ``W`` and ``classifier``."""

    def __init__(self, config):
        super().__init__()
        self.text_model = RobertaModel(config.text_config)  # with its (unused) pooler, as released
        self.W = nn.Linear(config.text_config.hidden_size, config.projection_size)
        self.classifier = nn.Linear(config.projection_size, config.num_labels)

    def forward(self, input_ids, attention_mask):
        hidden = self.W(self.text_model(input_ids, attention_mask).last_hidden_state[:, -1, :])
        return hidden, self.classifier(hidden)


class ReferenceStudent(nn.Module):
    """``Student_Audio``/``Student_Video`` (TelME) / ``Audio_model``/``Video_model`` (MAGTKD): ``model`` and ``W``."""

    def __init__(self, encoder, num_labels):
        super().__init__()
        self.model = encoder
        self.W = nn.Linear(encoder.config.hidden_size, num_labels)

    def forward(self, inputs):
        hidden = self.model(inputs).last_hidden_state[:, 0, :]
        return hidden, self.W(hidden)


def reference_unimodal_model(modality, config):
    """The authors' text, audio or video model for `config` (a TelMEConfig or MAGTKDConfig), in eval mode."""
    if modality == "text":
        model = ReferenceTeacher(config)
    elif modality == "audio":
        model = ReferenceStudent(Data2VecAudioModel(config.audio_config), config.num_labels)
    elif modality == "video":
        model = ReferenceStudent(TimesformerModel(config.video_config), config.num_labels)
    else:
        raise ValueError(f"Unknown modality {modality!r}.")
    return model.eval()


def unimodal_inputs(modality, seed=2):
    """Inputs of a tiny text, audio or video model (hf_erc's argument names) and the stand-in's positional
    arguments on the same tensors (left-padded text ending in the mask id; audio without a mask, as the authors)."""
    if modality == "text":
        inputs = text_inputs([9, 6, 4, 7], seed=seed)
        return inputs, (inputs["input_ids"], inputs["attention_mask"])
    if modality == "audio":
        inputs = {"input_values": audio_inputs([640] * 3, seed=seed)["input_values"]}
        return inputs, (inputs["input_values"],)
    generator = torch.Generator().manual_seed(seed)
    inputs = {"pixel_values": torch.randn(3, NUM_FRAMES, 3, FRAME_SIZE, FRAME_SIZE, generator=generator)}
    return inputs, (inputs["pixel_values"],)


def save_released(model, path):
    """`torch.save` the model's state dict at `path` as the authors' scripts did (transformers 4.27 also saved
    RoBERTa's ``position_ids`` buffer)."""
    state_dict = model.state_dict()
    if isinstance(model, ReferenceTeacher):
        positions = model.text_model.config.max_position_embeddings
        state_dict["text_model.embeddings.position_ids"] = torch.arange(positions).unsqueeze(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path)
    return path


def write_reference_tokenizer(path):
    """A word-level stand-in for roberta-large's tokenizer (RoBERTa's special tokens and ids: ``<pad>`` 1, ``</s>``
    2), without speaker tokens, saved at `path`; its ids stay below the tiny encoders' 40 rows even with 9 markers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokens = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", *TOKENIZER_WORDS]
    vocabulary = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip
    tokenizer.save_pretrained(path)
    return path

"""MAGTKD processor: a conversation (speakers, texts, optional audio and video) to the inputs of MAGTKD's text,
audio and video models.

This file ships beside MAGTKD checkpoints (``AutoProcessor.from_pretrained(path, trust_remote_code=True)``), so it
imports only ``torch``, ``transformers`` and its sibling configuration. MAGTKD's unimodal stages read their inputs as
TelME's do, with other settings (https://github.com/JieLi-dd/MAGTKD): the prompt ends ``</s> Now<sK> feels``,
speakers are numbered by a global table on MELD (``speaker_numbering="vocabulary"``, 304 speakers) and markers are
plain text to the tokenizer (``num_speaker_tokens=0``), and the first ``max_audio_seconds`` of a waveform are kept
(``audio_window="first"``). The code is TelME's processor under MAGTKD's names (marked ``Copied from``);
``MAGTKDProcessor.from_preset(dataset, preprocessing, ...)`` builds MAGTKD's reference settings
(``MAGTKD_REFERENCE_PRESETS`` below) or its default ones (from the model's configuration), and
``docs/models/magtkd.md`` says what differs from the authors and why.
"""

import math
import re

import torch
from transformers import BatchFeature, ProcessorMixin, Wav2Vec2FeatureExtractor
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .configuration_magtkd import MELD_SPEAKERS


MAGTKD_MODALITIES = ("text", "audio", "video")
PREPROCESSING_MODES = ("default", "reference")
SPEAKER_NUMBERINGS = ("dialogue", "carried", "vocabulary")
VIDEO_FRAME_RULES = ("clip", "recording")
# TelME's stand-in audio for a long clip (`long_clip_inputs="zeros"`; MAGTKD's reference keeps long clips).
LONG_CLIP_AUDIO_SAMPLES = 1412

# The authors' pipelines (read in yuntaeyang/TelME and JieLi-dd/MAGTKD): librosa's default 22,050 Hz, 400,000
# samples, 8 OpenCV (BGR) frames through VideoMAE-base's image processor.
# Copied from hf_erc.models.telme.processing_telme.REFERENCE_SAMPLING_RATE
REFERENCE_SAMPLING_RATE = 22050
# Copied from hf_erc.models.telme.processing_telme.REFERENCE_AUDIO_SAMPLES
REFERENCE_AUDIO_SAMPLES = 400_000
# Copied from hf_erc.models.telme.processing_telme.REFERENCE_COMMON_SETTINGS
REFERENCE_COMMON_SETTINGS = {
    "preprocessing": "reference",
    "audio_sampling_rate": REFERENCE_SAMPLING_RATE,
    "max_audio_seconds": REFERENCE_AUDIO_SAMPLES / REFERENCE_SAMPLING_RATE,
    "num_frames": 8,
    "video_channel_order": "bgr",
}
# MAGTKD's reference preprocessing per dataset, on top of the common settings (docs/models/magtkd.md lists every
# item): the authors' data tokenizer adds no marker token, and their prompt writes ``Now<sK>`` without a space.
MAGTKD_REFERENCE_PRESETS = {
    "meld": {
        "speaker_numbering": "vocabulary",
        # speaker2id.json: the 304 MELD speakers (MAGTKDConfig.for_dataset("meld").speaker_vocab)
        "speaker_vocab": {name: index for index, name in enumerate(MELD_SPEAKERS)},
        "prompt_template": "{sep} Now{speaker} feels",
        "num_speaker_tokens": 0,
        "audio_window": "first",
        "max_clip_seconds": None,
    },
    "iemocap": {
        "speaker_numbering": "carried",
        "prompt_template": "{sep} Now{speaker} feels",
        "num_speaker_tokens": 0,
        "audio_window": "first",
        "max_clip_seconds": None,
        "video_margin_seconds": 1.0,
        "video_frame_rule": "recording",  # frames by their position in the dialogue's avi, as OpenCV reads them
    },
}


# Copied from hf_erc.models.telme.processing_telme.first_appearance_numbers with TelME->MAGTKD, TELME->MAGTKD
def first_appearance_numbers(keys):
    """1-based numbers by order of first appearance: `["b", "a", "b"]` -> `[1, 2, 1]`."""
    table = {}
    return [table.setdefault(key, len(table)) + 1 for key in keys]


# Copied from hf_erc.models.telme.processing_telme.sample_frame_indices with TelME->MAGTKD, TELME->MAGTKD
def sample_frame_indices(num_available, num_frames):
    """The reference's frame choice: every `step = num_available // num_frames`-th frame, the first at `step - 1`;
    a clip with fewer frames keeps all of them and repeats the last."""
    if num_available <= 0:
        raise ValueError("A video clip has no frames.")
    if num_available >= num_frames:
        step = num_available // num_frames
        return [step * (index + 1) - 1 for index in range(num_frames)]
    return list(range(num_available)) + [num_available - 1] * (num_frames - num_available)


# Copied from hf_erc.models.telme.processing_telme.recording_frame_indices
def recording_frame_indices(start, end, fps, num_frames, margin_seconds):
    """The authors' IEMOCAP frame choice for a turn `[start, end]` s of a recording at `fps` frames per second: the
    recording's frame indices (0-based) read, before the end of the recording is taken into account.

    Their loop reads the recording from its first frame and tests OpenCV's position *after* each read (the next
    frame's index, `i + 1`) against the window `[s, e] = [max(start - margin, 0), end + margin]` times `fps`, both
    ends included; it counts the frames inside from 1 and keeps every `step`-th, `step = floor(fps * (e - s) /
    num_frames)` (from the window's length, not from a count of frames), the first `num_frames` of them. So the
    window starts one frame before the first frame whose time is in it, and the kept frames are `first + m * step
    - 1`, `m = 1 .. num_frames`. The window always holds that many: a recording that ends inside it gives fewer, and
    the caller repeats the last one read.
    """
    window_start, window_end = max(start - margin_seconds, 0.0), end + margin_seconds
    step = math.floor(fps * (window_end - window_start) / num_frames)
    if step < 1:
        raise ValueError(
            f"A window of {window_end - window_start:.3f} s at {fps:g} fps holds fewer than {num_frames} frames."
        )
    first = max(math.ceil(fps * window_start), 1) - 1
    return [first + index * step - 1 for index in range(1, num_frames + 1)]


# Copied from hf_erc.models.telme.processing_telme._round_up with TelME->MAGTKD, TELME->MAGTKD
def _round_up(length: int, multiple: int | None) -> int:
    if not multiple:
        return length
    return -(-length // multiple) * multiple


# Copied from hf_erc.models.telme.processing_telme.reference_audio_feature_extractor
def reference_audio_feature_extractor(sampling_rate):
    """data2vec-audio-base-960h's feature extractor: waveforms normalised to zero mean and unit variance."""
    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )


# Copied from hf_erc.models.telme.processing_telme.reference_image_processor
def reference_image_processor(frame_size):
    """VideoMAE-base's image processor as the authors use it: shortest edge resized to `frame_size`, centre crop,
    ImageNet mean and standard deviation."""
    # Imported when used: without torchvision (an optional dependency), importing it warns of its PIL fallback.
    from transformers import VideoMAEImageProcessor

    return VideoMAEImageProcessor(
        size={"shortest_edge": frame_size},
        crop_size={"height": frame_size, "width": frame_size},
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )


# Copied from hf_erc.models.telme.processing_telme.TelMEProcessor with TelME->MAGTKD, TELME->MAGTKD
class MAGTKDProcessor(ProcessorMixin):
    r"""
    Builds MAGTKD's inputs for every utterance of a conversation: the text teacher's prompted context, the audio
    student's waveform and the video student's frames, plus the `modality_mask` of what exists.

    Args:
        tokenizer: the RoBERTa tokenizer; the speaker tokens `<s1>`..`<s{num_speaker_tokens}>` are added as
            special tokens when missing.
        feature_extractor: the audio feature extractor (`Wav2Vec2FeatureExtractor` of data2vec-audio).
        image_processor: the frame processor (`VideoMAEImageProcessor`: resize to 224, centre crop 224, ImageNet
            mean/std).
        max_length (`int`, defaults to 512): most text tokens per utterance, the `<mask>` included; with a
            prompt-tuned teacher use `config.text_max_length - config.text_num_virtual_tokens`.
        num_speaker_tokens (`int`, defaults to 9): speaker tokens added to the tokenizer.
        speaker_token_template, turn_template, prompt_template (`str`): how markers, turns and the prompt are
            written (`{sep}` is the tokenizer's separator, `</s>` for RoBERTa; MAGTKD writes `{sep} Now{speaker} feels`).
        speaker_numbering (`str`, defaults to `"dialogue"`): `"dialogue"` numbers speakers by first appearance in the
            visible turns; `"carried"` as the authors' loop does (see [`~MAGTKDProcessor.speaker_numbers`]);
            `"vocabulary"` by `speaker_vocab` (MAGTKD on MELD: 304 speakers, `<s1>`..`<s304>`).
        speaker_key (`str`, defaults to `"speaker"`): `"turn"` gives every turn its own marker.
        speaker_vocab (`dict[str, int]`, *optional*): speaker name -> 0-based id, for `"vocabulary"` numbering. Names
            it lacks are numbered after it, by first appearance in the visible turns (a new speaker of a conversation
            gets a marker of its own, in training and serving alike).
        strip_spaces_around_markers (`bool`, defaults to `False`): drop the spaces next to marker tokens, as the
            authors' slow tokenizer did (so a marker is not preceded by a lone `Ġ` token).
        audio_sampling_rate (`int`, defaults to 16000): the rate waveforms must have.
        max_audio_seconds (`float`, defaults to 25.0): longer waveforms keep `audio_window` (`"last"` or `"first"`) of it.
        max_clip_seconds (`float`, *optional*, defaults to 30.0): clips whose audio is longer count as having no
            audio and no video (`None`: no limit).
        long_clip_inputs (`str`, defaults to `"missing"`): what such a clip gives: `"missing"` (masked) or
            `"zeros"` (MAGTKD's MELD reference: 1,412 zero samples and all-zero frames, read as present).
        num_frames (`int`, defaults to 8): frames per video clip.
        video_channel_order (`str`, defaults to `"rgb"`): `"bgr"` swaps the channels of the (RGB) input frames.
        video_margin_seconds (`float`, defaults to 0): a turn cut from a dialogue recording starts this much earlier
            (not before 0) and ends this much later (the authors' IEMOCAP video: 1 s).
        video_frame_rule (`str`, defaults to `"clip"`): how a turn cut from a dialogue recording picks its frames.
            `"clip"`: among the frames whose time lies in its window, as from a clip of their own; `"recording"`:
            by their index in the recording and its frame rate, as the authors' OpenCV loop does
            ([`~MAGTKDProcessor.recording_frame_indices`]: the window one frame earlier, the step from its length).
        preprocessing (`str`, defaults to `"default"`): which set these settings are, `"default"` or `"reference"`.
        pad_to_multiple_of (`int`, *optional*): round the text length up to a multiple of this.
    """

    def __init__(
        self,
        tokenizer=None,
        feature_extractor=None,
        image_processor=None,
        max_length=512,
        num_speaker_tokens=9,
        speaker_token_template="<s{index}>",
        turn_template="{speaker} {text}",
        prompt_template="{sep} Now {speaker} feels",
        speaker_numbering="dialogue",
        speaker_key="speaker",
        speaker_vocab=None,
        strip_spaces_around_markers=False,
        audio_sampling_rate=16000,
        max_audio_seconds=25.0,
        audio_window="last",
        max_clip_seconds=30.0,
        long_clip_inputs="missing",
        num_frames=8,
        video_channel_order="rgb",
        video_margin_seconds=0.0,
        video_frame_rule="clip",
        pad_to_multiple_of=None,
        preprocessing="default",
        **kwargs,
    ):
        choices = {
            "preprocessing": (preprocessing, PREPROCESSING_MODES),
            "speaker_numbering": (speaker_numbering, SPEAKER_NUMBERINGS),
            "speaker_key": (speaker_key, ("speaker", "turn")),
            "audio_window": (audio_window, ("last", "first")),
            "long_clip_inputs": (long_clip_inputs, ("missing", "zeros")),
            "video_channel_order": (video_channel_order, ("rgb", "bgr")),
            "video_frame_rule": (video_frame_rule, VIDEO_FRAME_RULES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
        if speaker_numbering == "vocabulary" and not speaker_vocab:
            raise ValueError('speaker_numbering="vocabulary" needs speaker_vocab (speaker name -> 0-based id).')
        if max_length < 2:
            raise ValueError(f"max_length={max_length}: expected at least 2 (one token and the mask).")
        self.max_length = max_length
        self.num_speaker_tokens = num_speaker_tokens
        self.speaker_token_template = speaker_token_template
        self.turn_template = turn_template
        self.prompt_template = prompt_template
        self.speaker_numbering = speaker_numbering
        self.speaker_key = speaker_key
        self.speaker_vocab = None if speaker_vocab is None else {str(k): int(v) for k, v in speaker_vocab.items()}
        self.strip_spaces_around_markers = strip_spaces_around_markers
        self.audio_sampling_rate = audio_sampling_rate
        self.max_audio_seconds = max_audio_seconds
        self.audio_window = audio_window
        self.max_clip_seconds = max_clip_seconds
        self.long_clip_inputs = long_clip_inputs
        self.num_frames = num_frames
        self.video_channel_order = video_channel_order
        self.video_margin_seconds = video_margin_seconds
        self.video_frame_rule = video_frame_rule
        self.pad_to_multiple_of = pad_to_multiple_of
        self.preprocessing = preprocessing
        super().__init__(tokenizer, feature_extractor, image_processor, **kwargs)
        if self.tokenizer.mask_token_id is None or self.tokenizer.pad_token_id is None:
            raise ValueError("MAGTKDProcessor needs a tokenizer with a mask token and a pad token (RoBERTa's).")
        if num_speaker_tokens == 0 and speaker_token_template.format(index=1) in self.tokenizer.get_vocab():
            raise ValueError(
                "num_speaker_tokens=0 writes speaker markers as plain text, but this tokenizer has "
                f"{speaker_token_template.format(index=1)!r} as a token: give the encoder's own tokenizer."
            )
        self.marker_tokens = self.add_speaker_tokens(self.tokenizer, num_speaker_tokens, speaker_token_template)
        self._marker_pattern = re.compile(
            "(" + "|".join(re.escape(token) for token in sorted(self.marker_tokens, key=len, reverse=True)) + ")"
        ) if self.marker_tokens else None

    @classmethod
    def preset(cls, dataset, preprocessing, config):
        r"""
        The processor fields of a preset: the authors' preprocessing on `dataset` (`preprocessing="reference"`, the
        common reference settings and `MAGTKD_REFERENCE_PRESETS[dataset]`) or ours (`"default"`, read from the model's
        configuration, the same on every dataset).

        Args:
            dataset (`str`): the dataset the model reads, `"meld"` or `"iemocap"`.
            preprocessing (`str`): `"reference"` or `"default"`.
            config: the model's configuration (the whole model's or a stage model's): the speaker tokens, and in
                default preprocessing the audio rate and length, the clip limit and the frames.
        """
        if preprocessing == "default":
            return {
                "preprocessing": "default",
                "strip_spaces_around_markers": True,
                "num_speaker_tokens": config.num_speaker_tokens,
                "audio_sampling_rate": config.audio_sampling_rate,
                "max_audio_seconds": config.audio_max_seconds,
                "max_clip_seconds": config.max_clip_seconds,
                "num_frames": config.video_num_frames,
            }
        if preprocessing != "reference":
            raise ValueError(f"preprocessing must be one of {list(PREPROCESSING_MODES)}, got {preprocessing!r}.")
        if dataset not in MAGTKD_REFERENCE_PRESETS:
            raise ValueError(
                f"No reference preprocessing is known for {cls.__name__} on {dataset!r}: choose one of "
                f"{sorted(MAGTKD_REFERENCE_PRESETS)}."
            )
        return {
            **REFERENCE_COMMON_SETTINGS,
            "num_speaker_tokens": config.num_speaker_tokens,
            **MAGTKD_REFERENCE_PRESETS[dataset],
        }

    @classmethod
    def from_preset(
        cls,
        dataset,
        preprocessing,
        tokenizer,
        config,
        max_length,
        feature_extractor=None,
        image_processor=None,
        **fields,
    ):
        r"""
        The processor of a preset ([`~MAGTKDProcessor.preset`]): the authors' preprocessing on `dataset`
        (`preprocessing="reference"`) or ours (`"default"`). Training, the conversion scripts and `hf-erc show-inputs`
        build their processor here; the fields it gets are saved in `processor_config.json`.

        Args:
            dataset (`str`), preprocessing (`str`), config: as for [`~MAGTKDProcessor.preset`].
            tokenizer: the text model's tokenizer; the preset's speaker tokens are added to it when missing.
            max_length (`int`): most text tokens per utterance, the `<mask>` included
                (`config.text_max_length - config.text_num_virtual_tokens` for a model read alone).
            feature_extractor, image_processor (*optional*): the audio and video encoders' own preprocessors, for
                default preprocessing; without them (and always with reference preprocessing) the authors'
                ([`reference_audio_feature_extractor`], [`reference_image_processor`]).
            fields: processor fields replacing the preset's (e.g. `pad_to_multiple_of`).
        """
        if preprocessing == "reference" and (feature_extractor is not None or image_processor is not None):
            raise ValueError(
                "Reference preprocessing normalises waveforms and frames as the authors did: pass no "
                "feature_extractor or image_processor."
            )
        if feature_extractor is None:
            # The authors declare 16 kHz to the extractor whatever the rate: it only normalises.
            feature_extractor = reference_audio_feature_extractor(config.audio_sampling_rate)
        if image_processor is None:
            image_processor = reference_image_processor(config.video_frame_size)
        return cls(
            tokenizer=tokenizer,
            feature_extractor=feature_extractor,
            image_processor=image_processor,
            max_length=max_length,
            **{**cls.preset(dataset, preprocessing, config), **fields},
        )

    @staticmethod
    def add_speaker_tokens(tokenizer, num_speaker_tokens, speaker_token_template="<s{index}>"):
        """Add the speaker markers the prompts write, `<s1>`..`<s{num_speaker_tokens}>`, to `tokenizer` as special
        tokens (those it lacks, in order, so they take the ids after its vocabulary); returns the markers."""
        markers = [speaker_token_template.format(index=index) for index in range(1, num_speaker_tokens + 1)]
        vocabulary = tokenizer.get_vocab()
        missing = [token for token in markers if token not in vocabulary]
        if missing:
            tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
        return markers

    @property
    def model_input_names(self):
        return [
            "input_ids",
            "attention_mask",
            "prompt_positions",
            "input_values",
            "audio_attention_mask",
            "pixel_values",
            "modality_mask",
        ]

    # --- text ---------------------------------------------------------------------------------------------------
    def _speaker_keys(self, speakers):
        return [f"turn {index}" for index in range(len(speakers))] if self.speaker_key == "turn" else list(map(str, speakers))

    def speaker_numbers(self, speakers, carried_speakers=None):
        """The 1-based marker number of each turn of a dialogue (its turns so far, in order).

        With `"carried"` numbering and the table the previous dialogue left (`carried_speakers`, see
        [`~MAGTKDProcessor.speaker_table`]), the first turn is numbered against that table and the others by first
        appearance from the second turn on: the authors' loop numbers a row before it notices a new dialogue, then
        empties its table. Without a carried table (the first dialogue of a file, a conversation served alone) and
        with `"dialogue"` numbering, speakers are numbered by first appearance.
        """
        if self.speaker_numbering == "vocabulary":
            unknown = {}
            return [
                self.speaker_vocab[name] + 1
                if name in self.speaker_vocab
                else len(self.speaker_vocab) + unknown.setdefault(name, len(unknown)) + 1
                for name in map(str, speakers)
            ]
        keys = self._speaker_keys(speakers)
        if self.speaker_numbering == "dialogue" or carried_speakers is None or not keys:
            return first_appearance_numbers(keys)
        carried = list(carried_speakers)
        first = len(carried) if self.speaker_key == "turn" or keys[0] not in carried else carried.index(keys[0])
        return [first + 1] + first_appearance_numbers(keys[1:])

    def speaker_table(self, speakers, carried_speakers=None):
        """The table the authors' loop holds after a whole dialogue: what the next dialogue's first turn is numbered
        against (`"carried"` numbering)."""
        keys = self._speaker_keys(speakers)
        if self.speaker_key == "turn":
            keys = [f"{key} of a previous dialogue" for key in keys]
        return list(dict.fromkeys(keys if carried_speakers is None else keys[1:]))

    def render_prompt(self, context_speakers, context_texts, speaker, text, carried_speakers=None):
        """The text model's input text for one utterance given the turns before it."""
        speakers = list(context_speakers) + [speaker]
        texts = list(context_texts) + [text]
        if len(speakers) != len(texts):
            raise ValueError(f"{len(speakers) - 1} context speakers for {len(texts) - 1} context texts.")
        numbers = self.speaker_numbers(speakers, carried_speakers)
        markers = [self.speaker_token_template.format(index=number) for number in numbers]
        turns = " ".join(self.turn_template.format(speaker=m, text=t) for m, t in zip(markers, texts)).strip()
        separator = self.tokenizer.sep_token or self.tokenizer.eos_token or ""
        return f"{turns} {self.prompt_template.format(speaker=markers[-1], sep=separator)}"

    def render_row(self, row):
        """The prompt of a dataset row with its dialogue context (`context_speakers`, `context_texts`, `speaker`,
        `text`, and `carried_speakers` where the numbering needs it)."""
        for name in ("context_speakers", "context_texts", "speaker", "text"):
            if name not in row:
                raise ValueError(
                    f"A prompt row needs a '{name}' column (hf_erc.data.views.with_dialogue_context adds the context)."
                )
        context_speakers = row["context_speakers"]
        # The carried table numbers a dialogue's first turn: it applies only when the context starts there.
        starts_dialogue = len(context_speakers) == row.get("turn", len(context_speakers))
        carried = row.get("carried_speakers") if starts_dialogue else None
        return self.render_prompt(context_speakers, row["context_texts"], row["speaker"], row["text"], carried)

    def build_prompts(self, speakers, texts, max_context_turns=None, carried_speakers=None):
        """The input text of every utterance of a conversation, each seeing the turns before it."""
        if len(speakers) != len(texts):
            raise ValueError(f"The conversation has {len(speakers)} speakers for {len(texts)} texts.")
        prompts = []
        for turn in range(len(texts)):
            start = 0 if max_context_turns is None else max(0, turn - max_context_turns)
            carried = carried_speakers if start == 0 else None
            prompts.append(
                self.render_prompt(speakers[start:turn], texts[start:turn], speakers[turn], texts[turn], carried)
            )
        return prompts

    def tokenize_prompt(self, prompt):
        """Token ids of one prompt (no special tokens added); with `strip_spaces_around_markers` each marker token is
        cut out and the spaces next to it dropped, the way the authors' slow tokenizer split its added tokens."""
        if not (self.strip_spaces_around_markers and self._marker_pattern):
            return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        pieces = self._marker_pattern.split(prompt)
        ids = []
        for index, piece in enumerate(pieces):
            if index % 2 == 1:  # a marker
                ids.append(self.tokenizer.convert_tokens_to_ids(piece))
                continue
            if index > 0:
                piece = piece.lstrip()
            if index < len(pieces) - 1:
                piece = piece.rstrip()
            if piece:
                ids.extend(self.tokenizer(piece, add_special_tokens=False)["input_ids"])
        return ids

    def encode_prompts(self, prompts):
        """Tokenize, keep the last `max_length - 1` tokens, append `<mask>`, pad on the left."""
        budget = self.max_length - 1
        sequences = [list(self.tokenize_prompt(prompt)[-budget:]) + [self.tokenizer.mask_token_id] for prompt in prompts]
        width = _round_up(max(len(ids) for ids in sequences), self.pad_to_multiple_of)
        input_ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(sequences), width, dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        prompt_positions = torch.full((len(sequences),), width - 1, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "prompt_positions": prompt_positions}

    def prompt_length(self, prompt):
        """Tokens the text model reads for `prompt` (mask included, after truncation)."""
        return min(len(self.tokenize_prompt(prompt)) + 1, self.max_length)

    # --- audio --------------------------------------------------------------------------------------------------
    def _too_long(self, waveform):
        if self.max_clip_seconds is None or waveform is None:
            return False
        return len(waveform) / self.audio_sampling_rate > self.max_clip_seconds

    def long_clip_audio(self):
        """The audio a clip over `max_clip_seconds` gives with `long_clip_inputs="zeros"`."""
        return torch.zeros(LONG_CLIP_AUDIO_SAMPLES)

    @property
    def max_audio_samples(self):
        return int(round(self.max_audio_seconds * self.audio_sampling_rate))

    def audio_span(self, num_samples):
        """`(first, end)`: the samples of a `num_samples`-long waveform the model reads."""
        if num_samples <= self.max_audio_samples:
            return 0, num_samples
        if self.audio_window == "last":
            return num_samples - self.max_audio_samples, num_samples
        return 0, self.max_audio_samples

    def encode_audio(self, waveforms):
        """Normalised waveforms (`audio_window` of `max_audio_seconds` kept), right-padded, and which utterances have
        audio."""
        present = [waveform is not None and len(waveform) > 0 for waveform in waveforms]
        values = []
        for waveform, has_audio in zip(waveforms, present):
            if not has_audio:
                values.append(torch.zeros(1))
                continue
            waveform = torch.as_tensor(waveform, dtype=torch.float32)
            if waveform.dim() != 1:
                raise ValueError(f"Expected mono waveforms (one dimension), got shape {tuple(waveform.shape)}.")
            # The normalisation does not depend on the rate: pass the extractor's own to satisfy its check.
            normalised = self.feature_extractor(
                waveform.numpy(), sampling_rate=self.feature_extractor.sampling_rate, return_tensors="pt"
            )["input_values"][0]
            first, end = self.audio_span(len(normalised))
            values.append(normalised[first:end])
        width = max(len(value) for value in values)
        input_values = torch.zeros(len(values), width)
        attention_mask = torch.zeros(len(values), width, dtype=torch.long)
        for row, (value, has_audio) in enumerate(zip(values, present)):
            if has_audio:
                input_values[row, : len(value)] = value
                attention_mask[row, : len(value)] = 1
        return {"input_values": input_values, "audio_attention_mask": attention_mask}, present

    # --- video --------------------------------------------------------------------------------------------------
    def video_segment(self, start, end):
        """The time window read for a turn cut from a dialogue recording, widened by `video_margin_seconds`."""
        if start is None or end is None or not self.video_margin_seconds:
            return start, end
        return max(0.0, start - self.video_margin_seconds), end + self.video_margin_seconds

    def frame_indices(self, num_available):
        """Which of a clip's `num_available` frames the model reads (training decodes only these)."""
        return sample_frame_indices(num_available, self.num_frames)

    def reads_recording_frames(self, start, end):
        """Whether a clip `[start, end]` s is chosen by its frames' positions in the recording (`video_frame_rule=
        "recording"`, for a turn cut from a dialogue recording) rather than among its own frames."""
        return self.video_frame_rule == "recording" and start is not None and end is not None

    def recording_frame_indices(self, start, end, fps):
        """The indices (0-based, in the recording at `fps` frames per second) of the frames read for the turn `[start,
        end]` s under `video_frame_rule="recording"` (see [`recording_frame_indices`]); frames past the recording's end
        are replaced by the last one it has."""
        return recording_frame_indices(start, end, fps, self.num_frames, self.video_margin_seconds)

    def encode_video(self, clips, stand_ins=()):
        """`num_frames` processed frames per clip, zeros for utterances without video, and which have video; rows in
        `stand_ins` get all-zero frames and count as having video (`long_clip_inputs="zeros"`)."""
        present = [clip is not None and len(clip) > 0 for clip in clips]
        sampled = []
        for clip, has_video in zip(clips, present):
            if not has_video:
                continue
            frames = [clip[index] for index in self.frame_indices(len(clip))]
            frames = [torch.as_tensor(frame).numpy() for frame in frames]
            if self.video_channel_order == "bgr":
                frames = [frame[..., ::-1].copy() for frame in frames]
            sampled.append(frames)
        stand_ins = set(stand_ins)
        with_video = [has_video or row in stand_ins for row, has_video in enumerate(present)]
        if not sampled:
            if not stand_ins:
                return {}, present
            crop = self.image_processor.crop_size
            shape = (len(clips), self.num_frames, 3, crop["height"], crop["width"])
            return {"pixel_values": torch.zeros(shape)}, with_video
        processed = self.image_processor(sampled, return_tensors="pt")["pixel_values"]
        pixel_values = processed.new_zeros((len(clips), *processed.shape[1:]))
        rows = torch.tensor([row for row, has_video in enumerate(present) if has_video])
        pixel_values[rows] = processed
        return {"pixel_values": pixel_values}, with_video

    def __call__(
        self,
        speakers=None,
        texts=None,
        audio=None,
        videos=None,
        sampling_rate=None,
        max_context_turns=None,
        return_tensors="pt",
        **kwargs,
    ):
        r"""
        Model inputs for every utterance of one conversation.

        Args:
            speakers (`list[str]`): the speaker of each utterance, in order.
            texts (`list[str]`): the transcript of each utterance.
            audio (`list`, *optional*): per utterance a mono waveform (1-D array or tensor) at `sampling_rate`, or
                `None` when it has no audio.
            videos (`list`, *optional*): per utterance its frames (an array `(frames, height, width, 3)` or a list of
                `(height, width, 3)` RGB frames), or `None` when it has no video.
            sampling_rate (`int`): the waveforms' rate; required with `audio` and must be `audio_sampling_rate`.
            max_context_turns (`int`, *optional*): keep at most this many previous turns as context.

        Returns:
            [`BatchFeature`] with `input_ids`, `attention_mask`, `prompt_positions` and `modality_mask` (bool
            `(utterances, 3)`, text/audio/video), plus `input_values` and `audio_attention_mask` when `audio` is
            given and `pixel_values` when some utterance has video.
        """
        if speakers is None or texts is None:
            raise ValueError("MAGTKDProcessor needs the conversation's speakers and texts.")
        num_utterances = len(texts)
        if num_utterances == 0:
            raise ValueError("The conversation has no utterances.")
        batch = self.encode_prompts(self.build_prompts(speakers, texts, max_context_turns))
        modality_mask = torch.zeros(num_utterances, len(MAGTKD_MODALITIES), dtype=torch.bool)
        modality_mask[:, 0] = True

        too_long = [False] * num_utterances
        if audio is not None:
            if len(audio) != num_utterances:
                raise ValueError(
                    f"Got {len(audio)} waveforms for {num_utterances} utterances: give one (or None) each."
                )
            if sampling_rate is None:
                raise ValueError(f"Pass sampling_rate with audio (expected {self.audio_sampling_rate} Hz).")
            if sampling_rate != self.audio_sampling_rate:
                raise ValueError(
                    f"The waveforms are sampled at {sampling_rate} Hz but this processor expects "
                    f"{self.audio_sampling_rate} Hz: resample them first."
                )
            too_long = [self._too_long(waveform) for waveform in audio]
            stand_in = self.long_clip_audio() if self.long_clip_inputs == "zeros" else None
            audio_inputs, has_audio = self.encode_audio(
                [stand_in if long else waveform for waveform, long in zip(audio, too_long)]
            )
            batch.update(audio_inputs)
            modality_mask[:, 1] = torch.tensor(has_audio)
        if videos is not None:
            if len(videos) != num_utterances:
                raise ValueError(f"Got {len(videos)} videos for {num_utterances} utterances: give one (or None) each.")
            stand_ins = [row for row, long in enumerate(too_long) if long] if self.long_clip_inputs == "zeros" else []
            video_inputs, has_video = self.encode_video(
                [None if long else clip for clip, long in zip(videos, too_long)], stand_ins
            )
            batch.update(video_inputs)
            modality_mask[:, 2] = torch.tensor(has_video)
        batch["modality_mask"] = modality_mask
        return BatchFeature(data=batch, tensor_type=return_tensors)


__all__ = ["MAGTKDProcessor"]

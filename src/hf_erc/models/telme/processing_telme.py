"""TelME processor: a conversation (speakers, texts, optional audio and video) to TelME's model inputs.

This file ships beside TelME checkpoints (``AutoProcessor.from_pretrained(path, trust_remote_code=True)``), so
it imports only ``torch`` and ``transformers``. It reproduces the reference's preprocessing
(https://github.com/yuntaeyang/TelME, ``MELD/utils.py``):

- text: every turn up to the current one written ``<sK> text`` (speakers numbered by first appearance), then
  ``</s> Now <sK> feels``; tokenized without special tokens, the last ``max_length - 1`` tokens kept, the
  ``<mask>`` appended, rows padded on the left. The same inputs as ``hf_erc.data.collators.UtteranceCollator``
  (a test checks they agree).
- audio: the waveform normalised by the feature extractor (zero mean, unit variance), then its last
  ``max_audio_seconds`` kept (the reference keeps the last 400,000 samples). Unlike the reference, batches are
  padded on the right with an attention mask.
- video: ``num_frames`` frames sampled as the reference samples them (every ``len // num_frames``-th frame
  starting with frame ``step - 1``; a shorter clip repeats its last frame), resized, centre-cropped and
  normalised by the image processor (VideoMAE's, ImageNet mean and std, as the reference).
- clips longer than ``max_clip_seconds`` (by their audio) have no usable audio or video (MELD's reference
  replaces both by zeros).

Frames are given in RGB order. The released reference checkpoints were trained on OpenCV frames, which are BGR:
``video_channel_order="bgr"`` swaps the channels before processing so converted checkpoints see what they were
trained on.
"""

import torch
from transformers import BatchFeature, ProcessorMixin


TELME_MODALITIES = ("text", "audio", "video")


def speaker_markers(speakers, template="<s{index}>"):
    """Speaker markers by order of first appearance: `["b", "a", "b"]` -> `["<s1>", "<s2>", "<s1>"]`."""
    numbers = {}
    for speaker in speakers:
        numbers.setdefault(str(speaker), len(numbers) + 1)
    return [template.format(index=numbers[str(speaker)]) for speaker in speakers]


def sample_frame_indices(num_available, num_frames):
    """The reference's frame choice: every `step = num_available // num_frames`-th frame, the first at `step - 1`;
    a clip with fewer frames keeps all of them and repeats the last."""
    if num_available <= 0:
        raise ValueError("A video clip has no frames.")
    if num_available >= num_frames:
        step = num_available // num_frames
        return [step * (index + 1) - 1 for index in range(num_frames)]
    return list(range(num_available)) + [num_available - 1] * (num_frames - num_available)


# Copied from hf_erc.data.collators._round_up
def _round_up(length: int, multiple: int | None) -> int:
    if not multiple:
        return length
    return -(-length // multiple) * multiple


class TelMEProcessor(ProcessorMixin):
    r"""
    Builds TelME's inputs for every utterance of a conversation: the text teacher's prompted context, the audio
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
            written (`{sep}` is the tokenizer's separator, `</s>` for RoBERTa).
        audio_sampling_rate (`int`, defaults to 16000): the rate waveforms must have.
        max_audio_seconds (`float`, defaults to 25.0): longer waveforms keep their last part.
        max_clip_seconds (`float`, *optional*, defaults to 30.0): clips whose audio is longer count as having no
            audio and no video (`None`: no limit).
        num_frames (`int`, defaults to 8): frames per video clip.
        video_channel_order (`str`, defaults to `"rgb"`): `"bgr"` swaps the channels of the (RGB) input frames.
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
        audio_sampling_rate=16000,
        max_audio_seconds=25.0,
        max_clip_seconds=30.0,
        num_frames=8,
        video_channel_order="rgb",
        pad_to_multiple_of=None,
        **kwargs,
    ):
        if video_channel_order not in ("rgb", "bgr"):
            raise ValueError(f"video_channel_order must be 'rgb' or 'bgr', got {video_channel_order!r}.")
        if max_length < 2:
            raise ValueError(f"max_length={max_length}: expected at least 2 (one token and the mask).")
        self.max_length = max_length
        self.num_speaker_tokens = num_speaker_tokens
        self.speaker_token_template = speaker_token_template
        self.turn_template = turn_template
        self.prompt_template = prompt_template
        self.audio_sampling_rate = audio_sampling_rate
        self.max_audio_seconds = max_audio_seconds
        self.max_clip_seconds = max_clip_seconds
        self.num_frames = num_frames
        self.video_channel_order = video_channel_order
        self.pad_to_multiple_of = pad_to_multiple_of
        super().__init__(tokenizer, feature_extractor, image_processor, **kwargs)
        if self.tokenizer.mask_token_id is None or self.tokenizer.pad_token_id is None:
            raise ValueError("TelMEProcessor needs a tokenizer with a mask token and a pad token (RoBERTa's).")
        speaker_tokens = [speaker_token_template.format(index=index) for index in range(1, num_speaker_tokens + 1)]
        missing = [token for token in speaker_tokens if token not in self.tokenizer.get_vocab()]
        if missing:
            self.tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)

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
    def render_prompt(self, context_speakers, context_texts, speaker, text):
        """The teacher's input text for one utterance given the turns before it."""
        speakers = list(context_speakers) + [speaker]
        texts = list(context_texts) + [text]
        if len(speakers) != len(texts):
            raise ValueError(f"{len(speakers) - 1} context speakers for {len(texts) - 1} context texts.")
        markers = speaker_markers(speakers, self.speaker_token_template)
        turns = " ".join(self.turn_template.format(speaker=m, text=t) for m, t in zip(markers, texts)).strip()
        separator = self.tokenizer.sep_token or self.tokenizer.eos_token or ""
        return f"{turns} {self.prompt_template.format(speaker=markers[-1], sep=separator)}"

    def build_prompts(self, speakers, texts, max_context_turns=None):
        """The input text of every utterance of a conversation, each seeing the turns before it."""
        if len(speakers) != len(texts):
            raise ValueError(f"The conversation has {len(speakers)} speakers for {len(texts)} texts.")
        prompts = []
        for turn in range(len(texts)):
            start = 0 if max_context_turns is None else max(0, turn - max_context_turns)
            prompts.append(self.render_prompt(speakers[start:turn], texts[start:turn], speakers[turn], texts[turn]))
        return prompts

    def encode_prompts(self, prompts):
        """Tokenize, keep the last `max_length - 1` tokens, append `<mask>`, pad on the left."""
        encoded = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        budget = self.max_length - 1
        sequences = [list(ids[-budget:]) + [self.tokenizer.mask_token_id] for ids in encoded]
        width = _round_up(max(len(ids) for ids in sequences), self.pad_to_multiple_of)
        input_ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(sequences), width, dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        prompt_positions = torch.full((len(sequences),), width - 1, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "prompt_positions": prompt_positions}

    # --- audio --------------------------------------------------------------------------------------------------
    def _too_long(self, waveform):
        if self.max_clip_seconds is None or waveform is None:
            return False
        return len(waveform) / self.audio_sampling_rate > self.max_clip_seconds

    def encode_audio(self, waveforms):
        """Normalised waveforms (last `max_audio_seconds` kept), right-padded, and which utterances have audio."""
        present = [waveform is not None and len(waveform) > 0 for waveform in waveforms]
        max_samples = int(round(self.max_audio_seconds * self.audio_sampling_rate))
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
            values.append(normalised[-max_samples:])
        width = max(len(value) for value in values)
        input_values = torch.zeros(len(values), width)
        attention_mask = torch.zeros(len(values), width, dtype=torch.long)
        for row, (value, has_audio) in enumerate(zip(values, present)):
            if has_audio:
                input_values[row, : len(value)] = value
                attention_mask[row, : len(value)] = 1
        return {"input_values": input_values, "audio_attention_mask": attention_mask}, present

    # --- video --------------------------------------------------------------------------------------------------
    def frame_indices(self, num_available):
        """Which of a clip's `num_available` frames the model reads (training decodes only these)."""
        return sample_frame_indices(num_available, self.num_frames)

    def encode_video(self, clips):
        """`num_frames` processed frames per clip, zeros for utterances without video, and which have video."""
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
        if not sampled:
            return {}, present
        processed = self.image_processor(sampled, return_tensors="pt")["pixel_values"]
        pixel_values = processed.new_zeros((len(clips), *processed.shape[1:]))
        rows = torch.tensor([row for row, has_video in enumerate(present) if has_video])
        pixel_values[rows] = processed
        return {"pixel_values": pixel_values}, present

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
            raise ValueError("TelMEProcessor needs the conversation's speakers and texts.")
        num_utterances = len(texts)
        if num_utterances == 0:
            raise ValueError("The conversation has no utterances.")
        batch = self.encode_prompts(self.build_prompts(speakers, texts, max_context_turns))
        modality_mask = torch.zeros(num_utterances, len(TELME_MODALITIES), dtype=torch.bool)
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
            audio_inputs, has_audio = self.encode_audio(
                [None if long else waveform for waveform, long in zip(audio, too_long)]
            )
            batch.update(audio_inputs)
            modality_mask[:, 1] = torch.tensor(has_audio)
        if videos is not None:
            if len(videos) != num_utterances:
                raise ValueError(f"Got {len(videos)} videos for {num_utterances} utterances: give one (or None) each.")
            video_inputs, has_video = self.encode_video(
                [None if long else clip for clip, long in zip(videos, too_long)]
            )
            batch.update(video_inputs)
            modality_mask[:, 2] = torch.tensor(has_video)
        batch["modality_mask"] = modality_mask
        return BatchFeature(data=batch, tensor_type=return_tensors)


__all__ = ["TelMEProcessor"]

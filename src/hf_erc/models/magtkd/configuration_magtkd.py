"""MAGTKD model configuration.

This file ships inside MAGTKD checkpoints (loaded with ``trust_remote_code=True``), so it imports only
``transformers``.

MAGTKD (Li et al., "Multi-modal Anchor Gated Transformer with Knowledge Distillation for Emotion Recognition in
Conversation", IJCAI 2025; reference code https://github.com/JieLi-dd/MAGTKD, folders ``MELD/`` and ``IEMOCAP/``)
is trained in stages, each writing a checkpoint the next one reads:

1. unimodal models, cross-entropy only (``text.py``, ``audio.py``, ``video.py``): the prompted RoBERTa-large text
   model (:class:`MAGTKDTextModelConfig`), the data2vec-audio and the TimeSformer models
   (:class:`MAGTKDAudioModelConfig`, :class:`MAGTKDVideoModelConfig`);
2. distillation (``KD.py``): a new audio and a new video model learn from the frozen text model;
3. fusion (``multimodel_fusion.py``): the multi-modal anchor gated transformer over the cached 768-d utterance
   features of stages 1-2 (:class:`MAGTKDConfig`, the main model [`MAGTKDForEmotionRecognition`]).

Training hyperparameters of the reference runs. They are not model settings and belong to the training configs;
they are listed here so that one place holds the whole paper setting. Every stage uses AdamW, seed 2024,
gradient clipping at norm 10 and a linear schedule with warm-up whose step counts are given in *samples*
(``num_warmup_steps = len(train_set)``, ``num_training_steps = len(train_set) * epochs``) although the scheduler
steps once per batch. The unimodal and distillation stages keep the epoch with the best validation weighted F1;
the fusion stage keeps the epoch with the best *test* weighted F1 (select on validation instead).

| stage          | dataset | lr   | batch          | epochs | weight decay | loss                                                   |
|----------------|---------|------|----------------|--------|--------------|--------------------------------------------------------|
| text           | both    | 1e-5 | 4 utterances   | 10     | 0.01         | CE                                                     |
| audio          | MELD    | 1e-5 | 4 utterances   | 10     | 0.01         | CE                                                     |
| audio          | IEMOCAP | 5e-6 | 4 utterances   | 10     | 0.01         | CE                                                     |
| video          | both    | 1e-5 | 4 utterances   | 10     | 0.01         | CE                                                     |
| KD (a, v)      | MELD    | 1e-5 | 4 utterances   | 10     | 0.01         | CE + 0.1 * DIST(T=2) + 1.0 * feature KD(T=1), fp16 AMP |
| KD (a, v)      | IEMOCAP | 1e-5 | 4 utterances   | 10     | 0.01         | CE + 1.0 * DIST(T=2), fp16 AMP                         |
| fusion         | both    | 1e-4 | 16 dialogues   | 30     | 1e-6         | see `MAGTKDForEmotionRecognition` (inside `forward`)   |

The distilled audio model starts from the stage-1 audio model; the distilled video model starts from the
pretrained TimeSformer (the stage-1 video model is not loaded). The fusion reads the text features and the
*distilled* audio features on both datasets, the distilled video features on MELD and the stage-1 (not distilled)
video features on IEMOCAP.
"""

from transformers import AutoConfig, Data2VecAudioConfig, PretrainedConfig, RobertaConfig, TimesformerConfig

MAGTKD_MODALITIES = ("text", "audio", "video")

# Label names in the canonical order of hf_erc.labels (the order of the published feature files). This file
# cannot import hf_erc, so the names are repeated here; a test checks that both agree. The reference code orders
# the classes alphabetically instead; the conversion script reorders the released classifiers.
_DATASET_LABELS = {
    "meld": ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
    "iemocap": ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
}

# The MELD speakers in the order the reference numbers them (`MELD/feature/speaker2id.json`): the order of first
# appearance over the official train, dev and test CSVs. Speaker id = position in this tuple. A test rebuilds the
# order from the real CSVs. (The reference's file spells speaker 146 with a cp1252 apostrophe, `Richard\x92s
# Date`; the official UTF-8 CSVs, and hence the datasets, spell it with U+2019.)
# fmt: off
MELD_SPEAKERS = (
    "Chandler", "The Interviewer", "Joey", "Rachel", "Monica", "Phoebe", "Ross", "Sergei", "Customer", "Jade",
    "Mona", "Charlie", "Paleontologist", "Professore Clerk", "Caitlin", "Nurse", "Mr. Treeger", "Carol",
    "The Casting Director", "Emily", "Elizabeth", "Paul", "The Dry Cleaner", "Joey and Chandler", "Kate",
    "The Director", "Mr. Tribbiani", "Guru Saj", "Wayne", "Richard", "Dina", "Bobby", "Danny", "Krista", "Jill",
    "Doug", "Stevens", "Bob", "Mr. Franklin", "Director", "Janice", "Tony", "Peter", "Ticket Counter Attendant",
    "Dr. Long", "Charlton Heston", "Joshua", "Nancy", "Kim", "Joanna", "Cassie", "Dr. Rhodes", "Dr. Johnson",
    "Kristen", "Jester", "Sarah", "Pete", "The Singing Man", "Commercial", "Mark", "A Female Student", "All",
    "Cliff", "Tag", "Eric", "Dr. Green", "Mr. Heckles", "Mr. Geller", "Sophie", "Singer", "David", "Hitchhiker",
    "1st Customer", "2nd Customer", "3rd Customer", "The Presenter", "Policeman", "Duncan", "Jane", "Message",
    "Gary", "Bonnie", "Woman", "Leslie", "Isabella", "Joey's Hand Twin", "Kiki", "Joanne", "Fireman No. 3", "Susan",
    "Mischa", "The Assistant Director", "Mrs. Geller", "Emeril", "Man", "Jake", "Tom", "Lecturer", "The Woman",
    "Monica and Ross", "The Vendor", "Julio", "Janine", "Julie", "Dr. Baldhara", "Young Ethan", "Dr. Leedbetter",
    "Phoebe Sr.", "Katie", "Gunther", "Earl", "Barry", "Robbie", "Lydia", "Bernice", "Mindy", "Robert", "Issac",
    "Chloe", "Supervisor", "Kathy", "Voice", "Stu", "Tour Guide", "Dr. Ledbetter", "Mrs. Burgin", "Mr. Burgin",
    "Annabelle", "Flight Attendant", "Roger", "Front Desk Clerk", "Mr. Zelner", "Student", "Jason", "Guy", "Jim",
    "Liam", "Phoebe Sr", "Stage Director", "PBS Volunteer", "Gary Collins", "Carl", "Phoebe and Rachel",
    "The Cigarette Guy", "Lorraine", "an", "Richard’s Date", "Frank", "Rachel and Phoebe", "Mona's Date",
    "Ross and Joey", "Mike", "Dr. Miller", "Both", "Receptionist", "Mrs. Green", "Marc", "Dana", "The Fireman",
    "Drunken Gambler", "Raymond", "Kristin", "Monica and Phoebe", "A Student", "Hoshi", "Ben", "Teacher",
    "Stephanie", "Evil Bitch", "Sick Bastard", "Kyle", "Nurse #1", "Nurse #2", "Dr. Stryker Ramoray", "Helena",
    "Angela", "Steve", "Airline Employee", "Janitor", "Mr. Posner", "Mrs. Lynch", "Paolo", "Megan", "Joey and Ross",
    "Hombre Man", "Dr. Zane", "Alice", "Russell", "Chip", "The Lurker", "The Security Guard", "The Librarian",
    "The Head Librarian", "Guy #1", "Shelley", "Girl", "Leader", "Dr. Wesley", "Dr. Drake Remoray", "Hope",
    "Stranger", "Hold Voice", "Rick", "Vince", "Phoebe/Waitress", "Joey/Drake", "Rachel/actress", "Mr. Waltham",
    "Mrs. Waltham", "Ms. McKenna", "Fake Monica", "Doctor", "Boy in the Cape", "Mrs. Chatracus", "Paula", "Burt",
    "Ursula", "Older Scientist", "Another Tour Guide", "Another Scientist", "The Potential Roommate", "Aunt Lillian",
    "Ronni", "Cecilia", "Hotel Clerk", "Casey", "The Instructor", "Jay Leno", "The Smoking Woman", "Trudie Styler",
    "The Acting Teacher", "Dr. Franzblau", "Mrs. Tedlock", "The Guys", "The Museum Official", "The Croupier",
    "Jeannine", "The Conductor", "Woman On Train", "The Food Critic", "The Cooking Teacher", "Waiter", "Allesandro",
    "Terry", "Friend No. 2", "Friend No. 1", "Her-Friends", "Estelle", "Mrs. Tribbiani", "Larry", "Fireman No. 1",
    "Fireman No. 2", "Dr. Oberman", "Gerston", "Santos", "Petrie", "Maitre d'", "Melissa", "Stanley", "The Grip",
    "Dr. Harad", "Whitney", "Passerby", "Cookie", "Kori", "TV Announcer", "The Hot Girl", "Jen", "Monica and Rachel",
    "Waitress", "Stage Manager", "Lauren", "Max", "Ross and Rachel", "Marjorie", "Fireman #1", "A Waiter",
    "The Waiter", "Mrs. Bing", "Mr. Bing", "Phoebe and Leslie", "Female Student", "Judge", "Molly",
    "Ross and Chandler", "Frank Sr.", "Host", "Guest #1", "Brenda", "Rachel and Bonnie", "Frannie", "The Teacher",
    "The Stripper", "Female Clerk", "The Fan", "Erin", "Hypnosis Tape", "Tommy", "Ginger", "Jessica Lockhart",
    "Mr. Kaplan", "Alan", "Drew", "Doctor Connelly",
)
# fmt: on

MELD_NUM_SPEAKERS = len(MELD_SPEAKERS)

# The speaker markers added to the RoBERTa tokenizer (`<s1>`..`<s9>`).
MAGTKD_NUM_SPEAKER_TOKENS = 9

# roberta-large, with the embedding matrix grown by the speaker tokens (50265 + 9 rows, as the reference's
# `resize_token_embeddings(len(tokenizer))`).
_ROBERTA_LARGE = {
    "vocab_size": 50265 + MAGTKD_NUM_SPEAKER_TOKENS,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

# The reference overrides one setting of the pretrained data2vec-audio config (`Config.mask_time_length = 3` in
# audio.py/KD.py): SpecAugment time masks of 3 frames instead of 10 while the audio model trains.
MAGTKD_AUDIO_ENCODER_SETTINGS = {"mask_time_length": 3}

# Per-dataset settings of the reference (model.py `n_speaker`; multimodel_fusion.py `CE_Loss` and the weights
# `a`, `b` of the audio and video terms).
_DATASET_PRESETS = {
    "meld": {
        "num_speakers": MELD_NUM_SPEAKERS,
        "speaker_vocab": {name: index for index, name in enumerate(MELD_SPEAKERS)},
        "audio_loss_weight": 0.01,
        "video_loss_weight": 0.08,
        "feature_distillation_weight": 0.0,
        "max_clip_seconds": 30.0,
    },
    "iemocap": {
        # Speakers numbered by order of first appearance in the dialogue (preprocessing.py), two per dialogue.
        "num_speakers": 2,
        "speaker_vocab": None,
        "audio_loss_weight": 0.7,
        "video_loss_weight": 0.8,
        "feature_distillation_weight": 1.0,
        "max_clip_seconds": None,
    },
}


# Text encoders whose position ids start at `pad_token_id + 1` (RoBERTa's numbering); the others (BERT, MiniLM,
# ELECTRA, ...) number positions from 0.
_PADDING_OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text")


# Copied from hf_erc.models.telme.configuration_telme._sub_config
def _sub_config(value, config_class, defaults=None):
    """A sub-config from `None` (defaults), a dict (as read from JSON) or a config instance (kept as is).

    A dict naming another `model_type` than `config_class`'s (e.g. a BERT text encoder) builds that model type's
    configuration, without the defaults.
    """
    if isinstance(value, PretrainedConfig):
        return value
    if isinstance(value, dict) and value.get("model_type") not in (None, config_class.model_type):
        settings = {key: item for key, item in value.items() if key not in ("model_type", "transformers_version")}
        return AutoConfig.for_model(value["model_type"], **settings)
    settings = dict(defaults or {})
    if value is not None:
        if not isinstance(value, dict):
            raise TypeError(f"Expected a dict or a {config_class.__name__}, got {type(value).__name__}.")
        ignored = ("model_type", "transformers_version")
        settings.update({key: item for key, item in value.items() if key not in ignored})
    return config_class(**settings)


class MAGTKDConfig(PretrainedConfig):
    r"""
    Configuration of [`MAGTKDForEmotionRecognition`] (the fusion stage, a dialogue-level model over cached utterance
    features) and, through its stage subclasses, of the unimodal models [`MAGTKDTextModel`], [`MAGTKDAudioModel`]
    and [`MAGTKDVideoModel`]. A composite configuration: the three encoders' configurations are nested
    (`text_config`, `audio_config`, `video_config`), the rest are explicit fields. The defaults are the reference's
    MELD setting; use [`MAGTKDConfig.for_dataset`] for MELD or IEMOCAP.

    Args:
        text_config (`RobertaConfig` or `dict`, *optional*):
            The text model's encoder. Defaults to roberta-large with 9 extra embedding rows for the speaker tokens
            `<s1>`..`<s9>` (vocabulary 50274). Another encoder-only text model (e.g. a BERT-family `BertConfig`, or
            a dict with its `model_type`) can stand in for RoBERTa.
        audio_config (`Data2VecAudioConfig` or `dict`, *optional*):
            The audio model's encoder. Defaults to data2vec-audio-base-960h with `mask_time_length=3`.
        video_config (`TimesformerConfig` or `dict`, *optional*):
            The video model's encoder. Defaults to timesformer-base-finetuned-k400 (8 frames of 224x224).
        projection_size (`int`, *optional*, defaults to 768):
            Size of the text model's projected utterance embedding (the reference's `W`: 1024 -> 768), the text
            feature of the fusion and the vector the audio and video models are distilled towards.
        text_num_virtual_tokens (`int`, *optional*, defaults to 0):
            Learned prompt vectors prepended to the text model's input embeddings (a prompt-tuned text model whose
            PEFT prompt was folded in). 0 is the reference: a fully fine-tuned RoBERTa with a hand-written prompt.
        num_speaker_tokens (`int`, *optional*, defaults to 9):
            Number of speaker marker tokens added to the tokenizer.
        text_max_context_turns (`int`, *optional*):
            How many previous turns the text model's prompts keep (`None`: every earlier turn of the dialogue), recorded
            by the text stage (`--max_context_turns`) so that the stages that run the trained text model (the fusion)
            build the prompts it was trained on: embeddings of prompts with another context window are not what its
            classifier reads (on planted-signal data a text model trained without context gave fusion inputs worth 48 %
            where its own prediction scores 83 %).
        text_max_length (`int`, *optional*, defaults to 512):
            Most tokens of one text-model input, the appended `<mask>` included (the reference keeps the last 511).
        audio_sampling_rate (`int`, *optional*, defaults to 16000):
            Sampling rate the audio model expects (data2vec-audio is trained on 16 kHz speech).
        audio_max_seconds (`float`, *optional*, defaults to 25.0):
            Longest audio input; longer waveforms keep their *last* `audio_max_seconds` (TelME's data pipeline,
            which the reference's unimodal stages share).
        max_clip_seconds (`float`, *optional*, defaults to 30.0):
            Clips longer than this have no usable audio and video (MELD 30; `None` keeps every clip, IEMOCAP).
        modalities (`list[str]`, *optional*, defaults to `["text", "audio", "video"]`):
            The modalities the fusion reads: `"text"` (the anchor, required) and any of `"audio"`, `"video"`.
        hidden_size (`int`, *optional*, defaults to 768):
            Width of the fusion. The reference has no input projection: every utterance feature must have this size.
        num_attention_heads (`int`, *optional*, defaults to 8):
            Heads of every intra- and inter-modal transformer of the fusion.
        num_hidden_layers (`int`, *optional*, defaults to 1):
            Layers of each of those transformers (the reference: 1).
        intermediate_size (`int`, *optional*):
            Width of the feed-forward block of a transformer layer; defaults to `hidden_size`, as in the reference.
        dropout (`float`, *optional*, defaults to 0.5):
            The single dropout rate of the fusion (inputs of inter-modal transformers, attention probabilities,
            residual branches, feed-forward block).
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the fusion's layer norms.
        num_speakers (`int`, *optional*, defaults to 304):
            Number of speaker ids (MELD 304, IEMOCAP 2); `speaker_ids` take values in `[0, num_speakers)`. One more
            embedding row (index `num_speakers`, kept at zero) is used for padding.
        speaker_vocab (`dict[str, int]`, *optional*):
            How speaker names map to `speaker_ids` (MELD: the 304 names of the reference's `speaker2id.json`).
            `None` numbers the speakers of each dialogue by order of first appearance (IEMOCAP). Stored so that
            inference builds the same ids as training.
        unknown_speaker_id (`int`, *optional*):
            The speaker id of every name missing from `speaker_vocab` (MELD-layout data with characters the 304-name
            table does not know), in `[0, num_speakers)`. `None` (the reference, whose `speaker2id.json` lookup has
            no fallback) makes such a name an error that names this field. `num_speakers=305, unknown_speaker_id=304`
            (in a training YAML: `config_overrides: {num_speakers: 305, unknown_speaker_id: 304}`) gives the unknown
            speakers one embedding row of their own, learnt in training, and leaves the known speakers' ids as they
            are. Stored so that serving maps unknown speakers as training did. The text model's prompts need no
            setting: [`MAGTKDProcessor`] numbers the names its table lacks after it.
        max_position_embeddings (`int`, *optional*, defaults to 512):
            Longest dialogue (in utterances) the sinusoidal position encoding covers.
        share_anchor_encoder (`bool`, *optional*, defaults to `True`):
            Whether the three transformers and gates that update the text anchor (from text, from the enhanced
            audio, from the enhanced video) share one set of weights. The reference declares three of each but
            calls the text-to-text ones all three times; `True` reproduces it (and loads its weights), `False`
            gives each its own weights.
        distillation_temperature (`float`, *optional*, defaults to 2.0):
            Temperature of the logit distillation (DIST) from the fused (text-anchor) prediction to the audio and
            video predictions.
        feature_distillation_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the batch-similarity softmaxes of the feature distillation.
        fused_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the cross-entropy of the fused prediction.
        audio_loss_weight, video_loss_weight (`float`, *optional*, defaults to 0.01 and 0.08):
            Weight of each modality's block `CE + logit_distillation_weight * DIST + feature_distillation_weight *
            feature KD` (MELD 0.01 / 0.08, IEMOCAP 0.7 / 0.8).
        logit_distillation_weight (`float`, *optional*, defaults to 1.0):
            Weight of DIST inside each modality's block.
        feature_distillation_weight (`float`, *optional*, defaults to 0.0):
            Weight of the feature distillation inside each modality's block (MELD 0: the reference computes it and
            drops it; IEMOCAP 1).
        dataset_name (`str`, *optional*):
            The dataset whose labels and preset the model uses (`"meld"` or `"iemocap"`), set by `for_dataset`.
        causal (`bool`, *optional*, defaults to `False`):
            Online (causal) ERC for the fusion: every intra- and inter-modal attention over the dialogue's turns
            also masks future turns, so each turn is labelled from the turns up to it only (later turns never change
            earlier outputs). `False` is the reference, which reads the whole dialogue. The unimodal models read one
            utterance (text: with the turns before it) and are causal either way.
        anchor_reads_aligned_features (`bool`, *optional*, defaults to `False`):
            Whether the text anchor's reduction also reads the enhanced audio and video of its *own* turn (zeros
            where that modality is missing), concatenated after its three branches. In the reference (`False`) the
            anchor meets audio and video only through attention over the dialogue's turns: to use an utterance's
            own tone or face it must learn to attend to its own position, which a few hundred training dialogues do
            not teach (on planted-signal data the reference fusion falls to its text cue, below a linear model on
            the same three embeddings). `True` gives the fused prediction a direct path to every modality of the
            turn; the attention paths stay. Default-preprocessing fusion runs set it (`hf_erc.training.stages.fusion`).
        normalize_features (`bool`, *optional*, defaults to `False`):
            Whether each utterance feature is scaled to unit root-mean-square (per utterance and modality, no
            learnt parameters) before the speaker and position embeddings are added. The reference (`False`) feeds
            the stage models' outputs as they are, so a modality whose embeddings are ten times larger than another's
            dominates every attention and is not swamped by the position encoding, whatever it carries. Default-
            preprocessing fusion runs set it.

    Example:

    ```python
    >>> from hf_erc.models import MAGTKDConfig, MAGTKDForEmotionRecognition

    >>> config = MAGTKDConfig.for_dataset("meld")
    >>> model = MAGTKDForEmotionRecognition(config)
    ```
    """

    model_type = "magtkd-erc"
    sub_configs_defaults = {
        "text_config": RobertaConfig,
        "audio_config": Data2VecAudioConfig,
        "video_config": TimesformerConfig,
    }
    # What `Trainer.predict`/`evaluate` leave out of the predictions: they keep `logits` and `modality_logits`.
    keys_to_ignore_at_inference = [
        "loss_components",
        "fused_hidden_states",
        "modality_hidden_states",
        "gate_values",
        "utterance_embeddings",
    ]

    def __init__(
        self,
        text_config=None,
        audio_config=None,
        video_config=None,
        projection_size=768,
        text_num_virtual_tokens=0,
        num_speaker_tokens=MAGTKD_NUM_SPEAKER_TOKENS,
        text_max_length=512,
        text_max_context_turns=None,
        audio_sampling_rate=16000,
        audio_max_seconds=25.0,
        max_clip_seconds=30.0,
        modalities=MAGTKD_MODALITIES,
        hidden_size=768,
        num_attention_heads=8,
        num_hidden_layers=1,
        intermediate_size=None,
        dropout=0.5,
        layer_norm_eps=1e-6,
        num_speakers=MELD_NUM_SPEAKERS,
        speaker_vocab=None,
        unknown_speaker_id=None,
        max_position_embeddings=512,
        share_anchor_encoder=True,
        distillation_temperature=2.0,
        feature_distillation_temperature=1.0,
        fused_loss_weight=1.0,
        audio_loss_weight=0.01,
        video_loss_weight=0.08,
        logit_distillation_weight=1.0,
        feature_distillation_weight=0.0,
        dataset_name=None,
        causal=False,
        anchor_reads_aligned_features=False,
        normalize_features=False,
        **kwargs,
    ):
        self.text_config = _sub_config(text_config, RobertaConfig, _ROBERTA_LARGE)
        self.audio_config = _sub_config(audio_config, Data2VecAudioConfig, MAGTKD_AUDIO_ENCODER_SETTINGS)
        self.video_config = _sub_config(video_config, TimesformerConfig)
        self.projection_size = projection_size
        self.text_num_virtual_tokens = text_num_virtual_tokens
        self.num_speaker_tokens = num_speaker_tokens
        self.text_max_length = text_max_length
        self.text_max_context_turns = None if text_max_context_turns is None else int(text_max_context_turns)
        self.audio_sampling_rate = audio_sampling_rate
        self.audio_max_seconds = float(audio_max_seconds)
        self.max_clip_seconds = None if max_clip_seconds is None else float(max_clip_seconds)
        if isinstance(modalities, str):
            modalities = [modalities]
        unknown = [modality for modality in modalities if modality not in MAGTKD_MODALITIES]
        if unknown or "text" not in modalities:
            raise ValueError(
                f"MAGTKDConfig.modalities must contain 'text' (the anchor) and only {list(MAGTKD_MODALITIES)}, got "
                f"{list(modalities)}."
            )
        self.modalities = [modality for modality in MAGTKD_MODALITIES if modality in modalities]
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = hidden_size if intermediate_size is None else intermediate_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.num_speakers = num_speakers
        self.speaker_vocab = (
            None if speaker_vocab is None else {str(name): int(index) for name, index in speaker_vocab.items()}
        )
        self.unknown_speaker_id = None if unknown_speaker_id is None else int(unknown_speaker_id)
        self.max_position_embeddings = max_position_embeddings
        self.share_anchor_encoder = share_anchor_encoder
        self.distillation_temperature = float(distillation_temperature)
        self.feature_distillation_temperature = float(feature_distillation_temperature)
        self.fused_loss_weight = fused_loss_weight
        self.audio_loss_weight = audio_loss_weight
        self.video_loss_weight = video_loss_weight
        self.logit_distillation_weight = logit_distillation_weight
        self.feature_distillation_weight = feature_distillation_weight
        self.dataset_name = dataset_name
        self.causal = bool(causal)
        self.anchor_reads_aligned_features = bool(anchor_reads_aligned_features)
        self.normalize_features = bool(normalize_features)
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            kwargs["id2label"] = dict(enumerate(_DATASET_LABELS["meld"]))
            kwargs["label2id"] = {label: index for index, label in enumerate(_DATASET_LABELS["meld"])}
        super().__init__(**kwargs)
        self._validate()

    def _validate(self):
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"MAGTKDConfig.hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.distillation_temperature <= 0 or self.feature_distillation_temperature <= 0:
            raise ValueError(
                "MAGTKDConfig.distillation_temperature and feature_distillation_temperature must be positive."
            )
        if self.num_speakers < 1:
            raise ValueError(f"MAGTKDConfig.num_speakers must be at least 1, got {self.num_speakers}.")
        if self.speaker_vocab is not None:
            outside = sorted(name for name, index in self.speaker_vocab.items() if not 0 <= index < self.num_speakers)
            if outside:
                raise ValueError(
                    f"MAGTKDConfig.speaker_vocab maps {outside[:5]} outside [0, num_speakers={self.num_speakers})."
                )
        if self.unknown_speaker_id is not None and not 0 <= self.unknown_speaker_id < self.num_speakers:
            raise ValueError(
                f"MAGTKDConfig.unknown_speaker_id={self.unknown_speaker_id} lies outside [0, num_speakers="
                f"{self.num_speakers}): for a row of its own, set num_speakers={self.num_speakers + 1} and "
                f"unknown_speaker_id={self.num_speakers}."
            )
        if self.text_num_virtual_tokens < 0:
            raise ValueError(f"MAGTKDConfig.text_num_virtual_tokens must be >= 0, got {self.text_num_virtual_tokens}.")
        if self.text_max_length + self.text_num_virtual_tokens > self.max_text_positions:
            raise ValueError(
                f"MAGTKDConfig.text_max_length ({self.text_max_length}) + text_num_virtual_tokens "
                f"({self.text_num_virtual_tokens}) exceeds the {self.max_text_positions} positions of the text encoder: "
                "lower text_max_length."
            )

    def to_dict(self):
        output = super().to_dict()
        # One model, one dtype: `from_pretrained` sets the sub-configs' dtype to the model's, so record it that way.
        if output.get("dtype") is not None:
            for name in self.sub_configs:
                output[name]["dtype"] = output["dtype"]
        return output

    def feature_dim(self, modality):
        """Size of the fusion's input feature of `modality`: `hidden_size` for every modality (no input projection)."""
        if modality not in self.modalities:
            raise ValueError(f"This MAGTKD fusion reads {self.modalities}, not {modality!r}.")
        return self.hidden_size

    # Copied from hf_erc.models.telme.configuration_telme.TelMEConfig.video_num_frames
    @property
    def video_num_frames(self):
        """Frames per video clip the video student reads (the reference: 8)."""
        return self.video_config.num_frames

    # Copied from hf_erc.models.telme.configuration_telme.TelMEConfig.video_frame_size
    @property
    def video_frame_size(self):
        """Height and width of each video frame after cropping (the reference: 224)."""
        return self.video_config.image_size

    # Copied from hf_erc.models.telme.configuration_telme.TelMEConfig.text_first_position with TelME->MAGTKD
    @property
    def text_first_position(self):
        """Position id of a sequence's first token: `pad_token_id + 1` for RoBERTa-family encoders, 0 otherwise."""
        if self.text_config.model_type in _PADDING_OFFSET_POSITION_MODELS:
            return self.text_config.pad_token_id + 1
        return 0

    # Copied from hf_erc.models.telme.configuration_telme.TelMEConfig.max_text_positions with TelME->MAGTKD
    @property
    def max_text_positions(self):
        """Longest text input (virtual tokens included) the text encoder's position embeddings cover."""
        return self.text_config.max_position_embeddings - self.text_first_position

    # Copied from hf_erc.models.telme.configuration_telme.TelMEConfig.for_dataset with TelME->MAGTKD, TELME->MAGTKD
    @classmethod
    def for_dataset(cls, dataset, modalities=None, **overrides):
        r"""
        The reference configuration for `dataset` (`"meld"` or `"iemocap"`): the dataset's preset
        (`_DATASET_PRESETS`, with the reference's per-dataset settings) and its labels in the canonical order.
        `modalities` restricts the inputs (e.g. `["text", "audio"]`; text is required); `overrides` replace any
        field (sub-configs included; a given `audio_config` still gets the reference's `mask_time_length=3`).
        """
        key = dataset.lower()
        if key not in _DATASET_PRESETS:
            raise ValueError(
                f"Unknown dataset {dataset!r}: MAGTKDConfig.for_dataset expects one of {sorted(_DATASET_PRESETS)}."
            )
        labels = _DATASET_LABELS[key]
        settings = dict(_DATASET_PRESETS[key], dataset_name=key)
        settings["id2label"] = dict(enumerate(labels))
        settings["label2id"] = {label: index for index, label in enumerate(labels)}
        if modalities is not None:
            settings["modalities"] = modalities
        settings.update(overrides)
        audio_config = settings.get("audio_config")
        if isinstance(audio_config, PretrainedConfig):
            for name, value in MAGTKD_AUDIO_ENCODER_SETTINGS.items():
                setattr(audio_config, name, value)
        elif isinstance(audio_config, dict):
            settings["audio_config"] = {**audio_config, **MAGTKD_AUDIO_ENCODER_SETTINGS}
        return cls(**settings)

    # Copied from hf_erc.models.telme.configuration_telme.TelMEConfig.stage_config with TelME->MAGTKD
    def stage_config(self, config_class):
        """This configuration as `config_class` (another MAGTKD configuration class), sharing the sub-configs.

        The stage models (teacher, students) use their own configuration class so that a stage checkpoint
        records its own `model_type` and `AutoModel` loads the right class; the sub-config objects are shared,
        not copied, so settings such as the attention implementation stay in one place.
        """
        if type(self) is config_class:
            return self
        fields = self.to_dict()
        for name in ("model_type", "transformers_version", "architectures", "auto_map", *self.sub_configs):
            fields.pop(name, None)
        sub_configs = {name: getattr(self, name) for name in self.sub_configs}
        # Building a config resets its sub-configs' attention implementation; keep the shared ones as they are.
        implementations = {name: sub_config._attn_implementation for name, sub_config in sub_configs.items()}
        stage = config_class(**fields, **sub_configs)
        for name, implementation in implementations.items():
            sub_configs[name]._attn_implementation_internal = implementation
        stage._attn_implementation_internal = self._attn_implementation
        return stage


class MAGTKDTextModelConfig(MAGTKDConfig):
    r"""[`MAGTKDConfig`] of a text-model checkpoint, [`MAGTKDTextModel`] (same fields)."""

    model_type = "magtkd-erc-text"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class MAGTKDAudioModelConfig(MAGTKDConfig):
    r"""[`MAGTKDConfig`] of an audio-model checkpoint (plain or distilled), [`MAGTKDAudioModel`] (same fields)."""

    model_type = "magtkd-erc-audio"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class MAGTKDVideoModelConfig(MAGTKDConfig):
    r"""[`MAGTKDConfig`] of a video-model checkpoint (plain or distilled), [`MAGTKDVideoModel`] (same fields)."""

    model_type = "magtkd-erc-video"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


__all__ = [
    "MAGTKDAudioModelConfig",
    "MAGTKDConfig",
    "MAGTKDTextModelConfig",
    "MAGTKDVideoModelConfig",
]

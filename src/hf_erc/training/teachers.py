"""Parameter-efficient training of text teachers, and folding the result back into a plain model.

A *teacher* here is any module with

- an ``encoder`` attribute holding a `transformers` encoder (RoBERTa for TelME and MAGTKD) that the teacher
  calls as ``encoder(input_ids=..., attention_mask=..., [position_ids=...])``, or with ``inputs_embeds`` when
  it prepends virtual tokens itself;
- an optional ``virtual_token_embeddings`` slot (``None`` or an ``nn.Parameter`` of shape
  ``[num_virtual_tokens, hidden_size]``) and a config field holding that count (TelME:
  ``text_num_virtual_tokens``);
- a read-out at an index of ``input_ids`` (TelME and MAGTKD: the ``<mask>``, the last position under their left
  padding).

`apply_peft` wraps ``teacher.encoder`` with `peft` (prompt tuning, P-tuning, prefix tuning or LoRA) or leaves
it for full fine-tuning, and sets which parameters train. `fold_peft` turns the trained teacher back into a
plain one: LoRA is merged into the encoder weights; a prompt (prompt tuning, or P-tuning's prompt encoder run
once) is copied into ``virtual_token_embeddings``. The folded teacher saves and loads with
``save_pretrained``/``from_pretrained`` where `peft` is not installed.

How virtual tokens are fed, in training (`PrependedPromptEncoder`) and in the folded teacher alike, with ``k``
virtual tokens, a batch of ``B`` rows of ``L`` tokens and RoBERTa's ``padding_idx`` (``pad_token_id``, 1):

1. ``inputs_embeds = word_embeddings(input_ids)`` (the word embeddings only);
2. ``inputs_embeds = cat([prompt.to(inputs_embeds.dtype).expand(B, k, hidden), inputs_embeds], dim=1)``: the
   virtual tokens come first, before ``<s>`` and before any left padding;
3. ``attention_mask = cat([attention_mask.new_ones(B, k), attention_mask], dim=1)``;
4. ``position_ids = cumsum(attention_mask, 1) * attention_mask + padding_idx`` over that extended mask: the
   virtual tokens take positions ``padding_idx+1 .. padding_idx+k``, the real tokens continue from
   ``padding_idx+k+1`` whatever the left padding, padding keeps ``padding_idx`` (RoBERTa's own numbering, as
   if the virtual tokens were ``k`` real tokens); a BERT-family encoder, whose positions start at 0, gets
   ``0 .. k-1`` and ``k ..`` the same way; token type 0 everywhere;
5. ``encoder(inputs_embeds=..., attention_mask=..., position_ids=...)``; the token at index ``i`` of
   ``input_ids`` is at index ``i + k`` of the output (the last position stays last).

This is not PEFT's own forward, on purpose: `PeftModelForFeatureExtraction` (peft 0.21) drops any
``position_ids`` for prompt tuning and P-tuning and lets RoBERTa number the positions from ``inputs_embeds``,
i.e. sequentially through the left padding, so a row's real tokens would sit at positions that grow with the
padding its batch gave it and an utterance's prediction would change with its batch. The encoder's position
table must hold ``k + L`` positions (RoBERTa: ``k + L <= max_position_embeddings - padding_idx - 1 = 512``),
so the text processor keeps ``k`` fewer tokens than without virtual tokens.
"""

from dataclasses import dataclass, field
from typing import Literal

import torch
from peft import (
    LoraConfig,
    PeftModel,
    PeftType,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptTuningConfig,
    TaskType,
    get_peft_model,
)
from torch import nn

TEACHER_TRAINING_METHODS = ("prompt_tuning", "p_tuning", "prefix_tuning", "lora", "full")
# Methods whose virtual tokens are prepended to the input sequence (and can be folded into
# `virtual_token_embeddings`).
PREPENDING_METHODS = ("prompt_tuning", "p_tuning")
PROMPT_TUNING_INITS = ("random", "sample_vocab", "text")
DEFAULT_NUM_VIRTUAL_TOKENS_FIELD = "text_num_virtual_tokens"


@dataclass
class TeacherPeftArguments:
    """How the text teacher's encoder is trained: fully, or with one PEFT method.

    The default, ``full``, is what the released TelME and MAGTKD code do: both fine-tune every weight of
    RoBERTa-large on the hand-written cloze prompt "... Now <sK> feels <mask>" (MAGTKD's "prompt learning"
    is that discrete prompt; neither defines learned virtual tokens, a LoRA rank or a prefix). The PEFT
    settings below therefore take the defaults of the methods' own papers and of `peft`: 20 virtual tokens
    (Lester et al., 2021, where prompt tuning's quality levels off), LoRA r=8, alpha=16 on RoBERTa's query
    and value projections (Hu et al., 2021).
    """

    method: Literal["prompt_tuning", "p_tuning", "prefix_tuning", "lora", "full"] = field(
        default="full",
        metadata={
            "help": "prompt_tuning / p_tuning (learned virtual tokens prepended to the input), prefix_tuning "
            "(learned key/value prefixes in every layer), lora (low-rank updates of attention weights), or full "
            "(fine-tune the whole encoder, as TelME and MAGTKD do). Only prompt_tuning, p_tuning, lora and full "
            "give a checkpoint that loads without peft."
        },
    )
    num_virtual_tokens: int = field(
        default=20, metadata={"help": "Virtual tokens of prompt_tuning, p_tuning and prefix_tuning."}
    )
    prompt_tuning_init: Literal["random", "sample_vocab", "text"] = field(
        default="random",
        metadata={
            "help": "prompt_tuning initialisation: random vectors, embeddings of random vocabulary tokens, or the "
            "embeddings of --prompt_tuning_init_text (needs --tokenizer_name_or_path)."
        },
    )
    prompt_tuning_init_text: str | None = field(
        default=None, metadata={"help": "Text whose token embeddings initialise the prompt (prompt_tuning_init=text)."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer (local folder or Hub id) that splits --prompt_tuning_init_text into tokens."},
    )
    encoder_reparameterization_type: Literal["MLP", "LSTM"] = field(
        default="MLP", metadata={"help": "p_tuning: network that produces the virtual tokens."}
    )
    encoder_hidden_size: int | None = field(
        default=None,
        metadata={
            "help": "Hidden size of the p_tuning prompt encoder and of the prefix_tuning projection "
            "(default: the encoder's hidden size)."
        },
    )
    encoder_num_layers: int = field(default=2, metadata={"help": "p_tuning with LSTM: number of LSTM layers."})
    encoder_dropout: float = field(default=0.0, metadata={"help": "p_tuning with LSTM: dropout between LSTM layers."})
    prefix_projection: bool = field(
        default=False,
        metadata={"help": "prefix_tuning: produce the prefixes with a two-layer MLP instead of learning them."},
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (updates are scaled by alpha / r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["query", "value"],
        metadata={"help": "Encoder linear layers that get LoRA updates (RoBERTa: query, key, value, dense)."},
    )
    train_head: bool = field(
        default=True,
        metadata={
            "help": "Also train the teacher's parameters outside its encoder (projection, classifier, and an "
            "already folded prompt). With a PEFT method the encoder's own weights stay frozen."
        },
    )

    def __post_init__(self):
        if self.method not in TEACHER_TRAINING_METHODS:
            raise ValueError(f"method must be one of {', '.join(TEACHER_TRAINING_METHODS)}, got {self.method!r}.")
        if self.prompt_tuning_init not in PROMPT_TUNING_INITS:
            raise ValueError(
                f"prompt_tuning_init must be one of {', '.join(PROMPT_TUNING_INITS)}, got {self.prompt_tuning_init!r}."
            )
        if self.method in ("prompt_tuning", "p_tuning", "prefix_tuning") and self.num_virtual_tokens < 1:
            raise ValueError(
                f"num_virtual_tokens must be at least 1 for {self.method}, got {self.num_virtual_tokens}."
            )
        if self.method == "prompt_tuning" and self.prompt_tuning_init == "text":
            if not self.prompt_tuning_init_text or not self.tokenizer_name_or_path:
                raise ValueError(
                    "prompt_tuning_init=text needs both prompt_tuning_init_text (the words to start from) and "
                    "tokenizer_name_or_path (the teacher's tokenizer, e.g. the RoBERTa checkpoint folder)."
                )
        if self.method == "lora" and (self.lora_r < 1 or not self.lora_target_modules):
            raise ValueError("lora needs lora_r >= 1 and at least one name in lora_target_modules.")

    def to_peft_config(self):
        """The `peft` config of `method` (task FEATURE_EXTRACTION: the encoder returns hidden states), or
        ``None`` for full fine-tuning."""
        common = {"task_type": TaskType.FEATURE_EXTRACTION}
        if self.method == "prompt_tuning":
            text_init = self.prompt_tuning_init == "text"
            return PromptTuningConfig(
                num_virtual_tokens=self.num_virtual_tokens,
                prompt_tuning_init=self.prompt_tuning_init.upper(),
                prompt_tuning_init_text=self.prompt_tuning_init_text if text_init else None,
                tokenizer_name_or_path=self.tokenizer_name_or_path if text_init else None,
                **common,
            )
        if self.method == "p_tuning":
            return PromptEncoderConfig(
                num_virtual_tokens=self.num_virtual_tokens,
                encoder_reparameterization_type=self.encoder_reparameterization_type,
                encoder_hidden_size=self.encoder_hidden_size,
                encoder_num_layers=self.encoder_num_layers,
                encoder_dropout=self.encoder_dropout,
                **common,
            )
        if self.method == "prefix_tuning":
            return PrefixTuningConfig(
                num_virtual_tokens=self.num_virtual_tokens,
                prefix_projection=self.prefix_projection,
                encoder_hidden_size=self.encoder_hidden_size,
                **common,
            )
        if self.method == "lora":
            return LoraConfig(
                r=self.lora_r,
                lora_alpha=self.lora_alpha,
                lora_dropout=self.lora_dropout,
                target_modules=list(self.lora_target_modules),
                **common,
            )
        return None


class PrependedPromptEncoder(nn.Module):
    """``teacher.encoder`` while a prompt trains (prompt tuning or P-tuning): PEFT's virtual tokens, fed as the
    folded teacher feeds its ``virtual_token_embeddings`` (module docstring, steps 1-5).

    Holds the `peft.PeftModel` (``peft_model``), which creates, initialises and saves the prompt. Its output is
    aligned with ``input_ids``: the ``k`` leading hidden states of the virtual tokens are dropped from
    ``last_hidden_state`` and ``hidden_states`` (``attentions`` keep all ``k + L`` positions), so a teacher
    reads the same index with or without a prompt in training.
    """

    def __init__(self, peft_model: PeftModel):
        super().__init__()
        self.peft_model = peft_model

    @property
    def num_virtual_tokens(self) -> int:
        return self.peft_model.active_peft_config.num_virtual_tokens

    @property
    def config(self):
        return self.peft_model.get_base_model().config

    def get_input_embeddings(self) -> nn.Module:
        return self.peft_model.get_base_model().get_input_embeddings()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        token_type_ids=None,
        inputs_embeds=None,
        return_dict=True,
        **kwargs,
    ):
        encoder = self.peft_model.get_base_model()
        if inputs_embeds is None:
            inputs_embeds = encoder.get_input_embeddings()(input_ids)
        batch_size, length = inputs_embeds.shape[:2]
        num_virtual = self.num_virtual_tokens
        device = inputs_embeds.device
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, length, dtype=torch.long, device=device)
        attended = attention_mask.ne(0).long()
        first_position = _first_position(encoder)
        if position_ids is None:
            # What the encoder derives from input_ids, over the attended tokens only: RoBERTa numbers them from
            # padding_idx + 1 (padding_idx on padding), BERT-family encoders from 0.
            padding_position = max(first_position - 1, 0)
            position_ids = (torch.cumsum(attended, dim=1) - 1 + first_position - padding_position) * attended
            position_ids = position_ids + padding_position
        virtual_positions = torch.arange(first_position, first_position + num_virtual, device=device)
        position_ids = torch.cat(
            [virtual_positions.expand(batch_size, -1), position_ids + num_virtual * attended], dim=1
        )
        if token_type_ids is not None:
            token_type_ids = torch.cat([token_type_ids.new_zeros(batch_size, num_virtual), token_type_ids], dim=1)

        prompt = self.peft_model.get_prompt(batch_size=batch_size).to(inputs_embeds.dtype)
        outputs = encoder(
            inputs_embeds=torch.cat([prompt, inputs_embeds], dim=1),
            attention_mask=torch.cat([attention_mask.new_ones(batch_size, num_virtual), attention_mask], dim=1),
            position_ids=position_ids,
            token_type_ids=token_type_ids,
            return_dict=True,
            **kwargs,
        )
        outputs["last_hidden_state"] = outputs.last_hidden_state[:, num_virtual:]
        if outputs.get("hidden_states") is not None:
            outputs["hidden_states"] = tuple(states[:, num_virtual:] for states in outputs.hidden_states)
        return outputs if return_dict else outputs.to_tuple()


def _first_position(encoder: nn.Module) -> int:
    """Position id of a sequence's first token: RoBERTa-family embeddings (which hold a ``padding_idx``) number
    positions from ``padding_idx + 1``, BERT-family ones from 0."""
    padding_idx = getattr(getattr(encoder, "embeddings", None), "padding_idx", None)
    return 0 if padding_idx is None else padding_idx + 1


def _encoder_of(teacher: nn.Module) -> nn.Module:
    encoder = getattr(teacher, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"{type(teacher).__name__} has no `encoder` module: a text teacher must hold its transformers encoder "
            "in `teacher.encoder`."
        )
    return encoder


def _folded_prompt_length(teacher: nn.Module, num_virtual_tokens_field: str) -> int:
    embeddings = getattr(teacher, "virtual_token_embeddings", None)
    if embeddings is not None:
        return embeddings.shape[0]
    config = getattr(teacher, "config", None)
    return int(getattr(config, num_virtual_tokens_field, 0) or 0)


def apply_peft(
    teacher: nn.Module, args: TeacherPeftArguments, num_virtual_tokens_field: str = DEFAULT_NUM_VIRTUAL_TOKENS_FIELD
) -> nn.Module:
    """Prepare `teacher` for training with `args.method` and set which parameters train.

    For a PEFT method, ``teacher.encoder`` is replaced (in place) by a `peft.PeftModel` around it (for prompt
    tuning and P-tuning, inside a `PrependedPromptEncoder`), whose only trainable parameters are the method's
    own; every parameter outside the encoder trains if ``args.train_head``. For ``full``, the encoder is left
    as it is and trains entirely.

    The teacher's read-out needs no change: the encoder's output stays aligned with ``input_ids`` in every
    method (prefix tuning and LoRA keep the sequence; `PrependedPromptEncoder` drops the virtual tokens'
    states), and positions are numbered as the folded teacher numbers them (module docstring).

    Returns the same `teacher`.
    """
    encoder = _encoder_of(teacher)
    if isinstance(encoder, (PeftModel, PrependedPromptEncoder)):
        raise ValueError(
            f"{type(teacher).__name__}.encoder is already wrapped by PEFT; call fold_peft(teacher) before applying "
            "another method."
        )
    if args.method in PREPENDING_METHODS:
        folded = _folded_prompt_length(teacher, num_virtual_tokens_field)
        if folded:
            raise ValueError(
                f"The teacher already prepends {folded} folded virtual tokens ({num_virtual_tokens_field}="
                f"{folded}); a second {args.method} prompt would stack on them. Continue it with method=full or "
                "lora, or start from a teacher without virtual tokens."
            )

    peft_config = args.to_peft_config()
    if peft_config is None:
        encoder.requires_grad_(True)
    else:
        # get_peft_model freezes the encoder's weights and leaves only the method's parameters trainable.
        peft_model = get_peft_model(encoder, peft_config)
        teacher.encoder = PrependedPromptEncoder(peft_model) if args.method in PREPENDING_METHODS else peft_model
    for name, parameter in teacher.named_parameters():
        if not name.startswith("encoder."):
            parameter.requires_grad_(args.train_head)
    return teacher


def fold_peft(teacher: nn.Module, num_virtual_tokens_field: str = DEFAULT_NUM_VIRTUAL_TOKENS_FIELD) -> nn.Module:
    """Turn a teacher trained through `apply_peft` into a plain one with the same outputs (in eval mode).

    - LoRA: the low-rank updates are merged into the encoder's weights (`merge_and_unload`).
    - prompt tuning / P-tuning: the virtual token embeddings `PrependedPromptEncoder` prepends (for P-tuning,
      the output of the prompt encoder, computed once in eval mode) become ``teacher.virtual_token_embeddings`` (an
      ``nn.Parameter`` in the word embeddings' dtype), the config field `num_virtual_tokens_field` is set to
      their count, and ``teacher.encoder`` becomes the bare encoder. The teacher's forward must then prepend
      them exactly as the module docstring describes.
    - prefix tuning: refused with `NotImplementedError` (see the message).
    - full fine-tuning (no `PeftModel`): nothing to fold.

    Works in place and returns the same `teacher`, which then holds no `peft` object.
    """
    encoder = _encoder_of(teacher)
    if isinstance(encoder, PrependedPromptEncoder):
        peft_model = encoder.peft_model
        # P-tuning's LSTM has dropout: the folded prompt is the eval-mode one (the PEFT model is dropped below).
        peft_model.prompt_encoder[peft_model.active_adapter].eval()
        with torch.no_grad():
            # The call the training forward makes; one row, since every row gets the same prompt.
            prompt = peft_model.get_prompt(batch_size=1)[0]
        base_model = peft_model.get_base_model()
        dtype = base_model.get_input_embeddings().weight.dtype
        teacher.encoder = base_model
        teacher.virtual_token_embeddings = nn.Parameter(prompt.to(dtype).clone())
        setattr(teacher.config, num_virtual_tokens_field, prompt.shape[0])
        return _checked_plain(teacher)
    if not isinstance(encoder, PeftModel):
        return teacher

    peft_config = encoder.active_peft_config
    if peft_config.peft_type == PeftType.LORA:
        teacher.encoder = encoder.merge_and_unload()
    elif peft_config.peft_type == PeftType.PREFIX_TUNING:
        raise NotImplementedError(
            "A prefix-tuned teacher cannot be folded into a plain checkpoint: its trained key/value prefixes live "
            "inside every attention layer and a plain RoBERTa only takes them as `past_key_values`, which "
            "transformers has deprecated for RoBERTa. Train the teacher with prompt_tuning, p_tuning or lora for a "
            "checkpoint that loads without peft, or keep this one as a PEFT adapter (encoder.save_pretrained)."
        )
    else:
        raise NotImplementedError(
            f"fold_peft does not know how to fold {peft_config.peft_type}; teachers are trained with one of "
            f"{', '.join(TEACHER_TRAINING_METHODS)}."
        )
    return _checked_plain(teacher)


def _checked_plain(teacher: nn.Module) -> nn.Module:
    leftovers = [name for name, module in teacher.named_modules() if type(module).__module__.startswith("peft")]
    if leftovers:
        raise RuntimeError(f"fold_peft left peft modules in the teacher: {', '.join(leftovers)}.")
    return teacher

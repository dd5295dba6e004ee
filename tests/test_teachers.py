"""PEFT text teachers: which parameters train, where the read-out lands, and folding into a plain model."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast, RobertaModel

from hf_erc.models import TelMEConfig, TelMETextTeacher
from hf_erc.training.teachers import PrependedPromptEncoder, TeacherPeftArguments, apply_peft, fold_peft

PAD, BOS, EOS, MASK = 1, 0, 2, 3
NUM_VIRTUAL_TOKENS = 4
NUM_LABELS = 3
PEFT_METHODS = ("prompt_tuning", "p_tuning", "prefix_tuning", "lora")


def make_teacher(seed=0, num_virtual_tokens=0):
    """A TelME text teacher over a tiny random RoBERTa (hidden 32, 2 layers, 2 heads, vocabulary 100)."""
    torch.manual_seed(seed)
    text_config = {
        "vocab_size": 100,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        # Ten times RoBERTa's 0.02: at 0.02 a tiny random encoder's last position barely sees its context or
        # a prompt, and a frozen-encoder method hardly moves the loss within a few steps.
        "initializer_range": 0.2,
    }
    config = TelMEConfig(
        text_config=text_config,
        text_max_length=40,
        text_num_virtual_tokens=num_virtual_tokens,
        projection_size=16,
        fusion_hidden_size=16,
        num_labels=NUM_LABELS,
    )
    return TelMETextTeacher(config)


def left_padded_batch():
    """Rows of different lengths, left-padded, each ending with `<mask>` (the teacher reads the last position)."""
    rows = [[BOS, 10, 11, 12, 13, 14, EOS, 20, MASK], [BOS, 30, 31, EOS, 21, MASK], [BOS, 40, EOS, 22, MASK]]
    width = max(len(row) for row in rows)
    input_ids = torch.tensor([[PAD] * (width - len(row)) + row for row in rows])
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": torch.tensor([0, 1, 2])}


def single_row(batch, index):
    """Row `index` of a left-padded batch alone, without its padding."""
    keep = batch["attention_mask"][index].bool()
    return {
        "input_ids": batch["input_ids"][index : index + 1, keep],
        "attention_mask": batch["attention_mask"][index : index + 1, keep],
    }


def peft_args(method, **overrides):
    settings = {"method": method, "num_virtual_tokens": NUM_VIRTUAL_TOKENS, "lora_r": 4, "encoder_hidden_size": 16}
    settings.update(overrides)
    return TeacherPeftArguments(**settings)


def train(teacher, batch, steps=6, learning_rate=3e-3):
    optimizer = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=learning_rate)
    teacher.train()
    for _ in range(steps):
        teacher(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return teacher.eval()


def eval_loss(teacher, batch):
    with torch.no_grad():
        return teacher.eval()(**batch).loss.item()


def is_method_parameter(method, name):
    """Whether encoder parameter `name` belongs to the PEFT method (and so should train)."""
    return method == "full" or ("lora_" in name if method == "lora" else "prompt_encoder" in name)


def encode_with_prompt(roberta, prompt, input_ids, attention_mask):
    """The specification of `hf_erc.training.teachers` (module docstring, steps 1-5), written out: RoBERTa's hidden
    states for `prompt` ([k, hidden]) prepended to left-padded `input_ids`."""
    batch_size, num_virtual = input_ids.shape[0], prompt.shape[0]
    inputs_embeds = roberta.get_input_embeddings()(input_ids)
    inputs_embeds = torch.cat([prompt.to(inputs_embeds.dtype).expand(batch_size, -1, -1), inputs_embeds], dim=1)
    mask = torch.cat([torch.ones(batch_size, num_virtual, dtype=torch.long), attention_mask], dim=1)
    position_ids = torch.cumsum(mask, dim=1) * mask + PAD
    return roberta(inputs_embeds=inputs_embeds, attention_mask=mask, position_ids=position_ids).last_hidden_state


@pytest.mark.parametrize("train_head", [True, False])
@pytest.mark.parametrize("method", PEFT_METHODS + ("full",))
def test_training_changes_only_the_intended_parameters(method, train_head):
    batch = left_padded_batch()
    teacher = apply_peft(make_teacher(), peft_args(method, train_head=train_head))
    assert isinstance(teacher.encoder, (PeftModel, PrependedPromptEncoder)) == (method != "full")

    trainable = {name for name, parameter in teacher.named_parameters() if parameter.requires_grad}
    for name, _ in teacher.named_parameters():
        expected = is_method_parameter(method, name) if name.startswith("encoder.") else train_head
        assert (name in trainable) == expected, name

    before = {name: parameter.detach().clone() for name, parameter in teacher.named_parameters()}
    loss_before = eval_loss(teacher, batch)
    train(teacher, batch)
    changed = {name for name, parameter in teacher.named_parameters() if not torch.equal(parameter, before[name])}
    assert changed == trainable
    assert eval_loss(teacher, batch) < loss_before


@pytest.mark.parametrize("method", PEFT_METHODS + ("full",))
def test_read_out_is_the_mask_tokens_hidden_state(method):
    batch = left_padded_batch()
    teacher = train(apply_peft(make_teacher(), peft_args(method)), batch, steps=2)
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        outputs = teacher(**batch)
        if method in ("prompt_tuning", "p_tuning"):
            peft_model = teacher.encoder.peft_model
            prompt = peft_model.get_prompt(batch_size=1)[0]
            hidden_states = encode_with_prompt(peft_model.get_base_model(), prompt, input_ids, attention_mask)
            offset = NUM_VIRTUAL_TOKENS
        else:
            # Prefix tuning and LoRA keep the sequence length: the encoder's own output, index for index.
            hidden_states = teacher.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            offset = 0
    assert hidden_states.shape[1] == input_ids.shape[1] + offset
    for row in range(input_ids.shape[0]):
        mask_index = (input_ids[row] == MASK).nonzero().item() + offset
        expected = teacher.projection(hidden_states[row, mask_index])
        torch.testing.assert_close(outputs.utterance_embeddings[row], expected)


@pytest.mark.parametrize("method", PEFT_METHODS + ("full",))
def test_an_utterance_gets_the_same_prediction_alone_and_in_a_padded_batch(method):
    batch = left_padded_batch()
    teacher = train(apply_peft(make_teacher(), peft_args(method)), batch, steps=2)
    with torch.no_grad():
        batched = teacher(**batch).logits
        for row in range(batched.shape[0]):
            torch.testing.assert_close(teacher(**single_row(batch, row)).logits[0], batched[row])


def test_peft_own_prompt_tuning_forward_depends_on_left_padding():
    """Why `PrependedPromptEncoder` numbers the positions itself: PEFT's forward numbers them straight through
    the left padding, so a padded row's hidden states differ from the same row alone."""
    batch = left_padded_batch()
    teacher = train(apply_peft(make_teacher(), peft_args("prompt_tuning")), batch, steps=2)
    peft_model = teacher.encoder.peft_model
    with torch.no_grad():
        batched = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        alone = peft_model(**single_row(batch, 2))
    assert batched.last_hidden_state.shape[1] == batch["input_ids"].shape[1] + NUM_VIRTUAL_TOKENS
    assert not torch.allclose(alone.last_hidden_state[0, -1], batched.last_hidden_state[2, -1], atol=1e-4)


@pytest.mark.parametrize(
    "method, overrides",
    [
        ("prompt_tuning", {}),
        ("prompt_tuning", {"prompt_tuning_init": "sample_vocab"}),
        ("p_tuning", {}),
        ("p_tuning", {"encoder_reparameterization_type": "LSTM", "encoder_dropout": 0.5}),
        ("lora", {}),
    ],
)
def test_fold_gives_a_plain_teacher_with_equal_outputs(method, overrides):
    batch = left_padded_batch()
    teacher = train(apply_peft(make_teacher(), peft_args(method, **overrides)), batch, steps=3)
    with torch.no_grad():
        expected = teacher(**batch)
    folded = fold_peft(teacher.train())  # as right after a training loop: dropout must not reach the prompt

    assert folded is teacher
    assert not any(type(module).__module__.startswith("peft") for module in folded.modules())
    assert isinstance(folded.encoder, RobertaModel)
    if method == "lora":
        assert folded.virtual_token_embeddings is None and folded.config.text_num_virtual_tokens == 0
        tolerances = {}
    else:
        assert folded.config.text_num_virtual_tokens == NUM_VIRTUAL_TOKENS
        assert folded.virtual_token_embeddings.shape == (NUM_VIRTUAL_TOKENS, 32)
        tolerances = {"rtol": 0, "atol": 0}  # the same operations in the same order: bit for bit
    with torch.no_grad():
        actual = folded.eval()(**batch)
    torch.testing.assert_close(actual.utterance_embeddings, expected.utterance_embeddings, **tolerances)
    torch.testing.assert_close(actual.logits, expected.logits, **tolerances)


# Runs where neither `peft` nor `hf_erc` can be imported: the folded teacher loads through its own code.
_LOAD_WITHOUT_PEFT_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["peft"] = None
    sys.modules["hf_erc"] = None
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    checkpoint, inputs_path, outputs_path = sys.argv[1:4]
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**load_file(inputs_path)).logits
    save_file({"logits": logits.contiguous()}, outputs_path)
    print(type(model).__module__, model.config.text_num_virtual_tokens)
    """
)


@pytest.mark.parametrize("method", ["p_tuning", "lora"])
def test_folded_teacher_loads_and_predicts_without_peft(method, tmp_path):
    batch = left_padded_batch()
    teacher = fold_peft(train(apply_peft(make_teacher(), peft_args(method)), batch, steps=3))
    checkpoint = tmp_path / "teacher"
    teacher.save_pretrained(checkpoint)
    assert "peft" not in (checkpoint / "config.json").read_text().lower()
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    save_file(inputs, tmp_path / "inputs.safetensors")

    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_PEFT_SCRIPT, str(checkpoint), str(tmp_path / "inputs.safetensors"),
         str(tmp_path / "outputs.safetensors")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    module, num_virtual_tokens = result.stdout.split()[-2:]
    assert not module.startswith("hf_erc")  # the checkpoint's own copy of the code
    assert int(num_virtual_tokens) == (NUM_VIRTUAL_TOKENS if method == "p_tuning" else 0)
    with torch.no_grad():
        expected = teacher.eval()(**inputs).logits
    torch.testing.assert_close(load_file(tmp_path / "outputs.safetensors")["logits"], expected, rtol=0, atol=0)


def test_prefix_tuning_cannot_be_folded():
    teacher = apply_peft(make_teacher(), peft_args("prefix_tuning"))
    with pytest.raises(NotImplementedError, match="prompt_tuning, p_tuning or lora"):
        fold_peft(teacher)
    assert isinstance(teacher.encoder, PeftModel)  # left as it was


def test_full_fine_tuning_has_nothing_to_fold():
    teacher = apply_peft(make_teacher(), peft_args("full"))
    encoder = teacher.encoder
    assert fold_peft(teacher).encoder is encoder


def test_lora_on_a_teacher_with_a_folded_prompt_keeps_the_prompt():
    batch = left_padded_batch()
    teacher = fold_peft(train(apply_peft(make_teacher(), peft_args("prompt_tuning")), batch, steps=2))
    teacher = train(apply_peft(teacher, peft_args("lora")), batch, steps=3)
    assert teacher.virtual_token_embeddings.requires_grad  # outside the encoder: trains with the head
    with torch.no_grad():
        expected = teacher(**batch).logits
    folded = fold_peft(teacher)
    assert folded.config.text_num_virtual_tokens == NUM_VIRTUAL_TOKENS
    with torch.no_grad():
        torch.testing.assert_close(folded(**batch).logits, expected)


def test_text_initialised_prompt_starts_from_the_words_embeddings(tmp_path):
    vocab = {"<s>": BOS, "<pad>": PAD, "</s>": EOS, "<mask>": MASK, "<unk>": 4, "now": 5, "speaker": 6, "feels": 7}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>").save_pretrained(tmp_path)

    args = peft_args(
        "prompt_tuning",
        prompt_tuning_init="text",
        prompt_tuning_init_text="now speaker feels",
        tokenizer_name_or_path=str(tmp_path),
    )
    teacher = apply_peft(make_teacher(), args)
    word_embeddings = teacher.encoder.get_input_embeddings().weight
    # Three words repeated to fill four virtual tokens.
    expected = word_embeddings[[5, 6, 7, 5]]
    torch.testing.assert_close(teacher.encoder.peft_model.prompt_encoder["default"].embedding.weight, expected)


def test_invalid_arguments_and_misuse_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        TeacherPeftArguments(method="adapter")
    with pytest.raises(ValueError, match="tokenizer_name_or_path"):
        TeacherPeftArguments(method="prompt_tuning", prompt_tuning_init="text", prompt_tuning_init_text="hi")
    with pytest.raises(ValueError, match="num_virtual_tokens"):
        TeacherPeftArguments(method="p_tuning", num_virtual_tokens=0)

    for method in ("lora", "prompt_tuning"):
        teacher = apply_peft(make_teacher(), peft_args(method))
        with pytest.raises(ValueError, match="fold_peft"):
            apply_peft(teacher, peft_args("lora"))
    with pytest.raises(ValueError, match="already prepends 2 folded virtual tokens"):
        apply_peft(make_teacher(num_virtual_tokens=2), peft_args("prompt_tuning"))
    with pytest.raises(ValueError, match="no `encoder` module"):
        apply_peft(torch.nn.Linear(2, 2), peft_args("lora"))


def test_defaults_follow_the_reference_teachers():
    args = TeacherPeftArguments()
    assert args.method == "full" and args.train_head
    assert args.to_peft_config() is None
    assert args.lora_target_modules == ["query", "value"]

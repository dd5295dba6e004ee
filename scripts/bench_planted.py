"""Planted-signal benchmark: does each stage learn what its inputs carry, and does each fusion combine them?

On a planted-signal MELD-layout release (:mod:`hf_erc.data.planted`: the emotion is planted in a cue word, the
pitch of a tone and the hue of the frames, with known reliabilities, and a speaker's emotion persists across turns),
it runs every stage of the four models exactly as a user does, each in its own process:

    hf-erc make-planted -> hf-erc prepare meld ->
    TelME:  teacher (text) -> audio and video students (KD from the teacher; and without it) -> fusion
    MAGTKD: text, audio, video -> kd audio, kd video -> fusion
    SDT, CMATH: on `hf-erc extract-features` of the same clips with small random encoders saved here
    (python scripts/train.py --config configs/planted/<stage>.yaml --data_dir ... --output_dir ... --seed S)

and prints one row per stage: test weighted F1 and accuracy (mean ± std over seeds), the Bayes-optimal accuracy of
the stage's own cues (and of all cues, with the dialogue context for the dialogue-level models), a linear probe on
the stage's frozen inputs (the stage model's utterance embeddings, or the extracted features), chance, and the wall
time. Ablations in the same table: each fused model with one modality blanked at test time
(``--blank_modalities``: the modality marked missing, as a missing clip is), each distilled student trained
without its teacher, and each fusion over those students. No pretrained weight is read: every encoder is small and
randomly initialised (configs/planted/). The release, the data, the encoders and every run live in ``--work-dir``;
a stage whose output folder already holds its results is not run again (delete the folder to rerun it).

    python scripts/bench_planted.py --regime text-strongest [--seeds 0 1] [--json results.json]
    python scripts/bench_planted.py --regime equal --release DIR      # an existing planted release
    python scripts/bench_planted.py --quick                           # a tiny release, 1 seed, 1 epoch: a smoke test

Stages run one at a time by default, so that each row's time is its own; ``--jobs 2`` runs independent stages side by
side (TelME's chain beside MAGTKD's; ``--quick`` does). Each stage process gets one OpenMP thread.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import (
    BertConfig, BertModel, Data2VecAudioConfig, Data2VecAudioModel, PreTrainedTokenizerFast, TimesformerConfig,
    TimesformerModel, VideoMAEImageProcessor, Wav2Vec2FeatureExtractor,
)  # fmt: skip

from hf_erc.data import load_erc_dataset
from hf_erc.data.planted import CUE_WORDS, FILLER_WORDS, read_planted_config, read_planted_truth
from hf_erc.data.planted_ceilings import context_posteriors, score_predictions, utterance_posteriors
from hf_erc.training import RunArguments
from hf_erc.training.probe import linear_probe, stack_vectors, stage_embeddings

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs" / "planted"
MODALITIES = ("text", "audio", "video")
REGIMES: dict[str, dict[str, float]] = {
    "text-strongest": {"text": 0.8, "audio": 0.7, "video": 0.6},  # fusing all cues: 85.2 % expected, text 80 %
    "equal": {"text": 0.6, "audio": 0.6, "video": 0.6},
}
# Dialogues per split: 300 train (~2,100 utterances), 60 dev, 60 test (about 420 utterances each). With 100 training
# dialogues the stage models fitted their training split's cue-wrong utterances well enough that no fusion trained on
# that split could beat the text (README, "Planted-signal benchmark").
FULL_DIALOGUES = "train=300,dev=60,test=60"
QUICK_DIALOGUES = "train=12,dev=4,test=6"
ENCODER_SIZE = 64


@dataclass(frozen=True)
class StageSpec:
    """One stage run: its row name, config file, the modalities it reads, and how its command line is completed."""

    name: str
    config: str
    modalities: tuple[str, ...]
    flags: tuple[str, ...] = ()
    # Earlier stages whose output folders this one reads, as (flag, stage name).
    reads: tuple[tuple[str, str], ...] = ()
    features: bool = False  # reads the extracted features instead of the prepared data
    dialogue_level: bool = False  # reads the dialogue context (its ceiling includes it)
    blank: tuple[str, ...] = ()  # modalities blanked at test time, one at a time
    ablation_of: str | None = None  # the row this one ablates
    quick: bool = True  # run in --quick too
    group: str = ""


def stage_specs() -> list[StageSpec]:
    """Every stage of the benchmark, in the order they run (each after the stages it reads)."""
    tokenizer = ("--tokenizer_name_or_path", "{tokenizer}")
    no_kd = ("--response_kd_weight", "0", "--feature_kd_weight", "0")
    return [
        StageSpec("telme-text", "telme-teacher.yaml", ("text",), tokenizer, group="TelME"),
        StageSpec("telme-audio", "telme-audio-student.yaml", ("audio",), reads=(("--teacher_model_name_or_path", "telme-text"),), group="TelME"),
        StageSpec(
            "telme-video", "telme-video-student.yaml", ("video",),
            reads=(("--teacher_model_name_or_path", "telme-text"),), group="TelME",
        ),
        StageSpec(
            "telme-audio-no-kd", "telme-audio-student.yaml", ("audio",), no_kd,
            reads=(("--teacher_model_name_or_path", "telme-text"),), ablation_of="telme-audio", quick=False, group="TelME",
        ),
        StageSpec(
            "telme-video-no-kd", "telme-video-student.yaml", ("video",), no_kd,
            reads=(("--teacher_model_name_or_path", "telme-text"),), ablation_of="telme-video", quick=False, group="TelME",
        ),
        StageSpec(
            "telme-fusion", "telme-fusion.yaml", MODALITIES,
            reads=(
                ("--teacher_model_name_or_path", "telme-text"),
                ("--audio_student_name_or_path", "telme-audio"),
                ("--video_student_name_or_path", "telme-video"),
            ),
            blank=("audio", "video"),  # TelME's teacher needs every utterance's text
            group="TelME",
        ),
        StageSpec(
            "telme-fusion-no-kd", "telme-fusion.yaml", MODALITIES,
            reads=(
                ("--teacher_model_name_or_path", "telme-text"),
                ("--audio_student_name_or_path", "telme-audio-no-kd"),
                ("--video_student_name_or_path", "telme-video-no-kd"),
            ),
            ablation_of="telme-fusion", quick=False, group="TelME",
        ),
        StageSpec("magtkd-text", "magtkd-text.yaml", ("text",), tokenizer, group="MAGTKD"),
        StageSpec("magtkd-audio", "magtkd-audio.yaml", ("audio",), tokenizer, group="MAGTKD"),
        StageSpec("magtkd-video", "magtkd-video.yaml", ("video",), tokenizer, group="MAGTKD"),
        StageSpec(
            "magtkd-kd-audio", "magtkd-kd-audio.yaml", ("audio",),
            reads=(("--teacher_model_name_or_path", "magtkd-text"), ("--model_name_or_path", "magtkd-audio")),
            group="MAGTKD",
        ),
        StageSpec(
            "magtkd-kd-video", "magtkd-kd-video.yaml", ("video",),
            reads=(("--teacher_model_name_or_path", "magtkd-text"),), group="MAGTKD",
        ),
        StageSpec(
            "magtkd-fusion", "magtkd-fusion.yaml", MODALITIES,
            reads=(
                ("--teacher_model_name_or_path", "magtkd-text"),
                ("--audio_student_name_or_path", "magtkd-kd-audio"),
                ("--video_student_name_or_path", "magtkd-kd-video"),
            ),
            dialogue_level=True, blank=MODALITIES, group="MAGTKD",
        ),
        StageSpec(
            "magtkd-fusion-no-kd", "magtkd-fusion.yaml", MODALITIES,
            reads=(
                ("--teacher_model_name_or_path", "magtkd-text"),
                ("--audio_student_name_or_path", "magtkd-audio"),
                ("--video_student_name_or_path", "magtkd-video"),
            ),
            dialogue_level=True, ablation_of="magtkd-fusion", quick=False, group="MAGTKD",
        ),
        StageSpec("sdt", "sdt.yaml", MODALITIES, features=True, dialogue_level=True, blank=MODALITIES, group="SDT"),
        StageSpec("cmath", "cmath.yaml", MODALITIES, features=True, dialogue_level=True, blank=MODALITIES, group="CMATH"),
    ]  # fmt: skip


# ---- Command line -----------------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Planted-signal benchmark of every stage of TelME, MAGTKD, SDT and CMATH (see the module docstring).",
    )
    parser.add_argument("--regime", choices=sorted(REGIMES), default="text-strongest",
                        help="Cue reliabilities: text-strongest (text 0.8, audio 0.7, video 0.6) or equal (0.6 each).")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="Training seeds (default: 0 1; --quick: 0).")
    parser.add_argument("--release", default=None,
                        help="An existing planted release (hf-erc make-planted output) instead of generating one.")
    parser.add_argument("--release-seed", type=int, default=0, help="Seed of the generated release (default: 0).")
    parser.add_argument("--work-dir", default=None,
                        help="Folder of the release, data, encoders and runs (default: outputs/bench-planted/<regime>, "
                        "with --quick outputs/bench-planted/quick).")
    parser.add_argument("--stages", nargs="+", default=None,
                        help="Run (again) only these stages and read the others' finished outputs; default: every "
                        "stage not already done.")
    parser.add_argument("--quick", action="store_true",
                        help="Smoke test: a tiny release, one seed, one epoch per stage, no distillation ablations.")
    parser.add_argument("--jobs", type=int, default=None,
                        help="Stage processes at a time, each on one thread (default: the machine's cores, at most 4; "
                        "--jobs 1 gives each stage's time alone).")
    parser.add_argument("--json", default=None, help="Also write the results (rows and raw numbers) to this file.")
    arguments = parser.parse_args(argv)
    if arguments.seeds is None:
        arguments.seeds = [0] if arguments.quick else [0, 1]
    if arguments.jobs is None:
        arguments.jobs = max(1, min(4, os.cpu_count() or 1))
    if arguments.jobs < 1:
        parser.error(f"--jobs {arguments.jobs}: at least 1.")
    if arguments.work_dir is None:
        arguments.work_dir = str(REPO_ROOT / "outputs" / "bench-planted" / ("quick" if arguments.quick else arguments.regime))
    known = {spec.name for spec in stage_specs()}
    unknown = sorted(set(arguments.stages or ()) - known)
    if unknown:
        parser.error(f"--stages {unknown}: unknown; the stages are {sorted(known)}.")
    if arguments.release is not None and not Path(arguments.release, "planted.json").is_file():
        parser.error(f"--release {arguments.release}: no planted.json there (not an hf-erc make-planted release).")
    return arguments


# ---- Preparing the data and the encoders ------------------------------------------------------------------------


def child_environment() -> dict[str, str]:
    """Offline, one OpenMP thread per process (on a shared 2-core machine more threads made steps several times
    slower), no tokenizer threads."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_command(command: Sequence[str], log_path: Path) -> float:
    """Run ``command`` (output to ``log_path``); return its wall time; exit with its log's tail when it fails."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        completed = subprocess.run(command, cwd=REPO_ROOT, env=child_environment(), stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        sys.exit(f"bench_planted.py: {command[1:4]} failed (exit {completed.returncode}); log {log_path}:\n" + "\n".join(tail))
    return seconds


def hf_erc_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "hf_erc.cli", *arguments]


def write_tokenizer(path: Path) -> None:
    """A word-level tokenizer (lower-cased) over the planted release's vocabulary, with BERT's special tokens."""
    splitter = pre_tokenizers.Whitespace()
    words = set()
    for text in [*CUE_WORDS.values(), *FILLER_WORDS, "now", "feels", "right", ".", "?", ","]:
        words.update(piece for piece, _ in splitter.pre_tokenize_str(text.lower()))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)]
    backend = Tokenizer(models.WordLevel({word: index for index, word in enumerate(vocabulary)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = splitter
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip
    tokenizer.save_pretrained(path)


def write_random_encoders(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Small randomly initialised text, audio and video encoders, each saved with ``save_pretrained`` together with
    its tokenizer / feature extractor / image processor, for ``hf-erc extract-features``: modality -> folder."""
    paths = {modality: folder / modality for modality in MODALITIES}
    if all((path / "config.json").is_file() for path in paths.values()):
        return paths
    torch.manual_seed(seed)
    write_tokenizer(paths["text"])
    vocabulary_size = len(json.loads((paths["text"] / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"])
    size = dict(hidden_size=ENCODER_SIZE, num_attention_heads=2, intermediate_size=2 * ENCODER_SIZE)
    BertModel(BertConfig(vocab_size=vocabulary_size, num_hidden_layers=2, max_position_embeddings=64, **size),
              add_pooling_layer=False).save_pretrained(paths["text"])  # fmt: skip
    audio = Data2VecAudioConfig(
        num_hidden_layers=1, conv_dim=[32, 32, 32], conv_kernel=[128, 4, 4], conv_stride=[32, 4, 4],
        num_feat_extract_layers=3, conv_pos_kernel_size=3, num_conv_pos_embeddings=3, num_conv_pos_embedding_groups=2,
        mask_time_prob=0.0, layerdrop=0.0, **size,
    )  # fmt: skip
    Data2VecAudioModel(audio).save_pretrained(paths["audio"])
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(paths["audio"])
    video = TimesformerConfig(image_size=32, patch_size=16, num_frames=2, num_hidden_layers=1, **size)
    TimesformerModel(video).save_pretrained(paths["video"])
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(paths["video"])
    return paths


@dataclass
class Workspace:
    """The folders of one benchmark: release, prepared data, encoders, features, the runs and the shared cache."""

    root: Path
    release: Path
    data: Path = field(init=False)
    features: Path = field(init=False)
    encoders: Path = field(init=False)
    cache: Path = field(init=False)

    def __post_init__(self):
        self.data = self.root / "data"
        self.features = self.root / "features"
        self.encoders = self.root / "encoders"
        self.cache = self.root / "embedding-cache"

    def run_dir(self, seed: int, stage: str) -> Path:
        return self.root / f"seed-{seed}" / stage


def prepare_workspace(arguments: argparse.Namespace) -> tuple[Workspace, dict[str, float]]:
    """Release -> prepared data -> random encoders -> extracted features (each skipped when already there);
    returns the workspace and the seconds each step took."""
    root = Path(arguments.work_dir)
    root.mkdir(parents=True, exist_ok=True)
    workspace = Workspace(root, Path(arguments.release) if arguments.release else root / "release")
    times = {}
    if arguments.release is None and not (workspace.release / "planted.json").is_file():
        reliability = ",".join(f"{m}={value:g}" for m, value in REGIMES[arguments.regime].items())
        dialogues = QUICK_DIALOGUES if arguments.quick else FULL_DIALOGUES
        times["make-planted"] = run_command(
            hf_erc_command("make-planted", "--output", str(workspace.release), "--dialogues", dialogues,
                           "--seed", str(arguments.release_seed), "--reliability", reliability, "--num-workers", "2",
                           "--overwrite"),
            root / "logs" / "make-planted.log",
        )  # fmt: skip
    if not (workspace.data / "README.md").is_file():
        times["prepare"] = run_command(
            hf_erc_command("prepare", "meld", "--raw-dir", str(workspace.release), "--output", str(workspace.data)),
            root / "logs" / "prepare.log",
        )
    start = time.perf_counter()
    encoders = write_random_encoders(workspace.encoders)
    times["encoders"] = time.perf_counter() - start
    if not (workspace.features / "README.md").is_file() and not any(workspace.features.glob("data/*")):
        times["extract-features"] = run_command(
            hf_erc_command("extract-features", "meld", "--data-dir", str(workspace.data), "--output",
                           str(workspace.features), "--text-encoder", str(encoders["text"]), "--text-pooling", "mean",
                           "--audio-encoder", str(encoders["audio"]), "--audio-pooling", "mean",
                           "--video-encoder", str(encoders["video"]), "--video-pooling", "mean", "--device", "cpu"),
            root / "logs" / "extract-features.log",
        )  # fmt: skip
    return workspace, times


# ---- Running the stages -----------------------------------------------------------------------------------------


def stage_command(spec: StageSpec, workspace: Workspace, seed: int, quick: bool) -> list[str]:
    """``python scripts/train.py --config configs/planted/<config> --data_dir ... --output_dir ... --seed S ...``."""
    command = [
        sys.executable, "scripts/train.py", "--config", str(CONFIG_DIR / spec.config),
        "--data_dir", str(workspace.features if spec.features else workspace.data),
        "--output_dir", str(workspace.run_dir(seed, spec.name)), "--seed", str(seed),
        "--embedding_cache_dir", str(workspace.cache),
    ]  # fmt: skip
    command += [flag.format(tokenizer=workspace.encoders / "text") for flag in spec.flags]
    for flag, stage in spec.reads:
        command += [flag, str(workspace.run_dir(seed, stage))]
    if spec.blank:
        command += ["--blank_modalities", *spec.blank]
    if quick:
        command += ["--num_train_epochs", "1"]
    return command


def run_stage(spec: StageSpec, workspace: Workspace, seed: int, quick: bool, rerun: bool = False) -> dict:
    """Train and test one stage (unless its folder already holds the results and not ``rerun``); returns its test
    metrics and time."""
    output_dir = workspace.run_dir(seed, spec.name)
    record = output_dir / "bench_planted.json"
    if not rerun and record.is_file() and (output_dir / "test_results.json").is_file():
        return json.loads(record.read_text(encoding="utf-8"))
    if output_dir.exists():
        shutil.rmtree(output_dir)  # an unfinished run, or one to run again
    seconds = run_command(stage_command(spec, workspace, seed, quick), workspace.root / "logs" / f"seed-{seed}-{spec.name}.log")
    test = json.loads((output_dir / "test_results.json").read_text(encoding="utf-8"))
    validation = json.loads((output_dir / "eval_results.json").read_text(encoding="utf-8"))
    result = {"seconds": seconds, "test": test, "validation_weighted_f1": validation.get("eval_weighted_f1")}
    record.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def run_seed(
    specs: Sequence[StageSpec],
    selected: Sequence[StageSpec],
    workspace: Workspace,
    seed: int,
    quick: bool,
    jobs: int,
    rerun: bool = False,
) -> dict[str, dict]:
    """Run the ``selected`` stages of one seed (``rerun``: even those already done), up to ``jobs`` processes at a
    time, each once the stages it reads are done; the other stages' earlier results are read from their folders.
    Returns stage name -> result."""
    stages = {}
    for spec in specs:
        record = workspace.run_dir(seed, spec.name) / "bench_planted.json"
        if spec not in selected and record.is_file():
            stages[spec.name] = json.loads(record.read_text(encoding="utf-8"))
    pending = [spec for spec in specs if spec in selected]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {}
        while pending or running:
            busy = {spec.name for spec in pending} | {spec.name for spec in running.values()}
            for spec in list(pending):
                if len(running) < jobs and not {stage for _, stage in spec.reads} & busy:
                    pending.remove(spec)
                    running[pool.submit(run_stage, spec, workspace, seed, quick, rerun)] = spec
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                spec = running.pop(future)
                stages[spec.name] = result = future.result()
                print(f"seed {seed} {spec.name}: test WF1 {100 * result['test']['test_weighted_f1']:.1f}, "
                      f"validation {100 * result['validation_weighted_f1']:.1f} ({result['seconds']:.0f} s)", flush=True)  # fmt: skip
    return stages


# ---- Probes and ceilings ----------------------------------------------------------------------------------------


def probe_results(workspace: Workspace, seed: int, specs: Sequence[StageSpec]) -> dict[str, dict]:
    """The linear probe of every stage row for one seed: stage name -> ProbeResult as a dict.

    TelME and MAGTKD rows probe their stage models' frozen utterance embeddings (a fusion: its three inputs side by
    side), read through the fusion stage's setup and embedding cache; SDT and CMATH probe the extracted features.
    """
    names = {spec.name for spec in specs}
    results = {}

    def probe(splits, columns):
        data = {split: (stack_vectors(values, columns), labels) for split, (values, labels) in splits.items()}
        return vars(linear_probe(data["train"], data["validation"], data["test"]))

    def fusion_inputs(config, text, audio, video):
        paths = {"teacher_model_name_or_path": text, "audio_student_name_or_path": audio,
                 "video_student_name_or_path": video}  # fmt: skip
        if not all(workspace.run_dir(seed, stage).joinpath("config.json").is_file() for stage in paths.values()):
            return None
        arguments = RunArguments.from_config(
            CONFIG_DIR / config, data_dir=str(workspace.data), embedding_cache_dir=str(workspace.cache),
            output_dir=str(workspace.root / "probe-scratch"), seed=seed,
            **{flag: str(workspace.run_dir(seed, stage)) for flag, stage in paths.items()},
        )  # fmt: skip
        return stage_embeddings(arguments)

    for family, config, text, pairs in (
        ("telme", "telme-fusion.yaml", "telme-text",
         [("telme-audio", "telme-video", "telme-fusion"),
          ("telme-audio-no-kd", "telme-video-no-kd", "telme-fusion-no-kd")]),
        ("magtkd", "magtkd-fusion.yaml", "magtkd-text",
         [("magtkd-kd-audio", "magtkd-kd-video", "magtkd-fusion"),
          ("magtkd-audio", "magtkd-video", "magtkd-fusion-no-kd")]),
    ):  # fmt: skip
        for audio, video, fusion in pairs:
            if not {audio, video} & names:
                continue
            splits = fusion_inputs(config, text, audio, video)
            if splits is None:
                continue
            results.setdefault(text, probe(splits, ["text"]))
            results[audio] = probe(splits, ["audio"])
            results[video] = probe(splits, ["video"])
            if fusion is not None:
                results[fusion] = probe(splits, list(MODALITIES))
    if {"sdt", "cmath"} & names:
        dataset = load_erc_dataset("meld", str(workspace.features))
        splits = {
            split: ({m: list(dataset[split][f"{m}_features"]) for m in MODALITIES}, np.asarray(dataset[split]["emotion"]))
            for split in ("train", "validation", "test")
        }
        features_probe = probe(splits, list(MODALITIES))
        results.update({name: features_probe for name in ("sdt", "cmath") if name in names})
    return results


def cue_ceilings(release: Path, modalities: Sequence[str], context: bool) -> dict[str, float]:
    """Bayes-optimal test scores (fractions) from the cues of ``modalities`` (with each speaker's dialogue context
    when ``context``); no modality is chance's Bayes decision (the first emotion)."""
    config = read_planted_config(release)
    split = read_planted_truth(release, "test")
    if not modalities:
        return score_predictions(split.emotion, np.zeros_like(split.emotion), split.num_emotions)
    if context:
        posterior = context_posteriors(split, config.reliabilities, config.persistence, list(modalities))
    else:
        posterior = utterance_posteriors(split, config.reliabilities, list(modalities))
    return score_predictions(split.emotion, posterior.argmax(axis=1), split.num_emotions)


# ---- The table ----------------------------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = 100 * np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def build_rows(results: Mapping, release: Path, specs: Sequence[StageSpec]) -> list[dict]:
    """Table rows from ``results`` (``{"seeds": {seed: {"stages": {name: run}, "probes": {name: probe}}}}``): one per
    stage that ran, then one per blanked modality of each fused model; numbers in percent."""
    test_truth = read_planted_truth(release, "test")
    num_emotions, num_test = test_truth.num_emotions, len(test_truth.emotion)
    all_cues = cue_ceilings(release, MODALITIES, context=False)["accuracy"]
    all_context = cue_ceilings(release, MODALITIES, context=True)["accuracy"]
    seeds = list(results["seeds"])
    rows = []
    for spec in specs:
        runs = [results["seeds"][seed]["stages"][spec.name] for seed in seeds if spec.name in results["seeds"][seed]["stages"]]
        if not runs:
            continue
        probes = [results["seeds"][seed].get("probes", {}).get(spec.name) for seed in seeds]
        probes = [probe for probe in probes if probe]
        variants = [(None, spec.modalities)]
        variants += [(blank, tuple(m for m in spec.modalities if m != blank)) for blank in spec.blank]
        for blank, modalities in variants:
            prefix = "test" if blank is None else f"test_blank_{blank}"
            row = {
                "stage": spec.name if blank is None else f"{spec.name} without {blank}",
                "group": spec.group,
                "inputs": "+".join(modalities) + (" +context" if spec.dialogue_level else ""),
                "ablation": blank is not None or spec.ablation_of is not None,
                "seeds": len(runs),
                "weighted_f1": mean_std([run["test"][f"{prefix}_weighted_f1"] for run in runs]),
                "accuracy": mean_std([run["test"][f"{prefix}_accuracy"] for run in runs]),
                "own_ceiling": 100 * cue_ceilings(release, modalities, context=spec.dialogue_level)["accuracy"],
                "bayes_all": 100 * all_cues,
                "bayes_all_context": 100 * all_context if spec.dialogue_level else None,
                "probe_accuracy": mean_std([p["test_accuracy"] for p in probes]) if probes and blank is None else None,
                "probe_weighted_f1": mean_std([p["test_weighted_f1"] for p in probes]) if probes and blank is None else None,
                "chance": 100 / num_emotions,
                "test_utterances": num_test,
                "seconds": float(np.mean([run["seconds"] for run in runs])) if blank is None else None,
            }
            rows.append(row)
    return rows


def _cell(value, std: bool = True) -> str:
    if value is None:
        return "–"
    if isinstance(value, (tuple, list)):
        return f"{value[0]:.1f} ± {value[1]:.1f}" if std else f"{value[0]:.1f}"
    return f"{value:.1f}"


def format_table(rows: Sequence[Mapping]) -> str:
    """The Markdown table of :func:`build_rows`' rows."""
    lines = [
        "| stage | inputs | test WF1 | test acc | own-cue ceiling | Bayes all cues | + context | linear probe acc "
        "| chance | s/seed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = f"↳ {row['stage']}" if row["ablation"] else f"**{row['stage']}**"
        seconds = "–" if row["seconds"] is None else f"{row['seconds']:.0f}"
        lines.append(
            f"| {name} | {row['inputs']} | {_cell(row['weighted_f1'])} | {_cell(row['accuracy'])} "
            f"| {_cell(row['own_ceiling'])} | {_cell(row['bayes_all'])} | {_cell(row['bayes_all_context'])} "
            f"| {_cell(row['probe_accuracy'])} | {_cell(row['chance'])} | {seconds} |"
        )
    return "\n".join(lines)


def fusion_verdicts(rows: Sequence[Mapping]) -> list[str]:
    """One line per fused model: its test weighted F1 against its family's best single-input stage (where the family
    trains them), against the linear probe of its inputs, and its accuracy's gap to its own-cue ceiling."""
    lines = []
    for row in rows:
        if row["ablation"] or "+" not in row["inputs"]:
            continue
        score = row["weighted_f1"][0]
        parts = []
        singles = [other for other in rows if other["group"] == row["group"] and not other["ablation"]
                   and "+" not in other["inputs"] and other is not row]  # fmt: skip
        if singles:
            best = max(singles, key=lambda other: other["weighted_f1"][0])
            relation = "above" if score > best["weighted_f1"][0] else "NOT above"
            parts.append(f"{relation} its best single input ({best['stage']} {best['weighted_f1'][0]:.1f})")
        if row["probe_weighted_f1"] is not None:
            probe = row["probe_weighted_f1"][0]
            shortfall = round(probe, 1) - round(score, 1)  # as printed
            if shortfall <= 0:
                parts.append(f"at or above the linear probe of its inputs ({probe:.1f})")
            else:  # how far below, against the sampling error of one test split's score
                share = row["probe_accuracy"][0] / 100
                noise = 100 * float(np.sqrt(share * (1 - share) / row["test_utterances"]))
                where = "inside" if shortfall <= noise else "BEYOND"
                parts.append(
                    f"{shortfall:.1f} BELOW the linear probe of its inputs ({probe:.1f}), {where} one binomial "
                    f"standard deviation of a score on the {row['test_utterances']} test utterances ({noise:.1f})"
                )
        gap = row["own_ceiling"] - row["accuracy"][0]
        parts.append(f"accuracy {gap:.1f} points under its Bayes-optimal ceiling ({row['own_ceiling']:.1f})")
        lines.append(f"- {row['stage']} (test WF1 {score:.1f}): " + "; ".join(parts) + ".")
    return lines


COLUMNS_NOTE = """\
Columns (test split, %): WF1 / acc mean ± std over seeds; own-cue ceiling: the Bayes-optimal accuracy from the cues of
the stage's own inputs (with each speaker's dialogue context for dialogue-level models); Bayes all cues: from every
cue of the utterance, + context: and its dialogue; linear probe: logistic regression on the frozen inputs (stage
embeddings or features), L2 chosen on validation; chance: 1/K; s/seed: wall time of the stage's training process.
Rows marked ↳ are ablations: a modality blanked at test time, a student trained without its teacher, or a fusion over
the students trained without it."""


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    started = time.perf_counter()
    workspace, setup_times = prepare_workspace(arguments)
    specs = [spec for spec in stage_specs() if spec.quick or not arguments.quick]
    selected = [spec for spec in specs if arguments.stages is None or spec.name in arguments.stages]
    results = {"regime": arguments.regime, "release": str(workspace.release), "setup_seconds": setup_times, "seeds": {}}
    for seed in arguments.seeds:
        rerun = arguments.stages is not None
        stages = run_seed(specs, selected, workspace, seed, arguments.quick, arguments.jobs, rerun)
        results["seeds"][seed] = {"stages": stages}
        probe_start = time.perf_counter()
        results["seeds"][seed]["probes"] = probe_results(workspace, seed, [s for s in specs if s.name in stages])
        results["seeds"][seed]["probe_seconds"] = time.perf_counter() - probe_start
    rows = build_rows(results, workspace.release, specs)
    results["rows"] = rows
    results["total_seconds"] = time.perf_counter() - started
    config = read_planted_config(workspace.release)
    reliabilities = ", ".join(f"{m} {value:g}" for m, value in config.reliabilities.items())
    print(
        f"\nPlanted-signal benchmark, regime {arguments.regime} (reliabilities {reliabilities}; persistence "
        f"{config.persistence:g}; {config.dialogues['test']} test dialogues), seeds {' '.join(map(str, arguments.seeds))}:\n"
    )
    print(format_table(rows))
    print("\n" + COLUMNS_NOTE)
    verdicts = fusion_verdicts(rows)
    results["fusion_verdicts"] = verdicts
    if verdicts:
        print("\nFused models:\n" + "\n".join(verdicts))
    stage_seconds = sum(run["seconds"] for seed in results["seeds"].values() for run in seed["stages"].values())
    probe_seconds = sum(seed["probe_seconds"] for seed in results["seeds"].values())
    print(
        f"\nWall time of this run {results['total_seconds'] / 60:.1f} min (set-up {sum(setup_times.values()):.0f} s); "
        f"the stage processes of all seeds took {stage_seconds / 60:.1f} min (reused ones included), the probes "
        f"{probe_seconds / 60:.1f} min."
    )
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

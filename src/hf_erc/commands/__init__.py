"""The ``hf-erc`` sub-commands, one module each: the command line (argparse) and what it prints, over functions
of the layers below (data, features, training, inference). Nothing but :mod:`hf_erc.cli` and these modules
imports from here.

| command | module |
|---|---|
| ``hf-erc prepare`` | :mod:`.prepare` |
| ``hf-erc make-planted`` | :mod:`.make_planted` |
| ``hf-erc extract-features`` | :mod:`.extract_features` |
| ``hf-erc fine-tune-text`` | :mod:`.fine_tune_text` |
| ``hf-erc train`` (``scripts/train.py``, ``python -m hf_erc.commands.train``) | :mod:`.train` |
| ``hf-erc report`` (``scripts/report.py``) | :mod:`.report` |
| ``hf-erc show-inputs`` | :mod:`.show_inputs` |
| ``hf-erc predict`` | :mod:`.predict` |
| ``hf-erc demo`` | :mod:`.demo` |
| ``hf-erc quickstart`` | :mod:`.quickstart` |
"""

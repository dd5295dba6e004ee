"""Data layer: dataset builders, media decoding, feature-file readers and collators.

Modules:

- :mod:`~hf_erc.data.prepare`: :func:`load_erc_dataset` (raw release or prepared folder) and ``hf-erc prepare``.
- :mod:`~hf_erc.data.meld`, :mod:`~hf_erc.data.iemocap`: builders of the raw releases.
- :mod:`~hf_erc.data.summary`: per-split tables of dialogues, emotions and usable/missing media.
- :mod:`~hf_erc.data.contract`: the utterance-level features every dataset is built to.
- :mod:`~hf_erc.data.media`: audio/video probing and decoding.
- :mod:`~hf_erc.data.dialogues`: grouping utterances into dialogues and adding context.
- :mod:`~hf_erc.data.collators`: batching for the models.
- :mod:`~hf_erc.data.feature_files`: readers of the community pre-extracted feature pickles.
- :mod:`~hf_erc.data.export`: writing and pushing Parquet dataset repositories.
- :mod:`~hf_erc.data.errors`: the data errors.
"""

from .prepare import load_erc_dataset

__all__ = ["load_erc_dataset"]

"""Inference on raw conversations: loading a checkpoint safely (:mod:`.checkpoints`), reading conversations,
subtitles and speech-recognised cues (:mod:`.conversations`, :mod:`.subtitles`, :mod:`.asr`), labelling them
(:mod:`.pipelines`, ``hf_erc.pipeline``) and drawing the emotion timeline (:mod:`.timeline`)."""

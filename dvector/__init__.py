"""dvector: what the tutorial's scripts share, built on its modules (configure.py,
DB_wav_reader.py, SR_Dataset.py, model/), which never import it.

- cli: settings at the top of a script, recipe files and ``--name value`` overrides
- checkpoint: saving, choosing and loading checkpoints (the slides' ``load_model``)
- embedding: utterance d-vectors (the slides' ``get_embeddings``, ``l2_norm``)
- enrollment: a model's enrollments as one set (``load_enroll_embeddings``)
- scoring, metrics: cosine scores, AS-norm; EER, minDCF, identification accuracy
- plots: the loss plot (the slides' figure), DET curve, histograms, heatmap
- features, augment: the feature recipe; SpecAugment and speed perturbation
- whitening: within-speaker whitening fitted on the training speakers
- distributed, fileio: several processes; atomic writes and safe loading
- recordings, vad, threshold: wav files in (silences cut), the threshold stored with a model
- live, browser: demo.py's steps (enroll, identify, verify, compare, the voice map); its page
  driven in headless Chromium (its browser test and benchmark)

For programs: ``dvector.Encoder(model_dir=..., device=...)`` with ``.embed(path or samples,
sample_rate)`` and ``.score(path_a, path_b)`` (dvector/encoder.py); ``embed_wav`` and
``score_wavs`` (dvector/recordings.py) for one call each; ``SetupError`` (a ValueError) for
bad input. The repository's root must be on the import path (docs/ADVANCED.md, "From Python").
"""
from configure import SetupError  # noqa: F401  (the project's one error type)


def __getattr__(name: str):
    """Encoder, embed_wav and score_wavs, imported on first use (the scripts need not load
    them)."""
    if name == 'Encoder':
        from dvector.encoder import Encoder
        return Encoder
    if name in ('embed_wav', 'score_wavs'):
        from dvector import recordings
        return getattr(recordings, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

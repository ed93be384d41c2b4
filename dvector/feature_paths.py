"""Names of feature files: where a wav's features are written, and how a trial list joins
several into one recording.

tools/extract_features.py names each output with ``feature_name``; evaluate.py finds the
features of a trial list's wav or feature path with it, and reads ``a.p+b.p`` (``JOIN``) as
those files taken as one recording (the long trials of tools/long_trials.py).
"""
import os

JOIN = '+'  # 'a.p+b.p' in a trial list: those files as one recording


def feature_name(path: str) -> tuple:
    """(speaker, feature file path) of a wav path, in the layouts that tools/extract_features.py
    writes and evaluate.py reads: ``.../<speaker>/<name>.wav`` -> ``.../<speaker>/<name>.p``,
    and VoxCeleb's ``.../<speaker>/<video>/<n>.wav`` (n all digits) ->
    ``.../<speaker>/<video>_<n>.p``. ValueError for a wav with no speaker folder."""
    parts = path.replace('\\', '/').split('/')
    stem = os.path.splitext(parts[-1])[0]
    if len(parts) < 2:
        raise ValueError('expected <speaker>/<name>.wav or <speaker>/<video>/<n>.wav')
    if len(parts) >= 3 and stem.isdigit():
        return parts[-3], '/'.join(parts[:-2] + [f'{parts[-2]}_{stem}.p'])
    return parts[-2], '/'.join(parts[:-1] + [stem + '.p'])

"""How much speech does a decision need? EER of the real-speech model by length of speech.

    python tools/benchmarks/speech_length.py
    python tools/benchmarks/speech_length.py --wav_dir data/tutorial_db/test_wavs

Protocol: the tutorial's test speakers' recordings (<wav_dir>/<speaker>/{enroll,test}.wav,
10 speakers, about 16 s of speech for enrollment and 15 s for the test), their speech kept
by dvector/vad.py (Silero), cut into consecutive pieces of each length in ``lengths``. Every
enrollment piece is scored (cosine) against every test piece of every speaker; genuine pairs
are the same speaker's. Three ways per length: both sides that short; the whole enrollment
against test pieces (how short a test may be); enrollment pieces against the whole test (how
short an enrollment may be). Prints a table of EERs (dvector/metrics.py compute_eer) and
trial counts; the figures behind MIN_ENROLL_SECONDS and SHORT_TEST_SECONDS in dvector/vad.py.
Each piece is embedded as the scripts embed a recording (dvector.features.recording_features:
set to the DB's speech level, then the tutorial's features).

``--baseline resemblyzer`` scores the same pieces in the same run with Resemblyzer's
VoiceEncoder (``pip install resemblyzer``; not one of the project's requirements), each piece
through its own preprocess_wav, as its README shows.
"""
import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import configure as c  # noqa: E402
from DB_wav_reader import read_audio  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.embedding import embed_features  # noqa: E402
from dvector.features import recording_features  # noqa: E402
from dvector.metrics import compute_eer  # noqa: E402
from dvector.recordings import REAL_MODEL_PATH, TEST_FRAMES, cached_model  # noqa: E402
from dvector.vad import keep_speech  # noqa: E402

# ---- settings ----
wav_dir = os.path.join(REPO, 'data', 'tutorial_db', 'test_wavs')  # <speaker>/{enroll,test}.wav
log_dir = REAL_MODEL_PATH    # the model scored (the shipped real-speech model)
lengths = '0.5,1,1.5,2,3'    # seconds of speech per piece
use_cuda = False             # the model on the GPU when there is one
baseline = ''                # also score the same pieces with: '' (none) or 'resemblyzer'
SETTING_RULES = {'wav_dir': cli.NAME, 'log_dir': cli.NAME, 'lengths': cli.TEXT,
                 'use_cuda': cli.FLAG, 'baseline': cli.one_of('', 'resemblyzer')}


def pieces(audio: np.ndarray, seconds: float) -> list:
    """Consecutive ``seconds``-long pieces of ``audio`` (the remainder dropped)."""
    size = int(seconds * c.SAMPLE_RATE)
    return [audio[i:i + size] for i in range(0, len(audio) - size + 1, size)]


def embed_audio(model, clips: list) -> torch.Tensor:
    """(n, E) d-vectors of 16 kHz clips, each embedded as the scripts embed a recording."""
    feats = [recording_features(clip) for clip in clips]
    device = next(model.parameters()).device
    return embed_features(model, feats, ['piece'] * len(feats), TEST_FRAMES, device).cpu()


def resemblyzer_embedder():
    """clips -> (n, 256) L2-normalised Resemblyzer embeddings; one line if it is missing."""
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as err:
        raise cli.SetupError(f'baseline=resemblyzer: Resemblyzer is not installed ({err}); '
                             'pip install resemblyzer') from None
    encoder = VoiceEncoder('cpu', verbose=False)
    return lambda clips: torch.from_numpy(np.stack([
        encoder.embed_utterance(preprocess_wav(clip, source_sr=c.SAMPLE_RATE))
        for clip in clips]))


def eer_of(enrolled: list, tests: list) -> tuple:
    """(EER %, genuine trials, impostor trials): every (speaker, (n, E)) enrollment against every
    (speaker, (m, E)) test."""
    scores, labels = [], []
    for spk_a, a in enrolled:
        for spk_b, b in tests:
            block = (a @ b.T).flatten().numpy()  # (n * m,)
            scores.append(block)
            labels.append(np.full(len(block), spk_a == spk_b))
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    return 100 * compute_eer(scores, labels)[0], int(labels.sum()), int((~labels).sum())


def print_table(name: str, embed, speech: dict, speakers: list) -> None:
    """The EER table of one system: ``embed`` maps a list of 16 kHz clips to (n, E) d-vectors."""
    whole = {key: embed([audio]) for key, audio in speech.items()}
    print(f'\n{name}')
    print('| speech per piece | EER, both sides that long | EER, whole enrollment vs test '
          'piece | EER, enrollment piece vs whole test | genuine / impostor trials (both) |')
    print('|---|---|---|---|---|')
    for seconds in [float(x) for x in lengths.split(',')]:
        cut = {key: embed(pieces(audio, seconds)) for key, audio in speech.items()}
        enr_cut = [(s, cut[s, 'enroll']) for s in speakers]
        test_cut = [(s, cut[s, 'test']) for s in speakers]
        both, n_gen, n_imp = eer_of(enr_cut, test_cut)
        short_test = eer_of([(s, whole[s, 'enroll']) for s in speakers], test_cut)[0]
        short_enroll = eer_of(enr_cut, [(s, whole[s, 'test']) for s in speakers])[0]
        print(f'| {seconds:g} s | {both:.2f} % | {short_test:.2f} % | {short_enroll:.2f} % | '
              f'{n_gen} / {n_imp} |')
    full = eer_of([(s, whole[s, 'enroll']) for s in speakers],
                  [(s, whole[s, 'test']) for s in speakers])
    print(f'| whole recordings | {full[0]:.2f} % | | | {full[1]} / {full[2]} |')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    torch.set_grad_enabled(False)
    model, _ = cached_model(log_dir, use_cuda)
    other = resemblyzer_embedder() if baseline == 'resemblyzer' else None
    speakers = sorted(d for d in os.listdir(wav_dir) if os.path.isdir(os.path.join(wav_dir, d)))
    speech = {(spk, side): keep_speech(read_audio(os.path.join(wav_dir, spk, side + '.wav')),
                                       c.SAMPLE_RATE, f'{spk}/{side}.wav')
              for spk in speakers for side in ('enroll', 'test')}
    print(f'{len(speakers)} speakers; speech kept: enrollments '
          f'{np.mean([len(speech[s, "enroll"]) for s in speakers]) / c.SAMPLE_RATE:.1f} s, '
          f'tests {np.mean([len(speech[s, "test"]) for s in speakers]) / c.SAMPLE_RATE:.1f} s '
          'on average')
    print_table(log_dir, lambda clips: embed_audio(model, clips), speech, speakers)
    if other is not None:
        print_table('Resemblyzer (VoiceEncoder, the same pieces)', other, speech, speakers)


if __name__ == '__main__':
    cli.run(main)

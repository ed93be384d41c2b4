"""Speech detectors compared on a labelled set made here: the energy rule dvector/vad.py had
before, Silero VAD (what dvector/vad.py uses now) and WebRTC's VAD (webrtcvad-wheels, when
installed), all in the same run.

    python tools/benchmarks/vad_compare.py
    python tools/benchmarks/vad_compare.py --work_dir runs/vad_set   # keep the set

The set (16 kHz, 16-bit, made with espeak-ng and sox into a temporary folder):
- speech: two espeak-ng sentences in each of VOICES (English, German, Spanish, French,
  Japanese, Korean; male and female), 1 s of silence before, between and after. The truth
  is the clean clip's frames within 40 dB of its loudest, widened by 0.1 s on each side: an
  energy rule on digital silence, so on the clean, clipped and quiet files it favours the
  energy rule (which sees the same thing); the noisy files and the non-speech are the test.
- the same speech in pink noise at 20, 10 and 0 dB SNR, clipped (+20 dB, cut at full scale)
  and quiet (peak at -45 dB of full scale); the same truth.
- non-speech, 10 s each: dithered silence, zeros, white, pink and brown noise at three levels,
  tones, plucked and sawtooth "music", tremolo organ, 50 Hz hum with harmonics.
Reported per detector: seconds kept as speech on the non-speech files (and how many of them
keep at least 0.5 s, enough to pass as a recording), frame accuracy on the speech files of each
kind, and CPU time per minute of audio (torch's thread count as given: OMP_NUM_THREADS=1 for
one thread; Silero's onnxruntime session always has one).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.io import wavfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from DB_wav_reader import read_audio  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.vad import speech_segments  # noqa: E402

# ---- settings ----
work_dir = ''             # where the set is written; '' = a temporary folder, removed after
SETTING_RULES = {'work_dir': cli.TEXT}

RATE = 16000
FRAME = 160               # 10 ms frames: truth and decisions are compared frame by frame
PAD_FRAMES = 10           # 0.1 s: the padding every detector's decisions get (vad.py's)
VOICES = ['en', 'en+f3', 'de', 'es+f2', 'fr', 'ja', 'ko', 'ko+f3']
SENTENCES = {'en': ('The quick brown fox jumps over the lazy dog.',
                    'Please call me back after the meeting this afternoon.'),
             'de': ('Der schnelle braune Fuchs springt über den faulen Hund.',
                    'Bitte rufen Sie mich nach der Sitzung an.'),
             'es': ('El veloz zorro marrón salta sobre el perro perezoso.',
                    'Por favor llámame después de la reunión.'),
             'fr': ('Le renard brun rapide saute par-dessus le chien paresseux.',
                    'Rappelez-moi après la réunion, s\'il vous plaît.'),
             'ja': ('今日はとても良い天気ですね。', '会議のあとで電話してください。'),
             'ko': ('안녕하세요, 오늘 날씨가 정말 좋네요.', '회의가 끝나면 저에게 전화해 주세요.')}
NON_SPEECH = {  # name: sox arguments after the output file (10 s each)
    'dithered silence': ['trim', '0', '10'],
    'white noise 0.01': ['synth', '10', 'whitenoise', 'vol', '0.01'],
    'white noise 0.1': ['synth', '10', 'whitenoise', 'vol', '0.1'],
    'white noise 0.5': ['synth', '10', 'whitenoise', 'vol', '0.5'],
    'pink noise 0.01': ['synth', '10', 'pinknoise', 'vol', '0.01'],
    'pink noise 0.1': ['synth', '10', 'pinknoise', 'vol', '0.1'],
    'pink noise 0.5': ['synth', '10', 'pinknoise', 'vol', '0.5'],
    'brown noise 0.01': ['synth', '10', 'brownnoise', 'vol', '0.01'],
    'brown noise 0.1': ['synth', '10', 'brownnoise', 'vol', '0.1'],
    'brown noise 0.5': ['synth', '10', 'brownnoise', 'vol', '0.5'],
    'tone 440 Hz': ['synth', '10', 'sine', '440', 'vol', '0.3'],
    'tone sweep 200-2000 Hz': ['synth', '10', 'sine', '200-2000', 'vol', '0.3'],
    'square 150 Hz': ['synth', '10', 'square', '150', 'vol', '0.2'],
    'plucked notes': ['synth', '10', 'pluck', 'C3', 'pluck', 'E3', 'pluck', 'G3', 'remix', '-',
                      'tremolo', '2', '90', 'vol', '0.5'],
    'sawtooth chord': ['synth', '10', 'sawtooth', '220', 'sawtooth', '277', 'sawtooth', '330',
                       'remix', '-', 'vol', '0.2'],
    'tremolo organ': ['synth', '10', 'trapezium', '262', 'tremolo', '5', '60', 'vol', '0.3'],
    'hum 50 Hz': ['synth', '10', 'sine', '50', 'sine', '100', 'sine', '150', 'remix', '-',
                  'vol', '0.3'],
}


def write(path: str, audio: np.ndarray) -> str:
    """16-bit wav of float ``audio`` (cut at full scale)."""
    wavfile.write(path, RATE, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    return path


def espeak(text: str, voice: str, path: str) -> np.ndarray:
    """An espeak-ng clip at 16 kHz, peak 0.5."""
    subprocess.run(['espeak-ng', '-v', voice, '-w', path, text], check=True)
    clip = read_audio(path, RATE)
    return 0.5 * clip / np.abs(clip).max()


def clip_truth(clip: np.ndarray) -> np.ndarray:
    """Speech frames of a clean clip: within 40 dB of its loudest frame."""
    n = len(clip) // FRAME
    db = 10 * np.log10(np.mean(clip[:n * FRAME].reshape(n, FRAME) ** 2, axis=1) + 1e-12)
    return db > db.max() - 40


def speech_file(voice: str, folder: str) -> tuple:
    """(audio, truth per frame): two sentences with 1 s of silence around each."""
    texts = SENTENCES[voice.split('+')[0]]
    gap = np.zeros(RATE, dtype=np.float32)
    parts, truth = [gap], [np.zeros(RATE // FRAME, bool)]
    for i, text in enumerate(texts):
        clip = espeak(text, voice, os.path.join(folder, f'clip_{voice}_{i}.wav'))
        clip = clip[:len(clip) // FRAME * FRAME]
        parts += [clip, gap]
        truth += [clip_truth(clip), np.zeros(RATE // FRAME, bool)]
    return np.concatenate(parts), widen(np.concatenate(truth))


def widen(frames: np.ndarray, pad: int = PAD_FRAMES) -> np.ndarray:
    """True where a True frame lies within ``pad`` frames."""
    kernel = np.ones(2 * pad + 1, dtype=np.int32)
    return np.convolve(frames.astype(np.int32), kernel, 'same') > 0


def labelled_set(folder: str) -> list:
    """[(kind, name, path, truth or None)] of the set, written into ``folder``."""
    rng = np.random.default_rng(0)
    items = []
    for voice in VOICES:
        audio, truth = speech_file(voice, folder)
        power = np.mean(audio[np.repeat(truth, FRAME)[:len(audio)]] ** 2)
        pink = read_audio(make_noise(folder, 'pinknoise', len(audio) / RATE), RATE)[:len(audio)]
        versions = {'clean': audio, 'clipped': 10 * audio,
                    'quiet': audio * (10 ** (-45 / 20) / np.abs(audio).max())}
        for snr in (20, 10, 0):
            gain = np.sqrt(power / np.mean(pink ** 2) / 10 ** (snr / 10))
            versions[f'{snr} dB SNR'] = audio + gain * np.roll(pink, rng.integers(len(pink)))
        for kind, version in versions.items():
            path = write(os.path.join(folder, f'speech_{voice}_{kind.replace(" ", "")}.wav'),
                         version)
            items.append((kind, voice, path, truth))
    for name, args in NON_SPEECH.items():
        path = os.path.join(folder, 'non_' + name.replace(' ', '_') + '.wav')
        subprocess.run(['sox', '-V1', '-n', '-r', str(RATE), '-b', '16', path] + args,
                       check=True)
        items.append(('non-speech', name, path, None))
    items.append(('non-speech', 'zeros', write(os.path.join(folder, 'non_zeros.wav'),
                                               np.zeros(10 * RATE)), None))
    return items


def make_noise(folder: str, kind: str, seconds: float) -> str:
    path = os.path.join(folder, f'noise_{kind}.wav')
    subprocess.run(['sox', '-V1', '-n', '-r', str(RATE), '-b', '16', path, 'synth',
                    f'{seconds + 1:.2f}', kind, 'vol', '0.3'], check=True)
    return path


# ---- the detectors: each maps 16 kHz audio to a speech decision per 10 ms frame -------------

def energy_rule(audio: np.ndarray) -> np.ndarray:
    """dvector/vad.py before Silero: a frame is speech when its energy is within 40 dB of the
    file's loudest (99th percentile) and 30 % of the way up from its floor (10th percentile)."""
    n = max(1, len(audio) // FRAME)
    frames = np.resize(audio, n * FRAME).reshape(n, FRAME).astype(np.float64)  # (n, FRAME)
    db = np.maximum(10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20), -100.0)
    loud, floor = np.percentile(db, 99), np.percentile(db, 10)
    return widen(db > max(loud - 40.0, floor + 0.3 * (loud - floor)))


def silero(audio: np.ndarray) -> np.ndarray:
    """dvector/vad.py now (its segments are padded by PAD_SECONDS already)."""
    frames = np.zeros(len(audio) // FRAME, bool)
    for start, end in speech_segments(audio, RATE):
        frames[start // FRAME:end // FRAME] = True
    return frames


def webrtc_detector(aggressiveness: int):
    """WebRTC's VAD on 30 ms frames of 16-bit audio, padded as the others; None without it."""
    try:
        import webrtcvad
    except ImportError:
        return None
    vad = webrtcvad.Vad(aggressiveness)

    def detect(audio: np.ndarray) -> np.ndarray:
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        step = 3 * FRAME                                  # 30 ms
        decisions = [vad.is_speech(pcm[i:i + step].tobytes(), RATE)
                     for i in range(0, len(pcm) - step + 1, step)]
        frames = np.repeat(np.array(decisions, bool), 3)
        frames = np.pad(frames, (0, max(0, len(pcm) // FRAME - len(frames))))
        return widen(frames)
    return detect


def detectors() -> dict:
    found = {'energy rule (before)': energy_rule, 'Silero VAD (now)': silero}
    for level in (2, 3):
        detect = webrtc_detector(level)
        if detect:
            found[f'WebRTC VAD {level}'] = detect
    if len(found) == 2:
        print('note: webrtcvad-wheels is not installed: WebRTC VAD left out')
    return found


# ---- the comparison -------------------------------------------------------------------------

def evaluate(detect, items: list) -> dict:
    """{'non': (seconds kept, files keeping >= 0.5 s), kind: accuracy %, 'time': s per min}."""
    kept, passing, correct, seconds, cpu = 0.0, 0, {}, 0.0, 0.0
    for kind, _, audio, truth in items:
        seconds += len(audio) / RATE
        started = time.process_time()  # CPU time: the machine may be shared
        frames = detect(audio)
        cpu += time.process_time() - started
        if truth is None:
            kept += frames.sum() * FRAME / RATE
            passing += frames.sum() * FRAME >= 0.5 * RATE
            continue
        n = min(len(frames), len(truth))
        correct.setdefault(kind, []).append(np.mean(frames[:n] == truth[:n]))
    result = {kind: 100 * np.mean(values) for kind, values in correct.items()}
    return {**result, 'non': (kept, passing), 'time': 60 * cpu / seconds}


def report(items: list) -> None:
    """The comparison table of every detector on the set's [(kind, name, path, truth)]."""
    items = [(kind, name, read_audio(path, RATE), truth) for kind, name, path, truth in items]
    kinds = list(dict.fromkeys(kind for kind, _, _, truth in items if truth is not None))
    non = [name for kind, name, _, truth in items if truth is None]
    print(f'{len(items) - len(non)} speech files ({len(VOICES)} voices x {len(kinds)} kinds), '
          f'{len(non)} non-speech files of 10 s ({10 * len(non)} s)')
    print('| detector | non-speech kept as speech (files keeping >= 0.5 s) | frame accuracy: '
          + ' / '.join(kinds) + ' | CPU time per minute of audio |')
    print('|---|---|---|---|')
    for name, detect in detectors().items():
        found = evaluate(detect, items)
        accuracy = ' / '.join(f'{found[k]:.1f}' for k in kinds)
        print(f'| {name} | {found["non"][0]:.1f} s ({found["non"][1]} of {len(non)}) | '
              f'{accuracy} % | {found["time"]:.3f} s |', flush=True)
    print('(time: CPU seconds of the detector alone, files already read)')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    folder = work_dir or tempfile.mkdtemp(prefix='vad_compare_')
    os.makedirs(folder, exist_ok=True)
    try:
        report(labelled_set(folder))
    finally:
        if not work_dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    cli.run(main)

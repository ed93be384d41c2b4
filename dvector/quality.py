"""How good is a recording for recognising its speaker? Measures and warning lines.

    from dvector.quality import assess_recording
    quality = assess_recording(audio, 44100, 'mic')   # mono samples, any rate
    print(quality.speech_seconds, quality.warnings)

Four things make decisions on a recording less sure, each measured on its speech (what
dvector/vad.py keeps) and warned about when past its limit:
- little speech: under SHORT_TEST_SECONDS (dvector/vad.py) the EER grows quickly;
- narrowband: little energy above 4-5 kHz (a telephone, an 8 kHz recording): the model was
  trained on 16 kHz speech and scores such audio lower against 16 kHz enrollments;
- clipping: samples at full scale (the input was too loud);
- very low level: speech so quiet that the noise of 16-bit samples is a part of it.
The limits and the measurements behind them: docs/RESULTS.md section 10.
"""
from dataclasses import dataclass

import numpy as np

from dvector.vad import SHORT_TEST_SECONDS, speech_of

# Narrowband: 8 kHz audio has nothing above 4 kHz, but resampling it to 16 kHz leaks some
# into 4-4.5 kHz, so the band is measured from 5 kHz: the tutorial's 20 recordings have -32 to
# -19 dB of their speech energy there, their 8 kHz 8-bit versions -67 to -49 dB.
HIGH_BAND_HZ = 5000.0
NARROWBAND_DB = -40.0      # energy above HIGH_BAND_HZ under this (dB of the whole) = narrowband
CLIP_LEVEL = 0.99          # a sample at this share of full scale or more is clipped
CLIPPED_SHARE = 0.001      # more than this share of clipped speech samples: a warning
# Every recording is set to the DB's speech level before its features (dvector/features.py),
# so the level itself does not matter; what does is the noise of 16-bit samples under very
# quiet speech: the tutorial's 20 recordings (speech at -47.5 to -40.8 dB of full scale) keep
# their scores 20 dB quieter in 16 bits (-67 to -61) and lose them 30 dB quieter, where the
# detector also misses speech (docs/RESULTS.md section 10); under this, a warning.
QUIET_DBFS = -60.0


@dataclass(frozen=True)
class RecordingQuality:
    """What a recording gives to recognise its speaker by, and the warnings it earns."""
    name: str
    audio_seconds: float     # the whole recording
    speech_seconds: float    # the speech found in it (dvector/vad.py)
    high_band_db: float      # speech energy above HIGH_BAND_HZ, dB of all its energy
    clipped_share: float     # share of the speech samples at full scale
    level_dbfs: float        # RMS level of the speech, dB of full scale
    warnings: tuple          # one line each, naming the recording ('' when all is well)

    @property
    def narrowband(self) -> bool:
        return self.high_band_db < NARROWBAND_DB


def high_band_db(speech: np.ndarray, rate: int) -> float:
    """Energy above HIGH_BAND_HZ in dB of the whole (-inf when the rate has no such band)."""
    if rate <= 2 * HIGH_BAND_HZ or len(speech) < 64:
        return float('-inf')
    from scipy.signal import welch  # here: importing scipy.signal takes every script 0.6 s
    freqs, power = welch(speech, fs=rate, nperseg=min(512, len(speech)))  # (n_freqs,)
    total = power.sum()
    return float(10 * np.log10(power[freqs >= HIGH_BAND_HZ].sum() / total + 1e-30)) \
        if total > 0 else float('-inf')


def level_dbfs(speech: np.ndarray) -> float:
    """RMS level in dB of full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64)))) if len(speech) else 0.0
    return 20 * np.log10(rms) if rms > 0 else float('-inf')


def quality_warnings(quality: RecordingQuality, short_seconds: float) -> tuple:
    """The warning lines earned by a measured recording."""
    name, lines = quality.name, []
    if quality.speech_seconds == 0:
        return (f'{name}: no speech found',)
    if quality.speech_seconds < short_seconds:
        lines.append(f'{name}: {quality.speech_seconds:.1f} s of speech (decisions below '
                     f'{short_seconds:g} s are unreliable)')
    if quality.narrowband:
        lines.append(f'{name}: narrowband audio (little energy above 4 kHz, as from a phone '
                     'or an 8 kHz recording): scores against 16 kHz recordings are lower')
    if quality.clipped_share > CLIPPED_SHARE:
        lines.append(f'{name}: clipped ({100 * quality.clipped_share:.1f} % of the speech at '
                     'full scale): record with a lower input volume')
    if quality.level_dbfs < QUIET_DBFS:
        lines.append(f'{name}: very quiet (speech at {quality.level_dbfs:.0f} dB of full '
                     'scale): speak closer to the microphone or raise the input volume')
    return tuple(lines)


def measure_quality(audio: np.ndarray, rate: int, speech: np.ndarray, name: str,
                    short_seconds: float = SHORT_TEST_SECONDS) -> RecordingQuality:
    """The quality of ``audio`` (mono, ``rate`` Hz) whose speech is ``speech`` (its samples
    that dvector/vad.py kept, or all of them); ``name`` names it in the warnings."""
    clipped = float(np.mean(np.abs(speech) >= CLIP_LEVEL)) if len(speech) else 0.0
    quality = RecordingQuality(name, len(audio) / rate, len(speech) / rate,
                               high_band_db(speech, rate), clipped, level_dbfs(speech), ())
    return RecordingQuality(**{**quality.__dict__,
                               'warnings': quality_warnings(quality, short_seconds)})


def assess_recording(audio: np.ndarray, rate: int, name: str = 'the recording',
                     short_seconds: float = SHORT_TEST_SECONDS) -> RecordingQuality:
    """Find the speech of ``audio`` (mono samples, any rate; int16 or float) and measure it.
    Never raises for lack of speech: speech_seconds is then 0, with a warning."""
    audio = np.asarray(audio)
    if np.issubdtype(audio.dtype, np.integer):  # PCM as a microphone widget gives it
        audio = audio / float(np.iinfo(audio.dtype).max + 1)
    audio = audio.astype(np.float32)
    return measure_quality(audio, rate, speech_of(audio, rate), name, short_seconds)

"""Wav files in: recordings to features and d-vectors, for the scripts and for programs.

Any WAV that scipy reads (8/16/24/32-bit PCM or float, any rate, any channels) is mixed to
mono, resampled to 16 kHz, its silences cut out (dvector/vad.py, unless ``vad=False``), and
turned into the model's features. For programs, two functions (the real-speech model by
default):

    from dvector import embed_wav, score_wavs
    result = score_wavs('me_1.wav', 'me_2.wav')
    print(result.score, result.same_speaker, result.threshold)
    print(result.quality_b.speech_seconds, result.quality_b.warnings)  # dvector/quality.py
    d_vector = embed_wav('me_1.wav')        # (E,) tensor, L2-normalised
"""
import contextlib
import fnmatch
import functools
import os
import sys
import unicodedata
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

import configure as c
from configure import SetupError
from DB_wav_reader import read_audio
from dvector import cli
from dvector.calibration import DEFAULT_P_TARGET, check_operating_point, decide
from dvector.checkpoint import inference_model, read_checkpoint, select_device
from dvector.embedding import embed_features
from dvector.features import SPEECH_LEVEL_DB, feature_settings, recording_features
from dvector.quality import RecordingQuality, measure_quality
from dvector.scoring import cosine_pairs
from dvector.vad import MIN_ENROLL_SECONDS, MIN_SPEECH_SECONDS, check_speech_length, speech_of
from SR_Dataset import read_MFB, trim_silence

REAL_MODEL_DIR = 'model_real'  # the shipped model trained on the tutorial's real speech
# the same folder wherever a program runs from (the scripts' settings are relative to the root)
REAL_MODEL_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               REAL_MODEL_DIR)
DEMO_MODEL_DIR = 'model_saved'  # the scripts' log_dir default: the demo model
TEST_FRAMES = 100              # the tutorial's test pieces (a whole-utterance model ignores it)


def check_extraction_settings(checkpoint: dict) -> None:
    """Features made now use configure.py's recipe: it must be the model's."""
    trained = checkpoint.get('feature_settings') or {}
    now = feature_settings()
    differ = [f'{k}={now.get(k)!r} (model: {v!r})' for k, v in trained.items() if now.get(k) != v]
    if differ:
        raise SetupError('cannot make features from wav files for this model: configure.py has '
                         + ', '.join(differ) + '; set configure.py to the model\'s '
                         'feature settings or give extracted .p files')


@functools.lru_cache(maxsize=32)
def analyse_wav(path: str, stamp: tuple) -> tuple:
    """(speech samples at 16 kHz, RecordingQuality) of a wav file; ``stamp`` (the file's
    modification time and size) makes a changed file be read again."""
    audio = read_audio(path, c.SAMPLE_RATE)
    speech = speech_of(audio, c.SAMPLE_RATE)
    return speech, measure_quality(audio, c.SAMPLE_RATE, speech, path)


STREAMED_WAV_LENGTH = 2 ** 31 - 2 ** 12  # a RIFF length from here up is a placeholder


def check_not_cut(path: str, size: int) -> None:
    """SetupError when a RIFF WAV file is shorter than its header says (an interrupted copy,
    download or recording): scipy reads what is left without a word, and a recording cut to
    a fraction was enrolled or scored as if whole. A streamed WAV's header, whose length is a
    placeholder (0, or 2 GiB and more: espeak-ng --stdout writes 0x7ffff024, others
    0xFFFFFFFF), says nothing, and the file is read as it is."""
    try:
        with open(path, 'rb') as f:
            head = f.read(12)
    except OSError as err:
        raise SetupError(f'{path}: cannot read the file ({err.strerror})') from None
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
        return  # not a RIFF WAV: read_audio says what it is
    promised = int.from_bytes(head[4:8], 'little') + 8
    if 8 < promised < STREAMED_WAV_LENGTH and size < promised:
        raise SetupError(f'{path}: cut short: its header gives {promised} bytes, the file '
                         f'holds {size} ({100 * size / promised:.0f} %; an interrupted copy '
                         'or recording?); copy or record it again')


def wav_speech(path: str) -> tuple:
    """(speech samples at 16 kHz, RecordingQuality) of a wav file, found once per process."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise SetupError(f'{path}: cannot read the file ({err.strerror})') from None
    check_not_cut(path, info.st_size)
    return analyse_wav(path, (info.st_mtime_ns, info.st_size))


def wav_quality(path: str) -> RecordingQuality:
    """The speech found in a wav file and its quality warnings (dvector/quality.py)."""
    return wav_speech(path)[1]


def check_enrollment(files: list) -> None:
    """Before enrolling: every wav file has MIN_ENROLL_SECONDS of speech, else one line naming
    it (decisions on shorter enrollments are unreliable)."""
    for path in files:
        quality = wav_quality(path)
        check_speech_length(quality.speech_seconds, quality.audio_seconds, path,
                            MIN_ENROLL_SECONDS, ' to enroll (decisions on shorter enrollments '
                            'are unreliable)')


def print_warnings(paths: list) -> None:
    """For the scripts: each wav file's quality warnings, one line each ('' and .p skipped)."""
    for path in paths:
        if path and is_recording(path):
            for line in wav_quality(path).warnings:
                print(f'warning: {line}')


def wav_features(path: str, vad: bool = True, level_db: float = SPEECH_LEVEL_DB) -> np.ndarray:
    """(frames, bands) float32 features of one wav file, set to ``level_db`` (the model's:
    model.recording_level_db). With ``vad`` only its speech is kept (dvector/vad.py); without,
    0.5 s is dropped at each end, as the tutorial's feature files are read."""
    if vad:
        speech, quality = wav_speech(path)
        check_speech_length(quality.speech_seconds, quality.audio_seconds, path)
        return recording_features(speech, level_db)
    check_not_cut(path, os.path.getsize(path))
    return trimmed_features(read_audio(path, c.SAMPLE_RATE), path, level_db)


def trimmed_features(audio: np.ndarray, name: str,
                     level_db: float = SPEECH_LEVEL_DB) -> np.ndarray:
    """(frames, bands) features of 16 kHz samples without the detector: 0.5 s dropped at each
    end, as the tutorial's feature files are read; SetupError naming ``name`` if too short."""
    feat = trim_silence(recording_features(audio, level_db))
    if len(feat) * c.HOP_SECONDS < MIN_SPEECH_SECONDS:  # too little to recognise anyone by
        raise SetupError(f'{name}: too short ({len(feat) * c.HOP_SECONDS:.2f} s of audio, '
                         f'trimmed); at least {MIN_SPEECH_SECONDS:g} s is needed')
    return feat


def is_wav(name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(os.path.basename(name).lower(), pattern.lower())


def list_folder(folder: str) -> list:
    try:
        return sorted(f for f in os.listdir(folder) if not f.startswith('.'))
    except OSError as err:
        raise SetupError(f'{folder}: cannot read the folder ({err.strerror})') from None


def wav_files_of(folder: str, pattern: str) -> list:
    return [os.path.join(folder, f) for f in list_folder(folder)
            if is_wav(f, pattern) and os.path.isfile(os.path.join(folder, f))]


def speaker_of_file(path: str) -> str:
    """A wav file's speaker: its name without .wav, or for the tutorial's enroll.wav and
    test.wav, its folder's name."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.basename(os.path.dirname(os.path.abspath(path))) \
        if stem.lower() in ('enroll', 'test') else stem


# a speaker is saved as <name>.pth and a "<name> <seconds>" line of speech_seconds.txt
NAME_RULE = 'a speaker name is a file name and a line of the set\'s record'
MAX_SPEAKER_BYTES = 255 - len('.pth')  # a file name's limit on common file systems


def speaker_name_problem(name: str) -> str:
    """What makes ``name`` unusable as a speaker's name ('' when nothing does)."""
    if not name.strip():
        return 'is blank'
    if name != name.strip():
        return 'begins or ends with a space'
    if any(unicodedata.category(ch) in ('Cc', 'Zl', 'Zp') for ch in name):
        return 'holds a control character (a tab or a line break)'
    if '/' in name or '\\' in name or name.startswith('.'):
        return 'holds / or \\, or starts with a dot'
    if len(name.encode('utf-8')) > MAX_SPEAKER_BYTES:
        return f'is longer than {MAX_SPEAKER_BYTES} bytes'
    return ''


def speakers_and_wavs(path: str, pattern: str = '*.wav', speaker: str = '') -> dict:
    """{speaker: [wav files]} to enroll from ``path``: one wav file (its name, without .wav,
    is the speaker), a folder of one speaker's wav files (the folder's name), or a folder of
    speaker folders. ``speaker`` names the one speaker of a file or folder. A name that cannot
    be a file name and a line of the set's record is refused, naming where it came from."""
    if speaker and speaker_name_problem(speaker):
        raise SetupError(f'--speaker {cli.brief(speaker)}: {NAME_RULE}: this one '
                         f'{speaker_name_problem(speaker)}; give another')
    # names as typed (NFC): a file name from macOS spells 내 as three jamo (NFD), which
    # --enroll_speaker 내 would not match though it looks the same
    found = {unicodedata.normalize('NFC', name): files
             for name, files in find_speaker_wavs(path, pattern, speaker).items()}
    found = each_recording_once(found)
    for name, files in found.items():
        if speaker_name_problem(name):
            raise SetupError(f'{files[0]}: its speaker {cli.brief(name)} (from the file or '
                             f'folder name) {speaker_name_problem(name)} ({NAME_RULE}); '
                             'rename it or give --speaker')
    return found


def file_identity(path: str) -> tuple:
    """(device, inode) of a file: one recording, whatever links or names lead to it."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def each_recording_once(found: dict) -> dict:
    """``found`` ({speaker: [wav files]}) with each real file once. A file reached twice within
    one speaker (a link beside its target) is kept once, with a note; one reached from two
    speakers (bob -> alice, a link to a speaker's folder or file) is refused naming both: the
    one voice would be enrolled under two names, and which name is the right one only the user
    knows (identification would split its answers between the two)."""
    owner, kept = {}, {}
    for name, files in found.items():
        kept[name] = []
        for path in files:
            identity = file_identity(path)
            if identity not in owner:
                owner[identity] = (name, path)
                kept[name].append(path)
            elif owner[identity][0] != name:
                first_name, first_path = owner[identity]
                raise SetupError(f'{path} and {first_path} are one recording (a link or a '
                                 f'copy by link): it would enroll both {first_name} and '
                                 f'{name}; remove the link, or enroll one of the two')
        if len(kept[name]) < len(files):
            print(f'note: {name}: {len(files) - len(kept[name])} of its wav files are links to '
                  'others of its files; each recording is read once')
    return kept


def find_speaker_wavs(path: str, pattern: str, speaker: str) -> dict:
    """speakers_and_wavs' search: {speaker: [wav files]} of a file, a folder or a folder of
    speaker folders."""
    path = path.rstrip('/\\') or path
    if os.path.isfile(path) and not is_recording(path):
        raise SetupError(f'{path}: a feature file (.p), not a recording; enroll.py --test_dir '
                         'enrolls the <speaker>/enroll.p files of a folder')
    if os.path.isfile(path):
        return {speaker or speaker_of_file(path): [path]}
    if os.path.exists(path) and not os.path.isdir(path):
        raise SetupError(f'{path}: not a regular file (a pipe, socket or device) nor a folder')
    if not os.path.isdir(path):
        raise SetupError(f'{path}: no such wav file or folder')
    own = wav_files_of(path, pattern)
    folders = {d: wav_files_of(os.path.join(path, d), pattern) for d in list_folder(path)
               if os.path.isdir(os.path.join(path, d))}
    found = {d: files for d, files in folders.items() if files}
    if own and found:  # one speaker of its own files, not its folders' speakers: say so
        print(f'note: {path} is enrolled as one speaker from its {len(own)} own wav file(s); '
              f'its folders of wav files are not ({", ".join(list(found)[:3])}'
              + (' ...)' if len(found) > 3 else ')'))
    if own:
        return {speaker or os.path.basename(os.path.abspath(path)): own}
    if not found:
        raise SetupError(f'{path}: no wav files ({pattern}) in it or in its speaker folders')
    if speaker:
        raise SetupError(f'--speaker {speaker}: {path} holds {len(found)} speaker folders, '
                         'each enrolled under its own name; give one speaker\'s folder or file')
    left_out = sorted(set(folders) - set(found))
    if left_out:  # e.g. <speaker>/<session>/*.wav: the files must lie in the speaker folder
        print(f'note: not enrolled: {len(left_out)} folder(s) of {path} with no {pattern} '
              f'files directly in them: {", ".join(left_out[:5])}'
              + (' ...' if len(left_out) > 5 else ''))
    return found


def embed_wavs(model: torch.nn.Module, files: list, device: torch.device, vad: bool = True,
               test_frames: int = TEST_FRAMES) -> torch.Tensor:
    """(n_files, E) L2-normalised d-vectors of wav files (the tutorial's get_embeddings)."""
    return embed_wavs_with_seconds(model, files, device, vad, test_frames)[0]


def embed_wavs_with_seconds(model: torch.nn.Module, files: list, device: torch.device,
                            vad: bool = True, test_frames: int = TEST_FRAMES) -> tuple:
    """((n_files, E) d-vectors, [seconds of speech of each file]): what a calibrated model's
    LLR needs (dvector/calibration.py)."""
    level = getattr(model, 'recording_level_db', SPEECH_LEVEL_DB)  # checkpoint.inference_model
    feats = [wav_features(f, vad, level) for f in files]
    return (embed_features(model, feats, files, test_frames, device),
            [len(f) * c.HOP_SECONDS for f in feats])


def embed_test_with_seconds(model: torch.nn.Module, path: str, test_frames: int,
                            device: torch.device, vad: bool = True) -> tuple:
    """((1, E) d-vector, seconds of speech) of a feature file (.p, trimmed as the tutorial
    reads it) or a wav file (silences cut)."""
    if not is_recording(path):
        feat = read_MFB(path)[0]
        return embed_features(model, [feat], [path], test_frames, device), \
            len(feat) * c.HOP_SECONDS
    embedding, seconds = embed_wavs_with_seconds(model, [path], device, vad, test_frames)
    return embedding, seconds[0]


def check_wav_input(setting: str, path: str, vad: bool = True) -> None:
    """Before any work: ``--setting`` names one file, and a recording is read now (its speech
    is kept for the embedding), so that a file without speech, or no WAV at all, is one line
    before the model is loaded."""
    if os.path.isdir(path):
        raise SetupError(f'--{setting} {path}: is a folder; give one wav file')
    if not os.path.exists(path):
        raise SetupError(f'--{setting} {path}: no such file')
    if not os.path.isfile(path):
        raise SetupError(f'--{setting} {path}: not a regular file (a pipe, socket or device); '
                         'give a wav file')
    if is_recording(path):
        wav_features(path, vad)


def check_unused(settings: dict, input_setting: str, unused: tuple) -> None:
    """A setting the user gave that ``input_setting`` (when given) makes unused is one line,
    not silently ignored (e.g. --test_speaker with --test_wav)."""
    if not settings.get(input_setting):
        return
    for name in unused:
        if name in settings.get('GIVEN_SETTINGS', ()):
            raise SetupError(f'--{name} {settings[name]}: not used with --{input_setting} '
                             f'{settings[input_setting]}; give one of the two')


# ---- which model reads an input: the one rule (README "Your own voice", docs/ADVANCED.md) ---

DEMO_ENROLLMENT_DIR = 'enroll_embeddings'      # the scripts' embedding_dir default
REAL_ENROLLMENT_DIR = 'enroll_embeddings_real'  # the real-speech model's enrollments


def is_recording(path: str) -> bool:
    """The one test of what an input file is: the tutorial's feature file (.p) or a recording
    (anything else, read as a WAV file)."""
    return not os.fspath(path).lower().endswith('.p')


class Folders(NamedTuple):
    """The model folder and the enrollment folder that a script's input takes."""
    log_dir: str
    embedding_dir: str


def model_folders(settings: dict, wav_input: bool) -> Folders:
    """The folders for a script's input (``settings``: its globals, after
    cli.override_settings). Feature files take ``log_dir`` and ``embedding_dir`` as set.
    Recordings take the real-speech model, model_real, and its enrollments,
    enroll_embeddings_real, in place of each of the two that the user did not choose: a folder
    given on the command line or in a recipe, or edited in the script, is used as it is (the
    demo model, made from synthetic feature files, cannot tell real voices apart)."""
    log_dir, embedding_dir = settings['log_dir'], settings.get('embedding_dir', '')
    if wav_input and not cli.was_chosen(settings, 'log_dir', DEMO_MODEL_DIR):
        # the repository's own when a script runs from another folder (no model_real there)
        log_dir = REAL_MODEL_DIR if os.path.isdir(REAL_MODEL_DIR) else REAL_MODEL_PATH
    if wav_input and not cli.was_chosen(settings, 'embedding_dir', DEMO_ENROLLMENT_DIR):
        embedding_dir = REAL_ENROLLMENT_DIR
    return Folders(log_dir, embedding_dir)


# ---- for programs ---------------------------------------------------------------------------

class Comparison(NamedTuple):
    """score_wavs' answer: the cosine score, the model's threshold, and the decision; the
    quality of each recording (dvector/quality.py: speech found, warnings)."""
    score: float
    threshold: float
    same_speaker: bool
    quality_a: Optional[RecordingQuality] = None
    quality_b: Optional[RecordingQuality] = None
    llr: Optional[float] = None       # a calibrated model's log-likelihood ratio, else None
    meaning: str = ''                 # the LLR in words ('40 times more likely ...')
    decided_on: str = ''              # the threshold and what it rests on (operating point)


def notes_to_stderr() -> contextlib.AbstractContextManager:
    """For programs: the notes printed for the scripts' users (resampling, a model's settings)
    go to stderr, so that a program's stdout stays its own."""
    return contextlib.redirect_stdout(sys.stderr)


def check_arguments(paths: dict, log_dir: Any, vad: Any) -> None:
    """For programs: SetupError naming the argument whose type is wrong (a wav's bytes for its
    path, log_dir=None, vad='no', which is true), before anything is read; the message names
    the type, never the value (bytes of a whole file)."""
    given = {**paths, 'log_dir': log_dir}
    for name, value in given.items():
        if not isinstance(value, (str, os.PathLike)):
            kind = 'folder' if name == 'log_dir' else 'wav file'
            raise SetupError(f'{name}: expected the path of a {kind} (str), got '
                             f'{type(value).__name__}')
    if not isinstance(vad, (bool, np.bool_)):
        raise SetupError(f'vad: expected True or False, got {type(vad).__name__}')


@functools.lru_cache(maxsize=4)
def cached_model(log_dir: str, use_cuda: bool = True) -> tuple:
    """(model, checkpoint) of ``log_dir``'s best checkpoint, loaded once per process."""
    checkpoint = read_checkpoint(log_dir, 0)
    check_extraction_settings(checkpoint)
    return inference_model(checkpoint, select_device(use_cuda)), checkpoint


def embed_wav(path: str, log_dir: str = REAL_MODEL_PATH, vad: bool = True) -> torch.Tensor:
    """The d-vector of a wav file: an (E,) L2-normalised tensor on the CPU.

    Args:
        path: a WAV file of one speaker (any rate, any number of channels).
        log_dir: the model's folder (the real-speech model by default).
        vad: keep only the speech (Silero VAD, dvector/vad.py).
    Raises SetupError (one line naming the file) for an unreadable file or too little speech.
    """
    check_arguments({'path': path}, log_dir, vad)
    with notes_to_stderr():
        model, _ = cached_model(log_dir)
        device = next(model.parameters()).device
        return embed_wavs(model, [path], device, vad)[0].cpu()


def score_wavs(path_a: str, path_b: str, log_dir: str = REAL_MODEL_PATH,
               vad: bool = True, p_target: float = DEFAULT_P_TARGET, c_miss: float = 1.0,
               c_fa: float = 1.0, thres: float = 0.0) -> Comparison:
    """Are two wav files of the same speaker? Comparison(score, threshold, same_speaker, ...).

    The score is the cosine similarity of their d-vectors (-1 to 1). A calibrated model
    (tools/calibrate.py) turns it and both files' seconds of speech into an LLR (``llr``, in
    words ``meaning``) and decides at the Bayes threshold of p_target, c_miss, c_fa (the
    default p_target 0.5: as likely the same speaker as not); ``threshold`` is then the score
    that LLR threshold means for these lengths. Without calibration, the model's stored
    threshold (its EER threshold); ``thres`` (not 0) is the caller's own, on the score.
    ``decided_on`` says which."""
    check_arguments({'path_a': path_a, 'path_b': path_b}, log_dir, vad)
    with notes_to_stderr():
        model, checkpoint = cached_model(log_dir)
        return compare_wavs(model, checkpoint, path_a, path_b, vad, p_target, c_miss, c_fa,
                            thres)


def compare_wavs(model: torch.nn.Module, checkpoint: dict, path_a: str, path_b: str,
                 vad: bool = True, p_target: float = DEFAULT_P_TARGET, c_miss: float = 1.0,
                 c_fa: float = 1.0, thres: float = 0.0) -> Comparison:
    """score_wavs with a model already loaded (its inference_model and checkpoint): what
    score_wavs and dvector.Encoder.score share."""
    point = check_operating_point(p_target, c_miss, c_fa)
    if os.path.isfile(path_a) and os.path.isfile(path_b) and os.path.samefile(path_a, path_b):
        raise SetupError(f'{path_a}, {path_b}: one file; compare two recordings (a recording '
                         'against itself scores 1 by construction)')
    device = next(model.parameters()).device
    (a, b), seconds = embed_wavs_with_seconds(model, [path_a, path_b], device, vad)
    score = float(cosine_pairs(b[None], a[None])[0])
    decision = decide(score, checkpoint, tuple(seconds), thres, point)
    return Comparison(score, decision.threshold, decision.accept, wav_quality(path_a),
                      wav_quality(path_b), decision.llr, decision.meaning, decision.basis)

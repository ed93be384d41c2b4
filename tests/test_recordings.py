"""Wav files in (dvector/recordings.py): which files enroll whom, features with and without the
voice activity detector, and the two functions for programs."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly
from test_vad import espeak, needs_tools

from configure import SetupError
from conftest import ROOT, run_script, write_24bit
from dvector import embed_wav, score_wavs
from dvector.checkpoint import read_checkpoint
from dvector.cli import override_settings
from dvector.fileio import load_torch
from dvector.recordings import (
    Folders,
    cached_model,
    is_recording,
    model_folders,
    speakers_and_wavs,
    wav_features,
)
from dvector.threshold import store_threshold, threshold_record


def voice(seconds: float, pitch: float, rate: int = 16000, pad: float = 1.0) -> np.ndarray:
    """A buzzy vowel-like tone at ``pitch`` Hz with ``pad`` seconds of silence on each side."""
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 12))
    tone *= 0.2 * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))  # syllable-like loudness
    gap = np.zeros(int(pad * rate))
    return np.concatenate([gap, tone, gap]).astype(np.float32)


def write_wav(path, audio, rate=16000):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    wavfile.write(str(path), rate, audio)
    return str(path)


def speech_wav(path, voice: str = 'en', rate: int = 16000) -> str:
    """An espeak-ng sentence (about 4.6 s of speech, 1 s of silence each side) as a wav: the
    detector finds no speech in a tone (tests/test_vad.py)."""
    raw = str(path) + '_espeak'  # espeak-ng's own file, beside (not among) the wavs
    os.makedirs(raw, exist_ok=True)
    audio = espeak(raw, voice=voice)
    if rate != 16000:
        audio = resample_poly(audio, rate, 16000).astype(np.float32)
    return write_wav(path, audio, rate)


def test_who_is_enrolled_from_a_file_a_folder_or_a_folder_of_speakers(tmp_path):
    a = write_wav(tmp_path / 'db' / 'alice' / 'one.wav', voice(1, 200))
    b = write_wav(tmp_path / 'db' / 'alice' / 'Two.WAV', voice(1, 210))
    c = write_wav(tmp_path / 'db' / 'bob' / 'enroll.wav', voice(1, 100))
    write_wav(tmp_path / 'db' / 'bob' / 'test.wav', voice(1, 100))
    (tmp_path / 'db' / 'bob' / 'notes.txt').write_text('not a wav')
    assert speakers_and_wavs(a) == {'one': [a]}
    assert speakers_and_wavs(a, speaker='me') == {'me': [a]}
    assert speakers_and_wavs(str(tmp_path / 'db' / 'alice') + '/') == {'alice': [b, a]}
    folders = speakers_and_wavs(str(tmp_path / 'db'), 'enroll.wav')
    assert folders == {'alice': [], 'bob': [c]} or folders == {'bob': [c]}
    assert set(speakers_and_wavs(str(tmp_path / 'db'))) == {'alice', 'bob'}
    with pytest.raises(SetupError, match='--speaker me: .* holds 2 speaker folders'):
        speakers_and_wavs(str(tmp_path / 'db'), speaker='me')
    with pytest.raises(SetupError, match='no wav files'):
        speakers_and_wavs(str(tmp_path / 'db'), '*.flac')
    for bad in ('../me', '.hidden', 'a\\b'):
        with pytest.raises(SetupError, match='a speaker name is a file name'):
            speakers_and_wavs(a, speaker=bad)
    with pytest.raises(SetupError, match='nothing.wav: no such wav file or folder'):
        speakers_and_wavs(str(tmp_path / 'nothing.wav'))


@needs_tools
def test_any_wav_format_gives_the_same_features(tmp_path):
    audio = wavfile.read(speech_wav(tmp_path / 'a.wav'))[1]
    mono16k = str(tmp_path / 'a.wav')
    stereo = np.stack([audio, audio], axis=1)
    int16 = write_wav(tmp_path / 'b.wav', (stereo * 32767).astype(np.int16))
    deep = write_24bit(tmp_path / 'c.wav', audio)
    reference = wav_features(mono16k, vad=False)
    for other in (int16, deep):
        np.testing.assert_allclose(wav_features(other, vad=False), reference, atol=0.25)  # dB
        assert len(wav_features(other)) == pytest.approx(len(wav_features(mono16k)), abs=4)


@needs_tools
def test_vad_cuts_the_silence_and_no_vad_trims_half_a_second(tmp_path):
    path = speech_wav(tmp_path / 'a.wav')          # 1 s of silence, the sentence, 1 s
    samples = len(wavfile.read(path)[1])
    with_vad, without = wav_features(path), wav_features(path, vad=False)
    spoken = (samples - 32000) / 160               # frames of the sentence without the silence
    assert 0.8 * spoken <= len(with_vad) <= spoken + 25 and with_vad.shape[1] == 40
    # frames of 25 ms every 10 ms (the last one padded), less 50 at each end
    assert len(without) == 1 + int(np.ceil((samples - 400) / 160)) - 100
    silent = write_wav(tmp_path / 's.wav', np.zeros(32000, dtype=np.float32))
    with pytest.raises(SetupError, match=r'no speech found in .*s\.wav \(2\.00 s of audio'):
        wav_features(silent)


@needs_tools
def test_embed_wav_and_score_wavs_for_programs(tmp_path, trained_run):
    run = str(tmp_path / 'run')
    shutil.copytree(trained_run[0], run)
    a = speech_wav(tmp_path / 'a' / 'a.wav')
    b = speech_wav(tmp_path / 'b' / 'b.wav', 'de', rate=22050)
    d_vector = embed_wav(a, log_dir=run)
    assert d_vector.shape == (128,) and float(d_vector.norm()) == pytest.approx(1, abs=1e-4)
    path = read_checkpoint(run)['path']  # the checkpoint the scripts choose
    trained = read_checkpoint(run)['verification_threshold']['cosine']['threshold']
    assert score_wavs(a, b, log_dir=run).threshold == trained  # the one train.py stored
    store_threshold(path, threshold_record(0.5, 1, 1, 'trials', 10), scored=load_torch(path))
    cached_model.cache_clear()
    a_copy = shutil.copy(a, tmp_path / 'a_copy.wav')  # one file twice is refused
    same = score_wavs(a, str(a_copy), log_dir=run)
    assert same.score == pytest.approx(1, abs=1e-4) and same.same_speaker
    assert same.threshold == 0.5
    other = score_wavs(a, b, log_dir=run)
    assert other.score == pytest.approx(float(torch.dot(d_vector, embed_wav(b, log_dir=run))),
                                        abs=1e-5)
    assert other.same_speaker == (other.score > 0.5)


@needs_tools
def test_wav_commands_of_the_scripts(tmp_path, trained_run):
    log_dir = trained_run[0]
    run = str(tmp_path / 'run')
    shutil.copytree(log_dir, run)
    path = read_checkpoint(run)['path']  # the checkpoint the scripts choose
    store_threshold(path, threshold_record(0.5, 1, 1, 'trials', 10), scored=load_torch(path))
    me = [speech_wav(tmp_path / 'me' / f'{i}.wav', voice)
          for i, voice in enumerate(['en', 'en+m3'])]
    other = speech_wav(tmp_path / 'other' / 'other.wav', 'de')
    emb = str(tmp_path / 'emb')
    common = ['--log_dir', run, '--embedding_dir', emb]  # wav input takes the folders given
    result = run_script('enroll.py', '--enroll_wav', str(tmp_path / 'me'), *common)
    assert result.returncode == 0, result.stderr
    assert 'Aggregates the activation (spk : me, 2 wav files)' in result.stdout
    result = run_script('enroll.py', '--enroll_wav', other, '--speaker', 'friend', *common)
    assert '2 speakers enrolled in ' + emb + ': friend, me' in result.stdout  # added, not replaced
    assert sorted(os.listdir(emb)) == ['enrolled_with.txt', 'friend.pth', 'me.pth',
                                       'speech_seconds.txt']
    result = run_script('identification.py', '--test_wav', me[1], *common)
    assert result.returncode == 0, result.stderr
    assert 'True speaker : me\nPredicted speaker : ' in result.stdout
    assert "Score : " in result.stdout and "Threshold : 0.5000 (this model's" in result.stdout
    copy = shutil.copy(me[0], tmp_path / 'me_copy.wav')  # the file itself is refused
    result = run_script('verification.py', '--enroll_wav', me[0], '--test_wav', str(copy),
                        *common, '--thres', '0.99')
    assert 'Result : Accept' in result.stdout and 'Score : 1.0000' in result.stdout
    assert 'Threshold : 0.99 (--thres)' in result.stdout


def test_the_tutorials_enroll_wav_is_its_folders_speaker(tmp_path):
    path = write_wav(tmp_path / '103F3021' / 'enroll.wav', voice(1, 200))
    assert speakers_and_wavs(path) == {'103F3021': [path]}


def test_too_short_without_the_detector_is_one_line(tmp_path):
    path = write_wav(tmp_path / 'a.wav', voice(0.2, 150, pad=0.05))  # 0.3 s (kept untrimmed)
    with pytest.raises(SetupError, match=r'a.wav: too short \(0.29 s of audio, trimmed\); at '
                                         r'least 0.5 s is needed'):
        wav_features(path, vad=False)


@needs_tools
def test_the_functions_find_the_real_model_from_any_folder(tmp_path):
    path = speech_wav(tmp_path / 'a.wav')
    code = (f'import sys; sys.path.insert(0, {ROOT!r}); from dvector import embed_wav; '
            f'print(tuple(embed_wav({path!r}).shape))')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith('(256,)')


@needs_tools
def test_wav_input_mistakes_are_one_line_and_lose_nothing(tmp_path, trained_run):
    log_dir, _, test_dir = trained_run
    emb = str(tmp_path / 'emb')
    assert run_script('enroll.py', '--log_dir', log_dir, '--test_dir', test_dir,
                      '--embedding_dir', emb).returncode == 0
    before = sorted(os.listdir(emb))
    wav = speech_wav(tmp_path / 'me' / 'me.wav')
    # the real model cannot add to a set the synthetic-feature model made: refused, kept
    result = run_script('enroll.py', '--enroll_wav', wav, '--embedding_dir', emb)
    assert result.returncode == 1 and sorted(os.listdir(emb)) == before
    assert result.stderr.startswith(f'error: {emb}: holds 3 speakers enrolled by another model')
    result = run_script('verification.py', '--test_wav', str(tmp_path), '--enroll_wav', wav)
    assert result.returncode == 1
    assert result.stderr == f'error: --test_wav {tmp_path}: is a folder; give one wav file\n'
    result = run_script('identification.py', '--test_wav', wav, '--log_dir', log_dir,
                        '--embedding_dir', str(tmp_path / 'none'))
    assert result.returncode == 1 and 'enrollment folder not found' in result.stderr
    # the model given is the one used for the wav, with the set that model enrolled
    result = run_script('identification.py', '--test_wav', wav, '--log_dir', log_dir,
                        '--embedding_dir', emb)
    assert result.returncode == 0, result.stderr
    assert 'Predicted speaker : ' in result.stdout and 'note: wav input' not in result.stdout


REAL = ('model_real', 'enroll_embeddings_real')


@pytest.mark.parametrize('argv, edited, wav_input, expected', [
    ([], {}, False, ('model_saved', 'enroll_embeddings')),
    ([], {}, True, REAL),
    (['--log_dir', 'runs/mine'], {}, False, ('runs/mine', 'enroll_embeddings')),
    (['--log_dir', 'runs/mine'], {}, True, ('runs/mine', 'enroll_embeddings_real')),
    (['--embedding_dir', 'D'], {}, True, ('model_real', 'D')),
    (['--log_dir=model_saved'], {}, True, ('model_saved', 'enroll_embeddings_real')),
    (['--embedding_dir', 'enroll_embeddings'], {}, True, ('model_real', 'enroll_embeddings')),
    ([], {'log_dir': 'runs/mine'}, True, ('runs/mine', 'enroll_embeddings_real')),  # edited
    ([], {'embedding_dir': 'mine'}, True, ('model_real', 'mine')),
])
def test_one_rule_picks_the_model_and_enrollments_of_an_input(argv, edited, wav_input,
                                                              expected):
    """Feature files: log_dir and embedding_dir as set; recordings: the real-speech pair in
    place of each folder the user did not choose (given, even as its default, or edited)."""
    settings = {'log_dir': 'model_saved', 'embedding_dir': 'enroll_embeddings', **edited}
    override_settings(settings, argv)
    assert model_folders(settings, wav_input) == Folders(*expected)


def test_a_folder_set_in_a_recipe_is_chosen(tmp_path):
    recipe = tmp_path / 'mine.py'
    recipe.write_text("log_dir = 'model_saved'\n")
    settings = {'log_dir': 'model_saved', 'embedding_dir': 'enroll_embeddings'}
    override_settings(settings, [str(recipe)])
    assert model_folders(settings, True) == Folders('model_saved', 'enroll_embeddings_real')


def test_what_is_a_recording_is_decided_by_one_test():
    assert not is_recording('feat/spk/test.p') and not is_recording('A.P')
    assert is_recording('me.wav') and is_recording('ME.WAV') and is_recording('a.p.wav')
    assert is_recording('no_extension')


@needs_tools
@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, 'model_real')),
                    reason='needs model_real/')
def test_an_embedding_dir_given_with_a_wav_is_the_one_written_and_read(tmp_path):
    """Issue 27: enroll.py --enroll_wav X --speaker me --embedding_dir D wrote into
    enroll_embeddings_real (its wav_embedding_dir), not D."""
    wav = speech_wav(tmp_path / 'rec' / 'take one.wav')
    emb = str(tmp_path / 'mine')
    result = run_script('enroll.py', '--enroll_wav', wav, '--speaker', 'me',
                        '--embedding_dir', emb)
    assert result.returncode == 0, result.stderr
    assert f'1 speaker enrolled in {emb}: me' in result.stdout
    assert 'me.pth' in os.listdir(emb)
    with open(os.path.join(emb, 'enrolled_with.txt')) as f:
        assert 'model_real' in f.read()  # the real-speech model, the log_dir not chosen
    result = run_script('verification.py', '--enroll_speaker', 'me', '--test_wav', wav,
                        '--embedding_dir', emb)
    assert result.returncode == 0, result.stderr
    assert 'Result : Accept' in result.stdout and 'Score : 1.0000' in result.stdout


def test_a_recording_of_non_finite_samples_is_one_line(tmp_path):
    """Hunt: a float WAV with NaN samples was refused only after the model ran, as features
    'not what the model was trained on', with numpy's warnings."""
    from DB_wav_reader import read_audio
    audio = voice(1, 150)
    audio[100:110] = np.nan
    path = write_wav(tmp_path / 'nan.wav', audio)
    with pytest.raises(SetupError, match=r'nan.wav: 10 of 48000 samples are not finite numbers'):
        read_audio(path)


def test_a_pipe_named_like_a_wav_is_not_called_missing(tmp_path):
    """Hunt: a FIFO given as a wav was 'no such file'."""
    from dvector.recordings import check_wav_input
    fifo = str(tmp_path / 'fifo.wav')
    os.mkfifo(fifo)
    with pytest.raises(SetupError, match='--test_wav .*fifo.wav: not a regular file'):
        check_wav_input('test_wav', fifo)
    with pytest.raises(SetupError, match='fifo.wav: not a regular file'):
        speakers_and_wavs(fifo)


def test_a_feature_file_given_to_enroll_as_a_wav_says_what_it_is(tmp_path):
    path = str(tmp_path / 'enroll.p')
    with open(path, 'wb') as f:
        f.write(b'\x80\x04')
    with pytest.raises(SetupError, match=r'enroll.p: a feature file \(.p\), not a recording'):
        speakers_and_wavs(path)


def test_upper_case_wav_names_count_in_evaluates_wav_tree(tmp_path):
    """Hunt: evaluate.py --test_wav_dir left out <speaker>/TEST.WAV without a word."""
    from dvector.enrollment import split_enroll_and_test
    for name in ('a/Enroll.WAV', 'a/TEST.WAV', 'b/enroll.wav', 'b/test.wav'):
        write_wav(tmp_path / name, voice(1, 150))
    enroll, test = split_enroll_and_test(str(tmp_path), '.wav')
    assert sorted(enroll['speaker_id']) == ['a', 'b'] and sorted(test['speaker_id']) == ['a', 'b']


SHIPPED_TEST = os.path.join('feat_logfbank_nfilt40', 'test', 'demo_m47', 'test.p')


@pytest.mark.parametrize('args, message', [
    (['identification.py', '--test_wav', 'X.wav', '--test_speaker', 'demo_m41'],
     '--test_speaker demo_m41: not used with --test_wav X.wav; give one of the two'),
    (['verification.py', '--test_wav', 'X.wav', '--test_dir', 'feats'],
     '--test_dir feats: not used with --test_wav X.wav; give one of the two'),
    (['verification.py', '--enroll_wav', 'Y.wav', '--enroll_speaker', 'me', '--test_wav', 'X.wav'],
     '--enroll_speaker me: not used with --enroll_wav Y.wav; give one of the two'),
    (['enroll.py', '--enroll_wav', 'Y.wav', '--test_dir', 'feats'],
     '--test_dir feats: not used with --enroll_wav Y.wav; give one of the two'),
    (['evaluate.py', '--test_wav_dir', 'W', '--test_dir', 'feats'],
     '--test_dir feats: not used with --test_wav_dir W; give one of the two'),
    (['verification.py', '--enroll_wav', SHIPPED_TEST, '--test_wav', 'X.wav'],
     f'--enroll_wav {SHIPPED_TEST}, --test_wav X.wav: one is a feature file (.p), the other a '
     'recording; give two of a kind'),
    (['identification.py', '--test_wav', 'empty.wav'], 'empty.wav: empty audio (no samples)'),
])
def test_wav_input_that_cannot_work_is_one_line_before_the_model(tmp_path, args, message):
    """Hunt: a setting the wav input makes unused was ignored without a word; a recording
    without samples was refused only after the model and enrollments were loaded."""
    wavfile.write(str(tmp_path / 'empty.wav'), 16000, np.zeros(0, np.int16))
    write_wav(tmp_path / 'X.wav', voice(0.1, 150, pad=0))  # too short: never read here
    write_wav(tmp_path / 'Y.wav', voice(0.1, 150, pad=0))
    os.symlink(os.path.join(ROOT, 'feat_logfbank_nfilt40'), tmp_path / 'feat_logfbank_nfilt40')
    result = run_script(os.path.join(ROOT, args[0]), *args[1:], cwd=tmp_path)
    assert result.returncode == 1 and result.stderr == f'error: {message}\n'
    assert 'loading checkpoint' not in result.stdout


def test_a_feature_file_given_as_test_wav_is_read_with_the_feature_model():
    """A .p given as --test_wav is a feature file: model_saved and enroll_embeddings (it took
    model_real and enroll_embeddings_real before the one rule)."""
    result = run_script('identification.py', '--test_wav', SHIPPED_TEST)
    assert result.returncode == 0, result.stderr
    assert 'model_saved/checkpoint_' in result.stdout
    assert 'True speaker : demo_m47\nPredicted speaker : demo_m47' in result.stdout


def test_a_speaker_name_that_cannot_be_a_file_and_a_record_line_is_refused(tmp_path):
    """Hunt: --speaker ' ' enrolled ' .pth', whose record line the next enroll.py could not
    read (the set was stuck); a tab did the same; 200 Korean letters failed only after the
    model ran (File name too long)."""
    a = write_wav(tmp_path / 'a.wav', voice(1, 200))
    for bad, why in ((' ', 'is blank'), (' me', 'begins or ends with a space'),
                     ('a\tb', 'holds a control character'), ('가' * 100, 'is longer than 251')):
        with pytest.raises(SetupError, match=f'a speaker name is a file name .*{why}'):
            speakers_and_wavs(a, speaker=bad)
    tab = write_wav(tmp_path / 'x\ty' / 'a.wav', voice(1, 200))
    with pytest.raises(SetupError, match=r"a.wav: its speaker 'x\\ty' \(from the file or folder"):
        speakers_and_wavs(os.path.dirname(tab))
    assert speakers_and_wavs(a, speaker='내 목소리') == {'내 목소리': [a]}


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, 'model_real')),
                    reason='needs model_real/')
def test_a_script_run_from_another_folder_finds_the_real_model(tmp_path):
    """Hunt: from another folder, wav input said 'model_real: no checkpoint_<epoch>.pth files
    (train a model first)' of the shipped model."""
    wav = write_wav(tmp_path / 'me.wav', voice(4, 150))
    result = run_script(os.path.join(ROOT, 'identification.py'), '--test_wav', wav, '--vad',
                        'false', cwd=tmp_path)
    assert result.returncode == 1
    assert os.path.join(ROOT, 'model_real', 'checkpoint_') in result.stdout
    assert result.stderr == ('error: enroll_embeddings_real: enrollment folder not found (run '
                             'enroll.py first)\n')


def test_speaker_folders_that_are_not_enrolled_are_named(tmp_path, capsys):
    """Hunt: db/intro.wav beside db/alice/ enrolled one speaker 'db' from intro.wav without a
    word; db/carol/session1/*.wav left carol out without a word."""
    intro = write_wav(tmp_path / 'db' / 'intro.wav', voice(1, 150))
    alice = write_wav(tmp_path / 'db' / 'alice' / 'a.wav', voice(1, 200))
    capsys.readouterr()
    assert speakers_and_wavs(str(tmp_path / 'db')) == {'db': [intro]}
    assert ('is enrolled as one speaker from its 1 own wav file(s); its folders of wav files '
            'are not (alice)') in capsys.readouterr().out
    os.remove(intro)
    write_wav(tmp_path / 'db' / 'carol' / 'session1' / 'c.wav', voice(1, 250))
    assert speakers_and_wavs(str(tmp_path / 'db')) == {'alice': [alice]}
    assert 'note: not enrolled: 1 folder(s) of ' in capsys.readouterr().out


def test_a_speaker_named_from_a_decomposed_file_name_is_named_as_typed(tmp_path):
    """Hunt: a wav named on macOS ('내 목소리.wav' in NFD, three jamo a syllable) enrolled a
    speaker that --enroll_speaker '내 목소리' (NFC, as typed) did not find."""
    import unicodedata
    typed = '내 목소리'
    path = write_wav(tmp_path / (unicodedata.normalize('NFD', typed) + '.wav'), voice(1, 150))
    assert speakers_and_wavs(path) == {typed: [path]}


@needs_tools
def test_identification_compares_a_decomposed_folder_name_as_typed(tmp_path, trained_run):
    """The speaker folder of a test wav, named in NFD, is the NFC speaker enroll.py enrolled
    (identification.py printed no truth: the names differed in their bytes)."""
    import unicodedata
    folder = tmp_path / unicodedata.normalize('NFD', '내')
    speech_wav(folder / 'a.wav')
    emb, common = str(tmp_path / 'emb'), ['--log_dir', trained_run[0]]
    result = run_script('enroll.py', '--enroll_wav', str(folder), '--embedding_dir', emb, *common)
    assert result.returncode == 0, result.stderr
    result = run_script('identification.py', '--test_wav', str(folder / 'a.wav'),
                        '--embedding_dir', emb, *common)
    assert result.returncode == 0, result.stderr
    assert 'True speaker : 내\n' in result.stdout

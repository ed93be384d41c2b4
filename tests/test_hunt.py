"""Issue 27's hunt: bad inputs and faults a new user or a careless operator meets, each one
line (or the right answer), never a traceback, a lost file or a silent wrong answer."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from configure import SetupError
from conftest import ROOT, run_script
from dvector import cli

FOLDER_SETTINGS = [('identification.py', 'embedding_dir'), ('verification.py', 'embedding_dir'),
                   ('enroll.py', 'embedding_dir'), ('identification.py', 'log_dir'),
                   ('enroll.py', 'test_dir'), ('evaluate.py', 'log_dir'),
                   ('evaluate.py', 'test_dir'), ('evaluate.py', 'embedding_dir'),
                   ('evaluate.py', 'test_wav_dir'), ('evaluate.py', 'feat_dir'),
                   ('demo.py', 'files_dir'), ('train.py', 'log_dir'),
                   ('tools/calibrate.py', 'log_dir'), ('tools/whitening.py', 'log_dir'),
                   ('tools/extract_features.py', 'wav_dir'),
                   ('tools/extract_features.py', 'feat_dir'), ('tools/make_demo_db.py', 'out_dir'),
                   ('tools/split_heldout.py', 'db_dir'), ('tools/split_heldout.py', 'dest'),
                   ('tools/download_tutorial_db.py', 'dest')]


@pytest.mark.parametrize('script,setting', FOLDER_SETTINGS)
def test_a_file_given_for_a_folder_is_named_a_file(tmp_path, script, setting):
    """--embedding_dir <a file> said 'enrollment folder not found' (and --log_dir <a
    checkpoint> 'no checkpoint files'): the setting is refused as a file, before any work."""
    a_file = tmp_path / 'a file.pth'
    a_file.write_bytes(b'x')
    rules = load_rules(script)
    with pytest.raises(SetupError, match=f'--{setting} .*: is a file, not a folder'):
        cli.check_settings({setting: str(a_file)}, rules)
    cli.check_settings({setting: str(tmp_path / 'not yet')}, rules)  # a new folder is fine


def fresh_module(script: str):
    """A new copy of a script's module, its settings at their defaults, main() not run (other
    tests run scripts' main() in this process and leave their settings)."""
    import importlib.util
    name = os.path.basename(script)[:-3] + '_fresh'
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_rules(script: str) -> dict:
    """A script's SETTING_RULES, read without running its main()."""
    return fresh_module(script).SETTING_RULES


def test_a_file_for_embedding_dir_is_one_line_from_the_script(tmp_path):
    a_file = tmp_path / 'enrollments'
    a_file.write_text('')
    result = run_script('identification.py', '--embedding_dir', str(a_file))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip() == (f'error: --embedding_dir {a_file}: is a file, not a folder '
                                     '(give the folder that holds it)')


def test_a_closed_stdout_ends_a_script_quietly():
    """python enroll.py --help | head -3 ended in a BrokenPipeError traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the script writes (head has exited)
    result = subprocess.run([sys.executable, 'enroll.py', '--help'], cwd=ROOT, stdout=write_end,
                            stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert result.stderr == '' and result.returncode == 141


def test_run_turns_a_broken_pipe_into_a_quiet_exit(capsys):
    def main():
        raise BrokenPipeError(32, 'Broken pipe')
    with pytest.raises(SystemExit) as stop:
        cli.run(main)
    assert stop.value.code == 141 and capsys.readouterr().err == ''


def test_a_speaker_folder_linked_to_another_is_refused_naming_both(tmp_path):
    """test_wavs/bob -> alice enrolled alice's recordings twice, as alice and as bob."""
    from dvector.recordings import speakers_and_wavs
    (tmp_path / 'alice').mkdir()
    (tmp_path / 'alice' / 'a.wav').write_bytes(b'RIFF')
    os.symlink('alice', tmp_path / 'bob')
    with pytest.raises(SetupError, match=r'bob/a\.wav and .*alice/a\.wav are one recording.*'
                                         r'both alice and bob'):
        speakers_and_wavs(str(tmp_path))
    os.remove(tmp_path / 'bob')
    (tmp_path / 'bob').mkdir()
    os.link(tmp_path / 'alice' / 'a.wav', tmp_path / 'bob' / 'b.wav')  # a hard link too
    with pytest.raises(SetupError, match='one recording'):
        speakers_and_wavs(str(tmp_path))


def test_a_link_to_a_speakers_own_file_is_read_once(tmp_path, capsys):
    from dvector.recordings import speakers_and_wavs
    (tmp_path / 'a.wav').write_bytes(b'RIFF')
    os.symlink('a.wav', tmp_path / 'b.wav')
    found = speakers_and_wavs(str(tmp_path), speaker='me')
    assert found == {'me': [str(tmp_path / 'a.wav')]}
    assert '1 of its wav files are links' in capsys.readouterr().out


class ModelChosen(Exception):
    """Raised by the stub of load_model: the folder the script chose, before any work."""


def model_folder_of_evaluate(monkeypatch, args: list) -> str:
    """The log_dir evaluate.py loads for ``args`` (its load_model stubbed), in a fresh copy
    of the module."""
    evaluate = fresh_module('evaluate.py')

    def chosen(folder, *rest):
        raise ModelChosen(folder)
    evaluate.load_model = chosen
    monkeypatch.setattr(sys, 'argv', ['evaluate.py', *args])
    with pytest.raises(ModelChosen) as folder:
        evaluate.main()
    return os.path.basename(str(folder.value))


def test_a_trial_list_of_recordings_takes_the_real_speech_model(tmp_path, monkeypatch):
    """evaluate.py --trials <wav trials> read them with log_dir's default, the demo model
    (made from synthetic features, it cannot tell real voices apart), without a word: the
    rule for wav input (recordings.model_folders) covered only --test_wav_dir."""
    monkeypatch.chdir(ROOT)
    wavs = tmp_path / 'wavs'
    for spk in ('alice', 'bob'):
        (wavs / spk).mkdir(parents=True)
        (wavs / spk / 'a.wav').write_bytes(b'RIFF')
    (wavs / 'bob' / 'b.p').write_bytes(b'')
    (wavs / 'alice' / 'b.p').write_bytes(b'')
    trials = tmp_path / 'trials.txt'
    trials.write_text('0 alice/a.wav bob/a.wav\n')
    args = ['--trials', str(trials), '--feat_dir', str(wavs)]
    assert model_folder_of_evaluate(monkeypatch, args) == 'model_real'
    assert model_folder_of_evaluate(monkeypatch, args + ['--log_dir', 'model_saved']) == \
        'model_saved'  # chosen, even as its default: used as it is
    trials.write_text('0 alice/a.wav bob/b.p\n')
    with pytest.raises(SetupError, match='1 feature files .* and 1 recordings.*give --log_dir'):
        model_folder_of_evaluate(monkeypatch, args)
    assert model_folder_of_evaluate(monkeypatch, args + ['--log_dir', 'model_saved']) == \
        'model_saved'
    trials.write_text('0 bob/b.p alice/b.p\n')
    assert model_folder_of_evaluate(monkeypatch, args) == 'model_saved'  # features: as set


def test_a_setting_given_twice_is_refused():
    """--test_speaker a --test_speaker b identified b without a word about a."""
    ns = {'test_speaker': 'demo_m47', 'n_epochs': 3}
    with pytest.raises(SetupError, match='--test_speaker given twice'):
        cli.override_settings(dict(ns), ['--test_speaker', 'a', '--n_epochs', '2',
                                         '--test_speaker=b'])
    assert cli.override_settings(dict(ns), ['--test_speaker', 'a'])['test_speaker'] == 'a'


@pytest.mark.parametrize('in_the_way', ['folder', 'foreign png'])
def test_a_plot_name_held_by_something_else_is_refused_before_the_work(
        tmp_path, monkeypatch, in_the_way):
    """evaluate.py --plot_dir P, with P/det_curve.png a folder: a traceback after all the
    work; with another program's det_curve.png there: replaced without a word."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / 'det_curve.png'
    if in_the_way == 'folder':
        path.mkdir()
    else:
        path.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 100)  # a PNG of another program
    with pytest.raises(SetupError, match='holds det_curve.png, which is not a figure'):
        model_folder_of_evaluate(monkeypatch, ['--plot_dir', str(tmp_path)])
    assert path.exists()


def test_an_earlier_runs_figure_may_be_replaced(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure = plt.figure()
    figure.savefig(tmp_path / 'det_curve.png')
    plt.close(figure)
    monkeypatch.chdir(ROOT)
    assert model_folder_of_evaluate(monkeypatch, ['--plot_dir', str(tmp_path)]) == 'model_saved'


@pytest.mark.parametrize('vad', [True, False])
def test_a_wav_cut_short_is_refused(tmp_path, vad):
    """A recording cut to 60 % (an interrupted copy) was enrolled and scored as if whole:
    scipy reads what is left and its warning was silenced."""
    from dvector.recordings import check_wav_input
    whole = open(os.path.join(ROOT, 'test_wavs', 'demo_f43', 'enroll.wav'), 'rb').read()
    cut = tmp_path / 'cut.wav'
    cut.write_bytes(whole[:int(len(whole) * 0.6)])
    with pytest.raises(SetupError, match=r'cut\.wav: cut short: its header gives \d+ bytes, '
                                         r'the file holds \d+ \(60 %'):
        check_wav_input('test_wav', str(cut), vad)


def test_a_streamed_wavs_placeholder_length_is_read_as_it_is(tmp_path):
    """espeak-ng --stdout writes 0x7ffff024 as the RIFF length: not a cut file."""
    from dvector.recordings import check_not_cut
    whole = open(os.path.join(ROOT, 'test_wavs', 'demo_f43', 'enroll.wav'), 'rb').read()
    for placeholder in (0x7ffff024, 0xFFFFFFFF, 0):
        streamed = tmp_path / 'streamed.wav'
        streamed.write_bytes(whole[:4] + placeholder.to_bytes(4, 'little') + whole[8:])
        check_not_cut(str(streamed), len(whole))


def test_a_recording_compared_with_itself_is_refused(monkeypatch, tmp_path):
    """verification.py --enroll_wav a.wav --test_wav ./a.wav said Accept (score 1.0): the
    answer of any model, about no one."""
    import verification
    wav = os.path.join(ROOT, 'test_wavs', 'demo_f43', 'enroll.wav')
    os.symlink(wav, tmp_path / 'again.wav')
    monkeypatch.setattr(verification, 'enroll_wav', wav)
    monkeypatch.setattr(verification, 'test_wav', str(tmp_path / 'again.wav'))
    with pytest.raises(SetupError, match='again.wav: one file; compare two recordings'):
        verification.check_inputs()


def test_an_a_law_wav_is_refused_with_how_to_convert_it(tmp_path):
    """A telephone recording in A-law (WAV format tag 6) said only "Unknown wave file format"."""
    import struct

    from DB_wav_reader import read_audio
    samples = bytes(range(256)) * 40
    fmt = struct.pack('<HHIIHH', 6, 1, 8000, 8000, 1, 8)  # A-law, mono, 8 kHz, 8 bits
    body = b'WAVE' + b'fmt ' + struct.pack('<I', len(fmt)) + fmt \
        + b'data' + struct.pack('<I', len(samples)) + samples
    path = tmp_path / 'phone.wav'
    path.write_bytes(b'RIFF' + struct.pack('<I', len(body)) + body)
    with pytest.raises(SetupError, match='ALAW.*convert it to PCM first, e.g. sox .*phone.wav '
                                         '-e signed-integer -b 16 out.wav'):
        read_audio(str(path))


def test_pieces_longer_than_every_test_utterance_are_said_to_be_whole():
    """--chunk_sec 1000 printed "1000 s pieces" over utterances of a few seconds, scored whole."""
    result = run_script('evaluate.py', '--chunk_sec', '1000')
    assert result.returncode == 0, result.stderr
    assert 'note: 10 of 10 test utterances are shorter than --chunk_sec 1000: scored whole' \
        in result.stdout


# ---- the second hunt (session of the fine-tuned model_real) ----

def test_a_read_only_checkpoint_is_not_rewritten(tmp_path, trained_run):
    """chmod 444 checkpoint_2.pth, then evaluate.py --store_threshold true: the rename replaced
    the file and its read-only mark without a word."""
    import hashlib
    import shutil
    import stat
    log_dir, _, test_dir = trained_run
    run = tmp_path / 'run'
    shutil.copytree(log_dir, run)
    path = run / 'checkpoint_2.pth'
    os.chmod(path, 0o444)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    result = run_script('evaluate.py', '--log_dir', str(run), '--cp_num', '2', '--test_dir',
                        test_dir, '--store_threshold', 'true')
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'is read-only' in lines[0] and 'nothing was done' in lines[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444


def test_a_foreign_file_is_named_before_an_enrollment_lock_file(tmp_path):
    """A folder of recordings (me/) given as embedding_dir after a refused enroll into me/:
    the refusal named the project's own .me.lock as the user's foreign file."""
    from dvector.enrollment import check_own_files
    with pytest.raises(SetupError, match=r'holds me, which is not an enrollment'):
        check_own_files(str(tmp_path), ['.me.lock', 'me'])
    with pytest.raises(SetupError, match=r'holds \.me\.lock, .*a lock file of an enroll\.py'):
        check_own_files(str(tmp_path), ['.me.lock'])


def test_a_tie_between_two_enrolled_speakers_is_said(tmp_path):
    """alice and bob from the same wav: identification named alice without a word about bob,
    who scores the same."""
    wav = os.path.join(ROOT, 'test_wavs', 'demo_f43', 'enroll.wav')
    emb = str(tmp_path / 'e')
    for name in ('alice', 'bob'):
        assert run_script('enroll.py', '--enroll_wav', wav, '--speaker', name,
                          '--embedding_dir', emb).returncode == 0
    result = run_script('identification.py', '--embedding_dir', emb, '--test_wav',
                        os.path.join(ROOT, 'test_wavs', 'demo_f43', 'test.wav'))
    assert result.returncode == 0, result.stderr
    assert 'Predicted speaker : alice' in result.stdout
    assert re.search(r'warning: bob scores the same as alice \(0\.\d{4}\): the answer between '
                     r'them is arbitrary', result.stderr), result.stderr


def test_the_demo_model_hears_recordings_at_its_own_training_level():
    """A demo voice's wav against the demo set enrolled from feature files: rejected at 0.89
    (the recording set to the tutorial DB's -42 dB, the demo DB's features made at -21 dB)."""
    result = run_script('verification.py', '--log_dir', 'model_saved', '--embedding_dir',
                        'enroll_embeddings', '--enroll_speaker', 'demo_f43', '--test_wav',
                        os.path.join('test_wavs', 'demo_f43', 'test.wav'))
    assert result.returncode == 0, result.stderr
    assert 'Result : Accept' in result.stdout
    score = float(re.search(r'Score : ([0-9.]+)', result.stdout).group(1))
    assert score > 0.9938  # the demo model's stored threshold


def test_train_py_stores_the_level_of_its_training_recordings(tmp_path, monkeypatch, trained_run):
    import train
    from dvector.features import LEVEL_FILE, LEVEL_KEY, SPEECH_LEVEL_DB
    from dvector.fileio import load_torch
    assert load_torch(os.path.join(trained_run[0], 'checkpoint_2.pth'))[LEVEL_KEY] == \
        SPEECH_LEVEL_DB  # a tree without a level file: the tutorial DB's
    for name, level in (('a', '-20.5'), ('b', None)):
        os.makedirs(tmp_path / name / 'train')
        if level:
            (tmp_path / name / LEVEL_FILE).write_text(level + '\n')
    monkeypatch.setattr(train, 'train_feat_dir', str(tmp_path / 'a' / 'train'))
    assert train.training_level_db() == -20.5
    monkeypatch.setattr(train, 'train_feat_dir', f'{tmp_path}/a/train,{tmp_path}/b/train')
    with pytest.raises(SetupError, match='other speech levels .*-20.5 dB.*-42 dB'):
        train.training_level_db()
    (tmp_path / 'a' / LEVEL_FILE).write_text('loud\n')
    with pytest.raises(SetupError, match='speech_level_db.txt: expected the speech level'):
        train.training_level_db()


def test_encoder_misuse_is_one_line(tmp_path):
    """device='tpu' and score(tensor, tensor): tracebacks; a file for model_dir, a list or None
    for embed(), a (channels, samples) array: messages about something else."""
    import numpy as np

    import dvector
    with pytest.raises(SetupError, match="device='tpu': give 'cpu', 'cuda'"):
        dvector.Encoder(device='tpu')
    wav = os.path.join(ROOT, 'test_wavs', 'demo_f43', 'test.wav')
    with pytest.raises(SetupError, match='give a folder of checkpoints .*not a file'):
        dvector.Encoder(model_dir=wav)
    encoder = dvector.Encoder(device='cpu')
    for audio in (['a.wav'], None):
        with pytest.raises(SetupError, match="give a wav file's path or an array of samples"):
            encoder.embed(audio, 16000)
    with pytest.raises(SetupError, match=r'shape \(2, 48000\) reads as 48000 channels'):
        encoder.embed(np.zeros((2, 48000), dtype=np.float32), 16000)
    vector = encoder.embed(wav)
    with pytest.raises(SetupError, match="score\\(\\) takes two wav files' paths, not Tensor"):
        encoder.score(vector, vector)
    link = tmp_path / 'again.wav'
    link.symlink_to(wav)  # one recording under two names scores 1: refused as verification.py does
    with pytest.raises(SetupError, match='one file; compare two recordings'):
        encoder.score(wav, link)


def test_split_heldout_carries_the_dbs_speech_level(tmp_path):
    """A DB made at another level (its level file beside train/): the held-out training set
    said nothing of it, and a model trained on it was told the tutorial DB's -42 dB."""
    from dvector.features import LEVEL_FILE, tree_level_db
    db = tmp_path / 'db' / 'feat_logfbank_nfilt40'
    for spk in ('a', 'b'):
        (db / 'train' / spk).mkdir(parents=True)
        (db / 'train' / spk / 'u.p').write_bytes(b'x')
    (db / LEVEL_FILE).write_text('-20.75\n')  # written -20.8 once: another level
    split = ['tools/split_heldout.py', '--db_dir', str(tmp_path / 'db'), '--all_speakers', 'true']
    result = run_script(*split, '--dest', str(tmp_path / 'dest'))
    assert result.returncode == 0, result.stderr
    assert tree_level_db(str(tmp_path / 'dest' / 'train')) == -20.75
    shutil.rmtree(tmp_path / 'dest' / 'train')  # made again into the same dest: its own file
    assert run_script(*split, '--dest', str(tmp_path / 'dest')).returncode == 0
    linked = tmp_path / 'linked' / 'feat_logfbank_nfilt40'  # the DB's train/ a link: the level
    linked.mkdir(parents=True)                             # file beside the folder it names
    os.symlink(db / 'train', linked / 'train')
    result = run_script(*split[:2], str(tmp_path / 'linked'), *split[3:], '--dest',
                        str(tmp_path / 'dest2'))
    assert result.returncode == 0 and tree_level_db(str(tmp_path / 'dest2' / 'train')) == -20.75
    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / LEVEL_FILE).write_text('-30\n')
    result = run_script(*split, '--dest', str(tmp_path / 'other'))
    assert result.returncode == 1 and 'says -30.0 dB, but the recordings' in result.stderr
    assert not (tmp_path / 'other' / 'train').exists()
    (db / LEVEL_FILE).unlink()  # the tutorial DB: no level file, none written
    result = run_script(*split, '--dest', str(tmp_path / 'plain'))
    assert result.returncode == 0 and not (tmp_path / 'plain' / LEVEL_FILE).exists()

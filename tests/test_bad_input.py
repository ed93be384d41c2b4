"""Issue cases: bad input ends in one `error:` line and a non-zero exit, with nothing lost; no
wrong result passes silently."""
import os
import zipfile

import numpy as np
import pytest
import torch

import train
import verification
from configure import SetupError
from conftest import assert_one_line_error, run_script
from dvector import cli
from dvector.checkpoint import load_model, save_checkpoint
from dvector.fileio import save_pickle
from dvector.scoring import cosine_scores
from model import build_model


def settings_of(module) -> dict:
    """A fresh namespace of a script's settings and rules, as its main() sees them."""
    return {**cli.script_settings(vars(module)), 'SETTING_RULES': module.SETTING_RULES}


@pytest.mark.parametrize('name, value, allowed', [
    ('batch_size', '0', '>= 2'), ('batch_size', '-4', '>= 2'), ('batch_size', '1', '>= 2'),
    ('valid_batch_size', '0', '>= 1'), ('lr', '-0.1', '> 0'), ('lr', 'nan', '> 0'),
    ('lr', '1e6', '<= 10'), ('wd', '-1', 'from 0 to 1'), ('log_interval', '0', '>= 1'),
    ('seed', '-1', 'from 0 to'), ('num_workers', '-1', '>= 0'), ('embedding_size', '0', '>= 2'),
    ('n_epochs', '0', '>= 1'), ('val_ratio', '100', 'from 1 to 99'),
])
def test_train_settings_out_of_range_name_the_setting_and_the_range(name, value, allowed):
    with pytest.raises(SetupError) as err:
        cli.override_settings(settings_of(train), [f'--{name}', value])
    assert str(err.value).startswith(f'--{name} ') and ': expected a number' in str(err.value)
    assert allowed in str(err.value)


def test_a_bad_setting_fails_before_any_work(tmp_path):
    log = tmp_path / 'log'
    assert_one_line_error(run_script('train.py', '--batch_size', '0', '--log_dir', str(log)),
                          '--batch_size 0', '>= 2')
    assert not log.exists()
    assert_one_line_error(run_script('tools/extract_features.py', '--n_bands', '0',
                                     '--feat_dir', str(tmp_path / 'f')), '--n_bands 0')
    assert not (tmp_path / 'f').exists()


def test_verification_threshold_outside_the_cosine_range_is_refused():
    assert_one_line_error(run_script('verification.py', '--thres', '2'), '--thres 2',
                          'from -1 to 1')
    with pytest.raises(SetupError, match='--thres nan: expected a finite number'):
        cli.override_settings(settings_of(verification), ['--thres', 'nan'])


def test_every_setting_of_every_script_has_a_rule():
    import importlib
    for name in ('train', 'enroll', 'identification', 'verification', 'evaluate',
                 'tools.whitening', 'tools.extract_features', 'tools.download_tutorial_db',
                 'tools.make_demo_db', 'tools.split_heldout', 'tools.benchmarks.bench_train',
                 'tools.benchmarks.bench_extract', 'demo', 'tools.benchmarks.bench_demo'):
        module = importlib.import_module(name)
        settings = cli.script_settings(vars(module))
        assert set(module.SETTING_RULES) == set(settings), name
        for setting, value in settings.items():  # every default is allowed
            assert module.SETTING_RULES[setting].check(value), (name, setting, value)


@pytest.mark.parametrize('setting, make', [
    ('log_dir', 'file'), ('embedding_dir', 'file'), ('scores_out', 'dir'), ('plot_dir', 'file')])
def test_output_paths_that_cannot_be_written_are_refused_first(tmp_path, setting, make):
    target = tmp_path / 'out'
    target.mkdir() if make == 'dir' else target.write_text('mine')
    script = {'log_dir': 'train.py', 'embedding_dir': 'enroll.py'}.get(setting, 'evaluate.py')
    assert_one_line_error(run_script(script, f'--{setting}', str(target)), f'--{setting}')
    assert target.is_dir() if make == 'dir' else target.read_text() == 'mine'


def test_a_loss_that_stops_being_a_number_stops_the_run(tmp_path):
    """Features near float32's largest value overflow the first convolution: one line naming
    the epoch and the learning rate."""
    rng = np.random.default_rng(0)
    for s in range(2):
        for u in range(4):
            save_pickle({'feat': rng.choice([-3e38, 3e38], (250, 40)), 'label': f's{s}'},
                        str(tmp_path / 'f' / f's{s}' / f'{u}.p'))
    result = run_script('train.py', '--train_feat_dir', str(tmp_path / 'f'), '--log_dir',
                        str(tmp_path / 'log'), '--val_ratio', '25', '--batch_size', '2')
    assert_one_line_error(result, 'epoch 1: the training loss is', 'lr=0.1')
    assert not list((tmp_path / 'log').glob('checkpoint_*.pth'))


def make_checkpoint(folder, epoch=1, **changes):
    args = {'backbone': 'resnet18', 'embedding_size': 16, 'n_classes': 3}
    checkpoint = {'state_dict': build_model(**args).state_dict(), 'model_args': args,
                  'valid_loss': 1.0, **changes}
    save_checkpoint(str(folder), epoch, checkpoint)
    return checkpoint


@pytest.mark.parametrize('changes, message', [
    ({'model_args': ['resnet18', 16, 3]}, 'of the wrong kind'),
    ({'model_args': {'backbone': 'resnet18', 'embedding_size': 16, 'n_classes': 3,
                     'colour': 'red'}}, 'do not make a model'),
    ({'model_args': {'backbone': 'resnet18', 'embedding_size': -1, 'n_classes': 3}},
     'do not make a model'),
])
def test_checkpoints_that_are_not_what_they_claim_are_one_line(tmp_path, changes, message):
    make_checkpoint(tmp_path, **changes)
    with pytest.raises(SetupError, match=message) as err:
        load_model(str(tmp_path), 0, torch.device('cpu'))
    assert 'checkpoint_1.pth' in str(err.value)


def test_a_bare_tensor_or_a_text_loss_is_not_chosen_or_loaded(tmp_path):
    torch.save(torch.ones(3), str(tmp_path / 'checkpoint_1.pth'))
    with pytest.raises(SetupError, match='checkpoint_1.pth: not a checkpoint of this project'):
        load_model(str(tmp_path), 0, torch.device('cpu'))
    make_checkpoint(tmp_path, 2, valid_loss='low')   # a string is no loss: chosen last
    make_checkpoint(tmp_path, 3, valid_loss=float('nan'))
    make_checkpoint(tmp_path, 4, valid_loss=2.0)
    _, checkpoint = load_model(str(tmp_path), 0, torch.device('cpu'))
    assert checkpoint['cp_num'] == 4


def test_non_finite_weights_are_never_loaded(tmp_path):
    checkpoint = make_checkpoint(tmp_path)
    checkpoint['state_dict']['fc0.weight'][0, 0] = float('nan')
    save_checkpoint(str(tmp_path), 1, checkpoint)
    with pytest.raises(SetupError, match='weights are not finite'):
        load_model(str(tmp_path), 1, torch.device('cpu'))


def test_enrollments_of_another_size_are_one_line():
    with pytest.raises(SetupError, match='embeddings of 128 numbers.*enrollments of 64'):
        cosine_scores(torch.ones(1, 128), torch.ones(3, 64))


def test_a_trial_list_that_is_not_text_and_a_cut_wav_are_one_line(tmp_path, trained_run):
    trials = tmp_path / 'trials.txt'
    trials.write_bytes(b'1 a.p b.p\n\xff\xfe\x00junk\n')
    assert_one_line_error(run_script('evaluate.py', '--log_dir', trained_run[0], '--trials',
                                     str(trials)), 'not a text trial list')
    wav = tmp_path / 'spk' / 'cut.wav'
    wav.parent.mkdir()
    wav.write_bytes(b'RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00')
    from DB_wav_reader import read_audio
    with pytest.raises(SetupError, match='cut.wav: not a readable WAV file'):
        read_audio(str(wav))


def zip_with_a_damaged_small_member(path):
    top = 'SpeakerRecognition_tutorial-master/feat_logfbank_nfilt40/train/s/u.p'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as zf:
        zf.writestr(top, b'small feature file')
    data = bytearray(path.read_bytes())
    at = data.index(b'small feature file')
    data[at] ^= 0xFF  # the stored bytes no longer match their CRC
    path.write_bytes(bytes(data))


def test_a_download_never_deletes_the_users_own_file(tmp_path):
    dest = tmp_path / 'db'
    dest.mkdir()
    mine = dest / 'master.zip'  # the user's file, where the download would put its archive
    mine.write_bytes(b'not a zip, but mine')
    assert_one_line_error(run_script('tools/download_tutorial_db.py', '--url', str(mine),
                                     '--dest', str(dest)), 'not a zip archive', 'check --url')
    assert mine.read_bytes() == b'not a zip, but mine'
    zip_with_a_damaged_small_member(mine)
    kept = mine.read_bytes()
    assert_one_line_error(run_script('tools/download_tutorial_db.py', '--url', str(mine),
                                     '--dest', str(dest)), 'damaged')
    assert mine.read_bytes() == kept


def test_a_damaged_download_is_deleted_with_one_line(tmp_path):
    source = tmp_path / 'elsewhere.zip'
    zip_with_a_damaged_small_member(source)
    dest = tmp_path / 'db'
    assert_one_line_error(run_script('tools/download_tutorial_db.py', '--url', str(source),
                                     '--dest', str(dest)), 'damaged', 'deleted it')
    assert source.exists() and not (dest / 'elsewhere.zip').exists()


def test_enroll_into_the_checkpoint_folder_is_refused(tmp_path, trained_run):
    log_dir = trained_run[0]
    before = sorted(os.listdir(log_dir))
    assert_one_line_error(run_script('enroll.py', '--log_dir', log_dir, '--embedding_dir',
                                     log_dir), "is where the model's checkpoints are")
    assert sorted(os.listdir(log_dir)) == before


def test_split_heldout_into_a_file_is_one_line(tmp_path):
    blocker = tmp_path / 'dest'
    blocker.write_text('mine')
    db = tmp_path / 'db' / 'feat_logfbank_nfilt40' / 'train'
    for spk in ('a', 'b'):
        (db / spk).mkdir(parents=True)
        (db / spk / 'u.p').write_bytes(b'x')
    assert_one_line_error(run_script('tools/split_heldout.py', '--db_dir', str(tmp_path / 'db'),
                                     '--dest', str(blocker), '--all_speakers', 'true'), '--dest')
    assert blocker.read_text() == 'mine'


def test_extract_features_plans_each_real_wav_once_at_the_speaker_depth(tmp_path):
    """Issue 27 case 7: a wav tree with spkA/loop -> .. made a nested junk tree 585 characters
    deep; a wav below a folder under the speaker made that folder a speaker."""
    from tools.extract_features import plan_jobs
    wavs = tmp_path / 'wavs'
    for rel in ('spkA/a.wav', 'spkB/b.wav', 'spkA/sub/c.wav', 'id1/vid/00001.wav'):
        (wavs / rel).parent.mkdir(parents=True, exist_ok=True)
        (wavs / rel).write_bytes(b'')
    os.symlink('..', wavs / 'spkA' / 'loop')
    os.symlink('.', wavs / 'spkB' / 'again')
    todo, skipped, failures = plan_jobs(str(wavs), str(tmp_path / 'feats'), False)
    outputs = sorted(os.path.relpath(out, tmp_path / 'feats') for _, out, _ in todo)
    assert outputs == ['id1/vid_00001.p', 'spkA/a.p', 'spkB/b.p'] and skipped == 0
    assert len(failures) == 1 and 'spkA/sub/c.wav: not at <speaker>/<name>.wav' in failures[0]
    (wavs / 'spkB' / 'D.WAV').write_bytes(b'')  # skipped without a word; the scripts take it
    (wavs / 'spkB' / 'B.Wav').write_bytes(b'')
    todo, _, failures = plan_jobs(str(wavs), str(tmp_path / 'feats'), False)
    outputs = sorted(os.path.relpath(out, tmp_path / 'feats') for _, out, _ in todo)
    assert outputs == ['id1/vid_00001.p', 'spkA/a.p', 'spkB/B.p', 'spkB/D.p', 'spkB/b.p']


def empty_feature_files(root, speakers: dict) -> str:
    """<root>/<speaker>/<n>.p for {speaker: n_files} (the split reads only the names)."""
    for speaker, n_files in speakers.items():
        os.makedirs(os.path.join(root, speaker))
        for n in range(n_files):
            open(os.path.join(root, speaker, f'{n}.p'), 'wb').close()
    return str(root)


def test_the_split_trains_on_every_speaker_or_says_it_cannot(tmp_path, monkeypatch, capsys):
    """Issue 27 case 9: a speaker whose only file landed in validation was never trained on."""
    folder = empty_feature_files(tmp_path / 'a', {**{f'solo{i}': 1 for i in range(6)},
                                                  'many': 14})
    monkeypatch.setattr(train, 'seed', 1)
    train_table, valid_table, speakers = train.split_train_dev(folder, 50)
    assert set(train_table['speaker_id']) == set(speakers) and len(speakers) == 7
    assert len(train_table) + len(valid_table) == 20 and len(valid_table) > 0
    assert not set(train_table['filename']) & set(valid_table['filename'])
    assert 'speakers had all their files in validation' in capsys.readouterr().out
    folder = empty_feature_files(tmp_path / 'b', {'one': 1, 'two': 1})
    with pytest.raises(SetupError, match='every validation file would be the only one'):
        train.split_train_dev(folder, 50)


def test_a_zero_or_not_finite_d_vector_and_a_too_short_test_are_refused():
    """Issue 27 case 10: features x 1e20 gave an all-zero d-vector (identification then named
    the alphabetically first speaker); a 1-frame test file was scored."""
    from dvector.embedding import MIN_FRAMES, embed_features
    torch.manual_seed(0)
    model = build_model('resnet18', 16, 3).eval()
    feat = np.random.default_rng(0).normal(size=(300, 40)).astype(np.float32)
    cpu = torch.device('cpu')
    assert torch.isfinite(embed_features(model, [feat], ['ok.p'], 100, cpu)).all()
    for scale, kind in ((1e20, 'zero'), (np.float32(3e38), 'not finite')):
        with pytest.raises(SetupError, match=f'big.p: its d-vector is {kind}'):
            with np.errstate(over='ignore'):
                embed_features(model, [feat, feat * scale], ['ok.p', 'big.p'], 100, cpu)
    with pytest.raises(SetupError, match=r'short.p: too short .*1 frames after the trim'):
        embed_features(model, [feat, feat[:1]], ['ok.p', 'short.p'], 100, cpu)
    assert len(embed_features(model, [feat[:MIN_FRAMES]], ['edge.p'], 100, cpu)) == 1


@pytest.mark.parametrize('script, name, value', [
    ('evaluate', 'test_frames', '1'), ('evaluate', 'test_frames', '9'),
    ('evaluate', 'chunk_sec', '0.01'), ('verification', 'test_frames', '2'),
    ('identification', 'test_frames', '1'), ('enroll', 'test_frames', '5'),
    ('tools.whitening', 'test_frames', '1'), ('train', 'embedding_size', '1'),
    ('train', 'win_size', '1')])
def test_settings_that_make_every_score_alike_are_refused(script, name, value):
    """Issue 27 case 11: --test_frames 1 or --embedding_size 1 made every score 1.0 (an
    impostor was accepted)."""
    import importlib
    module = importlib.import_module(script)
    with pytest.raises(SetupError, match=f'--{name} {value}: expected'):
        cli.override_settings(settings_of(module), [f'--{name}', value])
    for fine in ('0', '10') if name == 'test_frames' else ():
        cli.override_settings(settings_of(module), [f'--{name}', fine])


def saved_epoch(tmp_path, monkeypatch, **changes):
    """A log_dir with train.py's checkpoint of epoch 1 of a tiny model, ``changes`` applied
    (None deletes a key); returns what train.resume_state needs."""
    from model.losses import ModelWithLoss, build_loss
    monkeypatch.setattr(train, 'log_dir', str(tmp_path))
    monkeypatch.setattr(train, 'embedding_size', 16)
    monkeypatch.setattr(train, 'channels_last', False)
    speakers = ['a', 'b', 'c']
    model = train.build_model_for(3, 40, torch.device('cpu'))
    criterion = build_loss(embedding_size=16, n_classes=3, **train.loss_args())
    optimizer = train.create_optimizer(ModelWithLoss(model, criterion))
    scheduler = train.create_scheduler(optimizer)
    history = {'epoch': [1], 'train_loss': [2.0], 'valid_loss': [1.5], 'valid_acc': [40.0]}
    run = {'run_id': None, 'recording_level_db': -42.0, 'started_from': ''}
    train.save_epoch(model, criterion, optimizer, scheduler, speakers, 40, history, run)
    path = str(tmp_path / 'checkpoint_1.pth')
    checkpoint = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del checkpoint[key]
        else:
            checkpoint[key] = value
    torch.save(checkpoint, path)
    return model, criterion, optimizer, scheduler, speakers, 40, -42.0


@pytest.mark.parametrize('changes, message', [
    ({'history': None}, 'no complete training history'),
    ({'history': {'epoch': [1], 'train_loss': [2.0]}}, 'no complete training history'),
    ({'history': {'epoch': [1], 'train_loss': [], 'valid_loss': [1.0], 'valid_acc': [1.0]}},
     'no complete training history'),
    ({'epoch': '2'}, "no usable next epoch .'2'."),
    ({'scheduler': None}, 'no optimizer state'),
    ({'optimizer': {'state': 'x'}}, 'its saved states do not fit this run'),
])
def test_resume_on_a_checkpoint_without_a_usable_history_is_one_line(tmp_path, monkeypatch,
                                                                      changes, message):
    """Issue 27 case 14: no history, a partial one, or epoch as text were KeyError or
    TypeError tracebacks."""
    state = saved_epoch(tmp_path, monkeypatch)
    assert train.resume_state(*state)[0] == 2  # as saved, it resumes at epoch 2
    state = saved_epoch(tmp_path, monkeypatch, **changes)
    with pytest.raises(SetupError, match=message):
        train.resume_state(*state)


def test_scores_out_never_replaces_a_file_evaluate_did_not_write(tmp_path):
    """Issue 27 case 6: --scores_out model_saved/checkpoint_20.pth overwrote the checkpoint
    with text and exited 0; case 16: an unwritable --scores_out named its parent folder."""
    import evaluate
    checkpoint = tmp_path / 'checkpoint_20.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}}, str(checkpoint))
    before = checkpoint.read_bytes()
    notes = tmp_path / 'notes.txt'
    notes.write_text('my notes\n')
    for path in (checkpoint, notes):
        with pytest.raises(SetupError, match='exists and is not a scores file'):
            evaluate.check_scores_out(str(path))
    assert checkpoint.read_bytes() == before and notes.read_text() == 'my notes\n'
    scores = str(tmp_path / 'scores.txt')
    evaluate.check_scores_out(scores)  # a new file
    evaluate.write_scores(scores, [(0.5, 1, 'a/enroll.p', 'a/test.p')])
    evaluate.check_scores_out(scores)  # evaluate's own, replaced by the next run
    with pytest.raises(SetupError, match=r'--scores_out .*nowhere/s\.txt: cannot write this file'):
        evaluate.check_scores_out(str(checkpoint / 'nowhere' / 's.txt'))


@pytest.mark.parametrize('call, message', [
    (lambda api, wav: api.score_wavs(wav, wav, log_dir=None), 'log_dir: expected the path'),
    (lambda api, wav: api.score_wavs(wav, wav, vad='no'), 'vad: expected True or False, got str'),
    (lambda api, wav: api.embed_wav(open(wav, 'rb').read()), 'path: expected the path of a wav'),
    (lambda api, wav: api.score_wavs(wav, 3), 'path_b: expected the path of a wav file'),
])
def test_api_arguments_of_the_wrong_type_are_one_short_line(tmp_path, call, message):
    """Issue 27 case 15: log_dir=None was a raw TypeError, a wav's bytes a 1,646,280-character
    message, and vad='no' (truthy) left speech detection on without a word."""
    import dvector
    wav = str(tmp_path / 'a.wav')
    with open(wav, 'wb') as f:
        f.write(b'RIFF' + bytes(100000))
    with pytest.raises(SetupError, match=message) as err:
        call(dvector, wav)
    assert len(str(err.value)) < 200


def test_the_as_norm_advice_names_the_folder_when_given_a_file(tmp_path):
    """Issue 27 case 16: the advice said tools/whitening.py --log_dir .../checkpoint_20.pth."""
    from dvector.checkpoint import score_cohort
    path = tmp_path / 'checkpoint_20.pth'
    path.write_bytes(b'')
    with pytest.raises(SetupError) as err:
        score_cohort({'path': str(path), 'cp_num': 20}, 50, str(path))
    assert f'--log_dir {tmp_path} --cp_num 20 --train_feat_dir' in str(err.value)


def test_kill_leaves_no_temporary_file(tmp_path):
    """Issue 27 case 16: a killed run left hidden .tmp files in the model folder."""
    import signal
    import subprocess
    import sys

    from conftest import ROOT
    script = tmp_path / 'slow.py'
    script.write_text(
        f'import sys, time\nsys.path.insert(0, {ROOT!r})\n'
        'from dvector import cli\nfrom dvector.fileio import atomic_path\n'
        'def main():\n'
        f'    with atomic_path({str(tmp_path / "out" / "checkpoint_1.pth")!r}) as tmp:\n'
        '        open(tmp, "w").write("half")\n'
        '        print("writing", flush=True)\n'
        '        time.sleep(60)\n'
        'cli.run(main)\n')
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == 'writing'
    assert len(os.listdir(tmp_path / 'out')) == 1  # the temporary file, being written
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130 and 'interrupted' in proc.stderr.read()
    assert os.listdir(tmp_path / 'out') == []

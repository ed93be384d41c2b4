"""Fuzz (hypothesis): generated malformed settings, feature pickles, wavs, trial lists,
checkpoints and enrollment files through the functions each script's entry point calls. Every
case must end in a SetupError (the scripts print it as one `error:` line and exit 1) or a sane
result; never another exception, and never a change to the file read."""
import importlib
import io
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configure import SetupError
from dvector import cli

CASES = settings(max_examples=80, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])
SCRIPTS = ('train', 'enroll', 'identification', 'verification', 'evaluate', 'tools.whitening',
           'tools.extract_features', 'tools.download_tutorial_db', 'tools.make_demo_db',
           'tools.split_heldout')
ODD_TEXT = st.sampled_from(['nan', 'inf', '-inf', '-1', '0', '1', '1e309', '-0', '2.5', '',
                            'true', 'none', ',,', '0x10', '1_000', ' 3', 'é', '\x00'])


def read_back(path: str) -> bytes:
    with open(path, 'rb') as f:
        return f.read()


def settled(function, *args):
    """The result of function(*args), or None for a SetupError; any other exception fails."""
    try:
        return function(*args)
    except SetupError as err:
        assert str(err) and '\n' not in str(err), repr(err)
        return None


@pytest.mark.parametrize('script', SCRIPTS)
def test_settings(script):
    module = importlib.import_module(script)
    names = sorted(cli.script_settings(vars(module)))

    @CASES
    @given(st.sampled_from(names), st.one_of(ODD_TEXT, st.text(max_size=8)))
    def one(name, text):
        namespace = {**cli.script_settings(vars(module)), 'SETTING_RULES': module.SETTING_RULES}
        result = settled(cli.override_settings, namespace, [f'--{name}', text])
        if result is not None:
            assert module.SETTING_RULES[name].check(result[name]), (name, text, result[name])
    one()


ARRAYS = st.builds(
    lambda shape, dtype, fill: np.full(shape, fill).astype(dtype),
    st.sampled_from([(0, 40), (300, 40), (1, 40), (120, 20), (40,), (2, 3, 4), (150, 1)]),
    st.sampled_from(['float64', 'float32', 'float16', 'int16', 'bool', 'complex64']),
    st.sampled_from([0.0, 1.5, np.nan, np.inf, -1e30]))
FEATURE_OBJECTS = st.one_of(
    st.fixed_dictionaries({'feat': ARRAYS, 'label': st.one_of(st.text(max_size=5), st.none(),
                                                               st.integers())}),
    st.fixed_dictionaries({'feat': st.one_of(st.text(), st.lists(st.floats(), max_size=3))}),
    st.lists(st.integers(), max_size=3), st.text(max_size=10), st.none(), ARRAYS)


@CASES
@given(st.one_of(FEATURE_OBJECTS.map(lambda o: pickle.dumps(o, protocol=4)),
                 st.binary(max_size=64)))
def test_feature_pickles(tmp_path, data):
    from SR_Dataset import read_MFB
    path = str(tmp_path / 'f.p')
    with open(path, 'wb') as f:
        f.write(data)
    result = settled(read_MFB, path)
    if result is not None:
        feat, label = result
        assert feat.dtype == np.float32 and feat.ndim == 2 and feat.shape[0] > 0
        assert np.isfinite(feat).all() and isinstance(label, str)
    assert read_back(path) == data


def wav_bytes(channels: int, bits: int, rate: int, n_bytes: int, cut: int) -> bytes:
    """A WAV header with ``n_bytes`` of samples, cut to ``cut`` bytes when cut > 0."""
    body = bytes(range(256)) * (n_bytes // 256 + 1)
    body = body[:n_bytes]
    fmt = struct.pack('<HHIIHH', 1 if bits <= 32 else 3, channels, rate,
                      rate * channels * bits // 8, channels * bits // 8, bits)
    data = (b'RIFF' + struct.pack('<I', 36 + len(body)) + b'WAVEfmt ' + struct.pack('<I', 16)
            + fmt + b'data' + struct.pack('<I', len(body)) + body)
    return data[:cut] if cut else data


@CASES
@given(st.one_of(st.builds(wav_bytes, st.sampled_from([0, 1, 2, 7]),
                           st.sampled_from([8, 16, 24, 32, 12]),
                           st.sampled_from([0, 8000, 16000, 44100]),
                           st.integers(0, 2000), st.integers(0, 60)),
                 st.binary(max_size=80)))
def test_wavs(tmp_path, data):
    from DB_wav_reader import read_audio
    path = str(tmp_path / 'spk' / 'a.wav')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    audio = settled(read_audio, path)
    if audio is not None:
        assert audio.dtype == np.float32 and audio.ndim == 1 and audio.size > 0
    assert read_back(path) == data


LINE = st.one_of(
    st.builds(lambda a, b, c: f'{a} {b} {c}', st.sampled_from(['0', '1', '2', 'x', '']),
              st.text(max_size=6), st.text(max_size=6)),
    st.text(max_size=20))


@CASES
@given(st.one_of(st.lists(LINE, max_size=6).map(lambda lines: '\n'.join(lines).encode('utf-8',
                                                                                       'replace')),
                 st.binary(max_size=40)))
def test_trial_lists(tmp_path, data):
    import evaluate
    path = str(tmp_path / 'trials.txt')
    with open(path, 'wb') as f:
        f.write(data)
    rows = settled(evaluate.read_trials, path)
    if rows is not None:
        assert rows and all(label in (0, 1) and e and t for label, e, t in rows)
    assert read_back(path) == data


MODEL_ARGS = st.one_of(
    st.fixed_dictionaries({'backbone': st.sampled_from(['resnet18', 'lstm', 'nope', '']),
                           'embedding_size': st.sampled_from([8, 0, -3, 'x']),
                           'n_classes': st.sampled_from([2, 0, 1.5]),
                           'pooling': st.sampled_from(['avg', 'last', 'max'])}),
    st.lists(st.integers(), max_size=3), st.text(max_size=4), st.none())
CHECKPOINTS = st.one_of(
    st.fixed_dictionaries({'model_args': MODEL_ARGS,
                           'state_dict': st.one_of(st.just('real'), st.just({}), st.none(),
                                                   st.just({'fc0.weight': torch.ones(2)})),
                           'valid_loss': st.one_of(st.floats(), st.text(max_size=3),
                                                   st.none())}),
    st.lists(st.integers(), max_size=3), st.text(max_size=5), st.just(torch.ones(3)))


@CASES
@given(CHECKPOINTS)
def test_checkpoints(tmp_path, checkpoint):
    from dvector.checkpoint import inference_model, read_checkpoint
    from model import build_model
    if isinstance(checkpoint, dict) and checkpoint['state_dict'] == 'real':
        args = checkpoint['model_args']
        try:
            checkpoint['state_dict'] = build_model(**args).state_dict()
        except Exception:  # arguments that build nothing: keep an empty state
            checkpoint['state_dict'] = {}
    folder = tmp_path / 'run'
    folder.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    path = str(folder / 'checkpoint_1.pth')
    with open(path, 'wb') as f:
        f.write(data)

    def load():
        return inference_model(read_checkpoint(str(folder), 0), torch.device('cpu'))
    model = settled(load)
    if model is not None:
        assert isinstance(model, torch.nn.Module)
    assert read_back(path) == data


ENROLLMENTS = st.one_of(
    st.builds(lambda shape, fill: torch.full(shape, fill),
              st.sampled_from([(1, 16), (16,), (0,), (2, 8), (1, 1)]),
              st.sampled_from([0.5, float('nan'), float('inf')])),
    st.just(torch.ones(1, 4, dtype=torch.int64)), st.just({'emb': torch.ones(1, 4)}),
    st.text(max_size=4), st.none())


@CASES
@given(st.lists(ENROLLMENTS, min_size=1, max_size=3))
def test_enrollment_files(tmp_path, enrollments):
    from dvector.enrollment import load_enroll_embeddings
    folder = tmp_path / 'emb'
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for k, value in enumerate(enrollments):
        torch.save(value, str(folder / f's{k}.pth'))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    loaded = settled(load_enroll_embeddings, str(folder))
    if loaded is not None:
        sizes = {e.shape[1] for e in loaded.values()}
        assert len(sizes) == 1 and all(e.shape[0] == 1 and torch.isfinite(e).all()
                                       for e in loaded.values())
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


TREE_ITEMS = st.lists(st.tuples(
    st.sampled_from(['file', 'deep', 'loose', 'link_dot', 'link_up', 'link_speaker',
                     'link_file', 'broken', 'fifo', 'empty_dir', 'hidden']),
    st.integers(0, 3), st.integers(0, 3)), max_size=12)


def build_tree(root: str, items: list) -> None:
    """Speaker folders s0..s3 with one file each, then the generated odd entries."""
    for s in range(4):
        os.makedirs(os.path.join(root, f's{s}'))
        open(os.path.join(root, f's{s}', 'base.p'), 'wb').close()
    for n, (kind, a, b) in enumerate(items):
        here = os.path.join(root, f's{a}')
        entry = os.path.join(here, f'x{n}')
        if kind == 'file':
            open(entry + '.p', 'wb').close()
        elif kind == 'deep':
            os.makedirs(entry)
            open(os.path.join(entry, 'd.p'), 'wb').close()
        elif kind == 'loose':
            open(os.path.join(root, f'loose{n}.p'), 'wb').close()
        elif kind in ('link_dot', 'link_up', 'link_speaker'):
            os.symlink({'link_dot': '.', 'link_up': '..', 'link_speaker': f'../s{b}'}[kind],
                       entry)
        elif kind == 'link_file':
            os.symlink(os.path.join('..', f's{b}', 'base.p'), entry + '.p')
        elif kind == 'broken':
            os.symlink('nowhere.p', entry + '.p')
        elif kind == 'fifo':
            os.mkfifo(entry + '.p')
        elif kind == 'empty_dir':
            os.makedirs(entry)
        else:
            open(os.path.join(here, f'.x{n}.p.tmp'), 'wb').close()


@CASES
@given(TREE_ITEMS)
def test_feature_trees(tmp_path_factory, items):
    """Generated trees (links to . .. and other speakers, files at other depths, broken links,
    FIFOs, empty and hidden entries): a table of each real file once, each at
    <speaker>/<file> under a real speaker folder, or one line."""
    from DB_wav_reader import read_training_folders
    root = str(tmp_path_factory.mktemp('tree'))
    build_tree(root, items)
    table = settled(read_training_folders, root)
    if table is None:
        return
    files = list(table['filename'])
    reals = [os.path.realpath(f) for f in files]
    assert len(set(reals)) == len(reals)
    assert all(os.path.relpath(f, root).count(os.sep) == 1 for f in files)
    assert set(table['speaker_id']) <= {f's{s}' for s in range(4)}
    assert {os.path.realpath(os.path.join(root, f's{s}', 'base.p')) for s in range(4)} \
        <= set(reals)

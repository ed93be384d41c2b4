"""dvector/enrollment.py and enroll.py's enroll_per_spk: one set per model, replaced whole."""
import os

import pytest
import torch

import enroll
from configure import SetupError
from dvector.checkpoint import WHITENING_KEY
from dvector.enrollment import (MODEL_FILE, find_test_file, load_enroll_embeddings,
                                model_fingerprint, save_enrollment_set, select_speakers,
                                split_enroll_and_test)
from model import build_model


def make_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model('resnet18', 16, 3).eval()
    return model, {'state_dict': model.state_dict(), 'path': f'run{seed}/checkpoint_7.pth'}


def test_enroll_per_spk_saves_one_normalised_embedding_per_speaker(tmp_path, feature_tree,
                                                                    capsys):
    _, test_dir = feature_tree
    enroll_DB, test_DB = split_enroll_and_test(test_dir)
    assert set(map(os.path.basename, enroll_DB['filename'])) == {'enroll.p'}
    assert set(map(os.path.basename, test_DB['filename'])) == {'test.p'}
    model, checkpoint = make_model()
    out = str(tmp_path / 'emb')
    enrolled = enroll.enroll_per_spk(model, enroll_DB, out, checkpoint, torch.device('cpu'))
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == ['Start to aggregate all the d-vectors per enroll speaker',
                           'Aggregates the activation (spk : syn_t00)',
                           'Aggregates the activation (spk : syn_t01)']
    assert printed[-2:] == ['Save the embeddings for syn_t02',
                            f'3 speakers enrolled in {out}: syn_t00, syn_t01, syn_t02']
    assert sorted(os.listdir(out)) == [MODEL_FILE] + [f'syn_t0{i}.pth' for i in range(3)]
    speakers, matrix = select_speakers(load_enroll_embeddings(out, checkpoint), [], out)
    assert speakers == sorted(enrolled) and matrix.shape == (3, 16)
    assert torch.allclose(matrix.norm(dim=1), torch.ones(3), atol=1e-5)
    with open(os.path.join(out, MODEL_FILE)) as f:
        assert f.read() == (f'{model_fingerprint(checkpoint)} run0/checkpoint_7.pth\n'
                            'syn_t00\nsyn_t01\nsyn_t02\n')


def test_enrollment_errors_list_what_exists(tmp_path, feature_tree):
    _, test_dir = feature_tree
    with pytest.raises(SetupError, match='not found'):
        load_enroll_embeddings(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(SetupError, match='no enrolled speakers'):
        load_enroll_embeddings(str(tmp_path / 'empty'))
    torch.save(torch.ones(1, 4), str(tmp_path / 'empty' / 'a.pth'))
    with pytest.raises(SetupError, match='speaker zz is not enrolled.*enrolled: a'):
        select_speakers(load_enroll_embeddings(str(tmp_path / 'empty')), ['zz'], 'empty')
    with pytest.raises(SetupError, match='speakers with a test.p: syn_t00, syn_t01, syn_t02'):
        find_test_file(test_dir, 'nobody')
    torch.save({'not': 'a tensor'}, str(tmp_path / 'empty' / 'b.pth'))
    with pytest.raises(SetupError, match=r'b.pth: not an enrollment'):
        load_enroll_embeddings(str(tmp_path / 'empty'))


def test_enrollments_remember_their_model(tmp_path):
    model, checkpoint = make_model()
    out = str(tmp_path / 'emb')
    save_enrollment_set({'a': torch.ones(1, 4), 'b': torch.ones(1, 4)}, out, checkpoint)
    load_enroll_embeddings(out, checkpoint)  # the same model: no complaint
    other = make_model(1)[1]
    whitened = dict(checkpoint, **{WHITENING_KEY: {'mean': torch.zeros(16),
                                                   'matrix': torch.eye(16), 'reg': 0.2}})
    whole = dict(checkpoint, whole_utterance=True)
    for changed in (other, whitened, whole):
        with pytest.raises(SetupError, match='enrolled with another model.*run0/checkpoint_7'):
            load_enroll_embeddings(out, changed)
    torch.save(torch.ones(1, 4), os.path.join(out, 'stray.pth'))  # not part of the set
    with pytest.raises(SetupError, match='stray.pth is not part of the enrolled set'):
        load_enroll_embeddings(out, checkpoint)
    os.remove(os.path.join(out, MODEL_FILE))  # folders without a record are not checked
    assert sorted(load_enroll_embeddings(out, other)) == ['a', 'b', 'stray']


def test_a_new_set_replaces_the_old_one_whole(tmp_path):
    out = str(tmp_path / 'emb')
    first, second = make_model(0)[1], make_model(1)[1]
    save_enrollment_set({s: torch.ones(1, 4) for s in 'abc'}, out, first)
    save_enrollment_set({'a': torch.zeros(1, 4) + 2}, out, second, start_anew=True)
    assert sorted(os.listdir(out)) == ['a.pth', MODEL_FILE]
    assert sorted(load_enroll_embeddings(out, second)) == ['a']
    assert os.listdir(tmp_path) == ['emb', '.emb.lock']  # no leftovers but the lock file
    (tmp_path / 'emb' / 'notes.txt').write_text('mine')
    with pytest.raises(SetupError, match='notes.txt, which is not an enrollment'):
        save_enrollment_set({'a': torch.ones(1, 4)}, out, first)
    assert (tmp_path / 'emb' / 'notes.txt').read_text() == 'mine'


def test_a_hidden_folder_no_journal_names_is_never_read_or_removed(tmp_path):
    """A folder named like a new set but not named by a journal may be another run's, or an
    older version's leftover: it is neither read nor deleted."""
    out = str(tmp_path / 'emb')
    first = make_model(0)[1]
    save_enrollment_set({'a': torch.ones(1, 4)}, out, first)
    os.makedirs(tmp_path / '.emb.new-killed')
    torch.save(torch.zeros(1, 4), str(tmp_path / '.emb.new-killed' / 'b.pth'))
    assert sorted(load_enroll_embeddings(out, first)) == ['a']
    save_enrollment_set({'c': torch.ones(1, 4)}, out, first)
    assert sorted(os.listdir(tmp_path)) == ['.emb.lock', '.emb.new-killed', 'emb']
    assert os.listdir(tmp_path / '.emb.new-killed') == ['b.pth']


def test_a_folder_of_checkpoints_is_never_taken_for_enrollments(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'checkpoint_3.pth').write_bytes(b'a model')
    with pytest.raises(SetupError, match='checkpoint_3.pth, which is not an enrollment'):
        save_enrollment_set({'a': torch.ones(1, 4)}, str(out), make_model()[1])
    assert (out / 'checkpoint_3.pth').read_bytes() == b'a model'


def test_a_new_set_has_the_usual_permissions_and_spares_other_hidden_folders(tmp_path):
    (tmp_path / '.emb.bak').mkdir()  # the user's own
    out = str(tmp_path / 'emb')
    save_enrollment_set({'a': torch.ones(1, 4)}, out, make_model()[1])
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / '.emb.bak').is_dir()

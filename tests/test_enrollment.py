import os

import pytest
import torch

from checkpoint import WHITENING_KEY
from cli import SetupError
from enrollment import (MODEL_FILE, check_enrolled_with, enroll_speakers, find_test_file,
                        load_enrollments, model_fingerprint, split_enroll_and_test)
from model import build_model


def test_enroll_saves_one_normalised_embedding_per_speaker(tmp_path, feature_tree):
    _, test_dir = feature_tree
    enroll, test = split_enroll_and_test(test_dir)
    assert set(map(os.path.basename, enroll['filename'])) == {'enroll.p'}
    assert set(map(os.path.basename, test['filename'])) == {'test.p'}
    model = build_model('resnet18', 16, 3).eval()
    out = str(tmp_path / 'emb')
    enrolled = enroll_speakers(model, enroll, out, 200, torch.device('cpu'))
    assert sorted(os.listdir(out)) == [f'syn_t0{i}.pth' for i in range(3)]
    speakers, matrix = load_enrollments(out)
    assert speakers == sorted(enrolled) and matrix.shape == (3, 16)
    assert torch.allclose(matrix.norm(dim=1), torch.ones(3), atol=1e-5)


def test_enrollment_errors_list_what_exists(tmp_path, feature_tree):
    _, test_dir = feature_tree
    with pytest.raises(SetupError, match='not found'):
        load_enrollments(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(SetupError, match='no enrolled speakers'):
        load_enrollments(str(tmp_path / 'empty'))
    torch.save(torch.ones(1, 4), str(tmp_path / 'empty' / 'a.pth'))
    with pytest.raises(SetupError, match='speaker zz is not enrolled.*enrolled: a'):
        load_enrollments(str(tmp_path / 'empty'), ['zz'])
    with pytest.raises(SetupError, match='speakers with a test.p: syn_t00, syn_t01, syn_t02'):
        find_test_file(test_dir, 'nobody')


def test_enrollments_remember_their_model(tmp_path, feature_tree):
    _, test_dir = feature_tree
    enroll, _ = split_enroll_and_test(test_dir)
    torch.manual_seed(0)
    model = build_model('resnet18', 16, 3).eval()
    checkpoint = {'state_dict': model.state_dict(), 'cp_num': 7}
    out = str(tmp_path / 'emb')
    enroll_speakers(model, enroll, out, 200, torch.device('cpu'), checkpoint)
    with open(os.path.join(out, MODEL_FILE)) as f:
        assert f.read() == f'{model_fingerprint(checkpoint)} checkpoint epoch 7\n'
    check_enrolled_with(out, checkpoint)  # the same model: no complaint
    other = {'state_dict': build_model('resnet18', 16, 3).state_dict()}
    whitened = dict(checkpoint, **{WHITENING_KEY: {'mean': torch.zeros(16),
                                                   'matrix': torch.eye(16), 'reg': 0.2}})
    whole = dict(checkpoint, whole_utterance=True)
    for changed in (other, whitened, whole):
        with pytest.raises(SetupError, match='enrolled with another model.*epoch 7.*enroll.py'):
            check_enrolled_with(out, changed)
    os.remove(os.path.join(out, MODEL_FILE))  # folders without a record are not checked
    check_enrolled_with(out, other)

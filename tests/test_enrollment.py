import os

import pytest
import torch

from cli import SetupError
from enrollment import enroll_speakers, load_enrollments, split_enroll_and_test, find_test_file
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

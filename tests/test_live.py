"""dvector/live.py's pieces that need no model: the 2-D map, the confidence words, names.
The steps themselves (enroll, identify, verify, compare) are tested through demo.py's handlers
in tests/test_demo.py."""
import numpy as np
import pytest

from configure import SetupError
from dvector import live
from dvector.calibration import Decision


def test_principal_components_keep_the_distances_of_points_in_a_plane():
    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.normal(size=(256, 2)))[0].T   # (2, 256) orthonormal
    flat = rng.normal(size=(5, 2))                          # (5, 2)
    coords = live.principal_components(flat @ plane + 3.0)  # shifted: centring removes it
    def distances(x):
        return np.linalg.norm(x[:, None] - x[None], axis=2)
    assert coords.shape == (5, 2) and np.allclose(distances(coords), distances(flat))


def test_principal_components_of_two_points_lie_on_a_line():
    coords = live.principal_components(np.array([[1.0, 0, 0], [0, 1.0, 0]]))
    assert coords.shape == (2, 2) and np.allclose(coords[:, 1], 0)
    assert np.isclose(abs(coords[0, 0] - coords[1, 0]), np.sqrt(2))


def test_confidence_words_give_the_llr_when_calibrated_and_the_margin_otherwise():
    calibrated = Decision(0.8, True, 0.6, 3.7, '40 times more likely the claimed speaker', 'x')
    assert live.confidence_words(calibrated) == \
        '40 times more likely the claimed speaker (LLR +3.70)'
    words = [live.confidence_words(Decision(score, score > 0.66, 0.66, None, '', 'y'))
             for score in (0.9, 0.75, 0.68, 0.5)]
    assert words[0].startswith('clear (0.24 above') and words[1].startswith('fairly clear')
    assert words[2].startswith('close call') and words[3].startswith('clear (0.16 below')
    assert all('not calibrated' in w for w in words)


@pytest.mark.parametrize('name', ['', '   ', '../x', 'a/b', 'a\\b', '.hidden'])
def test_a_name_that_cannot_be_a_file_name_is_refused(name):
    with pytest.raises(SetupError):
        live.check_speaker_name(name)


def test_a_name_is_stripped():
    assert live.check_speaker_name('  민지 ') == '민지'

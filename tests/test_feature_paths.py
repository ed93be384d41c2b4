"""dvector/feature_paths.py: the feature file of a wav, in both layouts."""
import pytest

from dvector.feature_paths import JOIN, feature_name


def test_a_wav_names_its_speaker_and_feature_file_in_both_layouts():
    assert feature_name('test_wavs/230M4087/test.wav') == ('230M4087', 'test_wavs/230M4087/test.p')
    assert feature_name('id10270/5r0dWxy17C8/00001.wav') == ('id10270',
                                                              'id10270/5r0dWxy17C8_00001.p')
    assert feature_name('a\\spk\\u1.wav') == ('spk', 'a/spk/u1.p')  # Windows separators
    assert feature_name('spk/clip/take.wav') == ('clip', 'spk/clip/take.p')  # not all digits
    with pytest.raises(ValueError, match='expected <speaker>/<name>.wav'):
        feature_name('alone.wav')


def test_joined_entries_split_back_into_their_files():
    entry = JOIN.join(['spk/a.p', 'spk/b.p'])
    assert entry == 'spk/a.p+spk/b.p' and entry.split(JOIN) == ['spk/a.p', 'spk/b.p']

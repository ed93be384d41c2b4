"""dvector/enrollment.py and enroll.py's enroll_per_spk: one set per model, replaced whole."""
import errno
import os
import threading
import time

import pytest
import torch

import enroll
from configure import SetupError
from dvector import enrollment
from dvector.checkpoint import WHITENING_KEY
from dvector.enrollment import (
    MODEL_FILE,
    SECONDS_FILE,
    find_test_file,
    load_enroll_embeddings,
    model_fingerprint,
    save_enrollment_set,
    select_speakers,
    split_enroll_and_test,
)
from dvector.fileio import folder_lock
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
    written = sorted(set(os.listdir(out)) - {SECONDS_FILE})  # seconds: when measured
    assert written == [MODEL_FILE] + [f'syn_t0{i}.pth' for i in range(3)]
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
    with pytest.raises(SetupError, match=f'empty: has no {MODEL_FILE}, so it is not a set '
                                         'enroll.py wrote'):
        load_enroll_embeddings(str(tmp_path / 'empty'))  # whose speakers, which model: unknown
    enrollment.write_record(str(tmp_path / 'empty'), ['a'], {'state_dict': {}}, {})
    with pytest.raises(SetupError, match='speaker zz is not enrolled.*enrolled: a'):
        select_speakers(load_enroll_embeddings(str(tmp_path / 'empty')), ['zz'], 'empty')
    with pytest.raises(SetupError, match='speakers with a test.p: syn_t00, syn_t01, syn_t02'):
        find_test_file(test_dir, 'nobody')
    with pytest.raises(SetupError, match=r'test_dir nowhere/test: folder not found \(in .*run '
                                         'the scripts from the repository'):
        find_test_file('nowhere/test', 'nobody')  # a script run from another folder
    torch.save({'not': 'a tensor'}, str(tmp_path / 'empty' / 'b.pth'))
    enrollment.write_record(str(tmp_path / 'empty'), ['a', 'b'], {'state_dict': {}}, {})
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
    os.remove(os.path.join(out, MODEL_FILE))  # without its record a set is not read at all
    with pytest.raises(SetupError, match=f'has no {MODEL_FILE}'):
        load_enroll_embeddings(out, other)


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


# ---- issue 27: nothing lost (each test failed on the code before the fix) --------------------
def one_line(err) -> str:
    message = str(err.value)
    assert '\n' not in message and len(message) < 300, message
    return message


def test_case1_a_file_the_record_does_not_list_is_refused_and_kept(tmp_path):
    out = tmp_path / 'm'
    out.mkdir()
    (out / 'my_pretrained.pth').write_bytes(b'11 MB of weights')
    model = make_model()[1]
    with pytest.raises(SetupError) as err:
        save_enrollment_set({'a': torch.ones(1, 4)}, str(out), model)
    assert 'holds my_pretrained.pth, which is not an enrollment' in one_line(err)
    assert os.listdir(out) == ['my_pretrained.pth']
    assert (out / 'my_pretrained.pth').read_bytes() == b'11 MB of weights'
    (out / 'my_pretrained.pth').unlink()
    save_enrollment_set({'a': torch.ones(1, 4)}, str(out), model)
    (out / 'b.pth').write_bytes(b'mine')  # beside a recorded set: not listed, not replaced
    with pytest.raises(SetupError, match='holds b.pth, which is not an enrollment enroll.py '
                                         'wrote .enrolled_with.txt does not list it'):
        save_enrollment_set({'b': torch.ones(1, 4)}, str(out), model, start_anew=True)
    assert (out / 'b.pth').read_bytes() == b'mine'


def test_case2_another_models_speakers_are_never_dropped_unasked(tmp_path):
    out = str(tmp_path / 'e')
    wav_model, feature_model = make_model(0)[1], make_model(1)[1]
    save_enrollment_set({'me': torch.ones(1, 4)}, out, wav_model)
    before = {f: open(os.path.join(out, f), 'rb').read() for f in os.listdir(out)}
    with pytest.raises(SetupError) as err:
        save_enrollment_set({'x': torch.ones(1, 4), 'y': torch.ones(1, 4)}, out, feature_model)
    assert one_line(err).startswith(f'{out}: holds 1 speaker enrolled by another model '
                                    '(run0/checkpoint_7.pth); this run would lose me: give '
                                    'another folder, or --start_anew true')
    assert {f: open(os.path.join(out, f), 'rb').read() for f in os.listdir(out)} == before
    # this model's speakers are kept beside the new ones (as wav enrollments always were)
    assert sorted(save_enrollment_set({'you': torch.ones(1, 4)}, out, wav_model)) == ['me', 'you']
    # a retrained model enrolling the same speakers again loses nobody: no question asked
    assert sorted(save_enrollment_set({'me': torch.ones(1, 4), 'you': torch.ones(1, 4)}, out,
                                      feature_model)) == ['me', 'you']
    assert sorted(save_enrollment_set({'x': torch.ones(1, 4)}, out, wav_model,
                                      start_anew=True)) == ['x']
    assert sorted(load_enroll_embeddings(out, wav_model)) == ['x']


def test_case3_two_runs_at_once_both_complete_and_nothing_is_lost(tmp_path, monkeypatch):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 16)}, out, checkpoint)
    real = enrollment.save_torch

    def slow_save(obj, path):
        time.sleep(0.05)  # writers that overlapped would each write the set they read
        real(obj, path)

    monkeypatch.setattr(enrollment, 'save_torch', slow_save)
    results = {}

    def run(name):
        results[name] = save_enrollment_set({name: torch.ones(1, 16)}, out, checkpoint)

    threads = [threading.Thread(target=run, args=(name,)) for name in ('bob', 'carol')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(len, results.values())) == [2, 3]  # the second added to the first's set
    assert sorted(load_enroll_embeddings(out, checkpoint)) == ['alice', 'bob', 'carol']
    with open(os.path.join(out, MODEL_FILE)) as f:
        assert f.read().splitlines()[1:] == ['alice', 'bob', 'carol']


def test_case3_a_second_writer_waits_then_refuses_and_spares_the_first_ones_folder(tmp_path):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 4)}, out, checkpoint)
    with folder_lock(out, 'enrollments'):  # the first run, in the middle of its swap
        in_progress = tmp_path / '.e.new-first'
        in_progress.mkdir()
        (in_progress / 'bob.pth').write_bytes(b'half written')
        with pytest.raises(SetupError) as err:
            save_enrollment_set({'carol': torch.ones(1, 4)}, out, checkpoint, lock_timeout=0.2)
        assert one_line(err).startswith(f'{out}: another run is still writing enrollments '
                                        'there after 0.2 s')
        assert (in_progress / 'bob.pth').read_bytes() == b'half written'
        with pytest.raises(SetupError, match='another run is still writing'):  # the check
            enrollment.check_enrollment_plan(out, checkpoint, ['carol'], lock_timeout=0.1)
    assert sorted(load_enroll_embeddings(out, checkpoint)) == ['alice']
    enrollment.check_enrollment_plan(out, checkpoint, ['carol'])  # before the work: no swap


class Killed(BaseException):
    """A kill -9 at one step: nothing after it runs (not even except clauses for Exception)."""


def kill_at_rename(monkeypatch, prefix: str):
    real = os.rename

    def rename(src, dst):
        if os.path.basename(src).startswith(prefix):
            raise Killed(src)
        real(src, dst)

    monkeypatch.setattr(os, 'rename', rename)


def test_case5_a_kill_between_the_renames_restores_the_last_complete_set(tmp_path, monkeypatch):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 4)}, out, checkpoint)
    with monkeypatch.context() as patch:
        kill_at_rename(patch, '.e.new-')  # the old set is renamed away, the new one is not in
        with pytest.raises(Killed):
            save_enrollment_set({'bob': torch.ones(1, 4)}, out, checkpoint)
    assert not os.path.exists(out)
    with pytest.raises(SetupError, match='not in place: enroll.py is replacing it'):
        load_enroll_embeddings(out, checkpoint)
    assert sorted(save_enrollment_set({'carol': torch.ones(1, 4)}, out, checkpoint)) == \
        ['alice', 'carol']
    assert sorted(os.listdir(tmp_path)) == ['.e.lock', 'e']


def test_case5_a_kill_after_the_swap_keeps_the_new_set(tmp_path, monkeypatch):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 4)}, out, checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(enrollment, 'remove_old_set', lambda folder: exec('raise Killed()'))
        with pytest.raises(Killed):
            save_enrollment_set({'bob': torch.ones(1, 4)}, out, checkpoint)
    assert sorted(load_enroll_embeddings(out, checkpoint)) == ['alice', 'bob']
    enrollment.recover_enrollment_set(out)  # the next writer's first step
    assert sorted(os.listdir(tmp_path)) == ['.e.lock', 'e']


def test_an_old_set_that_cannot_be_deleted_is_left_with_a_note_and_finished_later(
        tmp_path, monkeypatch, capsys):
    """A file of the replaced set that cannot be deleted (an immutable file: PermissionError
    even for root) was a traceback on every later run; now a note, the new set in place, the
    journal kept, and the next run deletes the rest."""
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 4)}, out, checkpoint)
    real_remove = os.remove

    def refuse_old_sets(path):
        if '.e.old-' in path:
            raise PermissionError(errno.EPERM, 'Operation not permitted')
        real_remove(path)
    with monkeypatch.context() as patch:
        patch.setattr(enrollment.os, 'remove', refuse_old_sets)
        save_enrollment_set({'bob': torch.ones(1, 4)}, out, checkpoint)
        assert 'cannot delete alice.pth (Operation not permitted); the next enroll.py tries ' \
            'again' in capsys.readouterr().out
        assert sorted(load_enroll_embeddings(out, checkpoint)) == ['alice', 'bob']
        enrollment.recover_enrollment_set(out)  # still refused: a note again, nothing lost
        assert any(n.startswith('.e.old-') for n in os.listdir(tmp_path))
    enrollment.recover_enrollment_set(out)  # the next writer's first step
    assert sorted(os.listdir(tmp_path)) == ['.e.lock', 'e']
    assert sorted(load_enroll_embeddings(out, checkpoint)) == ['alice', 'bob']


@pytest.mark.parametrize('failure', [OSError(errno.ENOSPC, 'No space left on device'),
                                     RuntimeError('[enforce fail at inline_container.cc:626] .'
                                                  ' unexpected pos 64 vs 0\nand more')])
def test_case13_disk_full_is_one_line_and_leaves_nothing_partial(tmp_path, monkeypatch,
                                                                 failure):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 4)}, out, checkpoint)
    before = {f: open(os.path.join(out, f), 'rb').read() for f in os.listdir(out)}
    real, calls = enrollment.save_torch, []

    def full_disk(obj, path):
        calls.append(path)
        if len(calls) == 2:
            raise failure
        real(obj, path)

    monkeypatch.setattr(enrollment, 'save_torch', full_disk)
    with pytest.raises(SetupError) as err:
        save_enrollment_set({'bob': torch.ones(1, 4)}, out, checkpoint)
    reason = 'No space left on device' if isinstance(failure, OSError) else 'enforce fail'
    check_nothing_partial(tmp_path, out, before, err, reason)


def check_nothing_partial(tmp_path, out: str, before: dict, err, reason: str) -> None:
    assert one_line(err).startswith(f'{out}: cannot write the enrollments (')
    assert reason in str(err.value) and str(err.value).endswith('nothing there was changed')
    assert sorted(os.listdir(tmp_path)) == ['.e.lock', 'e']
    assert {f: open(os.path.join(out, f), 'rb').read() for f in os.listdir(out)} == before


def test_case13_disk_full_inside_torch_save_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'alice': torch.ones(1, 4)}, out, checkpoint)
    before = {f: open(os.path.join(out, f), 'rb').read() for f in os.listdir(out)}

    def full_disk(obj, f):
        f.write(b'PK')
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(SetupError) as err:
        save_enrollment_set({'bob': torch.ones(1, 4)}, out, checkpoint)
    check_nothing_partial(tmp_path, out, before, err, '(No space left on device); nothing')
    assert '.e.new-' not in str(err.value)  # the hidden folder is not the user's business


def test_readers_refuse_a_set_that_differs_from_its_record(tmp_path):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({s: torch.ones(1, 4) for s in 'abc'}, out, checkpoint)
    os.remove(os.path.join(out, 'b.pth'))  # a partial set, as the old race published
    with pytest.raises(SetupError) as err:
        load_enroll_embeddings(out)
    assert one_line(err) == (f'{out}: incomplete set: b of the 3 speakers in {MODEL_FILE} '
                             'missing; enroll again (enroll.py --start_anew true replaces the '
                             'set)')
    with open(os.path.join(out, MODEL_FILE), 'a') as f:
        f.write('a\n')
    torch.save(torch.ones(1, 4), os.path.join(out, 'b.pth'))
    with pytest.raises(SetupError, match='lists a twice'):
        load_enroll_embeddings(out, checkpoint)


def test_a_set_swapped_while_it_is_read_is_read_again(tmp_path, monkeypatch):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'a': torch.ones(1, 4)}, out, checkpoint)
    real, reads = enrollment.read_enrollment_set, []

    def read_then_swap(folder, model):
        reads.append(real(folder, model))
        if len(reads) == 1:  # another run swaps a new set in meanwhile
            save_enrollment_set({'b': torch.ones(1, 4)}, out, checkpoint)
        return reads[-1]

    monkeypatch.setattr(enrollment, 'read_enrollment_set', read_then_swap)
    assert sorted(load_enroll_embeddings(out, checkpoint)) == ['a', 'b']
    assert sorted(reads[0]) == ['a']  # what was read before the swap is not returned


def test_a_linked_folder_is_refused_and_the_link_kept(tmp_path):
    real = str(tmp_path / 'real')
    save_enrollment_set({'a': torch.ones(1, 4)}, real, make_model()[1])
    os.symlink(real, tmp_path / 'link')
    with pytest.raises(SetupError, match='link: is a link; give the folder it points to'):
        save_enrollment_set({'b': torch.ones(1, 4)}, str(tmp_path / 'link'), make_model()[1])
    assert os.path.islink(tmp_path / 'link') and sorted(os.listdir(real)) == ['a.pth', MODEL_FILE]


def test_a_record_naming_a_path_deletes_nothing_outside(tmp_path):
    out = str(tmp_path / 'e')
    checkpoint = make_model()[1]
    save_enrollment_set({'a': torch.ones(1, 4)}, out, checkpoint)
    (tmp_path / 'precious.pth').write_bytes(b'mine')
    with open(os.path.join(out, MODEL_FILE), 'a') as f:
        f.write('../precious\n')
    with pytest.raises(SetupError, match='names a file outside its folder'):
        save_enrollment_set({'b': torch.ones(1, 4)}, out, checkpoint, start_anew=True)
    assert (tmp_path / 'precious.pth').read_bytes() == b'mine'


def test_an_enrollment_equal_to_the_last_bits_keeps_its_file(tmp_path):
    """Enrolling the same files again on another machine or thread count gives sums that differ
    in the last bits: the file keeps its bytes (a clone's shipped set stays as committed); an
    embedding that really changed is written."""
    _, checkpoint = make_model()
    out = str(tmp_path / 'emb')
    first = {'a': torch.nn.functional.normalize(torch.randn(1, 128), dim=1),
             'b': torch.nn.functional.normalize(torch.randn(1, 128), dim=1)}
    save_enrollment_set(first, out, checkpoint)
    before = {s: open(os.path.join(out, f'{s}.pth'), 'rb').read() for s in first}
    again = {'a': first['a'] + 3e-8, 'b': first['b'] + 1e-3}
    save_enrollment_set(again, out, checkpoint)
    after = {s: open(os.path.join(out, f'{s}.pth'), 'rb').read() for s in first}
    assert after['a'] == before['a'] and after['b'] != before['b']
    held = load_enroll_embeddings(out, checkpoint)
    assert torch.equal(held['a'].reshape(1, -1), first['a'])
    assert torch.allclose(held['b'].reshape(1, -1), again['b'])

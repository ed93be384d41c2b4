import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from configure import SetupError
from dvector.fileio import atomic_path, folder_lock, load_torch, lock_path, save_pickle, save_torch
from SR_Dataset import load_pickle


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / 'a.txt'
    path.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as tmp:
            open(tmp, 'w').write('half')
            raise RuntimeError('interrupted')
    assert path.read_text() == 'old'
    assert os.listdir(tmp_path) == ['a.txt']  # no temporary file left behind


def test_pickle_round_trip_numpy_and_plain_values(tmp_path):
    data = {'feat': np.arange(12, dtype=np.float16).reshape(3, 4), 'label': 'spk', 'n': [1, 2.5]}
    save_pickle(data, str(tmp_path / 'x.p'))
    back = load_pickle(str(tmp_path / 'x.p'))
    assert back['label'] == 'spk' and back['n'] == [1, 2.5]
    np.testing.assert_array_equal(back['feat'], data['feat'])
    assert back['feat'].dtype == np.float16


def test_crafted_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.p'
    path.write_bytes(pickle.dumps({'feat': Evil()}))
    with pytest.raises(SetupError, match='refusing to load posix.system|refusing to load os'):
        load_pickle(str(path))


def test_corrupt_pickle_names_the_file(tmp_path):
    path = tmp_path / 'bad.p'
    path.write_bytes(b'\x80\x04garbage')
    with pytest.raises(SetupError, match='bad.p'):
        load_pickle(str(path))


def test_torch_round_trip_and_restricted_load(tmp_path):
    save_torch({'w': torch.ones(2), 'name': 'x'}, str(tmp_path / 'c.pth'))
    assert load_torch(str(tmp_path / 'c.pth'))['name'] == 'x'
    torch.save({'bad': Evil()}, str(tmp_path / 'evil.pth'))
    with pytest.raises(SetupError, match='cannot load as a checkpoint'):
        load_torch(str(tmp_path / 'evil.pth'))
    with pytest.raises(SetupError, match='file not found'):
        load_torch(str(tmp_path / 'none.pth'))


def test_folder_lock_second_writer_waits_then_refuses_with_one_line(tmp_path, capsys):
    folder = str(tmp_path / 'embs')
    with folder_lock(folder, 'enrollments') as path:
        assert os.path.isfile(path) and not os.path.exists(folder)  # beside it, not in it
        with pytest.raises(SetupError) as err:
            with folder_lock(folder, 'enrollments', timeout=0.2):
                pass
    message = str(err.value)
    assert folder in message and '0.2 s' in message and '\n' not in message
    assert 'waiting up to 0.2 s' in capsys.readouterr().err
    with folder_lock(folder, 'enrollments', timeout=0.2):  # released: the next one gets it
        pass


def test_folder_lock_is_released_when_its_holder_is_killed(tmp_path):
    folder = str(tmp_path / 'logs')
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time, filelock; lock = filelock.FileLock(sys.argv[1]); '
         'lock.acquire(); print("held", flush=True); time.sleep(60)', lock_path(folder)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(SetupError):
        with folder_lock(folder, 'checkpoints', timeout=0.1):
            pass
    holder.kill()
    holder.wait()
    with folder_lock(folder, 'checkpoints', timeout=5):
        pass

"""download_tutorial_db.py on a small local fixture archive: file:// URL, plain path, a
download that breaks off and resumes (local HTTP server with Range support), bad archives."""
import http.server
import io
import pathlib
import threading
import zipfile

import numpy as np
import pytest

from conftest import run_script
from dvector import cli
from dvector.fileio import save_pickle
from SR_Dataset import load_pickle
from tools import download_tutorial_db as dl

TOP = 'SpeakerRecognition_tutorial-master'
SMALL = ['--expect_train_speakers', '3', '--expect_utts', '2', '--expect_test_speakers', '2']


def pickle_bytes(tmp_path, label):
    path = tmp_path / 'one.p'
    save_pickle({'feat': np.random.default_rng(0).normal(size=(300, 40)), 'label': label}, path)
    return path.read_bytes()


def make_archive(path, tmp_path, members=None):
    """A zip shaped like the tutorial's repository archive (3 train x 2, 2 test speakers)."""
    if members is None:
        members = {f'{TOP}/README.md': b'# tutorial\n', f'{TOP}/train.py': b'print(1)\n'}
        for s in range(3):
            for u in range(2):
                members[f'{TOP}/feat_logfbank_nfilt40/train/spk{s}/utt{u}.p'] = \
                    pickle_bytes(tmp_path, f'spk{s}')
        for s in range(2):
            for name in ('enroll', 'test'):
                members[f'{TOP}/feat_logfbank_nfilt40/test/tst{s}/{name}.p'] = \
                    pickle_bytes(tmp_path, f'tst{s}')
                members[f'{TOP}/test_wavs/tst{s}/{name}.wav'] = b'RIFF' + bytes(200)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture()
def archive(tmp_path):
    return make_archive(tmp_path / 'master.zip', tmp_path)


def unpacked_files(dest):
    return sorted(str(p.relative_to(dest)) for p in pathlib.Path(dest).rglob('*') if p.is_file())


def test_file_url_downloads_unpacks_checks_and_prints_the_command(archive, tmp_path):
    dest = tmp_path / 'db'
    result = run_script('tools/download_tutorial_db.py', '--url', archive.as_uri(),
                        '--dest', str(dest), *SMALL)
    assert result.returncode == 0, result.stderr
    files = unpacked_files(dest)
    assert len(files) == 6 + 4 + 4 and not any('README' in f or 'train.py' in f for f in files)
    data = load_pickle(dest / 'feat_logfbank_nfilt40' / 'train' / 'spk1' / 'utt0.p')
    assert data['label'] == 'spk1' and data['feat'].shape == (300, 40)
    assert f'python train.py --train_feat_dir {dest}/feat_logfbank_nfilt40/train' in result.stdout
    assert f'--test_dir {dest}/feat_logfbank_nfilt40/test' in result.stdout
    assert not (dest / 'master.zip').exists() and not (dest / 'master.zip.part').exists()
    again = run_script('tools/download_tutorial_db.py', '--url', 'file:///nonexistent/master.zip',
                       '--dest', str(dest), *SMALL)
    assert again.returncode == 0 and 'already complete' in again.stdout


def test_plain_path_resumes_a_truncated_part(archive, tmp_path):
    dest = tmp_path / 'db'
    dest.mkdir()
    whole = archive.read_bytes()
    (dest / 'master.zip.part').write_bytes(whole[:len(whole) // 2])
    result = run_script('tools/download_tutorial_db.py', '--url', str(archive), '--dest', str(dest),
                        '--keep_archive', 'true', *SMALL)
    assert result.returncode == 0, result.stderr
    assert 'resuming after' in result.stdout
    assert (dest / 'master.zip').read_bytes() == whole


def test_not_a_zip_is_one_line_and_nothing_is_unpacked(tmp_path):
    fake = tmp_path / 'master.zip'
    fake.write_text('<html>rate limited</html>\n')
    dest = tmp_path / 'db'
    result = run_script('tools/download_tutorial_db.py', '--url', str(fake), '--dest', str(dest))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(lines) == 1 and 'not a zip archive' in lines[0], result.stderr
    assert str(dest / 'master.zip') in lines[0] and 'Traceback' not in result.stderr
    assert unpacked_files(dest) == []  # the invalid download is deleted, nothing unpacked


# ---- in process: archive checks and HTTP resume ------------------------------------------

def test_zip_without_the_feature_tree_is_refused(tmp_path):
    other = make_archive(tmp_path / 'other.zip', tmp_path, {'proj-main/README.md': b'hi\n'})
    with pytest.raises(cli.SetupError, match="not the tutorial's archive"):
        dl.unpack(str(other), str(tmp_path / 'db'))
    assert not (tmp_path / 'db').exists() and not other.exists()


def test_git_lfs_pointers_are_refused(tmp_path):
    pointer = b'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n'
    lfs = make_archive(tmp_path / 'lfs.zip', tmp_path,
                       {f'{TOP}/feat_logfbank_nfilt40/train/s/u.p': pointer})
    with pytest.raises(cli.SetupError, match='Git LFS'):
        dl.unpack(str(lfs), str(tmp_path / 'db'))
    assert not (tmp_path / 'db').exists()


def test_incomplete_db_is_reported(archive, tmp_path, monkeypatch):
    dl.unpack(str(archive), str(tmp_path / 'db'))
    monkeypatch.setattr(dl, 'expect_train_speakers', 4)
    monkeypatch.setattr(dl, 'expect_utts', 2)
    monkeypatch.setattr(dl, 'expect_test_speakers', 2)
    assert dl.count_problems(str(tmp_path / 'db')) == [
        f'{tmp_path / "db" / "feat_logfbank_nfilt40" / "train"}: 3 training speakers, '
        'expected 4']
    assert dl.unpack(str(archive), str(tmp_path / 'db')) == 0  # complete files are skipped


class RangeServer(http.server.BaseHTTPRequestHandler):
    """Serves one payload with Range support; ``break_after`` cuts the first reply short."""
    payload, break_after, ranges = b'', None, []

    def do_GET(self):  # noqa: N802 - http.server's name
        start = int(self.headers.get('Range', 'bytes=0-')[6:].split('-')[0])
        type(self).ranges.append(start)
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.break_after is not None:
            body, type(self).break_after = body[:self.break_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_download_that_breaks_off_resumes_with_a_range_request(archive, tmp_path,
                                                                     monkeypatch):
    payload = archive.read_bytes()
    RangeServer.payload, RangeServer.break_after, RangeServer.ranges = payload, 1000, []
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), RangeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(dl, 'timeout', 5)
    monkeypatch.setattr('sys.stderr', io.StringIO())  # progress bars
    url = f'http://127.0.0.1:{server.server_address[1]}/archive/master.zip'
    try:
        with pytest.raises(cli.SetupError, match='broke off after .* run the same command'):
            dl.download(url, str(tmp_path / 'db'))
        assert (tmp_path / 'db' / 'master.zip.part').stat().st_size == 1000
        done = dl.download(url, str(tmp_path / 'db'))
    finally:
        server.shutdown()
        server.server_close()
    assert RangeServer.ranges == [0, 1000]
    assert pathlib.Path(done).read_bytes() == payload
    assert not (tmp_path / 'db' / 'master.zip.part').exists()

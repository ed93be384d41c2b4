"""Download the full tutorial DB (240 training speakers x 100 utterances, 3 GB of features).

    python tools/download_tutorial_db.py --dest data/tutorial_db

Gets the tutorial's public repository archive (a zip) into ``<dest>/<name>.part``; an
interrupted download resumes where it stopped when you run the same command again (HTTP Range
request; ``file://`` URLs and local paths copy the rest). Then it unpacks only the
``feat_logfbank_nfilt40`` and ``test_wavs`` trees into ``dest`` (each file written atomically,
complete files skipped), checks the speaker and file counts and prints the command to train.
"""
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
from dvector import cli
from dvector.fileio import atomic_path
from SR_Dataset import load_pickle

# ---- settings (override on the command line, e.g. --dest data/tutorial_db) ----
# the tutorial's repository as a zip archive (the DB is in it), or a local file or file:// URL
url = 'https://github.com/jymsuper/SpeakerRecognition_tutorial/archive/refs/heads/master.zip'
dest = 'data/tutorial_db'    # the DB is unpacked here: <dest>/feat_logfbank_nfilt40/{train,test}
keep_archive = False         # keep the downloaded zip after a successful unpack (3 GB)
timeout = 60                 # seconds without data before a download counts as broken off
expect_train_speakers = 240  # what a complete DB has
expect_utts = 100            # utterances per training speaker
expect_test_speakers = 10    # test speakers, each with enroll.p and test.p
# ----
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'url': cli.NAME, 'dest': cli.FOLDER, 'keep_archive': cli.FLAG, 'timeout': cli.above(0),
    'expect_train_speakers': cli.at_least(1), 'expect_utts': cli.at_least(1),
    'expect_test_speakers': cli.at_least(1)}

TREES = ('feat_logfbank_nfilt40/', 'test_wavs/')
FEAT_DIR = 'feat_logfbank_nfilt40'
BLOCK = 1 << 20


def archive_name(source: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(source).path.rstrip('/'))
    return name or 'archive.zip'


def local_source(source: str):
    """The file path of a ``file://`` URL or plain path; None for a remote URL."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == 'file':
        return urllib.request.url2pathname(parsed.path)
    if parsed.scheme in ('', ) or (len(parsed.scheme) == 1 and os.name == 'nt'):
        return source
    return None


def copy_stream(reader, part: str, have: int, total) -> int:
    """Append ``reader`` to ``part`` with a progress bar; returns the size of ``part`` after."""
    with open(part, 'ab') as out, tqdm(total=total, initial=have, unit='B', unit_scale=True,
                                        file=sys.stderr, desc=os.path.basename(part)) as bar:
        while True:
            block = reader.read(BLOCK)
            if not block:
                break
            out.write(block)
            bar.update(len(block))
    return os.path.getsize(part)


def fetch_local(path: str, part: str) -> None:
    """Copy the rest of a local file onto ``part`` (resuming after its current size)."""
    if not os.path.isfile(path):
        raise cli.SetupError(f'{path}: archive not found')
    have, total = os.path.getsize(part), os.path.getsize(path)
    if have > total:  # the .part is not a prefix of this file
        os.remove(part)
        have = 0
    with open(path, 'rb') as src:
        src.seek(have)
        copy_stream(src, part, have, total)


def open_remote(source: str, have: int):
    """(response, bytes already valid in .part) for a download resuming at ``have``."""
    request = urllib.request.Request(source, headers={'User-Agent': 'download_tutorial_db'})
    if have:
        request.add_header('Range', f'bytes={have}-')
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after what we have: the .part is complete
            return None, have
        raise cli.SetupError(f'{source}: download refused (HTTP {err.code} {err.reason})')
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, 'reason', err)
        raise cli.SetupError(f'{source}: cannot connect ({reason}); run again to retry')
    if have and response.status != 206:  # the server ignored the range: start again
        have = 0
    return response, have


def fetch_remote(source: str, part: str) -> None:
    """Download ``source`` onto ``part``, resuming; SetupError (data kept) if it breaks off."""
    have = os.path.getsize(part)
    response, have = open_remote(source, have)
    if response is None:
        return
    with response:
        if have == 0:
            open(part, 'wb').close()
        length = response.headers.get('Content-Length')
        total = have + int(length) if length and length.isdigit() else None
        try:
            size = copy_stream(response, part, have, total)
        except (OSError, EOFError, ValueError, http.client.HTTPException) as err:  # timeouts
            size = os.path.getsize(part)
            raise cli.SetupError(f'download broke off after {size / 1e6:.1f} MB ({err}); '
                                 f'run the same command again to resume ({part} is kept)')
    if total is not None and size < total:
        raise cli.SetupError(f'download broke off after {size / 1e6:.1f} of {total / 1e6:.1f} '
                             f'MB; run the same command again to resume ({part} is kept)')


def download(source: str, folder: str) -> str:
    """The path of the complete archive in ``folder``, downloading or resuming as needed."""
    final = os.path.join(folder, archive_name(source))
    if os.path.isfile(final):
        return final
    part = final + '.part'
    try:
        os.makedirs(folder, exist_ok=True)
        open(part, 'ab').close()
    except OSError as err:
        raise cli.SetupError(f'{folder}: cannot write the download here ({err.strerror or err})')
    print(f'downloading {source}' + (f' (resuming after {os.path.getsize(part) / 1e6:.1f} MB)'
                                     if os.path.getsize(part) else ''))
    path = local_source(source)
    try:
        if path is not None:
            fetch_local(path, part)
        else:
            fetch_remote(source, part)
    except cli.SetupError:
        if os.path.getsize(part) == 0:  # nothing came: leave no empty .part behind
            os.remove(part)
        raise
    os.replace(part, final)
    return final


def discard(archive: str, problem: str) -> None:
    """SetupError for an unusable archive, deleting it first when this tool made it (the next
    run fetches it again); a user's own file (--url naming a file) is never deleted."""
    if is_users_file(archive):
        raise cli.SetupError(f'{archive}: {problem}; check --url')
    os.remove(archive)
    raise cli.SetupError(f'{archive}: {problem}; deleted it, run again or check --url')


def is_users_file(archive: str) -> bool:
    """True when ``archive`` is the very file that --url names (not a copy this tool made)."""
    path = local_source(url)
    return path is not None and os.path.exists(path) and os.path.samefile(path, archive)


def tree_members(archive: str) -> list:
    """(member, path under dest) for every file of the wanted trees; SetupError if not the DB."""
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        discard(archive, f'not a zip archive ({err})')
    wanted = []
    for info in infos:
        rest = info.filename.split('/', 1)[1] if '/' in info.filename else ''
        parts = rest.split('/')
        if info.is_dir() or not rest.startswith(TREES) or '..' in parts or rest.startswith('/'):
            continue
        wanted.append((info, rest))
    if not any(rest.startswith(FEAT_DIR + '/train/') for _, rest in wanted):
        discard(archive, f"no <top>/{FEAT_DIR}/train/ in this zip: not the tutorial's archive")
    return wanted


def is_lfs_pointer(archive: str, info: zipfile.ZipInfo) -> bool:
    """True when the archive holds a Git LFS pointer (text) instead of the file itself."""
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(info) as f:
            return f.read(40).startswith(b'version https://git-lfs')
    except (zipfile.BadZipFile, OSError, EOFError) as err:  # a small member is checked whole
        discard(archive, f'damaged ({err})')


def unpack(archive: str, folder: str) -> int:
    """Unpack the wanted trees, each file atomically, skipping complete ones; returns count."""
    members = tree_members(archive)
    feature = next((info for info, rest in members if rest.endswith('.p')), None)
    if feature is not None and is_lfs_pointer(archive, feature):
        raise cli.SetupError(f'{archive}: the features in it are Git LFS pointers, not data; '
                             'get them with git lfs clone of the repository instead')
    written = 0
    with zipfile.ZipFile(archive) as zf:
        for info, rest in tqdm(members, unit='file', desc='unpacking', file=sys.stderr):
            target = os.path.join(folder, *rest.split('/'))
            if os.path.isfile(target) and os.path.getsize(target) == info.file_size:
                continue
            try:
                with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, 'wb') as out:
                    shutil.copyfileobj(src, out, BLOCK)
            except (zipfile.BadZipFile, EOFError) as err:  # CRC mismatch: a damaged download
                discard(archive, f'damaged ({err})')
            written += 1
    return written


def count_problems(folder: str) -> list:
    """What a complete DB has and ``folder`` lacks (empty when complete)."""
    train, test = os.path.join(folder, FEAT_DIR, 'train'), os.path.join(folder, FEAT_DIR, 'test')
    problems = []
    speakers = sorted(os.listdir(train)) if os.path.isdir(train) else []
    if len(speakers) != expect_train_speakers:
        problems.append(f'{train}: {len(speakers)} training speakers, expected '
                        f'{expect_train_speakers}')
    short = [s for s in speakers
             if len([f for f in os.listdir(os.path.join(train, s)) if f.endswith('.p')])
             != expect_utts]
    if short:
        problems.append(f'{train}: {len(short)} speakers without {expect_utts} utterances '
                        f'(first: {short[0]})')
    tests = sorted(os.listdir(test)) if os.path.isdir(test) else []
    complete = [s for s in tests if all(os.path.isfile(os.path.join(test, s, n + '.p'))
                                        for n in ('enroll', 'test'))]
    if len(complete) != expect_test_speakers:
        problems.append(f'{test}: {len(complete)} test speakers with enroll.p and test.p, '
                        f'expected {expect_test_speakers}')
    return problems


def check_features(folder: str) -> None:
    """Read one training file as train.py will: a (frames, 40) array and a label."""
    train = os.path.join(folder, FEAT_DIR, 'train')
    speaker = sorted(os.listdir(train))[0]
    name = sorted(os.listdir(os.path.join(train, speaker)))[0]
    data = load_pickle(os.path.join(train, speaker, name))
    if not isinstance(data, dict) or getattr(data.get('feat'), 'ndim', 0) != 2:
        raise cli.SetupError(f'{os.path.join(train, speaker, name)}: not a feature file')


def print_next_steps(folder: str) -> None:
    feats = os.path.join(folder, FEAT_DIR)
    print(f'The tutorial DB is ready in {folder}. Train on it with:\n'
          f'  python train.py --train_feat_dir {feats}/train\n'
          f'then enroll and test with --test_dir {feats}/test, e.g.:\n'
          f'  python enroll.py --test_dir {feats}/test\n'
          f'  python identification.py --test_dir {feats}/test --test_speaker 230M4087')


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    if count_problems(dest):
        archive = download(url, dest)
        print(f'unpacked {unpack(archive, dest)} files into {dest}')
        problems = count_problems(dest)
        if problems:  # the archive is kept: it is a valid zip, just not the complete DB
            raise cli.SetupError('; '.join(problems) + f' (archive: {archive})')
        if not keep_archive and not is_users_file(archive):
            os.remove(archive)
    else:
        print(f'{dest}: already complete, nothing to download')
    check_features(dest)
    print_next_steps(dest)


if __name__ == '__main__':
    cli.run(main)

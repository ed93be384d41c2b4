"""Enrollment: each speaker's stored embedding, one ``<speaker>.pth`` file per speaker.

A speaker's enrollment is the sum of its enrollment files' (normalised) embeddings, a (1, E)
tensor, as in the tutorial (enroll.py's enroll_per_spk). A model's enrollments are one set, with
``enrolled_with.txt``, the record of the model that made them and of the speakers in the set.

Writing (save_enrollment_set) holds the folder's lock (fileio.folder_lock), so two runs never
mix their sets: the second waits, then adds to the first one's set. The set is written whole
into a new hidden folder beside the old one, then swapped in by two renames; a journal beside
the folder (``.<name>.swap``) names the two hidden folders first, so that after a kill the next
writer puts the last complete set back and removes only what the journal names. Only files the
record lists are ever replaced or deleted: anything else in the folder is refused, untouched.
This model's speakers already there are kept beside the new ones; speakers another model
enrolled cannot be kept (their scores would mean nothing), so dropping them needs start_anew.

Reading (load_enroll_embeddings) checks the set against its record (the same speakers, each
once) and the model loaded now against the record's, so a partial or mixed set is never used.
"""
import glob
import os
import re
import shutil
import uuid

import torch

from configure import SetupError
from DB_wav_reader import read_DB_structure, read_feats_structure
from dvector.checkpoint import model_fingerprint
from dvector.fileio import (
    LOCK_TIMEOUT_S,
    atomic_path,
    folder_lock,
    load_torch,
    nearest_existing,
    save_torch,
)

MODEL_FILE = 'enrolled_with.txt'
LOCK_FILE = re.compile(r'\..+\.lock')  # fileio.lock_path's name for a folder's lock
# 'speaker seconds' lines: each enrollment's seconds of speech, which a calibrated model's LLR
# depends on (dvector/calibration.py); a set from before it has none
SECONDS_FILE = 'speech_seconds.txt'


def read_record(embedding_dir: str) -> tuple:
    """(fingerprint, model description, speakers) from the folder's record; None if it has none
    (not a set enroll.py wrote)."""
    path = os.path.join(embedding_dir, MODEL_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            first, *speakers = f.read().splitlines()
        fingerprint, _, model = first.partition(' ')
    except (UnicodeDecodeError, ValueError):
        raise SetupError(f'{path}: not a record written by enroll.py; run enroll.py again') \
            from None
    speakers = [s for s in speakers if s]
    if any(s in ('.', '..') or '/' in s or '\\' in s for s in speakers):  # never a path
        raise SetupError(f'{path}: names a file outside its folder; not a record written by '
                         'enroll.py')
    return fingerprint, model, speakers


def write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        f.write(text)


def write_record(folder: str, speakers: list, checkpoint: dict, seconds: dict) -> None:
    """The set's files beside the enrollments: seconds of speech (of the speakers that have
    them), then the record (last: a folder with a record is complete)."""
    if seconds:
        write_text(os.path.join(folder, SECONDS_FILE),
                   ''.join(f'{s} {seconds[s]:.3f}\n' for s in sorted(seconds)))
    write_text(os.path.join(folder, MODEL_FILE),
               f'{model_fingerprint(checkpoint)} {checkpoint.get("path", "?")}\n'
               + ''.join(f'{s}\n' for s in sorted(speakers)))


def enrolled_seconds(embedding_dir: str) -> dict:
    """{speaker: seconds of speech of its enrollment} ({} for a set from before they were
    kept); SetupError for a file enroll.py did not write."""
    path = os.path.join(embedding_dir, SECONDS_FILE)
    if not os.path.isfile(path):
        return {}
    seconds = {}
    with open(path, encoding='utf-8', errors='replace') as f:
        for number, line in enumerate(f, 1):
            speaker, _, value = line.strip().rpartition(' ')
            try:
                seconds[speaker] = float(value)
            except ValueError:
                seconds[speaker] = float('nan')
            if not speaker or not seconds[speaker] > 0:
                raise SetupError(f'{path}: line {number} is not "<speaker> <seconds>"; run '
                                 'enroll.py again')
    return seconds


def some(names: list, shown: int = 3) -> str:
    """'a, b, c and 7 more': a list of names of bounded length for a message."""
    names = sorted(names)
    more = f' and {len(names) - shown} more' if len(names) > shown else ''
    return ', '.join(names[:shown]) + more


def speakers_word(count: int) -> str:
    return f'{count} speaker' + ('' if count == 1 else 's')


# ---- the swap: two renames, named first in a journal beside the folder ----------------------
def set_paths(embedding_dir: str) -> tuple:
    """(parent folder, the folder's name, the journal's path) of an enrollment folder."""
    folder = os.path.abspath(embedding_dir)
    parent, name = os.path.dirname(folder), os.path.basename(folder)
    return parent, name, os.path.join(parent, f'.{name}.swap')


def read_journal(embedding_dir: str) -> tuple:
    """(new, old): the paths of the hidden folders a run swapping a set in named before it
    made them; None when no swap is under way or was cut short."""
    parent, name, journal = set_paths(embedding_dir)
    if not os.path.isfile(journal):
        return None
    with open(journal, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    paths = dict(line.split(' ', 1) for line in lines if ' ' in line)
    new, old = paths.get('new', ''), paths.get('old', '')
    if not new.startswith(f'.{name}.new-') or old != new.replace('.new-', '.old-', 1) \
            or os.sep in new or (os.altsep or os.sep) in new:
        raise SetupError(f'{journal}: not a journal written by enroll.py; move it away')
    return os.path.join(parent, new), os.path.join(parent, old)


def remove_old_set(folder: str) -> bool:
    """Delete a replaced set: the files its record lists, the record, then the folder if empty
    (a file enroll.py did not write keeps the folder, with a note). False, with a note, when a
    file of it cannot be deleted (the journal then stays, and the next run tries again)."""
    record = read_record(folder)
    for name in [s + '.pth' for s in record[2]] + [SECONDS_FILE, MODEL_FILE] if record else []:
        try:
            if os.path.isfile(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        except OSError as err:
            print(f'note: left {folder}, the replaced set: cannot delete {name} '
                  f'({err.strerror or err}); the next enroll.py tries again')
            return False
    try:
        os.rmdir(folder)
    except OSError:
        print(f'note: left {folder}: it holds files enroll.py did not write')
    return True


def recover_enrollment_set(embedding_dir: str) -> None:
    """Finish or undo the swap a stopped run left, as its journal names it: the last complete
    set is put back in place (a kill between the two renames), never deleted; only the hidden
    folders the journal names are removed. Call it holding the folder's lock."""
    parent, name, journal = set_paths(embedding_dir)
    for tmp in glob.glob(os.path.join(glob.escape(parent), f'..{glob.escape(name)}.swap.*.tmp')):
        os.remove(tmp)  # a journal cut short while written (atomic_path's temporary name)
    paths = read_journal(embedding_dir)
    if paths is None:
        return
    new, old = paths
    swapped = not os.path.lexists(new)  # the new set was renamed into place
    if not os.path.lexists(embedding_dir) and os.path.isdir(old):
        os.rename(old, embedding_dir)
        print(f'note: {embedding_dir}: the last complete set is back in place (a run was '
              'stopped while replacing it)')
    elif os.path.isdir(old) and swapped:
        if not remove_old_set(old):
            return  # the journal stays: a later run deletes the rest
    elif os.path.isdir(old):
        print(f'note: left {old}: an earlier set, beside {embedding_dir} which is in place')
    if os.path.isdir(new):
        shutil.rmtree(new)
    os.remove(journal)


def write_new_set(embeddings: dict, folder: str, checkpoint: dict, seconds: dict) -> None:
    """A new folder with ``<speaker>.pth`` for every speaker of ``embeddings``, record last."""
    os.mkdir(folder, 0o777)  # the usual permissions: the umask applies
    for speaker in sorted(embeddings):
        save_torch(embeddings[speaker], os.path.join(folder, speaker + '.pth'))
        print(f'Save the embeddings for {speaker}')
    write_record(folder, list(embeddings), checkpoint, seconds)


def failure_reason(err: Exception) -> str:
    """The short cause of a write failure (torch's writer puts it in a long RuntimeError;
    fileio.save_torch in a line naming the file)."""
    if isinstance(err, OSError):
        return err.strerror or type(err).__name__
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if isinstance(err, SetupError) and 'cannot write it (' in first:
        first = first.split('cannot write it (', 1)[1].split('); ', 1)[0]
    return first if len(first) <= 120 else first[:117] + '...'


def swap_in(embeddings: dict, embedding_dir: str, checkpoint: dict, seconds: dict) -> None:
    """Write the set beside ``embedding_dir`` and rename it into place; on a write failure
    (disk full, unwritable) the folder is as it was, nothing partial stays, and one line says
    why. Call it holding the folder's lock."""
    parent, name, journal = set_paths(embedding_dir)
    tag = uuid.uuid4().hex[:8]
    new, old = (os.path.join(parent, f'.{name}.{kind}-{tag}') for kind in ('new', 'old'))
    try:
        with atomic_path(journal) as tmp, open(tmp, 'w', encoding='utf-8') as f:
            f.write(f'new {os.path.basename(new)}\nold {os.path.basename(old)}\n')
        write_new_set(embeddings, new, checkpoint, seconds)
        if os.path.isdir(embedding_dir):
            os.rename(embedding_dir, old)
        os.rename(new, embedding_dir)
    except (OSError, RuntimeError, SetupError, KeyboardInterrupt) as err:
        recover_enrollment_set(embedding_dir)
        if isinstance(err, KeyboardInterrupt):
            raise
        raise SetupError(f'{embedding_dir}: cannot write the enrollments '
                         f'({failure_reason(err)}); nothing there was changed') from None
    if not os.path.isdir(old) or remove_old_set(old):
        os.remove(journal)  # else it stays: the next run deletes the rest of the old set


# ---- what a new set keeps of the old one ----------------------------------------------------
def check_own_files(embedding_dir: str, names: list) -> tuple:
    """The folder's record; SetupError naming a file in it the record does not list (the
    project replaces only what it wrote: that file is never touched)."""
    record = read_record(embedding_dir)
    listed = {s + '.pth' for s in record[2]} | {MODEL_FILE, SECONDS_FILE} if record else set()
    # the user's own files named first; a lock file (.<folder>.lock, fileio.lock_path) last
    foreign = sorted(set(names) - listed, key=lambda n: (bool(LOCK_FILE.fullmatch(n)), n))
    if foreign:
        why = f'{MODEL_FILE} does not list it' if record else f'there is no {MODEL_FILE}'
        if LOCK_FILE.fullmatch(foreign[0]):
            why += '; a lock file of an enroll.py into its subfolder: remove it when none runs'
        raise SetupError(f'{embedding_dir}: holds {foreign[0]}, which is not an enrollment '
                         f'enroll.py wrote ({why}); move it out, or give another folder')
    return record


def plan_enrollment_set(embedding_dir: str, checkpoint: dict, speakers: list,
                        start_anew: bool = False) -> tuple:
    """(kept, replaced, held): {speaker: (1, E)} of the set in ``embedding_dir`` that a new set
    of ``speakers`` keeps (this model's other speakers; none when start_anew), the speakers
    there it replaces, and this model's whole set there ({} for another model's). SetupError,
    before anything is written, for a file there enroll.py did not write, or when speakers
    another model enrolled there would be lost unasked."""
    if os.path.lexists(embedding_dir) and not os.path.isdir(embedding_dir):
        raise SetupError(f'{embedding_dir}: is a file, not a folder')
    if os.path.islink(embedding_dir):  # the swap would replace the user's link, not the folder
        raise SetupError(f'{embedding_dir}: is a link; give the folder it points to '
                         f'({os.path.realpath(embedding_dir)})')
    names = os.listdir(embedding_dir) if os.path.isdir(embedding_dir) else []
    record = check_own_files(embedding_dir, names) if names else None
    if record is None:  # nothing there (an empty folder or none)
        return {}, [], {}
    held = record[2]
    if start_anew:
        return {}, held, {}
    if record[0] != model_fingerprint(checkpoint):
        lost = sorted(set(held) - set(speakers))
        if lost:
            raise SetupError(
                f'{embedding_dir}: holds {speakers_word(len(held))} enrolled by another model '
                f'({record[1]}); this run would lose {some(lost)}: give another folder, or '
                '--start_anew true to replace them')
        return {}, held, {}
    held_now = load_enroll_embeddings(embedding_dir, checkpoint)
    kept = {s: e for s, e in held_now.items() if s not in speakers}
    return kept, sorted(set(held_now) - set(kept)), held_now


def as_held_when_unchanged(embeddings: dict, held: dict, atol: float = 1e-6) -> dict:
    """``embeddings`` with each speaker's embedding that equals, to ``atol``, the one this model
    enrolled before (``held``) given as that one. The same files enrolled again on another
    machine or thread count sum in another order and differ in the last bits (3e-8): the file
    keeps its bytes (a clone's shipped enrollments stay as committed)."""
    return {s: held[s] if s in held and held[s].shape == e.shape
            and torch.allclose(held[s], e, rtol=0, atol=atol) else e
            for s, e in embeddings.items()}


def check_enrollment_dir(embedding_dir: str, setting: str) -> None:
    """SetupError, before any work, when the folder that holds ``embedding_dir`` cannot be
    written: a new set is written beside the old one and renamed, with a lock file there."""
    parent = nearest_existing(set_paths(embedding_dir)[0])
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SetupError(f'--{setting} {embedding_dir}: cannot write a new set beside it '
                         f'({parent} is not a writable folder)')


def check_enrollment_plan(embedding_dir: str, checkpoint: dict, speakers: list,
                          start_anew: bool = False, lock_timeout: float = LOCK_TIMEOUT_S) -> None:
    """plan_enrollment_set's refusals, before the work (embedding), read under the folder's lock
    so that another run's swap is never seen half done."""
    if os.path.isdir(set_paths(embedding_dir)[0]):
        with folder_lock(embedding_dir, 'enrollments', lock_timeout):
            plan_enrollment_set(embedding_dir, checkpoint, speakers, start_anew)


def save_enrollment_set(embeddings: dict, embedding_dir: str, checkpoint: dict,
                        seconds: dict = None, start_anew: bool = False,
                        lock_timeout: float = LOCK_TIMEOUT_S) -> dict:
    """Write ``embeddings`` ({speaker: (1, E)}; ``seconds``: {speaker: seconds of speech}) as
    the set of ``embedding_dir``, with this model's other speakers already there (dropped too
    when start_anew), holding the folder's lock (a second writer waits up to ``lock_timeout``
    s). Returns the set written."""
    os.makedirs(set_paths(embedding_dir)[0], exist_ok=True)
    with folder_lock(embedding_dir, 'enrollments', lock_timeout):
        recover_enrollment_set(embedding_dir)
        kept, replaced, held = plan_enrollment_set(embedding_dir, checkpoint,
                                                   list(embeddings), start_anew)
        embeddings = as_held_when_unchanged(embeddings, held)
        dropped = sorted(set(replaced) - set(embeddings))
        if dropped:
            print(f'note: start_anew: {some(dropped)} ({speakers_word(len(dropped))} enrolled '
                  'there before) dropped')
        again = sorted(set(replaced) & set(embeddings))
        if again:
            print(f'note: {some(again)} enrolled before: replaced by this run\'s enrollment')
        full = {**kept, **embeddings}
        held_seconds = enrolled_seconds(embedding_dir) if kept else {}
        full_seconds = {**{s: held_seconds[s] for s in kept if s in held_seconds},
                        **{s: v for s, v in (seconds or {}).items() if s in embeddings}}
        swap_in(full, embedding_dir, checkpoint, full_seconds)
    return full


def split_enroll_and_test(folder: str, ext: str = '.p') -> tuple:
    """Tables of the enrollment files (named ``enroll.p``; ``enroll.wav`` when ``ext`` is
    '.wav') and the others (for testing)."""
    if ext == '.p':
        table = read_feats_structure(folder)
    else:
        any_case = ''.join(f'[{ch.lower()}{ch.upper()}]' if ch.isalpha() else ch for ch in ext)
        table = read_DB_structure(folder, '**/*' + any_case) if os.path.isdir(folder) else None
        if table is None or table.empty:
            raise SetupError(f'{folder}: no {ext} files in <speaker> folders under it')
    is_enroll = table['filename'].map(lambda f: os.path.basename(f).lower() == 'enroll' + ext)
    return table[is_enroll].reset_index(drop=True), table[~is_enroll].reset_index(drop=True)


def sum_per_speaker(speaker_ids: list, embeddings: torch.Tensor) -> dict:
    """{speaker: (1, E) sum of its files' embeddings}: a speaker's enrollment."""
    enrolled = {}
    for speaker, emb in zip(speaker_ids, embeddings):
        enrolled[speaker] = enrolled.get(speaker, 0) + emb.unsqueeze(0)  # (1, E)
    return enrolled


def read_enrollment(path: str) -> torch.Tensor:
    """One speaker's (1, E) enrollment; SetupError unless the file holds a finite vector."""
    emb = load_torch(path)
    if not torch.is_tensor(emb) or emb.numel() == 0 or not emb.is_floating_point() \
            or not torch.isfinite(emb).all():
        raise SetupError(f'{path}: not an enrollment (expected a finite (1, E) tensor, got '
                         f'{type(emb).__name__}); run enroll.py again')
    return emb.reshape(1, -1).float()


def folder_not_found(embedding_dir: str) -> SetupError:
    """The error for a missing set, saying when a swap of it is under way or was cut short."""
    if os.path.isfile(set_paths(embedding_dir)[2]):
        return SetupError(f'{embedding_dir}: not in place: enroll.py is replacing it, or was '
                          'stopped while doing so; the next enroll.py puts the last set back')
    return SetupError(f'{embedding_dir}: enrollment folder not found (run enroll.py first)')


def check_against_record(embedding_dir: str, speakers: list, record: tuple,
                         checkpoint: dict) -> None:
    """SetupError unless the folder's speakers are those its record lists, each once (else the
    set is partial or mixed), made by the model of ``checkpoint`` (when one is given)."""
    fingerprint, model, recorded = record
    if checkpoint is not None and fingerprint != model_fingerprint(checkpoint):
        raise SetupError(f'{embedding_dir}: enrolled with another model ({model}) than the '
                         'one loaded now; run enroll.py again with this model')
    twice = sorted({s for s in recorded if recorded.count(s) > 1})
    extra = sorted(set(speakers) - set(recorded))
    missing = sorted(set(recorded) - set(speakers))
    if twice:
        raise SetupError(f'{embedding_dir}: {MODEL_FILE} lists {twice[0]} twice; not a record '
                         'enroll.py wrote: run enroll.py again')
    if extra:
        raise SetupError(f'{embedding_dir}: {extra[0]}.pth is not part of the enrolled set '
                         f'({MODEL_FILE} does not list it); move it out of the folder '
                         '(enroll.py never touches a file its record does not list)')
    if missing:
        raise SetupError(f'{embedding_dir}: incomplete set: {some(missing)} of the '
                         f'{speakers_word(len(recorded))} in {MODEL_FILE} missing; enroll again '
                         '(enroll.py --start_anew true replaces the set)')


def read_enrollment_set(embedding_dir: str, checkpoint: dict = None) -> dict:
    """{speaker: (1, E)} of the folder as it is now, checked against its record."""
    if not os.path.isdir(embedding_dir):
        raise folder_not_found(embedding_dir)
    speakers = sorted(f[:-4] for f in os.listdir(embedding_dir) if f.endswith('.pth'))
    if not speakers:
        raise SetupError(f'{embedding_dir}: no enrolled speakers (*.pth); run enroll.py first')
    record = read_record(embedding_dir)
    if record is None:  # what the model and the speakers are is unknown: a set is never guessed
        raise SetupError(f'{embedding_dir}: has no {MODEL_FILE}, so it is not a set enroll.py '
                         'wrote (its record names the model and the speakers); enroll with '
                         'enroll.py --embedding_dir <another folder>')
    check_against_record(embedding_dir, speakers, record, checkpoint)
    embeddings = {s: read_enrollment(os.path.join(embedding_dir, s + '.pth')) for s in speakers}
    sizes = {e.shape[1] for e in embeddings.values()}
    if len(sizes) > 1:
        raise SetupError(f'{embedding_dir}: enrollments of different sizes {sorted(sizes)}; '
                         'run enroll.py again')
    return embeddings


def folder_identity(path: str) -> tuple:
    """(device, inode) of a folder, None when missing: a swapped-in set is another folder."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def load_enroll_embeddings(embedding_dir: str, checkpoint: dict = None) -> dict:
    """The slides' load_enroll_embeddings: {speaker: (1, E) enrollment} from enroll.py's
    folder, checked against its record: the same speakers, each once (a partial set is
    refused), and, given the checkpoint of the model loaded now, made by that model. A set
    swapped while it is read is read again, so the result is always one set."""
    for _ in range(3):
        before = folder_identity(embedding_dir)
        try:
            embeddings = read_enrollment_set(embedding_dir, checkpoint)
        except SetupError:
            if folder_identity(embedding_dir) == before:
                raise
            continue
        if folder_identity(embedding_dir) == before:
            return embeddings
    raise SetupError(f'{embedding_dir}: replaced by enroll.py while being read, three times; '
                     'try again when it has finished')


def select_speakers(embeddings: dict, speakers: list, embedding_dir: str) -> tuple:
    """(speaker list, (N, E) tensor) of the chosen enrolled speakers (all when none chosen)."""
    speakers = list(speakers) if speakers else sorted(embeddings)
    unknown = [s for s in speakers if s not in embeddings]
    if unknown:
        raise SetupError(f'speaker {", ".join(unknown)} is not enrolled in {embedding_dir}; '
                         'enrolled: ' + ', '.join(sorted(embeddings)))
    return speakers, torch.cat([embeddings[s] for s in speakers])  # (N, E)


def find_test_file(test_dir: str, speaker: str, name: str = 'test.p') -> str:
    """``<test_dir>/<speaker>/test.p``; SetupError listing the speakers that have one."""
    path = os.path.join(test_dir, speaker, name)
    if not os.path.isdir(test_dir):
        raise SetupError(f'test_dir {test_dir}: folder not found (in {os.getcwd()}; run the '
                         'scripts from the repository\'s folder, or give the full path)')
    if not os.path.isfile(path):
        have = sorted(d for d in os.listdir(test_dir)
                      if os.path.isfile(os.path.join(test_dir, d, name)))
        raise SetupError(f'test_speaker={speaker!r}: no {path}; speakers with a {name}: '
                         + (', '.join(have) or f'none ({test_dir} has none)'))
    return path


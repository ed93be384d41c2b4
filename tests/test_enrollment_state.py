"""Stateful test of an enrollment folder (issue 27): random interleavings of enrollments by the
feature model and by the wav model, re-enrollments, start_anew, kills at any step of a write, a
second writer while one holds the lock, two writers at once, and a user's own files in and
beside the folder. After every step the folder holds one complete set matching its record (or,
only after a kill between the swap's two renames, none that any reader uses), the set is the
one the rules say, and no file that is not the project's is touched. Embeddings are made up (no
model runs): a few seconds in all."""
import contextlib
import os
import shutil
import tempfile
import threading
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from configure import SetupError
from dvector import enrollment
from dvector.enrollment import MODEL_FILE, load_enroll_embeddings, read_journal
from dvector.fileio import folder_lock

MODELS = {'features': {'state_dict': {'w': torch.zeros(2)}, 'path': 'model_saved/cp_20.pth'},
          'wavs': {'state_dict': {'w': torch.ones(2)}, 'path': 'model_real/cp_7.pth'}}
SPEAKERS = st.sets(st.sampled_from(['alice', 'bob', 'carol', 'dave']), min_size=1, max_size=3)
# where a kill lands: the n-th file operation of a write, or the n-th of one kind; the second
# rename (the gap between the swap's renames, the riskiest point) is drawn the most often
KILL_POINTS = st.one_of(st.tuples(st.none(), st.integers(0, 20)), st.sampled_from(
    [('rename', 0), ('rename', 1), ('rename', 1), ('remove', 0), ('remove', 2), ('rmtree', 0),
     ('replace', 0)]))
FOREIGN_BESIDE = {'.emb.new-mine/notes.txt': b'a folder of mine named like a new set',
                  '.emb.old-1/alice.pth': b'an older version left this', '.emb.bak': b'mine'}


class Killed(BaseException):
    """kill -9 at one step of a write: the code after it does not run."""


class EnrollmentFolder(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = tempfile.mkdtemp(prefix='enroll-state-')
        self.folder = os.path.join(self.root, 'emb')
        self.committed = None  # (model, {speaker: value}): the last complete set
        self.foreign = {}      # path: bytes of every file that is not the project's
        self.value = 0.0
        for name, data in FOREIGN_BESIDE.items():
            self.put_foreign(os.path.join(self.root, name), data)

    def teardown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def put_foreign(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        self.foreign[path] = data

    def foreign_inside(self) -> list:
        return [p for p in self.foreign if os.path.dirname(p) == self.folder]

    def expected(self, model: str, speakers: set, start_anew: bool) -> dict:
        """The set after an enrollment of ``speakers`` (values: self.value); None: refused."""
        new = {s: self.value for s in speakers}
        if self.foreign_inside():
            return None
        if self.committed is None or start_anew:
            return new
        held_by, held = self.committed
        if held_by == model:
            return {**held, **new}
        return None if set(held) - set(speakers) else new

    def enroll_once(self, model: str, speakers: set, start_anew: bool, **save) -> dict:
        """What enroll.py does once it has the embeddings (made up here, one value per run)."""
        embedding = torch.full((1, 4), self.value)  # (1, E)
        return enrollment.save_enrollment_set({s: embedding for s in speakers}, self.folder,
                                              MODELS[model], start_anew=start_anew, **save)

    @rule(model=st.sampled_from(sorted(MODELS)), speakers=SPEAKERS, start_anew=st.booleans(),
          kill=st.one_of(st.none(), KILL_POINTS), others_lock=st.sampled_from([0, 0, 0, 1]))
    def enroll(self, model, speakers, start_anew, kill, others_lock):
        """An enrollment; killed at its ``kill[1]``-th file operation (of kind ``kill[0]``, None
        for any) if it gets that far; or tried while another writer holds the lock."""
        self.value += 1
        want = self.expected(model, speakers, start_anew)
        if others_lock:
            with folder_lock(self.folder, 'enrollments'):
                with pytest.raises(SetupError, match='another run is still writing'):
                    self.enroll_once(model, speakers, start_anew, lock_timeout=0.01)
            return
        swapped, outcome = [], None
        with self.kill_at(*(kill or (None, 10 ** 6)), swapped):
            try:
                outcome = self.enroll_once(model, speakers, start_anew)
            except Killed:
                if swapped and want is not None:  # its new set was renamed into place
                    self.committed = (model, want)
                return
            except SetupError as err:
                outcome = err
        if want is None:
            assert isinstance(outcome, SetupError), outcome
            return
        assert {s: float(e[0, 0]) for s, e in outcome.items()} == want
        self.committed = (model, want)
        assert not [n for n in os.listdir(self.root) if n.endswith('.tmp')]  # none left

    @contextlib.contextmanager
    def kill_at(self, kind: str, step: int, swapped: list):
        calls, depth = [], []

        def wrap(name, real):
            def operation(*args, **kwargs):
                path = str(args[0])
                if not depth and path.startswith(self.root) and not path.endswith('.lock') \
                        and kind in (None, name):
                    calls.append(path)  # one step: the operations it makes are not counted
                    if len(calls) > step:
                        raise Killed(path)
                depth.append(name)
                try:
                    result = real(*args, **kwargs)
                finally:
                    depth.pop()
                if name == 'rename' and os.path.basename(path).startswith('.emb.new-'):
                    swapped.append(path)
                return result
            return operation

        with contextlib.ExitStack() as stack:
            for owner, name in ((os, 'rename'), (os, 'replace'), (os, 'mkdir'), (os, 'remove'),
                                (os, 'rmdir'), (shutil, 'rmtree'), (enrollment, 'save_torch'),
                                (enrollment, 'write_text')):
                patched = wrap(name, getattr(owner, name))
                stack.enter_context(mock.patch.object(owner, name, patched))
            yield

    @precondition(lambda self: self.committed is None or self.committed[0] == 'wavs')
    @rule(first=SPEAKERS, second=SPEAKERS)
    def two_writers_at_once(self, first, second):
        """Two wav enrollments at once: both complete, in one order or the other."""
        values = (self.value + 1, self.value + 2)
        self.value += 2
        want = [self.expected('wavs', first, False), self.expected('wavs', second, False)]
        errors = []

        def run(speakers, value):
            embedding = torch.full((1, 4), value)  # (1, E)
            try:
                enrollment.save_enrollment_set({s: embedding for s in speakers}, self.folder,
                                               MODELS['wavs'])
            except SetupError as err:
                errors.append(err)

        threads = [threading.Thread(target=run, args=a) for a in zip((first, second), values)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if None in want:
            assert len(errors) == 2
            return
        held = self.committed[1] if self.committed else {}
        orders = [{**held, **{s: values[0] for s in first}, **{s: values[1] for s in second}},
                  {**held, **{s: values[1] for s in second}, **{s: values[0] for s in first}}]
        got = self.read()
        assert not errors and got in orders
        self.committed = ('wavs', got)

    @precondition(lambda self: os.path.exists(os.path.join(self.root, '.emb.swap')))
    @rule()
    def next_writer_recovers(self):
        """What every writer does first after a kill: the last complete set is in place."""
        with folder_lock(self.folder, 'enrollments'):
            enrollment.recover_enrollment_set(self.folder)
        assert read_journal(self.folder) is None
        if self.committed is not None:
            assert os.path.isdir(self.folder)
            if not self.foreign_inside():
                assert self.read() == self.committed[1]

    @rule(name=st.sampled_from(['my_pretrained.pth', 'notes.txt', 'bob.pth']))
    def user_file_in_the_folder(self, name):
        """The user puts a file of their own in the folder, or takes it out again."""
        path = os.path.join(self.folder, name)
        if path in self.foreign:
            os.remove(path)
            del self.foreign[path]
        elif os.path.isdir(self.folder) and not os.path.exists(path):
            self.put_foreign(path, b'the user\'s own ' + name.encode())

    def read(self) -> dict:
        """The set as a reader gets it ({speaker: value}); None when it is refused."""
        model = self.committed[0] if self.committed else 'wavs'
        try:
            return {s: float(e[0, 0])
                    for s, e in load_enroll_embeddings(self.folder, MODELS[model]).items()}
        except SetupError:
            return None

    @invariant()
    def one_complete_set_and_nothing_foreign_touched(self):
        for path, data in self.foreign.items():
            with open(path, 'rb') as f:
                assert f.read() == data, path
        journal = read_journal(self.folder)
        ours = {os.path.join(self.root, n) for n in os.listdir(self.root)
                if n.startswith(('.emb.new-', '.emb.old-'))} - \
            {os.path.dirname(os.path.join(self.root, n)) for n in FOREIGN_BESIDE}
        assert ours <= set(journal or ()), ours  # only a swap under way leaves folders
        got = self.read()
        if self.committed is None:
            assert not got and (not os.path.isdir(self.folder)
                                or set(os.listdir(self.folder)) <= {MODEL_FILE}
                                | {os.path.basename(p) for p in self.foreign_inside()})
        elif any(p.endswith('.pth') for p in self.foreign_inside()):
            assert got is None  # a speaker file the record does not list: never read
        elif got is None:  # only while a killed swap has no set in place
            assert journal is not None and not os.path.exists(self.folder)
        else:
            assert got == self.committed[1]


EnrollmentFolder.TestCase.settings = settings(
    max_examples=30, stateful_step_count=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_enrollment_folder = EnrollmentFolder.TestCase

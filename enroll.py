"""Enrollment: embed each test speaker's ``enroll.p`` and save it as ``<speaker>.pth``.

The model's sizes (embedding_size, n_classes) and backbone come from the checkpoint.
    python enroll.py --cp_num 24 --test_dir data/tutorial_db/feat_logfbank_nfilt40/test
"""
import os

import configure as c
from dvector import cli
from dvector.checkpoint import load_model, select_device
from dvector.embedding import get_embeddings
from dvector.enrollment import save_enrollment_set, split_enroll_and_test
from dvector.fileio import check_writable_dir

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
                                     # (the class used 24, the epoch its own run chose)
test_frames = 200                    # frames per piece when embedding an utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/enroll.p (and test.p)
embedding_dir = 'enroll_embeddings'  # where the enrolled speakers are saved
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.NAME, 'cp_num': cli.at_least(0),
    'test_frames': cli.at_least(0), 'test_dir': cli.NAME, 'embedding_dir': cli.NAME,}


def enroll_per_spk(model, enroll_DB, embedding_dir: str, checkpoint: dict, device) -> dict:
    """Each enrollment file's d-vector, summed per speaker ({speaker: (1, E)}), saved as one
    set (the old set in embedding_dir is replaced whole)."""
    if enroll_DB.empty:
        raise cli.SetupError(f'{test_dir}: no enrollment files (enroll.p) to enroll')
    print('Start to aggregate all the d-vectors per enroll speaker')
    embeddings = {}
    for filename, spk in zip(enroll_DB['filename'], enroll_DB['speaker_id']):
        activation = get_embeddings(model, filename, test_frames, device)  # (1, E)
        embeddings[spk] = embeddings.get(spk, 0) + activation
        print(f'Aggregates the activation (spk : {spk})')
    save_enrollment_set(embeddings, embedding_dir, checkpoint)
    return embeddings


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_writable_dir(embedding_dir, 'embedding_dir')
    if os.path.abspath(embedding_dir) == os.path.abspath(log_dir):
        raise cli.SetupError(f'--embedding_dir {embedding_dir}: is log_dir, where the '
                             'checkpoints are; give the enrollments a folder of their own')
    device = select_device(use_cuda)
    enroll_DB, _ = split_enroll_and_test(test_dir)
    model, checkpoint = load_model(log_dir, cp_num, device)
    enroll_per_spk(model, enroll_DB, embedding_dir, checkpoint, device)


if __name__ == '__main__':
    cli.run(main)

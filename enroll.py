"""Enrollment: embed each test speaker's ``enroll.p`` and save it as ``<speaker>.pth``.

The model's sizes (embedding_size, n_classes) and backbone come from the checkpoint.
    python enroll.py --cp_num 24 --test_feat_dir /data/feat_logfbank_nfilt40/test
"""
import cli
import configure as c
from checkpoint import load_model, select_device
from enrollment import enroll_speakers, split_enroll_and_test

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 200                    # frames per piece when embedding an utterance
test_feat_dir = c.TEST_FEAT_DIR      # <dir>/<speaker>/enroll.p (and test.p)
embedding_dir = 'enroll_embeddings'  # where the enrolled speakers are saved
# ------------------------------------------------------------------------------------------


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    device = select_device(use_cuda)
    model, checkpoint = load_model(log_dir, cp_num, device)
    enroll_table, _ = split_enroll_and_test(test_feat_dir)
    enroll_speakers(model, enroll_table, embedding_dir, test_frames, device, checkpoint)


if __name__ == '__main__':
    cli.run(main)

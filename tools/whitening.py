"""Fit within-speaker whitening (WCCN) into a trained checkpoint, on the training speakers.

    python tools/whitening.py --log_dir runs/best --train_feat_dir feat_logfbank_nfilt40/train
    (--layer pooling: whitening + LDA of the pooled statistics; --layer both: the two side by
    side; --whole_utterance true: switch a model trained without it to whole utterances)
The whitening and the AS-norm cohort are stored in the checkpoint (dvector/whitening.py says
how); run enroll.py again afterwards, and choose the verification threshold anew.
train.py does the same at the end of training with --whiten true.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
import configure as c  # noqa: E402
from dvector import cli  # noqa: E402
from dvector.checkpoint import select_device  # noqa: E402
from dvector.fileio import folder_lock  # noqa: E402
from dvector.whitening import LAYERS, whiten_checkpoint  # noqa: E402

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to whiten; 0 = lowest validation loss
train_feat_dir = c.TRAIN_FEAT_DIR    # the training speakers' features: <dir>/<speaker>/*.p;
                                     # several folders: 'dir1,dir2'
test_frames = 100                    # piece length, as in scoring
layer = 'embedding'                  # fit on fc0's output (the d-vector); 'pooling': on fc0's
                                     # input, then LDA to embedding_size (replaces fc0); 'both':
                                     # the two, side by side (a d-vector twice as long)
reg = 0.2                            # added to the within-speaker covariance (x its mean var)
pooling_reg = 1.0                    # the same on fc0's input (more numbers, same data)
whole_utterance = False              # true: from now on the checkpoint embeds whole utterances
                                     # (as train.py --whole_utterance true); fitted on them too
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.FOLDER, 'cp_num': cli.at_least(0),
    'train_feat_dir': cli.NAME, 'test_frames': cli.PIECE_FRAMES, 'layer': cli.one_of(*LAYERS),
    'reg': cli.at_least(0), 'pooling_reg': cli.at_least(0), 'whole_utterance': cli.FLAG}


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    with folder_lock(log_dir, 'a whitening'):  # one writer of the checkpoints at a time
        path = whiten_checkpoint(log_dir, cp_num, train_feat_dir, select_device(use_cuda),
                                 test_frames=test_frames, whole_utterance=whole_utterance,
                                 layer=layer, reg=reg, pooling_reg=pooling_reg)
    print(f'Whitening saved in {path}; run enroll.py again so the enrollments use it')


if __name__ == '__main__':
    cli.run(main)

"""Speaker verification: is this utterance from the speaker it claims to be?

Scores ``<test_feat_dir>/<test_speaker>/test.p`` against the enrolled ``enroll_speaker`` by
cosine similarity: Accept when the score is above ``thres``, else Reject.
    python verification.py --enroll_speaker X --test_speaker Y --thres 0.8
``--as_norm 50`` AS-normalises the score against the training speakers that whitening.py
stored in the checkpoint; ``thres`` is then on that scale (evaluate.py --as_norm 50 prints its
EER threshold).
"""
import cli
import configure as c
from checkpoint import WHITENING_KEY, load_model, score_cohort, select_device
from embedding import embed_files
from enrollment import check_enrolled_with, find_test_file, load_enrollments
from scoring import as_norm_matrix, cosine_scores, verify

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_feat_dir = c.TEST_FEAT_DIR      # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py
enroll_speaker = 'demo_m47'          # the claimed identity (an enrolled speaker)
test_speaker = 'demo_m47'            # whose test.p makes the claim
thres = 0.994                        # accept when the cosine score is above this (tutorial: 0.95)
as_norm = 0                          # AS-norm the score with the top as_norm cohort scores
                                     # (whitening.py's); 0 = plain cosine
# ------------------------------------------------------------------------------------------


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    device = select_device(use_cuda)
    _, enrolled = load_enrollments(embedding_dir, [enroll_speaker])
    path = find_test_file(test_feat_dir, test_speaker)
    model, checkpoint = load_model(log_dir, cp_num, device)
    check_enrolled_with(embedding_dir, checkpoint)
    cohort = score_cohort(checkpoint, as_norm, log_dir) if as_norm else None
    if checkpoint.get(WHITENING_KEY) and not as_norm:
        print('note: this model is whitened (whitening.py): its scores are lower than the plain '
              "model's, so choose thres anew (evaluate.py prints the EER threshold)")
    test = embed_files(model, [path], test_frames, device)       # (1, E)
    scores = cosine_scores(test, enrolled)                         # (1, 1)
    if as_norm:
        scores = as_norm_matrix(scores, test, enrolled, cohort, as_norm)
    score = float(scores[0, 0])
    print('\n=== Speaker verification ===')
    print(f'Claimed speaker : {enroll_speaker}\nTrue speaker : {test_speaker}\n\n'
          f'Result : {verify(score, thres)}\n')
    print(f'Score : {score:0.4f}\nThreshold : {thres}\n')


if __name__ == '__main__':
    cli.run(main)

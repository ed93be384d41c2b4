"""Speaker verification: is this utterance from the speaker it claims to be?

Scores ``<test_dir>/<test_speaker>/test.p`` against the enrolled ``enroll_speaker`` by cosine
similarity: Accept when the score is above ``thres``, else Reject.
    python verification.py --enroll_speaker X --test_speaker Y --thres 0.8
``--as_norm 50`` AS-normalises the score against the training speakers that
tools/whitening.py stored in the checkpoint; ``thres`` is then on that scale (evaluate.py
--as_norm 50 prints its EER threshold).
"""
import configure as c
from dvector import cli
from dvector.checkpoint import WHITENING_KEY, load_model, score_cohort, select_device
from dvector.embedding import get_embeddings
from dvector.enrollment import find_test_file, load_enroll_embeddings, select_speakers
from dvector.scoring import as_norm_matrix, cosine_scores, verify

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py
enroll_speaker = 'demo_m47'          # the claimed identity (an enrolled speaker)
test_speaker = 'demo_m47'            # whose test.p makes the claim
thres = 0.994                        # accept when the score is above this. The class used 0.95
                                     # for its model; a threshold belongs to its model (README)
as_norm = 0                          # AS-norm the score with the top as_norm cohort scores
                                     # (tools/whitening.py's); 0 = plain cosine
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.NAME, 'cp_num': cli.at_least(0),
    'test_frames': cli.at_least(0), 'test_dir': cli.NAME, 'embedding_dir': cli.NAME,
    'enroll_speaker': cli.NAME, 'test_speaker': cli.NAME, 'thres': cli.NUMBER,
    'as_norm': cli.at_least(0)}


def perform_verification(model, embeddings: dict, test_filename: str, checkpoint: dict,
                         device) -> float:
    """The cosine score of the test utterance against the claimed speaker's enrollment
    (AS-normalised when as_norm), compared with thres; prints the slides' result."""
    _, enrolled = select_speakers(embeddings, [enroll_speaker], embedding_dir)  # (1, E)
    test_embedding = get_embeddings(model, test_filename, test_frames, device)  # (1, E)
    scores = cosine_scores(test_embedding, enrolled)                             # (1, 1)
    if as_norm:
        cohort = score_cohort(checkpoint, as_norm, log_dir)
        scores = as_norm_matrix(scores, test_embedding, enrolled, cohort, as_norm)
    score = float(scores[0, 0])
    print('\n=== Speaker verification ===')
    print(f'Claimed speaker : {enroll_speaker}\nTrue speaker : {test_speaker}\n\n'
          f'Result : {verify(score, thres)}\n')
    print(f'Score : {score:0.4f}\nThreshold : {thres}\n')
    return score


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    if not as_norm and not -1 <= thres <= 1:
        raise cli.SetupError(f'--thres {thres}: a cosine score lies from -1 to 1, so give a '
                             'threshold in that range (any number with --as_norm)')
    device = select_device(use_cuda)
    test_path = find_test_file(test_dir, test_speaker)
    model, checkpoint = load_model(log_dir, cp_num, device)
    embeddings = load_enroll_embeddings(embedding_dir, checkpoint)
    if checkpoint.get(WHITENING_KEY) and not as_norm:
        print('note: this model is whitened (tools/whitening.py): its scores are lower than the '
              "plain model's, so choose thres anew (evaluate.py prints the EER threshold)")
    perform_verification(model, embeddings, test_path, checkpoint, device)


if __name__ == '__main__':
    cli.run(main)

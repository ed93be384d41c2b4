"""Speaker verification: is this utterance from the speaker it claims to be?

Scores ``<test_dir>/<test_speaker>/test.p`` against the enrolled ``enroll_speaker`` by cosine
similarity: Accept when the score is above ``thres``, else Reject. ``thres = 0`` lets the model
decide: a model calibrated by tools/calibrate.py turns the score and both sides' seconds of
speech into a log-likelihood ratio (LLR) and accepts above the Bayes threshold of ``p_target``
(and the costs c_miss, c_fa); a model without calibration uses its own stored threshold (its
EER threshold, stored with it by evaluate.py --store_threshold).
    python verification.py --enroll_speaker X --test_speaker Y --thres 0.8
Recordings (the real-speech model and its enrollments, unless you choose log_dir or
embedding_dir; dvector/recordings.py): a wav against a speaker enrolled with enroll.py
--enroll_wav, or two wav files compared directly:
    python verification.py --enroll_speaker me --test_wav me_again.wav
    python verification.py --enroll_wav a.wav --test_wav b.wav
``--as_norm 50`` AS-normalises the score against the training speakers that
tools/whitening.py stored in the checkpoint; ``thres`` is then on that scale (evaluate.py
--as_norm 50 prints its EER threshold).
"""
import os

import configure as c
from dvector import cli
from dvector.calibration import (
    DEFAULT_C_FA,
    DEFAULT_C_MISS,
    DEFAULT_P_TARGET,
    check_operating_point,
    decide,
    posterior,
)
from dvector.checkpoint import WHITENING_KEY, load_model, score_cohort, select_device
from dvector.enrollment import (
    enrolled_seconds,
    find_test_file,
    load_enroll_embeddings,
    select_speakers,
)
from dvector.recordings import (
    check_extraction_settings,
    check_unused,
    check_wav_input,
    embed_test_with_seconds,
    is_recording,
    model_folders,
    print_warnings,
)
from dvector.scoring import as_norm_matrix, cosine_scores
from dvector.threshold import model_threshold

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints (wav input:
                                     # model_real unless you set log_dir)
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py (wav input:
                                     # enroll_embeddings_real unless you set embedding_dir)
enroll_speaker = 'demo_m47'          # the claimed identity (an enrolled speaker)
test_speaker = 'demo_m47'            # whose test.p makes the claim
thres = 0.0                          # accept when the score is above this; 0 = the model's own
                                     # threshold (also with as_norm: give 1e-9 for zero). The
                                     # class used 0.95: a threshold belongs to its model
as_norm = 0                          # AS-norm the score with the top as_norm cohort scores
                                     # (tools/whitening.py's); 0 = plain cosine
p_target = DEFAULT_P_TARGET          # a calibrated model's operating point: how likely the
                                     # claim is true before the score (0.5: as likely as not)
c_miss = DEFAULT_C_MISS              # the cost of rejecting the true speaker ...
c_fa = DEFAULT_C_FA                  # ... and of accepting another (equal by default)
# wav input (your own recordings): used instead of test_dir when test_wav is given
test_wav = ''                        # the wav file that makes the claim
enroll_wav = ''                      # compare test_wav with this wav file (no enrollment)
vad = True                           # cut leading, trailing and long silences first
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.FOLDER, 'cp_num': cli.at_least(0),
    'test_frames': cli.PIECE_FRAMES, 'test_dir': cli.FOLDER, 'embedding_dir': cli.FOLDER,
    'enroll_speaker': cli.NAME, 'test_speaker': cli.NAME, 'thres': cli.NUMBER,
    'as_norm': cli.at_least(0), 'test_wav': cli.TEXT, 'enroll_wav': cli.TEXT, 'vad': cli.FLAG,
    'p_target': cli.Rule(lambda p: cli.is_number(p) and 0 < p < 1, 'a number > 0 and < 1'),
    'c_miss': cli.above(0, 1e9), 'c_fa': cli.above(0, 1e9)}


def perform_verification(model, enrolled: tuple, test_filename: str, checkpoint: dict,
                         device) -> float:
    """The cosine score of the test utterance against the claimed speaker's enrollment
    ((1, E), seconds of speech or None), AS-normalised when as_norm, and the decision
    (dvector/calibration.decide); prints the slides' result, the LLR and what the threshold
    rests on."""
    test_embedding, test_seconds = embed_test_with_seconds(model, test_filename, test_frames,
                                                           device, vad)              # (1, E)
    scores = cosine_scores(test_embedding, enrolled[0])                               # (1, 1)
    if as_norm:
        cohort = score_cohort(checkpoint, as_norm, checkpoint.get('path', log_dir))
        scores = as_norm_matrix(scores, test_embedding, enrolled[0], cohort, as_norm)
    score = float(scores[0, 0])
    point = check_operating_point(p_target, c_miss, c_fa)
    decision = decide(score, checkpoint, (enrolled[1], test_seconds), thres, point, as_norm)
    claimed = enroll_wav or enroll_speaker
    true_spk = test_wav or test_speaker
    print('\n=== Speaker verification ===')
    print(f'Claimed speaker : {claimed}\nTrue speaker : {true_spk}\n\n'
          f'Result : {"Accept" if decision.accept else "Reject"}\n')
    print(f'Score : {score:0.4f}')
    if decision.llr is not None:
        print(f'LLR : {decision.llr:.2f} ({decision.meaning}; at p_target {p_target:g}, '
              f'{100 * posterior(decision.llr, p_target):.1f} % that it is {claimed})')
    print(f'Threshold : {decision.threshold:0.4f} on the score: {decision.basis}\n'
          if decision.llr is not None and thres == 0 else f'Threshold : {decision.basis}\n')
    return score


def claimed_enrollment(model, checkpoint: dict, folder: str, device) -> tuple:
    """((1, E) d-vector, seconds of speech or None if not recorded): the speaker enrolled in
    ``folder``, or enroll_wav's own."""
    if enroll_wav:
        return embed_test_with_seconds(model, enroll_wav, test_frames, device, vad)
    embeddings = load_enroll_embeddings(folder, checkpoint)
    return (select_speakers(embeddings, [enroll_speaker], folder)[1],        # (1, E)
            enrolled_seconds(folder).get(enroll_speaker))


def check_inputs() -> str:
    """Before any work: the settings that go together, and the test file; returns its path."""
    if not as_norm and not -1 <= thres <= 1:
        raise cli.SetupError(f'--thres {thres}: a cosine score lies from -1 to 1, so give a '
                             'threshold in that range (any number with --as_norm)')
    if enroll_wav and not test_wav:
        raise cli.SetupError(f'--enroll_wav {enroll_wav}: give --test_wav too, the file to '
                             'compare it with')
    check_unused(globals(), 'test_wav', ('test_dir', 'test_speaker'))
    check_unused(globals(), 'enroll_wav', ('enroll_speaker',))
    if enroll_wav and is_recording(enroll_wav) != is_recording(test_wav):
        raise cli.SetupError(f'--enroll_wav {enroll_wav}, --test_wav {test_wav}: one is a '
                             'feature file (.p), the other a recording; give two of a kind')
    if enroll_wav and os.path.isfile(enroll_wav) and os.path.isfile(test_wav) \
            and os.path.samefile(enroll_wav, test_wav):  # a score of 1 by construction
        raise cli.SetupError(f'--enroll_wav {enroll_wav}, --test_wav {test_wav}: one file; '
                             'compare two recordings')
    for setting, path in (('test_wav', test_wav), ('enroll_wav', enroll_wav)):
        if path:
            check_wav_input(setting, path, vad)
    return test_wav or find_test_file(test_dir, test_speaker)


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    test_path = check_inputs()
    wav_input = is_recording(test_path)  # a .p given as test_wav is read as a feature file
    model_dir, enrolled_dir = model_folders(globals(), wav_input)
    device = select_device(use_cuda)
    model, checkpoint = load_model(model_dir, cp_num, device)
    if wav_input:
        check_extraction_settings(checkpoint)
    if thres == 0:  # the model's own decision: an AS-norm scoring without one is refused now
        decide(0.0, checkpoint, (1.0, 1.0), 0.0, check_operating_point(p_target, c_miss, c_fa),
               as_norm)
    enrolled = claimed_enrollment(model, checkpoint, enrolled_dir, device)
    own = thres == 0 and model_threshold(checkpoint) is not None
    if checkpoint.get(WHITENING_KEY) and not as_norm and not own:
        print('note: this model is whitened (tools/whitening.py): its scores are lower than the '
              "plain model's, so choose thres anew (evaluate.py prints the EER threshold)")
    perform_verification(model, enrolled, test_path, checkpoint, device)
    print_warnings([enroll_wav, test_path])  # the recordings' quality (dvector/quality.py)


if __name__ == '__main__':
    cli.run(main)

"""Speaker identification: whose voice is this, among the enrolled speakers?

Embeds ``<test_dir>/<test_speaker>/test.p`` and picks the enrolled speaker with the highest
cosine similarity. Try another speaker: python identification.py --test_speaker X
Open set: with a model calibrated by tools/calibrate.py (or with a stored threshold) the answer
is "none of the enrolled speakers" when even the best speaker's LLR is below the default
operating point's threshold (its score below the stored threshold); a model with neither (the
demo model) always names the closest speaker, as the tutorial did.
A recording, against the speakers enrolled with enroll.py --enroll_wav (the real-speech model
and its enrollments, unless you choose log_dir or embedding_dir; dvector/recordings.py):
    python identification.py --test_wav me_again.wav
"""
import os
import sys
import unicodedata

import configure as c
from dvector import cli
from dvector.calibration import (
    DEFAULT_C_FA,
    DEFAULT_C_MISS,
    DEFAULT_P_TARGET,
    DEFAULT_POINT,
    check_operating_point,
    identify,
    llr_words,
    point_text,
)
from dvector.checkpoint import load_model, select_device
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
from dvector.scoring import cosine_scores

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints (wav input:
                                     # model_real unless you set log_dir)
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py (wav input:
                                     # enroll_embeddings_real unless you set embedding_dir)
spk_list = []                        # enrolled speakers to choose from; empty = all of them
test_speaker = 'demo_m47'            # whose test.p to identify (edit to try another)
# wav input (your own recordings): used instead of test_dir when test_wav is given
test_wav = ''                        # the wav file to identify
vad = True                           # cut leading, trailing and long silences first
# a calibrated model's operating point (as verification.py's): below its Bayes threshold even
# the best match is taken for none of the enrolled speakers
p_target = DEFAULT_P_TARGET          # how likely the test is an enrolled speaker, before the score
c_miss = DEFAULT_C_MISS              # the cost of answering none for an enrolled speaker ...
c_fa = DEFAULT_C_FA                  # ... and of naming one for someone else (equal by default)
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.FOLDER, 'cp_num': cli.at_least(0),
    'test_frames': cli.PIECE_FRAMES, 'test_dir': cli.FOLDER, 'embedding_dir': cli.FOLDER,
    'spk_list': cli.NAMES, 'test_speaker': cli.NAME, 'test_wav': cli.TEXT, 'vad': cli.FLAG,
    'p_target': cli.Rule(lambda p: cli.is_number(p) and 0 < p < 1, 'a number > 0 and < 1'),
    'c_miss': cli.above(0, 1e9), 'c_fa': cli.above(0, 1e9)}


NONE = 'none of the enrolled speakers'


def report_decision(decision, best_spk: str) -> None:
    """What the open-set answer rests on: the best speaker's score, LLR and threshold."""
    print(f'Best match : {best_spk}\nScore : {decision.score:.4f}')
    if decision.llr is not None:
        print(f'LLR : {decision.llr:.2f} ({llr_words(decision.llr, best_spk)})')
    print(f'Threshold : {decision.basis}')
    if not decision.accept:
        print('note: even the best match is below the threshold: the voice is likely none of '
              'the enrolled speakers')


def warn_of_ties(scores: list, speakers: list, best: str) -> None:
    """A warning when other speakers score what the best one scores: the answer among them is
    arbitrary (the same recordings enrolled under two names, or a model that cannot tell them
    apart)."""
    top = scores[speakers.index(best)]
    tied = [s for s, v in zip(speakers, scores) if s != best and abs(v - top) < 1e-6]
    if tied:
        print(f'warning: {", ".join(tied)} score{"s" if len(tied) == 1 else ""} the same as '
              f'{best} ({top:.4f}): the answer between them is arbitrary (enrolled from the '
              'same recordings?)', file=sys.stderr)


def perform_identification(model, embeddings: dict, test_filename: str, device,
                           embedding_dir: str = embedding_dir, checkpoint: dict = None) -> str:
    """The enrolled speaker (of spk_list) whose d-vector is closest to the test utterance's,
    or NONE when the model's threshold rejects even that one (dvector/calibration.identify);
    prints the slides' result (and what the answer rests on)."""
    test_embedding, test_seconds = embed_test_with_seconds(model, test_filename, test_frames,
                                                           device, vad)              # (1, E)
    speakers, enrolled = select_speakers(embeddings, spk_list, embedding_dir)        # (N, E)
    scores = cosine_scores(test_embedding, enrolled)[0]                               # (N,)
    point = check_operating_point(p_target, c_miss, c_fa)
    best, decision = identify(scores.tolist(), speakers, checkpoint or {},
                              (test_seconds, enrolled_seconds(embedding_dir)), point)
    best_spk = best if decision is None or decision.accept else NONE
    warn_of_ties(scores.tolist(), speakers, best)
    true_spk = unicodedata.normalize('NFC', os.path.basename(os.path.dirname(
        os.path.abspath(test_filename))))  # as enroll.py names speakers (recordings.py)
    features = not is_recording(test_filename)
    print('\n=== Speaker identification ===')
    if features or true_spk in speakers:
        print(f'True speaker : {true_spk}\nPredicted speaker : {best_spk}\n'
              f'Result : {true_spk == best_spk}\n')
    else:  # a recording outside a speaker folder: no truth to compare with
        print(f'Test file : {test_filename}\nPredicted speaker : {best_spk}\n')
    if true_spk not in speakers and features:
        print(f'note: {true_spk} is not among the enrolled speakers, so the result '
              'cannot be True')
    # the tutorial's feature files keep its output unless the answer is the open set's
    if decision is not None and (not features or not decision.accept):
        report_decision(decision, best)
    elif point != DEFAULT_POINT and (decision is None or decision.llr is None):
        print(f'note: {point_text(point)} not used: this model has no calibration '
              '(tools/calibrate.py fits one)')
    return best_spk


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    device = select_device(use_cuda)
    check_unused(globals(), 'test_wav', ('test_dir', 'test_speaker'))
    if test_wav:
        check_wav_input('test_wav', test_wav, vad)
    test_path = test_wav or find_test_file(test_dir, test_speaker)
    wav_input = is_recording(test_path)  # a .p given as test_wav is read as a feature file
    model_dir, enrolled_dir = model_folders(globals(), wav_input)
    model, checkpoint = load_model(model_dir, cp_num, device)
    embeddings = load_enroll_embeddings(enrolled_dir, checkpoint)
    if wav_input:
        check_extraction_settings(checkpoint)
    perform_identification(model, embeddings, test_path, device, enrolled_dir, checkpoint)
    print_warnings([test_path])  # the recording's quality (dvector/quality.py)


if __name__ == '__main__':
    cli.run(main)

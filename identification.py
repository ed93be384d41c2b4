"""Speaker identification: whose voice is this, among the enrolled speakers?

Embeds ``<test_dir>/<test_speaker>/test.p`` and picks the enrolled speaker with the highest
cosine similarity. Try another speaker: python identification.py --test_speaker X
A recording (enrolled with enroll.py --enroll_wav; the real-speech model):
    python identification.py --test_wav me_again.wav
"""
import os

import configure as c
from dvector import cli
from dvector.checkpoint import load_model, select_device
from dvector.enrollment import find_test_file, load_enroll_embeddings, select_speakers
from dvector.recordings import REAL_MODEL_DIR, check_extraction_settings, check_wav_input, \
    embed_test_file, note_wav_model
from dvector.scoring import cosine_scores
from dvector.threshold import describe, model_threshold

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py
spk_list = []                        # enrolled speakers to choose from; empty = all of them
test_speaker = 'demo_m47'            # whose test.p to identify (edit to try another)
# wav input (your own recordings): used instead of test_dir when test_wav is given
test_wav = ''                        # the wav file to identify
vad = True                           # cut leading, trailing and long silences first
wav_log_dir = REAL_MODEL_DIR         # the model for wav input (trained on real speech)
wav_embedding_dir = 'enroll_embeddings_real'  # written by enroll.py --enroll_wav
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.NAME, 'cp_num': cli.at_least(0),
    'test_frames': cli.at_least(0), 'test_dir': cli.NAME, 'embedding_dir': cli.NAME,
    'spk_list': cli.NAMES, 'test_speaker': cli.NAME, 'test_wav': cli.TEXT, 'vad': cli.FLAG,
    'wav_log_dir': cli.NAME, 'wav_embedding_dir': cli.NAME}


def report_score(checkpoint: dict, best_score: float) -> None:
    """For recordings: the winner's score against the model's threshold (open set: the voice
    may be nobody enrolled)."""
    record = model_threshold(checkpoint)
    print(f'Score : {best_score:.4f}')
    if record is not None:
        print(f'Threshold : {describe(record)}')
        if best_score <= record['threshold']:
            print('note: the score is not above the threshold: the voice may be none of the '
                  'enrolled speakers')


def perform_identification(model, embeddings: dict, test_filename: str, device,
                           embedding_dir: str = embedding_dir, checkpoint: dict = None) -> str:
    """The enrolled speaker (of spk_list) whose d-vector is closest, by cosine similarity, to
    the test utterance's; prints the slides' result (and for a recording, the score)."""
    test_embedding = embed_test_file(model, test_filename, test_frames, device, vad)  # (1, E)
    speakers, enrolled = select_speakers(embeddings, spk_list, embedding_dir)        # (N, E)
    scores = cosine_scores(test_embedding, enrolled)[0]                               # (N,)
    best_spk = speakers[int(scores.argmax())]
    true_spk = os.path.basename(os.path.dirname(os.path.abspath(test_filename)))
    print('\n=== Speaker identification ===')
    if test_filename.endswith('.p') or true_spk in speakers:
        print(f'True speaker : {true_spk}\nPredicted speaker : {best_spk}\n'
              f'Result : {true_spk == best_spk}\n')
    else:  # a recording outside a speaker folder: no truth to compare with
        print(f'Test file : {test_filename}\nPredicted speaker : {best_spk}\n')
    if true_spk not in speakers and test_filename.endswith('.p'):
        print(f'note: {true_spk} is not among the enrolled speakers, so the result '
              'cannot be True')
    if not test_filename.endswith('.p'):
        report_score(checkpoint or {}, float(scores.max()))
    return best_spk


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    device = select_device(use_cuda)
    test_path = test_wav or find_test_file(test_dir, test_speaker)
    model_dir, enrolled_dir = (wav_log_dir, wav_embedding_dir) if test_wav else (log_dir,
                                                                               embedding_dir)
    if test_wav:
        check_wav_input('test_wav', test_wav)
        note_wav_model(log_dir, wav_log_dir)
    model, checkpoint = load_model(model_dir, cp_num, device)
    embeddings = load_enroll_embeddings(enrolled_dir, checkpoint)
    if test_wav:
        check_extraction_settings(checkpoint)
    perform_identification(model, embeddings, test_path, device, enrolled_dir, checkpoint)


if __name__ == '__main__':
    cli.run(main)

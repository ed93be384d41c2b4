"""Speaker identification: whose voice is this, among the enrolled speakers?

Embeds ``<test_dir>/<test_speaker>/test.p`` and picks the enrolled speaker with the highest
cosine similarity. Try another speaker: python identification.py --test_speaker X
"""
import os

import configure as c
from dvector import cli
from dvector.checkpoint import load_model, select_device
from dvector.embedding import get_embeddings
from dvector.enrollment import find_test_file, load_enroll_embeddings, select_speakers
from dvector.scoring import cosine_scores

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py
spk_list = []                        # enrolled speakers to choose from; empty = all of them
test_speaker = 'demo_m47'            # whose test.p to identify (edit to try another)
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.NAME, 'cp_num': cli.at_least(0),
    'test_frames': cli.at_least(0), 'test_dir': cli.NAME, 'embedding_dir': cli.NAME,
    'spk_list': cli.NAMES, 'test_speaker': cli.NAME}


def perform_identification(model, embeddings: dict, test_filename: str, device) -> str:
    """The enrolled speaker (of spk_list) whose d-vector is closest, by cosine similarity, to
    the test utterance's; prints the slides' result."""
    test_embedding = get_embeddings(model, test_filename, test_frames, device)  # (1, E)
    speakers, enrolled = select_speakers(embeddings, spk_list, embedding_dir)   # (N, E)
    scores = cosine_scores(test_embedding, enrolled)[0]                          # (N,)
    best_spk = speakers[int(scores.argmax())]
    true_spk = os.path.basename(os.path.dirname(test_filename))
    print('\n=== Speaker identification ===')
    print(f'True speaker : {true_spk}\nPredicted speaker : {best_spk}\n'
          f'Result : {true_spk == best_spk}\n')
    if true_spk not in speakers:
        print(f'note: {true_spk} is not among the enrolled speakers, so the result '
              'cannot be True')
    return best_spk


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    device = select_device(use_cuda)
    test_path = find_test_file(test_dir, test_speaker)
    model, checkpoint = load_model(log_dir, cp_num, device)
    embeddings = load_enroll_embeddings(embedding_dir, checkpoint)
    perform_identification(model, embeddings, test_path, device)


if __name__ == '__main__':
    cli.run(main)

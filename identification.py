"""Speaker identification: whose voice is this, among the enrolled speakers?

Embeds ``<test_feat_dir>/<test_speaker>/test.p`` and picks the enrolled speaker with the
highest cosine similarity. Try another speaker: python identification.py --test_speaker X
"""
import cli
import configure as c
from checkpoint import load_model, select_device
from embedding import embed_files
from enrollment import check_enrolled_with, find_test_file, load_enrollments
from scoring import cosine_scores

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
test_frames = 100                    # frames per piece when embedding the test utterance
test_feat_dir = c.TEST_FEAT_DIR      # <dir>/<speaker>/test.p
embedding_dir = 'enroll_embeddings'  # written by enroll.py
spk_list = []                        # enrolled speakers to choose from; empty = all of them
test_speaker = 'demo_m47'            # whose test.p to identify (edit to try another)
# ------------------------------------------------------------------------------------------


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    device = select_device(use_cuda)
    speakers, enrolled = load_enrollments(embedding_dir, spk_list)
    path = find_test_file(test_feat_dir, test_speaker)
    model, checkpoint = load_model(log_dir, cp_num, device)
    check_enrolled_with(embedding_dir, checkpoint)
    scores = cosine_scores(embed_files(model, [path], test_frames, device), enrolled)[0]
    predicted = speakers[int(scores.argmax())]
    print('\n=== Speaker identification ===')
    print(f'True speaker : {test_speaker}\nPredicted speaker : {predicted}\n'
          f'Result : {predicted == test_speaker}\n')
    if test_speaker not in speakers:
        print(f'note: {test_speaker} is not among the enrolled speakers, so the result '
              'cannot be True')


if __name__ == '__main__':
    cli.run(main)

"""Enrollment: embed each test speaker's ``enroll.p`` and save it as ``<speaker>.pth``.

The model's sizes (embedding_size, n_classes) and backbone come from the checkpoint.
    python enroll.py --cp_num 24 --test_dir data/tutorial_db/feat_logfbank_nfilt40/test
Recordings (wav files, any rate and channels; silences cut) enroll with the real-speech model
into their own folder, added to the speakers enrolled there:
    python enroll.py --enroll_wav my_recordings/me        # a folder of one speaker's wavs
    python enroll.py --enroll_wav me.wav --speaker me     # one wav file
"""
import os

import configure as c
from dvector import cli
from dvector.checkpoint import load_model, select_device
from dvector.embedding import get_embeddings
from dvector.enrollment import enrolled_with, save_enrollment_set, split_enroll_and_test
from dvector.fileio import check_writable_dir
from dvector.recordings import REAL_MODEL_DIR, check_extraction_settings, embed_wavs, \
    note_wav_model, speakers_and_wavs

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
                                     # (the class used 24, the epoch its own run chose)
test_frames = 200                    # frames per piece when embedding an utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/enroll.p (and test.p)
embedding_dir = 'enroll_embeddings'  # where the enrolled speakers are saved
# wav input (your own recordings): used instead of test_dir when enroll_wav is given
enroll_wav = ''                      # a wav file, a folder of one speaker's wav files, or a
                                     # folder of speaker folders
speaker = ''                         # the name to enroll one file or folder as ('' = its name)
wav_pattern = '*.wav'                # the files of each folder to enroll (e.g. enroll.wav)
vad = True                           # cut leading, trailing and long silences first
wav_log_dir = REAL_MODEL_DIR         # the model for wav input (trained on real speech)
wav_embedding_dir = 'enroll_embeddings_real'  # wav enrollments, added to those already there
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.NAME, 'cp_num': cli.at_least(0),
    'test_frames': cli.at_least(0), 'test_dir': cli.NAME, 'embedding_dir': cli.NAME,
    'enroll_wav': cli.TEXT, 'speaker': cli.TEXT, 'wav_pattern': cli.NAME, 'vad': cli.FLAG,
    'wav_log_dir': cli.NAME, 'wav_embedding_dir': cli.NAME}


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


def enroll_recordings(model, speaker_wavs: dict, embedding_dir: str, checkpoint: dict,
                      device) -> dict:
    """Each speaker's wav files embedded and summed ({speaker: (1, E)}), added to the speakers
    this model enrolled in embedding_dir before (one of the same name is replaced)."""
    embeddings = enrolled_with(embedding_dir, checkpoint)
    print('Start to aggregate all the d-vectors per enroll speaker')
    for spk, files in speaker_wavs.items():
        if spk in embeddings:
            print(f'note: {spk} was enrolled before; these files replace that enrollment')
        activations = embed_wavs(model, files, device, vad, test_frames)  # (n_files, E)
        embeddings[spk] = activations.sum(dim=0, keepdim=True)              # (1, E)
        print(f'Aggregates the activation (spk : {spk}, {len(files)} wav file'
              f'{"s" if len(files) > 1 else ""})')
    save_enrollment_set(embeddings, embedding_dir, checkpoint)
    print(f"{len(embeddings)} speaker{'s' if len(embeddings) != 1 else ''} enrolled in "
          f"{embedding_dir}: " + ", ".join(sorted(embeddings)))
    return embeddings


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    model_dir, out_dir = (wav_log_dir, wav_embedding_dir) if enroll_wav else (log_dir,
                                                                            embedding_dir)
    setting = 'wav_embedding_dir' if enroll_wav else 'embedding_dir'
    check_writable_dir(out_dir, setting)
    if os.path.abspath(out_dir) == os.path.abspath(model_dir):
        raise cli.SetupError(f'--{setting} {out_dir}: is where the model\'s checkpoints are; '
                             'give the enrollments a folder of their own')
    if speaker and not enroll_wav:
        raise cli.SetupError(f'--speaker {speaker}: names the speaker of --enroll_wav; give one')
    device = select_device(use_cuda)
    if enroll_wav:
        note_wav_model(log_dir, wav_log_dir)
        speaker_wavs = speakers_and_wavs(enroll_wav, wav_pattern, speaker)  # before the model
        model, checkpoint = load_model(model_dir, cp_num, device)
        check_extraction_settings(checkpoint)
        enroll_recordings(model, speaker_wavs, out_dir, checkpoint, device)
        return
    enroll_DB, _ = split_enroll_and_test(test_dir)
    model, checkpoint = load_model(log_dir, cp_num, device)
    enroll_per_spk(model, enroll_DB, embedding_dir, checkpoint, device)


if __name__ == '__main__':
    cli.run(main)

"""Enrollment: embed each test speaker's ``enroll.p`` and save it as ``<speaker>.pth``.

The model's sizes (embedding_size, n_classes) and backbone come from the checkpoint.
    python enroll.py --cp_num 24 --test_dir data/tutorial_db/feat_logfbank_nfilt40/test
Recordings (wav files, any rate and channels; silences cut) enroll with the real-speech model
(model_real) into enroll_embeddings_real, added to the speakers enrolled there, unless you
choose log_dir or embedding_dir yourself (dvector/recordings.py: model_folders). One run at a
time writes a folder: a second one waits for it, then adds to its set.
    python enroll.py --enroll_wav my_recordings/me        # a folder of one speaker's wavs
    python enroll.py --enroll_wav me.wav --speaker me     # one wav file
"""
import os

import configure as c
from dvector import cli
from dvector.checkpoint import load_model, select_device
from dvector.enrollment import (
    check_enrollment_dir,
    check_enrollment_plan,
    save_enrollment_set,
    some,
    speakers_word,
    split_enroll_and_test,
)
from dvector.fileio import check_writable_dir
from dvector.recordings import (
    check_enrollment,
    check_extraction_settings,
    check_unused,
    embed_test_with_seconds,
    embed_wavs_with_seconds,
    model_folders,
    print_warnings,
    speakers_and_wavs,
)

# ---- settings ---------------------------------------------------------------------------
use_cuda = True                      # use the GPU when there is one (else the CPU)
log_dir = 'model_saved'              # where train.py saved its checkpoints (wav input:
                                     # model_real unless you set log_dir)
cp_num = 0                           # checkpoint epoch to load; 0 = lowest validation loss
                                     # (the class used 24, the epoch its own run chose)
test_frames = 200                    # frames per piece when embedding an utterance
test_dir = c.TEST_FEAT_DIR           # <dir>/<speaker>/enroll.p (and test.p)
embedding_dir = 'enroll_embeddings'  # where the enrolled speakers are saved (wav input:
                                     # enroll_embeddings_real unless you set embedding_dir)
# wav input (your own recordings): used instead of test_dir when enroll_wav is given
enroll_wav = ''                      # a wav file, a folder of one speaker's wav files, or a
                                     # folder of speaker folders
speaker = ''                         # the name to enroll one file or folder as ('' = its name)
wav_pattern = '*.wav'                # the files of each folder to enroll (e.g. enroll.wav)
vad = True                           # cut leading, trailing and long silences first
start_anew = False                   # True: the folder's set is replaced by this run's speakers
                                     # (False: this model's speakers there are kept, and a set
                                     # of another model's is replaced only if none is lost)
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'use_cuda': cli.FLAG, 'log_dir': cli.FOLDER, 'cp_num': cli.at_least(0),
    'test_frames': cli.PIECE_FRAMES, 'test_dir': cli.FOLDER, 'embedding_dir': cli.FOLDER,
    'enroll_wav': cli.TEXT, 'speaker': cli.TEXT, 'wav_pattern': cli.NAME, 'vad': cli.FLAG,
    'start_anew': cli.FLAG}


def save_and_say(embeddings: dict, embedding_dir: str, checkpoint: dict,
                 seconds: dict = None) -> dict:
    """Save the run's speakers (and their seconds of speech, which a calibrated model's LLR
    depends on) into embedding_dir's set; say which speakers it now holds."""
    enrolled = save_enrollment_set(embeddings, embedding_dir, checkpoint, seconds,
                                   start_anew=start_anew)
    print(f'{speakers_word(len(enrolled))} enrolled in {embedding_dir}: '
          + some(enrolled, shown=10))
    return enrolled


def enroll_per_spk(model, enroll_DB, embedding_dir: str, checkpoint: dict, device) -> dict:
    """Each enrollment file's d-vector, summed per speaker ({speaker: (1, E)}), saved into
    embedding_dir's set (this model's other speakers there are kept; see start_anew); returns
    the set now there."""
    if enroll_DB.empty:
        raise cli.SetupError(f'{test_dir}: no enrollment files (enroll.p) to enroll')
    print('Start to aggregate all the d-vectors per enroll speaker')
    embeddings, seconds = {}, {}
    for filename, spk in zip(enroll_DB['filename'], enroll_DB['speaker_id']):
        activation, length = embed_test_with_seconds(model, filename, test_frames,
                                                     device)  # (1, E)
        embeddings[spk] = embeddings.get(spk, 0) + activation
        seconds[spk] = seconds.get(spk, 0.0) + length
        print(f'Aggregates the activation (spk : {spk})')
    return save_and_say(embeddings, embedding_dir, checkpoint, seconds)


def enroll_recordings(model, speaker_wavs: dict, embedding_dir: str, checkpoint: dict,
                      device) -> dict:
    """Each speaker's wav files embedded and summed ({speaker: (1, E)}), added to the speakers
    this model enrolled in embedding_dir before (one of the same name is replaced); returns the
    set now there."""
    embeddings, seconds = {}, {}
    print('Start to aggregate all the d-vectors per enroll speaker')
    for spk, files in speaker_wavs.items():
        activations, lengths = embed_wavs_with_seconds(model, files, device, vad,
                                                       test_frames)      # (n_files, E)
        embeddings[spk] = activations.sum(dim=0, keepdim=True)           # (1, E)
        seconds[spk] = sum(lengths)
        print(f'Aggregates the activation (spk : {spk}, {len(files)} wav file'
              f'{"s" if len(files) > 1 else ""})')
    return save_and_say(embeddings, embedding_dir, checkpoint, seconds)


def check_folders(model_dir: str, out_dir: str) -> None:
    """Before any work: the enrollment folder can be written, holds only an enrollment set, and
    is not the model's own folder."""
    check_writable_dir(out_dir, 'embedding_dir')
    check_enrollment_dir(out_dir, 'embedding_dir')
    if os.path.abspath(out_dir) == os.path.abspath(model_dir):
        raise cli.SetupError(f'--embedding_dir {out_dir}: is where the model\'s checkpoints '
                             'are; give the enrollments a folder of their own')
    if speaker and not enroll_wav:
        raise cli.SetupError(f'--speaker {speaker}: names the speaker of --enroll_wav; give one')


def enroll_wav_input(model_dir: str, out_dir: str, device) -> None:
    """enroll_wav's speakers: their files found and checked for speech before the model is
    loaded, then embedded and added to out_dir's set."""
    speaker_wavs = speakers_and_wavs(enroll_wav, wav_pattern, speaker)
    files = [path for paths in speaker_wavs.values() for path in paths]
    check_enrollment(files)  # enough speech in each file, before the model
    model, checkpoint = load_model(model_dir, cp_num, device)
    check_extraction_settings(checkpoint)
    check_enrollment_plan(out_dir, checkpoint, list(speaker_wavs), start_anew)  # before work
    enroll_recordings(model, speaker_wavs, out_dir, checkpoint, device)
    print_warnings(files)


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_unused(globals(), 'enroll_wav', ('test_dir',))
    model_dir, out_dir = model_folders(globals(), wav_input=bool(enroll_wav))
    check_folders(model_dir, out_dir)
    device = select_device(use_cuda)
    if enroll_wav:
        enroll_wav_input(model_dir, out_dir, device)
        return
    enroll_DB, _ = split_enroll_and_test(test_dir)
    model, checkpoint = load_model(model_dir, cp_num, device)
    check_enrollment_plan(out_dir, checkpoint, list(enroll_DB['speaker_id']), start_anew)
    enroll_per_spk(model, enroll_DB, out_dir, checkpoint, device)


if __name__ == '__main__':
    cli.run(main)

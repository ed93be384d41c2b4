"""Build the bundled demo DB from synthetic (espeak-ng) speech, in the tutorial DB's layout.

The real tutorial DB (ETRI Korean read speech) cannot be redistributed, so the repository ships
a small stand-in that this script regenerates, deterministically, from a fixed seed:

    feat_logfbank_nfilt40/train/<speaker>/<speaker>_uNN.p   training speakers, short sentences
    feat_logfbank_nfilt40/test/<speaker>/{enroll,test}.p    other speakers, ~15 s each
    test_wavs/<speaker>/{enroll,test}.wav                   the same, as 16 kHz 16-bit wavs

A speaker is a fixed espeak-ng voice (language, voice variant, base pitch, pitch range, speed)
plus a fixed sox equaliser colouring; each utterance varies pitch, speed and gain a little and
gets light white or pink noise. Speaker IDs (demo_f01, demo_m02, ...) cannot be mistaken for
the real DB's. Needs espeak-ng and sox (apt-get install espeak-ng sox); same espeak-ng version
and seed give byte-identical files.
"""
import os
import shutil
import subprocess
import sys
import time
from multiprocessing import Pool
from typing import Iterator, List, Optional

import numpy as np
from scipy.io import wavfile
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository
import configure as c
from DB_wav_reader import pcm_to_float, read_audio
from dvector import cli
from dvector.features import LEVEL_FILE, at_db_level, fast_logfbank, speech_level_db
from dvector.fileio import atomic_path, save_pickle

# ---- settings (override on the command line, e.g. --n_train_speakers 3) ----
out_dir = '.'                # the DB folders are written under this folder
n_train_speakers = 40        # training speakers: demo_f01/demo_m02 .. (f/m by voice gender;
                             # demo_f001 .. when there are over 99 speakers in all)
n_utts = 12                  # utterances per training speaker, each a different sentence
n_test_speakers = 10         # other speakers (numbered after the training ones): enroll + test
test_seconds = 15.0          # length of each enroll/test file
train_min_seconds = 2.0      # training utterance lengths are drawn uniformly from this range
train_max_seconds = 2.9      # (silence padding included; the reader trims 0.5 s at each end)
korean_share = 0.3           # fraction of speakers that are Korean voices reading Korean
snr_min_db = 25.0            # light background noise, SNR drawn per file from this range
snr_max_db = 35.0            # its upper end (dB)
speech_level = 0.0           # 0: each file's peak at -9 to -3 dB of full scale, as
                             # synthesised (the shipped demo DB); else the speech level in dB
                             # of full scale each file is set to, +-3 dB, e.g. -42 for the
                             # tutorial DB's (dvector.features.SPEECH_LEVEL_DB)
seed = 1234                  # all randomness comes from numpy Generators seeded with this
jobs = 2                     # parallel worker processes
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'out_dir': cli.FOLDER, 'n_train_speakers': cli.at_least(2), 'n_utts': cli.at_least(1),
    'n_test_speakers': cli.at_least(1), 'test_seconds': cli.above(0, 600),
    'train_min_seconds': cli.above(0, 600), 'train_max_seconds': cli.above(0, 600),
    'korean_share': cli.between(0, 1), 'snr_min_db': cli.between(-20, 120),
    'snr_max_db': cli.between(-20, 120), 'speech_level': cli.between(-80, 0),
    'seed': cli.between(0, 2 ** 32 - 1),
    'jobs': cli.at_least(1)}

SAMPLE_RATE = c.SAMPLE_RATE
MIN_PAD = 0.2                # seconds of silence kept at least at each end of a file
ENGLISH_ACCENTS = ['en-us', 'en', 'en-gb-x-rp', 'en-gb-scotland']
# espeak-ng voice variants by gender (robotic, whisper and joke variants left out)
FEMALE_VARIANTS = ['f1', 'f2', 'f3', 'f4', 'f5', 'Alicia', 'Annie', 'aunty', 'belinda',
                   'linda', 'steph', 'steph2', 'steph3', 'anika', 'grandma', 'Andrea']
MALE_VARIANTS = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'klatt', 'klatt2', 'klatt3',
                 'croak', 'adam', 'Alex', 'Andy', 'benjamin', 'boris', 'caleb', 'david',
                 'Denis', 'ed', 'edward', 'Gene', 'gustave', 'Hugo', 'iven', 'Jacky', 'john',
                 'Lee', 'max', 'Michael', 'Mike', 'norbert', 'paul', 'quincy', 'rob', 'robert',
                 'sandro', 'shelby', 'travis', 'victor', 'zac']

# ---- sentence material: a core clause plus optional parts, so that every prefix of the
# optional parts is still a sentence; a file picks the longest version that fits its length.
EN = {
    'subject': ['the teacher', 'my neighbour', 'the old farmer', 'a young doctor', 'the pilot',
                'our driver', 'the baker', 'her brother', 'the student', 'a tall man',
                'the nurse', 'his sister', 'the captain', 'a little girl', 'the manager',
                'my cousin', 'the painter', 'an old woman', 'the engineer', 'the waiter'],
    'verb': ['carried', 'found', 'painted', 'opened', 'bought', 'cleaned', 'dropped', 'moved',
             'fixed', 'sold', 'borrowed', 'wrapped', 'washed', 'checked', 'packed', 'lost',
             'noticed', 'brought', 'filled', 'returned'],
    'object': ['basket', 'letter', 'window', 'box', 'lamp', 'bicycle', 'bottle', 'map',
               'chair', 'jacket', 'ladder', 'kettle', 'camera', 'blanket', 'bucket', 'clock',
               'umbrella', 'suitcase', 'notebook', 'garden gate'],
    'adjective': ['red', 'heavy', 'small', 'broken', 'wooden', 'yellow', 'empty', 'old',
                  'new', 'green', 'shiny', 'dusty', 'large', 'blue', 'wet', 'strange'],
    'place': ['near the station', 'in the kitchen', 'behind the school', 'at the market',
              'by the river', 'on the top floor', 'outside the library', 'in the village',
              'next to the bank', 'across the street', 'in the small garden', 'at the harbour'],
    'time': ['yesterday', 'this morning', 'last winter', 'on sunday', 'after lunch',
             'every evening', 'before dawn', 'last night', 'at noon', 'on friday'],
    'manner': ['very slowly', 'quite carefully', 'without a word', 'in a hurry',
               'with great care', 'once again', 'for the first time', 'all by herself'],
}
KO = {
    'subject': ['철수', '영희', '민수', '지영', '선생님', '할머니', '동생', '아저씨', '학생들',
                '의사', '요리사', '친구', '사장님', '언니', '형', '아이들'],
    'object': ['사과', '책', '편지', '신문', '자전거', '우산', '김치', '커피', '사진', '가방',
               '의자', '빵', '꽃', '지도', '숙제', '모자', '시계', '창문'],
    'verb': ['샀어요', '읽었어요', '만들었어요', '보았어요', '찾았어요', '팔았어요',
             '빌렸어요', '고쳤어요', '닦았어요', '옮겼어요', '그렸어요', '챙겼어요'],
    'adjective': ['새', '작은', '큰', '오래된', '빨간', '예쁜', '무거운', '하얀', '낡은'],
    'place': ['시장에서', '학교에서', '도서관에서', '공원에서', '부엌에서', '사무실에서',
              '역 앞에서', '카페에서', '병원에서', '교실에서', '바닷가에서'],
    'time': ['어제', '오늘 아침에', '지난 주말에', '저녁에', '방금', '오후에', '일요일에',
             '아까'],
    'manner': ['천천히', '조용히', '급하게', '열심히', '다시', '혼자서', '친구와 함께'],
}
OPTIONAL_PARTS = ['adjective', 'place', 'time', 'manner']


def has_final_consonant(word: str) -> bool:
    """Whether a Hangul word ends in a consonant (batchim): picks 은/는, 을/를."""
    code = ord(word[-1]) - 0xAC00
    return 0 <= code < 11172 and code % 28 != 0


def english_sentence(words: dict, parts: list) -> str:
    obj = ' '.join(([words['adjective']] if 'adjective' in parts else []) + [words['object']])
    text = f"{words['subject']} {words['verb']} the {obj}"
    for part in parts:
        if part in ('place', 'manner'):
            text += ' ' + words[part]
    if 'time' in parts:
        text = words['time'] + ', ' + text
    return text[0].upper() + text[1:] + '.'


def korean_sentence(words: dict, parts: list) -> str:
    subject = words['subject'] + ('은' if has_final_consonant(words['subject']) else '는')
    obj = words['object'] + ('을' if has_final_consonant(words['object']) else '를')
    if 'adjective' in parts:
        obj = words['adjective'] + ' ' + obj
    pieces = [words['time']] if 'time' in parts else []
    pieces.append(subject)
    pieces += [words[p] for p in ('place', 'manner') if p in parts]
    return ' '.join(pieces + [obj, words['verb']]) + '.'


def sentence_versions(rng: np.random.Generator, korean: bool) -> List[str]:
    """One random sentence in versions of growing length: the core, then + optional parts."""
    lexicon = KO if korean else EN
    words = {slot: choices[rng.integers(len(choices))] for slot, choices in lexicon.items()}
    order = [OPTIONAL_PARTS[i] for i in rng.permutation(len(OPTIONAL_PARTS))]
    build = korean_sentence if korean else english_sentence
    return [build(words, order[:k]) for k in range(len(order) + 1)]


def unique_sentences(rng: np.random.Generator, korean: bool, count: int, used: set) -> list:
    """``count`` sentences none of whose versions was used before (every text differs)."""
    result = []
    while len(result) < count:
        versions = sentence_versions(rng, korean)
        if not used.intersection(versions):
            used.update(versions)
            result.append(versions)
    return result


def speaker_voices(rng: np.random.Generator, n_speakers: int) -> list:
    """Fixed voice of each speaker: espeak-ng settings and a sox colouring."""
    voices, next_variant = [], {'f': 0, 'm': 0}
    digits = 2 if n_speakers <= 99 else 3  # demo_f01 .. demo_m99, or demo_f001 .. demo_m999
    female, male = list(rng.permutation(FEMALE_VARIANTS)), list(rng.permutation(MALE_VARIANTS))
    for index in range(1, n_speakers + 1):
        gender = 'f' if rng.random() < 0.5 else 'm'
        pool = female if gender == 'f' else male
        variant = pool[next_variant[gender] % len(pool)]
        next_variant[gender] += 1
        korean = bool(rng.random() < korean_share)
        voices.append({
            'speaker': f'demo_{gender}{index:0{digits}d}', 'korean': korean,
            'voice': ('ko' if korean else ENGLISH_ACCENTS[rng.integers(4)]) + '+' + variant,
            'pitch': int(rng.integers(25, 76)), 'range': int(rng.integers(40, 161)),
            'speed': int(rng.integers(185, 236) if korean else rng.integers(140, 191)),
            'colour': colouring(rng)})
    return voices


def colouring(rng: np.random.Generator) -> list:
    """A fixed sox equaliser chain: two peaking bands plus bass and treble shelves."""
    effects = []
    for _ in range(2):
        freq = float(np.exp(rng.uniform(np.log(250), np.log(5000))))
        effects += ['equalizer', f'{freq:.0f}', f'{rng.uniform(0.7, 2.0):.2f}q',
                    f'{rng.uniform(-6, 6):.1f}']
    effects += ['bass', f'{rng.uniform(-4, 4):.1f}', 'treble', f'{rng.uniform(-5, 4):.1f}']
    return effects


def synthesize(text: str, voice: dict) -> np.ndarray:
    """espeak-ng speech -> sox (16 kHz, speaker colouring) -> float array, ends trimmed."""
    ssml = f'<speak><prosody range="{voice["range"]}%">{text}</prosody></speak>'
    speech = subprocess.run(['espeak-ng', '-m', '-z', '-v', voice['voice'], '-p',
                             str(voice['pitch']), '-s', str(voice['speed']), '--stdout', ssml],
                            capture_output=True, check=True).stdout
    raw = subprocess.run(['sox', '-D', '-V1', '-t', 'wav', '-', '-t', 'raw', '-e',
                          'floating-point', '-b', '32', '-L', '-', 'rate', '-v',
                          str(SAMPLE_RATE)] + voice['colour'],
                         input=speech, capture_output=True, check=True).stdout
    audio = np.frombuffer(raw, dtype='<f4').astype(np.float64)
    loud = np.flatnonzero(np.abs(audio) > 1e-3 * np.max(np.abs(audio)))
    return audio[loud[0]:loud[-1] + 1]


def vary_voice(voice: dict, rng: np.random.Generator) -> dict:
    """Small per-file variation of a speaker's voice: pitch, range and speed."""
    return dict(voice, pitch=int(np.clip(voice['pitch'] + rng.integers(-4, 5), 0, 99)),
                range=int(voice['range'] + rng.integers(-10, 11)),
                speed=int(round(voice['speed'] * rng.uniform(0.93, 1.07))))


def longest_fit(versions: list, voice: dict, budget: int) -> Optional[np.ndarray]:
    """Speech of the longest version of a sentence not longer than ``budget`` samples."""
    for text in reversed(versions):
        audio = synthesize(text, voice)
        if len(audio) <= budget:
            return audio
    return None


def speak_to_length(sentences: list, voice: dict, n_samples: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Sentences with short pauses, padded with silence to ``n_samples`` (more if it must)."""
    pad = int(MIN_PAD * SAMPLE_RATE)
    budget, parts = n_samples - 2 * pad, []
    for versions in sentences:
        gap = int(rng.uniform(0.25, 0.6) * SAMPLE_RATE) if parts else 0
        audio = longest_fit(versions, voice, budget - gap)
        if audio is None:
            break
        parts += [np.zeros(gap), audio]
        budget -= gap + len(audio)
    if not parts:  # even the shortest version is too long: keep it, the file grows
        parts, budget = [synthesize(sentences[0][0], voice)], 0
    lead = pad + int(max(budget, 0) * rng.uniform(0.2, 0.6))
    speech = np.concatenate(parts)
    tail = max(n_samples - lead - len(speech), pad)
    return np.concatenate([np.zeros(lead), speech, np.zeros(tail)])


def add_noise(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Set a random level and add white or pink noise at a random SNR (dB, vs active speech)."""
    audio = audio / np.max(np.abs(audio)) * 10 ** (rng.uniform(-9, -3) / 20)
    active = audio[np.abs(audio) > 0.01 * np.max(np.abs(audio))]
    snr = rng.uniform(snr_min_db, snr_max_db)
    noise = rng.standard_normal(len(audio))
    if rng.random() < 0.5:  # pink: 1/f power, shaped in the frequency domain
        spectrum = np.fft.rfft(noise)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
        noise = np.fft.irfft(spectrum, n=len(audio))
    noise *= np.sqrt(np.mean(active ** 2)) / np.sqrt(np.mean(noise ** 2)) / 10 ** (snr / 20)
    return audio + noise


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)


def render(task: dict) -> dict:
    """Make one file (a training utterance, or an enroll/test wav) and its feature pickle."""
    rng = np.random.default_rng(task['seed'])
    voice = vary_voice(task['voice'], rng)
    n_samples = int(round(task['seconds'] * SAMPLE_RATE))
    audio = add_noise(speak_to_length(task['sentences'], voice, n_samples, rng), rng)
    if speech_level:  # the level of the recordings the model is to hear (features depend on it)
        audio = at_db_level(audio, speech_level + rng.uniform(-3, 3))
    pcm = to_pcm16(audio)
    if task.get('wav'):
        with atomic_path(task['wav']) as tmp:
            wavfile.write(tmp, SAMPLE_RATE, pcm)
        audio = read_audio(task['wav'])  # features exactly as a user would extract them
    else:
        audio = pcm_to_float(pcm)
    feat = fast_logfbank(audio).astype(np.float16)
    save_pickle({'feat': feat, 'label': task['speaker']}, task['pickle'])
    written = [task['pickle']] + ([task['wav']] if task.get('wav') else [])
    return {'seconds': len(pcm) / SAMPLE_RATE, 'bytes': sum(map(os.path.getsize, written)),
            'files': len(written), 'speaker': task['speaker'], 'level': speech_level_db(audio)}


def write_level(results: list) -> str:
    """The median speech level of the files, in LEVEL_FILE beside train/ and test/: train.py
    stores it in the model, and recordings given to the model are set to it."""
    path = os.path.join(os.path.dirname(os.path.join(out_dir, c.TRAIN_FEAT_DIR)), LEVEL_FILE)
    level = float(np.median([r['level'] for r in results]))
    with atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        f.write(f'{level:.1f}\n')
    return f'{level:.1f} dB'


def train_tasks(voices: list, rng: np.random.Generator, used: set) -> Iterator[dict]:
    folder = os.path.join(out_dir, c.TRAIN_FEAT_DIR)
    for index, voice in enumerate(voices):
        for utt, versions in enumerate(unique_sentences(rng, voice['korean'], n_utts, used), 1):
            name = voice['speaker']
            yield {'speaker': name, 'voice': voice, 'sentences': [versions],
                   'seconds': rng.uniform(train_min_seconds, train_max_seconds),
                   'seed': [seed, 1, index, utt],
                   'pickle': os.path.join(folder, name, f'{name}_u{utt:02d}.p')}


def test_tasks(voices: list, rng: np.random.Generator, used: set) -> Iterator[dict]:
    n_sentences = int(test_seconds / 1.2) + 3  # more than can fit: the file is filled up
    for index, voice in enumerate(voices):
        name = voice['speaker']
        for kind_index, kind in enumerate(['enroll', 'test']):
            yield {'speaker': name, 'voice': voice, 'seconds': test_seconds,
                   'sentences': unique_sentences(rng, voice['korean'], n_sentences, used),
                   'seed': [seed, 2, index, kind_index],
                   'pickle': os.path.join(out_dir, c.TEST_FEAT_DIR, name, kind + '.p'),
                   'wav': os.path.join(out_dir, c.TEST_WAV_DIR, name, kind + '.wav')}


def all_tasks() -> list:
    """Every file to make, drawn in a fixed order from one seeded Generator."""
    rng = np.random.default_rng(seed)
    voices = speaker_voices(rng, n_train_speakers + n_test_speakers)
    used = set()
    return (list(train_tasks(voices[:n_train_speakers], rng, used))
            + list(test_tasks(voices[n_train_speakers:], rng, used)))


def check_setup() -> None:
    missing = [tool for tool in ('espeak-ng', 'sox') if shutil.which(tool) is None]
    if missing:
        raise cli.SetupError(f'{" and ".join(missing)} not found: '
                             'install them with `apt-get install espeak-ng sox`')
    if min(n_train_speakers, n_utts, n_test_speakers, jobs) < 1:
        raise cli.SetupError('n_train_speakers, n_utts, n_test_speakers and jobs must be >= 1')
    if not 1.0 <= train_min_seconds <= train_max_seconds or test_seconds < 1.0:
        raise cli.SetupError('need 1 <= train_min_seconds <= train_max_seconds, test_seconds >= 1')
    if n_train_speakers + n_test_speakers > 999:
        raise cli.SetupError('at most 999 speakers in all (speaker numbers of up to three digits)')


def espeak_version() -> str:
    """Such as 'eSpeak NG text-to-speech: 1.51' (the output depends on the version)."""
    out = subprocess.run(['espeak-ng', '--version'], capture_output=True, text=True).stdout
    return out.split('Data at')[0].strip()


def run_tasks(tasks: list) -> list:
    """Render all tasks (in parallel when jobs > 1) with a progress bar."""
    bar = dict(total=len(tasks), unit='file', desc='demo DB')
    if jobs == 1:
        return [render(t) for t in tqdm(tasks, **bar)]
    with Pool(jobs) as pool:
        return list(tqdm(pool.imap(render, tasks, chunksize=4), **bar))


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    check_setup()
    print(espeak_version())
    started = time.time()
    results = run_tasks(all_tasks())
    n_speakers = len({r['speaker'] for r in results})
    level = write_level(results)
    print(f'Demo DB in {os.path.abspath(out_dir)}: {n_speakers} speakers '
          f'({n_train_speakers} train, {n_test_speakers} test), '
          f'{sum(r["files"] for r in results)} files, '
          f'{sum(r["bytes"] for r in results) / 1e6:.1f} MB, '
          f'{sum(r["seconds"] for r in results):.0f} s of audio, '
          f'made in {time.time() - started:.0f} s; speech level {level}')


if __name__ == '__main__':
    cli.run(main)

"""Live demo: talk to the real-speech model in the browser, with the microphone.

    python demo.py            # then open the address it prints (http://127.0.0.1:7860)

Enroll yourself and a friend (record or upload a few seconds each), then let it identify a new
clip among you, verify a claim, compare two clips, and see the voices on a map. The page runs
on this computer only (bound to 127.0.0.1, telemetry off, nothing fetched from outside); its
enrollments go to a folder of their own, never the scripts' sets. Every step is a call of
dvector/live.py: this file only lays out the page and writes the answers.
"""
import math
import os
import shutil
import socket
import tempfile

import torch

from dvector import cli, live
from dvector.fileio import check_writable_dir
from dvector.recordings import REAL_MODEL_DIR, cached_model

# ---- settings ---------------------------------------------------------------------------
host = '127.0.0.1'                    # the address to listen on (this computer only)
port = 7860                           # the port of the page
log_dir = REAL_MODEL_DIR              # the model (trained on real speech)
embedding_dir = 'enroll_embeddings_demo'  # the demo's own enrollments (kept between runs)
files_dir = 'demo_files'              # the page's figures, and each run's clips (deleted after)
threads = 1                           # CPU threads of the model: one answers a clip fastest on
                                      # a busy 2-core CPU and leaves a core to the page
# ------------------------------------------------------------------------------------------
SETTING_RULES = {  # the allowed values of each setting, checked before any work
    'host': cli.NAME, 'port': cli.between(1, 65535), 'log_dir': cli.FOLDER,
    'embedding_dir': cli.FOLDER, 'files_dir': cli.FOLDER, 'threads': cli.at_least(1)}
SCRIPTS_SETS = ('enroll_embeddings', 'enroll_embeddings_real')  # enroll.py's; never touched

ERROR = '**Error · 오류**: '


def named(text: str, clips: list) -> str:
    """``text`` with each clip named by its file name (not the folder it was uploaded to)."""
    for clip in clips:
        if clip:
            text = text.replace(clip, os.path.basename(clip))
    return text


def shown_error(err: Exception, clips: list) -> str:
    """The error line for the page."""
    return ERROR + named(str(err), clips)


def decision_lines(found: live.Verdict, clips: list) -> str:
    """The score, LLR, how sure, what the decision rests on, and the clips' quality."""
    decision = found.decision
    lines = [f'Score · 점수: **{decision.score:.4f}**']
    if decision.llr is not None:
        lines.append(f'LLR · 로그 우도비: **{decision.llr:+.2f}**')
    lines += [f'Confidence · 확신: {found.confidence}',
              f'Decided at · 판정 기준: {decision.basis}' + (
                  f' (for these lengths: a score of {decision.threshold:.4f})'
                  if decision.llr is not None and math.isfinite(decision.threshold) else ''),
              f'Speech in the clip · 녹음 속 음성: {found.speech_seconds:.1f} s',
              'Quality · 녹음 품질: ' + ('; '.join(named(w, clips) for w in found.warnings)
                                     or 'no warnings · 경고 없음')]
    return '  \n'.join(lines)


def uploaded_paths(uploads) -> list:
    """Paths of gr.File's value: None, one path, or a list of paths (or file objects)."""
    if not uploads:
        return []
    items = list(uploads) if isinstance(uploads, (list, tuple)) else [uploads]
    return [getattr(item, 'name', item) for item in items]


def enroll(name: str, recording: str, uploads, replace: bool) -> tuple:
    """(message, enrolled speakers) after enrolling the recording and uploaded clips."""
    clips = [recording] + uploaded_paths(uploads)
    try:
        speakers, warnings = live.enroll_clips(name, clips, embedding_dir, log_dir, replace)
    except cli.SetupError as err:
        return shown_error(err, clips), current_speakers()
    count = len([c for c in clips if c])
    return '  \n'.join(
        [f'Enrolled · 등록됨: **{name.strip()}** ({count} clip{"s" if count > 1 else ""}).',
         f'Enrolled speakers · 등록된 화자: {", ".join(speakers)}']
        + [f'Warning · 경고: {named(w, clips)}' for w in warnings]), speakers


def current_speakers() -> list:
    try:
        return sorted(live.enrolled(embedding_dir, log_dir))
    except cli.SetupError:
        return []


def identify(clip: str) -> str:
    """The ranked speakers and the decision on the best one, as markdown."""
    return identify_and_keep(clip)[0]


def identify_and_keep(clip: str) -> tuple:
    """(identify's markdown, the clip for the voice map: '' when the clip was refused, so that
    the map is not drawn around a clip it cannot read)."""
    try:
        found = live.identify_clip(clip, embedding_dir, log_dir)
    except cli.SetupError as err:
        return shown_error(err, [clip]), ''
    return identification_text(found, clip), clip


def identification_text(found: live.Identification, clip: str) -> str:
    """The markdown of an identification: the answer, the ranking, the decision."""
    answer = (f'### Identified · 식별: **{found.speaker}**' if found.speaker else
              '### None of the enrolled speakers · 등록된 화자가 아님')
    rows = '\n'.join(f'| {rank} | {speaker} | {score:.4f} | '
                     + (f'{llr:+.2f}' if llr is not None else '') + ' |'
                     for rank, (speaker, score, llr) in enumerate(found.ranking, 1))
    table = ('| rank · 순위 | speaker · 화자 | score · 점수 | LLR |\n|---|---|---|---|\n'
             + rows)
    if found.verdict is None:
        return (f'{answer}\n\n{table}\n\nThe model has no threshold: the best speaker is '
                'always the answer (closed set) · 임계값이 없어 항상 1위 화자를 답합니다')
    return (f'{answer}\n\n{table}\n\nThe best speaker, {found.ranking[0][0]} · 1위 화자:  \n'
            + decision_lines(found.verdict, [clip]))


def verify(claimed: str, clip: str) -> str:
    """Accept or Reject the claim, with the score and what the decision rests on."""
    try:
        found = live.verify_clip(claimed, clip, embedding_dir, log_dir)
    except cli.SetupError as err:
        return shown_error(err, [clip])
    answer = '### Accept · 수락' if found.decision.accept else '### Reject · 거부'
    return f'{answer}\n\nClaimed speaker · 주장한 화자: **{claimed}**  \n' + \
        decision_lines(found, [clip])


def compare(clip_a: str, clip_b: str) -> str:
    """Same speaker or not, for two clips."""
    try:
        found = live.compare_clips(clip_a, clip_b, log_dir)
    except cli.SetupError as err:
        return shown_error(err, [clip_a, clip_b])
    answer = ('### Same speaker · 같은 화자' if found.decision.accept else
              '### Different speakers · 다른 화자')
    return f'{answer}\n\n' + decision_lines(found, [clip_a, clip_b])


def see_voices(clip: str) -> tuple:
    """(heatmap PNG, map PNG, message) of the enrolled voices, the last clip among them."""
    from dvector.plots import plot_similarity_heatmap
    try:
        found = live.voice_map(embedding_dir, clip or '', log_dir)
    except cli.SetupError as err:
        return None, None, shown_error(err, [clip])
    figures = os.path.join(files_dir, 'figures')
    heatmap = plot_similarity_heatmap(found.similarity, found.speakers,
                                      os.path.join(figures, 'heatmap.png'))
    where = live.plot_voice_map(found, os.path.join(figures, 'voice_map.png'))
    note = ('The star is the last clip you identified · 별: 마지막으로 식별한 녹음' if clip else
            'Identify a clip to place it on the map · 녹음을 식별하면 지도에 표시됩니다')
    return heatmap, where, f'{len(found.speakers)} enrolled speakers · 등록된 화자. {note}'


def clip_input(label: str, elem_id: str):
    """A clip from the microphone or an uploaded file, given to the handlers as a wav path."""
    import gradio as gr
    return gr.Audio(sources=['microphone', 'upload'], type='filepath', format='wav',
                    label=label, elem_id=elem_id)


def enroll_tab(gr, speakers) -> None:
    with gr.Tab('Enroll · 등록', id='enroll'):
        gr.Markdown('Say a few sentences (5 s or more), or upload wav files, and give a name. '
                    '· 몇 문장을 말하거나 wav 파일을 올리고 이름을 입력하세요.')
        name = gr.Textbox(label='Name · 이름', elem_id='enroll_name')
        recording = clip_input('Recording · 녹음', 'enroll_clip')
        uploads = gr.File(label='More clips (wav) · 추가 녹음 (wav)', file_count='multiple',
                          file_types=['.wav'], height=120, elem_id='enroll_files')
        replace = gr.Checkbox(label='Replace if the name is enrolled · 같은 이름이면 바꾸기')
        button = gr.Button('Enroll · 등록', variant='primary', elem_id='enroll_button')
        message = gr.Markdown(elem_id='enroll_result')
        button.click(lambda *args: with_choices(gr, *enroll(*args)),
                     [name, recording, uploads, replace], [message] + speakers)


def with_choices(gr, message: str, enrolled_now: list) -> tuple:
    """The message, and the claimed-speaker list updated to the speakers enrolled now."""
    return (message, gr.update(choices=enrolled_now, value=enrolled_now[0] if enrolled_now
                               else None))


def identify_tab(gr, last_clip) -> None:
    with gr.Tab('Identify · 화자 식별', id='identify'):
        gr.Markdown('Who is speaking, among the enrolled speakers? (or none of them) '
                    '· 등록된 화자 중 누구의 목소리인가요?')
        clip = clip_input('Clip · 녹음', 'identify_clip')
        button = gr.Button('Identify · 식별', variant='primary', elem_id='identify_button')
        answer = gr.Markdown(elem_id='identify_result')
        button.click(identify_and_keep, [clip], [answer, last_clip])


def verify_tab(gr, claimed) -> None:
    with gr.Tab('Verify · 화자 검증', id='verify'):
        gr.Markdown('Is this the speaker it claims to be? · 주장한 화자가 맞나요?')
        claimed.render()
        clip = clip_input('Clip · 녹음', 'verify_clip')
        button = gr.Button('Verify · 검증', variant='primary', elem_id='verify_button')
        answer = gr.Markdown(elem_id='verify_result')
        button.click(verify, [claimed, clip], [answer])


def compare_tab(gr) -> None:
    with gr.Tab('Compare · 두 녹음 비교', id='compare'):
        with gr.Row():
            clip_a = clip_input('First clip · 첫 녹음', 'compare_a')
            clip_b = clip_input('Second clip · 둘째 녹음', 'compare_b')
        button = gr.Button('Compare · 비교', variant='primary', elem_id='compare_button')
        answer = gr.Markdown(elem_id='compare_result')
        button.click(compare, [clip_a, clip_b], [answer])


def voices_tab(gr, last_clip) -> None:
    with gr.Tab('See the voices · 목소리 보기', id='voices'):
        button = gr.Button('Show the enrolled voices · 등록된 목소리 보기', variant='primary',
                           elem_id='voices_button')
        message = gr.Markdown(elem_id='voices_result')
        with gr.Row():
            heatmap = gr.Image(label='Similarity · 유사도', type='filepath')
            where = gr.Image(label='Map of the d-vectors (PCA) · d-vector 지도 (PCA)',
                             type='filepath')
        button.click(see_voices, [last_clip], [heatmap, where, message])


def build_page():
    """The page: one tab per step."""
    import gradio as gr
    with gr.Blocks(title='d-vector live demo', analytics_enabled=False, fill_width=True) as page:
        gr.Markdown('# d-vector speaker recognition, live · 실시간 화자 인식')
        last_clip = gr.State('')  # the last clip identified, for the map
        claimed = gr.Dropdown(label='Claimed speaker · 주장한 화자', elem_id='verify_speaker',
                              render=False)  # shown in Verify, updated by Enroll
        with gr.Tabs():
            enroll_tab(gr, [claimed])
            identify_tab(gr, last_clip)
            verify_tab(gr, claimed)
            compare_tab(gr)
            voices_tab(gr, last_clip)
        page.load(lambda: with_choices(gr, '', current_speakers())[1], None, [claimed])
    return page


def served_folders() -> tuple:
    """(uploads, figures) under files_dir, the only folders the page serves: a new uploads
    folder of this run's own (Gradio serves every file in it, so none of another run's or the
    user's), removed when the demo stops, and the figures folder (SetupError when that is a
    file or a link: the figures would go, and be served from, somewhere else)."""
    figures, uploads = (os.path.join(files_dir, name) for name in ('figures', 'uploads'))
    for folder in (figures, uploads):
        if os.path.islink(folder) or os.path.lexists(folder) and not os.path.isdir(folder):
            raise cli.SetupError(f'--files_dir {files_dir}: its {os.path.basename(folder)} is a '
                                 "file or a link, not the demo's folder; move it away, or give "
                                 'another --files_dir')
        os.makedirs(folder, exist_ok=True)
    return tempfile.mkdtemp(prefix='run-', dir=uploads), figures


def check_host() -> None:
    """Before any work: ``host`` is a name or address of this machine, one it can listen on (a
    port in use is found when the page starts)."""
    if ':' in host:  # Gradio's page cannot be served at an IPv6 address (it fails to start)
        raise cli.SetupError(f'--host {host}: an IPv6 address; give an IPv4 address '
                             '(127.0.0.1, 0.0.0.0) or a name of this machine')
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.bind(address)  # port 0: any free one, only to ask for the address
    except (OSError, UnicodeError) as err:
        raise cli.SetupError(f'--host {host}: not an address this machine can listen on '
                             f'({err}); give 127.0.0.1, 0.0.0.0 or a name of this machine') \
            from None


def main() -> None:
    cli.override_settings(globals(), doc=__doc__)
    global embedding_dir, files_dir
    embedding_dir, files_dir = os.path.abspath(embedding_dir), os.path.abspath(files_dir)
    if os.path.basename(embedding_dir) in SCRIPTS_SETS:
        raise cli.SetupError(f'--embedding_dir {embedding_dir}: is a set of the scripts '
                             '(enroll.py); give the demo a folder of its own')
    check_writable_dir(embedding_dir, 'embedding_dir')
    check_writable_dir(files_dir, 'files_dir')
    check_host()
    uploads, figures = served_folders()
    try:
        serve(uploads, figures)
    finally:
        shutil.rmtree(uploads, ignore_errors=True)  # this run's own folder: the clips' copies


def serve(uploads: str, figures: str) -> None:
    """Load the model, check the enrollments, and serve the page until Ctrl+C."""
    torch.set_num_threads(threads)
    cached_model(log_dir)            # load the model now, not at the first clip
    live.enrolled(embedding_dir, log_dir)  # a folder it cannot use is refused before the page
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'  # no telemetry, no version check
    os.environ['GRADIO_TEMP_DIR'] = uploads  # read on import; Gradio serves what is in it
    page = build_page()
    try:
        _, address, _ = page.launch(server_name=host, server_port=port, share=False,
                                    ssr_mode=False, footer_links=[],
                                    allowed_paths=[figures],  # the page's figures only
                                    quiet=True, prevent_thread_lock=True)
    except OSError as err:
        raise cli.SetupError(f'--port {port}: cannot listen on {host}:{port} ({err}); give '
                             'another --port') from None
    print(f'The demo is at {address} (Ctrl+C stops it)', flush=True)
    page.block_thread()  # serve until Ctrl+C


if __name__ == '__main__':
    cli.run(main)

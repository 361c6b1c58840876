"""Web app (Gradio): record or upload speech, see the rating, its score band and a timeline, and
(with the Whisper base weights) the text read with each word coloured by how it was heard.

    accent-rater ui              # http://127.0.0.1:7860
    python -m accent_rater ui --host 0.0.0.0 --port 8080

Runs fully offline: no share links, no analytics, no fonts or scripts from a CDN. The handler
``rate_recording`` is the one function the page calls; tests call it directly too.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # must be set before gradio is imported

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from ..backbones.whisper import WeightsError, check_decoder  # noqa: E402
from ..errors import AudioError  # noqa: E402
from ..pronunciation import NoPronunciationError  # noqa: E402
from ..rater import BORDERLINE_MARGIN, AccentResult, Rater  # noqa: E402
from ..words import PASSAGE, TextError, Word, practise  # noqa: E402
from .ui_label import DecisionLabel  # noqa: E402

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).parents[1] / "assets" / "samples"
SAMPLES = ("native_us_english33.opus", "native_uk_english38.opus", "nonnative_mandarin8.opus")

CREDIT = "Model trained on the Speech Accent Archive (George Mason University, CC BY-NC-SA)."

EXPLANATION = """
**What the score means.** The score is 100 × the model's probability that a listener would label the
speaker a native English speaker. It rates **accent only** — not intelligibility, fluency or English
proficiency: many speakers with a strong accent are perfectly clear and fluent. The model was trained
on the Speech Accent Archive, where everyone reads the same paragraph, so it works best on read
speech like the passage above. Probabilities assume that about half of the people being rated are
native speakers; a *borderline* rating (within {margin:.2f} of the decision threshold) could easily
go either way. Treat it as a rough indication, never as a judgement of a person.
""".strip()

NO_AUDIO_MESSAGE = "No audio yet: record with the microphone or upload a file, then press Rate."
WORDS_OFF_INFO = "Needs the Whisper base weights: run `accent-rater fetch-weights --words` once (~133 MB)."
MAX_PLAYBACK_BYTES = 12 * 2**20  # larger recordings are not embedded in the page for click-to-play
_MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg",
         ".webm": "audio/webm", ".m4a": "audio/mp4", ".aac": "audio/aac", ".mp4": "audio/mp4"}
STATUS_TEXT = {"ok": "heard as written", "unclear": "unclear", "different": "heard as another word",
               "missed": "not heard", "extra": "extra word"}
WORDS_CSS = """
.wf .passage { font-size: 1.15rem; line-height: 2.1; }
.wf .w { padding: 1px 3px; border-radius: 4px; cursor: pointer; }
.wf .w.ok { background: #dcfce7; color: #14532d; }
.wf .w.unclear { background: #fef08a; color: #713f12; }
.wf .w.different { background: #fecaca; color: #7f1d1d; font-weight: 600; }
.wf .w.missed { color: #6b7280; text-decoration: line-through; cursor: default; }
.wf .w.extra { color: #6b7280; font-style: italic; font-size: 0.9em; }
.wf .w.acc-hi { background: #dcfce7; color: #14532d; font-weight: normal; }
.wf .w.acc-mid { background: #fef08a; color: #713f12; font-weight: normal; }
.wf .w.acc-lo { background: #fecaca; color: #7f1d1d; font-weight: 600; }
.wf .w.playing { outline: 2px solid #2563eb; }
.wf .legend span { margin-right: 0.6em; }
.wf audio { width: 100%; margin: 0.4em 0; }
"""
# A click on a timed word plays its span of the recording (the page's own copy, embedded as a data URL):
# the stop is timed from when playback really starts. Media events do not bubble, hence the capture.
WORDS_JS = """
let stop = null, until = null;
const arm = (player) => {
  clearTimeout(stop);
  stop = setTimeout(() => { player.pause(); until = null; }, Math.max(0, until - player.currentTime) * 1000);
};
element.addEventListener('click', (event) => {
  const word = event.target.closest('[data-start]');
  const player = element.querySelector('audio');
  if (!word || !player) return;
  element.querySelectorAll('.playing').forEach((w) => w.classList.remove('playing'));
  word.classList.add('playing');
  until = parseFloat(word.dataset.end) + 0.1;
  player.currentTime = Math.max(0, parseFloat(word.dataset.start) - 0.05);
  if (player.paused) player.play().catch(() => {}); else arm(player);
});
element.addEventListener('playing', (event) => { if (until !== null) arm(event.target); }, true);
"""
INTERNAL_ERROR_MESSAGE = "Something went wrong while rating this recording. Please try again, or try another file."


L1_CAPTION = (
    "A guess about the accent, never about a person. Knows: {languages}; other first languages map to the "
    "nearest one or to 'unsure'."
)


PRONUNCIATION_LINES = {
    "accuracy": "how accurately the sounds of the words were pronounced",
    "fluency": "how smoothly the speech flowed: pauses, hesitations, speed",
    "prosody": "intonation, stress and rhythm",
    "total": "overall pronunciation",
}
PRONUNCIATION_NOTE = ("Scaled as experts rate learners' readings (speechocean762), 0–100. A guide to practise with: "
                      "not a test score, not a judgement of a person.")


def format_pronunciation(result: AccentResult) -> list[str]:
    """The four pronunciation scores as Markdown lines, each with what it means (none without them)."""
    if result.pronunciation is None:
        return []
    p = result.pronunciation._asdict()
    return ["#### Pronunciation", ""] + [f"- **{a.capitalize()}: {p[a]:.0f} / 100** — {why}"
                                         for a, why in PRONUNCIATION_LINES.items()] + [f"- <small>{PRONUNCIATION_NOTE}</small>", ""]


def format_result(result: AccentResult) -> str:
    """The result as Markdown: score, band, decision, warnings (prominent, right under the score),
    borderline flag, speech seconds; pronunciation scores when the result has them."""
    rated = result.p_native is not None
    decision = "native-sounding" if result.label == "native" else "non-native-sounding"
    lines = [f"### Score: {result.score} / 100 — {result.band}" if rated else "### Accent: not rated (too little speech)", ""]
    if result.warnings:  # e.g. little speech, clipping, or a recording unlike the training recordings
        lines.append("> ⚠️ **Warnings:** these make the rating less reliable")
        lines += [f"> - {html.escape(w, quote=False)}" for w in result.warnings]
        lines.append("")
    lines += format_pronunciation(result)
    lines += [
        f"- **Decision:** {decision} (P(native) = {result.p_native:.2f}; threshold {result.threshold:.2f})",
        f"- **Borderline:** {'yes — the rating is uncertain' if result.borderline else 'no'}",
    ] if rated else []
    lines += [
        f"- **Speech analysed:** {result.speech_seconds:.1f} s (recording {result.duration_seconds:.1f} s)",
    ]
    if not result.warnings:
        lines.append("- **Warnings:** none")
    lines.append(f"- **Model:** {result.model}")
    if result.profile:
        lines.append(f"- **Site profile:** {html.escape(result.profile, quote=False)} (calibration fitted to this recording setup)")
    return "\n".join(lines)


def headline(result: AccentResult) -> dict:
    """The big label: the decision (``result.label``) with P(native) / P(non-native) as bars."""
    if result.p_native is None:
        return {"label": "not rated", "confidences": {}}
    return {
        "label": "native" if result.label == "native" else "non-native",
        "confidences": {"native": result.p_native, "non-native": 1.0 - result.p_native},
    }


def l1_outputs(result: AccentResult, languages: Sequence[str]) -> tuple[dict, dict]:
    """Updates for the first-language bar chart and its caption: visible only when the result has a
    first-language guess (``result.l1``, non-empty only for non-native ratings)."""
    if not result.l1:
        return gr.update(value=None, visible=False), gr.update(value="", visible=False)
    chart = {"label": result.l1_guess or result.l1[0][0], "confidences": {lang: p for lang, p in result.l1}}
    known = ", ".join(languages) if languages else ", ".join(lang for lang, _ in result.l1)
    return gr.update(value=chart, visible=True), gr.update(value=L1_CAPTION.format(languages=known), visible=True)


def result_outputs(result: AccentResult, l1_languages: Sequence[str] = (), audio_path: str | None = None) -> tuple:
    """Everything the page shows for a result, in the order of the page's outputs: (headline label,
    summary Markdown, timeline, word feedback update, first-language chart update, its caption
    update). Pure: no model."""
    return (headline(result), format_result(result), timeline_frame(result), words_output(result, audio_path),
            *l1_outputs(result, l1_languages))


ACCURACY_CLASSES = ((80.0, "acc-hi"), (50.0, "acc-mid"), (0.0, "acc-lo"))  # a word's accuracy -> its colour


def _span(w: Word) -> str:
    """A word of the text: coloured by its pronunciation accuracy when it has one, else by status."""
    shown = html.escape(w.word or f"+{w.heard}")
    tip = STATUS_TEXT[w.status] + (f": heard \u201c{w.heard}\u201d" if w.heard and w.status != "ok" else "")
    tip += f" (confidence {w.confidence:.2f})" if w.confidence is not None else ""
    kind = w.status  # the status stays the first class; a read word's accuracy adds its colour
    if w.accuracy is not None and w.status != "missed":
        tip += f"; accuracy {w.accuracy:.0f} / 100"
        kind += " " + next(k for floor, k in ACCURACY_CLASSES if w.accuracy >= floor)
    timed = f' data-start="{w.start:.2f}" data-end="{w.end:.2f}"' if w.start is not None and w.end is not None else ""
    return f'<span class="w {kind}" title="{html.escape(tip)}"{timed}>{shown}</span>'


def _player(audio_path: str | None) -> str:
    path = Path(audio_path) if audio_path else None
    if path is None or not path.is_file() or path.stat().st_size > MAX_PLAYBACK_BYTES:
        return "<p><small>(The recording is not embedded here, so words cannot be played.)</small></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<audio controls preload="auto" src="data:{_MIME.get(path.suffix.lower(), "audio/wav")};base64,{data}"></audio>'


def words_html(result: AccentResult, audio_path: str | None = None) -> str:
    """The text read, each word coloured by status (a click plays it), the reading summary and the
    words to practise; on free speech (no text) the transcript."""
    if not result.words:
        return (f'<div class="wf"><p><b>Heard:</b> {html.escape(result.transcript or "(nothing)")}</p>'
                "<p><small>No text was given, so no word is marked: this is what was heard.</small></p></div>")
    r = result.reading
    todo = practise(result.words)
    written = [w for w in result.words if w.status != "extra"]
    last = max((i for i, w in enumerate(written) if w.status != "missed"), default=-1)
    unread = len(written) - 1 - last
    parts = [
        '<div class="wf">',
        f"<p><b>Reading:</b> {r.ok} of {r.words} words heard as written ({100 * r.accuracy:.0f}%), "
        f"{r.words_per_minute:.0f} words per minute. Click a word to hear it.</p>",
        _player(audio_path),
        f'<p class="passage">{" ".join(_span(w) for w in result.words)}</p>',
        _legend(any(w.accuracy is not None for w in result.words)),
        "<p><b>Words to practise:</b> " + (", ".join(
            _span(w) + (f" (heard \u201c{html.escape(w.heard)}\u201d)" if w.status == "different" else "") for w in todo)
            if todo else "none") + "</p>",
        (f"<p>The reading stops after \u201c{html.escape(written[last].word)}\u201d (not heard: the last {unread} of "
         f"the text's {len(written)} words).</p>" if 0 <= last and unread > 0 else ""),
        "<p><small>Heard by Whisper base, on this machine. A word is marked when the recogniser was unsure "
        "of it or heard another word: a hint about what to practise, not a verdict.</small></p>",
        "</div>",
    ]
    return "\n".join(parts)


def _legend(by_accuracy: bool) -> str:
    if by_accuracy:
        keys = "".join(f'<span class="w {k}">{label}</span>' for k, label in
                       (("acc-hi", "accuracy 80+"), ("acc-mid", "50-79"), ("acc-lo", "under 50"), ("missed", "missed")))
        return f'<p class="legend"><small>{keys} (hover a word for its accuracy)</small></p>'
    return '<p class="legend"><small>' + "".join(f'<span class="w {s}">{s}</span>' for s in STATUS_TEXT) + "</small></p>"


def words_output(result: AccentResult, audio_path: str | None = None) -> dict:
    """Update for the word-feedback panel: shown only when the result has word feedback."""
    if not result.words and not result.transcript:
        return gr.update(value="", visible=False)
    return gr.update(value=words_html(result, audio_path), visible=True)


def words_available() -> bool:
    """Whether word feedback can run here (weights set up and faster-whisper installed)."""
    import importlib.util

    try:
        check_decoder(verify=False)
    except WeightsError:
        return False
    return importlib.util.find_spec("faster_whisper") is not None


def timeline_frame(result: AccentResult) -> pd.DataFrame:
    """One row per segment: its midpoint in the recording (seconds) and its P(native)."""
    return pd.DataFrame(
        {
            "time_s": [round((a + b) / 2, 2) for a, b, _ in result.segments],
            "p_native": [round(p, 4) for _, _, p in result.segments],
        }
    )


def user_message(exc: AudioError, audio_path: str) -> str:
    """``str(exc)`` without the server's temporary upload path (the user knows the file by name),
    escaped: Gradio renders error messages as HTML and the file name is the user's."""
    message = str(exc).replace(str(audio_path), Path(audio_path).name)
    message = re.sub(r" ?\('?/[^)]*\)", "", message)  # decoder details that quote a (truncated) path
    return html.escape(message, quote=False)


def rate_recording(rater: Rater, audio_path: str | None, words: bool = False, text: str | None = PASSAGE,
                   pronunciation: bool = False) -> tuple:
    """The Rate button's handler: ``result_outputs`` of the rating (headline, result Markdown, timeline,
    word feedback on ``text`` when ``words`` (an empty text: free speech), with pronunciation scores
    when ``pronunciation``, first-language chart and caption). User errors become ``gr.Error`` with a
    message the user can act on; anything unexpected a generic one."""
    if not audio_path:
        raise gr.Error(NO_AUDIO_MESSAGE, title="No audio", print_exception=False)
    try:
        result = rater.rate(audio_path, words=words, text=(text or "").strip(), pronunciation=words and pronunciation)
    except AudioError as exc:
        message = user_message(exc, audio_path)
        raise gr.Error(message, title="Cannot rate this audio", print_exception=False) from exc
    except (WeightsError, TextError, NoPronunciationError) as exc:
        raise gr.Error(html.escape(str(exc), quote=False), title="No word feedback", print_exception=False) from exc
    except Exception as exc:
        log.exception("rating failed for %s", audio_path)
        raise gr.Error(INTERNAL_ERROR_MESSAGE, print_exception=False) from exc
    return result_outputs(result, rater.l1_languages, audio_path)


def build_app(rater: Rater | None = None) -> gr.Blocks:
    """The page; ``rater`` (loaded once, shared by all sessions) defaults to the bundled model."""
    rater = rater or Rater()
    words_ready = words_available()
    scores = words_ready and bool(rater.meta.get("pronunciation"))  # on by default wherever they can run

    def handler(audio_path: str | None, words: bool = words_ready, text: str = PASSAGE):
        return rate_recording(rater, audio_path, words, text, pronunciation=scores)

    with gr.Blocks(title="Accent Rater", analytics_enabled=False) as app:
        gr.Markdown(
            "# Accent Rater\n"
            "How native does an English accent sound? Record or upload some English speech and get a "
            "0–100 score, computed on this machine — nothing is sent anywhere."
        )
        gr.Markdown(f"**For best results, read this passage aloud (about 25 s):**\n\n> {PASSAGE}", elem_id="passage")
        # outputs are created first (unrendered) so the examples, which fill them, sit by the input
        label_out = DecisionLabel(label="Accent", num_top_classes=2, elem_id="result-label", render=False)
        summary_out = gr.Markdown(elem_id="result-summary", render=False)
        l1_out = DecisionLabel(label="First language (guess)", num_top_classes=3, visible=False, elem_id="result-l1", render=False)
        l1_caption = gr.Markdown(visible=False, elem_id="result-l1-caption", render=False)
        timeline_out = gr.LinePlot(
            x="time_s",
            y="p_native",
            title="P(native) over the recording (one point per analysis window)",
            x_title="time (s)",
            y_title="P(native)",
            y_lim=[0, 1],
            label="Timeline",
            elem_id="result-timeline",
            render=False,
        )
        words_out = gr.HTML(visible=False, elem_id="result-words", css_template=WORDS_CSS, js_on_load=WORDS_JS,
                            label="Word feedback", render=False)
        outputs = [label_out, summary_out, timeline_out, words_out, l1_out, l1_caption]
        with gr.Row():
            with gr.Column():
                audio_in = gr.Audio(
                    sources=["microphone", "upload"],
                    type="filepath",
                    label="Your speech",
                    buttons=["download"],
                    elem_id="audio-input",
                )
                words_in = gr.Checkbox(value=words_ready, interactive=words_ready,
                                       label="Word feedback and pronunciation scores" if scores else "Word feedback",
                                       info=("How each word of the text was pronounced, and accuracy, fluency, prosody "
                                             "and total scores" if scores else "Which words of the text were heard as "
                                             "written") if words_ready else WORDS_OFF_INFO,
                                       elem_id="words-input")
                text_in = gr.Textbox(value=PASSAGE, lines=3, label="The text you read (empty: free speech, a transcript only)",
                                     elem_id="text-input")
                rate_btn = gr.Button("Rate", variant="primary", elem_id="rate-button")
                gr.Examples(
                    examples=[[str(SAMPLES_DIR / name)] for name in SAMPLES],
                    inputs=audio_in,
                    outputs=outputs,
                    fn=handler,
                    run_on_click=True,
                    cache_examples=False,
                    example_labels=["US English (native)", "UK English (native)", "Mandarin (non-native)"],
                    label="Examples: Speech Accent Archive speakers reading the passage",
                )
            with gr.Column():
                label_out.render()
                summary_out.render()
                l1_out.render()
                l1_caption.render()
        words_out.render()
        timeline_out.render()
        rate_btn.click(handler, inputs=[audio_in, words_in, text_in], outputs=outputs, api_name="rate", concurrency_limit=1)
        gr.Markdown(EXPLANATION.format(margin=BORDERLINE_MARGIN), elem_id="explanation")
        site = f" Site profile: {html.escape(rater.profile.name, quote=False)}." if rater.profile else ""
        gr.Markdown(f"<small>{CREDIT} Model: {rater.name}.{site}</small>", elem_id="credit")
    return app


def _load_words(rater: Rater) -> None:
    try:
        rater.transcriber  # noqa: B018 - loads and verifies the weights
    except WeightsError as exc:
        log.warning("word feedback unavailable: %s", exc)


def main(host: str = "127.0.0.1", port: int = 7860, model: str | Path | None = None, profile: str | Path | None = None) -> None:
    """Load the model once and serve the page (blocks until interrupted)."""
    rater = Rater(model, profile=profile)
    app = build_app(rater)
    if words_available():  # Whisper base loads while the page starts, so the first word feedback is quick
        threading.Thread(target=_load_words, args=(rater,), daemon=True).start()
    app.queue(default_concurrency_limit=1).launch(
        server_name=host,
        server_port=port,
        share=False,
        ssr_mode=False,
        max_file_size=rater.max_bytes,
        footer_links=["gradio", "settings"],
    )

"""Web app: the handler the page calls (in process, real model) and the page itself in a browser.

The browser test starts ``python -m accent_rater ui`` in a subprocess and drives it with
tests/serve/e2e/ui.spec.mjs (playwright-core + the system chromium); it skips, saying why, when
/usr/bin/chromium, node or tests/serve/e2e/node_modules/playwright-core is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SAMPLES, make_result, words_weights_missing, write_wav

gr = pytest.importorskip("gradio")

from accent_rater.errors import AudioError, NotAudioError  # noqa: E402
from accent_rater.rater import Rater  # noqa: E402
from accent_rater.serve import ui  # noqa: E402
from accent_rater.words import PASSAGE, Reading, Word  # noqa: E402

E2E = Path(__file__).resolve().parent / "e2e"
CLIP = ui.SAMPLES_DIR / "native_us_english33.opus"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def rater() -> Rater:
    return Rater()


@pytest.fixture(scope="module")
def expected(rater):
    return rater.rate(CLIP)


@pytest.fixture()
def not_audio(tmp_path) -> Path:
    path = tmp_path / "notes.wav"  # text with an audio extension
    path.write_text("this is not audio\n" * 50)
    return path


# --- the handler, in process --------------------------------------------------------------------
def test_handler_outputs_match_rater(rater, expected):
    head, summary, timeline, words, l1_chart, l1_caption = ui.rate_recording(rater, str(CLIP))
    assert words["visible"] is False  # no word feedback asked for
    labels = head["confidences"]
    assert head["label"] == ("native" if expected.label == "native" else "non-native")
    assert set(labels) == {"native", "non-native"}
    assert sum(labels.values()) == pytest.approx(1.0)
    assert labels["native"] == pytest.approx(expected.p_native)
    assert round(100 * labels["native"]) == expected.score
    assert l1_chart["visible"] == l1_caption["visible"] == bool(expected.l1)
    assert f"Score: {expected.score} / 100" in summary and expected.band in summary
    assert "Borderline:" in summary and "Speech analysed:" in summary and "Warnings:" in summary
    assert len(timeline) == len(expected.segments) > 0
    assert list(timeline.columns) == ["time_s", "p_native"]
    assert timeline["time_s"].is_monotonic_increasing
    assert timeline["p_native"].between(0, 1).all()
    for (a, b, p), (_, row) in zip(expected.segments, timeline.iterrows()):
        assert a <= row.time_s <= b and row.p_native == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize("p_native, threshold", [(0.50, 0.49), (0.497, 0.49), (0.52, 0.55)])
def test_headline_follows_the_decision_not_the_larger_probability(p_native, threshold):
    result = make_result(p_native, threshold)
    assert result.label == ("native" if p_native >= threshold else "non_native")
    shown = "native" if result.label == "native" else "non-native"
    head, summary, *_ = ui.result_outputs(result)
    assert head["label"] == shown
    # what the page's gr.Label receives: the headline is the decision, the bars stay P(native) / P(non-native)
    data = ui.DecisionLabel(num_top_classes=2).postprocess(head)
    assert data.label == shown
    assert {c.label: c.confidence for c in data.confidences} == pytest.approx({"native": p_native, "non-native": 1 - p_native})
    assert ("non-native-sounding" in summary) == (result.label == "non_native")


def test_l1_chart_only_for_non_native_results():
    languages = ["arabic", "french", "mandarin", "spanish"]
    guess = make_result(0.12, l1=[("spanish", 0.62), ("french", 0.2), ("arabic", 0.1)])
    *_, chart, caption = ui.result_outputs(guess, languages)
    assert chart["visible"] is True and caption["visible"] is True
    data = ui.DecisionLabel(num_top_classes=3).postprocess(chart["value"])
    assert data.label == "spanish"
    assert [(c.label, c.confidence) for c in data.confidences] == [("spanish", 0.62), ("french", 0.2), ("arabic", 0.1)]
    assert caption["value"] == ui.L1_CAPTION.format(languages="arabic, french, mandarin, spanish")
    assert "never about a person" in caption["value"] and "'unsure'" in caption["value"]

    unsure = make_result(0.2, l1=[("spanish", 0.31), ("french", 0.3), ("arabic", 0.2)])
    *_, chart, _ = ui.result_outputs(unsure, languages)
    assert chart["visible"] is True and ui.DecisionLabel(num_top_classes=3).postprocess(chart["value"]).label == "unsure"

    native = make_result(0.8)  # rated native: no guess, chart and caption hidden
    *_, chart, caption = ui.result_outputs(native, languages)
    assert chart["visible"] is False and caption["visible"] is False


def test_warnings_are_shown_above_the_decision():
    ood = "this recording is unlike the training recordings: the rating is less reliable"
    summary = ui.format_result(make_result(0.4, warnings=[ood, "clipping: 1.0% of samples are at full scale"]))
    assert ood in summary and "clipping: 1.0%" in summary
    assert summary.index(ood) < summary.index("**Decision:**")
    assert "Warnings:** none" in ui.format_result(make_result(0.4))


def test_page_with_fast_model():
    fast = Rater("fast")
    head, summary, timeline, _, chart, caption = ui.rate_recording(fast, str(CLIP))
    result = fast.rate(CLIP)
    assert head["label"] == ("native" if result.label == "native" else "non-native")
    assert chart["visible"] is False and caption["visible"] is False  # the fast model has no first-language guess
    assert len(timeline) == len(result.segments)
    app = ui.build_app(fast)
    blocks = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}
    assert isinstance(blocks["result-label"], ui.DecisionLabel) and isinstance(blocks["result-l1"], ui.DecisionLabel)
    assert blocks["result-l1"].visible is False and blocks["result-l1-caption"].visible is False
    assert blocks["result-l1"].get_block_name() == "label"  # rendered by gr.Label's front end
    assert blocks["result-label"].postprocess(head).label == head["label"]


def test_no_audio_is_a_user_message(rater):
    with pytest.raises(gr.Error) as err:
        ui.rate_recording(rater, None)
    assert err.value.message == ui.NO_AUDIO_MESSAGE


def test_audio_error_becomes_gr_error_with_its_message(rater, not_audio):
    with pytest.raises(AudioError) as direct:
        rater.rate(not_audio)
    with pytest.raises(gr.Error) as err:
        ui.rate_recording(rater, str(not_audio))
    assert err.value.message == ui.user_message(direct.value, str(not_audio))
    assert err.value.message.startswith("notes.wav is not a recognised audio file")
    assert str(not_audio.parent) not in err.value.message
    assert "Traceback" not in err.value.message


def test_user_message_hides_server_paths():
    upload = "/tmp/gradio/4de24e299d148ae4f1d2eadd29765472fed43ecfa6e81bfdda530ce9ddba9078/<b>take 1.wav"
    exc = NotAudioError(f"<b>take 1.wav is not a recognised audio file ('{upload[:60]})")
    assert ui.user_message(exc, upload) == (
        "&lt;b&gt;take 1.wav is not a recognised audio file. " + NotAudioError.hint
    )
    exc = AudioError(f"{upload} is empty")
    assert ui.user_message(exc, upload) == "&lt;b&gt;take 1.wav is empty"


def test_unexpected_error_gives_a_generic_message():
    class Broken:
        def rate(self, source):
            raise RuntimeError("internal detail")

    with pytest.raises(gr.Error) as err:
        ui.rate_recording(Broken(), str(CLIP))  # type: ignore[arg-type]
    assert err.value.message == ui.INTERNAL_ERROR_MESSAGE
    assert "internal detail" not in err.value.message


def test_app_shows_passage_credit_and_examples(rater):
    app = ui.build_app(rater)
    assert isinstance(app, gr.Blocks)
    texts = " ".join(str(getattr(b, "value", "")) for b in app.blocks.values())
    assert ui.PASSAGE in texts and "Speech Accent Archive (George Mason University, CC BY-NC-SA)" in texts
    assert "accent only" in texts
    audio = [b for b in app.blocks.values() if isinstance(b, gr.Audio)]
    assert len(audio) == 1 and audio[0].sources == ["microphone", "upload"] and audio[0].type == "filepath"
    examples = [b for b in app.blocks.values() if isinstance(b, gr.Dataset)]
    assert len(examples) == 1 and len(examples[0].samples) == len(ui.SAMPLES)
    assert all((ui.SAMPLES_DIR / name).is_file() for name in ui.SAMPLES)


def test_word_panel_colours_words_escapes_what_was_heard_and_lists_what_to_practise(tmp_path) -> None:
    words = [Word("Please", 0.1, 0.4, "ok", 0.98, "Please"), Word("call", 0.4, 0.7, "different", 0.6, "<b>cold</b>"),
             Word("", 0.7, 0.8, "extra", 0.4, "um"), Word("Stella.", None, None, "missed", None, "")]
    result = make_result(words=words, transcript="Please <b>cold</b> um", reading=Reading(3, 1, 0, 1, 1, 1, 1 / 3, 120.0))
    clip = tmp_path / "take.wav"
    clip.write_bytes(b"RIFF0000WAVE")
    html = ui.words_html(result, str(clip))
    assert html.count('class="w ') == 4 + 5 + 1  # the words, the legend, the word to practise (not the unread one)
    assert "The reading stops after \u201ccall\u201d (not heard: the last 1 of the text's 3 words)." in html
    assert '<span class="w different" title="heard as another word: heard \u201c&lt;b&gt;cold&lt;/b&gt;\u201d (confidence 0.60)" data-start="0.40" data-end="0.70">call</span>' in html
    assert '<span class="w missed" title="not heard">Stella.</span>' in html  # no time: not playable
    assert "<b>cold</b>" not in html and 'src="data:audio/wav;base64,' in html
    assert "1 of 3 words heard as written (33%)" in html
    assert ui.words_output(make_result(), None)["visible"] is False
    free = ui.words_html(make_result(transcript="hello there"))
    assert "hello there" in free and 'class="w ' not in free


def test_handler_word_feedback_on_a_real_reading(rater, words_weights) -> None:
    *_, panel, _, _ = ui.rate_recording(rater, str(CLIP), True, PASSAGE)
    assert panel["visible"] is True
    assert panel["value"].count("data-start=") >= 60 and "Words to practise" in panel["value"]
    *_, free, _, _ = ui.rate_recording(rater, str(CLIP), True, "  ")
    assert "Heard:" in free["value"] and "Stella" in free["value"]
    with pytest.raises(gr.Error, match="no words"):
        ui.rate_recording(rater, str(CLIP), True, "?!")


# --- the page, in a browser ---------------------------------------------------------------------
def _e2e_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (install Debian's chromium: apt-get install chromium)"
    if shutil.which("node") is None:
        return "node not found"
    if not (E2E / "node_modules" / "playwright-core").is_dir():
        return "tests/serve/e2e/node_modules/playwright-core missing (run: cd tests/serve/e2e && npm install)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if why := _e2e_missing():
        pytest.skip(why)
    words_weights_missing()  # word feedback on the page when the weights can be set up
    tmp = tmp_path_factory.mktemp("ui-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "accent_rater", "ui", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"UI server exited with {proc.returncode}:\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"UI server did not answer at {url}:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _browse(url: str, path: Path, *extra: str, env: dict[str, str] | None = None) -> dict:
    run = subprocess.run(
        ["node", str(E2E / "ui.spec.mjs"), url, str(path), *extra], capture_output=True, text=True, timeout=420,
        env={**os.environ, **(env or {})},
    )
    assert run.returncode == 0, f"browser script failed:\n{run.stderr[-3000:]}"
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["external_requests"] == [], "the page must work offline (no CDN, fonts or analytics)"
    return out


@pytest.mark.slow
def test_browser_rates_an_uploaded_clip(server, expected):
    out = _browse(server, CLIP)
    assert out["outcome"] == "result", out
    assert out["score"] == expected.score
    assert "native" in out["label"] and f"{expected.score}%" in out["label"]
    assert expected.band in out["summary"]


@pytest.mark.slow
def test_browser_shows_error_for_non_audio_upload(server, not_audio):
    out = _browse(server, not_audio)
    # the Audio component accepts any file client-side; the server's AudioError reaches the page
    assert out["outcome"] == "error", out
    assert "notes.wav is not a recognised audio file" in out["error"]
    assert "Supported: WAV" in out["error"] and "Traceback" not in out["error"]
    assert "/gradio/" not in out["error"]  # no server-side temp path


def _to_wav(src: Path, dst: Path, rate: int = 48000) -> Path:
    """16-bit mono WAV, the format chromium's fake microphone plays."""
    import wave

    import av
    import numpy as np

    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks = []
    with av.open(str(src)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(chunks).astype("<i2").tobytes())
    return dst


@pytest.mark.slow
def test_browser_rates_a_microphone_recording(server, expected, tmp_path):
    # chromium's fake microphone plays the clip; the page records 12 s of it and uploads a WAV
    out = _browse(server, _to_wav(CLIP, tmp_path / "mic.wav"), "--record", "12")
    assert out["outcome"] == "result", out
    assert "Speech analysed:" in out["summary"] and f"{out['score']}%" in out["label"]
    assert abs(out["score"] - expected.score) <= 20  # the first 12 s of the same speaker


@pytest.mark.slow
def test_browser_word_feedback_and_click_to_play(server, words_weights, tmp_path):
    """Three worked examples as the page shows them (a native reading, a non-native one, a reading
    that stops half-way); screenshots go to $WORDS_SCREENSHOTS (reports/words for the report)."""
    from accent_rater import audio

    shots = Path(os.environ.get("WORDS_SCREENSHOTS", tmp_path))
    half = audio.load_audio(SAMPLES / "native_uk_english38.opus")
    stopped = write_wav(tmp_path / "stops_half_way.wav", (half[: len(half) // 2] * 32767).astype("int16"), audio.SAMPLE_RATE)
    seen = {}
    for name, clip in (("native", CLIP), ("non_native", SAMPLES / "nonnative_mandarin8.opus"), ("stops_half_way", stopped)):
        out = _browse(server, clip, env={"E2E_WORDS": "1", "E2E_SCREENSHOT": str(shots / f"example_{name}.png"),
                                         "E2E_TIMEOUT_MS": "300000"})  # the first rating loads Whisper base
        assert out["outcome"] == "result" and out["page_errors"] == [], out
        words = out["words"]
        passage = [s for s in words["statuses"] if s != "extra"]
        assert len(passage) == 69, words["statuses"]
        clicked = words["clicked"]
        events = dict(words["player_events"])  # a click plays the word from its start and stops after its end
        assert clicked["playing_class"] and set(events) == {"playing", "pause"}, words
        assert clicked["start"] - 0.1 <= events["playing"] <= clicked["start"] + 0.05, words
        assert clicked["end"] - 0.05 <= events["pause"] <= clicked["end"] + 1.0, words
        assert (shots / f"example_{name}.png").stat().st_size > 10_000
        seen[name] = passage
    assert seen["native"].count("ok") >= 62 and seen["non_native"].count("ok") < seen["native"].count("ok") - 5
    assert seen["stops_half_way"][-20:] == ["missed"] * 20

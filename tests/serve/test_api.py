"""REST API end to end: real uvicorn servers (subprocesses on 127.0.0.1) with the bundled model,
exercised over HTTP with httpx.

Two servers are started once for the module through the CLI: the default one
(``python -m accent_rater serve``) and a small, locked-down one (tiny ``--max-bytes --max-seconds
--max-batch``, one rating at a time and no queue, an API key from the environment, one CORS
origin) for the 413, 401, 503 and CORS paths. Each server gets its own empty TMPDIR (so
``tempfile.gettempdir()`` inside it is that folder); a late test checks that nothing was left
there, and the last one stops the small server with a rating in flight.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from accent_rater.serve.limits import API_KEY_ENV, Settings

from conftest import FIXTURES, REPO, write_wav

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402 (after the skips)

SAMPLES = REPO / "src" / "accent_rater" / "assets" / "samples"
CLIP = SAMPLES / "native_uk_english38.opus"  # 80 KB, 22.9 s, p_native ~0.68
BIG_CLIP = SAMPLES / "nonnative_mandarin8.opus"  # 97 KB
SHORT_CLIP = FIXTURES / "nonnative_spanish6.flac"  # 91 KB, 7 s
SMALL_MAX_BYTES = 95_000  # CLIP and SHORT_CLIP fit, BIG_CLIP does not
SMALL_MAX_SECONDS = 10.0  # CLIP is too long for the small server, SHORT_CLIP is not
SMALL_MAX_BATCH = 2
API_KEY = "test-key-0123"
ORIGIN = "http://example.org"
STARTUP_TIMEOUT_S = 180.0
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


# --- helpers ---------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, args: list[str], tmpdir: Path, logdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmpdir = tmpdir
        self.log_path = logdir / f"server-{self.port}.log"
        env = {**{k: v for k, v in os.environ.items() if k != API_KEY_ENV}, **(env or {})}  # a key only where given
        env.update(
            TMPDIR=str(tmpdir),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p),
        )
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "accent_rater", "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S  # /healthz needs no API key
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT_S:.0f} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()


def _assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tmpdirs(tmp_path_factory):
    return {
        "main": tmp_path_factory.mktemp("api_server_tmp"),
        "small": tmp_path_factory.mktemp("api_small_server_tmp"),
        "logs": tmp_path_factory.mktemp("api_server_logs"),
    }


@pytest.fixture(scope="module")
def servers(tmpdirs):
    main = Server([], tmpdirs["main"], tmpdirs["logs"])
    small = Server(
        [
            "--max-bytes", str(SMALL_MAX_BYTES),
            "--max-seconds", str(SMALL_MAX_SECONDS),
            "--max-batch", str(SMALL_MAX_BATCH),
            "--max-concurrent", "1",
            "--max-queue", "0",
            "--cors-origin", ORIGIN,
        ],
        tmpdirs["small"],
        tmpdirs["logs"],
        env={API_KEY_ENV: API_KEY, "ACCENT_RATER_WEIGHTS": str(tmpdirs["small"])},  # no Whisper base: no word feedback
    )
    try:
        main.wait_ready()
        small.wait_ready()
        yield {"main": main, "small": small}
    finally:
        main.stop()
        small.stop()


@pytest.fixture(scope="module")
def server(servers) -> Server:
    return servers["main"]


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def small_client(servers):
    with httpx.Client(base_url=servers["small"].url, timeout=TIMEOUT, headers={"X-API-Key": API_KEY}) as c:
        yield c


@pytest.fixture(scope="module")
def clip_bytes() -> bytes:
    return CLIP.read_bytes()


@pytest.fixture(scope="module")
def rated(client, clip_bytes):
    """CLIP rated once via multipart and once as a raw body."""
    multi = client.post("/v1/rate", files={"file": (CLIP.name, clip_bytes, "audio/ogg")})
    raw = client.post(
        "/v1/rate",
        content=clip_bytes,
        headers={"Content-Type": "audio/ogg", "Content-Disposition": f'attachment; filename="{CLIP.name}"'},
    )
    assert multi.status_code == 200, multi.text
    assert raw.status_code == 200, raw.text
    return multi.json(), raw.json()


# --- service endpoints -----------------------------------------------------------------------------
def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["model"].startswith("default ")


def test_model_card(client):
    r = client.get("/v1/model")
    assert r.status_code == 200
    card = r.json()
    assert set(card) == {"name", "version", "threshold", "calibration", "members", "frontend", "card_markdown", "l1_languages"}
    assert card["name"] == "default"
    from accent_rater import Rater

    assert card["l1_languages"] == Rater().l1_languages and "spanish" in card["l1_languages"]
    assert 0.0 < card["threshold"] < 1.0
    assert {"a", "b", "train_prior"} <= set(card["calibration"])
    assert card["members"] and all("name" in m for m in card["members"])
    assert card["frontend"]["sample_rate"] == 16_000
    assert isinstance(card["card_markdown"], str)


def test_openapi_lists_the_endpoints(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "Accent Rater"
    assert set(spec["paths"]) == {"/v1/rate", "/v1/rate/batch", "/v1/model", "/healthz"}
    rate = spec["paths"]["/v1/rate"]["post"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(rate["requestBody"]["content"])
    assert {"200", "413", "415", "422"} <= set(rate["responses"])
    schemas = spec["components"]["schemas"]
    assert {"RateResult", "ErrorResponse", "BatchResponse", "ModelInfo"} <= set(schemas)
    assert {"p_native", "l1", "l1_guess"} <= set(schemas["RateResult"]["properties"])


def test_unknown_path_is_a_json_error(client):
    _assert_error(client.get("/v1/nope"), 404, "not_found")
    _assert_error(client.get("/v1/rate"), 405, "method_not_allowed")


# --- rating ----------------------------------------------------------------------------------------
def test_rate_multipart_and_raw_agree_with_in_process_rater(rated):
    from accent_rater import Rater

    multi, raw = rated
    assert multi["filename"] == raw["filename"] == CLIP.name
    assert multi["p_native"] == raw["p_native"]
    assert multi == raw  # the same result whichever way the file was sent
    # the API returns AccentResult.to_dict() (p_native rounded to 4 decimals)
    local = Rater().rate(CLIP)
    assert abs(multi["p_native"] - local.to_dict()["p_native"]) <= 1e-6
    assert abs(multi["p_native"] - local.p_native) <= 5e-5
    assert multi["label"] == local.label and multi["score"] == local.score and multi["band"] == local.band
    assert multi["model"] == local.model
    assert len(multi["segments"]) == len(local.segments)
    assert set(multi["segments"][0]) == {"start_s", "end_s", "p_native"}
    assert multi["l1"] == local.to_dict()["l1"] and multi["l1_guess"] == local.l1_guess


def test_raw_body_without_filename_has_no_filename(client, clip_bytes, rated):
    r = client.post("/v1/rate", content=clip_bytes, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    assert "filename" not in r.json()
    assert r.json()["p_native"] == rated[0]["p_native"]


def test_threshold_and_prior_are_per_request(client, clip_bytes, rated):
    p = rated[0]["p_native"]
    default_threshold = rated[0]["threshold"]
    for thr in (0.05, round(max(0.01, p - 0.02), 4), round(min(0.99, p + 0.02), 4), 0.95):
        r = client.post("/v1/rate", params={"threshold": thr}, content=clip_bytes)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["threshold"] == thr
        assert body["p_native"] == p  # the threshold moves the decision, not the probability
        assert body["label"] == ("native" if p >= thr else "non_native")
        assert body["borderline"] == (abs(body["p_native"] - thr) < 0.10)
    low = client.post("/v1/rate", params={"prior": 0.1}, content=clip_bytes).json()
    assert low["p_native"] < p
    # the shared Rater was not changed by the requests above
    again = client.post("/v1/rate", content=clip_bytes).json()
    assert again["threshold"] == default_threshold and again["p_native"] == p
    assert client.get("/v1/model").json()["threshold"] == default_threshold


@pytest.mark.parametrize("params", [{"threshold": 1.5}, {"threshold": 0}, {"prior": -0.1}, {"threshold": "abc"}])
def test_invalid_query_is_422(client, params):
    _assert_error(client.post("/v1/rate", params=params, content=b"x"), 422, "invalid_request")


def test_batch_one_good_one_bad(client, clip_bytes, rated):
    junk = random.Random(0).randbytes(20_000)
    r = client.post(
        "/v1/rate/batch",
        files=[("files", (CLIP.name, clip_bytes, "audio/ogg")), ("files", ("junk.bin", junk, "application/octet-stream"))],
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2
    good, bad = results
    assert good["filename"] == CLIP.name and good["p_native"] == rated[0]["p_native"] and "error" not in good
    assert bad["filename"] == "junk.bin" and bad["error"]["code"] == "not_audio" and "p_native" not in bad


def test_batch_needs_files(client):
    _assert_error(client.post("/v1/rate/batch", files={"other": ("x.txt", b"hello")}), 422, "missing_file")
    _assert_error(client.post("/v1/rate/batch", content=b"abc", headers={"Content-Type": "audio/ogg"}), 415)


def test_random_bytes_is_415(client):
    junk = random.Random(1).randbytes(50_000)
    _assert_error(client.post("/v1/rate", content=junk, headers={"Content-Type": "application/octet-stream"}), 415, "not_audio")
    _assert_error(client.post("/v1/rate", files={"file": ("junk.wav", junk)}), 415, "not_audio")


def test_empty_body_is_422(client):
    _assert_error(client.post("/v1/rate", content=b""), 422, "empty")
    _assert_error(client.post("/v1/rate", files={"file": ("empty.wav", b"")}), 422, "empty")


def test_missing_file_field_is_422(client):
    _assert_error(client.post("/v1/rate", files={"upload": ("a.opus", b"abc")}), 422, "missing_file")
    _assert_error(client.post("/v1/rate", files={"note": (None, "no file here")}), 422, "missing_file")


def test_malformed_multipart_is_a_json_error(client):
    r = client.post("/v1/rate", content=b"--nope\r\n garbage", headers={"Content-Type": "multipart/form-data"})
    _assert_error(r, 400, "invalid_multipart")


def test_three_minutes_of_silence_is_422_silent(client, tmp_path):
    wav = write_wav(tmp_path / "silence.wav", np.zeros(180 * 16_000, np.int16), 16_000).read_bytes()
    err = _assert_error(client.post("/v1/rate", content=wav, headers={"Content-Type": "audio/wav"}), 422, "silent")
    assert "silent" in err["message"]


def test_concurrent_clients_and_responsive_healthz(server, clip_bytes, rated):
    n = 8
    statuses: list[int | None] = [None] * n
    p_values: list[float | None] = [None] * n
    done_at: list[float] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n + 1)

    def worker(i: int) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
                start.wait()
                r = c.post("/v1/rate", files={"file": (f"c{i}.opus", clip_bytes, "audio/ogg")})
                statuses[i] = r.status_code
                if r.status_code == 200:
                    p_values[i] = r.json()["p_native"]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done_at.append(time.monotonic())

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    health: list[tuple[float, float, int]] = []  # (answered at, latency, status)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        start.wait()
        time.sleep(0.3)  # let the uploads land
        while any(t.is_alive() for t in threads):
            t0 = time.monotonic()
            r = c.get("/healthz")
            health.append((time.monotonic(), time.monotonic() - t0, r.status_code))
            time.sleep(0.2)
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert statuses == [200] * n
    assert all(p == rated[0]["p_native"] for p in p_values)
    last_done = max(done_at)
    during = [h for h in health if h[0] < last_done]
    assert during, "no /healthz answer arrived while the ratings were running"
    assert all(status == 200 for _, _, status in health)
    # the event loop is never blocked by a rating: /healthz answers quickly even under load
    assert max(lat for _, lat, _ in during) < 3.0, [round(lat, 3) for _, lat, _ in during]


# --- first-language guess (in process: fastapi's TestClient) ---------------------------------------
def test_l1_in_responses_model_card_and_openapi():
    """The real default model in process: a non-native clip's first-language guess comes back in
    single and batch responses exactly as in-process, and the schema documents it."""
    from fastapi.testclient import TestClient

    from accent_rater import Rater
    from accent_rater.serve import api

    clip = SAMPLES / "nonnative_mandarin8.opus"
    local = Rater().rate(clip)
    assert local.l1, "the default model gives non-native speech a first-language guess"
    data = clip.read_bytes()
    with TestClient(api.create_app()) as c:
        body = c.post("/v1/rate", files={"file": (clip.name, data, "audio/ogg")}).json()
        assert body["l1"] == local.to_dict()["l1"] and body["l1_guess"] == local.l1_guess
        batch = c.post("/v1/rate/batch", files=[("files", ("a.opus", data)), ("files", ("b.opus", data))]).json()
        assert [(r["filename"], r["l1"]) for r in batch["results"]] == [("a.opus", body["l1"]), ("b.opus", body["l1"])]
        languages = c.get("/v1/model").json()["l1_languages"]
        assert languages == Rater().l1_languages and "mandarin" in languages
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    props = schemas["RateResult"]["properties"]
    assert props["l1"]["type"] == "array" and props["l1"]["items"]["$ref"].endswith("/L1Guess")
    assert set(schemas["L1Guess"]["properties"]) == {"language", "p"} and set(schemas["L1Guess"]["required"]) == {"language", "p"}
    assert props["l1_guess"]["type"] == "string"
    for field in ("l1", "l1_guess"):
        text = props[field]["description"]
        assert "guess about the accent, never about a person" in text
        assert "Knows: " + ", ".join(languages) + ";" in text
        assert "nearest one" in text and '"unsure"' in text
    assert "l1_languages" in schemas["ModelInfo"]["properties"]
    assert props["segments"]["description"] == "Per-window ratings in seconds of the original recording"
    assert "7 s" not in str(schemas["Segment"]) and "3.5 s" not in str(props)


def test_word_feedback_by_query_or_form_field(words_weights):
    """words / text as query parameters or multipart fields (a field wins), the same words as in process,
    free speech, an unusable text, and the schema of the new fields."""
    from fastapi.testclient import TestClient

    from accent_rater import Rater
    from accent_rater.serve import api

    clip = FIXTURES / "native_us_english5.flac"
    data = clip.read_bytes()
    end = "Wednesday at the train station."
    local = Rater().rate(clip, words=True, text=end).to_dict()
    local["words"] = [{k: v for k, v in w.items() if v is not None} for w in local["words"]]  # the API leaves out nulls
    with TestClient(api.create_app()) as c:
        plain = c.post("/v1/rate", files={"file": (clip.name, data)}).json()
        assert plain["words"] == [] and plain["transcript"] == "" and "reading" not in plain
        by_query = c.post("/v1/rate", params={"words": "true", "text": end}, files={"file": (clip.name, data)}).json()
        assert by_query["words"] == local["words"] and by_query["reading"] == local["reading"]
        by_form = c.post("/v1/rate", params={"text": "ignored: the form field wins"}, data={"words": "true", "text": end},
                         files={"file": (clip.name, data)}).json()
        assert by_form["words"] == local["words"]
        free = c.post("/v1/rate", data={"words": "true", "text": ""}, files={"file": (clip.name, data)}).json()
        assert free["transcript"] and free["words"] == [] and "reading" not in free
        _assert_error(c.post("/v1/rate?words=true&text=%3F%21", files={"file": (clip.name, data)}), 422, "bad_text")
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    props = schemas["RateResult"]["properties"]
    from accent_rater.words import Word

    assert props["words"]["items"]["$ref"].endswith("/Word") and set(schemas["Word"]["properties"]) == set(Word._fields)
    assert set(local["words"][0]) <= set(Word._fields)
    assert props["reading"]["anyOf"][0]["$ref"].endswith("/Reading")
    assert set(schemas["Reading"]["properties"]) == set(local["reading"])


def test_fast_model_has_no_l1_guess(clip_bytes):
    from fastapi.testclient import TestClient

    from accent_rater import Rater
    from accent_rater.serve import api

    with TestClient(api.create_app("fast")) as c:
        body = c.post("/v1/rate", files={"file": (CLIP.name, clip_bytes, "audio/ogg")}).json()
        card = c.get("/v1/model").json()
        spec = c.get("/openapi.json").json()
    local = Rater("fast").rate(CLIP)
    assert body["model"] == local.model and body["model"].startswith("fast ")
    assert body["p_native"] == local.to_dict()["p_native"]
    assert body["l1"] == [] and body["l1_guess"] == ""
    assert card["name"] == "fast" and card["l1_languages"] == []
    text = spec["components"]["schemas"]["RateResult"]["properties"]["l1"]["description"]
    assert "The loaded model has no first-language guess" in text and "Knows:" not in text


# --- the response schema is generated from AccentResult --------------------------------------------
def test_rate_result_schema_is_accent_result(client, rated):
    """Every AccentResult field, with its type's JSON shape and its description, is in RateResult (plus
    the upload's file name), and a real response has exactly those fields."""
    from typing import get_args, get_type_hints

    from accent_rater.rater import AccentResult, Segment

    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    props = schemas["RateResult"]["properties"]
    hints = get_type_hints(AccentResult, include_extras=True)
    assert list(props) == ["filename", *hints]
    assert set(schemas["RateResult"]["required"]) == set(hints)
    for name, hint in hints.items():
        assert props[name]["description"].startswith(get_args(hint)[1]), name
    segment = get_type_hints(Segment, include_extras=True)
    assert {k: v["description"] for k, v in schemas["Segment"]["properties"].items()} == {k: get_args(v)[1] for k, v in segment.items()}
    assert ["native", "non_native"] in [x.get("enum") for x in props["label"]["anyOf"]]  # or null: not rated
    assert "integer" in [x.get("type") for x in props["score"]["anyOf"]]
    assert set(rated[0]) == set(props) - {"reading", "pronunciation"}  # null (left out) without them
    assert set(rated[0]["segments"][0]) == set(segment)


# --- schemathesis: generated requests against the live OpenAPI document ----------------------------
OPERATIONS = [("POST", "/v1/rate"), ("POST", "/v1/rate/batch"), ("GET", "/v1/model"), ("GET", "/healthz")]


@pytest.fixture(scope="module")
def live_schema(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    assert sorted((op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()) == sorted(OPERATIONS)
    return schema


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_schemathesis_no_server_error_and_responses_match_the_schema(live_schema, method, path):
    """Generated requests, valid and invalid by the schema (mostly garbage bodies and queries): never a
    5xx, and every response matches its documented schema."""
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error, response_schema_conformance

    op = live_schema[path][method]
    cases = st.one_of(op.as_strategy(schemathesis.GenerationMode.POSITIVE), op.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=120)

    check()


# --- limits, access and bounded work (the small, locked-down server) --------------------------------
def test_small_server_rates_a_short_clip(small_client):
    from accent_rater import Rater

    data = SHORT_CLIP.read_bytes()
    assert len(data) <= SMALL_MAX_BYTES
    r = small_client.post("/v1/rate", files={"file": (SHORT_CLIP.name, data, "audio/flac")})
    assert r.status_code == 200, r.text
    local = Rater().rate(SHORT_CLIP)
    assert 0.0 < r.json()["p_native"] < 1.0
    assert r.json()["label"] == local.label and r.json()["p_native"] == local.to_dict()["p_native"]


def test_word_feedback_without_the_weights_is_501_and_says_how_to_enable_it(small_client):
    data = SHORT_CLIP.read_bytes()
    r = small_client.post("/v1/rate?words=true", files={"file": (SHORT_CLIP.name, data, "audio/flac")})
    error = _assert_error(r, 501, "words_unavailable")
    assert "accent-rater fetch-weights --words" in error["message"]
    r = small_client.post("/v1/rate/batch", data={"words": "true"}, files=[("files", ("a.flac", data, "audio/flac"))])
    assert r.status_code == 200 and r.json()["results"][0]["error"]["code"] == "words_unavailable"
    assert small_client.post("/v1/rate", files={"file": (SHORT_CLIP.name, data, "audio/flac")}).status_code == 200


def test_oversize_body_is_413(small_client):
    big = BIG_CLIP.read_bytes()
    assert len(big) > SMALL_MAX_BYTES
    _assert_error(small_client.post("/v1/rate", content=big, headers={"Content-Type": "audio/ogg"}), 413, "too_large")
    _assert_error(small_client.post("/v1/rate", files={"file": (BIG_CLIP.name, big, "audio/ogg")}), 413, "too_large")


def test_oversize_chunked_body_is_413(small_client):
    """No Content-Length: the server stops reading at the limit."""
    big = BIG_CLIP.read_bytes()

    def chunks():
        for i in range(0, len(big), 16_384):
            yield big[i: i + 16_384]

    r = small_client.post("/v1/rate", content=chunks(), headers={"Content-Type": "audio/ogg"})
    _assert_error(r, 413, "too_large")


def test_declared_oversize_is_refused_without_reading_the_body(servers):
    """Content-Length over the limit: 413 comes back although no body byte was sent."""
    port = servers["small"].port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            b"POST /v1/rate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/ogg\r\n"
            b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Length: 1000000000\r\n\r\n"
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413"), data[:200]


def test_too_long_is_413(small_client, clip_bytes):
    assert len(clip_bytes) <= SMALL_MAX_BYTES
    _assert_error(small_client.post("/v1/rate", content=clip_bytes), 413, "too_long")


def test_batch_limits(small_client, clip_bytes):
    files = [("files", (f"f{i}.opus", clip_bytes, "audio/ogg")) for i in range(SMALL_MAX_BATCH + 1)]
    _assert_error(small_client.post("/v1/rate/batch", files=files), 413, "too_many_files")
    big = BIG_CLIP.read_bytes()
    r = small_client.post(
        "/v1/rate/batch",
        files=[("files", ("big.opus", big, "audio/ogg")), ("files", ("long.opus", clip_bytes, "audio/ogg"))],
    )
    assert r.status_code == 200, r.text
    codes = [(x["filename"], x["error"]["code"]) for x in r.json()["results"]]
    assert codes == [("big.opus", "too_large"), ("long.opus", "too_long")]


def test_api_key_required_everywhere_but_healthz(servers, small_client):
    url = servers["small"].url
    for method, path in [("POST", "/v1/rate"), ("POST", "/v1/rate/batch"), ("GET", "/v1/model"), ("GET", "/openapi.json"),
                         ("GET", "/docs"), ("GET", "/v1/nope")]:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
            r = httpx.request(method, url + path, headers=headers, content=b"x" if method == "POST" else None, timeout=TIMEOUT)
            _assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(url + "/healthz", timeout=TIMEOUT).status_code == 200
    assert small_client.get("/v1/model").status_code == 200  # X-API-Key
    assert httpx.get(url + "/v1/model", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=TIMEOUT).status_code == 200
    assert API_KEY not in servers["small"].log()


def test_cors_only_when_asked_for(client, small_client):
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    # the default server sends no CORS headers at all
    assert not any(h.startswith("access-control-") for h in client.get("/healthz", headers={"Origin": ORIGIN}).headers)
    assert not any(h.startswith("access-control-") for h in client.options("/v1/rate", headers=preflight).headers)
    # the small one allows its origin (preflights need no key) and no other
    r = small_client.options("/v1/rate", headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    assert small_client.get("/v1/model", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"] == ORIGIN
    other = small_client.get("/v1/model", headers={"Origin": "http://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_full_queue_is_503_with_retry_after(servers, small_client):
    """One rating at a time and no queue: while a request is in flight (its upload held open by the
    client), every other rating request gets 503 ``busy`` with Retry-After; afterwards both work."""
    data, release, sent = SHORT_CLIP.read_bytes(), threading.Event(), []

    def held_body():
        yield data[:1000]
        release.wait(60)
        yield data[1000:]

    def first() -> None:
        sent.append(small_client.post("/v1/rate", content=held_body(), headers={"Content-Type": "audio/flac"}))

    t = threading.Thread(target=first, daemon=True)
    t.start()
    try:
        for _ in range(100):  # the held request is admitted within moments of its headers arriving
            r = small_client.post("/v1/rate", content=b"")
            if r.status_code == 503:
                break
            _assert_error(r, 422, "empty")
            time.sleep(0.05)
        err = _assert_error(r, 503, "busy")
        assert r.headers["retry-after"].isdigit() and int(r.headers["retry-after"]) >= 1 and "try again" in err["message"]
        _assert_error(small_client.post("/v1/rate/batch", files={"files": ("a.flac", data)}), 503, "busy")
        assert small_client.get("/healthz").status_code == 200 and small_client.get("/v1/model").status_code == 200
    finally:
        release.set()
        t.join(120)
    assert sent[0].status_code == 200, sent[0].text
    assert small_client.post("/v1/rate", content=data).status_code == 200


def test_timeout_is_504(clip_bytes):
    """A rating that does not finish within --timeout: 504 ``timeout`` (a batch file gets the error)."""
    from fastapi.testclient import TestClient

    from accent_rater.serve import api

    with TestClient(api.create_app(settings=Settings(timeout=0.001))) as c:
        err = _assert_error(c.post("/v1/rate", content=clip_bytes), 504, "timeout")
        assert "0.001 s" in err["message"]
        (only,) = c.post("/v1/rate/batch", files={"files": ("a.opus", clip_bytes)}).json()["results"]
        assert only["filename"] == "a.opus" and only["error"]["code"] == "timeout"
        assert c.get("/healthz").status_code == 200


def test_serve_options_reach_the_server(monkeypatch):
    """The one entry point: every `serve` option lands in Settings (uvicorn itself is not started)."""
    from typer.testing import CliRunner

    from accent_rater.cli import app
    from accent_rater.serve import api

    calls = []
    monkeypatch.setattr(api, "serve", lambda *args: calls.append(args))
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    runner = CliRunner()
    args = ["serve", "--port", "9001", "--model", "fast", "--max-bytes", "1000", "--max-seconds", "5", "--max-batch", "3",
            "--max-concurrent", "4", "--max-queue", "0", "--timeout", "2.5", "--cors-origin", "http://a", "--cors-origin", "http://b"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--api-key", "from-flag"]).exit_code == 0
    monkeypatch.delenv(API_KEY_ENV)
    assert runner.invoke(app, ["serve"]).exit_code == 0
    expected = Settings(max_bytes=1000, max_seconds=5.0, max_batch=3, max_concurrent=4, max_queue=0, timeout=2.5,
                        api_key="from-env", cors_origins=("http://a", "http://b"))
    assert calls[0] == ("127.0.0.1", 9001, "fast", expected, None)  # no --profile
    assert calls[1][3].api_key == "from-flag"
    assert calls[2] == ("127.0.0.1", 8000, None, Settings(), None)
    for bad in (["--max-queue", "-1"], ["--max-concurrent", "0"], ["--timeout", "0"], ["--max-bytes", "x"]):
        result = runner.invoke(app, ["serve", *bad])
        assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(calls) == 3
    assert not hasattr(api, "main")  # no second entry point


def test_serve_with_a_bad_model_fails_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "accent_rater", "serve", "--model", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "model bundle" in proc.stderr and "Traceback" not in proc.stderr


# --- keep last: nothing written to disk or logged; shutdown lets the rating in flight finish ----------
def test_servers_left_no_temp_files_and_logged_no_file_names(servers, tmpdirs):
    for name in ("main", "small"):
        assert servers[name].proc.poll() is None, servers[name].log()
        left = sorted(p.name for p in tmpdirs[name].iterdir())
        assert left == [], f"{name} server left files in its temp dir: {left}"
    log = servers["main"].log_path.read_text()
    assert "POST '/v1/rate' " in log and " bytes -> 200 in " in log and " bytes -> 415 not_audio in " in log
    assert CLIP.name not in log and "junk.bin" not in log


def test_shutdown_finishes_the_rating_in_flight(servers, small_client):
    """SIGTERM while a rating runs: the client still gets its result, then the server exits cleanly."""
    small = servers["small"]
    data, uploaded, result = SHORT_CLIP.read_bytes(), threading.Event(), []

    def body():
        yield data
        uploaded.set()

    t = threading.Thread(target=lambda: result.append(small_client.post("/v1/rate", content=body())), daemon=True)
    t.start()
    assert uploaded.wait(60)
    time.sleep(0.2)  # the request is being read or rated
    small.proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert result and result[0].status_code == 200, result
    assert small.proc.wait(60) in (0, -signal.SIGTERM), small.log()  # uvicorn re-raises the signal once done
    assert "Finished server process" in small.log()

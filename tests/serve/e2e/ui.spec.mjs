// Browser check of the Accent Rater web app, driven by tests/serve/test_ui.py.
//
//   node tests/serve/e2e/ui.spec.mjs <url> <file to upload>
//   node tests/serve/e2e/ui.spec.mjs <url> <16-bit WAV> --record <seconds>
//
// Launches the system chromium (/usr/bin/chromium, never a downloaded browser) through
// playwright-core and opens the page. Upload mode switches the audio input to "upload" and uploads
// the file; record mode feeds the WAV to chromium's fake microphone and records it for <seconds>
// with the page's Record/Stop buttons. Then it clicks Rate and waits for either a result or an
// error toast. Prints one JSON object on stdout:
//   {outcome: "result"|"error"|"timeout", score, label, summary, error, words, external_requests, page_errors}
// With E2E_WORDS=1 it also reads the word-feedback panel (statuses, words to practise), clicks a
// flagged word (else the first timed one) and reports the player's events with its position
// (`words.player_events`: [["playing", s], ["pause", s]]); E2E_SCREENSHOT=<png> saves the whole page then.
// Exit code 0 whenever the page could be driven (the caller asserts on the JSON), 2 otherwise.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, file, flag, seconds] = process.argv.slice(2);
const record = flag === '--record';
if (!url || !file || (flag && !(record && Number(seconds) > 0))) {
  console.error('usage: node ui.spec.mjs <url> <file> [--record <seconds>]');
  process.exit(2);
}
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS || 90000);
const local = (u) => /^(https?|wss?):\/\/(127\.0\.0\.1|localhost)(:\d+)?\//.test(u) || /^(data|blob|about):/.test(u);

const profile = mkdtempSync(join(tmpdir(), 'accent-rater-e2e-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(record ? ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${file}`] : []),
    ],
    permissions: record ? ['microphone'] : [],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT_MS);
  const external = [];
  const pageErrors = [];
  page.on('request', (r) => { if (!local(r.url())) external.push(r.url()); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  await page.goto(url, { waitUntil: 'load' });
  await page.locator('#rate-button').waitFor({ state: 'visible' });

  const uploaded = page.waitForResponse((r) => r.url().includes('/gradio_api/upload') && r.request().method() === 'POST');
  if (record) {
    // The microphone is the default source: Record, wait, Stop; the page then uploads a WAV.
    await page.locator('#audio-input button.record').click();
    await page.locator('#audio-input button.stop-button').first().waitFor({ state: 'visible' });
    await page.waitForTimeout(Number(seconds) * 1000);
    await page.locator('#audio-input button.stop-button').first().click();
  } else {
    // Switch the source to upload, which renders the file input.
    await page.locator('#audio-input button[aria-label="Upload file"]').click();
    const input = page.locator('#audio-input input[type=file]');
    await input.waitFor({ state: 'attached' });
    await input.setInputFiles(file);
  }
  const uploadStatus = (await uploaded).status();
  // Once uploaded, the component swaps its drop zone or recorder for a player (or for nothing, if
  // the browser cannot decode the file); give the UI a moment to commit the new value.
  await page.locator('#audio-input audio, #audio-input [data-testid="waveform-controls"]').first()
    .waitFor({ state: 'attached', timeout: 5000 }).catch(() => {});
  await page.waitForTimeout(500);

  await page.locator('#rate-button').click();
  const summary = page.locator('#result-summary');
  const toast = page.locator('[data-testid="toast-body"]');
  const outcome = await Promise.race([
    summary.getByText(/Score:\s*\d+/).waitFor({ state: 'visible' }).then(() => 'result'),
    toast.first().waitFor({ state: 'visible' }).then(() => 'error'),
  ]).catch(() => 'timeout');

  let words = null;
  if (outcome === 'result' && process.env.E2E_WORDS) {
    const panel = page.locator('#result-words');
    await panel.locator('.passage').waitFor({ state: 'visible' });
    const spans = panel.locator('.passage .w');
    const statuses = await spans.evaluateAll((els) => els.map((e) => e.classList[1]));
    const flagged = panel.locator('.passage .w.different[data-start], .passage .w.unclear[data-start]').first();
    const word = (await flagged.count()) ? flagged : panel.locator('.passage .w[data-start]').first();
    const start = Number(await word.getAttribute('data-start'));
    const end = Number(await word.getAttribute('data-end'));
    const player = panel.locator('audio');
    await player.evaluate((a) => (a.readyState >= 1 ? null : new Promise((ok) => a.addEventListener('loadedmetadata', ok, { once: true }))));
    // the player's own events, with its position when each fired (robust to a slow machine)
    await player.evaluate((a) => {
      a.eventLog = [];
      for (const name of ['playing', 'pause']) a.addEventListener(name, () => a.eventLog.push([name, a.currentTime]));
    });
    await word.click();
    await page.waitForFunction(() => document.querySelector('#result-words audio').eventLog.some((e) => e[0] === 'pause'),
      null, { timeout: 30000 }).catch(() => {});
    words = {
      statuses,
      clicked: { text: (await word.innerText()).trim(), start, end, playing_class: await word.evaluate((e) => e.classList.contains('playing')) },
      player_events: await player.evaluate((a) => a.eventLog),
      text: (await panel.innerText()).trim(),
    };
    if (process.env.E2E_SCREENSHOT) await page.screenshot({ path: process.env.E2E_SCREENSHOT, fullPage: true });
  }
  const summaryText = (await summary.innerText().catch(() => '')).trim();
  const m = summaryText.match(/Score:\s*(\d+)/);
  const out = {
    outcome,
    mode: record ? 'record' : 'upload',
    upload_status: uploadStatus,
    score: m ? Number(m[1]) : null,
    label: (await page.locator('#result-label').innerText().catch(() => '')).trim(),
    summary: summaryText,
    error: outcome === 'error' ? (await toast.first().innerText()).trim() : null,
    words,
    external_requests: external,
    page_errors: pageErrors,
  };
  console.log(JSON.stringify(out));
} catch (err) {
  console.error(String(err && err.stack ? err.stack : err));
  process.exitCode = 2;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}

// The report page (provided). It copes with every stage of the course:
//  - 200 {key}                 : the report was built inside the request (units 01-02)
//  - 202 {job_id}              : a worker builds it; nothing to poll yet (units 03-04)
//  - 202 {job_id, status_url}  : poll the status URL, show progress, then the link (unit 05 on)
// Each click sends an Idempotency-Key header: unit 12's app makes one report per key.
const form = document.getElementById("report-form");
const button = document.getElementById("start");
const message = document.getElementById("message");
const progress = document.getElementById("progress");
const bar = document.getElementById("bar");
const percent = document.getElementById("percent");
const download = document.getElementById("download");

function say(text) { message.textContent = text; }

function showProgress(value) {
  progress.hidden = false;
  bar.value = value;
  percent.textContent = `${value}%`;
}

// A status check that fails (Redis restarting: 503; the network: no answer)
// is not the end of the report: wait, longer each time up to 30 s (or what
// Retry-After says), and ask again. A 4xx is final: that report does not exist.
async function poll(statusUrl) {
  let wait = 500;
  while (true) {
    let response = null;
    let body = {};
    try {
      response = await fetch(statusUrl, { headers: { Accept: "application/json" } });
      body = await response.json().catch(() => ({}));
    } catch (error) {
      response = null;  // no answer at all: the server is restarting, or the network dropped
    }
    if (response === null || response.status >= 500) {
      const retryAfter = response ? Number(response.headers.get("Retry-After")) * 1000 : 0;
      wait = Math.min(Math.max(wait * 2, retryAfter || 0), 30000);
      say(`${body.error || "The server is not answering."} Trying again in ${Math.round(wait / 1000)} s...`);
      await new Promise((resolve) => setTimeout(resolve, wait));
      continue;
    }
    if (!response.ok) { say(body.error || `Status check failed (${response.status}).`); break; }
    wait = 500;
    showProgress(body.progress || 0);
    if (body.status === "finished") {
      say("Your report is ready.");
      download.href = body.url;
      download.hidden = false;
      break;
    }
    if (body.status === "failed") { say(`The report failed: ${body.error || "unknown error"}`); break; }
    if (body.status === "interrupted") {
      say("The worker building your report stopped. It will be started again shortly...");
    } else {
      say(body.status === "started" ? "Building your report..." : "Waiting for a worker...");
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

// One key per click: the request's name. The app (unit 12 on) enqueues one
// report per key, so asking again with the same key (below) cannot make a
// second report. Apps before unit 12 ignore the header.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();  // https and localhost only
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// POST /report, asked again with the same key when there was no answer (the
// connection dropped: the report may have been made, and its answer lost) or a
// 503 with Retry-After (Redis restarting). Not after an attempt that ran into
// the router's 30 s timeout: asking again would only wait as long again.
async function postReport(body) {
  const key = newKey();
  let wait = 500;
  for (let attempt = 1; ; attempt++) {
    const started = performance.now();
    let response = null;
    try {
      response = await fetch("/report", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(body),
      });
    } catch (error) {
      if (attempt >= 5 || performance.now() - started > 20000) throw error;
    }
    if (response !== null && !(response.status === 503 && response.headers.get("Retry-After") && attempt < 5)) {
      return response;
    }
    const retryAfter = response ? Number(response.headers.get("Retry-After")) * 1000 : 0;
    const said = response ? (await response.json().catch(() => ({}))).error : null;
    wait = Math.min(Math.max(wait * 2, retryAfter || 0), 30000);
    say(`${said || "The server is not answering."} Trying again in ${Math.round(wait / 1000)} s...`);
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (button.disabled) return;  // a request is in flight: this click is a double-click
  button.disabled = true;
  download.hidden = true;
  progress.hidden = true;
  const started = performance.now();
  say("Working...");
  try {
    const response = await postReport({ priority: document.getElementById("priority").value });
    const body = await response.json().catch(() => ({}));
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (response.status === 200) {
      say(`Report uploaded as ${body.key} after ${seconds} s (the page was stuck all that time).`);
    } else if (response.status === 202 && body.status_url) {
      await poll(body.status_url);
    } else if (response.status === 202) {
      say(`Queued as job ${body.job_id} in ${seconds} s. A worker is building it.`);
    } else {
      say(body.error || `The server answered ${response.status}.`);
    }
  } catch (error) {
    say(`The request failed: ${error}`);
  } finally {
    button.disabled = false;
  }
});

// The report page (provided). It copes with every stage of the course:
//  - 200 {key}                 : the report was built inside the request (units 01-02)
//  - 202 {job_id}              : a worker builds it; nothing to poll yet (units 03-04)
//  - 202 {job_id, status_url}  : poll the status URL, show progress, then the link (unit 05 on)
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

async function poll(statusUrl) {
  while (true) {
    const response = await fetch(statusUrl, { headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { say(body.error || `Status check failed (${response.status}).`); break; }
    showProgress(body.progress || 0);
    if (body.status === "finished") {
      say("Your report is ready.");
      download.href = body.url;
      download.hidden = false;
      break;
    }
    if (body.status === "failed") { say(`The report failed: ${body.error || "unknown error"}`); break; }
    say(body.status === "started" ? "Building your report..." : "Waiting for a worker...");
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  button.disabled = true;
  download.hidden = true;
  progress.hidden = true;
  const started = performance.now();
  say("Working...");
  try {
    const response = await fetch("/report", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ priority: document.getElementById("priority").value }),
    });
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

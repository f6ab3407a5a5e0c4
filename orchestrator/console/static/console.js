// The console's little JavaScript: transcript lines seek the recording, the diagram is drawn, the live view refreshes.
"use strict";

function seekRecording() {
  const audio = document.getElementById("recording");
  if (!audio) return;
  for (const line of document.querySelectorAll("#transcript li[data-audio-s]")) {
    line.addEventListener("click", () => {
      audio.currentTime = Number(line.dataset.audioS);
      audio.play().catch(() => {});  // autoplay rules may refuse; the position is set anyway
    });
  }
  audio.addEventListener("timeupdate", () => {
    let current = null;
    for (const line of document.querySelectorAll("#transcript li[data-audio-s]")) {
      if (Number(line.dataset.audioS) <= audio.currentTime) current = line;
    }
    for (const line of document.querySelectorAll("#transcript li.playing")) line.classList.remove("playing");
    if (current) current.classList.add("playing");
  });
}

async function drawDiagram() {
  const diagram = document.getElementById("diagram");
  if (!diagram || !window.mermaid) return;
  window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
  try {
    await window.mermaid.run({ nodes: [diagram] });
    diagram.dataset.rendered = "true";
  } catch (error) {
    diagram.dataset.rendered = "failed";
    console.error("diagram", error);
  }
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function refreshLive() {
  const table = document.getElementById("live");
  if (!table) return;
  try {
    const response = await fetch(table.dataset.source, { cache: "no-store" });
    if (!response.ok) return;
    const { calls } = await response.json();
    const rows = calls.map((call) => {
      const tr = document.createElement("tr");
      const state = document.createElement("td");
      const badge = document.createElement("span");
      badge.className = "state";
      badge.textContent = call.state;
      state.append(badge);
      tr.append(cell(call.call_sid), cell(call.caller || "withheld"), state,
        cell(call.seconds.toFixed(1), "num"), cell(String(call.turns), "num"),
        cell(String(call.barge_ins), "num"));
      return tr;
    });
    table.tBodies[0].replaceChildren(...rows);
    document.getElementById("live-count").textContent = String(calls.length);
    table.dataset.refreshed = String(Date.now());
  } finally {
    setTimeout(refreshLive, 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  seekRecording();
  drawDiagram();
  refreshLive();
});

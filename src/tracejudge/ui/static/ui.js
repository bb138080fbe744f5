// tracejudge UI: progressive enhancement only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      document.querySelectorAll("input[name=trace_id]").forEach((box) => { box.checked = all.checked; });
    });
  }
  // j / k move between trace rows, Enter opens one (the list is a real table of links too).
  const links = Array.from(document.querySelectorAll("a.trace-link"));
  let at = -1;
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
    if (typing || !links.length || event.metaKey || event.ctrlKey || event.altKey) return;
    if (event.key === "j" || event.key === "k") {
      at = Math.max(0, Math.min(links.length - 1, at + (event.key === "j" ? 1 : -1)));
      links[at].focus();
      event.preventDefault();
    }
  });
  // The feedback form's value follows its kind.
  const value = document.getElementById("fb-value");
  document.querySelectorAll("input[name=kind]").forEach((radio) => {
    radio.addEventListener("change", () => {
      if (!value) return;
      value.value = { thumbs: "up", number: "1", text: "" }[radio.value];
      value.focus();
    });
  });
  // A span named in the URL (#span-…) opens.
  if (location.hash.startsWith("#span-")) {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === "DETAILS") target.open = true;
  }
});

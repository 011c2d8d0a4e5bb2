"use strict";
fetch("/api/overview").then(r => r.json()).then(o => {
  document.getElementById("status").textContent = JSON.stringify(o);
});

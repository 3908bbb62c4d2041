// The request form's script (loaded by pages/researcher.py from static/): keeps the count of free VMs
// current and stops a second submission.
async function refreshCount() {
  try {
    const response = await fetch("api/unassigned_vms_count");
    if (!response.ok) return;
    const count = (await response.json()).count;
    const shown = document.getElementById("free-count");
    if (shown.textContent === String(count)) return;  // the line is a live region: speak changes only
    shown.textContent = count;
    document.getElementById("free-noun").textContent = count === 1 ? "VM is" : "VMs are";
    document.getElementById("none-free").hidden = count !== 0;
  } catch (e) { /* keep the last count */ }
}
setInterval(refreshCount, 3000);
// One request per click: the page that answers replaces this one.
document.getElementById("request-form").addEventListener("submit", () => {
  const button = document.getElementById("request-button");
  setTimeout(() => { button.disabled = true; button.textContent = "Requesting a VM..."; }, 0);
});

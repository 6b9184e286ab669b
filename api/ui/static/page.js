// What every signed-in page does first: insist on a token, wire "Sign out", say who is signed in.

import { api, forgetToken, requireToken } from "./api.js";
import { $, announce } from "./dom.js";

export async function startPage() {
  await requireToken();
  $("#sign-out")?.addEventListener("click", () => {
    forgetToken();
    location.assign("/ui/signin?reason=signed-out");
  });
  try {
    const tenants = await api("/api/v1/tenants");
    const names = tenants.map((t) => t.name || t.id).join(", ");
    const who = $("#signed-in-as");
    if (who) who.textContent = names ? `Signed in for ${names}` : "Signed in";
    return tenants;
  } catch (error) {
    if (error.status !== 401) announce(`Could not load your agencies: ${error.message}`, { error: true });
    return [];
  }
}

/** Run an action, announcing a failure in the error region instead of losing it in the console. */
export async function guarded(action, what) {
  try {
    return await action();
  } catch (error) {
    if (error.status === 401) return undefined;
    announce(`${what}: ${error.message}`, { error: true });
    return undefined;
  }
}

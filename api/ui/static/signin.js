import { setToken, token } from "./api.js";
import { $, announce } from "./dom.js";

const params = new URLSearchParams(location.search);
const reasons = {
  expired: "Your sign-in is no longer valid. Sign in again.",
  "signed-out": "You are signed out.",
};
if (reasons[params.get("reason")]) announce(reasons[params.get("reason")]);

/** Only our own pages: a next=https://elsewhere link must not carry a fresh sign-in off the site. */
function nextPage() {
  const next = params.get("next") || "";
  return /^\/ui\/[A-Za-z0-9/_.-]*(\?[^#]*)?$/.test(next) && !next.startsWith("/ui/signin") ? next : "/ui/incidents";
}

if (token() && !params.get("reason")) location.replace(nextPage());

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("#token").value.trim();
  if (!value) {
    announce("Enter your API token.", { error: true });
    return;
  }
  announce("Checking the token…");
  let response;
  try {
    response = await fetch("/api/v1/tenants", {
      headers: { Authorization: `Bearer ${value}`, Accept: "application/json" }, cache: "no-store",
      credentials: "omit",
    });
  } catch {
    announce("The server could not be reached. Try again.", { error: true });
    return;
  }
  if (!response.ok) {
    announce(response.status === 401 ? "That token was not accepted." :
      `The server answered ${response.status}. Try again.`, { error: true });
    $("#token").focus();
    return;
  }
  setToken(value);
  location.assign(nextPage());
});

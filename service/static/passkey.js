// Passkeys on the hosted pages: the few lines of browser JS WebAuthn needs (no framework).
// Sign-in: a discoverable passkey, offered in the email field's autofill (conditional UI) and
// on the "Sign in with a passkey" button; the assertion is posted with the page's form.
// idpPasskeys.register(accessToken, name): register a passkey for a signed-in account.
"use strict";

(() => {
  const json = (response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  };

  async function assertionOptions(form) {
    // With the password step's ticket: the account's own passkeys (the second factor).
    const ticket = form.elements.mfa_token ? form.elements.mfa_token.value : "";
    const init = ticket
      ? { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ mfa_token: ticket }) }
      : { method: "POST" };
    return json(await fetch("/v1/login/passkey/options", init));
  }

  function submit(form, ceremony, credential) {
    form.elements.state.value = ceremony.state;
    form.elements.credential.value = JSON.stringify(credential.toJSON());
    form.submit();
  }

  let pending = null;

  async function signIn(form, mediation) {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    const ceremony = await assertionOptions(form);
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(ceremony.options);
    const credential = await navigator.credentials.get({ publicKey, mediation, signal: controller.signal });
    if (credential) submit(form, ceremony, credential);
  }

  async function register(accessToken, name) {
    if (pending) pending.abort(); // a pending autofill request would block this one
    const auth = { Authorization: `Bearer ${accessToken}` };
    const ceremony = await json(await fetch("/v1/mfa/passkeys/options", { method: "POST", headers: auth }));
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(ceremony.options);
    const credential = await navigator.credentials.create({ publicKey });
    const body = JSON.stringify({ state: ceremony.state, credential: credential.toJSON(), name: name || "Passkey" });
    return json(
      await fetch("/v1/mfa/passkeys", { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body }),
    );
  }

  window.idpPasskeys = { register };

  document.addEventListener("DOMContentLoaded", async () => {
    const form = document.getElementById("passkey-form");
    const button = document.getElementById("passkey-signin");
    if (!form || !button || !window.PublicKeyCredential) return;
    button.hidden = false;
    button.addEventListener("click", () => signIn(form, "optional").catch(() => {}));
    if (!form.elements.mfa_token && (await PublicKeyCredential.isConditionalMediationAvailable?.())) {
      signIn(form, "conditional").catch(() => {});
    }
  });
})();

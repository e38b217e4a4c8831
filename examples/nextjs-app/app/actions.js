"use server";
// Form actions (run on the server). nextCookies() makes Better Auth set its session cookie here.
import { APIError } from "better-auth/api";
import { headers } from "next/headers";
import { redirect } from "next/navigation";

import { getAuth } from "@/lib/auth";
import { endSessionUrl, forget, idpAccount } from "@/lib/idp";

function field(form, name) {
  const value = form.get(name);
  return typeof value === "string" ? value : "";
}

async function attempt(page, call) {
  try {
    await call();
  } catch (error) {
    const message = error instanceof APIError ? error.message || error.status : "unexpected error";
    if (!(error instanceof APIError)) console.error(error);
    redirect(`${page}?error=${encodeURIComponent(String(message))}`);
  }
  redirect("/profile");
}

export async function signUp(form) {
  await attempt("/sign-up", async () =>
    getAuth().api.signUpEmail({
      body: { name: field(form, "name"), email: field(form, "email"), password: field(form, "password") },
      headers: await headers(),
    }),
  );
}

export async function signIn(form) {
  await attempt("/sign-in", async () =>
    getAuth().api.signInEmail({
      body: { email: field(form, "email"), password: field(form, "password") },
      headers: await headers(),
    }),
  );
}

// "Sign in with idp": Better Auth (genericOAuth) stores the state and PKCE verifier, then we send
// the browser to our IdP's /oauth2/authorize; it comes back to /api/auth/callback/idp.
export async function signInWithIdp() {
  let url;
  try {
    ({ url } = await getAuth().api.signInSocial({
      body: { provider: "idp", callbackURL: "/profile", errorCallbackURL: "/sign-in" },
      headers: await headers(),
    }));
  } catch (error) {
    console.error(error);
    redirect(`/sign-in?error=${encodeURIComponent("Sign in with idp is unavailable")}`);
  }
  redirect(url);
}

// Sign-out ends the Better Auth session; a session that signed in with idp also sends the
// browser to our IdP's end_session_endpoint (its hosted session and the refresh token Better
// Auth held end there), which sends it back to /sign-in.
export async function signOut() {
  const auth = getAuth();
  const requestHeaders = await headers();
  const session = await auth.api.getSession({ headers: requestHeaders });
  let next = "/sign-in";
  if (session) {
    try {
      await forget(session.session.id); // revoke our refresh token at the IdP (token exchange path)
    } catch (error) {
      console.error("revoking the IdP refresh token failed:", error);
    }
    try {
      const account = await idpAccount(requestHeaders);
      if (account) next = await endSessionUrl({ account, requestHeaders }); // before the session ends
    } catch (error) {
      console.error("idp: cannot build the end-session URL:", error);
    }
    await auth.api.signOut({ headers: requestHeaders }); // ends the Better Auth session, clears its cookie
  }
  redirect(next);
}

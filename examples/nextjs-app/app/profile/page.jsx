// The profile, as the FastAPI example API sees it: we call GET {API_URL}/api/profile with our
// access token: exchanged from the Better Auth JWT (refreshed server-side before it expires), or,
// after "Sign in with idp", the one our IdP issued at sign-in (kept by Better Auth).
import { headers } from "next/headers";
import { redirect } from "next/navigation";

import { getAuth } from "@/lib/auth";
import { apiProfile, idpAccount } from "@/lib/idp";

import { signOut } from "../actions";

export const dynamic = "force-dynamic";

export default async function ProfilePage() {
  const requestHeaders = await headers();
  const session = await getAuth().api.getSession({ headers: requestHeaders });
  if (!session) redirect("/sign-in");

  let profile = null;
  let error = null;
  let viaIdp = false;
  try {
    const account = await idpAccount(requestHeaders);
    viaIdp = account !== null;
    profile = await apiProfile(session.session.id, viaIdp ? { account, requestHeaders } : null);
  } catch (e) {
    console.error(e);
    error = "The API could not be reached with our token.";
  }

  return (
    <main>
      <h1>Profile</h1>
      <p>
        Signed in with Better Auth as {session.user.email},{" "}
        <span data-testid="path">{viaIdp ? "through idp (OpenID Connect)" : "by email and password (token exchange)"}</span>.
      </p>
      {profile ? (
        <dl data-testid="api-profile">
          <dt>User id (from the API)</dt>
          <dd data-testid="user-id">{profile.user_id}</dd>
          <dt>Email (from the API)</dt>
          <dd data-testid="email">{profile.email}</dd>
        </dl>
      ) : (
        <p role="alert" data-testid="error" style={{ color: "crimson" }}>{error}</p>
      )}
      <form action={signOut}>
        <button type="submit">Sign out</button>
      </form>
    </main>
  );
}

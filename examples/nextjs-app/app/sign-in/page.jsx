import { signIn, signInWithIdp } from "../actions";
import CredentialsForm from "../credentials-form";

export default async function SignInPage({ searchParams }) {
  const { error } = await searchParams;
  return (
    <>
      <CredentialsForm title="Sign in" action={signIn} error={error} />
      {process.env.IDP_OIDC_CLIENT_ID ? (
        <form action={signInWithIdp} style={{ marginTop: "1.5rem" }}>
          <button type="submit">Sign in with idp</button>
        </form>
      ) : null}
    </>
  );
}

import { signIn } from "../actions";
import CredentialsForm from "../credentials-form";

export default async function SignInPage({ searchParams }) {
  const { error } = await searchParams;
  return <CredentialsForm title="Sign in" action={signIn} error={error} />;
}

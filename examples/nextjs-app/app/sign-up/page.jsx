import { signUp } from "../actions";
import CredentialsForm from "../credentials-form";

export default async function SignUpPage({ searchParams }) {
  const { error } = await searchParams;
  return <CredentialsForm title="Sign up" action={signUp} withName error={error} />;
}

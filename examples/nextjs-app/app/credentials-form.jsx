// The sign-up / sign-in form: a plain HTML form posting to a server action (works without JS).
export default function CredentialsForm({ title, action, withName, error }) {
  return (
    <main>
      <h1>{title}</h1>
      {error ? <p role="alert" style={{ color: "crimson" }}>{error}</p> : null}
      <form action={action} style={{ display: "grid", gap: "0.75rem" }}>
        {withName ? (
          <label>
            Name <input name="name" required autoComplete="name" />
          </label>
        ) : null}
        <label>
          Email <input name="email" type="email" required autoComplete="email" />
        </label>
        <label>
          Password <input name="password" type="password" required minLength={8} autoComplete={withName ? "new-password" : "current-password"} />
        </label>
        <button type="submit">{title}</button>
      </form>
    </main>
  );
}

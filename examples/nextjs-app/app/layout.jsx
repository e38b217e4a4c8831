export const metadata = { title: "IdP + Better Auth: Next.js reference app" };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body style={{ fontFamily: "system-ui, sans-serif", maxWidth: 560, margin: "2rem auto", padding: "0 1rem" }}>
        <nav style={{ display: "flex", gap: "1rem", marginBottom: "1.5rem" }}>
          <a href="/sign-up">Sign up</a>
          <a href="/sign-in">Sign in</a>
          <a href="/profile">Profile</a>
        </nav>
        {children}
      </body>
    </html>
  );
}

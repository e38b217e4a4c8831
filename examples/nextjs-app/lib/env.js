// Server-only configuration, read at request time (never at build time, never sent to the browser).

export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (see examples/nextjs-app/README.md)`);
  return value.replace(/\/+$/, "");
}

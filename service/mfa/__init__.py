"""Multi-factor authentication: TOTP, recovery codes, passkeys, and the sign-in ticket that
links a first factor to a second. No Litestar here; handlers live in ``service/http/mfa.py``."""

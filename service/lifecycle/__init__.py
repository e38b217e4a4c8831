"""Account lifecycle by mail: password reset (and, built on the same links, verification and
email change). Link tokens are single-use, expire, are stored only as SHA-256 hashes, bound to
one account and one purpose, and die when the account's password or email changes."""

"""Mail: the outbox's delivery worker, its transports (SMTP, files) and the message templates."""

"""Administration shared by the admin HTTP API and the ``idp`` CLI: who may call it
(:mod:`.access`), account operations (:mod:`.users`), the stored audit trail (:mod:`.audit_log`)
and its settings section (:mod:`.settings`)."""

"""Journey governance (issue 19): who may change, approve and launch what (marketing/roles.yaml),
journey versions (hash of the file and its templates), approvals and the audit trail in the
operational store, and the gate that keeps an unapproved version from enrolling or sending."""

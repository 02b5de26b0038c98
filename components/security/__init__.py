"""The security / log-archive account's components: the log archive, the organization trail, org-wide detection."""

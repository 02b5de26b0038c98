"""The management account's components: the organization, its guardrails, and the ways into the estate."""

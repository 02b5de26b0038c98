"""The estate's model: typed config and deterministic names. Pure Python; no resources declared here."""

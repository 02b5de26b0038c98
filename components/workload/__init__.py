"""A workload account's components (dev, uat, prod): the network, app access, incident response."""

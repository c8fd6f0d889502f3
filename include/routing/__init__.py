"""The router's admin API as seen from the domain library: one client, one Protocol, errors by status."""

"""Who may do what: API keys with scopes, per-key rate limits, the audit log of admin actions."""

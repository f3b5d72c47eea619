"""Human review in Label Studio: the embedded server (push/pull of review tasks come next)."""

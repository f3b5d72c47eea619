"""Human review in Label Studio: the embedded server, routing, push of review tasks, pull of decisions into the ledger."""

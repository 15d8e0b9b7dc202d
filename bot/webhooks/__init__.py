"""HTTP adapters for the channels' webhooks: they check, store and answer, nothing more."""

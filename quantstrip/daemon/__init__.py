"""The Quantstrip daemon: registry, supervisor, notebook runs, control API, systemd unit."""

"""One module per subcommand. Keep torch out of their top level: ``--help`` must be fast."""

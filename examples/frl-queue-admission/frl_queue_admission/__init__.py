"""An example plugin domain for FRL Suite (see README "Adding a domain")."""

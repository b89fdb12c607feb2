"""FastAGI handlers: ``agi://host:port/<name>`` runs ``<name>.handle(session, app)``."""

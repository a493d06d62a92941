"""dcr-gateway: a reverse proxy that guards OAuth 2.0 dynamic client registration."""

__version__ = "0.1.0"

"""Authentication, per-user limits and their installation on the app (see install.py)."""

from app.security.install import install_security

__all__ = ["install_security"]

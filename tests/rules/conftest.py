"""The engine fixtures of tests/engine serve the rule tests too."""

from tests.engine.conftest import engine, sftp_engine, smtp_server

__all__ = ["engine", "sftp_engine", "smtp_server"]

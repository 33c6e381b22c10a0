"""The background engine: works the durable queue and runs the SFTP (and later AS2) listeners."""

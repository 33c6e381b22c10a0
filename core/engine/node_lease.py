"""A node's lease as the engine's units of work: taken at start, renewed every heartbeat
(handing back the claims of engines that stopped, and taking the once-per-store maintenance
lease), given back at a clean stop. Each runs in one transaction (``Store.write``)."""

from __future__ import annotations

import os
import socket

from core.storage import jobs, lease
from core.storage.connection import Tx

MAINTENANCE = "maintenance"  # the singleton lease: pruning, certificate expiry mails
MAINTENANCE_LEASE_S = 30.0  # renewed every heartbeat; another node takes over once it runs out


def default_node_name() -> str:
    """A node is named after its host unless told otherwise (several on one host need names)."""
    return socket.gethostname() or "docbridge"


def acquire(
    tx: Tx, name: str, owner: str, lease_s: float, policies: jobs.Policies
) -> tuple[lease.LeaseHolder | None, int]:
    """Take the node's lease and recover the claims of engines that stopped (this node's
    previous run, dead nodes); or the live holder of the name, and 0."""
    holder = lease.try_acquire(tx, name, owner, os.getpid(), socket.gethostname(), lease_s)
    if holder is not None:
        return holder, 0
    return None, jobs.release_dead_claims(tx, policies)


def renew(
    tx: Tx, name: str, owner: str, lease_s: float, policies: jobs.Policies
) -> tuple[bool, int, bool]:
    """Hand back claims whose lease ran out or whose node died, and extend ours: (False if
    another process took our name, how many claims were handed back, whether this node is
    the one that prunes and warns of expiring certificates for the whole store)."""
    # Ours first: a heartbeat late past our own lease (a stalled loop) must not make this
    # node hand back its own claims as a dead node's.
    renewed = lease.renew(tx, name, owner, lease_s)
    released = jobs.release_expired(tx, policies) + jobs.release_dead_claims(tx, policies)
    maintainer = renewed and lease.hold_singleton(tx, MAINTENANCE, name, MAINTENANCE_LEASE_S)
    return renewed, released, maintainer


def give_back(tx: Tx, name: str, owner: str) -> None:
    """A clean stop: our claims back in the queue at once, and the lease free."""
    jobs.give_back(tx, owner)
    lease.release(tx, name, owner)

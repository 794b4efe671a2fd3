"""The waiting line of one model: priority bands, and inside a band a round-robin over clients.

Order: higher priority first; inside a band clients take turns (a client that was just served goes
to the back of the ring, a new client joins at the back); inside one client, earlier deadline first,
then earlier arrival. So one API key flooding a band cannot push another key's request back by
more than one grant per turn. Pure data structure: no clock, no asyncio.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from local_lattice.admission.tickets import Ticket


def _order(ticket: Ticket) -> tuple[float, float, int]:
    deadline = math.inf if ticket.deadline is None else ticket.deadline
    return (deadline, ticket.arrived, ticket.id)


class BandQueue:
    """One priority band of one model."""

    __slots__ = ("_clients", "_ring", "_size")

    def __init__(self) -> None:
        self._clients: dict[str, list[tuple[tuple[float, float, int], Ticket]]] = {}
        self._ring: deque[str] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, ticket: Ticket) -> None:
        line = self._clients.get(ticket.client)
        if line is None:
            line = self._clients[ticket.client] = []
            self._ring.append(ticket.client)
        bisect.insort(line, (_order(ticket), ticket))
        self._size += 1

    def peek(self) -> Ticket:
        return self._clients[self._ring[0]][0][1]

    def pop(self) -> Ticket:
        client = self._ring.popleft()
        line = self._clients[client]
        _, ticket = line.pop(0)
        if line:
            self._ring.append(client)
        else:
            del self._clients[client]
        self._size -= 1
        return ticket

    def remove(self, ticket: Ticket) -> None:
        line = self._clients[ticket.client]
        line.remove((_order(ticket), ticket))
        if not line:
            del self._clients[ticket.client]
            self._ring.remove(ticket.client)
        self._size -= 1

    def position(self, ticket: Ticket) -> int:
        """How many tickets of this band are served before ``ticket`` if nothing else arrives."""
        line = self._clients[ticket.client]
        mine = line.index((_order(ticket), ticket))
        ahead = mine
        before = True
        for client in self._ring:
            if client == ticket.client:
                before = False
                continue
            ahead += min(len(self._clients[client]), mine + 1 if before else mine)
        return ahead


class ModelQueue:
    """All waiting tickets of one model, by band."""

    __slots__ = ("_bands", "_size")

    def __init__(self) -> None:
        self._bands: dict[int, BandQueue] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, ticket: Ticket) -> None:
        band = self._bands.get(ticket.priority)
        if band is None:
            band = self._bands[ticket.priority] = BandQueue()
        band.push(ticket)
        self._size += 1

    def head_priority(self) -> int:
        return max(self._bands)

    def peek(self) -> Ticket:
        return self._bands[self.head_priority()].peek()

    def pop(self) -> Ticket:
        priority = self.head_priority()
        band = self._bands[priority]
        ticket = band.pop()
        if not band:
            del self._bands[priority]
        self._size -= 1
        return ticket

    def remove(self, ticket: Ticket) -> None:
        band = self._bands[ticket.priority]
        band.remove(ticket)
        if not band:
            del self._bands[ticket.priority]
        self._size -= 1

    def position(self, ticket: Ticket) -> int:
        higher = sum(len(band) for priority, band in self._bands.items() if priority > ticket.priority)
        return higher + self._bands[ticket.priority].position(ticket)

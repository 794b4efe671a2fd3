"""Admission control: caps on calls in flight, a bounded fair priority queue, honest Retry-After.

``scheduler`` decides (pure), ``owner.Admission`` applies the decisions on the event loop,
``controls`` reads a request's queue controls, ``limits`` maps the config. See
``docs/design/admission.md`` for the invariants.
"""

from local_lattice.admission.controls import PriorityPolicy, client_of, context_of
from local_lattice.admission.owner import Admission, Waiter, rejected
from local_lattice.admission.tickets import QueueContext

__all__ = ["Admission", "PriorityPolicy", "QueueContext", "Waiter", "client_of", "context_of", "rejected"]

"""The store contract as scenarios: every test here must pass on every store.

Each module is one area of the contract; this package gathers them, so one star import brings
them all into a test module (see `durox.testing` for the fixtures they need):

`acknowledgement`, `activity_batches`, `activity_queue`, `events`, `locks`, `management`,
`observation`, `orchestration_batches`, `queue_and_visibility`, `replay_check_reads`,
`replay_range`. A store that passes them all keeps every promise the runtime and the client
rely on.
"""

from durox.testing.conformance.acknowledgement import *  # noqa: F403
from durox.testing.conformance.activity_batches import *  # noqa: F403
from durox.testing.conformance.activity_queue import *  # noqa: F403
from durox.testing.conformance.events import *  # noqa: F403
from durox.testing.conformance.locks import *  # noqa: F403
from durox.testing.conformance.management import *  # noqa: F403
from durox.testing.conformance.observation import *  # noqa: F403
from durox.testing.conformance.orchestration_batches import *  # noqa: F403
from durox.testing.conformance.queue_and_visibility import *  # noqa: F403
from durox.testing.conformance.replay_check_reads import *  # noqa: F403
from durox.testing.conformance.replay_range import *  # noqa: F403

MODULES = (
    "acknowledgement",
    "activity_batches",
    "activity_queue",
    "events",
    "locks",
    "management",
    "observation",
    "orchestration_batches",
    "queue_and_visibility",
    "replay_check_reads",
    "replay_range",
)
"""The scenario modules, in the order they are best read."""

"""Sample tasks: create an activity in the application database, and report progress."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from bgproc import BackgroundTask, ConnectionRequired

# Fixed ids of the application's reference data: the activity type "task"
# and the category "To do".
TASK_TYPE_ID = UUID("6f1f2c0e-3b7a-4c8e-9a55-0d4c1e7b2a10")
TODO_CATEGORY_ID = UUID("b8d3a9e2-51c4-4f0b-8e6d-2f7a9c1d4e58")
TODO_CATEGORY = "To do"


@dataclass
class ActivityData:
    title: str
    type_id: UUID = TASK_TYPE_ID
    delay_s: float = 30.0


class BackgroundActivityCreator(BackgroundTask[ActivityData], ConnectionRequired):
    """Waits, then creates an activity in the application database."""

    timeout = 300

    def run(self, params: ActivityData) -> None:
        log = self.connection.log
        log.info("waiting %.1f s before creating %r", params.delay_s, params.title)
        time.sleep(params.delay_s)
        activity_id = uuid.uuid4()
        self.connection.db["activities"].insert(
            {
                "id": str(activity_id),
                "title": params.title,
                "type_id": str(params.type_id),
                "category_id": str(TODO_CATEGORY_ID),
                "category": TODO_CATEGORY,
                "created_by": self.connection.user,
                "created_at": datetime.now(UTC).isoformat(),
            },
            pk="id",
        )
        log.info("created activity %s in category %r", activity_id, TODO_CATEGORY)
        print(f"activity {activity_id} created")


@dataclass
class CountParams:
    steps: int = 10
    step_s: float = 0.5


class CountWithProgress(BackgroundTask[CountParams], ConnectionRequired):
    """Counts through its steps, reporting progress as it goes."""

    timeout = 600

    def run(self, params: CountParams) -> None:
        for step in range(1, params.steps + 1):
            time.sleep(params.step_s)
            self.connection.progress(step, params.steps, f"step {step} of {params.steps}")
        print(f"counted {params.steps} steps")

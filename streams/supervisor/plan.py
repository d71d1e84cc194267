"""What the supervisor needs of the worker's settings, handed over by ``dfip worker``.

The checking process read and validated the settings (pydantic-settings); the supervisor it
``exec``s reads this small JSON instead, so pydantic never loads in it (~20 MB of the
worker's memory, bench/RESULTS.md "Score table in flat arrays").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.settings import WorkerSettings

__all__ = ["Plan"]


@dataclass(frozen=True)
class Plan:
    worker_id: str
    web_host: str
    web_port: int
    data_dir: str
    advertised_url: str | None
    log_level: str
    processes: int
    partitions: int  # of the input topics (schemas.catalog.USCC_PARTITIONS)

    @classmethod
    def of(cls, settings: WorkerSettings, processes: int) -> Plan:
        # here, in the checking process: the supervisor itself never loads the catalog
        from schemas.catalog import USCC_PARTITIONS

        return cls(
            worker_id=settings.worker_id,
            web_host=settings.web_host,
            web_port=settings.web_port,
            data_dir=str(settings.data_dir),
            advertised_url=settings.advertised_url or None,
            log_level=settings.log_level,
            processes=processes,
            partitions=USCC_PARTITIONS,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))

    def process_dir(self, index: int) -> Path:
        return Path(self.data_dir) / f"p{index}"

    @property
    def share(self) -> int:
        """The partitions a process owns once all have joined, rounded up."""
        return -(-self.partitions // self.processes)

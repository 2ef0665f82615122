"""The single-process driver: one engine, here, feeding one Campaign (``nnfuzz run``
without --workers, and ``nnfuzz.fuzz``)."""

from __future__ import annotations

from pathlib import Path

from nnfuzz.campaign import Campaign
from nnfuzz.config import FuzzConfig, FuzzResult, StopReason
from nnfuzz.drivers.engine import EngineFactory, run_slice
from nnfuzz.errors import NnfuzzError
from nnfuzz.loop import Fuzzer
from nnfuzz.status import Reporter
from nnfuzz.target import Target
from nnfuzz.tracking import Tracker


class InProcess:
    """One engine fuzzing here, a status line between its slices. ``engine`` and
    ``campaign`` are there to be looked at (tests, notebooks); a context manager."""

    def __init__(self, target: Target, config: FuzzConfig, *, out: Path | None = None,
                 corpus: Path | None = None, reporter: Reporter | None = None,
                 engine: EngineFactory = Fuzzer, tracker: Tracker | None = None) -> None:
        self.campaign = Campaign(target, config, out, reporter, tracker=tracker)
        try:
            self.engine = engine(target, config, self.campaign, self.campaign.engine_start(corpus))
        except BaseException:
            self.campaign.close()  # a run that could not start holds no folder
            raise

    def run(self) -> FuzzResult:
        campaign, engine = self.campaign, self.engine
        campaign.engine_set_up(engine.startup())
        campaign.write_run(None, engine.progress())
        try:
            while (reason := run_slice(engine, campaign.config.status_interval,
                                       campaign.stop_reason)) is None:
                campaign.status(engine.progress())
        except KeyboardInterrupt:
            reason = StopReason.INTERRUPTED
        except NnfuzzError:
            campaign.finish(StopReason.ERROR, engine.progress())
            raise
        return campaign.finish(reason, engine.progress())

    def close(self) -> None:
        self.engine.close()
        self.campaign.close()

    def __enter__(self) -> "InProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_in_process(target: Target, config: FuzzConfig, *, out: Path | None = None,
                   corpus: Path | None = None, reporter: Reporter | None = None,
                   engine: EngineFactory = Fuzzer, tracker: Tracker | None = None) -> FuzzResult:
    """Fuzz in this process (what ``nnfuzz run`` does without --workers)."""
    with InProcess(target, config, out=out, corpus=corpus, reporter=reporter,
                   engine=engine, tracker=tracker) as driver:
        return driver.run()

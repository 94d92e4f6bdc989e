"""Service layer: what the triggers call. Each service takes its ports in its constructor and does no wiring."""
from shared.services.common import Clock, utc_now
from shared.services.health import DependencyStatus, HealthService
from shared.services.jobs import ScheduledJobs
from shared.services.processing import EventProcessingService, ProcessingReport

__all__ = ["Clock", "DependencyStatus", "EventProcessingService", "HealthService", "ProcessingReport",
           "ScheduledJobs", "utc_now"]

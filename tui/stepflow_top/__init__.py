"""stepflow-top: a live, read-only terminal monitor for a StepFlow Monitor store."""

__version__ = "0.1.0"

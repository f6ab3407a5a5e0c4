"""A fake Sautikit for tests, benchmarks and the demo: real webhooks, real WebSockets, scripted callers."""

from orchestrator.simulator.sautikit import (
    Answer,
    FakeDialler,
    FakeSautikit,
    SimulatedCall,
    SimulatorOptions,
)

__all__ = ["Answer", "FakeDialler", "FakeSautikit", "SimulatedCall", "SimulatorOptions"]

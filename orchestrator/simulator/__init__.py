"""A fake Sautikit for tests, benchmarks and the demo: real webhooks, real WebSockets, scripted callers."""

from orchestrator.simulator.sautikit import FakeSautikit, SimulatedCall, SimulatorOptions

__all__ = ["FakeSautikit", "SimulatedCall", "SimulatorOptions"]

"""What operators see of the line: Prometheus metrics, OpenTelemetry traces and call recordings.

`service.Observability` wires them into an app (`add_routes` does it); each call gets one `CallObserver`
(`orchestrator/call/observer.py`) that fans out to the pieces switched on.
"""

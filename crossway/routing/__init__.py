"""Routing: model names to deployments, their health, the strategies that order them, and
the retry policy of the attempt loop."""

from crossway.routing.deployments import Deployment, ModelTable
from crossway.routing.health import BreakerPolicy, Health
from crossway.routing.retry import RetryPolicy
from crossway.routing.router import Route, Router

__all__ = ["BreakerPolicy", "Deployment", "Health", "ModelTable", "RetryPolicy", "Route", "Router"]

"""Routing: model names to deployments, health, and (later) retries and fallbacks."""

from crossway.routing.deployments import Deployment, Health, ModelTable
from crossway.routing.router import Route, Router

__all__ = ["Deployment", "Health", "ModelTable", "Route", "Router"]

"""Deploying Gatehouse to AWS: ``make deploy|destroy|package STAGE=dev|prod``.

- :mod:`gatehouse.deploy.deploy`: the infra stack, the Athena stack, ``chalice
  deploy`` with the stack outputs in the functions' environment, the wiring.
- :mod:`gatehouse.deploy.wiring`: what Chalice cannot declare (stage access
  log, gateway responses, the writer's event source, the log subscription).
- :mod:`gatehouse.deploy.templates`: the merge template for ``chalice package``.
- :mod:`gatehouse.deploy.destroy`: removal, and what Object Lock keeps.

The runbook is ``docs/deploy.md``.
"""

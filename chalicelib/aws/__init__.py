"""AWS clients, built lazily and once per container."""

from chalicelib.aws.clients import AwsClients

__all__ = ["AwsClients"]

"""The witness function: runs on a schedule in the witness's own account.

Everything is built once per container: the settings, the boto3 clients,
the key (read from Secrets Manager), the state table.
"""

from __future__ import annotations

import functools
from typing import Any

from chalicelib.witness.witness import RunReport, SnsAlerts, Witness


@functools.cache
def witness() -> Witness:
    """The container's witness.

    Raises
    ------
    WitnessSettingsError
        When its settings are missing or malformed.
    WitnessUnavailable
        When its key cannot be read.
    """
    import boto3

    from chalicelib.ledger.notes import WitnessSigner
    from chalicelib.witness.errors import WitnessUnavailable
    from chalicelib.witness.settings import WitnessSettings, load_witness_key
    from chalicelib.witness.state import TableWitnessState

    settings = WitnessSettings.from_environment()
    try:
        secret = boto3.client("secretsmanager").get_secret_value(SecretId=settings.key_secret)
        private_key = load_witness_key(str(secret["SecretString"]).encode())
    except Exception as exc:
        raise WitnessUnavailable(f"cannot read the witness's key: {type(exc).__name__}") from exc
    return Witness(
        WitnessSigner(settings.name, private_key),
        TableWitnessState(boto3.client("dynamodb"), settings.state_table),
        boto3.client("s3"),
        settings.logs,
        alerts=SnsAlerts(boto3.client("sns"), settings.alert_topic)
        if settings.alert_topic
        else None,
    )


def run(_event: Any = None, _context: Any = None) -> dict[str, Any]:
    """One witness run (the scheduled event's handler): what it cosigned and refused."""
    report: RunReport = witness().run()
    return {
        "cosigned": [outcome.as_dict() for outcome in report.cosigned],
        "refused": [outcome.as_dict() for outcome in report.refused],
    }

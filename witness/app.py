"""The Gatehouse witness function: deploy with `chalice deploy` from this directory.

It runs on a schedule in the witness's own account and cosigns the
checkpoints of the stages it watches (docs/witness.md). Its code is the
project's :mod:`chalicelib.witness` (``chalicelib`` here links to it).
"""

from typing import Any

from chalice import Chalice

from chalicelib.witness import handler

app = Chalice(app_name="gatehouse-witness")


@app.schedule("rate(5 minutes)", name="witness")
def witness(event: Any) -> dict[str, Any]:
    """One witness run: judge every new checkpoint of every log it watches."""
    return handler.run(event)

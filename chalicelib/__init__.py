"""Gatehouse: everything that is deployed to AWS Lambda (see docs/architecture.md).

Packages, one per concern, dependencies flowing down this list:

- ``authorize`` the decision core (``Decider``: one parsed request, one ``Outcome``) and
                the REQUEST authorizer that turns an outcome into API Gateway's answer.
- ``proxy``     forwards allowed requests upstream with a signed identity assertion, and
                decides again (through the ``Decider``) what a cached answer let through.
- ``grants``    just-in-time grants: the grant API, lifecycle, store, cache, first use.
- ``policy``    the policy document, its conditions, the decision engine, request paths,
                the DynamoDB store.
- ``identity``  verifies bearer tokens against trusted OIDC issuers.
- ``signing``   the proxy's delegated assertion keys: certified by KMS once, registered
                in the state table (the JWKS), recorded, rotated.
- ``audit``     the audit event, the SQS emitter, the ledger writer, access-log events.
- ``ledger``    the tamper-evident ledger: state, Merkle tree, digests, verification.
- ``apigw``     API Gateway events parsed once, method overrides, the Chalice adapter.
- ``aws``       lazily built boto3 clients, STS sessions, SigV4, P-256 signers.

Shared leaves: ``readable`` (text a person reads, caps), ``reasons`` (reason codes),
``variables`` (the environment variables: names, defaults, ranges), ``config`` (settings),
``observability`` (logs, metrics), ``refresh`` (refresh timing);
``container`` builds the objects and ``entrypoints`` are the Lambda handlers.

Nothing here imports ``app``; ``app.py`` only wires these to Chalice.
"""

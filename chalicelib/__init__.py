"""Gatehouse: everything that is deployed to AWS Lambda.

Packages, one per concern:

- ``identity``  verifies bearer tokens against trusted OIDC issuers.
- ``policy``    the policy model, its DynamoDB store and the decision engine.
- ``authorize`` the REQUEST authorizer: token + policy -> IAM policy + audit event.
- ``proxy``     forwards allowed requests upstream with a signed identity assertion.
- ``audit``     the audit event schema, the SQS emitter and the S3 writer.
- ``apigw``     API Gateway event parsing and the small, pinned Chalice adapters.
- ``aws``       lazily built boto3 clients.

Nothing here imports ``app``; ``app.py`` only wires these to Chalice.
"""

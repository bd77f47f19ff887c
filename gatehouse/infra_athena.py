"""Build ``infra/athena.yaml`` (Glue tables, Athena workgroup, named queries) from the SQL files.

The DDL files under ``infra/athena/tables/`` and the queries under
``infra/athena/queries/`` are the single source: the local engine runs the
same files, and this module derives the CloudFormation stack from them, so
the two cannot drift. ``tests/unit/test_athena_template.py`` fails when the
checked-in template is not what this module builds now.

Run ``python -m gatehouse.infra_athena`` (``make infra``) after editing a
SQL file; ``--check`` only compares and exits 1 when the template is stale.

Exceptions::

    ValueError
     └── AthenaTemplateError   a DDL file this module cannot turn into a Glue table
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

from gatehouse.query.params import NamedQuery, named_queries

ROOT = Path(__file__).resolve().parents[1]
ATHENA_DIR = ROOT / "infra" / "athena"
TABLES_DIR = ATHENA_DIR / "tables"
QUERIES_DIR = ATHENA_DIR / "queries"  # the engines' gatehouse.query.params.QUERIES_DIR
TEMPLATE_PATH = ROOT / "infra" / "athena.yaml"

# The placeholders of the DDL files that the stack fills in, and with what.
# Any other ``${name}`` (``${dt}``, ``${hour}``, ``${region}``...) belongs to
# partition projection and must reach Glue as written.
STACK_PLACEHOLDERS: dict[str, Any] = {
    "AuditBucket": {"Ref": "AuditBucketName"},
    "TrailBucket": {"Ref": "TrailBucketName"},
    "AccountId": {
        "Fn::If": [
            "TrailAccountIsThisAccount",
            {"Ref": "AWS::AccountId"},
            {"Ref": "TrailAccountId"},
        ]
    },
}
_PLACEHOLDER = re.compile(r"\$\{([^}!]*)\}")

# STORED AS <name> shorthands, spelled out as Glue needs them.
_STORED_AS = {
    "TEXTFILE": (
        "org.apache.hadoop.mapred.TextInputFormat",
        "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    ),
}

# Athena's own floor for a workgroup's per-query limit (10 MB).
MIN_BYTES_SCANNED_CUTOFF = 10_000_000
DEFAULT_BYTES_SCANNED_CUTOFF = 1_000_000_000


class AthenaTemplateError(ValueError):
    """A DDL or query file that cannot become part of the stack."""


@dataclass(frozen=True, slots=True)
class GlueColumn:
    """One column as Glue stores it: a Hive type string."""

    name: str
    type: str
    comment: str | None = None

    def as_cfn(self) -> dict[str, str]:
        """The ``Column`` property of ``AWS::Glue::Table``."""
        column = {"Name": self.name, "Type": self.type}
        if self.comment:
            column["Comment"] = self.comment
        return column


@dataclass(frozen=True, slots=True)
class TableDefinition:
    """What one ``CREATE EXTERNAL TABLE`` file says, in Glue's terms."""

    name: str
    columns: tuple[GlueColumn, ...]
    partition_keys: tuple[GlueColumn, ...]
    serde: str
    input_format: str
    output_format: str
    location: str
    serde_parameters: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    comment: str | None = None


def hive_type(data_type: exp.DataType) -> str:
    """The Hive type string Glue stores for ``data_type`` (``struct<a:string,b:array<int>>``)."""
    kind = data_type.this
    if kind == exp.DataType.Type.STRUCT:
        fields = [f"{member.name}:{hive_type(_kind(member))}" for member in data_type.expressions]
        return f"struct<{','.join(fields)}>"
    if kind == exp.DataType.Type.ARRAY:
        (element,) = data_type.expressions
        return f"array<{hive_type(_as_type(element))}>"
    if kind == exp.DataType.Type.MAP:
        key, value = data_type.expressions
        return f"map<{hive_type(_as_type(key))},{hive_type(_as_type(value))}>"
    return data_type.sql(dialect="hive").lower().replace(" ", "")


def _kind(column: exp.Expression) -> exp.DataType:
    kind = column.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise AthenaTemplateError(f"column {column.name!r} has no type")
    return kind


def _as_type(node: exp.Expression) -> exp.DataType:
    if isinstance(node, exp.DataType):
        return node
    return _kind(node)


def _column(column: exp.Expression) -> GlueColumn:
    comment = None
    for constraint in column.args.get("constraints") or ():
        if isinstance(constraint.kind, exp.CommentColumnConstraint):
            comment = constraint.kind.this.name
    return GlueColumn(column.name, hive_type(_kind(column)), comment)


def parse_table_ddl(text: str) -> TableDefinition:
    """Read one Athena ``CREATE EXTERNAL TABLE`` statement.

    Raises
    ------
    AthenaTemplateError
        When the text is not one such statement with a SerDe, formats and a location.
    """
    try:
        statement = sqlglot.parse_one(text, read="athena")
    except sqlglot.errors.ParseError as exc:
        raise AthenaTemplateError(f"not a DDL statement sqlglot can read: {exc}") from exc
    if not isinstance(statement, exp.Create) or not isinstance(statement.this, exp.Schema):
        raise AthenaTemplateError("expected one CREATE EXTERNAL TABLE statement")
    properties = statement.args.get("properties")
    found: dict[str, Any] = {"properties": {}, "serde_parameters": {}, "partition_keys": ()}
    for prop in properties.expressions if properties else ():
        _read_property(prop, found)
    missing = [key for key in ("serde", "input_format", "location") if key not in found]
    if missing:
        raise AthenaTemplateError(f"the DDL names no {', '.join(missing)}")
    return TableDefinition(
        name=statement.this.this.name,
        columns=tuple(_column(column) for column in statement.this.expressions),
        **found,
    )


def _read_property(prop: exp.Expression, found: dict[str, Any]) -> None:
    if isinstance(prop, exp.ExternalProperty):
        return
    if isinstance(prop, exp.PartitionedByProperty):
        found["partition_keys"] = tuple(_column(column) for column in prop.this.expressions)
    elif isinstance(prop, exp.RowFormatSerdeProperty):
        found["serde"] = prop.this.name
        serde_properties = prop.args.get("serde_properties")
        for item in serde_properties.expressions if serde_properties else ():
            found["serde_parameters"][item.this.name] = item.args["value"].name
    elif isinstance(prop, exp.FileFormatProperty):
        found["input_format"], found["output_format"] = _formats(prop.this)
    elif isinstance(prop, exp.LocationProperty):
        found["location"] = prop.this.name
    elif isinstance(prop, exp.SchemaCommentProperty):
        found["comment"] = prop.this.name
    elif type(prop) is exp.Property:  # a TBLPROPERTIES entry (subclasses are other clauses)
        found["properties"][prop.this.name] = prop.args["value"].name
    else:
        raise AthenaTemplateError(f"unsupported table property: {prop.sql(dialect='athena')}")


def _formats(formats: exp.Expression) -> tuple[str, str]:
    """``(input format, output format)`` of a ``STORED AS`` clause."""
    if isinstance(formats, exp.InputOutputFormat):
        return formats.args["input_format"].name, formats.args["output_format"].name
    if formats.name.upper() in _STORED_AS:
        return _STORED_AS[formats.name.upper()]
    raise AthenaTemplateError(f"STORED AS {formats.name} is not supported")


def stack_value(text: str) -> Any:
    """``text`` for the template: an ``Fn::Sub`` when it names a stack placeholder.

    Projection placeholders (``${dt}``) are escaped as ``${!dt}`` inside an
    ``Fn::Sub`` so that CloudFormation leaves them for Athena.
    """
    names = set(_PLACEHOLDER.findall(text))
    used = sorted(names & STACK_PLACEHOLDERS.keys())
    if not used:
        return text
    escaped = _PLACEHOLDER.sub(
        lambda match: (
            match.group(0) if match.group(1) in STACK_PLACEHOLDERS else f"${{!{match.group(1)}}}"
        ),
        text,
    )
    return {"Fn::Sub": [escaped, {name: STACK_PLACEHOLDERS[name] for name in used}]}


def glue_table_resource(table: TableDefinition) -> dict[str, Any]:
    """The ``AWS::Glue::Table`` resource for ``table``."""
    parameters: dict[str, Any] = {"EXTERNAL": "TRUE"}
    parameters.update({key: stack_value(value) for key, value in table.properties.items()})
    serde: dict[str, Any] = {"SerializationLibrary": table.serde}
    if table.serde_parameters:
        serde["Parameters"] = dict(table.serde_parameters)
    table_input: dict[str, Any] = {
        "Name": table.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": [key.as_cfn() for key in table.partition_keys],
        "StorageDescriptor": {
            "Columns": [column.as_cfn() for column in table.columns],
            "Location": stack_value(table.location),
            "InputFormat": table.input_format,
            "OutputFormat": table.output_format,
            "SerdeInfo": serde,
        },
    }
    if table.comment:
        table_input["Description"] = table.comment
    return {
        "Type": "AWS::Glue::Table",
        "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseName": {"Ref": "Database"},
            "TableInput": table_input,
        },
    }


def logical_id(prefix: str, name: str) -> str:
    """A CloudFormation logical id: ``prefix`` + ``name`` in CamelCase."""
    return prefix + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def named_query_resource(query: NamedQuery) -> dict[str, Any]:
    """The ``AWS::Athena::NamedQuery`` resource for ``query``."""
    return {
        "Type": "AWS::Athena::NamedQuery",
        "Properties": {
            "Name": {"Fn::Sub": f"gatehouse-${{Stage}}-{query.name}"},
            "Description": query.description,
            "Database": {"Ref": "Database"},
            "WorkGroup": {"Ref": "WorkGroup"},
            "QueryString": query.sql,
        },
    }


_DESCRIPTION = (
    "Gatehouse query layer: the Glue database and tables (partition projection, no "
    "partition maintenance) over the audit trail and CloudTrail, an Athena workgroup with a "
    "per-query bytes-scanned limit, and the named queries. GENERATED by "
    "`python -m gatehouse.infra_athena` (make infra) from infra/athena/; do not edit by hand."
)


def _parameters() -> dict[str, Any]:
    return {
        "Stage": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"},
        "AuditBucketName": {
            "Type": "String",
            "Description": "The audit bucket (gatehouse-<stage>-audit-<account>-<region>).",
        },
        "TrailBucketName": {
            "Type": "String",
            "Description": "The bucket the CloudTrail trail delivers to.",
        },
        "TrailAccountId": {
            "Type": "String",
            "Default": "",
            "AllowedPattern": "^([0-9]{12})?$",
            "Description": "The account under AWSLogs/ in the trail bucket; empty: this account.",
        },
        "AthenaResultsBucket": {
            "Type": "String",
            "Default": "",
            "Description": "Bucket for query results; empty: the stack creates one.",
        },
        "BytesScannedCutoffPerQuery": {
            "Type": "Number",
            "Default": DEFAULT_BYTES_SCANNED_CUTOFF,
            "MinValue": MIN_BYTES_SCANNED_CUTOFF,
            "Description": "Athena cancels a query of the workgroup once it has scanned this much.",
        },
    }


def _results_bucket() -> dict[str, Any]:
    return {
        "Type": "AWS::S3::Bucket",
        "Condition": "CreateResultsBucket",
        "DeletionPolicy": "Delete",
        "UpdateReplacePolicy": "Delete",
        "Properties": {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            # Results are copies of audit data: they do not outlive a month.
            "LifecycleConfiguration": {
                "Rules": [{"Id": "expire-results", "Status": "Enabled", "ExpirationInDays": 30}]
            },
        },
    }


def _results_bucket_policy() -> dict[str, Any]:
    bucket_arn = {"Fn::GetAtt": ["ResultsBucket", "Arn"]}
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Condition": "CreateResultsBucket",
        "Properties": {
            "Bucket": {"Ref": "ResultsBucket"},
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket_arn, {"Fn::Sub": "${ResultsBucket.Arn}/*"}],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            },
        },
    }


def _workgroup() -> dict[str, Any]:
    results_bucket = {
        "Fn::If": ["CreateResultsBucket", {"Ref": "ResultsBucket"}, {"Ref": "AthenaResultsBucket"}]
    }
    return {
        "Type": "AWS::Athena::WorkGroup",
        "Properties": {
            "Name": {"Fn::Sub": "gatehouse-${Stage}"},
            "Description": "Gatehouse audit queries: one bytes-scanned limit per query.",
            "State": "ENABLED",
            "WorkGroupConfiguration": {
                "BytesScannedCutoffPerQuery": {"Ref": "BytesScannedCutoffPerQuery"},
                "EnforceWorkGroupConfiguration": True,
                "PublishCloudWatchMetricsEnabled": True,
                "EngineVersion": {"SelectedEngineVersion": "Athena engine version 3"},
                "ResultConfiguration": {
                    "OutputLocation": {
                        "Fn::Sub": ["s3://${Bucket}/athena-results/", {"Bucket": results_bucket}]
                    },
                    "EncryptionConfiguration": {"EncryptionOption": "SSE_S3"},
                },
            },
        },
    }


def build_template(
    tables: Sequence[TableDefinition], queries: Sequence[NamedQuery]
) -> dict[str, Any]:
    """The whole CloudFormation template, as a dict in the order it is written."""
    resources: dict[str, Any] = {
        "Database": {
            "Type": "AWS::Glue::Database",
            "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseInput": {
                    "Name": {"Fn::Sub": "gatehouse_${Stage}"},
                    "Description": "Gatehouse audit events and CloudTrail logs.",
                },
            },
        },
    }
    for table in tables:
        resources[logical_id("Table", table.name)] = glue_table_resource(table)
    resources["ResultsBucket"] = _results_bucket()
    resources["ResultsBucketPolicy"] = _results_bucket_policy()
    resources["WorkGroup"] = _workgroup()
    for query in queries:
        resources[logical_id("Query", query.name)] = named_query_resource(query)
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": _DESCRIPTION,
        "Parameters": _parameters(),
        "Conditions": {
            "CreateResultsBucket": {"Fn::Equals": [{"Ref": "AthenaResultsBucket"}, ""]},
            "TrailAccountIsThisAccount": {"Fn::Equals": [{"Ref": "TrailAccountId"}, ""]},
        },
        "Resources": resources,
        "Outputs": {
            "DatabaseName": {"Value": {"Ref": "Database"}},
            "WorkGroupName": {"Value": {"Ref": "WorkGroup"}},
        },
    }


def load_tables(directory: Path = TABLES_DIR) -> list[TableDefinition]:
    """Every DDL file of ``directory``, sorted by file name."""
    return [parse_table_ddl(path.read_text(encoding="utf-8")) for path in _sql_files(directory)]


def load_queries(directory: Path = QUERIES_DIR) -> list[NamedQuery]:
    """Every named query of ``directory``, sorted by name, read and checked as the engines do.

    Raises
    ------
    QueryError
        When a file's header and placeholders disagree or it is not one read-only query.
    """
    return named_queries(directory)


def _sql_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sql"))


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (the queries read as SQL in the template), no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        # CloudFormation rejects YAML anchors and aliases.
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_template(template: dict[str, Any]) -> str:
    """The YAML text of ``template``, deterministic for a given input."""
    return yaml.dump(template, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def generate() -> str:
    """The template text for the SQL files as they are now."""
    return render_template(build_template(load_tables(), load_queries()))


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``infra/athena.yaml``; with ``--check``, only say whether it is current."""
    parser = argparse.ArgumentParser(prog="python -m gatehouse.infra_athena", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the template is stale")
    args = parser.parse_args(argv)
    text = generate()
    current = TEMPLATE_PATH.read_text(encoding="utf-8") if TEMPLATE_PATH.exists() else None
    if args.check:
        if current != text:
            print(f"{TEMPLATE_PATH} is stale: run `make infra`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        TEMPLATE_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {TEMPLATE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

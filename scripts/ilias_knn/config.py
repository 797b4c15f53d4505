"""Configuration checks with one short line per problem (the JSON schema is the
single source of truth; Snakemake's validate() then fills in its defaults)."""

import jsonschema
import yaml


def load_schema(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


def config_errors(config, schema):
    """Readable problems of ``config``: 'models.m.k: 0 is less than the minimum of 1'."""
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        message = err.message
        if "propertyNames" in err.schema_path:  # names become file names
            message = f"name {err.instance!r} is not valid: use letters, digits, '_', '.', '-' only"
        problems.append(f"{where}: {message}")
    return problems

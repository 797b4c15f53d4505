"""The workflow's configuration checked against its JSON schema (the single
source of truth for keys, types and defaults): one pass that lists every
problem as one short line and fills in the schema's defaults."""

import copy

import jsonschema
import yaml


def load_schema(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


def _filling_defaults(validator_class):
    """A validator that also sets the ``default`` of every property an object
    lacks (the jsonschema documentation's recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def check_config(config, schema):
    """Problems of ``config`` ('models.m.k: 0 is less than the minimum of 1'),
    empty when it is valid; its missing keys get the schema's defaults."""
    validator = _filling_defaults(jsonschema.Draft202012Validator)(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        message = err.message
        if "propertyNames" in err.schema_path:  # names become file names
            message = f"name {err.instance!r} is not valid: use letters, digits, '_', '.', '-' only"
        problems.append(f"{where}: {message}")
    return problems

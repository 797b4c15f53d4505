"""The workflow's configuration checked against its JSON schema (the single
source of truth for keys, types and defaults): one pass that lists every
problem as one short line, fills in the schema's defaults and expands ``~``
in paths (keys with ``format: path``)."""

import copy
import os

import jsonschema
import yaml


def load_schema(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


def _completing(validator_class):
    """A validator that also sets the ``default`` of every property an object
    lacks (the jsonschema documentation's recipe) and expands ``~`` in the
    values of ``format: path`` properties (neither YAML nor Snakemake does:
    ``~/results`` would be a folder named ``~``)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def complete(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
                if subschema.get("format") == "path" and isinstance(instance.get(name), str):
                    instance[name] = os.path.expanduser(instance[name])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": complete})


def schema_errors(config, schema):
    """Each problem of ``config`` as (its key path, the model it is in or None
    for the settings of the whole run, the message), in key order; its
    missing keys get the schema's defaults, its paths' ``~`` the home folder."""
    validator = _completing(jsonschema.Draft202012Validator)(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        path = list(err.absolute_path)
        model = path[1] if len(path) > 1 and path[0] == "models" else None
        message = err.message
        if "propertyNames" in err.schema_path:  # names become file names
            model = err.instance
            message = f"name {err.instance!r} is not valid: use letters, digits, '_', '.', '-' only (not only dots)"
        yield path, model, message


def check_config(config, schema):
    """Problems of ``config``, each as (the model it is in, or None for the
    settings of the whole run; one short line: 'models.m.k: 0 is less than the
    minimum of 1'), empty when it is valid; fills in defaults as schema_errors."""
    return [
        (model, f"{'.'.join(map(str, path)) or '(top level)'}: {message}")
        for path, model, message in schema_errors(config, schema)
    ]

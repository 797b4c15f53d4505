"""Set-up promises: one package list, README commands are what CI runs."""

import re
import tomllib
from pathlib import Path

import yaml

from conftest import REPO


def requirement_lines(text):
    return sorted(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def env_pins():
    env = yaml.safe_load((REPO / "envs" / "knn.yaml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_the_jobs_environment_is_pinned_and_requirements_repeat_its_pins():
    """envs/knn.yaml states the jobs' versions (exact pins, nothing the jobs do
    not import); requirements.txt repeats them and adds Snakemake, what parsing
    reads configurations with, and the library; pyproject.toml's ranges hold them."""
    from packaging.requirements import Requirement

    pins = env_pins()
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9.]+", pin) for pin in pins), pins
    names = {Requirement(pin).name for pin in pins}
    assert not names & {"snakemake", "snakemake-executor-plugin-slurm", "pytest", "snakefmt", "ruff"}
    lines = requirement_lines((REPO / "requirements.txt").read_text())
    assert sorted(line for line in lines if "==" in line) == sorted(pins)
    runner = {Requirement(line).name for line in lines if "==" not in line and line != "-e ."}
    assert runner == {"snakemake", "snakemake-executor-plugin-slurm", "pyyaml", "jsonschema"} and "-e ." in lines
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ranges = {Requirement(dep).name: Requirement(dep).specifier for dep in project["dependencies"]}
    for pin in pins:
        name, version = pin.split("==")
        assert ranges[name].contains(version), (pin, ranges[name])


def test_test_tools_are_in_the_test_requirements_only():
    pins = requirement_lines((REPO / "requirements-test.txt").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(project["optional-dependencies"]["test"]) == pins
    assert "pytest" in readme_commands()["test"] and "requirements-test.txt" in readme_commands()["test"]


def readme_commands():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"<!-- (install|test) -->\s*```bash\n(.*?)\n```", readme, re.S)
    return dict(blocks)


def test_ci_runs_the_readme_commands_verbatim():
    commands = readme_commands()
    assert set(commands) == {"install", "test"}
    ci = (REPO / ".ci" / "run").read_text()
    for command in commands.values():
        assert command.strip() in ci


def test_torch_is_pinned_to_the_local_cpu_build():
    assert "torch==2.13.0" in env_pins()


def test_snakemake_files_are_snakefmt_formatted():
    import subprocess
    import sys

    snakefmt = Path(sys.executable).with_name("snakefmt")
    proc = subprocess.run([str(snakefmt), "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_code_passes_ruff_lint_and_format():
    import subprocess
    import sys

    ruff = Path(sys.executable).with_name("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([str(ruff), *args], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_configuration_key_has_a_description():
    """The catalog's parameter table (it reads config/schemas/) and the README
    explain every key."""
    schema = yaml.safe_load((REPO / "config" / "schemas" / "config.schema.yaml").read_text())
    undescribed = []

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                undescribed.append(f"{path}{name}")
            walk(sub, f"{path}{name}.")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}<name>.")

    walk(schema, "")
    assert undescribed == []

"""Set-up promises: one package list, README commands are what CI runs."""

import re
from pathlib import Path

import yaml

from conftest import REPO


def requirement_lines(text):
    return sorted(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def test_conda_env_lists_the_same_packages_as_requirements():
    env = yaml.safe_load((REPO / "envs" / "knn.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    packages = requirement_lines((REPO / "requirements.txt").read_text())
    assert "-e ." in packages  # the library, installed from this folder
    assert sorted(pip) == [line for line in packages if line != "-e ."]


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
    assert "torch==2.13.0" in requirement_lines((REPO / "requirements.txt").read_text())


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

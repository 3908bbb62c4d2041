"""Lambda code assets: the function folders as they are, and the shared layer built by local pip
bundling (wheels for the Lambda runtime and architecture, so synth needs no Docker); Docker is
the fallback where pip cannot run locally."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from lablink.config import LablinkConfig
from stacks.constants import (
    BUNDLED_STARTUP_SCRIPT,
    CLIENT_DIR,
    FUNCTIONS_DIR,
    LAMBDA_ARCHITECTURE,
    LAMBDA_TASK_ROOT,
    LAYER_REQUIREMENTS,
    LAYER_SOURCE_DIR,
    PIP_PLATFORM,
    PROVISION_FUNCTION,
    PYTHON_RUNTIME,
    PYTHON_VERSION,
    ROOT,
    RUNTIME_PROVIDED,
    SQL_DIR,
)

_CODE_EXCLUDES = ["__pycache__", "*.pyc", "tests", ".pytest_cache"]


def _files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts)


def layer_inputs() -> list[Path]:
    """Every file the layer is built from: the package (templates and static files of its
    pages included), the schema, the client files, the pinned requirements."""
    package = [p for p in _files(LAYER_SOURCE_DIR / "lablink") if p.parent.name != "sql" and p.suffix != ".pyc"]
    return [LAYER_REQUIREMENTS, *_files(SQL_DIR, "*.sql"), *_files(CLIENT_DIR), *package]


def runtime_python() -> list[str] | None:
    """A command that runs the Lambda runtime's Python here, or None: this interpreter when it
    is that version, else the Debian root of scripts/runtime-python (LABLINK_RUNTIME_ROOT) run
    through the root's own dynamic loader and libraries (no chroot, so no root privileges)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON_VERSION:
        return [sys.executable]
    root = os.environ.get("LABLINK_RUNTIME_ROOT")
    if not root:
        return None
    libraries = f"{root}/lib/x86_64-linux-gnu:{root}/usr/lib/x86_64-linux-gnu"
    return [f"{root}/lib64/ld-linux-x86-64.so.2", "--library-path", libraries, f"{root}/usr/bin/python{PYTHON_VERSION}"]


@functools.cache
def layer_bytecode() -> str:
    """What the layer's bytecode is: the runtime Python's magic number, or "source" when no
    runtime Python is at hand (then every cold start compiles the package: /opt is read-only
    in Lambda, so nothing is cached between cold starts)."""
    python = runtime_python()
    if python is None:
        return "source"
    magic = "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"
    return "pyc-" + subprocess.run([*python, "-c", magic], capture_output=True, text=True, check=True).stdout.strip()


def layer_source_hash() -> str:
    """The layer's identity: what goes into it (pinned requirements, the package, the schema),
    the platform it is built for and whether it carries bytecode. Same inputs, same asset:
    nothing is rebuilt."""
    digest = hashlib.sha256(f"{PYTHON_VERSION}|{PIP_PLATFORM}|{layer_bytecode()}".encode())
    for path in layer_inputs():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _copy_package(python_dir: Path) -> None:
    package = python_dir / "lablink"
    shutil.copytree(
        LAYER_SOURCE_DIR / "lablink",
        package,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "sql", "client_files"),
        dirs_exist_ok=True,
    )
    # Beside the package, where lablink.migrations.sql_dir() finds the schema and
    # lablink.userdata.client_dir() the user-data template and the client agent.
    (package / "sql").mkdir(exist_ok=True)
    for migration in _files(SQL_DIR, "*.sql"):
        shutil.copy2(migration, package / "sql" / migration.name)
    shutil.copytree(
        CLIENT_DIR, package / "client_files", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests")
    )


def _drop_runtime_sdk(python_dir: Path) -> None:
    """The Lambda runtime ships boto3 and botocore matched to each other; a botocore pulled in
    by aws-xray-sdk would shadow the runtime's and could break its boto3."""
    for name in RUNTIME_PROVIDED:
        for path in python_dir.glob(f"{name}*"):
            if path.name == name or path.name.startswith(f"{name}-"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def _precompile(python_dir: Path) -> bool:
    """Bytecode of the whole layer for the runtime's Python, when one is at hand (see
    layer_bytecode). unchecked-hash: the CDK zips assets with fixed 1980 timestamps, which
    would make timestamp-checked .pyc files stale on arrival; the layer never changes in place.
    Paths in tracebacks read /opt/python, where Lambda mounts the layer."""
    python = runtime_python()
    if python is None:
        return True
    command = [
        *python, "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "unchecked-hash",
        "-s", str(python_dir), "-p", "/opt/python", str(python_dir),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"precompiling the layer failed:\n{result.stdout}{result.stderr}", file=sys.stderr)
    return result.returncode == 0


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """Builds the layer on this machine: pip installs requirements/layer.txt as binary wheels for
    the Lambda platform into <output>/python, then copies the package and the schema."""

    @staticmethod
    def pip_command(target: Path) -> list[str]:
        return [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--platform", PIP_PLATFORM, "--implementation", "cp",
            "--python-version", PYTHON_VERSION, "--only-binary=:all:",
            "-r", str(LAYER_REQUIREMENTS), "-t", str(target),
        ]  # fmt: skip

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002 - jsii signature
        python_dir = Path(output_dir) / "python"
        result = subprocess.run(self.pip_command(python_dir), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # Returning False hands over to Docker bundling; say why, or a missing Docker
            # engine would hide the real cause.
            print(f"local layer bundling failed, falling back to Docker:\n{result.stderr}", file=sys.stderr)
            return False
        # Console scripts and caches are of no use in a layer.
        shutil.rmtree(python_dir / "bin", ignore_errors=True)
        _drop_runtime_sdk(python_dir)
        _copy_package(python_dir)
        return _precompile(python_dir)


_DOCKER_COMMAND = (
    "pip install --quiet --no-compile -r /asset-input/requirements/layer.txt -t /asset-output/python"
    " && cp -r /asset-input/layers/shared/python/lablink /asset-output/python/"
    " && rm -rf /asset-output/python/lablink/__pycache__ /asset-output/python/bin"
    " && rm -rf /asset-output/python/boto3* /asset-output/python/botocore* /asset-output/python/s3transfer*"
    " && mkdir -p /asset-output/python/lablink/sql && cp /asset-input/sql/*.sql /asset-output/python/lablink/sql/"
    " && cp -r /asset-input/client /asset-output/python/lablink/client_files"
)


# One bundling for every stack's copy of the layer: identical options let the CDK build the
# asset once per synth.
_LAYER_BUNDLING = BundlingOptions(
    image=PYTHON_RUNTIME.bundling_image,
    command=["bash", "-c", _DOCKER_COMMAND],
    local=LocalPipBundling(),
)


def shared_layer_code() -> lambda_.Code:
    """The asset of the shared layer. Its source is the repository root (the layer gathers
    files from four folders), hashed from the layer's own inputs only."""
    return lambda_.Code.from_asset(
        str(ROOT),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=layer_source_hash(),
        bundling=_LAYER_BUNDLING,
    )


def shared_layer(scope: Construct, construct_id: str = "SharedLayer") -> lambda_.LayerVersion:
    """One layer version per stack that needs it (the asset itself is built and uploaded once):
    a layer shared across stacks would be an export that every code change has to replace."""
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=shared_layer_code(),
        compatible_runtimes=[PYTHON_RUNTIME],
        compatible_architectures=[LAMBDA_ARCHITECTURE],
        description="lablink shared package, its pinned dependencies and the schema migrations",
    )


def layer_asset_hash(layer: lambda_.LayerVersion) -> str:
    """The hash the CDK staged the layer's asset under (its inputs and bundling options)."""
    asset = layer.node.find_child("Code")
    assert isinstance(asset, s3_assets.Asset)
    return asset.asset_hash


def _startup_script_path(name: str, config: LablinkConfig) -> Path | None:
    """The deployer's startup script, when this function renders user data and one is configured."""
    if name != PROVISION_FUNCTION or not config.startup_script.path:
        return None
    path = Path(config.startup_script.path).expanduser()
    if not path.is_file():
        # Fail the synth, not the first launch in AWS: the file is read here, not in Lambda.
        raise FileNotFoundError(f"startup_script.path: {path} is not a readable file")
    return path


def function_code(name: str, config: LablinkConfig) -> lambda_.Code:
    """functions/<name>/ as it is (thin handlers import everything else from the layer); the
    provisioning function's asset also carries the configured startup script."""
    folder = FUNCTIONS_DIR / name
    if not (folder / "handler.py").is_file():
        raise FileNotFoundError(f"{folder}/handler.py is missing: every Lambda function is a folder with handler.py")
    script = _startup_script_path(name, config)
    if script is None:
        return lambda_.Code.from_asset(str(folder), exclude=_CODE_EXCLUDES)
    # A staging copy: the CDK copies it into the cloud assembly at synth, hashed by content.
    staged = Path(tempfile.mkdtemp(prefix=f"lablink-{name}-"))
    shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(*_CODE_EXCLUDES), dirs_exist_ok=True)
    shutil.copy2(script, staged / BUNDLED_STARTUP_SCRIPT)
    return lambda_.Code.from_asset(str(staged))


def function_config(name: str, config: LablinkConfig) -> LablinkConfig:
    """The configuration a function runs with: the startup script's path is where the
    function's own asset holds it in Lambda, not the deployer's file."""
    if _startup_script_path(name, config) is None:
        return config
    startup = config.startup_script.model_copy(update={"path": f"{LAMBDA_TASK_ROOT}/{BUNDLED_STARTUP_SCRIPT}"})
    return config.model_copy(update={"startup_script": startup})

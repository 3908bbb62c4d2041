"""`npx cdk synth` as the deploy guide gives it: offline, without AWS credentials, every stack,
no error; the Lambda code and layer it stages are what the functions import in AWS."""

from __future__ import annotations

import json
import re
from pathlib import Path

from assembly import ROOT, STACK_PARTS
from aws_cdk import aws_lambda as lambda_

from lablink.db.connection import RDS_CA_BUNDLE
from stacks.bundling import layer_inputs
from stacks.constants import LAYER_SOURCE_DIR, PYTHON_RUNTIME, PYTHON_VERSION, RUNTIME_PROVIDED


def test_synth_succeeds_offline_without_credentials(any_synth):
    assert any_synth.returncode == 0, any_synth.output[-4000:]
    assert "error" not in any_synth.output.lower(), any_synth.output[-4000:]
    manifest = json.loads((any_synth.outdir / "manifest.json").read_text())
    stacks = {
        name for name, artifact in manifest["artifacts"].items() if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == {any_synth.stack_name(part) for part in STACK_PARTS}
    # Nothing had to be looked up in an AWS account.
    assert not manifest.get("missing")


def test_stack_names_and_region_follow_the_config(lab_synth):
    manifest = json.loads((lab_synth.outdir / "manifest.json").read_text())
    api = manifest["artifacts"]["LabLink-lab-Api"]
    assert api["environment"] == "aws://unknown-account/eu-central-1"


def _python_runtimes() -> list[tuple[int, ...]]:
    versions = []
    for name in dir(lambda_.Runtime):
        match = re.fullmatch(r"PYTHON_(\d+)_(\d+)", name)
        if match:
            versions.append((int(match[1]), int(match[2])))
    return versions


def test_functions_run_the_newest_python_the_cdk_offers(synth):
    newest = max(_python_runtimes())
    assert PYTHON_RUNTIME.name == f"python{newest[0]}.{newest[1]}"
    assert PYTHON_VERSION == f"{newest[0]}.{newest[1]}"
    functions = synth.lambda_functions()
    assert set(functions) == {
        "request",
        "admin",
        "metrics",
        "launch",
        "authorizer",
        "provision",
        "reconcile",
        "log_processor",
        "migrate",
    }
    for _part, _lid, res in functions.values():
        assert res["Properties"]["Runtime"] == PYTHON_RUNTIME.name
        assert res["Properties"]["Handler"] == "handler.handler"
        assert res["Properties"]["Architectures"] == ["x86_64"]
        assert res["Properties"]["TracingConfig"] == {"Mode": "Active"}


def _asset_dir(synth, part: str, logical_id: str) -> Path:
    metadata = synth.resources(part)[logical_id]["Metadata"]
    return synth.outdir / metadata["aws:asset:path"]


def test_each_function_ships_its_own_folder(synth):
    for folder, (part, lid, _res) in synth.lambda_functions().items():
        staged = _asset_dir(synth, part, lid)
        assert (staged / "handler.py").read_bytes() == (ROOT / "functions" / folder / "handler.py").read_bytes()
        assert not list(staged.rglob("__pycache__"))


def _layer_dir(synth) -> Path:
    (lid,) = synth.resources("Api", "AWS::Lambda::LayerVersion")
    return _asset_dir(synth, "Api", lid) / "python"


def test_layer_holds_the_package_schema_and_client_files(synth):
    layer = _layer_dir(synth)
    assert (layer / "lablink" / "migrations.py").is_file()
    # Where lablink.migrations.sql_dir() and lablink.userdata.client_dir() look in a layer.
    bundled_sql = sorted(p.name for p in (layer / "lablink" / "sql").glob("*.sql"))
    assert bundled_sql == sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    assert (layer / "lablink" / "client_files" / "user-data.sh.tmpl").is_file()
    assert (layer / "lablink" / "client_files" / "lablink_client" / "agent.py").is_file()


PAGES_DIR = LAYER_SOURCE_DIR / "lablink" / "pages"
PAGE_FILES = sorted(p for folder in ("templates", "static") for p in (PAGES_DIR / folder).rglob("*") if p.is_file())


def test_layer_holds_the_page_templates_and_static_files(synth):
    layer_pages = _layer_dir(synth) / "lablink" / "pages"
    assert any(p.suffix == ".html" for p in PAGE_FILES) and any(p.suffix == ".js" for p in PAGE_FILES)
    for path in PAGE_FILES:
        assert (layer_pages / path.relative_to(PAGES_DIR)).read_bytes() == path.read_bytes(), path


def test_the_page_files_are_part_of_the_layer_hash():
    assert set(PAGE_FILES) <= set(layer_inputs())


def test_layer_holds_the_rds_ca_bundle_and_hashes_it(synth):
    """database_url() names the bundle beside lablink/db/connection.py as sslrootcert."""
    bundled = _layer_dir(synth) / RDS_CA_BUNDLE.relative_to(LAYER_SOURCE_DIR)
    assert bundled.read_bytes() == RDS_CA_BUNDLE.read_bytes()
    assert RDS_CA_BUNDLE in layer_inputs()


def test_layer_wheels_are_built_for_the_lambda_runtime(synth):
    layer = _layer_dir(synth)
    tag = f"cpython-{PYTHON_VERSION.replace('.', '')}-x86_64-linux-gnu"
    assert list(layer.glob(f"psycopg2/_psycopg.{tag}.so")), "psycopg2 binary for the Lambda runtime"
    assert list(layer.glob(f"pydantic_core/_pydantic_core.{tag}.so"))


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_layer_holds_exactly_the_pinned_distributions(synth):
    layer = _layer_dir(synth)
    pinned = {}
    for line in (ROOT / "requirements" / "layer.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[_normalized(name)] = version
    installed = {}
    for dist in layer.glob("*.dist-info"):
        name, version = dist.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[_normalized(name)] = version
    # The runtime's own boto3/botocore stay in charge.
    expected = {name: version for name, version in pinned.items() if name not in RUNTIME_PROVIDED}
    assert installed == expected
    assert not list(layer.glob("botocore*")) and not list(layer.glob("boto3*"))


def test_every_stack_that_needs_the_layer_gets_the_same_build(synth):
    paths = {
        synth.resources(part)[lid]["Metadata"]["aws:asset:path"]
        for part, lid, _res in synth.all_resources("AWS::Lambda::LayerVersion")
    }
    assert len(paths) == 1


def test_listener_image_is_staged_from_the_repository_root(synth):
    assets = json.loads((synth.outdir / f"{synth.stack_name('Listener')}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    assert image["source"]["dockerFile"] == "listener/Dockerfile"
    context = synth.outdir / image["source"]["directory"]
    assert (context / "listener" / "Dockerfile").is_file()
    assert (context / "layers" / "shared" / "python" / "lablink" / "config.py").is_file()
    # The build context leaves out what the image never needs (and synth would copy).
    for heavy in (".venv", "node_modules", ".git", "cdk.out"):
        assert not (context / heavy).exists(), heavy

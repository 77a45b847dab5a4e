"""Third-party plugins end to end, the way an author and an operator meet them.

Seven packages are written outside the repository, in a temporary folder: one per stage by
``causalrec new-plugin`` (untouched), and one by hand (``causalrec-xt-acme``) holding a
working ranking plugin whose output is recognisable, plus three broken plugins: one that
raises on import, one that lacks its stage's required method, one written for plugin API 2.0.
They are pip-installed into this environment (``--no-deps --no-build-isolation``) and
uninstalled when the module ends. Then, in fresh processes (the registry is built once per
process), all at once:

- ``causalrec plugins`` lists every one of them, the broken ones on one line each with why;
- the generated packages' own tests (the conformance kit, check by check) pass as generated;
- a full materialization selects the generated plugins and the hand-written ranker by run
  config, succeeds despite the broken plugins, warns about each of them in the Dagster log,
  and stores what the selected plugins produced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zlib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import polars as pl
import pytest

from causalrec_assets.cli import main as causalrec_cli
from causalrec_assets.pipeline import stage_ops
from causalrec_assets.plugin_api import PLUGIN_API_VERSION, STAGES

PYTHON = sys.executable
CAUSALREC = str(Path(sys.executable).with_name("causalrec"))
GENERATED = {stage: f"xt_{stage}" for stage in STAGES}  # plugin names of the scaffolded packages
DISTRIBUTIONS = [f"causalrec-xt-{stage}" for stage in STAGES] + ["causalrec-xt-acme"]
BROKEN = {  # (stage, name): what its one line must say
    ("embed", "xt_boom"): "failed to import causalrec_xt_acme.boom:BoomEmbed: RuntimeError: licence server unreachable",
    ("structure", "xt_incomplete"): "IncompleteStructure lacks required method(s): learn",
    ("effects", "xt_future"): (
        f"FutureEffects targets plugin API 2.0, incompatible with this causalrec's plugin API {PLUGIN_API_VERSION}"
    ),
}
SALT, K = "run-7", 3

ACME_PYPROJECT = """
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "causalrec-xt-acme"
version = "2.3.1"
dependencies = ["dagster-causalrec"]

[project.entry-points."causalrec.ranking"]
xt_acme = "causalrec_xt_acme.ranking:AcmeRanking"

[project.entry-points."causalrec.embed"]
xt_boom = "causalrec_xt_acme.boom:BoomEmbed"

[project.entry-points."causalrec.structure"]
xt_incomplete = "causalrec_xt_acme.broken:IncompleteStructure"

[project.entry-points."causalrec.effects"]
xt_future = "causalrec_xt_acme.broken:FutureEffects"

[tool.setuptools.packages.find]
where = ["src"]
"""

ACME_RANKING = '''
"""Acme's ranker: every pair scored by a salted hash, so its output is recognisable."""

import zlib

import polars as pl
from pydantic import Field

from causalrec_assets.plugin_api import PluginConfig, RankingOutput, RankingPlugin


class AcmeConfig(PluginConfig):
    k: int = Field(default=5, description="Recommendations per user.")
    salt: str = Field(default="acme", description="Salt of the hash that scores a pair.")


def pair_score(user_id, item_id, salt: str) -> float:
    return zlib.crc32(f"{salt}|{user_id}|{item_id}".encode()) / 2**32


class AcmeRanking(RankingPlugin):
    """Salted-hash scores: nothing learned, everything checkable."""

    Config = AcmeConfig

    def rank(self, inputs, context):
        def scored(pairs):
            values = [pair_score(u, i, self.config.salt) for u, i in pairs.select("user_id", "item_id").iter_rows()]
            return pairs.select("user_id", "item_id").with_columns(pl.Series("score", values, dtype=pl.Float64))

        log = inputs.interactions
        seen = log.filter(pl.col("split") == "train").select("user_id", "item_id").unique()
        pairs = inputs.users.select("user_id").join(inputs.items.select("item_id"), how="cross")
        recs = (
            scored(pairs.join(seen, on=["user_id", "item_id"], how="anti"))
            .sort(["user_id", "score", "item_id"], descending=[False, True, False])
            .group_by("user_id", maintain_order=True)
            .head(self.config.k)
            .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").cast(pl.Int32).alias("rank"))
            .select("user_id", "item_id", "rank", "score")
        )
        context.log.info("acme ranked %d users", recs["user_id"].n_unique())
        return RankingOutput(recs, scored(log.filter(pl.col("split") == "test")))
'''

ACME_BOOM = """
raise RuntimeError("licence server unreachable")
"""

ACME_BROKEN = """
import polars as pl

from causalrec_assets.plugin_api import EffectsPlugin, StructurePlugin


class IncompleteStructure(StructurePlugin):
    \"\"\"Forgot to implement learn().\"\"\"


class FutureEffects(EffectsPlugin):
    \"\"\"Written for a causalrec that does not exist yet.\"\"\"

    api_version = "2.0"

    def estimate(self, inputs, context):
        return pl.DataFrame()
"""

MATERIALIZE = """
import json, logging, sys
from pathlib import Path

import dagster as dg

from causalrec_assets import defs
from causalrec_assets.testing import write_canonical
from causalrec_plugins.ingest.simulator import SimulatorConfig, simulate

world = simulate(SimulatorConfig(seed=11, n_users=200, n_items=60, n_topics=3, pairs_per_user=20))
write_canonical(world, Path(sys.argv[1]))
run_config = json.loads(sys.argv[2])
job = defs.resolve_implicit_global_asset_job_def()
instance = dg.DagsterInstance.ephemeral()
result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
logs = instance.all_logs(result.run_id)
print(json.dumps({
    "success": result.success,
    "warnings": [r.user_message for r in logs if r.level == logging.WARNING],
    "errors": [r.user_message for r in logs if r.level >= logging.ERROR],
    "failed_steps": [e.step_key for e in result.all_events if e.is_step_failure],
}))
"""


def write_acme(root: Path) -> Path:
    (root / "src" / "causalrec_xt_acme").mkdir(parents=True)
    (root / "pyproject.toml").write_text(ACME_PYPROJECT)
    package = root / "src" / "causalrec_xt_acme"
    (package / "__init__.py").write_text('"""Acme\'s causalrec plugins."""\n')
    for module, source in (("ranking", ACME_RANKING), ("boom", ACME_BOOM), ("broken", ACME_BROKEN)):
        (package / f"{module}.py").write_text(textwrap.dedent(source))
    return root


def installed() -> list[str]:
    found = []
    for name in DISTRIBUTIONS:
        try:
            distribution(name)
            found.append(name)
        except PackageNotFoundError:
            pass
    return found


def pip(*args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory):
    """The seven packages, written and installed; uninstalled afterwards whatever happens."""
    root = tmp_path_factory.mktemp("third-party")
    paths = []
    for stage, name in GENERATED.items():
        assert causalrec_cli(["new-plugin", "--stage", stage, name, "--directory", str(root / name)]) == 0
        paths.append(root / name)
    paths.append(write_acme(root / "acme"))
    leftovers = installed()  # from an earlier run that was killed before its teardown
    if leftovers:
        pip("uninstall", "-y", *leftovers)
    try:
        done = pip("install", "--no-deps", "--no-build-isolation", *map(str, paths))
        assert done.returncode == 0, done.stderr[-3000:]
        assert installed() == DISTRIBUTIONS
        yield root
    finally:
        pip("uninstall", "-y", *DISTRIBUTIONS)
        assert installed() == [], "a test plugin was left installed"


def run_config(data: Path) -> dict:
    """What an operator writes: each stage's plugin by name, with its parameters."""
    sections = {
        "ingest": {"plugin": "xt_ingest", "xt_ingest": {"path": str(data)}},
        "validate": {"plugin": "xt_validate"},
        "embed": {"plugin": "xt_embed", "xt_embed": {"dim": 64}},
        "structure": {"plugin": "xt_structure"},
        "effects": {"plugin": "xt_effects", "xt_effects": {"n_bootstrap": 50}},
        "ranking": {"plugin": "xt_acme", "xt_acme": {"k": K, "salt": SALT}},
    }
    return {"ops": {op: {"config": sections[stage]} for stage, ops in stage_ops().items() for op in ops}}


@pytest.fixture(scope="module")
def runs(packages: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The three fresh processes, run side by side: the listing, the generated tests, the run."""
    work = tmp_path_factory.mktemp("runs")
    storage, data = work / "storage", work / "data"
    env = {**os.environ, "CAUSALREC_STORAGE": str(storage), "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("CAUSALREC_DATA", None)
    tests = [str(packages / name / "tests") for name in GENERATED.values()]
    procs = {
        "plugins": subprocess.Popen([CAUSALREC, "plugins"], env=env, cwd=work, stdout=-1, stderr=-1, text=True),
        "pytest": subprocess.Popen(
            [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(packages), *tests],
            env=env, cwd=packages, stdout=-1, stderr=-1, text=True,
        ),
        "materialize": subprocess.Popen(
            [PYTHON, "-c", MATERIALIZE, str(data), json.dumps(run_config(data))],
            env=env, cwd=work, stdout=-1, stderr=-1, text=True,
        ),
    }  # fmt: skip
    out = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        out[key] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return {**out, "storage": storage, "data": data}


def test_causalrec_plugins_lists_every_installed_plugin(runs: dict) -> None:
    done = runs["plugins"]
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for stage, name in GENERATED.items():
        row = [line.split() for line in lines if line.split()[:1] == [name]]
        assert row == [[name, f"causalrec-{name.replace('_', '-')}", "0.1.0", PLUGIN_API_VERSION, "ok"]], stage
    acme = [line for line in lines if line.split()[:1] == ["xt_acme"]]
    assert len(acme) == 1 and acme[0].split()[1:4] == ["causalrec-xt-acme", "2.3.1", PLUGIN_API_VERSION]
    assert acme[0].endswith(f"ok (api_version not declared, assumed {PLUGIN_API_VERSION})")  # Acme forgot it
    for (_, name), reason in BROKEN.items():
        row = [line for line in lines if line.split()[:1] == [name]]
        assert len(row) == 1, name
        assert row[0].split()[1:3] == ["causalrec-xt-acme", "2.3.1"]
        assert f"broken: {reason}" in row[0], row[0]
    assert "xt_" not in done.stderr  # said once, in the listing


def test_generated_packages_pass_their_own_tests(runs: dict) -> None:
    done = runs["pytest"]
    assert done.returncode == 0, done.stdout[-5000:]
    assert f"{len(GENERATED) * 9} passed" in done.stdout  # 8 conformance checks + the entry point, per stage


def test_full_materialization_with_third_party_plugins(runs: dict) -> None:
    done = runs["materialize"]
    assert done.returncode == 0, done.stderr[-5000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["success"], (report["failed_steps"], report["errors"][-5:], done.stderr[-3000:])
    for (stage, name), reason in BROKEN.items():
        lines = [w for w in report["warnings"] if f"causalrec plugin {stage}.{name} " in w]
        assert lines, f"no warning about {stage}.{name} in the Dagster log"
        assert all(reason in line and "\n" not in line for line in lines), lines
    warned = {m.group(1, 2) for w in report["warnings"] if (m := re.match(r"causalrec plugin (\w+)\.(\w+) ", w))}
    ours = set(BROKEN) | {(s, n) for s, n in GENERATED.items()} | {("ranking", "xt_acme")}
    assert warned & ours == set(BROKEN), report["warnings"]  # the working ones are not warned about


def test_stored_outputs_are_the_selected_plugins_outputs(runs: dict) -> None:
    storage: Path = runs["storage"]
    assert runs["materialize"].returncode == 0
    users, items, interactions = (pl.read_parquet(storage / f"{t}.parquet") for t in ("users", "items", "interactions"))
    # ingest: xt_ingest read the canonical CSV directory written for this run
    assert users.height == 200 and items.height == 60
    assert users.equals(pl.read_csv(runs["data"] / "users.csv"))
    # embed: xt_embed's hashed vectors, with the run config's dim
    embeddings = pl.read_parquet(storage / "item_embeddings.parquet")
    assert embeddings["model_key"].unique().to_list() == ["xt_embed-hashed-v1-dim64-pairs1"]
    assert embeddings.schema["embedding"].size == 64
    # validate and effects: the generated plugins' expectation and estimator names
    report = pl.read_parquet(storage / "validation_report.parquet")
    assert "table_not_empty" in report["expectation"].to_list() and report["success"].all()
    effects = pl.read_parquet(storage / "treatment_effects.parquet")
    assert effects["estimator"].to_list() == ["stratified_backdoor", "naive"]
    # ranking: exactly Acme's salted-hash top-K of each user's unseen items
    seen = interactions.filter(pl.col("split") == "train").select("user_id", "item_id").unique()
    pairs = (
        users.select("user_id")
        .join(items.select("item_id"), how="cross")
        .join(seen, on=["user_id", "item_id"], how="anti")
    )
    expected = (
        pairs.with_columns(
            pl.Series("score", [zlib.crc32(f"{SALT}|{u}|{i}".encode()) / 2**32 for u, i in pairs.iter_rows()])
        )
        .sort(["user_id", "score", "item_id"], descending=[False, True, False])
        .group_by("user_id", maintain_order=True)
        .head(K)
        .with_columns(pl.int_range(1, pl.len() + 1).over("user_id").cast(pl.Int32).alias("rank"))
        .select("user_id", "item_id", "rank", "score")
    )
    stored = pl.read_parquet(storage / "recommendations.parquet").sort("user_id", "rank")
    assert stored.height == users.height * K
    assert stored.equals(expected.sort("user_id", "rank"))
    test_scores = pl.read_parquet(storage / "test_scores.parquet")
    assert test_scores.height == interactions.filter(pl.col("split") == "test").height

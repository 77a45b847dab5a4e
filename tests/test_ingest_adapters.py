"""The file-based ingest plugins: canonical CSV/Parquet, MovieLens-100K, Coat, layout detection."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from causalrec_assets.contracts import DataContractError
from causalrec_assets.plugin_api import PluginContext
from causalrec_plugins.ingest.canonical import CanonicalIngest
from causalrec_plugins.ingest.coat import CoatIngest
from causalrec_plugins.ingest.layout import PLUGIN_FOR_LAYOUT, detect_layout
from causalrec_plugins.ingest.movielens import MovieLensIngest

DATA = Path("/work/shared/data")
ML100K = DATA / "ml-100k"
COAT = DATA / "coat"

needs_ml100k = pytest.mark.skipif(not (ML100K / "u.data").is_file(), reason="ml-100k not available")
needs_coat = pytest.mark.skipif(not (COAT / "train.ascii").is_file(), reason="coat not available")


def small_tables() -> dict[str, pl.DataFrame]:
    return {
        "users": pl.DataFrame({"user_id": [1, 2, 3], "age_group": ["<25", "25-34", "50+"]}),
        "items": pl.DataFrame({"item_id": [10, 20], "text": ["a red coat", "a blue hat"]}),
        "interactions": pl.DataFrame(
            {
                "user_id": [1, 1, 2, 3],
                "item_id": [10, 20, 10, 20],
                "exposure": [1, 0, 1, 1],
                "outcome": [1.0, 0.0, 0.0, 1.0],
                "split": ["train", "train", "test", "train"],
            }
        ),
    }


def write_tables(directory: Path, fmt: str, tables: dict[str, pl.DataFrame] | None = None) -> None:
    for name, frame in (tables or small_tables()).items():
        if fmt == "csv":
            frame.write_csv(directory / f"{name}.csv")
        else:
            frame.write_parquet(directory / f"{name}.parquet")


def load_canonical(directory: Path):
    """The canonical plugin's dataset with its log collected (the plugin returns it as a scan)."""
    data = CanonicalIngest(CanonicalIngest.Config(path=str(directory))).load(PluginContext())
    data.interactions = data.interactions.collect()
    return data


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_canonical_scans_the_log_out_of_core(tmp_path: Path, fmt: str) -> None:
    write_tables(tmp_path, fmt)
    data = CanonicalIngest(CanonicalIngest.Config(path=str(tmp_path))).load(PluginContext())
    assert isinstance(data.interactions, pl.LazyFrame) and isinstance(data.users, pl.DataFrame)


def test_canonical_corrupt_log_is_refused_before_it_is_scanned(tmp_path: Path) -> None:
    write_tables(tmp_path, "parquet")
    (tmp_path / "interactions.parquet").write_bytes(b"PAR1 definitely not parquet PAR1")
    with pytest.raises(DataContractError, match=r"interactions.*interactions\.parquet"):
        CanonicalIngest(CanonicalIngest.Config(path=str(tmp_path))).load(PluginContext())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_canonical_round_trip(tmp_path: Path, fmt: str) -> None:
    write_tables(tmp_path, fmt)
    dataset = load_canonical(tmp_path)
    expected = small_tables()
    assert dataset.users.equals(expected["users"])
    assert dataset.items.equals(expected["items"])
    assert dataset.interactions.equals(expected["interactions"])
    assert dataset.name == tmp_path.name


def test_canonical_prefers_parquet(tmp_path: Path) -> None:
    write_tables(tmp_path, "parquet")
    (tmp_path / "users.csv").write_text("user_id\n99\n")
    assert load_canonical(tmp_path).users["user_id"].to_list() == [1, 2, 3]


def test_canonical_keeps_tables_without_exposure(tmp_path: Path) -> None:
    tables = small_tables()
    tables["interactions"] = tables["interactions"].drop("exposure")
    write_tables(tmp_path, "csv", tables)
    assert "exposure" not in load_canonical(tmp_path).interactions.columns


def test_canonical_harmonises_id_types(tmp_path: Path) -> None:
    tables = small_tables()
    tables["users"] = pl.DataFrame({"user_id": ["u1", "u2", "u3"]})
    write_tables(tmp_path, "csv", tables)
    dataset = load_canonical(tmp_path)
    assert dataset.users.schema["user_id"] == dataset.interactions.schema["user_id"] == pl.String


def test_canonical_missing_table(tmp_path: Path) -> None:
    write_tables(tmp_path, "csv")
    (tmp_path / "items.csv").unlink()
    with pytest.raises(DataContractError, match=r"items.*items\.parquet, items\.csv"):
        load_canonical(tmp_path)


def test_canonical_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataContractError, match="does not exist"):
        load_canonical(tmp_path / "nowhere")


def test_canonical_binary_users_csv(tmp_path: Path) -> None:
    write_tables(tmp_path, "csv")
    (tmp_path / "users.csv").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DataContractError, match="users") as info:
        load_canonical(tmp_path)
    assert "not valid UTF-8 CSV" in str(info.value)
    assert str(tmp_path / "users.csv") in str(info.value)


def test_canonical_corrupt_parquet(tmp_path: Path) -> None:
    write_tables(tmp_path, "parquet")
    (tmp_path / "items.parquet").write_bytes(b"PAR1 definitely not parquet PAR1")
    with pytest.raises(DataContractError, match=r"items.*items\.parquet"):
        load_canonical(tmp_path)


def test_canonical_header_only_csv_is_empty_table(tmp_path: Path) -> None:
    write_tables(tmp_path, "csv")
    (tmp_path / "interactions.csv").write_text("user_id,item_id,exposure,outcome\n")
    interactions = load_canonical(tmp_path).interactions
    assert interactions.height == 0
    assert interactions.columns == ["user_id", "item_id", "exposure", "outcome"]


@needs_ml100k
def test_movielens_100k() -> None:
    dataset = MovieLensIngest(MovieLensIngest.Config(path=str(ML100K))).load(PluginContext())
    users, items, interactions = dataset.users, dataset.items, dataset.interactions
    assert (users.height, items.height, interactions.height) == (943, 1682, 100_000)
    assert users.schema["user_id"] == pl.Int64 and users.schema["age"] == pl.Int64
    assert set(users["age_group"]) == {"<25", "25-34", "35-49", "50+"}
    assert set(users["gender"]) == {"M", "F"}
    assert items["item_id"].is_unique().all()
    toy_story = items.filter(pl.col("item_id") == 1).row(0, named=True)
    assert toy_story["text"] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert toy_story["genre"] == "Animation" and toy_story["year"] == 1995
    miserables = items.filter(pl.col("text").str.starts_with("Misérables, Les (1995)"))
    assert miserables.height == 1
    assert items.filter(pl.col("item_id") == 267)["year"].to_list() == [None]
    assert interactions.schema["exposure"] == pl.Int8 and interactions["exposure"].min() == 1
    assert interactions.schema["outcome"] == pl.Float64
    assert interactions["outcome"].min() == 1.0 and interactions["outcome"].max() == 5.0
    assert interactions.schema["timestamp"] == pl.Datetime("us")
    assert set(interactions["split"]) == {"train"}


@needs_coat
def test_coat() -> None:
    dataset = CoatIngest(CoatIngest.Config(path=str(COAT))).load(PluginContext())
    users, items, interactions = dataset.users, dataset.items, dataset.interactions
    assert (users.height, items.height) == (290, 300)
    assert users.columns == ["user_id", "gender", "age_group", "location", "fashion_interest"]
    assert items.columns == ["item_id", "text", "gender", "jacket_type", "color", "on_frontpage"]
    assert users["user_id"].to_list() == list(range(290))
    assert users.null_count().sum_horizontal().item() == 0
    assert items.null_count().sum_horizontal().item() == 0
    assert set(items["on_frontpage"]) == {"yes", "no"}
    assert all(text.split(" ")[0] in {"men's", "women's"} and "jacket" in text for text in items["text"])
    counts = dict(interactions.group_by("split").len().iter_rows())
    assert counts == {"train": 6960, "test": 4640}
    assert interactions["outcome"].is_between(1, 5).all()
    assert set(interactions["exposure"]) == {1}
    per_user = interactions.filter(pl.col("split") == "test").group_by("user_id").len()
    assert per_user["len"].unique().to_list() == [16]


def test_detect_layout(tmp_path: Path) -> None:
    canonical = tmp_path / "canonical"
    canonical.mkdir()
    write_tables(canonical, "parquet")
    movielens = tmp_path / "ml"
    movielens.mkdir()
    (movielens / "u.data").write_text("1\t1\t5\t881250949\n")
    coat = tmp_path / "coat"
    coat.mkdir()
    (coat / "train.ascii").write_text("0 1\n")
    (coat / "test.ascii").write_text("1 0\n")
    assert detect_layout(canonical) == "canonical"
    assert detect_layout(str(movielens)) == "movielens"
    assert detect_layout(coat) == "coat"
    assert detect_layout(tmp_path) is None
    assert detect_layout(tmp_path / "missing") is None
    assert set(PLUGIN_FOR_LAYOUT) == {"canonical", "movielens", "coat"}


@needs_ml100k
@needs_coat
def test_detect_layout_on_shared_data() -> None:
    assert detect_layout(ML100K) == "movielens"
    assert detect_layout(COAT) == "coat"


def test_configs_are_typed_and_documented() -> None:
    for plugin in (CanonicalIngest, MovieLensIngest, CoatIngest):
        field = plugin.Config.model_fields["path"]
        assert field.default == "" and field.description

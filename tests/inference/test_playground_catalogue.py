"""The playground's catalogue and its routes other than the page: the items file, browsing order, search,
and the most-popular answer compared with the engine called directly."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference.engine import Recommender
from inference.playground import __main__ as playground_cli
from inference.playground.app import GuestApi, create_playground
from inference.playground.catalogue import Catalogue, Item, ItemsFileError, read_items_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_items_file_rows_by_id(tmp_path):
    path = write(tmp_path / "items.csv", "item_id,name,category,image_url\n"
                                         "a, Apple ,fruit,https://example.com/a.png\nb,Bread,,\n")
    assert read_items_file(path) == {"a": Item("a", "Apple", "fruit", "https://example.com/a.png"),
                                     "b": Item("b", "Bread", "", "")}


@pytest.mark.parametrize("text, message", [
    ("id,name\na,Apple\n", "no 'item_id' column"),
    ("item_id,name\na,Apple\na,Again\n", "line 3: item_id 'a' given twice"),
    ("item_id,name\n,Nameless\n", "line 2: empty item_id"),
    ("item_id,image_url\na,javascript:alert(1)\n", "line 2: image_url must start with"),
    ("item_id,name\na,Apple,fruit\n", "line 2: more fields than the header row names"),
])
def test_items_file_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(ItemsFileError, match=message):
        read_items_file(write(tmp_path / "items.csv", text))


def test_missing_items_file_is_a_clear_error(tmp_path):
    with pytest.raises(ItemsFileError, match="cannot read the items file"):
        read_items_file(tmp_path / "absent.csv")


def test_catalogue_lists_popular_first_and_searches_every_word():
    described = {"c": Item("c", "Red apple", "fruit"), "zz": Item("zz", "Not in the model")}
    catalogue = Catalogue(["a", "b", "c", "d"], popular=["c", "x", "a"], described=described)
    assert [item.item_id for item in catalogue.items] == ["c", "a", "b", "d"]
    assert (catalogue.described, catalogue.unknown_described) == (1, 1)
    assert catalogue.search("FRUIT red", limit=10) == [Item("c", "Red apple", "fruit")]
    assert [item.item_id for item in catalogue.search("", limit=2)] == ["c", "a"]
    assert catalogue.describe(["d", "nope"]) == [Item("d"), Item("nope")]


@pytest.fixture(scope="module")
def client(model_dir):
    return create_playground(model_dir).test_client()


def test_popular_answer_is_the_engines_fallback_under_the_same_filters(client, model_dir):
    engine = Recommender.load(model_dir)
    excluded = [engine.popular[0], engine.popular[2]]
    answer = client.post("/playground/popular", json={"items": [engine.items[5]], "k": 4, "exclude_items": excluded})
    assert answer.status_code == 200
    expected = engine.recommend([[]], k=4, filters=[engine.item_filter(excluded, None)])[0]
    assert expected.fallback
    got = answer.get_json()
    assert [(r["item_id"], r["score"]) for r in got["recommendations"]] == expected.recommendations
    assert [r["item_id"] for r in got["recommendations"]] == [engine.popular[1]] + engine.popular[3:6]
    assert got["fallback"] is True


def test_popular_answer_takes_an_empty_session(client, model_dir):
    engine = Recommender.load(model_dir)
    answer = client.post("/playground/popular", json={"items": [], "k": 3}).get_json()
    assert [r["item_id"] for r in answer["recommendations"]] == engine.popular[:3]


@pytest.mark.parametrize("method, path, body, message", [
    ("get", "/playground/items?limit=0", None, "limit must be an integer from 1 to 500"),
    ("post", "/playground/describe", {"ids": []}, 'the body must be JSON {"item_ids": [...]}'),
    ("post", "/playground/describe", {"item_ids": [1.5]}, "'item_ids[0]' must be an item id"),
    ("post", "/playground/popular", {"items": [], "k": 0}, "'k' is 0"),
    ("post", "/playground/popular", {"items": "a"}, "'items'"),
])
def test_bad_requests_are_400s_naming_the_problem(client, method, path, body, message):
    answer = getattr(client, method)(path, json=body)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]


def test_report_holds_the_models_figures(client, model_dir):
    metadata = json.loads((model_dir / "metadata.json").read_text())
    report = client.get("/playground/report").get_json()
    assert report["metrics"] == metadata["metrics"]
    assert report["parameters"] == metadata["parameters"]
    assert report["has_plot"] is True
    plot = client.get("/playground/training.png")
    assert plot.status_code == 200 and plot.data == (model_dir / "training.png").read_bytes()


def test_cli_refuses_a_bad_items_file(tmp_path, model_dir):
    bad = write(tmp_path / "items.csv", "name\nApple\n")
    done = subprocess.run([sys.executable, "-m", "inference.playground", "--model-dir", str(model_dir),
                           "--items", str(bad), "--port", "0"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "no 'item_id' column" in done.stderr


def test_config_names_the_deployed_api_or_none(model_dir):
    assert create_playground(model_dir).test_client().get("/playground/config").get_json() == {"api": None}
    api = GuestApi("https://abc.execute-api.eu-west-1.amazonaws.com/dev/recommendations", "eu-west-1:pool", "arn:role")
    config = create_playground(model_dir, api=api).test_client().get("/playground/config").get_json()
    assert config == {"api": {"apiUrl": api.api_url, "identityPoolId": "eu-west-1:pool", "roleArn": "arn:role",
                              "cognitoUrl": None, "stsUrl": None}}


@pytest.mark.parametrize("argv, message", [
    (["--api-url", "https://x/dev/recommendations"], "missing: --guest-pool, --guest-role"),
    (["--api-url", "u", "--guest-pool", "no-region", "--guest-role", "r"], "REGION:UUID, not 'no-region'"),
])
def test_cli_refuses_an_incomplete_deployed_api(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        playground_cli.parse_args(["--model-dir", "m", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_builds_the_guest_api_from_its_three_options():
    args = playground_cli.parse_args(["--model-dir", "m", "--api-url", "u", "--guest-pool", "eu-west-1:p",
                                      "--guest-role", "r"])
    assert playground_cli.guest_api(args) == GuestApi("u", "eu-west-1:p", "r")
    assert playground_cli.guest_api(playground_cli.parse_args(["--model-dir", "m"])) is None

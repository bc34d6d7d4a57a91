"""load_documents: paths, directories, text, dicts, lists, List expansion, YAML errors."""

from pathlib import Path

import pytest

from orchestrator.api import Document, load_documents
from orchestrator.errors import ValidationError

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n"

REPO = Path(__file__).resolve().parents[2]


def test_file_multi_document_skips_empty_and_keeps_index(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("---\n" + POD.format(name="a") + "---\n---\n# only a comment\n---\n"
                 + POD.format(name="b"))
    docs = load_documents(f)
    assert [d.obj["metadata"]["name"] for d in docs] == ["a", "b"]
    assert [d.index for d in docs] == [0, 3]
    assert all(d.source == str(f) and d.item is None for d in docs)
    assert load_documents(str(f)) == docs


def test_directory_sorted_yaml_and_yml_only(tmp_path):
    (tmp_path / "b.yml").write_text(POD.format(name="b"))
    (tmp_path / "a.yaml").write_text(POD.format(name="a"))
    (tmp_path / "c.txt").write_text(POD.format(name="c"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.yaml").write_text(POD.format(name="d"))
    docs = load_documents(tmp_path)
    assert [d.obj["metadata"]["name"] for d in docs] == ["a", "b"]
    assert docs[1].source.endswith("b.yml")


def test_text_source():
    docs = load_documents(POD.format(name="a") + "---\n" + POD.format(name="b"))
    assert [(d.source, d.index) for d in docs] == [("<text>", 0), ("<text>", 1)]


def test_single_line_text_with_colon():
    docs = load_documents("{apiVersion: v1, kind: Namespace, metadata: {name: x}}")
    assert docs[0].obj["kind"] == "Namespace"


def test_dict_and_list_sources_are_not_modified():
    d = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    assert load_documents(d) == [Document(d, "<input>", 0)]
    docs = load_documents([d, None, dict(d)])
    assert [x.index for x in docs] == [0, 2]
    assert docs[0].obj is d


def test_kind_list_expanded():
    text = ("apiVersion: v1\nkind: List\nitems:\n- " + "apiVersion: v1\n  kind: Namespace\n"
            "  metadata: {name: a}\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n")
    docs = load_documents("---\n" + POD.format(name="p") + "---\n" + text)
    assert [(d.obj["metadata"]["name"], d.index, d.item) for d in docs] == \
        [("p", 0, None), ("a", 1, 0), ("b", 1, 1)]


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(POD.format(name="a") + "---\napiVersion: v1\nkind: Pod\nmetadata:\n"
                 "  name: [unclosed\n")
    with pytest.raises(ValidationError) as exc:
        load_documents(f)
    assert exc.value.source == str(f)
    assert "line" in exc.value.message
    assert str(f) in str(exc.value)


def test_malformed_yaml_line_number_is_right(tmp_path):
    f = tmp_path / "tab.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n\tlabels: {}\n")
    with pytest.raises(ValidationError) as exc:
        load_documents(f)
    assert "line 5" in exc.value.message


def test_duplicate_key_rejected_with_line():
    with pytest.raises(ValidationError) as exc:
        load_documents("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n")
    assert "duplicate key 'name'" in exc.value.message
    assert "line 5" in exc.value.message
    assert exc.value.source == "<text>"


def test_timestamps_stay_strings():
    docs = load_documents("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n"
                          "  creationTimestamp: 2024-01-02T03:04:05Z\n")
    assert docs[0].obj["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"


def test_non_mapping_document(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(POD.format(name="a") + "---\n- just\n- a list\n")
    with pytest.raises(ValidationError) as exc:
        load_documents(f)
    assert exc.value.index == 1 and exc.value.source == str(f)
    assert "mapping" in exc.value.message


def test_bad_list_items():
    with pytest.raises(ValidationError) as exc:
        load_documents("apiVersion: v1\nkind: List\nitems:\n- 3\n")
    assert exc.value.field == "items[0]"


def test_missing_file(tmp_path):
    with pytest.raises(ValidationError) as exc:
        load_documents(tmp_path / "nope.yaml")
    assert "no such file" in str(exc.value)
    with pytest.raises(ValidationError):
        load_documents(str(tmp_path / "nope.yaml"))


def test_unsupported_source():
    with pytest.raises(ValidationError):
        load_documents(42)


def test_example_manifest_loads():
    docs = load_documents(REPO / "experiments" / "manifests" / "web.yaml")
    assert [(d.obj["kind"], d.obj["metadata"]["name"]) for d in docs] == \
        [("Namespace", "demo"), ("Deployment", "web"), ("Pod", "client")]

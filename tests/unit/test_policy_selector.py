"""Calico selector language: evaluation, canonical form, errors, k8s LabelSelector conversion.

Golden values come from Calico's documented semantics and from libcalico-go's own parser
tests (canonical strings and their UniqueIDs).
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.api import label_selector_matches
from orchestrator.errors import ValidationError
from policy.selector import Selector, SelectorError, from_label_selector, parse

WEB = {"app": "web", "tier": "frontend", "example.com/team": "blue"}


@pytest.mark.parametrize("text, labels, expected", [
    ('app == "web"', WEB, True),
    ("app == 'db'", WEB, False),
    ("missing == 'x'", WEB, False),
    ("app != 'db'", WEB, True),
    ("app != 'web'", WEB, False),
    ("missing != 'x'", WEB, True),            # != is true when the label is absent
    ("app in {'db', 'web'}", WEB, True),
    ("app in {'db'}", WEB, False),
    ("missing in {'x'}", WEB, False),
    ("app not in {'db'}", WEB, True),
    ("app not in {'db', 'web'}", WEB, False),
    ("missing not in {'x'}", WEB, True),      # so is not in
    ("app in {}", WEB, False),
    ("app not in {}", WEB, True),
    ("has(app)", WEB, True),
    ("has(missing)", WEB, False),
    ("!has(missing)", WEB, True),
    ("! has(app)", WEB, False),
    ("tier contains 'ont'", WEB, True),
    ("tier contains 'x'", WEB, False),
    ("missing contains ''", WEB, False),
    ("tier starts with 'front'", WEB, True),
    ("tier starts with 'end'", WEB, False),
    ("tier ends with 'end'", WEB, True),
    ("tier ends with 'front'", WEB, False),
    ("example.com/team == 'blue'", WEB, True),
    ("all()", WEB, True),
    ("all()", {}, True),
    ("", {}, True),
    (" \t ", WEB, True),
    ("global()", WEB, False),                 # global() selects no (namespaced) endpoint
    ("global()", {}, False),
    ("app == 'web' && tier == 'frontend'", WEB, True),
    ("app == 'web' && tier == 'backend'", WEB, False),
    ("app == 'db' || tier == 'frontend'", WEB, True),
    ("app == 'db' || tier == 'backend'", WEB, False),
    ("!app == 'web'", WEB, False),            # ! binds tighter than the comparison's result
    ("!!has(app)", WEB, True),
    ("!!!has(app)", WEB, False),
    ("!(has(missing) || !has(app))", WEB, True),
    # && binds tighter than ||: true || (x && false) is true ...
    ("has(app) || has(missing) && has(nope)", WEB, True),
    # ... and parentheses regroup: (true || x) && false is false.
    ("(has(app) || has(missing)) && has(nope)", WEB, False),
    ("!has(app) && has(missing)", WEB, False),
    ("!(has(app) && has(missing))", WEB, True),
])
def test_matches(text, labels, expected):
    assert parse(text).matches(labels) is expected


@pytest.mark.parametrize("text, labels, expected", [
    ('a in {"\'", \'"\', "c"}', {"a": '"'}, True),
    ('a in {"\'", \'"\', "c"}', {"a": "'"}, True),
    ('a not in {"\'", \'"\', "c"}', {"a": "e"}, True),
    ('a == ""', {"a": ""}, True),
    ('a == ""', {}, False),
])
def test_quotes_and_empty_values(text, labels, expected):
    assert parse(text).matches(labels) is expected


@pytest.mark.parametrize("text, canonical", [
    # From libcalico-go's parser canonicalisation tests.
    ("", "all()"),
    (" all() ", "all()"),
    (" (all() )", "all()"),
    ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
    ('! (a == "b"&&! c != "d")', '!(a == "b" && !c != "d")'),
    ("a == \"'\"", "a == \"'\""),
    ("a == '\"'", "a == '\"'"),
    ("a contains '\"'", "a contains '\"'"),
    ("a startswith '\"'", "a starts with '\"'"),
    ("a endswith \"'\"", "a ends with \"'\""),
    ("a!='\"'", "a != '\"'"),
    ('a in {"d", "a", "b"}', 'a in {"a", "b", "d"}'),
    ('a in {"z", "z", "x", "y", "x", "a"}', 'a in {"a", "x", "y", "z"}'),
    ("k == 'v' && x == 'y'", '(k == "v" && x == "y")'),
    ("k == 'v' || has(x)", '(k == "v" || has(x))'),
    ("!(k == 'v')", '!k == "v"'),
    ("k not in {'v'}", 'k not in {"v"}'),
    ("!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
     '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})'),
    # Precedence made visible, nesting kept (Calico does not flatten).
    ("a == '1' || b == '2' && c == '3'", '(a == "1" || (b == "2" && c == "3"))'),
    ("(a == '1' && b == '2') && c == '3'", '((a == "1" && b == "2") && c == "3")'),
    ("!!has(a)", "has(a)"),
    ("global()", "global()"),
    ("a in {'x',}", 'a in {"x"}'),
    ("a in {}", "a in {}"),
    ("a notin {'x'}", 'a not in {"x"}'),
])
def test_normalized(text, canonical):
    sel = parse(text)
    assert sel.normalized == canonical
    assert str(sel) == canonical
    assert parse(canonical).normalized == canonical  # round trip


@pytest.mark.parametrize("spellings", [
    ["app == 'web'", 'app=="web"', "  app  ==\t'web' ", "(app == 'web')", "!!app == 'web'"],
    ["a in {'x', 'y'}", 'a in {"y","x"}', "a in { 'y' , 'x', 'x' }"],
    ["has(a) && !has(b)", "has( a )&&! has(b)", "(has(a)) && (!has(b))"],
    ["all()", "", "  ", "( all( ) )"],
])
def test_equivalent_spellings_normalise_alike(spellings):
    selectors = {parse(s) for s in spellings}
    assert len(selectors) == 1
    assert len({s.normalized for s in selectors}) == 1


@pytest.mark.parametrize("text, uid", [
    # Golden UniqueIDs from libcalico-go's parser tests: normalized is what Felix hashes.
    ("", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    ("! (has( b)||! has(a ))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"),
    ('! (a == "b"&&! c != "d")', "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"),
])
def test_unique_id(text, uid):
    assert parse(text).unique_id == uid


def test_is_all():
    assert parse("").is_all and parse("all()").is_all and parse(" (all()) ").is_all
    assert not parse("has(a)").is_all
    assert not parse("global()").is_all
    assert not parse("all() && all()").is_all


def test_label_keys():
    assert parse("").label_keys() == frozenset()
    assert parse("global()").label_keys() == frozenset()
    sel = parse("a == 'x' || !(has(b) && c not in {'1'}) || d starts with 'p' || a != 'y'")
    assert sel.label_keys() == frozenset({"a", "b", "c", "d"})


def test_parse_is_cached_and_selectors_compare_by_normalized_form():
    assert parse("has(a)") is parse("has(a)")
    assert parse("has(a)") == parse(" has( a ) ")
    assert hash(parse("has(a)")) == hash(parse("has( a)"))
    assert parse("has(a)") != parse("has(b)")
    assert isinstance(parse("has(a)"), Selector)


def test_matches_accepts_none_labels():
    assert parse("!has(a)").matches(None) is True


@pytest.mark.parametrize("text, position, reason", [
    ("a == ", 5, "expected a quoted string"),
    ("a == b", 5, "expected a quoted string, found 'b'"),
    ("'b1' == b", 0, "expected a label"),
    ("(a == 'foo'", 11, "expected ')' to close the '(' at position 0"),
    ("(", 1, "expected a label"),
    (")", 0, "expected a label, has(...), all(), global(), '!' or '(', found ')'"),
    ("()", 1, "found ')'"),
    ("a == 'b' && %", 12, "unexpected character '%'"),
    ("%", 0, "unexpected character '%'"),
    ("a == 'b", 5, "unterminated string"),
    ('"FOO\'', 0, "unterminated string"),
    ("a in 'x'", 5, "expected '{' to start the set of values after 'in'"),
    ("a not in ('x')", 9, "expected '{'"),
    ("a in {'x'", 9, "expected ',' or '}'"),
    ("foo in {'', ||", 12, "expected a quoted string or '}', found '||'"),
    ("a", 1, "expected an operator"),
    ("a b", 2, "expected an operator (==, !=, in, not in, contains, starts with, ends with)"),
    ("a starts 'x'", 9, "expected 'with' after 'starts'"),
    ("a = 'b'", 2, "expected '=='"),
    ("a == 'b' & c == 'd'", 9, "expected '&&'"),
    ("a == 'b' | c == 'd'", 9, "expected '||'"),
    ("a == 'b' c == 'd'", 9, "expected '&&', '||' or the end of the selector, found 'c'"),
    ("has(foo) &&", 11, "expected a label"),
    ("!", 1, "expected a label"),
    ("has()", 4, "expected a label name inside has(...)"),
    ("has(a", 5, "expected ')' to close has("),
    ("all(x)", 4, "expected ')' to close all("),
    ("a == 'b'\n", 8, "unexpected character '\\n'"),   # only spaces and tabs are blanks
])
def test_errors_name_position_and_expectation(text, position, reason):
    with pytest.raises(SelectorError) as err:
        parse(text)
    assert err.value.position == position
    assert reason in err.value.reason
    assert str(err.value).startswith(f'selector "{text}": position {position}: ')
    assert isinstance(err.value, ValidationError)


def test_error_message_format():
    with pytest.raises(SelectorError) as err:
        parse("a == ")
    assert str(err.value) == 'selector "a == ": position 5: expected a quoted string'


def test_error_can_carry_a_field():
    err = SelectorError("a ==", 4, "expected a quoted string", field="spec.selector")
    assert err.field == "spec.selector"
    assert "field spec.selector" in str(err)


def test_length_limit():
    ok = "a in {" + ", ".join(["'x'"] * 200) + "}"
    assert len(ok) <= 1024 and parse(ok).matches({"a": "x"})
    too_long = "a == '" + "x" * 1020 + "'"
    with pytest.raises(SelectorError) as err:
        parse(too_long)
    assert err.value.position == 1024 and "longer than 1024" in str(err.value)


def test_non_string_rejected():
    with pytest.raises(ValidationError):
        parse(None)


# --- Kubernetes LabelSelector -> Calico selector ---------------------------------------------

@pytest.mark.parametrize("sel, text", [
    (None, "all()"),
    ({}, "all()"),
    ({"matchLabels": {}, "matchExpressions": []}, "all()"),
    ({"matchLabels": {"role": "db"}}, "role == 'db'"),
    ({"matchLabels": {"tier": "db", "app": "web"}}, "app == 'web' && tier == 'db'"),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
     "env in { 'prod', 'dev' }"),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
     "env not in { 'prod' }"),
    ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, "has(gpu)"),
    ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, "! has(gpu)"),
    ({"matchLabels": {"z": "1", "a.io/x": "2"},
      "matchExpressions": [{"key": "b", "operator": "DoesNotExist"},
                           {"key": "a", "operator": "Exists"}]},
     "a.io/x == '2' && z == '1' && ! has(b) && has(a)"),
])
def test_from_label_selector(sel, text):
    assert from_label_selector(sel) == text


def test_from_label_selector_normalizes_to_calico_form():
    sel = {"matchLabels": {"tier": "db", "app": "web"},
           "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod", "dev"]},
                                {"key": "gpu", "operator": "DoesNotExist"}]}
    assert parse(from_label_selector(sel)).normalized == (
        '(app == "web" && tier == "db" && env not in {"dev", "prod"} && !has(gpu))')


def test_not_in_matches_pods_without_the_key_as_kubernetes_does():
    sel = {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}
    calico = parse(from_label_selector(sel))
    for labels in ({}, {"other": "x"}, {"env": "dev"}):
        assert calico.matches(labels) is True
        assert label_selector_matches(sel, labels) is True
    assert calico.matches({"env": "prod"}) is False


@pytest.mark.parametrize("sel", [
    {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
    {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
])
def test_from_label_selector_rejects_invalid(sel):
    with pytest.raises(ValidationError):
        from_label_selector(sel)


_KEYS = st.sampled_from(["app", "tier", "env", "example.com/role", "x_y-z.1"])
_VALUES = st.sampled_from(["", "a", "b", "web", "db-1", "A.b_c"])
_LABELS = st.dictionaries(_KEYS, _VALUES, max_size=5)
_REQUIREMENT = st.one_of(
    st.fixed_dictionaries({"key": _KEYS, "operator": st.sampled_from(["In", "NotIn"]),
                           "values": st.lists(_VALUES, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"key": _KEYS,
                           "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
_K8S_SELECTOR = st.fixed_dictionaries({}, optional={
    "matchLabels": st.dictionaries(_KEYS, _VALUES, max_size=3),
    "matchExpressions": st.lists(_REQUIREMENT, max_size=3),
})


@settings(max_examples=400, deadline=None)
@given(sel=_K8S_SELECTOR, labels=_LABELS)
def test_converted_label_selector_agrees_with_kubernetes(sel, labels):
    text = from_label_selector(sel)
    assert parse(text).matches(labels) == label_selector_matches(sel, labels)
    # The canonical form means the same thing as the converted text.
    assert parse(parse(text).normalized).matches(labels) == label_selector_matches(sel, labels)

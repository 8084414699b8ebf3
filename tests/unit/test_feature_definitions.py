"""Feature definitions (mlops_lite.features.definitions): TOML and Python say the same
thing, every mistake is refused naming its field, and versions are content hashes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_lite.errors import InvalidInput
from mlops_lite.features.definitions import (
    Definitions,
    Entity,
    Feature,
    FeatureService,
    FeatureView,
    ServicePlan,
    from_toml,
    load,
)

REPO = Path(__file__).resolve().parents[2]

TOML = '''
[[entity]]
name = "customer"
join_keys = {customer_id = "int64"}
description = "a borrower"

[[entity]]
name = "branch"
join_keys = {region = "string", branch_no = "int64"}

[[feature_view]]
name = "history"
entities = ["customer"]
source = {repository = "loans", path = "customers/*.csv"}
timestamp_field = "event_timestamp"
created_timestamp_field = "created"
ttl = "30d"
features = {n_loans = "int64", balance = "float64"}

[[feature_view]]
name = "branch_stats"
entities = ["branch"]
source = {repository = "loans", query = "select * from b", tables = {b = "branches/*.parquet"}}
ttl = 0
features = {staff = "int64", open = "bool"}

[[on_demand]]
name = "ratios"
request = {amount = "float64"}
sources = ["history"]
features = {burden = {dtype = "float64", expression = "amount / (balance + 1)"}}

[[feature_service]]
name = "credit-v1"
features = ["history", "ratios:burden"]

[[feature_service]]
name = "branches"
features = ["branch_stats:staff"]
'''

PYTHON = '''
from mlops_lite.features.definitions import (Entity, Feature, FeatureService, FeatureView,
                                             OnDemandFeatureView, Source)

customer = Entity("customer", {"customer_id": "int64"}, "a borrower")
branch = Entity("branch", {"region": "string", "branch_no": "int64"})
history = FeatureView(
    name="history", entities=("customer",),
    source=Source("loans", path="customers/*.csv"),
    features=(Feature("n_loans", "int64"), Feature("balance", "float64")),
    timestamp_field="event_timestamp", created_timestamp_field="created", ttl_seconds=30 * 86400)
branch_stats = FeatureView(
    name="branch_stats", entities=("branch",),
    source=Source("loans", query="select * from b", tables=(("b", "branches/*.parquet"),)),
    features=(Feature("staff", "int64"), Feature("open", "bool")))
ratios = OnDemandFeatureView(
    "ratios", request=(Feature("amount", "float64"),),
    features=((Feature("burden", "float64"), "amount / (balance + 1)"),), sources=("history",))
credit = FeatureService("credit-v1", ("history", "ratios:burden"))
branches = FeatureService("branches", ("branch_stats:staff",))
'''


def _digests(definitions: Definitions) -> dict[str, str]:
    return {f"{item.kind}:{item.name}": item.digest for item in definitions.all()}


def _versions(definitions: Definitions) -> dict[str, str]:
    return {s.name: ServicePlan.of(s, definitions).version for s in definitions.services}


def test_toml_and_python_definitions_are_the_same_definitions_and_digests(tmp_path: Path) -> None:
    (tmp_path / "defs.toml").write_text(TOML)
    (tmp_path / "defs.py").write_text(PYTHON)
    from_text = load(tmp_path / "defs.toml")
    from_code = load(tmp_path / "defs.py")
    assert from_text.specs() == from_code.specs()
    assert from_text == from_code
    assert _digests(from_text) == _digests(from_code)
    assert _versions(from_text) == _versions(from_code)
    assert len(from_text.all()) == 7
    history = next(v for v in from_text.views if v.name == "history")
    assert history.ttl_seconds == 30 * 86400 and history.created_timestamp_field == "created"
    plan = ServicePlan.of(from_text.services[0], from_text)
    assert plan.feature_names == ("n_loans", "balance", "burden")
    assert plan.join_keys == (("customer_id", "int64"),)
    assert [f.name for f in plan.request_fields] == ["amount"]


def test_load_refuses_what_is_neither_toml_nor_python(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as missing:
        load(tmp_path / "nope.toml")
    assert missing.value.field == "path"
    (tmp_path / "defs.yaml").write_text("entity: []")
    with pytest.raises(InvalidInput) as other:
        load(tmp_path / "defs.yaml")
    assert other.value.field == "path"
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(InvalidInput, match="boom") as failing:
        load(tmp_path / "broken.py")
    assert failing.value.field == "definitions"
    with pytest.raises(InvalidInput) as not_toml:
        from_toml("[[entity]\n")
    assert not_toml.value.field == "definitions"


def _replace(old: str, new: str, text: str = TOML) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (the TOML, the field the refusal names)
MISTAKES = {
    "unknown section": ("[[feature_table]]\nname = 'x'\n" + TOML, "feature_table"),
    "unknown entity field": (_replace('description = "a borrower"', 'colour = "red"'), "entity.customer.colour"),
    "unknown view field": (_replace('ttl = "30d"', 'ttl = "30d"\nowner = "me"'), "feature_view.history.owner"),
    "unknown source field": (_replace('path = "customers/*.csv"}', 'path = "customers/*.csv", branch = "main"}'),
                             "feature_view.history.source.branch"),
    "unknown service field": (_replace('name = "branches"', 'name = "branches"\nmodel = "m"'),
                              "feature_service.branches.model"),
    "unknown on-demand field": (_replace('sources = ["history"]', 'sources = ["history"]\nmode = "python"'),
                                "on_demand.ratios.mode"),
    "bad entity name": (_replace('name = "customer"', 'name = "9customer"'), "entity.name"),
    "bad view name": (_replace('name = "history"', 'name = "his tory"'), "feature_view.name"),
    "bad service name": (_replace('name = "credit-v1"', 'name = "credit v1"'), "feature_service.name"),
    "bad feature name": (_replace('n_loans = "int64"', '"n-loans" = "int64"'), "feature_view.history.features"),
    "bad join key name": (_replace('{customer_id = "int64"}', '{"customer id" = "int64"}'),
                          "entity.customer.join_keys"),
    "bad dtype": (_replace('balance = "float64"', 'balance = "decimal"'), "feature_view.history.features.balance"),
    "bad request dtype": (_replace('request = {amount = "float64"}', 'request = {amount = "money"}'),
                          "on_demand.ratios.request.amount"),
    "bad on-demand dtype": (_replace('dtype = "float64", expression', 'dtype = "real", expression'),
                            "on_demand.ratios.features.burden"),
    "missing join key": (_replace('join_keys = {customer_id = "int64"}', 'join_keys = {}'),
                         "entity.customer.join_keys"),
    "join keys not a table": (_replace('join_keys = {customer_id = "int64"}', 'join_keys = ["customer_id"]'),
                              "entity.customer.join_keys"),
    "float join key": (_replace('{customer_id = "int64"}', '{customer_id = "float64"}'),
                       "entity.customer.join_keys.customer_id"),
    "timestamp join key": (_replace('branch_no = "int64"}', 'branch_no = "timestamp"}'),
                           "entity.branch.join_keys.branch_no"),
    "unknown entity": (_replace('entities = ["customer"]', 'entities = ["client"]'), "feature_view.history.entities"),
    "no entity": (_replace('entities = ["customer"]', 'entities = []'), "feature_view.history.entities"),
    "unknown view in a service": (_replace('["history", "ratios:burden"]', '["histories"]'),
                                  "feature_service.credit-v1.features"),
    "unknown feature in a service": (_replace('["history", "ratios:burden"]', '["history:n_loan"]'),
                                     "feature_service.credit-v1.features"),
    "a feature served twice": (_replace('["history", "ratios:burden"]', '["history", "history:balance"]'),
                               "feature_service.credit-v1.features"),
    "service with no features": (_replace('["history", "ratios:burden"]', '[]'),
                                 "feature_service.credit-v1.features"),
    "empty expression": (_replace('expression = "amount / (balance + 1)"', 'expression = "  "'),
                         "on_demand.ratios.features.burden"),
    "expression with ;": (_replace('expression = "amount / (balance + 1)"',
                                   'expression = "1; drop table feature_online"'), "on_demand.ratios.features.burden"),
    "on-demand reads an unknown view": (_replace('sources = ["history"]', 'sources = ["histories"]'),
                                        "on_demand.ratios.sources"),
    "bad ttl": (_replace('ttl = "30d"', 'ttl = "a month"'), "feature_view.history.ttl"),
    "negative ttl": (_replace('ttl = "30d"', 'ttl = -5'), "feature_view.history.ttl"),
    "infinite ttl": (_replace('ttl = "30d"', 'ttl = inf'), "feature_view.history.ttl"),
    "nan ttl": (_replace('ttl = "30d"', 'ttl = nan'), "feature_view.history.ttl"),
    "boolean ttl": (_replace('ttl = "30d"', 'ttl = true'), "feature_view.history.ttl"),
    "zero duration ttl": (_replace('ttl = "30d"', 'ttl = "0s"'), "feature_view.history.ttl"),
    "path and query": (_replace('path = "customers/*.csv"}', 'path = "customers/*.csv", query = "select 1", '
                                'tables = {c = "c.csv"}}'), "feature_view.history.source"),
    "neither path nor query": (_replace('{repository = "loans", path = "customers/*.csv"}', '{repository = "loans"}'),
                               "feature_view.history.source"),
    "query without tables": (_replace(', tables = {b = "branches/*.parquet"}', ''),
                             "feature_view.branch_stats.source.tables"),
    "bad repository": (_replace('repository = "loans", path', 'repository = "Loans!", path'),
                       "feature_view.history.source.repository"),
    "bad timestamp field": (_replace('timestamp_field = "event_timestamp"', 'timestamp_field = "event time"'),
                            "feature_view.history.timestamp_field"),
    "entity twice": (TOML + '\n[[entity]]\nname = "customer"\njoin_keys = {customer_id = "int64"}\n',
                     "entity.customer"),
    "two views a service reads share a feature name": (_replace('[[on_demand]]', '''[[feature_view]]
name = "accounts"
entities = ["customer"]
source = {repository = "loans", path = "accounts/*.csv"}
features = {balance = "float64", opened = "int64"}

[[on_demand]]''').replace('["history", "ratios:burden"]', '["history:n_loans", "accounts:opened"]'),
                                                        "feature_service.credit-v1.features"),
    "an on-demand source shares a feature name with a served view": (
        _replace('[[on_demand]]', '''[[feature_view]]
name = "accounts"
entities = ["customer"]
source = {repository = "loans", path = "accounts/*.csv"}
features = {balance = "float64", opened = "int64"}

[[on_demand]]''').replace('["history", "ratios:burden"]', '["accounts:opened", "ratios:burden"]'),
        "feature_service.credit-v1.features"),
    "a request field named like a feature": (_replace('request = {amount = "float64"}',
                                                      'request = {amount = "float64", n_loans = "int64"}'),
                                             "feature_service.credit-v1.features"),
    "a request field named like a served on-demand feature": (
        _replace('request = {amount = "float64"}', 'request = {amount = "float64", burden = "float64"}'),
        "feature_service.credit-v1.features"),
    "view and on-demand share a name": (_replace('name = "ratios"', 'name = "history"'), "on_demand.history"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_every_mistake_is_refused_naming_its_field(mistake: str) -> None:
    text, field = MISTAKES[mistake]
    with pytest.raises(InvalidInput) as refused:
        from_toml(text)
    assert refused.value.field == field, (mistake, str(refused.value))
    assert refused.value.expected


def test_the_python_constructors_refuse_the_same_mistakes() -> None:
    with pytest.raises(InvalidInput) as no_key:
        Entity("customer", {})
    assert no_key.value.field == "entity.customer.join_keys"
    with pytest.raises(InvalidInput) as float_key:
        Entity("customer", {"customer_id": "float64"})
    assert float_key.value.field == "entity.customer.join_keys.customer_id"
    base = from_toml(TOML)
    history = base.views[0]
    twice_view = FeatureView(history.name, history.entities, history.source, (*history.features, history.features[0]))
    with pytest.raises(InvalidInput) as duplicate:
        twice_view.validate()
    assert duplicate.value.field == "feature_view.history.features.n_loans"
    with pytest.raises(InvalidInput) as bad_dtype:
        FeatureView("v", ("customer",), history.source, (Feature("x", "float32"),)).validate()
    assert bad_dtype.value.field == "feature_view.v.features.x"
    broken = Definitions(base.entities, base.views, base.on_demand,
                         (*base.services, FeatureService("extra", ("history:n_loans", "history:n_loans"))))
    with pytest.raises(InvalidInput) as twice:
        broken.check_references()
    assert twice.value.field == "feature_service.extra.features"
    for ttl in (True, float("inf"), float("nan"), -1.0):
        with pytest.raises(InvalidInput) as bad_ttl:
            FeatureView("v", ("customer",), history.source, history.features, ttl_seconds=ttl).validate()
        assert bad_ttl.value.field == "feature_view.v.ttl"
    with pytest.raises(InvalidInput) as from_wire:
        Definitions.from_specs([{**base.views[0].spec(), "ttl_seconds": -1.0}, *base.specs()])
    assert from_wire.value.field == "feature_view.history.ttl"


def test_digests_do_not_depend_on_the_order_of_a_sections_keys_and_match_another_process() -> None:
    reordered = '''
[[entity]]
description = "a borrower"
join_keys = {customer_id = "int64"}
name = "customer"

[[entity]]
join_keys = {region = "string", branch_no = "int64"}
name = "branch"

[[feature_view]]
ttl = "720h"
features = {n_loans = "int64", balance = "float64"}
created_timestamp_field = "created"
source = {path = "customers/*.csv", repository = "loans"}
entities = ["customer"]
name = "history"

[[feature_view]]
features = {staff = "int64", open = "bool"}
source = {tables = {b = "branches/*.parquet"}, query = "select * from b", repository = "loans"}
name = "branch_stats"
entities = ["branch"]

[[on_demand]]
features = {burden = {expression = "amount / (balance + 1)", dtype = "float64"}}
sources = ["history"]
request = {amount = "float64"}
name = "ratios"

[[feature_service]]
features = ["history", "ratios:burden"]
name = "credit-v1"

[[feature_service]]
features = ["branch_stats:staff"]
name = "branches"
'''
    here = from_toml(TOML)
    assert _digests(from_toml(reordered)) == _digests(here)
    assert _versions(from_toml(reordered)) == _versions(here)
    script = ("import json, sys\nfrom mlops_lite.features.definitions import ServicePlan, from_toml\n"
              "d = from_toml(sys.stdin.read())\n"
              "print(json.dumps([{i.kind + ':' + i.name: i.digest for i in d.all()}, "
              "{s.name: ServicePlan.of(s, d).version for s in d.services}]))\n")
    out = subprocess.run([sys.executable, "-c", script], input=TOML, capture_output=True, text=True, check=True,
                         cwd=REPO, env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"})
    digests, versions = json.loads(out.stdout)
    assert digests == _digests(here) and versions == _versions(here)
    assert all(len(d) == 64 for d in digests.values()) and all(len(v) == 16 for v in versions.values())


def test_a_change_of_meaning_changes_the_digest() -> None:
    here = _digests(from_toml(TOML))
    for old, new, changed in [('ttl = "30d"', 'ttl = "31d"', "feature_view:history"),
                              ('description = "a borrower"', 'description = "a client"', "entity:customer"),
                              ("amount / (balance + 1)", "amount / (balance + 2)", "on_demand:ratios"),
                              ('["history", "ratios:burden"]', '["ratios:burden", "history"]',
                               "feature_service:credit-v1")]:
        there = _digests(from_toml(_replace(old, new)))
        assert {k for k in here if here[k] != there[k]} == {changed}, (old, new)


def test_a_service_version_follows_the_views_it_reads_and_only_those() -> None:
    here = _versions(from_toml(TOML))
    # history is read by credit-v1 (directly and through ratios), not by branches.
    ttl = _versions(from_toml(_replace('ttl = "30d"', 'ttl = "7d"')))
    assert ttl["credit-v1"] != here["credit-v1"] and ttl["branches"] == here["branches"]
    # A feature of branch_stats the branches service does not serve still changes its view.
    staff = _versions(from_toml(_replace('open = "bool"', 'open = "bool", rating = "float64"')))
    assert staff["branches"] != here["branches"] and staff["credit-v1"] == here["credit-v1"]
    # An on-demand expression changes only the service that serves it.
    expr = _versions(from_toml(_replace("amount / (balance + 1)", "amount / balance")))
    assert expr["credit-v1"] != here["credit-v1"] and expr["branches"] == here["branches"]
    # An entity a view joins on.
    key = _versions(from_toml(_replace('{customer_id = "int64"}', '{customer_id = "string"}')))
    assert key["credit-v1"] != here["credit-v1"] and key["branches"] == here["branches"]
    # A view read only through an on-demand view's sources is read all the same.
    only = TOML + '\n[[feature_service]]\nname = "burden_only"\nfeatures = ["ratios:burden"]\n'
    assert (_versions(from_toml(_replace('ttl = "30d"', 'ttl = "7d"', only)))["burden_only"]
            != _versions(from_toml(only))["burden_only"])
    # A view no service reads changes no version.
    extra = _versions(from_toml(TOML + '''
[[feature_view]]
name = "unused"
entities = ["customer"]
source = {repository = "loans", path = "other/*.csv"}
features = {x = "float64"}
'''))
    assert extra == here


def test_specs_round_trip_through_from_specs_and_json() -> None:
    here = from_toml(TOML)
    wire = json.loads(json.dumps(here.specs()))
    back = Definitions.from_specs(wire)
    assert back == here
    assert back.specs() == here.specs()
    assert _digests(back) == _digests(here) and _versions(back) == _versions(here)


@pytest.mark.parametrize(("specs", "field"), [
    ("not a list", "definitions"),
    ([1, 2], "definitions"),
    ([{"kind": "table", "name": "x"}], "kind"),
    ([{"kind": "entity", "name": "customer"}], "definitions[0]"),
    ([{"kind": "feature_view", "name": "v", "entities": ["e"]}], "definitions[0]"),
    ([{"kind": "entity", "name": "c", "join_keys": [["id", "int64"]]},
      {"kind": "feature_service", "name": "s", "features": ["nothing"]}], "feature_service.s.features"),
])
def test_from_specs_refuses_malformed_specs_naming_the_field(specs: object, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Definitions.from_specs(specs)
    assert refused.value.field == field

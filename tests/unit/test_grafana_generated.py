"""The Grafana dashboards under deploy/grafana/ are generated (services/kpi/grafana.py),
never edited by hand: regenerating gives the committed files byte for byte.

Every panel reads the provisioned PostgreSQL datasource by its uid with raw SQL;
uids and panel ids are unique; every variable a query uses is defined; only the
macros Grafana's PostgreSQL datasource knows are used, with arguments its macro
parser reads (no parentheses). The panels' SQL itself runs against the real
schema in tests/integration/test_grafana_panels.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.kpi import grafana
from shared.policy import load_policy
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "grafana"
DASHBOARDS = DEPLOY / "dashboards"
REGENERATE = "run `partnerledger grafana` and commit deploy/grafana/dashboards/"

MACROS = {"__timeFilter", "__timeFrom", "__timeTo"}
#: How Grafana's SQL datasources find a macro: its arguments end at the first ')'.
MACRO = re.compile(r"\$(__\w+)\(([^)]*)\)")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")


def committed() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = board.get("panels", [])
    return found


def test_regenerating_gives_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    written = grafana.write(tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in DASHBOARDS.glob("*.json")), REGENERATE
    for path in written:
        assert path.read_bytes() == (DASHBOARDS / path.name).read_bytes(), (
            f"{path.name} differs from the generator's output: {REGENERATE}"
        )


def test_generation_is_deterministic() -> None:
    first = {n: grafana.render(d) for n, d in grafana.dashboards().items()}
    second = {n: grafana.render(d) for n, d in grafana.dashboards().items()}
    assert first == second


def test_the_defaults_are_those_of_a_default_deployment() -> None:
    """The committed JSON reads schema `kpi` in the policy's zone."""
    assert Settings(schema_prefix="").schema_of("kpi") == grafana.DEFAULT_SCHEMA
    assert load_policy().time.zone == grafana.DEFAULT_ZONE


def test_five_dashboards_with_unique_uids_and_bilingual_titles() -> None:
    boards = committed()
    assert set(boards) == {
        "partner-scorecards.json",
        "project-delivery.json",
        "process-compliance.json",
        "staff-kpis.json",
        "incidents.json",
    }
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for board in boards.values():
        assert HAN.search(board["title"]) and LATIN.search(board["title"]), board["title"]
        assert board["editable"] is False
        assert board["timezone"] == grafana.DEFAULT_ZONE


@pytest.mark.parametrize("name", sorted(committed()))
def test_every_panel_reads_the_datasource_with_sql(name: str) -> None:
    board = committed()[name]
    assert panels(board), f"{name} has no panels"
    ids = [p["id"] for p in panels(board)]
    assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
    titles = [p["title"] for p in panels(board)]
    assert len(set(titles)) == len(titles), f"{name}: panel titles repeat"
    for panel in panels(board):
        where = f"{name} / {panel['title']}"
        assert HAN.search(panel["title"]) and LATIN.search(panel["title"]), where
        assert panel.get("description"), where
        assert panel["type"] in ("stat", "table", "timeseries"), where
        assert panel["datasource"] == {
            "type": grafana.DATASOURCE_TYPE,
            "uid": grafana.DATASOURCE_UID,
        }, where
        assert len(panel["targets"]) == 1, where
        target = panel["targets"][0]
        assert target["datasource"] == panel["datasource"], where
        assert target["rawQuery"] is True and target["editorMode"] == "code", where
        assert target["rawSql"].strip().upper().startswith(("SELECT", "WITH")), where
        expected = "time_series" if panel["type"] == "timeseries" else "table"
        assert target["format"] == expected, where
        if expected == "time_series":
            assert " AS time," in target["rawSql"] and " AS metric," in target["rawSql"], where
        w, x = panel["gridPos"]["w"], panel["gridPos"]["x"]
        assert w > 0 and x + w <= 24, where


def _sql_of(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(f"panel {p['title']}", p["targets"][0]["rawSql"]) for p in panels(board)]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            out.append((f"variable {variable['name']}", variable["query"]))
    return out


@pytest.mark.parametrize("name", sorted(committed()))
def test_queries_use_defined_variables_and_known_macros(name: str) -> None:
    board = committed()[name]
    defined = {v["name"] for v in board["templating"]["list"]}
    for where, sql in _sql_of(board):
        macros = MACRO.findall(sql)
        for macro, args in macros:
            assert macro in MACROS, f"{where}: unknown macro ${macro}"
            assert "(" not in args, f"{where}: ${macro}({args}) - Grafana stops at the first ')'"
        rest = MACRO.sub("", sql)
        used = {a or b for a, b in VARIABLE.findall(rest)}
        assert used <= defined, f"{where}: undefined variables {used - defined}"
        assert "${schema}." in sql, f"{where}: tables are qualified with ${{schema}}"


@pytest.mark.parametrize("name", sorted(committed()))
def test_variables(name: str) -> None:
    variables = {v["name"]: v for v in committed()[name]["templating"]["list"]}
    assert variables["schema"]["type"] == "constant"
    assert variables["schema"]["query"] == grafana.DEFAULT_SCHEMA
    assert variables["zone"]["query"] == grafana.DEFAULT_ZONE
    assert [o["value"] for o in variables["period"]["options"]] == ["month", "quarter"]
    assert variables["period"]["current"]["value"] == "month"
    for variable in variables.values():
        if variable.get("includeAll"):
            # Inserted unformatted by Grafana: a quoted literal the SQL compares with.
            assert variable["allValue"] == grafana.ALL == "'__all'"
            assert variable["multi"] is True
            assert variable["current"]["value"] == "$__all"
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == grafana.DATASOURCE_UID


def test_provisioning_names_the_datasource_the_dashboards_read() -> None:
    datasource = (DEPLOY / "provisioning" / "datasources" / "postgres.yaml").read_text()
    assert f"uid: {grafana.DATASOURCE_UID}\n" in datasource
    assert f"type: {grafana.DATASOURCE_TYPE}\n" in datasource
    for env in ("PL_GRAFANA_DB_HOST", "PL_GRAFANA_DB_NAME", "PL_GRAFANA_DB_USER"):
        assert f"${{{env}}}" in datasource
    assert "password: ${PL_GRAFANA_DB_PASSWORD}" in datasource
    provider = (DEPLOY / "provisioning" / "dashboards" / "partnerledger.yaml").read_text()
    assert "type: file" in provider and "allowUiUpdates: false" in provider
